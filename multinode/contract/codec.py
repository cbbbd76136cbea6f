"""Arguments and results cross process boundaries as jsonpickle text.

Only the caller and the function's own process ever decode it; workflows and the worker carry
the text as an opaque string.

No value is changed on its way without a word. jsonpickle, left alone, encodes what it cannot
represent as something else (a coroutine or a memoryview as a bare `{"py/object": ...}` that
decodes to a dict, a generator by consuming it, a lambda as null) and decodes a reference it
cannot resolve (a class, or the function of a `py/reduce`, missing or renamed in this
environment: numpy 2's `numpy._core.multiarray._reconstruct` under numpy 1) as plain data.
Here the encoder refuses the first kind, naming the type, and the decoder refuses the second,
naming what is missing and where. Both checks run inside jsonpickle's own single pass (a
subclassed pickler and unpickler), so a value costs no second walk; text without any jsonpickle
tag (plain JSON data, the common case) decodes with `json.loads` alone.
"""

from __future__ import annotations

import importlib
import json
import threading
import types
from typing import Any

import jsonpickle
from jsonpickle import tags
from jsonpickle.pickler import Pickler
from jsonpickle.unpickler import Unpickler

from multinode.contract import limits as L
from multinode.errors import EncodingError, PayloadTooLargeError

# Never the same value on the other side: pickle refuses them, and jsonpickle would send
# something else (a consumed generator's items, a fresh lock).
_NEVER_TRAVEL: tuple[type, ...] = (
    types.GeneratorType,
    types.CoroutineType,
    types.AsyncGeneratorType,
    types.FrameType,
    types.TracebackType,
    memoryview,
    type(threading.Lock()),
    type(threading.RLock()),
)

_HINTS = {
    types.GeneratorType: "; pass list(...) of it, or make the function a generator itself",
    types.CoroutineType: "; await it first and pass its result",
    types.AsyncGeneratorType: "; collect its items first",
    memoryview: "; pass bytes(...) of it",
    types.FunctionType: " (a lambda or a nested function: only a module-level function travels, by name)",
    types.MethodType: " (a bound method: its instance does not travel with it)",
}

# Text holding none of these is plain JSON data: jsonpickle would decode it to what json does.
_TAG_MARKERS = ('"py/', '"json://')


def _type_name(value: object) -> str:
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


class _Refused(Exception):
    def __init__(self, value: object, hint: str = "") -> None:
        super().__init__(_type_name(value))
        self.type_name = _type_name(value)
        self.hint = hint


def _carries_nothing_but_its_class(value: object) -> bool:
    """What pickle says of a value jsonpickle wrote as a bare `{"py/object": name}`: faithful only
    when pickle too needs nothing but the class (a plain object without attributes)."""
    try:
        reduced = value.__reduce_ex__(2)
    except Exception:
        return False
    return (
        isinstance(reduced, tuple)
        and len(reduced) >= 2
        and getattr(reduced[0], "__name__", "") == "__newobj__"
        and tuple(reduced[1]) == (type(value),)
        and all(part is None for part in reduced[2:])
    )


class _CheckingPickler(Pickler):  # type: ignore[misc]
    def _flatten_obj_instance(self, obj: Any) -> Any:
        if isinstance(obj, _NEVER_TRAVEL):
            raise _Refused(obj, _HINTS.get(type(obj), ""))
        if type(obj) is bytearray:
            # jsonpickle writes a bare {"py/object": "builtins.bytearray"}: an empty one arrives.
            return {tags.REDUCE: [{tags.TYPE: "builtins.bytearray"}, {tags.TUPLE: [self._flatten(bytes(obj))]}]}
        data = super()._flatten_obj_instance(obj)
        if type(data) is dict and len(data) == 1 and tags.OBJECT in data and not _carries_nothing_but_its_class(obj):
            raise _Refused(obj)
        return data

    def _pickle_warning(self, obj: Any) -> None:
        # jsonpickle's "replaced with None" (a lambda, a bound method, an open file).
        raise _Refused(obj, _HINTS.get(type(obj), ""))


