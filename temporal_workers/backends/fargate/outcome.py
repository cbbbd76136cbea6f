"""How a STOPPED task ended: ECS's facts (stop codes, the container's exit code and reason) and
the outcome document its container uploaded, mapped through the shared decision of
`temporal_workers.backends.outcome`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from multinode.contract.records import AttemptOutcome, AttemptRequest, ErrorInfo
from multinode.runtime.fargate_run import EXIT_INFRASTRUCTURE
from temporal_workers.backends import InfrastructureError
from temporal_workers.backends.fargate.config import CONTAINER_NAME
from temporal_workers.backends.outcome import (
    LAUNCH_FAILED,
    ended,
    exit_error,
    memory_limit_error,
    not_started_error,
    reported_error,
    signal_error,
)

# Stops decided by AWS, not by the function: the engine runs the attempt again, uncounted.
INFRASTRUCTURE_STOP_CODES = frozenset(
    {"SpotInterruption", "TerminationNotice", "InfrastructureHealth", "TaskFailedToStart"}
)
# Why a task could not start, by the error's name in its stopped reason (AWS, "Amazon ECS
# stopped tasks error codes"), for the ones no retry mends: each launch would fail alike, so
# the attempt fails at once, naming the cause. The others (a runtime timeout, a network
# interface slow to provision) stay retried.
PERMANENT_START_ERRORS = {
    "CannotPullContainerError": "the function image could not be pulled: check its name and tag, "
    "the execution role's ECR permissions, and that the subnets reach ECR (public IP, NAT or "
    "VPC endpoints)",
    "ResourceInitializationError": "the task's resources could not be set up (its secrets, "
    "registry authentication or log group): check the execution role and the subnets' routes",
    "CannotStartContainerError": "the function container could not be started: check the image's "
    "entrypoint",
    "CannotCreateVolumeError": "a volume of the task definition could not be created",
}
# Pull failures that pass: a registry's rate limit.
_TRANSIENT_PULL_WORDS = ("toomanyrequests", "too many requests", "rate exceeded")


def _function_container(task: Mapping[str, Any]) -> dict[str, Any]:
    containers = task.get("containers") or []
    for container in containers:
        if container.get("name") == CONTAINER_NAME:
            return dict(container)
    return dict(containers[0]) if containers else {}


def crash_error(task: Mapping[str, Any], memory_mib: int) -> ErrorInfo:
    """Why the function's container ended without reporting a result or an error."""
    container = _function_container(task)
    reason = str(container.get("reason") or "")
    exit_code = container.get("exitCode")
    if "OutOfMemoryError" in reason:
        return memory_limit_error(memory_mib)
    if exit_code is None:
        stopped = task.get("stoppedReason") or reason or "no reason given"
        return ErrorInfo(type="ProcessKilled", message=f"the container ended without an exit code ({stopped})")
    if exit_code > 128:
        # A container reports death by signal N as 128 + N.
        return signal_error(exit_code, exit_code - 128)
    return exit_error(exit_code)


def permanent_start_failure(task: Mapping[str, Any]) -> ErrorInfo | None:
    """The error of a task that could not start for a reason no retry mends, if it is one."""
    reasons = [str(task.get("stoppedReason") or "")]
    reasons += [str(c.get("reason") or "") for c in task.get("containers") or []]
    text = " ".join(r for r in reasons if r)
    if any(words in text.lower() for words in _TRANSIENT_PULL_WORDS):
        return None
    for name, hint in PERMANENT_START_ERRORS.items():
        if name in text:
            return ErrorInfo(type=LAUNCH_FAILED, message=f"{hint} ({text})")
    return None


def classify(
    request: AttemptRequest,
    task: Mapping[str, Any],
    document: Mapping[str, Any] | None,
    interrupt: str | None,
    started_at: float | None,
    progress: tuple[str | None, bool],
) -> AttemptOutcome:
    """Map a STOPPED task (and the outcome its container uploaded, if any) to an outcome.
    Raises InfrastructureError when AWS, not the function, ended the task."""
    stop_code = task.get("stopCode")
    if task.get("startedAt") is None and (failure := permanent_start_failure(task)) is not None:
        # Never started: no user code ran, whatever interrupted it meanwhile.
        return not_started_error(failure)
    if interrupt is None and stop_code in INFRASTRUCTURE_STOP_CODES:
        raise InfrastructureError(
            f"the task was stopped by AWS ({stop_code}: {task.get('stoppedReason', '')})"
        )
    exit_code = _function_container(task).get("exitCode")
    if interrupt is None and document is None and exit_code == EXIT_INFRASTRUCTURE:
        raise InfrastructureError("the container could not prepare the attempt (see its log)")
    if interrupt is None and document is not None and document.get("infrastructure"):
        raise InfrastructureError(f"the container could not prepare the attempt: {document['infrastructure']}")
    last = progress
    if document is not None and document.get("has_progress"):
        last = document.get("progress"), True
    result = (None, False) if document is None else (document.get("result"), bool(document.get("has_result")))
    error = (document or {}).get("error")
    return ended(
        request,
        interrupt=interrupt,
        exit_code=exit_code,
        started_at=started_at,
        last=last,
        result=result,
        error=reported_error(error) if isinstance(error, dict) else None,
        crash_error=lambda: crash_error(task, request.invocation.options.memory_mib),
    )
