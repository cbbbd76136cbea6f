"""The Temporal adapter: the only SDK module that imports temporalio.

Everything here is async and speaks in `_wire` records; `_client` wraps it for synchronous
callers. Foreign exceptions (temporalio, grpc) are translated into `multinode.errors` here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import temporalio.api.common.v1
import temporalio.api.enums.v1
import temporalio.api.operatorservice.v1
import temporalio.api.workflowservice.v1
import temporalio.exceptions
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
    JSONTypeConverter,
)
from temporalio.service import RPCError, RPCStatusCode

from multinode._invocation import InvocationStatus
from multinode.contract import names
from multinode.contract.connection import ConnectionSettings
from multinode.contract.ids import id_time_millis
from multinode.contract.records import (
    AttemptProgress,
    CancelReply,
    ErrorInfo,
    InvocationInput,
    InvocationRecord,
    LockInput,
    ProjectState,
    VersionManifest,
    from_json,
    is_record,
)
from multinode.engine.page_window import FIRST_SPAN_SECONDS, VisibilityWindow, newest_page
from multinode.engine.project_cache import ProjectCache, ProjectSnapshot
from multinode.engine.views import InvocationRow, ProjectListing
from multinode.errors import (
    ControlPlaneUnavailableError,
    InvocationDoesNotExistError,
    LockAlreadyInUseError,
    MultinodeError,
    ProjectAlreadyExistsError,
    ProjectDoesNotExistError,
    VersionDoesNotExistError,
)

T = TypeVar("T")

CONNECT_TIMEOUT_SECONDS = 10.0
LOCK_START_WAIT_SECONDS = 10.0
# One visibility call of `.list` reads at most this many invocations.
LIST_LISTING_SIZE = 1000
# Invocations created this long inside the retention period are surely not deleted yet.
LIST_RETENTION_MARGIN_SECONDS = 3600.0
# The first page also shows invocations stamped by a client whose clock runs this far ahead.
LIST_CLOCK_SKEW_SECONDS = 3600.0
# The engine applies deletions asynchronously (about 30 s on the dev server); `.remove` returns
# once they are done, so nothing reads the invocation afterwards.
REMOVE_WAIT_SECONDS = 120.0
CANCEL_ACK_TIMEOUT_SECONDS = 5.0

KEY_PROJECT = SearchAttributeKey.for_keyword(names.SA_PROJECT)
KEY_FUNCTION = SearchAttributeKey.for_keyword(names.SA_FUNCTION)
KEY_VERSION = SearchAttributeKey.for_keyword(names.SA_VERSION)
KEY_STATUS = SearchAttributeKey.for_keyword(names.SA_STATUS)
KEY_PARENT = SearchAttributeKey.for_keyword(names.SA_PARENT)
KEY_LOCK = SearchAttributeKey.for_keyword(names.SA_LOCK)
KEY_CREATED = SearchAttributeKey.for_datetime(names.SA_CREATED)

_OPEN = (None, WorkflowExecutionStatus.RUNNING)
_RUNNING = temporalio.api.enums.v1.WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
_FINAL_STATUSES = {s.value for s in InvocationStatus if s.is_final}


def unreachable_message(settings: ConnectionSettings, detail: object) -> str:
    hint = (
        "start one with `multinode dev`"
        if settings.source == "default"
        else f"check MULTINODE_API_URL / `multinode login` (address from {settings.source})"
    )
    return f"cannot reach the Multinode control plane at {settings.api_url}: {detail}; {hint}"


class _RecordDecoder(JSONTypeConverter):
    """Multinode's own records, decoded from a plan made once per type (`_wire.from_json`)."""

    def to_typed_value(self, hint: type, value: Any) -> Any:
        if is_record(hint):
            return from_json(hint, value)
        return JSONTypeConverter.Unhandled


class _PayloadConverter(CompositePayloadConverter):
    """Temporal's default payload converters, with the records decoded as above."""

    def __init__(self) -> None:
        super().__init__(*(
            JSONPlainPayloadConverter(custom_type_converters=[_RecordDecoder()])
            if isinstance(converter, JSONPlainPayloadConverter) else converter
            for converter in DefaultPayloadConverter.default_encoding_payload_converters
        ))


# Used by the SDK's clients and by the workers (through their client): same bytes as the default.
DATA_CONVERTER = dataclasses.replace(DataConverter.default, payload_converter_class=_PayloadConverter)


