"""A recorded history of the service workflow (deploy, RUNNING, its process killed and restarted,
an upgrade, undeploy) replays with today's workflow: the same commands in the same order, or
replay fails with a nondeterminism error. Re-record only when a change is guarded by
`workflow.patched`, keeping the old file too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from multinode.contract import names
from multinode.engine.converter import DATA_CONVERTER
from temporal_workers.workflows.service import ServiceWorkflow

pytestmark = pytest.mark.timeout(60)

HISTORIES = Path(__file__).parent / "histories"


@pytest.mark.asyncio
@pytest.mark.parametrize("path", sorted(HISTORIES.glob("service-*.json")), ids=lambda p: p.stem)
async def test_recorded_service_histories_replay(path: Path) -> None:
    events = json.loads(path.read_text())["events"]
    kinds = {event["eventType"] for event in events}
    # The recording covers what it says: runs started, cancelled (the upgrade, the undeploy), a
    # run ended by itself (the kill), and the restart's timer.
    assert {"EVENT_TYPE_ACTIVITY_TASK_CANCELED", "EVENT_TYPE_ACTIVITY_TASK_COMPLETED",
            "EVENT_TYPE_TIMER_FIRED", "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"} <= kinds
    if "remove-on-undeploy" in path.stem:  # recorded on Fargate, after the patch: the removal ran
        scheduled = [e["activityTaskScheduledEventAttributes"]["activityType"]["name"]
                     for e in events if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"]
        assert scheduled[-1] == names.STOP_SERVICE_ACTIVITY
    history = WorkflowHistory.from_json(names.service_workflow_id("rec", "web"), path.read_text())
    replayer = Replayer(
        workflows=[ServiceWorkflow], data_converter=DATA_CONVERTER, workflow_runner=UnsandboxedWorkflowRunner()
    )
    await replayer.replay_workflow(history)
