"""Inspection: what `multinode describe` shows of a project, a version, a function and one
invocation. An invocation is described as the public `multinode.Invocation` (the one mapping
from the engine's record, in `multinode._invocation`) plus what only an operator sees: its
children, the attempt running now and its page in the Web UI."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from multinode._client import Client, default_client
from multinode._invocation import (
    Attempt,
    Invocation,
    attempt_from_record,
    check_owner,
    invocation_from_record,
    utc,
)
from multinode.admin.links import invocation_url, list_url
from multinode.admin.projects import worker_bound
from multinode.contract import names
from multinode.contract.ids import check_invocation_id, check_name, check_version_id
from multinode.contract.records import FunctionSpec, VersionManifest
from multinode.engine.views import InvocationRow
from multinode.errors import FunctionDoesNotExistError, MultinodeError

RECENT_INVOCATIONS = 20
# Children listed by `describe_invocation`; a fan-out wider than this shows its newest.
CHILDREN_LIMIT = 1000


@dataclass(frozen=True)
class ProjectDescription:
    project_name: str
    created_at: datetime
    closing: bool
    versions: list[VersionManifest]  # oldest first; the last one is the latest
    web_ui_url: str  # the project's invocations in the Web UI

    @property
    def latest(self) -> VersionManifest:
        return self.versions[-1]


@dataclass(frozen=True)
class FunctionDescription:
    project_name: str
    version: VersionManifest
    function: FunctionSpec
    invocations: list[InvocationRow]  # the most recent, newest first
    web_ui_url: str


@dataclass(frozen=True)
class InvocationDescription:
    invocation: Invocation[Any]
    children: list[InvocationRow]
    running_attempt: Attempt | None  # from the worker's heartbeat: outcome "preparing" / "running"
    web_ui_url: str

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        """Every attempt, the running one last."""
        running = (self.running_attempt,) if self.running_attempt is not None else ()
        return self.invocation.attempts + running


def describe_project(project_name: str, *, client: Client | None = None) -> ProjectDescription:
    check_name(project_name, "project name")
    client = client or default_client()

    async def describe() -> ProjectDescription:
        engine = await client.engine()
        _, closing = await engine.project_state(project_name)
        versions = await worker_bound(
            engine.project_versions(project_name), "listing the versions", client.settings
        )
        created_at = utc(versions[0].created_at)
        assert created_at is not None
        return ProjectDescription(
            project_name=project_name,
            created_at=created_at,
            closing=closing,
            versions=versions,
            web_ui_url=list_url(f'{names.SA_PROJECT} = "{project_name}"', client.settings),
        )

    return client.run(describe())


def describe_version(
    project_name: str, version_id: str | None = None, *, client: Client | None = None
) -> VersionManifest:
    """A version (the latest when `version_id` is None) with its functions and their options."""
    check_name(project_name, "project name")
    if version_id is not None:
        check_version_id(version_id)
    client = client or default_client()

    async def describe() -> VersionManifest:
        engine = await client.engine()
        if version_id is None:
            latest, _ = await engine.project_state(project_name)
            return latest
        return await worker_bound(
            engine.project_version(project_name, version_id), "reading the version", client.settings
        )

    return client.run(describe())


def describe_function(
    project_name: str,
    function_name: str,
    *,
    version_id: str | None = None,
    limit: int = RECENT_INVOCATIONS,
    client: Client | None = None,
) -> FunctionDescription:
    """A function's options (in `version_id`, else the latest version) and its most recent
    invocations (of that version only, when `version_id` is given) with their status."""
    check_name(function_name, "function name")
    if limit < 1:
        raise MultinodeError("limit must be at least 1")
    version = describe_version(project_name, version_id, client=client)
    spec = version.function(function_name)
    if spec is None:
        raise FunctionDoesNotExistError(
            f"version {version.version_id} of project {project_name!r} has no function "
            f"{function_name!r}; it has: " + ", ".join(sorted(f.name for f in version.functions))
        )
    client = client or default_client()
    from multinode.engine.listing import invocations_query

    query = invocations_query(project_name, function_name)
    filters = f'{names.SA_PROJECT} = "{project_name}" AND {names.SA_FUNCTION} = "{function_name}"'
    if version_id is not None:
        query += f' AND {names.SA_VERSION} = "{version_id}"'
        filters += f' AND {names.SA_VERSION} = "{version_id}"'

    async def rows() -> list[InvocationRow]:
        engine = await client.engine()
        return await engine.invocation_rows(query, limit)

    return FunctionDescription(
        project_name=project_name,
        version=version,
        function=spec,
        invocations=client.run(rows()),
        web_ui_url=list_url(filters, client.settings),
    )


def describe_invocation(
    project_name: str | None,
    function_name: str | None,
    invocation_id: str,
    *,
    client: Client | None = None,
) -> InvocationDescription:
    """One invocation: status, parent and children, every attempt with its times, outcome and
    error, and its page in the Web UI. Project and function, when given, must match."""
    check_invocation_id(invocation_id)
    client = client or default_client()

    async def describe() -> InvocationDescription:
        engine = await client.engine()
        record, terminated = await engine.get_invocation(invocation_id)
        check_owner(record, project_name, function_name)
        progress = None if terminated else await engine.attempt_progress(invocation_id)
        children = await engine.invocation_rows(
            f'WorkflowType = "{names.INVOCATION_WORKFLOW}" AND '
            f'{names.SA_PARENT} = "{invocation_id}"',
            limit=CHILDREN_LIMIT,
        )
        running = None
        if progress is not None and progress.attempt_number not in {a.number for a in record.attempts}:
            running = attempt_from_record(progress.attempt_number, progress.phase, progress.started_at, None,
                                          logs_at=progress.logs_at)
        return InvocationDescription(
            invocation=invocation_from_record(record, terminated),
            children=children,
            running_attempt=running,
            web_ui_url=invocation_url(record.invocation_id, client.settings),
        )

    return client.run(describe())
