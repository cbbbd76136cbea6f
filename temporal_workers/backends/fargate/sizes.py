"""Valid AWS Fargate (Linux) task sizes and the choice of size for a request.

Fargate bills per vCPU-hour and per GB-hour, and a vCPU costs far more than a
GB of memory (roughly 9x at list prices). Within one CPU tier a larger memory
only costs more, and moving to the next CPU tier costs more than any memory
step the current tier offers. So walking the table in (cpu, memory) order and
taking the first size that fits is also the cheapest size that fits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class FargateSize:
    cpu_units: int
    memory_mib: int

    @property
    def cpu(self) -> str:
        # ECS task definitions and RunTask overrides take these as strings.
        return str(self.cpu_units)

    @property
    def memory(self) -> str:
        return str(self.memory_mib)


def _tier(cpu_units: int, memories: range | tuple[int, ...]) -> list[FargateSize]:
    return [FargateSize(cpu_units, m) for m in memories]


# The 32 vCPU tier exists but lies outside multinode's 16 vCPU limit.
FARGATE_SIZES: tuple[FargateSize, ...] = tuple(
    sorted(
        _tier(256, (512, 1024, 2048))
        + _tier(512, range(1024, 4096 + 1, 1024))
        + _tier(1024, range(2048, 8192 + 1, 1024))
        + _tier(2048, range(4096, 16384 + 1, 1024))
        + _tier(4096, range(8192, 30720 + 1, 1024))
        + _tier(8192, range(16384, 61440 + 1, 4096))
        + _tier(16384, range(32768, 122880 + 1, 8192))
    )
)


def smallest_fargate_size(cpu: float, memory_mib: int) -> FargateSize:
    """Return the cheapest Fargate size with at least `cpu` vCPUs and `memory_mib` MiB."""
    # Rounding first keeps float noise (2.2 - 1.2 == 1.0000000000000002) from bumping a tier.
    need_cpu = math.ceil(round(cpu * 1024, 6))
    for size in FARGATE_SIZES:
        if size.cpu_units >= need_cpu and size.memory_mib >= memory_mib:
            return size
    largest = FARGATE_SIZES[-1]
    raise ValueError(
        f"no Fargate size fits cpu={cpu} vCPU, memory={memory_mib} MiB; "
        f"the largest is {largest.cpu_units} cpu units / {largest.memory_mib} MiB"
    )
