"""The public surface is pinned: a name added to or dropped from `multinode` or `multinode.errors`
fails here first, and every error class a user can meet lives in the one tree of
`multinode.errors`."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import multinode
from multinode import errors

PUBLIC_NAMES = {
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
}

ERROR_NAMES = {
    "AwaitTimeoutError",
    "ControlPlaneUnavailableError",
    "DeployError",
    "DevServerError",
    "EncodingError",
    "FunctionDoesNotExistError",
    "InvalidOptionError",
    "InvocationCancelledError",
    "InvocationDoesNotExistError",
    "InvocationError",
    "InvocationFailedError",
    "InvocationTimedOutError",
    "LockAlreadyInUseError",
    "MultinodeError",
    "OverridesTooLargeError",
    "PackageIntegrityError",
    "PackageNotFoundError",
    "PayloadTooLargeError",
    "ProjectAlreadyExistsError",
    "ProjectDoesNotExistError",
    "RequirementsInstallError",
    "VersionDoesNotExistError",
    # Older names, kept for code written against the original docs.
    "JobCancelled",
    "JobDoesNotExist",
    "LockAlreadyInUse",
    "InvocationDoesNotExist",
    "FunctionDoesNotExist",
    "VersionDoesNotExist",
    "ProjectDoesNotExist",
    "ProjectAlreadyExists",
}

# Old name -> the class it stands for.
ALIASES = {
    "JobCancelled": "InvocationCancelledError",
    "JobDoesNotExist": "InvocationDoesNotExistError",
    "LockAlreadyInUse": "LockAlreadyInUseError",
    "InvocationDoesNotExist": "InvocationDoesNotExistError",
    "FunctionDoesNotExist": "FunctionDoesNotExistError",
    "VersionDoesNotExist": "VersionDoesNotExistError",
    "ProjectDoesNotExist": "ProjectDoesNotExistError",
    "ProjectAlreadyExists": "ProjectAlreadyExistsError",
}


def _exception_classes(module: object) -> dict[str, type[BaseException]]:
    """The exception classes a module defines itself (not those it imports), by name."""
    return {
        name: value
        for name, value in vars(module).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == getattr(module, "__name__", None)
    }


def test_multinode_all_is_pinned() -> None:
    assert set(multinode.__all__) == PUBLIC_NAMES
    assert len(multinode.__all__) == len(PUBLIC_NAMES), "a name is listed twice"
    for name in multinode.__all__:
        assert hasattr(multinode, name), name


def test_errors_all_is_pinned() -> None:
    assert set(errors.__all__) == ERROR_NAMES
    assert len(errors.__all__) == len(ERROR_NAMES), "a name is listed twice"


def test_every_exported_error_is_in_the_tree() -> None:
    for name in errors.__all__:
        value = getattr(errors, name)
        assert inspect.isclass(value) and issubclass(value, errors.MultinodeError), name
        if name in ALIASES:
            assert value is getattr(errors, ALIASES[name]), name
        else:
            assert value.__name__ == name, f"{name} is an alias of {value.__name__}: list it in ALIASES"


def test_every_public_error_class_is_exported() -> None:
    defined = {name for name in _exception_classes(errors) if not name.startswith("_")}
    assert defined <= set(errors.__all__), sorted(defined - set(errors.__all__))


def test_lock_error_keeps_its_old_name() -> None:
    error = errors.LockAlreadyInUse("held", lock="table-7", holder_invocation_id="abc")
    assert isinstance(error, errors.LockAlreadyInUseError)
    assert (error.lock, error.holder_invocation_id) == ("table-7", "abc")


def test_no_public_exception_class_outside_errors() -> None:
    """A module may keep a private (`_`-prefixed) exception for its own control flow; any
    other exception class belongs in `multinode.errors`, where users look for it."""
    strays = []
    for info in pkgutil.walk_packages(multinode.__path__, "multinode."):
        if info.name == errors.__name__:
            continue
        module = importlib.import_module(info.name)
        strays += [f"{info.name}.{name}" for name in _exception_classes(module) if not name.startswith("_")]
    assert not strays, f"define these in multinode.errors (or make them private): {sorted(strays)}"
