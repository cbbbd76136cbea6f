"""`Engine`: the one object the SDK and the operator side hold, Multinode's operations over one
Temporal client. It composes the parts, each in its own module: `projects`, `invocations`,
`listing` (visibility reads), `services` (their control loops). The SDK sees it through `multinode._port.EnginePort`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from temporalio.client import Client

from multinode.contract.connection import ConnectionSettings
from multinode.contract.records import (
    AttemptProgress,
    CancelReply,
    InvocationInput,
    InvocationRecord,
    LockInput,
    VersionManifest,
)
from multinode.engine.invocations import Invocations
from multinode.engine.listing import Listing, invocations_query
from multinode.engine.projects import Projects
from multinode.engine.services import Services
from multinode.engine.views import InvocationRow, ProjectListing


class Engine:
    """Multinode's operations expressed as Temporal client calls; every failure arrives as a
    `multinode.errors` exception."""

    def __init__(self, client: Client, settings: ConnectionSettings) -> None:
        self.client = client
        self.settings = settings
        self.projects = Projects(client, settings)
        self.listing = Listing(client)
        self.invocations = Invocations(client, settings, self.listing.count)
        self.services = Services(client, settings)

    async def close(self) -> None:
        await self.projects.close()

    # ----- what the SDK needs (multinode._port.EnginePort) -------------------------------------

    async def latest_version(self, project_name: str) -> VersionManifest:
        return await self.projects.latest_version(project_name)

    async def version(self, project_name: str, version_id: str) -> VersionManifest:
        """A version to start invocations of: refused while the project is being undeployed."""
        return await self.projects.version(project_name, version_id, for_start=True)

    async def start_invocation(self, invocation: InvocationInput, summary: str) -> None:
        await self.invocations.start(invocation, summary)

    async def start_locked_invocation(self, lock: LockInput) -> None:
        await self.invocations.start_locked(lock)

    async def get_invocation(self, invocation_id: str) -> tuple[InvocationRecord, bool]:
        return await self.invocations.get(invocation_id)

    async def await_invocation(self, invocation_id: str) -> InvocationRecord:
        return await self.invocations.wait(invocation_id)

    async def cancel_invocation(self, invocation_id: str, wait_ack: bool = True) -> CancelReply:
        return await self.invocations.cancel(invocation_id, wait_ack)

    async def remove_invocation(self, invocation_id: str) -> None:
        await self.invocations.remove(invocation_id)

    def function_invocation_ids(self, project_name: str, function_name: str) -> AsyncIterator[str]:
        return self.listing.invocation_ids(invocations_query(project_name, function_name))

    async def function_invocations_page(
        self, project_name: str, function_name: str, before_id: str | None, limit: int
    ) -> tuple[list[str], bool]:
        return await self.listing.page(
            invocations_query(project_name, function_name),
            before_id,
            limit,
            invocations_query(project_name, function_name, archived=False),
        )

    # ----- what the operator side needs as well (multinode.admin) ------------------------------

    async def create_project(self, manifest: VersionManifest) -> None:
        await self.projects.create(manifest)

    async def add_version(self, manifest: VersionManifest) -> None:
        await self.projects.add_version(manifest)

    async def undeploy_project(self, project_name: str, *, finish: bool) -> None:
        await self.projects.undeploy(project_name, finish=finish)

    async def project_state(self, project_name: str) -> tuple[VersionManifest, bool]:
        return await self.projects.state(project_name)

    async def project_versions(self, project_name: str) -> list[VersionManifest]:
        return await self.projects.versions(project_name)

    async def project_version(self, project_name: str, version_id: str) -> VersionManifest:
        return await self.projects.version(project_name, version_id)

    async def project_listings(self) -> list[ProjectListing]:
        return await self.listing.projects()

    def list_invocation_ids(self, query: str) -> AsyncIterator[str]:
        return self.listing.invocation_ids(query)

    async def invocation_rows(self, query: str, limit: int) -> list[InvocationRow]:
        return await self.listing.invocation_rows(query, limit)

    async def attempt_progress(self, invocation_id: str) -> AttemptProgress | None:
        return await self.invocations.attempt_progress(invocation_id)
