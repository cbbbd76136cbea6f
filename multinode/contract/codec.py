"""Arguments and results cross process boundaries as jsonpickle text.

Only the caller and the function's own process ever decode it; workflows and the worker carry
the text as an opaque string.
"""

from __future__ import annotations

from typing import Any

import jsonpickle

from multinode.contract import limits as L
from multinode.errors import EncodingError, PayloadTooLargeError


def encode(value: Any, what: str) -> str:
    try:
        text: str = jsonpickle.encode(value, keys=True)
    except Exception as exc:  # jsonpickle raises whatever the object's reducer raises
        raise EncodingError(f"{what} cannot be encoded: {type(exc).__name__}: {exc}") from exc
    if text == "null" and value is not None:
        # jsonpickle turns an object it cannot pickle into null instead of failing.
        raise EncodingError(f"{what} ({type(value).__name__}) cannot be encoded: it is not picklable")
    if len(text) > L.PAYLOAD_MAX_CHARS:
        raise PayloadTooLargeError(
            f"{what} is {len(text):,} characters once encoded; the limit is "
            f"{L.PAYLOAD_MAX_CHARS:,}. Store large data elsewhere (e.g. S3) and pass its location."
        )
    return text


def decode(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return jsonpickle.decode(text, keys=True)
    except Exception as exc:
        raise EncodingError(f"a value could not be decoded: {type(exc).__name__}: {exc}") from exc


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
