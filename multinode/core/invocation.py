"""The original `multinode.core.invocation`: the same names, now defined in `multinode`."""

from multinode._invocation import Invocation, InvocationStatus

__all__ = ["Invocation", "InvocationStatus"]
