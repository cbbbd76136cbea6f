"""The CLI without a control plane (click's CliRunner): help and examples, one-line errors and
exit codes, login/logout and the profile file, settings precedence, the older option spelling,
and the pieces under it (log reading, UTC rendering, describing an invocation, Web UI links)."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

import multinode
from multinode import _client
from multinode import admin as _admin
from multinode.admin import logs as _logs
from multinode.admin import profile as _profile
from multinode.contract import names
from multinode.contract.connection import ConnectionSettings, resolve_settings
from multinode.contract.records import AttemptProgress, AttemptRecord, ErrorInfo, InvocationRecord, Transition
from multinode.engine import connection as _engine
from multinode.errors import InvocationFailedError
from multinode_cli import arguments, failures, output
from multinode_cli.main import cli

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]
INVOCATION_ID = "inv-" + "0" * 26
READ_COMMANDS = ("list", "describe", "logs", "get")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens once the probe is closed


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No inherited settings: a private MULTINODE_HOME, no MULTINODE_* variables, a fresh
    default client (the e2e session may have set all of them)."""
    for name in list(os.environ):
        if name.startswith("MULTINODE_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("MULTINODE_HOME", str(home))
    _client.set_default_client(None)
    yield home
    _client.set_default_client(None)


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


def assert_one_line_error(result: Result, exit_code: int) -> str:
    assert result.exit_code == exit_code, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


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


# ----- login, logout and precedence -------------------------------------------------------


def test_login_stores_a_private_profile_and_logout_removes_it(isolated: Path) -> None:
    result = run("login", "--api-url", "cp.example.com:7233", "--api-key", "k-123",
                 "--namespace", "ns1", "--ui-url", "https://ui.example.com/", "--no-check")
    assert result.exit_code == 0, result.output
    assert "TLS" in result.stdout and "k-123" not in result.output
    path = isolated / "profile.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(isolated.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {
        "api_url": "cp.example.com:7233", "api_key": "k-123", "namespace": "ns1",
        "ui_url": "https://ui.example.com",
    }
    assert [p.name for p in isolated.iterdir()] == ["profile.json"]  # no temporary file left

    settings = resolve_settings()
    assert (settings.api_url, settings.api_key, settings.namespace, settings.source) == (
        "cp.example.com:7233", "k-123", "ns1", "profile")
    assert settings.uses_tls and "k-123" not in repr(settings)

    out = run("logout")
    assert out.exit_code == 0 and "logged out" in out.stdout
    assert not path.exists()
    assert resolve_settings().source == "default"
    again = run("logout")
    assert again.exit_code == 0 and "not logged in" in again.stdout


def test_login_replaces_a_readable_profile_atomically(isolated: Path) -> None:
    isolated.mkdir(mode=0o755)
    path = isolated / "profile.json"
    path.write_text('{"api_url": "old:1", "api_key": "old-key"}')
    path.chmod(0o644)
    assert run("login", "--api-url", "new.example:7233", "--no-check").exit_code == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"api_url": "new.example:7233"}  # the old key is gone
    assert stat.S_IMODE(isolated.stat().st_mode) == 0o700


def test_login_prompts_for_address_and_hidden_key(isolated: Path) -> None:
    result = run("login", "--no-check", input="prompted.example:7233\nsecret-key\n")
    assert result.exit_code == 0, result.output
    assert "Control plane address" in result.output and "API key" in result.output
    assert "secret-key" not in result.output
    assert json.loads((isolated / "profile.json").read_text())["api_key"] == "secret-key"
    empty_key = run("login", "--no-check", input="plain.example:7233\n\n")
    assert empty_key.exit_code == 0 and "plaintext" in empty_key.stdout
    assert "api_key" not in json.loads((isolated / "profile.json").read_text())


def test_login_rejects_a_bad_address_and_stores_nothing(isolated: Path) -> None:
    line = assert_one_line_error(run("login", "--api-url", "no-port", "--no-check"), 1)
    assert "host:port" in line
    line = assert_one_line_error(run("login", "--api-url", f"127.0.0.1:{closed_port()}"), 3)
    assert "cannot reach" in line
    assert not (isolated / "profile.json").exists()


