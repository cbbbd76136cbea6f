"""Short activities the coordinating workflows need: talking to other workflows through the
client is I/O, so it lives here, never in workflow code."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowFailureError,
)
from temporalio.common import TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from multinode.contract import names
from multinode.contract.invocation import InvocationStatus
from multinode.contract.records import ArchiverState, InvocationRecord, QuotaRequest, QuotaState
from multinode.engine.attributes import typed_pairs
from temporal_workers.metrics import NO_METRICS, WorkerMetrics

# Archive records wait a century for a first task no worker will ever run.
ARCHIVE_START_DELAY = timedelta(days=36500)
ARCHIVE_OVERLAP_SECONDS = 600.0
# A namespace keeping closed workflows this long (`multinode dev` makes its stores so) needs no
# archive copies: each workflow's deletion is scheduled when it closes, with the retention of
# that moment, so whatever closes under such a retention stays for as long.
ARCHIVE_NEEDLESS_RETENTION_SECONDS = 3650 * 86400.0
# The history service learns of a namespace change within about 10 s: workflows closing in that
# margin after a long retention was first seen may still have been given the old one.
RETENTION_CHANGE_MARGIN_SECONDS = 30.0
_FINAL_STATUSES = {s.value for s in InvocationStatus if s.is_final}


class CoordinationActivities:
    def __init__(
        self, client: Client, task_queue: str, archive_lag_seconds: float = 30.0, metrics: WorkerMetrics = NO_METRICS
    ) -> None:
        self._client = client
        self._metrics = metrics
        self._task_queue = task_queue
        # Visibility lags behind the engine: stay this far behind the present, or an invocation
        # that closed just before the cursor moved could be missed.
        self._archive_lag_seconds = archive_lag_seconds
        # When this process first saw the namespace keep closed workflows for good (None: not now).
        self._long_retention_seen_at: float | None = None

    @activity.defn(name=names.ACQUIRE_QUOTA_ACTIVITY)
    async def acquire_quota(self, request: QuotaRequest) -> None:
        """Queue for a slot (creating the function's semaphore on first use); the grant arrives
        as a signal. A signal, not an update: no cap on concurrent requests, and no waiting on
        the semaphore's own workflow task while this local activity holds a task slot."""
        await self._client.start_workflow(
            names.QUOTA_WORKFLOW,
            QuotaState(holders={}, waiters=[]),
            id=names.quota_workflow_id(request.project_name, request.function_name),
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal=names.QUOTA_ACQUIRE_SIGNAL,
            start_signal_args=[request],
            static_summary=f"concurrency quota of {request.project_name}.{request.function_name}",
        )
        self._metrics.quota_wait(request.project_name, request.function_name)

    @activity.defn(name=names.CLOSED_INVOCATIONS_ACTIVITY)
    async def closed_invocations(self, invocation_ids: list[str]) -> list[str]:
        """Which of these invocation workflows have ended (or no longer exist)."""

        async def closed(invocation_id: str) -> bool:
            try:
                description = await self._client.get_workflow_handle(invocation_id).describe()
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    return True
                raise
            return description.status not in (None, WorkflowExecutionStatus.RUNNING)

        flags = await asyncio.gather(*(closed(i) for i in invocation_ids))
        return [i for i, is_closed in zip(invocation_ids, flags, strict=True) if is_closed]

    @activity.defn(name=names.CANCEL_INVOCATIONS_ACTIVITY)
    async def cancel_invocations(self, request: list[str]) -> None:
        """Cancel the still-running children of an invocation that did not succeed: request[0]
        is the parent, the rest the children its attempts reported. The engine is asked too,
        for children whose report was lost with an attempt."""
        parent, reported = request[0], request[1:]
        query = f'{names.SA_PARENT} = "{parent}" AND ExecutionStatus = "Running"'
        known = [execution.id async for execution in self._client.list_workflows(query)]
        invocation_ids = sorted(set(reported) | {i for i in known if not i.startswith(names.ARCHIVE_WORKFLOW_ID_PREFIX)})

        async def cancel(invocation_id: str) -> None:
            try:
                await self._client.get_workflow_handle(invocation_id).cancel()
            except RPCError as exc:
                if exc.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                    raise

        await asyncio.gather(*(cancel(i) for i in invocation_ids))

    @activity.defn(name=names.ARCHIVE_BATCH_ACTIVITY)
    async def archive_batch(self, state: ArchiverState) -> float:
        """Archive every invocation that closed in [cursor, now - lag); return the new cursor."""
        upper = time.time() - self._archive_lag_seconds
        if upper <= state.cursor:
            return state.cursor
        # Under a long retention only what closed before it surely applied needs a copy (all of
        # it, when this process cannot tell: conservative after a restart).
        archive_until = upper
        if await self._retention_seconds() >= ARCHIVE_NEEDLESS_RETENTION_SECONDS:
            if self._long_retention_seen_at is None:
                self._long_retention_seen_at = time.time()
            archive_until = min(upper, self._long_retention_seen_at + RETENTION_CHANGE_MARGIN_SECONDS)
        else:
            self._long_retention_seen_at = None
        if archive_until <= state.cursor - ARCHIVE_OVERLAP_SECONDS:
            return upper
        # Each pass re-reads an overlap before the cursor: a close that reached visibility
        # later than the lag is still archived (archiving twice is a no-op).
        query = (
            f'WorkflowType = "{names.INVOCATION_WORKFLOW}" AND ExecutionStatus != "Running" '
            f'AND TaskQueue = "{self._task_queue}" '
            f"AND CloseTime >= {_stamp(state.cursor - ARCHIVE_OVERLAP_SECONDS)} AND CloseTime < {_stamp(archive_until)}"
        )
        # Records made by earlier passes over the overlap are skipped without another read.
        recent = (
            f'WorkflowType = "{names.ARCHIVE_WORKFLOW}" '
            f"AND StartTime >= {_stamp(state.cursor - 2 * ARCHIVE_OVERLAP_SECONDS)}"
        )
        archived = {e.id async for e in self._client.list_workflows(recent)}
        async for execution in self._client.list_workflows(query):
            if names.archive_workflow_id(execution.id) not in archived:
                await self._archive(execution)
                activity.heartbeat()
        return upper

    async def _retention_seconds(self) -> float:
        """The namespace's retention now (0 when unknown: archive as if it were short)."""
        request = DescribeNamespaceRequest(namespace=self._client.namespace)
        try:
            response = await self._client.workflow_service.describe_namespace(request)
        except RPCError:
            return 0.0
        return float(response.config.workflow_execution_retention_ttl.ToTimedelta().total_seconds())

    async def _archive(self, execution: WorkflowExecution) -> None:
        handle = self._client.get_workflow_handle(execution.id, run_id=execution.run_id,
                                                  result_type=InvocationRecord)
        try:
            record = await handle.result(follow_runs=False)
            if not record.attempts and not record.transitions:
                # A compact result (COMPACT_RECORD_PATCH): the whole record is in the memo.
                record = await execution.memo_value("state", type_hint=InvocationRecord)
        except WorkflowFailureError:
            # Failed, timed out or cancelled: the final record is in the memo. An invocation the
            # engine ended without finishing (terminated) keeps what its memo knew, as failed.
            record = await execution.memo_value("state", type_hint=InvocationRecord)
            if record.status not in _FINAL_STATUSES:
                record.status = InvocationStatus.FAILED.value
                record.ended_at = (execution.close_time or datetime.now(UTC)).timestamp()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return  # removed meanwhile
            raise
        attributes = typed_pairs(names.invocation_search_attributes(record, record.status))
        try:
            await self._client.start_workflow(
                names.ARCHIVE_WORKFLOW,
                record,
                id=names.archive_workflow_id(record.invocation_id),
                task_queue=names.ARCHIVE_TASK_QUEUE,
                start_delay=ARCHIVE_START_DELAY,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                search_attributes=TypedSearchAttributes(attributes),
                static_summary=f"archive of {record.invocation_id} ({record.status})",
            )
        except RPCError as exc:
            if exc.status != RPCStatusCode.ALREADY_EXISTS:
                raise


def _stamp(epoch_seconds: float) -> str:
    return '"' + datetime.fromtimestamp(epoch_seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") + '"'
