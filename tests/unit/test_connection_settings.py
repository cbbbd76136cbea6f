"""Which connection a process uses: Temporal's environment configuration (`TEMPORAL_*`
variables, `temporal.toml` profiles) under the `multinode login` profile and Multinode's
variables; the arguments of `Client.connect` built from it; and the same connection handed to a
function's process."""

from __future__ import annotations

from pathlib import Path

import pytest

from multinode.admin.profile import save_profile
from multinode.contract.connection import (
    ConnectionSettings,
    TlsSettings,
    connection_environment,
)
from multinode.engine import connection as _engine
from multinode.errors import InvalidOptionError

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("isolated")]

TOML = """
[profile.default]
address = "toml-default.example:7233"
namespace = "from-toml"
api_key = "toml-key"

[profile.self_hosted]
address = "temporal.internal:7233"
[profile.self_hosted.tls]
server_name = "temporal.internal"
server_ca_cert_path = "{ca}"
client_cert_path = "{cert}"
client_key_path = "{key}"
"""


@pytest.fixture
def pem_files(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for name in ("ca", "cert", "key"):
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_text(f"-----BEGIN {name.upper()}-----\n{name}-data\n-----END-----\n")
    return files


@pytest.fixture
def temporal_toml(tmp_path: Path, pem_files: dict[str, Path]) -> Path:
    path = tmp_path / "temporal.toml"  # where the `isolated` fixture points TEMPORAL_CONFIG_FILE
    path.write_text(TOML.format(**{k: str(v) for k, v in pem_files.items()}))
    return path


def test_temporal_configuration_is_used_when_nothing_of_multinode_is_set(
    temporal_toml: Path, monkeypatch: pytest.MonkeyPatch, pem_files: dict[str, Path]
) -> None:
    settings = _engine.resolve_settings()
    assert (settings.api_url, settings.namespace, settings.api_key, settings.source) == (
        "toml-default.example:7233", "from-toml", "toml-key", "temporal config")
    assert settings.uses_tls and not settings.uses_mutual_tls  # a key turns TLS on, as in Temporal

    monkeypatch.setenv("TEMPORAL_PROFILE", "self_hosted")
    settings = _engine.resolve_settings()
    assert settings.api_url == "temporal.internal:7233" and settings.api_key is None
    assert settings.uses_mutual_tls and settings.tls is not None
    assert settings.tls.client_key == pem_files["key"] and settings.tls.server_name == "temporal.internal"
    arguments = _engine.connect_arguments(settings)
    tls = arguments["tls"]
    assert (tls.client_cert, tls.client_private_key, tls.server_root_ca_cert, tls.domain) == (
        pem_files["cert"].read_bytes(), pem_files["key"].read_bytes(), pem_files["ca"].read_bytes(),
        "temporal.internal")

    # The TEMPORAL_* variables win over the file, field by field (Temporal's own rule).
    monkeypatch.setenv("TEMPORAL_ADDRESS", "override.example:7233")
    monkeypatch.setenv("TEMPORAL_TLS", "false")
    settings = _engine.resolve_settings()
    assert settings.api_url == "override.example:7233" and not settings.uses_tls


def test_login_profile_wins_over_temporal_configuration_and_multinode_variables_over_both(
    temporal_toml: Path, monkeypatch: pytest.MonkeyPatch, pem_files: dict[str, Path]
) -> None:
    save_profile({"api_url": "profile.example:7233", "tls_server_ca_cert": str(pem_files["ca"])})
    settings = _engine.resolve_settings()
    # The profile's address comes with the profile's credentials only: not the toml's key.
    assert (settings.api_url, settings.api_key, settings.namespace, settings.source) == (
        "profile.example:7233", None, "default", "profile")
    assert settings.uses_tls and not settings.uses_mutual_tls

    monkeypatch.setenv("MULTINODE_API_URL", "env.example:7233")
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(pem_files["cert"]))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(pem_files["key"]))
    monkeypatch.setenv("MULTINODE_NAMESPACE", "ns-env")
    settings = _engine.resolve_settings()
    # No file is read: the toml's key and the profile's CA stay out; Temporal's TLS variables apply.
    assert (settings.api_url, settings.api_key, settings.namespace, settings.source) == (
        "env.example:7233", None, "ns-env", "environment")
    assert settings.uses_mutual_tls and settings.tls is not None and settings.tls.server_ca_cert is None


