"""Issue 8: real faults injected into a running system; nothing is lost, nothing runs twice at
once."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

import multinode as mn
from multinode import InvocationStatus, errors
from tests.conftest import PrivateQueue, running_control_plane, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

TASKS = '''
import fcntl, os, time
from pathlib import Path
from multinode import Multinode

mn = Multinode()
_held = []


@mn.function(max_concurrency=10)
def record(marker_dir, index, seconds):
    """Records each run: start time and pid, then end time. Each run holds a lock on its
    invocation's file until its process dies (the kernel releases it then, even on kill -9);
    a run that finds it held records an overlap with a run still alive."""
    run = f"{index}-{os.getpid()}"
    handle = open(Path(marker_dir, f"lock-{index}"), "a")
    _held.append(handle)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        Path(marker_dir, f"overlap-{run}").touch()
    Path(marker_dir, f"start-{run}").write_text(repr(time.time()))
    time.sleep(seconds)
    Path(marker_dir, f"end-{run}").write_text(repr(time.time()))
    return index


@mn.function(max_concurrency=1)
def one_at_a_time(marker_dir, index, seconds):
    Path(marker_dir, f"start-{index}").write_text(repr(time.time()))
    time.sleep(seconds)
    return index
'''


def _runs(folder: Path) -> dict[str, list[tuple[float, float | None]]]:
    """Per invocation index: (start, end) of each run; end None for a run that was killed."""
    runs: dict[str, list[tuple[float, float | None]]] = {}
    for start in folder.glob("start-*"):
        run = start.name.removeprefix("start-")
        end = folder / f"end-{run}"
        index = run.split("-")[0]
        runs.setdefault(index, []).append(
            (float(start.read_text()), float(end.read_text()) if end.exists() else None)
        )
    return runs


def test_killing_a_worker_mid_attempts_loses_nothing(private_queue: PrivateQueue, deploy_tasks, tmp_path: Path) -> None:
    project = deploy_tasks(TASKS).project_name
    record = private_queue.function(project, "record")
    doomed = private_queue.start_worker()
    ids = [record.start(str(tmp_path), index, 2.0) for index in range(6)]
    wait_until(lambda: len(list(tmp_path.glob("start-*"))) == 6, timeout=60, message="all running")
    private_queue.start_worker()
    private_queue.kill_worker(doomed)
    assert [record.await_result(i, timeout=120) for i in ids] == list(range(6))
    for invocation_id in ids:
        final = record.get(invocation_id)
        assert final.status == InvocationStatus.SUCCEEDED and final.num_failed_attempts == 0
    runs = _runs(tmp_path)
    assert any(len(r) == 2 and None in (end for _, end in r) for r in runs.values()), "no run was killed"
    # Each rerun began after the killed run's process had died (it found the lock released).
    assert list(tmp_path.glob("overlap-*")) == []
    for index, index_runs in runs.items():
        index_runs.sort()
        assert all(end is not None for _, end in index_runs[1:]), index
        for (_, end), (next_start, _) in itertools.pairwise(index_runs):
            assert end is None or next_start > end, index


def test_control_plane_killed_and_restarted(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    from multinode.admin.deployment import deploy
    from multinode.admin.devserver import DevServer

    home = tmp_path_factory.mktemp("restart-home")
    with running_control_plane(home) as plane:
        folder = tmp_path / "tasks"
        folder.mkdir()
        (folder / "main.py").write_text(TASKS)
        project = deploy(folder, "survivor").project_name
        record = mn.get_deployed_function(project, "record")
        marker = tmp_path / "markers"
        marker.mkdir()
        before = [record.start(str(marker), index, 3.0) for index in range(3)]
        wait_until(lambda: len(list(marker.glob("start-*"))) == 3, timeout=60, message="running")
        server: DevServer = plane.server  # type: ignore[assignment]
        server.kill()  # kill -9, database kept
        with pytest.raises(errors.MultinodeError):
            record.start(str(marker), 99, 0.1)  # during the outage: a clear error (a hang meets the timeout)
        server.stop()  # releases the state folder's lock; the process is already gone
        server.process = None
        server.start()  # the same ports, the same database
        assert [record.await_result(i, timeout=120) for i in before] == [0, 1, 2]
        after = record.start(str(marker), 3, 0.1)
        assert record.await_result(after, timeout=60) == 3
        for invocation_id in before:
            assert record.get(invocation_id).status == InvocationStatus.SUCCEEDED


def test_worker_restarted_while_invocations_wait_for_quota(private_queue: PrivateQueue, deploy_tasks, tmp_path: Path) -> None:
    project = deploy_tasks(TASKS).project_name
    one = private_queue.function(project, "one_at_a_time")
    first_worker = private_queue.start_worker()
    ids = [one.start(str(tmp_path), 0, 1.5)]
    wait_until(lambda: (tmp_path / "start-0").exists(), timeout=60, message="first running")
    ids += [one.start(str(tmp_path), index, 0.5) for index in range(1, 4)]
    assert one.get(ids[2]).status == InvocationStatus.PENDING
    first_worker.terminate()
    first_worker.wait(timeout=30)
    private_queue.start_worker()
    assert [one.await_result(i, timeout=120) for i in ids] == [0, 1, 2, 3]
    starts = {int(p.name.split("-")[1]): float(p.read_text()) for p in tmp_path.glob("start-*")}
    assert sorted(starts, key=starts.__getitem__)[1:] == [1, 2, 3]


def test_load_quota_never_exceeded_nothing_lost_or_duplicated(private_queue: PrivateQueue, deploy_tasks, tmp_path: Path) -> None:
    """The test-sized run of benchmarks/load.py: 60 invocations, quota 10, two workers."""
    project = deploy_tasks(TASKS).project_name
    record = private_queue.function(project, "record")
    for _ in range(2):
        private_queue.start_worker()
    # Each run lasts long enough that the quota fills while the starts arrive.
    ids = [record.start(str(tmp_path), index, 1.0) for index in range(60)]
    assert sorted(record.await_result(i, timeout=150) for i in ids) == list(range(60))
    runs = _runs(tmp_path)
    assert sorted(int(i) for i in runs) == list(range(60))
    assert {i: r for i, r in runs.items() if len(r) != 1} == {}, sorted(tmp_path.glob('overlap-*'))
    events = sorted([(s, 1) for r in runs.values() for s, _ in r] + [(e, -1) for r in runs.values() for _, e in r if e])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak == 10  # the quota is used, and never exceeded
    assert list(tmp_path.glob("overlap-*")) == []
