"""The local process backend: each attempt is a fresh process on this machine.

A real container stand-in: the version's code unpacked once, its requirements in a cached
virtual environment, the `.env` loaded by the function's process only, its own process group
(and cgroup where available), stdout and stderr in a per-attempt log file.

This module prepares versions and launches attempts (a standby, a fork from the version's fork
server, or a spawn); `supervisor` watches each attempt's process and classifies its end,
`standby` keeps children forked ahead, `process` signals and reaps.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from multinode.contract.connection import attempt_log_path, connection_environment
from multinode.contract.log_location import log_location
from multinode.contract.records import AttemptOutcome, AttemptProgress, AttemptRequest, Outcome, PackageRef
from multinode.contract.service_state import ServiceExit, ServiceRun
from multinode.runtime import runner as _runner
from multinode.runtime.preparation import PERMANENT_ERRORS, PreparedVersion, prepare_version
from multinode.storage.secrets import read_secrets
from temporal_workers.backends import (
    AttemptSession,
    ContainerBackend,
    InfrastructureError,
    ServiceSession,
    attempt_environment,
)
from temporal_workers.backends.local.cgroups import Cgroup, CgroupLimiter
from temporal_workers.backends.local.forkserver import ForkServers
from temporal_workers.backends.local.process import AttemptProcess, base_environment, kill_tree
from temporal_workers.backends.local.standby import Standby, StandbyKey, StandbyPool
from temporal_workers.backends.local.supervisor import AttemptSupervisor
from temporal_workers.backends.outcome import attempt_outcome
from temporal_workers.metrics import NO_METRICS, WorkerMetrics
from temporal_workers.settings import WorkerSettings

log = logging.getLogger("multinode.worker")


class _LocatedSession:
    """The attempt's session, its heartbeats telling where the attempt's log file is (so
    `multinode logs --follow` on another machine can say where to look while it runs)."""

    def __init__(self, session: AttemptSession, logs_at: str) -> None:
        self._session = session
        self._logs_at = logs_at

    def heartbeat(self, progress: AttemptProgress) -> None:
        self._session.heartbeat(dataclasses.replace(progress, logs_at=self._logs_at))

    async def notify_started(self, started_at: float) -> None:
        await self._session.notify_started(started_at)

    def interruption(self) -> str:
        return self._session.interruption()


class LocalBackend(ContainerBackend):
    name = "local"

    def __init__(
        self, settings: WorkerSettings, limiter: CgroupLimiter | None = None, metrics: WorkerMetrics = NO_METRICS
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._limiter = limiter or CgroupLimiter()
        self._prepared: dict[tuple[str, str | None], PreparedVersion] = {}
        self._secrets_read: dict[str, dict[str, str]] = {}
        self._preparing: dict[tuple[str, str | None], asyncio.Future[PreparedVersion]] = {}
        self._running: set[AttemptProcess] = set()
        self._background: set[asyncio.Future[None]] = set()
        self._forks = (
            ForkServers(base_environment(), on_start=metrics.fork_server_started) if settings.fork_server else None
        )
        self._standbys = (
            StandbyPool(self._forks, self._limiter, self._in_background) if self._forks is not None else None
        )

    # ----- preparation --------------------------------------------------------------------

    def _prepare_sync(self, package: PackageRef, requirements_sha256: str | None) -> PreparedVersion:
        return prepare_version(
            package.uri, package.sha256, requirements_sha256,
            code_root=self._settings.code_dir, envs_root=self._settings.envs_dir, log=log.info,
            on_build=self._metrics.environment_built,
        )

    async def _prepare(self, request: AttemptRequest, session: AttemptSession) -> PreparedVersion:
        """The version prepared once per worker: attempts that arrive while it is being prepared
        wait for the same preparation. Every waiter heartbeats meanwhile: a fetch from a remote
        store or a venv build can outlast the heartbeat timeout, and an attempt gone quiet would
        be run again elsewhere while this one goes on."""
        invocation = request.invocation
        return await self.prepare(
            invocation.package, invocation.requirements_sha256,
            lambda: session.heartbeat(AttemptProgress(request.attempt_number, "preparing", None)),
        )

    async def prepare(
        self, package: PackageRef, requirements_sha256: str | None, beat: Callable[[], None]
    ) -> PreparedVersion:
        """The version's code and environment, prepared once per worker; `beat` keeps the caller
        alive while a venv builds."""
        key = (package.sha256, requirements_sha256)
        if key in self._prepared:
            return self._prepared[key]
        preparing = self._preparing.get(key)
        if preparing is None:
            preparing = asyncio.ensure_future(asyncio.to_thread(self._prepare_sync, package, requirements_sha256))
            self._preparing[key] = preparing
            # A failed preparation is tried again by the next attempt that needs it.
            preparing.add_done_callback(lambda _: self._preparing.pop(key, None))
        while not preparing.done():
            beat()
            # Not cancelled with this waiter: the others (and the cache) still want it.
            await asyncio.wait([preparing], timeout=1.0)
        self._prepared[key] = preparing.result()
        return self._prepared[key]

    # ----- one attempt --------------------------------------------------------------------

    async def run_attempt(self, request: AttemptRequest, session: AttemptSession) -> AttemptOutcome:
        """Raises one of `PERMANENT_ERRORS` when the version cannot be prepared: the activity
        fails the invocation with it, without another attempt."""
        try:
            version = await self._prepare(request, session)
            secrets = await self._secrets(request.invocation.secrets_uri)
        except asyncio.CancelledError:
            if session.interruption() == "cancel":
                return attempt_outcome(Outcome.CANCELLED, None, started_at=None)
            raise
        except OSError as exc:
            raise InfrastructureError(f"preparing the attempt failed: {exc}") from exc
        return await self._launch_and_supervise(request, session, version.code_dir, version.python, secrets)

    async def _secrets(self, uri: str | None) -> dict[str, str]:
        """The project's `.env`, read by the worker (which knows the attempt's project) from its
        own object, never from the package; once per version."""
        if uri is None:
            return {}
        if uri not in self._secrets_read:
            self._secrets_read[uri] = await asyncio.to_thread(read_secrets, uri)
        return self._secrets_read[uri]

    def _runs_dir(self) -> Path:
        directory = self._settings.runs_dir
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def _environment(self, request: AttemptRequest, code_dir: Path, input_path: Path,
                     secrets: dict[str, str]) -> dict[str, str]:
        connection = self._settings.connection
        env = base_environment()
        env.update(attempt_environment(request, connection))
        env.update({_runner.ENV_CODE_DIR: str(code_dir), _runner.ENV_INPUT_PATH: str(input_path)})
        env.update(connection_environment(connection)[1])  # the key and TLS material
        # As the runner loads a package's own .env: it never replaces what the worker set.
        return {**secrets, **env}

    async def _launch_and_supervise(
        self, request: AttemptRequest, session: AttemptSession, code_dir: Path, python: Path,
        secrets: dict[str, str],
    ) -> AttemptOutcome:
        invocation = request.invocation
        log_path = attempt_log_path(self._runs_dir(), invocation.invocation_id, request.attempt_number)
        input_path = log_path.with_suffix(".input.json")
        input_path.write_text(json.dumps({"args": invocation.args, "kwargs": invocation.kwargs}))
        key: StandbyKey = (python, code_dir, invocation.options.cpu, invocation.options.memory_mib)
        standby = self._standbys.take(key) if self._standbys is not None else None
        cgroup = standby.cgroup if standby is not None else self._limiter.create(
            f"{invocation.invocation_id}-{request.attempt_number}",
            invocation.options.cpu,
            invocation.options.memory_mib,
        )
        if self._standbys is not None:
            self._standbys.replenish(key)
        try:
            return await self._run_process(request, session, code_dir, python, input_path, log_path,
                                           cgroup, standby, secrets)
        finally:
            if cgroup is not None:
                # Removing a cgroup can wait on the kernel as long as joining one: off the
                # attempt's path, in a thread.
                self._in_background(asyncio.to_thread(cgroup.remove))
            input_path.unlink(missing_ok=True)

    async def _run_process(
        self, request: AttemptRequest, session: AttemptSession, code_dir: Path, python: Path,
        input_path: Path, log_path: Path, cgroup: Cgroup | None, standby: Standby | None,
        secrets: dict[str, str],
    ) -> AttemptOutcome:
        env = self._environment(request, code_dir, input_path, secrets)
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
        logs_at = log_location(log_path)
        supervisor = AttemptSupervisor(request, _LocatedSession(session, logs_at), proc, cgroup, started_at,
                                       self._settings.grace_period_seconds, self._in_background)
        try:
            return dataclasses.replace(await supervisor.run(read_fd), logs_at=logs_at)
        finally:
            self._running.discard(proc)

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

    # ----- services -----------------------------------------------------------------------

    async def run_service(self, run: ServiceRun, session: ServiceSession) -> ServiceExit:
        from temporal_workers.backends.local.services import LocalServiceRun

        target = run.target
        try:
            version = await self.prepare(target.package, target.requirements_sha256, session.heartbeat)
        except PERMANENT_ERRORS as exc:
            return ServiceExit(ended_at=time.time(), start_error=f"its version cannot be prepared: {exc}")
        except OSError as exc:
            raise InfrastructureError(f"preparing the service failed: {exc}") from exc
        return await LocalServiceRun(run, session, self._settings, self._limiter, version).run()

    # ----- data ---------------------------------------------------------------------------

    async def forget(self, invocation_id: str) -> None:
        await asyncio.to_thread(_forget_runs, self._settings.runs_dir, invocation_id)

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        for proc in list(self._running):
            kill_tree(proc, None)
        if self._standbys is not None:
            self._standbys.close()
        if self._background:
            await asyncio.wait(list(self._background), timeout=5)
        if self._forks is not None:
            await self._forks.close()


def _forget_runs(runs_dir: Path, invocation_id: str) -> None:
    """The invocation's attempt logs and inputs: flat files `<id>.attempt-<n>.*`, and the folder
    per invocation that earlier versions wrote."""
    for path in runs_dir.glob(f"{invocation_id}.attempt-*"):
        path.unlink(missing_ok=True)
    shutil.rmtree(runs_dir / invocation_id, ignore_errors=True)
