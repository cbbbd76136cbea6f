"""JSON documents in S3: how the Fargate run's documents are written and read (see
`multinode.runtime.fargate_run`).

Imports boto3: only the Fargate container's entrypoint and the worker's Fargate backend import it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from multinode.storage.s3 import is_missing, s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

Json = dict[str, Any]
_NOT_MODIFIED_CODES = frozenset({"304", "NotModified"})


class ObjectStore:
    """JSON documents in S3."""

    def __init__(self, client: S3Client) -> None:
        self._client = client

    @classmethod
    def connect(cls, endpoint_url: str | None = None) -> ObjectStore:
        return cls(s3_client(endpoint_url))

    def put_json(self, bucket: str, key: str, document: Mapping[str, Any]) -> None:
        body = json.dumps(document, separators=(",", ":")).encode()
        self._client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object under `prefix`; returns how many there were."""
        deleted = 0
        for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys: list[ObjectIdentifierTypeDef] = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:  # a page holds at most 1,000 keys, DeleteObjects' own limit
                self._client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
                deleted += len(keys)
        return deleted

    def get_json(self, bucket: str, key: str) -> Json | None:
        """The document, or None when there is none."""
        changed = self.get_json_if_changed(bucket, key, None)
        return changed[1] if changed else None

    def get_json_if_changed(self, bucket: str, key: str, etag: str | None) -> tuple[str, Json] | None:
        """(etag, document) when the object exists and its etag is not `etag`, else None."""
        arguments: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if etag is not None:
            arguments["IfNoneMatch"] = etag
        try:
            response = self._client.get_object(**arguments)
        except ClientError as error:
            if is_missing(error) or error.response.get("Error", {}).get("Code", "") in _NOT_MODIFIED_CODES:
                return None
            raise
        document = json.loads(response["Body"].read())
        if not isinstance(document, dict):
            raise TypeError(f"s3://{bucket}/{key} does not hold a JSON object")
        return str(response.get("ETag", "")), document
