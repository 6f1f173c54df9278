"""The S3 adapter of model sources: ``s3://bucket/prefix`` copied to a local directory (boto3)."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

from labelwise.errors import EmbedderUnavailable


def download_s3(uri: str, dest: Path, client: Any = None) -> Path:
    """Copy every object under ``s3://bucket/prefix`` into ``dest`` (keys relative to the prefix)."""
    parsed = urllib.parse.urlparse(uri)
    bucket, prefix = parsed.netloc, parsed.path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    try:
        if client is None:
            import boto3

            client = boto3.client("s3")
        paginator = client.get_paginator("list_objects_v2")
        n = 0
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(prefix) :]
                if not rel or rel.endswith("/") or ".." in Path(rel).parts:
                    continue
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, obj["Key"], str(target))
                n += 1
    except Exception as exc:  # botocore's ClientError / NoCredentialsError and friends
        raise EmbedderUnavailable(f"cannot download CLIP model from {uri}: {exc}") from exc
    if n == 0:
        raise EmbedderUnavailable(f"no objects under {uri}")
    return dest
