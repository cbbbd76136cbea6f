"""The local process backend: each attempt is a fresh process on this machine.

A real container stand-in: the version's code unpacked once, its requirements in a cached
virtual environment, the `.env` loaded by the function's process only, its own process group
(and cgroup where available), stdout and stderr in a per-attempt log file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from multinode.contract.options import format_memory
from multinode.contract.records import AttemptOutcome, AttemptProgress, AttemptRequest, ErrorInfo, Outcome
from multinode.runtime import runner as _runner
from multinode.runtime.environment import RequirementsInstallError, environment_python
from multinode.storage.package import (
    PackageIntegrityError,
    PackageNotFoundError,
    extract_package,
    read_package,
)
from temporal_workers.backends import (
    AttemptSession,
    ContainerBackend,
    InfrastructureError,
    attempt_environment,
    attempt_outcome,
)
from temporal_workers.backends.local.cgroups import Cgroup, CgroupLimiter
from temporal_workers.backends.local.forkserver import (
    FORK_SERVER_LOST,
    ForkedProcess,
    ForkServer,
    ForkServers,
)
from temporal_workers.settings import WorkerSettings

log = logging.getLogger("multinode.worker")

# How often the supervisor wakes to heartbeat when nothing else happens; cancellation reaches the
# activity only through heartbeat responses, so this bounds cancel latency.
TICK_SECONDS = 0.25
# Functions shorter than this never cost the workflow an extra task for the RUNNING transition:
# their start time still arrives with the outcome.
NOTIFY_STARTED_AFTER_SECONDS = 0.2
# Standby children kept at most, one per (environment, code, cpu, memory): the recently used ones.
MAX_STANDBYS = 16


class AttemptProcess(Protocol):
    """A spawned or forked attempt: a pid leading its own process group, and its exit code."""

    pid: int

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...


@dataclass
class FrameReader:
    """Collects the runner's frames; keeps only the latest progress."""

    progress: str | None = None
    has_progress: bool = False
    result: str | None = None
    has_result: bool = False
    error: ErrorInfo | None = None
    children: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def feed(self, line: bytes) -> None:
        try:
            frame = json.loads(line)
        except ValueError:
            return
        kind = frame.get("kind")
        if kind == "progress":
            self.progress, self.has_progress = frame["value"], True
            self.changed.set()  # the only news a heartbeat carries: the rest comes at the exit
        elif kind == "result":
            self.result, self.has_result = frame["value"], True
        elif kind == "child":
            self.children.append(str(frame["id"]))
        elif kind == "error":
            self.error = ErrorInfo(
                type=str(frame.get("type", "Exception")),
                message=str(frame.get("message", "")),
                traceback=frame.get("traceback"),
            )

    async def pump(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # a line over the stream limit: cannot be one of ours
                continue
            if not line:
                return
            self.feed(line)


@dataclass
class Standby:
    """A child forked ahead of the next attempt with these limits, already in its cgroups."""

    server: ForkServer
    process: ForkedProcess
    cgroup: Cgroup


StandbyKey = tuple[Path, Path, float, int]  # python, code, cpu, memory_mib


class LocalBackend(ContainerBackend):
    name = "local"

    def __init__(self, settings: WorkerSettings, limiter: CgroupLimiter | None = None) -> None:
        self._settings = settings
        self._limiter = limiter or CgroupLimiter()
        self._prepared: dict[tuple[str, str | None], tuple[Path, Path]] = {}
        self._prepare_locks: dict[tuple[str, str | None], asyncio.Lock] = {}
        self._running: set[AttemptProcess] = set()
        self._forks = ForkServers(_base_environment()) if settings.fork_server else None
        # Joining a cgroup costs a kernel RCU grace period (10-20 ms on a busy host): standbys
        # pay it between attempts instead of on the attempt's start.
        self._standbys: dict[StandbyKey, Standby] = {}
        self._replenishing: set[StandbyKey] = set()
        self._background: set[asyncio.Future[None]] = set()
        self._closed = False

    # ----- preparation --------------------------------------------------------------------

    def _prepare_sync(self, request: AttemptRequest) -> tuple[Path, Path]:
        invocation = request.invocation
        code_dir = self._settings.code_dir / invocation.package.sha256
        if not code_dir.exists():
            data = read_package(invocation.package.uri)
            code_dir.parent.mkdir(parents=True, exist_ok=True)
            extract_package(data, invocation.package.sha256, code_dir)
        python = environment_python(
            code_dir / "requirements.txt" if invocation.requirements_sha256 else None,
            invocation.requirements_sha256,
            self._settings.envs_dir,
            log=log.info,
        )
        return code_dir, python

    async def _prepare(self, request: AttemptRequest, session: AttemptSession) -> tuple[Path, Path]:
        invocation = request.invocation
        key = (invocation.package.sha256, invocation.requirements_sha256)
        if key in self._prepared:
            return self._prepared[key]
        lock = self._prepare_locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._prepared:
                task = asyncio.ensure_future(asyncio.to_thread(self._prepare_sync, request))
                while not task.done():  # a venv build can take a while: stay alive meanwhile
                    session.heartbeat(AttemptProgress(request.attempt_number, "preparing", None))
                    await asyncio.wait([task], timeout=1.0)
                self._prepared[key] = task.result()
        return self._prepared[key]

    # ----- one attempt --------------------------------------------------------------------

    async def run_attempt(self, request: AttemptRequest, session: AttemptSession) -> AttemptOutcome:
        try:
            code_dir, python = await self._prepare(request, session)
        except asyncio.CancelledError:
            if session.interruption() == "cancel":
                return attempt_outcome(Outcome.CANCELLED, None, started_at=None)
            raise
        except (PackageIntegrityError, PackageNotFoundError, RequirementsInstallError) as exc:
            # Permanent: retrying cannot help, and no user code has run.
            error = ErrorInfo(type=type(exc).__name__, message=str(exc))
            return attempt_outcome(Outcome.FAILED, None, started_at=None, error=error)
        except OSError as exc:
            raise InfrastructureError(f"preparing the attempt failed: {exc}") from exc
        return await self._launch_and_supervise(request, session, code_dir, python)

    def _attempt_dir(self, request: AttemptRequest) -> Path:
        directory = self._settings.runs_dir / request.invocation.invocation_id
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def _environment(self, request: AttemptRequest, code_dir: Path, input_path: Path) -> dict[str, str]:
        connection = self._settings.connection
        env = _base_environment()
        env.update(attempt_environment(request, connection))
        env.update({_runner.ENV_CODE_DIR: str(code_dir), _runner.ENV_INPUT_PATH: str(input_path)})
        if connection.api_key:
            env["MULTINODE_API_KEY"] = connection.api_key
        return env

    async def _launch_and_supervise(
        self, request: AttemptRequest, session: AttemptSession, code_dir: Path, python: Path
    ) -> AttemptOutcome:
        invocation = request.invocation
        attempt_dir = self._attempt_dir(request)
        input_path = attempt_dir / f"attempt-{request.attempt_number}.input.json"
        log_path = attempt_dir / f"attempt-{request.attempt_number}.log"
        input_path.write_text(json.dumps({"args": invocation.args, "kwargs": invocation.kwargs}))
        key: StandbyKey = (python, code_dir, invocation.options.cpu, invocation.options.memory_mib)
        standby = self._take_standby(key)
        cgroup = standby.cgroup if standby is not None else self._limiter.create(
            f"{invocation.invocation_id}-{request.attempt_number}",
            invocation.options.cpu,
            invocation.options.memory_mib,
        )
        self._replenish(key)
        try:
            return await self._run_process(request, session, code_dir, python, input_path, log_path,
                                           cgroup, standby)
        finally:
            if cgroup is not None:
                # Removing a cgroup can wait on the kernel as long as joining one: off the
                # attempt's path, in a thread.
                self._in_background(asyncio.to_thread(cgroup.remove))
            input_path.unlink(missing_ok=True)

    async def _run_process(
        self, request: AttemptRequest, session: AttemptSession, code_dir: Path, python: Path,
        input_path: Path, log_path: Path, cgroup: Cgroup | None, standby: Standby | None,
    ) -> AttemptOutcome:
        env = self._environment(request, code_dir, input_path)
        read_fd, write_fd = os.pipe()
        try:
            with open(log_path, "ab") as log_file:
                proc = await self._start_process(python, code_dir, env, log_file.fileno(), write_fd,
                                                 cgroup, standby)
        except BaseException as exc:
            os.close(read_fd)
            if isinstance(exc, OSError):
                raise InfrastructureError(f"starting the function's process failed: {exc}") from exc
            raise
        finally:
            os.close(write_fd)
        started_at = time.time()
        self._running.add(proc)
        frames = FrameReader()
        reader = asyncio.StreamReader(limit=2**24)
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb")
        )
        pump = asyncio.ensure_future(frames.pump(reader))
        reaped = False
        try:
            interrupt = await self._supervise(request, session, proc, frames, cgroup, started_at)
            # Every frame the process wrote is read before its ending is judged (the pipe's
            # writer is closed once the process and its group are gone).
            await _reap(proc, cgroup)
            reaped = True
            try:
                await asyncio.wait_for(asyncio.shield(pump), timeout=2.0)
            except TimeoutError:
                pass
            return self._outcome_of(request, proc, frames, interrupt, cgroup, started_at)
        finally:
            self._running.discard(proc)
            if not reaped:  # leaving abnormally: nothing may outlive the attempt
                if proc.returncode is None:
                    _kill_tree(proc, cgroup)
                await _reap(proc, cgroup)
            pump.cancel()
            transport.close()

    async def _start_process(
        self, python: Path, code_dir: Path, env: dict[str, str], log_fd: int, report_fd: int,
        cgroup: Cgroup | None, standby: Standby | None,
    ) -> AttemptProcess:
        """Start the standby, or fork the attempt from the version's fork server, or spawn it
        if there is none."""
        if standby is not None:
            try:
                if await standby.server.start_standby(standby.process, env, code_dir, log_fd, report_fd):
                    return standby.process
            except (TimeoutError, OSError) as exc:
                log.warning("standby process unavailable (%s); forking this attempt", exc)
        deferred_cpu = cgroup.deferred_cpu_procs if cgroup is not None else None
        if deferred_cpu is not None:
            env = {**env, _runner.ENV_CPU_CGROUP: str(deferred_cpu)}
        if self._forks is not None:
            procs = [cgroup.memory_dir / "cgroup.procs"] if cgroup and cgroup.memory_dir else []
            try:
                server = await self._forks.get(python, code_dir)
                return await server.spawn(env, code_dir, log_fd, report_fd, procs)
            except (TimeoutError, OSError) as exc:
                log.warning("fork server unavailable (%s); spawning this attempt", exc)
        env = {**env, _runner.ENV_REPORT_FD: str(report_fd)}
        return await asyncio.create_subprocess_exec(
            str(python), "-m", "multinode.runtime.runner",
            cwd=code_dir,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_fd,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            pass_fds=(report_fd,),
            preexec_fn=cgroup.join if cgroup else None,
        )

    # ----- standbys -----------------------------------------------------------------------

    def _take_standby(self, key: StandbyKey) -> Standby | None:
        standby = self._standbys.pop(key, None)
        if standby is not None and (standby.process.returncode is not None or not standby.server.alive):
            self._discard_standby(standby)
            return None
        return standby

    def _replenish(self, key: StandbyKey) -> None:
        """Fork the next attempt's standby in the background (only where cgroups are used:
        without them there is no join to hide)."""
        if self._forks is None or not self._limiter.enabled:
            return
        if key in self._standbys or key in self._replenishing:
            return
        self._replenishing.add(key)
        self._in_background(self._fork_standby(key))

    async def _fork_standby(self, key: StandbyKey) -> None:
        python, code_dir, cpu, memory_mib = key
        cgroup = None
        try:
            cgroup = self._limiter.create(f"standby-{os.urandom(6).hex()}", cpu, memory_mib)
            if cgroup is None or self._forks is None:
                return
            procs = [d / "cgroup.procs" for d in cgroup.dirs]
            server = await self._forks.get(python, code_dir)
            process = await server.standby(procs)
        except (TimeoutError, OSError) as exc:
            log.warning("could not prepare a standby process (%s)", exc)
            if cgroup is not None:
                cgroup.remove()
            return
        finally:
            self._replenishing.discard(key)
        self._standbys[key] = Standby(server, process, cgroup)
        if self._closed:
            self._discard_standby(self._standbys.pop(key))
        while len(self._standbys) > MAX_STANDBYS:  # dicts keep insertion order: oldest first
            self._discard_standby(self._standbys.pop(next(iter(self._standbys))))

    def _discard_standby(self, standby: Standby) -> None:
        _kill_tree(standby.process, standby.cgroup)

        async def remove_when_gone() -> None:
            await _reap(standby.process, standby.cgroup)
            standby.cgroup.remove()

        self._in_background(remove_when_gone())

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _supervise(
        self,
        request: AttemptRequest,
        session: AttemptSession,
        proc: AttemptProcess,
        frames: FrameReader,
        cgroup: Cgroup | None,
        started_at: float,
    ) -> str | None:
        """Watch the attempt until its process exits: heartbeats, the timeout, cancellation,
        the grace period and the kill. Returns what interrupted it, if anything."""
        options = request.invocation.options
        grace = self._settings.grace_period_seconds
        started = time.monotonic()
        deadline = started + options.timeout_seconds
        interrupt: str | None = None
        kill_at: float | None = None
        notified = False
        exited = asyncio.ensure_future(proc.wait())

        def heartbeat() -> None:
            phase = "running" if interrupt is None else "stopping"
            session.heartbeat(
                AttemptProgress(
                    request.attempt_number, phase, started_at, frames.progress, frames.has_progress
                )
            )

        def interrupt_with(kind: str, signum: int) -> None:
            nonlocal interrupt, kill_at
            interrupt, kill_at = kind, time.monotonic() + grace
            _signal(proc, signum)

        # No heartbeat before the first tick or progress, nor after the exit (the outcome says
        # it all): an attempt that ends within a tick costs the control plane no write for one.
        while not exited.done():
            now = time.monotonic()
            wake = now + TICK_SECONDS
            if interrupt is None:
                wake = min(wake, deadline)
            elif kill_at is not None:
                wake = min(wake, kill_at)
            changed = asyncio.ensure_future(frames.changed.wait())
            try:
                await asyncio.wait([exited, changed], timeout=max(0.0, wake - now),
                                   return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                reason = session.interruption()
                if reason != "cancel":
                    # The engine gave up on this attempt (worker shutting down, or it timed the
                    # attempt out): stop now, the engine runs it again elsewhere.
                    _kill_tree(proc, cgroup)
                    await _reap(proc, cgroup)
                    raise InfrastructureError(f"attempt interrupted by the engine ({reason})") from None
                if interrupt is None:
                    interrupt_with("cancel", signal.SIGTERM)
            finally:
                changed.cancel()
            frames.changed.clear()
            now = time.monotonic()
            if interrupt is None and now >= deadline:
                interrupt_with("timeout", signal.SIGUSR1)
            if kill_at is not None and now >= kill_at:
                _kill_tree(proc, cgroup)
                kill_at = None
            if not notified and interrupt is None and now - started >= NOTIFY_STARTED_AFTER_SECONDS:
                notified = True
                self._in_background(session.notify_started(started_at))
            if not exited.done():
                heartbeat()
        return interrupt

    def _outcome_of(
        self, request: AttemptRequest, proc: AttemptProcess, frames: FrameReader,
        interrupt: str | None, cgroup: Cgroup | None, started_at: float,
    ) -> AttemptOutcome:
        if proc.returncode == FORK_SERVER_LOST:
            raise InfrastructureError("the fork server holding the attempt exited")
        outcome = _classify(request, proc.returncode, frames, interrupt, cgroup, started_at)
        return dataclasses.replace(outcome, children=list(frames.children))

    async def close(self) -> None:
        self._closed = True
        for proc in list(self._running):
            _kill_tree(proc, None)
        for standby in self._standbys.values():
            self._discard_standby(standby)
        self._standbys.clear()
        if self._background:
            await asyncio.wait(list(self._background), timeout=5)
        if self._forks is not None:
            await self._forks.close()


def _base_environment() -> dict[str, str]:
    """What a function's process inherits from the worker's environment: nothing secret."""
    return {
        name: os.environ[name]
        for name in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")
        if name in os.environ
    }


def _signal(proc: AttemptProcess, signum: int) -> None:
    try:
        os.kill(proc.pid, signum)
    except ProcessLookupError:
        pass


def _kill_tree(proc: AttemptProcess, cgroup: Cgroup | None) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if cgroup is not None:
        cgroup.kill_all()


async def _reap(proc: AttemptProcess, cgroup: Cgroup | None) -> None:
    """Make sure nothing of the attempt survives: the process, its group, its cgroup."""
    if proc.returncode is None:
        await proc.wait()
    _kill_tree(proc, cgroup)
    if cgroup is not None:
        for _ in range(50):
            if not cgroup.pids():
                break
            await asyncio.sleep(0.01)




def _classify(
    request: AttemptRequest,
    returncode: int | None,
    frames: FrameReader,
    interrupt: str | None,
    cgroup: Cgroup | None,
    started_at: float,
) -> AttemptOutcome:
    # What the caller keeps as `.result` when the attempt did not succeed: the latest yield.
    last, has_last = frames.progress, frames.has_progress
    if interrupt == "cancel":
        return attempt_outcome(Outcome.CANCELLED, last, has_value=has_last, started_at=started_at,
                        exit_code=returncode)
    if interrupt == "timeout":
        timeout = request.invocation.options.timeout_seconds
        error = ErrorInfo(type="InvocationTimedOutError",
                          message=f"the attempt ran past its timeout of {timeout:g} s")
        return attempt_outcome(Outcome.TIMED_OUT, last, has_value=has_last, started_at=started_at,
                        error=error, exit_code=returncode)
    if frames.error is not None:
        return attempt_outcome(Outcome.FAILED, last, has_value=has_last, started_at=started_at,
                        error=frames.error, exit_code=returncode)
    if frames.has_result and returncode == 0:
        return attempt_outcome(Outcome.SUCCEEDED, frames.result, has_value=True, started_at=started_at,
                        exit_code=0)
    return attempt_outcome(Outcome.FAILED, last, has_value=has_last, started_at=started_at,
                    error=_crash_error(request, returncode, cgroup), exit_code=returncode)


def _crash_error(request: AttemptRequest, returncode: int | None, cgroup: Cgroup | None) -> ErrorInfo:
    if cgroup is not None and cgroup.oom_killed():
        memory = format_memory(request.invocation.options.memory_mib)
        return ErrorInfo(type="MemoryLimitExceeded", message=f"killed: memory limit of {memory} exceeded")
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return ErrorInfo(type="ProcessKilled", message=f"exit code {returncode} (killed by {name})")
    if returncode == 0:
        return ErrorInfo(type="ProcessExited",
                         message="the function's process exited (code 0) without reporting a result")
    return ErrorInfo(type="ProcessExited", message=f"exit code {returncode}")


