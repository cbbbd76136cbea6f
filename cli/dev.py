"""`multinode dev` (the embedded control plane with a local worker) and `multinode worker`."""

from __future__ import annotations

import asyncio

import click

import temporal_workers
from multinode import admin


@click.command()
@click.option("--port", default=admin.DEFAULT_PORT, show_default=True, help="Temporal frontend port.")
@click.option("--ui-port", default=admin.DEFAULT_UI_PORT, show_default=True, help="Temporal Web UI port.")
@click.option("--headless", is_flag=True, help="Do not serve the Web UI.")
@click.option("--compact", is_flag=True, help="First compact the state folder's database (after many .remove calls).")
def dev(port: int, ui_port: int, headless: bool, compact: bool) -> None:
    """Run the embedded control plane (Temporal dev server + Web UI + a local worker) until Ctrl-C.

    State (the database, packages, environments, logs) lives under $MULTINODE_HOME
    (default ~/.multinode), so invocations survive a restart.

    \b
    Example:
      multinode dev --port 7233 --ui-port 8233
    """
    temporal_workers.configure_logging()
    base = temporal_workers.load_worker_settings()
    # Metrics on at a pinned port, unless MULTINODE_METRICS_ADDRESS puts them elsewhere.
    config = admin.DevServerConfig(
        port=port, ui_port=ui_port, headless=headless, worker_metrics=base.metrics_address is None
    )
    server = admin.DevServer(config)
    try:
        server.start(compact_store=compact)
        if server.compaction is not None:
            click.echo(f"Compacted the database: {server.compaction.bytes_before / 1e6:.1f} MB -> "
                       f"{server.compaction.bytes_after / 1e6:.1f} MB")
        connection = config.connection_settings(task_queue=base.connection.task_queue)
        metrics_address = base.metrics_address or config.worker_metrics_address
        settings = base.model_copy(update={"connection": connection, "metrics_address": metrics_address})
        click.echo(f"Multinode control plane on {config.address} (state in {config.home})")
        if not headless:
            click.echo(f"Invocations in the Temporal Web UI: {admin.list_url(settings=connection, ui_url=config.ui_url)}")
        click.echo(f"Worker metrics (Prometheus): http://{metrics_address}/metrics")
        click.echo("Press Ctrl-C to stop (twice to stop running attempts at once).")
        asyncio.run(temporal_workers.run_worker(settings))
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@click.command()
def worker() -> None:
    """Run a worker against the configured control plane (MULTINODE_API_URL, ...).

    \b
    Example:
      MULTINODE_API_URL=temporal.internal:7233 multinode worker
    """
    temporal_workers.configure_logging()
    try:
        asyncio.run(temporal_workers.run_worker(temporal_workers.load_worker_settings()))
    except KeyboardInterrupt:
        pass
