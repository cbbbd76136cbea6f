"""Short readable forms of values for the Web UI: an invocation's summary and details.

Values are jsonpickle text (see `codec`). A preview reads that text as plain JSON and names what
its tags stand for (`Point(x=1, y=2)` for a `py/object`, a tuple for a `py/tuple`) without ever
importing or building anything, so the invocation workflow may make previews too (it never
decodes user values) and a preview never fails: text that is not JSON is shown cut as it is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multinode.contract.records import InvocationInput

SUMMARY_MAX_CHARS = 200
ARGUMENT_MAX_CHARS = 60
DETAILS_ARGUMENT_MAX_CHARS = 400
# Longer text is cut as it is rather than parsed: a preview must stay cheap in a workflow task.
PARSE_MAX_CHARS = 20_000
_MAX_DEPTH = 4
_ELLIPSIS = "…"


def cut(text: str, max_chars: int) -> str:
    """`text` on one line, at most `max_chars` characters (an ellipsis marks a cut)."""
    line = " ".join(text.split())
    return line if len(line) <= max_chars else line[: max(0, max_chars - 1)] + _ELLIPSIS


def preview(encoded: str | None, max_chars: int) -> str:
    """A short Python-like form of one encoded value."""
    if encoded is None:
        return "None"
    if len(encoded) > PARSE_MAX_CHARS:
        return cut(encoded, max_chars)
    try:
        data = json.loads(encoded)
    except ValueError:
        return cut(encoded, max_chars)
    return cut(_render(data, 0), max_chars)


def call_preview(function_name: str, args: Sequence[str], kwargs: Mapping[str, str], max_chars: int) -> str:
    """`f(21, 'abc', n=3)`: each argument short, the whole call at most `max_chars`."""
    parts = [preview(a, ARGUMENT_MAX_CHARS) for a in args]
    parts += [f"{name}={preview(value, ARGUMENT_MAX_CHARS)}" for name, value in kwargs.items()]
    return cut(f"{function_name}({', '.join(parts)})", max_chars)


def invocation_summary(invocation: InvocationInput) -> str:
    """One line naming the function and its arguments: the invocation's summary in the Web UI."""
    call = call_preview(invocation.function_name, invocation.args, invocation.kwargs, SUMMARY_MAX_CHARS)
    parent = f" · child of {invocation.parent_invocation_id}" if invocation.parent_invocation_id else ""
    return cut(f"{call} · {invocation.project_name} @ {invocation.version_id}{parent}", SUMMARY_MAX_CHARS)


def invocation_details(invocation: InvocationInput) -> str:
    """Markdown: where the invocation runs, each argument (longer than in the summary) and the
    function's options. Fixed at the start, like the summary."""
    options = invocation.options
    lines = [
        f"**{invocation.project_name}.{invocation.function_name}** · version `{invocation.version_id}`",
    ]
    if invocation.parent_invocation_id:
        lines.append(f"started by invocation `{invocation.parent_invocation_id}`")
    arguments = [(str(i), a) for i, a in enumerate(invocation.args)] + list(invocation.kwargs.items())
    if arguments:
        lines += ["", "**arguments**", ""]
        lines += [f"- `{name}`: {inline_code(preview(value, DETAILS_ARGUMENT_MAX_CHARS))}" for name, value in arguments]
    else:
        lines += ["", "no arguments"]
    lines += [
        "",
        f"**options** · timeout {options.timeout_seconds:g} s · max_retries {options.max_retries} · "
        f"cpu {options.cpu:g} · memory {options.memory_mib} MiB · max_concurrency {options.max_concurrency}",
    ]
    return "\n".join(lines)


def inline_code(text: str) -> str:
    """`text` as a markdown code span (a backtick inside would end it early)."""
    return "`" + text.replace("`", "'") + "`"


def _render(data: Any, depth: int) -> str:
    if isinstance(data, str):
        return repr(data)
    if data is None or isinstance(data, (bool, int, float)):
        return repr(data)
    if depth >= _MAX_DEPTH:
        return _ELLIPSIS
    if isinstance(data, list):
        return "[" + _items(data, depth) + "]"
    if not isinstance(data, dict):
        return repr(data)
    return _render_tagged(data, depth)


def _render_tagged(data: dict[str, Any], depth: int) -> str:
    if "py/tuple" in data:
        items = data["py/tuple"]
        return "(" + _items(items, depth) + ("," if len(items) == 1 else "") + ")"
    if "py/set" in data:
        return "{" + _items(data["py/set"], depth) + "}" if data["py/set"] else "set()"
    if "py/b64" in data or "py/b85" in data or "py/bytes" in data:
        return "b'" + _ELLIPSIS + "'"
    if "py/id" in data:
        return _ELLIPSIS  # a reference to a value shown earlier
    for tag in ("py/type", "py/function", "py/mod"):
        if tag in data:
            return _short_name(str(data[tag]))
    if "py/object" in data:
        fields = {k: v for k, v in data.items() if not k.startswith("py/") and k != "__reduce__"}
        state = data.get("py/state")
        if isinstance(state, dict):
            fields.update({k: v for k, v in state.items() if not k.startswith("py/")})
        inner = ", ".join(f"{k}={_render(v, depth + 1)}" for k, v in fields.items())
        opaque = not fields and any(k in data for k in ("py/state", "py/newargs", "py/initargs", "py/reduce", "__reduce__"))
        return f"{_short_name(str(data['py/object']))}({_ELLIPSIS if opaque else inner})"
    if "py/reduce" in data:
        return f"<object {_ELLIPSIS}>"
    return "{" + ", ".join(f"{_key(k)}: {_render(v, depth + 1)}" for k, v in data.items()) + "}"


def _items(items: list[Any], depth: int) -> str:
    return ", ".join(_render(item, depth + 1) for item in items)


def _key(key: str) -> str:
    # jsonpickle writes a non-str key as "json://<encoded key>".
    if key.startswith("json://"):
        try:
            return _render(json.loads(key[len("json://"):]), _MAX_DEPTH - 1)
        except ValueError:
            return repr(key)
    return repr(key)


def _short_name(qualified: str) -> str:
    return qualified.rsplit(".", 1)[-1].rsplit("/", 1)[-1]
