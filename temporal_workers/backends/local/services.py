"""One run of a service on this machine: a supervised process on 127.0.0.1 at its port.

The process runs in its version's environment with the project's `.env` (loaded by
`multinode.runtime.service`), in its own process group and cgroup with the service's cpu and
memory limits (as a function's attempt), with stdout and stderr appended to the service's log
(`$MULTINODE_HOME/services/<project>/<service>.log`). It is RUNNING once its port accepts
connections. A port already taken is refused before anything starts: the run ends with a
start error the service's status shows. Stopping is SIGTERM, the grace period, then the kill of
the whole tree, as for functions.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import socket
import time

from multinode.contract.connection import connection_environment
from multinode.contract.service_state import ServiceExit, ServiceRun, service_log_path
from multinode.contract.services import ServiceStatus
from multinode.runtime import runner as _runner
from multinode.runtime import service as _service_runtime
from multinode.runtime.preparation import PreparedVersion
from multinode.storage.secrets import read_secrets
from temporal_workers.backends import InfrastructureError, ServiceSession
from temporal_workers.backends.local.cgroups import Cgroup, CgroupLimiter
from temporal_workers.backends.local.process import base_environment, kill_tree, reap, send_signal
from temporal_workers.backends.probe import accepts_connections
from temporal_workers.settings import WorkerSettings

log = logging.getLogger("multinode.worker")

HOST = "127.0.0.1"
# How often the supervisor heartbeats and looks at the process and its port; more often while
# the port is not open yet, so an upgrade's gap ends as soon as the new process listens.
TICK_SECONDS = 0.5
STARTING_TICK_SECONDS = 0.1
# Once RUNNING, the port is checked this often (a failed check is retried once before UNHEALTHY).
HEALTH_EVERY_SECONDS = 2.0
LOG_TAIL_BYTES = 4_000


def port_problem(port: int) -> str | None:
    """Why the service could not listen on `port` here, or None. SO_REUSEADDR as servers set it,
    so connections of a previous run in TIME_WAIT do not count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"port {port} on {HOST} is already in use by another process; stop it, or "
                    f"give the service another port in @mn.service(port=...)"
                )
            if exc.errno == errno.EACCES:
                return (
                    f"port {port} on {HOST} needs privileges this worker does not have; give the "
                    f"service a port above 1023 in @mn.service(port=...)"
                )
            return f"port {port} on {HOST} cannot be used: {exc}"
    return None