async def connect(settings: ConnectionSettings) -> Client:
    try:
        return await asyncio.wait_for(
            Client.connect(
                settings.api_url,
                namespace=settings.namespace,
                api_key=settings.api_key,
                tls=settings.uses_tls,
                data_converter=DATA_CONVERTER,
            ),
            timeout=CONNECT_TIMEOUT_SECONDS,
        )
    except TimeoutError:
        raise ControlPlaneUnavailableError(
            unreachable_message(settings, f"no answer within {CONNECT_TIMEOUT_SECONDS:g} s")
        ) from None
    except (RuntimeError, RPCError, OSError) as exc:
        raise ControlPlaneUnavailableError(unreachable_message(settings, _one_line(exc))) from None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def translate_rpc_error(exc: RPCError, what: str) -> MultinodeError:
    if exc.status == RPCStatusCode.UNAVAILABLE:
        return ControlPlaneUnavailableError(f"the control plane is unavailable ({_one_line(exc)})")
    if exc.status in (RPCStatusCode.UNAUTHENTICATED, RPCStatusCode.PERMISSION_DENIED):
        return ControlPlaneUnavailableError(
            f"the control plane refused the credentials ({_one_line(exc)})"
        )
    return MultinodeError(f"{what} failed: {_one_line(exc)}")


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Register the custom search attributes (idempotent): production Temporal needs this once."""
    types = temporalio.api.enums.v1.IndexedValueType
    wanted = {name: types.INDEXED_VALUE_TYPE_KEYWORD for name in names.SEARCH_ATTRIBUTES}
    wanted[names.SA_CREATED] = types.INDEXED_VALUE_TYPE_DATETIME
    listed = await client.operator_service.list_search_attributes(
        temporalio.api.operatorservice.v1.ListSearchAttributesRequest(namespace=namespace)
    )
    missing = {name: kind for name, kind in wanted.items() if name not in listed.custom_attributes}
    if missing:
        await client.operator_service.add_search_attributes(
            temporalio.api.operatorservice.v1.AddSearchAttributesRequest(
                namespace=namespace, search_attributes=missing
            )
        )


class Engine:
    """Multinode's operations expressed as Temporal client calls."""

    def __init__(self, client: Client, settings: ConnectionSettings) -> None:
        self.client = client
        self.settings = settings
        self._projects = ProjectCache(self._describe_project, self._follow_project)
        self._list_spans: dict[str, float] = {}
        self._list_first_page_ends: dict[str, float] = {}
        self._retention: float | None = None

    async def close(self) -> None:
        await self._projects.close()

    # ----- calls with translated errors -------------------------------------------------

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except RPCError as exc:
            raise translate_rpc_error(exc, what) from None

    # ----- projects and versions ----------------------------------------------------------

    async def create_project(self, manifest: VersionManifest) -> None:
        self._projects.forget(manifest.project_name)
        try:
            await self.client.start_workflow(
                names.PROJECT_WORKFLOW,
                ProjectState(versions=[manifest]),
                id=names.project_workflow_id(manifest.project_name),
                task_queue=self.settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                memo={"latest": manifest},
                search_attributes=TypedSearchAttributes(
                    [SearchAttributePair(KEY_PROJECT, manifest.project_name)]
                ),
                static_summary=f"project {manifest.project_name}",
            )
        except temporalio.exceptions.WorkflowAlreadyStartedError:
            raise ProjectAlreadyExistsError(
                f"project {manifest.project_name!r} already exists; deploy a new version of it "
                f"with `multinode upgrade`"
            ) from None
        except RPCError as exc:
            raise translate_rpc_error(exc, "deploy") from None

    async def add_version(self, manifest: VersionManifest) -> None:
        handle = self.client.get_workflow_handle(names.project_workflow_id(manifest.project_name))
        self._projects.forget(manifest.project_name)
        try:
            await handle.execute_update(names.ADD_VERSION_UPDATE, manifest)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise _no_project(manifest.project_name) from None
            raise translate_rpc_error(exc, "upgrade") from None
        except WorkflowUpdateFailedError as exc:
            raise MultinodeError(f"upgrade failed: {exc.cause}") from None

    async def latest_version(self, project_name: str) -> VersionManifest:
        """The version new invocations run; refused while the project is being undeployed.
        Read from the project cache, which follows the registry (no round trip per start)."""
        snapshot = await self._projects.snapshot(project_name)
        if snapshot.closing:
            raise _closing(project_name)
        return snapshot.latest

    async def version(self, project_name: str, version_id: str) -> VersionManifest:
        """A version to start invocations of: refused while the project is being undeployed."""
        return await self.project_version(project_name, version_id, for_start=True)

    # ----- invocations --------------------------------------------------------------------

    async def start_invocation(self, invocation: InvocationInput, summary: str) -> None:
        pairs = invocation_search_attributes(invocation)
        await self._call(
            "starting the invocation",
            lambda: self.client.start_workflow(
                names.INVOCATION_WORKFLOW,
                invocation,
                id=invocation.invocation_id,
                task_queue=self.settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=TypedSearchAttributes(pairs),
                memo={"state": initial_record(invocation)},
                static_summary=summary,
            ),
        )

    async def start_locked_invocation(self, lock: LockInput) -> None:
        """Start the invocation under `lock.key`: refused while another open invocation of the
        project holds the key."""
        lock_id = names.lock_workflow_id(lock.project_name, lock.key)
        operation: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            names.LOCK_WORKFLOW,
            lock,
            id=lock_id,
            task_queue=self.settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            memo={"holder": lock.invocation.invocation_id},
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(KEY_PROJECT, lock.project_name), SearchAttributePair(KEY_LOCK, lock.key)]
            ),
            static_summary=f"lock {lock.key!r} of {lock.project_name}, held by {lock.invocation.invocation_id}",
        )
        try:
            # The update returns once the guarded invocation exists, so its id is readable at
            # once; without a worker to answer, the lock (and the invocation to come) stands.
            try:
                await asyncio.wait_for(
                    self.client.execute_update_with_start_workflow(
                        names.LOCK_CHILD_STARTED_UPDATE, start_workflow_operation=operation, result_type=str
                    ),
                    timeout=LOCK_START_WAIT_SECONDS,
                )
            except BaseException:
                # The start operation's own result fails the same way: read it, or asyncio
                # reports it as a lost exception.
                consume_outcome(asyncio.ensure_future(operation.workflow_handle()))
                raise
            return
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
            if await self._lock_holder(lock_id) == lock.invocation.invocation_id:
                return
            raise ControlPlaneUnavailableError("the locked start was not confirmed in time; try again") from None
        except WorkflowUpdateFailedError as exc:
            raise MultinodeError(f"starting the invocation failed: {exc.cause}") from None
        except RPCError as exc:
            if exc.status != RPCStatusCode.ALREADY_EXISTS:
                raise translate_rpc_error(exc, "starting the invocation") from None
        except temporalio.exceptions.WorkflowAlreadyStartedError:
            pass
        holder = await self._lock_holder(lock_id)
        raise LockAlreadyInUseError(
            f"lock {lock.key!r} of project {lock.project_name!r} is held by "
            f"{holder or 'another invocation'}",
            lock=lock.key,
            holder_invocation_id=holder,
        )

    async def _lock_holder(self, lock_id: str) -> str | None:
        try:
            description = await self.client.get_workflow_handle(lock_id).describe()
            holder: str = await description.memo_value("holder", type_hint=str)
            return holder
        except (RPCError, KeyError):
            return None

    def _handle(self, invocation_id: str) -> WorkflowHandle[Any, InvocationRecord]:
        return self.client.get_workflow_handle(invocation_id, result_type=InvocationRecord)

    async def get_invocation(self, invocation_id: str) -> tuple[InvocationRecord, bool]:
        """The invocation's record and whether its workflow (and so its container) has ended."""
        try:
            raw = await self._describe_raw(invocation_id)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return await self._archived_record(invocation_id), True
            raise _invocation_error(exc, invocation_id) from None
        info = raw.workflow_execution_info
        if info.type.name != names.INVOCATION_WORKFLOW:
            raise InvocationDoesNotExistError(f"no invocation with id {invocation_id!r}")
        decoded = await self.client.data_converter.decode([info.memo.fields["state"]], [InvocationRecord])
        record: InvocationRecord = decoded[0]
        if info.status != _RUNNING:
            if record.status not in _FINAL_STATUSES:
                # Ended in the engine without finishing (terminated by hand, or a history
                # limit): say so rather than fail every read.
                status = WorkflowExecutionStatus(info.status).name
                record.status = InvocationStatus.FAILED.value
                record.error = ErrorInfo(type="Terminated", message=f"the engine ended the invocation ({status})")
                record.ended_at = info.close_time.ToDatetime(UTC).timestamp() if info.HasField("close_time") else None
            return record, True
        progress = await self._attempt_progress(raw)
        if progress is not None:
            if progress.phase == "running" and record.status == InvocationStatus.PENDING.value:
                record.status = InvocationStatus.RUNNING.value
            record.result, record.has_result = progress.value, progress.has_value
        return record, False

    async def _attempt_progress(
        self, raw: temporalio.api.workflowservice.v1.DescribeWorkflowExecutionResponse
    ) -> AttemptProgress | None:
        for pending in raw.pending_activities:
            if pending.activity_type.name != names.RUN_ATTEMPT_ACTIVITY:
                continue
            payloads = pending.heartbeat_details.payloads
            if not payloads:
                return None
            decoded = await self.client.data_converter.decode(payloads, [AttemptProgress])
            progress: AttemptProgress = decoded[0]
            return progress
        return None

    async def _final_record(self, handle: WorkflowHandle[Any, InvocationRecord]) -> InvocationRecord:
        try:
            return await handle.result()
        except RPCError as exc:
            raise _invocation_error(exc, handle.id) from None
        except WorkflowFailureError as exc:
            # Only an engine-level fault (a bug, a termination) fails the workflow itself:
            # user failures complete it with status FAILED.
            raise MultinodeError(
                f"invocation {handle.id} ended abnormally in the engine: {_one_line(exc.cause)}"
            ) from None

    async def _archived_record(self, invocation_id: str) -> InvocationRecord:
        """The record kept past the namespace's retention (see the archiver)."""
        request = temporalio.api.workflowservice.v1.GetWorkflowExecutionHistoryRequest(
            namespace=self.settings.namespace,
            execution=temporalio.api.common.v1.WorkflowExecution(
                workflow_id=names.archive_workflow_id(invocation_id)
            ),
            maximum_page_size=1,
        )
        try:
            response = await self.client.workflow_service.get_workflow_execution_history(request)
        except RPCError as exc:
            raise _invocation_error(exc, invocation_id) from None
        events = response.history.events
        if not events or not events[0].HasField("workflow_execution_started_event_attributes"):
            raise InvocationDoesNotExistError(f"no invocation with id {invocation_id!r}")
        payloads = events[0].workflow_execution_started_event_attributes.input.payloads
        decoded = await self.client.data_converter.decode(payloads, [InvocationRecord])
        record: InvocationRecord = decoded[0]
        return record

    async def await_invocation(self, invocation_id: str) -> InvocationRecord:
        """One long poll for the close event. The id's form was checked at the door, so a
        workflow by that id is an invocation; a missing one fails the poll at once."""
        handle = self._handle(invocation_id)
        try:
            return await self._final_record(handle)
        except InvocationDoesNotExistError:
            return await self._archived_record(invocation_id)

    async def cancel_invocation(self, invocation_id: str, wait_ack: bool = True) -> CancelReply:
        """Request cancellation durably (one RPC the engine records, no worker needed), then
        wait briefly for the workflow to acknowledge it, so `.get` right after sees CANCELLING
        (skipped with `wait_ack=False`, for bulk cancels)."""
        handle = self._handle(invocation_id)
        try:
            await handle.cancel()
        except RPCError as exc:
            if exc.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                raise translate_rpc_error(exc, "cancelling the invocation") from None
            # The workflow is closed (or never existed): nothing to cancel.
            record, _ = await self.get_invocation(invocation_id)
            return CancelReply(requested=False, status=record.status)
        if not wait_ack:
            return CancelReply(requested=True, status=InvocationStatus.CANCELLING.value)
        try:
            reply: CancelReply = await asyncio.wait_for(
                handle.execute_update(names.CANCEL_UPDATE, result_type=CancelReply),
                timeout=CANCEL_ACK_TIMEOUT_SECONDS,
            )
        except (TimeoutError, RPCError, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError):
            # No worker to acknowledge right now: the recorded request is acted on when one runs.
            return CancelReply(requested=True, status=InvocationStatus.CANCELLING.value)
        return reply

    async def remove_invocation(self, invocation_id: str) -> None:
        """Cancel the invocation if it is still open, wait for its end, then delete its data
        (the workflow and its archive record) and wait until neither `.get` nor a listing sees
        it any more."""
        _, ended = await self.get_invocation(invocation_id)
        if not ended:
            await self.cancel_invocation(invocation_id)
            await self._final_record(self._handle(invocation_id))
        # The invocation first, the archive after: until the invocation is gone, the archiver
        # may still (re)create its archive record.
        deadline = time.monotonic() + REMOVE_WAIT_SECONDS
        for workflow_id in (invocation_id, names.archive_workflow_id(invocation_id)):
            await self._delete(workflow_id)
            while await self.count(f'WorkflowId = "{workflow_id}"') > 0 or await self._exists(workflow_id):
                if time.monotonic() > deadline:
                    raise MultinodeError(f"{invocation_id} is being deleted, but the engine still lists it; try again")
                await asyncio.sleep(0.5)

    async def _exists(self, workflow_id: str) -> bool:
        try:
            await self.client.get_workflow_handle(workflow_id).describe()
            return True
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise translate_rpc_error(exc, f"reading {workflow_id}") from None

    async def _delete(self, workflow_id: str) -> None:
        request = temporalio.api.workflowservice.v1.DeleteWorkflowExecutionRequest(
            namespace=self.settings.namespace,
            workflow_execution=temporalio.api.common.v1.WorkflowExecution(workflow_id=workflow_id),
        )
        try:
            await self.client.workflow_service.delete_workflow_execution(request)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise translate_rpc_error(exc, f"removing {workflow_id}") from None

    async def count(self, query: str) -> int:
        result = await self._call("counting invocations", lambda: self.client.count_workflows(query))
        return int(result.count)

    async def list_page(
        self, query: str, before_id: str | None, limit: int, unarchived_query: str | None = None
    ) -> tuple[list[str], bool]:
        """The `limit` newest invocation ids below `before_id`, and whether older ones exist.
        Ids sort by creation time and never change, so pages stay exact while invocations
        finish (multinode.engine.page_window).

        `unarchived_query` is `query` without the archive records: a window of invocations
        created within the namespace's retention reads only that, since their workflows still
        exist and their archive copies would be listed twice."""
        upper = id_time_millis(before_id) / 1000 + 0.001 if before_id else time.time() + LIST_CLOCK_SKEW_SECONDS
        retention = await self._retention_seconds() if unarchived_query else 0.0
        all_kept_since = time.time() - retention + LIST_RETENTION_MARGIN_SECONDS if retention else math.inf

        def since(lower: float) -> str:
            base = unarchived_query if unarchived_query and lower >= all_kept_since else query
            return f"{base} AND {names.SA_CREATED} < {_rfc3339(upper)} AND {names.SA_CREATED} >= {_rfc3339(lower)}"

        async def paged(lower: float) -> list[str]:
            return [i async for i in self.list_invocation_ids(since(lower))]

        reads = VisibilityWindow(
            listing=lambda lower: self._one_listing(since(lower)),
            paged_listing=paged,
            count_since=lambda lower: self.count(since(lower)),
            count_before=lambda lower: self.count(f"{query} AND {names.SA_CREATED} < {_rfc3339(lower)}"),
        )
        # Windows reach back from now, not from the first page's upper end, which sits in the
        # future to keep invocations stamped by a client whose clock runs ahead.
        anchor = min(upper, time.time())
        # The first page's window also reaches back to the id that followed it last time.
        reach_back_to = self._list_first_page_ends.get(query) if before_id is None else None
        ids, next_id, span = await newest_page(
            reads, anchor, self._list_spans.get(query, FIRST_SPAN_SECONDS), before_id, limit, reach_back_to
        )
        self._list_spans[query] = span
        if before_id is None and next_id is not None:
            self._list_first_page_ends[query] = id_time_millis(next_id) / 1000
        return ids, next_id is not None

    async def _retention_seconds(self) -> float:
        """The namespace's retention (0 when unknown), read once."""
        if self._retention is None:
            request = temporalio.api.workflowservice.v1.DescribeNamespaceRequest(namespace=self.client.namespace)
            try:
                response = await self.client.workflow_service.describe_namespace(request)
                self._retention = response.config.workflow_execution_retention_ttl.ToTimedelta().total_seconds()
            except RPCError:
                return 0.0
        return self._retention

    async def _one_listing(self, query: str) -> list[str] | None:
        """Every invocation id matching `query` from one visibility call (one consistent
        snapshot), or None when there are more than one call returns."""
        request = temporalio.api.workflowservice.v1.ListWorkflowExecutionsRequest(
            namespace=self.client.namespace, query=query, page_size=LIST_LISTING_SIZE,
        )
        response = await self._call(
            "listing invocations",
            lambda: self.client.workflow_service.list_workflow_executions(request, retry=True),
        )
        if response.next_page_token:
            return None
        return [e.execution.workflow_id.removeprefix(names.ARCHIVE_WORKFLOW_ID_PREFIX) for e in response.executions]

    async def list_invocation_ids(self, query: str) -> AsyncIterator[str]:
        """Invocation ids matching `query`, live or archived (an id can come twice).

        Visibility orders running executions first, then closed ones; one listing of both can
        skip an invocation that closes while it is being paged. Running ones are listed first,
        then closed ones: an invocation closing in between is in the second listing."""
        try:
            for status in ('ExecutionStatus = "Running"', 'ExecutionStatus != "Running"'):
                async for execution in self.client.list_workflows(f"({query}) AND {status}", page_size=1000):
                    yield execution.id.removeprefix(names.ARCHIVE_WORKFLOW_ID_PREFIX)
        except RPCError as exc:
            raise translate_rpc_error(exc, "listing invocations") from None

    # ----- administration: undeploy, listing, inspection (multinode.admin.admin) -----------------

    async def undeploy_project(self, project_name: str, *, finish: bool) -> None:
        """`finish=False` marks the project closing (no new version, starts refused);
        `finish=True` ends its workflow, which deletes it."""
        handle = self.client.get_workflow_handle(names.project_workflow_id(project_name))
        self._projects.forget(project_name)
        try:
            await handle.execute_update(names.UNDEPLOY_UPDATE, finish)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise _no_project(project_name) from None
            raise translate_rpc_error(exc, "undeploy") from None
        except WorkflowUpdateFailedError as exc:
            raise MultinodeError(f"undeploy failed: {exc.cause}") from None

    async def project_state(self, project_name: str) -> tuple[VersionManifest, bool]:
        """The latest version and whether the project is being undeployed (closing), also while
        it closes; raises for a missing project. Always asks the engine."""
        snapshot = await self._describe_project(project_name)
        return snapshot.latest, snapshot.closing

    async def _describe_project(self, project_name: str) -> ProjectSnapshot:
        handle = self.client.get_workflow_handle(names.project_workflow_id(project_name))
        try:
            description = await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise _no_project(project_name) from None
            raise translate_rpc_error(exc, "reading the project") from None
        if description.status not in _OPEN:
            raise _no_project(project_name)
        latest: VersionManifest = await description.memo_value(
            names.MEMO_LATEST, type_hint=VersionManifest
        )
        closing = await description.memo_value(names.MEMO_CLOSING, default=False)
        return ProjectSnapshot(
            latest=latest,
            closing=bool(closing),
            run_id=description.run_id or "",
            history_length=description.raw_description.workflow_execution_info.history_length,
        )

    async def _follow_project(self, project_name: str, run_id: str) -> AsyncIterator[int]:
        """Event ids of the registry run, long-polling for new ones. No retries: on any error
        the watch ends, and lookups describe the project until a new watch starts."""
        request = temporalio.api.workflowservice.v1.GetWorkflowExecutionHistoryRequest(
            namespace=self.client.namespace,
            execution=temporalio.api.common.v1.WorkflowExecution(
                workflow_id=names.project_workflow_id(project_name), run_id=run_id
            ),
            wait_new_event=True,
        )
        while True:
            response = await self.client.workflow_service.get_workflow_execution_history(request, retry=False)
            for event in response.history.events:
                yield event.event_id
            if not response.next_page_token:
                return  # the run has closed
            request.next_page_token = response.next_page_token

    async def project_versions(self, project_name: str) -> list[VersionManifest]:
        """Every version, oldest first (a query: needs a worker)."""
        await self.project_state(project_name)  # raises for a missing project
        handle = self.client.get_workflow_handle(names.project_workflow_id(project_name))
        result: list[VersionManifest] = await self._call(
            "listing versions",
            lambda: handle.query(names.VERSIONS_QUERY, result_type=list[VersionManifest]),
        )
        return result

    async def project_version(
        self, project_name: str, version_id: str, for_start: bool = False
    ) -> VersionManifest:
        """One version; the latest without a worker, older ones by query."""
        if for_start:
            latest = await self.latest_version(project_name)  # refused while closing
        else:
            latest, _ = await self.project_state(project_name)
        if latest.version_id == version_id:
            return latest
        handle = self.client.get_workflow_handle(names.project_workflow_id(project_name))
        found: VersionManifest | None = await self._call(
            "reading the version",
            lambda: handle.query(names.VERSION_QUERY, version_id, result_type=VersionManifest),
        )
        if found is None:
            raise VersionDoesNotExistError(f"project {project_name!r} has no version {version_id!r}")
        return found

    async def project_listings(self) -> list[ProjectListing]:
        """Every deployed project with its latest version and creation time."""
        query = f'WorkflowType = "{names.PROJECT_WORKFLOW}" AND ExecutionStatus = "Running"'
        found: list[ProjectListing] = []

        async def collect() -> None:
            async for execution in self.client.list_workflows(query):
                latest: VersionManifest = await execution.memo_value(
                    names.MEMO_LATEST, type_hint=VersionManifest
                )
                created = await execution.memo_value(names.MEMO_CREATED_AT, default=None)
                closing = await execution.memo_value(names.MEMO_CLOSING, default=False)
                created_at = (
                    datetime.fromtimestamp(float(created), tz=UTC)
                    if isinstance(created, (int, float))
                    else _aware(execution.start_time)
                )
                found.append(ProjectListing(latest.project_name, latest, created_at, bool(closing)))

        await self._call("listing projects", collect)
        return sorted(found, key=lambda p: p.project_name)

    async def invocation_rows(self, query: str, limit: int) -> list[InvocationRow]:
        """The `limit` newest invocations matching a visibility query, newest first.

        Visibility has no ORDER BY: running ones come newest first, closed ones by close time,
        so both are read separately and merged by id (ids sort by creation time)."""
        rows: list[InvocationRow] = []

        async def collect(status_clause: str) -> None:
            async for execution in self.client.list_workflows(
                f"{query} AND {status_clause}", limit=limit, page_size=min(max(limit, 1), 1000)
            ):
                rows.append(_invocation_row(execution))

        await self._call("listing invocations", lambda: collect('ExecutionStatus = "Running"'))
        await self._call("listing invocations", lambda: collect('ExecutionStatus != "Running"'))
        rows.sort(key=lambda r: r.invocation_id, reverse=True)
        return rows[:limit]

    async def attempt_progress(self, invocation_id: str) -> AttemptProgress | None:
        """The running attempt's latest heartbeat (number, phase, start), if one is running."""
        try:
            raw = await self._describe_raw(invocation_id)
        except RPCError as exc:
            raise _invocation_error(exc, invocation_id) from None
        if raw.workflow_execution_info.status != _RUNNING:
            return None
        return await self._attempt_progress(raw)

    async def _describe_raw(
        self, workflow_id: str
    ) -> temporalio.api.workflowservice.v1.DescribeWorkflowExecutionResponse:
        """The describe RPC itself: the SDK's description object would also decode every
        search attribute, which the invocation reads never use."""
        request = temporalio.api.workflowservice.v1.DescribeWorkflowExecutionRequest(
            namespace=self.client.namespace,
            execution=temporalio.api.common.v1.WorkflowExecution(workflow_id=workflow_id),
        )
        return await self.client.workflow_service.describe_workflow_execution(request)


