"""Project administration and inspection: what the CLI does, as SDK functions.

Credentials (`login`, `logout`), projects and versions (`deploy`, `upgrade`, `undeploy`,
`list_projects`), inspection (`describe_project`, `describe_version`, `describe_function`,
`describe_invocation`), logs (`read_logs`) and Web UI links. Everything needs only the control
plane's address (and key): the registry of projects and versions lives in the engine.

Times are timezone-aware UTC datetimes; `format_utc` and `to_json` render them marked as UTC.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from multinode._client import Client, default_client, set_default_client
from multinode._invocation import ErrorDetails, utc
from multinode.admin import logs as _logs
from multinode.admin.profile import remove_profile, resolve_ui_url, save_profile
from multinode.contract import names
from multinode.contract.connection import (
    ENV_API_URL,
    ConnectionSettings,
    check_api_url,
    profile_path,
)
from multinode.contract.ids import check_invocation_id, check_name, check_version_id
from multinode.contract.options import FunctionOptions
from multinode.contract.records import FunctionSpec, VersionManifest
from multinode.engine.views import InvocationRow, ProjectListing
from multinode.errors import (
    FunctionDoesNotExistError,
    InvocationDoesNotExistError,
    MultinodeError,
    ProjectDoesNotExistError,
)

if TYPE_CHECKING:
    from multinode.contract.records import ErrorInfo, InvocationRecord
    from multinode.engine.engine import Engine

T = TypeVar("T")

# Calls that a worker must answer (updates, queries): bounded, so a control plane without a
# running worker gives a clear error instead of a hang.
WORKER_TIMEOUT_SECONDS = 20.0
# How long `undeploy` waits for cancelled invocations to stop (their grace period included).
UNDEPLOY_WAIT_SECONDS = 150.0
# Visibility lags starts by tens of milliseconds: undeploy lists again after this pause.
VISIBILITY_LAG_SECONDS = 0.3
RECENT_INVOCATIONS = 20


def _client(client: Client | None) -> Client:
    return client or default_client()


async def _worker_bound(call: Awaitable[T], what: str, settings: ConnectionSettings) -> T:
    try:
        return await asyncio.wait_for(call, timeout=WORKER_TIMEOUT_SECONDS)
    except TimeoutError:
        raise MultinodeError(
            f"{what}: no worker answered within {WORKER_TIMEOUT_SECONDS:g} s; is `multinode dev` "
            f"(or `multinode worker`, task queue {settings.task_queue!r}) running?"
        ) from None


# ----- credentials ------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginResult:
    profile_path: Path
    api_url: str
    uses_tls: bool
    namespace: str
    server_version: str | None  # None when the check was skipped
    overridden_by_environment: bool  # MULTINODE_API_URL is set and wins over the profile


def login(
    api_url: str,
    api_key: str | None = None,
    *,
    namespace: str | None = None,
    task_queue: str | None = None,
    ui_url: str | None = None,
    check: bool = True,
    timeout: float = 10.0,
) -> LoginResult:
    """Check the credentials by connecting (TLS when a key is given), then store them in the
    profile, readable only by the user. Nothing is stored when the check fails."""
    settings = ConnectionSettings(
        api_url=check_api_url(api_url.strip()),
        api_key=(api_key or "").strip() or None,
        namespace=namespace or names.DEFAULT_NAMESPACE,
        task_queue=task_queue or names.DEFAULT_TASK_QUEUE,
        source="login",
    )
    server_version = None
    if check:
        from multinode.engine import connection as _engine

        probe_client = Client(settings)
        try:
            server_version = probe_client.run(_engine.probe(settings, timeout))
        finally:
            probe_client.close()
    path = save_profile(
        {
            "api_url": settings.api_url,
            "api_key": settings.api_key,
            "namespace": namespace,
            "task_queue": task_queue,
            "ui_url": ui_url,
        }
    )
    set_default_client(None)  # the next call resolves the new settings
    return LoginResult(
        profile_path=path,
        api_url=settings.api_url,
        uses_tls=settings.uses_tls,
        namespace=settings.namespace,
        server_version=server_version,
        overridden_by_environment=bool(os.environ.get(ENV_API_URL)),
    )


def logout() -> bool:
    """Forget the stored credentials; False when none were stored."""
    removed = remove_profile()
    set_default_client(None)
    return removed


def stored_profile_path() -> Path:
    return profile_path()


# ----- projects and versions --------------------------------------------------------------


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
    from multinode.admin.deploy import CREATE
    from multinode.admin.deploy import deploy as run_deploy

    client = _client(client)
    _refuse_if_closing(project_name, client)
    return run_deploy(folder, project_name, CREATE, client=client)


def upgrade(
    folder: Path | str, project_name: str, *, create: bool = False, client: Client | None = None
) -> VersionManifest:
    """Deploy a new version of an existing project (or create it, with `create=True`).
    In-flight invocations keep the version they started with."""
    from multinode.admin.deploy import UPGRADE, UPGRADE_OR_CREATE
    from multinode.admin.deploy import deploy as run_deploy

    client = _client(client)
    _refuse_if_closing(project_name, client)
    return run_deploy(folder, project_name, UPGRADE_OR_CREATE if create else UPGRADE, client=client)


@dataclass(frozen=True)
class UndeployResult:
    project_name: str
    cancelled: list[str]  # the in-flight invocations it cancelled
    still_stopping: list[str]  # those not ended when the wait ran out (they stop on their own)


def in_flight_invocations(project_name: str, *, client: Client | None = None) -> list[str]:
    """Ids of the project's invocations whose workflow is still open."""
    check_name(project_name, "project name")
    client = _client(client)

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
    client = _client(client)

    async def run() -> UndeployResult:
        engine = await client.engine()
        settings = client.settings
        await _worker_bound(engine.undeploy_project(project_name, finish=False), "undeploy", settings)
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
        await _worker_bound(engine.undeploy_project(project_name, finish=True), "undeploy", settings)
        return UndeployResult(project_name, seen, still)

    return client.run(run())


