"""The harness: the sizes of a run, the control plane under test (a dev server with the
`multinode dev` tuning and one Multinode worker), the guard that abandons a stalled stage, and
the SDK calls every Multinode measurement goes through (failures counted, not raised)."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

BENCHMARKS = Path(__file__).resolve().parent.parent
REPO = BENCHMARKS.parent
T = TypeVar("T")

TASKS = BENCHMARKS / "tasks"
PROJECT = "bench"
STAGE_TIMEOUT_SECONDS = 900.0
# A long stage with no new result for this long is declared stalled and abandoned.
STALL_SECONDS = 90.0
NAN = math.nan

# `.start` is measured twice. Alone: each invocation ends before the next start, so the figure is
# the call's own latency. In bursts: starts back to back while the batch's invocations run (the
# server and the two cores are busy with them); batches, because starting far more invocations
# than finish meanwhile would measure a growing backlog. The floor does the same both ways.
START_BATCH = 50


@dataclass(frozen=True)
class Sizes:
    warmup: int
    calls: int  # sequential samples: call_remote, the floors, .start, .get
    map_items: int
    fanout: int
    fanout_seconds: float
    fanout_limit: int  # must be the max_concurrency of benchmarks/tasks' sleep_limit_<N>
    list_samples: int
    ticks: int
    tick_interval: float
    cancel_samples: int


FULL = Sizes(warmup=10, calls=200, map_items=1000, fanout=100, fanout_seconds=1.0, fanout_limit=10,
             list_samples=50, ticks=40, tick_interval=0.5, cancel_samples=20)
QUICK = Sizes(warmup=2, calls=5, map_items=20, fanout=4, fanout_seconds=0.2, fanout_limit=2,
              list_samples=5, ticks=4, tick_interval=0.3, cancel_samples=3)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def wait_for(predicate: Callable[[], T], what: str, timeout: float = 60.0, interval: float = 0.005) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)


# ----- the control plane under test ----------------------------------------------------------


@dataclass
class Plane:
    home: Path
    address: str
    namespace: str
    worker: subprocess.Popen[bytes]
    server_pid: int

    @property
    def worker_log(self) -> Path:
        return self.home / "worker.log"


@contextmanager
def control_plane(worker_settings: dict[str, str] | None = None) -> Iterator[Plane]:
    """Dev server (the `multinode dev` tuning) + one Multinode worker with default settings
    (or these `MULTINODE_*` overrides)."""
    from multinode import _client
    from multinode.admin.devserver import DevServer, DevServerConfig
    from multinode.testing.control_plane import free_port_block

    home = Path(tempfile.mkdtemp(prefix="multinode-bench-"))
    config = DevServerConfig(home=home, port=free_port_block(), headless=True)
    # The SDK and the worker read these; nothing else of the caller's environment may leak in.
    for name in [n for n in os.environ if n.startswith("MULTINODE_")]:
        del os.environ[name]
    os.environ.update({
        "MULTINODE_HOME": str(home),
        "MULTINODE_API_URL": config.address,
        "MULTINODE_TASK_QUEUE": f"bench-{uuid.uuid4().hex[:8]}",
        **(worker_settings or {}),
    })
    _client.set_default_client(None)
    server = DevServer(config).start()
    worker: subprocess.Popen[bytes] | None = None
    try:
        with open(home / "worker.log", "ab") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "temporal_workers"], cwd=REPO, env=dict(os.environ),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        assert server.process is not None
        yield Plane(home, config.address, config.namespace, worker, server.process.pid)
    except BaseException:
        # The home (and the worker's log) is removed below: show the log's end first.
        tail = (home / "worker.log").read_text(errors="replace")[-4000:]
        print(f"--- worker log (end) ---\n{tail}", file=sys.stderr)
        raise
    finally:
        if worker is not None:
            stop_process(worker)
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


def stop_process(process: subprocess.Popen[Any]) -> None:
    from multinode.testing.control_plane import stop_process as stop

    stop(process)


# ----- the SDK, as every Multinode measurement calls it ------------------------------------


class Failures:
    """Invocations that failed during the run: counted (a figure of its own) and, for the first
    few, the end of the attempt's log, read before the temporary home is removed."""

    KEEP = 5

    def __init__(self) -> None:
        self.home: Path | None = None
        self.count = 0
        self.examples: list[dict[str, str]] = []

    def record(self, error: BaseException) -> None:
        self.count += 1
        if len(self.examples) >= self.KEEP:
            return
        invocation_id = getattr(error, "invocation_id", None) or ""
        logs = sorted((self.home / "runs").glob(f"{invocation_id}.attempt-*.log")) if self.home and invocation_id else []
        tail = logs[-1].read_text(errors="replace")[-2000:] if logs else ""
        self.examples.append({"invocation_id": invocation_id, "error": str(error)[:2000], "attempt_log": tail})
        log(f"an invocation failed ({self.count} so far): {str(error)[:300]}")


FAILURES = Failures()


def outcome_of(action: Callable[[], T]) -> T | None:
    """The action's result, or None after recording a failed invocation."""
    from multinode.errors import InvocationFailedError

    try:
        return action()
    except InvocationFailedError as exc:
        FAILURES.record(exc)
        return None


def fn(name: str) -> Any:
    import multinode as mn

    return mn.get_deployed_function(PROJECT, name)


def mn_engine_run(coro_factory: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine against the SDK's own Temporal client (for history and raw reads)."""
    from multinode._client import default_client

    client = default_client()

    async def go() -> T:
        return await coro_factory((await client.engine()).client)

    return client.run(go())


# ----- a stage that may stall ----------------------------------------------------------------


class Progress:
    """Results a long stage has received so far: how its guard tells slow from stalled."""

    def __init__(self) -> None:
        self.done = 0
        self.started = time.perf_counter()

    def tick(self) -> None:
        self.done += 1


def guarded(action: Callable[[], T], progress: Progress, stall_seconds: float) -> T | None:
    """Run a stage in a daemon thread; None when no result arrived for `stall_seconds` (the
    thread is then abandoned: a stalled worker would hang the benchmark forever otherwise)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = action()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="bench-stage", daemon=True)
    thread.start()
    seen, changed = progress.done, time.monotonic()
    while thread.is_alive():
        thread.join(1.0)
        if progress.done != seen:
            seen, changed = progress.done, time.monotonic()
        elif time.monotonic() - changed > stall_seconds:
            return None
    if "error" in box:
        raise box["error"]
    result: T = box["result"]
    return result


def exit_with(main: Callable[[], int]) -> None:
    """Run a benchmark's `main` and leave the process with its code, printing what it raised.
    A hard exit: the Temporal client's native threads can crash interpreter teardown
    (sdk-python issue 300)."""
    import traceback

    try:
        code = main()
    except BaseException:  # reported here, then the hard exit below
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
