"""Preparing a version: the package fetched, checked, unpacked once; its environment chosen."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from multinode.errors import PackageIntegrityError, PackageNotFoundError
from multinode.runtime.preparation import PERMANENT_ERRORS, prepare_version
from multinode.storage.package import build_package, sha256_hex
from multinode.storage.store import LocalPackageStore

pytestmark = pytest.mark.timeout(30)


def stored_package(tmp_path: Path) -> tuple[str, str]:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "main.py").write_text("def hello():\n    return 'hi'\n")
    data = build_package(tasks)
    sha256 = sha256_hex(data)
    return LocalPackageStore(tmp_path / "store").put(data, sha256), sha256


def test_a_version_without_requirements_is_unpacked_once_and_runs_on_this_interpreter(tmp_path: Path) -> None:
    uri, sha256 = stored_package(tmp_path)
    said: list[str] = []
    version = prepare_version(uri, sha256, None, code_root=tmp_path / "code", envs_root=tmp_path / "envs",
                              log=said.append)
    assert version.code_dir == tmp_path / "code" / sha256
    assert (version.code_dir / "main.py").read_text().startswith("def hello")
    assert version.python == Path(sys.executable)
    # Once unpacked, the store is not read again.
    (tmp_path / "store" / f"{sha256}.tar.gz").unlink()
    again = prepare_version(uri, sha256, None, code_root=tmp_path / "code", envs_root=tmp_path / "envs",
                            log=said.append)
    assert again == version


def test_a_package_that_does_not_match_its_hash_is_not_unpacked(tmp_path: Path) -> None:
    uri, _ = stored_package(tmp_path)
    with pytest.raises(PackageIntegrityError):
        prepare_version(uri, "b" * 64, None, code_root=tmp_path / "code", envs_root=tmp_path / "envs",
                        log=print)
    assert not (tmp_path / "code" / ("b" * 64)).exists()


def test_a_missing_package_is_a_permanent_error(tmp_path: Path) -> None:
    missing = (tmp_path / "store" / f"{'c' * 64}.tar.gz").as_uri()
    with pytest.raises(PackageNotFoundError) as raised:
        prepare_version(missing, "c" * 64, None, code_root=tmp_path / "code", envs_root=tmp_path / "envs",
                        log=print)
    assert isinstance(raised.value, PERMANENT_ERRORS)
