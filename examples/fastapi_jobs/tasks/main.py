"""The jobs the web app starts: one async generator whose latest yield is its progress."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from multinode import Multinode

mn = Multinode()


@mn.function(cpu=0.5, memory="256 MiB", max_retries=1)
async def optimise_table(table_id: str, steps: int, seconds_per_step: float = 0.2) -> AsyncIterator[dict[str, Any]]:
    """Pretend to optimise a table's seating, step by step; each yield is visible to the app."""
    best = 0.0
    for step in range(1, steps + 1):
        await asyncio.sleep(seconds_per_step)  # a cancel or the timeout arrives here
        best = max(best, 1 - 1 / (step + 1))
        yield {"table_id": table_id, "step": step, "of": steps, "best_score": round(best, 4)}
