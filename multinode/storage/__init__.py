"""Version packages and the stores that keep them: the operator writes them, the local backend and
the Fargate container read them.

`package` (building and extracting), `store` (a directory store, and `package_store_for` any
store), `s3` (the S3 store), `s3_uri` (S3 addresses). Only `storage.s3` imports boto3.
"""