class LocalServiceRun:
    def __init__(
        self,
        run: ServiceRun,
        session: ServiceSession,
        settings: WorkerSettings,
        limiter: CgroupLimiter,
        version: PreparedVersion,
    ) -> None:
        self.run_ = run
        self.session = session
        self.settings = settings
        self.limiter = limiter
        self.version = version
        target = run.target
        self.port = target.spec.port
        self.address = f"http://{HOST}:{self.port}"
        self.log_path = service_log_path(settings.home, target.project_name, target.spec.name)

    def _environment(self, secrets: dict[str, str]) -> dict[str, str]:
        target = self.run_.target
        public, secret = connection_environment(self.settings.connection)
        env = base_environment()
        env.update(public)
        env.update(secret)  # the local backend's own processes get the key and TLS material
        env.update({
            "PYTHONUNBUFFERED": "1",
            "MULTINODE_PROJECT": target.project_name,
            "MULTINODE_VERSION_ID": target.version_id,
            _service_runtime.ENV_SERVICE: target.spec.name,
            _service_runtime.ENV_PORT: str(self.port),
            _runner.ENV_CODE_DIR: str(self.version.code_dir),
        })
        return {**secrets, **env}  # the project's .env, read by the worker, never replaces these

    async def run(self) -> ServiceExit:
        problem = port_problem(self.port)
        if problem is not None:
            return ServiceExit(ended_at=time.time(), start_error=problem)
        target = self.run_.target
        cgroup = self.limiter.create(
            f"service-{target.project_name}-{target.spec.name}-{self.run_.run}", target.spec.cpu, target.spec.memory_mib
        )
        uri = target.secrets_uri
        env = self._environment(await asyncio.to_thread(read_secrets, uri) if uri else {})
        if cgroup is not None and cgroup.deferred_cpu_procs is not None:
            env[_runner.ENV_CPU_CGROUP] = str(cgroup.deferred_cpu_procs)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            log_file.write(
                f"--- run {self.run_.run} of service {target.spec.name}, version {target.version_id}, "
                f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC ---\n".encode()
            )
            log_file.flush()
            log_offset = log_file.tell()
            try:
                proc = await asyncio.create_subprocess_exec(
                    str(self.version.python), "-m", "multinode.runtime.service",
                    cwd=self.version.code_dir, env=env, stdin=asyncio.subprocess.DEVNULL,
                    stdout=log_file.fileno(), stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True, preexec_fn=cgroup.join if cgroup else None,
                )
            except OSError as exc:
                if cgroup is not None:
                    cgroup.remove()
                raise InfrastructureError(f"starting the service's process failed: {exc}") from exc
        started_at = time.time()
        log.info("service %s of %s started (pid %d, port %d)", target.spec.name, target.project_name,
                 proc.pid, self.port)
        try:
            return await self._supervise(proc, cgroup, started_at, log_offset)
        finally:
            if proc.returncode is None:
                kill_tree(proc, cgroup)
            await reap(proc, cgroup)
            if cgroup is not None:
                await asyncio.to_thread(cgroup.remove)

    async def _supervise(
        self, proc: asyncio.subprocess.Process, cgroup: Cgroup | None, started_at: float, log_offset: int
    ) -> ServiceExit:
        session = self.session
        await session.report(ServiceStatus.STARTING.value, started_at, pid=proc.pid)
        exited = asyncio.ensure_future(proc.wait())
        stopping = asyncio.ensure_future(session.worker_stopping())
        healthy_at: float | None = None
        ever_healthy = False
        next_check = time.monotonic()
        start_deadline = time.monotonic() + self.settings.service_start_seconds
        misses = 0
        try:
            while not exited.done():
                tick = TICK_SECONDS if ever_healthy else STARTING_TICK_SECONDS
                done, _ = await asyncio.wait([exited, stopping], timeout=tick, return_when=asyncio.FIRST_COMPLETED)
                if stopping in done:
                    await self._stop(proc, cgroup, exited)
                    raise InfrastructureError("the worker is stopping; the service starts again on the next worker")
                if exited.done():
                    break
                session.heartbeat()
                now = time.monotonic()
                if now < next_check:
                    continue
                ok = await accepts_connections(HOST, self.port)
                next_check = now + (HEALTH_EVERY_SECONDS if healthy_at is not None else 0.0)
                if ok:
                    misses = 0
                    if healthy_at is None:
                        healthy_at = time.time()
                        ever_healthy = True
                        await session.report(ServiceStatus.RUNNING.value, healthy_at, address=self.address)
                elif healthy_at is not None:
                    misses += 1
                    if misses >= 2 and not exited.done():
                        healthy_at = None
                        await session.report(ServiceStatus.UNHEALTHY.value, time.time())
                elif not ever_healthy and now >= start_deadline:
                    await self._stop(proc, cgroup, exited)
                    return self._exit(proc, started_at, ever_healthy, healthy_at, log_offset,
                                      unhealthy=f"port {self.port} did not accept connections within "
                                                f"{self.settings.service_start_seconds:g} s")
        except asyncio.CancelledError:
            # Stopped by the control loop (new version, undeploy): gracefully, then the kill.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            await self._stop(proc, cgroup, exited)
            raise
        finally:
            stopping.cancel()
        return self._exit(proc, started_at, ever_healthy, healthy_at, log_offset)

    async def _stop(self, proc: asyncio.subprocess.Process, cgroup: Cgroup | None, exited: asyncio.Future[int]) -> None:
        send_signal(proc, signal.SIGTERM)
        done, _ = await asyncio.wait([exited], timeout=self.settings.grace_period_seconds)
        if not done:
            kill_tree(proc, cgroup)
        await reap(proc, cgroup)

    def _exit(
        self, proc: asyncio.subprocess.Process, started_at: float, ever_healthy: bool, healthy_at: float | None,
        log_offset: int, unhealthy: str | None = None,
    ) -> ServiceExit:
        ended_at = time.time()
        return ServiceExit(
            ended_at=ended_at,
            started_at=started_at,
            exit_code=proc.returncode,
            ever_healthy=ever_healthy,
            healthy_seconds=(ended_at - healthy_at) if healthy_at is not None else 0.0,
            unhealthy_reason=unhealthy,
            log_tail=self._log_tail(log_offset),
        )

    def _log_tail(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(offset, size - LOG_TAIL_BYTES))
                return handle.read().decode("utf-8", "replace")
        except OSError:
            return ""
