"""A project's `.env`, kept out of its package.

The package is readable by every attempt of every version and by anyone who can read the
store, so `multinode deploy` leaves `.env` out of it and stores the values as an object of the
project's own: `<store>/secrets/<project>/<sha256>.env` (mode 0600 in a folder store; in S3
encrypted with the KMS key named by MULTINODE_SECRETS_KMS_KEY, the stack's). The version's
manifest records its URI. Each line is `MULTINODE_DOTENV_<NAME>=<value>`: the format of ECS's
`environmentFiles`, which the Fargate agent reads with the task *execution* role (the
function's own role cannot read `secrets/`), and prefixed so that a project's variables can
never replace the container's own (PATH, AWS_*); the container and the local worker strip the
prefix before the function's process sees them.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

from multinode.errors import DeployError, PackageNotFoundError
from multinode.storage.package import sha256_hex

DOTENV_PREFIX = "MULTINODE_DOTENV_"
ENV_SECRETS_KMS_KEY = "MULTINODE_SECRETS_KMS_KEY"
SECRETS_FOLDER = "secrets"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def render_dotenv(folder: Path) -> bytes | None:
    """The stored form of `folder/.env`, or None without one (or with no values)."""
    path = folder / ".env"
    if not path.is_file():
        return None
    from dotenv import dotenv_values

    lines = []
    for name, value in dotenv_values(path).items():
        if value is None:  # a bare `NAME` line sets nothing, as the runner always read it
            continue
        if not _NAME.fullmatch(name):
            raise DeployError(f"{path}: {name!r} is not a valid variable name (letters, digits, _)")
        if "\n" in value or "\r" in value or "\0" in value:
            raise DeployError(
                f"{path}: the value of {name} spans several lines; environment files hold one "
                "line per variable (encode it, e.g. in base64)"
            )
        lines.append(f"{DOTENV_PREFIX}{name}={value}\n")
    return "".join(lines).encode() if lines else None


def parse_secrets(data: bytes) -> dict[str, str]:
    """The variables of a stored `.env`, without the prefix."""
    values: dict[str, str] = {}
    for line in data.decode().splitlines():
        name, sep, value = line.partition("=")
        if sep and name.startswith(DOTENV_PREFIX):
            values[name[len(DOTENV_PREFIX):]] = value
    return values


def secrets_from_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The project's variables that ECS put into the container's environment, unprefixed."""
    return {name[len(DOTENV_PREFIX):]: value for name, value in environ.items()
            if name.startswith(DOTENV_PREFIX)}


def store_secrets(store_spec: str, project_name: str, data: bytes) -> str:
    """Store the rendered `.env` of a project's version; returns its URI."""
    name = f"{SECRETS_FOLDER}/{project_name}/{sha256_hex(data)}.env"
    if store_spec.startswith("s3://"):
        from multinode.storage.s3 import put_encrypted  # type: ignore[import-not-found, unused-ignore]

        uri: str = put_encrypted(store_spec, name, data, os.environ.get(ENV_SECRETS_KMS_KEY) or None)
        return uri
    from multinode.storage.store import local_store_root

    target = local_store_root(store_spec) / name
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=".secrets.", dir=target.parent)  # mode 0600
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target.as_uri()


def read_secrets(uri: str) -> dict[str, str]:
    """The project's variables stored at `uri` (a worker reads them for the local backend)."""
    from multinode.storage.store import read_package

    try:
        return parse_secrets(read_package(uri))
    except PackageNotFoundError:
        raise PackageNotFoundError(f"the project's .env is missing at {uri}") from None


def s3_object_arn(uri: str) -> str:
    """What ECS's `environmentFiles` takes for an `s3://` URI."""
    from multinode.storage.s3_uri import parse_s3_uri

    bucket, key = parse_s3_uri(uri)
    return f"arn:aws:s3:::{bucket}/{key}"


__all__ = [
    "DOTENV_PREFIX",
    "ENV_SECRETS_KMS_KEY",
    "parse_secrets",
    "read_secrets",
    "render_dotenv",
    "s3_object_arn",
    "secrets_from_environ",
    "store_secrets",
]
