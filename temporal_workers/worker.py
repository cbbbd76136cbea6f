"""The Multinode worker: runs invocation and project workflows, and attempts on a backend.

It stops on SIGTERM or SIGINT the way ECS stops a task: it stops polling, lets the attempts it
runs go on for `shutdown_grace_seconds`, hands back those still running (the engine runs them
again on another worker, not counting against max_retries) and exits. A second signal hands
them back at once."""

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
from temporalio.runtime import Runtime
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from multinode.contract import names
from multinode.contract.records import ArchiverState
from multinode.engine.connection import connect, ensure_search_attributes
from temporal_workers.activities.attempt import AttemptActivities
from temporal_workers.activities.coordination import CoordinationActivities
from temporal_workers.activities.service import ServiceActivities
from temporal_workers.backends import ContainerBackend
from temporal_workers.cancel_hints import CancelHints
from temporal_workers.metrics import NO_METRICS, WorkerMetrics, metrics_runtime
from temporal_workers.quota.channel import EngineLeaseChannel
from temporal_workers.quota.leases import QuotaLeases
from temporal_workers.settings import WorkerSettings
from temporal_workers.workflows import archiver as archiver_workflow
from temporal_workers.workflows import invocation as invocation_workflow
from temporal_workers.workflows import quota as quota_workflow
from temporal_workers.workflows import service as service_workflow
from temporal_workers.workflows.archiver import ArchiverWorkflow
from temporal_workers.workflows.forget import ForgetWorkflow
from temporal_workers.workflows.invocation import InvocationWorkflow
from temporal_workers.workflows.lock import LockWorkflow
from temporal_workers.workflows.project import ProjectWorkflow
from temporal_workers.workflows.quota import QuotaWorkflow
from temporal_workers.workflows.service import ServiceWorkflow

log = logging.getLogger("multinode.worker")

# Cancellation reaches an activity only through heartbeat responses; a short throttle keeps
# cancel and progress within a second.
HEARTBEAT_THROTTLE = timedelta(milliseconds=300)


def make_backend(settings: WorkerSettings, metrics: WorkerMetrics = NO_METRICS) -> ContainerBackend:
    if settings.backend == "local":
        from temporal_workers.backends.local.backend import LocalBackend

        return LocalBackend(settings, metrics=metrics)
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


def build_worker(
    client: Client,
    settings: WorkerSettings,
    backend: ContainerBackend,
    leases: QuotaLeases,
    attempts: AttemptActivities | None = None,
    metrics: WorkerMetrics = NO_METRICS,
) -> Worker:
    """The caller owns `leases` and closes them after the worker's shutdown. `attempts` (made
    here when not given) is where the caller stops or hands back running attempts."""
    invocation_workflow.HEARTBEAT_TIMEOUT_SECONDS = settings.heartbeat_timeout_seconds
    service_workflow.HEARTBEAT_TIMEOUT_SECONDS = settings.heartbeat_timeout_seconds
    quota_workflow.REAP_INTERVAL_SECONDS = settings.quota_reap_seconds
    archiver_workflow.INTERVAL_SECONDS = settings.archive_interval_seconds
    attempts = attempts or AttemptActivities(client, backend, leases, metrics)
    coordination = CoordinationActivities(
        client, settings.connection.task_queue, settings.archive_lag_seconds, metrics
    )
    return Worker(
        client,
        task_queue=settings.connection.task_queue,
        workflows=[InvocationWorkflow, ProjectWorkflow, QuotaWorkflow, LockWorkflow, ArchiverWorkflow,
                   ServiceWorkflow, ForgetWorkflow],
        activities=[
            attempts.run_attempt,
            attempts.forget_invocation,
            coordination.acquire_quota,
            coordination.closed_invocations,
            coordination.cancel_invocations,
            coordination.archive_batch,
            ServiceActivities(client, backend).run_service,
            ServiceActivities(client, backend).stop_service,
        ],
        # Our workflows are deterministic by construction (no I/O, engine time only) and never
        # decode user values, so the sandbox's per-task cost buys nothing here.
        workflow_runner=UnsandboxedWorkflowRunner(),
        interceptors=[CancelHints(attempts.hint_cancel)],
        max_concurrent_activities=settings.max_concurrent_attempts,
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        # After this the SDK cancels the attempts still running, as a worker shutdown: the
        # attempt activity hands them back to the engine.
        graceful_shutdown_timeout=timedelta(seconds=settings.shutdown_grace_seconds),
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


def client_metrics(client: Client) -> WorkerMetrics:
    """Instruments on the runtime `client` reports through (no-ops when it serves no metrics)."""
    runtime = client.service_client.config.runtime or Runtime.default()
    return WorkerMetrics(runtime.metric_meter)


async def run_worker(
    settings: WorkerSettings, stop: asyncio.Event | None = None, backend: ContainerBackend | None = None
) -> None:
    """Runs until `stop` is set or a signal arrives. `backend` (made from `settings` when not
    given) lets a test hand in a backend whose ECS seam it plays."""
    if settings.metrics_address:
        # Every client made from here on reports through it: the worker's, and with it the SDK's
        # own worker metrics.
        Runtime.set_default(metrics_runtime(settings.metrics_address), error_if_already_set=False)
    client = await connect(settings.connection)
    try:
        # Idempotent: a state folder or namespace from an older Multinode gets the new ones too.
        await ensure_search_attributes(client, settings.connection.namespace)
    except Exception as exc:  # e.g. no operator permission on a hosted namespace
        log.warning("could not check the search attributes (%s); register them as the README says", exc)
    metrics = client_metrics(client)
    backend = backend or make_backend(settings, metrics)
    leases = new_leases(client, settings)
    attempts = AttemptActivities(client, backend, leases, metrics)
    worker = build_worker(client, settings, backend, leases, attempts, metrics)
    stop = stop or asyncio.Event()

    def on_signal() -> None:
        if not stop.is_set():
            stop.set()
        elif not attempts.handing_back:
            log.warning("stopping now: handing %d running attempts back to the engine", attempts.running)
            attempts.hand_back_all()

    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, on_signal)
            handled.append(signum)
        except (NotImplementedError, RuntimeError):
            pass
    log.info(
        "worker ready: %s namespace %s task queue %s, %s backend%s",
        settings.connection.api_url, settings.connection.namespace,
        settings.connection.task_queue, backend.name,
        f", metrics on http://{settings.metrics_address}/metrics" if settings.metrics_address else "",
    )
    await ensure_archiver(client, settings)
    try:
        async with worker:
            await stop.wait()
            attempts.stopping = True
            log.info(
                "worker stopping: it takes no new work; %d running attempts get up to %g s to finish, "
                "then go back to the engine (signal again to hand them back now)",
                attempts.running, settings.shutdown_grace_seconds,
            )
        log.info("worker stopped")
    finally:
        # After the worker's shutdown: running attempts have ended or been stopped by then.
        await leases.close()
        await backend.close()
        for signum in handled:
            loop.remove_signal_handler(signum)
