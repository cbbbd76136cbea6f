"""Where the control plane is, and how to reach it.

Resolution order, the same for the SDK, the CLI and the workers: environment variables
(`MULTINODE_API_URL`, `MULTINODE_API_KEY`, `MULTINODE_NAMESPACE`, `MULTINODE_TASK_QUEUE`), then
the profile written by `multinode login`, then the local `multinode dev` defaults.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from multinode.contract import names
from multinode.errors import InvalidOptionError

ENV_API_URL = "MULTINODE_API_URL"
ENV_API_KEY = "MULTINODE_API_KEY"
ENV_NAMESPACE = "MULTINODE_NAMESPACE"
ENV_TASK_QUEUE = "MULTINODE_TASK_QUEUE"
ENV_HOME = "MULTINODE_HOME"


def multinode_home() -> Path:
    return Path(os.environ.get(ENV_HOME) or Path.home() / ".multinode").expanduser()


def profile_path() -> Path:
    return multinode_home() / "profile.json"


@dataclass(frozen=True)
class ConnectionSettings:
    api_url: str
    api_key: str | None
    namespace: str
    task_queue: str
    source: str  # "environment", "profile" or "default": said in connection errors

    @property
    def uses_tls(self) -> bool:
        return self.api_key is not None

    def __repr__(self) -> str:  # the key never appears in logs or tracebacks
        key = "set" if self.api_key else "unset"
        return (
            f"ConnectionSettings(api_url={self.api_url!r}, api_key=<{key}>, "
            f"namespace={self.namespace!r}, task_queue={self.task_queue!r}, source={self.source!r})"
        )


def check_api_url(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not (0 < int(port) < 65536):
        raise InvalidOptionError(
            f"control plane address {value!r} is not host:port (e.g. 127.0.0.1:7233)"
        )
    return value


def load_profile() -> dict[str, str]:
    path = profile_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InvalidOptionError(f"the profile {path} cannot be read: {exc}") from exc
    return {k: v for k, v in data.items() if isinstance(v, str)}


def resolve_settings() -> ConnectionSettings:
    # Temporal's own variables are accepted too, so a worker configured for Temporal Cloud the
    # standard way needs nothing else.
    env_url = os.environ.get(ENV_API_URL) or os.environ.get("TEMPORAL_ADDRESS")
    if env_url:
        key = os.environ.get(ENV_API_KEY) or os.environ.get("TEMPORAL_API_KEY") or None
        url, source = env_url, "environment"
        profile: dict[str, str] = {}
    else:
        profile = load_profile()
        if profile.get("api_url"):
            url, key, source = profile["api_url"], profile.get("api_key") or None, "profile"
        else:
            url, key, source = f"127.0.0.1:{names.DEFAULT_PORT}", None, "default"
    return ConnectionSettings(
        api_url=check_api_url(url),
        api_key=key,
        namespace=os.environ.get(ENV_NAMESPACE)
        or os.environ.get("TEMPORAL_NAMESPACE")
        or profile.get("namespace")
        or names.DEFAULT_NAMESPACE,
        task_queue=os.environ.get(ENV_TASK_QUEUE)
        or profile.get("task_queue")
        or names.DEFAULT_TASK_QUEUE,
        source=source,
    )
