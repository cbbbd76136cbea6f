"""The function image's entrypoint: `python -m multinode.runtime.fargate_container`, one per ECS task.

It does in the container what the local backend does on the worker's machine: fetch the
version's package (checked against its sha256 before anything is unpacked), unpack its
requirements' prebuilt environment (`multinode.runtime.environment_archive`; built from the index
only when the deploy stored none), fetch the attempt's arguments, and run `python -m multinode.runtime.runner` in its own
process group with a report pipe. The worker cannot reach it, so it reports through S3 (see
`multinode.runtime.fargate_run`): the latest progress while it runs, the outcome at the end.

StopTask arrives as SIGTERM. Before the attempt's deadline that is a cancel and is passed on as
SIGTERM; after it, the worker stopped the task for its timeout, so the function gets SIGUSR1.
The function's process group is killed after the grace period, which is shorter than Fargate's
stop timeout so that the outcome is still uploaded before the SIGKILL.

The function image ships `multinode` without the worker: this imports neither temporal_workers
nor temporalio (boto3 it does, for the bucket).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from botocore.exceptions import BotoCoreError, ClientError

from multinode.contract.connection import CONNECTION_VARIABLES, multinode_home
from multinode.runtime import runner as _runner
from multinode.runtime.environment_archive import python_path, unpack_prebuilt
from multinode.runtime.fargate_run import (
    ENV_GRACE_PERIOD_SECONDS,
    ENV_PACKAGE_SHA256,
    ENV_PACKAGE_URI,
    ENV_PROGRESS_INTERVAL_SECONDS,
    ENV_REQUIREMENTS_SHA256,
    ENV_RUN_TOKEN,
    ENV_RUN_URI,
    ENV_TIMEOUT_SECONDS,
    EXIT_INFRASTRUCTURE,
    INPUT_NAME,
    MAX_CONTAINER_GRACE_SECONDS,
    OUTCOME_NAME,
    PROGRESS_INTERVAL_SECONDS,
    PROGRESS_NAME,
    RunLocation,
)
from multinode.runtime.frames import FrameReader
from multinode.runtime.object_store import ObjectStore
from multinode.runtime.preparation import PERMANENT_ERRORS, prepare_version
from multinode.storage.secrets import secrets_from_environ

UPLOAD_TRIES = 4
# How long past the attempt's timeout the container stops its function by itself if no worker
# has: the worker stops it at the timeout, counted from when it saw the task running.
OWN_DEADLINE_MARGIN_SECONDS = 30.0
# Passed through to the function: its locale and paths, and the task's own AWS identity.
_PASSED_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")
_PASSED_PREFIXES = ("AWS_", "ECS_")
# The connection (the task definition's secrets give the key and TLS material) and who it is.
_CONNECTION_VARIABLES = (
    *CONNECTION_VARIABLES,
    "MULTINODE_PROJECT", "MULTINODE_VERSION_ID", "MULTINODE_INVOCATION_ID", "MULTINODE_ATTEMPT",
)

# Errors of the infrastructure around the function: the engine runs the attempt again.
_INFRASTRUCTURE_ERRORS = (ClientError, BotoCoreError, OSError, ValueError, TypeError)


def _say(message: str) -> None:
    print(f"multinode: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class ContainerConfig:
    function: str
    package_uri: str
    package_sha256: str
    requirements_sha256: str | None
    location: RunLocation
    token: str
    timeout_seconds: float
    grace_seconds: float
    invocation_id: str
    progress_interval_seconds: float
    attempt: str
    home: Path

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ContainerConfig:
        grace = float(environ.get(ENV_GRACE_PERIOD_SECONDS) or MAX_CONTAINER_GRACE_SECONDS)
        return cls(
            function=environ[_runner.ENV_FUNCTION],
            package_uri=environ[ENV_PACKAGE_URI],
            package_sha256=environ[ENV_PACKAGE_SHA256],
            requirements_sha256=environ.get(ENV_REQUIREMENTS_SHA256) or None,
            location=RunLocation.from_uri(environ[ENV_RUN_URI]),
            token=environ[ENV_RUN_TOKEN],
            timeout_seconds=float(environ[ENV_TIMEOUT_SECONDS]),
            grace_seconds=min(grace, MAX_CONTAINER_GRACE_SECONDS),
            invocation_id=environ["MULTINODE_INVOCATION_ID"],
            # The worker's cadence; a changed yield is written at most this often.
            progress_interval_seconds=float(
                environ.get(ENV_PROGRESS_INTERVAL_SECONDS) or PROGRESS_INTERVAL_SECONDS
            ),
            attempt=environ["MULTINODE_ATTEMPT"],
            home=multinode_home(),
        )


class Frames:
    """The runner's frames, read on a thread while the progress loop looks at them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reader = FrameReader()

    def pump(self, fd: int) -> None:
        with os.fdopen(fd, "rb") as pipe:
            for line in pipe:
                with self.lock:
                    self.reader.feed(line)

    def latest_progress(self) -> tuple[int, str | None]:
        with self.lock:
            return self.reader.progress_version, self.reader.progress


