"""A project's `.env` kept out of its package and stored apart (`multinode.storage.secrets`),
passed by reference to Fargate tasks and by value to local processes; prebuilt environments'
names (`multinode.runtime.environment_archive`)."""

from __future__ import annotations

import dataclasses
import io
import stat
import tarfile
from pathlib import Path

import pytest

from multinode.errors import DeployError, InvalidOptionError
from multinode.runtime import fargate_container
from multinode.runtime.environment_archive import archive_uri, deploy_target, environment_tag, runtime_tag
from multinode.runtime.fargate_run import RunLocation
from multinode.storage.package import build_package
from multinode.storage.secrets import (
    parse_secrets,
    read_secrets,
    render_dotenv,
    s3_object_arn,
    secrets_from_environ,
    store_secrets,
)
from temporal_workers.backends.fargate.request import task_overrides
from tests.unit.scripted_fargate import request

pytestmark = pytest.mark.timeout(20)


def test_the_package_holds_no_env_file_at_any_depth(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("x = 1\n")
    (tmp_path / ".env").write_text("TOKEN=top\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".env").write_text("TOKEN=nested\n")
    with tarfile.open(fileobj=io.BytesIO(build_package(tmp_path))) as archive:
        assert sorted(archive.getnames()) == ["main.py", "sub"]


def test_the_stored_form_is_one_prefixed_line_per_value(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text('# comment\nexport A="quoted value"\nB=plain=with=equals\nBARE\nC=\n')
    rendered = render_dotenv(tmp_path)
    assert rendered == b"MULTINODE_DOTENV_A=quoted value\nMULTINODE_DOTENV_B=plain=with=equals\nMULTINODE_DOTENV_C=\n"
    assert parse_secrets(rendered) == {"A": "quoted value", "B": "plain=with=equals", "C": ""}
    environ = {"MULTINODE_DOTENV_A": "1", "PATH": "/bin", "MULTINODE_PROJECT": "p"}
    assert secrets_from_environ(environ) == {"A": "1"}


def test_no_env_file_or_no_values_store_nothing(tmp_path: Path) -> None:
    assert render_dotenv(tmp_path) is None
    (tmp_path / ".env").write_text("# nothing\nBARE\n")
    assert render_dotenv(tmp_path) is None


@pytest.mark.parametrize(("text", "named"), [('KEY="line one\nline two"\n', "KEY"), ("1BAD=x\n", "1BAD")])
def test_values_an_environment_file_cannot_hold_are_refused_at_deploy(tmp_path: Path, text: str, named: str) -> None:
    (tmp_path / ".env").write_text(text)
    with pytest.raises(DeployError, match=named):
        render_dotenv(tmp_path)


def test_a_folder_store_keeps_each_projects_env_private(tmp_path: Path) -> None:
    uri = store_secrets(str(tmp_path / "store"), "proj", b"MULTINODE_DOTENV_TOKEN=s3cr3t\n")
    path = Path(uri.removeprefix("file://"))
    assert path.parent == tmp_path / "store" / "secrets" / "proj"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_secrets(uri) == {"TOKEN": "s3cr3t"}


def test_a_fargate_task_gets_its_projects_env_file_by_reference_only() -> None:
    plain = request()
    assert "environmentFiles" not in task_overrides(plain, {"A": "1"})["containerOverrides"][0]
    uri = "s3://bucket/store/secrets/proj/" + "b" * 64 + ".env"
    with_env = dataclasses.replace(plain, invocation=dataclasses.replace(plain.invocation, secrets_uri=uri))
    [container] = task_overrides(with_env, {"A": "1"})["containerOverrides"]
    assert container["environmentFiles"] == [{"value": s3_object_arn(uri), "type": "s3"}]
    assert s3_object_arn(uri) == "arn:aws:s3:::bucket/store/secrets/proj/" + "b" * 64 + ".env"


def test_the_function_gets_the_env_unprefixed_and_the_prebuilt_environment_first(tmp_path: Path) -> None:
    config = fargate_container.ContainerConfig(
        function="work", package_uri="s3://b/p/packages/x.tar.gz", package_sha256="x", requirements_sha256="r",
        location=RunLocation("b", "p/runs/i/1/"), token="t", timeout_seconds=5, grace_seconds=1,
        invocation_id="inv", attempt="1", home=tmp_path, progress_interval_seconds=2.0)
    prepared = fargate_container.Prepared(tmp_path / "code", Path("/usr/bin/python3"), tmp_path / "in.json",
                                          tmp_path / "site")
    environ = {"PATH": "/bin", "PYTHONPATH": "/elsewhere", "MULTINODE_DOTENV_TOKEN": "s3cr3t",
               "MULTINODE_DOTENV_PATH": "/evil", "MULTINODE_DOTENV_MULTINODE_FUNCTION": "other"}
    env = fargate_container._runner_environment(environ, config, prepared)
    assert env["TOKEN"] == "s3cr3t"
    # Like the runner's own .env loading, the project's values never replace the container's.
    assert env["PATH"] == "/bin" and env["MULTINODE_FUNCTION"] == "work"
    assert env["PYTHONPATH"] == f"{tmp_path / 'site'}:/elsewhere"
    assert not any(name.startswith("MULTINODE_DOTENV_") for name in env)


def test_prebuilt_environments_are_named_by_requirements_and_interpreter() -> None:
    assert environment_tag("3.11", "x86_64-manylinux_2_28") == "py311-x86_64"
    assert environment_tag("3.12", "aarch64-manylinux_2_17") == "py312-aarch64"
    assert deploy_target({}) == ("3.11", "x86_64-manylinux_2_28", "py311-x86_64")
    with pytest.raises(InvalidOptionError, match="MULTINODE_FUNCTION_PYTHON"):
        environment_tag("python3", "x86_64-manylinux_2_28")
    with pytest.raises(InvalidOptionError, match="MULTINODE_FUNCTION_PLATFORM"):
        environment_tag("3.11", "windows")
    package = "s3://bucket/store/packages/" + "a" * 64 + ".tar.gz"
    assert archive_uri(package, "r" * 64, "py311-x86_64") == (
        "s3://bucket/store/environments/" + "r" * 64 + "-py311-x86_64.tar.gz")
    assert runtime_tag().startswith("py3")
