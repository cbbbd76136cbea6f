"""Fixtures shared by unit tests: the SDK's own logic over `tests.unit.fake_engine`, and the
CLI's isolated environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from multinode import _client
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


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No inherited settings: a private MULTINODE_HOME, no MULTINODE_* or TEMPORAL_* variables,
    no temporal.toml, a fresh default client (the e2e session may have set all of them)."""
    for name in list(os.environ):
        if name.startswith(("MULTINODE_", "TEMPORAL_")):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    # Temporal's own configuration file: none unless a test writes one here.
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(tmp_path / "temporal.toml"))
    monkeypatch.setenv("MULTINODE_HOME", str(home))
    _client.set_default_client(None)
    yield home
    _client.set_default_client(None)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in this process (no server), with the Fargate tests' bucket, and the test's own fake
    credentials: nothing reaches AWS or another test's endpoint."""
    import boto3
    from moto import mock_aws

    from tests.unit.scripted_fargate import BUCKET, REGION

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield
