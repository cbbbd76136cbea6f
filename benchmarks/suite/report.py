"""The report: each figure beside its floor, ratio and target, printed as a table and written
as JSON with the sample summaries, the breakdowns and the machine's description."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Literal

import temporalio

from suite.harness import FAILURES, NAN, REPO, START_BATCH
from suite.stages import Run


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
        Metric("start_aio_p50", ".start.aio p50", ms, stat("start_aio_ms", "p50"), stat("start_ms", "p50"),
               ".start (sync), same run"),
        Metric("call_remote_aio_p50", "call_remote.aio no-op p50", ms, stat("call_remote_aio_ms", "p50"),
               stat("call_remote_ms", "p50"), "call_remote (sync), same run"),
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
