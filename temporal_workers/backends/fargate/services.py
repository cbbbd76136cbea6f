"""Services on Fargate: each service is an ECS service of one task, found through Cloud Map.

ECS does the supervision: it keeps one task running (a task that exits is replaced), and an
upgrade (UpdateService with a new task definition) starts the new version's task and stops the
old one only once the new one runs. The ECS service registers each task's address in the Cloud
Map service `S.P`, so the service answers at `S.P.<namespace>:<port>` inside the VPC whichever
task runs it.

One run of the service's activity (`FargateServices.run`) makes the ECS service what the target
says (creating it, or updating its task definition), then watches the task it runs: STARTING
while it is provisioned, RUNNING once its port accepts connections from the worker, UNHEALTHY when
it stops to. When that task stops by itself the run ends with its exit (the control loop counts a
restart; ECS has already started the replacement, which the next run watches). A task that never
gets healthy is stopped (ECS starts another). A cancel, or the worker stopping, leaves the ECS
service as it is: the next run, on a new version or on the next worker, takes it from there.
Undeploy ends with `remove`, which deletes the ECS service and waits for its tasks to stop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from multinode.contract.service_state import (
    ServiceExit,
    ServiceRemoval,
    ServiceRun,
    ServiceTarget,
    service_logs_key,
    service_stream_prefix,
)
from multinode.contract.services import ServiceStatus
from multinode.runtime.fargate_run import RunLocation
from multinode.runtime.object_store import ObjectStore
from temporal_workers.backends import InfrastructureError, ServiceSession
from temporal_workers.backends.fargate import service_definition as definition
from temporal_workers.backends.fargate.config import FargateConfig, Timings
from temporal_workers.backends.fargate.ecs import timestamp
from temporal_workers.backends.fargate.service_ecs import DiscoveryConfig, ServiceEcsApi
from temporal_workers.backends.probe import accepts_connections
from temporal_workers.settings import WorkerSettings

log = logging.getLogger("multinode.worker")

Json = dict[str, Any]

# Once RUNNING, the port is checked this often (a failed check is retried once before UNHEALTHY).
HEALTH_EVERY_SECONDS = 2.0
LOG_TAIL_LINES = 40
# Undeploy waits this long past the grace period for the ECS service's tasks to stop.
REMOVE_MARGIN_SECONDS = 60.0


def task_address(task: Json) -> str | None:
    """The task's private IP in the VPC (awsvpc: one network interface per task)."""
    for attachment in task.get("attachments") or []:
        for detail in attachment.get("details") or []:
            if detail.get("name") == "privateIPv4Address":
                return str(detail.get("value"))
    return None


def task_exit_code(task: Json) -> int | None:
    """The service container's exit code; a container's death by signal N (128 + N) reads as -N,
    as a local process's does."""
    for container in task.get("containers") or []:
        if container.get("name") == definition.SERVICE_CONTAINER and container.get("exitCode") is not None:
            code = int(container["exitCode"])
            return -(code - 128) if 128 < code < 160 else code
    return None


@dataclass
class _Watch:
    task_arn: str | None = None
    started_at: float | None = None
    running_at: float | None = None  # monotonic: the start-up time counts from here
    healthy_at: float | None = None
    ever_healthy: bool = False
    misses: int = 0
    next_check: float = 0.0


