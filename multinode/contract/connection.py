"""Where the control plane is, and how to reach it: address, namespace, API key, TLS.

The SDK, the CLI, the workers and the functions' processes resolve the connection the same way:
from the first of these sources that names an address, which also gives the credentials (a key
or TLS files belong to their address, never to another one's):

1. the environment, when `MULTINODE_API_URL` is set: with `MULTINODE_API_KEY`, and Temporal's own
   variables under them (`TEMPORAL_API_KEY`, `TEMPORAL_TLS_*`); no file is read, so a process
   handed its connection in the environment (a function's process, a CI job) connects exactly
   there;
2. the profile written by `multinode login`;
3. Temporal's own environment configuration, as the Temporal CLI reads it: the `temporal.toml`
   profile (`TEMPORAL_CONFIG_FILE`, `TEMPORAL_PROFILE`) with the `TEMPORAL_*` variables over it;
4. the local `multinode dev` control plane, in plaintext.

`MULTINODE_NAMESPACE` and `MULTINODE_TASK_QUEUE` win over every source.

Sources 1 and 3 come from `temporalio.envconfig`, which only the engine may import: the engine
loads them into `ConnectionLayer`s and hands them to `resolve_settings`, which is pure (this
module imports no Temporal code, so the function's runtime stays lean and one copy of Temporal's
rules for its variables and files exists: temporalio's own).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from multinode.contract import names
from multinode.errors import InvalidOptionError

ENV_API_URL = "MULTINODE_API_URL"
ENV_API_KEY = "MULTINODE_API_KEY"
ENV_NAMESPACE = "MULTINODE_NAMESPACE"
ENV_TASK_QUEUE = "MULTINODE_TASK_QUEUE"
ENV_HOME = "MULTINODE_HOME"

# Temporal's TLS variables (temporalio.envconfig reads them): how a process is told the TLS
# settings, as a file path or as the PEM data itself (from a secret, in a container).
ENV_TLS = "TEMPORAL_TLS"
ENV_TLS_SERVER_NAME = "TEMPORAL_TLS_SERVER_NAME"
TlsPart = Literal["server_ca_cert", "client_cert", "client_key"]
TLS_FILE_VARIABLES: dict[TlsPart, tuple[str, str]] = {
    "server_ca_cert": ("TEMPORAL_TLS_SERVER_CA_CERT_PATH", "TEMPORAL_TLS_SERVER_CA_CERT_DATA"),
    "client_cert": ("TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_CERT_DATA"),
    "client_key": ("TEMPORAL_TLS_CLIENT_KEY_PATH", "TEMPORAL_TLS_CLIENT_KEY_DATA"),
}
# Every variable that carries a connection: what a function's process may receive.
CONNECTION_VARIABLES = (
    ENV_API_URL, ENV_API_KEY, ENV_NAMESPACE, ENV_TASK_QUEUE, ENV_TLS, ENV_TLS_SERVER_NAME,
    *(name for pair in TLS_FILE_VARIABLES.values() for name in pair),
)

# A PEM file: its path, or its contents.
PemSource = Path | bytes
TLS_PART_NAMES: dict[TlsPart, str] = {
    "server_ca_cert": "server CA certificate",
    "client_cert": "client certificate",
    "client_key": "client key",
}


def multinode_home() -> Path:
    return Path(os.environ.get(ENV_HOME) or Path.home() / ".multinode").expanduser()


def attempt_log_path(runs_dir: Path, invocation_id: str, attempt: int) -> Path:
    """Where the local backend keeps an attempt's stdout and stderr: a file per attempt, side by
    side in the state folder's `runs/` (a folder per invocation cost a 4 KB block each, even for
    attempts that wrote nothing; an empty file costs no block)."""
    return runs_dir / f"{invocation_id}.attempt-{attempt}.log"


def folder_attempt_log_path(runs_dir: Path, invocation_id: str, attempt: int) -> Path:
    """Where attempts' logs were kept before: a folder per invocation (still read)."""
    return runs_dir / invocation_id / f"attempt-{attempt}.log"


