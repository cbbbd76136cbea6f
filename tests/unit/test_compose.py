"""docker-compose.temporal.yml is well-formed; Docker itself cannot run here."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.temporal.yml"
DYNAMIC_CONFIG = ROOT / "deploy" / "temporal" / "dynamicconfig.yaml"

REQUIRED_SERVICES = {
    "postgresql",
    "temporal-schema",
    "temporal",
    "temporal-namespace",
    "temporal-ui",
}
VALID_CONDITIONS = {
    "service_healthy",
    "service_completed_successfully",
    "service_started",
}
SEARCH_ATTRIBUTES = (
    "MultinodeProject",
    "MultinodeFunction",
    "MultinodeVersion",
    "MultinodeStatus",
    "MultinodeParent",
    "MultinodeLock",
)
_DEFAULTED_VAR = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}")


def _services() -> dict[str, Any]:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    services: dict[str, Any] = compose["services"]
    return services


def _with_defaults(value: str) -> str:
    """What compose substitutes when none of the variables are set."""
    return _DEFAULTED_VAR.sub(lambda m: m.group(1), value)


def _run_job(
    service: dict[str, Any], tmp_path: Path, fakes: dict[str, str]
) -> list[list[str]]:
    """Run a one-shot job's shell script here, with its tools replaced by recorders.

    Each fake logs its argv and then runs the given shell snippet, which decides
    its exit status. Returns the logged command lines, in order.
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    for tool, behaviour in fakes.items():
        fake = bin_dir / tool
        fake.write_text(f'#!/bin/sh\necho "{tool} $*" >> "$CALLS_LOG"\n{behaviour}\n')
        fake.chmod(0o755)
    env = {
        k: _with_defaults(str(v)) for k, v in (service.get("environment") or {}).items()
    }
    env.update(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", CALLS_LOG=str(log))
    argv = [
        str(a).replace("$$", "$") for a in [*service["entrypoint"], *service["command"]]
    ]
    result = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=20, check=False
    )
    assert result.returncode == 0, result.stderr
    return [line.split() for line in log.read_text().splitlines()]


def _option(call: list[str], name: str) -> str | None:
    return call[call.index(name) + 1] if name in call else None


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {
        name: (spec or {}).get("condition", "service_started")
        for name, spec in deps.items()
    }


@pytest.mark.timeout(10)
def test_required_services_exist() -> None:
    assert set(_services()) >= REQUIRED_SERVICES


@pytest.mark.timeout(10)
def test_ports_bind_to_loopback_only() -> None:
    published = 0
    for name, service in _services().items():
        for port in service.get("ports", []):
            published += 1
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", (name, port)
            else:
                assert str(port).startswith("127.0.0.1:"), (name, port)
    assert published >= 2  # Temporal frontend and UI


@pytest.mark.timeout(10)
def test_depends_on_is_valid() -> None:
    services = _services()
    for name, service in services.items():
        for target, condition in _depends_on(service).items():
            assert target in services, (name, target)
            assert condition in VALID_CONDITIONS, (name, target, condition)
            if condition == "service_healthy":
                assert "healthcheck" in services[target], (name, target)
    assert _depends_on(services["temporal-schema"])["postgresql"] == "service_healthy"
    assert (
        _depends_on(services["temporal"])["temporal-schema"]
        == "service_completed_successfully"
    )
    assert _depends_on(services["temporal-namespace"])["temporal"] == "service_healthy"


@pytest.mark.timeout(10)
def test_every_image_is_pinned() -> None:
    for name, service in _services().items():
        image = _with_defaults(service["image"])
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, (name, image)
        assert tag and tag != "latest" and "$" not in tag, (name, image)


@pytest.mark.timeout(30)
@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
def test_schema_job_sets_up_both_databases(tmp_path: Path) -> None:
    calls = _run_job(
        _services()["temporal-schema"], tmp_path, {"temporal-sql-tool": "exit 0"}
    )
    steps: dict[str, list[list[str]]] = {}
    for call in calls:
        assert call[0] == "temporal-sql-tool"
        assert _option(call, "--plugin") == "postgres12"
        assert _option(call, "--ep") == "postgresql"
        database = _option(call, "--db")
        assert database is not None
        steps.setdefault(database, []).append(call)
    assert set(steps) == {"temporal", "temporal_visibility"}
    for database, schema_dir in (
        ("temporal", "temporal"),
        ("temporal_visibility", "visibility"),
    ):
        commands = [c[c.index("--db") + 2] for c in steps[database]]
        assert commands == ["create", "setup-schema", "update-schema"], database
        assert _option(steps[database][1], "-v") == "0.0"
        assert _option(steps[database][2], "-d") == (
            f"/etc/temporal/schema/postgresql/v12/{schema_dir}/versioned"
        )


@pytest.mark.timeout(30)
@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
def test_namespace_job_creates_namespace_and_search_attributes(tmp_path: Path) -> None:
    # A fresh server: the namespace does not exist yet, everything else succeeds.
    fake_temporal = 'case "$*" in "operator namespace describe"*) exit 1 ;; esac'
    calls = _run_job(
        _services()["temporal-namespace"], tmp_path, {"temporal": fake_temporal}
    )
    assert any(
        c[1:4] == ["operator", "namespace", "create"] and "default" in c for c in calls
    )

    created: dict[str, str] = {}
    for call in calls:
        if call[1:4] != ["operator", "search-attribute", "create"]:
            continue
        assert _option(call, "--namespace") == "default"
        names = [call[i + 1] for i, arg in enumerate(call) if arg == "--name"]
        types = [call[i + 1] for i, arg in enumerate(call) if arg == "--type"]
        assert len(names) == len(types), call
        created.update(zip(names, types, strict=True))
    assert created == {name: "Keyword" for name in SEARCH_ATTRIBUTES}


@pytest.mark.timeout(10)
def test_server_uses_the_mounted_dynamic_config() -> None:
    server = _services()["temporal"]
    config_path = (
        PurePosixPath("/etc/temporal")
        / server["environment"]["DYNAMIC_CONFIG_FILE_PATH"]
    )
    mounts = {}
    for volume in server["volumes"]:
        source, target = str(volume).split(":")[:2]
        mounts[PurePosixPath(target)] = (ROOT / source).resolve()
    assert mounts[config_path] == DYNAMIC_CONFIG.resolve()

    config = yaml.safe_load(DYNAMIC_CONFIG.read_text())
    assert config["limit.maxIDLength"][0]["value"] == 255
    assert config["history.transferProcessorMaxPollRPS"][0]["value"] == 10000
    assert config["history.transferProcessorMaxPollHostRPS"][0]["value"] == 10000


@pytest.mark.timeout(60)
def test_docker_compose_config_accepts_the_file() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not on PATH, so `docker-compose config` cannot check the file "
                    "(the tests above check its services, ports and config without it)")
    result = subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert result.returncode == 0, result.stderr
