"""What `@function()` accepts, the kind it records for each, and what it refuses at decoration."""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import multinode as mn
from multinode import errors
from multinode._definition import kind
from multinode.admin.discovery import discover
from multinode.contract.kinds import FunctionKind
from multinode.contract.options import FunctionOptions
from multinode.contract.records import FunctionSpec, from_json

pytestmark = pytest.mark.timeout(30)


def plain(x: int) -> int:
    return x


def generator(n: int) -> Iterator[int]:
    yield from range(n)


async def coroutine_function(x: int) -> int:
    return x


async def async_generator(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


async def wrapped_coroutine_function(x: int) -> int:
    return x


@functools.wraps(wrapped_coroutine_function)
def wrapper_of_async(x: int) -> Any:
    return wrapped_coroutine_function(x)


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (plain, FunctionKind.FUNCTION),
        (generator, FunctionKind.GENERATOR),
        (coroutine_function, FunctionKind.ASYNC_FUNCTION),
        (async_generator, FunctionKind.ASYNC_GENERATOR),
        (wrapper_of_async, FunctionKind.ASYNC_FUNCTION),
    ],
)
def test_each_kind_is_recognised(fn: Callable[..., Any], expected: FunctionKind) -> None:
    function = mn.Multinode().function()(fn)
    assert kind(function) is expected
    assert function.is_generator is expected.is_generator


class Shape:
    def area(self) -> float:
        return 1.0


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (Shape, "not the class 'Shape'"),
        (lambda x: x, "not a lambda; a function runs by its name"),
        (math.sqrt, "not the builtin 'sqrt'"),
        (len, "not the builtin 'len'"),
        (Shape().area, "not the bound method 'Shape.area'"),
        (functools.partial(plain, 1), "(a partial)"),
        (staticmethod(plain), "(a staticmethod)"),
        (42, "not 42 (a int)"),
    ],
    ids=["class", "lambda", "builtin function", "builtin len", "bound method", "partial", "staticmethod", "number"],
)
def test_what_is_not_a_function_is_refused_at_decoration(target: Any, message: str) -> None:
    with pytest.raises(errors.InvalidOptionError) as caught:
        mn.Multinode().function()(target)
    text = str(caught.value)
    assert text.startswith("@function() decorates a function defined with def or async def, not ")
    assert message in text, text


def test_manifests_from_before_kinds_still_read() -> None:
    options = FunctionOptions().to_dict()
    old_generator = from_json(FunctionSpec, {"name": "g", "options": options, "is_generator": True})
    old_function = from_json(FunctionSpec, {"name": "f", "options": options, "is_generator": False})
    new = from_json(FunctionSpec, {"name": "a", "options": options, "is_generator": True, "kind": "async generator"})
    assert old_generator.function_kind is FunctionKind.GENERATOR
    assert old_function.function_kind is FunctionKind.FUNCTION
    assert new.function_kind is FunctionKind.ASYNC_GENERATOR


def test_discovery_reports_each_functions_kind(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(
        "from multinode import Multinode\n"
        "mn = Multinode()\n"
        "@mn.function()\n"
        "async def fetch(url):\n"
        "    return url\n"
        "@mn.function()\n"
        "async def stream(n):\n"
        "    yield n\n"
    )
    functions, _services = discover(tmp_path, Path(sys.executable))
    assert {f["name"]: (f["kind"], f["is_generator"]) for f in functions} == {
        "fetch": ("async function", False),
        "stream": ("async generator", True),
    }


def test_deploy_and_describe_show_each_kind(capsys: pytest.CaptureFixture[str]) -> None:
    from multinode.contract.records import PackageRef, VersionManifest
    from multinode_cli import output

    manifest = VersionManifest(
        project_name="p", version_id="v", created_at=0.0, package=PackageRef("", "", 0), requirements_sha256=None,
        functions=[
            FunctionSpec("old", FunctionOptions(), is_generator=True),  # a manifest from before kinds
            FunctionSpec("fetch", FunctionOptions(), kind="async function"),
            FunctionSpec("stream", FunctionOptions(), is_generator=True, kind="async generator"),
        ],
    )
    output.functions_table(manifest)
    rows = {line.split("  ")[0].strip(): line for line in capsys.readouterr().out.splitlines()[1:]}
    assert " generator " in rows["old"]
    assert " async function " in rows["fetch"]
    assert " async generator " in rows["stream"]
    assert [f["kind"] for f in output.to_json(manifest)["functions"]] == ["generator", "async function", "async generator"]
