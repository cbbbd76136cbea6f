"""Issue 8: bad input, one table. Each case gives one clear error naming the value and what is
allowed, and creates nothing (these cases fail before anything is sent anywhere)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import multinode as mn
from multinode import errors
from multinode.contract.ids import check_name

pytestmark = pytest.mark.timeout(30)


def decorate(**options: Any) -> Callable[[], Any]:
    return lambda: mn.Multinode().function(**options)(lambda x: x)


class _NoClient:
    """Any engine call would fail the test: these inputs must be refused before."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the engine was reached ({name})")


def deployed(name: str = "f") -> mn.Function:  # type: ignore[type-arg]
    return mn.Function(name, project_name="p", client=_NoClient())  # type: ignore[arg-type]


class Unpicklable:
    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("no pickling")


CASES: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    ("unpicklable argument", lambda: deployed().start(Unpicklable()), errors.EncodingError, "argument 0 cannot be sent: it is or contains a value of type tests.unit.test_bad_input.Unpicklable"),
    ("cpu too small", decorate(cpu=0.01), errors.InvalidOptionError, "cpu=0.01 is out of range; allowed: 0.1 to 16"),
    ("cpu too large", decorate(cpu=17), errors.InvalidOptionError, "cpu=17 is out of range; allowed: 0.1 to 16"),
    ("cpu wrong type", decorate(cpu="2"), errors.InvalidOptionError, "cpu='2' is not a number"),
    ("cpu bool", decorate(cpu=True), errors.InvalidOptionError, "cpu=True is not a number"),
    ("cpu nan", decorate(cpu=float("nan")), errors.InvalidOptionError, "cpu=nan is out of range"),
    ("memory too large", decorate(memory="65 GiB"), errors.InvalidOptionError, "memory='65 GiB' is out of range; allowed: 128 MiB to 64 GiB"),
    ("memory too small", decorate(memory="64 MiB"), errors.InvalidOptionError, "allowed: 128 MiB to 64 GiB"),
    ("memory unparsable", decorate(memory="lots"), errors.InvalidOptionError, "memory='lots' is not a size"),
    ("memory wrong type", decorate(memory=256), errors.InvalidOptionError, "memory=256 is not a size string"),
    ("timeout too long", decorate(timeout=timedelta(hours=25)), errors.InvalidOptionError, "allowed: 1 s to 24 h"),
    ("timeout zero", decorate(timeout=timedelta(0)), errors.InvalidOptionError, "is out of range"),
    ("timeout wrong type", decorate(timeout=30), errors.InvalidOptionError, "timeout=30 is not a datetime.timedelta"),
    ("max_concurrency zero", decorate(max_concurrency=0), errors.InvalidOptionError, "max_concurrency=0 is out of range; allowed: 1 to 100"),
    ("max_concurrency too large", decorate(max_concurrency=101), errors.InvalidOptionError, "allowed: 1 to 100"),
    ("max_concurrency float", decorate(max_concurrency=2.5), errors.InvalidOptionError, "max_concurrency=2.5 is not an integer"),
    ("max_retries negative", decorate(max_retries=-1), errors.InvalidOptionError, "max_retries=-1 is out of range; allowed: 0 to 50"),
    ("max_retries too large", decorate(max_retries=51), errors.InvalidOptionError, "allowed: 0 to 50"),
    ("oversized argument", lambda: deployed().start("x" * 250_000), errors.PayloadTooLargeError, "the limit is 250,000"),
    ("oversized keyword argument", lambda: deployed().start(data="y" * 300_000), errors.PayloadTooLargeError, "argument 'data'"),
    ("arguments too large together", lambda: deployed().start(*["z" * 200_000] * 6), errors.PayloadTooLargeError, "arguments together"),
    ("lock of wrong type", lambda: deployed().start(1, lock=5), errors.InvalidOptionError, "lock=5 must be a non-empty string"),
    # A malformed id names no invocation: the error of an unknown id, saying it is malformed.
    ("malformed invocation id", lambda: deployed().get("inv-123"), errors.InvocationDoesNotExistError, "invocation id 'inv-123' is malformed"),
    ("path in invocation id", lambda: deployed().cancel("inv-../../etc/passwd"), errors.InvocationDoesNotExistError, "is malformed"),
    ("not an id at all", lambda: deployed().await_result(42), errors.InvocationDoesNotExistError, "invocation id 42 is malformed"),
    ("malformed id to remove", lambda: deployed().remove("inv-X"), errors.InvocationDoesNotExistError, "is malformed"),
    ("malformed page offset", lambda: deployed().list("page-2"), errors.InvalidOptionError, "offset 'page-2' is malformed"),
    ("lock key of wrong type", lambda: deployed().start_locked(7, 1), errors.InvalidOptionError, "lock=7 must be a non-empty string"),
    ("empty lock key", lambda: deployed().start_locked("", 1), errors.InvalidOptionError, "lock='' must be"),
    ("malformed version id", lambda: mn.get_deployed_function("p", "f", version_id="v1"), errors.InvalidOptionError, "version id 'v1' is malformed"),
    ("project with a slash", lambda: mn.get_deployed_function("a/b", "f"), errors.InvalidOptionError, "project name 'a/b' is not allowed"),
    ("project with dots", lambda: mn.get_deployed_function("..", "f"), errors.InvalidOptionError, "project name '..' is not allowed"),
    ("project with a space", lambda: mn.get_deployed_function("my project", "f"), errors.InvalidOptionError, "not allowed"),
    ("project too long", lambda: mn.get_deployed_function("p" * 65, "f"), errors.InvalidOptionError, "65 characters long; at most 64"),
    ("function with a backslash", lambda: mn.get_deployed_function("p", "a\\b"), errors.InvalidOptionError, "function name 'a\\\\b' is not allowed"),
    ("empty function name", lambda: check_name("", "function name"), errors.InvalidOptionError, "must be a non-empty string"),
]


@pytest.mark.parametrize(("case", "call", "error", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_clearly(case: str, call: Callable[[], Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error) as caught:
        call()
    text = str(caught.value)
    assert message in text, text
    assert "\n" not in text  # one clear line
    assert isinstance(caught.value, errors.MultinodeError)


def test_job_alias_validates_the_same_way() -> None:
    with pytest.raises(errors.InvalidOptionError, match="max_retries=99"):
        mn.job(max_retries=99)
