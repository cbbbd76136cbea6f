"""Unit tests of multinode.runtime.environment: cached uv virtual environments per requirements hash.

The build tests run the real uv against the configured index (PyPI by default): they are marked
`network`, a tier of their own, so the unit tier needs no network.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import threading
from pathlib import Path

import pytest

from multinode.errors import DeployError, InvalidOptionError, RequirementsInstallError
from multinode.runtime import environment as _environment
from multinode.runtime.environment import (
    COMPLETE_MARKER,
    RUNTIME_PTH,
    environment_dir,
    environment_python,
    failing_packages,
    summarize_uv_error,
)
from multinode.storage.package import sha256_hex


def write_requirements(folder: Path, text: str) -> tuple[Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "requirements.txt"
    path.write_text(text)
    return path, sha256_hex(path.read_bytes())


def run_python(python: Path, code: str) -> str:
    # Not from the repository: `-c` puts the working directory on sys.path, which would find
    # multinode without the runtime .pth file.
    completed = subprocess.run(
        [str(python), "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=python.parent,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.strip()


def count_uv_venv_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []
    real_run_uv = _environment.run_uv

    def counting(args: list[str], **kwargs: object) -> None:
        calls.append(args)
        real_run_uv(args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_environment, "run_uv", counting)
    return calls


@pytest.mark.timeout(10)
def test_no_requirements_uses_the_running_interpreter(tmp_path: Path) -> None:
    assert environment_python(None, None, tmp_path / "cache") == Path(sys.executable)
    assert not (tmp_path / "cache").exists()


@pytest.mark.timeout(10)
def test_hash_without_file_or_non_hex_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidOptionError):
        environment_python(None, "ab" * 32, tmp_path)
    with pytest.raises(InvalidOptionError):
        environment_python(tmp_path / "requirements.txt", "../../escape", tmp_path)


@pytest.mark.timeout(10)
def test_environment_dir_is_keyed_on_hash_and_python(tmp_path: Path) -> None:
    version = f"py{sys.version_info.major}{sys.version_info.minor}"
    assert environment_dir(tmp_path, "f" * 64) == tmp_path / f"{'f' * 32}-{version}"


@pytest.mark.network
@pytest.mark.timeout(120)
def test_builds_a_venv_with_the_requirements_and_multinode(tmp_path: Path) -> None:
    requirements, digest = write_requirements(tmp_path / "tasks", "six==1.16.0\n")
    messages: list[str] = []
    python = environment_python(requirements, digest, tmp_path / "cache", log=messages.append)

    venv_dir = environment_dir(tmp_path / "cache", digest)
    assert python == venv_dir / "bin" / "python"
    assert (venv_dir / COMPLETE_MARKER).is_file()
    assert messages, "the build should be logged"
    assert run_python(python, "import six; print(six.__version__)") == "1.16.0"
    assert run_python(python, "import multinode.errors, sys; print(sys.prefix)") == str(venv_dir)

    pth_files = list(venv_dir.glob(f"lib/python*/site-packages/{RUNTIME_PTH}"))
    assert len(pth_files) == 1
    runtime_site = sysconfig.get_paths()["purelib"]
    expected = f"import site; site.addsitedir({runtime_site!r})\n"
    assert pth_files[0].read_text() == expected

    # The venv's own packages come before the runtime's.
    paths = run_python(python, "import sys; print('\\n'.join(sys.path))").splitlines()
    own_site = str(pth_files[0].parent)
    assert paths.index(own_site) < paths.index(runtime_site)


@pytest.mark.network
@pytest.mark.timeout(120)
def test_second_call_reuses_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requirements, digest = write_requirements(tmp_path / "tasks", "six==1.16.0\n")
    cache = tmp_path / "cache"
    python = environment_python(requirements, digest, cache)
    marker = environment_dir(cache, digest) / COMPLETE_MARKER
    marker_mtime = marker.stat().st_mtime_ns

    calls = count_uv_venv_calls(monkeypatch)
    assert environment_python(requirements, digest, cache) == python
    assert calls == []  # no uv run: the cached environment is reused as it is
    assert marker.stat().st_mtime_ns == marker_mtime


@pytest.mark.network
@pytest.mark.timeout(120)
def test_concurrent_builds_make_one_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requirements, digest = write_requirements(tmp_path / "tasks", "six==1.16.0\n")
    cache = tmp_path / "cache"
    calls = count_uv_venv_calls(monkeypatch)
    results: list[Path] = []
    errors: list[BaseException] = []

    def build() -> None:
        try:
            results.append(environment_python(requirements, digest, cache))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=build) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(set(results)) == 1 and len(results) == 4
    assert [call[1] for call in calls] == ["venv", "pip"]
    venvs = [p for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert venvs == [environment_dir(cache, digest)]
    assert run_python(results[0], "import six; print(six.__version__)") == "1.16.0"


@pytest.mark.network
@pytest.mark.timeout(120)
def test_impossible_requirement_raises_a_short_error(tmp_path: Path) -> None:
    requirements, digest = write_requirements(
        tmp_path / "tasks", "multinode-no-such-package-xyz==1.0\n"
    )
    cache = tmp_path / "cache"
    with pytest.raises(RequirementsInstallError) as raised:
        environment_python(requirements, digest, cache)
    message = str(raised.value)
    assert isinstance(raised.value, DeployError)
    assert "multinode-no-such-package-xyz" in message
    assert "Traceback" not in message
    assert 1 <= len(message.splitlines()) <= 6
    assert not environment_dir(cache, digest).exists()


@pytest.mark.network
@pytest.mark.timeout(120)
def test_incomplete_environment_is_rebuilt(tmp_path: Path) -> None:
    requirements, digest = write_requirements(tmp_path / "tasks", "six==1.16.0\n")
    cache = tmp_path / "cache"
    venv_dir = environment_dir(cache, digest)
    (venv_dir / "bin").mkdir(parents=True)
    (venv_dir / "half-written").write_text("crashed here")

    python = environment_python(requirements, digest, cache)
    assert not (venv_dir / "half-written").exists()
    assert (venv_dir / COMPLETE_MARKER).is_file()
    assert run_python(python, "import six; print(six.__version__)") == "1.16.0"


@pytest.mark.timeout(60)
def test_caller_uv_cache_dir_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "mine"))
    assert _environment.uv_environment(tmp_path)["UV_CACHE_DIR"] == str(tmp_path / "mine")
    monkeypatch.delenv("UV_CACHE_DIR")
    monkeypatch.setenv("UV_INDEX_URL", "https://example.invalid/simple")
    env = _environment.uv_environment(tmp_path)
    assert env["UV_CACHE_DIR"].startswith(str(tmp_path))
    assert env["UV_INDEX_URL"] == "https://example.invalid/simple"


# ---------------------------------------------------------------------------------------------
# Summaries of uv's stderr (canned output, no uv run)

PLAIN_RESOLUTION_FAILURE = """\
Using Python 3.11.7 environment at: /cache/venv
error: No solution found when resolving dependencies
  cause: Because there is no version of foo==9.9.9 and you require foo==9.9.9, we can
         conclude that your requirements are unsatisfiable.
