"""Credentials: `login` checks the control plane's address and key and stores them in the
profile; `logout` forgets them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from multinode._client import Client, set_default_client
from multinode.admin.profile import remove_profile, save_profile
from multinode.contract import names
from multinode.contract.connection import ENV_API_URL, ConnectionSettings, check_api_url, profile_path


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
    """Where `login` stores the credentials (whether or not it has)."""
    return profile_path()
