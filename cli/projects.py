"""Projects and versions: `deploy`, `upgrade`, `undeploy` and `list`."""

from __future__ import annotations

from pathlib import Path

import click

from multinode import admin

from . import arguments, output
from .failures import CommandError


def _print_version(manifest: admin.VersionManifest, as_json: bool) -> None:
    services = (
        admin.wait_for_services(manifest.project_name, manifest.version_id) if manifest.services else []
    )
    if as_json:
        output.echo_json({**output.to_json(manifest), "service_states": output.to_json(services)})
        return
    click.echo(f"project {manifest.project_name}: version {manifest.version_id}")
    output.functions_table(manifest)
    output.services_table(services)


@click.command(context_settings=arguments.LEGACY)
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
    _print_version(admin.deploy(path, arguments.project_name(project_name, legacy)), as_json)


@click.command(context_settings=arguments.LEGACY)
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
    _print_version(admin.upgrade(path, arguments.project_name(project_name, legacy), create=create), as_json)


@click.command(context_settings=arguments.LEGACY)
@click.argument("legacy", nargs=-1, metavar="")
@click.option("--project-name", help="Name of the project to delete.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--wait-seconds", type=click.FloatRange(min=0), default=admin.UNDEPLOY_WAIT_SECONDS,
              show_default=True, help="How long to wait for cancelled invocations to stop.")
def undeploy(legacy: tuple[str, ...], project_name: str | None, yes: bool, wait_seconds: float) -> None:
    """Delete a project: cancel every in-flight invocation, refuse new starts, then remove it.

    Asks for confirmation unless --yes is given. Run it again to finish an interrupted undeploy.

    \b
    Example:
      multinode undeploy --project-name=my_project --yes
    """
    name = arguments.project_name(project_name, legacy)
    in_flight = admin.in_flight_invocations(name)
    if not yes:
        question = f"Undeploy project {name!r}"
        if in_flight:
            question += f" and cancel its {len(in_flight)} in-flight invocation{output.plural(in_flight)}"
        try:
            confirmed = click.confirm(question + "?", default=False)
        except click.Abort:
            confirmed = False
        if not confirmed:
            raise CommandError("not confirmed; nothing was changed (pass --yes to skip the question)")
    result = admin.undeploy(name, wait_seconds=wait_seconds)
    click.echo(
        f"project {name} undeployed; cancelled {len(result.cancelled)} in-flight "
        f"invocation{output.plural(result.cancelled)}"
    )
    if result.services_stopped:
        click.echo(f"stopped service{output.plural(result.services_stopped)} "
                   f"{', '.join(result.services_stopped)}")
    if result.services_still_stopping:
        click.echo(f"note: service{output.plural(result.services_still_stopping)} "
                   f"{', '.join(result.services_still_stopping)} still stopping after {wait_seconds:g} s "
                   f"(is a worker running?); they stop when one does", err=True)
    if result.still_stopping:
        click.echo(
            f"note: {len(result.still_stopping)} of them were still stopping after "
            f"{wait_seconds:g} s; they end on their own", err=True,
        )


@click.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_(as_json: bool) -> None:
    """List the deployed projects with their latest version and creation time (UTC).

    \b
    Example:
      multinode list
      multinode list --json | jq -r '.[].project_name'
    """
    projects = admin.list_projects()
    if as_json:
        output.echo_json(projects)
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
            output.format_utc(p.created_at),
            output.format_utc(p.latest_version.created_at),
        ))
    output.table(rows)
