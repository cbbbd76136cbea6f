"""`multinode`: manage the control plane, deploy tasks folders, inspect and invoke functions.

Exit codes: 0 success; 1 an error (one line on stderr); 2 a usage error; 3 the control plane is
unreachable; 4 an awaited invocation failed, was cancelled or timed out.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from multinode import _names
from multinode.errors import (
    ControlPlaneUnavailableError,
    InvocationError,
    MultinodeError,
)

F = TypeVar("F", bound=Callable[..., Any])

EXIT_ERROR, EXIT_UNAVAILABLE, EXIT_INVOCATION = 1, 3, 4


def _finish(code: int) -> NoReturn:
    # The Temporal client's native threads can crash interpreter teardown in short-lived
    # processes (temporalio sdk-python issue 300): flush and leave without it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class CommandError(click.ClickException):
    """One line on stderr and a documented exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ControlPlaneUnavailableError as exc:
            raise CommandError(str(exc), EXIT_UNAVAILABLE) from None
        except InvocationError as exc:
            raise CommandError(str(exc).splitlines()[0], EXIT_INVOCATION) from None
        except MultinodeError as exc:
            raise CommandError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="multinode")
def cli() -> None:
    """Multinode: run Python functions remotely, durably, one fresh container per attempt.

    \b
    Example, on one machine:
      multinode dev                                   # terminal 1: control plane + worker
      multinode deploy tasks/ --project-name=demo     # terminal 2
      multinode invoke demo add --args '[1, 2]' --wait
    """


# ----- control plane ----------------------------------------------------------------------


@cli.command()
@click.option("--port", default=_names.DEFAULT_PORT, show_default=True, help="Temporal frontend port.")
@click.option("--ui-port", default=_names.DEFAULT_UI_PORT, show_default=True, help="Temporal Web UI port.")
@click.option("--headless", is_flag=True, help="Do not serve the Web UI.")
def dev(port: int, ui_port: int, headless: bool) -> None:
    """Run the embedded control plane (Temporal dev server + Web UI + a local worker) until Ctrl-C.

    State (the database, packages, environments, logs) lives under $MULTINODE_HOME
    (default ~/.multinode), so invocations survive a restart.

    \b
    Example:
      multinode dev --port 7233 --ui-port 8233
    """
    import asyncio

    from multinode._devserver import DevServer, DevServerConfig
    from multinode._settings import ConnectionSettings, multinode_home
    from temporal_workers.settings import load_worker_settings
    from temporal_workers.worker import run_worker

    _configure_logging()
    config = DevServerConfig(home=multinode_home(), port=port, ui_port=ui_port, headless=headless)
    server = DevServer(config)
    try:
        server.start()
        base = load_worker_settings()
        connection = ConnectionSettings(
            api_url=config.address, api_key=None, namespace=config.namespace,
            task_queue=base.connection.task_queue, source="default",
        )
        settings = base.model_copy(update={"connection": connection})
        click.echo(f"Multinode control plane on {config.address} (state in {config.home})")
        if not headless:
            click.echo(f"Temporal Web UI: {config.ui_url}/namespaces/{config.namespace}/workflows")
        click.echo("Press Ctrl-C to stop.")
        asyncio.run(run_worker(settings))
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@cli.command()
def worker() -> None:
    """Run a worker against the configured control plane (MULTINODE_API_URL, ...).

    \b
    Example:
      MULTINODE_API_URL=temporal.internal:7233 multinode worker
    """
    import asyncio

    from temporal_workers.settings import load_worker_settings
    from temporal_workers.worker import run_worker

    _configure_logging()
    try:
        asyncio.run(run_worker(load_worker_settings()))
    except KeyboardInterrupt:
        pass


