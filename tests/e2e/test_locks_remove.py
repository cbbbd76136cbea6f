"""Issue 4 end to end: locks and removal."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

import multinode as mn
from multinode import InvocationStatus, errors
from tests.conftest import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

TASKS = '''
import time
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


@pytest.mark.timeout(300)  # the engine applies deletions asynchronously, in about 30 s
def test_remove_cancels_then_deletes(project: str) -> None:
    hold = mn.get_deployed_function(project, "hold")
    finished = hold.start(0)
    hold.await_result(finished)
    running = hold.start(60)
    wait_until(lambda: hold.get(running).status == InvocationStatus.RUNNING, message="running")
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(hold.remove, [running, finished]))
    for invocation_id in (running, finished):
        with pytest.raises(errors.InvocationDoesNotExistError):
            hold.get(invocation_id)
        assert invocation_id not in hold.list().invocation_ids
        assert invocation_id not in hold.list_ids()
    with pytest.raises(errors.InvocationDoesNotExistError):
        hold.remove(finished)
