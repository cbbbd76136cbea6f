"""Multinode: run Python functions remotely, durably, one fresh container per attempt.

In a tasks folder:

    from multinode import Multinode
    mn = Multinode()

    @mn.function(cpu=1, memory="1 GiB", timeout=timedelta(minutes=5))
    def work(x): ...

Anywhere else:

    from multinode import get_deployed_function
    work = get_deployed_function(project_name="my_project", function_name="work")
    print(work.call_remote(42))
"""

from multinode import errors
from multinode._definition import Multinode, function, job, service
from multinode._function import Function, get_deployed_function
from multinode._invocation import (
    Attempt,
    ErrorDetails,
    Invocation,
    InvocationIdsList,
    InvocationStatus,
)
from multinode._service import Service
from multinode.contract.options import FunctionOptions
from multinode.contract.services import ServiceStatus

__version__ = "0.1.0"

__all__ = [
    "Attempt",
    "ErrorDetails",
    "Function",
    "FunctionOptions",
    "Invocation",
    "InvocationIdsList",
    "InvocationStatus",
    "Multinode",
    "Service",
    "ServiceStatus",
    "errors",
    "function",
    "get_deployed_function",
    "job",
    "service",
]