def test_precedence_environment_then_profile_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_settings().api_url == f"127.0.0.1:{names.DEFAULT_PORT}"
    assert resolve_settings().source == "default" and not resolve_settings().uses_tls
    assert _profile.resolve_ui_url() == "http://127.0.0.1:8233"

    assert run("login", "--api-url", "profile.example:7233", "--api-key", "pk",
               "--task-queue", "tq-profile", "--ui-url", "https://profile-ui", "--no-check").exit_code == 0
    settings = resolve_settings()
    assert (settings.api_url, settings.api_key, settings.task_queue, settings.source) == (
        "profile.example:7233", "pk", "tq-profile", "profile")
    assert _profile.resolve_ui_url() == "https://profile-ui"

    monkeypatch.setenv("MULTINODE_API_URL", "env.example:7233")
    monkeypatch.setenv("MULTINODE_UI_URL", "http://env-ui:8080")
    settings = resolve_settings()
    # The environment's address comes with the environment's key only (none here): no TLS.
    assert (settings.api_url, settings.api_key, settings.source) == ("env.example:7233", None, "environment")
    assert _profile.resolve_ui_url() == "http://env-ui:8080"
    monkeypatch.setenv("MULTINODE_API_KEY", "ek")
    assert resolve_settings().api_key == "ek" and resolve_settings().uses_tls
    noted = run("login", "--api-url", "profile.example:7233", "--no-check")
    assert "MULTINODE_API_URL is set" in noted.stderr


def test_login_checks_with_tls_when_a_key_is_given(monkeypatch: pytest.MonkeyPatch, isolated: Path) -> None:
    """The key path against a fake server: the connection is made with TLS and the key."""
    seen: dict[str, Any] = {}

    class FakeService:
        async def get_system_info(self, request: Any, timeout: Any = None) -> Any:
            seen["system_info"] = True
            return type("Info", (), {"server_version": "9.9.9"})()

        async def describe_namespace(self, request: Any, timeout: Any = None) -> Any:
            seen["namespace"] = request.namespace
            return object()

    class FakeClient:
        workflow_service = FakeService()

    async def fake_connect(target: str, **kwargs: Any) -> FakeClient:
        seen["target"], seen["kwargs"] = target, kwargs
        return FakeClient()

    monkeypatch.setattr(_engine.Client, "connect", staticmethod(fake_connect))
    result = run("login", "--api-url", "cloud.example:7233", "--api-key", "secret", "--namespace", "team")
    assert result.exit_code == 0, result.output
    assert seen["target"] == "cloud.example:7233"
    assert seen["kwargs"] == {"namespace": "team", "api_key": "secret", "tls": True}
    assert seen["namespace"] == "team" and seen["system_info"]
    assert "server 9.9.9" in result.stdout and "TLS" in result.stdout
    assert json.loads((isolated / "profile.json").read_text())["api_key"] == "secret"

    # The SDK's own connection follows the same rule.
    import asyncio

    asyncio.run(_engine.connect(ConnectionSettings("x.example:1", "k", "default", "q", "profile")))
    assert seen["kwargs"]["tls"] is True and seen["kwargs"]["api_key"] == "k"
    asyncio.run(_engine.connect(ConnectionSettings("x.example:1", None, "default", "q", "profile")))
    assert seen["kwargs"]["tls"] is False and seen["kwargs"]["api_key"] is None


def test_login_with_a_key_against_a_plaintext_server_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse(target: str, **kwargs: Any) -> Any:
        raise RuntimeError("Failed client connect: InvalidMessage(InvalidContentType)\nmore")

    monkeypatch.setattr(_engine.Client, "connect", staticmethod(refuse))
    line = assert_one_line_error(run("login", "--api-url", "127.0.0.1:7233", "--api-key", "k"), 3)
    assert "TLS" in line


# ----- the pieces under the commands ------------------------------------------------------


def test_times_are_rendered_in_utc() -> None:
    moment = datetime(2025, 1, 31, 12, 0, 5, 123000, tzinfo=UTC)
    assert output.format_utc(moment) == "2025-01-31 12:00:05 UTC"
    assert output.iso_utc(moment) == "2025-01-31T12:00:05.123Z"
    assert output.format_utc(None) == "-"
    row = _admin.InvocationRow(invocation_id=INVOCATION_ID, project_name="p", function_name="f", version_id="",
                               status="SUCCEEDED", created_at=moment, ended_at=None)
    assert output.to_json([row])[0]["created_at"] == "2025-01-31T12:00:05.123Z"


class FakeEngine:
    """Answers `describe_invocation`'s three questions from a fixed record."""

    def __init__(self, record: InvocationRecord, terminated: bool, progress: AttemptProgress | None) -> None:
        self.record, self.terminated, self.progress = record, terminated, progress

    async def get_invocation(self, invocation_id: str) -> tuple[InvocationRecord, bool]:
        return self.record, self.terminated

    async def attempt_progress(self, invocation_id: str) -> AttemptProgress | None:
        return self.progress

    async def invocation_rows(self, query: str, limit: int) -> list[Any]:
        assert f'MultinodeParent = "{INVOCATION_ID}"' in query
        moment = datetime(2025, 1, 31, 12, 0, 2, tzinfo=UTC)
        return [_admin.InvocationRow(invocation_id=CHILD_ID, project_name="p", function_name="g",
                                     version_id=VERSION_ID, status="SUCCEEDED",
                                     parent_invocation_id=INVOCATION_ID, created_at=moment, ended_at=None)]


