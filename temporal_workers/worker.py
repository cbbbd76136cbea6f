"""The Multinode worker: runs invocation and project workflows, and attempts on a backend."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import uuid
from datetime import timedelta

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from multinode.contract import names
from multinode.contract.records import ArchiverState
from multinode.engine.connection import connect, ensure_search_attributes
from temporal_workers.activities.attempt import AttemptActivities
from temporal_workers.activities.coordination import CoordinationActivities
from temporal_workers.backends import ContainerBackend
from temporal_workers.quota.channel import EngineLeaseChannel
from temporal_workers.quota.leases import QuotaLeases
from temporal_workers.settings import WorkerSettings
from temporal_workers.workflows import archiver as archiver_workflow
from temporal_workers.workflows import invocation as invocation_workflow
from temporal_workers.workflows import quota as quota_workflow
from temporal_workers.workflows.archiver import ArchiverWorkflow
from temporal_workers.workflows.invocation import InvocationWorkflow
from temporal_workers.workflows.lock import LockWorkflow
from temporal_workers.workflows.project import ProjectWorkflow
from temporal_workers.workflows.quota import QuotaWorkflow

log = logging.getLogger("multinode.worker")

# Cancellation reaches an activity only through heartbeat responses; a short throttle keeps
# cancel and progress within a second.
HEARTBEAT_THROTTLE = timedelta(milliseconds=300)


def make_backend(settings: WorkerSettings) -> ContainerBackend:
    if settings.backend == "local":
        from temporal_workers.backends.local.backend import LocalBackend

        return LocalBackend(settings)
    if settings.backend == "fargate":
        from temporal_workers.backends.fargate.backend import FargateBackend

        backend: ContainerBackend = FargateBackend.from_environment(settings)
        return backend
    from temporal_workers.backends.fake import FakeBackend

    fake: ContainerBackend = FakeBackend()
    return fake


def new_worker_id() -> str:
    """Names this worker process at the semaphores it holds quota leases from."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def new_leases(client: Client, settings: WorkerSettings) -> QuotaLeases:
    """This worker's quota leases. Half its activity slots at most go to attempts queued for a
    slot, so queued ones never crowd out the attempts that could run."""
    return QuotaLeases(
        new_worker_id(),
        EngineLeaseChannel(client, settings.connection.task_queue),
        max_queued=max(1, settings.max_concurrent_attempts // 2) if settings.local_queue else 0,
    )


def build_worker(client: Client, settings: WorkerSettings, backend: ContainerBackend, leases: QuotaLeases) -> Worker:
    """The caller owns `leases` and closes them after the worker's shutdown."""
    invocation_workflow.HEARTBEAT_TIMEOUT_SECONDS = settings.heartbeat_timeout_seconds
    quota_workflow.REAP_INTERVAL_SECONDS = settings.quota_reap_seconds
    archiver_workflow.INTERVAL_SECONDS = settings.archive_interval_seconds
    attempts = AttemptActivities(client, backend, leases)
    coordination = CoordinationActivities(
        client, settings.connection.task_queue, settings.archive_lag_seconds
    )
    return Worker(
        client,
        task_queue=settings.connection.task_queue,
        workflows=[InvocationWorkflow, ProjectWorkflow, QuotaWorkflow, LockWorkflow, ArchiverWorkflow],
        activities=[
            attempts.run_attempt,
            coordination.acquire_quota,
            coordination.closed_invocations,
            coordination.cancel_invocations,
            coordination.archive_batch,
        ],
        # Our workflows are deterministic by construction (no I/O, engine time only) and never
        # decode user values, so the sandbox's per-task cost buys nothing here.
        workflow_runner=UnsandboxedWorkflowRunner(),
        max_concurrent_activities=settings.max_concurrent_attempts,
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        graceful_shutdown_timeout=timedelta(seconds=10),
    )


async def ensure_archiver(client: Client, settings: WorkerSettings) -> None:
    """One archiver per task queue, whichever worker starts first."""
    queue = settings.connection.task_queue
    await client.start_workflow(
        names.ARCHIVER_WORKFLOW,
        ArchiverState(cursor=0.0),
        id=names.archiver_workflow_id(queue),
        task_queue=queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"keeps finished invocations of task queue {queue} past retention",
    )


async def run_worker(settings: WorkerSettings, stop: asyncio.Event | None = None) -> None:
    client = await connect(settings.connection)
    try:
        # Idempotent: a state folder or namespace from an older Multinode gets the new ones too.
        await ensure_search_attributes(client, settings.connection.namespace)
    except Exception as exc:  # e.g. no operator permission on a hosted namespace
        log.warning("could not check the search attributes (%s); register them as the README says", exc)
    backend = make_backend(settings)
    leases = new_leases(client, settings)
    worker = build_worker(client, settings, backend, leases)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    log.info(
        "worker ready: %s namespace %s task queue %s, %s backend",
        settings.connection.api_url, settings.connection.namespace,
        settings.connection.task_queue, backend.name,
    )
    await ensure_archiver(client, settings)
    try:
        async with worker:
            await stop.wait()
            log.info("worker stopping")
    finally:
        # After the worker's shutdown: running attempts have ended or been stopped by then.
        await leases.close()
        await backend.close()
