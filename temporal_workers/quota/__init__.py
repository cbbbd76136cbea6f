"""The concurrency quota: pure rules of the semaphore and of a worker's lease, and the async
shell that drives them.

Imported by the quota workflow, the attempt activity and the worker.
"""
