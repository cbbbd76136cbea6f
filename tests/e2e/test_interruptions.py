"""Processes killed or interrupted mid-way, for real: a client SIGKILLed in the middle of a
locked start, a worker SIGKILLed while its lease holds the whole quota, Ctrl-C (SIGINT) during
a `.map`. Each leaves nothing held and nothing running behind it."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import multinode as mn
from multinode import InvocationStatus, errors
from tests.conftest import ControlPlane, PrivateQueue, interruptible, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

TASKS = '''
import fcntl, os, time
from pathlib import Path
from multinode import Multinode

mn = Multinode()
_held = []


@mn.function(max_concurrency=10)
def hold(seconds):
    time.sleep(seconds)
    return "held"


@mn.function(max_concurrency=2)
def record(marker_dir, index, seconds):
    """Records each run (start time, pid, end time) and holds a lock on its index's file until
    its process dies, so a run that overlaps a live earlier run of its index records it. A
    rerun lasts a second, whatever `seconds` says."""
    rerun = any(Path(marker_dir).glob(f"start-{index}-*"))
    handle = open(Path(marker_dir, f"lock-{index}"), "a")
    _held.append(handle)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        Path(marker_dir, f"overlap-{index}-{os.getpid()}").touch()
    Path(marker_dir, f"start-{index}-{os.getpid()}").write_text(repr(time.time()))
    time.sleep(1.0 if rerun else seconds)
    Path(marker_dir, f"end-{index}-{os.getpid()}").write_text(repr(time.time()))
    return index


@mn.function(max_concurrency=3)
def hang(marker_dir, index):
    Path(marker_dir, f"run-{index}").write_text(os.environ["MULTINODE_INVOCATION_ID"])
    time.sleep(600)
'''

LOCKED_STARTER = """
import sys
from multinode import get_deployed_function
get_deployed_function(sys.argv[1], "hold").start_locked(sys.argv[2], 0.5)
print("started", flush=True)
"""

MAPPER = """
import sys
from multinode import get_deployed_function
for result in get_deployed_function(sys.argv[1], "hang").starmap((sys.argv[2], i) for i in range(20)):
    print(result, flush=True)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def _lock_workflow_exists(queue: PrivateQueue, project: str, key: str) -> bool:
    from temporalio.service import RPCError

    from multinode.contract import names

    async def describe() -> bool:
        engine = await queue.client.engine()
        try:
            await engine.client.get_workflow_handle(names.lock_workflow_id(project, key)).describe()
        except RPCError:
            return False
        return True

    result: bool = queue.client.run(describe())
    return result


def test_a_client_killed_in_the_middle_of_a_locked_start_leaves_no_lock(
    control_plane: ControlPlane, private_queue: PrivateQueue, deploy_tasks
) -> None:  # type: ignore[no-untyped-def]
    project = deploy_tasks(TASKS).project_name
    # No worker serves the private queue yet, so the start cannot be confirmed: the client
    # stays in the middle of it (up to 10 s) once the engine holds the lock.
    client = subprocess.Popen(
        [sys.executable, "-c", LOCKED_STARTER, project, "table-1"],
        env={**control_plane.env, "MULTINODE_TASK_QUEUE": private_queue.name},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: _lock_workflow_exists(private_queue, project, "table-1"), timeout=30, interval=0.01,
                   message="the lock taken by the client")
        assert client.poll() is None, client.communicate()
    finally:
        client.send_signal(signal.SIGKILL)
        _, stderr = client.communicate()
    assert client.returncode == -signal.SIGKILL, stderr
    hold = private_queue.function(project, "hold")
    with pytest.raises(errors.LockAlreadyInUseError) as caught:
        hold.start_locked("table-1", 0)
    orphan = caught.value.holder_invocation_id
    assert orphan is not None and orphan.startswith("inv-")
    # Once a worker runs, the invocation the dead client started runs to its end, and the key
    # with it is free again: nothing waits for the client that is gone.
    private_queue.start_worker()
    # The lock workflow starts the invocation it guards once a worker runs it.
    wait_until(lambda: _exists(hold, orphan), timeout=30, message="the dead client's invocation to exist")
    assert hold.await_result(orphan, timeout=60) == "held"

    def lock_free() -> str | None:
        try:
            return hold.start_locked("table-1", 0)
        except errors.LockAlreadyInUseError:
            return None

    taken = wait_until(lock_free, timeout=30, message="the key freed")
    assert hold.await_result(taken, timeout=60) == "held"


