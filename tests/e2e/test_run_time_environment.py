"""The environment a worker prepares at run time: its preparation never counts against the
timeout, and an install that fails there, or a package missing from the store, fails the
invocation at once (one attempt, whatever max_retries allows) with the reason.

Each test runs a worker of its own, on its own task queue, with its own MULTINODE_HOME: its
environment cache is empty, so it builds the version's environment when the attempt arrives
(the deploy built one too, but in the session's home)."""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from multinode import InvocationStatus, errors
from tests.conftest import ControlPlane, PrivateQueue

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


@mn.function(max_retries=3)
def retried():
    import six
    return six.__version__
"""


@pytest.fixture
def own_worker(private_queue: PrivateQueue, tmp_path: Path) -> Callable[..., Path]:
    """Starts a worker on the private queue with an empty environment cache; returns its home."""

    def start(**env: str) -> Path:
        home = tmp_path / f"worker-home-{len(private_queue.workers)}"
        home.mkdir()
        private_queue.start_worker(MULTINODE_HOME=str(home), **env)
        return home

    return start


def test_the_timeout_counts_from_the_start_of_running(
    control_plane: ControlPlane, private_queue: PrivateQueue, own_worker, deploy_tasks  # type: ignore[no-untyped-def]
) -> None:
    from multinode.runtime.environment import environment_dir

    manifest = deploy_tasks(TASKS, **{"requirements.txt": "six==1.16.0\n"})
    # The session's uv cache: the worker builds its environment without downloading.
    home = own_worker(UV_CACHE_DIR=str(control_plane.home / "envs" / ".uv-cache"))
    quick = private_queue.function(manifest.project_name, "quick")
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
    private_queue: PrivateQueue, own_worker, deploy_tasks, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    manifest = deploy_tasks(TASKS, **{"requirements.txt": "six==1.16.0\n"})
    # Offline, with an empty cache: the worker cannot install what the deploy could.
    home = own_worker(UV_OFFLINE="1", UV_CACHE_DIR=str(tmp_path / "empty-uv-cache"))
    retried = private_queue.function(manifest.project_name, "retried")
    invocation_id = retried.start()
    with pytest.raises(errors.InvocationFailedError) as caught:
        retried.await_result(invocation_id, timeout=120)
    assert caught.value.error_type == "RequirementsInstallError"
    assert "could not install the requirements" in (caught.value.error_message or "")
    assert "six" in (caught.value.error_message or "")
    final = retried.get(invocation_id)
    assert final.status == InvocationStatus.FAILED and final.terminated
    # No retry can install it: one attempt, though max_retries=3 allows four.
    assert [(a.started_at, a.error.type if a.error else None) for a in final.attempts] == [
        (None, "RequirementsInstallError")]
    assert final.num_failed_attempts == 1
    assert not any((home / "envs").glob("*/bin/python")), os.listdir(home / "envs")


def test_a_package_missing_at_run_time_fails_the_invocation_with_the_reason(
    private_queue: PrivateQueue, own_worker, deploy_tasks  # type: ignore[no-untyped-def]
) -> None:
    # A source of its own (the uuid), so no other test shares its package file.
    manifest = deploy_tasks(
        f"# {uuid.uuid4().hex}\nfrom multinode import Multinode\nmn = Multinode()\n"
        "@mn.function(max_retries=2)\ndef answer():\n    return 42\n"
    )
    package = Path(manifest.package.uri.removeprefix("file://"))
    package.unlink()  # gone from the store between the deploy and the start
    own_worker()  # an empty home: nothing unpacked from before
    answer = private_queue.function(manifest.project_name, "answer")
    invocation_id = answer.start()
    with pytest.raises(errors.InvocationFailedError) as caught:
        answer.await_result(invocation_id, timeout=120)
    assert caught.value.error_type == "PackageNotFoundError"
    assert f"no package is stored at {manifest.package.uri}" in (caught.value.error_message or "")
    final = answer.get(invocation_id)
    assert final.status == InvocationStatus.FAILED and final.terminated
    # It fails at once, before any process starts: one attempt, though max_retries=2 allows three.
    assert [(a.started_at, a.error.type if a.error else None) for a in final.attempts] == [
        (None, "PackageNotFoundError")]
