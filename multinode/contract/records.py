"""Records exchanged between the SDK, workflows, activities and function processes.

Plain dataclasses that Temporal's default JSON converter carries. Times are UTC epoch seconds.
User values (arguments, results, progress) appear only as jsonpickle text, never decoded here.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from multinode.contract.invocation import InvocationIdentity, InvocationStatus
from multinode.contract.kinds import FunctionKind, kind_from_manifest
from multinode.contract.options import FunctionOptions
from multinode.contract.services import ServiceSpec

T = TypeVar("T")


@dataclass(frozen=True)
class PackageRef:
    uri: str
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    options: FunctionOptions
    is_generator: bool = False
    # A FunctionKind value; "" in manifests written before kinds were recorded.
    kind: str = ""

    @property
    def function_kind(self) -> FunctionKind:
        return kind_from_manifest(self.kind, self.is_generator)


@dataclass(frozen=True)
class VersionManifest:
    project_name: str
    version_id: str
    created_at: float
    package: PackageRef
    requirements_sha256: str | None
    functions: list[FunctionSpec]
    # Long-running processes deployed with the version (absent from older manifests).
    services: list[ServiceSpec] = field(default_factory=list)
    # The project's `.env`, stored apart from the package (`multinode.storage.secrets`); None
    # without one, and in older manifests, whose packages still hold their `.env`.
    secrets_uri: str | None = None

    def function(self, name: str) -> FunctionSpec | None:
        for spec in self.functions:
            if spec.name == name:
                return spec
        return None

    def service(self, name: str) -> ServiceSpec | None:
        for spec in self.services:
            if spec.name == name:
                return spec
        return None


@dataclass(frozen=True)
class ErrorInfo:
    type: str
    message: str
    traceback: str | None = None


@dataclass(frozen=True)
class InvocationInput(InvocationIdentity):
    """What the invocation workflow starts from (its identity fields come first)."""

    options: FunctionOptions
    package: PackageRef
    requirements_sha256: str | None
    args: list[str]
    kwargs: dict[str, str]
    created_at: float
    secrets_uri: str | None = field(default=None, kw_only=True)  # the version's, see VersionManifest


@dataclass(frozen=True)
class AttemptRequest:
    """What one attempt (one container run) needs; the activity's input."""

    invocation: InvocationInput
    attempt_number: int
    # True: the worker admits the attempt through its lease on the function's quota (or answers
    # NO_SLOT); False: the invocation already holds a slot from the semaphore.
    lease: bool = False


class Outcome:
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    # Not an attempt: the worker had no slot of the quota to give; ask the semaphore instead.
    NO_SLOT = "no_slot"


@dataclass(frozen=True)
class AttemptOutcome:
    """How one attempt ended; the activity's result. `value` is the final result, or the last
    yielded value when the attempt did not succeed."""

    outcome: str
    value: str | None
    error: ErrorInfo | None
    started_at: float | None
    ended_at: float
    exit_code: int | None = None
    has_value: bool = False
    # Invocations the attempt started (nested): cancelled if this invocation does not succeed.
    children: list[str] = field(default_factory=list)
    # The worker gave the quota slot back the moment the container was gone.
    quota_released: bool = False
    # `<machine>:<path>` of the attempt's log file, for backends that keep it on the worker's
    # machine (contract/log_location.py); None elsewhere.
    logs_at: str | None = None


@dataclass(frozen=True)
class AttemptProgress:
    """The heartbeat details of a running attempt: read by `.get` through describe, at no
    history cost."""

    attempt_number: int
    phase: str  # "preparing" | "running" | "stopping"
    started_at: float | None
    value: str | None = None
    has_value: bool = False
    logs_at: str | None = None  # as in AttemptOutcome


@dataclass(frozen=True)
class AttemptRecord:
    number: int
    outcome: str
    started_at: float | None
    ended_at: float
    error: ErrorInfo | None = None
    exit_code: int | None = None
    logs_at: str | None = None  # as in AttemptOutcome


@dataclass(frozen=True)
class Transition:
    status: str
    at: float


@dataclass
class InvocationRecord:
    """The state of one invocation, owned by its workflow (query result and final result).

    Its first five fields repeat `InvocationIdentity` (a unit test holds them equal): the
    workflow updates the record in place, and a mutable dataclass cannot inherit a frozen one."""

    invocation_id: str
    project_name: str
    function_name: str
    version_id: str
    parent_invocation_id: str | None
    status: str
    created_at: float
    result: str | None = None
    has_result: bool = False
    error: ErrorInfo | None = None
    num_failed_attempts: int = 0
    attempts: list[AttemptRecord] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    ended_at: float | None = None


