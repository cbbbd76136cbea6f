"""The service workflow: the control loop of one service of one project.

It owns the desired state (a `ServiceTarget`: which version, running or not), set by deploy and
upgrade (`deploy` signal) and ended by undeploy (`stop` signal), and the observed one
(`ServiceObserved`: status, restarts, last exit, last start, address), kept in its memo so
`describe` reads it without a worker, in its search attributes (status, version) and its current
details for the Web UI, and answered by the `state` query.

Each run of the service's process is one `multinode.RunService` activity: it starts the process,
reports STARTING / RUNNING / UNHEALTHY by signal, heartbeats, and returns when the process ends
on its own; a new target cancels it, which stops the process (SIGTERM, the grace period, the
kill) before the next run starts. The activity's retries absorb worker faults: a run whose worker
dies or stops is started again on the next worker, without counting as a restart. When the
process ends on its own, `RestartRules` decide the pause before the next run, or to stop trying.
History stays bounded: between runs, past `MAX_HISTORY_EVENTS`, it continues as new.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityCancellationType

from multinode.contract import names
from multinode.contract.service_state import (
    SERVICE_UNSUPPORTED_ERROR,
    ServiceExit,
    ServiceObserved,
    ServiceRemoval,
    ServiceReport,
    ServiceRun,
    ServiceState,
    ServiceTarget,
    describe_exit,
)
from multinode.contract.services import ServiceStatus
from temporal_workers.workflows.service_restarts import RestartRules

STATUS_KEY = SearchAttributeKey.for_keyword(names.SA_STATUS)
VERSION_KEY = SearchAttributeKey.for_keyword(names.SA_VERSION)

# Set by the worker from its settings: how soon a run on a dead worker is noticed and restarted.
HEARTBEAT_TIMEOUT_SECONDS = 5.0
# A run lasts as long as the service does; the activity's own deadline is only a backstop.
RUN_TIMEOUT = timedelta(days=3650)
# Well under Temporal's own suggestion (tens of thousands of events): a service's history is
# small per run, and continuing as new between runs costs nothing.
MAX_HISTORY_EVENTS = 2_000
# Undeploy ends with the backend's removal of the service (Fargate deletes its ECS service);
# histories from before it replay without that activity.
STOP_SERVICE_PATCH = "service-remove-on-undeploy"
STOP_TIMEOUT = timedelta(minutes=15)


@workflow.defn(name=names.SERVICE_WORKFLOW)
class ServiceWorkflow:
    @workflow.init
    def __init__(self, state: ServiceState) -> None:
        self._target: ServiceTarget | None = state.target
        self._observed = state.observed or ServiceObserved(state.project_name, state.service_name)
        self._rules = RestartRules(state.restart)
        self._run = state.run
        self._changed = False
        self._stopping = False
        self._published: tuple[Any, ...] | None = None

    @workflow.run
    async def run(self, state: ServiceState) -> ServiceObserved:
        while not self._stopping:
            target = self._target
            self._changed = False
            if target is None or not target.running:
                self._observe(status=ServiceStatus.STOPPED, pid=None, running_since=None, reason=None)
                await workflow.wait_condition(lambda: self._changed or self._stopping or self._rotate())
            else:
                await self._one_run(target)
            if not self._stopping and not self._changed and self._rotate():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._carried())
        if workflow.patched(STOP_SERVICE_PATCH):
            await workflow.execute_activity(
                names.STOP_SERVICE_ACTIVITY,
                ServiceRemoval(self._observed.project_name, self._observed.service_name),
                start_to_close_timeout=STOP_TIMEOUT,
                heartbeat_timeout=timedelta(seconds=max(HEARTBEAT_TIMEOUT_SECONDS, 30.0)),
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)),
                summary=f"remove service {self._observed.service_name}",
            )
        self._observe(status=ServiceStatus.STOPPED, pid=None, running_since=None, reason=None)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._observed

    # ----- one run of the process --------------------------------------------------------------

    async def _one_run(self, target: ServiceTarget) -> None:
        self._run += 1
        spec = target.spec
        self._observe(status=ServiceStatus.STARTING, version_id=target.version_id, port=spec.port,
                      address=None, pid=None, running_since=None)
        handle = workflow.start_activity(
            names.RUN_SERVICE_ACTIVITY,
            ServiceRun(workflow.info().workflow_id, self._run, target),
            result_type=ServiceExit,
            start_to_close_timeout=RUN_TIMEOUT,
            heartbeat_timeout=timedelta(seconds=HEARTBEAT_TIMEOUT_SECONDS),
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=1),
                maximum_interval=timedelta(seconds=10),
                non_retryable_error_types=[SERVICE_UNSUPPORTED_ERROR],
            ),
            summary=f"run {self._run} of service {spec.name} @ {target.version_id}",
        )
        await workflow.wait_condition(lambda: handle.done() or self._changed or self._stopping)
        if not handle.done():
            handle.cancel()
        try:
            exit = await handle
        except ActivityError as error:
            if self._changed or self._stopping:
                return  # stopped on purpose: a new target, or undeploy
            cause = error.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(cause or error)
            self._observe(status=ServiceStatus.FAILED, reason=message, pid=None, running_since=None)
            await workflow.wait_condition(lambda: self._changed or self._stopping)
            return
        if self._changed or self._stopping:
            return
        decision = self._rules.after_exit(exit, spec.port)
        changes: dict[str, Any] = {"status": decision.status, "reason": decision.reason, "pid": None,
                                   "running_since": None}
        if exit.start_error is None:
            changes.update(last_exit=describe_exit(exit.exit_code), last_exit_code=exit.exit_code)
        if decision.counts_as_restart and decision.delay_seconds is not None:
            changes["restarts"] = self._observed.restarts + 1
        self._observe(**changes)
        if decision.delay_seconds is None:
            await workflow.wait_condition(lambda: self._changed or self._stopping)
            return
        try:
            await workflow.wait_condition(
                lambda: self._changed or self._stopping, timeout=timedelta(seconds=decision.delay_seconds)
            )
        except TimeoutError:
            pass

    # ----- handlers ------------------------------------------------------------------------------

    @workflow.signal(name=names.SERVICE_DEPLOY_SIGNAL)
    def deploy(self, target: ServiceTarget) -> None:
        """A new desired state (a deploy or an upgrade): the current run stops, the next starts
        on it with the restart rules and count reset."""
        self._target = target
        self._changed = True
        self._rules.reset()
        self._observe(restarts=0, last_exit=None, last_exit_code=None)

    @workflow.signal(name=names.SERVICE_STOP_SIGNAL)
    def stop(self) -> None:
        """Undeploy: stop the process and end the workflow."""
        self._stopping = True

    @workflow.signal(name=names.SERVICE_REPORT_SIGNAL)
    def report(self, report: ServiceReport) -> None:
        if report.run != self._run or self._changed or self._stopping:
            return  # from an earlier run, or about to be stopped
        status = ServiceStatus(report.status)
        if status == ServiceStatus.STARTING:
            self._observe(status=status, pid=report.pid, last_started_at=report.at, running_since=None)
        elif status == ServiceStatus.RUNNING:
            self._observe(status=status, address=report.address, running_since=report.at, reason=None)
        elif status == ServiceStatus.UNHEALTHY:
            self._observe(status=status, running_since=None,
                          reason=f"port {self._observed.port} stopped accepting connections")

    @workflow.query(name=names.STATE_QUERY)
    def state(self) -> ServiceObserved:
        return self._observed

    # ----- what readers see ----------------------------------------------------------------------

    def _observe(self, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(self._observed, key, value.value if isinstance(value, ServiceStatus) else value)
        observed = self._observed
        published = tuple(vars(observed).values())
        if published == self._published:
            return
        self._published = published
        workflow.upsert_memo({names.MEMO_SERVICE: observed})
        attributes = [STATUS_KEY.value_set(observed.status)]
        if observed.version_id:
            attributes.append(VERSION_KEY.value_set(observed.version_id))
        workflow.upsert_search_attributes(attributes)
        workflow.set_current_details(self._details())

    def _details(self) -> str:
        o = self._observed
        lines = [f"**{o.status}** · version {o.version_id or '-'} · {o.address or f'port {o.port}'}"]
        lines.append(f"restarts: {o.restarts}" + (f" · last exit: {o.last_exit}" if o.last_exit else ""))
        if o.reason:
            lines.append(o.reason)
        return "\n\n".join(lines)

    def _rotate(self) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() > MAX_HISTORY_EVENTS

    def _carried(self) -> ServiceState:
        return ServiceState(
            project_name=self._observed.project_name,
            service_name=self._observed.service_name,
            target=self._target,
            observed=self._observed,
            restart=self._rules.state,
            run=self._run,
        )
