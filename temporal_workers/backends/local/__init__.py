"""The local container backend: one process per attempt, forked from a fork server per version
environment, limited by cgroups where the machine allows.

`backend` (preparation and launch), `supervisor` (one attempt's process watched and judged),
`standby` (children forked ahead), `process` (signals, reaping), `forkserver`, `cgroups`.
Imported by the worker only.
"""
