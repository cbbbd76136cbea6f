"""Reaching the control plane: the SDK's connection, the login probe, and the search attributes
a namespace needs (registered by the worker at start)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import temporalio.api.enums.v1
import temporalio.api.operatorservice.v1
import temporalio.api.workflowservice.v1
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from multinode.contract import names
from multinode.contract.connection import ConnectionSettings
from multinode.engine.converter import DATA_CONVERTER
from multinode.engine.failures import one_line, unreachable_message
from multinode.errors import ControlPlaneUnavailableError

CONNECT_TIMEOUT_SECONDS = 10.0


async def connect(settings: ConnectionSettings) -> Client:
    try:
        return await asyncio.wait_for(
            Client.connect(
                settings.api_url,
                namespace=settings.namespace,
                api_key=settings.api_key,
                tls=settings.uses_tls,
                data_converter=DATA_CONVERTER,
            ),
            timeout=CONNECT_TIMEOUT_SECONDS,
        )
    except TimeoutError:
        raise ControlPlaneUnavailableError(
            unreachable_message(settings, f"no answer within {CONNECT_TIMEOUT_SECONDS:g} s")
        ) from None
    except (RuntimeError, RPCError, OSError) as exc:
        raise ControlPlaneUnavailableError(unreachable_message(settings, one_line(exc))) from None


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
        hint = ""
        lowered = detail.lower()
        if settings.uses_tls and any(
            word in lowered for word in ("invalidcontenttype", "tls", "handshake", "certificate")
        ):
            hint = " (an API key turns TLS on: does this control plane accept TLS connections?)"
        return ControlPlaneUnavailableError(
            f"cannot reach the Multinode control plane at {settings.api_url}: {detail}{hint}"
        )

    try:
        client = await asyncio.wait_for(
            Client.connect(
                settings.api_url,
                namespace=settings.namespace,
                api_key=settings.api_key,
                tls=settings.uses_tls,
            ),
            timeout=timeout,
        )
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
