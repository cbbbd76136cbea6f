"""The floors: bare Temporal, measured in the same run and on the same server as Multinode.

A bare temporalio client and worker run on a loop thread of their own, on their own task queue,
with a workflow whose one activity returns at once, spawns a fresh `python -c pass` (the floor
of one process per attempt), heartbeats ticks or waits to be cancelled.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import activity, workflow
from temporalio.client import Client as TemporalClient
from temporalio.client import WorkflowHandle
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from suite.harness import STAGE_TIMEOUT_SECONDS, START_BATCH
from temporal_workers.backends.local.supervisor import TICK_SECONDS
from temporal_workers.settings import WorkerSettings
from temporal_workers.worker import HEARTBEAT_THROTTLE

T = TypeVar("T")

# The floor worker matches the Multinode worker's defaults, so the comparison is like for like.
MAX_CONCURRENT_ATTEMPTS: int = WorkerSettings.model_fields["max_concurrent_attempts"].default
HEARTBEAT_TIMEOUT = timedelta(seconds=WorkerSettings.model_fields["heartbeat_timeout_seconds"].default)
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

    def start_floor(self, activity_name: str, args: list[Any], task_queue: str | None = None,
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
            handle = await self.start_floor(activity_name, [])
            await handle.result()
            samples.append((time.perf_counter() - started) * 1000)
        return samples

    async def throughput(self, activity_name: str, count: int, task_queue: str | None = None) -> float:
        """All starts at once, then every result: workflows per second."""
        started = time.perf_counter()
        handles = await asyncio.gather(*(self.start_floor(activity_name, [], task_queue) for _ in range(count)))
        await asyncio.gather(*(h.result() for h in handles))
        return count / (time.perf_counter() - started)

    async def starts_alone(self, count: int) -> list[float]:
        """The start_workflow RPC, each workflow ending before the next start."""
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            handle = await self.start_floor("floor_noop", [])
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
                handles.append(await self.start_floor("floor_noop", []))
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
        handle = await self.start_floor("floor_noop", [])
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
        handle = await self.start_floor("floor_ticks", [count, interval])
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
        handle = await self.start_floor("floor_wait_cancel", [])
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
