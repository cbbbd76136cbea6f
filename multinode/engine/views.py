"""What the administration calls return: plain records of projects and invocations, read from
the engine's visibility store. Times are timezone-aware UTC datetimes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from multinode.contract.invocation import InvocationIdentity
from multinode.contract.records import VersionManifest


@dataclass(frozen=True)
class ProjectListing:
    """One deployed project, as `multinode list` shows it."""

    project_name: str
    latest_version: VersionManifest
    created_at: datetime
    closing: bool = False

    @property
    def latest_version_id(self) -> str:
        return self.latest_version.version_id


@dataclass(frozen=True)
class InvocationRow(InvocationIdentity):
    """One invocation as the visibility store knows it (no worker needed): its identity from
    its search attributes, its status, and its workflow's start and close."""

    status: str
    created_at: datetime | None
    ended_at: datetime | None
