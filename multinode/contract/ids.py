"""Identifiers: `inv-…` for invocations, `ver-…` for versions.

Ids start with a fixed-width timestamp (Crockford base32 milliseconds), so sorting ids sorts by
creation time; the random tail keeps them unique across clients.
"""

from __future__ import annotations

import os
import re
import time

from multinode.contract import limits as L
from multinode.errors import InvalidOptionError, InvocationDoesNotExistError, MultinodeError

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_TIME_CHARS = 10
_RANDOM_CHARS = 16

INVOCATION_PREFIX = "inv-"
VERSION_PREFIX = "ver-"

_ID_RE = {
    prefix: re.compile(rf"^{prefix}[{_ALPHABET}]{{{_TIME_CHARS + _RANDOM_CHARS}}}$")
    for prefix in (INVOCATION_PREFIX, VERSION_PREFIX)
}
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _encode(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def _new(prefix: str) -> str:
    millis = time.time_ns() // 1_000_000
    random_bits = int.from_bytes(os.urandom(10), "big")
    return prefix + _encode(millis, _TIME_CHARS) + _encode(random_bits, _RANDOM_CHARS)


def new_invocation_id() -> str:
    return _new(INVOCATION_PREFIX)


def new_version_id() -> str:
    return _new(VERSION_PREFIX)


def id_time_millis(identifier: str) -> int:
    """The creation time embedded in an id made by this module."""
    stamp = identifier.split("-", 1)[1][:_TIME_CHARS]
    value = 0
    for char in stamp:
        value = value * 32 + _ALPHABET.index(char)
    return value


def check_invocation_id(value: object) -> str:
    """An id a caller names an invocation by. A malformed one names no invocation, so it raises
    what an unknown id raises (`InvocationDoesNotExistError`): a web app answers 404 for both."""
    return _check_id(value, INVOCATION_PREFIX, "invocation id", InvocationDoesNotExistError)


def check_page_offset(value: object) -> str:
    """The `offset` of a listing page (the last id of the page before): a malformed one is a bad
    argument, not an unknown invocation."""
    return _check_id(value, INVOCATION_PREFIX, "offset", InvalidOptionError)


def check_version_id(value: object) -> str:
    return _check_id(value, VERSION_PREFIX, "version id", InvalidOptionError)


def _check_id(value: object, prefix: str, what: str, error: type[MultinodeError]) -> str:
    if not isinstance(value, str) or _ID_RE[prefix].match(value) is None:
        raise error(
            f"{what} {value!r} is malformed; expected {prefix!r} followed by "
            f"{_TIME_CHARS + _RANDOM_CHARS} lowercase base32 characters"
        )
    return value


def check_name(value: object, what: str) -> str:
    """Project and function names: identifier-like, no separators, at most NAME_MAX_CHARS."""
    if not isinstance(value, str) or not value:
        raise InvalidOptionError(f"{what} {value!r} must be a non-empty string")
    if len(value) > L.NAME_MAX_CHARS:
        raise InvalidOptionError(
            f"{what} {value!r} is {len(value)} characters long; at most {L.NAME_MAX_CHARS} allowed"
        )
    if _NAME_RE.match(value) is None:
        raise InvalidOptionError(
            f"{what} {value!r} is not allowed; use letters, digits, '_' and '-', "
            f"starting with a letter or '_'"
        )
    return value
