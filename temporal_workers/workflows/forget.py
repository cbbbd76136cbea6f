"""Forgetting an invocation's data: one activity on a worker deletes what its attempts left
where their containers ran (`.remove` starts it once the invocation has ended, then deletes this
workflow too)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from multinode.contract import names


@workflow.defn(name=names.FORGET_WORKFLOW)
class ForgetWorkflow:
    @workflow.run
    async def run(self, invocation_id: str) -> None:
        await workflow.execute_activity(
            names.FORGET_INVOCATION_ACTIVITY,
            invocation_id,
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1), maximum_attempts=20),
        )
