"""Content on S3 or any S3-compatible store (``TIERGATE_CONTENT_URL=s3://BUCKET/PREFIX``).

Blobs are objects ``PREFIX/<sha256>``: every worker of a fleet reads what any other wrote,
with nothing shared but the bucket. boto3 finds the endpoint, region and credentials the
AWS way (``AWS_ENDPOINT_URL`` for an S3-compatible server, ``AWS_DEFAULT_REGION``,
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a profile or an instance role), so no
secret is in the URL. The bucket must exist; tiergate does not create it.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tiergate.activities._content import ContentStore, missing
from tiergate.errors import StateError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class S3ContentStore(ContentStore):
    """Blobs as objects under ``prefix`` in ``bucket``. A put of a name that exists writes
    the same bytes again (content never changes under a name), so no read comes first."""

    def __init__(self, url: str, client: S3Client | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise StateError(
                f"TIERGATE_CONTENT_URL={url!r} names no bucket",
                fix="s3://BUCKET or s3://BUCKET/PREFIX (endpoint and keys from the AWS_* "
                "environment)",
            )
        self.bucket, self.prefix = parts.netloc, parts.path.strip("/")
        self.shown = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.client = client or _client()

    def _key(self, ref: str) -> str:
        return f"{self.prefix}/{ref}" if self.prefix else ref

    def put(self, data: bytes) -> str:
        ref = hashlib.sha256(data).hexdigest()
        self._call("put_object", Bucket=self.bucket, Key=self._key(ref), Body=data)
        return ref

    def has(self, ref: str) -> bool:
        try:
            self._call("head_object", Bucket=self.bucket, Key=self._key(ref))
        except KeyError:
            return False
        return True

    def get(self, ref: str) -> bytes:
        try:
            answer = self._call("get_object", Bucket=self.bucket, Key=self._key(ref))
        except KeyError:
            raise KeyError(missing(ref, self.shown)) from None
        body: bytes = answer["Body"].read()
        return body

    def _call(self, operation: str, **arguments: Any) -> Any:
        """``operation`` on the client; a missing object is KeyError, anything else that
        S3 refuses is a StateError naming the bucket."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(**arguments)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                raise KeyError(arguments.get("Key", "")) from None
            raise StateError(
                f"{self.shown}: {operation} refused: {error}",
                fix="check the bucket exists and this host's AWS credentials may use it",
            ) from None
        except BotoCoreError as error:
            raise StateError(
                f"{self.shown}: {operation} failed: {error}",
                fix="check AWS_ENDPOINT_URL (an S3-compatible server) and the network",
            ) from None


def _client() -> S3Client:
    try:
        import boto3
    except ImportError:
        raise StateError(
            "TIERGATE_CONTENT_URL=s3://… needs boto3, which is not installed",
            fix="pip install 'tiergate[s3]'",
        ) from None
    client: S3Client = boto3.client("s3")
    return client
