"""A lost activity task: the engine records the attempt as started but no worker ever runs it.
It must be noticed within the heartbeat timeout and run again, without counting as a failed
attempt. A 'black hole' worker plays the loss: it accepts the attempt and never heartbeats."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.client import Client as TemporalClient
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from multinode import InvocationStatus
from multinode.contract import names
from multinode.contract.records import AttemptOutcome, AttemptRequest
from temporal_workers.activities.coordination import CoordinationActivities
from temporal_workers.workflows.invocation import InvocationWorkflow
from temporal_workers.workflows.quota import QuotaWorkflow
from tests.conftest import ControlPlane, PrivateQueue, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


def _black_hole_worker(address: str, queue: str, ready: threading.Event, stop: threading.Event) -> None:
    taken = threading.Event()

    @activity.defn(name=names.RUN_ATTEMPT_ACTIVITY)
    async def swallow(request: AttemptRequest) -> AttemptOutcome:
        taken.set()
        while not stop.is_set():  # never heartbeats, never finishes on its own
            try:
                await asyncio.sleep(0.1)
            except asyncio.CancelledError:
                continue
        raise RuntimeError("the black hole closes")

    async def run() -> None:
        client = await TemporalClient.connect(address)
        coordination = CoordinationActivities(client, queue)
        worker = Worker(
            client, task_queue=queue, workflows=[InvocationWorkflow, QuotaWorkflow],
            activities=[swallow, coordination.acquire_quota, coordination.closed_invocations],
            workflow_runner=UnsandboxedWorkflowRunner(), max_concurrent_activities=1,
            graceful_shutdown_timeout=timedelta(seconds=1),
        )
        async with worker:
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)

    ready.taken = taken  # type: ignore[attr-defined]
    asyncio.run(run())


def test_lost_attempt_is_rerun_without_counting(
    control_plane: ControlPlane, private_queue: PrivateQueue, deploy_tasks, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    project = deploy_tasks(
        "from multinode import Multinode\nmn = Multinode()\n@mn.function()\ndef answer():\n    return 42\n"
    ).project_name
    answer = private_queue.function(project, "answer")

    ready, stop = threading.Event(), threading.Event()
    thread = threading.Thread(target=_black_hole_worker, args=(control_plane.address, private_queue.name, ready, stop),
                              daemon=True)
    thread.start()
    try:
        assert ready.wait(30)
        invocation_id = answer.start()
        wait_until(ready.taken.is_set, timeout=30, message="the black hole took the attempt")  # type: ignore[attr-defined]
        private_queue.start_worker()  # the rescuer
        # Noticed through the heartbeat timeout: the attempt's own timeout is an hour.
        assert answer.await_result(invocation_id, timeout=60) == 42
        final = answer.get(invocation_id)
        assert final.status == InvocationStatus.SUCCEEDED
        assert final.num_failed_attempts == 0 and len(final.attempts) == 1
    finally:
        stop.set()
        thread.join(timeout=15)
