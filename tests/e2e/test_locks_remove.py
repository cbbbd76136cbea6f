"""Issue 4 end to end: locks and removal."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import multinode as mn
from multinode import InvocationStatus, errors
from tests.conftest import wait_until, write_tasks

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

TASKS = '''
import os, subprocess, time
from datetime import timedelta
from pathlib import Path
from multinode import Multinode

mn = Multinode()


@mn.function(max_concurrency=50)
def hold(seconds, fail=False):
    time.sleep(seconds)
    if fail:
        raise RuntimeError("the holder failed")
    return "held"


@mn.function(max_concurrency=50)
def other(seconds):
    time.sleep(seconds)
    return "other"


@mn.function(max_concurrency=50, timeout=timedelta(seconds=1))
def brief(seconds):
    time.sleep(seconds)


@mn.function(max_concurrency=50)
def stubborn(marker_dir):
    """Ignores its cancellation, with a child process of its own: only the kill stops them."""
    child = subprocess.Popen(["sleep", "600"])
    Path(marker_dir, "pids").write_text(f"{os.getpid()} {child.pid}")
    while True:
        try:
            time.sleep(0.1)
        except BaseException:
            Path(marker_dir, "cancel_seen").touch()
'''


@pytest.fixture
def project(deploy_tasks):  # type: ignore[no-untyped-def]
    return deploy_tasks(TASKS).project_name


def test_lock_refuses_a_second_holder_and_frees_on_any_ending(project: str) -> None:
    hold = mn.get_deployed_function(project, "hold")
    other = mn.get_deployed_function(project, "other")
    first = hold.start(1.5, lock="table-7")
    assert hold.get(first).status in (InvocationStatus.PENDING, InvocationStatus.RUNNING)
    with pytest.raises(errors.LockAlreadyInUseError) as caught:
        other.start(0, lock="table-7")  # any function of the project
    assert caught.value.holder_invocation_id == first and first in str(caught.value)
    assert other.call_remote(0) == "other"  # no lock, no conflict
    assert hold.start(0, lock="table-8")  # another key is free
    assert hold.await_result(first) == "held"
    wait_until(lambda: _try_lock(hold, "table-7"), timeout=15, message="lock freed after success")
    failing = hold.start(0.2, True, lock="table-9")
    with pytest.raises(errors.InvocationFailedError):
        hold.await_result(failing)
    wait_until(lambda: _try_lock(hold, "table-9"), timeout=15, message="lock freed after failure")
    cancelled = hold.start(60, lock="table-10")
    hold.cancel(cancelled)
    with pytest.raises(errors.InvocationCancelledError):
        hold.await_result(cancelled)
    wait_until(lambda: _try_lock(hold, "table-10"), timeout=15, message="lock freed after cancel")
    brief = mn.get_deployed_function(project, "brief")
    timing_out = brief.start(60, lock="table-11")
    with pytest.raises(errors.InvocationTimedOutError):
        brief.await_result(timing_out, timeout=60)
    wait_until(lambda: _try_lock(hold, "table-11"), timeout=15, message="lock freed after a timeout")


def test_a_lock_belongs_to_its_project(project: str, tmp_path: Path) -> None:
    from multinode.admin.deploy import deploy

    neighbour = deploy(write_tasks(tmp_path / "neighbour", TASKS), f"{project}_n").project_name
    hold = mn.get_deployed_function(project, "hold")
    held = hold.start(30, lock="shared-key")
    elsewhere = mn.get_deployed_function(neighbour, "hold")
    assert elsewhere.await_result(elsewhere.start(0, lock="shared-key"), timeout=60) == "held"
    with pytest.raises(errors.LockAlreadyInUse) as caught:
        hold.start(0, lock="shared-key")
    assert caught.value.holder_invocation_id == held
    hold.cancel(held)


def _try_lock(fn: mn.Function, key: str) -> bool:  # type: ignore[type-arg]
    try:
        fn.start(0, lock=key)
        return True
    except errors.LockAlreadyInUseError:
        return False


def test_of_twenty_concurrent_starts_exactly_one_wins(project: str) -> None:
    hold = mn.get_deployed_function(project, "hold")

    def attempt(_: int) -> str | None:
        try:
            return hold.start(2, lock="contended")
        except errors.LockAlreadyInUseError:
            return None

    with ThreadPoolExecutor(20) as pool:
        winners = [w for w in pool.map(attempt, range(20)) if w]
    assert len(winners) == 1
    assert hold.await_result(winners[0]) == "held"


def _gone(pid: int) -> bool:
    """True once the process has died (a zombie not yet reaped has died too)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


@pytest.mark.timeout(300)  # the engine applies deletions asynchronously, in about 30 s
def test_remove_cancels_then_deletes(project: str, tmp_path: Path) -> None:
    hold = mn.get_deployed_function(project, "hold")
    stubborn = mn.get_deployed_function(project, "stubborn")
    finished = hold.start(0)
    hold.await_result(finished)
    running = stubborn.start(str(tmp_path))
    pids = wait_until(lambda: (tmp_path / "pids").exists() and (tmp_path / "pids").read_text(), message="running")
    process, child = (int(p) for p in pids.split())
    assert not _gone(process) and not _gone(child)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda pair: pair[0].remove(pair[1]), [(stubborn, running), (hold, finished)]))
    # The function saw its cancellation, ignored it, and was killed with its child after the
    # grace period, before `.remove` returned.
    assert (tmp_path / "cancel_seen").exists()
    assert _gone(process) and _gone(child)
    for fn, invocation_id in ((stubborn, running), (hold, finished)):
        with pytest.raises(errors.InvocationDoesNotExistError):
            fn.get(invocation_id)
        assert invocation_id not in fn.list().invocation_ids
        assert invocation_id not in fn.list_ids()
    with pytest.raises(errors.InvocationDoesNotExistError):
        hold.remove(finished)
