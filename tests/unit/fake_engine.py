"""An in-memory `EnginePort` for unit tests of the SDK's own logic (not shipped).

Invocations run when they are awaited: `outcome(input)` says how each ends (a status, and a
value or an error). An invocation nobody awaits stays open, so a test can see what the SDK
cancels. Every call is recorded, in order. `function()` makes a `Function` over a client on
such an engine; the fixtures `client` and `outside_a_function` are in `tests/unit/conftest.py`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

import multinode as mn
from multinode._client import Client
from multinode.contract import codec
from multinode.contract.invocation import InvocationStatus
from multinode.contract.options import FunctionOptions
from multinode.contract.records import (
    CancelReply,
    ErrorInfo,
    FunctionSpec,
    InvocationInput,
    InvocationRecord,
    LockInput,
    PackageRef,
    VersionManifest,
    initial_record,
)
from multinode.errors import (
    InvocationDoesNotExistError,
    LockAlreadyInUseError,
    ProjectDoesNotExistError,
    VersionDoesNotExistError,
)


@dataclass(frozen=True)
class Ending:
    status: InvocationStatus
    value: object = None
    error: ErrorInfo | None = None


def echo(invocation: InvocationInput) -> Ending:
    """Succeeds with its first argument."""
    return Ending(InvocationStatus.SUCCEEDED, codec.decode(invocation.args[0]))


def doubled_unless_one_fails(invocation: InvocationInput) -> Ending:
    """Doubles its first argument; fails on 1."""
    x = codec.decode(invocation.args[0])
    if x == 1:
        return Ending(InvocationStatus.FAILED, error=ErrorInfo("ValueError", "one is bad", "Traceback: ..."))
    return Ending(InvocationStatus.SUCCEEDED, 2 * x)


def manifest(project_name: str, *function_names: str, max_concurrency: int = 10,
             version_id: str = "ver-0000000000abcdefghjkmnpqrs") -> VersionManifest:
    options = FunctionOptions(max_concurrency=max_concurrency)
    return VersionManifest(
        project_name=project_name, version_id=version_id, created_at=time.time(),
        package=PackageRef("file:///package", "a" * 64, 1), requirements_sha256=None,
        functions=[FunctionSpec(name, options) for name in function_names],
    )


class FakeEngine:
    def __init__(self, *manifests: VersionManifest, outcome: Callable[[InvocationInput], Ending] = echo) -> None:
        self.manifests = list(manifests)
        self.outcome = outcome
        self.inputs: dict[str, InvocationInput] = {}
        self.records: dict[str, InvocationRecord] = {}
        self.ended: set[str] = set()
        self.locks: dict[tuple[str, str], str] = {}
        self.started: list[str] = []  # invocation ids, in start order
        self.awaited: list[str] = []
        self.cancels: list[tuple[str, bool]] = []  # (invocation id, whether it was still open)
        self.closed = False

    # ----- EnginePort ----------------------------------------------------------------------

    async def latest_version(self, project_name: str) -> VersionManifest:
        versions = [m for m in self.manifests if m.project_name == project_name]
        if not versions:
            raise ProjectDoesNotExistError(f"no project named {project_name!r}")
        return versions[-1]

    async def version(self, project_name: str, version_id: str) -> VersionManifest:
        await self.latest_version(project_name)
        for m in self.manifests:
            if m.project_name == project_name and m.version_id == version_id:
                return m
        raise VersionDoesNotExistError(f"project {project_name!r} has no version {version_id!r}")

    async def start_invocation(self, invocation: InvocationInput, summary: str) -> None:
        self.inputs[invocation.invocation_id] = invocation
        self.records[invocation.invocation_id] = initial_record(invocation)
        self.started.append(invocation.invocation_id)

    async def start_locked_invocation(self, lock: LockInput) -> None:
        holder = self.locks.get((lock.project_name, lock.key))
        if holder is not None and holder not in self.ended:
            raise LockAlreadyInUseError(f"lock {lock.key!r} is held by {holder}", lock=lock.key,
                                   holder_invocation_id=holder)
        self.locks[(lock.project_name, lock.key)] = lock.invocation.invocation_id
        await self.start_invocation(lock.invocation, lock.summary)

    async def get_invocation(self, invocation_id: str) -> tuple[InvocationRecord, bool]:
        return replace(self._record(invocation_id)), invocation_id in self.ended

    async def await_invocation(self, invocation_id: str) -> InvocationRecord:
        record = self._record(invocation_id)
        self.awaited.append(invocation_id)
        if invocation_id not in self.ended:
            self.finish(invocation_id, self.outcome(self.inputs[invocation_id]))
        return replace(record)

    async def cancel_invocation(self, invocation_id: str, wait_ack: bool = True) -> CancelReply:
        record = self._record(invocation_id)
        is_open = invocation_id not in self.ended
        self.cancels.append((invocation_id, is_open))
        if not is_open:
            return CancelReply(requested=False, status=record.status)
        self._end(invocation_id, InvocationStatus.CANCELLED, None, None)
        return CancelReply(requested=True, status=InvocationStatus.CANCELLING.value)

    async def remove_invocation(self, invocation_id: str) -> None:
        self._record(invocation_id)
        del self.records[invocation_id]

    async def function_invocation_ids(self, project_name: str, function_name: str) -> AsyncIterator[str]:
        for invocation_id in self._ids_of(project_name, function_name):
            yield invocation_id

    async def function_invocations_page(
        self, project_name: str, function_name: str, before_id: str | None, limit: int
    ) -> tuple[list[str], bool]:
        ids = sorted(
            (i for i in self._ids_of(project_name, function_name) if before_id is None or i < before_id),
            reverse=True,
        )
        return ids[:limit], len(ids) > limit

    async def close(self) -> None:
        self.closed = True

    # ----- for tests -----------------------------------------------------------------------

    def finish(self, invocation_id: str, ending: Ending) -> None:
        """End an invocation now, as its workflow would."""
        has_result = ending.status == InvocationStatus.SUCCEEDED
        self._end(invocation_id, ending.status, codec.encode(ending.value, "result") if has_result else None,
                  ending.error)

    def _ids_of(self, project_name: str, function_name: str) -> list[str]:
        return [i for i, r in self.records.items()
                if r.project_name == project_name and r.function_name == function_name]

    def _record(self, invocation_id: str) -> InvocationRecord:
        try:
            return self.records[invocation_id]
        except KeyError:
            raise InvocationDoesNotExistError(f"no invocation with id {invocation_id!r}") from None

    def _end(self, invocation_id: str, status: InvocationStatus, result: str | None, error: ErrorInfo | None) -> None:
        record = self.records[invocation_id]
        record.status, record.error, record.ended_at = status.value, error, time.time()
        record.result, record.has_result = result, result is not None
        self.ended.add(invocation_id)


def function(client: Client[FakeEngine], name: str = "f", project: str = "p") -> mn.Function:  # type: ignore[type-arg]
    return mn.Function(name, project_name=project, client=client)


def item_of(engine: FakeEngine, invocation_id: str) -> object:
    """The first argument an invocation was started with."""
    return codec.decode(engine.inputs[invocation_id].args[0])
