"""The function's runtime: what runs inside every attempt's container (runner, fork server, the
frame protocol, version preparation, the Fargate container entrypoint).

Imports neither temporalio, boto3 nor pydantic, except the Fargate container entrypoint (boto3).
"""