async def _ended(engine: Engine, invocation_id: str) -> None:
    try:
        await engine.await_invocation(invocation_id)
    except MultinodeError:
        pass


def list_projects(*, client: Client | None = None) -> list[ProjectListing]:
    """Every deployed project with its latest version and creation time, by name."""
    client = _client(client)

    async def collect() -> list[ProjectListing]:
        engine = await client.engine()
        return await engine.project_listings()

    return client.run(collect())


# ----- inspection -------------------------------------------------------------------------


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
class AttemptView:
    number: int
    outcome: str  # succeeded / failed / cancelled / timed_out, or "running" / "preparing"
    started_at: datetime | None
    ended_at: datetime | None
    exit_code: int | None = None
    error: ErrorDetails | None = None


@dataclass(frozen=True)
class StatusChange:
    status: str
    at: datetime


@dataclass(frozen=True)
class InvocationDescription:
    invocation_id: str
    project_name: str
    function_name: str
    version_id: str
    status: str
    terminated: bool
    created_at: datetime
    ended_at: datetime | None
    parent_invocation_id: str | None
    children: list[InvocationRow]
    attempts: list[AttemptView]
    num_failed_attempts: int
    error: ErrorDetails | None
    status_history: list[StatusChange] = field(default_factory=list)
    web_ui_url: str = ""


