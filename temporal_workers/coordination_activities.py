"""Short activities the coordinating workflows need: talking to other workflows through the
client is I/O, so it lives here, never in workflow code."""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from multinode import _names
from multinode._wire import QuotaRequest, QuotaState


class CoordinationActivities:
    def __init__(self, client: Client, task_queue: str) -> None:
        self._client = client
        self._task_queue = task_queue

    @activity.defn(name=_names.ACQUIRE_QUOTA_ACTIVITY)
    async def acquire_quota(self, request: QuotaRequest) -> bool:
        """Ask the function's semaphore for a slot, creating the semaphore on first use."""
        start = WithStartWorkflowOperation(
            _names.QUOTA_WORKFLOW,
            QuotaState(holders={}, waiters=[]),
            id=_names.quota_workflow_id(request.project_name, request.function_name),
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"concurrency quota of {request.project_name}.{request.function_name}",
        )
        granted: bool = await self._client.execute_update_with_start_workflow(
            _names.QUOTA_ACQUIRE_UPDATE, request, start_workflow_operation=start, result_type=bool
        )
        return granted

    @activity.defn(name=_names.CLOSED_INVOCATIONS_ACTIVITY)
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
        return [i for i, is_closed in zip(invocation_ids, flags) if is_closed]

    @activity.defn(name=_names.CANCEL_INVOCATIONS_ACTIVITY)
    async def cancel_invocations(self, invocation_ids: list[str]) -> None:
        """Request cancellation of each invocation still running (children of one that ended)."""

        async def cancel(invocation_id: str) -> None:
            try:
                await self._client.get_workflow_handle(invocation_id).cancel()
            except RPCError as exc:
                if exc.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                    raise

        await asyncio.gather(*(cancel(i) for i in invocation_ids))
