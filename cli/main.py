"""`multinode`: manage the control plane, deploy tasks folders, inspect and invoke functions.

A thin shell over the SDK (`multinode.admin.admin`, `multinode.get_deployed_function`): every command
parses its options, calls one SDK function and prints the answer, as text or, with `--json`, as
JSON for scripts. Times are UTC and marked as such.

Exit codes:
  0  success
  1  an error (one line on stderr, starting with "error:")
  2  a usage error (a missing or malformed option; one line on stderr)
  3  the control plane is unreachable or refused the credentials
  4  an awaited invocation failed, was cancelled or timed out (`invoke --wait`)
  130  interrupted (Ctrl-C)

Commands return normally (so click's CliRunner can test them); only `main()`, the console
entry point, leaves with os._exit (temporalio sdk-python issue 300: a short-lived process that
used a Temporal client can crash during interpreter teardown).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from multinode.contract import names as _names
from multinode.errors import (
    ControlPlaneUnavailableError,
    InvocationError,
    MultinodeError,
)

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_INVOCATION, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130

EXIT_CODES_HELP = (
    "\b\nExit codes:\n"
    "  0    success\n"
    "  1    an error (one line on stderr)\n"
    "  2    a usage error\n"
    "  3    the control plane is unreachable or refused the credentials\n"
    "  4    an awaited invocation failed, was cancelled or timed out\n"
    "  130  interrupted (Ctrl-C)"
)

# Set to see the traceback of an unexpected error instead of its one-line summary.
ENV_DEBUG = "MULTINODE_DEBUG"


def _finish(code: int) -> NoReturn:
    # The Temporal client's native threads can crash interpreter teardown in short-lived
    # processes (temporalio sdk-python issue 300): flush and leave without it.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`multinode logs ... | head`)
            pass
    os._exit(code)


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


class CommandError(click.ClickException):
    """One line on stderr and a documented exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(_one_line(message) or "failed")
        self.exit_code = exit_code  # type: ignore[misc]  # click declares it a ClassVar

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


class OneLineUsageError(click.UsageError):
    """click's usage errors, as one line that says where the help is."""

    exit_code = EXIT_USAGE

    def show(self, file: Any = None) -> None:
        command = self.ctx.command_path if self.ctx is not None else "multinode"
        click.echo(f"error: {_one_line(self.format_message())} (see `{command} --help`)", err=True)


def _one_line_usage(exc: click.UsageError) -> OneLineUsageError:
    if isinstance(exc, OneLineUsageError):
        return exc
    return OneLineUsageError(exc.format_message(), ctx=exc.ctx)


