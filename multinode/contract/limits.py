"""The one set of limits shared by the SDK, the CLI and the workers.

Every check compares with `<=` against these constants, so the client and the worker can never
disagree by one at the boundary.
"""

from __future__ import annotations

from datetime import timedelta

MIB = 1024 * 1024

CPU_DEFAULT = 0.1
CPU_MIN = 0.1
CPU_MAX = 16.0

MEMORY_DEFAULT_MIB = 256
MEMORY_MIN_MIB = 128
MEMORY_MAX_MIB = 64 * 1024

TIMEOUT_DEFAULT = timedelta(hours=1)
TIMEOUT_MIN = timedelta(seconds=1)
TIMEOUT_MAX = timedelta(hours=24)

MAX_CONCURRENCY_DEFAULT = 10
MAX_CONCURRENCY_MIN = 1
MAX_CONCURRENCY_MAX = 100

MAX_RETRIES_DEFAULT = 0
MAX_RETRIES_MIN = 0
MAX_RETRIES_MAX = 50

# Encoded (jsonpickle) size of one argument or one result, in characters.
PAYLOAD_MAX_CHARS = 250_000
# All arguments of one start together: keeps the workflow input far below Temporal's 2 MiB
# payload limit whatever the number of arguments.
ARGUMENTS_TOTAL_MAX_CHARS = 1_000_000

# What `.error` keeps of a remote traceback and message; the fact of failure is never dropped.
ERROR_MESSAGE_MAX_CHARS = 4_000
ERROR_TRACEBACK_MAX_CHARS = 16_000

NAME_MAX_CHARS = 64

LIST_PAGE_SIZE = 50