def initial_record(invocation: InvocationInput) -> InvocationRecord:
    """The record an invocation starts with, stored in its memo when it is started: readable by
    `.get` before the workflow's first task has run."""
    return InvocationRecord(
        invocation_id=invocation.invocation_id,
        project_name=invocation.project_name,
        function_name=invocation.function_name,
        version_id=invocation.version_id,
        parent_invocation_id=invocation.parent_invocation_id,
        status=InvocationStatus.PENDING.value,
        created_at=invocation.created_at,
    )


@dataclass(frozen=True)
class CancelReply:
    requested: bool
    status: str


@dataclass(frozen=True)
class ProjectState:
    """The project workflow's input: its versions, oldest first (carried across
    continue-as-new)."""

    versions: list[VersionManifest]


@dataclass(frozen=True)
class QuotaRequest:
    """One invocation asking its function's semaphore for a slot."""

    project_name: str
    function_name: str
    invocation_id: str
    limit: int
    # The attempt the slot is for: a late release of an earlier attempt must not free it.
    attempt_number: int = 0


@dataclass(frozen=True)
class QuotaState:
    """The semaphore's state, carried across continue-as-new: holders by invocation id with the
    attempt each holds its slot for, and waiters in invocation id order, which is start order
    (ids begin with their creation time)."""

    holders: dict[str, int]
    waiters: list[QuotaRequest]
    leases: dict[str, Lease] = field(default_factory=dict)


@dataclass
class Lease:
    """Slots of a function's quota held by one worker, for the attempts it admits itself."""

    count: int
    renewed_at: float


@dataclass(frozen=True)
class LeaseRequest:
    """A worker asking the semaphore to hold `want` slots for it, `keep` of which it may be using:
    the semaphore never grants fewer than `keep`."""

    worker_id: str
    project_name: str
    function_name: str
    limit: int
    keep: int
    want: int
    # Attempts that queued in the worker and now move to the semaphore: it queues them in the
    # same step, so they keep their place (by invocation id) among its own waiters.
    queued: list[QuotaRequest] = field(default_factory=list)


@dataclass(frozen=True)
class LeaseGrant:
    count: int
    # Invocations wait at the semaphore: the worker should admit none itself and give back what
    # it does not use.
    contended: bool


@dataclass(frozen=True)
class LockInput:
    """A locked start: the lock workflow starts the invocation as its child and holds the key
    until the child closes, whatever the ending."""

    project_name: str
    key: str
    invocation: InvocationInput
    summary: str


@dataclass(frozen=True)
class ArchiverState:
    """Invocations that closed before `cursor` (epoch seconds) are archived."""

    cursor: float


# ----- decoding -------------------------------------------------------------------------------

_RECORD_MODULES = frozenset({__name__, FunctionOptions.__module__, ServiceSpec.__module__,
                             "multinode.contract.service_state"})


def is_record(hint: object) -> bool:
    """One of the dataclasses above (or the options they carry)."""
    return isinstance(hint, type) and dataclasses.is_dataclass(hint) and hint.__module__ in _RECORD_MODULES


def from_json(cls: type[T], value: Any) -> T:
    """A record from its JSON form, as Temporal's default converter builds it (missing fields
    take their defaults, unknown ones are ignored), but from a plan made once per type: the
    converter reflects on the type hints at every call, which dominated the cost of `.get`."""
    built: T = _plan(typing.cast(Any, cls))(value)
    return built


def _identity(value: Any) -> Any:
    return value


def _to_float(value: Any) -> Any:
    return None if value is None else float(value)


@functools.cache
def _plan(hint: Any) -> Callable[[Any], Any]:
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        record = hint
        hints = typing.get_type_hints(record)
        fields = tuple((f.name, _plan(hints[f.name])) for f in dataclasses.fields(record) if f.init)

        def build(value: Any) -> Any:
            return record(**{name: plan(value[name]) for name, plan in fields if name in value})

        return build
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list and args:
        item = _plan(args[0])
        return lambda value: [item(v) for v in value]
    if origin is dict and len(args) == 2:
        item = _plan(args[1])
        return lambda value: {k: item(v) for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        present = [a for a in args if a is not type(None)]
        if len(present) == 1:
            inner = _plan(present[0])
            return lambda value: None if value is None else inner(value)
    if hint is float:
        return _to_float
    return _identity
