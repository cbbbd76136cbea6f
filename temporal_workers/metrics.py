"""The worker's Prometheus metrics: temporalio's own runtime telemetry (task slots, poll and
schedule-to-start latencies, ...) plus Multinode's, all on one endpoint served by the SDK's
runtime (no second HTTP server).

Recording sits on the attempt's path, so each instrument is bound to its labels once and kept:
a record is then one call into the runtime with prebuilt attributes. With metrics off the meter
is temporalio's no-op one and a record costs a method call.
"""

from __future__ import annotations

from typing import TypeVar

from temporalio.common import MetricCounter, MetricHistogramFloat, MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from multinode.errors import InvalidOptionError

PREFIX = "multinode_"
ATTEMPTS_STARTED = PREFIX + "attempts_started"
ATTEMPTS_ENDED = PREFIX + "attempts_ended"
PENDING_TO_RUNNING = PREFIX + "pending_to_running_seconds"
ENVIRONMENT_BUILDS = PREFIX + "environment_builds"
ENVIRONMENT_BUILD_SECONDS = PREFIX + "environment_build_seconds"
FORK_SERVER_STARTS = PREFIX + "fork_server_starts"
QUOTA_WAITS = PREFIX + "quota_waits"
QUOTA_ADMISSION_SECONDS = PREFIX + "quota_admission_seconds"

# An attempt's end that is not the function's own: the engine runs it again, uncounted.
HANDED_BACK = "handed_back"

_SHORT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
_BUILD_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800)

M = TypeVar("M", MetricCounter, MetricHistogramFloat)


def metrics_runtime(bind_address: str) -> Runtime:
    """A temporalio runtime that serves Prometheus metrics on `bind_address`. Clients (and so
    workers) made on it report through it; so do the instruments of `WorkerMetrics(runtime.metric_meter)`."""
    buckets = {name: list(_SHORT_BUCKETS) for name in (PENDING_TO_RUNNING, QUOTA_ADMISSION_SECONDS)}
    buckets[ENVIRONMENT_BUILD_SECONDS] = list(_BUILD_BUCKETS)
    try:
        return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(
            bind_address=bind_address, histogram_bucket_overrides=buckets,
        )))
    except Exception as exc:  # the runtime's bind error: a port in use, an unknown host
        raise InvalidOptionError(
            f"cannot serve worker metrics on MULTINODE_METRICS_ADDRESS={bind_address!r}: {exc}"
        ) from None


class WorkerMetrics:
    """Multinode's instruments, labelled by project and function (and outcome or place)."""

    def __init__(self, meter: MetricMeter) -> None:
        self._started = meter.create_counter(ATTEMPTS_STARTED, "attempts handed to the container backend")
        self._ended = meter.create_counter(
            ATTEMPTS_ENDED, "attempts ended, by outcome (handed_back: the engine runs it again, uncounted)"
        )
        self._pending_to_running = meter.create_histogram_float(
            PENDING_TO_RUNNING,
            "from the invocation's creation (for a retry: its scheduling) to the function running",
            "s",
        )
        self._builds = meter.create_counter(ENVIRONMENT_BUILDS, "requirements environments built, by result")
        self._build_seconds = meter.create_histogram_float(
            ENVIRONMENT_BUILD_SECONDS, "time to build a requirements environment", "s"
        )
        self._fork_servers = meter.create_counter(FORK_SERVER_STARTS, "fork servers started")
        self._quota_waits = meter.create_counter(
            QUOTA_WAITS, "invocations sent to wait at their function's quota semaphore"
        )
        self._admission = meter.create_histogram_float(
            QUOTA_ADMISSION_SECONDS,
            "time an attempt took to get a slot from this worker's quota lease (queueing included)",
            "s",
        )
        self._bound: dict[tuple[object, ...], MetricCounter | MetricHistogramFloat] = {}

    def _bind(self, instrument: M, labels: tuple[tuple[str, str], ...]) -> M:
        key = (instrument.name, labels)
        bound = self._bound.get(key)
        if bound is None:
            bound = self._bound[key] = instrument.with_additional_attributes(dict(labels))
        return bound  # type: ignore[return-value]

    def attempt_started(self, project: str, function: str) -> None:
        self._bind(self._started, (("project", project), ("function", function))).add(1)

    def attempt_ended(self, project: str, function: str, outcome: str) -> None:
        labels = (("project", project), ("function", function), ("outcome", outcome))
        self._bind(self._ended, labels).add(1)

    def pending_to_running(self, project: str, function: str, seconds: float) -> None:
        labels = (("project", project), ("function", function))
        self._bind(self._pending_to_running, labels).record(max(0.0, seconds))

    def environment_built(self, seconds: float, ok: bool) -> None:
        self._bind(self._builds, (("result", "ok" if ok else "failed"),)).add(1)
        self._bind(self._build_seconds, ()).record(max(0.0, seconds))

    def fork_server_started(self) -> None:
        self._bind(self._fork_servers, ()).add(1)

    def quota_wait(self, project: str, function: str) -> None:
        self._bind(self._quota_waits, (("project", project), ("function", function))).add(1)

    def quota_admission(self, project: str, function: str, seconds: float) -> None:
        labels = (("project", project), ("function", function))
        self._bind(self._admission, labels).record(max(0.0, seconds))


NO_METRICS = WorkerMetrics(MetricMeter.noop)
