"""The worker's operations settings (metrics address, shutdown grace) and its metric instruments,
read back through temporalio's in-memory metric buffer."""

from __future__ import annotations

import socket

import pytest
from temporalio.runtime import BUFFERED_METRIC_KIND_COUNTER, MetricBuffer, Runtime, TelemetryConfig

from multinode.errors import InvalidOptionError
from temporal_workers.metrics import ATTEMPTS_ENDED, FORK_SERVER_STARTS, WorkerMetrics, metrics_runtime
from temporal_workers.settings import load_worker_settings

pytestmark = pytest.mark.timeout(60)


def test_metrics_are_off_and_the_grace_is_100_s_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MULTINODE_METRICS_ADDRESS", raising=False)
    monkeypatch.delenv("MULTINODE_SHUTDOWN_GRACE_SECONDS", raising=False)
    settings = load_worker_settings()
    assert settings.metrics_address is None and settings.shutdown_grace_seconds == 100


@pytest.mark.parametrize("address", ["127.0.0.1:9464", "0.0.0.0:1", "[::1]:9464", "metrics.internal:65535"])
def test_a_metrics_address_is_host_and_port(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    monkeypatch.setenv("MULTINODE_METRICS_ADDRESS", address)
    assert load_worker_settings().metrics_address == address


@pytest.mark.parametrize("address", ["9464", "127.0.0.1", ":9464", "127.0.0.1:http", "127.0.0.1:0",
                                     "127.0.0.1:70000", "my host:9464"])
def test_a_bad_metrics_address_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    monkeypatch.setenv("MULTINODE_METRICS_ADDRESS", address)
    with pytest.raises(InvalidOptionError, match="metrics_address") as caught:
        load_worker_settings()
    assert repr(address) in str(caught.value) and "host:port" in str(caught.value)


@pytest.mark.parametrize("grace", ["-1", "3601", "soon"])
def test_a_bad_shutdown_grace_is_refused(monkeypatch: pytest.MonkeyPatch, grace: str) -> None:
    monkeypatch.setenv("MULTINODE_SHUTDOWN_GRACE_SECONDS", grace)
    with pytest.raises(InvalidOptionError, match="shutdown_grace_seconds"):
        load_worker_settings()


def test_a_busy_metrics_port_is_one_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(InvalidOptionError, match="MULTINODE_METRICS_ADDRESS"):
            metrics_runtime(address)


def test_instruments_record_with_their_labels() -> None:
    buffer = MetricBuffer(1000)
    runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer, attach_service_name=False))
    metrics = WorkerMetrics(runtime.metric_meter)
    for outcome in ("succeeded", "succeeded", "failed", "handed_back"):
        metrics.attempt_ended("p", "f", outcome)
    metrics.attempt_ended("p", "g", "succeeded")
    metrics.fork_server_started()
    metrics.pending_to_running("p", "f", -0.5)  # clock skew between machines: recorded as 0
    counts: dict[tuple[str, tuple[tuple[str, object], ...]], float] = {}
    for update in buffer.retrieve_updates():
        if update.metric.kind == BUFFERED_METRIC_KIND_COUNTER:
            key = (update.metric.name, tuple(sorted(update.attributes.items())))
            counts[key] = counts.get(key, 0) + update.value
    ended = {k[1]: v for k, v in counts.items() if k[0] == ATTEMPTS_ENDED}
    assert ended == {
        (("function", "f"), ("outcome", "succeeded"), ("project", "p")): 2,
        (("function", "f"), ("outcome", "failed"), ("project", "p")): 1,
        (("function", "f"), ("outcome", "handed_back"), ("project", "p")): 1,
        (("function", "g"), ("outcome", "succeeded"), ("project", "p")): 1,
    }
    assert counts[(FORK_SERVER_STARTS, ())] == 1
