"""A service's process: `python -m multinode.runtime.service`, one per run of the service.

It imports the version's main.py (with its `.env`, inside the cpu limit) and calls the service's
body, awaiting it if it is an `async def`; it runs until the body returns or the process is
stopped. SIGTERM keeps its default meaning unless the service's own server handles it (uvicorn
does: it shuts down gracefully); after the grace period the supervisor kills the process tree.
If the supervisor dies the process group goes with it: the next worker starts the service again.

Inside, the project's functions start invocations of the service's own project and version, as
nested invocations do (MULTINODE_PROJECT and MULTINODE_VERSION_ID are set).
"""

from __future__ import annotations

import inspect
import os
import traceback
from typing import NoReturn

from multinode.runtime import runner

ENV_SERVICE = "MULTINODE_SERVICE"
ENV_PORT = "MULTINODE_SERVICE_PORT"


def run() -> None:
    runner.load_main(os.environ[runner.ENV_CODE_DIR])
    from multinode._service import registered_services

    name = os.environ[ENV_SERVICE]
    service = registered_services().get(name)
    if service is None:
        raise LookupError(f"main.py defines no service named {name!r}")
    value = service.local_callable()
    if inspect.iscoroutine(value):
        import asyncio

        asyncio.run(value)


def main() -> NoReturn:
    runner.watch_parent(os.getppid())
    code = 0
    try:
        run()
        print(f"service {os.environ.get(ENV_SERVICE)} returned; it is started again", flush=True)
    except BaseException as exc:  # every ending is in the log, where `multinode logs` shows it
        traceback.print_exception(type(exc), exc, exc.__traceback__)
        code = exc.code if isinstance(exc, SystemExit) and isinstance(exc.code, int) else 1
    runner.exit_now(code)


if __name__ == "__main__":
    main()
