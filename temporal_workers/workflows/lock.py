"""The lock workflow: its id is the lock key, so the engine itself refuses a second holder.

Started in one atomic call with the invocation it guards; it runs that invocation as a child
and ends when the child closes, in any way, which frees the key. A client that dies mid-start
cannot leave the key held: either the lock workflow exists and runs to its end, or it never
started.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.workflow import ParentClosePolicy

from multinode.contract import names
from multinode.contract.records import InvocationRecord, LockInput
from multinode.engine.engine import KEY_LOCK, initial_record, invocation_search_attributes


@workflow.defn(name=names.LOCK_WORKFLOW)
class LockWorkflow:
    @workflow.init
    def __init__(self, lock: LockInput) -> None:
        self._child_started = False

    @workflow.run
    async def run(self, lock: LockInput) -> None:
        invocation = lock.invocation
        pairs = invocation_search_attributes(invocation)
        pairs.append(SearchAttributePair(KEY_LOCK, lock.key))
        child = await workflow.start_child_workflow(
            names.INVOCATION_WORKFLOW,
            invocation,
            id=invocation.invocation_id,
            result_type=InvocationRecord,
            search_attributes=TypedSearchAttributes(pairs),
            memo={"state": initial_record(invocation)},
            static_summary=f"{lock.summary} · lock {lock.key}",
            parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
        )
        self._child_started = True
        try:
            await child
        except Exception:  # whatever the child's ending, the key is free once it closed
            pass

    @workflow.update(name=names.LOCK_CHILD_STARTED_UPDATE)
    async def child_started(self) -> str:
        """Answers once the guarded invocation exists, so `.start` returns a readable id."""
        await workflow.wait_condition(lambda: self._child_started)
        return workflow.info().workflow_id
