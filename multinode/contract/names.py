"""Names the engine sees. They are part of the wire contract with running workers and stored
histories: never derive them from Python qualnames, never rename them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from multinode.contract.ids import id_time_millis

if TYPE_CHECKING:
    from multinode.contract.invocation import InvocationIdentity
    from multinode.contract.records import InvocationRecord

INVOCATION_WORKFLOW = "multinode.Invocation"
PROJECT_WORKFLOW = "multinode.Project"

RUN_ATTEMPT_ACTIVITY = "multinode.RunAttempt"

# Invocation workflow handlers.
STATE_QUERY = "state"
CANCEL_UPDATE = "cancel"
ATTEMPT_STARTED_SIGNAL = "attempt_started"

# Project workflow handlers.
ADD_VERSION_UPDATE = "add_version"
VERSION_QUERY = "version"
VERSIONS_QUERY = "versions"

PROJECT_WORKFLOW_ID_PREFIX = "multinode-project:"

# Custom search attributes (all Keyword), registered by `multinode dev` and `ensure_namespace`.
SA_PROJECT = "MultinodeProject"
SA_FUNCTION = "MultinodeFunction"
SA_VERSION = "MultinodeVersion"
SA_STATUS = "MultinodeStatus"
SA_PARENT = "MultinodeParent"
SA_LOCK = "MultinodeLock"
SEARCH_ATTRIBUTES = (SA_PROJECT, SA_FUNCTION, SA_VERSION, SA_STATUS, SA_PARENT, SA_LOCK)

DEFAULT_TASK_QUEUE = "multinode"
DEFAULT_NAMESPACE = "default"
DEFAULT_PORT = 7233
DEFAULT_UI_PORT = 8233


def project_workflow_id(project_name: str) -> str:
    return PROJECT_WORKFLOW_ID_PREFIX + project_name


# Project administration (undeploy), added after the foundation: the project workflow's
# `undeploy` update (argument `finish`: False marks the project closing, True ends it), and the
# memo keys it maintains next to "latest".
UNDEPLOY_UPDATE = "undeploy"
MEMO_LATEST = "latest"
MEMO_CLOSING = "closing"
MEMO_CREATED_AT = "created_at"

# Concurrency quota: one semaphore workflow per (project, function), across versions and workers.
QUOTA_WORKFLOW = "multinode.Quota"
QUOTA_WORKFLOW_ID_PREFIX = "multinode-quota:"
QUOTA_ACQUIRE_SIGNAL = "acquire"
QUOTA_RELEASE_SIGNAL = "release"
QUOTA_GRANTED_SIGNAL = "quota_granted"
QUOTA_LEASE_UPDATE = "lease"
QUOTA_LEASE_RETURN_SIGNAL = "return_lease"
ACQUIRE_QUOTA_ACTIVITY = "multinode.AcquireQuota"
CLOSED_INVOCATIONS_ACTIVITY = "multinode.ClosedInvocations"
CANCEL_INVOCATIONS_ACTIVITY = "multinode.CancelInvocations"


def quota_workflow_id(project_name: str, function_name: str) -> str:
    return f"{QUOTA_WORKFLOW_ID_PREFIX}{project_name}:{function_name}"

# Locks: a lock workflow per held key owns the key while its child invocation is open.
LOCK_WORKFLOW = "multinode.Lock"
LOCK_WORKFLOW_ID_PREFIX = "multinode-lock:"
LOCK_CHILD_STARTED_UPDATE = "child_started"

# Retention: finished invocations are copied into archive records that outlive the namespace's
# retention (open workflows whose first task is scheduled a century out: no worker ever runs them).
ARCHIVE_WORKFLOW = "multinode.InvocationArchive"
ARCHIVE_WORKFLOW_ID_PREFIX = "multinode-archive:"
ARCHIVE_TASK_QUEUE = "multinode-archive-never-polled"
ARCHIVER_WORKFLOW = "multinode.Archiver"
ARCHIVE_BATCH_ACTIVITY = "multinode.ArchiveBatch"
SA_CREATED = "MultinodeCreatedAt"  # Datetime: the invocation's creation time, for listing


def lock_workflow_id(project_name: str, key: str) -> str:
    return f"{LOCK_WORKFLOW_ID_PREFIX}{project_name}:{key}"


def archive_workflow_id(invocation_id: str) -> str:
    return ARCHIVE_WORKFLOW_ID_PREFIX + invocation_id


# `.remove` deletes what the invocation's attempts left where their containers ran (the local
# backend's attempt logs, the Fargate run documents in S3) through a worker: only a worker
# holds the credentials and knows its backend.
FORGET_WORKFLOW = "multinode.ForgetInvocation"
FORGET_INVOCATION_ACTIVITY = "multinode.ForgetInvocationData"


def forget_workflow_id(invocation_id: str) -> str:
    return f"multinode-forget:{invocation_id}"


def archiver_workflow_id(task_queue: str) -> str:
    return f"multinode-archiver:{task_queue}"


def invocation_search_attributes(
    invocation: InvocationIdentity | InvocationRecord, status: str, lock: str | None = None
) -> dict[str, str | datetime]:
    """What an invocation's workflow (or its archive record) is searchable by, and the Web UI
    filters on: project, function, version, status, creation time (read from the id), parent,
    and the lock it was started under. A datetime value goes into a Datetime attribute, a str
    into a Keyword one; the engine and the lock workflow wrap these into typed keys."""
    values: dict[str, str | datetime] = {
        SA_PROJECT: invocation.project_name,
        SA_FUNCTION: invocation.function_name,
        SA_VERSION: invocation.version_id,
        SA_STATUS: status,
        SA_CREATED: datetime.fromtimestamp(id_time_millis(invocation.invocation_id) / 1000, tz=UTC),
    }
    if invocation.parent_invocation_id:
        values[SA_PARENT] = invocation.parent_invocation_id
    if lock is not None:
        values[SA_LOCK] = lock
    return values

# Services: one control-loop workflow per (project, service) owns the desired state (a target:
# version, running or not) and the observed one (memo MEMO_SERVICE, query STATE_QUERY).
SERVICE_WORKFLOW = "multinode.Service"
SERVICE_WORKFLOW_ID_PREFIX = "multinode-service:"
RUN_SERVICE_ACTIVITY = "multinode.RunService"
# Undeploy's last step: the backend releases what it keeps beyond the process (an ECS service).
STOP_SERVICE_ACTIVITY = "multinode.StopService"
SERVICE_DEPLOY_SIGNAL = "deploy"  # argument: the new ServiceTarget
SERVICE_STOP_SIGNAL = "stop"  # stops the process, then ends the workflow
SERVICE_REPORT_SIGNAL = "report"  # from the run's activity: a ServiceReport
MEMO_SERVICE = "service"


def service_workflow_id(project_name: str, service_name: str) -> str:
    return f"{SERVICE_WORKFLOW_ID_PREFIX}{project_name}:{service_name}"
