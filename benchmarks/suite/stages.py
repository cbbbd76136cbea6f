"""The stages of a run, in order, and the run itself: each stage measures one aspect of
Multinode and its floor, and keeps the figures in the `Run`."""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from suite.breakdown import BREAKDOWN_SAMPLES, breakdown_floor, breakdown_invocation, median_run
from suite.floors import FloorHarness
from suite.harness import (
    FAILURES,
    NAN,
    PROJECT,
    STALL_SECONDS,
    START_BATCH,
    TASKS,
    Plane,
    Progress,
    Sizes,
    control_plane,
    fn,
    guarded,
    log,
    wait_for,
)
from suite.measures import (
    measure_aio,
    measure_call_remote,
    measure_cancels,
    measure_fanout,
    measure_freshness,
    measure_map,
    measure_starts_done,
    running_attempt,
)
from suite.memory import bare_process_mb, bare_worker_mb, proc_status_mb, runner_children
from suite.samples import summarize, timed_ms


def deploy_tasks() -> None:
    from multinode.admin.deployment import UPGRADE_OR_CREATE, deploy

    deploy(TASKS, PROJECT, mode=UPGRADE_OR_CREATE)


def warm_up(floor: FloorHarness, count: int) -> None:
    noop = fn("noop")
    first = noop.start(0)  # the worker may still be connecting
    noop.await_result(first, timeout=120)
    for i in range(count):
        noop.call_remote(i)
    floor.run(floor.round_trips("floor_noop", count))
    floor.run(floor.round_trips("floor_subprocess", count))


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


def stage_aio(run: Run) -> None:
    n = run.sizes.calls
    log(f".start.aio and call_remote.aio x{n}, on the caller's event loop")
    starts, calls = measure_aio(n)
    run.keep("start_aio_ms", starts)
    run.keep("call_remote_aio_ms", calls)


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
# `.aio` runs after `.list`: its 400 invocations of `noop` would otherwise lengthen the listing
# `.list` is measured on (its cost grows with the function's invocations, issue 21).
STAGES = (stage_round_trips, stage_starts, stage_get, stage_list, stage_aio, stage_freshness, stage_cancel,
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
