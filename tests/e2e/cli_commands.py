"""Running CLI commands in-process (click's CliRunner) or as a process, for the e2e CLI tests."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from click.testing import CliRunner, Result

from multinode_cli.main import cli
from tests.conftest import REPO, ControlPlane


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


def ok(*args: str, input: str | None = None) -> Result:
    result = run(*args, input=input)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result


def ok_json(*args: str) -> Any:
    return json.loads(ok(*args, "--json").stdout)


def fails(exit_code: int, *args: str, input: str | None = None) -> str:
    result = run(*args, input=input)
    assert result.exit_code == exit_code, (args, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def cli_process(control_plane: ControlPlane, *args: str, **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "multinode_cli.main", *args], env=control_plane.env, cwd=REPO,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


# A tasks folder whose functions report which version ran them.
VERSIONED = """
from multinode import Multinode
import time
mn = Multinode()
VERSION = {version!r}

@mn.function()
def which(seconds=0.0):
    time.sleep(seconds)
    return VERSION

@mn.function()
def forever():
    while True:
        time.sleep(0.05)
"""
