"""Fixtures shared by the unit tests of the SDK's own logic (over `tests.unit.fake_engine`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from multinode._client import Client
from tests.unit.fake_engine import FakeEngine


@pytest.fixture
def outside_a_function(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not inside a running function: no inherited project, version or parent."""
    for name in ("MULTINODE_PROJECT", "MULTINODE_VERSION_ID", "MULTINODE_INVOCATION_ID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def client(engine: FakeEngine) -> Iterator[Client[FakeEngine]]:
    """A client over the test module's `engine` fixture, closed after the test."""
    client = Client(engine=engine)
    yield client
    client.close()
