"""Invocations through the public SDK: `invoke`, `cancel` and `get`."""

from __future__ import annotations

import json

import click

import multinode
from multinode.errors import EncodingError


@click.command()
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
    try:
        args = json.loads(args_json)
        kwargs = json.loads(kwargs_json)
    except ValueError as exc:
        raise click.UsageError(f"--args/--kwargs must be JSON: {exc}") from None
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise click.UsageError("--args takes a JSON list and --kwargs a JSON object")
    fn = multinode.get_deployed_function(project, function, version_id=version_id)
    invocation_id = fn.start(*args, **kwargs)
    click.echo(invocation_id)
    if wait:
        click.echo(json.dumps(fn.await_result(invocation_id), default=repr))


@click.command()
@click.argument("project")
@click.argument("function")
@click.argument("invocation_id")
def cancel(project: str, function: str, invocation_id: str) -> None:
    """Cancel an invocation (a finished one is left as it is).

    \b
    Example:
      multinode cancel my_project add inv-01...
    """
    fn = multinode.get_deployed_function(project, function)
    if fn.cancel(invocation_id):
        click.echo(f"{invocation_id}: cancellation requested")
    else:
        click.echo(f"{invocation_id}: already finished ({fn.get(invocation_id).status}); nothing to cancel")


@click.command()
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
    inv = multinode.get_deployed_function(project, function).get(invocation_id)
    undecodable: str | None = None
    try:
        result = inv.result
    except EncodingError as exc:
        # A class of the tasks folder this shell cannot import: show the value as it travelled.
        result, undecodable = json.loads(inv.encoded_result or "null"), str(exc)
    data = {
        "invocation_id": inv.invocation_id,
        "status": inv.status.value,
        "result": result,
        **({"result_not_decodable_here": undecodable} if undecodable else {}),
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
