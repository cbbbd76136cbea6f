"""How the CLI fails: documented exit codes, and every error as one line on stderr starting
with "error:" (a usage error also says where the help is)."""

from __future__ import annotations

import os
from typing import Any

import click

from multinode.errors import ControlPlaneUnavailableError, InvocationError, MultinodeError

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


def one_line(text: str) -> str:
    """The first non-blank line, stripped."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


class CommandError(click.ClickException):
    """One line on stderr and a documented exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(one_line(message) or "failed")
        self.exit_code = exit_code  # type: ignore[misc]  # click declares it a ClassVar

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


class OneLineUsageError(click.UsageError):
    """click's usage errors, as one line that says where the help is."""

    exit_code = EXIT_USAGE

    def show(self, file: Any = None) -> None:
        command = self.ctx.command_path if self.ctx is not None else "multinode"
        click.echo(f"error: {one_line(self.format_message())} (see `{command} --help`)", err=True)


def one_line_usage(exc: click.UsageError) -> OneLineUsageError:
    if isinstance(exc, OneLineUsageError):
        return exc
    return OneLineUsageError(exc.format_message(), ctx=exc.ctx)


def command_error(exc: Exception) -> CommandError:
    """What a command's exception becomes: its exit code and one line."""
    if isinstance(exc, ControlPlaneUnavailableError):
        message = one_line(str(exc))
        if "multinode dev" not in message and "credentials" not in message:
            message += "; to run a control plane on this machine: `multinode dev`"
        return CommandError(message, EXIT_UNAVAILABLE)
    if isinstance(exc, InvocationError):
        return CommandError(str(exc), EXIT_INVOCATION)
    if isinstance(exc, MultinodeError):
        return CommandError(str(exc) or type(exc).__name__)
    return CommandError(
        f"unexpected {type(exc).__name__}: {one_line(str(exc))} (set {ENV_DEBUG}=1 to see the traceback)"
    )


def shows_traceback(exc: Exception) -> bool:
    """Whether `exc` goes up with its traceback: an unexpected error, when MULTINODE_DEBUG is set."""
    return not isinstance(exc, MultinodeError) and bool(os.environ.get(ENV_DEBUG))
