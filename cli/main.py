"""`multinode`: manage the control plane, deploy tasks folders, inspect and invoke functions.

A thin shell over the public SDK (`multinode.admin`, `multinode.get_deployed_function`, and
`temporal_workers` to run a worker): every command parses its options, calls one SDK function
and prints the answer, as text or, with `--json`, as JSON for scripts. Times are UTC and marked
as such. The commands live in modules by what they act on (`credentials`, `projects`,
`inspection`, `logs`, `invocations`, `dev`); `output` renders, `failures` maps errors to one
line and an exit code, `arguments` reads the older `name=value` spelling of options.

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

import os
import sys
from typing import Any, NoReturn

import click

from . import credentials, dev, inspection, invocations, logs, projects
from .failures import (
    EXIT_CODES_HELP,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    CommandError,
    command_error,
    one_line_usage,
    shows_traceback,
)


class _Group(click.Group):
    """Every failure of a command as one line and its exit code (see `failures`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:
            raise one_line_usage(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:
            raise one_line_usage(exc) from None
        except (click.ClickException, click.exceptions.Exit, BrokenPipeError):
            raise
        except click.Abort:
            raise CommandError("aborted") from None
        except Exception as exc:
            if shows_traceback(exc):
                raise
            raise command_error(exc) from None


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


for _command in (
    dev.dev, dev.worker,
    credentials.login, credentials.logout,
    projects.deploy, projects.upgrade, projects.undeploy, projects.list_,
    inspection.describe,
    logs.logs,
    invocations.invoke, invocations.cancel, invocations.get,
):
    cli.add_command(_command)


def _finish(code: int) -> NoReturn:
    # The Temporal client's native threads can crash interpreter teardown in short-lived
    # processes (temporalio sdk-python issue 300): flush and leave without it.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`multinode logs ... | head`)
            pass
    os._exit(code)


def main() -> NoReturn:
    """The console entry point: runs a command, then leaves without interpreter teardown."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort as exc:
        # click turns Ctrl-C inside a command into Abort (raised from the KeyboardInterrupt).
        if isinstance(exc.__cause__, KeyboardInterrupt):
            _finish(EXIT_INTERRUPTED)
        click.echo("error: aborted", err=True)
        _finish(EXIT_ERROR)
    except click.exceptions.Exit as exc:  # --help, --version
        _finish(exc.exit_code)
    except click.ClickException as exc:
        if isinstance(exc, click.UsageError) and not isinstance(exc, click.exceptions.NoArgsIsHelpError):
            exc = one_line_usage(exc)
        exc.show()
        _finish(exc.exit_code)
    except KeyboardInterrupt:
        _finish(EXIT_INTERRUPTED)
    except BrokenPipeError:  # `multinode logs ... | head`
        _finish(EXIT_OK)
    _finish(EXIT_OK)


if __name__ == "__main__":
    main()
