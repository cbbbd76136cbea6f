"""Where packages are kept, each once under its sha256: a directory (one machine or a shared
volume) or an S3 bucket (`multinode.storage.s3`, imported only for `s3://` stores)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from multinode.errors import InvalidOptionError, PackageIntegrityError, PackageNotFoundError
from multinode.storage.package import sha256_hex

_STORED_FILE_MODE = 0o644
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_URI_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


class PackageStore(Protocol):
    def put(self, data: bytes, sha256: str) -> str:
        """Store `data` (whose hash is `sha256`) and return its URI."""
        ...

    def get(self, uri: str) -> bytes:
        """Return the bytes stored at `uri`."""
        ...


class LocalPackageStore:
    """Packages as `<root>/<sha256>.tar.gz` files, for a single machine or a shared volume."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().absolute()

    def put(self, data: bytes, sha256: str) -> str:
        _check_sha256(data, sha256)
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.root / f"{sha256}.tar.gz"
        if not target.exists():
            _write_atomically(target, data)
        return target.as_uri()

    def get(self, uri: str) -> bytes:
        try:
            return _local_path(uri).read_bytes()
        except FileNotFoundError:
            raise PackageNotFoundError(f"no package is stored at {uri}") from None


def _check_sha256(data: bytes, sha256: str) -> None:
    # The hash becomes a file or object name, so it must be exactly a hex digest.
    if not _SHA256_HEX.fullmatch(sha256):
        raise InvalidOptionError(f"{sha256!r} is not a lowercase hex sha256 digest")
    actual = sha256_hex(data)
    if actual != sha256:
        raise PackageIntegrityError(
            f"package hash mismatch: expected sha256 {sha256}, got {actual}"
        )


def _write_atomically(target: Path, data: bytes) -> None:
    # Readers never see a partial file: the bytes appear under the final name all at once.
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
    )
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.chmod(temporary, _STORED_FILE_MODE)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _scheme(spec: str) -> str | None:
    match = _URI_SCHEME.match(spec)
    return match.group(1).lower() if match else None


def _local_path(spec: str) -> Path:
    scheme = _scheme(spec)
    if scheme is None:
        return Path(spec).expanduser()
    parsed = urlparse(spec)
    if scheme != "file" or parsed.netloc not in ("", "localhost"):
        raise InvalidOptionError(f"{spec!r} is not a local file:// URI")
    return Path(unquote(parsed.path))


def local_store_root(spec: str) -> Path:
    """The folder of a directory store (a path or `file://...`)."""
    return _local_path(spec).expanduser().absolute()


def package_store_for(spec: str) -> PackageStore:
    """The store named by `spec`: a directory path, `file://...` or `s3://bucket/prefix`."""
    if not spec.strip():
        raise InvalidOptionError(
            "the package store is empty: use a directory path, file://... or s3://bucket/prefix"
        )
    scheme = _scheme(spec)
    if scheme is None or scheme == "file":
        return LocalPackageStore(_local_path(spec))
    if scheme == "s3":
        # Imported here so that only S3 users pay for (and need) boto3.
        from multinode.storage.s3 import (  # type: ignore[import-not-found, unused-ignore]
            S3PackageStore,
        )

        store: PackageStore = S3PackageStore(spec)
        return store
    raise InvalidOptionError(
        f"unsupported package store {spec!r}: "
        "use a directory path, file://... or s3://bucket/prefix"
    )


def read_package(uri: str) -> bytes:
    """The bytes of the package at `uri` (a path, `file://...` or `s3://...`)."""
    scheme = _scheme(uri)
    if scheme is None or scheme == "file":
        path = _local_path(uri)
        return LocalPackageStore(path.parent).get(uri)
    return package_store_for(uri).get(uri)
