"""Unit tests of multinode.storage.package's build side: deterministic packages, what they leave out
and refuse, and the requirements hash."""

from __future__ import annotations

import io
import os
import socket
import tarfile
from pathlib import Path

import pytest

from multinode.errors import DeployError
from multinode.storage import package
from multinode.storage.package import build_package, requirements_sha256, sha256_hex
from tests.unit.sample_tasks import make_tasks


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {member.name: member for member in tar.getmembers()}


def member_bytes(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        extracted = tar.extractfile(name)
        assert extracted is not None
        return extracted.read()


# ---------------------------------------------------------------------------------------------
# build_package


@pytest.mark.timeout(30)
def test_build_is_deterministic_and_ignores_mtimes(tmp_path: Path) -> None:
    folder = make_tasks(tmp_path / "tasks")
    first = build_package(folder)
    assert build_package(folder) == first
    for path in [folder / "main.py", folder / "lib", folder / "lib" / "util.py"]:
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    assert sha256_hex(build_package(folder)) == sha256_hex(first)


@pytest.mark.timeout(30)
def test_same_content_elsewhere_gives_same_bytes(tmp_path: Path) -> None:
    assert build_package(make_tasks(tmp_path / "a")) == build_package(make_tasks(tmp_path / "b"))


@pytest.mark.timeout(30)
def test_gzip_header_has_no_mtime_or_name(tmp_path: Path) -> None:
    data = build_package(make_tasks(tmp_path / "tasks"))
    assert data[:3] == b"\x1f\x8b\x08"
    assert data[3] & 0x08 == 0  # FNAME flag
    assert data[4:8] == b"\x00\x00\x00\x00"  # MTIME


@pytest.mark.timeout(30)
def test_members_are_sorted_relative_and_normalised(tmp_path: Path) -> None:
    folder = make_tasks(tmp_path / "tasks")
    infos = members(build_package(folder))
    assert list(infos) == sorted(infos) == ["lib", "lib/util.py", "main.py", "run.sh"]
    for info in infos.values():
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (0, 0, 0, "", "")
    assert infos["lib"].isdir() and infos["lib"].mode == 0o755
    assert infos["main.py"].mode == 0o644
    assert infos["run.sh"].mode == 0o755


@pytest.mark.timeout(30)
def test_content_change_changes_the_hash(tmp_path: Path) -> None:
    folder = make_tasks(tmp_path / "tasks")
    before = sha256_hex(build_package(folder))
    (folder / "lib" / "util.py").write_text("X = 2\n")
    assert sha256_hex(build_package(folder)) != before


@pytest.mark.timeout(30)
def test_excluded_names_and_suffixes(tmp_path: Path) -> None:
    folder = make_tasks(tmp_path / "tasks")
    for name in package.EXCLUDED_NAMES:
        (folder / name).mkdir()
        (folder / name / "junk.txt").write_text("junk")
    (folder / "lib" / "__pycache__").mkdir()
    (folder / "lib" / "__pycache__" / "util.cpython-311.pyc").write_bytes(b"\0")
    (folder / "stale.pyc").write_bytes(b"\0")
    (folder / "stale.pyo").write_bytes(b"\0")
    (folder / "keep.pyx").write_text("kept")
    names = set(members(build_package(folder)))
    assert names == {"lib", "lib/util.py", "main.py", "run.sh", "keep.pyx"}


@pytest.mark.timeout(30)
def test_symlink_inside_the_folder_is_stored_as_a_copy(tmp_path: Path) -> None:
    folder = make_tasks(tmp_path / "tasks")
    (folder / "alias.py").symlink_to("lib/util.py")
    (folder / "shared").symlink_to("lib", target_is_directory=True)
    data = build_package(folder)
    infos = members(data)
    assert infos["alias.py"].isfile() and not infos["alias.py"].issym()
    assert member_bytes(data, "alias.py") == b"X = 1\n"
    assert infos["shared"].isdir()
    assert member_bytes(data, "shared/util.py") == b"X = 1\n"


@pytest.mark.timeout(30)
def test_symlink_outside_the_folder_is_refused(tmp_path: Path) -> None:
    folder = make_tasks(tmp_path / "tasks")
    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    (folder / "leak.txt").symlink_to(secret)
    with pytest.raises(DeployError) as raised:
        build_package(folder)
    assert "leak.txt" in str(raised.value)
    assert str(secret) in str(raised.value)


@pytest.mark.timeout(30)
def test_dangling_symlink_is_refused(tmp_path: Path) -> None:
    folder = make_tasks(tmp_path / "tasks")
    (folder / "broken.py").symlink_to("does-not-exist.py")
    with pytest.raises(DeployError) as raised:
        build_package(folder)
    assert "broken.py" in str(raised.value)
    assert "does-not-exist.py" in str(raised.value)


@pytest.mark.timeout(30)
def test_symlink_cycle_is_refused(tmp_path: Path) -> None:
    folder = make_tasks(tmp_path / "tasks")
    (folder / "lib" / "loop").symlink_to("..", target_is_directory=True)
    with pytest.raises(DeployError, match="cycle"):
        build_package(folder)


@pytest.mark.timeout(30)
def test_fifo_and_socket_are_refused(tmp_path: Path) -> None:
    folder = make_tasks(tmp_path / "fifo")
    os.mkfifo(folder / "pipe")
    with pytest.raises(DeployError, match="pipe"):
        build_package(folder)

    folder = make_tasks(tmp_path / "sock")
    # AF_UNIX paths are limited to ~107 bytes, so bind from inside the folder.
    previous = Path.cwd()
    os.chdir(folder)
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind("sock")
        with pytest.raises(DeployError, match="sock"):
            build_package(folder)
    finally:
        server.close()
        os.chdir(previous)


@pytest.mark.timeout(30)
def test_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="not a directory"):
        build_package(tmp_path / "nope")


@pytest.mark.timeout(30)
def test_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = make_tasks(tmp_path / "tasks")
    (folder / "data.bin").write_bytes(os.urandom(64 * 1024))
    monkeypatch.setattr(package, "MAX_PACKAGE_BYTES", 1000)
    with pytest.raises(DeployError) as raised:
        build_package(folder)
    assert "1000" in str(raised.value)
    assert "limit" in str(raised.value)


@pytest.mark.timeout(30)
def test_size_limit_after_compression(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = make_tasks(tmp_path / "tasks")
    (folder / "zeros.bin").write_bytes(bytes(1024 * 1024))  # compresses to ~1 KiB
    monkeypatch.setattr(package, "MAX_PACKAGE_BYTES", 64 * 1024)
    build_package(folder)


# ---------------------------------------------------------------------------------------------
# requirements_sha256


@pytest.mark.timeout(30)
def test_requirements_sha256(tmp_path: Path) -> None:
    assert requirements_sha256(tmp_path) is None
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n# only a comment\n   \n  # indented comment\n")
    assert requirements_sha256(tmp_path) is None
    requirements.write_text("# pinned\nsix==1.16.0\n")
    assert requirements_sha256(tmp_path) == sha256_hex(requirements.read_bytes())