def _rfc3339(epoch_seconds: float) -> str:
    stamp = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    return '"' + stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ") + '"'


def invocations_query(project_name: str, function_name: str | None, archived: bool = True) -> str:
    """Invocations of the project (or of one function), with their archive records unless
    `archived=False`."""
    kinds = (
        f'(WorkflowType = "{names.INVOCATION_WORKFLOW}" OR WorkflowType = "{names.ARCHIVE_WORKFLOW}")'
        if archived else f'WorkflowType = "{names.INVOCATION_WORKFLOW}"'
    )
    query = f'{kinds} AND {names.SA_PROJECT} = "{project_name}"'
    if function_name is not None:
        query += f' AND {names.SA_FUNCTION} = "{function_name}"'
    return query


def invocation_search_attributes(invocation: InvocationInput) -> list[SearchAttributePair[Any]]:
    """What the Web UI filters on: project, function, version, status, parent, creation time."""
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(KEY_PROJECT, invocation.project_name),
        SearchAttributePair(KEY_FUNCTION, invocation.function_name),
        SearchAttributePair(KEY_VERSION, invocation.version_id),
        SearchAttributePair(KEY_STATUS, InvocationStatus.PENDING.value),
        SearchAttributePair(KEY_CREATED, datetime.fromtimestamp(id_time_millis(invocation.invocation_id) / 1000, tz=UTC)),
    ]
    if invocation.parent_invocation_id:
        pairs.append(SearchAttributePair(KEY_PARENT, invocation.parent_invocation_id))
    return pairs


