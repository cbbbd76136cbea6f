"""The profile written by `multinode login`: `$MULTINODE_HOME/profile.json`.

Only the user can read it (mode 0600, in a 0700 folder), and it is replaced atomically, so a
crash mid-write never leaves half a key behind. `multinode.contract.connection` reads it; the environment
(`MULTINODE_API_URL`, `MULTINODE_API_KEY`, ...) wins over it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from multinode.contract import names
from multinode.contract.connection import check_api_url, load_profile, profile_path, profile_text
from multinode.errors import InvalidOptionError

ENV_UI_URL = "MULTINODE_UI_URL"
DEFAULT_UI_URL = f"http://127.0.0.1:{names.DEFAULT_UI_PORT}"

PROFILE_KEYS = (
    "api_url", "api_key", "namespace", "task_queue", "ui_url",
    # TLS: on or off (absent: on exactly with a key or any TLS file), and absolute file paths.
    "tls", "tls_server_name", "tls_server_ca_cert", "tls_client_cert", "tls_client_key",
)
FILE_MODE = 0o600
FOLDER_MODE = 0o700


def check_ui_url(value: str) -> str:
    if not value.startswith(("http://", "https://")) or len(value) < 9:
        raise InvalidOptionError(
            f"Web UI address {value!r} is not an http(s) URL (e.g. {DEFAULT_UI_URL})"
        )
    return value.rstrip("/")


def save_profile(values: dict[str, str | bool | None]) -> Path:
    """Write the profile (keys of PROFILE_KEYS whose value is set), replacing any earlier one."""
    unknown = set(values) - set(PROFILE_KEYS)
    if unknown:
        raise InvalidOptionError(f"unknown profile keys: {', '.join(sorted(unknown))}")
    data = {key: value for key, value in values.items() if value or value is False}
    if isinstance(data.get("api_url"), str):
        check_api_url(str(data["api_url"]))
    if isinstance(data.get("ui_url"), str):
        data["ui_url"] = check_ui_url(str(data["ui_url"]))
    path = profile_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):  # a folder we do not own keeps its mode
        os.chmod(path.parent, FOLDER_MODE)
    # mkstemp creates the file with mode 0600 from the start: the key is never readable by others,
    # not even for an instant; os.replace makes the new profile appear whole or not at all.
    fd, temporary = tempfile.mkstemp(prefix=".profile-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def remove_profile() -> bool:
    """Delete the profile; False when there was none."""
    try:
        profile_path().unlink()
    except FileNotFoundError:
        return False
    return True


def resolve_ui_url() -> str:
    """The Temporal Web UI: `MULTINODE_UI_URL`, then the profile's `ui_url`, then the local
    `multinode dev` default."""
    value = os.environ.get(ENV_UI_URL) or profile_text(load_profile(), "ui_url") or DEFAULT_UI_URL
    return check_ui_url(value)
