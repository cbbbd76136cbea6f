"""The older spelling of options, `name=value` (e.g. `project-name=P`), which the commands
that take `--project-name` and friends still accept; the `--name=value` spelling wins."""

from __future__ import annotations

from collections.abc import Iterable

import click

# The context settings of a command that accepts the older spelling: its extra arguments land in
# a `legacy` argument instead of being refused by click.
LEGACY = {"ignore_unknown_options": True}


def legacy_options(extras: Iterable[str], allowed: Iterable[str]) -> dict[str, str]:
    """The `name=value` arguments among `extras`, for the option names in `allowed`."""
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


def option(given: str | None, legacy: dict[str, str], name: str, required: bool = False) -> str | None:
    value = given if given is not None else legacy.get(name)
    if required and not value:
        raise click.UsageError(f"give --{name}=...")
    return value


def project_name(given: str | None, legacy: tuple[str, ...]) -> str:
    """Accept `--project-name=P` and the older spelling `project-name=P`."""
    value = option(given, legacy_options(legacy, ["project-name"]), "project-name", required=True)
    assert value is not None
    return value
