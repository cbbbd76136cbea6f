"""Issue 17, operations: a worker's Prometheus metrics scraped over HTTP after invocations of
every outcome, `multinode dev` serving them at its pinned port, and a worker's graceful stop on
SIGTERM (attempts that fit the grace period finish, the others go to another worker uncounted)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

import multinode as mn
from multinode import InvocationStatus, errors
from tests.conftest import ControlPlane, client_for_queue, free_port_block, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

TASKS = '''
import os, time
from datetime import timedelta
from pathlib import Path
from multinode import Multinode

mn = Multinode()


@mn.function()
def quick(x):
    return x


@mn.function(max_retries=1)
def broken():
    raise ValueError("broken on purpose")


@mn.function()
def stalls(marker):
    Path(marker).touch()
    time.sleep(120)


@mn.function(timeout=timedelta(seconds=1))
def overruns():
    time.sleep(120)


@mn.function(max_concurrency=1)
def single(marker, seconds):
    Path(marker).touch()
    time.sleep(seconds)
    return seconds


@mn.function()
def marked(marker_dir, name, seconds):
    """Records each run: its start, and its end if it gets there."""
    run = f"{name}-{os.getpid()}"
    Path(marker_dir, f"start-{run}").write_text(repr(time.time()))
    time.sleep(seconds)
    Path(marker_dir, f"end-{run}").write_text(repr(time.time()))
    return name


@mn.function()
def after_go(marker_dir, name, seconds):
    """Runs until the file `go` appears, then `seconds` more."""
    run = f"{name}-{os.getpid()}"
    Path(marker_dir, f"start-{run}").write_text(repr(time.time()))
    while not Path(marker_dir, "go").exists():
        time.sleep(0.05)
    time.sleep(seconds)
    Path(marker_dir, f"end-{run}").write_text(repr(time.time()))
    return name
'''

SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

Samples = list[tuple[str, dict[str, str], float]]


def scrape(address: str) -> Samples:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples: Samples = []
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and not line.startswith("#"):
            name, labels, value = match.groups()
            samples.append((name, dict(LABEL.findall(labels or "")), float(value)))
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over the samples carrying these labels."""
    return sum(v for n, found, v in samples if n == name and labels.items() <= found.items())


def start_worker(plane: ControlPlane, **env: str) -> tuple[subprocess.Popen[bytes], Path]:
    log = plane.home / f"worker-{len(plane.workers)}.log"
    return plane.start_worker(**env), log


def wait_ready(log: Path) -> None:
    wait_until(lambda: log.exists() and "worker ready" in log.read_text(errors="replace"),
               timeout=60, message=f"the worker of {log.name} ready")


def test_metrics_count_each_outcome(control_plane: ControlPlane, deploy_tasks, tmp_path: Path) -> None:
    queue = f"metrics-{uuid.uuid4().hex[:8]}"
    address = f"127.0.0.1:{free_port_block(1)}"
    project = deploy_tasks(TASKS, **{"requirements.txt": "six==1.16.0\n"}).project_name
    # Its own state folder: it builds the version's environment itself (deploy built one in the
    # plane's), reading the package from the plane's store. Semaphore waits are exact with
    # queueing in the worker off.
    worker, _ = start_worker(
        control_plane, MULTINODE_TASK_QUEUE=queue, MULTINODE_METRICS_ADDRESS=address,
        MULTINODE_HOME=str(tmp_path / "worker-home"), MULTINODE_LOCAL_QUEUE="false",
    )
    try:
        client = client_for_queue(queue)

        def function(name: str) -> mn.Function:  # type: ignore[type-arg]
            return mn.Function(name, project_name=project, client=client)

        quick, broken, stalls, overruns, single = (
            function(n) for n in ("quick", "broken", "stalls", "overruns", "single")
        )
        assert [quick.call_remote(i) for i in range(2)] == [0, 1]
        with pytest.raises(errors.InvocationFailedError):
            broken.call_remote()
        stalling = stalls.start(str(tmp_path / "stalls"))
        wait_until(lambda: (tmp_path / "stalls").exists(), timeout=60, message="stalls running")
        assert stalls.cancel(stalling)
        with pytest.raises(errors.InvocationCancelledError):
            stalls.await_result(stalling, timeout=60)
        with pytest.raises(errors.InvocationTimedOutError):
            overruns.call_remote()
        first = single.start(str(tmp_path / "single-0"), 2.0)
        wait_until(lambda: (tmp_path / "single-0").exists(), timeout=60, message="single running")
        second = single.start(str(tmp_path / "single-1"), 0.1)
        assert [single.await_result(i, timeout=60) for i in (first, second)] == [2.0, 0.1]

        samples = scrape(address)
    finally:
        control_plane.stop_worker(worker)
    mine = {"project": project}
    ended = {
        outcome: total(samples, "multinode_attempts_ended", outcome=outcome, **mine)
        for outcome in ("succeeded", "failed", "cancelled", "timed_out", "handed_back")
    }
    assert ended == {"succeeded": 4, "failed": 2, "cancelled": 1, "timed_out": 1, "handed_back": 0}, ended
    assert total(samples, "multinode_attempts_started", **mine) == 8
    assert total(samples, "multinode_attempts_started", function="broken", **mine) == 2
    # Every attempt ran its function, so each one has a PENDING to RUNNING time.
    assert total(samples, "multinode_pending_to_running_seconds_count", **mine) == 8
    assert total(samples, "multinode_pending_to_running_seconds_count", function="single", **mine) == 2
    # Only the second `single` found the function's only slot taken.
    assert total(samples, "multinode_quota_waits", **mine) == 1
    assert total(samples, "multinode_quota_waits", function="single", **mine) == 1
    assert total(samples, "multinode_quota_admission_seconds_count", **mine) >= 1
    # This worker served this test alone: one version, one environment, one fork server.
    assert total(samples, "multinode_environment_builds", result="ok") == 1
    assert total(samples, "multinode_environment_build_seconds_count") == 1
    assert total(samples, "multinode_fork_server_starts") == 1
    # temporalio's own telemetry on the same endpoint.
    assert any(n.startswith("temporal_") and labels.get("task_queue") == queue for n, labels, _ in samples), \
        sorted({n for n, _, _ in samples})


