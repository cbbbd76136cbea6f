"""Reads of the engine's visibility store: counts, invocation ids (all of them, or a page of
the newest), invocation rows and deployed projects. No worker is needed for any of them."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import temporalio.api.workflowservice.v1
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError

from multinode.contract import names
from multinode.contract.ids import id_time_millis
from multinode.contract.invocation import InvocationStatus
from multinode.contract.records import VersionManifest
from multinode.engine.attributes import KEY_FUNCTION, KEY_PARENT, KEY_PROJECT, KEY_STATUS, KEY_VERSION
from multinode.engine.failures import translate_rpc_error, translated
from multinode.engine.page_window import FIRST_SPAN_SECONDS, VisibilityWindow, newest_page
from multinode.engine.views import InvocationRow, ProjectListing

# One visibility call of `.list` reads at most this many invocations.
LIST_LISTING_SIZE = 1000
# Invocations created this long inside the retention period are surely not deleted yet.
LIST_RETENTION_MARGIN_SECONDS = 3600.0
# The first page also shows invocations stamped by a client whose clock runs this far ahead.
LIST_CLOCK_SKEW_SECONDS = 3600.0

_OPEN = (None, WorkflowExecutionStatus.RUNNING)
# How a row reads when its workflow ended without publishing a final status.
_ENGINE_STATUS = {
    WorkflowExecutionStatus.TERMINATED: "TERMINATED",
    WorkflowExecutionStatus.FAILED: "FAILED",
    WorkflowExecutionStatus.TIMED_OUT: "TIMED_OUT",
    WorkflowExecutionStatus.CANCELED: "CANCELLED",
}


def invocations_query(project_name: str, function_name: str | None, archived: bool = True) -> str:
    """Invocations of the project (or of one function), with their archive records unless
    `archived=False`."""
    kinds = (
        f'(WorkflowType = "{names.INVOCATION_WORKFLOW}" OR WorkflowType = "{names.ARCHIVE_WORKFLOW}")'
        if archived else f'WorkflowType = "{names.INVOCATION_WORKFLOW}"'
    )
    query = f'{kinds} AND {names.SA_PROJECT} = "{project_name}"'
    if function_name is not None:
        query += f' AND {names.SA_FUNCTION} = "{function_name}"'
    return query


class Listing:
    def __init__(self, client: Client) -> None:
        self._client = client
        # Per query: the window span that found the last page, and where the first page ended.
        self._spans: dict[str, float] = {}
        self._first_page_ends: dict[str, float] = {}
        self._retention: float | None = None

    async def count(self, query: str) -> int:
        result = await translated("counting invocations", lambda: self._client.count_workflows(query))
        return int(result.count)

    async def invocation_ids(self, query: str) -> AsyncIterator[str]:
        """Invocation ids matching `query`, live or archived (an id can come twice).

        Visibility orders running executions first, then closed ones; one listing of both can
        skip an invocation that closes while it is being paged. Running ones are listed first,
        then closed ones: an invocation closing in between is in the second listing."""
        try:
            for status in ('ExecutionStatus = "Running"', 'ExecutionStatus != "Running"'):
                async for execution in self._client.list_workflows(f"({query}) AND {status}", page_size=1000):
                    yield execution.id.removeprefix(names.ARCHIVE_WORKFLOW_ID_PREFIX)
        except RPCError as exc:
            raise translate_rpc_error(exc, "listing invocations") from None

    async def page(
        self, query: str, before_id: str | None, limit: int, unarchived_query: str | None = None
    ) -> tuple[list[str], bool]:
        """The `limit` newest invocation ids below `before_id`, and whether older ones exist.
        Ids sort by creation time and never change, so pages stay exact while invocations
        finish (multinode.engine.page_window).

        `unarchived_query` is `query` without the archive records: a window of invocations
        created within the namespace's retention reads only that, since their workflows still
        exist and their archive copies would be listed twice."""
        upper = id_time_millis(before_id) / 1000 + 0.001 if before_id else time.time() + LIST_CLOCK_SKEW_SECONDS
        retention = await self._retention_seconds() if unarchived_query else 0.0
        all_kept_since = time.time() - retention + LIST_RETENTION_MARGIN_SECONDS if retention else math.inf

        def since(lower: float) -> str:
            base = unarchived_query if unarchived_query and lower >= all_kept_since else query
            return f"{base} AND {names.SA_CREATED} < {_rfc3339(upper)} AND {names.SA_CREATED} >= {_rfc3339(lower)}"

        async def paged(lower: float) -> list[str]:
            return [i async for i in self.invocation_ids(since(lower))]

        reads = VisibilityWindow(
            listing=lambda lower: self._one_listing(since(lower)),
            paged_listing=paged,
            count_since=lambda lower: self.count(since(lower)),
            count_before=lambda lower: self.count(f"{query} AND {names.SA_CREATED} < {_rfc3339(lower)}"),
        )
        # Windows reach back from now, not from the first page's upper end, which sits in the
        # future to keep invocations stamped by a client whose clock runs ahead.
        anchor = min(upper, time.time())
        # The first page's window also reaches back to the id that followed it last time.
        reach_back_to = self._first_page_ends.get(query) if before_id is None else None
        ids, next_id, span = await newest_page(
            reads, anchor, self._spans.get(query, FIRST_SPAN_SECONDS), before_id, limit, reach_back_to
        )
        self._spans[query] = span
        if before_id is None and next_id is not None:
            self._first_page_ends[query] = id_time_millis(next_id) / 1000
        return ids, next_id is not None

    async def _retention_seconds(self) -> float:
        """The namespace's retention (0 when unknown), read once."""
        if self._retention is None:
            request = temporalio.api.workflowservice.v1.DescribeNamespaceRequest(namespace=self._client.namespace)
            try:
                response = await self._client.workflow_service.describe_namespace(request)
                self._retention = response.config.workflow_execution_retention_ttl.ToTimedelta().total_seconds()
            except RPCError:
                return 0.0
        return self._retention

    async def _one_listing(self, query: str) -> list[str] | None:
        """Every invocation id matching `query` from one visibility call (one consistent
        snapshot), or None when there are more than one call returns."""
        request = temporalio.api.workflowservice.v1.ListWorkflowExecutionsRequest(
            namespace=self._client.namespace, query=query, page_size=LIST_LISTING_SIZE,
        )
        response = await translated(
            "listing invocations",
            lambda: self._client.workflow_service.list_workflow_executions(request, retry=True),
        )
        if response.next_page_token:
            return None
        return [e.execution.workflow_id.removeprefix(names.ARCHIVE_WORKFLOW_ID_PREFIX) for e in response.executions]

    async def invocation_rows(self, query: str, limit: int) -> list[InvocationRow]:
        """The `limit` newest invocations matching a visibility query, newest first.

        Visibility has no ORDER BY: running ones come newest first, closed ones by close time,
        so both are read separately and merged by id (ids sort by creation time)."""
        rows: list[InvocationRow] = []

        async def collect(status_clause: str) -> None:
            async for execution in self._client.list_workflows(
                f"{query} AND {status_clause}", limit=limit, page_size=min(max(limit, 1), 1000)
            ):
                rows.append(_invocation_row(execution))

        await translated("listing invocations", lambda: collect('ExecutionStatus = "Running"'))
        await translated("listing invocations", lambda: collect('ExecutionStatus != "Running"'))
        rows.sort(key=lambda r: r.invocation_id, reverse=True)
        return rows[:limit]

    async def projects(self) -> list[ProjectListing]:
        """Every deployed project with its latest version and creation time."""
        query = f'WorkflowType = "{names.PROJECT_WORKFLOW}" AND ExecutionStatus = "Running"'
        found: list[ProjectListing] = []

        async def collect() -> None:
            async for execution in self._client.list_workflows(query):
                latest: VersionManifest = await execution.memo_value(
                    names.MEMO_LATEST, type_hint=VersionManifest
                )
                created = await execution.memo_value(names.MEMO_CREATED_AT, default=None)
                closing = await execution.memo_value(names.MEMO_CLOSING, default=False)
                created_at = (
                    datetime.fromtimestamp(float(created), tz=UTC)
                    if isinstance(created, (int, float))
                    else _aware(execution.start_time)
                )
                found.append(ProjectListing(latest.project_name, latest, created_at, bool(closing)))

        await translated("listing projects", collect)
        return sorted(found, key=lambda p: p.project_name)


