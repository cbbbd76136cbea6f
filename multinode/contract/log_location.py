"""Where an attempt's logs live when the backend keeps them on the worker's machine (the local
backend): `<machine>:<absolute path>`. The worker records it with each attempt; `multinode logs`
reads the file when the attempt ran on its own machine and otherwise says where it is.

A machine is named by `MULTINODE_MACHINE_NAME`, else its host name (set it where host names are
not stable or not unique, e.g. in containers)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

ENV_MACHINE_NAME = "MULTINODE_MACHINE_NAME"


def machine_name() -> str:
    return os.environ.get(ENV_MACHINE_NAME, "").strip() or socket.gethostname()


def log_location(path: Path) -> str:
    """The location of the log file at `path` on this machine."""
    return f"{machine_name()}:{path.absolute()}"


def parse_log_location(location: str) -> tuple[str, Path]:
    """(machine, path) of a location made by `log_location`."""
    machine, _, path = location.partition(":")
    return machine, Path(path)
