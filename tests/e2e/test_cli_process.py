"""The CLI as a shell runs it, against the real dev server and worker: `multinode get` at each
ending, a second `multinode dev` on the same state folder or ports refused with one clear line,
Ctrl-C of `multinode dev` stopping what it started, and exit code 130 for an interrupted
command."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import multinode as mn
from multinode import InvocationStatus, errors
from tests.conftest import REPO, ControlPlane, free_port_block, interruptible, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

TASKS = """
import time
from multinode import Multinode

mn = Multinode()


@mn.function()
def add(a, b):
    return a + b


@mn.function(max_retries=1)
def broken():
    raise ValueError("broken on purpose")


@mn.function()
def forever():
    while True:
        time.sleep(0.05)
"""


def multinode(env: dict[str, str], *args: str, **popen: Any) -> subprocess.Popen[str]:
    """The CLI in a process of its own, which a SIGINT interrupts as Ctrl-C would."""
    return subprocess.Popen(interruptible(sys.executable, "-m", "multinode_cli.main", *args), env=env, cwd=REPO,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def finished(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "multinode_cli.main", *args], env=env, cwd=REPO, text=True,
                          capture_output=True, timeout=60, check=False)


def test_get_shows_each_ending(control_plane: ControlPlane, deploy_tasks) -> None:  # type: ignore[no-untyped-def]
    manifest = deploy_tasks(TASKS)
    project = manifest.project_name
    add, broken = mn.get_deployed_function(project, "add"), mn.get_deployed_function(project, "broken")
    succeeded = add.start(1, 2)
    add.await_result(succeeded)
    failed = broken.start()
    with pytest.raises(errors.InvocationFailedError):
        broken.await_result(failed)

    shown = finished(control_plane.env, "get", project, "add", succeeded)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        f"invocation_id: {succeeded}", "status: SUCCEEDED", "result: 3", "error: None", "terminated: True",
        "num_failed_attempts: 0", f"version_id: {manifest.version_id}", "parent_invocation_id: None",
    ]
    shown = finished(control_plane.env, "get", project, "broken", failed, "--json")
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["status"] == "FAILED" and record["result"] is None and record["terminated"] is True
    assert record["num_failed_attempts"] == 2  # max_retries=1: both attempts failed
    assert "ValueError" in record["error"] and "broken on purpose" in record["error"]

    unknown = finished(control_plane.env, "get", project, "add", "inv-" + "0" * 26)
    assert unknown.returncode == 1
    (line,) = unknown.stderr.strip().splitlines()
    assert line.startswith("error: ") and "inv-" + "0" * 26 in line


def test_ctrl_c_of_a_waiting_command_exits_130_and_leaves_the_invocation(
    control_plane: ControlPlane, deploy_tasks
) -> None:  # type: ignore[no-untyped-def]
    project = deploy_tasks(TASKS).project_name
    forever = mn.get_deployed_function(project, "forever")
    waiter = multinode(control_plane.env, "invoke", project, "forever", "--wait")
    try:
        assert waiter.stdout is not None
        invocation_id = waiter.stdout.readline().strip()
        assert invocation_id.startswith("inv-")
        wait_until(lambda: forever.get(invocation_id).status == InvocationStatus.RUNNING, message="running")
        waiter.send_signal(signal.SIGINT)
        _, stderr = waiter.communicate(timeout=30)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.communicate()
    assert waiter.returncode == 130, stderr
    assert stderr.strip() == "", stderr  # no traceback, no error line: the user asked to stop
    # Only the wait was interrupted: the invocation goes on.
    assert forever.get(invocation_id).status == InvocationStatus.RUNNING
    assert forever.cancel(invocation_id)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def first_dev(tmp_path: Path) -> Iterator[tuple[dict[str, str], int, subprocess.Popen[str]]]:
    """A `multinode dev` of the test's own (its own state folder and ports), running."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MULTINODE_")}
    env["MULTINODE_HOME"] = str(tmp_path / "home")
    # The dev server takes fixed ports (it pins port+10 and port+11) and cannot be handed open
    # sockets: a probed block is the best available.
    port = free_port_block()
    dev = multinode(env, "dev", "--headless", "--port", str(port))
    try:
        assert dev.stdout is not None
        lines = []
        while not lines or not lines[-1].startswith("Press Ctrl-C to stop"):
            line = dev.stdout.readline()
            assert line, (lines, dev.communicate())
            lines.append(line.strip())
        yield env, port, dev
    finally:
        if dev.poll() is None:
            dev.kill()
            dev.communicate()


def test_a_second_multinode_dev_is_refused_and_ctrl_c_stops_the_first(
    first_dev: tuple[dict[str, str], int, subprocess.Popen[str]], tmp_path: Path
) -> None:
    env, port, dev = first_dev
    home = env["MULTINODE_HOME"]

    same_home = finished(env, "dev", "--headless", "--port", str(free_port_block()))
    assert same_home.returncode == 1, same_home
    assert same_home.stderr.strip().splitlines() == [
        f"error: another `multinode dev` is already using {home}; stop it first (or set MULTINODE_HOME "
        f"to another folder)"
    ]
    same_port = finished({**env, "MULTINODE_HOME": str(tmp_path / "other-home")}, "dev", "--headless",
                         "--port", str(port))
    assert same_port.returncode == 1, same_port
    (line,) = same_port.stderr.strip().splitlines()
    assert line.startswith(f"error: port {port} ") and "is already in use; is another `multinode dev` running?" in line

    assert dev.poll() is None and _listening(port)  # the first one is untouched
    dev.send_signal(signal.SIGINT)
    _, stderr = dev.communicate(timeout=60)
    assert dev.returncode == 0, stderr  # Ctrl-C is how `multinode dev` is meant to stop
    assert "Traceback" not in stderr
    assert not _listening(port)  # its Temporal server stopped with it
