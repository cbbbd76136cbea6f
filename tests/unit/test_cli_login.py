"""`multinode login` / `logout` without a control plane: the private profile file, prompts, TLS
when a key is given, and the precedence of environment, profile and default."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from multinode.admin import profile as _profile
from multinode.contract import names
from multinode.contract.connection import ConnectionSettings, resolve_settings
from multinode.engine import connection as _engine
from tests.unit.cli_support import (
    assert_one_line_error,
    closed_port,
    run,
)

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("isolated")]


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
