"""`python -m temporal_workers`: run a worker with settings from the environment."""

from __future__ import annotations

import asyncio
import sys

from multinode.errors import MultinodeError
from temporal_workers import configure_logging, load_worker_settings, run_worker


def main() -> None:
    configure_logging()
    try:
        asyncio.run(run_worker(load_worker_settings()))
    except MultinodeError as exc:
        print(f"multinode worker: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
