"""The CLI without a control plane (click's CliRunner): help and examples, one-line usage errors,
errors and exit codes, the older option spelling."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest

import multinode
from multinode import admin as _admin
from multinode.contract import names
from multinode.errors import InvocationFailedError
from multinode_cli import arguments, failures
from multinode_cli.main import cli
from tests.unit.cli_support import (
    INVOCATION_ID,
    READ_COMMANDS,
    REPO,
    assert_one_line_error,
    closed_port,
    run,
)

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("isolated")]


# ----- help -------------------------------------------------------------------------------


def test_every_command_has_help_with_an_example() -> None:
    assert set(cli.commands) >= {
        "login", "logout", "deploy", "upgrade", "undeploy", "list", "describe", "logs",
        "invoke", "cancel", "get", "dev", "worker",
    }
    for name in cli.commands:
        result = run(name, "--help")
        assert result.exit_code == 0, (name, result.output)
        assert "Example" in result.output, name
        assert f"multinode {name}" in result.output or name in ("dev", "worker"), name
        assert "-h, --help" in result.output


def test_main_help_documents_the_exit_codes() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for code, meaning in [("0", "success"), ("1", "an error"), ("2", "a usage error"),
                          ("3", "unreachable"), ("4", "invocation failed")]:
        assert any(line.strip().startswith(code) and meaning in line
                   for line in result.output.splitlines()), (code, result.output)
    assert "Example" in result.output
    assert failures.EXIT_UNAVAILABLE == 3 and failures.EXIT_INVOCATION == 4


def test_read_commands_offer_json() -> None:
    for name in READ_COMMANDS:
        assert "--json" in run(name, "--help").output, name


# ----- usage errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["describe"], "--project-name"),
        (["undeploy"], "--project-name"),
        (["deploy"], "PATH"),
        (["deploy", "tasks/", "colour=red"], "unexpected argument 'colour=red'"),
        (["describe", "--project-name=p", "--invocation-id", INVOCATION_ID], "needs --function-name"),
        (["logs"], "--invocation-id"),
        (["logs", "--invocation-id", INVOCATION_ID, "--attempt", "0"], "attempt"),
        (["invoke", "p"], "FUNCTION"),
        (["invoke", "p", "f", "--args", "{not json"], "must be JSON"),
        (["invoke", "p", "f", "--args", "{}"], "JSON list"),
        (["describe", "--project-name=p", "--limit", "0"], "limit"),
        (["no-such-command"], "No such command"),
        (["--no-such-option"], "No such option"),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(args: list[str], fragment: str) -> None:
    line = assert_one_line_error(run(*args), 2)
    assert fragment in line
    assert "--help" in line


def test_usage_errors_are_one_line_from_the_console_entry_point() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "multinode_cli.main", "describe"], capture_output=True, text=True, check=False,
        cwd=REPO, timeout=30, env={**os.environ, "MULTINODE_HOME": "/nonexistent-mn-home"},
    )
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [
        "error: give --project-name=... (see `python -m multinode_cli.main describe --help`)"
    ]


def test_legacy_project_name_spelling() -> None:
    assert arguments.project_name(None, ("project-name=p1",)) == "p1"
    assert arguments.project_name(None, ("--project-name=p1",)) == "p1"
    assert arguments.project_name("p2", ()) == "p2"
    assert arguments.project_name("p2", ("project-name=p1",)) == "p2"  # the option wins
    with pytest.raises(click.UsageError, match="unexpected argument 'project=p'"):
        arguments.project_name(None, ("project=p",))
    with pytest.raises(click.UsageError, match="unexpected argument 'stray'"):
        arguments.project_name(None, ("stray",))
    with pytest.raises(click.UsageError, match="--project-name"):
        arguments.project_name(None, ())
    extra = arguments.legacy_options(
        ["project-name=p", "function-name=f", "invocation-id=" + INVOCATION_ID],
        ["project-name", "function-name", "invocation-id"],
    )
    assert extra == {"project-name": "p", "function-name": "f", "invocation-id": INVOCATION_ID}


def test_legacy_spelling_reaches_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []

    def describe_function(project: str, function: str, **kw: Any) -> Any:
        calls.append((project, function, kw))
        raise multinode.errors.ProjectDoesNotExistError(f"no project named {project!r}")

    monkeypatch.setattr(_admin, "describe_function", describe_function)
    result = run("describe", "project-name=legacy_p", "function-name=f")
    assert_one_line_error(result, 1)
    assert calls == [("legacy_p", "f", {"version_id": None, "limit": 20})]


# ----- errors and exit codes --------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["list"],
        ["describe", "--project-name=p"],
        ["invoke", "p", "f", "--args", "[1]"],
        ["logs", "--invocation-id", INVOCATION_ID],
        ["undeploy", "project-name=p", "--yes"],
        ["upgrade", "tasks/", "--project-name=p"],
    ],
)
def test_unreachable_control_plane_is_one_line_and_exit_3(
    args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = closed_port()
    monkeypatch.setattr(names, "DEFAULT_PORT", port)  # the default source: a local `multinode dev`
    if args[0] == "upgrade":
        args = [args[0], str(REPO / "tasks"), *args[2:]]
    line = assert_one_line_error(run(*args), 3)  # a hang would meet the test's timeout
    assert f"127.0.0.1:{port}" in line
    assert "multinode dev" in line


def test_unreachable_from_the_environment_says_how_to_start_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULTINODE_API_URL", f"127.0.0.1:{closed_port()}")
    line = assert_one_line_error(run("list"), 3)
    assert "MULTINODE_API_URL" in line and "multinode dev" in line


def test_malformed_address_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULTINODE_API_URL", "not an address")
    line = assert_one_line_error(run("list"), 1)
    assert "is not host:port" in line


def test_unexpected_errors_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(**_: Any) -> Any:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(_admin, "list_projects", boom)
    line = assert_one_line_error(run("list"), 1)
    assert line == "error: unexpected RuntimeError: boom (set MULTINODE_DEBUG=1 to see the traceback)"
    monkeypatch.setenv("MULTINODE_DEBUG", "1")
    result = run("list")
    assert isinstance(result.exception, RuntimeError)


def test_failed_invocation_exits_4_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeFunction:
        def start(self, *args: Any, **kwargs: Any) -> str:
            assert args == (1, 2) and kwargs == {"k": "v"}
            return INVOCATION_ID

        def await_result(self, invocation_id: str) -> Any:
            raise InvocationFailedError(
                f"invocation {invocation_id} failed: ValueError: bad\n\nRemote traceback:\n  File x",
                invocation_id=invocation_id,
            )

    monkeypatch.setattr(multinode, "get_deployed_function", lambda *a, **k: FakeFunction())
    result = run("invoke", "p", "f", "--args", "[1, 2]", "--kwargs", '{"k": "v"}', "--wait")
    line = assert_one_line_error(result, 4)
    assert line == f"error: invocation {INVOCATION_ID} failed: ValueError: bad"
    assert result.stdout.strip() == INVOCATION_ID


def test_undeploy_asks_for_confirmation(monkeypatch: pytest.MonkeyPatch) -> None:
    undeployed: list[str] = []
    monkeypatch.setattr(_admin, "in_flight_invocations", lambda name: [INVOCATION_ID])
    monkeypatch.setattr(
        _admin, "undeploy",
        lambda name, **kw: undeployed.append(name) or _admin.UndeployResult(name, [INVOCATION_ID], []),
    )
    refused = run("undeploy", "--project-name=p", input="n\n")
    assert "Undeploy project 'p' and cancel its 1 in-flight invocation?" in refused.output
    assert_one_line_error(refused, 1)
    assert "nothing was changed" in refused.stderr and undeployed == []
    no_input = run("undeploy", "--project-name=p")  # no terminal to answer: refused, not hung
    assert_one_line_error(no_input, 1)
    assert undeployed == []
    confirmed = run("undeploy", "--project-name=p", input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert undeployed == ["p"]
    assert "project p undeployed; cancelled 1 in-flight invocation" in confirmed.stdout
    assert run("undeploy", "project-name=q", "--yes").exit_code == 0
    assert undeployed == ["p", "q"]


def test_console_entry_point_exits_cleanly_after_connecting(tmp_path: Path) -> None:
    """A short-lived process that used the Temporal client ends without a crash (issue 300)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MULTINODE_")}
    env.update(MULTINODE_HOME=str(tmp_path), MULTINODE_API_URL=f"127.0.0.1:{closed_port()}")
    for _ in range(3):
        completed = subprocess.run([sys.executable, "-m", "multinode_cli.main", "list"], capture_output=True,
                                   text=True, cwd=REPO, timeout=30, env=env, check=False)
        assert completed.returncode == 3, completed.stderr
        assert len(completed.stderr.strip().splitlines()) == 1
        assert "Traceback" not in completed.stderr
