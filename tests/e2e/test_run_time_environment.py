"""The environment a worker prepares at run time: its preparation never counts against the
timeout, and an install that fails there fails the invocation with the reason.

Each test runs a worker of its own, on its own task queue, with its own MULTINODE_HOME: its
environment cache is empty, so it builds the version's environment when the attempt arrives
(the deploy built one too, but in the session's home)."""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import multinode as mn
from multinode import InvocationStatus, errors
from tests.conftest import ControlPlane, client_for_queue

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

TASKS = """
import time
from datetime import timedelta
from multinode import Multinode

mn = Multinode()


@mn.function(timeout=timedelta(seconds=3))
def quick(seconds):
    import six
    time.sleep(seconds)
    return six.__version__
"""


@pytest.fixture
def own_worker(control_plane: ControlPlane, tmp_path: Path) -> Iterator[Callable[..., tuple[str, Path]]]:
    """Starts a worker with an empty environment cache; returns its task queue and home."""
    started = []

    def start(**env: str) -> tuple[str, Path]:
        queue = f"env-{uuid.uuid4().hex[:8]}"
        home = tmp_path / f"worker-home-{len(started)}"
        home.mkdir()
        started.append(control_plane.start_worker(MULTINODE_TASK_QUEUE=queue, MULTINODE_HOME=str(home), **env))
        return queue, home

    yield start
    for worker in started:
        control_plane.stop_worker(worker)


def test_the_timeout_counts_from_the_start_of_running(control_plane: ControlPlane, own_worker, deploy_tasks) -> None:  # type: ignore[no-untyped-def]
    from multinode.runtime.environment import environment_dir

    manifest = deploy_tasks(TASKS, **{"requirements.txt": "six==1.16.0\n"})
    # The session's uv cache: the worker builds its environment without downloading.
    queue, home = own_worker(UV_CACHE_DIR=str(control_plane.home / "envs" / ".uv-cache"))
    quick = mn.Function("quick", project_name=manifest.project_name, client=client_for_queue(queue))
    assert manifest.requirements_sha256 is not None
    venv = environment_dir(home / "envs", manifest.requirements_sha256)
    venv.parent.mkdir(parents=True)
    # Holding the build's lock keeps the worker preparing the environment for longer than the
    # function's timeout (3 s); the function itself runs 1 s of it.
    with open(venv.with_name(venv.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        invocation_id = quick.start(1.0)
        time.sleep(5)
        assert quick.get(invocation_id).status == InvocationStatus.PENDING
    assert quick.await_result(invocation_id, timeout=120) == "1.16.0"
    final = quick.get(invocation_id)
    assert final.status == InvocationStatus.SUCCEEDED and len(final.attempts) == 1
    pending_since = final.status_history[0][1]
    assert (final.attempts[0].started_at - pending_since).total_seconds() >= 5  # type: ignore[operator]


def test_a_requirements_install_failing_at_run_time_fails_the_invocation(
    own_worker, deploy_tasks, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    manifest = deploy_tasks(TASKS, **{"requirements.txt": "six==1.16.0\n"})
    # Offline, with an empty cache: the worker cannot install what the deploy could.
    queue, home = own_worker(UV_OFFLINE="1", UV_CACHE_DIR=str(tmp_path / "empty-uv-cache"))
    quick = mn.Function("quick", project_name=manifest.project_name, client=client_for_queue(queue))
    invocation_id = quick.start(0)
    with pytest.raises(errors.InvocationFailedError) as caught:
        quick.await_result(invocation_id, timeout=120)
    assert caught.value.error_type == "RequirementsInstallError"
    assert "could not install the requirements" in (caught.value.error_message or "")
    assert "six" in (caught.value.error_message or "")
    final = quick.get(invocation_id)
    assert final.status == InvocationStatus.FAILED and final.terminated
    assert not any((home / "envs").glob("*/bin/python")), os.listdir(home / "envs")
