"""Issue 4 end to end: concurrency quotas, map/starmap, nested invocations, listing."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

import multinode as mn
from multinode import InvocationStatus, errors
from tests.conftest import ControlPlane, wait_until, write_tasks

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

TASKS = '''
import os, time
from datetime import timedelta
from pathlib import Path
from multinode import Multinode, get_deployed_function

mn = Multinode()


@mn.function(max_concurrency=3)
def timed(marker_dir, index, seconds):
    Path(marker_dir, f"start-{index}").write_text(repr(time.time()))
    time.sleep(seconds)
    Path(marker_dir, f"end-{index}").write_text(repr(time.time()))
    return index


@mn.function(max_concurrency=1)
def exclusive(marker_dir, index, seconds):
    Path(marker_dir, f"start-{index}").write_text(repr(time.time()))
    time.sleep(seconds)
    return index


@mn.function(max_concurrency=100)
def square(x):
    if x == "boom":
        raise ValueError("boom")
    if x == "slow":
        time.sleep(600)
    return x * x


@mn.function(max_concurrency=100)
def add(a, b):
    return a + b


@mn.function(max_concurrency=20)
def nested(depth):
    """Calls itself `depth` levels deep; returns the chain of invocation ids, innermost last."""
    me = os.environ["MULTINODE_INVOCATION_ID"]
    if depth == 0:
        return [me]
    child_id = nested.start(depth - 1)
    return [me] + nested.await_result(child_id)


@mn.function(max_concurrency=20)
def sleeper(marker_dir, name):
    Path(marker_dir, name).write_text(os.environ["MULTINODE_INVOCATION_ID"])
    time.sleep(600)


@mn.function(max_concurrency=20)
def parent(marker_dir, then):
    child = sleeper.start(marker_dir, "child")
    Path(marker_dir, "child_id").write_text(child)
    while not Path(marker_dir, "child").exists():
        time.sleep(0.05)
    if then == "fail":
        raise RuntimeError("parent fails")
    time.sleep(600)


@mn.function(max_concurrency=20, timeout=timedelta(seconds=5))
def parent_with_timeout(marker_dir, then):
    parent(marker_dir, then)


@mn.function(max_concurrency=20)
def tree(marker_dir, depth):
    """Starts a child `depth` levels deep, each level records its id then sleeps."""
    if depth > 0:
        tree.start(marker_dir, depth - 1)
    Path(marker_dir, f"level-{depth}").write_text(os.environ["MULTINODE_INVOCATION_ID"])
    time.sleep(600)


@mn.function(max_concurrency=20)
def version_of_child(marker_dir):
    Path(marker_dir, "parent_running").touch()
    while not Path(marker_dir, "go").exists():
        time.sleep(0.05)
    return square.call_remote(3), os.environ["MULTINODE_VERSION_ID"]
'''


@pytest.fixture(scope="module")
def second_worker(control_plane: ControlPlane) -> Iterator[None]:
    """Quotas must hold across workers: the session queue gets a second worker, for this
    module only."""
    worker = control_plane.start_worker()
    yield
    control_plane.stop_worker(worker)


@pytest.fixture
def project(deploy_tasks, second_worker):  # type: ignore[no-untyped-def]
    return deploy_tasks(TASKS).project_name


def fn(project: str, name: str) -> mn.Function:  # type: ignore[type-arg]
    return mn.get_deployed_function(project, name)


def _times(folder: Path, prefix: str) -> dict[int, float]:
    return {int(p.name.split("-")[1]): float(p.read_text()) for p in folder.glob(f"{prefix}-*")}


def test_quota_holds_across_workers_in_start_order(project: str, tmp_path: Path) -> None:
    timed = fn(project, "timed")
    # Fill the quota first, so that every invocation below waits: waiting ones get slots in
    # the order they were started.
    blockers = [timed.start(str(tmp_path), 100 + index, 1.5) for index in range(3)]
    wait_until(lambda: len(list(tmp_path.glob("start-10*"))) == 3, message="quota filled")
    ids = [timed.start(str(tmp_path), index, 0.8) for index in range(9)]
    assert [timed.await_result(i) for i in ids] == list(range(9))
    assert [timed.await_result(i) for i in blockers] == [100, 101, 102]
    starts, ends = _times(tmp_path, "start"), _times(tmp_path, "end")
    assert _peak(starts, ends) == 3
    for i in range(9):  # slots go out in start order
        for j in range(i + 3, 9):
            assert starts[i] < starts[j], (i, j)


def _peak(starts: dict[int, float], ends: dict[int, float]) -> int:
    running = peak = 0
    for _, delta in sorted([(t, 1) for t in starts.values()] + [(t, -1) for t in ends.values()]):
        running += delta
        peak = max(peak, running)
    return peak


def test_quota_is_shared_by_the_versions_of_a_function(project: str, tmp_path: Path) -> None:
    from multinode.admin.admin import upgrade

    first = fn(project, "timed")
    probe = first.start(str(tmp_path), 99, 0)
    first_version = first.get(probe).version_id
    assert first.await_result(probe) == 99
    upgrade(write_tasks(tmp_path / "v2", TASKS), project)
    pinned = mn.get_deployed_function(project, "timed", version_id=first_version)
    latest = fn(project, "timed")
    ids = [pinned.start(str(tmp_path), index, 1.0) for index in range(4)]
    ids += [latest.start(str(tmp_path), index, 1.0) for index in range(4, 8)]
    assert [latest.await_result(i, timeout=60) for i in ids] == list(range(8))
    assert {latest.get(i).version_id for i in ids[:4]} == {first_version}
    assert first_version not in {latest.get(i).version_id for i in ids[4:]}
    starts, ends = _times(tmp_path, "start"), _times(tmp_path, "end")
    del starts[99], ends[99]
    assert _peak(starts, ends) == 3  # max_concurrency=3 for both versions together


def test_cancelled_pending_gives_up_its_place(project: str, tmp_path: Path) -> None:
    exclusive = fn(project, "exclusive")
    first = exclusive.start(str(tmp_path), 0, 2.0)
    wait_until(lambda: (tmp_path / "start-0").exists(), message="first running")
    second = exclusive.start(str(tmp_path), 1, 0.1)
    third = exclusive.start(str(tmp_path), 2, 0.1)
    assert exclusive.get(second).status == InvocationStatus.PENDING
    assert exclusive.cancel(second)
    with pytest.raises(errors.InvocationCancelledError):
        exclusive.await_result(second)
    assert exclusive.await_result(third) == 2 and exclusive.await_result(first) == 0
    assert exclusive.get(second).attempts == () and not (tmp_path / "start-1").exists()


def test_a_vanished_holder_does_not_keep_its_slot(project: str, tmp_path: Path) -> None:
    from multinode._client import default_client

    exclusive = fn(project, "exclusive")
    holder = exclusive.start(str(tmp_path), 0, 600)
    wait_until(lambda: (tmp_path / "start-0").exists(), message="holder running")

    async def terminate() -> None:
        engine = await default_client().engine()
        await engine.client.get_workflow_handle(holder).terminate("test: a holder that vanished")

    default_client().run(terminate())
    # The periodic holder check frees the slot (every 2 s here); the deadline only catches a hang.
    assert exclusive.await_result(exclusive.start(str(tmp_path), 1, 0.1), timeout=60) == 1


def test_map_and_starmap_in_order(project: str) -> None:
    square, add = fn(project, "square"), fn(project, "add")
    assert list(square.map(range(30))) == [x * x for x in range(30)]
    assert list(add.starmap([(1, 2), (3, 4), (5, 6)])) == [3, 7, 11]
    assert list(square.map([])) == []


def test_map_failure_cancels_the_rest_unless_returning_exceptions(project: str) -> None:
    square = fn(project, "square")
    outcomes = list(square.map([1, "boom", 3], return_exceptions=True))
    assert outcomes[0] == 1 and outcomes[2] == 9
    assert isinstance(outcomes[1], errors.InvocationFailedError)
    before = set(square.list_ids())
    with pytest.raises(errors.InvocationFailedError, match="boom"):
        list(square.map([1, "boom", "slow", "slow"]))
    started = wait_until(lambda: len(ids := set(square.list_ids()) - before) == 4 and ids, message="listed")
    endings = []
    for invocation_id in started:
        try:
            endings.append(square.await_result(invocation_id, timeout=30))
        except errors.InvocationError as exc:
            endings.append(type(exc).__name__)
    assert sorted(map(str, endings)) == ["1", "InvocationCancelledError", "InvocationCancelledError",
                                         "InvocationFailedError"]


def test_nested_three_levels_deep_records_parents(project: str) -> None:
    nested = fn(project, "nested")
    chain = nested.call_remote(3)
    assert len(chain) == 4 and len(set(chain)) == 4
    for parent_id, child_id in itertools.pairwise(chain):
        assert nested.get(child_id).parent_invocation_id == parent_id
    assert nested.get(chain[0]).parent_invocation_id is None


PARENT_ENDINGS = {
    "cancel": ("parent", errors.InvocationCancelledError, InvocationStatus.CANCELLED),
    "fail": ("parent", errors.InvocationFailedError, InvocationStatus.FAILED),
    "timeout": ("parent_with_timeout", errors.InvocationTimedOutError, InvocationStatus.TIMED_OUT),
}


@pytest.mark.parametrize("ending", list(PARENT_ENDINGS))
def test_children_are_cancelled_with_their_parent(project: str, tmp_path: Path, ending: str) -> None:
    name, raised, status = PARENT_ENDINGS[ending]
    parent, sleeper = fn(project, name), fn(project, "sleeper")
    parent_id = parent.start(str(tmp_path), ending)
    # The parent waits for its child to run before it fails (or is cancelled here); one that
    # times out may do so before, with its child still PENDING: cancelled all the same.
    child_id = wait_until(lambda: (tmp_path / "child_id").exists() and (tmp_path / "child_id").read_text(),
                          timeout=60, message="child started")
    if ending == "cancel":
        wait_until(lambda: (tmp_path / "child").exists(), timeout=60, message="child running")
        assert parent.cancel(parent_id)
    with pytest.raises(raised):
        parent.await_result(parent_id, timeout=60)
    assert parent.get(parent_id).status == status
    with pytest.raises(errors.InvocationCancelledError):
        sleeper.await_result(child_id, timeout=30)
    child = sleeper.get(child_id)
    assert child.status == InvocationStatus.CANCELLED
    assert child.parent_invocation_id == parent_id


def test_cancelling_a_parent_cancels_every_level_below_it(project: str, tmp_path: Path) -> None:
    tree = fn(project, "tree")
    root = tree.start(str(tmp_path), 3)
    levels = wait_until(lambda: len(found := sorted(tmp_path.glob("level-*"))) == 4 and found,
                        timeout=60, message="four levels running")
    ids = {int(p.name.split("-")[1]): p.read_text() for p in levels}
    assert ids[3] == root
    for depth in range(3):
        assert tree.get(ids[depth]).parent_invocation_id == ids[depth + 1]
    assert tree.cancel(root)
    for depth in (3, 2, 1, 0):
        with pytest.raises(errors.InvocationCancelledError):
            tree.await_result(ids[depth], timeout=60)
        assert tree.get(ids[depth]).status == InvocationStatus.CANCELLED


def test_nested_invocations_run_the_parents_version(project: str, tmp_path: Path) -> None:
    """A parent started on version 1 still starts its children on version 1 after the project
    moved to version 2 (where `square` answers differently)."""
    from multinode.admin.admin import upgrade

    parent, square = fn(project, "version_of_child"), fn(project, "square")
    markers = tmp_path / "markers"
    markers.mkdir()
    parent_id = parent.start(str(markers))
    wait_until(lambda: (markers / "parent_running").exists(), timeout=60, message="parent running")
    first = parent.get(parent_id).version_id
    second = upgrade(write_tasks(tmp_path / "v2", TASKS.replace("return x * x", "return -x * x")), project)
    assert second.version_id != first
    assert square.call_remote(3) == -9  # the latest version is the second
    (markers / "go").touch()
    result, version = parent.await_result(parent_id, timeout=60)
    assert (result, version) == (9, first)
    children = [i for i in square.list_ids() if square.get(i).parent_invocation_id == parent_id]
    assert len(children) == 1 and square.get(children[0]).version_id == first


def test_job_is_an_alias_of_function() -> None:

    decorated = mn.Multinode().job(max_retries=1)(lambda_for_job)
    assert decorated.options is not None and decorated.options.max_retries == 1


def lambda_for_job(x: int) -> int:
    return x
