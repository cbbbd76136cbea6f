"""A service on the Fargate backend, through the CLI and a real worker: its ECS service runs one
task of the function image (the service entrypoint, played by a local process at its own
loopback address), found through Cloud Map; the task killed is replaced (restart count 1); an
upgrade starts the new version's task before the old one stops; undeploy deletes the ECS service
and the port closes. Its output is in CloudWatch, read by `multinode logs --service-name`."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from temporal_workers.backends.fargate.service_definition import discovery_name, ecs_service_name
from tests.conftest import wait_until
from tests.e2e.fargate.conftest import FargateTier
from tests.e2e.local_fargate_services import PlayedService
from tests.e2e.moto_stack import CLUSTER, NAMESPACE

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SERVICE = '''
import http.server
import json
import os

from multinode import Multinode

mn = Multinode()
PORT = {port}
MARK = "{mark}"


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({{"version_id": os.environ["MULTINODE_VERSION_ID"], "pid": os.getpid(),
                            "mark": MARK, "greeting": os.environ.get("GREETING")}}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@mn.service(port=PORT)
def web():
    # A real task binds 0.0.0.0 on its own interface; the harness gives each task its own
    # loopback address instead.
    host = os.environ.get("ECS_HARNESS_TASK_IP", "0.0.0.0")
    print(f"web {{MARK}} serving on {{host}}:{{PORT}}", flush=True)
    http.server.HTTPServer((host, PORT), Hello).serve_forever()
'''


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def upgrade(tier: FargateTier, port: int, mark: str) -> str:
    folder = tier.root / f"service-{mark}"
    folder.mkdir()
    (folder / "main.py").write_text(SERVICE.format(port=port, mark=mark))
    (folder / ".env").write_text(f"GREETING=hello from {mark}'s .env\n")
    result = tier.cli("upgrade", str(folder), f"--project-name={tier.project}", "--json", timeout=180)
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["version_id"])


def describe(tier: FargateTier) -> dict[str, Any]:
    result = tier.cli("describe", f"--project-name={tier.project}", "--json")
    assert result.returncode == 0, result.stderr
    [service] = json.loads(result.stdout)["services"]
    return dict(service)


def discovered(tier: FargateTier) -> list[str]:
    """The addresses Cloud Map answers for the service (what `web.P.<namespace>` resolves to)."""
    # DiscoverInstances goes to `data-<endpoint>`, a host moto's server is not at.
    discovery = boto3.client("servicediscovery", config=Config(inject_host_prefix=False))
    answer = discovery.discover_instances(
        NamespaceName=NAMESPACE, ServiceName=discovery_name(tier.project, "web"))
    return sorted(i["Attributes"]["AWS_INSTANCE_IPV4"] for i in answer["Instances"])


def get(address: str, port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{address}:{port}/", timeout=5) as response:
        return dict(json.loads(response.read()))


def accepts(address: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((address, port)) == 0


def test_a_service_on_fargate_lives_from_deploy_to_undeploy(tier: FargateTier) -> None:
    port = free_port()
    name = ecs_service_name(tier.project, "web")
    v1 = upgrade(tier, port, "v1")
    running = wait_until(lambda: (s := describe(tier))["status"] == "RUNNING" and s, timeout=120,
                         message="the service RUNNING")
    assert running["version_id"] == v1 and running["restarts"] == 0
    assert running["address"] == f"http://web.{tier.project}.{NAMESPACE}:{port}"
    ecs = boto3.client("ecs").describe_services(cluster=CLUSTER, services=[name])["services"][0]
    assert ecs["status"] == "ACTIVE" and ecs["desiredCount"] == 1 and ecs["launchType"] == "FARGATE"
    # moto does not keep the deployment settings: what the worker asked for is what ECS was told.
    deployment = tier.ecs_services.services[name].params["deploymentConfiguration"]
    assert (deployment["minimumHealthyPercent"], deployment["maximumPercent"]) == (100, 200)
    [first] = discovered(tier)
    answer = get(first, port)
    assert answer["version_id"] == v1 and answer["mark"] == "v1"
    # The project's .env reached the service through the task definition's environment file,
    # not through the package or the environment the worker wrote.
    assert answer["greeting"] == "hello from v1's .env"
    definition = boto3.client("ecs").describe_task_definition(
        taskDefinition=tier.ecs_services.services[name].task_definition)["taskDefinition"]
    [container] = definition["containerDefinitions"]
    assert [f["type"] for f in container["environmentFiles"]] == ["s3"]
    assert "hello from" not in json.dumps(container["environment"])

    # The task's process killed: ECS replaces the task, the control loop counts one restart.
    [task] = tier.ecs_services.live_tasks(name)
    assert task.process is not None
    os.kill(task.process.pid, signal.SIGKILL)
    restarted = wait_until(lambda: (s := describe(tier))["status"] == "RUNNING" and s["restarts"] == 1 and s,
                           timeout=120, message="the replaced task RUNNING, restarts 1")
    assert restarted["last_exit"] == "signal 9 (SIGKILL)" and restarted["version_id"] == v1
    [second] = wait_until(lambda: len(d := discovered(tier)) == 1 and d, message="one registered task")
    assert second != first and not accepts(first, port)
    assert get(second, port)["pid"] != answer["pid"]

    logs = tier.cli("logs", f"--project-name={tier.project}", "--service-name=web")
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.count("web v1 serving on") == 2, logs.stdout  # both tasks' output

    # The upgrade: the new task answers before the old one is stopped (ECS's new-before-old).
    played: PlayedService = tier.ecs_services.services[name]
    v2 = upgrade(tier, port, "v2")
    upgraded = wait_until(lambda: (s := describe(tier))["version_id"] == v2 and s["status"] == "RUNNING" and s,
                          timeout=120, message="v2 RUNNING")
    assert upgraded["restarts"] == 0
    [third] = wait_until(lambda: len(d := discovered(tier)) == 1 and d, message="only v2 registered")
    assert get(third, port)["version_id"] == v2 and not accepts(second, port)
    assert get(third, port)["greeting"] == "hello from v2's .env"
    old = [t for t in tier.ecs_services.services[name].tasks if t.address == second]
    assert old and old[0].stop_reason == "ECS deployment: replaced by a newer task definition"
    assert played.started == 2 and tier.ecs_services.services[name].started == 3

    # Undeploy: the ECS service deleted, its task stopped, the port closed.
    result = tier.cli("undeploy", f"--project-name={tier.project}", "--yes", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "stopped service web" in result.stdout
    gone = boto3.client("ecs").describe_services(cluster=CLUSTER, services=[name])["services"]
    assert gone and gone[0]["status"] == "INACTIVE"
    assert tier.ecs_services.live_tasks(name) == []
    deadline = time.monotonic() + 10
    while accepts(third, port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not accepts(third, port)


def test_a_service_needs_the_stacks_namespace(tier: FargateTier, tmp_path: Path) -> None:
    """A worker whose stack has no Cloud Map namespace says so on the service's status."""
    for worker in tier.workers:
        worker.backend.services = None
    upgrade(tier, free_port(), "v1")
    failed = wait_until(lambda: (s := describe(tier))["status"] == "FAILED" and s, timeout=60,
                        message="the service FAILED")
    assert "MULTINODE_FARGATE_SERVICE_NAMESPACE_ID" in failed["reason"]
