"""A shortcut for cancellation between the workflow side and the attempt side of one worker.

A cancel reaches a running activity only in the answer to a heartbeat, and a quiet attempt
heartbeats only every half heartbeat timeout (each heartbeat is a billed write). When `.cancel`
asks an invocation to stop, the worker that runs the invocation's workflow task sees the request
first; if the same worker supervises the attempt (always, with one worker), it hurries that
attempt's heartbeats, so the cancel arrives within a fraction of a second instead. With several
workers the hint may land elsewhere and the attempt hears of the cancel at its next heartbeat.
The hint never changes what the workflow does: it only observes the update's arrival."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import workflow
from temporalio.worker import (
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from multinode.contract import names


class CancelHints(Interceptor):
    """Calls `hint(workflow_id)` (from a workflow thread) when a cancel update arrives."""

    def __init__(self, hint: Callable[[str], None]) -> None:
        self._hint = hint

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        hint = self._hint

        class _CancelUpdates(WorkflowInboundInterceptor):
            async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
                if input.update == names.CANCEL_UPDATE and not workflow.unsafe.is_replaying():
                    hint(workflow.info().workflow_id)
                return await super().handle_update_handler(input)

        return _CancelUpdates
