"""The original error names of the API client, as the classes of `multinode.errors`."""

from multinode.errors import (
    FunctionDoesNotExist,
    InvocationDoesNotExist,
    ProjectAlreadyExists,
    ProjectDoesNotExist,
    VersionDoesNotExist,
)
from multinode.errors import MultinodeError as MultinodeApiException  # now the base of every error

__all__ = [
    "FunctionDoesNotExist",
    "InvocationDoesNotExist",
    "MultinodeApiException",
    "ProjectAlreadyExists",
    "ProjectDoesNotExist",
    "VersionDoesNotExist",
]