def _exists(fn: mn.Function, invocation_id: str) -> bool:  # type: ignore[type-arg]
    try:
        fn.get(invocation_id)
    except errors.InvocationDoesNotExistError:
        return False
    return True


def _runs(folder: Path, killed_ends: dict[int, float]) -> list[tuple[float, float]]:
    """(start, end) of every run; a killed run ends when its process was seen dead."""
    runs = []
    for start in folder.glob("start-*"):
        pid = int(start.name.rsplit("-", 1)[1])
        end = start.with_name(start.name.replace("start-", "end-", 1))
        runs.append((float(start.read_text()), float(end.read_text()) if end.exists() else killed_ends[pid]))
    return runs


def test_a_killed_workers_lease_comes_back_and_the_quota_holds(
    private_queue: PrivateQueue, deploy_tasks, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    project = deploy_tasks(TASKS).project_name
    record = private_queue.function(project, "record")
    doomed = private_queue.start_worker()
    first = [record.start(str(tmp_path), index, 600) for index in range(2)]  # the whole quota (2)
    starts = wait_until(lambda: len(found := list(tmp_path.glob("start-*"))) == 2 and found, timeout=60,
                        message="the quota filled")
    pids = [int(p.name.rsplit("-", 1)[1]) for p in starts]
    killed_at = time.time()
    private_queue.kill_worker(doomed)  # its lease still counts both slots at the semaphore
    killed_ends: dict[int, float] = {}
    while len(killed_ends) < len(pids):
        assert time.time() - killed_at < 10, "the dead worker's function processes lived on"
        killed_ends.update({pid: time.time() for pid in pids if not _alive(pid) and pid not in killed_ends})
        time.sleep(0.02)
    private_queue.start_worker()
    later = [record.start(str(tmp_path), index, 1.0) for index in (2, 3)]
    assert [record.await_result(i, timeout=90) for i in first + later] == [0, 1, 2, 3]
    for invocation_id in first + later:
        final = record.get(invocation_id)
        assert final.status == InvocationStatus.SUCCEEDED and final.num_failed_attempts == 0
    assert list(tmp_path.glob("overlap-*")) == []
    runs = _runs(tmp_path, killed_ends)
    assert len(runs) == 6  # two killed, their two reruns, two new ones
    events = sorted([(start, 1) for start, _ in runs] + [(end, -1) for _, end in runs])
    in_use = list(itertools.accumulate(delta for _, delta in events))
    assert max(in_use) == 2  # the quota is used, and never exceeded while the lease lapses
    # README: a dead worker's lease lapses within about 30 s.
    back = min(start for start, _ in runs if start > killed_at)
    assert back - killed_at < 30, f"the dead worker's slots came back after {back - killed_at:.1f} s"


def _error_lines(stderr: str) -> list[str]:
    """stderr without a traceback's frames (indented) and blank lines."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith(" ")]


def test_ctrl_c_during_a_map_cancels_what_it_started_without_a_traceback_storm(
    control_plane: ControlPlane, deploy_tasks, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    project = deploy_tasks(TASKS).project_name
    hang = mn.get_deployed_function(project, "hang")
    mapper = subprocess.Popen(interruptible(sys.executable, "-c", MAPPER, project, str(tmp_path)),
                              env=control_plane.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The map's window (max_concurrency=3) runs; the map waits on the first result.
        wait_until(lambda: len(list(tmp_path.glob("run-*"))) == 3, timeout=60, message="the window running")
        assert mapper.poll() is None
        mapper.send_signal(signal.SIGINT)
        stdout, stderr = mapper.communicate(timeout=60)
    finally:
        if mapper.poll() is None:
            mapper.kill()
            mapper.communicate()
    assert mapper.returncode == -signal.SIGINT, stderr
    assert stdout == ""
    # Python's own report of the interrupt, and nothing else: no second traceback, no "Task was
    # destroyed", no "Exception ignored" from the background loop.
    assert _error_lines(stderr) in ([], ["KeyboardInterrupt"], ["Traceback (most recent call last):", "KeyboardInterrupt"]), stderr
    started = [p.read_text() for p in tmp_path.glob("run-*")]
    assert sorted(hang.list_ids()) == sorted(started)  # the window, and nothing more
    for invocation_id in started:
        with pytest.raises(errors.InvocationCancelledError):
            hang.await_result(invocation_id, timeout=60)
        assert hang.get(invocation_id).status == InvocationStatus.CANCELLED

