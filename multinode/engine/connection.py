"""Reaching the control plane: Temporal's environment configuration, the arguments of
`Client.connect` (built here only, for the SDK, the CLI, the login probe and the workers), and
the search attributes a namespace needs (registered by the worker at start)."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import temporalio.api.enums.v1
import temporalio.api.operatorservice.v1
import temporalio.api.workflowservice.v1
from temporalio.client import Client
from temporalio.envconfig import ClientConfigProfile, ClientConfigTLS
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from multinode.contract import connection as _contract
from multinode.contract import names
from multinode.contract.connection import (
    TLS_PART_NAMES,
    ConnectionLayer,
    ConnectionSettings,
    PemSource,
    TlsSettings,
)
from multinode.engine.converter import DATA_CONVERTER
from multinode.engine.failures import one_line, tls_hint, unreachable_message
from multinode.errors import ControlPlaneUnavailableError, InvalidOptionError

CONNECT_TIMEOUT_SECONDS = 10.0


# ----- Temporal's environment configuration ---------------------------------------------------


def _tls_settings(tls: ClientConfigTLS | None) -> TlsSettings | None:
    if tls is None:
        return None

    def source(value: Path | str | bytes | None) -> PemSource | None:
        # envconfig gives a Path for a file and str or bytes for data.
        return value.encode() if isinstance(value, str) else value

    return TlsSettings(
        enabled=tls.disabled is not True,
        server_name=tls.server_name or None,
        server_ca_cert=source(tls.server_root_ca_cert),
        client_cert=source(tls.client_cert),
        client_key=source(tls.client_private_key),
    )


def _load_layer(**options: Any) -> ConnectionLayer:
    try:
        profile = ClientConfigProfile.load(**options)
    except Exception as exc:  # the bridge raises plain RuntimeError/ValueError for bad files
        file = os.environ.get("TEMPORAL_CONFIG_FILE") or "the default temporal.toml"
        raise InvalidOptionError(
            f"Temporal's environment configuration (TEMPORAL_* variables, {file}) cannot be "
            f"loaded: {one_line(exc)}"
        ) from None
    return ConnectionLayer(
        address=profile.address or None,
        api_key=profile.api_key or None,
        namespace=profile.namespace or None,
        tls=_tls_settings(profile.tls),
    )


def temporal_environment() -> ConnectionLayer:
    """The `TEMPORAL_*` variables alone (no file)."""
    return _load_layer(disable_file=True)


def temporal_config() -> ConnectionLayer:
    """The `temporal.toml` profile (`TEMPORAL_PROFILE`, default "default"; the file at
    `TEMPORAL_CONFIG_FILE`, else the Temporal CLI's default place) with the `TEMPORAL_*`
    variables over it: what the Temporal CLI itself connects with."""
    return _load_layer()


def resolve_settings() -> ConnectionSettings:
    """The connection every Multinode process uses (rules in `multinode.contract.connection`)."""
    return _contract.resolve_settings(temporal_environment(), temporal_config)


# ----- Client.connect's arguments -------------------------------------------------------------


def _read(settings: ConnectionSettings, part: _contract.TlsPart) -> bytes | None:
    value = settings.tls.part(part) if settings.tls is not None else None
    if not isinstance(value, Path):
        return value
    try:
        return value.read_bytes()
    except OSError as exc:
        raise InvalidOptionError(
            f"the TLS {TLS_PART_NAMES[part]} {value} (from {settings.source}) cannot be read: "
            f"{exc.strerror or exc}"
        ) from None


def connect_arguments(settings: ConnectionSettings) -> dict[str, Any]:
    """`Client.connect`'s keyword arguments for these settings (TLS files read now, so a
    rotated certificate is used by the next connection)."""
    tls: bool | TLSConfig = settings.uses_tls
    if settings.uses_tls and settings.tls is not None and (
        settings.tls.server_name or any(settings.tls.part(p) for p in TLS_PART_NAMES)
    ):
        tls = TLSConfig(
            server_root_ca_cert=_read(settings, "server_ca_cert"),
            domain=settings.tls.server_name,
            client_cert=_read(settings, "client_cert"),
            client_private_key=_read(settings, "client_key"),
        )
    return {"namespace": settings.namespace, "api_key": settings.api_key, "tls": tls}


# What a server that has opened its port but is still starting answers (a dev server a moment
# after boot, a frontend just restarted): worth waiting for within the connect budget.
_STARTING = "not healthy yet"


async def connect(settings: ConnectionSettings) -> Client:
    arguments = connect_arguments(settings)

    starting: list[str] = []

    async def first_answer() -> Client:
        while True:
            try:
                return await Client.connect(settings.api_url, **arguments, data_converter=DATA_CONVERTER)
            except (RuntimeError, RPCError) as exc:
                if _STARTING not in str(exc):
                    raise
                starting[:] = [one_line(exc)]
            await asyncio.sleep(0.1)

    try:
        return await asyncio.wait_for(first_answer(), timeout=CONNECT_TIMEOUT_SECONDS)
    except TimeoutError:
        raise ControlPlaneUnavailableError(
            unreachable_message(
                settings, starting[0] if starting else f"no answer within {CONNECT_TIMEOUT_SECONDS:g} s"
            )
        ) from None
    except (RuntimeError, RPCError, OSError) as exc:
        detail = one_line(exc)
        raise ControlPlaneUnavailableError(
            unreachable_message(settings, detail + tls_hint(settings, detail))
        ) from None


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Register the custom search attributes (idempotent): production Temporal needs this once."""
    types = temporalio.api.enums.v1.IndexedValueType
    wanted = {name: types.INDEXED_VALUE_TYPE_KEYWORD for name in names.SEARCH_ATTRIBUTES}
    wanted[names.SA_CREATED] = types.INDEXED_VALUE_TYPE_DATETIME
    listed = await client.operator_service.list_search_attributes(
        temporalio.api.operatorservice.v1.ListSearchAttributesRequest(namespace=namespace)
    )
    missing = {name: kind for name, kind in wanted.items() if name not in listed.custom_attributes}
    if missing:
        await client.operator_service.add_search_attributes(
            temporalio.api.operatorservice.v1.AddSearchAttributesRequest(
                namespace=namespace, search_attributes=missing
            )
        )