def test_dev_serves_worker_metrics_at_its_pinned_port(tmp_path: Path) -> None:
    port = free_port_block()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "MULTINODE_HOME": str(tmp_path / "home")}
    dev = subprocess.Popen(
        [sys.executable, "-m", "multinode_cli.main", "dev", "--port", str(port), "--headless"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert dev.stdout is not None
        lines: list[str] = []
        while not any("Worker metrics" in line for line in lines):
            line = dev.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        address = f"127.0.0.1:{port + 12}"
        assert f"http://{address}/metrics" in lines[-1]

        def worker_reports() -> bool:
            try:
                return any(n.startswith("temporal_") for n, _, _ in scrape(address))
            except OSError:
                return False

        wait_until(worker_reports, timeout=60, message="the dev worker's metrics")
    finally:
        dev.send_signal(signal.SIGINT)
        try:
            dev.wait(timeout=30)
        except subprocess.TimeoutExpired:
            dev.kill()
            dev.wait()


GRACE_SECONDS = 3.0


def _runs(folder: Path, name: str) -> list[tuple[float, float | None]]:
    runs = []
    for start in folder.glob(f"start-{name}-*"):
        end = folder / start.name.replace("start-", "end-", 1)
        runs.append((float(start.read_text()), float(end.read_text()) if end.exists() else None))
    return sorted(runs)


def test_sigterm_finishes_what_fits_and_hands_back_the_rest(
    control_plane: ControlPlane, deploy_tasks, tmp_path: Path
) -> None:
    queue = f"sigterm-{uuid.uuid4().hex[:8]}"
    project = deploy_tasks(TASKS).project_name
    client = client_for_queue(queue)
    marked = mn.Function("marked", project_name=project, client=client)
    after_go = mn.Function("after_go", project_name=project, client=client)
    a, _ = start_worker(control_plane, MULTINODE_TASK_QUEUE=queue,
                        MULTINODE_SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS))
    long = marked.start(str(tmp_path), "long", 8.0)
    # Runs until the SIGTERM, then one second more: well within the grace period.
    short = after_go.start(str(tmp_path), "short", 1.0)
    wait_until(lambda: len(list(tmp_path.glob("start-*"))) == 2, timeout=60, message="both running on A")
    b, b_log = start_worker(control_plane, MULTINODE_TASK_QUEUE=queue)
    try:
        wait_ready(b_log)
        signalled, signalled_at = time.monotonic(), time.time()
        a.send_signal(signal.SIGTERM)
        (tmp_path / "go").touch()
        returncode = a.wait(timeout=GRACE_SECONDS + 6)
        stopped_after = time.monotonic() - signalled
        a_exited_at = time.time()
        assert returncode == 0
        # It waited for the long attempt through its grace period, then handed it back.
        assert stopped_after >= GRACE_SECONDS - 0.5, stopped_after
        assert after_go.await_result(short, timeout=60) == "short"
        assert marked.await_result(long, timeout=90) == "long"
    finally:
        control_plane.stop_worker(b)
    # One run of the short one, on A (B was not up when it started), ended after the SIGTERM.
    ((_, short_end),) = _runs(tmp_path, "short")
    assert short_end is not None and signalled_at < short_end < a_exited_at
    killed, rerun = _runs(tmp_path, "long")
    assert killed[1] is None and rerun[1] is not None and rerun[0] > killed[0]
    for function, invocation_id in ((marked, long), (after_go, short)):
        final = function.get(invocation_id)
        assert final.status == InvocationStatus.SUCCEEDED and final.num_failed_attempts == 0, final


def test_a_second_sigterm_hands_back_at_once(control_plane: ControlPlane, deploy_tasks, tmp_path: Path) -> None:
    queue = f"sigterm2-{uuid.uuid4().hex[:8]}"
    project = deploy_tasks(TASKS).project_name
    marked = mn.Function("marked", project_name=project, client=client_for_queue(queue))
    a, _ = start_worker(control_plane, MULTINODE_TASK_QUEUE=queue, MULTINODE_SHUTDOWN_GRACE_SECONDS="600")
    long = marked.start(str(tmp_path), "long", 4.0)
    wait_until(lambda: any(tmp_path.glob("start-*")), timeout=60, message="running on A")
    b, b_log = start_worker(control_plane, MULTINODE_TASK_QUEUE=queue)
    try:
        wait_ready(b_log)
        a.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert a.poll() is None  # waiting for the attempt, within its 600 s of grace
        a.send_signal(signal.SIGTERM)
        assert a.wait(timeout=30) == 0
        assert marked.await_result(long, timeout=90) == "long"
    finally:
        control_plane.stop_worker(b)
    killed, rerun = _runs(tmp_path, "long")
    assert killed[1] is None and rerun[1] is not None
    final = marked.get(long)
    assert final.status == InvocationStatus.SUCCEEDED and final.num_failed_attempts == 0, final
