"""The lock workflow: its id is the lock key, so the engine itself refuses a second holder.

Started in one atomic call with the invocation it guards; it runs that invocation as a child
and ends when the child closes, in any way, which frees the key. A client that dies mid-start
cannot leave the key held: either the lock workflow exists and runs to its end, or it never
started.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.workflow import ParentClosePolicy

from multinode.contract import names
from multinode.contract.invocation import InvocationStatus
from multinode.contract.preview import invocation_details
from multinode.contract.records import InvocationRecord, LockInput, initial_record


@workflow.defn(name=names.LOCK_WORKFLOW)
class LockWorkflow:
    @workflow.init
    def __init__(self, lock: LockInput) -> None:
        self._child_started = False

    @workflow.run
    async def run(self, lock: LockInput) -> None:
        invocation = lock.invocation
        values = names.invocation_search_attributes(invocation, InvocationStatus.PENDING.value, lock=lock.key)
        child = await workflow.start_child_workflow(
            names.INVOCATION_WORKFLOW,
            invocation,
            id=invocation.invocation_id,
            result_type=InvocationRecord,
            search_attributes=_typed(values),
            memo={"state": initial_record(invocation)},
            static_summary=f"{lock.summary} · lock {lock.key}",
            static_details=invocation_details(invocation),
            parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
        )
        self._child_started = True
        try:
            await child
        except Exception:  # whatever the child's ending (failed, canceled), the key is free once it closed
            pass

    @workflow.update(name=names.LOCK_CHILD_STARTED_UPDATE)
    async def child_started(self) -> str:
        """Answers once the guarded invocation exists, so `.start` returns a readable id."""
        await workflow.wait_condition(lambda: self._child_started)
        return workflow.info().workflow_id


def _typed(values: dict[str, str | datetime]) -> TypedSearchAttributes:
    """The contract's values under typed keys (as multinode.engine.attributes does: workflows
    do not import the engine adapter)."""
    return TypedSearchAttributes([
        SearchAttributePair(SearchAttributeKey.for_datetime(name), value)
        if isinstance(value, datetime)
        else SearchAttributePair(SearchAttributeKey.for_keyword(name), value)
        for name, value in values.items()
    ])
