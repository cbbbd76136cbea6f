"""Decorator options: parsed and checked when the decorator runs, then frozen."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from multinode.contract import limits as L
from multinode.errors import InvalidOptionError

_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(KiB|MiB|GiB|KB|MB|GB|K|M|G|Ki|Mi|Gi)?\s*$", re.I)
_MEMORY_UNITS_MIB = {
    "kib": 1 / 1024, "ki": 1 / 1024, "k": 1 / 1024, "kb": 1000 / L.MIB,
    "mib": 1.0, "mi": 1.0, "m": 1.0, "mb": 1_000_000 / L.MIB,
    "gib": 1024.0, "gi": 1024.0, "g": 1024.0, "gb": 1_000_000_000 / L.MIB,
}


@dataclass(frozen=True)
class FunctionOptions:
    """The resources and policies of a Function, in canonical units."""

    cpu: float = L.CPU_DEFAULT
    memory_mib: int = L.MEMORY_DEFAULT_MIB
    max_concurrency: int = L.MAX_CONCURRENCY_DEFAULT
    timeout_seconds: float = L.TIMEOUT_DEFAULT.total_seconds()
    max_retries: int = L.MAX_RETRIES_DEFAULT

    @property
    def timeout(self) -> timedelta:
        return timedelta(seconds=self.timeout_seconds)

    @property
    def memory(self) -> str:
        return format_memory(self.memory_mib)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cpu": self.cpu,
            "memory_mib": self.memory_mib,
            "max_concurrency": self.max_concurrency,
            "timeout_seconds": self.timeout_seconds,
            "max_retries": self.max_retries,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FunctionOptions:
        return cls(
            cpu=float(data["cpu"]),
            memory_mib=int(data["memory_mib"]),
            max_concurrency=int(data["max_concurrency"]),
            timeout_seconds=float(data["timeout_seconds"]),
            max_retries=int(data["max_retries"]),
        )


def format_memory(memory_mib: int) -> str:
    if memory_mib % 1024 == 0:
        return f"{memory_mib // 1024} GiB"
    return f"{memory_mib} MiB"


def parse_options(
    *,
    cpu: Any = L.CPU_DEFAULT,
    memory: Any = "256 MiB",
    max_concurrency: Any = L.MAX_CONCURRENCY_DEFAULT,
    timeout: Any = L.TIMEOUT_DEFAULT,
    max_retries: Any = L.MAX_RETRIES_DEFAULT,
) -> FunctionOptions:
    return FunctionOptions(
        cpu=parse_cpu(cpu),
        memory_mib=parse_memory(memory),
        max_concurrency=_parse_int("max_concurrency", max_concurrency,
                                   L.MAX_CONCURRENCY_MIN, L.MAX_CONCURRENCY_MAX),
        timeout_seconds=parse_timeout(timeout),
        max_retries=_parse_int("max_retries", max_retries, L.MAX_RETRIES_MIN, L.MAX_RETRIES_MAX),
    )


def parse_cpu(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidOptionError(
            f"cpu={value!r} is not a number; give the number of virtual CPUs, "
            f"from {L.CPU_MIN} to {L.CPU_MAX:g}"
        )
    cpu = float(value)
    if not math.isfinite(cpu) or not (L.CPU_MIN <= cpu <= L.CPU_MAX):
        raise InvalidOptionError(
            f"cpu={value!r} is out of range; allowed: {L.CPU_MIN} to {L.CPU_MAX:g} virtual CPUs"
        )
    return cpu


def parse_memory(value: Any) -> int:
    allowed = f"{format_memory(L.MEMORY_MIN_MIB)} to {format_memory(L.MEMORY_MAX_MIB)}"
    if isinstance(value, bool) or not isinstance(value, str):
        raise InvalidOptionError(
            f"memory={value!r} is not a size string; write it like \"256 MiB\" or \"4 GiB\" "
            f"(allowed: {allowed})"
        )
    match = _MEMORY_RE.match(value)
    if match is None:
        raise InvalidOptionError(
            f"memory={value!r} is not a size; write it like \"256 MiB\" or \"4 GiB\" "
            f"(allowed: {allowed})"
        )
    number, unit = float(match.group(1)), (match.group(2) or "MiB").lower()
    memory_mib = number * _MEMORY_UNITS_MIB[unit]
    if not (L.MEMORY_MIN_MIB <= memory_mib <= L.MEMORY_MAX_MIB):
        raise InvalidOptionError(f"memory={value!r} is out of range; allowed: {allowed}")
    return math.ceil(memory_mib)


def parse_timeout(value: Any) -> float:
    allowed = f"{_fmt_td(L.TIMEOUT_MIN)} to {_fmt_td(L.TIMEOUT_MAX)}"
    if not isinstance(value, timedelta):
        raise InvalidOptionError(
            f"timeout={value!r} is not a datetime.timedelta; write e.g. "
            f"timedelta(minutes=30) (allowed: {allowed})"
        )
    if not (L.TIMEOUT_MIN <= value <= L.TIMEOUT_MAX):
        raise InvalidOptionError(f"timeout={value!r} is out of range; allowed: {allowed}")
    return value.total_seconds()


def _parse_int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOptionError(
            f"{name}={value!r} is not an integer; allowed: {low} to {high}"
        )
    if not (low <= value <= high):
        raise InvalidOptionError(f"{name}={value!r} is out of range; allowed: {low} to {high}")
    return value


def _fmt_td(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
