"""The original `multinode.core.errors`: the same names, now defined in `multinode.errors`."""

from multinode.errors import InvocationCancelledError, InvocationFailedError, InvocationTimedOutError

__all__ = ["InvocationCancelledError", "InvocationFailedError", "InvocationTimedOutError"]
