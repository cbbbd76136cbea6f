"""Version packages and the stores that keep them: the operator writes them, the local backend and
the Fargate container read them.

Only `storage.s3` imports boto3 (`storage.s3_uri` parses S3 addresses without it).
"""
