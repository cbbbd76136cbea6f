"""A web API that starts, watches and cancels jobs running on Multinode.

    multinode dev                                               # the control plane
    multinode deploy tasks/ --project-name=fastapi_jobs        # the jobs
    uvicorn app:app --port 8000                                 # this app

POST /jobs {"table_id": "t7", "steps": 50}   202 {"invocation_id": ...}; 409 while that table's
                                             job is PENDING or RUNNING (the lock is the table id)
GET  /jobs/{invocation_id}                   200 status, progress (the latest yield) and error
PUT  /jobs/{invocation_id}/cancel            200 {"cancelled": true|false}
An id that names no invocation is a 404.

Every SDK call is awaited through its `.aio` face: it runs on the app's own event loop (one engine
connection for the loop) and never blocks it.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from multinode import get_deployed_function
from multinode.errors import InvocationDoesNotExistError, LockAlreadyInUseError

PROJECT = os.environ.get("JOBS_PROJECT", "fastapi_jobs")

app = FastAPI(title="Multinode jobs")
optimise_table = get_deployed_function(project_name=PROJECT, function_name="optimise_table")


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
        "progress": invocation.result,
        "error": invocation.error,
        "created_at": invocation.created_at.isoformat(),
        "ended_at": invocation.ended_at.isoformat() if invocation.ended_at else None,
    }


@app.put("/jobs/{invocation_id}/cancel")
async def cancel_job(invocation_id: str) -> dict[str, bool]:
    try:
        cancelled = await optimise_table.cancel.aio(invocation_id)
    except InvocationDoesNotExistError as exc:
        raise HTTPException(status_code=404, detail=f"no job {invocation_id}") from exc
    return {"cancelled": cancelled}
