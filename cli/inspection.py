"""`multinode describe`: a project, a version, a function or one invocation."""

from __future__ import annotations

import click

from multinode import admin

from . import arguments, output
from .failures import CommandError, one_line
from .output import format_utc


@click.command(context_settings=arguments.LEGACY)
@click.argument("legacy", nargs=-1, metavar="")
@click.option("--project-name", help="The project.")
@click.option("--version-id", help="One version (default: the latest).")
@click.option("--function-name", help="One function: its options and recent invocations.")
@click.option("--invocation-id", help="One invocation of --function-name: attempts, parent, children.")
@click.option("--limit", type=click.IntRange(min=1, max=1000), default=admin.RECENT_INVOCATIONS,
              show_default=True, help="How many recent invocations to show.")
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
    --project-name=P                    versions, the latest version's functions, and the
                                        services with status, version, address, restarts, uptime
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
    extra = arguments.legacy_options(legacy, ["project-name", "version-id", "function-name", "invocation-id"])
    project = arguments.option(project_name, extra, "project-name", required=True)
    version = arguments.option(version_id, extra, "version-id")
    function = arguments.option(function_name, extra, "function-name")
    invocation = arguments.option(invocation_id, extra, "invocation-id")
    assert project is not None
    if invocation is not None:
        if function is None:
            raise click.UsageError("--invocation-id needs --function-name")
        described = admin.describe_invocation(project, function, invocation)
        if version is not None and described.invocation.version_id != version:
            raise CommandError(f"{invocation} ran version {described.invocation.version_id}, not {version}")
        output.echo_json(described) if as_json else _print_invocation(described)
    elif function is not None:
        function_description = admin.describe_function(project, function, version_id=version, limit=limit)
        output.echo_json(function_description) if as_json else _print_function(function_description)
    elif version is not None:
        manifest = admin.describe_version(project, version)
        if as_json:
            output.echo_json(manifest)
        else:
            click.echo(f"project {project}, version {manifest.version_id} "
                       f"(deployed {format_utc(manifest.created_at)})")
            output.functions_table(manifest)
    else:
        project_description = admin.describe_project(project)
        services = admin.describe_services(project) if project_description.latest.services else []
        if as_json:
            output.echo_json({**output.to_json(project_description), "services": output.to_json(services)})
        else:
            _print_project(project_description)
            output.services_table(services)


def _print_project(d: admin.ProjectDescription) -> None:
    state = " — being undeployed" if d.closing else ""
    click.echo(f"project {d.project_name} (created {format_utc(d.created_at)}){state}")
    click.echo(f"latest version: {d.latest.version_id}")
    click.echo(f"invocations in the Web UI: {d.web_ui_url}")
    click.echo("")
    rows: list[tuple[str, ...]] = [("VERSION", "DEPLOYED (UTC)", "FUNCTIONS")]
    for v in reversed(d.versions):
        rows.append((v.version_id, format_utc(v.created_at), ", ".join(f.name for f in v.functions)))
    output.table(rows)
    click.echo("")
    click.echo(f"functions of the latest version ({d.latest.version_id}):")
    output.functions_table(d.latest)


def _print_function(d: admin.FunctionDescription) -> None:
    spec, o = d.function, d.function.options
    click.echo(f"function {spec.name} of project {d.project_name}, version {d.version.version_id}")
    for key, value in (
        ("kind", spec.function_kind.value),
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
    output.table(rows)


def _print_invocation(d: admin.InvocationDescription) -> None:
    inv = d.invocation
    error = inv.error_details
    click.echo(f"invocation {inv.invocation_id}")
    fields = [
        ("project", inv.project_name),
        ("function", inv.function_name),
        ("version", inv.version_id),
        ("status", inv.status.value),
        ("created", format_utc(inv.created_at)),
        ("ended", format_utc(inv.ended_at)),
        ("parent", inv.parent_invocation_id or "-"),
        ("children", str(len(d.children)) if d.children else "none"),
        ("failed attempts", str(inv.num_failed_attempts)),
        ("error", f"{error.type}: {error.message}" if error else "-"),
        ("Web UI", d.web_ui_url),
    ]
    for key, value in fields:
        click.echo(f"  {key + ':':<17}{value}")
    click.echo("")
    if d.attempts:
        rows: list[tuple[str, ...]] = [("ATTEMPT", "OUTCOME", "STARTED (UTC)", "ENDED (UTC)", "EXIT", "ERROR")]
        for a in d.attempts:
            attempt_error = f"{a.error.type}: {one_line(a.error.message)}" if a.error else "-"
            rows.append((str(a.number), a.outcome, format_utc(a.started_at), format_utc(a.ended_at),
                         "-" if a.exit_code is None else str(a.exit_code), attempt_error))
        output.table(rows)
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
        output.table(child_rows)
    click.echo("")
    click.echo("status history:")
    for status, at in inv.status_history:
        click.echo(f"  {format_utc(at)}  {status.value}")
    if error is not None and error.traceback:
        click.echo("")
        click.echo("remote traceback:")
        click.echo(error.traceback.rstrip())
