"""Mutual TLS for real: a CA and certificates made here, a proxy that requires a client
certificate in front of the dev server, and the CLI, the SDK, a worker and a function's nested
invocation all connecting through it with Temporal's own TLS variables (or `multinode login`);
a client without the certificate gets one clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from multinode import _client, errors
from tests.conftest import REPO, ControlPlane, write_tasks
from tests.e2e.tls_proxy import SERVER_NAME, Certificates, MutualTlsProxy, make_certificates

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

TASKS = '''
from multinode import Multinode

mn = Multinode()


@mn.function()
def square(x):
    return x * x


@mn.function()
def squares_nested(x):
    """Starts `square` from inside the function's process: the nested call connects with the
    connection the worker handed it (through the proxy, with the client certificate)."""
    return square.call_remote(x) + 1
'''


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def proxy(control_plane: ControlPlane, certificates: Certificates) -> Iterator[MutualTlsProxy]:
    with MutualTlsProxy(control_plane.address, certificates) as running:
        yield running


def tls_env(proxy: MutualTlsProxy, certificates: Certificates, *, client_cert: bool = True) -> dict[str, str]:
    env = {
        "MULTINODE_API_URL": proxy.address,
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(certificates.ca_cert),
    }
    if client_cert:
        env |= {
            "TEMPORAL_TLS_CLIENT_CERT_PATH": str(certificates.client_cert),
            "TEMPORAL_TLS_CLIENT_KEY_PATH": str(certificates.client_key),
        }
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MULTINODE_API", "TEMPORAL_"))}
    return subprocess.run([sys.executable, "-m", "multinode_cli.main", *args], env={**clean, **env},
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def sdk_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The SDK of this process with its connection from the environment given in the test."""
    _client.set_default_client(None)
    yield monkeypatch
    monkeypatch.undo()
    _client.set_default_client(None)


def test_cli_sdk_worker_and_nested_calls_work_through_mutual_tls(
    control_plane: ControlPlane, proxy: MutualTlsProxy, certificates: Certificates,
    tmp_path: Path, sdk_env: pytest.MonkeyPatch,
) -> None:
    queue = f"mtls-{uuid.uuid4().hex[:8]}"
    env = {**tls_env(proxy, certificates), "MULTINODE_TASK_QUEUE": queue,
           "MULTINODE_HOME": str(control_plane.home)}
    worker = control_plane.start_worker(**env)
    try:
        before = proxy.accepted
        project = f"mtls_{uuid.uuid4().hex[:6]}"
        folder = write_tasks(tmp_path / "tasks", TASKS)
        deployed = cli(env, "deploy", str(folder), f"--project-name={project}")
        assert deployed.returncode == 0, deployed.stderr

        invoked = cli(env, "invoke", project, "square", "--args", "[7]", "--wait")
        assert invoked.returncode == 0, invoked.stderr + control_plane.worker_log()
        assert invoked.stdout.splitlines()[-1] == "49"

        for name, value in env.items():
            sdk_env.setenv(name, value)
        import multinode as mn

        nested = mn.get_deployed_function(project, "squares_nested")
        invocation_id = nested.start(5)
        assert nested.await_result(invocation_id, timeout=90) == 26
        assert _client.default_client().settings.uses_mutual_tls
        (child_id,) = [i for i in mn.get_deployed_function(project, "square").list_ids()
                       if mn.get_deployed_function(project, "square").get(i).parent_invocation_id
                       == invocation_id]
        assert child_id != invocation_id
        assert proxy.accepted > before  # everything above went through the proxy
    finally:
        control_plane.stop_worker(worker)


def test_login_stores_the_tls_files_and_later_commands_use_them(
    proxy: MutualTlsProxy, certificates: Certificates, tmp_path: Path,
) -> None:
    home = {"MULTINODE_HOME": str(tmp_path / "home")}
    login = cli(home, "login", "--api-url", proxy.address, "--tls-ca", str(certificates.ca_cert),
                "--tls-cert", str(certificates.client_cert), "--tls-key", str(certificates.client_key),
                "--tls-server-name", SERVER_NAME)
    assert login.returncode == 0, login.stderr
    assert "mutual TLS" in login.stdout
    stored = json.loads((tmp_path / "home" / "profile.json").read_text())
    assert stored["tls_client_key"] == str(certificates.client_key.resolve())
    listed = cli(home, "list", "--json")  # no address in the environment: the profile's
    assert listed.returncode == 0, listed.stderr
    assert isinstance(json.loads(listed.stdout), list)


def test_a_client_without_the_certificate_gets_one_clear_error(
    proxy: MutualTlsProxy, certificates: Certificates, tmp_path: Path, sdk_env: pytest.MonkeyPatch,
) -> None:
    env = {**tls_env(proxy, certificates, client_cert=False), "MULTINODE_HOME": str(tmp_path)}
    refused_before = len(proxy.refused)
    result = cli(env, "list")
    assert result.returncode == 3, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "requires a TLS client certificate" in line, line

    for name, value in env.items():
        sdk_env.setenv(name, value)
    import multinode as mn

    with pytest.raises(errors.ControlPlaneUnavailableError, match="requires a TLS client certificate"):
        mn.get_deployed_function("any_project", "f").list_ids()
    assert len(proxy.refused) > refused_before

    # A certificate from a CA the control plane does not trust: refused, and said so.
    stranger = {**env, "TEMPORAL_TLS_CLIENT_CERT_PATH": str(certificates.stranger_cert),
                "TEMPORAL_TLS_CLIENT_KEY_PATH": str(certificates.stranger_key)}
    result = cli(stranger, "list")
    assert result.returncode == 3 and "TLS client certificate" in result.stderr, result.stderr
