"""`s3://bucket/prefix` addresses, without boto3: the Fargate run protocol names its documents by
them in processes that must stay lean."""

from __future__ import annotations

from urllib.parse import urlparse

from multinode.errors import InvalidOptionError


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split `s3://bucket/key/or/prefix` into the bucket and the rest (without a leading /)."""
    parsed = urlparse(uri)
    if parsed.scheme.lower() != "s3" or not parsed.netloc:
        raise InvalidOptionError(f"{uri!r} is not an s3://bucket/... URI")
    return parsed.netloc, parsed.path.lstrip("/")


def normalize_prefix(prefix: str) -> str:
    """A key prefix that ends in "/" (or is empty), so keys can be appended to it."""
    stripped = prefix.strip("/")
    return f"{stripped}/" if stripped else ""
