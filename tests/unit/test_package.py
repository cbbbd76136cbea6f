"""Unit tests of multinode.storage.package: deterministic packages, safe extraction, local stores."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tarfile
import threading
import types
from pathlib import Path

import pytest

from multinode.errors import (
    DeployError,
    InvalidOptionError,
    MultinodeError,
    PackageIntegrityError,
    PackageNotFoundError,
)
from multinode.storage import package
from multinode.storage.package import (
    build_package,
    extract_package,
    requirements_sha256,
    sha256_hex,
)
from multinode.storage.store import LocalPackageStore, package_store_for, read_package


def make_tasks(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "main.py").write_text("def hello():\n    return 'hi'\n")
    (folder / "lib").mkdir()
    (folder / "lib" / "util.py").write_text("X = 1\n")
    (folder / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (folder / "run.sh").chmod(0o700)
    return folder


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {member.name: member for member in tar.getmembers()}


def member_bytes(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        extracted = tar.extractfile(name)
        assert extracted is not None
        return extracted.read()


def crafted_archive(*infos: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, content in infos:
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    return buffer.getvalue()


def file_info(name: str, content: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(content)
    return info, content


def link_info(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


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


# ---------------------------------------------------------------------------------------------
# extract_package


@pytest.mark.timeout(30)
def test_extract_round_trip(tmp_path: Path) -> None:
    data = build_package(make_tasks(tmp_path / "tasks"))
    destination = tmp_path / "out" / "version"
    extract_package(data, sha256_hex(data), destination)
    assert (destination / "lib" / "util.py").read_text() == "X = 1\n"
    assert os.access(destination / "run.sh", os.X_OK)
    leftovers = [p.name for p in destination.parent.iterdir() if p.name != "version"]
    assert leftovers == []


@pytest.mark.timeout(30)
def test_extract_checks_the_hash_before_writing(tmp_path: Path) -> None:
    data = build_package(make_tasks(tmp_path / "tasks"))
    wrong = "0" * 64
    parent = tmp_path / "out"
    with pytest.raises(PackageIntegrityError) as raised:
        extract_package(data, wrong, parent / "version")
    assert wrong in str(raised.value) and sha256_hex(data) in str(raised.value)
    assert not parent.exists()


@pytest.mark.timeout(30)
def test_extract_refuses_garbage(tmp_path: Path) -> None:
    data = b"not a tarball"
    with pytest.raises(PackageIntegrityError):
        extract_package(data, sha256_hex(data), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("entries", "member"),
    [
        ([file_info("ok.py", b"1"), file_info("../evil", b"x")], "../evil"),
        ([file_info("lib/../../evil", b"x")], "lib/../../evil"),
        ([file_info("/etc/evil", b"x")], "/etc/evil"),
        ([file_info("ok.py", b"1"), link_info("link", "/etc/passwd", tarfile.SYMTYPE)], "link"),
        ([file_info("ok.py", b"1"), link_info("hard", "ok.py", tarfile.LNKTYPE)], "hard"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink", "hardlink"],
)
def test_extract_refuses_unsafe_members(
    tmp_path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]], member: str
) -> None:
    data = crafted_archive(*entries)
    parent = tmp_path / "out"
    with pytest.raises(PackageIntegrityError) as raised:
        extract_package(data, sha256_hex(data), parent / "version")
    assert member in str(raised.value)
    assert not parent.exists()
    assert not (tmp_path / "evil").exists()


@pytest.mark.timeout(30)
def test_extract_refuses_device_members(tmp_path: Path) -> None:
    info = tarfile.TarInfo("null")
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    data = crafted_archive((info, None))
    with pytest.raises(PackageIntegrityError, match="null"):
        extract_package(data, sha256_hex(data), tmp_path / "out")


@pytest.mark.timeout(30)
def test_extract_keeps_an_existing_destination(tmp_path: Path) -> None:
    data = build_package(make_tasks(tmp_path / "tasks"))
    destination = tmp_path / "out" / "version"
    destination.mkdir(parents=True)
    (destination / "winner.txt").write_text("first")
    extract_package(data, sha256_hex(data), destination)
    assert sorted(p.name for p in destination.iterdir()) == ["winner.txt"]
    assert sorted(p.name for p in destination.parent.iterdir()) == ["version"]


@pytest.mark.timeout(30)
def test_extract_losing_the_rename_race_removes_the_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = build_package(make_tasks(tmp_path / "tasks"))
    destination = tmp_path / "out" / "version"
    real_rename = os.rename

    def rival_wins(source: Path, target: Path) -> None:
        # Another process publishes its extraction between our check and our rename.
        Path(target).mkdir()
        (Path(target) / "rival.txt").write_text("rival")
        real_rename(source, target)

    monkeypatch.setattr(os, "rename", rival_wins)
    extract_package(data, sha256_hex(data), destination)
    assert sorted(p.name for p in destination.iterdir()) == ["rival.txt"]
    assert sorted(p.name for p in destination.parent.iterdir()) == ["version"]


@pytest.mark.timeout(60)
def test_concurrent_extractions_agree(tmp_path: Path) -> None:
    data = build_package(make_tasks(tmp_path / "tasks"))
    destination = tmp_path / "out" / "version"
    errors: list[BaseException] = []

    def extract() -> None:
        try:
            extract_package(data, sha256_hex(data), destination)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=extract) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert (destination / "main.py").is_file()
    assert sorted(p.name for p in destination.parent.iterdir()) == ["version"]


# ---------------------------------------------------------------------------------------------
# Stores


@pytest.mark.timeout(30)
def test_local_store_round_trip(tmp_path: Path) -> None:
    data = build_package(make_tasks(tmp_path / "tasks"))
    digest = sha256_hex(data)
    store = LocalPackageStore(tmp_path / "store")
    uri = store.put(data, digest)
    assert uri == (tmp_path / "store" / f"{digest}.tar.gz").absolute().as_uri()
    assert uri.startswith("file:///")
    assert store.get(uri) == data
    assert read_package(uri) == data
    assert store.put(data, digest) == uri  # already present: same URI, no error
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == [f"{digest}.tar.gz"]


@pytest.mark.timeout(30)
def test_local_store_refuses_a_wrong_or_malformed_hash(tmp_path: Path) -> None:
    store = LocalPackageStore(tmp_path / "store")
    with pytest.raises(PackageIntegrityError):
        store.put(b"data", "0" * 64)
    with pytest.raises(InvalidOptionError):
        store.put(b"data", "../../etc/passwd")


@pytest.mark.timeout(30)
def test_local_store_missing_package(tmp_path: Path) -> None:
    uri = (tmp_path / "store" / f"{'a' * 64}.tar.gz").as_uri()
    with pytest.raises(PackageNotFoundError) as raised:
        LocalPackageStore(tmp_path / "store").get(uri)
    assert uri in str(raised.value)
    assert isinstance(raised.value, MultinodeError)
    with pytest.raises(PackageNotFoundError):
        read_package(uri)


@pytest.mark.timeout(30)
def test_package_store_for_local_specs(tmp_path: Path) -> None:
    for spec in [str(tmp_path / "store"), (tmp_path / "store").as_uri()]:
        store = package_store_for(spec)
        assert isinstance(store, LocalPackageStore)
        assert store.root == tmp_path / "store"


@pytest.mark.timeout(30)
def test_package_store_for_s3_imports_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[str] = []

    class FakeS3PackageStore:
        def __init__(self, spec: str) -> None:
            created.append(spec)

    fake = types.ModuleType("multinode.storage.s3")
    fake.S3PackageStore = FakeS3PackageStore  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "multinode.storage.s3", fake)
    store = package_store_for("s3://bucket/prefix")
    assert isinstance(store, FakeS3PackageStore)
    assert created == ["s3://bucket/prefix"]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("spec", ["gs://bucket/prefix", "http://example.com/x", "", "  "])
def test_package_store_for_refuses_other_schemes(spec: str) -> None:
    with pytest.raises(InvalidOptionError) as raised:
        package_store_for(spec)
    if spec.strip():
        assert spec in str(raised.value)


@pytest.mark.timeout(60)
def test_importing_the_module_does_not_import_boto3() -> None:
    code = "import sys, multinode.storage.package, multinode.storage.store; assert 'boto3' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=50)