class _Group(click.Group):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:
            raise _one_line_usage(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:
            raise _one_line_usage(exc) from None
        except (click.ClickException, click.exceptions.Exit, BrokenPipeError):
            raise
        except click.Abort:
            raise CommandError("aborted") from None
        except ControlPlaneUnavailableError as exc:
            message = _one_line(str(exc))
            if "multinode dev" not in message and "credentials" not in message:
                message += "; to run a control plane on this machine: `multinode dev`"
            raise CommandError(message, EXIT_UNAVAILABLE) from None
        except InvocationError as exc:
            raise CommandError(str(exc), EXIT_INVOCATION) from None
        except MultinodeError as exc:
            raise CommandError(str(exc) or type(exc).__name__) from None
        except Exception as exc:
            if os.environ.get(ENV_DEBUG):
                raise
            raise CommandError(
                f"unexpected {type(exc).__name__}: {_one_line(str(exc))} "
                f"(set {ENV_DEBUG}=1 to see the traceback)"
            ) from None


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=EXIT_CODES_HELP,
)
@click.version_option(package_name="multinode")
def cli() -> None:
    """Multinode: run Python functions remotely, durably, one fresh container per attempt.

    The control plane is found the same way by the CLI and the SDK: MULTINODE_API_URL and
    MULTINODE_API_KEY (environment), else the profile written by `multinode login`, else a
    local `multinode dev` on 127.0.0.1:7233. A key turns TLS on.

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

    from multinode.admin.devserver import DevServer, DevServerConfig
    from multinode.contract.connection import ConnectionSettings, multinode_home
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


# ----- credentials ------------------------------------------------------------------------


@cli.command()
@click.option("--api-url", help="The control plane's address, host:port.")
@click.option("--api-key", help="The API key (turns TLS on). Prompted for when --api-url is too.")
@click.option("--namespace", help=f"Temporal namespace (default {_names.DEFAULT_NAMESPACE!r}).")
@click.option("--task-queue", help=f"Task queue of the workers (default {_names.DEFAULT_TASK_QUEUE!r}).")
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
    from multinode.admin import admin as _admin

    if api_url is None:
        api_url = click.prompt("Control plane address (host:port)", default=f"127.0.0.1:{_names.DEFAULT_PORT}")
        if api_key is None:
            api_key = click.prompt(
                "API key (empty for none)", default="", show_default=False, hide_input=True
            )
    result = _admin.login(
        api_url or "", api_key, namespace=namespace, task_queue=task_queue, ui_url=ui_url,
        check=not no_check,
    )
    how = "TLS with an API key" if result.uses_tls else "plaintext, no key"
    checked = f", server {result.server_version}" if result.server_version else " (not checked)"
    click.echo(f"logged in to {result.api_url} ({how}{checked}), namespace {result.namespace}")
    click.echo(f"credentials stored in {result.profile_path} (readable only by you)")
    if result.overridden_by_environment:
        click.echo("note: MULTINODE_API_URL is set in this environment and wins over the profile", err=True)


@cli.command()
def logout() -> None:
    """Remove the credentials stored by `multinode login`.

    \b
    Example:
      multinode logout
    """
    from multinode.admin import admin as _admin

    path = _admin.stored_profile_path()
    if _admin.logout():
        click.echo(f"logged out: removed {path}")
    else:
        click.echo(f"not logged in (no {path})")
    if os.environ.get("MULTINODE_API_URL"):
        click.echo("note: MULTINODE_API_URL is still set in this environment and is used", err=True)


# ----- projects and versions --------------------------------------------------------------

_LEGACY = {"ignore_unknown_options": True}


def _legacy_options(extras: Iterable[str], allowed: Iterable[str]) -> dict[str, str]:
    """The older spelling `name=value` (e.g. `project-name=P`) of this command's options."""
    names = set(allowed)
    found: dict[str, str] = {}
    for extra in extras:
        key, sep, value = extra.partition("=")
        key = key.lstrip("-")
        if sep and key in names:
            found[key] = value
        else:
            raise click.UsageError(f"unexpected argument {extra!r}")
    return found


def _option(given: str | None, legacy: dict[str, str], name: str, required: bool = False) -> str | None:
    value = given if given is not None else legacy.get(name)
    if required and not value:
        raise click.UsageError(f"give --{name}=...")
    return value


def _project_name(option: str | None, legacy: tuple[str, ...]) -> str:
    """Accept `--project-name=P` and the older spelling `project-name=P`."""
    value = _option(option, _legacy_options(legacy, ["project-name"]), "project-name", required=True)
    assert value is not None
    return value


def _echo_json(value: Any) -> None:
    from multinode.admin.admin import to_json

    click.echo(json.dumps(to_json(value), indent=2, default=repr))


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _functions_table(manifest: Any) -> None:
    rows: list[tuple[str, ...]] = [("FUNCTION", "KIND", "CPU", "MEMORY", "TIMEOUT", "MAX_CONCURRENCY", "MAX_RETRIES")]
    for spec in manifest.functions:
        o = spec.options
        rows.append((spec.name, "generator" if spec.is_generator else "function", f"{o.cpu:g}",
                     o.memory, f"{o.timeout_seconds:g} s", str(o.max_concurrency), str(o.max_retries)))
    _table(rows)


def _print_version(manifest: Any, as_json: bool) -> None:
    if as_json:
        _echo_json(manifest)
        return
    click.echo(f"project {manifest.project_name}: version {manifest.version_id}")
    _functions_table(manifest)


@cli.command(context_settings=_LEGACY)
@click.argument("path", type=click.Path(path_type=Path))
@click.argument("legacy", nargs=-1, metavar="")
@click.option("--project-name", help="Name of the new project.")
@click.option("--json", "as_json", is_flag=True, help="Print the version as JSON.")
def deploy(path: Path, legacy: tuple[str, ...], project_name: str | None, as_json: bool) -> None:
    """Deploy a tasks folder as a new project (an existing one is refused: use `upgrade`).

    \b
    Example:
      multinode deploy tasks/ --project-name=my_project
    """
    from multinode.admin import admin as _admin

    _print_version(_admin.deploy(path, _project_name(project_name, legacy)), as_json)


