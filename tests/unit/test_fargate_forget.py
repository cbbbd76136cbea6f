"""The Fargate backend's part of `.remove` (issue 18 item 7): every run document of every attempt
of the invocation is deleted, nothing of another invocation's."""

from __future__ import annotations

import asyncio
from pathlib import Path

import boto3
import pytest

from multinode.runtime.fargate_run import INPUT_NAME, OUTCOME_NAME, TASK_NAME, RunLocation
from multinode.runtime.object_store import ObjectStore
from temporal_workers.backends.fargate.backend import FargateBackend
from tests.unit.scripted_fargate import (
    BUCKET,
    CONFIG,
    FAST,
    MemoryStore,
    Script,
    ScriptedEcs,
    settings,
)

pytestmark = pytest.mark.timeout(60)


def test_forget_deletes_every_attempts_documents_and_nothing_else(aws: None, tmp_path: Path) -> None:
    store = ObjectStore.connect()
    backend = FargateBackend(settings(tmp_path), CONFIG, ScriptedEcs(MemoryStore(), Script()), store, FAST)
    keys = []
    for invocation_id in ("inv-gone", "inv-kept"):
        for attempt in (1, 2):
            location = RunLocation.for_attempt(CONFIG.package_store, invocation_id, attempt)
            for name in (INPUT_NAME, OUTCOME_NAME, TASK_NAME):
                store.put_json(location.bucket, location.key(name), {"n": attempt})
                keys.append(location.key(name))
    # More than one listing page's worth is the object store's own concern: a thousand keys.
    many = RunLocation.for_attempt(CONFIG.package_store, "inv-gone", 3)
    client = boto3.client("s3")
    for index in range(1005):
        client.put_object(Bucket=BUCKET, Key=many.key(f"{index}.json"), Body=b"{}")
    asyncio.run(backend.forget("inv-gone"))
    left = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
            for o in page.get("Contents", [])]
    assert sorted(left) == sorted(k for k in keys if "/inv-kept/" in k)
    assert asyncio.run(asyncio.to_thread(store.delete_prefix, BUCKET, "store/runs/inv-gone/")) == 0
