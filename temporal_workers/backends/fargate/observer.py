"""One worker's view of its tasks: a single DescribeTasks call (up to 100 tasks each) per
interval, shared by every attempt the worker supervises, instead of one call per attempt. ECS's
read rate limit is per account and region, so a busy worker must not spend it task by task."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

Json = dict[str, Any]
Describe = Callable[[str, Sequence[str]], dict[str, Json]]

# DescribeTasks takes at most this many tasks per call.
MAX_TASKS_PER_CALL = 100


class TaskObserver:
    """Attempts ask for their task's next observation; one call answers all that asked since
    the last one. An answer is None when ECS does not know the task."""

    def __init__(self, describe: Describe, cluster: str, interval_seconds: float) -> None:
        self._describe = describe
        self._cluster = cluster
        self._interval = interval_seconds
        self._waiting: dict[str, list[asyncio.Future[Json | None]]] = {}
        self._round: asyncio.Task[None] | None = None
        self._last_call = float("-inf")
        self.calls = 0

    def observe(self, task_arn: str) -> asyncio.Future[Json | None]:
        """The task as the next shared call sees it (raises what that call raised)."""
        future: asyncio.Future[Json | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(task_arn, []).append(future)
        if self._round is None or self._round.done():
            self._round = asyncio.ensure_future(self._rounds())
        return future

    async def _rounds(self) -> None:
        while self._waiting:
            # A round gathers every attempt that asks before it starts: the first waits out the
            # interval since the previous call, the others join it.
            await asyncio.sleep(max(0.0, self._last_call + self._interval - time.monotonic()))
            waiting, self._waiting = self._waiting, {}
            self._last_call = time.monotonic()
            arns = list(waiting)
            for start in range(0, len(arns), MAX_TASKS_PER_CALL):
                chunk = arns[start:start + MAX_TASKS_PER_CALL]
                self.calls += 1
                try:
                    found = await asyncio.to_thread(self._describe, self._cluster, chunk)
                except (ClientError, BotoCoreError) as exc:
                    for arn in chunk:
                        _settle(waiting[arn], exception=exc)
                    continue
                for arn in chunk:
                    _settle(waiting[arn], result=found.get(arn))


def _settle(futures: list[asyncio.Future[Json | None]], result: Json | None = None,
            exception: BaseException | None = None) -> None:
    for future in futures:
        if future.done():  # its attempt stopped waiting (cancelled)
            continue
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
