"""The project workflow: one per deployed project, the registry of its versions.

The latest version sits in the memo, so starting an invocation reads it with one describe call
and no worker; older versions answer a query.
"""

from __future__ import annotations

from temporalio import workflow

from multinode import _names
from multinode._wire import ProjectState, VersionManifest


@workflow.defn(name=_names.PROJECT_WORKFLOW)
class ProjectWorkflow:
    @workflow.init
    def __init__(self, state: ProjectState) -> None:
        self._versions = list(state.versions)
        self._undeployed = False

    @workflow.run
    async def run(self, state: ProjectState) -> None:
        await workflow.wait_condition(
            lambda: self._undeployed or workflow.info().is_continue_as_new_suggested()
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        if not self._undeployed:
            workflow.continue_as_new(ProjectState(versions=self._versions))

    @workflow.update(name=_names.ADD_VERSION_UPDATE)
    def add_version(self, manifest: VersionManifest) -> None:
        self._versions.append(manifest)
        workflow.upsert_memo({"latest": manifest})

    @workflow.query(name=_names.VERSION_QUERY)
    def version(self, version_id: str) -> VersionManifest | None:
        for manifest in self._versions:
            if manifest.version_id == version_id:
                return manifest
        return None

    @workflow.query(name=_names.VERSIONS_QUERY)
    def versions(self) -> list[VersionManifest]:
        return list(self._versions)
