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


def test_a_task_that_failed_to_start_for_a_passing_reason_is_retried_by_the_engine(tmp_path: Path) -> None:
    script = Script(states=["PROVISIONING", "PENDING"], stopped={
        "stopCode": "TaskFailedToStart", "stoppedReason": "Timeout waiting for network interface provisioning to complete.",
        "containers": [{"name": "function"}],
    })
    h = harness(tmp_path, script)
    with pytest.raises(InfrastructureError, match="network interface"):
        run(h)
    assert h.session.started == []


# The stopped reasons of AWS's "Amazon ECS stopped tasks error codes" and "CannotPullContainer
# task errors" pages: no retry mends these, so the attempt fails at once, naming the cause.
PERMANENT_START_FAILURES = {
    "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref "
    '"123456789012.dkr.ecr.us-east-1.amazonaws.com/fn:v9": not found': "image could not be pulled",
    "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to do request: Head "
    '"https://123456789012.dkr.ecr.us-east-1.amazonaws.com/v2/fn/manifests/v9": dial tcp 10.0.3.17:443: i/o timeout':
    "reach ECR",
    "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval "
    "failed: unable to retrieve secret from asm": "execution role",
    "CannotStartContainerError: failed to create new container runtime task": "entrypoint",
}


@pytest.mark.parametrize("reason", list(PERMANENT_START_FAILURES))
def test_a_task_that_cannot_start_fails_the_attempt_at_once_naming_the_cause(tmp_path: Path, reason: str) -> None:
    script = Script(states=["PROVISIONING", "PENDING"], stopped={
        "stopCode": "TaskFailedToStart", "stoppedReason": reason, "containers": [{"name": "function"}],
    })
    h = harness(tmp_path, script)
    outcome = run(h)
    assert outcome.outcome == Outcome.FAILED and outcome.started_at is None
    assert outcome.error is not None and outcome.error.type == "LaunchFailed"
    assert PERMANENT_START_FAILURES[reason] in outcome.error.message and reason in outcome.error.message
    assert h.session.started == [] and len(h.ecs.run_params) == 1


def test_a_registry_rate_limit_is_retried(tmp_path: Path) -> None:
    reason = ("CannotPullContainerError: failed to copy: httpReadSeeker: failed open: unexpected status "
              "code https://registry-1.docker.io/v2/library/python/manifests/sha256:abc: 429 Too Many Requests "
              "- Server message: toomanyrequests: You have reached your pull rate limit.")
    script = Script(states=["PENDING"], stopped={"stopCode": "TaskFailedToStart", "stoppedReason": reason})
    with pytest.raises(InfrastructureError, match="toomanyrequests"):
        run(harness(tmp_path, script))


def test_an_outcome_from_an_earlier_run_is_ignored(tmp_path: Path) -> None:
    h = harness(tmp_path, Script())
    location = RunLocation.for_attempt(CONFIG.package_store, request().invocation.invocation_id, 2)
    h.store.put_json(BUCKET, location.key(OUTCOME_NAME), {"token": "an-older-run", "result": "1", "has_result": True})
    outcome = run(h)
    assert outcome.outcome == Outcome.FAILED
    assert outcome.error is not None and outcome.error.type == "ProcessExited"


def test_a_task_missing_long_after_launch_is_an_engine_fault(tmp_path: Path) -> None:
    h = harness(tmp_path, Script(states=[None], runs_forever=True))
    with pytest.raises(InfrastructureError, match="vanished"):
        run(h)
    assert h.ecs.stops == ["multinode: the task vanished from DescribeTasks"]  # in case it is only unseen


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
