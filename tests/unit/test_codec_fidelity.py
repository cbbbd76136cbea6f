"""No value changes silently on its way: what jsonpickle cannot carry faithfully is refused when
it is encoded, naming its type, and what cannot be decoded where it arrives (a class or a
reducing function missing there) is an error naming what is missing and on which side."""

from __future__ import annotations

import array
import asyncio
import collections
import datetime
import decimal
import fractions
import io
import pathlib
import socket
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import multinode as mn
from multinode import errors
from multinode._invocation import invocation_from_record
from multinode.contract import codec
from multinode.contract.records import InvocationRecord

pytestmark = pytest.mark.timeout(30)


class _NoClient:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the engine was reached ({name})")


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    __hash__ = None  # type: ignore[assignment]


class Marker:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Marker)

    __hash__ = None  # type: ignore[assignment]


def _generator() -> Iterator[int]:
    yield 1


async def _coroutine() -> None:
    return None


async def _async_generator() -> Any:
    yield 1


def _refusals() -> list[tuple[str, Any, str]]:
    coroutine = _coroutine()
    coroutine.close()  # never awaited on purpose; closed so no warning is printed
    return [
        ("coroutine", coroutine, "coroutine"),
        ("memoryview", memoryview(b"abc"), "memoryview"),
        ("generator", _generator(), "generator"),
        ("async generator", _async_generator(), "async_generator"),
        ("lock", threading.Lock(), "_thread.lock"),
        ("rlock", threading.RLock(), "_thread.RLock"),
        ("lambda", lambda: 1, "function"),
        ("bound method", Point(1, 2).__eq__, "method"),
        ("open file", open(__file__), "_io.TextIOWrapper"),
        ("socket", socket.socket(), "socket.socket"),
        ("ellipsis", ..., "ellipsis"),
        ("nested in a dict key's value", {"k": [1, (2, memoryview(b"x"))]}, "memoryview"),
    ]


REFUSALS = _refusals()


@pytest.mark.parametrize(("case", "value", "type_name"), REFUSALS, ids=[c[0] for c in REFUSALS])
def test_a_value_that_would_arrive_changed_is_refused_naming_its_type(case: str, value: Any, type_name: str) -> None:
    with pytest.raises(errors.EncodingError) as caught:
        codec.encode(value, "argument 'data'")
    assert str(caught.value).startswith(
        f"argument 'data' cannot be sent: it is or contains a value of type {type_name}, which would arrive as "
        f"something else"
    ), str(caught.value)


def test_a_generator_is_refused_before_it_is_consumed() -> None:
    items = iter(_generator_of_three())
    with pytest.raises(errors.EncodingError):
        codec.encode(items, "argument 0")
    assert list(items) == [0, 1, 2]


def _generator_of_three() -> Iterator[int]:
    yield from range(3)


FAITHFUL: list[Any] = [
    {"plain": [1, 2.5, None, True, "text", "py/not-a-tag"]},
    {1: "int key", (1, 2): "tuple key"},
    (1, (2, 3)),
    {1, 2},
    frozenset({3}),
    b"\x00bytes",
    bytearray(b"mutable"),
    decimal.Decimal("1.5"),
    fractions.Fraction(1, 3),
    datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
    datetime.timedelta(seconds=3),
    uuid.UUID(int=7),
    pathlib.PurePosixPath("/a/b"),
    collections.OrderedDict(a=1),
    collections.Counter("aab"),
    array.array("i", [1, 2]),
    1j,
    range(3),
    Point(1, 2),
    Marker(),
    Path,
    codec.encode,
]


@pytest.mark.parametrize("value", FAITHFUL, ids=[type(v).__name__ for v in FAITHFUL])
def test_what_travels_arrives_equal(value: Any) -> None:
    decoded = codec.decode(codec.encode(value, "argument 0"))
    assert type(decoded) is type(value)
    assert decoded == value


def test_an_io_buffer_keeps_its_content() -> None:
    decoded = codec.decode(codec.encode(io.StringIO("kept"), "argument 0"))
    assert decoded.getvalue() == "kept"


