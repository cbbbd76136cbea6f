"""Multinode's benchmark (issue 7): every figure beside its floor, measured in one run.

    python benchmarks/bench.py [--quick] [--calls N] [--map-items N] [--fanout N] [--json PATH]

It starts its own Temporal dev server (the exact `multinode dev` tuning, on free ports, in a
temporary home) and a Multinode worker (`python -m temporal_workers`, default settings, a fresh
task queue), deploys `benchmarks/tasks` and measures the public API. In the same run and on the
same server it measures the floors: a bare temporalio worker in this process, on its own task
queue, running a workflow whose one activity either returns at once or spawns a fresh
`python -c pass` (the floor of one process per attempt).

It prints a table (metric, value, floor, ratio, target, verdict) and writes the same data, the
sample summaries, a per-event breakdown of one invocation and machine information as JSON
(default benchmarks/results/latest.json). Speed is never asserted: the exit code only says
whether the benchmark ran.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import Future
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))  # run as a script: `temporal_workers` is importable from the repo

import temporalio  # noqa: E402
from temporalio import activity, workflow  # noqa: E402
from temporalio.api.enums.v1 import EventType  # noqa: E402
from temporalio.client import Client as TemporalClient  # noqa: E402
from temporalio.client import WorkflowHandle  # noqa: E402
from temporalio.worker import UnsandboxedWorkflowRunner, Worker  # noqa: E402

from temporal_workers.backends.local.backend import TICK_SECONDS  # noqa: E402
from temporal_workers.settings import WorkerSettings  # noqa: E402
from temporal_workers.worker import HEARTBEAT_THROTTLE  # noqa: E402

T = TypeVar("T")

TASKS = HERE / "tasks"
DEFAULT_JSON = HERE / "results" / "latest.json"
PROJECT = "bench"
# The floor worker matches the Multinode worker's defaults, so the comparison is like for like.
MAX_CONCURRENT_ATTEMPTS: int = WorkerSettings.model_fields["max_concurrent_attempts"].default
HEARTBEAT_TIMEOUT = timedelta(seconds=WorkerSettings.model_fields["heartbeat_timeout_seconds"].default)
STAGE_TIMEOUT_SECONDS = 900.0
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


# ----- statistics ----------------------------------------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(samples)
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(samples: list[float]) -> dict[str, float]:
    if not samples:  # e.g. every call of a stage failed: the failures are a figure of their own
        return {"n": 0, **{k: math.nan for k in ("min", "p50", "p95", "p99", "max", "mean")}}
    return {
        "n": len(samples),
        "min": min(samples),
        "p50": percentile(samples, 50),
        "p95": percentile(samples, 95),
        "p99": percentile(samples, 99),
        "max": max(samples),
        "mean": sum(samples) / len(samples),
    }


def timed_ms(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def wait_for(predicate: Callable[[], T], what: str, timeout: float = 60.0, interval: float = 0.005) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)


# ----- metrics and the report ----------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    kind: Literal["ratio_at_most", "ratio_at_least", "value_at_most"]
    limit: float

    def text(self, unit: str) -> str:
        if self.kind == "value_at_most":
            return f"<= {self.limit:g} {unit}"
        return f"{'<=' if self.kind == 'ratio_at_most' else '>='} {self.limit:g}x"

    def met(self, value: float, ratio: float | None) -> bool:
        if self.kind == "value_at_most":
            return value <= self.limit
        if ratio is None:
            return False
        return ratio <= self.limit if self.kind == "ratio_at_most" else ratio >= self.limit


@dataclass
class Metric:
    key: str
    label: str
    unit: str
    value: float
    floor: float | None = None
    floor_label: str = ""
    target: Target | None = None
    # A reason the figure cannot count as met whatever its ratio (e.g. a limit that was not held).
    disqualified: str | None = None

    @property
    def ratio(self) -> float | None:
        if self.floor is None or self.floor == 0:
            return None
        return self.value / self.floor

    @property
    def verdict(self) -> str:
        if math.isnan(self.value):
            return f"not measured ({self.disqualified})" if self.disqualified else "not measured"
        if self.target is None:
            return "-"
        if self.disqualified:
            return f"misses ({self.disqualified})"
        return "meets" if self.target.met(self.value, self.ratio) else "misses"

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key, "label": self.label, "unit": self.unit, "value": self.value,
            "floor": self.floor, "floor_label": self.floor_label, "ratio": self.ratio,
            "target": None if self.target is None else {
                "kind": self.target.kind, "limit": self.target.limit, "text": self.target.text(self.unit)
            },
            "verdict": self.verdict,
        }


def without_nan(data: Any) -> Any:
    """JSON has no NaN: a figure that was not measured is null."""
    if isinstance(data, float) and math.isnan(data):
        return None
    if isinstance(data, dict):
        return {k: without_nan(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [without_nan(v) for v in data]
    return data


def fmt(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "-"
    digits = 2 if unit in ("s", "x") else (0 if unit == "" else 1)
    return f"{value:,.{digits}f} {unit}".strip()


def table(metrics: list[Metric]) -> str:
    rows = [("metric", "value", "floor", "ratio", "target", "verdict")]
    for m in metrics:
        floor = fmt(m.floor, m.unit) + (f" ({m.floor_label})" if m.floor_label else "")
        rows.append((
            m.label, fmt(m.value, m.unit), floor if m.floor is not None else "-",
            "-" if m.ratio is None or math.isnan(m.ratio) else f"{m.ratio:.2f}x",
            m.target.text(m.unit) if m.target else "-", m.verdict,
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ----- the floors: bare Temporal, in this process --------------------------------------------

FLOOR_WORKFLOW = "BenchFloor"
# In-process bookkeeping of the cancel floor: workflow id -> wall-clock time.
CANCEL_FLOOR_STARTED: dict[str, float] = {}
CANCEL_FLOOR_SEEN: dict[str, float] = {}


@activity.defn(name="floor_noop")
async def floor_noop() -> None:
    return None


@activity.defn(name="floor_subprocess")
async def floor_subprocess() -> int:
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    return await process.wait()


@activity.defn(name="floor_ticks")
async def floor_ticks(count: int, interval: float) -> float:
    """The progress floor: the tick's time as heartbeat details, read back with describe()."""
    last = 0.0
    for _ in range(count):
        await asyncio.sleep(interval)
        last = time.time()
        activity.heartbeat(last)
    return last


