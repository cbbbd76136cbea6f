"""The CLI against a real Temporal dev server and worker: login, the deploy / upgrade /
undeploy cycle with in-flight invocations, list, and the registry surviving a restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import multinode as mn
from multinode import InvocationStatus, _client, errors
from tests.conftest import REPO, ControlPlane, free_port_block, refused_port, wait_until, write_tasks
from tests.e2e.cli_commands import VERSIONED, fails, ok, ok_json

pytestmark = [pytest.mark.e2e]




@pytest.mark.timeout(60)
def test_login_against_the_real_server(control_plane: ControlPlane, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "fresh-home"
    monkeypatch.setenv("MULTINODE_HOME", str(home))
    monkeypatch.delenv("MULTINODE_API_URL")
    monkeypatch.delenv("MULTINODE_TASK_QUEUE")
    _client.set_default_client(None)
    try:
        result = ok("login", "--api-url", control_plane.address, "--task-queue", control_plane.task_queue)
        assert f"logged in to {control_plane.address} (plaintext, no key, server " in result.stdout
        profile = home / "profile.json"
        assert oct(profile.stat().st_mode & 0o777) == "0o600"
        assert json.loads(profile.read_text()) == {"api_url": control_plane.address,
                                                  "task_queue": control_plane.task_queue}
        # The CLI and the SDK now reach the control plane through the profile alone.
        assert isinstance(ok_json("list"), list)
        assert _client.default_client().settings.source == "profile"

        # A wrong address is refused at once and stores nothing.
        ok("logout")
        wrong = fails(3, "login", "--api-url", f"127.0.0.1:{refused_port()}")
        assert "cannot reach" in wrong
        assert not profile.exists()

        from multinode.contract import names

        monkeypatch.setattr(names, "DEFAULT_PORT", refused_port())
        line = fails(3, "list")  # back to the default (a local `multinode dev`): none runs there
        assert "multinode dev" in line
    finally:
        _client.set_default_client(None)


@pytest.mark.timeout(120)
def test_deploy_upgrade_undeploy_cycle(control_plane: ControlPlane, project_name: str, tmp_path: Path) -> None:
    folder = write_tasks(tmp_path / "tasks", VERSIONED.format(version="v1"))
    v1 = ok_json("deploy", str(folder), f"--project-name={project_name}")["version_id"]
    assert fails(1, "deploy", str(folder), f"project-name={project_name}").endswith(
        f"project {project_name!r} already exists; deploy a new version of it with `multinode upgrade`")
    missing = f"{project_name}_new"
    refused = fails(1, "upgrade", str(folder), f"--project-name={missing}")
    assert f"no project named {missing!r}" in refused and "upgrade --deploy" in refused
    created = ok_json("upgrade", str(folder), f"--project-name={missing}", "--deploy")
    assert created["project_name"] == missing

    which = mn.get_deployed_function(project_name, "which")
    in_flight_v1 = which.start(2.5)
    wait_until(lambda: which.get(in_flight_v1).status == InvocationStatus.RUNNING, message="v1 running")

    write_tasks(folder, VERSIONED.format(version="v2"))
    v2 = ok_json("upgrade", str(folder), f"--project-name={project_name}")["version_id"]
    assert v2 != v1

    pinned = mn.get_deployed_function(project_name, "which", version_id=v1)
    assert pinned.call_remote() == "v1"  # a pinned old version runs the old code
    assert which.call_remote() == "v2"  # a new start uses the latest
    assert which.await_result(in_flight_v1) == "v1"  # in flight across the upgrade: kept v1
    assert which.get(in_flight_v1).version_id == v1

    waited = ok("invoke", project_name, "which", "--args", "[0]", "--wait").stdout.splitlines()
    assert waited[0].startswith("inv-") and waited[1] == '"v2"'

    listed = {p["project_name"]: p for p in ok_json("list")}
    assert listed[project_name]["latest_version_id"] == v2
    assert listed[project_name]["created_at"].endswith("Z")
    assert sorted(listed[project_name]["functions"]) == ["forever", "which"]
    text = ok("list").stdout
    assert "CREATED (UTC)" in text and project_name in text and v2 in text

    described = ok_json("describe", f"--project-name={project_name}")
    assert [v["version_id"] for v in described["versions"]] == [v1, v2]
    assert described["latest_version_id"] == v2 and described["closing"] is False

    # Two invocations in flight, one of them on the old version, then undeploy.
    forever_latest = mn.get_deployed_function(project_name, "forever").start()
    forever_v1 = mn.get_deployed_function(project_name, "forever", version_id=v1).start()
    for invocation_id in (forever_latest, forever_v1):
        wait_until(lambda i=invocation_id: mn.get_deployed_function(project_name, "forever").get(i).status
                   == InvocationStatus.RUNNING, message="forever running")

    refused = fails(1, "undeploy", f"--project-name={project_name}", input="n\n")
    assert "nothing was changed" in refused
    assert project_name in {p["project_name"] for p in ok_json("list")}

    result = ok("undeploy", f"project-name={project_name}", "--yes")
    assert f"project {project_name} undeployed; cancelled 2 in-flight invocations" in result.stdout
    forever = mn.get_deployed_function(project_name, "forever")
    for invocation_id in (forever_latest, forever_v1):
        assert forever.get(invocation_id).status == InvocationStatus.CANCELLED

    with pytest.raises(errors.ProjectDoesNotExistError):
        which.start(0)
    with pytest.raises(errors.ProjectDoesNotExistError):
        mn.get_deployed_function(project_name, "which", version_id=v1).start(0)
    assert "no project named" in fails(1, "invoke", project_name, "which")
    assert "no project named" in fails(1, "describe", f"--project-name={project_name}")
    assert "no project named" in fails(1, "undeploy", f"--project-name={project_name}", "--yes")
    assert project_name not in {p["project_name"] for p in ok_json("list")}
    # Past invocations stay readable, and the name can be deployed again.
    assert which.get(in_flight_v1).status == InvocationStatus.SUCCEEDED
    ok("undeploy", f"--project-name={missing}", "--yes")
    assert ok_json("deploy", str(folder), f"--project-name={project_name}")["version_id"] not in (v1, v2)
    ok("undeploy", f"--project-name={project_name}", "--yes")


def mark_closing(project_name: str) -> None:
    """What an undeploy interrupted right after its first step leaves behind."""

    async def close() -> None:
        engine = await _client.default_client().engine()
        await engine.undeploy_project(project_name, finish=False)

    _client.default_client().run(close())


@pytest.mark.timeout(60)
def test_an_interrupted_undeploy_shows_and_finishes(control_plane: ControlPlane, deploy_tasks,
                                                   project_name: str, tmp_path: Path) -> None:
    deploy_tasks(VERSIONED.format(version="v1"))
    forever = mn.get_deployed_function(project_name, "forever")
    invocation_id = forever.start()
    wait_until(lambda: forever.get(invocation_id).status == InvocationStatus.RUNNING, message="running")
    mark_closing(project_name)

    # The list comes from visibility, which follows the memo within moments.
    wait_until(lambda: [p["closing"] for p in ok_json("list") if p["project_name"] == project_name] == [True],
               timeout=10, message="listed as closing")
    assert f"{project_name} (undeploying)" in ok("list").stdout
    assert ok_json("describe", f"--project-name={project_name}")["closing"] is True
    assert "being undeployed" in ok("describe", f"--project-name={project_name}").stdout
    for command in ("upgrade", "deploy"):
        refused = fails(1, command, str(tmp_path / "tasks"), f"--project-name={project_name}")
        assert f"project {project_name!r} is being undeployed" in refused

    result = ok("undeploy", f"--project-name={project_name}", "--yes")
    assert "cancelled 1 in-flight invocation" in result.stdout
    assert forever.get(invocation_id).status == InvocationStatus.CANCELLED
    assert project_name not in {p["project_name"] for p in ok_json("list")}


@pytest.mark.timeout(60)
def test_starts_are_refused_while_undeploying(control_plane: ControlPlane, deploy_tasks,
                                              project_name: str) -> None:
    manifest = deploy_tasks(VERSIONED.format(version="v1"))
    mark_closing(project_name)
    try:
        with pytest.raises(errors.ProjectDoesNotExistError, match="undeploy"):
            mn.get_deployed_function(project_name, "which").start(0)
        with pytest.raises(errors.ProjectDoesNotExistError, match="undeploy"):
            mn.get_deployed_function(project_name, "which", version_id=manifest.version_id).start(0)
    finally:
        ok("undeploy", f"--project-name={project_name}", "--yes")


@pytest.mark.timeout(90)
def test_registry_survives_a_restart_and_needs_only_the_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Projects and versions live in the control plane: after a hard restart of everything, a
    process with only the address (no local state) lists and describes them."""
    from multinode._client import Client
    from multinode.admin.deployment import deploy
    from multinode.admin.devserver import DevServer, DevServerConfig
    from multinode.contract.connection import ConnectionSettings

    monkeypatch.setenv("MULTINODE_HOME", str(tmp_path / "deployer-home"))
    # The dev server binds fixed ports itself (it cannot be handed sockets): a probed block.
    config = DevServerConfig(home=tmp_path / "cp", port=free_port_block(), headless=True)
    server = DevServer(config).start()
    try:
        settings = ConnectionSettings(config.address, None, "default", "restart-q", "environment")
        client = Client(settings)
        try:
            folder = write_tasks(tmp_path / "tasks", VERSIONED.format(version="v1"))
            manifest = deploy(folder, "survivor", client=client)
        finally:
            client.close()
        server.kill()  # kill -9: nothing is flushed on purpose
        server.stop()
        # The same database; fresh ports (the old ones may linger in TIME_WAIT).
        config = DevServerConfig(home=config.home, port=free_port_block(), headless=True)
        server = DevServer(config).start()

        env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "nobody"),
               "MULTINODE_HOME": str(tmp_path / "empty-home"), "MULTINODE_API_URL": config.address}

        def cli_json(*args: str) -> Any:
            completed = subprocess.run([sys.executable, "-m", "multinode_cli.main", *args, "--json"], env=env, check=False,
                                       cwd=REPO, capture_output=True, text=True, timeout=60)
            assert completed.returncode == 0, completed.stderr
            return json.loads(completed.stdout)

        (listed,) = cli_json("list")
        assert listed["project_name"] == "survivor" and listed["latest_version_id"] == manifest.version_id
        version = cli_json("describe", "--project-name=survivor", f"--version-id={manifest.version_id}")
        assert sorted(f["name"] for f in version["functions"]) == ["forever", "which"]
    finally:
        server.stop()