def describe_project(project_name: str, *, client: Client | None = None) -> ProjectDescription:
    check_name(project_name, "project name")
    client = _client(client)

    async def describe() -> ProjectDescription:
        engine = await client.engine()
        _, closing = await engine.project_state(project_name)
        versions = await _worker_bound(
            engine.project_versions(project_name), "listing the versions", client.settings
        )
        return ProjectDescription(
            project_name=project_name,
            created_at=_utc(versions[0].created_at),
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
    client = _client(client)

    async def describe() -> VersionManifest:
        engine = await client.engine()
        if version_id is None:
            latest, _ = await engine.project_state(project_name)
            return latest
        return await _worker_bound(
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
    client = _client(client)
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
    client = _client(client)

    async def describe() -> InvocationDescription:
        engine = await client.engine()
        record, terminated = await engine.get_invocation(invocation_id)
        _check_owner(record, project_name, function_name)
        progress = None if terminated else await engine.attempt_progress(invocation_id)
        children = await engine.invocation_rows(
            f'WorkflowType = "{names.INVOCATION_WORKFLOW}" AND '
            f'{names.SA_PARENT} = "{invocation_id}"',
            limit=1000,
        )
        attempts = [
            AttemptView(
                number=a.number,
                outcome=a.outcome,
                started_at=utc(a.started_at),
                ended_at=utc(a.ended_at),
                exit_code=a.exit_code,
                error=_details(a.error),
            )
            for a in record.attempts
        ]
        if progress is not None and progress.attempt_number not in {a.number for a in attempts}:
            attempts.append(
                AttemptView(
                    number=progress.attempt_number,
                    outcome=progress.phase,
                    started_at=utc(progress.started_at),
                    ended_at=None,
                )
            )
        return InvocationDescription(
            invocation_id=record.invocation_id,
            project_name=record.project_name,
            function_name=record.function_name,
            version_id=record.version_id,
            status=record.status,
            terminated=terminated,
            created_at=_utc(record.created_at),
            ended_at=utc(record.ended_at),
            parent_invocation_id=record.parent_invocation_id,
            children=children,
            attempts=attempts,
            num_failed_attempts=record.num_failed_attempts,
            error=_details(record.error),
            status_history=[StatusChange(t.status, _utc(t.at)) for t in record.transitions],
            web_ui_url=invocation_url(record.invocation_id, client.settings),
        )

    return client.run(describe())


def _check_owner(record: InvocationRecord, project_name: str | None, function_name: str | None) -> None:
    if (project_name is not None and record.project_name != project_name) or (
        function_name is not None and record.function_name != function_name
    ):
        where = ".".join(n for n in (project_name, function_name) if n)
        raise InvocationDoesNotExistError(
            f"{record.invocation_id} is not an invocation of {where} "
            f"(it belongs to {record.project_name}.{record.function_name})"
        )


def _details(error: ErrorInfo | None) -> ErrorDetails | None:
    if error is None:
        return None
    return ErrorDetails(type=error.type, message=error.message, traceback=error.traceback)


def _utc(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, tz=UTC)


# ----- logs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogStream:
    invocation_id: str
    attempt: int
    source: str  # where the lines come from
    chunks: Iterator[str]  # the text, as written; ends with the attempt when following


# How often a follower asks the engine whether the attempt has ended.
FOLLOW_CHECK_SECONDS = 0.5


def read_logs(
    invocation_id: str,
    *,
    project_name: str | None = None,
    function_name: str | None = None,
    attempt: int | None = None,
    follow: bool = False,
    client: Client | None = None,
) -> LogStream:
    """Everything an attempt (the latest by default) wrote to stdout and stderr. With
    `follow`, the stream goes on with new text until the attempt ends."""
    check_invocation_id(invocation_id)
    if attempt is not None and attempt < 1:
        raise MultinodeError(f"attempt numbers start at 1 (got {attempt})")
    client = _client(client)

    async def state() -> tuple[InvocationRecord, bool, int | None]:
        engine = await client.engine()
        record, terminated = await engine.get_invocation(invocation_id)
        progress = None if terminated else await engine.attempt_progress(invocation_id)
        return record, terminated, progress.attempt_number if progress else None

    record, terminated, running = client.run(state())
    _check_owner(record, project_name, function_name)
    numbers = {a.number for a in record.attempts} | ({running} if running else set())
    latest = max(numbers) if numbers else None
    if attempt is None:
        if latest is None and (terminated or not follow):
            raise MultinodeError(
                f"invocation {invocation_id} has not run an attempt yet (status {record.status})"
                + ("" if terminated else "; wait for its first line with --follow")
            )
        attempt = latest or 1
    elif attempt not in numbers and (terminated or not follow or attempt < (latest or 0)):
        raise MultinodeError(
            f"invocation {invocation_id} has no attempt {attempt} (it has run "
            f"{len(numbers)} attempt{'s' if len(numbers) != 1 else ''})"
        )
    number = attempt
    source = _logs.find_log_source(invocation_id, number)

    def attempt_ended() -> bool:
        async def ended() -> bool:
            engine = await client.engine()
            current, closed = await engine.get_invocation(invocation_id)
            return closed or number in {a.number for a in current.attempts}

        return client.run(ended())

    finished = terminated or number in {a.number for a in record.attempts}
    if not follow or finished:
        if not source.exists():
            raise MultinodeError(
                f"no logs found for attempt {number} of {invocation_id} (looked at "
                f"{source.description}; logs are kept where the attempt ran)"
            )
        chunks = source.chunks(follow=False, attempt_ended=lambda: True)
    else:
        chunks = source.chunks(
            follow=True, attempt_ended=_logs.throttled(attempt_ended, FOLLOW_CHECK_SECONDS)
        )
    return LogStream(invocation_id, number, source.description, chunks)


# ----- Web UI -----------------------------------------------------------------------------


def invocation_url(invocation_id: str, settings: ConnectionSettings | None = None) -> str:
    """The invocation's page in the Temporal Web UI (its workflow is the invocation)."""
    namespace = (settings or default_client().settings).namespace
    return f"{resolve_ui_url()}/namespaces/{quote(namespace, safe='')}/workflows/{quote(invocation_id, safe='')}"


def list_url(query: str, settings: ConnectionSettings | None = None) -> str:
    """The Web UI's workflow list filtered by a visibility query (search attributes)."""
    namespace = (settings or default_client().settings).namespace
    return f"{resolve_ui_url()}/namespaces/{quote(namespace, safe='')}/workflows?query={quote(query, safe='')}"


# ----- rendering --------------------------------------------------------------------------


def format_utc(moment: datetime | None) -> str:
    """`2025-01-31 12:00:00 UTC`, or `-`."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso_utc(moment: datetime | None) -> str | None:
    """ISO 8601 with a `Z`: `2025-01-31T12:00:00.123Z`."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def options_json(options: FunctionOptions) -> dict[str, Any]:
    return {
        "cpu": options.cpu,
        "memory": options.memory,
        "memory_mib": options.memory_mib,
        "timeout_seconds": options.timeout_seconds,
        "max_concurrency": options.max_concurrency,
        "max_retries": options.max_retries,
    }


def to_json(value: Any) -> Any:
    """A JSON-ready form of what this module returns: times as ISO 8601 UTC (`Z`)."""
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, VersionManifest):
        return {
            "project_name": value.project_name,
            "version_id": value.version_id,
            "created_at": iso_utc(_utc(value.created_at)),
            "package_sha256": value.package.sha256,
            "requirements_sha256": value.requirements_sha256,
            "functions": [to_json(spec) for spec in value.functions],
        }
    if isinstance(value, FunctionSpec):
        return {"name": value.name, "is_generator": value.is_generator, **options_json(value.options)}
    if isinstance(value, ProjectListing):
        return {
            "project_name": value.project_name,
            "latest_version_id": value.latest_version_id,
            "latest_version_created_at": iso_utc(_utc(value.latest_version.created_at)),
            "created_at": iso_utc(value.created_at),
            "closing": value.closing,
            "functions": [spec.name for spec in value.latest_version.functions],
        }
    if isinstance(value, ProjectDescription):
        return {
            "project_name": value.project_name,
            "created_at": iso_utc(value.created_at),
            "closing": value.closing,
            "latest_version_id": value.latest.version_id,
            "versions": [to_json(v) for v in value.versions],
            "web_ui_url": value.web_ui_url,
        }
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    return value
