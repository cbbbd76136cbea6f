"""`python -m temporal_workers`: run a worker with settings from the environment."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from multinode.errors import MultinodeError
from temporal_workers.settings import load_worker_settings
from temporal_workers.worker import run_worker


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("MULTINODE_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(run_worker(load_worker_settings()))
    except MultinodeError as exc:
        print(f"multinode worker: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