@activity.defn(name="floor_wait_cancel")
async def floor_wait_cancel() -> None:
    """The cancel floor: heartbeats at the Multinode supervisor's tick, since cancellation
    reaches an activity only through a heartbeat response."""
    key = activity.info().workflow_id or ""
    CANCEL_FLOOR_STARTED[key] = time.time()
    try:
        while True:
            activity.heartbeat()
            await asyncio.sleep(TICK_SECONDS)
    except asyncio.CancelledError:
        CANCEL_FLOOR_SEEN[key] = time.time()
        raise


@workflow.defn(name=FLOOR_WORKFLOW)
class FloorWorkflow:
    @workflow.run
    async def run(self, activity_name: str, args: list[Any]) -> Any:
        # The same activity options as the invocation workflow's attempt.
        return await workflow.execute_activity(
            activity_name,
            args=args,
            start_to_close_timeout=timedelta(hours=1),
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )


def floor_worker(client: TemporalClient, task_queue: str) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[FloorWorkflow],
        activities=[floor_noop, floor_subprocess, floor_ticks, floor_wait_cancel],
        workflow_runner=UnsandboxedWorkflowRunner(),
        max_concurrent_activities=MAX_CONCURRENT_ATTEMPTS,
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
    )


class FloorHarness:
    """A bare temporalio client and worker on a loop thread of their own, so the floor worker
    keeps polling while the synchronous Multinode SDK is being measured."""

    def __init__(self, address: str, namespace: str) -> None:
        self.address = address
        self.namespace = namespace
        self.task_queue = f"bench-floor-{uuid.uuid4().hex[:8]}"
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="bench-floor", daemon=True)
        self.client: TemporalClient | None = None
        self._worker: Worker | None = None
        self._worker_task: asyncio.Future[None] | None = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = STAGE_TIMEOUT_SECONDS) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def start(self) -> FloorHarness:
        self._thread.start()
        self.run(self._start())
        return self

    async def _start(self) -> None:
        self.client = await TemporalClient.connect(self.address, namespace=self.namespace)
        self._worker = floor_worker(self.client, self.task_queue)
        self._worker_task = asyncio.ensure_future(self._worker.run())

    def stop(self) -> None:
        if self._worker is not None:
            self.run(self._stop(), timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)

    async def _stop(self) -> None:
        assert self._worker is not None and self._worker_task is not None
        await self._worker.shutdown()
        await asyncio.gather(self._worker_task, return_exceptions=True)

    # ----- measurements (coroutines run on the harness loop) -----

    def _start_floor(self, activity_name: str, args: list[Any], task_queue: str | None = None,
                     ) -> Coroutine[Any, Any, WorkflowHandle[Any, Any]]:
        assert self.client is not None
        return self.client.start_workflow(
            FLOOR_WORKFLOW, args=[activity_name, args], id=f"floor-{uuid.uuid4().hex}",
            task_queue=task_queue or self.task_queue,
        )

    async def round_trips(self, activity_name: str, count: int) -> list[float]:
        """Sequential start + result, in milliseconds."""
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            handle = await self._start_floor(activity_name, [])
            await handle.result()
            samples.append((time.perf_counter() - started) * 1000)
        return samples

    async def throughput(self, activity_name: str, count: int, task_queue: str | None = None) -> float:
        """All starts at once, then every result: workflows per second."""
        started = time.perf_counter()
        handles = await asyncio.gather(*(self._start_floor(activity_name, [], task_queue) for _ in range(count)))
        await asyncio.gather(*(h.result() for h in handles))
        return count / (time.perf_counter() - started)

    async def starts_alone(self, count: int) -> list[float]:
        """The start_workflow RPC, each workflow ending before the next start."""
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            handle = await self._start_floor("floor_noop", [])
            samples.append((time.perf_counter() - started) * 1000)
            await handle.result()
        return samples

    async def starts(self, count: int) -> list[float]:
        """The start_workflow RPC in bursts, in batches like `.start`'s."""
        samples = []
        for first in range(0, count, START_BATCH):
            handles = []
            for _ in range(first, min(first + START_BATCH, count)):
                started = time.perf_counter()
                handles.append(await self._start_floor("floor_noop", []))
                samples.append((time.perf_counter() - started) * 1000)
            await asyncio.gather(*(h.result() for h in handles))
        return samples

    async def describes(self, handle: WorkflowHandle[Any, Any], count: int) -> list[float]:
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            await handle.describe()
            samples.append((time.perf_counter() - started) * 1000)
        return samples

    async def finished_handle(self) -> WorkflowHandle[Any, Any]:
        handle = await self._start_floor("floor_noop", [])
        await handle.result()
        return handle

    async def list_pages(self, query: str, count: int) -> list[float]:
        """One page of 50 of the same visibility query that `.list` runs."""
        assert self.client is not None
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            _ = [e.id async for e in self.client.list_workflows(query, page_size=50, limit=50)]
            samples.append((time.perf_counter() - started) * 1000)
        return samples

    async def freshness(self, count: int, interval: float) -> list[float]:
        """Seconds from a heartbeat's value being made to describe() showing it."""
        assert self.client is not None
        handle = await self._start_floor("floor_ticks", [count, interval])
        seen: set[float] = set()
        lags: list[float] = []
        while True:
            description = await handle.describe()
            now = time.time()
            for pending in description.raw_description.pending_activities:
                if pending.heartbeat_details.payloads:
                    [value] = await self.client.data_converter.decode(
                        pending.heartbeat_details.payloads, [float]
                    )
                    if value not in seen:
                        seen.add(value)
                        lags.append(now - value)
            if description.status is not None and description.status.name != "RUNNING":
                break
        final = await handle.result()
        if final not in seen:  # the last tick, seen only in the result
            lags.append(time.time() - final)
        return lags

    async def running_cancellable(self) -> WorkflowHandle[Any, Any]:
        handle = await self._start_floor("floor_wait_cancel", [])
        key = handle.id or ""
        await self._until(lambda: key in CANCEL_FLOOR_STARTED, "the floor activity to start")
        return handle

    async def cancel_latency(self, handle: WorkflowHandle[Any, Any]) -> float:
        """Seconds from handle.cancel() to CancelledError inside the activity."""
        key = handle.id or ""
        requested = time.time()
        await handle.cancel()
        await self._until(lambda: key in CANCEL_FLOOR_SEEN, "the floor activity to see the cancel")
        return CANCEL_FLOOR_SEEN[key] - requested

    @staticmethod
    async def _until(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            await asyncio.sleep(0.002)


async def serve_floor_worker(address: str, task_queue: str) -> None:
    """`--serve-floor-worker`: the floor worker alone in a process, for the worker memory floor."""
    client = await TemporalClient.connect(address)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with floor_worker(client, task_queue):
        print("ready", flush=True)
        await stop.wait()


# ----- the control plane under test ----------------------------------------------------------


def free_port_block(span: int = 12) -> int:
    """A base port whose next `span` ports are free (the dev server pins port+10 and port+11)."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + span >= 65535:
            continue
        try:
            for port in range(base, base + span):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free block of ports")


@dataclass
class Plane:
    home: Path
    address: str
    namespace: str
    worker: subprocess.Popen[bytes]

    @property
    def worker_log(self) -> Path:
        return self.home / "worker.log"


@contextmanager
def control_plane() -> Iterator[Plane]:
    """Dev server (the `multinode dev` tuning) + one Multinode worker with default settings."""
    from multinode import _client
    from multinode.admin.devserver import DevServer, DevServerConfig

    home = Path(tempfile.mkdtemp(prefix="multinode-bench-"))
    config = DevServerConfig(home=home, port=free_port_block(), headless=True)
    # The SDK and the worker read these; nothing else of the caller's environment may leak in.
    for name in [n for n in os.environ if n.startswith("MULTINODE_")]:
        del os.environ[name]
    os.environ.update({
        "MULTINODE_HOME": str(home),
        "MULTINODE_API_URL": config.address,
        "MULTINODE_TASK_QUEUE": f"bench-{uuid.uuid4().hex[:8]}",
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
        yield Plane(home, config.address, config.namespace, worker)
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
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ----- memory --------------------------------------------------------------------------------


def proc_status_mb(pid: int, field_name: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(f"{field_name} missing for pid {pid}")


def runner_children(parent_pid: int) -> list[int]:
    """Attempt processes under the worker: spawned by it (`-m multinode.runtime.runner`) or forked by
    its fork server (whose children carry the fork server's command line)."""
    parents: dict[int, int] = {}
    commands: dict[int, bytes] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            commands[int(entry.name)] = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    servers = {pid for pid, ppid in parents.items()
               if ppid == parent_pid and b"multinode.runtime.forkserver" in commands.get(pid, b"")}
    return [
        pid for pid, ppid in parents.items()
        if (ppid == parent_pid and b"multinode.runtime.runner" in commands.get(pid, b"")) or ppid in servers
    ]


def bare_process_mb() -> float:
    """The floor of one attempt's memory: a fresh `python -c` that does nothing."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.5)
        return proc_status_mb(process.pid)
    finally:
        stop_process(process)


def bare_worker_mb(floor: FloorHarness, warm_workflows: int) -> float:
    """The floor of the worker's memory: the bare floor worker alone in a process, after it ran
    a burst of subprocess workflows."""
    queue = f"bench-floor-mem-{uuid.uuid4().hex[:8]}"
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve-floor-worker", floor.address, queue],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != b"ready":
            raise RuntimeError("the floor worker process did not start")
        floor.run(floor.throughput("floor_subprocess", warm_workflows, task_queue=queue))
        return proc_status_mb(process.pid)
    finally:
        stop_process(process)


# ----- the Multinode measurements ------------------------------------------------------------


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
        logs = sorted((self.home / "runs" / invocation_id).glob("attempt-*.log")) if self.home and invocation_id else []
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


def measure_starts_done(count: int, alone: list[float], burst: list[float], progress: Progress) -> bool:
    measure_starts_alone(count, alone, progress)
    measure_starts(count, burst, progress)
    return True


def measure_starts_alone(count: int, samples: list[float], progress: Progress) -> None:
    """`.start` with nothing else in flight: each invocation ends before the next start."""
    noop = fn("noop")
    for i in range(count):
        started = time.perf_counter()
        invocation_id = noop.start(i)
        samples.append((time.perf_counter() - started) * 1000)
        outcome_of(partial(noop.await_result, invocation_id, timeout=STAGE_TIMEOUT_SECONDS))
        progress.tick()


def measure_call_remote(count: int) -> list[float]:
    noop = fn("noop")
    samples = []
    for i in range(count):
        started = time.perf_counter()
        if outcome_of(partial(noop.call_remote, i)) == i:  # a failed call is counted, not timed
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def measure_starts(count: int, samples: list[float], progress: Progress) -> None:
    """`.start` alone, into `samples`; a batch's invocations end before the next batch starts,
    so the backlog stays bounded and the next stage starts quiet."""
    noop = fn("noop")
    for first in range(0, count, START_BATCH):
        ids = []
        for i in range(first, min(first + START_BATCH, count)):
            started = time.perf_counter()
            ids.append(noop.start(i))
            samples.append((time.perf_counter() - started) * 1000)
        for invocation_id in ids:
            outcome_of(partial(noop.await_result, invocation_id, timeout=STAGE_TIMEOUT_SECONDS))
            progress.tick()


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


def measure_map(count: int, progress: Progress) -> float:
    """Invocations per second of `.map` over no-ops, first start to last result."""
    noop = fn("noop")
    for index, result in enumerate(noop.map(range(count), return_exceptions=True)):
        progress.tick()
        if isinstance(result, BaseException):
            FAILURES.record(result)
        elif result != index:
            raise AssertionError(f".map returned {result!r} for item {index}")
    return count / (time.perf_counter() - progress.started)


@dataclass
class FanOut:
    makespan: float
    ideal: float
    peak: int
    spans: list[tuple[float, float]] = field(repr=False)


def peak_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda x: (x[0], x[1]))
    peak = running = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def measure_fanout(count: int, seconds: float, limit: int, progress: Progress) -> FanOut:
    sleeper = fn(f"sleep_limit_{limit}")
    ids = [sleeper.start(seconds) for _ in range(count)]
    results = []
    for invocation_id in ids:
        results.append(outcome_of(partial(sleeper.await_result, invocation_id, timeout=STAGE_TIMEOUT_SECONDS)))
        progress.tick()
    makespan = time.perf_counter() - progress.started
    spans = [tuple(r) for r in results if r is not None]
    ideal = math.ceil(count / limit) * seconds
    return FanOut(makespan, ideal, peak_overlap(spans), spans)


def measure_freshness(count: int, interval: float) -> list[float]:
    """Seconds from a `yield` (the value is its time) to `.get` first showing it."""
    ticks = fn("ticks")
    invocation_id = ticks.start(count, interval)
    seen: set[float] = set()
    lags: list[float] = []
    while True:
        invocation = ticks.get(invocation_id)
        now = time.time()
        if invocation.result is not None and invocation.result not in seen:
            seen.add(invocation.result)
            lags.append(now - invocation.result)
        if invocation.terminated:
            return lags


@contextmanager
def running_attempt(marker_dir: Path) -> Iterator[tuple[Any, str]]:
    """One invocation whose user code is running (it sleeps until cancelled)."""
    waiter = fn("wait_for_cancel")
    marker_dir.mkdir(parents=True)
    invocation_id = waiter.start(str(marker_dir))
    try:
        wait_for(lambda: (marker_dir / "started").exists(), "the function to start")
        yield waiter, invocation_id
    finally:
        waiter.cancel(invocation_id)


def cancel_latency(waiter: Any, invocation_id: str, marker_dir: Path) -> float:
    """Seconds from just before `.cancel` to InvocationCancelledError inside the function."""
    from multinode.errors import InvocationCancelledError

    requested = time.time()
    waiter.cancel(invocation_id)
    marker = marker_dir / "cancelled"
    wait_for(marker.exists, "the cancel to reach the function", timeout=30)
    try:
        waiter.await_result(invocation_id, timeout=60)
    except InvocationCancelledError:
        pass
    else:
        raise AssertionError("the cancelled invocation did not end CANCELLED")
    return float(marker.read_text()) - requested


def measure_cancels(count: int, scratch: Path) -> list[float]:
    samples = []
    for i in range(count):
        marker_dir = scratch / f"cancel-{i}"
        with running_attempt(marker_dir) as (waiter, invocation_id):
            samples.append(cancel_latency(waiter, invocation_id, marker_dir))
    return samples


# ----- where one invocation's time goes ------------------------------------------------------


def history_timeline(events: Sequence[Any]) -> list[tuple[str, float]]:
    return [(EventType.Name(e.event_type).removeprefix("EVENT_TYPE_"), e.event_time.ToDatetime().timestamp())
            for e in events]


def relative(points: list[tuple[str, float]]) -> list[dict[str, Any]]:
    """Each point as ms since the first, and since the one before."""
    points = sorted(points, key=lambda p: p[1])
    origin, previous, out = points[0][1], points[0][1], []
    for label, at in points:
        out.append({"event": label, "at_ms": round((at - origin) * 1000, 1),
                    "gap_ms": round((at - previous) * 1000, 1)})
        previous = at
    return out


# One invocation is noisy: the breakdown shown is the median (by total time) of a few.
BREAKDOWN_SAMPLES = 5


def median_run(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return sorted(runs, key=lambda points: points[-1]["at_ms"])[len(runs) // 2]


def breakdown_invocation() -> list[dict[str, Any]]:
    """One no-op invocation: client, server history events and the attempt's own timestamps."""
    noop = fn("noop")
    invocation_id = noop.start(0)
    noop.await_result(invocation_id, timeout=60)
    returned = time.time()
    invocation = noop.get(invocation_id)
    history = mn_engine_run(lambda c: c.get_workflow_handle(invocation_id).fetch_history())
    attempt = invocation.attempts[0]
    points = [("client: .start called", invocation.created_at.timestamp())]
    points += [(f"server: {name}", at) for name, at in history_timeline(history.events)]
    points += [("worker: runner process spawned", attempt.started_at.timestamp()),
               ("worker: attempt outcome ready", attempt.ended_at.timestamp()),
               ("client: .await_result returned", returned)]
    return relative(points)


def breakdown_floor(floor: FloorHarness) -> list[dict[str, Any]]:
    async def one() -> list[tuple[str, float]]:
        called = time.time()
        handle = await floor._start_floor("floor_subprocess", [])
        await handle.result()
        returned = time.time()
        history = await handle.fetch_history()
        return ([("client: start_workflow called", called)]
                + [(f"server: {n}", at) for n, at in history_timeline(history.events)]
                + [("client: result returned", returned)])

    return relative(floor.run(one()))


# ----- the run -------------------------------------------------------------------------------


def deploy_tasks() -> None:
    from multinode.admin.deploy import UPGRADE_OR_CREATE, deploy

    deploy(TASKS, PROJECT, mode=UPGRADE_OR_CREATE)


def warm_up(floor: FloorHarness, count: int) -> None:
    noop = fn("noop")
    first = noop.start(0)  # the worker may still be connecting
    noop.await_result(first, timeout=120)
    for i in range(count):
        noop.call_remote(i)
    floor.run(floor.round_trips("floor_noop", count))
    floor.run(floor.round_trips("floor_subprocess", count))


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# A long stage with no new result for this long is declared stalled and abandoned.
STALL_SECONDS = 90.0
NAN = math.nan


@dataclass
class Run:
    """What the stages measured so far; each figure is also logged as soon as it is known, so a
    run cut short still shows what it got."""

    sizes: Sizes
    plane: Plane
    floor: FloorHarness
    scratch: Path
    samples: dict[str, dict[str, float]] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    stalled: str | None = None

    def keep(self, name: str, values: list[float]) -> None:
        self.samples[name] = summary = summarize(values)
        log(f"  {name}: p50 {summary['p50']:.4g}  p95 {summary['p95']:.4g}  p99 {summary['p99']:.4g}  "
            f"(n={summary['n']})")

    def set(self, name: str, value: float) -> None:
        self.values[name] = value
        log(f"  {name}: {value:.4g}")

    def stat(self, name: str, key: str) -> float:
        return self.samples.get(name, {}).get(key, NAN)


def stage_round_trips(run: Run) -> None:
    n = run.sizes.calls
    log(f"sequential round trips x{n}: floor (in-process activity), floor (subprocess), call_remote")
    run.keep("floor_inprocess_ms", run.floor.run(run.floor.round_trips("floor_noop", n)))
    run.keep("floor_subprocess_ms", run.floor.run(run.floor.round_trips("floor_subprocess", n)))
    run.keep("call_remote_ms", measure_call_remote(n))


def stage_starts(run: Run) -> None:
    n = run.sizes.calls
    log(f".start x{n} and start_workflow x{n}: alone, then in bursts of {START_BATCH}")
    alone: list[float] = []
    burst: list[float] = []
    progress = Progress()
    if not guarded(partial(measure_starts_done, n, alone, burst, progress), progress, STALL_SECONDS):
        run.stalled = f".start stalled: {progress.done} of {2 * n} invocations ended"
        log(f"  {run.stalled}; the remaining Multinode stages are skipped")
    run.keep("start_ms", list(alone))
    run.keep("start_burst_ms", list(burst))
    run.keep("floor_start_workflow_ms", run.floor.run(run.floor.starts_alone(n)))
    run.keep("floor_start_workflow_burst_ms", run.floor.run(run.floor.starts(n)))


def stage_get(run: Run) -> None:
    """`.get` of a finished and of a running invocation; the running one also gives the memory
    of one attempt's process."""
    n, floor = run.sizes.calls, run.floor
    log(".get (finished, running) and describe()")
    noop = fn("noop")
    finished_id = noop.start(0)
    noop.await_result(finished_id, timeout=60)
    run.keep("get_finished_ms", [timed_ms(partial(noop.get, finished_id)) for _ in range(n)])
    run.keep("floor_describe_finished_ms", floor.run(floor.describes(floor.run(floor.finished_handle()), n)))
    with running_attempt(run.scratch / "running") as (waiter, running_id):
        run.keep("get_running_ms", [timed_ms(partial(waiter.get, running_id)) for _ in range(n)])
        runners = wait_for(lambda: runner_children(run.plane.worker.pid), "the attempt's process")
        run.set("attempt_mb", proc_status_mb(runners[0]))
    running_floor = floor.run(floor.running_cancellable())
    run.keep("floor_describe_running_ms", floor.run(floor.describes(running_floor, n)))
    floor.run(floor.cancel_latency(running_floor))
    run.set("floor_attempt_mb", bare_process_mb())


def stage_list(run: Run) -> None:
    from multinode.engine.listing import invocations_query

    log(f".list x{run.sizes.list_samples} and one visibility page x{run.sizes.list_samples}")
    noop = fn("noop")
    run.details["list_function_invocations"] = len(noop.list_ids())
    run.keep("list_ms", [timed_ms(noop.list) for _ in range(run.sizes.list_samples)])
    query = invocations_query(PROJECT, "noop")
    run.keep("floor_list_page_ms", run.floor.run(run.floor.list_pages(query, run.sizes.list_samples)))


def stage_freshness(run: Run) -> None:
    ticks, interval = run.sizes.ticks, run.sizes.tick_interval
    log(f"progress freshness: {ticks} ticks every {interval:g} s, and its floor")
    run.keep("freshness_s", measure_freshness(ticks, interval))
    run.keep("floor_freshness_s", run.floor.run(run.floor.freshness(ticks, interval)))


def stage_cancel(run: Run) -> None:
    n, floor = run.sizes.cancel_samples, run.floor
    log(f"cancel latency x{n}, and its floor")
    run.keep("cancel_s", measure_cancels(n, run.scratch))
    run.keep("floor_cancel_s", [floor.run(floor.cancel_latency(floor.run(floor.running_cancellable())))
                                for _ in range(n)])


def stage_breakdown(run: Run) -> None:
    log(f"one invocation's breakdown (the median of {BREAKDOWN_SAMPLES})")
    run.details["breakdown_invocation"] = median_run([breakdown_invocation() for _ in range(BREAKDOWN_SAMPLES)])
    run.details["breakdown_floor_subprocess"] = median_run(
        [breakdown_floor(run.floor) for _ in range(BREAKDOWN_SAMPLES)]
    )


def stage_map(run: Run) -> None:
    n, floor = run.sizes.map_items, run.floor
    log(f"{n} bare workflows at once (both floors), then .map over {n} no-ops")
    run.set("floor_burst_subprocess_per_s", floor.run(floor.throughput("floor_subprocess", n)))
    run.set("floor_burst_inprocess_per_s", floor.run(floor.throughput("floor_noop", n)))
    progress = Progress()
    rate = guarded(partial(measure_map, n, progress), progress, STALL_SECONDS)
    if rate is None:
        elapsed = time.perf_counter() - progress.started
        run.stalled = run.details["map_stalled"] = f".map stalled: {progress.done} of {n} in {elapsed:.0f} s"
        log(f"  {run.stalled}; the remaining Multinode stages are skipped")
        rate = progress.done / elapsed
    run.set("map_per_s", rate)


def stage_fanout(run: Run) -> None:
    n, seconds, limit = run.sizes.fanout, run.sizes.fanout_seconds, run.sizes.fanout_limit
    log(f"fan-out: {n} x {seconds:g} s, max_concurrency {limit}")
    progress = Progress()
    fanout = guarded(partial(measure_fanout, n, seconds, limit, progress), progress, STALL_SECONDS)
    if fanout is None:
        run.stalled = run.details["fanout_not_run"] = f"fan-out stalled: {progress.done} of {n} ended"
        log(f"  {run.stalled}; the remaining Multinode stages are skipped")
        return
    run.set("fanout_makespan_s", fanout.makespan)
    run.set("fanout_peak", fanout.peak)
    run.details["fanout"] = {"makespan_s": fanout.makespan, "ideal_s": fanout.ideal, "peak": fanout.peak,
                             "limit": limit, "count": n, "seconds": seconds}


def stage_worker_memory(run: Run) -> None:
    log("worker memory, and a bare worker's")
    run.set("worker_mb", proc_status_mb(run.plane.worker.pid))
    run.details["worker_peak_mb"] = proc_status_mb(run.plane.worker.pid, "VmHWM")
    run.set("floor_worker_mb", bare_worker_mb(run.floor, min(run.sizes.map_items, 200)))


# Latency first, on a quiet system; bursts last, so a stall there cannot spoil the rest.
STAGES = (stage_round_trips, stage_starts, stage_get, stage_list, stage_freshness, stage_cancel,
          stage_breakdown, stage_fanout, stage_map, stage_worker_memory)
# After a stall the worker serves nothing more; its memory can still be read.
NEEDS_HEALTHY_WORKER = set(STAGES) - {stage_worker_memory}


def run_benchmark(sizes: Sizes, scratch: Path) -> Run:
    with ExitStack() as stack:
        log("starting the dev server and the worker")
        plane = stack.enter_context(control_plane())
        FAILURES.home = plane.home
        floor = FloorHarness(plane.address, plane.namespace).start()
        stack.callback(floor.stop)
        log("deploying benchmarks/tasks")
        deploy_tasks()
        log("warming up")
        warm_up(floor, sizes.warmup)
        run = Run(sizes, plane, floor, scratch)
        for stage in STAGES:
            if run.stalled and stage in NEEDS_HEALTHY_WORKER:
                log(f"skipping {stage.__name__}: {run.stalled}")
                continue
            stage(run)
        run.details["failures"] = {"count": FAILURES.count, "examples": FAILURES.examples}
        return run


def metrics_of(run: Run) -> list[Metric]:
    metrics = _metrics(run)
    for metric in metrics:
        if math.isnan(metric.value) and not metric.disqualified:
            metric.disqualified = f"skipped, {run.stalled}" if run.stalled else None
    return metrics


def _metrics(run: Run) -> list[Metric]:
    sizes, stat, value = run.sizes, run.stat, run.values.get
    ms, s = "ms", "s"
    subprocess_floor = "workflow+subprocess"
    fanout_ideal = math.ceil(sizes.fanout / sizes.fanout_limit) * sizes.fanout_seconds
    fanout_peak = value("fanout_peak", NAN)
    fanout_broken = run.details.get("fanout_not_run") or (
        "limit not held" if fanout_peak > sizes.fanout_limit else None)
    return [
        Metric("call_remote_p50", "call_remote no-op p50", ms, stat("call_remote_ms", "p50"),
               stat("floor_subprocess_ms", "p50"), subprocess_floor, Target("ratio_at_most", 1.25)),
        Metric("call_remote_p95", "call_remote no-op p95", ms, stat("call_remote_ms", "p95"),
               stat("floor_subprocess_ms", "p95"), subprocess_floor),
        Metric("call_remote_p99", "call_remote no-op p99", ms, stat("call_remote_ms", "p99"),
               stat("floor_subprocess_ms", "p99"), subprocess_floor),
        Metric("call_remote_p50_vs_inprocess", "call_remote no-op p50", ms, stat("call_remote_ms", "p50"),
               stat("floor_inprocess_ms", "p50"), "workflow+in-process activity"),
        Metric("floor_subprocess_p50", "floor: workflow+subprocess p50", ms, stat("floor_subprocess_ms", "p50"),
               stat("floor_inprocess_ms", "p50"), "workflow+in-process activity"),
        Metric("start_p50", ".start p50", ms, stat("start_ms", "p50"), stat("floor_start_workflow_ms", "p50"),
               "start_workflow RPC", Target("value_at_most", 10)),
        Metric("start_burst_p50", f".start p50, bursts of {START_BATCH}", ms, stat("start_burst_ms", "p50"),
               stat("floor_start_workflow_burst_ms", "p50"), "start_workflow RPC, same bursts"),
        Metric("get_finished_p50", ".get p50 (finished)", ms, stat("get_finished_ms", "p50"),
               stat("floor_describe_finished_ms", "p50"), "describe", Target("value_at_most", 5)),
        Metric("get_running_p50", ".get p50 (running)", ms, stat("get_running_ms", "p50"),
               stat("floor_describe_running_ms", "p50"), "describe", Target("value_at_most", 5)),
        Metric("list_p50", ".list page p50", ms, stat("list_ms", "p50"), stat("floor_list_page_ms", "p50"),
               "list page of 50", Target("value_at_most", 30)),
        Metric("map_throughput", f".map {sizes.map_items} no-ops", "/s", value("map_per_s", NAN),
               value("floor_burst_subprocess_per_s"), f"{subprocess_floor} burst",
               Target("ratio_at_least", 0.8), disqualified=run.details.get("map_stalled")),
        Metric("map_throughput_vs_inprocess", f".map {sizes.map_items} no-ops", "/s", value("map_per_s", NAN),
               value("floor_burst_inprocess_per_s"), "workflow+in-process burst"),
        Metric("fanout_makespan", f"fan-out {sizes.fanout}x{sizes.fanout_seconds:g}s, limit {sizes.fanout_limit}",
               s, value("fanout_makespan_s", NAN), fanout_ideal, "ideal", Target("ratio_at_most", 1.1),
               disqualified=fanout_broken),
        Metric("fanout_peak_concurrency", "fan-out peak concurrency", "", fanout_peak, sizes.fanout_limit,
               "max_concurrency", Target("ratio_at_most", 1.0), disqualified=run.details.get("fanout_not_run")),
        Metric("freshness_p95", "progress freshness p95", s, stat("freshness_s", "p95"),
               stat("floor_freshness_s", "p95"), "heartbeat+describe", Target("value_at_most", 1)),
        Metric("cancel_p95", "cancel latency p95", s, stat("cancel_s", "p95"), stat("floor_cancel_s", "p95"),
               "activity cancel", Target("value_at_most", 1)),
        Metric("failed_invocations", "invocations that failed", "", FAILURES.count,
               target=Target("value_at_most", 0)),
        Metric("worker_rss", "worker RSS", "MB", value("worker_mb", NAN), value("floor_worker_mb"),
               "bare temporalio worker"),
        Metric("attempt_rss", "one running attempt RSS", "MB", value("attempt_mb", NAN),
               value("floor_attempt_mb"), "python -c"),
    ]


def machine_info() -> dict[str, Any]:
    from multinode.admin.devserver import temporal_binary

    def command_output(*args: str) -> str:
        try:
            completed = subprocess.run(args, capture_output=True, text=True, timeout=10, cwd=REPO, check=False)
            return completed.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "python": sys.version.split()[0],
        "temporalio": temporalio.__version__,
        "temporal_cli": command_output(str(temporal_binary()), "--version"),
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
        "git_commit": command_output("git", "rev-parse", "--short", "HEAD"),
        # Uncommitted changes are measured too: say how many files differ from the commit.
        "git_changed_files": len(command_output("git", "status", "--short", "--untracked-files=no").splitlines()),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def print_breakdown(title: str, points: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    for point in points:
        print(f"  {point['at_ms']:8.1f} ms  (+{point['gap_ms']:6.1f})  {point['event']}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: checks that it runs, in seconds")
    parser.add_argument("--calls", type=int, help="sequential samples per latency figure (default 200)")
    parser.add_argument("--map-items", type=int, help="items in the .map and burst figures (default 1000)")
    parser.add_argument("--fanout", type=int, help="invocations in the fan-out figure (default 100)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"where to write results ({DEFAULT_JSON})")
    parser.add_argument("--serve-floor-worker", nargs=2, metavar=("ADDRESS", "QUEUE"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def sizes_from(args: argparse.Namespace) -> Sizes:
    base = QUICK if args.quick else FULL
    overrides = {"calls": args.calls, "map_items": args.map_items, "fanout": args.fanout}
    return Sizes(**{**asdict(base), **{k: v for k, v in overrides.items() if v is not None}})


def interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_floor_worker:
        asyncio.run(serve_floor_worker(*args.serve_floor_worker))
        return 0
    sizes = sizes_from(args)
    # A terminated benchmark still stops its server and worker (the ExitStack unwinds).
    signal.signal(signal.SIGTERM, interrupt)
    info = machine_info()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="multinode-bench-scratch-") as scratch:
        run = run_benchmark(sizes, Path(scratch))
    metrics, samples, extra = metrics_of(run), run.samples, run.details
    duration = time.perf_counter() - began
    # Other work on the machine skews every figure: keep the load beside them.
    info["load_average_at_end"] = os.getloadavg()

    print(table(metrics))
    print_breakdown("One no-op invocation, start to result (median of a few):", extra["breakdown_invocation"])
    print_breakdown("One bare workflow+subprocess, the floor (median of a few):", extra["breakdown_floor_subprocess"])
    report = {
        "machine": info,
        "sizes": asdict(sizes),
        "duration_seconds": duration,
        "metrics": [m.to_json() for m in metrics],
        "samples": samples,
        "details": extra,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(without_nan(report), indent=2, allow_nan=False))
    print(f"\nwrote {args.json} ({duration:.0f} s)")
    return 0


if __name__ == "__main__":
    try:
        code = main()
    except BaseException:  # reported here, then the hard exit below
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal client's native threads can crash interpreter teardown (sdk-python issue 300).
    os._exit(code)
