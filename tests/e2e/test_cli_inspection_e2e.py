"""The CLI's read commands against a real Temporal dev server and worker: describe at every
level, logs after the process is gone and followed live, invoke and cancel from the shell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import multinode as mn
from multinode import InvocationStatus, _client, errors
from tests.conftest import ControlPlane, wait_until
from tests.e2e.cli_commands import VERSIONED, cli_process, fails, ok, ok_json

pytestmark = [pytest.mark.e2e]


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
