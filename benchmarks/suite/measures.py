"""The Multinode measurements: the public API timed as an application calls it (`call_remote`,
`.start`, both through `.aio`, `.map`, a fan-out under `max_concurrency`, progress freshness, cancel latency)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from suite.harness import FAILURES, STAGE_TIMEOUT_SECONDS, START_BATCH, Progress, fn, outcome_of, wait_for
from suite.samples import peak_overlap


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


def measure_aio(count: int) -> tuple[list[float], list[float]]:
    """`.start.aio` alone and `call_remote.aio`, awaited on one event loop of the caller's (the
    loop's own engine connection is opened by the first call, before timing)."""

    async def measure() -> tuple[list[float], list[float]]:
        noop = fn("noop")
        await noop.call_remote.aio(-1)
        starts: list[float] = []
        calls: list[float] = []
        for i in range(count):
            started = time.perf_counter()
            invocation_id = await noop.start.aio(i)
            starts.append((time.perf_counter() - started) * 1000)
            await noop.await_result.aio(invocation_id, timeout=STAGE_TIMEOUT_SECONDS)
            started = time.perf_counter()
            if await noop.call_remote.aio(i) == i:
                calls.append((time.perf_counter() - started) * 1000)
        return starts, calls

    return asyncio.run(measure())


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
