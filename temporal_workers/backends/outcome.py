"""How an attempt ended, in the same vocabulary for every backend.

Each backend observes its attempt in its own way (a process's exit status and cgroup, an ECS
task's stop code and its container's documents); what that observation means is decided here,
once. Backend-specific facts (cgroup OOM, ECS stop codes) stay with each backend, which passes
them in as its `crash_error`.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Mapping
from typing import Any

from multinode.contract.options import format_memory
from multinode.contract.records import AttemptOutcome, AttemptRequest, ErrorInfo, Outcome

# The error type of an attempt whose container could not be launched for a reason no retry
# mends (a bad image, a role that may not run it): the invocation fails at once with it.
LAUNCH_FAILED = "LaunchFailed"


def launch_failed(outcome: AttemptOutcome) -> bool:
    return outcome.started_at is None and outcome.error is not None and outcome.error.type == LAUNCH_FAILED


def attempt_outcome(
    outcome: str,
    value: str | None,
    *,
    started_at: float | None,
    has_value: bool = False,
    error: ErrorInfo | None = None,
    exit_code: int | None = None,
) -> AttemptOutcome:
    """How an attempt ended, stamped now."""
    return AttemptOutcome(
        outcome=outcome,
        value=value,
        has_value=has_value,
        error=error,
        started_at=started_at,
        ended_at=time.time(),
        exit_code=exit_code,
    )


def not_started(exc: Exception) -> AttemptOutcome:
    """A failure no launch can avoid (a corrupt package, requirements that do not install, a
    request no task can take): permanent, and no user code has run."""
    return not_started_error(ErrorInfo(type=type(exc).__name__, message=str(exc)))


def not_started_error(error: ErrorInfo) -> AttemptOutcome:
    """As `not_started`, from the error itself (a launch the container platform refused)."""
    return attempt_outcome(Outcome.FAILED, None, started_at=None, error=error)


def ended(
    request: AttemptRequest,
    *,
    interrupt: str | None,
    exit_code: int | None,
    started_at: float | None,
    last: tuple[str | None, bool],
    result: tuple[str | None, bool],
    error: ErrorInfo | None,
    crash_error: Callable[[], ErrorInfo],
) -> AttemptOutcome:
    """The outcome of an attempt whose function ran: what interrupted it (its supervisor's
    "cancel" or "timeout"), how its process exited, the latest yield (`last`, kept as `.result`
    when the attempt did not succeed), the result and the error it reported. `crash_error` says,
    only when asked, why it ended without reporting either."""
    last_value, has_last = last
    if interrupt == "cancel":
        return attempt_outcome(Outcome.CANCELLED, last_value, has_value=has_last, started_at=started_at,
                               exit_code=exit_code)
    if interrupt == "timeout":
        timeout = request.invocation.options.timeout_seconds
        timed_out = ErrorInfo(type="InvocationTimedOutError",
                              message=f"the attempt ran past its timeout of {timeout:g} s")
        return attempt_outcome(Outcome.TIMED_OUT, last_value, has_value=has_last, started_at=started_at,
                               error=timed_out, exit_code=exit_code)
    if error is not None:
        return attempt_outcome(Outcome.FAILED, last_value, has_value=has_last, started_at=started_at,
                               error=error, exit_code=exit_code)
    value, has_result = result
    if has_result and exit_code == 0:
        return attempt_outcome(Outcome.SUCCEEDED, value, has_value=True, started_at=started_at, exit_code=0)
    return attempt_outcome(Outcome.FAILED, last_value, has_value=has_last, started_at=started_at,
                           error=crash_error(), exit_code=exit_code)


def reported_error(fields: Mapping[str, Any] | None) -> ErrorInfo | None:
    """The error the function reported (the fields of its error frame), if it did."""
    if fields is None:
        return None
    return ErrorInfo(
        type=str(fields.get("type", "Exception")),
        message=str(fields.get("message", "")),
        traceback=fields.get("traceback"),
    )


# ----- why a function ended without a word: the shared part of each backend's crash_error -----


def memory_limit_error(memory_mib: int) -> ErrorInfo:
    return ErrorInfo(type="MemoryLimitExceeded",
                     message=f"killed: memory limit of {format_memory(memory_mib)} exceeded")


def signal_error(exit_code: int, signum: int) -> ErrorInfo:
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    return ErrorInfo(type="ProcessKilled", message=f"exit code {exit_code} (killed by {name})")


def exit_error(exit_code: int | None) -> ErrorInfo:
    if exit_code == 0:
        return ErrorInfo(type="ProcessExited",
                         message="the function's process exited (code 0) without reporting a result")
    return ErrorInfo(type="ProcessExited", message=f"exit code {exit_code}")
