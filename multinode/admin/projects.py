"""Projects and their versions: `deploy` a tasks folder as a new project, `upgrade` it to a new
version, `undeploy` it (cancelling what is in flight), and `list_projects`. The registry of
projects and versions lives in the engine: these need only the control plane's address."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from multinode._client import Client, default_client
from multinode.admin import deployment
from multinode.contract.connection import ConnectionSettings
from multinode.contract.ids import check_name
from multinode.contract.records import VersionManifest
from multinode.engine.views import ProjectListing
from multinode.errors import MultinodeError, ProjectDoesNotExistError

if TYPE_CHECKING:
    from multinode.engine.engine import Engine

T = TypeVar("T")

# Calls that a worker must answer (updates, queries): bounded, so a control plane without a
# running worker gives a clear error instead of a hang.
WORKER_TIMEOUT_SECONDS = 20.0
# How long `undeploy` waits for cancelled invocations to stop (their grace period included).
UNDEPLOY_WAIT_SECONDS = 150.0
# Visibility lags starts by tens of milliseconds: undeploy lists again after this pause.
VISIBILITY_LAG_SECONDS = 0.3


async def worker_bound(call: Awaitable[T], what: str, settings: ConnectionSettings) -> T:
    """`call`, which a worker must answer, given up after WORKER_TIMEOUT_SECONDS with a line
    that says which worker should be running. Also used by `inspection`."""
    try:
        return await asyncio.wait_for(call, timeout=WORKER_TIMEOUT_SECONDS)
    except TimeoutError:
        raise MultinodeError(
            f"{what}: no worker answered within {WORKER_TIMEOUT_SECONDS:g} s; is `multinode dev` "
            f"(or `multinode worker`, task queue {settings.task_queue!r}) running?"
        ) from None


def _refuse_if_closing(project_name: str, client: Client) -> None:
    check_name(project_name, "project name")

    async def check() -> None:
        engine = await client.engine()
        try:
            _, closing = await engine.project_state(project_name)
        except ProjectDoesNotExistError:
            return
        if closing:
            raise MultinodeError(
                f"project {project_name!r} is being undeployed; finish that first with "
                f"`multinode undeploy --project-name={project_name}`"
            )

    client.run(check())


def deploy(folder: Path | str, project_name: str, *, client: Client | None = None) -> VersionManifest:
    """Deploy a tasks folder as a new project (refuses an existing one: use `upgrade`)."""
    client = client or default_client()
    _refuse_if_closing(project_name, client)
    return deployment.deploy(folder, project_name, deployment.CREATE, client=client)


def upgrade(
    folder: Path | str, project_name: str, *, create: bool = False, client: Client | None = None
) -> VersionManifest:
    """Deploy a new version of an existing project (or create it, with `create=True`).
    In-flight invocations keep the version they started with."""
    client = client or default_client()
    _refuse_if_closing(project_name, client)
    mode = deployment.UPGRADE_OR_CREATE if create else deployment.UPGRADE
    return deployment.deploy(folder, project_name, mode, client=client)


@dataclass(frozen=True)
class UndeployResult:
    project_name: str
    cancelled: list[str]  # the in-flight invocations it cancelled
    still_stopping: list[str]  # those not ended when the wait ran out (they stop on their own)
    services_stopped: list[str] = field(default_factory=list)  # the services it stopped
    services_still_stopping: list[str] = field(default_factory=list)  # not stopped when the wait ran out


def in_flight_invocations(project_name: str, *, client: Client | None = None) -> list[str]:
    """Ids of the project's invocations whose workflow is still open."""
    check_name(project_name, "project name")
    client = client or default_client()

    async def collect() -> list[str]:
        engine = await client.engine()
        await engine.project_state(project_name)  # raises for a missing project
        return [i async for i in engine.list_invocation_ids(_open_query(project_name))]

    return client.run(collect())


def _open_query(project_name: str) -> str:
    from multinode.engine.listing import invocations_query

    return invocations_query(project_name, None) + ' AND ExecutionStatus = "Running"'


def undeploy(
    project_name: str,
    *,
    wait_seconds: float = UNDEPLOY_WAIT_SECONDS,
    client: Client | None = None,
    on_cancel: Callable[[str], None] | None = None,
) -> UndeployResult:
    """Delete a project: mark it closing (no new versions or starts), cancel every in-flight
    invocation and wait (up to `wait_seconds`) for them to stop, then end its registry.
    Running it again after an interruption finishes the job."""
    check_name(project_name, "project name")
    client = client or default_client()

    async def run() -> UndeployResult:
        engine = await client.engine()
        settings = client.settings
        await worker_bound(engine.undeploy_project(project_name, finish=False), "undeploy", settings)
        # Services first: they start invocations, and their ports should close with the project.
        latest, _ = await engine.project_state(project_name)
        services = [spec.name for spec in latest.services]
        still_services = await engine.services.stop(project_name, services, wait_seconds)
        await asyncio.sleep(VISIBILITY_LAG_SECONDS)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        seen: list[str] = []
        waits: dict[str, asyncio.Task[Any]] = {}
        query = _open_query(project_name)
        limiter = asyncio.Semaphore(32)

        async def cancel(invocation_id: str) -> None:
            async with limiter:
                try:
                    await engine.cancel_invocation(invocation_id)
                except MultinodeError:
                    return  # ended meanwhile, or gone
            if on_cancel is not None:
                on_cancel(invocation_id)

        while True:
            new = [i async for i in engine.list_invocation_ids(query) if i not in waits]
            if not new:
                break
            await asyncio.gather(*(cancel(i) for i in new))
            for invocation_id in new:
                seen.append(invocation_id)
                waits[invocation_id] = asyncio.ensure_future(_ended(engine, invocation_id))
            remaining = deadline - loop.time()
            if remaining > 0:
                await asyncio.wait(list(waits.values()), timeout=remaining)
            else:
                break
        still = [i for i, task in waits.items() if not task.done()]
        for task in waits.values():
            task.cancel()
        await worker_bound(engine.undeploy_project(project_name, finish=True), "undeploy", settings)
        return UndeployResult(project_name, seen, still, services, still_services)

    return client.run(run())


async def _ended(engine: Engine, invocation_id: str) -> None:
    try:
        await engine.await_invocation(invocation_id)
    except MultinodeError:
        pass


def list_projects(*, client: Client | None = None) -> list[ProjectListing]:
    """Every deployed project with its latest version and creation time, by name."""
    client = client or default_client()

    async def collect() -> list[ProjectListing]:
        engine = await client.engine()
        return await engine.project_listings()

    return client.run(collect())
