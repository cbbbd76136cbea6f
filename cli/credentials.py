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
@click.option("--no-check", is_flag=True, help="Store without connecting first.")
def login(
    api_url: str | None,
    api_key: str | None,
    namespace: str | None,
    task_queue: str | None,
    ui_url: str | None,
    no_check: bool,
) -> None:
    """Store the control plane's address and API key, after checking them by connecting.

    The profile ($MULTINODE_HOME/profile.json) is readable only by you. MULTINODE_API_URL and
    MULTINODE_API_KEY, when set, win over it.

    \b
    Example:
      multinode login --api-url temporal.example.com:7233 --api-key "$KEY"
      multinode login                  # prompts for both
    """
    if api_url is None:
        api_url = click.prompt("Control plane address (host:port)", default=f"127.0.0.1:{admin.DEFAULT_PORT}")
        if api_key is None:
            api_key = click.prompt(
                "API key (empty for none)", default="", show_default=False, hide_input=True
            )
    result = admin.login(
        api_url or "", api_key, namespace=namespace, task_queue=task_queue, ui_url=ui_url,
        check=not no_check,
    )
    how = "TLS with an API key" if result.uses_tls else "plaintext, no key"
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
