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


# How a TLS connection that the server ends right after the handshake reads: under TLS 1.3 the
# client finishes its handshake before the server checks the client certificate, so a refused
# (or missing) certificate shows up as the connection closing, the alert itself often lost.
_CLOSED_WORDS = ("connectionclosed", "unexpectedeof", "closenotify", "connectionreset", "brokenpipe",
                 "certificaterequired", "handshakefailure")
_MUTUAL_TLS_HOW = (
    "give one with TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH, or "
    "`multinode login --tls-cert FILE --tls-key FILE`"
)


def tls_hint(settings: ConnectionSettings, detail: str) -> str:
    """What to do about a failed TLS connection, from the words of the failure: the client's TLS
    library names the symptom (a closed connection, an unknown issuer) but not the setting that
    fixes it."""
    lowered = detail.lower().replace(" ", "").replace("_", "")
    closed = any(word in lowered for word in _CLOSED_WORDS)
    if not settings.uses_tls:
        if closed:
            return " (TLS is off: if this control plane requires TLS, set TEMPORAL_TLS=true)"
        return ""
    if "unknownissuer" in lowered or "invalidpeercertificate" in lowered:
        return (
            " (the control plane's TLS certificate is not trusted: give its CA with "
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH or `multinode login --tls-ca FILE`, or the name it "
            "carries with TEMPORAL_TLS_SERVER_NAME / --tls-server-name)"
        )
    if closed and not settings.uses_mutual_tls:
        return (
            " (the control plane closed the TLS connection, as one that requires a TLS client certificate "
            f"(mutual TLS) does: {_MUTUAL_TLS_HOW})"
        )
    if closed or any(word in lowered for word in ("badcertificate", "unknownca", "certificateunknown")):
        return (
            " (the control plane closed the TLS connection: it refused this TLS client certificate; "
            "is it signed by the CA the control plane trusts, and not expired?)"
        )
    if any(word in lowered for word in ("invalidcontenttype", "tls", "handshake", "certificate")):
        return " (TLS is on: does this control plane accept TLS connections? TEMPORAL_TLS=false turns it off)"
    return ""


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
