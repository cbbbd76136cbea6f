"""`multinode login` and `multinode logout`: the stored credentials."""

from __future__ import annotations

import os

import click

from multinode import admin


@click.command()
@click.option("--api-url", help="The control plane's address, host:port.")
@click.option("--api-key", help="The API key (turns TLS on). Prompted for when --api-url is too.")
@click.option("--namespace", help=f"Temporal namespace (default {admin.DEFAULT_NAMESPACE!r}).")
@click.option("--task-queue", help=f"Task queue of the workers (default {admin.DEFAULT_TASK_QUEUE!r}).")
@click.option("--ui-url", help="The Temporal Web UI's base URL, for links.")
@click.option("--tls/--no-tls", default=None,
              help="Turn TLS on or off (default: on with an API key or any --tls-* option).")
@click.option("--tls-cert", type=click.Path(dir_okay=False),
              help="Client certificate (PEM) for mutual TLS; needs --tls-key.")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="The client certificate's private key (PEM).")
@click.option("--tls-ca", type=click.Path(dir_okay=False),
              help="CA certificate (PEM) that signed the server's, for a private CA.")
@click.option("--tls-server-name", help="The name in the server's certificate, if not the address's host.")
@click.option("--no-check", is_flag=True, help="Store without connecting first.")
def login(
    api_url: str | None,
    api_key: str | None,
    namespace: str | None,
    task_queue: str | None,
    ui_url: str | None,
    tls: bool | None,
    tls_cert: str | None,
    tls_key: str | None,
    tls_ca: str | None,
    tls_server_name: str | None,
    no_check: bool,
) -> None:
    """Store the control plane's address, API key and TLS files, after checking them by connecting.

    The profile ($MULTINODE_HOME/profile.json) is readable only by you; TLS files are stored by
    absolute path. MULTINODE_API_URL, when set, wins over it.

    \b
    Example:
      multinode login --api-url temporal.example.com:7233 --api-key "$KEY"
      multinode login --api-url temporal.internal:7233 --tls-ca ca.pem \\
          --tls-cert client.pem --tls-key client.key      # mutual TLS
      multinode login                  # prompts for the address and key
    """
    if api_url is None:
        api_url = click.prompt("Control plane address (host:port)", default=f"127.0.0.1:{admin.DEFAULT_PORT}")
        if api_key is None and not (tls_cert or tls_key):
            api_key = click.prompt(
                "API key (empty for none)", default="", show_default=False, hide_input=True
            )
    result = admin.login(
        api_url or "", api_key, namespace=namespace, task_queue=task_queue, ui_url=ui_url,
        check=not no_check, tls=tls, tls_server_ca_cert=tls_ca, tls_client_cert=tls_cert,
        tls_client_key=tls_key, tls_server_name=tls_server_name,
    )
    if result.uses_mutual_tls:
        how = "mutual TLS" + (" with an API key" if api_key else "")
    elif result.uses_tls:
        how = "TLS with an API key" if api_key else "TLS, no key"
    else:
        how = "plaintext" + (" with an API key" if api_key else ", no key")
    checked = f", server {result.server_version}" if result.server_version else " (not checked)"
    click.echo(f"logged in to {result.api_url} ({how}{checked}), namespace {result.namespace}")
    click.echo(f"credentials stored in {result.profile_path} (readable only by you)")
    if result.overridden_by_environment:
        click.echo("note: MULTINODE_API_URL is set in this environment and wins over the profile", err=True)


@click.command()
def logout() -> None:
    """Remove the credentials stored by `multinode login`.

    \b
    Example:
      multinode logout
    """
    path = admin.stored_profile_path()
    if admin.logout():
        click.echo(f"logged out: removed {path}")
    else:
        click.echo(f"not logged in (no {path})")
    if os.environ.get("MULTINODE_API_URL"):
        click.echo("note: MULTINODE_API_URL is still set in this environment and is used", err=True)
