"""A job and the web API that drives it, deployed together (`multinode deploy` starts the API).

POST /jobs {"table_id": "t7", "steps": 50}   202 {"invocation_id": ...}; 409 while that table's
                                             job is PENDING or RUNNING (the lock is the table id)
GET  /jobs/{invocation_id}                   200 status, progress (the latest yield) and error
PUT  /jobs/{invocation_id}/cancel            200 {"cancelled": true|false}
GET  /version                                the version this API runs (the one its jobs run)

Inside the service, `optimise_table.start_locked` starts an invocation of this project at the
service's own version, as a nested invocation would; every call is awaited through `.aio`, on the
app's own event loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from multinode import Multinode
from multinode.errors import InvocationDoesNotExistError, LockAlreadyInUseError

mn = Multinode()
PORT = 8080
app = FastAPI(title="Multinode jobs")


@mn.function(cpu=0.5, memory="256 MiB")
async def optimise_table(table_id: str, steps: int, seconds_per_step: float = 0.2) -> AsyncIterator[dict[str, Any]]:
    """Pretend to optimise a table's seating, step by step; each yield is its visible progress."""
    best = 0.0
    for step in range(1, steps + 1):
        await asyncio.sleep(seconds_per_step)  # a cancel arrives here
        best = max(best, 1 - 1 / (step + 1))
        yield {"table_id": table_id, "step": step, "of": steps, "best_score": round(best, 4)}


class JobRequest(BaseModel):
    table_id: str = Field(min_length=1, max_length=100)
    steps: int = Field(ge=1, le=10_000)
    seconds_per_step: float = Field(default=0.2, ge=0, le=60)


@app.post("/jobs", status_code=202)
async def start_job(job: JobRequest) -> dict[str, str]:
    try:
        invocation_id = await optimise_table.start_locked.aio(
            f"table-{job.table_id}", job.table_id, job.steps, job.seconds_per_step
        )
    except LockAlreadyInUseError as exc:
        raise HTTPException(
            status_code=409,
            detail={"message": f"table {job.table_id} is being optimised", "holder": exc.holder_invocation_id},
        ) from exc
    return {"invocation_id": invocation_id}


@app.get("/jobs/{invocation_id}")
async def read_job(invocation_id: str) -> dict[str, Any]:
    try:
        invocation = await optimise_table.get.aio(invocation_id)
    except InvocationDoesNotExistError as exc:
        raise HTTPException(status_code=404, detail=f"no job {invocation_id}") from exc
    return {
        "invocation_id": invocation.invocation_id,
        "status": invocation.status.value,
        "version_id": invocation.version_id,
        "progress": invocation.result,
        "error": invocation.error,
    }


@app.put("/jobs/{invocation_id}/cancel")
async def cancel_job(invocation_id: str) -> dict[str, bool]:
    try:
        cancelled = await optimise_table.cancel.aio(invocation_id)
    except InvocationDoesNotExistError as exc:
        raise HTTPException(status_code=404, detail=f"no job {invocation_id}") from exc
    return {"cancelled": cancelled}


@app.get("/version")
async def version() -> dict[str, str | int]:
    return {"version_id": os.environ["MULTINODE_VERSION_ID"], "pid": os.getpid()}


@mn.service(port=PORT, cpu=0.5, memory="512 MiB")
def api() -> None:
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="info")
