"""Engine tier: on a store that keeps closed workflows for good (what `multinode dev` creates),
the archiver copies only what closed before it saw that retention, and nothing after it. The
invocations are started on a private queue nobody serves and terminated, so they close at once."""

from __future__ import annotations

import pytest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import ActivityEnvironment

from multinode.contract import names
from multinode.contract.records import ArchiverState
from temporal_workers.activities import coordination
from temporal_workers.activities.coordination import (
    ARCHIVE_NEEDLESS_RETENTION_SECONDS,
    CoordinationActivities,
)
from tests.conftest import PrivateQueue, wait_until

pytestmark = pytest.mark.timeout(90)

TASKS = "from multinode import Multinode\nmn = Multinode()\n@mn.function()\ndef f(x):\n    return x\n"


def test_no_copies_once_the_retention_is_long(private_queue: PrivateQueue, deploy_tasks, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(coordination, "RETENTION_CHANGE_MARGIN_SECONDS", 0.0)
    project = deploy_tasks(TASKS).project_name
    f = private_queue.function(project, "f")
    client = private_queue.client
    engine_client = client.run(client.engine()).client
    archiver = CoordinationActivities(engine_client, private_queue.name, archive_lag_seconds=0.0)

    async def retention_seconds() -> float:
        response = await engine_client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=engine_client.namespace)
        )
        return float(response.config.workflow_execution_retention_ttl.ToTimedelta().total_seconds())

    async def close(invocation_id: str) -> None:
        await engine_client.get_workflow_handle(invocation_id).terminate("closed by the test")

    async def closed_in_visibility(invocation_id: str) -> bool:
        query = f'WorkflowId = "{invocation_id}" AND ExecutionStatus != "Running"'
        return bool([e async for e in engine_client.list_workflows(query)])

    async def archived(invocation_id: str) -> bool:
        try:
            description = await engine_client.get_workflow_handle(names.archive_workflow_id(invocation_id)).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return description.status == WorkflowExecutionStatus.RUNNING

    async def archive_pass(cursor: float) -> float:
        return float(await ActivityEnvironment().run(archiver.archive_batch, ArchiverState(cursor=cursor)))

    assert client.run(retention_seconds()) >= ARCHIVE_NEEDLESS_RETENTION_SECONDS  # the store's own
    before = f.start(1)
    client.run(close(before))
    wait_until(lambda: client.run(closed_in_visibility(before)), timeout=30, message="the close in visibility")
    # The first pass sees the long retention now: what closed before may have the old one.
    cursor = client.run(archive_pass(0.0))
    assert client.run(archived(before))

    after = f.start(2)
    client.run(close(after))
    wait_until(lambda: client.run(closed_in_visibility(after)), timeout=30, message="the close in visibility")
    assert client.run(archive_pass(cursor)) > cursor
    assert not client.run(archived(after))
    # Both stay readable and listed: the one without a copy is its own workflow.
    assert {before, after} <= set(f.list_ids())
    assert f.get(after).invocation_id == after
