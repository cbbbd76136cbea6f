"""Whether a service is up: its port accepts a TCP connection (the one health test both backends
use, on 127.0.0.1 locally and on the task's address on Fargate)."""

from __future__ import annotations

import asyncio

CONNECT_TIMEOUT_SECONDS = 1.0


async def accepts_connections(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT_SECONDS)
    except (OSError, TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True
