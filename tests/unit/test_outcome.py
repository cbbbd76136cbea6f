"""How an attempt's end becomes its outcome: the decision both backends share, and the facts
each adds (a cgroup's OOM kill, a process's signal; an ECS container's reason and exit code)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from multinode.contract.options import FunctionOptions
from multinode.contract.records import (
    AttemptOutcome,
    AttemptRequest,
    ErrorInfo,
    InvocationInput,
    Outcome,
    PackageRef,
)
from temporal_workers.backends.fargate.outcome import crash_error as fargate_crash_error
from temporal_workers.backends.local.cgroups import Cgroup
from temporal_workers.backends.local.supervisor import crash_error as local_crash_error
from temporal_workers.backends.outcome import ended, not_started, reported_error

pytestmark = pytest.mark.timeout(30)

CRASH = ErrorInfo(type="ProcessExited", message="crashed")


def request(timeout_seconds: float = 30.0) -> AttemptRequest:
    invocation = InvocationInput(
        invocation_id="inv-0000000000abcdefghjkmnpqrs",
        project_name="proj",
        function_name="work",
        version_id="ver-0000000000abcdefghjkmnpqrs",
        options=FunctionOptions(memory_mib=512, timeout_seconds=timeout_seconds),
        package=PackageRef("file:///nowhere.tar.gz", "a" * 64, 10),
        requirements_sha256=None,
        args=[],
        kwargs={},
        created_at=time.time(),
    )
    return AttemptRequest(invocation, attempt_number=1)


class Crash:
    def __init__(self) -> None:
        self.asked = 0

    def __call__(self) -> ErrorInfo:
        self.asked += 1
        return CRASH


def end(interrupt: str | None = None, exit_code: int | None = 0, error: ErrorInfo | None = None,
        result: tuple[str | None, bool] = (None, False), crash: Crash | None = None) -> AttemptOutcome:
    return ended(request(12), interrupt=interrupt, exit_code=exit_code, started_at=1.0,
                 last=('"last"', True), result=result, error=error, crash_error=crash or Crash())


def test_a_result_with_exit_code_zero_succeeds() -> None:
    outcome = end(result=('"done"', True))
    assert (outcome.outcome, outcome.value, outcome.has_value, outcome.exit_code) == (Outcome.SUCCEEDED, '"done"', True, 0)
    assert outcome.started_at == 1.0 and outcome.error is None


def test_a_result_without_a_clean_exit_is_a_crash_keeping_the_latest_yield() -> None:
    crash = Crash()
    outcome = end(exit_code=1, result=('"done"', True), crash=crash)
    assert (outcome.outcome, outcome.value, outcome.error, outcome.exit_code) == (Outcome.FAILED, '"last"', CRASH, 1)
    assert crash.asked == 1


def test_a_reported_error_wins_over_a_result_and_the_crash_is_not_examined() -> None:
    crash = Crash()
    error = ErrorInfo(type="ValueError", message="bad")
    outcome = end(error=error, result=('"done"', True), crash=crash)
    assert (outcome.outcome, outcome.error, outcome.value) == (Outcome.FAILED, error, '"last"')
    assert crash.asked == 0


@pytest.mark.parametrize("interrupt, expected", [("cancel", Outcome.CANCELLED), ("timeout", Outcome.TIMED_OUT)])
def test_an_interruption_decides_whatever_the_process_said(interrupt: str, expected: str) -> None:
    outcome = end(interrupt=interrupt, exit_code=1, error=ErrorInfo(type="X", message="y"), result=('"r"', True))
    assert (outcome.outcome, outcome.value, outcome.has_value, outcome.exit_code) == (expected, '"last"', True, 1)
    if interrupt == "timeout":
        assert outcome.error == ErrorInfo(type="InvocationTimedOutError",
                                          message="the attempt ran past its timeout of 12 s")
    else:
        assert outcome.error is None


def test_a_failure_before_the_start_names_the_error() -> None:
    outcome = not_started(ValueError("no size fits"))
    assert (outcome.outcome, outcome.started_at, outcome.error) == (
        Outcome.FAILED, None, ErrorInfo(type="ValueError", message="no size fits"))


def test_a_reported_error_fills_in_missing_fields() -> None:
    assert reported_error(None) is None
    assert reported_error({"message": "m"}) == ErrorInfo(type="Exception", message="m", traceback=None)


def test_a_process_killed_by_a_signal_reads_the_same_on_both_backends() -> None:
    local = local_crash_error(request(), -9, None)
    task = {"containers": [{"name": "function", "exitCode": 137}]}
    fargate = fargate_crash_error(task, 512)
    assert (local.type, local.message) == ("ProcessKilled", "exit code -9 (killed by SIGKILL)")
    assert (fargate.type, fargate.message) == ("ProcessKilled", "exit code 137 (killed by SIGKILL)")


@pytest.mark.parametrize("exit_code, message", [
    (0, "the function's process exited (code 0) without reporting a result"),
    (3, "exit code 3"),
])
def test_an_exit_without_a_word_reads_the_same_on_both_backends(exit_code: int, message: str) -> None:
    task = {"containers": [{"name": "function", "exitCode": exit_code}]}
    expected = ErrorInfo(type="ProcessExited", message=message)
    assert local_crash_error(request(), exit_code, None) == expected
    assert fargate_crash_error(task, 512) == expected


def test_the_memory_limit_is_told_by_the_cgroup_locally_and_by_the_reason_on_fargate(tmp_path: Path) -> None:
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    cgroup = Cgroup(memory_dir=tmp_path, cpu_dir=None, unified=True)
    expected = ErrorInfo(type="MemoryLimitExceeded", message="killed: memory limit of 512 MiB exceeded")
    assert local_crash_error(request(), -9, cgroup) == expected
    task = {"containers": [{"name": "function", "exitCode": 137, "reason": "OutOfMemoryError: killed"}]}
    assert fargate_crash_error(task, 512) == expected


def test_a_fargate_container_without_an_exit_code_was_killed() -> None:
    error = fargate_crash_error({"stoppedReason": "Task stopped by user", "containers": [{"name": "function"}]}, 512)
    assert (error.type, error.message) == (
        "ProcessKilled", "the container ended without an exit code (Task stopped by user)")