class FakeClient:
    settings = ConnectionSettings("127.0.0.1:7233", None, "default", "q", "default")

    def __init__(self, engine: FakeEngine) -> None:
        self._engine = engine

    async def engine(self) -> FakeEngine:
        return self._engine

    def run(self, coroutine: Any) -> Any:
        import asyncio

        return asyncio.run(coroutine)


CHILD_ID = "inv-" + "1" * 26
VERSION_ID = "ver-" + "1" * 26
T0 = datetime(2025, 1, 31, 12, 0, 0, 500000, tzinfo=UTC).timestamp()


def test_describe_invocation_shows_the_running_attempt_and_children(monkeypatch: pytest.MonkeyPatch) -> None:
    """The description is the public Invocation plus the attempt running now (from the worker's
    heartbeat), the children and the Web UI page; both renderings are pinned here."""
    record = InvocationRecord(
        invocation_id=INVOCATION_ID, project_name="p", function_name="f", version_id=VERSION_ID,
        parent_invocation_id=None, status="RUNNING", created_at=T0, num_failed_attempts=1,
        attempts=[AttemptRecord(1, "failed", T0 + 1, T0 + 2.25,
                                ErrorInfo("ValueError", "bad\nsecond line", "Traceback ...\n"), exit_code=1)],
        transitions=[Transition("PENDING", T0), Transition("RUNNING", T0 + 1)],
    )
    engine = FakeEngine(record, terminated=False, progress=AttemptProgress(2, "running", T0 + 3))
    described = _admin.describe_invocation("p", "f", INVOCATION_ID, client=FakeClient(engine))  # type: ignore[arg-type]
    assert described.invocation.status is multinode.InvocationStatus.RUNNING
    assert [a.number for a in described.invocation.attempts] == [1]  # finished ones only
    with pytest.raises(multinode.errors.InvocationDoesNotExistError, match=r"not an invocation of p\.g"):
        _admin.describe_invocation("p", "g", INVOCATION_ID, client=FakeClient(engine))  # type: ignore[arg-type]

    monkeypatch.setattr(_admin, "describe_invocation", lambda *a, **k: described)
    args = ["describe", "--project-name=p", "--function-name=f", f"--invocation-id={INVOCATION_ID}"]
    text = run(*args).stdout
    assert text == (
        f"invocation {INVOCATION_ID}\n"
        "  project:         p\n"
        "  function:        f\n"
        f"  version:         {VERSION_ID}\n"
        "  status:          RUNNING\n"
        "  created:         2025-01-31 12:00:00 UTC\n"
        "  ended:           -\n"
        "  parent:          -\n"
        "  children:        1\n"
        "  failed attempts: 1\n"
        "  error:           -\n"
        f"  Web UI:          http://127.0.0.1:8233/namespaces/default/workflows/{INVOCATION_ID}\n"
        "\n"
        "ATTEMPT  OUTCOME  STARTED (UTC)            ENDED (UTC)              EXIT  ERROR\n"
        "1        failed   2025-01-31 12:00:01 UTC  2025-01-31 12:00:02 UTC  1     ValueError: bad\n"
        "2        running  2025-01-31 12:00:03 UTC  -                        -     -\n"
        "\n"
        "children:\n"
        "INVOCATION                      FUNCTION  STATUS     CREATED (UTC)            ENDED (UTC)\n"
        f"{CHILD_ID}  g         SUCCEEDED  2025-01-31 12:00:02 UTC  -\n"
        "\n"
        "status history:\n"
        "  2025-01-31 12:00:00 UTC  PENDING\n"
        "  2025-01-31 12:00:01 UTC  RUNNING\n"
    )
    as_json = json.loads(run(*args, "--json").stdout)
    assert list(as_json) == [
        "invocation_id", "project_name", "function_name", "version_id", "status", "terminated",
        "created_at", "ended_at", "parent_invocation_id", "children", "attempts",
        "num_failed_attempts", "error", "status_history", "web_ui_url",
    ]
    assert (as_json["status"], as_json["terminated"], as_json["created_at"]) == (
        "RUNNING", False, "2025-01-31T12:00:00.500Z")
    assert as_json["attempts"] == [
        {"number": 1, "outcome": "failed", "started_at": "2025-01-31T12:00:01.500Z",
         "ended_at": "2025-01-31T12:00:02.750Z", "exit_code": 1,
         "error": {"type": "ValueError", "message": "bad\nsecond line", "traceback": "Traceback ...\n"}},
        {"number": 2, "outcome": "running", "started_at": "2025-01-31T12:00:03.500Z",
         "ended_at": None, "exit_code": None, "error": None},
    ]
    assert as_json["status_history"] == [{"status": "PENDING", "at": "2025-01-31T12:00:00.500Z"},
                                         {"status": "RUNNING", "at": "2025-01-31T12:00:01.500Z"}]
    assert [c["invocation_id"] for c in as_json["children"]] == [CHILD_ID]
    assert as_json["error"] is None and as_json["web_ui_url"] == described.web_ui_url


