"""`connect` waits out a server that has opened its port but is still starting, and only that."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from multinode.contract.connection import ConnectionSettings
from multinode.engine import connection
from multinode.errors import ControlPlaneUnavailableError

pytestmark = pytest.mark.timeout(30)

SETTINGS = ConnectionSettings("127.0.0.1:7233", None, "default", "q", "default")


def scripted_connect(answers: list[BaseException | str], calls: list[int]) -> Any:
    async def fake_connect(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        answer = answers.pop(0) if answers else "client"
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return fake_connect


def test_a_starting_server_is_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    starting = RuntimeError('Failed client connect: Status { message: "Frontend is not healthy yet" }')
    monkeypatch.setattr(connection.Client, "connect", scripted_connect([starting, starting], calls))
    assert asyncio.run(connection.connect(SETTINGS)) == "client"
    assert len(calls) == 3


def test_any_other_failure_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    refused = RuntimeError("Failed client connect: tcp connect error: Connection refused")
    monkeypatch.setattr(connection.Client, "connect", scripted_connect([refused], calls))
    with pytest.raises(ControlPlaneUnavailableError, match="Connection refused"):
        asyncio.run(connection.connect(SETTINGS))
    assert len(calls) == 1


def test_a_server_that_never_gets_healthy_is_reported_with_its_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    starting = RuntimeError("Frontend is not healthy yet")
    monkeypatch.setattr(connection, "CONNECT_TIMEOUT_SECONDS", 0.5)
    monkeypatch.setattr(connection.Client, "connect", scripted_connect([starting] * 1000, calls))
    with pytest.raises(ControlPlaneUnavailableError, match="not healthy yet"):
        asyncio.run(connection.connect(SETTINGS))
    assert len(calls) > 1
