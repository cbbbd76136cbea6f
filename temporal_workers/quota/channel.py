"""The lease channel through the engine: a worker's syncs, reads and give-backs reach a function's
semaphore workflow (temporal_workers/workflows/quota.py), started if it does not exist yet."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from multinode.contract import names
from multinode.contract.records import LeaseGrant, LeaseRequest, QuotaState
from multinode.engine.failures import consume_outcome
from temporal_workers.workflows.quota import CONTENDED_MEMO

SYNC_TIMEOUT = timedelta(seconds=10)


class EngineLeaseChannel:
    """Through the function's semaphore workflow, started if it does not exist yet."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self._client = client
        self._task_queue = task_queue

    async def sync(self, request: LeaseRequest) -> LeaseGrant:
        semaphore: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            names.QUOTA_WORKFLOW,
            QuotaState(holders={}, waiters=[]),
            id=names.quota_workflow_id(request.project_name, request.function_name),
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"concurrency quota of {request.project_name}.{request.function_name}",
        )
        # The answer needs a worker to run the semaphore's task: bounded, so a sync never
        # hangs on a control plane without workers.
        try:
            grant: LeaseGrant = await self._client.execute_update_with_start_workflow(
                names.QUOTA_LEASE_UPDATE, request, start_workflow_operation=semaphore, result_type=LeaseGrant,
                rpc_timeout=SYNC_TIMEOUT,
            )
        except BaseException:
            # The start operation's own result fails the same way; read it, or asyncio reports
            # it as a lost exception.
            consume_outcome(asyncio.ensure_future(semaphore.workflow_handle()))
            raise
        return grant

    async def give_back(self, worker_id: str, project_name: str, function_name: str) -> None:
        handle = self._client.get_workflow_handle(names.quota_workflow_id(project_name, function_name))
        await handle.signal(names.QUOTA_LEASE_RETURN_SIGNAL, worker_id)

    async def contended(self, project_name: str, function_name: str) -> bool:
        handle = self._client.get_workflow_handle(names.quota_workflow_id(project_name, function_name))
        description = await handle.describe(rpc_timeout=SYNC_TIMEOUT)
        return bool(await description.memo_value(CONTENDED_MEMO, default=False))