def profile_path() -> Path:
    return multinode_home() / "profile.json"


@dataclass(frozen=True)
class TlsSettings:
    """TLS towards the control plane. `enabled=False` turns it off even with an API key."""

    enabled: bool = True
    server_name: str | None = None  # the name the server's certificate must carry (SNI)
    server_ca_cert: PemSource | None = None  # None: the system's trusted CAs
    client_cert: PemSource | None = None  # with client_key: mutual TLS
    client_key: PemSource | None = None

    @property
    def mutual(self) -> bool:
        return self.enabled and self.client_cert is not None

    def part(self, name: TlsPart) -> PemSource | None:
        value: PemSource | None = getattr(self, name)
        return value

    def __repr__(self) -> str:  # PEM data (a private key) never appears in logs or tracebacks
        def shown(value: PemSource | None) -> str:
            return "<data>" if isinstance(value, bytes) else repr(str(value) if value else None)

        return (
            f"TlsSettings(enabled={self.enabled}, server_name={self.server_name!r}, "
            f"server_ca_cert={shown(self.server_ca_cert)}, client_cert={shown(self.client_cert)}, "
            f"client_key={shown(self.client_key)})"
        )


def check_tls(tls: TlsSettings) -> TlsSettings:
    """Validate at the door: a client certificate needs its key (and the other way round).
    With TLS off the files are ignored, as Temporal does (`TEMPORAL_TLS=false` over a profile)."""
    if tls.enabled and (tls.client_cert is None) != (tls.client_key is None):
        given, missing = ("certificate", "key") if tls.client_key is None else ("key", "certificate")
        raise InvalidOptionError(
            f"a TLS client {given} was given without its {missing}: mutual TLS needs both"
        )
    return tls


@dataclass(frozen=True)
class ConnectionSettings:
    api_url: str
    api_key: str | None
    namespace: str
    task_queue: str
    # "environment", "profile", "temporal config", "login" or "default": said in connection errors
    source: str
    tls: TlsSettings | None = None  # None: TLS exactly when an API key is given (as Temporal does)

    @property
    def uses_tls(self) -> bool:
        return self.tls.enabled if self.tls is not None else self.api_key is not None

    @property
    def uses_mutual_tls(self) -> bool:
        return self.tls is not None and self.tls.mutual

    def __repr__(self) -> str:  # the key never appears in logs or tracebacks
        key = "set" if self.api_key else "unset"
        return (
            f"ConnectionSettings(api_url={self.api_url!r}, api_key=<{key}>, "
            f"namespace={self.namespace!r}, task_queue={self.task_queue!r}, source={self.source!r}, "
            f"tls={self.tls!r})"
        )


@dataclass(frozen=True)
class ConnectionLayer:
    """One source's part of the connection (each field None when that source does not say)."""

    address: str | None = None
    api_key: str | None = None
    namespace: str | None = None
    tls: TlsSettings | None = None


