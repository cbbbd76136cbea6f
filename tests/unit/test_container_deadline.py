"""The Fargate container's own deadline (issue 18 item 3, in part): a task whose worker died is
stopped by the container itself, past the attempt's timeout: the function gets the timeout's
signal, then the kill after the grace period."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from multinode.runtime import fargate_container
from multinode.runtime.fargate_container import ContainerConfig, StopHandler, _wait
from multinode.runtime.fargate_run import RunLocation

pytestmark = pytest.mark.timeout(30)

# Ignores the timeout's signal (SIGUSR1), as a function that swallows InvocationTimedOutError
# would: only the kill after the grace ends it.
STUBBORN = "import signal, time; signal.signal(signal.SIGUSR1, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"


def _config(timeout_seconds: float, grace_seconds: float) -> ContainerConfig:
    return ContainerConfig(
        function="f", package_uri="s3://b/p.tar.gz", package_sha256="0" * 64, requirements_sha256=None,
        location=RunLocation("b", "runs/inv/1/"), token="t", timeout_seconds=timeout_seconds,
        grace_seconds=grace_seconds, invocation_id="inv", progress_interval_seconds=2.0, attempt="1",
        home=Path("/nonexistent"),
    )


def test_a_task_nobody_stops_is_timed_out_then_killed_by_the_container(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fargate_container, "OWN_DEADLINE_MARGIN_SECONDS", 0.3)
    process = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, start_new_session=True)
    assert process.stdout is not None and process.stdout.readline() == b"up\n"
    stop = StopHandler(time.monotonic(), _config(timeout_seconds=0.2, grace_seconds=0.5))
    stop.process = process
    began = time.monotonic()
    assert _wait(process, stop) == -signal.SIGKILL
    assert stop.kill_at is not None  # the timeout's signal went first, then the grace ran out
    assert time.monotonic() - began >= 0.2 + 0.3 + 0.5 - 0.15


def test_the_container_leaves_a_task_within_its_deadline_alone() -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"], start_new_session=True)
    stop = StopHandler(time.monotonic(), _config(timeout_seconds=60.0, grace_seconds=0.5))
    stop.process = process
    assert _wait(process, stop) == 0 and stop.kill_at is None