class _StoppedBeforeStart(Exception):
    """SIGTERM arrived before the function was started: nothing to pass it to."""


def process_started() -> float:
    """When this process started, on the monotonic clock.

    The attempt's deadline counts from here, not from after the imports: the worker counts
    from when it sees the task RUNNING, which is never earlier, so when it stops the task for
    the timeout the container agrees that the deadline has passed.
    """
    try:
        with open("/proc/self/stat") as stat:
            # Fields after the command name; the start time (field 22) is the 20th of them.
            start_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as uptime:
            seconds_since_boot = float(uptime.read().split()[0])
    except (OSError, ValueError, IndexError):
        return time.monotonic()
    age = seconds_since_boot - start_ticks / os.sysconf("SC_CLK_TCK")
    return time.monotonic() - max(0.0, age)


class StopHandler:
    """Turns the task's SIGTERM into the runner's cancel or timeout signal."""

    def __init__(self, started: float, config: ContainerConfig) -> None:
        self.deadline = started + config.timeout_seconds
        self.grace = config.grace_seconds
        self.process: subprocess.Popen[bytes] | None = None
        self.kill_at: float | None = None

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self.on_sigterm)

    def expire_if_due(self, now: float) -> None:
        """The container's own deadline: a safety net for a task no worker stops any more (its
        worker died). Well after the worker's own, which counts from later and wins whenever
        the worker lives: the function sees the timeout, then the kill after the grace."""
        if self.process is None or self.kill_at is not None or now < self.deadline + OWN_DEADLINE_MARGIN_SECONDS:
            return
        _say("the attempt's timeout has passed and no worker stopped it: stopping it here")
        self.kill_at = now + self.grace
        try:
            os.kill(self.process.pid, signal.SIGUSR1)
        except ProcessLookupError:
            pass

    def on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        if self.process is None:
            raise _StoppedBeforeStart
        if self.kill_at is not None:
            return
        timed_out = time.monotonic() >= self.deadline
        self.kill_at = time.monotonic() + self.grace
        try:
            os.kill(self.process.pid, signal.SIGUSR1 if timed_out else signal.SIGTERM)
        except ProcessLookupError:
            pass


class Uploader:
    """Puts the run's documents, each stamped with the run's token."""

    def __init__(self, store: ObjectStore, config: ContainerConfig) -> None:
        self.store = store
        self.config = config

    def put(self, name: str, document: dict[str, Any]) -> None:
        location = self.config.location
        stamped = {"token": self.config.token, **document}
        for attempt in range(UPLOAD_TRIES):
            try:
                self.store.put_json(location.bucket, location.key(name), stamped)
                return
            except (ClientError, BotoCoreError):
                if attempt == UPLOAD_TRIES - 1:
                    raise
                time.sleep(0.5 * 2**attempt)

    def progress_loop(self, frames: Frames, done: threading.Event) -> None:
        sent = 0
        while True:
            finished = done.wait(self.config.progress_interval_seconds)
            version, value = frames.latest_progress()
            if version != sent:
                try:
                    self.put(PROGRESS_NAME, {"value": value})
                    sent = version
                except (ClientError, BotoCoreError) as exc:
                    _say(f"progress upload failed (the outcome still carries it): {exc}")
            if finished:
                return


@dataclass(frozen=True)
class Prepared:
    code_dir: Path
    python: Path
    input_path: Path
    site: Path | None  # the prebuilt environment, on the function's PYTHONPATH


def _prepare(config: ContainerConfig, store: ObjectStore) -> Prepared:
    """Unpack the code and its prebuilt environment (or build one), and fetch the arguments."""
    started = time.monotonic()
    envs_root = config.home / "envs"
    site = None
    if config.requirements_sha256:
        site = unpack_prebuilt(config.package_uri, config.requirements_sha256, envs_root, _say)
    version = prepare_version(
        config.package_uri, config.package_sha256, None if site else config.requirements_sha256,
        code_root=config.home / "code", envs_root=envs_root, log=_say,
    )
    arguments = store.get_json(config.location.bucket, config.location.key(INPUT_NAME))
    if arguments is None:
        raise ValueError(f"the arguments are missing at {config.location.uri}{INPUT_NAME}")
    input_path = config.home / "runs" / config.invocation_id / f"attempt-{config.attempt}.input.json"
    input_path.parent.mkdir(parents=True, exist_ok=True)
    input_path.write_text(json.dumps(arguments))
    _say(f"the attempt was set up in {time.monotonic() - started:.2f} s")
    return Prepared(version.code_dir, version.python, input_path, site)


