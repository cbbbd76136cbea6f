"""The CLI against a real Temporal dev server and worker: login, the deploy / upgrade /
undeploy cycle with in-flight invocations, list, describe at every level, logs after the
process is gone and followed live, invoke and cancel, and the registry surviving a restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import multinode as mn
from multinode import InvocationStatus, _client, errors
from multinode_cli.main import cli
from tests.conftest import REPO, ControlPlane, free_port_block, refused_port, wait_until, write_tasks

pytestmark = [pytest.mark.e2e]


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


def ok(*args: str, input: str | None = None) -> Result:
    result = run(*args, input=input)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result


def ok_json(*args: str) -> Any:
    return json.loads(ok(*args, "--json").stdout)


def fails(exit_code: int, *args: str, input: str | None = None) -> str:
    result = run(*args, input=input)
    assert result.exit_code == exit_code, (args, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def cli_process(control_plane: ControlPlane, *args: str, **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "multinode_cli.main", *args], env=control_plane.env, cwd=REPO,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


VERSIONED = """
from multinode import Multinode
import time
mn = Multinode()
VERSION = {version!r}

@mn.function()
def which(seconds=0.0):
    time.sleep(seconds)
    return VERSION

@mn.function()
def forever():
    while True:
        time.sleep(0.05)
"""


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


INSPECTED = """
from multinode import Multinode
from datetime import timedelta
import os, time
mn = Multinode()

@mn.function(cpu=0.5, memory="512 MiB", max_retries=3, timeout=timedelta(seconds=90), max_concurrency=4)
def child(x):
    print(f"child got {x}")
    return x * 2

@mn.function()
def parent(n):
    for i in range(n):
        print(f"parent line {i}")
    return child.call_remote(n)

@mn.function(max_retries=1)
def flaky():
    attempt = os.environ["MULTINODE_ATTEMPT"]
    print(f"attempt {attempt} starting")
    raise ValueError(f"broken in attempt {attempt}")

@mn.function()
def crash():
    print("written just before the crash")
    os.kill(os.getpid(), 9)

@mn.function()
def slow_printer(n, marker_dir):
    # Prints each line only once the previous one reached the reader (or, after 20 s without
    # it, records that the lines were not streamed).
    streamed = True
    for i in range(n):
        print(f"slow line {i}")
        deadline = time.time() + 20
        while streamed and not os.path.exists(os.path.join(marker_dir, f"seen-{i}")):
            if time.time() > deadline:
                open(os.path.join(marker_dir, "not_streamed"), "w").close()
                streamed = False
            time.sleep(0.02)
    return n