@cli.command(context_settings=_LEGACY)
@click.argument("path", type=click.Path(path_type=Path))
@click.argument("legacy", nargs=-1, metavar="")
@click.option("--project-name", help="Name of the existing project.")
@click.option("--deploy", "create", is_flag=True, help="Create the project if it does not exist.")
@click.option("--json", "as_json", is_flag=True, help="Print the version as JSON.")
def upgrade(path: Path, legacy: tuple[str, ...], project_name: str | None, create: bool, as_json: bool) -> None:
    """Deploy a new version of an existing project; running invocations keep their version.

    New starts use the new version unless they pin one (`--version-id`, or
    `get_deployed_function(..., version_id=...)`).

    \b
    Example:
      multinode upgrade tasks/ --project-name=my_project
      multinode upgrade tasks/ --project-name=my_project --deploy   # create it if missing
    """
    from multinode.admin import admin as _admin

    _print_version(_admin.upgrade(path, _project_name(project_name, legacy), create=create), as_json)


@cli.command(context_settings=_LEGACY)
@click.argument("legacy", nargs=-1, metavar="")
@click.option("--project-name", help="Name of the project to delete.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--wait-seconds", type=click.FloatRange(min=0), default=150.0, show_default=True,
              help="How long to wait for cancelled invocations to stop.")
def undeploy(legacy: tuple[str, ...], project_name: str | None, yes: bool, wait_seconds: float) -> None:
    """Delete a project: cancel every in-flight invocation, refuse new starts, then remove it.

    Asks for confirmation unless --yes is given. Run it again to finish an interrupted undeploy.

    \b
    Example:
      multinode undeploy --project-name=my_project --yes
    """
    from multinode.admin import admin as _admin

    name = _project_name(project_name, legacy)
    in_flight = _admin.in_flight_invocations(name)
    if not yes:
        question = f"Undeploy project {name!r}"
        if in_flight:
            question += f" and cancel its {len(in_flight)} in-flight invocation{_s(in_flight)}"
        try:
            confirmed = click.confirm(question + "?", default=False)
        except click.Abort:
            confirmed = False
        if not confirmed:
            raise CommandError("not confirmed; nothing was changed (pass --yes to skip the question)")
    result = _admin.undeploy(name, wait_seconds=wait_seconds)
    click.echo(
        f"project {name} undeployed; cancelled {len(result.cancelled)} in-flight "
        f"invocation{_s(result.cancelled)}"
    )
    if result.still_stopping:
        click.echo(
            f"note: {len(result.still_stopping)} of them were still stopping after "
            f"{wait_seconds:g} s; they end on their own", err=True,
        )


def _s(items: Any) -> str:
    return "" if len(items) == 1 else "s"


@cli.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_(as_json: bool) -> None:
    """List the deployed projects with their latest version and creation time (UTC).

    \b
    Example:
      multinode list
      multinode list --json | jq -r '.[].project_name'
    """
    from multinode.admin import admin as _admin

    projects = _admin.list_projects()
    if as_json:
        _echo_json(projects)
        return
    if not projects:
        click.echo("no projects deployed")
        return
    rows: list[tuple[str, ...]] = [("PROJECT", "LATEST VERSION", "FUNCTIONS", "CREATED (UTC)", "LATEST DEPLOYED (UTC)")]
    for p in projects:
        rows.append((
            p.project_name + (" (undeploying)" if p.closing else ""),
            p.latest_version_id,
            str(len(p.latest_version.functions)),
            _admin.format_utc(p.created_at),
            _admin.format_utc(_admin._utc(p.latest_version.created_at)),
        ))
    _table(rows)


# ----- inspection -------------------------------------------------------------------------


