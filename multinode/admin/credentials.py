"""Credentials: `login` checks the control plane's address, key and TLS files and stores them in
the profile; `logout` forgets them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from multinode._client import Client, set_default_client
from multinode.admin.profile import remove_profile, save_profile
from multinode.contract import names
from multinode.contract.connection import (
    ENV_API_URL,
    ConnectionSettings,
    TlsSettings,
    check_api_url,
    check_tls,
    profile_path,
)
from multinode.errors import InvalidOptionError


@dataclass(frozen=True)
class LoginResult:
    profile_path: Path
    api_url: str
    uses_tls: bool
    namespace: str
    server_version: str | None  # None when the check was skipped
    overridden_by_environment: bool  # MULTINODE_API_URL is set and wins over the profile
    uses_mutual_tls: bool = False  # a client certificate is presented


def _tls_file(value: str | Path | None, what: str) -> Path | None:
    """An absolute path to a readable file, or None: checked at the door, so a typo is told
    now and not at the first connection."""
    if value is None or str(value).strip() == "":
        return None
    path = Path(value).expanduser().resolve()
    try:
        with path.open("rb") as handle:
            start = handle.read(64)
    except OSError as exc:
        raise InvalidOptionError(f"the TLS {what} {path} cannot be read: {exc.strerror or exc}") from None
    if b"-----BEGIN" not in start:
        raise InvalidOptionError(f"the TLS {what} {path} is not a PEM file (it should start with -----BEGIN)")
    return path


def login(
    api_url: str,
    api_key: str | None = None,
    *,
    namespace: str | None = None,
    task_queue: str | None = None,
    ui_url: str | None = None,
    check: bool = True,
    timeout: float = 10.0,
    tls: bool | None = None,
    tls_server_ca_cert: str | Path | None = None,
    tls_client_cert: str | Path | None = None,
    tls_client_key: str | Path | None = None,
    tls_server_name: str | None = None,
) -> LoginResult:
    """Check the credentials by connecting, then store them in the profile, readable only by
    the user. Nothing is stored when the check fails.

    TLS is on when `tls` is True, or (when `tls` is None) with an API key or any TLS setting.
    `tls_client_cert` with `tls_client_key` give mutual TLS; `tls_server_ca_cert` trusts a
    private CA; `tls_server_name` is the name the server's certificate carries, when it is not
    the address's host. The files are stored by absolute path (a renewed certificate is used
    without logging in again)."""
    files = {
        "server_ca_cert": _tls_file(tls_server_ca_cert, "server CA certificate"),
        "client_cert": _tls_file(tls_client_cert, "client certificate"),
        "client_key": _tls_file(tls_client_key, "client key"),
    }
    server_name = (tls_server_name or "").strip() or None
    if tls is False and (server_name or any(files.values())):
        raise InvalidOptionError("TLS files or a TLS server name were given with TLS turned off")
    tls_settings = None
    if tls is not None or server_name or any(files.values()):
        tls_settings = check_tls(TlsSettings(
            enabled=tls is not False, server_name=server_name, server_ca_cert=files["server_ca_cert"],
            client_cert=files["client_cert"], client_key=files["client_key"],
        ))
    settings = ConnectionSettings(
        api_url=check_api_url(api_url.strip()),
        api_key=(api_key or "").strip() or None,
        namespace=namespace or names.DEFAULT_NAMESPACE,
        task_queue=task_queue or names.DEFAULT_TASK_QUEUE,
        source="login",
        tls=tls_settings,
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
            "tls": tls,
            "tls_server_name": server_name,
            **{f"tls_{part}": str(file) if file else None for part, file in files.items()},
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
        uses_mutual_tls=settings.uses_mutual_tls,
    )


def logout() -> bool:
    """Forget the stored credentials; False when none were stored."""
    removed = remove_profile()
    set_default_client(None)
    return removed


def stored_profile_path() -> Path:
    """Where `login` stores the credentials (whether or not it has)."""
    return profile_path()
