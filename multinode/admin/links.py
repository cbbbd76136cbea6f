"""Links into the Temporal Web UI: an invocation's page (its workflow is the invocation) and
workflow lists filtered by Multinode's search attributes. The UI's base URL comes from
MULTINODE_UI_URL, else the profile, else a local `multinode dev`."""

from __future__ import annotations

from urllib.parse import quote

from multinode._client import default_client
from multinode.admin.profile import resolve_ui_url
from multinode.contract.connection import ConnectionSettings


def invocation_url(invocation_id: str, settings: ConnectionSettings | None = None) -> str:
    """The invocation's page in the Temporal Web UI."""
    namespace = (settings or default_client().settings).namespace
    return f"{resolve_ui_url()}/namespaces/{quote(namespace, safe='')}/workflows/{quote(invocation_id, safe='')}"


def list_url(query: str, settings: ConnectionSettings | None = None) -> str:
    """The Web UI's workflow list filtered by a visibility query (search attributes)."""
    namespace = (settings or default_client().settings).namespace
    return f"{resolve_ui_url()}/namespaces/{quote(namespace, safe='')}/workflows?query={quote(query, safe='')}"
