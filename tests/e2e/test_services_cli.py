"""Services through the CLI: deploy prints each service's address, `describe --project-name` lists
them (table and `--json`), `logs --service-name` prints their output (the service read the
project's `.env`), undeploy stops them."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.conftest import ControlPlane
from tests.e2e.cli_commands import ok, ok_json

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SERVICE = """
import http.server
import os
import multinode as mn

PORT = {port}


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello")


@mn.function()
def add(a, b):
    return a + b


@mn.service(port=PORT, cpu=0.2, memory="192 MiB")
def web():
    print("serving on", PORT, "for", os.environ["GREETING"], flush=True)
    http.server.HTTPServer(("127.0.0.1", PORT), Hello).serve_forever()
"""


def test_deploy_describe_logs_undeploy(control_plane: ControlPlane, project_name: str, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "main.py").write_text(SERVICE.format(port=port))
    (tasks / ".env").write_text("GREETING=the project's .env\n")
    deployed = ok("deploy", str(tasks), f"--project-name={project_name}").stdout
    assert "SERVICE  STATUS   VERSION" in deployed
    assert "web      RUNNING  ver-" in deployed and f"http://127.0.0.1:{port}" in deployed
    assert "add       function" in deployed

    described = ok("describe", f"--project-name={project_name}").stdout
    assert "services:" in described and f"http://127.0.0.1:{port}" in described
    [service] = ok_json("describe", f"--project-name={project_name}")["services"]
    assert service["service_name"] == "web" and service["status"] == "RUNNING"
    assert service["address"] == f"http://127.0.0.1:{port}" and service["restarts"] == 0
    assert service["uptime_seconds"] >= 0 and service["last_started_at"].endswith("Z")
    version = ok_json("describe", f"--project-name={project_name}")["latest_version_id"]
    assert service["version_id"] == version

    logs = ok("logs", f"--project-name={project_name}", "--service-name=web")
    assert f"serving on {port} for the project's .env" in logs.stdout

    undeployed = ok("undeploy", f"--project-name={project_name}", "--yes").stdout
    assert "stopped service web" in undeployed
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
