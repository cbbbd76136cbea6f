"""The benchmark (issue 7) runs end to end with tiny counts. Speed is never asserted here: the
figures on a shared CI machine mean nothing; only that every figure is produced."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

EXPECTED_METRICS = {
    "call_remote_p50", "call_remote_p95", "call_remote_p99", "call_remote_p50_vs_inprocess",
    "floor_subprocess_p50", "start_p50", "start_aio_p50", "call_remote_aio_p50", "start_burst_p50", "get_finished_p50", "get_running_p50", "list_p50",
    "map_throughput", "map_throughput_vs_inprocess", "fanout_makespan", "fanout_peak_concurrency",
    "freshness_p95", "cancel_p95", "failed_invocations", "worker_rss", "attempt_rss",
}


def test_quick_benchmark_produces_every_figure(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    completed = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench.py"), "--quick", "--json", str(output)],
        cwd=REPO, capture_output=True, text=True, timeout=150, check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "verdict" in completed.stdout  # the table was printed

    report = json.loads(output.read_text())
    metrics = {m["key"]: m for m in report["metrics"]}
    assert set(metrics) == EXPECTED_METRICS
    for key, metric in metrics.items():
        assert isinstance(metric["value"], (int, float)) and math.isfinite(metric["value"]), key
        assert metric["floor"] is None or math.isfinite(metric["floor"]), key
        assert metric["verdict"] == "-" or metric["verdict"].startswith(("meets", "misses")), key
    assert report["machine"]["nproc"] >= 1 and report["machine"]["temporalio"]
    assert report["samples"]["call_remote_ms"]["n"] == report["sizes"]["calls"]
    assert report["details"]["breakdown_invocation"]


@pytest.mark.timeout(300)
def test_quick_growth_benchmark_prints_the_table_and_pages_exactly(tmp_path: Path) -> None:
    output = tmp_path / "growth.json"
    completed = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "growth.py"), "--quick", "--json", str(output)],
        cwd=REPO, capture_output=True, text=True, timeout=280, check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "| after | call_remote p50 |" in completed.stdout and ": exact;" in completed.stdout

    report = json.loads(output.read_text())
    checkpoints = report["checkpoints"]
    invocations = [c["invocations"] for c in checkpoints]
    assert len(invocations) == 3 and invocations == sorted(invocations) and invocations[-1] >= report["count"]
    for checkpoint in checkpoints:
        for key in ("call_remote_ms", "start_ms", "get_ms", "list_page_ms", "server_rss_mb"):
            assert math.isfinite(checkpoint[key]) and checkpoint[key] > 0, key
        assert checkpoint["temporal_db_bytes"] > 0 and checkpoint["state_bytes"] >= checkpoint["temporal_db_bytes"]
    assert report["paging"]["exact"] and report["paging"]["oldest_result_readable"]
    assert report["failed_invocations"] == 0
