"""What the CLI's unit tests share: a CliRunner over the real click group, an isolated
environment (no inherited MULTINODE_* settings, a private home, a fresh default client) and the
one-line-error check."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from multinode_cli.main import cli
from tests.conftest import refused_port

REPO = Path(__file__).resolve().parents[2]
INVOCATION_ID = "inv-" + "0" * 26
READ_COMMANDS = ("list", "describe", "logs", "get")


def closed_port() -> int:
    """A port where connections are refused (bound, never listened on, held while tests run)."""
    return refused_port()


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


def assert_one_line_error(result: Result, exit_code: int) -> str:
    assert result.exit_code == exit_code, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]
