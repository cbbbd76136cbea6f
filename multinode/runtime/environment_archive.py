"""Prebuilt environments: a version's requirements installed once, at deploy, for the function
image's Python, and stored beside the packages as
`<store>/environments/<requirements sha256>-py<XY>-<machine>.tar.gz`.

A Fargate task then unpacks the archive instead of building a virtual environment: no package
index is needed at run time, and an attempt pays a download and an unpack instead of an install.
The archive is a plain `--target` install (importable from any path), put on the function's
PYTHONPATH ahead of the runtime's own packages, as a virtual environment's would be. The deploy
builds it with uv for the image's interpreter (MULTINODE_FUNCTION_PYTHON, 3.11 by default as
deploy/images/function.Dockerfile, and MULTINODE_FUNCTION_PLATFORM, x86_64-manylinux_2_28), so
the machine that deploys may run another Python. Whoever runs on another interpreter finds no
archive under its own name and builds from the index as before.
"""

from __future__ import annotations

import io
import os
import platform
import re
import sys
import tarfile
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from multinode.errors import DeployError, InvalidOptionError, PackageNotFoundError, RequirementsInstallError
from multinode.runtime.environment import Log, run_uv, uv_binary, uv_environment
from multinode.storage.package import extract_package, sha256_hex
from multinode.storage.store import read_package

ENV_FUNCTION_PYTHON = "MULTINODE_FUNCTION_PYTHON"
ENV_FUNCTION_PLATFORM = "MULTINODE_FUNCTION_PLATFORM"
DEFAULT_FUNCTION_PYTHON = "3.11"
DEFAULT_FUNCTION_PLATFORM = "x86_64-manylinux_2_28"
ENVIRONMENTS_FOLDER = "environments"

_PYTHON_VERSION = re.compile(r"3\.(\d{1,2})")
_PLATFORM = re.compile(r"(x86_64|aarch64)-manylinux_2_(\d{1,2})")


def environment_tag(python_version: str, python_platform: str) -> str:
    """The archive's name for an interpreter: `py311-x86_64`."""
    version = _PYTHON_VERSION.fullmatch(python_version)
    if version is None:
        raise InvalidOptionError(
            f"{ENV_FUNCTION_PYTHON}={python_version!r} is not a Python version such as 3.11")
    machine = _PLATFORM.fullmatch(python_platform)
    if machine is None:
        raise InvalidOptionError(
            f"{ENV_FUNCTION_PLATFORM}={python_platform!r} is not one of x86_64-manylinux_2_N or "
            "aarch64-manylinux_2_N (Fargate's Linux platforms)")
    return f"py3{version.group(1)}-{machine.group(1)}"


def runtime_tag() -> str:
    """The archive's name for the interpreter running this code."""
    return f"py{sys.version_info.major}{sys.version_info.minor}-{platform.machine()}"


def archive_uri(package_uri: str, requirements_sha256: str, tag: str) -> str:
    """Beside the packages: `<store>/packages/<sha>.tar.gz` -> `<store>/environments/<name>`."""
    store = package_uri.rsplit("/", 2)[0]
    return f"{store}/{ENVIRONMENTS_FOLDER}/{requirements_sha256}-{tag}.tar.gz"


def deploy_target(environ: Mapping[str, str]) -> tuple[str, str, str]:
    """The function image's Python version, platform and tag, from the deploy's settings."""
    version = environ.get(ENV_FUNCTION_PYTHON) or DEFAULT_FUNCTION_PYTHON
    target_platform = environ.get(ENV_FUNCTION_PLATFORM) or DEFAULT_FUNCTION_PLATFORM
    return version, target_platform, environment_tag(version, target_platform)


def build_archive(requirements_file: Path, python_version: str, python_platform: str,
                  cache_root: Path) -> bytes:
    """Install `requirements_file` for the given interpreter into a folder and return it as
    a `.tar.gz`. Raises DeployError with uv's reasons when it cannot."""
    cache_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="multinode-env-") as target:
        try:
            run_uv(
                [uv_binary(), "pip", "install", "--color", "never", "--target", target,
                 "--python-version", python_version, "--python-platform", python_platform,
                 "-r", str(requirements_file)],
                env=uv_environment(cache_root), cwd=requirements_file.parent,
                failure=f"could not install {requirements_file} for Python {python_version} "
                        f"on {python_platform}",
            )
        except RequirementsInstallError as error:
            raise DeployError(str(error)) from None
        return _tar(Path(target))


def _tar(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_symlink():
                continue  # the unpacking side refuses links; a --target install needs none
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(folder)))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if path.is_file():
                with open(path, "rb") as source:
                    tar.addfile(info, source)
            else:
                tar.addfile(info)
    return buffer.getvalue()


def unpack_prebuilt(package_uri: str, requirements_sha256: str, envs_root: Path,
                    log: Log) -> Path | None:
    """The folder of the version's prebuilt environment for this interpreter, fetched and
    unpacked on first use; None when the deploy stored none for it."""
    tag = runtime_tag()
    destination = envs_root / f"{requirements_sha256[:32]}-{tag}-prebuilt"
    if destination.exists():
        return destination
    uri = archive_uri(package_uri, requirements_sha256, tag)
    started = time.monotonic()
    try:
        data = read_package(uri)
    except PackageNotFoundError:
        log(f"no prebuilt environment at {uri}: building one from the package index")
        return None
    # The archive is named by the requirements, not its bytes: this checks its members only.
    extract_package(data, sha256_hex(data), destination)
    log(f"unpacked the prebuilt environment {uri} in {time.monotonic() - started:.2f} s")
    return destination


def python_path(site: Path, environ: Mapping[str, str]) -> str:
    existing = environ.get("PYTHONPATH")
    return f"{site}{os.pathsep}{existing}" if existing else str(site)


__all__ = [
    "DEFAULT_FUNCTION_PLATFORM",
    "DEFAULT_FUNCTION_PYTHON",
    "ENV_FUNCTION_PLATFORM",
    "ENV_FUNCTION_PYTHON",
    "archive_uri",
    "build_archive",
    "deploy_target",
    "environment_tag",
    "runtime_tag",
    "unpack_prebuilt",
]
