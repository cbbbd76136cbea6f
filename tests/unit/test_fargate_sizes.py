"""The Fargate size table and the size chosen for a (cpu, memory) request."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from temporal_workers.backends.fargate.sizes import (
    FARGATE_SIZES,
    FargateSize,
    smallest_fargate_size,
)

MAX_CPU_UNITS = 16384  # multinode's limit is 16 vCPU


def _cfn_lint_sizes() -> set[tuple[int, int]]:
    """Expand cfn-lint's E3047 schema (AWS's own list, shipped in the wheel) into pairs."""
    schema_file = (
        resources.files("cfnlint")
        / "data/schemas/extensions/aws_ecs_taskdefinition/fargate_cpu_memory.json"
    )
    schema: dict[str, Any] = json.loads(schema_file.read_text())
    pairs: set[tuple[int, int]] = set()
    for tier in schema["then"]["anyOf"]:
        cpu_rule = tier["properties"]["Cpu"]["then"]
        memory_rule = tier["properties"]["Memory"]["then"]
        if "enum" in memory_rule:
            memories = [int(m) for m in memory_rule["enum"]]
        else:
            memories = list(
                range(
                    memory_rule["minimum"],
                    memory_rule["maximum"] + 1,
                    memory_rule["multipleOf"],
                )
            )
        for cpu in cpu_rule["enum"]:
            pairs.update((int(cpu), memory) for memory in memories)
    return pairs


@pytest.mark.timeout(10)
def test_table_has_74_sorted_unique_entries() -> None:
    pairs = [(s.cpu_units, s.memory_mib) for s in FARGATE_SIZES]
    assert len(pairs) == 74
    assert pairs == sorted(set(pairs))


@pytest.mark.timeout(10)
def test_table_matches_cfn_lint_schema_up_to_16_vcpu() -> None:
    expected = {p for p in _cfn_lint_sizes() if p[0] <= MAX_CPU_UNITS}
    # Guard against the schema's shape changing into something we silently misread.
    assert len(expected) > 50
    assert {(s.cpu_units, s.memory_mib) for s in FARGATE_SIZES} == expected


@pytest.mark.timeout(10)
def test_ecs_strings() -> None:
    size = FargateSize(256, 512)
    assert (size.cpu, size.memory) == ("256", "512")
    with pytest.raises(AttributeError):
        size.cpu_units = 512  # type: ignore[misc]


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("cpu", "memory_mib", "expected"),
    [
        (0.1, 256, (256, 512)),
        (0.25, 512, (256, 512)),
        (0.5, 256, (512, 1024)),
        (0.1, 3000, (512, 3072)),
        (1, 9216, (2048, 9216)),
        (3, 4096, (4096, 8192)),
        (4, 31744, (8192, 32768)),
        (8, 65536, (16384, 65536)),
        (10, 1024, (16384, 32768)),
        (16, 65536, (16384, 65536)),
        (16, 122880, (16384, 122880)),
        # Float noise must not bump a request into the next CPU tier.
        (2.2 - 1.2, 2048, (1024, 2048)),  # 1.0000000000000002
        (1.1 - 0.85, 512, (256, 512)),  # 0.2500000000000001
    ],
)
def test_smallest_fargate_size(
    cpu: float, memory_mib: int, expected: tuple[int, int]
) -> None:
    size = smallest_fargate_size(cpu, memory_mib)
    assert (size.cpu_units, size.memory_mib) == expected


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("cpu", "memory_mib"), [(17, 1024), (16.001, 1024), (1, 122881)]
)
def test_too_large_raises(cpu: float, memory_mib: int) -> None:
    with pytest.raises(ValueError) as excinfo:
        smallest_fargate_size(cpu, memory_mib)
    message = str(excinfo.value)
    assert str(cpu) in message
    assert str(memory_mib) in message
    assert "16384" in message and "122880" in message


def _price(size: FargateSize) -> float:
    # Relative price only: a vCPU-hour costs about 9 GB-hours at list prices.
    return 9 * size.cpu_units / 1024 + size.memory_mib / 1024


@pytest.mark.timeout(60)
def test_first_fit_is_cheapest() -> None:
    by_price = sorted(FARGATE_SIZES, key=_price)
    cpus = sorted(
        {k / 16 for k in range(1, 16 * 16 + 1)} | {0.1, 0.3, 0.7, 1.5, 3.3, 7.9}
    )
    memories = sorted(set(range(128, 65536 + 1, 512)) | {256, 3000, 9216, 31744, 65536})
    checked = 0
    for cpu in cpus:
        for memory in memories:
            chosen = smallest_fargate_size(cpu, memory)
            cheapest = next(
                s
                for s in by_price
                if s.cpu_units >= cpu * 1024 - 1e-6 and s.memory_mib >= memory
            )
            assert _price(chosen) == _price(cheapest), (cpu, memory, chosen, cheapest)
            assert chosen.cpu_units >= cpu * 1024 - 1e-6 and chosen.memory_mib >= memory
            checked += 1
    assert checked == len(cpus) * len(memories) > 30000
