"""What callers get back: `Invocation`, `InvocationStatus`, `InvocationIdsList`, `Attempt`."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, TypeVar

R = TypeVar("R")


class InvocationStatus(enum.StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    CANCELLING = "CANCELLING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset(
    {
        InvocationStatus.SUCCEEDED,
        InvocationStatus.FAILED,
        InvocationStatus.CANCELLED,
        InvocationStatus.TIMED_OUT,
    }
)


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
    """One container run of an invocation."""

    number: int
    outcome: str
    started_at: datetime | None
    ended_at: datetime | None
    error: ErrorDetails | None = None
    exit_code: int | None = None


@dataclass(frozen=True)
class Invocation(Generic[R]):
    invocation_id: str
    project_name: str
    function_name: str
    version_id: str
    status: InvocationStatus
    result: R | None
    error: str | None
    error_details: ErrorDetails | None
    terminated: bool
    num_failed_attempts: int
    created_at: datetime
    ended_at: datetime | None = None
    parent_invocation_id: str | None = None
    attempts: tuple[Attempt, ...] = field(default_factory=tuple)
    status_history: tuple[tuple[InvocationStatus, datetime], ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class InvocationIdsList:
    """One page of invocation ids, newest first; pass `offset` back to get the next page
    (`None` on the last page)."""

    invocation_ids: list[str]
    offset: str | None
