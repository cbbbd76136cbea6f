"""The function's runtime: what runs inside every attempt's container.

`runner` (the function's process), `service` (a service's process), `forkserver`, `frames` (the protocol between the runner and
its supervisor), `environment` (uv venvs) and `preparation` (a version fetched, checked,
unpacked), `fargate_run` (the run protocol between the worker's Fargate backend and the
container), `object_store` (its documents in S3) and `fargate_container` (the function image's
entrypoint). The worker's backends import these to speak the same protocols.

Imports neither temporalio, boto3 nor pydantic, except `object_store` and `fargate_container`
(boto3), which only the Fargate container and the worker's Fargate backend import. Never imports
`temporal_workers`: the function image ships without the worker.
"""
