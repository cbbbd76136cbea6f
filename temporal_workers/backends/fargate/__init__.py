"""The Fargate container backend: one ECS task per attempt.

`backend` (the port's adapter), `supervisor` (one attempt's task launched, watched, stopped),
`request` (the RunTask call), `outcome` (how a stopped task ended), `ecs` (the ECS seam),
`config`, `sizes`. Imported by the worker only; the only worker package that imports boto3.
"""
