"""Packages in S3: `s3://bucket/prefix` stores each package once, as
`<prefix>packages/<sha256>.tar.gz`.

Only imported for `s3://` stores, so boto3 is needed only by those who use S3. AWS_ENDPOINT_URL
(moto, MinIO) is honoured, as are the usual AWS credential and region settings.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from multinode.errors import InvalidOptionError, PackageIntegrityError, PackageNotFoundError
from multinode.storage.package import sha256_hex
from multinode.storage.s3_uri import normalize_prefix, parse_s3_uri

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ENV_ENDPOINT_URL = "AWS_ENDPOINT_URL"
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_FORBIDDEN_CODES = frozenset({"403", "AccessDenied", "Forbidden"})


def s3_client(endpoint_url: str | None = None) -> S3Client:
    """An S3 client; `endpoint_url` (or AWS_ENDPOINT_URL) points it at an S3 stand-in."""
    endpoint = endpoint_url or os.environ.get(ENV_ENDPOINT_URL) or None
    return boto3.client("s3", endpoint_url=endpoint)


def is_forbidden(error: ClientError) -> bool:
    """Whether S3 refused access (which is also how it hides a missing key from a role that may
    not list the bucket)."""
    return error.response.get("Error", {}).get("Code", "") in _FORBIDDEN_CODES


def is_missing(error: ClientError) -> bool:
    """Whether S3 answered that the object does not exist."""
    return error.response.get("Error", {}).get("Code", "") in _MISSING_CODES


class S3PackageStore:
    """A package store in one bucket, under one prefix."""

    def __init__(self, spec: str, client: S3Client | None = None) -> None:
        self.bucket, prefix = parse_s3_uri(spec)
        self.prefix = normalize_prefix(prefix)
        self._client = client or s3_client()

    def key_for(self, sha256: str) -> str:
        return f"{self.prefix}packages/{sha256}.tar.gz"

    def put(self, data: bytes, sha256: str) -> str:
        _check_digest(data, sha256)
        key = self.key_for(sha256)
        if not self._exists(key):
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data)
        return f"s3://{self.bucket}/{key}"

    def get(self, uri: str) -> bytes:
        bucket, key = parse_s3_uri(uri)
        try:
            response = self._client.get_object(Bucket=bucket, Key=key)
            return response["Body"].read()
        except ClientError as error:
            if is_missing(error) or error.response.get("Error", {}).get("Code", "") == "NoSuchBucket":
                raise PackageNotFoundError(f"no package is stored at {uri}") from None
            if is_forbidden(error):
                # S3 answers 403, not 404, for a missing key to a role without s3:ListBucket.
                raise PackageNotFoundError(
                    f"the package at {uri} cannot be read (S3 answered 403 Access Denied): it is "
                    "missing, or this role lacks s3:GetObject on it; with s3:ListBucket on the "
                    "bucket S3 tells the two apart"
                ) from None
            raise OSError(f"could not read {uri}: {error}") from error
        except BotoCoreError as error:
            # Unreachable endpoint, missing credentials...: a worker retries (OSError), and
            # the caller's message names the store.
            raise OSError(f"could not read {uri}: {error}") from error

    def _exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if is_missing(error):
                return False
            raise
        return True


def put_encrypted(store_spec: str, name: str, data: bytes, kms_key_id: str | None) -> str:
    """Put `data` at `<prefix><name>` encrypted with KMS (`kms_key_id`, or the account's
    aws/s3 key); returns its URI."""
    bucket, prefix = parse_s3_uri(store_spec)
    key = normalize_prefix(prefix) + name
    client = s3_client()
    try:
        if kms_key_id:
            client.put_object(Bucket=bucket, Key=key, Body=data, ServerSideEncryption="aws:kms",
                              SSEKMSKeyId=kms_key_id)
        else:
            client.put_object(Bucket=bucket, Key=key, Body=data, ServerSideEncryption="aws:kms")
    except (ClientError, BotoCoreError) as error:
        raise OSError(f"could not store s3://{bucket}/{key}: {error}") from error
    return f"s3://{bucket}/{key}"


def object_exists(uri: str) -> bool:
    bucket, key = parse_s3_uri(uri)
    try:
        s3_client().head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if is_missing(error):
            return False
        raise OSError(f"could not read {uri}: {error}") from error
    return True


def put_if_absent(uri: str, data: bytes) -> bool:
    """Put `data` at `uri` unless an object is there already; whether it was put."""
    if object_exists(uri):
        return False
    bucket, key = parse_s3_uri(uri)
    try:
        s3_client().put_object(Bucket=bucket, Key=key, Body=data)
    except (ClientError, BotoCoreError) as error:
        raise OSError(f"could not store {uri}: {error}") from error
    return True


def _check_digest(data: bytes, sha256: str) -> None:
    # The digest becomes part of the key, and a package is named by its content: both must hold.
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise InvalidOptionError(f"{sha256!r} is not a lowercase hex sha256 digest")
    actual = sha256_hex(data)
    if actual != sha256:
        raise PackageIntegrityError(f"package hash mismatch: expected sha256 {sha256}, got {actual}")