class _Missing(Exception):
    def __init__(self, what: str, name: str) -> None:
        super().__init__(name)
        self.what, self.name = what, name


def _why_missing(name: str) -> str:
    """Why `module.attr` does not resolve here, in the words of the import system."""
    parts = name.split(".")
    first_failure: str | None = None
    for end in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:end])
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            first_failure = first_failure or str(exc)
            continue
        except Exception as exc:
            return f"importing {module_name} failed: {type(exc).__name__}: {exc}"
        if first_failure is not None:
            return first_failure
        return f"module {module.__name__!r} has no attribute {'.'.join(parts[end:])!r}"
    return first_failure or f"no module named {parts[0]!r}"


class _CheckingUnpickler(Unpickler):  # type: ignore[misc]
    def _restore_type(self, obj: Any) -> Any:
        found = super()._restore_type(obj)
        if found is obj:  # jsonpickle's way of saying "not found"
            raise _Missing("the class", obj[tags.TYPE])
        return found

    def _restore_function(self, obj: Any) -> Any:
        found = super()._restore_function(obj)
        if found is None:
            raise _Missing("the function", obj[tags.FUNCTION])
        return found

    def _restore_module(self, obj: Any) -> Any:
        found = super()._restore_module(obj)
        if found is None:
            raise _Missing("the module", obj[tags.MODULE].split("/")[0])
        return found

    def _process_missing(self, class_name: str) -> None:
        raise _Missing("the class", class_name)


def encode(value: Any, what: str) -> str:
    try:
        text: str = jsonpickle.encode(value, keys=True, context=_CheckingPickler(keys=True))
    except _Refused as refused:
        raise EncodingError(
            f"{what} cannot be sent: it is or contains a value of type {refused.type_name}, which "
            f"would arrive as something else{refused.hint}"
        ) from None
    except Exception as exc:  # jsonpickle raises whatever the object's reducer raises
        raise EncodingError(f"{what} cannot be encoded: {type(exc).__name__}: {exc}") from exc
    if text == "null" and value is not None:
        raise EncodingError(f"{what} ({type(value).__name__}) cannot be encoded: it is not picklable")
    if len(text) > L.PAYLOAD_MAX_CHARS:
        raise PayloadTooLargeError(
            f"{what} is {len(text):,} characters once encoded; the limit is "
            f"{L.PAYLOAD_MAX_CHARS:,}. Store large data elsewhere (e.g. S3) and pass its location."
        )
    return text


def decode(text: str | None, what: str = "a value", where: str = "here") -> Any:
    """`what` and `where` name the value and the side in the error, e.g. "argument 0" and
    "in the function's environment"."""
    if text is None:
        return None
    try:
        if not any(marker in text for marker in _TAG_MARKERS):
            return json.loads(text)
        return jsonpickle.decode(text, keys=True, context=_CheckingUnpickler(keys=True))
    except _Missing as missing:
        raise EncodingError(
            f"{what} cannot be decoded {where}: it needs {missing.what} {missing.name}, which is "
            f"missing {where} ({_why_missing(missing.name)}). Both sides must have the same "
            f"packages, at compatible versions, for the values they exchange"
        ) from None
    except Exception as exc:
        raise EncodingError(f"{what} could not be decoded {where}: {type(exc).__name__}: {exc}") from exc


def encode_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    encoded_args = [encode(value, f"argument {index}") for index, value in enumerate(args)]
    encoded_kwargs = {name: encode(value, f"argument {name!r}") for name, value in kwargs.items()}
    total = sum(map(len, encoded_args)) + sum(map(len, encoded_kwargs.values()))
    if total > L.ARGUMENTS_TOTAL_MAX_CHARS:
        raise PayloadTooLargeError(
            f"the arguments together are {total:,} characters once encoded; the limit is "
            f"{L.ARGUMENTS_TOTAL_MAX_CHARS:,}"
        )
    return encoded_args, encoded_kwargs
