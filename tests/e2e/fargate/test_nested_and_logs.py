"""From inside a Fargate container, and after it: a nested invocation started by the function's
own code (cancelled with its parent), and `multinode logs` reading the task's CloudWatch stream,
per attempt and followed live."""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import IO

import pytest

from multinode import InvocationStatus
from multinode.errors import InvocationCancelledError, InvocationFailedError
from tests.conftest import wait_until
from tests.e2e.fargate.conftest import FargateTier
from tests.e2e.moto_stack import LOG_GROUP

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def printed(tier: FargateTier, invocation_id: str, line: str) -> bool:
    return any(line in out for task in tier.fargate.tasks_of(invocation_id) for out in task.output)


def pump(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))


def test_a_nested_invocation_started_in_the_container_is_cancelled_with_its_parent(tier: FargateTier) -> None:
    parent = tier.function("parent")
    wait_for_stop = tier.function("wait_for_stop")
    parent_id = parent.start(60)
    child_id = wait_until(lambda: parent.get(parent_id).result, timeout=30, message="the child's id")
    assert isinstance(child_id, str) and child_id.startswith("inv-")
    wait_until(lambda: printed(tier, child_id, "waiting for a stop"), timeout=30, message="the child running")
    child = wait_for_stop.get(child_id)
    assert child.parent_invocation_id == parent_id and child.status == InvocationStatus.RUNNING
    # The child's task got the worker's connection, so it too could start invocations.
    [child_task] = tier.fargate.tasks_of(child_id)
    assert child_task.environment["MULTINODE_TASK_QUEUE"] == tier.queue

    assert parent.cancel(parent_id) is True
    with pytest.raises(InvocationCancelledError):
        parent.await_result(parent_id, timeout=60)
    with pytest.raises(InvocationCancelledError):
        wait_for_stop.await_result(child_id, timeout=60)
    assert wait_for_stop.get(child_id).status == InvocationStatus.CANCELLED
    assert tier.fargate.stops == ["multinode: cancel", "multinode: cancel"]
    wait_until(lambda: printed(tier, child_id, "saw InvocationCancelledError"), timeout=20,
               message="the child's code seeing the cancel")


def test_logs_reads_each_attempts_cloudwatch_stream(tier: FargateTier) -> None:
    explode = tier.function("explode")  # max_retries=2: three attempts, three tasks
    invocation_id = explode.start("boom")
    with pytest.raises(InvocationFailedError):
        explode.await_result(invocation_id, timeout=60)
    for task in tier.fargate.tasks_of(invocation_id):
        tier.fargate.wait_ended(task)

    latest = tier.cli("logs", f"--invocation-id={invocation_id}")
    assert latest.returncode == 0, latest.stderr
    assert f"# attempt 3 of {invocation_id} (CloudWatch Logs {LOG_GROUP}/multinode/function/" in latest.stderr
    assert "attempt 3 explodes" in latest.stdout and "attempt 2 explodes" not in latest.stdout
    assert "ValueError: boom" in latest.stdout  # the traceback the runner printed

    second = tier.cli("logs", f"--invocation-id={invocation_id}", "--attempt", "2")
    assert second.returncode == 0, second.stderr
    assert "attempt 2 explodes" in second.stdout and "attempt 3 explodes" not in second.stdout
    # Nothing was ever written where a local attempt's log would be.
    assert not (tier.root / "cli-home" / "runs").exists()


def test_logs_follow_prints_lines_while_the_task_runs_and_ends_with_it(tier: FargateTier, tmp_path: Path) -> None:
    chatty = tier.function("chatty")  # max_concurrency=1
    first = chatty.start(0, str(tmp_path / "first"))
    wait_until(lambda: printed(tier, first, "waiting for the gate"), timeout=30, message="the first running")
    gate = tmp_path / "gate"
    invocation_id = chatty.start(3, str(gate))
    # Followed from before its task exists (it waits for the first one's slot).
    follower = tier.cli_process("logs", f"--invocation-id={invocation_id}", "--follow")
    lines: queue.Queue[str] = queue.Queue()
    assert follower.stdout is not None
    reader = threading.Thread(target=pump, args=(follower.stdout, lines), daemon=True)
    reader.start()
    try:
        assert follower.stderr is not None
        header = follower.stderr.readline()  # written once it has chosen where to read
        assert header.startswith(f"# attempt 1 of {invocation_id}"), header
        assert chatty.get(invocation_id).status == InvocationStatus.PENDING
        (tmp_path / "first").touch()
        seen = []
        while "line 2" not in seen:
            seen.append(lines.get(timeout=30))
        assert seen[-3:] == ["line 0", "line 1", "line 2"]
        # Still running: the function waits for the gate, so these lines came while it ran.
        assert chatty.get(invocation_id).status == InvocationStatus.RUNNING
        gate.touch()
        assert follower.wait(timeout=30) == 0, follower.stderr.read() if follower.stderr else ""
        reader.join(timeout=10)
        rest = []
        while not lines.empty():
            rest.append(lines.get())
        assert rest == ["waiting for the gate", "last line"]
        assert chatty.await_result(invocation_id, timeout=30) == 3
    finally:
        if follower.poll() is None:
            follower.kill()
        follower.wait()
        for stream in (follower.stdout, follower.stderr):
            if stream is not None:
                stream.close()
