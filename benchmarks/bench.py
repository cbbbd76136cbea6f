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

The pieces live in `benchmarks/suite/`: `harness` (sizes, the control plane, the stall guard),
`floors` (bare Temporal), `measures` and `breakdown` (Multinode timed), `memory`, `stages` (the
run, stage by stage), `samples` and `report` (the table and the JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run as a script: `temporal_workers` is importable from the repo

from suite.floors import serve_floor_worker  # noqa: E402
from suite.harness import FULL, QUICK, Sizes, exit_with  # noqa: E402
from suite.report import machine_info, metrics_of, print_breakdown, table, without_nan  # noqa: E402
from suite.stages import run_benchmark  # noqa: E402

DEFAULT_JSON = HERE / "results" / "latest.json"


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
    exit_with(main)
