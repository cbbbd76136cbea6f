"""A deployment of a tasks folder: check it, find its functions, package it, register a version.

The mechanics under `multinode.admin.deploy` and `upgrade` (which add the checks an operator
needs, such as refusing a project being undeployed)."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path

from multinode._client import Client, default_client
from multinode.admin.discovery import discover
from multinode.contract.connection import multinode_home
from multinode.contract.ids import check_name, new_version_id
from multinode.contract.options import FunctionOptions
from multinode.contract.records import FunctionSpec, PackageRef, VersionManifest
from multinode.contract.services import ServiceSpec, duplicate_ports
from multinode.errors import DeployError, ProjectDoesNotExistError
from multinode.runtime.environment import environment_python
from multinode.runtime.environment_archive import archive_uri, build_archive, deploy_target
from multinode.storage.package import build_package, requirements_sha256, sha256_hex
from multinode.storage.secrets import render_dotenv, store_secrets
from multinode.storage.store import package_store_for

ENV_PACKAGE_STORE = "MULTINODE_PACKAGE_STORE"


def package_store_spec() -> str:
    return os.environ.get(ENV_PACKAGE_STORE) or str(multinode_home() / "packages")


@dataclass(frozen=True)
class DeployMode:
    create: bool
    upgrade: bool


CREATE = DeployMode(create=True, upgrade=False)
UPGRADE = DeployMode(create=False, upgrade=True)
UPGRADE_OR_CREATE = DeployMode(create=True, upgrade=True)


def check_folder(folder: Path) -> Path:
    folder = folder.expanduser()
    if not folder.is_dir():
        raise DeployError(f"{folder} is not a folder")
    if not (folder / "main.py").is_file():
        raise DeployError(f"{folder} has no main.py; it must define the functions to deploy")
    return folder.resolve()


@dataclass(frozen=True)
class Built:
    """What a deploy stores besides the manifest."""

    package: bytes
    secrets: bytes | None  # the rendered `.env` (`multinode.storage.secrets`), kept out of the package
    folder: Path


def build_manifest(folder: Path, project_name: str) -> tuple[VersionManifest, bytes]:
    """The manifest and the package (without its `.env`) of a deploy, before anything is stored."""
    manifest, built = build_version(folder, project_name)
    return manifest, built.package


def build_version(folder: Path, project_name: str) -> tuple[VersionManifest, Built]:
    """Everything a deploy does before it talks to the control plane."""
    check_name(project_name, "project name")
    folder = check_folder(folder)
    requirements_hash = requirements_sha256(folder)
    python = environment_python(
        folder / "requirements.txt" if requirements_hash else None,
        requirements_hash,
        multinode_home() / "envs",
    )
    functions, services = discover(folder, python)
    for function in functions:
        check_name(function["name"], "function name")
    service_specs = [
        ServiceSpec(name=check_name(s["name"], "service name"), port=int(s["port"]), cpu=float(s["cpu"]),
                    memory_mib=int(s["memory_mib"]))
        for s in services
    ]
    conflict = duplicate_ports(service_specs)
    if conflict is not None:
        raise DeployError(conflict)
    secrets = render_dotenv(folder)
    package = build_package(folder)
    digest = sha256_hex(package)
    manifest = VersionManifest(
        project_name=project_name,
        version_id=new_version_id(),
        created_at=time.time(),
        package=PackageRef(uri="", sha256=digest, size_bytes=len(package)),
        requirements_sha256=requirements_hash,
        functions=[
            FunctionSpec(
                name=f["name"],
                options=FunctionOptions.from_dict(f["options"]),
                is_generator=bool(f["is_generator"]),
                kind=str(f.get("kind", "")),
            )
            for f in functions
        ],
        services=service_specs,
    )
    return manifest, Built(package, secrets, folder)


def store_version(manifest: VersionManifest, built: Built) -> VersionManifest:
    """Store the package, the project's `.env` apart from it and, for an S3 store (the Fargate
    backend's), the requirements' prebuilt environment; returns the manifest naming them."""
    spec = package_store_spec()
    package = built.package
    uri = package_store_for(spec).put(package, manifest.package.sha256)
    if spec.startswith("s3://") and manifest.requirements_sha256:
        _store_environment(uri, manifest.requirements_sha256, built.folder)
    secrets_uri = store_secrets(spec, manifest.project_name, built.secrets) if built.secrets else None
    return VersionManifest(**{**manifest.__dict__, "secrets_uri": secrets_uri,
                              "package": PackageRef(uri, manifest.package.sha256, len(package))})


def _store_environment(package_uri: str, requirements_hash: str, folder: Path) -> None:
    from multinode.storage.s3 import (  # type: ignore[import-not-found, unused-ignore]
        object_exists,
        put_if_absent,
    )

    version, target_platform, tag = deploy_target(os.environ)
    archive = archive_uri(package_uri, requirements_hash, tag)
    if object_exists(archive):
        return
    data = build_archive(folder / "requirements.txt", version, target_platform, multinode_home() / "envs")
    put_if_absent(archive, data)


def deploy(
    folder: Path | str,
    project_name: str,
    mode: DeployMode = CREATE,
    client: Client | None = None,
) -> VersionManifest:
    """Register `folder` as a new version of `project_name`; returns the version's manifest."""
    client = client or default_client()
    manifest, built = build_version(Path(folder), project_name)

    async def register() -> VersionManifest:
        engine = await client.engine()
        exists = True
        previous: VersionManifest | None = None
        try:
            previous = await engine.latest_version(project_name)
        except ProjectDoesNotExistError:
            exists = False
        if exists and not mode.upgrade:
            from multinode.errors import ProjectAlreadyExistsError

            raise ProjectAlreadyExistsError(
                f"project {project_name!r} already exists; deploy a new version of it with "
                f"`multinode upgrade`"
            )
        if not exists and not mode.create:
            raise ProjectDoesNotExistError(
                f"no project named {project_name!r} is deployed; create it with "
                f"`multinode deploy` (or `multinode upgrade --deploy`)"
            )
        stored = await asyncio.to_thread(store_version, manifest, built)
        if exists:
            await engine.add_version(stored)
        else:
            await engine.create_project(stored)
        # Each service's control loop replaces its running process with this version's.
        await engine.services.deploy(stored, previous)
        return stored

    return client.run(register())
