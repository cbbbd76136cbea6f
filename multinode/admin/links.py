"""Links into the Temporal Web UI: an invocation's page (its workflow is the invocation) and the
list of invocations, narrowed by Multinode's search attributes. The list never shows the
engine's own workflows (quota semaphores, projects, locks, the archiver, archive records): its
query selects the invocation workflow type. The UI's base URL comes from MULTINODE_UI_URL, else
the profile, else a local `multinode dev`."""

from __future__ import annotations

from urllib.parse import quote

from multinode._client import default_client
from multinode.admin.profile import resolve_ui_url
from multinode.contract import names
from multinode.contract.connection import ConnectionSettings

INVOCATIONS_QUERY = f'WorkflowType = "{names.INVOCATION_WORKFLOW}"'


def invocation_url(invocation_id: str, settings: ConnectionSettings | None = None) -> str:
    """The invocation's page in the Temporal Web UI."""
    namespace = (settings or default_client().settings).namespace
    return f"{resolve_ui_url()}/namespaces/{quote(namespace, safe='')}/workflows/{quote(invocation_id, safe='')}"


def web_ui_query(filters: str | None = None) -> str:
    """The visibility query of the invocations list: invocations only, narrowed by `filters`
    (a query over Multinode's search attributes, e.g. `MultinodeProject = "p"`)."""
    return f"{INVOCATIONS_QUERY} AND ({filters})" if filters else INVOCATIONS_QUERY


def list_url(filters: str | None = None, settings: ConnectionSettings | None = None, *, ui_url: str | None = None) -> str:
    """The Web UI's list of invocations (only invocations), narrowed by `filters`; `ui_url`
    overrides the configured Web UI address."""
    namespace = (settings or default_client().settings).namespace
    base = ui_url.rstrip("/") if ui_url else resolve_ui_url()
    query = quote(web_ui_query(filters), safe="")
    return f"{base}/namespaces/{quote(namespace, safe='')}/workflows?query={query}"