def _configure_logging() -> None:
    import logging

    logging.basicConfig(
        level=os.environ.get("MULTINODE_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


# ----- deploy -----------------------------------------------------------------------------


def _project_name(option: str | None, legacy: tuple[str, ...]) -> str:
    """Accept `--project-name=P` and the older spelling `project-name=P`."""
    names = [option] if option else []
    for extra in legacy:
        key, sep, value = extra.partition("=")
        if sep and key.lstrip("-") == "project-name":
            names.append(value)
        else:
            raise click.UsageError(f"unexpected argument {extra!r}")
    if not names:
        raise click.UsageError("give the project's name: --project-name=NAME")
    return names[-1]


def _print_version(manifest: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(_manifest_json(manifest), indent=2))
        return
    click.echo(f"project {manifest.project_name}: version {manifest.version_id}")
    rows = [("function", "cpu", "memory", "timeout", "max_concurrency", "max_retries", "kind")]
    for spec in manifest.functions:
        o = spec.options
        rows.append((spec.name, f"{o.cpu:g}", o.memory, f"{o.timeout_seconds:g} s",
                     str(o.max_concurrency), str(o.max_retries),
                     "generator" if spec.is_generator else "function"))
    _table(rows)


def _manifest_json(manifest: Any) -> dict[str, Any]:
    return {
        "project_name": manifest.project_name,
        "version_id": manifest.version_id,
        "created_at": manifest.created_at,
        "package_sha256": manifest.package.sha256,
        "functions": [
            {"name": s.name, **s.options.to_dict(), "is_generator": s.is_generator}
            for s in manifest.functions
        ],
    }


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("path", type=click.Path(path_type=Path))
@click.argument("legacy", nargs=-1)
@click.option("--project-name", help="Name of the new project.")
@click.option("--json", "as_json", is_flag=True, help="Print the version as JSON.")
def deploy(path: Path, legacy: tuple[str, ...], project_name: str | None, as_json: bool) -> None:
    """Deploy a tasks folder as a new project.

    \b
    Example:
      multinode deploy tasks/ --project-name=my_project
    """
    from multinode._deploy import CREATE, deploy as run_deploy

    _print_version(run_deploy(path, _project_name(project_name, legacy), CREATE), as_json)


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("path", type=click.Path(path_type=Path))
@click.argument("legacy", nargs=-1)
@click.option("--project-name", help="Name of the existing project.")
@click.option("--deploy", "create", is_flag=True, help="Create the project if it does not exist.")
@click.option("--json", "as_json", is_flag=True, help="Print the version as JSON.")
def upgrade(path: Path, legacy: tuple[str, ...], project_name: str | None, create: bool, as_json: bool) -> None:
    """Deploy a new version of an existing project; running invocations keep their version.

    \b
    Example:
      multinode upgrade tasks/ --project-name=my_project
    """
    from multinode._deploy import UPGRADE, UPGRADE_OR_CREATE, deploy as run_deploy

    mode = UPGRADE_OR_CREATE if create else UPGRADE
    _print_version(run_deploy(path, _project_name(project_name, legacy), mode), as_json)


# ----- invoke -----------------------------------------------------------------------------


@cli.command()
@click.argument("project")
@click.argument("function")
@click.option("--args", "args_json", default="[]", help="Positional arguments as a JSON list.")
@click.option("--kwargs", "kwargs_json", default="{}", help="Keyword arguments as a JSON object.")
@click.option("--version-id", help="Run this version instead of the latest.")
@click.option("--wait", is_flag=True, help="Wait for the result and print it as JSON.")
def invoke(project: str, function: str, args_json: str, kwargs_json: str, version_id: str | None, wait: bool) -> None:
    """Start an invocation; print its id (and, with --wait, its result).

    \b
    Example:
      multinode invoke my_project add --args '[1, 2]' --wait
    """
    from multinode import get_deployed_function

    try:
        args = json.loads(args_json)
        kwargs = json.loads(kwargs_json)
    except ValueError as exc:
        raise click.UsageError(f"--args/--kwargs must be JSON: {exc}") from None
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise click.UsageError("--args takes a JSON list and --kwargs a JSON object")
    fn = get_deployed_function(project, function, version_id=version_id)
    invocation_id = fn.start(*args, **kwargs)
    click.echo(invocation_id)
    if wait:
        click.echo(json.dumps(fn.await_result(invocation_id), default=repr))


@cli.command()
@click.argument("project")
@click.argument("function")
@click.argument("invocation_id")
def cancel(project: str, function: str, invocation_id: str) -> None:
    """Cancel an invocation (a finished one is left as it is).

    \b
    Example:
      multinode cancel my_project add inv-01...
    """
    from multinode import get_deployed_function

    fn = get_deployed_function(project, function)
    if fn.cancel(invocation_id):
        click.echo(f"{invocation_id}: cancellation requested")
    else:
        click.echo(f"{invocation_id}: already finished ({fn.get(invocation_id).status}); nothing to cancel")


@cli.command()
@click.argument("project")
@click.argument("function")
@click.argument("invocation_id")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def get(project: str, function: str, invocation_id: str, as_json: bool) -> None:
    """Show an invocation's status, result and error.

    \b
    Example:
      multinode get my_project add inv-01...
    """
    from multinode import get_deployed_function

    inv = get_deployed_function(project, function).get(invocation_id)
    data = {
        "invocation_id": inv.invocation_id,
        "status": inv.status.value,
        "result": inv.result,
        "error": inv.error,
        "terminated": inv.terminated,
        "num_failed_attempts": inv.num_failed_attempts,
        "version_id": inv.version_id,
        "parent_invocation_id": inv.parent_invocation_id,
    }
    if as_json:
        click.echo(json.dumps(data, indent=2, default=repr))
    else:
        for key, value in data.items():
            click.echo(f"{key}: {value}")


def main() -> NoReturn:
    """The console entry point: runs a command, then leaves without interpreter teardown."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        _finish(EXIT_ERROR)
    except click.ClickException as exc:
        exc.show()
        _finish(exc.exit_code)
    except KeyboardInterrupt:
        _finish(130)
    _finish(0)


if __name__ == "__main__":
    main()
