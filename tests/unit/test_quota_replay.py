"""A history the quota workflow recorded before its rules moved into quota/semaphore.py (grants,
a repeat request, a late release, a cancelled waiter, lease syncs with a hand-over, a failed
grant signal, a reap, a returned lease, the contended memo going both ways) replays with today's
workflow: the same commands in the same order, or replay fails with a nondeterminism error."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from multinode.contract import names
from multinode.engine.converter import DATA_CONVERTER
from temporal_workers.workflows.quota import QuotaWorkflow

HISTORIES = Path(__file__).parent / "histories"


@pytest.mark.asyncio
@pytest.mark.parametrize("path", sorted(HISTORIES.glob("quota-*.json")), ids=lambda p: p.stem)
async def test_recorded_semaphore_histories_replay(path: Path) -> None:
    history = WorkflowHistory.from_json(names.quota_workflow_id("p", "f"), path.read_text())
    replayer = Replayer(
        workflows=[QuotaWorkflow], data_converter=DATA_CONVERTER, workflow_runner=UnsandboxedWorkflowRunner()
    )
    await replayer.replay_workflow(history)
