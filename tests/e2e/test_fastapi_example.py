"""examples/fastapi_jobs over real HTTP: the app runs under uvicorn (its own process, on a socket
the test opened) against the session's control plane; the test talks to it with httpx."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from multinode.contract.ids import new_invocation_id
from tests.conftest import REPO, ControlPlane, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

EXAMPLE = REPO / "examples" / "fastapi_jobs"


@pytest.fixture
def api(control_plane: ControlPlane, deploy_tasks, tmp_path: Path) -> Iterator[httpx.Client]:  # type: ignore[no-untyped-def]
    project = deploy_tasks(EXAMPLE / "tasks").project_name
    # The listening socket is made here and handed over: no port probed and released.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    log = open(tmp_path / "uvicorn.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app:app", "--app-dir", str(EXAMPLE), "--fd", str(listener.fileno())],
        env={**os.environ, "JOBS_PROJECT": project}, stdout=log, stderr=subprocess.STDOUT,
        pass_fds=[listener.fileno()],
    )
    listener.close()  # the server holds it now
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, (tmp_path / "uvicorn.log").read_text()
            try:
                httpx.get(f"{base}/docs", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "uvicorn never answered"
                time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=30) as client:
            yield client
    finally:
        server.terminate()
        server.wait(timeout=15)
        log.close()


def test_start_watch_and_finish_a_job(api: httpx.Client) -> None:
    started = api.post("/jobs", json={"table_id": "t1", "steps": 3, "seconds_per_step": 0.05})
    assert started.status_code == 202
    invocation_id = started.json()["invocation_id"]
    done = wait_until(lambda: (j := api.get(f"/jobs/{invocation_id}").json())["status"] == "SUCCEEDED" and j,
                      message="the job's end")
    assert done["progress"] == {"table_id": "t1", "step": 3, "of": 3, "best_score": 0.75}
    assert done["error"] is None and done["ended_at"] is not None


def test_progress_lock_conflict_and_cancel(api: httpx.Client) -> None:
    invocation_id = api.post("/jobs", json={"table_id": "t7", "steps": 1000}).json()["invocation_id"]
    running = wait_until(lambda: (j := api.get(f"/jobs/{invocation_id}").json())["progress"] and j,
                         message="progress")
    assert running["status"] == "RUNNING" and running["progress"]["table_id"] == "t7"

    conflict = api.post("/jobs", json={"table_id": "t7", "steps": 5})
    assert conflict.status_code == 409
    assert conflict.json()["detail"]["holder"] == invocation_id
    assert api.post("/jobs", json={"table_id": "t8", "steps": 1, "seconds_per_step": 0}).status_code == 202

    cancelled = api.put(f"/jobs/{invocation_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json() == {"cancelled": True}
    wait_until(lambda: api.get(f"/jobs/{invocation_id}").json()["status"] == "CANCELLED", message="cancelled")
    # The table is free again once its job's workflow has closed (shortly after CANCELLED shows).
    wait_until(lambda: api.post("/jobs", json={"table_id": "t7", "steps": 1, "seconds_per_step": 0}).status_code == 202,
               message="the table's lock released")


@pytest.mark.parametrize("unknown", [new_invocation_id(), "inv-mistyped", "not-an-id"])
def test_an_unknown_job_is_404(api: httpx.Client, unknown: str) -> None:
    assert api.get(f"/jobs/{unknown}").status_code == 404
    assert api.put(f"/jobs/{unknown}/cancel").status_code == 404


def test_a_request_out_of_bounds_is_422(api: httpx.Client) -> None:
    assert api.post("/jobs", json={"table_id": "t9", "steps": 0}).status_code == 422
