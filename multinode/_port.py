"""`EnginePort`: exactly what the public SDK (`Function`, `Client`) needs from the engine.

`multinode.engine.Engine` implements it over Temporal; a `Client` can be built over any other
implementation (`Client(engine=...)`), so the SDK's own logic (ownership checks, result or
error per status, paging, map windows and cancellation) is tested without a server. Every method
raises `multinode.errors` exceptions only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from multinode.contract.records import (
        CancelReply,
        InvocationInput,
        InvocationRecord,
        LockInput,
        VersionManifest,
    )


class EnginePort(Protocol):
    async def latest_version(self, project_name: str) -> VersionManifest:
        """The version new invocations run; ProjectDoesNotExistError if the project is missing
        or being undeployed."""
        ...

    async def version(self, project_name: str, version_id: str) -> VersionManifest:
        """A pinned version to start invocations of (refused like `latest_version`)."""
        ...

    async def start_invocation(self, invocation: InvocationInput, summary: str) -> None: ...

    async def start_locked_invocation(self, lock: LockInput) -> None:
        """LockAlreadyInUseError while another open invocation of the project holds `lock.key`."""
        ...

    async def get_invocation(self, invocation_id: str) -> tuple[InvocationRecord, bool]:
        """The record (with the running attempt's latest value) and whether the invocation has
        ended; InvocationDoesNotExistError for an unknown id."""
        ...

    async def await_invocation(self, invocation_id: str) -> InvocationRecord:
        """The final record, once the invocation has ended."""
        ...

    async def cancel_invocation(self, invocation_id: str, wait_ack: bool = True) -> CancelReply: ...

    async def remove_invocation(self, invocation_id: str) -> None:
        """Cancel if open, then delete: afterwards no read or listing finds the id."""
        ...

    def function_invocation_ids(self, project_name: str, function_name: str) -> AsyncIterator[str]:
        """Every invocation id of the function, in no order (an id may come twice)."""
        ...

    async def function_invocations_page(
        self, project_name: str, function_name: str, before_id: str | None, limit: int
    ) -> tuple[list[str], bool]:
        """The `limit` newest ids of the function below `before_id` (newest first), and whether
        older ones exist."""
        ...

    async def close(self) -> None: ...
