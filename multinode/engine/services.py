"""Services in the engine: their control-loop workflows (one per project and service) started or
given a new target at deploy and upgrade, stopped at undeploy, and read (their memo, no worker
needed)."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from multinode.contract import names
from multinode.contract.connection import ConnectionSettings
from multinode.contract.records import VersionManifest
from multinode.contract.service_state import ServiceObserved, ServiceState, ServiceTarget
from multinode.contract.services import ServiceSpec, ServiceStatus
from multinode.engine.attributes import KEY_PROJECT, KEY_STATUS
from multinode.engine.failures import translate_rpc_error


def target_of(manifest: VersionManifest, spec: ServiceSpec) -> ServiceTarget:
    return ServiceTarget(
        project_name=manifest.project_name,
        version_id=manifest.version_id,
        spec=spec,
        package=manifest.package,
        requirements_sha256=manifest.requirements_sha256,
        secrets_uri=manifest.secrets_uri,
    )


class Services:
    def __init__(self, client: Client, settings: ConnectionSettings) -> None:
        self._client = client
        self._settings = settings

    async def deploy(self, manifest: VersionManifest, previous: VersionManifest | None) -> None:
        """Start the manifest's services on its version (each control loop started if needed,
        in one call: signal-with-start), and stop the services the previous version had and this
        one no longer has."""
        project = manifest.project_name
        for spec in manifest.services:
            workflow_id = names.service_workflow_id(project, spec.name)
            try:
                await self._client.start_workflow(
                    names.SERVICE_WORKFLOW,
                    ServiceState(project_name=project, service_name=spec.name),
                    id=workflow_id,
                    task_queue=self._settings.task_queue,
                    start_signal=names.SERVICE_DEPLOY_SIGNAL,
                    start_signal_args=[target_of(manifest, spec)],
                    memo={names.MEMO_SERVICE: ServiceObserved(project, spec.name, port=spec.port)},
                    search_attributes=TypedSearchAttributes([
                        SearchAttributePair(KEY_PROJECT, project),
                        SearchAttributePair(KEY_STATUS, ServiceStatus.STOPPED.value),
                    ]),
                    static_summary=f"service {spec.name} of project {project} (port {spec.port})",
                    static_details=(
                        f"project {project}, service {spec.name}: port {spec.port}, cpu {spec.cpu:g}, "
                        f"memory {spec.memory}; its logs: `multinode logs --project-name={project} "
                        f"--service-name={spec.name}`"
                    ),
                )
            except RPCError as exc:
                raise translate_rpc_error(exc, f"starting service {spec.name!r}") from None
        if previous is not None:
            gone = [s.name for s in previous.services if manifest.service(s.name) is None]
            await self.stop(project, gone, wait_seconds=0.0)

    async def stop(self, project_name: str, service_names: list[str], wait_seconds: float) -> list[str]:
        """Stop services (their processes, then their control loops); waits up to
        `wait_seconds` for them to be stopped and returns those still stopping."""
        handles = []
        for name in service_names:
            handle = self._client.get_workflow_handle(names.service_workflow_id(project_name, name))
            try:
                await handle.signal(names.SERVICE_STOP_SIGNAL)
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    continue  # never started, or already stopped
                raise translate_rpc_error(exc, f"stopping service {name!r}") from None
            handles.append((name, handle))
        if not handles or wait_seconds <= 0:
            return [name for name, _ in handles]

        async def ended(handle: WorkflowHandle[Any, Any]) -> None:
            try:
                await handle.result()
            except (WorkflowFailureError, RPCError):
                pass

        waits = {name: asyncio.ensure_future(ended(handle)) for name, handle in handles}
        await asyncio.wait(list(waits.values()), timeout=wait_seconds)
        for task in waits.values():
            task.cancel()
        return [name for name, task in waits.items() if not task.done() or task.cancelled()]

    async def observe(self, project_name: str, service_name: str) -> ServiceObserved | None:
        """What the service's control loop saw last (its memo), or None if it has none: never
        deployed, or undeployed."""
        handle = self._client.get_workflow_handle(names.service_workflow_id(project_name, service_name))
        try:
            description = await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise translate_rpc_error(exc, f"reading service {service_name!r}") from None
        observed: ServiceObserved = await description.memo_value(names.MEMO_SERVICE, type_hint=ServiceObserved)
        if description.status not in (None, WorkflowExecutionStatus.RUNNING):
            observed.status = ServiceStatus.STOPPED.value
            observed.pid = None
            observed.running_since = None
        return observed
