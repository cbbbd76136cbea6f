"""The archiver: keeps finished invocations readable after the namespace's retention period.

Temporal deletes closed workflows once the namespace's retention has passed; Multinode keeps an
invocation's status, result, error and attempts until `.remove`. One archiver per task queue
copies each finished invocation into an archive record: an open workflow whose first task is
scheduled a century out, so it costs no worker and is never deleted by retention. It works in
batches behind the visibility lag, off the invocations' own path.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from multinode.contract import names
from multinode.contract.records import ArchiverState

# Set once per worker process from its settings (timer durations are not checked on replay).
INTERVAL_SECONDS = 60.0


@workflow.defn(name=names.ARCHIVER_WORKFLOW)
class ArchiverWorkflow:
    @workflow.run
    async def run(self, state: ArchiverState) -> None:
        cursor = state.cursor
        while not workflow.info().is_continue_as_new_suggested():
            await workflow.sleep(timedelta(seconds=INTERVAL_SECONDS))
            cursor = await workflow.execute_activity(
                names.ARCHIVE_BATCH_ACTIVITY,
                ArchiverState(cursor=cursor),
                result_type=float,
                start_to_close_timeout=timedelta(minutes=30),
                heartbeat_timeout=timedelta(minutes=2),
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
            )
        workflow.continue_as_new(ArchiverState(cursor=cursor))
