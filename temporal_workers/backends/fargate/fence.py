"""Fencing an engine retry: a retried attempt's earlier run may have left its task running (its
worker died, or stopped without waiting for the task). Before the retry launches, every task of
the invocation that has not stopped yet is stopped, and the retry waits until ECS reports it
STOPPED, so two tasks of one attempt never run at once. Attempts the engine runs for the first
time skip this: the previous attempt's run ended only once its task had stopped."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from temporal_workers.backends import InfrastructureError

if TYPE_CHECKING:
    from temporal_workers.backends.fargate.supervisor import AttemptSupervisor

log = logging.getLogger("multinode.worker")

FENCE_REASON = "multinode: superseded by an engine retry"


async def stop_leftovers(supervisor: AttemptSupervisor) -> None:
    """Stop the invocation's tasks that are still alive and wait until they have stopped."""
    ecs, cluster = supervisor.backend.ecs, supervisor.cluster
    invocation_id = supervisor.request.invocation.invocation_id
    deadline = time.monotonic() + supervisor.timings.fence_timeout
    asked: set[str] = set()
    while True:
        try:
            alive = await supervisor.call(ecs.live_tasks, cluster, invocation_id)
        except (ClientError, BotoCoreError) as exc:
            raise InfrastructureError(f"looking for tasks a lost run left failed: {exc}") from exc
        if not alive:
            return
        if time.monotonic() > deadline:
            raise InfrastructureError(f"tasks a lost run left did not stop in time: {', '.join(alive)}")
        for task_arn in set(alive) - asked:
            log.warning("%s: stopping %s, left running by a lost run", invocation_id, task_arn)
            try:
                await supervisor.call(ecs.stop_task, cluster, task_arn, FENCE_REASON)
                asked.add(task_arn)
            except (ClientError, BotoCoreError) as exc:  # asked again next round
                log.warning("StopTask %s failed: %s", task_arn, exc)
        supervisor.heartbeat()
        await supervisor.sleep(supervisor.timings.describe_interval)
        supervisor.check_abandoned()
