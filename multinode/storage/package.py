"""Content-addressed packaging of a tasks folder.

A package is a deterministic `.tar.gz` of the folder: the same files always give the same bytes,
so its sha256 names the version's code and equal deployments share one stored object. The
extracting side trusts nothing in the archive: it checks the hash before touching the disk and
refuses any member that could write outside the destination.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from multinode.errors import DeployError, PackageIntegrityError

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

# `.env` is stored apart, readable by its project's functions only (`multinode.storage.secrets`).
EXCLUDED_NAMES = frozenset(
    {"__pycache__", ".git", ".venv", "venv", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".env"}
)
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
MAX_PACKAGE_BYTES = 100 * 1024 * 1024

_FILE_MODE = 0o644
_EXECUTABLE_MODE = 0o755
_DIRECTORY_MODE = 0o755
# Level 6 is zlib's own default: nearly the size of level 9 at a fraction of the time.
_COMPRESS_LEVEL = 6


# ---------------------------------------------------------------------------------------------
# Building


@dataclass(frozen=True)
class _Entry:
    arcname: str
    source: Path | None  # None for a directory


class _PackageTooLarge(Exception):
    pass


class _BoundedBuffer(io.BytesIO):
    """Stops the build as soon as the compressed output passes the limit, so a huge folder is
    refused without first being compressed whole into memory."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self._limit = limit

    def write(self, data: ReadableBuffer, /) -> int:
        written = super().write(data)
        if self.tell() > self._limit:
            raise _PackageTooLarge
        return written