"""


@pytest.mark.timeout(90)
def test_describe_at_every_level_and_logs(control_plane: ControlPlane, deploy_tasks) -> None:
    manifest = deploy_tasks(INSPECTED)
    project, version = manifest.project_name, manifest.version_id
    parent = mn.get_deployed_function(project, "parent")
    parent_id = parent.start(3)
    assert parent.await_result(parent_id) == 6
    flaky = mn.get_deployed_function(project, "flaky")
    flaky_id = flaky.start()
    with pytest.raises(errors.InvocationFailedError):
        flaky.await_result(flaky_id)

    # Version level: every function with all its options.
    text = ok("describe", f"--project-name={project}", f"--version-id={version}").stdout
    assert f"project {project}, version {version} (deployed " in text and " UTC)" in text
    child_row = next(line.split() for line in text.splitlines() if line.startswith("child "))
    assert child_row == ["child", "function", "0.5", "512", "MiB", "90", "s", "4", "3"]
    as_json = ok_json("describe", f"--project-name={project}", f"--version-id={version}")
    child_spec = next(f for f in as_json["functions"] if f["name"] == "child")
    assert child_spec == {"name": "child", "is_generator": False, "kind": "function", "cpu": 0.5, "memory": "512 MiB",
                          "memory_mib": 512, "timeout_seconds": 90.0, "max_concurrency": 4,
                          "max_retries": 3}
    assert as_json["created_at"].endswith("Z")

    # Project level.
    text = ok("describe", f"--project-name={project}").stdout
    assert f"latest version: {version}" in text and "DEPLOYED (UTC)" in text
    assert "MultinodeProject%20%3D%20%22" + project in text  # the Web UI's filtered list

    # Function level: options and recent invocations with their status.
    described = ok_json("describe", f"--project-name={project}", "--function-name=parent")
    assert [(r["invocation_id"], r["status"]) for r in described["invocations"]] == [(parent_id, "SUCCEEDED")]
    assert described["invocations"][0]["created_at"].endswith("Z")
    assert described["function"]["max_retries"] == 0
    children = ok_json("describe", f"--project-name={project}", "--function-name=child")["invocations"]
    assert len(children) == 1 and children[0]["parent_invocation_id"] == parent_id
    child_id = children[0]["invocation_id"]
    text = ok("describe", f"--project-name={project}", "--function-name=parent").stdout
    assert "recent invocations (newest first):" in text and parent_id in text and "SUCCEEDED" in text

    # Invocation level: parent, children, attempts with times, outcome and error; the Web UI page.
    one = ok_json("describe", f"--project-name={project}", "--function-name=parent", f"--invocation-id={parent_id}")
    assert one["status"] == "SUCCEEDED" and one["parent_invocation_id"] is None
    assert [c["invocation_id"] for c in one["children"]] == [child_id]
    assert one["web_ui_url"].endswith(f"/namespaces/default/workflows/{parent_id}")
    assert [h["status"] for h in one["status_history"]] == ["PENDING", "RUNNING", "SUCCEEDED"]
    assert all(h["at"].endswith("Z") for h in one["status_history"])
    (attempt,) = one["attempts"]
    assert attempt["outcome"] == "succeeded" and attempt["exit_code"] == 0
    assert attempt["started_at"].endswith("Z") and attempt["ended_at"] >= attempt["started_at"]
    child = ok_json("describe", f"--project-name={project}", "--function-name=child", f"--invocation-id={child_id}")
    assert child["parent_invocation_id"] == parent_id and child["children"] == []

    # Only that version's invocations with --version-id; an unknown version is one clear error.
    pinned = ok_json("describe", f"--project-name={project}", "--function-name=parent", f"--version-id={version}")
    assert [r["invocation_id"] for r in pinned["invocations"]] == [parent_id]
    assert "MultinodeVersion%20%3D%20%22" + version in pinned["web_ui_url"]
    unknown = "ver-" + "0" * 26
    assert f"has no version {unknown!r}" in fails(1, "describe", f"--project-name={project}",
                                                   "--function-name=parent", f"--version-id={unknown}")

    # The Web UI: a readable summary, and project, function, version, status and parent filter.
    async def web_ui_view() -> tuple[str | None, dict[str, int]]:
        engine = await _client.default_client().engine()
        summary = await (await engine.client.get_workflow_handle(child_id).describe()).static_summary()
        counts = {}
        for name, value in [("MultinodeFunction", "parent"), ("MultinodeVersion", version),
                            ("MultinodeStatus", "SUCCEEDED"), ("MultinodeParent", parent_id)]:
            query = f'MultinodeProject = "{project}" AND {name} = "{value}"'
            counts[name] = (await engine.client.count_workflows(query)).count
        return summary, counts

    expected = {"MultinodeFunction": 1, "MultinodeVersion": 3, "MultinodeStatus": 2, "MultinodeParent": 1}
    summary, _ = wait_until(lambda: (view := _client.default_client().run(web_ui_view()))[1] == expected
                            and view, timeout=10, message="Web UI filters")
    assert summary == f"child(3) · {project} @ {version} · child of {parent_id}"

    text = ok("describe", f"--project-name={project}", "--function-name=flaky", f"--invocation-id={flaky_id}").stdout
    assert f"Web UI:          http://127.0.0.1:8233/namespaces/default/workflows/{flaky_id}" in text
    assert "failed attempts: 2" in text and "ValueError: broken in attempt 2" in text
    rows = [line.split(None, 2) for line in text.splitlines() if line[:2] in ("1 ", "2 ")]
    assert [r[:2] for r in rows] == [["1", "failed"], ["2", "failed"]]
    assert "ValueError: broken in attempt 1" in text and text.count(" UTC") >= 6
    assert "remote traceback:" in text and "in flaky" in text
    assert "not an invocation of" in fails(1, "describe", f"--project-name={project}",
                                           "--function-name=parent", f"--invocation-id={flaky_id}")

    # Logs, after every process is gone: the latest attempt by default, or the one asked for.
    assert ok("logs", f"--invocation-id={parent_id}").stdout == "".join(f"parent line {i}\n" for i in range(3))
    assert ok("logs", f"--invocation-id={child_id}", f"--project-name={project}",
              "--function-name=child").stdout == "child got 3\n"
    latest = ok("logs", f"--invocation-id={flaky_id}")
    assert latest.stdout.startswith("attempt 2 starting\nTraceback (most recent call last):\n")
    assert "ValueError: broken in attempt 2" in latest.stdout and "_runner.py" not in latest.stdout
    assert "# attempt 2 of" in latest.stderr
    first = ok("logs", f"invocation-id={flaky_id}", "attempt=1").stdout
    assert first.startswith("attempt 1 starting\nTraceback") and first.endswith("ValueError: broken in attempt 1\n")
    lines = [json.loads(line) for line in ok("logs", f"--invocation-id={flaky_id}", "--attempt", "1", "--json").stdout.splitlines()]
    assert lines[0] == {"invocation_id": flaky_id, "attempt": 1, "line": "attempt 1 starting"}
    assert "has no attempt 3" in fails(1, "logs", f"--invocation-id={flaky_id}", "--attempt", "3")
    assert "not an invocation of" in fails(1, "logs", f"--invocation-id={flaky_id}", "--function-name=parent")

    # Unbuffered: a line printed just before the process is killed outright is kept.
    crash = mn.get_deployed_function(project, "crash")
    crash_id = crash.start()
    with pytest.raises(errors.InvocationFailedError, match="SIGKILL"):
        crash.await_result(crash_id)
    assert ok("logs", f"--invocation-id={crash_id}").stdout == "written just before the crash\n"


@pytest.mark.timeout(60)
def test_logs_follow_streams_until_the_attempt_ends(control_plane: ControlPlane, deploy_tasks, tmp_path: Path) -> None:
    manifest = deploy_tasks(INSPECTED)
    printer = mn.get_deployed_function(manifest.project_name, "slow_printer")
    count = 5
    invocation_id = printer.start(count, str(tmp_path))
    follower = cli_process(control_plane, "logs", f"--invocation-id={invocation_id}", "--follow")
    assert follower.stdout is not None
    lines: list[str] = []
    for line in follower.stdout:  # line by line as the CLI writes them
        lines.append(line.rstrip("\n"))
        (tmp_path / f"seen-{len(lines) - 1}").touch()  # lets the function print the next line
    follower.wait(timeout=30)
    assert follower.returncode == 0, follower.stderr.read() if follower.stderr else ""
    assert lines == [f"slow line {i}" for i in range(count)]
    # Streamed: each line reached the reader before the function printed the next one.
    assert not (tmp_path / "not_streamed").exists()
    # And the follower stopped once the attempt ended.
    assert printer.get(invocation_id).status == InvocationStatus.SUCCEEDED


@pytest.mark.timeout(60)
def test_invoke_and_cancel_from_the_shell(control_plane: ControlPlane, deploy_tasks, tmp_path: Path) -> None:
    manifest = deploy_tasks(VERSIONED.format(version="v1"))
    project = manifest.project_name
    started = ok("invoke", project, "forever").stdout.strip()
    assert started.startswith("inv-") and len(started.splitlines()) == 1
    forever = mn.get_deployed_function(project, "forever")
    wait_until(lambda: forever.get(started).status == InvocationStatus.RUNNING, message="running")
    assert ok("cancel", project, "forever", started).stdout.strip() == f"{started}: cancellation requested"
    with pytest.raises(errors.InvocationCancelledError):
        forever.await_result(started)
    again = ok("cancel", project, "forever", started).stdout
    assert "already finished (CANCELLED); nothing to cancel" in again

    # --wait on a cancelled invocation: exit 4, one line.
    waiter = cli_process(control_plane, "invoke", project, "forever", "--wait")
    assert waiter.stdout is not None
    waited_id = waiter.stdout.readline().strip()
    assert waited_id.startswith("inv-")
    wait_until(lambda: forever.get(waited_id).status == InvocationStatus.RUNNING, message="running")
    ok("cancel", project, "forever", waited_id)
    _, stderr = waiter.communicate(timeout=30)
    assert waiter.returncode == 4
    assert stderr.strip().splitlines() == [f"error: invocation {waited_id} of {project}.forever was cancelled"]
    assert "no invocation" in fails(1, "cancel", project, "forever", "inv-" + "0" * 26)


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
