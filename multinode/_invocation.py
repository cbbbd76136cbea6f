"""What callers get back: `Invocation`, `InvocationStatus` (defined in the contract, which workflows
share), `InvocationIdsList`, `Attempt`, and the one mapping from the engine's `InvocationRecord` to
them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from multinode.contract import codec
from multinode.contract.invocation import InvocationIdentity
from multinode.contract.invocation import InvocationStatus as InvocationStatus
from multinode.errors import InvocationDoesNotExistError

if TYPE_CHECKING:
    from multinode.contract.records import ErrorInfo, InvocationRecord

R = TypeVar("R")


def utc(epoch_seconds: float | None) -> datetime | None:
    if epoch_seconds is None:
        return None
    return datetime.fromtimestamp(epoch_seconds, tz=UTC)


@dataclass(frozen=True)
class ErrorDetails:
    """A failure inside the function: exception type, message and the remote traceback."""

    type: str
    message: str
    traceback: str | None = None

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


@dataclass(frozen=True)
class Attempt:
    """One container run of an invocation. `logs_at` is where its logs are when its worker
    keeps them on its own machine (the local backend): `machine:/path/attempt-N.log`."""

    number: int
    outcome: str
    started_at: datetime | None
    ended_at: datetime | None
    error: ErrorDetails | None = None
    exit_code: int | None = None
    logs_at: str | None = None


@dataclass(frozen=True)
class Invocation(InvocationIdentity, Generic[R]):
    """One invocation as callers see it: its identity (`invocation_id`, `project_name`,
    `function_name`, `version_id`, `parent_invocation_id`), status, result and attempts.

    `result` is decoded when first read: a value this process cannot decode (a class or package
    missing here) raises `EncodingError` there, while status, error and attempts stay readable."""

    status: InvocationStatus
    error: str | None
    error_details: ErrorDetails | None
    terminated: bool
    num_failed_attempts: int
    created_at: datetime
    ended_at: datetime | None = None
    attempts: tuple[Attempt, ...] = field(default_factory=tuple)
    status_history: tuple[tuple[InvocationStatus, datetime], ...] = field(default_factory=tuple)
    # The result (or latest progress) as jsonpickle text, as the function's process sent it.
    encoded_result: str | None = field(default=None, repr=False)

    @cached_property
    def result(self) -> R | None:
        """The final result, or a running generator's latest yielded value; None without one."""
        decoded: R | None = codec.decode(
            self.encoded_result, f"the result of {self.invocation_id}", "in this process"
        )
        return decoded


@dataclass(frozen=True)
class InvocationIdsList:
    """One page of invocation ids, newest first; pass `offset` back to get the next page
    (`None` on the last page)."""

    invocation_ids: list[str]
    offset: str | None


def error_details(error: ErrorInfo | None) -> ErrorDetails | None:
    if error is None:
        return None
    return ErrorDetails(type=error.type, message=error.message, traceback=error.traceback)


def attempt_from_record(number: int, outcome: str, started_at: float | None, ended_at: float | None,
                        error: ErrorInfo | None = None, exit_code: int | None = None,
                        logs_at: str | None = None) -> Attempt:
    return Attempt(number=number, outcome=outcome, started_at=utc(started_at), ended_at=utc(ended_at),
                   error=error_details(error), exit_code=exit_code, logs_at=logs_at)


def invocation_from_record(record: InvocationRecord, terminated: bool) -> Invocation[Any]:
    details = error_details(record.error)
    return Invocation(
        invocation_id=record.invocation_id,
        project_name=record.project_name,
        function_name=record.function_name,
        version_id=record.version_id,
        status=InvocationStatus(record.status),
        encoded_result=record.result if record.has_result else None,
        error=str(details) if details else None,
        error_details=details,
        terminated=terminated,
        num_failed_attempts=record.num_failed_attempts,
        created_at=datetime.fromtimestamp(record.created_at, tz=UTC),
        ended_at=utc(record.ended_at),
        parent_invocation_id=record.parent_invocation_id,
        attempts=tuple(
            attempt_from_record(a.number, a.outcome, a.started_at, a.ended_at, a.error, a.exit_code, a.logs_at)
            for a in record.attempts
        ),
        status_history=tuple(
            (InvocationStatus(t.status), datetime.fromtimestamp(t.at, tz=UTC)) for t in record.transitions
        ),
    )


def check_owner(record: InvocationRecord, project_name: str | None, function_name: str | None) -> None:
    """An id is only found through the function (or project) it belongs to: anything else reads
    as no such invocation, so one caller cannot probe another function's ids."""
    if (project_name is not None and record.project_name != project_name) or (
        function_name is not None and record.function_name != function_name
    ):
        where = ".".join(n for n in (project_name, function_name) if n)
        raise InvocationDoesNotExistError(
            f"{record.invocation_id} is not an invocation of {where} "
            f"(it belongs to {record.project_name}.{record.function_name})"
        )
