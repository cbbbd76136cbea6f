"""The Fargate container backend: one ECS task per attempt.

Imported by the worker only; the only worker package that imports boto3.
"""