"""

FANCY_RESOLUTION_FAILURE = """\
  × No solution found when resolving dependencies:
  ╰─▶ Because bar was not found in the package registry and you require bar==1.0, we can
      conclude that your requirements are unsatisfiable.
"""

BUILD_FAILURE = """\
Using Python 3.11.7 environment at: /cache/venv
error: The build backend returned an error
  cause: Call to `setuptools.build_meta:__legacy__.get_requires_for_build_wheel` failed (exit status: 1)

         [stderr]
         Traceback (most recent call last):
           File "<string>", line 14, in <module>
           File "/root/.cache/uv/builds-v0/setuptools/build_meta.py", line 333, in run_setup
             exec(code, locals())
           File "<string>", line 1, in <module>
         RuntimeError: boom from setup
"""

ANYHOW_NETWORK_FAILURE = """\
error: Failed to download distributions
  Caused by: Failed to fetch wheel: baz==1.0
  Caused by: Request failed after 3 retries
  Caused by: error sending request for url (https://files.example/baz-1.0.whl)
  Caused by: client error (Connect)
  Caused by: tcp connect error
  Caused by: Connection refused (os error 111)
"""


@pytest.mark.timeout(10)
def test_summary_of_plain_resolution_failure() -> None:
    lines = summarize_uv_error(PLAIN_RESOLUTION_FAILURE)
    assert lines == [
        "No solution found when resolving dependencies",
        (
            "Because there is no version of foo==9.9.9 and you require foo==9.9.9, we can "
            "conclude that your requirements are unsatisfiable."
        ),
    ]
    assert failing_packages(PLAIN_RESOLUTION_FAILURE) == ["foo"]


@pytest.mark.timeout(10)
def test_summary_of_fancy_resolution_failure() -> None:
    lines = summarize_uv_error(FANCY_RESOLUTION_FAILURE)
    assert lines[0] == "No solution found when resolving dependencies:"
    assert lines[1].startswith("Because bar was not found") and lines[1].endswith("unsatisfiable.")
    assert failing_packages(FANCY_RESOLUTION_FAILURE) == ["bar"]


@pytest.mark.timeout(10)
def test_summary_of_build_failure_has_no_traceback() -> None:
    lines = summarize_uv_error(BUILD_FAILURE)
    text = "\n".join(lines)
    assert "Traceback" not in text and 'File "' not in text and "exec(" not in text
    assert lines[0] == "The build backend returned an error"
    assert lines[-1] == "RuntimeError: boom from setup"


@pytest.mark.timeout(10)
def test_summary_keeps_at_most_five_lines_with_the_root_cause() -> None:
    lines = summarize_uv_error(ANYHOW_NETWORK_FAILURE)
    assert len(lines) == 5
    assert lines[0] == "Failed to download distributions"
    assert lines[-1] == "Connection refused (os error 111)"


@pytest.mark.timeout(10)
def test_summary_of_unstructured_output() -> None:
    assert summarize_uv_error("something odd happened\n") == ["something odd happened"]
    assert summarize_uv_error("") == []
