"""Engine tier: the service workflow on the real dev server, in a worker inside the test on a task
queue of its own, with scripted runs (no processes): its history stays bounded (continue-as-new
carries the state on), undeploy ends it, and a backend that cannot run services makes it FAILED
with that reason."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from multinode.contract import names
from multinode.contract.connection import resolve_settings
from multinode.contract.records import PackageRef
from multinode.contract.service_state import (
    ServiceExit,
    ServiceObserved,
    ServiceRemoval,
    ServiceRun,
    ServiceState,
    ServiceTarget,
)
from multinode.contract.services import ServiceSpec, ServiceStatus
from multinode.engine.connection import connect
from temporal_workers.activities.service import ServiceActivities
from temporal_workers.backends.fake import FakeBackend
from temporal_workers.workflows import service as service_workflow
from temporal_workers.workflows.service import ServiceWorkflow
from tests.conftest import ControlPlane

pytestmark = [pytest.mark.timeout(120)]

TARGET = ServiceTarget("p", "ver-1", ServiceSpec("api", 8080, 0.1, 256), PackageRef("file:///x", "0" * 64, 1), None)


@activity.defn(name=names.RUN_SERVICE_ACTIVITY)
async def crashes_after_a_long_healthy_run(run: ServiceRun) -> ServiceExit:
    now = time.time()
    return ServiceExit(ended_at=now, started_at=now, exit_code=1, ever_healthy=True, healthy_seconds=120.0)


REMOVED: list[ServiceRemoval] = []


@activity.defn(name=names.STOP_SERVICE_ACTIVITY)
async def records_the_removal(removal: ServiceRemoval) -> None:
    REMOVED.append(removal)


@contextlib.asynccontextmanager
async def _worker(queue: str, activities: Callable[[Client], Sequence[Callable[..., Any]]]) -> AsyncIterator[Client]:
    """A worker of the service workflow and the given activities on a queue of the test's own."""
    base = resolve_settings()
    client = await connect(type(base)(base.api_url, None, base.namespace, queue, "environment"))
    async with Worker(client, task_queue=queue, workflows=[ServiceWorkflow], activities=list(activities(client)),
                      workflow_runner=UnsandboxedWorkflowRunner()):
        yield client


async def _observed(client: Client, workflow_id: str) -> ServiceObserved:
    description = await client.get_workflow_handle(workflow_id).describe()
    observed: ServiceObserved = await description.memo_value(names.MEMO_SERVICE, type_hint=ServiceObserved)
    return observed


async def _start(client: Client, queue: str, workflow_id: str) -> None:
    await client.start_workflow(
        names.SERVICE_WORKFLOW, ServiceState("p", "api"), id=workflow_id, task_queue=queue,
        start_signal=names.SERVICE_DEPLOY_SIGNAL, start_signal_args=[TARGET],
        memo={names.MEMO_SERVICE: ServiceObserved("p", "api", port=8080)},
    )


@pytest.mark.asyncio
async def test_history_stays_bounded_and_the_state_carries_on(
    control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_workflow, "MAX_HISTORY_EVENTS", 40)
    queue = f"svc-{uuid.uuid4().hex[:8]}"
    workflow_id = f"multinode-service:p:{queue}"
    async with _worker(queue, lambda client: [crashes_after_a_long_healthy_run, records_the_removal]) as client:
        await _start(client, queue, workflow_id)
        handle = client.get_workflow_handle(workflow_id)
        first_run = (await handle.describe()).run_id
        deadline = time.monotonic() + 60
        while True:
            description = await client.get_workflow_handle(workflow_id).describe()
            if description.run_id != first_run and (await _observed(client, workflow_id)).restarts >= 6:
                break
            assert time.monotonic() < deadline, "no continue-as-new"
            await asyncio.sleep(0.2)
        history = await client.get_workflow_handle(workflow_id, run_id=first_run).fetch_history()
        assert len(history.events) <= 40 + 15  # the run that continued as new stayed near the bound
        observed = await _observed(client, workflow_id)
        assert observed.version_id == "ver-1" and observed.last_exit == "exit code 1"
        state = await client.get_workflow_handle(workflow_id).query(names.STATE_QUERY, result_type=ServiceObserved)
        assert state.restarts >= observed.restarts >= 6  # counted on across runs of the workflow
        await client.get_workflow_handle(workflow_id).signal(names.SERVICE_STOP_SIGNAL)
        ended = await client.get_workflow_handle(workflow_id, result_type=ServiceObserved).result()
        assert ended.status == ServiceStatus.STOPPED.value
        assert ServiceRemoval("p", "api") in REMOVED  # undeploy ends with the backend's removal


@pytest.mark.asyncio
async def test_a_backend_without_services_makes_it_failed(control_plane: ControlPlane) -> None:
    queue = f"svc-{uuid.uuid4().hex[:8]}"
    workflow_id = f"multinode-service:p:{queue}"
    def both(client: Client) -> list[Callable[..., Any]]:
        service_activities = ServiceActivities(client, FakeBackend())
        return [service_activities.run_service, service_activities.stop_service]

    async with _worker(queue, both) as client:
        await _start(client, queue, workflow_id)
        deadline = time.monotonic() + 30
        while (observed := await _observed(client, workflow_id)).status != ServiceStatus.FAILED.value:
            assert time.monotonic() < deadline, observed
            await asyncio.sleep(0.1)
        assert observed.reason == "the fake backend does not run services" and observed.restarts == 0
        await client.get_workflow_handle(workflow_id).signal(names.SERVICE_STOP_SIGNAL)
        await client.get_workflow_handle(workflow_id).result()
