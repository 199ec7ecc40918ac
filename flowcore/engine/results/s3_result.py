"""``S3Result``: values stored as S3 objects (boto3, extra ``aws``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from flowcore.engine.result.base import Result
from flowcore.exceptions import ResultStorageError, ValueNotFoundError
from flowcore.utilities import aws
from flowcore.utilities._optional import import_optional, require_optional

__all__ = ["S3Result"]

_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_KNOWN_BUCKETS: set[str] = set()  # buckets found to exist, in this process
_FORBIDDEN_CODES = frozenset({"403", "AccessDenied", "Forbidden"})


def _no_bucket(bucket: str | None, key: str) -> str:
    return (
        f"S3Result: no bucket {bucket!r} (at s3://{bucket}/{key}): the server answered "
        "404; create the bucket, or check the bucket name and AWS_ENDPOINT_URL (a server "
        "that is not S3 answers 404 to everything)"
    )


class S3Result(Result):
    """Store values as objects in an S3 bucket (one PUT per write, so writes are atomic).

    Locations are object keys, normalised (``a/./b`` is ``a/b``); keys that are absolute or
    climb above the bucket (``..``) are refused.

    Args:
        bucket: the bucket name.
        boto3_kwargs: keyword arguments for the boto3 client (``region_name``,
            ``endpoint_url``, ...). By default boto3's standard configuration applies,
            including ``AWS_ENDPOINT_URL``.
        upload_options: extra ``put_object`` arguments (``ServerSideEncryption``, ...).
        **kwargs: ``Result`` arguments (``value``, ``location``, ``serializer``).

    Raises:
        MissingExtraError: (an ImportError) at construction when boto3 is not installed:
            ``pip install 'flowcore[aws]'``.
    """

    def __init__(
        self,
        bucket: str,
        boto3_kwargs: dict[str, Any] | None = None,
        upload_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        require_optional("S3Result", "boto3", "botocore")
        self.bucket = bucket
        self.boto3_kwargs = dict(boto3_kwargs or {})
        self.upload_options = dict(upload_options or {})
        super().__init__(**kwargs)

    @property
    def client(self) -> Any:
        """The boto3 S3 client (created on first use, shared in the process)."""
        client = self.__dict__.get("_client")
        if client is None:
            client = aws.get_boto_client("s3", **self.boto3_kwargs)
            self.__dict__["_client"] = client
        return client

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_client", None)
        return state

    def _describe_root(self) -> str:
        return f"s3://{self.bucket}/"

    @contextmanager
    def _boundary(self, operation: str, key: str) -> Iterator[None]:
        """Translate boto errors: a missing object becomes FileNotFoundError (which the
        primitives turn into False or a ResultStorageError), any other ResultStorageError."""
        botocore = import_optional("botocore.exceptions", "S3Result")
        try:
            yield
        except botocore.ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") in _MISSING_CODES:
                raise FileNotFoundError(f"s3://{self.bucket}/{key}") from exc
            raise ResultStorageError(
                f"S3Result: {operation} s3://{self.bucket}/{key} failed: "
                f"{error.get('Code')} {error.get('Message', '')}".rstrip()
            ) from exc
        except botocore.BotoCoreError as exc:
            raise ResultStorageError(
                f"S3Result: {operation} s3://{self.bucket}/{key} failed: {exc}"
            ) from exc

    def _call(self, operation: str, key: str, **kwargs: Any) -> Any:
        with self._boundary(operation, key):
            return getattr(self.client, operation)(Bucket=self.bucket, Key=key, **kwargs)

    def _exists(self, location: str) -> bool:
        try:
            self._call("head_object", location)
        except FileNotFoundError:
            self._missing(location)
            return False
        return True

    def _missing(self, key: str) -> None:
        """An object was not found: raise unless the bucket exists (asked once per bucket
        and process): a HEAD answers a bare 404 for a missing bucket too, and so does a
        server that is not S3 (a wrong ``AWS_ENDPOINT_URL``) for everything."""
        if self.bucket in _KNOWN_BUCKETS:
            return
        try:
            with self._boundary("find the bucket of", key):
                self.client.head_bucket(Bucket=self.bucket)
        except FileNotFoundError:
            raise ResultStorageError(_no_bucket(self.bucket, key)) from None
        except ResultStorageError as exc:
            code = getattr(exc.__cause__, "response", {}).get("Error", {}).get("Code")
            if code in _FORBIDDEN_CODES:  # (credentials that may read objects, not list
                _KNOWN_BUCKETS.add(str(self.bucket))  # the bucket: a miss, not asked again)
                return
            raise
        _KNOWN_BUCKETS.add(str(self.bucket))

    def _read_bytes(self, location: str) -> bytes:
        try:
            return self._call("get_object", location)["Body"].read()  # type: ignore[no-any-return]
        except FileNotFoundError as exc:
            raise ValueNotFoundError(f"S3Result: no object at {exc}") from exc

    def _write_bytes(self, location: str, data: bytes) -> None:
        try:
            self._call("put_object", location, Body=data, **self.upload_options)
        except FileNotFoundError:  # (a write finds no object missing: the bucket is)
            raise ResultStorageError(_no_bucket(self.bucket, location)) from None

    def _delete(self, location: str) -> bool:
        if not self._exists(location):
            return False
        self._call("delete_object", location)
        return True

    def _read_bytes_if_exists(self, location: str) -> bytes | None:
        try:
            return self._call("get_object", location)["Body"].read()  # type: ignore[no-any-return]
        except FileNotFoundError:
            self._missing(location)
            return None

    def _stat(self, location: str) -> tuple[int, datetime] | None:
        try:
            head = self._call("head_object", location)
        except FileNotFoundError:
            return None
        return int(head["ContentLength"]), head["LastModified"].astimezone(timezone.utc)

    def _list(self, prefix: str) -> list[str]:
        with self._boundary("list_objects_v2", prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            return [item["Key"] for page in pages for item in page.get("Contents", [])]