def test_a_function_process_connects_exactly_as_its_worker(
    temporal_toml: Path, monkeypatch: pytest.MonkeyPatch, pem_files: dict[str, Path]
) -> None:
    worker_env = {  # as the CloudFormation stack gives them (the key from a secret, as data)
        "TEMPORAL_ADDRESS": "temporal.internal:7233", "TEMPORAL_NAMESPACE": "team",
        "TEMPORAL_API_KEY": "api-secret", "TEMPORAL_TLS_SERVER_NAME": "temporal.internal",
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(pem_files["ca"]),
        "TEMPORAL_TLS_CLIENT_CERT_PATH": str(pem_files["cert"]),
        "TEMPORAL_TLS_CLIENT_KEY_DATA": pem_files["key"].read_text(),
    }
    for name, value in worker_env.items():
        monkeypatch.setenv(name, value)
    worker = _engine.resolve_settings()
    assert (worker.api_url, worker.namespace, worker.uses_mutual_tls) == ("temporal.internal:7233", "team", True)
    public, secret = connection_environment(worker)
    assert not any("BEGIN" in value or "secret" in value or value.endswith(".pem") for value in public.values())
    assert set(secret) == {"MULTINODE_API_KEY", "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
                           "TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_DATA"}

    # The function's process: only what the worker handed it, and a temporal.toml of its own
    # (the default profile names another address and key) that must not matter.
    for name in worker_env:
        monkeypatch.delenv(name)
    for name, value in {**public, **secret}.items():
        monkeypatch.setenv(name, value)
    child = _engine.resolve_settings()
    assert _engine.connect_arguments(child) == _engine.connect_arguments(worker)
    assert (child.api_url, child.namespace, child.task_queue) == (
        worker.api_url, worker.namespace, worker.task_queue)


def test_bad_tls_settings_are_refused_at_the_door(
    monkeypatch: pytest.MonkeyPatch, pem_files: dict[str, Path], tmp_path: Path
) -> None:
    monkeypatch.setenv("MULTINODE_API_URL", "env.example:7233")
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(pem_files["cert"]))
    with pytest.raises(InvalidOptionError, match="client certificate was given without its key"):
        _engine.resolve_settings()

    missing = ConnectionSettings("x:1", None, "default", "q", "environment",
                                 TlsSettings(client_cert=tmp_path / "gone.pem", client_key=pem_files["key"]))
    with pytest.raises(InvalidOptionError, match=r"TLS client certificate .*gone\.pem .*cannot be read"):
        _engine.connect_arguments(missing)

    (tmp_path / "temporal.toml").write_text("[[[")
    monkeypatch.delenv("MULTINODE_API_URL")
    monkeypatch.delenv("TEMPORAL_TLS_CLIENT_CERT_PATH")
    with pytest.raises(InvalidOptionError, match="Temporal's environment configuration"):
        _engine.resolve_settings()


def test_no_secret_appears_in_the_settings_repr(pem_files: dict[str, Path]) -> None:
    tls = TlsSettings(client_cert=b"-----BEGIN CERT", client_key=b"-----BEGIN PRIVATE KEY secret")
    settings = ConnectionSettings("x:1", "api-secret", "default", "q", "environment", tls)
    assert "secret" not in repr(settings) and "<data>" in repr(settings)


def test_plain_settings_connect_as_before() -> None:
    assert _engine.connect_arguments(ConnectionSettings("x:1", None, "ns", "q", "default")) == {
        "namespace": "ns", "api_key": None, "tls": False}
    assert _engine.connect_arguments(ConnectionSettings("x:1", "k", "ns", "q", "default"))["tls"] is True
    off = ConnectionSettings("x:1", "k", "ns", "q", "default", TlsSettings(enabled=False))
    assert _engine.connect_arguments(off)["tls"] is False