def initial_record(invocation: InvocationInput) -> InvocationRecord:
    # Readable by `.get` before the workflow's first task has run.
    return InvocationRecord(
        invocation_id=invocation.invocation_id,
        project_name=invocation.project_name,
        function_name=invocation.function_name,
        version_id=invocation.version_id,
        parent_invocation_id=invocation.parent_invocation_id,
        status=InvocationStatus.PENDING.value,
        created_at=invocation.created_at,
    )


def _closing(project_name: str) -> ProjectDoesNotExistError:
    return ProjectDoesNotExistError(
        f"project {project_name!r} is being undeployed; it accepts no new invocations"
    )


def _no_project(project_name: str) -> ProjectDoesNotExistError:
    return ProjectDoesNotExistError(
        f"no project named {project_name!r} is deployed; deploy it with "
        f"`multinode deploy <folder> --project-name={project_name}`"
    )


def consume_outcome(outcome: asyncio.Future[Any]) -> None:
    """Read a result nobody awaits (a failed with-start operation), so asyncio does not report
    it as lost."""
    outcome.add_done_callback(lambda done: done.cancelled() or done.exception())


def _invocation_error(exc: RPCError, invocation_id: str) -> MultinodeError:
    if exc.status == RPCStatusCode.NOT_FOUND:
        return InvocationDoesNotExistError(f"no invocation with id {invocation_id!r}")
    return translate_rpc_error(exc, f"reading invocation {invocation_id}")


