"""The project workflow: one per deployed project, the registry of its versions.

The latest version sits in the memo, so starting an invocation reads it with one describe call
and no worker; older versions answer a query. The memo also carries the project's creation time
(for `multinode list`) and, while it is being undeployed, `closing`.

Undeploy is two calls of the `undeploy` update: `finish=False` marks the project closing (no new
version is accepted, and starts are refused), the caller then cancels the in-flight invocations,
and `finish=True` completes the workflow, which deletes the project.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from multinode.contract import names
from multinode.contract.records import ProjectState, VersionManifest

# workflow.patched id: histories written before the creation time was kept in the memo replay
# without the memo upsert.
_CREATED_AT_PATCH = "memo-created-at"


@workflow.defn(name=names.PROJECT_WORKFLOW)
class ProjectWorkflow:
    @workflow.init
    def __init__(self, state: ProjectState) -> None:
        self._versions = list(state.versions)
        self._undeployed = False
        self._closing = False

    @workflow.run
    async def run(self, state: ProjectState) -> None:
        if self._versions and workflow.patched(_CREATED_AT_PATCH):
            workflow.upsert_memo({names.MEMO_CREATED_AT: self._versions[0].created_at})
        # No continue-as-new while closing: the closing mark is not part of ProjectState, and
        # closing lasts only as long as the in-flight invocations take to stop.
        await workflow.wait_condition(
            lambda: self._undeployed
            or (not self._closing and workflow.info().is_continue_as_new_suggested())
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        if not self._undeployed:
            workflow.continue_as_new(ProjectState(versions=self._versions))

    @workflow.update(name=names.ADD_VERSION_UPDATE)
    def add_version(self, manifest: VersionManifest) -> None:
        self._versions.append(manifest)
        workflow.upsert_memo({names.MEMO_LATEST: manifest})

    @add_version.validator
    def _validate_add_version(self, manifest: VersionManifest) -> None:
        if self._closing:
            raise ApplicationError(
                f"project {manifest.project_name!r} is being undeployed", type="ProjectClosing"
            )

    @workflow.update(name=names.UNDEPLOY_UPDATE)
    def undeploy(self, finish: bool) -> None:
        if not self._closing:
            self._closing = True
            workflow.upsert_memo({names.MEMO_CLOSING: True})
        if finish:
            self._undeployed = True

    @workflow.query(name=names.VERSION_QUERY)
    def version(self, version_id: str) -> VersionManifest | None:
        for manifest in self._versions:
            if manifest.version_id == version_id:
                return manifest
        return None

    @workflow.query(name=names.VERSIONS_QUERY)
    def versions(self) -> list[VersionManifest]:
        return list(self._versions)
