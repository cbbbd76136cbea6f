"""The Web UI's short forms of values: read from the encoded text without building anything, cut
to length, never failing."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from multinode.contract import codec, preview
from multinode.contract.options import FunctionOptions
from multinode.contract.records import InvocationInput, PackageRef

pytestmark = pytest.mark.timeout(30)


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Opaque:
    __slots__ = ("secret",)

    def __init__(self) -> None:
        self.secret = 1

    def __getstate__(self) -> object:
        return ("state", self.secret)

    def __setstate__(self, state: object) -> None:
        self.secret = 1


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (21, "21"),
        ("abc", "'abc'"),
        (None, "None"),
        (True, "True"),
        ([1, "a", None], "[1, 'a', None]"),
        ((1,), "(1,)"),
        ((1, 2), "(1, 2)"),
        ({"k": [1, 2]}, "{'k': [1, 2]}"),
        ({3}, "{3}"),
        (Point(1, 2), "Point(x=1, y=2)"),
        (b"\x00\x01", "b'…'"),
        (datetime.date(2025, 1, 31), "date(…)"),
        (Opaque(), "Opaque(…)"),
        (Point, "Point"),
        ([[[[[1]]]]], "[[[[…]]]]"),
    ],
)
def test_a_value_reads_like_python_without_being_decoded(value: object, shown: str) -> None:
    assert preview.preview(codec.encode(value, "v"), 80) == shown


def test_long_and_odd_text_is_cut_never_refused() -> None:
    long = codec.encode("x" * 1000, "v")
    assert preview.preview(long, 20) == "'" + "x" * 18 + "…"
    assert len(preview.preview(codec.encode(list(range(10_000)), "v"), 50)) == 50
    huge = codec.encode("y" * (preview.PARSE_MAX_CHARS + 10), "v")
    assert preview.preview(huge, 10) == '"yyyyyyyy…'  # cut as it is, unparsed
    assert preview.preview("not json {", 40) == "not json {"
    assert preview.preview("a\n  b", 40) == "a b"


def test_the_summary_names_the_call_and_the_details_every_argument() -> None:
    args, kwargs = codec.encode_arguments((21, "text " * 40), {"scale": 1.5})
    invocation = InvocationInput(
        invocation_id="inv-1", project_name="p", function_name="solve", version_id="v-1",
        parent_invocation_id="inv-0", options=FunctionOptions(), package=PackageRef("x", "0" * 64, 1),
        requirements_sha256=None, args=args, kwargs=kwargs, created_at=0.0,
    )
    summary = preview.invocation_summary(invocation)
    assert summary.startswith("solve(21, 'text text") and "…, scale=1.5) · p @ v-1 · child of inv-0" in summary
    assert len(summary) <= preview.SUMMARY_MAX_CHARS
    details = preview.invocation_details(invocation)
    assert "**p.solve** · version `v-1`" in details and "started by invocation `inv-0`" in details
    assert "- `0`: `21`" in details and "- `scale`: `1.5`" in details
    assert "timeout 3600 s · max_retries 0" in details


def test_a_backtick_cannot_break_the_markdown() -> None:
    assert preview.inline_code("a`b") == "`a'b`"
