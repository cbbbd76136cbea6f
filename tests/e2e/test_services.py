"""Services through the real dev server and worker: examples/job_service deployed, talked to over
HTTP (a job started, its progress read, a lock conflict, a cancel), its process killed and
restarted, upgraded, undeployed; a port already taken; a worker restart."""

from __future__ import annotations

import os
import shutil
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from multinode import admin
from multinode.admin import ServiceDescription, ServiceStatus
from tests.conftest import REPO, ControlPlane, PrivateQueue, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

EXAMPLE = REPO / "examples" / "job_service" / "tasks"
START_SECONDS = 120.0  # the first deploy builds the example's environment (fastapi, uvicorn)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def service_folder(destination: Path, port: int, marker: str = "") -> Path:
    """The example with its port moved to `port` (and a marker making a new package)."""
    shutil.copytree(EXAMPLE, destination)
    main = destination / "main.py"
    main.write_text(main.read_text().replace("PORT = 8080", f"PORT = {port}") + f"\n# {marker}\n")
    return destination


def the_service(project_name: str, client: object = None) -> ServiceDescription:
    [service] = admin.describe_services(project_name, client=client)  # type: ignore[arg-type]
    return service


def closed(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def undeployed(project_name: str) -> Iterator[list[admin.UndeployResult]]:
    """Undeploys the test's project at the end if the test did not."""
    results: list[admin.UndeployResult] = []
    yield results
    if not results:
        try:
            admin.undeploy(project_name, wait_seconds=30)
        except Exception:
            pass


def test_a_service_lives_from_deploy_to_undeploy(
    control_plane: ControlPlane, project_name: str, tmp_path: Path, undeployed: list[admin.UndeployResult]
) -> None:
    port = free_port()
    v1 = admin.deploy(service_folder(tmp_path / "v1", port), project_name)
    assert [(s.name, s.port, s.kind) for s in v1.services] == [("api", port, "service")]
    [api] = admin.wait_for_services(project_name, v1.version_id, timeout_seconds=START_SECONDS)
    assert api.status == ServiceStatus.RUNNING, (api, control_plane.worker_log()[-3000:])
    assert api.address == f"http://127.0.0.1:{port}" and api.version_id == v1.version_id
    assert api.restarts == 0 and api.uptime_seconds is not None

    with httpx.Client(base_url=api.address, timeout=30) as http:
        first = http.get("/version").json()
        assert first["version_id"] == v1.version_id
        job = http.post("/jobs", json={"table_id": "t1", "steps": 1000, "seconds_per_step": 0.05})
        assert job.status_code == 202
        job_id = job.json()["invocation_id"]
        seen = wait_until(lambda: (j := http.get(f"/jobs/{job_id}").json())["progress"] and j, message="progress")
        assert seen["status"] == "RUNNING" and seen["progress"]["table_id"] == "t1"
        assert seen["version_id"] == v1.version_id  # the service's own version
        conflict = http.post("/jobs", json={"table_id": "t1", "steps": 1})
        assert conflict.status_code == 409 and conflict.json()["detail"]["holder"] == job_id
        assert http.put(f"/jobs/{job_id}/cancel").json() == {"cancelled": True}
        wait_until(lambda: http.get(f"/jobs/{job_id}").json()["status"] == "CANCELLED", message="the cancel")

        os.kill(first["pid"], signal.SIGKILL)
        restarted = wait_until(
            lambda: (s := the_service(project_name)).status == ServiceStatus.RUNNING and s.restarts == 1 and s,
            timeout=60, message="the restart",
        )
        assert restarted.last_exit == "signal 9 (SIGKILL)" and restarted.last_exit_code == -9
        assert http.get("/version").json()["pid"] != first["pid"]

    logs = "".join(admin.read_service_logs(project_name, "api").chunks)
    assert "Uvicorn running" in logs and "--- run 2 of service api" in logs

    v2 = admin.upgrade(service_folder(tmp_path / "v2", port, "v2"), project_name)
    [api] = admin.wait_for_services(project_name, v2.version_id, timeout_seconds=START_SECONDS)
    assert api.status == ServiceStatus.RUNNING and api.version_id == v2.version_id and api.restarts == 0
    assert httpx.get(f"http://127.0.0.1:{port}/version", timeout=10).json()["version_id"] == v2.version_id

    result = admin.undeploy(project_name, wait_seconds=60)
    undeployed.append(result)
    assert result.services_stopped == ["api"] and not result.services_still_stopping
    assert closed(port)


def test_a_port_already_taken_is_a_clear_failure(
    control_plane: ControlPlane, project_name: str, tmp_path: Path, undeployed: list[admin.UndeployResult]
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        port = squatter.getsockname()[1]
        manifest = admin.deploy(service_folder(tmp_path / "tasks", port), project_name)
        [api] = admin.wait_for_services(project_name, manifest.version_id, timeout_seconds=START_SECONDS)
        assert api.status == ServiceStatus.FAILED
        assert api.reason is not None and f"port {port} on 127.0.0.1 is already in use" in api.reason
        assert api.restarts == 0
    undeployed.append(admin.undeploy(project_name, wait_seconds=60))


def test_a_service_comes_back_after_its_worker_is_killed(
    private_queue: PrivateQueue, project_name: str, tmp_path: Path
) -> None:
    client = private_queue.client
    worker = private_queue.start_worker()
    port = free_port()
    manifest = admin.deploy(service_folder(tmp_path / "tasks", port), project_name, client=client)
    try:
        [api] = admin.wait_for_services(project_name, manifest.version_id, timeout_seconds=START_SECONDS,
                                        client=client)
        assert api.status == ServiceStatus.RUNNING, api
        before = httpx.get(f"{api.address}/version", timeout=10).json()["pid"]

        private_queue.kill_worker(worker)  # kill -9: the service's process goes with it
        wait_until(lambda: closed(port), timeout=10, message="the service's end with its worker")
        private_queue.start_worker()

        def back() -> int | None:
            try:
                pid: int = httpx.get(f"{api.address}/version", timeout=2).json()["pid"]
                return pid
            except httpx.TransportError:
                return None

        after = wait_until(back, timeout=90, interval=0.5, message="the service on the new worker")
        assert after != before
        state = wait_until(lambda: (s := the_service(project_name, client)).status == ServiceStatus.RUNNING and s,
                           message="RUNNING")
        assert state.restarts == 0  # a worker's loss is not the service's failure
    finally:
        admin.undeploy(project_name, wait_seconds=60, client=client)
    assert closed(port)


def test_a_service_comes_back_when_multinode_dev_restarts(tmp_path: Path) -> None:
    """The control plane stopped as Ctrl-C stops `multinode dev` (the worker first, gracefully:
    the service's process is stopped and its run handed back), then started again on the same
    state folder: the service runs again without a new deploy."""
    from multinode.testing.control_plane import running_control_plane

    home = tmp_path / "home"
    port = free_port()
    queue = {"MULTINODE_TASK_QUEUE": "multinode"}  # as `multinode dev` has it, the same each time
    with running_control_plane(home, **queue):
        manifest = admin.deploy(service_folder(tmp_path / "tasks", port), "restarted")
        [api] = admin.wait_for_services("restarted", manifest.version_id, timeout_seconds=START_SECONDS)
        assert api.status == ServiceStatus.RUNNING, api
    assert closed(port)
    with running_control_plane(home, **queue):
        try:
            back = wait_until(
                lambda: not closed(port) and (s := the_service("restarted")).status == ServiceStatus.RUNNING and s,
                timeout=90, interval=0.5, message="the service after the restart",
            )
            assert back.version_id == manifest.version_id and back.restarts == 0
            assert httpx.get(f"http://127.0.0.1:{port}/version", timeout=10).json()["version_id"] == manifest.version_id
        finally:
            admin.undeploy("restarted", wait_seconds=60)
    assert closed(port)


BROKEN = """
import multinode as mn

@mn.service(port={port})
def broken():
    print("reading the settings", flush=True)
    raise RuntimeError("no DATABASE_URL in .env")
"""

CLOSES = """
import asyncio
import multinode as mn

async def hello(reader, writer):
    writer.close()

@mn.service(port={port})
async def closes():
    server = await asyncio.start_server(hello, "127.0.0.1", {port})
    await asyncio.sleep(3)
    server.close()  # still running, no longer serving
    await asyncio.sleep(3600)
"""


def test_a_service_that_never_gets_healthy_is_failed_with_its_log(
    control_plane: ControlPlane, deploy_tasks, project_name: str, undeployed: list[admin.UndeployResult]  # type: ignore[no-untyped-def]
) -> None:
    port = free_port()
    deploy_tasks(BROKEN.format(port=port))
    failed = wait_until(lambda: (s := the_service(project_name)).status == ServiceStatus.FAILED and s,
                        timeout=60, interval=0.2, message="FAILED")
    assert failed.reason is not None and failed.reason.startswith("never became healthy in 3 runs in a row")
    assert "RuntimeError: no DATABASE_URL in .env" in failed.reason
    assert failed.restarts == 2 and failed.last_exit == "exit code 1"  # three runs: two restarts
    undeployed.append(admin.undeploy(project_name, wait_seconds=30))


def test_a_service_whose_port_closes_is_unhealthy(
    control_plane: ControlPlane, deploy_tasks, project_name: str, undeployed: list[admin.UndeployResult]  # type: ignore[no-untyped-def]
) -> None:
    port = free_port()
    deploy_tasks(CLOSES.format(port=port))
    wait_until(lambda: the_service(project_name).status == ServiceStatus.RUNNING, timeout=60, message="RUNNING")
    unhealthy = wait_until(lambda: (s := the_service(project_name)).status == ServiceStatus.UNHEALTHY and s,
                           timeout=30, interval=0.2, message="UNHEALTHY")
    assert unhealthy.reason == f"port {port} stopped accepting connections" and unhealthy.restarts == 0
    assert unhealthy.uptime_seconds is None and unhealthy.pid is not None
    undeployed.append(admin.undeploy(project_name, wait_seconds=30))
    assert closed(port)


HOG = """
import http.server
import multinode as mn

class Grow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ballast = b"x" * (400 * 1024 * 1024)  # over the 128 MiB limit: the kernel kills it
        self.send_response(200)
        self.end_headers()
        self.wfile.write(ballast[:1])

@mn.service(port={port}, memory="128 MiB")
def hog():
    http.server.HTTPServer(("127.0.0.1", {port}), Grow).serve_forever()
"""


def test_a_service_runs_under_its_memory_limit(
    control_plane: ControlPlane, deploy_tasks, project_name: str, undeployed: list[admin.UndeployResult]  # type: ignore[no-untyped-def]
) -> None:
    from temporal_workers.backends.local.cgroups import CgroupLimiter

    if not CgroupLimiter().enabled:
        reason = "no writable cgroup tree here; the worker logs that limits are off"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}")
        pytest.skip(reason)
    port = free_port()
    deploy_tasks(HOG.format(port=port))
    running = wait_until(lambda: (s := the_service(project_name)).status == ServiceStatus.RUNNING and s,
                         timeout=60, message="RUNNING")
    cgroups = Path(f"/proc/{running.pid}/cgroup").read_text()
    assert f"/multinode/service-{project_name}-hog-1" in cgroups
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=30).read()
    killed = wait_until(lambda: (s := the_service(project_name)).restarts == 1 and s, timeout=60,
                        message="the restart after the kill")
    assert killed.last_exit == "signal 9 (SIGKILL)"
    undeployed.append(admin.undeploy(project_name, wait_seconds=30))
