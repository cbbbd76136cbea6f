"""The one error tree of Multinode: every error the SDK raises derives from `MultinodeError`.

Errors that user code may meet inside a running function (`InvocationCancelledError`,
`InvocationTimedOutError`) are the same classes the caller sees, so one `except` works on both
sides.
"""

from __future__ import annotations


class MultinodeError(Exception):
    """Base class of every error raised by Multinode."""


class InvalidOptionError(MultinodeError, ValueError):
    """A decorator option, setting or argument is out of range or of the wrong type."""


class PayloadTooLargeError(MultinodeError, ValueError):
    """An argument or result exceeds the size limit of its encoded form."""


class EncodingError(MultinodeError, ValueError):
    """A value could not be encoded (pickled) or decoded."""


class ControlPlaneUnavailableError(MultinodeError):
    """The control plane (Temporal) could not be reached or refused the credentials."""


class DevServerError(MultinodeError):
    """The embedded control plane (`multinode dev`'s Temporal dev server) could not start."""


class DeployError(MultinodeError):
    """A tasks folder could not be deployed (missing main.py, syntax error, bad requirements...)."""


class ProjectDoesNotExistError(MultinodeError, LookupError):
    """No project with this name is deployed."""


class ProjectAlreadyExistsError(MultinodeError):
    """`deploy` of a project that already exists (use `upgrade`)."""


class VersionDoesNotExistError(MultinodeError, LookupError):
    """The project has no version with this id."""


class FunctionDoesNotExistError(MultinodeError, LookupError):
    """The project version has no function with this name."""


class InvocationDoesNotExistError(MultinodeError, LookupError):
    """No invocation with this id exists (or it was removed), or the id is malformed: an id a user
    mistyped names no invocation, so a web app maps both to 404 with one `except`."""


class LockAlreadyInUseError(MultinodeError):
    """Another PENDING or RUNNING invocation of the project holds the lock key."""

    def __init__(self, message: str, *, lock: str, holder_invocation_id: str | None) -> None:
        super().__init__(message)
        self.lock = lock
        self.holder_invocation_id = holder_invocation_id


class AwaitTimeoutError(MultinodeError, TimeoutError):
    """`.await_result(..., timeout=...)` gave up waiting; the invocation itself goes on (it is not
    cancelled). A builtin `TimeoutError` too, so `except TimeoutError` keeps working."""

    def __init__(self, message: str, *, invocation_id: str) -> None:
        super().__init__(message)
        self.invocation_id = invocation_id


class InvocationError(MultinodeError):
    """An invocation ended without a result (base of the three endings below)."""

    def __init__(self, message: str = "", *, invocation_id: str | None = None) -> None:
        super().__init__(message)
        self.invocation_id = invocation_id


class InvocationFailedError(InvocationError):
    """The invocation's last attempt failed.

    `error_type`, `error_message` and `remote_traceback` describe the failure inside the function.
    """

    def __init__(
        self,
        message: str = "",
        *,
        invocation_id: str | None = None,
        error_type: str | None = None,
        error_message: str | None = None,
        remote_traceback: str | None = None,
    ) -> None:
        super().__init__(message, invocation_id=invocation_id)
        self.error_type = error_type
        self.error_message = error_message
        self.remote_traceback = remote_traceback


class InvocationCancelledError(InvocationError):
    """The invocation was cancelled. Raised inside the function's code when it is cancelled,
    and to callers awaiting a cancelled invocation."""


class InvocationTimedOutError(InvocationError):
    """The invocation's attempt ran past its timeout. Raised inside the function's code at the
    deadline, and to callers awaiting a timed-out invocation."""


# The older "jobs" spelling of the same errors.
JobCancelled = InvocationCancelledError
JobDoesNotExist = InvocationDoesNotExistError
# The original product's names, from before the tree's `...Error` naming (README, "Coming from
# the original Multinode").
LockAlreadyInUse = LockAlreadyInUseError
InvocationDoesNotExist = InvocationDoesNotExistError
FunctionDoesNotExist = FunctionDoesNotExistError
VersionDoesNotExist = VersionDoesNotExistError
ProjectDoesNotExist = ProjectDoesNotExistError
ProjectAlreadyExists = ProjectAlreadyExistsError

__all__ = [
    "AwaitTimeoutError",
    "ControlPlaneUnavailableError",
    "DeployError",
    "DevServerError",
    "EncodingError",
    "FunctionDoesNotExist",
    "FunctionDoesNotExistError",
    "InvalidOptionError",
    "InvocationCancelledError",
    "InvocationDoesNotExist",
    "InvocationDoesNotExistError",
    "InvocationError",
    "InvocationFailedError",
    "InvocationTimedOutError",
    "JobCancelled",
    "JobDoesNotExist",
    "LockAlreadyInUse",
    "LockAlreadyInUseError",
    "MultinodeError",
    "PayloadTooLargeError",
    "ProjectAlreadyExists",
    "ProjectAlreadyExistsError",
    "ProjectDoesNotExist",
    "ProjectDoesNotExistError",
    "VersionDoesNotExist",
    "VersionDoesNotExistError",
]


# ---------------------------------------------------------------------------------------------
# Errors of preparing or launching an attempt: no user code has run. A worker reports them as
# the attempt's error (by class name); the deploying side meets the package ones directly.


class PackageIntegrityError(MultinodeError):
    """A package does not match its hash, is not a valid archive, or has an unsafe member."""


class PackageNotFoundError(MultinodeError, LookupError):
    """No package is stored at this URI."""


class RequirementsInstallError(DeployError):
    """The requirements of a tasks folder could not be installed."""


class OverridesTooLargeError(InvalidOptionError):
    """An attempt's Fargate task overrides do not fit RunTask's limit."""


__all__ += [
    "OverridesTooLargeError",
    "PackageIntegrityError",
    "PackageNotFoundError",
    "RequirementsInstallError",
]