def test_web_ui_links(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ConnectionSettings("127.0.0.1:7233", None, "my ns", "q", "default")
    assert _admin.invocation_url(INVOCATION_ID, settings) == (
        f"http://127.0.0.1:8233/namespaces/my%20ns/workflows/{INVOCATION_ID}"
    )
    monkeypatch.setenv("MULTINODE_UI_URL", "https://ui.example/")
    assert _admin.list_url('MultinodeProject = "p"', settings) == (
        "https://ui.example/namespaces/my%20ns/workflows?query=MultinodeProject%20%3D%20%22p%22"
    )
    monkeypatch.setenv("MULTINODE_UI_URL", "ftp://nope")
    with pytest.raises(multinode.errors.InvalidOptionError):
        _admin.invocation_url(INVOCATION_ID, settings)


def test_local_logs_read_everything_and_follow_until_the_attempt_ends(tmp_path: Path) -> None:
    path = tmp_path / "attempt-1.log"
    source = _logs.LocalLogSource(path, poll_seconds=0.02)
    assert not source.exists()
    assert list(source.chunks(follow=False, attempt_ended=lambda: True)) == []
    ended = threading.Event()
    seen = [threading.Event() for _ in range(5)]
    streamed: list[bool] = []

    def writer() -> None:
        # Each line is written only once the reader has the previous one (without it for 10 s,
        # the lines were not streamed: stop waiting, and say so).
        with open(path, "ab", buffering=0) as handle:
            for i in range(5):
                handle.write(f"line {i} é\n".encode())
                streamed.append(streamed[-1:] != [False] and seen[i].wait(timeout=10))
            handle.write(b"tail without newline")
        ended.set()

    thread = threading.Thread(target=writer)
    thread.start()
    lines = []
    for line in _logs.iter_lines(source.chunks(follow=True, attempt_ended=ended.is_set)):
        lines.append(line)
        if len(lines) <= len(seen):
            seen[len(lines) - 1].set()
    thread.join()
    assert lines == [f"line {i} é" for i in range(5)] + ["tail without newline"]
    assert streamed == [True] * 5  # each line read as written, not once at the end
    # After the attempt: the whole file, also in pieces bigger than one read.
    monkeypatch_chunk = _logs.READ_CHUNK_BYTES
    try:
        _logs.READ_CHUNK_BYTES = 7
        text = "".join(source.chunks(follow=False, attempt_ended=lambda: True))
    finally:
        _logs.READ_CHUNK_BYTES = monkeypatch_chunk
    assert text == path.read_text()


def test_log_sources_are_pluggable(isolated: Path) -> None:
    local = _logs.find_log_source(INVOCATION_ID, 2)
    assert isinstance(local, _logs.LocalLogSource)
    assert local.path == isolated / "runs" / INVOCATION_ID / "attempt-2.log"

    class Remote:
        description = "remote"

        def exists(self) -> bool:
            return True

        def chunks(self, *, follow: bool, attempt_ended: Any) -> Any:
            yield "from elsewhere\n"

    def factory(invocation_id: str, attempt: int) -> Any:
        return Remote() if attempt == 3 else None

    _logs.register_log_source(factory)
    try:
        assert _logs.find_log_source(INVOCATION_ID, 3).description == "remote"
        assert isinstance(_logs.find_log_source(INVOCATION_ID, 1), _logs.LocalLogSource)
    finally:
        _logs._factories.remove(factory)


def test_throttled_check() -> None:
    calls: list[int] = []
    answers = iter([False, True])

    def check() -> bool:
        calls.append(1)
        return next(answers)

    ask = _logs.throttled(check, every_seconds=0.2)
    assert ask() is False and ask() is False and len(calls) == 1
    time.sleep(0.25)
    assert ask() is True and ask() is True and len(calls) == 2
