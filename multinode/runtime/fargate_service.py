"""A service's entrypoint in the function image: `python -m multinode.runtime.fargate_service`,
one per ECS task of the service's ECS service (its task definition's command).

It fetches the version's package (checked against its sha256 before anything is unpacked),
builds its requirements, then becomes `python -m multinode.runtime.service` (exec: the service is
the task's main process, so ECS's SIGTERM on a stop reaches it directly, and the task's exit code
is the service's). Nothing reports through S3: the worker watches the ECS service and the port.

Like the function's entrypoint, this imports neither temporal_workers nor temporalio.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from botocore.exceptions import BotoCoreError, ClientError

from multinode.contract.connection import multinode_home
from multinode.runtime import runner as _runner
from multinode.runtime import service as _service
from multinode.runtime.environment_archive import python_path, unpack_prebuilt
from multinode.runtime.fargate_container import passed_environment
from multinode.runtime.fargate_run import (
    ENV_PACKAGE_SHA256,
    ENV_PACKAGE_URI,
    ENV_REQUIREMENTS_SHA256,
    EXIT_INFRASTRUCTURE,
)
from multinode.runtime.preparation import PERMANENT_ERRORS, prepare_version
from multinode.storage.secrets import secrets_from_environ

_INFRASTRUCTURE_ERRORS = (ClientError, BotoCoreError, OSError, ValueError)


def _say(message: str) -> None:
    print(f"multinode: {message}", file=sys.stderr, flush=True)


def main() -> NoReturn:
    environ = os.environ
    home = multinode_home()
    requirements_sha256 = environ.get(ENV_REQUIREMENTS_SHA256) or None
    site = None
    try:
        if requirements_sha256:
            site = unpack_prebuilt(environ[ENV_PACKAGE_URI], requirements_sha256, home / "envs", _say)
        version = prepare_version(
            environ[ENV_PACKAGE_URI], environ[ENV_PACKAGE_SHA256], None if site else requirements_sha256,
            code_root=home / "code", envs_root=home / "envs", log=_say,
        )
    except PERMANENT_ERRORS as exc:
        _say(f"{type(exc).__name__}: {exc}")
        sys.exit(1)
    except _INFRASTRUCTURE_ERRORS as exc:
        _say(f"preparing the service failed: {type(exc).__name__}: {exc}")
        sys.exit(EXIT_INFRASTRUCTURE)
    env = passed_environment(environ)
    env.update({
        "PYTHONUNBUFFERED": "1",
        _service.ENV_SERVICE: environ[_service.ENV_SERVICE],
        _service.ENV_PORT: environ[_service.ENV_PORT],
        _runner.ENV_CODE_DIR: str(version.code_dir),
    })
    if site is not None:
        env["PYTHONPATH"] = python_path(site, environ)
    # The project's .env (an environment file ECS read with the execution role); never over
    # what the container set.
    for name, value in secrets_from_environ(environ).items():
        env.setdefault(name, value)
    try:
        # A group of its own, so the service's watch of its parent takes down only its own tree
        # (PID 1 of a container already leads one: then this is refused, and not needed).
        os.setsid()
    except OSError:
        pass
    os.chdir(version.code_dir)
    sys.stdout.flush()
    sys.stderr.flush()
    python = str(version.python)
    os.execve(python, [python, "-m", "multinode.runtime.service"], env)


if __name__ == "__main__":
    main()
