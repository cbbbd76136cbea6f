"""Preparing a version to run: its package fetched and checked against its sha256 before
anything is unpacked, its requirements' environment built (both cached, so only the first
attempt of a version on a machine pays). The local backend does it on the worker's machine,
the Fargate container in the task.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from multinode.errors import PackageIntegrityError, PackageNotFoundError, RequirementsInstallError
from multinode.runtime.environment import BuildListener, Log, environment_python
from multinode.storage.package import extract_package
from multinode.storage.store import read_package

# No retry can fix these: the attempt fails with the error as its own, and no user code has run.
PERMANENT_ERRORS = (PackageIntegrityError, PackageNotFoundError, RequirementsInstallError)


@dataclass(frozen=True)
class PreparedVersion:
    code_dir: Path  # the unpacked package: the function's working directory
    python: Path  # the interpreter of its environment


def prepare_version(
    package_uri: str,
    package_sha256: str,
    requirements_sha256: str | None,
    *,
    code_root: Path,
    envs_root: Path,
    log: Log,
    on_build: BuildListener | None = None,
) -> PreparedVersion:
    """Unpack the version's code under `code_root` and build its environment under `envs_root`,
    unless an earlier attempt did. Raises one of `PERMANENT_ERRORS`, or what reading the package
    store raised (OSError, boto3's errors)."""
    code_dir = code_root / package_sha256
    if not code_dir.exists():
        # extract_package checks the hash before it writes anything.
        extract_package(read_package(package_uri), package_sha256, code_dir)
    python = environment_python(
        code_dir / "requirements.txt" if requirements_sha256 else None,
        requirements_sha256,
        envs_root,
        log=log,
        on_build=on_build,
    )
    return PreparedVersion(code_dir, python)
