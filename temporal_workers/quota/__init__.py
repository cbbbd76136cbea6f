"""The concurrency quota of a function (max_concurrency, across workers and versions).

- `semaphore`: the semaphore's books (holders, waiters in start order, workers' leases); pure.
- `lease_book`: a worker's lease books (its slots, pending asks, local queue, hand-over); pure.
- `leases`: the worker-side driver of the lease book (futures, sync and check tasks, renewal).
- `channel`: the lease channel through the engine (updates and reads of the semaphore workflow).

The semaphore workflow itself is temporal_workers/workflows/quota.py, a shell over `semaphore`.
Imported by that workflow, the attempt activity and the worker; `semaphore` and `lease_book`
are plain synchronous code (no temporalio, no asyncio, no clock of their own).
"""
