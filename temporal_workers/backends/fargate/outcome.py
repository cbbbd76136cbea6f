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
    ended,
    exit_error,
    memory_limit_error,
    reported_error,
    signal_error,
)

# Stops decided by AWS, not by the function: the engine runs the attempt again, uncounted.
INFRASTRUCTURE_STOP_CODES = frozenset(
    {"SpotInterruption", "TerminationNotice", "InfrastructureHealth", "TaskFailedToStart"}
)


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
