"""What every role knows of an invocation: the fields that name it and the statuses it passes
through. Kept apart from the wire records so that `import multinode` (run in every function's
process) does not build them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class InvocationStatus(enum.StrEnum):
    """The values are what workflows store and search attributes carry: never rename them."""

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


@dataclass(frozen=True)
class InvocationIdentity:
    """Who an invocation is: the base of the wire input, the public `Invocation` and the
    listing rows. Subclasses keep a flat JSON form (inherited fields sit beside their own);
    `parent_invocation_id` is keyword-only so that subclasses may add fields without defaults."""

    invocation_id: str
    project_name: str
    function_name: str
    version_id: str
    parent_invocation_id: str | None = field(default=None, kw_only=True)