def passed_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """What the container passes on to the user's process: its locale and paths, the task's AWS
    identity, the connection and who it is (a service's entrypoint passes the same)."""
    env = {name: environ[name] for name in _PASSED_VARIABLES if name in environ}
    env.update({name: value for name, value in environ.items() if name.startswith(_PASSED_PREFIXES)})
    env.update({name: environ[name] for name in _CONNECTION_VARIABLES if name in environ})
    return env


def _runner_environment(environ: Mapping[str, str], config: ContainerConfig,
                        prepared: Prepared) -> dict[str, str]:
    env = passed_environment(environ)
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            _runner.ENV_FUNCTION: config.function,
            _runner.ENV_CODE_DIR: str(prepared.code_dir),
            _runner.ENV_INPUT_PATH: str(prepared.input_path),
        }
    )
    if prepared.site is not None:
        env["PYTHONPATH"] = python_path(prepared.site, environ)
    # The project's .env, from the environment file ECS read with the execution role; like the
    # runner's own .env loading, it never replaces what the container set.
    for name, value in secrets_from_environ(environ).items():
        env.setdefault(name, value)
    return env


def _start_runner(python: Path, code_dir: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    read_fd, write_fd = os.pipe()
    env = {**env, _runner.ENV_REPORT_FD: str(write_fd)}
    try:
        # Its output is this container's output, which the awslogs driver ships to CloudWatch.
        process = subprocess.Popen(
            [str(python), "-m", "multinode.runtime.runner"],
            cwd=code_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=(write_fd,),
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return process, read_fd


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _wait(process: subprocess.Popen[bytes], stop: StopHandler) -> int:
    while True:
        try:
            return process.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            pass
        stop.expire_if_due(time.monotonic())
        if stop.kill_at is not None and time.monotonic() >= stop.kill_at:
            _kill_group(process)


def _exit_code(returncode: int) -> int:
    # A container reports death by signal N as 128 + N; keep that convention.
    return 128 - returncode if returncode < 0 else returncode


def run_function(config: ContainerConfig, store: ObjectStore, stop: StopHandler,
                 prepared: Prepared) -> int:
    uploader = Uploader(store, config)
    frames = Frames()
    env = _runner_environment(os.environ, config, prepared)
    process, read_fd = _start_runner(prepared.python, prepared.code_dir, env)
    stop.process = process
    started_at = time.time()
    reader = threading.Thread(target=frames.pump, args=(read_fd,), name="frames", daemon=True)
    reader.start()
    done = threading.Event()
    progress = threading.Thread(target=uploader.progress_loop, args=(frames, done), daemon=True)
    progress.start()
    code = _exit_code(_wait(process, stop))
    _kill_group(process)  # nothing the function started outlives it
    reader.join(timeout=2.0)
    done.set()
    progress.join(timeout=10.0)
    with frames.lock:
        said = frames.reader
        outcome = {
            "exit_code": code,
            "started_at": started_at,
            "result": said.result,
            "has_result": said.has_result,
            "error": said.error,
            "progress": said.progress,
            "has_progress": said.has_progress,
        }
    try:
        uploader.put(OUTCOME_NAME, outcome)
    except (ClientError, BotoCoreError) as exc:
        # Without its outcome the worker cannot tell what happened: let the engine run it again.
        _say(f"the outcome could not be uploaded: {exc}")
        return EXIT_INFRASTRUCTURE
    return code


def _report_failure(config: ContainerConfig, store: ObjectStore, document: dict[str, Any]) -> None:
    try:
        Uploader(store, config).put(OUTCOME_NAME, document)
    except (ClientError, BotoCoreError) as exc:
        _say(f"the outcome could not be uploaded: {exc}")


def run(config: ContainerConfig, store: ObjectStore, stop: StopHandler) -> int:
    try:
        prepared = _prepare(config, store)
    except PERMANENT_ERRORS as exc:
        _say(f"{type(exc).__name__}: {exc}")
        error = {"type": type(exc).__name__, "message": str(exc), "traceback": None}
        _report_failure(config, store, {"exit_code": 1, "error": error})
        return 1
    except _INFRASTRUCTURE_ERRORS as exc:
        _say(f"preparing the attempt failed: {type(exc).__name__}: {exc}")
        _report_failure(config, store, {"exit_code": EXIT_INFRASTRUCTURE, "infrastructure": str(exc)})
        return EXIT_INFRASTRUCTURE
    return run_function(config, store, stop, prepared)


def main() -> NoReturn:
    started = process_started()
    config = ContainerConfig.from_environ(os.environ)
    stop = StopHandler(started, config)
    stop.install()
    try:
        code = run(config, ObjectStore.connect(), stop)
    except _StoppedBeforeStart:
        _say("stopped before the function started")
        code = 128 + signal.SIGTERM
    sys.stdout.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
