"""The Fargate backend: each attempt is one ECS task of the function image.

The worker stays the only supervisor, exactly as with the local backend: it launches the task,
watches it, enforces the function's timeout (RunTask has none), turns a cancel into StopTask,
and maps how the task ended into an `AttemptOutcome`. The container cannot be reached by the
worker, so everything else travels through the package store's bucket (the run protocol of
`multinode.runtime.fargate_run`).

Modules: `config` (where tasks run, how often the backend looks), `request` (the RunTask call),
`ecs` (the ECS seam), `supervisor` (one attempt's run), `outcome` (how a stopped task ended),
`sizes` (Fargate's CPU and memory combinations). `EcsApi` and `ObjectStore` are the seam tests
replace.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping

from botocore.exceptions import BotoCoreError, ClientError

from multinode.contract.records import AttemptOutcome, AttemptRequest
from multinode.contract.service_state import ServiceExit, ServiceRemoval, ServiceRun
from multinode.runtime.fargate_run import RunLocation
from multinode.runtime.object_store import ObjectStore
from temporal_workers.backends import (
    AttemptSession,
    ContainerBackend,
    ServiceSession,
    ServiceUnsupportedError,
)
from temporal_workers.backends.fargate.config import FargateConfig, Timings, load_fargate_config
from temporal_workers.backends.fargate.ecs import EcsApi
from temporal_workers.backends.fargate.observer import TaskObserver
from temporal_workers.backends.fargate.service_ecs import (
    ENV_NAMESPACE_ID,
    ENV_NAMESPACE_NAME,
    ServiceEcsApi,
    load_discovery_config,
)
from temporal_workers.backends.fargate.services import FargateServices
from temporal_workers.backends.fargate.supervisor import AttemptSupervisor
from temporal_workers.settings import WorkerSettings

log = logging.getLogger("multinode.worker")


class FargateBackend(ContainerBackend):
    name = "fargate"

    def __init__(
        self,
        settings: WorkerSettings,
        config: FargateConfig,
        ecs: EcsApi,
        store: ObjectStore,
        timings: Timings | None = None,
        services: FargateServices | None = None,
    ) -> None:
        self.settings = settings
        self.config = config
        self.ecs = ecs
        self.store = store
        self.timings = timings or Timings()
        self.observer = TaskObserver(ecs.describe_tasks, config.cluster, self.timings.describe_interval)
        self.services = services  # None: the stack has no Cloud Map namespace for services
        self._running: set[str] = set()

    @classmethod
    def from_environment(
        cls, settings: WorkerSettings, environ: Mapping[str, str] | None = None
    ) -> FargateBackend:
        environ = os.environ if environ is None else environ
        config = load_fargate_config(environ)
        store = ObjectStore.connect(config.endpoint_url)
        discovery = load_discovery_config(environ)
        services = None if discovery is None else FargateServices(
            settings, config, ServiceEcsApi.connect(config.endpoint_url), store, Timings(), discovery)
        return cls(settings, config, EcsApi.connect(config.endpoint_url), store, services=services)

    async def run_attempt(self, request: AttemptRequest, session: AttemptSession) -> AttemptOutcome:
        return await AttemptSupervisor(self, request, session).run()

    async def forget(self, invocation_id: str) -> None:
        """Every run document of every attempt (arguments, yields, outcomes, task records)."""
        location = RunLocation.for_invocation(self.config.package_store, invocation_id)
        await asyncio.to_thread(self.store.delete_prefix, location.bucket, location.prefix)

    async def run_service(self, run: ServiceRun, session: ServiceSession) -> ServiceExit:
        if self.services is None:
            raise ServiceUnsupportedError(
                f"the fargate backend runs services only in a Cloud Map namespace: set "
                f"{ENV_NAMESPACE_ID} and {ENV_NAMESPACE_NAME} on the worker (the stack's outputs)"
            )
        return await self.services.run(run, session)

    async def remove_service(self, removal: ServiceRemoval, heartbeat: Callable[[], None]) -> None:
        if self.services is not None:
            await self.services.remove(removal, heartbeat)

    def track(self, task_arn: str, running: bool) -> None:
        if running:
            self._running.add(task_arn)
        else:
            self._running.discard(task_arn)

    async def close(self) -> None:
        for task_arn in list(self._running):
            try:
                await asyncio.to_thread(
                    self.ecs.stop_task, self.config.cluster, task_arn, "multinode: worker stopping"
                )
            except (ClientError, BotoCoreError) as exc:
                log.warning("could not stop %s: %s", task_arn, exc)