@cli.command(context_settings=_LEGACY)
@click.argument("legacy", nargs=-1, metavar="")
@click.option("--project-name", help="The project.")
@click.option("--version-id", help="One version (default: the latest).")
@click.option("--function-name", help="One function: its options and recent invocations.")
@click.option("--invocation-id", help="One invocation of --function-name: attempts, parent, children.")
@click.option("--limit", type=click.IntRange(min=1, max=1000), default=20, show_default=True,
              help="How many recent invocations to show.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def describe(
    legacy: tuple[str, ...],
    project_name: str | None,
    version_id: str | None,
    function_name: str | None,
    invocation_id: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Describe a project, a version, a function or one invocation. Times are UTC.

    \b
    --project-name=P                    versions, and the latest version's functions
    ... --version-id=V                  that version's functions with all their options
    ... --function-name=F               the function's options and recent invocations
    ... --function-name=F --invocation-id=I
                                        one invocation: parent, children, every attempt
                                        with start and end times, outcome and error, and
                                        its page in the Temporal Web UI

    \b
    Example:
      multinode describe --project-name=my_project --function-name=add
    """
    from multinode.admin import admin as _admin

    extra = _legacy_options(legacy, ["project-name", "version-id", "function-name", "invocation-id"])
    project = _option(project_name, extra, "project-name", required=True)
    version = _option(version_id, extra, "version-id")
    function = _option(function_name, extra, "function-name")
    invocation = _option(invocation_id, extra, "invocation-id")
    assert project is not None
    if invocation is not None:
        if function is None:
            raise click.UsageError("--invocation-id needs --function-name")
        described: Any = _admin.describe_invocation(project, function, invocation)
        if version is not None and described.version_id != version:
            raise CommandError(f"{invocation} ran version {described.version_id}, not {version}")
        _echo_json(described) if as_json else _print_invocation(described)
    elif function is not None:
        described = _admin.describe_function(project, function, version_id=version, limit=limit)
        _echo_json(described) if as_json else _print_function(described)
    elif version is not None:
        described = _admin.describe_version(project, version)
        if as_json:
            _echo_json(described)
        else:
            click.echo(f"project {project}, version {described.version_id} "
                       f"(deployed {_admin.format_utc(_admin._utc(described.created_at))})")
            _functions_table(described)
    else:
        described = _admin.describe_project(project)
        _echo_json(described) if as_json else _print_project(described)


def _print_project(d: Any) -> None:
    from multinode.admin.admin import _utc, format_utc

    state = " — being undeployed" if d.closing else ""
    click.echo(f"project {d.project_name} (created {format_utc(d.created_at)}){state}")
    click.echo(f"latest version: {d.latest.version_id}")
    click.echo(f"invocations in the Web UI: {d.web_ui_url}")
    click.echo("")
    rows: list[tuple[str, ...]] = [("VERSION", "DEPLOYED (UTC)", "FUNCTIONS")]
    for v in reversed(d.versions):
        rows.append((v.version_id, format_utc(_utc(v.created_at)), ", ".join(f.name for f in v.functions)))
    _table(rows)
    click.echo("")
    click.echo(f"functions of the latest version ({d.latest.version_id}):")
    _functions_table(d.latest)


def _print_function(d: Any) -> None:
    from multinode.admin.admin import format_utc

    spec, o = d.function, d.function.options
    click.echo(f"function {spec.name} of project {d.project_name}, version {d.version.version_id}")
    for key, value in (
        ("kind", "generator" if spec.is_generator else "function"),
        ("cpu", f"{o.cpu:g}"),
        ("memory", o.memory),
        ("timeout", f"{o.timeout_seconds:g} s"),
        ("max_concurrency", str(o.max_concurrency)),
        ("max_retries", str(o.max_retries)),
    ):
        click.echo(f"  {key + ':':<17}{value}")
    click.echo(f"invocations in the Web UI: {d.web_ui_url}")
    click.echo("")
    if not d.invocations:
        click.echo("no invocations yet")
        return
    click.echo("recent invocations (newest first):")
    rows: list[tuple[str, ...]] = [("INVOCATION", "STATUS", "VERSION", "CREATED (UTC)", "ENDED (UTC)", "PARENT")]
    for r in d.invocations:
        rows.append((r.invocation_id, r.status, r.version_id or "-", format_utc(r.created_at),
                     format_utc(r.ended_at), r.parent_invocation_id or "-"))
    _table(rows)


def _print_invocation(d: Any) -> None:
    from multinode.admin.admin import format_utc

    click.echo(f"invocation {d.invocation_id}")
    fields = [
        ("project", d.project_name),
        ("function", d.function_name),
        ("version", d.version_id),
        ("status", d.status),
        ("created", format_utc(d.created_at)),
        ("ended", format_utc(d.ended_at)),
        ("parent", d.parent_invocation_id or "-"),
        ("children", str(len(d.children)) if d.children else "none"),
        ("failed attempts", str(d.num_failed_attempts)),
        ("error", f"{d.error.type}: {d.error.message}" if d.error else "-"),
        ("Web UI", d.web_ui_url),
    ]
    for key, value in fields:
        click.echo(f"  {key + ':':<17}{value}")
    click.echo("")
    if d.attempts:
        rows: list[tuple[str, ...]] = [("ATTEMPT", "OUTCOME", "STARTED (UTC)", "ENDED (UTC)", "EXIT", "ERROR")]
        for a in d.attempts:
            error = f"{a.error.type}: {_one_line(a.error.message)}" if a.error else "-"
            rows.append((str(a.number), a.outcome, format_utc(a.started_at), format_utc(a.ended_at),
                         "-" if a.exit_code is None else str(a.exit_code), error))
        _table(rows)
    else:
        click.echo("no attempt has started yet")
    if d.children:
        click.echo("")
        click.echo("children:")
        child_rows: list[tuple[str, ...]] = [
            ("INVOCATION", "FUNCTION", "STATUS", "CREATED (UTC)", "ENDED (UTC)")
        ]
        for c in d.children:
            child_rows.append((c.invocation_id, c.function_name or "-", c.status,
                               format_utc(c.created_at), format_utc(c.ended_at)))
        _table(child_rows)
    click.echo("")
    click.echo("status history:")
    for change in d.status_history:
        click.echo(f"  {format_utc(change.at)}  {change.status}")
    if d.error is not None and d.error.traceback:
        click.echo("")
        click.echo("remote traceback:")
        click.echo(d.error.traceback.rstrip())


@cli.command(context_settings=_LEGACY)
@click.argument("legacy", nargs=-1, metavar="")
@click.option("--invocation-id", help="The invocation.")
@click.option("--project-name", help="Its project (checked when given).")
@click.option("--function-name", help="Its function (checked when given).")
@click.option("--attempt", type=click.IntRange(min=1), help="Attempt number (default: the latest).")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the attempt ends.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def logs(
    legacy: tuple[str, ...],
    invocation_id: str | None,
    project_name: str | None,
    function_name: str | None,
    attempt: int | None,
    follow: bool,
    as_json: bool,
) -> None:
    """Print everything an attempt's function wrote (stdout and stderr), also after its
    container is gone. The latest attempt by default.

    \b
    Example:
      multinode logs --project-name=my_project --function-name=add --invocation-id=inv-01...
      multinode logs --invocation-id=inv-01... --attempt 2 --follow
    """
    from multinode.admin import admin as _admin
    from multinode.admin.logs import iter_lines

    extra = _legacy_options(legacy, ["project-name", "function-name", "invocation-id", "attempt"])
    invocation = _option(invocation_id, extra, "invocation-id", required=True)
    assert invocation is not None
    if attempt is None and "attempt" in extra:
        try:
            attempt = int(extra["attempt"])
        except ValueError:
            raise click.UsageError(f"attempt={extra['attempt']!r} is not a number") from None
    stream = _admin.read_logs(
        invocation,
        project_name=_option(project_name, extra, "project-name"),
        function_name=_option(function_name, extra, "function-name"),
        attempt=attempt,
        follow=follow,
    )
    if as_json:
        for line in iter_lines(stream.chunks):
            click.echo(json.dumps({"invocation_id": stream.invocation_id, "attempt": stream.attempt,
                                   "line": line}))
        return
    click.echo(f"# attempt {stream.attempt} of {stream.invocation_id} ({stream.source})", err=True)
    for chunk in stream.chunks:
        click.echo(chunk, nl=False)  # click.echo flushes: lines appear as they are written


# ----- invoke -----------------------------------------------------------------------------


@cli.command()
@click.argument("project")
@click.argument("function")
@click.option("--args", "args_json", default="[]", help="Positional arguments as a JSON list.")
@click.option("--kwargs", "kwargs_json", default="{}", help="Keyword arguments as a JSON object.")
@click.option("--version-id", help="Run this version instead of the latest.")
@click.option("--wait", is_flag=True, help="Wait for the result and print it as JSON.")
def invoke(project: str, function: str, args_json: str, kwargs_json: str, version_id: str | None, wait: bool) -> None:
    """Start an invocation; print its id (and, with --wait, its result as JSON).

    With --wait, an invocation that fails, is cancelled or times out exits with code 4.

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
        click.echo("error: aborted", err=True)
        _finish(EXIT_ERROR)
    except click.exceptions.Exit as exc:  # --help, --version
        _finish(exc.exit_code)
    except click.ClickException as exc:
        if isinstance(exc, click.UsageError) and not isinstance(exc, click.exceptions.NoArgsIsHelpError):
            exc = _one_line_usage(exc)
        exc.show()
        _finish(exc.exit_code)
    except KeyboardInterrupt:
        _finish(EXIT_INTERRUPTED)
    except BrokenPipeError:  # `multinode logs ... | head`
        _finish(EXIT_OK)
    _finish(EXIT_OK)


if __name__ == "__main__":
    main()
