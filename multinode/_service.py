"""`Service`: a long-running process deployed with its project, declared with
`@mn.service(port=...)` in a tasks folder's main.py.

Importing this module stays cheap (no temporalio, no pydantic): it runs in every service and
function process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from multinode.contract.ids import check_name
from multinode.contract.options import format_memory, parse_cpu, parse_memory
from multinode.contract.services import ServiceSpec, parse_port, service_refusal
from multinode.errors import InvalidOptionError

# Every service decorated in this process, by name: discovery and the service runner read it.
_REGISTRY: dict[str, Service] = {}


def registered_services() -> dict[str, Service]:
    return dict(_REGISTRY)


class Service:
    """A service of a tasks folder: its process runs from deploy to undeploy, restarted when it
    ends, listening on `port`. Calling it runs its body here (handy in tests)."""

    def __init__(self, name: str, *, port: int, cpu: float, memory_mib: int, local_callable: Callable[[], Any]) -> None:
        self.name = name
        self.port = port
        self.cpu = cpu
        self.memory_mib = memory_mib
        self.local_callable = local_callable
        self.__doc__ = local_callable.__doc__
        self.__wrapped__ = local_callable

    def __repr__(self) -> str:
        return f"<multinode.Service {self.name} port={self.port} cpu={self.cpu:g} memory={self.memory}>"

    def __call__(self) -> Any:
        return self.local_callable()

    @property
    def memory(self) -> str:
        return format_memory(self.memory_mib)

    @property
    def spec(self) -> ServiceSpec:
        return ServiceSpec(name=self.name, port=self.port, cpu=self.cpu, memory_mib=self.memory_mib)


class ServiceDecorator:
    def __init__(self, port: Any, cpu: Any, memory: Any) -> None:
        self._port = parse_port(port)
        self._cpu = parse_cpu(cpu)
        self._memory_mib = parse_memory(memory)

    def __call__(self, fn: Callable[[], Any]) -> Service:
        refused = service_refusal(fn)
        if refused is not None:
            raise InvalidOptionError(f"@service() decorates a function without parameters, not {refused}")
        name = check_name(fn.__name__, "service name")
        if name in _REGISTRY and _REGISTRY[name].local_callable is not fn:
            raise InvalidOptionError(f"two services are named {name!r}; service names must be unique in a project")
        from multinode._definition import registered_functions

        if name in registered_functions():
            raise InvalidOptionError(
                f"{name!r} is already a function of this project; give the service another name"
            )
        service = Service(name, port=self._port, cpu=self._cpu, memory_mib=self._memory_mib, local_callable=fn)
        _REGISTRY[name] = service
        return service
