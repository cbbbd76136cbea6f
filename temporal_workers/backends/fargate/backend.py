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
from collections.abc import Mapping

from botocore.exceptions import BotoCoreError, ClientError

from multinode.contract.records import AttemptOutcome, AttemptRequest
from multinode.runtime.fargate_run import RunLocation
from multinode.runtime.object_store import ObjectStore
from temporal_workers.backends import AttemptSession, ContainerBackend
from temporal_workers.backends.fargate.config import FargateConfig, Timings, load_fargate_config
from temporal_workers.backends.fargate.ecs import EcsApi
from temporal_workers.backends.fargate.observer import TaskObserver
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
    ) -> None:
        self.settings = settings
        self.config = config
        self.ecs = ecs
        self.store = store
        self.timings = timings or Timings()
        self.observer = TaskObserver(ecs.describe_tasks, config.cluster, self.timings.describe_interval)
        self._running: set[str] = set()

    @classmethod
    def from_environment(
        cls, settings: WorkerSettings, environ: Mapping[str, str] | None = None
    ) -> FargateBackend:
        config = load_fargate_config(os.environ if environ is None else environ)
        return cls(
            settings,
            config,
            EcsApi.connect(config.endpoint_url),
            ObjectStore.connect(config.endpoint_url),
        )

    async def run_attempt(self, request: AttemptRequest, session: AttemptSession) -> AttemptOutcome:
        return await AttemptSupervisor(self, request, session).run()

    async def forget(self, invocation_id: str) -> None:
        """Every run document of every attempt (arguments, yields, outcomes, task records)."""
        location = RunLocation.for_invocation(self.config.package_store, invocation_id)
        await asyncio.to_thread(self.store.delete_prefix, location.bucket, location.prefix)

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