class FargateServices:
    def __init__(self, settings: WorkerSettings, config: FargateConfig, api: ServiceEcsApi,
                 store: ObjectStore, timings: Timings, discovery: DiscoveryConfig) -> None:
        self.settings = settings
        self.config = config
        self.api = api
        self.store = store
        self.timings = timings
        self.discovery = discovery

    async def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        try:
            return await asyncio.to_thread(function, *args)
        except (ClientError, BotoCoreError) as exc:
            raise InfrastructureError(f"ECS refused {getattr(function, '__name__', 'a call')}: {exc}") from exc

    # ----- one run -------------------------------------------------------------------------------

    async def run(self, run: ServiceRun, session: ServiceSession) -> ServiceExit:
        target = run.target
        task_definition = await self._task_definition(target)
        await self._converge(target, task_definition)
        await self._record_logs(target)
        stopping = asyncio.ensure_future(session.worker_stopping())
        try:
            return await self._watch(target, task_definition, session, stopping)
        finally:
            stopping.cancel()

    async def _task_definition(self, target: ServiceTarget) -> str:
        """The running ECS service's task definition when it already runs this version (a run
        after a restart or on another worker), else a new revision for it."""
        current = await self._call(self.api.describe_service, self.config.cluster, self._name(target))
        if current is not None:
            arn = str(current.get("taskDefinition") or "")
            if arn and definition.version_of(await self._call(self.api.describe_task_definition, arn)) == target.version_id:
                return arn
        base = await self._call(self.api.describe_task_definition, self.config.task_definition)
        return str(await self._call(self.api.register_task_definition,
                                    definition.task_definition_params(target, base, self.settings)))

    async def _converge(self, target: ServiceTarget, task_definition: str) -> None:
        current = await self._call(self.api.describe_service, self.config.cluster, self._name(target))
        if current is None:
            registry = await self._call(self.api.discovery_service, self.discovery.namespace_id,
                                        definition.discovery_name(target.project_name, target.spec.name))
            await self._call(self.api.create_service,
                             definition.create_service_params(target, self.config, task_definition, registry))
            log.info("ECS service %s created (%s)", self._name(target), task_definition)
        elif current.get("taskDefinition") != task_definition or current.get("desiredCount") != 1:
            await self._call(self.api.update_service,
                             definition.update_service_params(target, self.config, task_definition))
            log.info("ECS service %s updated to %s", self._name(target), task_definition)

    async def _record_logs(self, target: ServiceTarget) -> None:
        """Where `multinode logs --service-name` finds the service's output."""
        location = RunLocation.from_uri(self.config.package_store)
        document = {"log_group": self.config.log_group,
                    "stream_prefix": service_stream_prefix(target.project_name, target.spec.name)}
        await self._call(self.store.put_json, location.bucket,
                         location.key(service_logs_key(target.project_name, target.spec.name)), document)

    async def _watch(self, target: ServiceTarget, task_definition: str, session: ServiceSession,
                     stopping: asyncio.Future[None]) -> ServiceExit:
        watch = _Watch()
        address = definition.service_address(target, self.discovery)
        placed_by = time.monotonic() + self.timings.start_timeout
        while True:
            session.heartbeat()
            if stopping.done():
                raise InfrastructureError("the worker is stopping; the ECS service keeps running and "
                                          "the next worker watches it")
            if watch.task_arn is None:
                await self._find_task(target, task_definition, watch, session)
                if watch.task_arn is None and time.monotonic() > placed_by:
                    return ServiceExit(ended_at=time.time(), start_error=await self._no_task(target))
            else:
                task = await self._call(self.api.describe_task, self.config.cluster, watch.task_arn)
                if task is None or task.get("lastStatus") == "STOPPED":
                    return await self._exit(target, watch, task or {})
                if task.get("lastStatus") == "RUNNING":
                    unhealthy = await self._check(target, task, watch, session, address)
                    if unhealthy is not None:
                        await self._call(self.api.stop_task, self.config.cluster, watch.task_arn,
                                         "multinode: never healthy")
                        return await self._exit(target, watch, task, unhealthy)
            await asyncio.wait([stopping], timeout=self.timings.describe_interval)

    async def _find_task(self, target: ServiceTarget, task_definition: str, watch: _Watch,
                         session: ServiceSession) -> None:
        tasks = await self._call(self.api.service_tasks, self.config.cluster, self._name(target))
        ours = [t for t in tasks if t.get("taskDefinitionArn") == task_definition and t.get("lastStatus") != "STOPPED"]
        if not ours:
            return
        ours.sort(key=lambda t: (t.get("lastStatus") != "RUNNING", timestamp(t.get("createdAt")) or 0.0))
        watch.task_arn = str(ours[0]["taskArn"])
        watch.started_at = timestamp(ours[0].get("startedAt")) or time.time()
        await session.report(ServiceStatus.STARTING.value, watch.started_at)

    async def _no_task(self, target: ServiceTarget) -> str:
        """Why no task came: ECS's latest event about the service (placement, capacity, roles)."""
        current = await self._call(self.api.describe_service, self.config.cluster, self._name(target)) or {}
        events = current.get("events") or []
        latest = f": {events[0].get('message')}" if events else ""
        return (f"ECS started no task for service {self._name(target)} within "
                f"{self.timings.start_timeout:g} s{latest}")

    async def _check(self, target: ServiceTarget, task: Json, watch: _Watch, session: ServiceSession,
                     address: str) -> str | None:
        """Looks at the running task's port; returns why it is given up on, if it never got
        healthy within the start-up time."""
        now = time.monotonic()
        if watch.running_at is None:
            watch.running_at = now
        if now < watch.next_check:
            return None
        host = task_address(task)
        ok = host is not None and await accepts_connections(host, target.spec.port)
        watch.next_check = now + (HEALTH_EVERY_SECONDS if watch.healthy_at is not None else 0.0)
        if ok:
            watch.misses = 0
            if watch.healthy_at is None:
                watch.healthy_at = time.time()
                watch.ever_healthy = True
                await session.report(ServiceStatus.RUNNING.value, watch.healthy_at, address=address)
        elif watch.healthy_at is not None:
            watch.misses += 1
            if watch.misses >= 2:
                watch.healthy_at = None
                await session.report(ServiceStatus.UNHEALTHY.value, time.time())
        elif not watch.ever_healthy and now - watch.running_at >= self.settings.service_start_seconds:
            return (f"port {target.spec.port} of task {watch.task_arn} did not accept connections within "
                    f"{self.settings.service_start_seconds:g} s")
        return None

    async def _exit(self, target: ServiceTarget, watch: _Watch, task: Json, unhealthy: str | None = None) -> ServiceExit:
        ended_at = time.time()
        tail = ""
        if watch.task_arn is not None:
            stream = (f"{service_stream_prefix(target.project_name, target.spec.name)}/"
                      f"{definition.SERVICE_CONTAINER}/{watch.task_arn.rsplit('/', 1)[-1]}")
            tail = await asyncio.to_thread(self.api.log_tail, self.config.log_group, stream, LOG_TAIL_LINES)
        if not tail and task.get("stoppedReason"):
            tail = f"ECS: {task['stoppedReason']}\n"
        log.info("service %s of %s: task %s stopped (%s)", target.spec.name, target.project_name,
                 watch.task_arn, task.get("stoppedReason") or unhealthy or "gone")
        return ServiceExit(
            ended_at=ended_at,
            started_at=watch.started_at,
            exit_code=task_exit_code(task),
            ever_healthy=watch.ever_healthy,
            healthy_seconds=(ended_at - watch.healthy_at) if watch.healthy_at is not None else 0.0,
            unhealthy_reason=unhealthy,
            log_tail=tail,
        )

    # ----- undeploy ------------------------------------------------------------------------------

    async def remove(self, removal: ServiceRemoval, heartbeat: Callable[[], None]) -> None:
        """Deletes the ECS service (ECS stops its task: SIGTERM, the stop timeout, the kill) and
        waits until its tasks have stopped, then its Cloud Map service."""
        name = definition.ecs_service_name(removal.project_name, removal.service_name)
        cluster = self.config.cluster
        current = await self._call(self.api.describe_service, cluster, name)
        if current is not None:
            await self._call(self.api.delete_service, cluster, name)
            log.info("ECS service %s deleted", name)
        deadline = time.monotonic() + self.settings.grace_period_seconds + REMOVE_MARGIN_SECONDS
        while time.monotonic() < deadline:
            heartbeat()
            tasks = await self._call(self.api.service_tasks, cluster, name)
            if all(t.get("lastStatus") == "STOPPED" for t in tasks):
                break
            await asyncio.sleep(self.timings.describe_interval)
        else:
            log.warning("ECS service %s: tasks still running after its deletion; ECS stops them", name)
        registry_name = definition.discovery_name(removal.project_name, removal.service_name)
        try:
            registry = await asyncio.to_thread(self.api.discovery_service, self.discovery.namespace_id,
                                               registry_name, False)
            if registry is not None:
                await asyncio.to_thread(self.api.delete_discovery_service, registry)
        except (ClientError, BotoCoreError) as exc:  # it costs nothing; the next deploy reuses it
            log.warning("Cloud Map service %s kept: %s", registry_name, exc)

    def _name(self, target: ServiceTarget) -> str:
        return definition.ecs_service_name(target.project_name, target.spec.name)
