"""Where Temporal's failures become `multinode.errors`: every engine call that can fail goes
through one of these, so no RPCError reaches the SDK's callers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from temporalio.service import RPCError, RPCStatusCode

from multinode.contract.connection import ConnectionSettings
from multinode.errors import (
    ControlPlaneUnavailableError,
    InvocationDoesNotExistError,
    MultinodeError,
    ProjectDoesNotExistError,
)

T = TypeVar("T")


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def unreachable_message(settings: ConnectionSettings, detail: object) -> str:
    hint = (
        "start one with `multinode dev`"
        if settings.source == "default"
        else f"check MULTINODE_API_URL / `multinode login` (address from {settings.source})"
    )
    return f"cannot reach the Multinode control plane at {settings.api_url}: {detail}; {hint}"


def translate_rpc_error(exc: RPCError, what: str) -> MultinodeError:
    if exc.status == RPCStatusCode.UNAVAILABLE:
        return ControlPlaneUnavailableError(f"the control plane is unavailable ({one_line(exc)})")
    if exc.status in (RPCStatusCode.UNAUTHENTICATED, RPCStatusCode.PERMISSION_DENIED):
        return ControlPlaneUnavailableError(
            f"the control plane refused the credentials ({one_line(exc)})"
        )
    return MultinodeError(f"{what} failed: {one_line(exc)}")


async def translated(what: str, call: Callable[[], Awaitable[T]]) -> T:
    """`call()`, with an RPC failure translated (named by `what`)."""
    try:
        return await call()
    except RPCError as exc:
        raise translate_rpc_error(exc, what) from None


def invocation_error(exc: RPCError, invocation_id: str) -> MultinodeError:
    if exc.status == RPCStatusCode.NOT_FOUND:
        return InvocationDoesNotExistError(f"no invocation with id {invocation_id!r}")
    return translate_rpc_error(exc, f"reading invocation {invocation_id}")


def no_project(project_name: str) -> ProjectDoesNotExistError:
    return ProjectDoesNotExistError(
        f"no project named {project_name!r} is deployed; deploy it with "
        f"`multinode deploy <folder> --project-name={project_name}`"
    )


def closing(project_name: str) -> ProjectDoesNotExistError:
    return ProjectDoesNotExistError(
        f"project {project_name!r} is being undeployed; it accepts no new invocations"
    )


def consume_outcome(outcome: asyncio.Future[Any]) -> None:
    """Read a result nobody awaits (a failed with-start operation), so asyncio does not report
    it as lost."""
    outcome.add_done_callback(lambda done: done.cancelled() or done.exception())