@pytest.fixture
def module_only_here(tmp_path: Path) -> Iterator[Any]:
    """A module importable while the value is encoded, gone when it is decoded: the other side's
    environment lacks it (numpy 2 beside numpy 1, a class only the caller has)."""
    (tmp_path / "onlyhere.py").write_text(
        "class Thing:\n"
        "    def __init__(self, n):\n"
        "        self.n = n\n"
        "    def __reduce__(self):\n"
        "        return (rebuild, (self.n,))\n"
        "def rebuild(n):\n"
        "    return Thing(n)\n"
        "class Plain:\n"
        "    def __init__(self, n):\n"
        "        self.n = n\n"
    )
    sys.path.insert(0, str(tmp_path))
    import onlyhere  # type: ignore[import-not-found]

    try:
        yield onlyhere
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("onlyhere", None)


def test_a_missing_reducing_function_is_an_error_not_plain_data(module_only_here: Any, tmp_path: Path) -> None:
    text = codec.encode({"grid": module_only_here.Thing(3)}, "argument 0")
    assert '"py/reduce"' in text
    (tmp_path / "onlyhere.py").unlink()
    sys.modules.pop("onlyhere")
    with pytest.raises(errors.EncodingError) as caught:
        codec.decode(text, "argument 0", "in the function's environment")
    assert str(caught.value).startswith(
        "argument 0 cannot be decoded in the function's environment: it needs the function onlyhere.rebuild, "
        "which is missing in the function's environment (No module named 'onlyhere')"
    )


def test_a_missing_class_is_an_error_not_a_dict(module_only_here: Any, tmp_path: Path) -> None:
    text = codec.encode([module_only_here.Plain(1)], "the result")
    (tmp_path / "onlyhere.py").unlink()
    sys.modules.pop("onlyhere")
    with pytest.raises(errors.EncodingError, match=r"it needs the class onlyhere\.Plain, which is missing here"):
        codec.decode(text)


def test_a_renamed_attribute_is_named() -> None:
    with pytest.raises(errors.EncodingError, match=r"module 'collections' has no attribute 'Renamed'"):
        codec.decode('{"py/reduce": [{"py/type": "collections.Renamed"}, {"py/tuple": []}]}')


def test_an_undecodable_result_leaves_the_rest_of_the_invocation_readable() -> None:
    record = InvocationRecord(
        invocation_id="inv-x", project_name="p", function_name="f", version_id="v", parent_invocation_id=None,
        status="SUCCEEDED", created_at=0.0, result='{"py/object": "functionside.Result", "n": 1}', has_result=True,
    )
    invocation = invocation_from_record(record, terminated=True)
    assert invocation.status is mn.InvocationStatus.SUCCEEDED and invocation.error is None
    assert invocation.terminated
    with pytest.raises(errors.EncodingError) as caught:
        invocation.result  # noqa: B018
    assert str(caught.value).startswith(
        "the result of inv-x cannot be decoded in this process: it needs the class functionside.Result"
    )


def test_a_result_is_decoded_once_when_read() -> None:
    record = InvocationRecord(
        invocation_id="inv-x", project_name="p", function_name="f", version_id="v", parent_invocation_id=None,
        status="SUCCEEDED", created_at=0.0, result=codec.encode([Point(1, 2)], "r"), has_result=True,
    )
    invocation = invocation_from_record(record, terminated=True)
    assert invocation.result == [Point(1, 2)]
    assert invocation.result is invocation.result
    assert invocation_from_record(
        InvocationRecord("inv-y", "p", "f", "v", None, "RUNNING", 0.0), terminated=False
    ).result is None


def test_the_caller_refuses_before_anything_is_created() -> None:
    deployed = mn.Function("f", project_name="p", client=_NoClient())  # type: ignore[var-annotated, arg-type]
    coroutine = asyncio.sleep(0)
    try:
        with pytest.raises(errors.EncodingError, match=r"^argument 'data' cannot be sent: .* coroutine"):
            deployed.start(1, data=coroutine)
    finally:
        coroutine.close()
