"""`multinode logs`: what an attempt's function wrote, also after its container is gone."""

from __future__ import annotations

import json

import click

from multinode import admin

from . import arguments


@click.command(context_settings=arguments.LEGACY)
@click.argument("legacy", nargs=-1, metavar="")
@click.option("--invocation-id", help="The invocation.")
@click.option("--project-name", help="Its project (checked when given).")
@click.option("--function-name", help="Its function (checked when given).")
@click.option("--service-name", help="A service of --project-name instead of an invocation.")
@click.option("--attempt", type=click.IntRange(min=1), help="Attempt number (default: the latest).")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the attempt ends.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def logs(
    legacy: tuple[str, ...],
    invocation_id: str | None,
    project_name: str | None,
    function_name: str | None,
    service_name: str | None,
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
      multinode logs --project-name=my_project --service-name=api --follow
    """
    extra = arguments.legacy_options(legacy, ["project-name", "function-name", "invocation-id", "attempt"])
    if service_name is not None:
        _service_logs(arguments.option(project_name, extra, "project-name", required=True), service_name,
                      follow, as_json)
        return
    invocation = arguments.option(invocation_id, extra, "invocation-id", required=True)
    assert invocation is not None
    if attempt is None and "attempt" in extra:
        try:
            attempt = int(extra["attempt"])
        except ValueError:
            raise click.UsageError(f"attempt={extra['attempt']!r} is not a number") from None
    stream = admin.read_logs(
        invocation,
        project_name=arguments.option(project_name, extra, "project-name"),
        function_name=arguments.option(function_name, extra, "function-name"),
        attempt=attempt,
        follow=follow,
    )
    if as_json:
        for line in admin.iter_lines(stream.chunks):
            click.echo(json.dumps({"invocation_id": stream.invocation_id, "attempt": stream.attempt,
                                   "line": line}))
        return
    click.echo(f"# attempt {stream.attempt} of {stream.invocation_id} ({stream.source})", err=True)
    for chunk in stream.chunks:
        click.echo(chunk, nl=False)  # click.echo flushes: lines appear as they are written


def _service_logs(project_name: str | None, service_name: str, follow: bool, as_json: bool) -> None:
    assert project_name is not None
    stream = admin.read_service_logs(project_name, service_name, follow=follow)
    if as_json:
        for line in admin.iter_lines(stream.chunks):
            click.echo(json.dumps({"project_name": project_name, "service_name": service_name, "line": line}))
        return
    click.echo(f"# service {service_name} of {project_name} ({stream.source})", err=True)
    for chunk in stream.chunks:
        click.echo(chunk, nl=False)