def check_api_url(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not (0 < int(port) < 65536):
        raise InvalidOptionError(
            f"control plane address {value!r} is not host:port (e.g. 127.0.0.1:7233)"
        )
    return value


def load_profile() -> dict[str, str | bool]:
    path = profile_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InvalidOptionError(f"the profile {path} cannot be read: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidOptionError(f"the profile {path} is not a JSON object")
    return {k: v for k, v in data.items() if isinstance(v, str | bool)}


def profile_text(profile: Mapping[str, str | bool], key: str) -> str | None:
    value = profile.get(key)
    return value if isinstance(value, str) and value else None


def profile_layer(profile: Mapping[str, str | bool]) -> ConnectionLayer:
    """The connection `multinode login` stored: TLS files by absolute path, so a rotated
    certificate is picked up without logging in again."""
    def file(part: TlsPart) -> Path | None:
        path = profile_text(profile, f"tls_{part}")
        return Path(path) if path else None

    files = {part: file(part) for part in TLS_FILE_VARIABLES}
    server_name = profile_text(profile, "tls_server_name")
    tls_flag = profile.get("tls")
    tls = None
    if isinstance(tls_flag, bool) or server_name or any(files.values()):
        tls = TlsSettings(
            enabled=tls_flag if isinstance(tls_flag, bool) else True,
            server_name=server_name,
            server_ca_cert=files["server_ca_cert"],
            client_cert=files["client_cert"],
            client_key=files["client_key"],
        )
    return ConnectionLayer(
        address=profile_text(profile, "api_url"),
        api_key=profile_text(profile, "api_key"),
        namespace=profile_text(profile, "namespace"),
        tls=tls,
    )


def resolve_settings(
    temporal_environment: ConnectionLayer | None = None,
    temporal_config: Callable[[], ConnectionLayer | None] | None = None,
) -> ConnectionSettings:
    """The connection, from the sources in the order the module's docstring says.
    `temporal_environment` holds the `TEMPORAL_*` variables alone; `temporal_config` loads the
    `temporal.toml` profile with those variables over it, read only when the environment and the
    login profile name no address. The engine passes both (`multinode.engine.connection`)."""
    temporal_environment = temporal_environment or ConnectionLayer()
    env_url = os.environ.get(ENV_API_URL, "").strip()
    profile: dict[str, str | bool] = {}
    layer: ConnectionLayer
    if env_url:
        layer = ConnectionLayer(
            address=env_url,
            api_key=os.environ.get(ENV_API_KEY) or temporal_environment.api_key,
            namespace=temporal_environment.namespace,
            tls=temporal_environment.tls,
        )
        source = "environment"
    else:
        profile = load_profile()
        layer, source = profile_layer(profile), "profile"
        if layer.address is None:
            layer, source = (temporal_config() if temporal_config else None) or layer, "temporal config"
        if layer.address is None:
            layer, source = ConnectionLayer(address=f"127.0.0.1:{names.DEFAULT_PORT}"), "default"
    assert layer.address is not None
    return ConnectionSettings(
        api_url=check_api_url(layer.address),
        api_key=(layer.api_key or "").strip() or None,
        namespace=os.environ.get(ENV_NAMESPACE) or layer.namespace or names.DEFAULT_NAMESPACE,
        task_queue=os.environ.get(ENV_TASK_QUEUE)
        or profile_text(profile, "task_queue")
        or names.DEFAULT_TASK_QUEUE,
        source=source,
        tls=check_tls(layer.tls) if layer.tls is not None else None,
    )


def connection_environment(settings: ConnectionSettings) -> tuple[dict[str, str], dict[str, str]]:
    """How to hand this connection to another process: (public variables, secret variables).
    The public ones may travel anywhere (RunTask overrides); the secret ones (the key, TLS
    material) only to a process on this machine. With `MULTINODE_API_URL` set, the receiver
    reads no file, so it connects exactly as this process does."""
    public = {
        ENV_API_URL: settings.api_url,
        ENV_NAMESPACE: settings.namespace,
        ENV_TASK_QUEUE: settings.task_queue,
        ENV_TLS: "true" if settings.uses_tls else "false",
    }
    secret: dict[str, str] = {}
    if settings.api_key:
        secret[ENV_API_KEY] = settings.api_key
    tls = settings.tls
    if tls is not None and tls.enabled:
        if tls.server_name:
            public[ENV_TLS_SERVER_NAME] = tls.server_name
        for part, (path_variable, data_variable) in TLS_FILE_VARIABLES.items():
            value = tls.part(part)
            if isinstance(value, bytes):
                secret[data_variable] = value.decode("ascii", errors="replace")
            elif value is not None:
                secret[path_variable] = str(value)
    return public, secret
