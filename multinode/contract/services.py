"""Services: what a `@mn.service` declares, and the statuses its control loop reports.

A service is a long-running process deployed with its project, listening on one port. Its
declaration is checked when the decorator runs and kept in the version's manifest; the
records its control loop exchanges live in `service_state`.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from multinode.contract.kinds import kind_of, refusal
from multinode.contract.options import format_memory
from multinode.errors import InvalidOptionError

PORT_MIN = 1
PORT_MAX = 65535

# The kind deploy and `multinode describe` show beside the functions' kinds.
SERVICE_KIND = "service"


class ServiceStatus(enum.StrEnum):
    """Stored in memos and search attributes: never rename the values."""

    STARTING = "STARTING"  # its process is starting (or waiting to restart), port not open yet
    RUNNING = "RUNNING"  # its port accepts connections
    UNHEALTHY = "UNHEALTHY"  # it was RUNNING, its port stopped accepting connections
    STOPPED = "STOPPED"  # undeployed, or not started yet
    FAILED = "FAILED"  # it cannot start (port taken, never healthy): see the reason


@dataclass(frozen=True)
class ServiceSpec:
    """One service of a version, as its manifest keeps it."""

    name: str
    port: int
    cpu: float
    memory_mib: int
    kind: str = SERVICE_KIND

    @property
    def memory(self) -> str:
        return format_memory(self.memory_mib)

    def address(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}"


def parse_port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOptionError(f"port={value!r} is not an integer; allowed: {PORT_MIN} to {PORT_MAX}")
    if not (PORT_MIN <= value <= PORT_MAX):
        raise InvalidOptionError(f"port={value!r} is out of range; allowed: {PORT_MIN} to {PORT_MAX}")
    return value


def service_refusal(fn: object) -> str | None:
    """Why `fn` cannot be a service, or None if it can: a module's own `def` or `async def`
    that takes no parameters and is not a generator (a service runs until it is stopped; it has
    no caller to give arguments to, nor to yield to)."""
    refused = refusal(fn)
    if refused is not None:
        return refused
    assert callable(fn)
    function: Callable[..., Any] = fn
    kind = kind_of(function)
    if kind.is_generator:
        return (
            f"the {kind.value} {function.__name__!r}; a service runs until it is stopped and yields "
            f"nothing: define it as a plain def or async def"
        )
    parameters = list(inspect.signature(function).parameters)
    if parameters:
        return (
            f"{function.__name__!r}, which takes parameters ({', '.join(parameters)}); a service is "
            f"started with none: read settings from .env or constants instead"
        )
    return None


def duplicate_ports(services: list[ServiceSpec]) -> str | None:
    """Why two services of one project cannot run together, or None."""
    seen: dict[int, str] = {}
    for spec in services:
        if spec.port in seen:
            return (
                f"services {seen[spec.port]!r} and {spec.name!r} both use port {spec.port}; "
                f"give each service of a project its own port"
            )
        seen[spec.port] = spec.name
    return None
