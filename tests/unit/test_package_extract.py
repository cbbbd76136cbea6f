"""Unit tests of multinode.storage.package's extraction: the hash checked first, unsafe members
refused, and a destination published once however many extract it at the same time."""

from __future__ import annotations

import io
import os
import tarfile
import threading
from pathlib import Path

import pytest

from multinode.errors import PackageIntegrityError
from multinode.storage.package import build_package, extract_package, sha256_hex
from tests.unit.sample_tasks import make_tasks


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
