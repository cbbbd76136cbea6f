"""The Fargate backend's state machine against a scripted ECS: how a task's end becomes the
attempt's outcome, and how cancels, timeouts and shutdowns stop the task."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from multinode.contract.options import FunctionOptions
from multinode.contract.records import AttemptOutcome, Outcome
from multinode.runtime.fargate_run import OUTCOME_NAME, RunLocation
from temporal_workers.backends import InfrastructureError
from tests.fargate_doubles import FakeSession
from tests.unit.scripted_fargate import BUCKET, CONFIG, Harness, Script, harness, request, run

pytestmark = pytest.mark.timeout(60)


# ---------------------------------------------------------------------------------------------
# Outcomes


def test_success_returns_the_result_and_reports_running(tmp_path: Path) -> None:
    h = harness(tmp_path, Script(outcome={"result": '"done"', "has_result": True}, progress='"half"'))
    outcome = run(h)
    assert outcome.outcome == Outcome.SUCCEEDED
    assert (outcome.value, outcome.has_value, outcome.exit_code) == ('"done"', True, 0)
    assert outcome.started_at is not None and h.session.started
    phases = [p.phase for p in h.session.heartbeats]
    assert phases[0] == "preparing" and "running" in phases
    assert any(p.value == '"half"' and p.has_value for p in h.session.heartbeats)
    # The arguments went to S3, exactly as the local backend writes its input file.
    key = (BUCKET, "store/runs/inv-0000000000abcdefghjkmnpqrs/2/input.json")
    assert h.store.objects[key][1] == {"args": ['"hello"'], "kwargs": {"n": "3"}}


def test_a_user_failure_keeps_the_error(tmp_path: Path) -> None:
    error = {"type": "ValueError", "message": "bad input", "traceback": "Traceback ..."}
    script = Script(
        outcome={"error": error, "exit_code": 1},
        stopped={"stopCode": "EssentialContainerExited", "containers": [{"name": "function", "exitCode": 1}]},
    )
    outcome = run(harness(tmp_path, script))
    assert outcome.outcome == Outcome.FAILED and outcome.exit_code == 1
    assert outcome.error is not None
    assert (outcome.error.type, outcome.error.message) == ("ValueError", "bad input")


def test_out_of_memory_is_reported_as_the_memory_limit(tmp_path: Path) -> None:
    container = {"name": "function", "exitCode": 137, "reason": "OutOfMemoryError: Container killed due to memory usage"}
    script = Script(outcome={"exit_code": 137}, stopped={"stopCode": "EssentialContainerExited", "containers": [container]})
    outcome = run(harness(tmp_path, script))
    assert outcome.outcome == Outcome.FAILED and outcome.exit_code == 137
    assert outcome.error is not None and outcome.error.type == "MemoryLimitExceeded"
    assert outcome.error.message == "killed: memory limit of 512 MiB exceeded"


def test_a_kill_without_oom_is_a_killed_process(tmp_path: Path) -> None:
    script = Script(stopped={"stopCode": "EssentialContainerExited", "containers": [{"name": "function", "exitCode": 137}]})
    outcome = run(harness(tmp_path, script))
    assert outcome.error is not None
    assert (outcome.error.type, outcome.error.message) == ("ProcessKilled", "exit code 137 (killed by SIGKILL)")


def test_a_spot_interruption_is_retried_by_the_engine(tmp_path: Path) -> None:
    error = {"type": "InvocationCancelledError", "message": "the invocation was cancelled"}
    script = Script(outcome={"error": error},
                    stopped={"stopCode": "SpotInterruption", "containers": [{"name": "function", "exitCode": 143}]})
    with pytest.raises(InfrastructureError, match="SpotInterruption"):
        run(harness(tmp_path, script))


def test_a_task_that_failed_to_start_is_retried_by_the_engine(tmp_path: Path) -> None:
    script = Script(states=["PROVISIONING", "PENDING"], stopped={
        "stopCode": "TaskFailedToStart", "stoppedReason": "CannotPullContainerError: pull access denied",
        "containers": [{"name": "function"}],
    })
    h = harness(tmp_path, script)
    with pytest.raises(InfrastructureError, match="CannotPullContainerError"):
        run(h)
    assert h.session.started == []


def test_an_outcome_from_an_earlier_run_is_ignored(tmp_path: Path) -> None:
    h = harness(tmp_path, Script())
    location = RunLocation.for_attempt(CONFIG.package_store, request().invocation.invocation_id, 2)
    h.store.put_json(BUCKET, location.key(OUTCOME_NAME), {"token": "an-older-run", "result": "1", "has_result": True})
    outcome = run(h)
    assert outcome.outcome == Outcome.FAILED
    assert outcome.error is not None and outcome.error.type == "ProcessExited"


def test_a_task_missing_long_after_launch_has_disappeared(tmp_path: Path) -> None:
    outcome = run(harness(tmp_path, Script(states=[None], runs_forever=True)))
    assert outcome.outcome == Outcome.FAILED
    assert outcome.error is not None and outcome.error.message == "the task disappeared"


# ---------------------------------------------------------------------------------------------
# Interruptions


async def _run_until_started(h: Harness) -> asyncio.Task[AttemptOutcome]:
    task = asyncio.ensure_future(h.backend.run_attempt(request(), h.session))
    deadline = time.monotonic() + 10
    while not h.session.started:
        assert time.monotonic() < deadline, "the attempt never started"
        await asyncio.sleep(0.01)
    return task


@pytest.mark.asyncio
async def test_cancel_stops_the_task_with_its_reason(tmp_path: Path) -> None:
    error = {"type": "InvocationCancelledError", "message": "the invocation was cancelled"}
    stopped = {"stopCode": "UserInitiated", "containers": [{"name": "function", "exitCode": 1}]}
    h = harness(tmp_path, Script(runs_forever=True, on_stop=stopped, outcome={"error": error}, progress='"p"'))
    h.ecs.stop_failures = 2  # a throttled StopTask is asked again
    task = await _run_until_started(h)
    task.cancel()
    outcome = await task
    assert h.ecs.stops == ["multinode: cancel"]
    assert outcome.outcome == Outcome.CANCELLED and outcome.error is None
    assert (outcome.value, outcome.has_value) == ('"p"', True)


@pytest.mark.asyncio
async def test_the_timeout_stops_the_task(tmp_path: Path) -> None:
    stopped = {"stopCode": "UserInitiated", "containers": [{"name": "function", "exitCode": 1}]}
    h = harness(tmp_path, Script(runs_forever=True, on_stop=stopped))
    outcome = await h.backend.run_attempt(request(FunctionOptions(timeout_seconds=0.2)), h.session)
    assert h.ecs.stops == ["multinode: timeout"]
    assert outcome.outcome == Outcome.TIMED_OUT
    assert outcome.error is not None and outcome.error.type == "InvocationTimedOutError"


@pytest.mark.asyncio
async def test_engine_shutdown_stops_the_task_and_hands_it_back(tmp_path: Path) -> None:
    h = harness(tmp_path, Script(runs_forever=True), session=FakeSession("shutdown"))
    task = await _run_until_started(h)
    task.cancel()
    with pytest.raises(InfrastructureError, match="shutdown"):
        await task
    assert h.ecs.stops == ["multinode: engine interruption (shutdown)"]


@pytest.mark.asyncio
async def test_close_stops_running_tasks(tmp_path: Path) -> None:
    h = harness(tmp_path, Script(runs_forever=True), session=FakeSession("shutdown"))
    task = await _run_until_started(h)
    await h.backend.close()
    assert h.ecs.stops == ["multinode: worker stopping"]
    task.cancel()
    with pytest.raises(InfrastructureError):
        await task
