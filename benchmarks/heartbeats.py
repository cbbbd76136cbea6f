"""Heartbeats per attempt-minute, read from the dev server's own Prometheus counters.

Each heartbeat is a write on the embedded server and a billed action on Temporal Cloud, so its
rate per running attempt is what a quiet (or a chatty) attempt costs the control plane. Runs N
attempts of a quiet function (it sleeps) and N of a chatty one (it yields every 0.1 s) at the
production heartbeat timeout, and divides the server's RecordActivityTaskHeartbeat requests by
the attempt-minutes each phase ran.

    .venv/bin/python benchmarks/heartbeats.py              # 4 + 4 attempts of 30 s
    .venv/bin/python benchmarks/heartbeats.py --seconds 10 --count 2 --json /tmp/hb.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TASKS = '''
import time
from multinode import Multinode

mn = Multinode()


@mn.function(max_concurrency=50)
def quiet(seconds):
    time.sleep(seconds)
    return seconds


@mn.function(max_concurrency=50)
def chatty(seconds):
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        time.sleep(0.1)
        yield time.time()
'''

# The dev server counts what Temporal Cloud would bill as actions in this counter (its
# `service_requests` counts each heartbeat twice: once in the frontend, once in history).
_HEARTBEAT_SAMPLE = re.compile(
    r'^action\{[^}]*action_type="grpc_RecordActivityTaskHeartbeat(?:ById)?"[^}]*\}\s+([0-9.e+]+)$',
    re.MULTILINE,
)


def heartbeats_served(metrics_url: str) -> float:
    """RecordActivityTaskHeartbeat requests the server has served so far."""
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    return sum(float(match) for match in _HEARTBEAT_SAMPLE.findall(text))


def run_phase(function: object, metrics_url: str, count: int, seconds: float) -> dict[str, float]:
    """`count` attempts at once; heartbeats counted from their start to their end."""
    before = heartbeats_served(metrics_url)
    began = time.monotonic()
    ids = [function.start(seconds) for _ in range(count)]  # type: ignore[attr-defined]
    for invocation_id in ids:
        function.await_result(invocation_id, timeout=seconds * 4 + 60)  # type: ignore[attr-defined]
    elapsed = time.monotonic() - began
    # The last heartbeats of a throttled SDK may land just after the activity completed.
    time.sleep(1.0)
    heartbeats = heartbeats_served(metrics_url) - before
    attempt_minutes = count * seconds / 60
    invocations = [function.get(i) for i in ids]  # type: ignore[attr-defined]
    waits = [(inv.attempts[0].started_at - inv.created_at).total_seconds() for inv in invocations]
    return {
        "attempts": count,
        "seconds_each": seconds,
        "wall_seconds": round(elapsed, 1),
        "longest_wait_to_run_seconds": round(max(waits), 1),
        "heartbeats": heartbeats,
        "heartbeats_per_attempt_minute": round(heartbeats / attempt_minutes, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=4, help="attempts per phase, run at once")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long each attempt runs")
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()

    from multinode.testing.control_plane import running_control_plane
    from multinode.testing.deployment import deploy_tasks, write_tasks
    from temporal_workers.settings import WorkerSettings

    production_timeout = WorkerSettings.model_fields["heartbeat_timeout_seconds"].default
    home = Path(tempfile.mkdtemp(prefix="multinode-heartbeats-"))
    figures: dict[str, object] = {"heartbeat_timeout_seconds": production_timeout}
    with running_control_plane(home, MULTINODE_HEARTBEAT_TIMEOUT_SECONDS=str(production_timeout)) as plane:
        metrics_url = f"http://127.0.0.1:{plane.server.config.metrics_port}/metrics"
        deployment = deploy_tasks(write_tasks(home / "tasks", TASKS), "heartbeats")
        figures["quiet"] = run_phase(deployment["quiet"], metrics_url, options.count, options.seconds)
        figures["chatty"] = run_phase(deployment["chatty"], metrics_url, options.count, options.seconds)
    for phase in ("quiet", "chatty"):
        print(f"{phase:>7}: {figures[phase]}")
    if options.json:
        options.json.write_text(json.dumps(figures, indent=2))
    sys.stdout.flush()
    os._exit(0)  # a short-lived process that used a client can crash on exit otherwise


if __name__ == "__main__":
    main()