# ----- administration helpers (used by multinode.admin.admin) ------------------------------------


def _aware(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.fromtimestamp(0, tz=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_ENGINE_STATUS = {
    WorkflowExecutionStatus.TERMINATED: "TERMINATED",
    WorkflowExecutionStatus.FAILED: "FAILED",
    WorkflowExecutionStatus.TIMED_OUT: "TIMED_OUT",
    WorkflowExecutionStatus.CANCELED: "CANCELLED",
}


def _invocation_row(execution: Any) -> InvocationRow:
    attributes = execution.typed_search_attributes

    def attribute(key: SearchAttributeKey[str]) -> str | None:
        value = attributes.get(key)
        return str(value) if value else None

    status = attribute(KEY_STATUS) or InvocationStatus.PENDING.value
    try:
        final = InvocationStatus(status).is_final
    except ValueError:
        final = False
    if execution.status not in _OPEN and not final:
        # The workflow ended without publishing a final status (terminated in the engine).
        status = _ENGINE_STATUS.get(execution.status, status)
    return InvocationRow(
        invocation_id=execution.id,
        project_name=attribute(KEY_PROJECT),
        function_name=attribute(KEY_FUNCTION),
        version_id=attribute(KEY_VERSION),
        status=status,
        parent_invocation_id=attribute(KEY_PARENT),
        created_at=_aware(execution.start_time) if execution.start_time else None,
        ended_at=_aware(execution.close_time) if execution.close_time else None,
    )


async def probe(settings: ConnectionSettings, timeout: float = CONNECT_TIMEOUT_SECONDS) -> str:
    """Connect with these settings and read the namespace: what `multinode login` checks.
    Returns the server's version. Raises ControlPlaneUnavailableError with one clear line."""

    def failure(detail: str) -> ControlPlaneUnavailableError:
        hint = ""
        lowered = detail.lower()
        if settings.uses_tls and any(
            word in lowered for word in ("invalidcontenttype", "tls", "handshake", "certificate")
        ):
            hint = " (an API key turns TLS on: does this control plane accept TLS connections?)"
        return ControlPlaneUnavailableError(
            f"cannot reach the Multinode control plane at {settings.api_url}: {detail}{hint}"
        )

    try:
        client = await asyncio.wait_for(
            Client.connect(
                settings.api_url,
                namespace=settings.namespace,
                api_key=settings.api_key,
                tls=settings.uses_tls,
            ),
            timeout=timeout,
        )
        info = await client.workflow_service.get_system_info(
            temporalio.api.workflowservice.v1.GetSystemInfoRequest(),
            timeout=timedelta(seconds=timeout),
        )
        await client.workflow_service.describe_namespace(
            temporalio.api.workflowservice.v1.DescribeNamespaceRequest(namespace=settings.namespace),
            timeout=timedelta(seconds=timeout),
        )
    except TimeoutError:
        raise failure(f"no answer within {timeout:g} s") from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ControlPlaneUnavailableError(
                f"the control plane at {settings.api_url} has no namespace {settings.namespace!r}"
            ) from None
        if exc.status in (RPCStatusCode.UNAUTHENTICATED, RPCStatusCode.PERMISSION_DENIED):
            raise ControlPlaneUnavailableError(
                f"the control plane at {settings.api_url} refused the credentials ({_one_line(exc)})"
            ) from None
        raise failure(_one_line(exc)) from None
    except (RuntimeError, OSError) as exc:
        raise failure(_one_line(exc)) from None
    return str(info.server_version or "unknown")
