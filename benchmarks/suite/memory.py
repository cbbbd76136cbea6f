"""Memory figures: the resident size of the worker and of one attempt's process, and their
floors (a bare temporalio worker alone in a process, a `python -c` that does nothing)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

from suite.floors import FloorHarness
from suite.harness import BENCHMARKS, stop_process


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
        [sys.executable, str(BENCHMARKS / "bench.py"), "--serve-floor-worker", floor.address, queue],
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
