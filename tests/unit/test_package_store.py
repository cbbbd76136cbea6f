"""Unit tests of multinode.storage.store: the local package store, and the spec that picks a store."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

from multinode.errors import InvalidOptionError, MultinodeError, PackageIntegrityError, PackageNotFoundError
from multinode.storage.package import build_package, sha256_hex
from multinode.storage.store import LocalPackageStore, package_store_for, read_package
from tests.unit.sample_tasks import make_tasks


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


class _ForbiddingS3:
    """An S3 client that answers as S3 does to a role without s3:ListBucket: 403 for a missing key."""

    def get_object(self, **_: object) -> None:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"},
                           "ResponseMetadata": {"HTTPStatusCode": 403}}, "GetObject")


@pytest.mark.timeout(10)
def test_a_forbidden_package_is_a_clear_permanent_error() -> None:
    from multinode.runtime.preparation import PERMANENT_ERRORS
    from multinode.storage.s3 import S3PackageStore

    store = S3PackageStore("s3://bucket/store", client=_ForbiddingS3())  # type: ignore[arg-type]
    uri = "s3://bucket/store/packages/abc.tar.gz"
    with pytest.raises(PackageNotFoundError, match="403") as caught:
        store.get(uri)
    assert uri in str(caught.value) and "s3:ListBucket" in str(caught.value)
    assert isinstance(caught.value, PERMANENT_ERRORS)  # the attempt fails at once, not retried
