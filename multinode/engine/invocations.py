"""Invocations as workflows: starting one (under a lock or not), reading its record, waiting
for its end, cancelling and removing it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import Any

import temporalio.api.common.v1
import temporalio.api.enums.v1
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
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from multinode.contract import names
from multinode.contract.connection import ConnectionSettings
from multinode.contract.invocation import InvocationStatus
from multinode.contract.preview import invocation_details
from multinode.contract.records import (
    AttemptProgress,
    CancelReply,
    ErrorInfo,
    InvocationInput,
    InvocationRecord,
    LockInput,
    initial_record,
)
from multinode.engine.attributes import KEY_LOCK, KEY_PROJECT, typed_pairs
from multinode.engine.failures import (
    consume_outcome,
    invocation_error,
    translate_rpc_error,
    translated,
)
from multinode.errors import (
    ControlPlaneUnavailableError,
    InvocationDoesNotExistError,
    LockAlreadyInUseError,
    MultinodeError,
)

LOCK_START_WAIT_SECONDS = 10.0
CANCEL_ACK_TIMEOUT_SECONDS = 5.0
# The engine applies deletions asynchronously (about 30 s on the dev server); `.remove` returns
# once they are done, so nothing reads the invocation afterwards.
REMOVE_WAIT_SECONDS = 120.0
# How long `.remove` waits for a worker to delete the data the attempts left where they ran.
FORGET_WAIT_SECONDS = 30.0

_RUNNING = temporalio.api.enums.v1.WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
_FINAL_STATUSES = {s.value for s in InvocationStatus if s.is_final}

DescribeResponse = temporalio.api.workflowservice.v1.DescribeWorkflowExecutionResponse


class Invocations:
    def __init__(
        self, client: Client, settings: ConnectionSettings, count: Callable[[str], Awaitable[int]]
    ) -> None:
        self._client = client
        self._settings = settings
        self._count = count  # visibility matches of a query (multinode.engine.listing)

    # ----- start --------------------------------------------------------------------------

    async def start(self, invocation: InvocationInput, summary: str) -> None:
        values = names.invocation_search_attributes(invocation, InvocationStatus.PENDING.value)
        await translated(
            "starting the invocation",
            lambda: self._client.start_workflow(
                names.INVOCATION_WORKFLOW,
                invocation,
                id=invocation.invocation_id,
                task_queue=self._settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=TypedSearchAttributes(typed_pairs(values)),
                memo={"state": initial_record(invocation)},
                static_summary=summary,
                static_details=invocation_details(invocation),
            ),
        )

    async def start_locked(self, lock: LockInput) -> None:
        """Start the invocation under `lock.key`: refused while another open invocation of the
        project holds the key."""
        lock_id = names.lock_workflow_id(lock.project_name, lock.key)
        operation: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            names.LOCK_WORKFLOW,
            lock,
            id=lock_id,
            task_queue=self._settings.task_queue,
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
                    self._client.execute_update_with_start_workflow(
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
            description = await self._client.get_workflow_handle(lock_id).describe()
            holder: str = await description.memo_value("holder", type_hint=str)
            return holder
        except (RPCError, KeyError):
            return None

    # ----- read ---------------------------------------------------------------------------

    async def get(self, invocation_id: str) -> tuple[InvocationRecord, bool]:
        """The invocation's record and whether its workflow (and so its container) has ended."""
        try:
            raw = await self._describe_raw(invocation_id)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return await self._archived_record(invocation_id), True
            raise invocation_error(exc, invocation_id) from None
        info = raw.workflow_execution_info
        if info.type.name != names.INVOCATION_WORKFLOW:
            raise InvocationDoesNotExistError(f"no invocation with id {invocation_id!r}")
        decoded = await self._client.data_converter.decode([info.memo.fields["state"]], [InvocationRecord])
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

    async def attempt_progress(self, invocation_id: str) -> AttemptProgress | None:
        """The running attempt's latest heartbeat (number, phase, start), if one is running."""
        try:
            raw = await self._describe_raw(invocation_id)
        except RPCError as exc:
            raise invocation_error(exc, invocation_id) from None
        if raw.workflow_execution_info.status != _RUNNING:
            return None
        return await self._attempt_progress(raw)

    async def _attempt_progress(self, raw: DescribeResponse) -> AttemptProgress | None:
        for pending in raw.pending_activities:
            if pending.activity_type.name != names.RUN_ATTEMPT_ACTIVITY:
                continue
            payloads = pending.heartbeat_details.payloads
            if not payloads:
                return None
            decoded = await self._client.data_converter.decode(payloads, [AttemptProgress])
            progress: AttemptProgress = decoded[0]
            return progress
        return None

    async def _describe_raw(self, workflow_id: str) -> DescribeResponse:
        """The describe RPC itself: the SDK's description object would also decode every
        search attribute, which the invocation reads never use."""
        request = temporalio.api.workflowservice.v1.DescribeWorkflowExecutionRequest(
            namespace=self._client.namespace,
            execution=temporalio.api.common.v1.WorkflowExecution(workflow_id=workflow_id),
        )
        return await self._client.workflow_service.describe_workflow_execution(request)

    async def _archived_record(self, invocation_id: str) -> InvocationRecord:
        """The record kept past the namespace's retention (see the archiver)."""
        request = temporalio.api.workflowservice.v1.GetWorkflowExecutionHistoryRequest(
            namespace=self._settings.namespace,
            execution=temporalio.api.common.v1.WorkflowExecution(
                workflow_id=names.archive_workflow_id(invocation_id)
            ),
            maximum_page_size=1,
        )
        try:
            response = await self._client.workflow_service.get_workflow_execution_history(request)
        except RPCError as exc:
            raise invocation_error(exc, invocation_id) from None
        events = response.history.events
        if not events or not events[0].HasField("workflow_execution_started_event_attributes"):
            raise InvocationDoesNotExistError(f"no invocation with id {invocation_id!r}")
        payloads = events[0].workflow_execution_started_event_attributes.input.payloads
        decoded = await self._client.data_converter.decode(payloads, [InvocationRecord])
        record: InvocationRecord = decoded[0]
        return record

    # ----- wait, cancel, remove -----------------------------------------------------------

    def _handle(self, invocation_id: str) -> WorkflowHandle[Any, InvocationRecord]:
        return self._client.get_workflow_handle(invocation_id, result_type=InvocationRecord)

    async def wait(self, invocation_id: str) -> InvocationRecord:
        """One long poll for the close event. The id's form was checked at the door, so a
        workflow by that id is an invocation; a missing one fails the poll at once."""
        handle = self._handle(invocation_id)
        try:
            return await self._final_record(handle)
        except InvocationDoesNotExistError:
            return await self._archived_record(invocation_id)

    async def _final_record(self, handle: WorkflowHandle[Any, InvocationRecord]) -> InvocationRecord:
        try:
            return await handle.result()
        except RPCError as exc:
            raise invocation_error(exc, handle.id) from None
        except WorkflowFailureError:
            # Failed, timed out or cancelled: the workflow closed Failed or Canceled, and its
            # final record is in the memo (an invocation the engine ended without finishing
            # reads as failed, as `.get` says).
            record, _ = await self.get(handle.id)
            return record

    async def cancel(self, invocation_id: str, wait_ack: bool = True) -> CancelReply:
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
            record, _ = await self.get(invocation_id)
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

    async def remove(self, invocation_id: str) -> None:
        """Cancel the invocation if it is still open, wait for its end, then delete its data
        (the workflow and its archive record) and wait until neither `.get` nor a listing sees
        it any more."""
        _, ended = await self.get(invocation_id)
        if not ended:
            await self.cancel(invocation_id)
            await self._final_record(self._handle(invocation_id))
        await self._forget(invocation_id)
        # The invocation first, the archive after: until the invocation is gone, the archiver
        # may still (re)create its archive record.
        deadline = time.monotonic() + REMOVE_WAIT_SECONDS
        for workflow_id in (invocation_id, names.archive_workflow_id(invocation_id)):
            await self._delete(workflow_id)
            while await self._count(f'WorkflowId = "{workflow_id}"') > 0 or await self._exists(workflow_id):
                if time.monotonic() > deadline:
                    raise MultinodeError(f"{invocation_id} is being deleted, but the engine still lists it; try again")
                await asyncio.sleep(0.5)

    async def _forget(self, invocation_id: str) -> None:
        """Have a worker delete what the attempts left where they ran (logs, run documents in
        S3), then delete that errand too. Without a worker within the wait, the errand stays
        queued and runs when one starts; the bucket's lifecycle rule is the backstop."""
        workflow_id = names.forget_workflow_id(invocation_id)
        try:
            handle = await self._client.start_workflow(
                names.FORGET_WORKFLOW, invocation_id, id=workflow_id, task_queue=self._settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                static_summary=f"deletes the data {invocation_id} left where it ran",
            )
            await asyncio.wait_for(handle.result(), timeout=FORGET_WAIT_SECONDS)
        except TimeoutError:
            return
        except (RPCError, WorkflowFailureError) as exc:
            raise MultinodeError(f"deleting the data of {invocation_id} failed: {exc}") from None
        await self._delete(workflow_id)

    async def _exists(self, workflow_id: str) -> bool:
        try:
            await self._client.get_workflow_handle(workflow_id).describe()
            return True
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise translate_rpc_error(exc, f"reading {workflow_id}") from None

    async def _delete(self, workflow_id: str) -> None:
        request = temporalio.api.workflowservice.v1.DeleteWorkflowExecutionRequest(
            namespace=self._settings.namespace,
            workflow_execution=temporalio.api.common.v1.WorkflowExecution(workflow_id=workflow_id),
        )
        try:
            await self._client.workflow_service.delete_workflow_execution(request)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise translate_rpc_error(exc, f"removing {workflow_id}") from None