def _rfc3339(epoch_seconds: float) -> str:
    stamp = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    return '"' + stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ") + '"'


def _aware(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.fromtimestamp(0, tz=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _invocation_row(execution: Any) -> InvocationRow:
    attributes = execution.typed_search_attributes

    def attribute(key: SearchAttributeKey[str]) -> str | None:
        value = attributes.get(key)
        return str(value) if value else None

    # Every invocation and archive record is started with project, function and version (the
    # listing queries select on the project): "" only for a workflow started by other means.
    status = attribute(KEY_STATUS) or InvocationStatus.PENDING.value
    try:
        final = InvocationStatus(status).is_final
    except ValueError:
        final = False
    if execution.status not in _OPEN and not final:
        # The workflow ended without publishing a final status (terminated in the engine).
        status = _ENGINE_STATUS.get(execution.status, status)
    return InvocationRow(
        invocation_id=execution.id,
        project_name=attribute(KEY_PROJECT) or "",
        function_name=attribute(KEY_FUNCTION) or "",
        version_id=attribute(KEY_VERSION) or "",
        status=status,
        parent_invocation_id=attribute(KEY_PARENT),
        created_at=_aware(execution.start_time) if execution.start_time else None,
        ended_at=_aware(execution.close_time) if execution.close_time else None,
    )