def build_package(folder: Path) -> bytes:
    """Return the deterministic `.tar.gz` of `folder`'s contents (paths relative to `folder`).

    Raises `DeployError` for a symlink leading outside the folder (or nowhere), a special file,
    or a package over `MAX_PACKAGE_BYTES` compressed.
    """
    root = _package_root(folder)
    entries = sorted(_collect(root, root, "", frozenset({root})), key=lambda e: e.arcname)
    limit = MAX_PACKAGE_BYTES
    buffer = _BoundedBuffer(limit)
    try:
        # An empty filename and mtime 0 keep the gzip header free of anything but the content.
        with (
            gzip.GzipFile(
                filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=_COMPRESS_LEVEL
            ) as compressed,
            tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for entry in entries:
                _add_entry(tar, entry)
    except _PackageTooLarge:
        raise DeployError(
            f"the package of {folder} is over {limit} bytes compressed, above the limit of "
            f"{limit} bytes (MAX_PACKAGE_BYTES); exclude data files from the tasks folder"
        ) from None
    data = buffer.getvalue()
    if len(data) > limit:
        raise DeployError(
            f"the package of {folder} is {len(data)} bytes compressed, above the limit of "
            f"{limit} bytes (MAX_PACKAGE_BYTES); exclude data files from the tasks folder"
        )
    return data


def _package_root(folder: Path) -> Path:
    if not folder.is_dir():
        raise DeployError(f"the tasks folder {folder} is not a directory")
    return folder.resolve()


def _is_excluded(name: str) -> bool:
    return name in EXCLUDED_NAMES or name.endswith(EXCLUDED_SUFFIXES)


def _collect(directory: Path, root: Path, prefix: str, ancestors: frozenset[Path]) -> list[_Entry]:
    """List the entries under `directory`, archived under `prefix`.

    `ancestors` holds the real paths of the directories being walked, so a symlink back to one
    of them is reported as a cycle instead of recursing forever.
    """
    entries: list[_Entry] = []
    with os.scandir(directory) as scan:
        children = sorted(scan, key=lambda child: child.name)
    for child in children:
        if _is_excluded(child.name):
            continue
        path = Path(child.path)
        arcname = prefix + child.name
        if child.is_symlink():
            entries.extend(_collect_symlink(path, root, arcname, ancestors))
        elif child.is_dir(follow_symlinks=False):
            entries.append(_Entry(arcname, None))
            entries.extend(_collect(path, root, arcname + "/", ancestors | {path.resolve()}))
        elif child.is_file(follow_symlinks=False):
            entries.append(_Entry(arcname, path))
        else:
            raise _special_file_error(path)
    return entries


def _collect_symlink(
    link: Path, root: Path, arcname: str, ancestors: frozenset[Path]
) -> list[_Entry]:
    # Links are stored as copies of their targets: the extracting side refuses link members.
    target = Path(os.path.realpath(link))
    if not target.exists():
        raise DeployError(
            f"the symlink {link} points to {os.readlink(link)}, which does not exist"
        )
    if not target.is_relative_to(root):
        raise DeployError(
            f"the symlink {link} points to {target}, outside the tasks folder {root}; "
            "copy the file into the folder instead"
        )
    if target.is_dir():
        if target in ancestors:
            raise DeployError(f"the symlink {link} points to {target}, which contains it (a cycle)")
        return [_Entry(arcname, None), *_collect(target, root, arcname + "/", ancestors | {target})]
    if target.is_file():
        return [_Entry(arcname, target)]
    raise _special_file_error(link)


def _special_file_error(path: Path) -> DeployError:
    return DeployError(
        f"{path} is not a regular file or directory (a socket, FIFO or device); "
        "remove it from the tasks folder"
    )


def _add_entry(tar: tarfile.TarFile, entry: _Entry) -> None:
    info = tarfile.TarInfo(entry.arcname)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if entry.source is None:
        info.type = tarfile.DIRTYPE
        info.mode = _DIRECTORY_MODE
        tar.addfile(info)
        return
    with open(entry.source, "rb") as source:
        status = os.fstat(source.fileno())
        info.size = status.st_size
        executable = status.st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        info.mode = _EXECUTABLE_MODE if executable else _FILE_MODE
        tar.addfile(info, source)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def requirements_sha256(folder: Path) -> str | None:
    """The sha256 of `folder/requirements.txt`, or None when it requires nothing.

    None means "run on the runtime's own interpreter", so a file of only comments and blank
    lines must not cost a virtual environment.
    """
    path = folder / "requirements.txt"
    if not path.is_file():
        return None
    data = path.read_bytes()
    if not _has_requirement_line(data.decode("utf-8", errors="replace")):
        return None
    return sha256_hex(data)


def _has_requirement_line(text: str) -> bool:
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return True
    return False


# ---------------------------------------------------------------------------------------------
# Extracting


def extract_package(data: bytes, expected_sha256: str, destination: Path) -> None:
    """Verify `data` against `expected_sha256`, then extract it to `destination` atomically.

    Raises `PackageIntegrityError` before writing anything when the hash differs, the archive is
    unreadable or a member is unsafe. An existing `destination` (an earlier or concurrent
    extraction of the same package) is left as it is.
    """
    actual = sha256_hex(data)
    if actual != expected_sha256.lower():
        raise PackageIntegrityError(
            f"package hash mismatch: expected sha256 {expected_sha256}, got {actual}"
        )
    with _open_archive(data) as tar:
        members = _read_members(tar)
        for member in members:
            _check_member(member)
        if destination.exists():
            return
        temporary = _extract_to_temporary(tar, members, destination)
    _publish(temporary, destination)


def _extract_to_temporary(
    tar: tarfile.TarFile, members: list[tarfile.TarInfo], destination: Path
) -> Path:
    destination.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{destination.name}.tmp-"
    temporary = Path(tempfile.mkdtemp(prefix=prefix, dir=destination.parent))
    try:
        temporary.chmod(_DIRECTORY_MODE)  # mkdtemp's 0o700 would hide the code from other users
        # The "data" filter is a second line of defence behind _check_member.
        tar.extractall(temporary, members=members, filter="data")
    except tarfile.FilterError as error:
        shutil.rmtree(temporary, ignore_errors=True)
        raise PackageIntegrityError(f"unsafe package member: {error}") from None
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return temporary


def _open_archive(data: bytes) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise PackageIntegrityError(f"the package is not a valid .tar.gz: {error}") from None


def _read_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    try:
        return tar.getmembers()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise PackageIntegrityError(f"the package is not a valid .tar.gz: {error}") from None


def _check_member(member: tarfile.TarInfo) -> None:
    name = member.name
    parts = name.replace("\\", "/").split("/")
    if not name or name.startswith(("/", "\\")) or PurePosixPath(name).is_absolute():
        raise PackageIntegrityError(f"package member {name!r} has an absolute path")
    if re.match(r"[A-Za-z]:", name):
        raise PackageIntegrityError(f"package member {name!r} has an absolute (drive) path")
    if ".." in parts:
        raise PackageIntegrityError(f"package member {name!r} has a '..' component")
    if member.issym() or member.islnk():
        raise PackageIntegrityError(
            f"package member {name!r} is a link (to {member.linkname!r}); packages hold copies"
        )
    if member.isdev():
        raise PackageIntegrityError(f"package member {name!r} is a device file or FIFO")
    if not (member.isfile() or member.isdir()):
        raise PackageIntegrityError(f"package member {name!r} is not a regular file or directory")


def _publish(temporary: Path, destination: Path) -> None:
    try:
        os.rename(temporary, destination)
    except OSError:
        shutil.rmtree(temporary, ignore_errors=True)
        # Losing the race to another extraction of the same package is success.
        if not destination.exists():
            raise


__all__ = [
    "EXCLUDED_NAMES",
    "EXCLUDED_SUFFIXES",
    "MAX_PACKAGE_BYTES",
    "build_package",
    "extract_package",
    "requirements_sha256",
    "sha256_hex",
]