async def probe(settings: ConnectionSettings, timeout: float = CONNECT_TIMEOUT_SECONDS) -> str:
    """Connect with these settings and read the namespace: what `multinode login` checks.
    Returns the server's version. Raises ControlPlaneUnavailableError with one clear line."""

    def failure(detail: str) -> ControlPlaneUnavailableError:
        return ControlPlaneUnavailableError(
            f"cannot reach the Multinode control plane at {settings.api_url}: {detail}"
            f"{tls_hint(settings, detail)}"
        )

    arguments = connect_arguments(settings)
    try:
        client = await asyncio.wait_for(Client.connect(settings.api_url, **arguments), timeout=timeout)
        info = await client.workflow_service.get_system_info(
            temporalio.api.workflowservice.v1.GetSystemInfoRequest(),
            timeout=timedelta(seconds=timeout),
        )
        await client.workflow_service.describe_namespace(
            temporalio.api.workflowservice.v1.DescribeNamespaceRequest(namespace=settings.namespace),
            timeout=timedelta(seconds=timeout),
        )
    except TimeoutError:
        raise failure(f"no answer within {timeout:g} s") from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ControlPlaneUnavailableError(
                f"the control plane at {settings.api_url} has no namespace {settings.namespace!r}"
            ) from None
        if exc.status in (RPCStatusCode.UNAUTHENTICATED, RPCStatusCode.PERMISSION_DENIED):
            raise ControlPlaneUnavailableError(
                f"the control plane at {settings.api_url} refused the credentials ({one_line(exc)})"
            ) from None
        raise failure(one_line(exc)) from None
    except (RuntimeError, OSError) as exc:
        raise failure(one_line(exc)) from None
    return str(info.server_version or "unknown")
