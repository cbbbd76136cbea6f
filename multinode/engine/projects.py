"""Projects and their versions: the registry workflow per project, what starts read of it (through
the project cache), deploys, upgrades and undeploys."""

from __future__ import annotations

from collections.abc import AsyncIterator

import temporalio.api.common.v1
import temporalio.api.workflowservice.v1
import temporalio.exceptions
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from multinode.contract import names
from multinode.contract.connection import ConnectionSettings
from multinode.contract.records import ProjectState, VersionManifest
from multinode.engine.attributes import KEY_PROJECT
from multinode.engine.failures import closing, no_project, translate_rpc_error, translated
from multinode.engine.project_cache import ProjectCache, ProjectSnapshot
from multinode.errors import MultinodeError, ProjectAlreadyExistsError, VersionDoesNotExistError

_OPEN = (None, WorkflowExecutionStatus.RUNNING)


class Projects:
    def __init__(self, client: Client, settings: ConnectionSettings) -> None:
        self._client = client
        self._settings = settings
        self._cache = ProjectCache(self._describe, self._follow)

    async def close(self) -> None:
        await self._cache.close()

    async def create(self, manifest: VersionManifest) -> None:
        self._cache.forget(manifest.project_name)
        try:
            await self._client.start_workflow(
                names.PROJECT_WORKFLOW,
                ProjectState(versions=[manifest]),
                id=names.project_workflow_id(manifest.project_name),
                task_queue=self._settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                memo={"latest": manifest},
                search_attributes=TypedSearchAttributes(
                    [SearchAttributePair(KEY_PROJECT, manifest.project_name)]
                ),
                static_summary=f"project {manifest.project_name}",
            )
        except temporalio.exceptions.WorkflowAlreadyStartedError:
            raise ProjectAlreadyExistsError(
                f"project {manifest.project_name!r} already exists; deploy a new version of it "
                f"with `multinode upgrade`"
            ) from None
        except RPCError as exc:
            raise translate_rpc_error(exc, "deploy") from None

    async def add_version(self, manifest: VersionManifest) -> None:
        handle = self._client.get_workflow_handle(names.project_workflow_id(manifest.project_name))
        self._cache.forget(manifest.project_name)
        try:
            await handle.execute_update(names.ADD_VERSION_UPDATE, manifest)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise no_project(manifest.project_name) from None
            raise translate_rpc_error(exc, "upgrade") from None
        except WorkflowUpdateFailedError as exc:
            raise MultinodeError(f"upgrade failed: {exc.cause}") from None

    async def latest_version(self, project_name: str) -> VersionManifest:
        """The version new invocations run; refused while the project is being undeployed.
        Read from the project cache, which follows the registry (no round trip per start)."""
        snapshot = await self._cache.snapshot(project_name)
        if snapshot.closing:
            raise closing(project_name)
        return snapshot.latest

    async def undeploy(self, project_name: str, *, finish: bool) -> None:
        """`finish=False` marks the project closing (no new version, starts refused);
        `finish=True` ends its workflow, which deletes it."""
        handle = self._client.get_workflow_handle(names.project_workflow_id(project_name))
        self._cache.forget(project_name)
        try:
            await handle.execute_update(names.UNDEPLOY_UPDATE, finish)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise no_project(project_name) from None
            raise translate_rpc_error(exc, "undeploy") from None
        except WorkflowUpdateFailedError as exc:
            raise MultinodeError(f"undeploy failed: {exc.cause}") from None

    async def state(self, project_name: str) -> tuple[VersionManifest, bool]:
        """The latest version and whether the project is being undeployed (closing), also while
        it closes; raises for a missing project. Always asks the engine."""
        snapshot = await self._describe(project_name)
        return snapshot.latest, snapshot.closing

    async def versions(self, project_name: str) -> list[VersionManifest]:
        """Every version, oldest first (a query: needs a worker)."""
        await self.state(project_name)  # raises for a missing project
        handle = self._client.get_workflow_handle(names.project_workflow_id(project_name))
        result: list[VersionManifest] = await translated(
            "listing versions",
            lambda: handle.query(names.VERSIONS_QUERY, result_type=list[VersionManifest]),
        )
        return result

    async def version(self, project_name: str, version_id: str, for_start: bool = False) -> VersionManifest:
        """One version; the latest without a worker, older ones by query. `for_start`: refused
        while the project is being undeployed."""
        if for_start:
            latest = await self.latest_version(project_name)
        else:
            latest, _ = await self.state(project_name)
        if latest.version_id == version_id:
            return latest
        handle = self._client.get_workflow_handle(names.project_workflow_id(project_name))
        found: VersionManifest | None = await translated(
            "reading the version",
            lambda: handle.query(names.VERSION_QUERY, version_id, result_type=VersionManifest),
        )
        if found is None:
            raise VersionDoesNotExistError(f"project {project_name!r} has no version {version_id!r}")
        return found

    async def _describe(self, project_name: str) -> ProjectSnapshot:
        handle = self._client.get_workflow_handle(names.project_workflow_id(project_name))
        try:
            description = await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise no_project(project_name) from None
            raise translate_rpc_error(exc, "reading the project") from None
        if description.status not in _OPEN:
            raise no_project(project_name)
        latest: VersionManifest = await description.memo_value(
            names.MEMO_LATEST, type_hint=VersionManifest
        )
        is_closing = await description.memo_value(names.MEMO_CLOSING, default=False)
        return ProjectSnapshot(
            latest=latest,
            closing=bool(is_closing),
            run_id=description.run_id or "",
            history_length=description.raw_description.workflow_execution_info.history_length,
        )

    async def _follow(self, project_name: str, run_id: str) -> AsyncIterator[int]:
        """Event ids of the registry run, long-polling for new ones. No retries: on any error
        the watch ends, and lookups describe the project until a new watch starts."""
        request = temporalio.api.workflowservice.v1.GetWorkflowExecutionHistoryRequest(
            namespace=self._client.namespace,
            execution=temporalio.api.common.v1.WorkflowExecution(
                workflow_id=names.project_workflow_id(project_name), run_id=run_id
            ),
            wait_new_event=True,
        )
        while True:
            response = await self._client.workflow_service.get_workflow_execution_history(request, retry=False)
            for event in response.history.events:
                yield event.event_id
            if not response.next_page_token:
                return  # the run has closed
            request.next_page_token = response.next_page_token
