"""``GCSResult``: values stored as Google Cloud Storage blobs (extra ``gcp``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from flowcore.engine.result.base import Result
from flowcore.exceptions import ResultStorageError, ValueNotFoundError
from flowcore.utilities import gcp
from flowcore.utilities._optional import import_optional, require_optional

__all__ = ["GCSResult"]

_KNOWN_BUCKETS: set[str] = set()  # buckets found to exist, in this process


class GCSResult(Result):
    """Store values as blobs in a GCS bucket (a blob appears only when its upload completes).

    Locations are blob names, normalised (``a/./b`` is ``a/b``); names that are absolute or
    climb above the bucket (``..``) are refused.

    Args:
        bucket: the bucket name.
        **kwargs: ``Result`` arguments (``value``, ``location``, ``serializer``).

    The client uses google-cloud-storage's standard configuration: application default
    credentials, or ``STORAGE_EMULATOR_HOST`` for an emulator.

    Raises:
        MissingExtraError: (an ImportError) at construction when google-cloud-storage is
            not installed: ``pip install 'flowcore[gcp]'``.
    """

    def __init__(self, bucket: str | None = None, **kwargs: Any) -> None:
        require_optional("GCSResult", "google.cloud.storage", "google.api_core")
        self.bucket = bucket
        super().__init__(**kwargs)

    @property
    def gcs_bucket(self) -> Any:
        """The ``google.cloud.storage.Bucket`` (created on first use)."""
        found = self.__dict__.get("_gcs_bucket")
        if found is None:
            if not self.bucket:
                raise ValueError("GCSResult needs a bucket: GCSResult(bucket='my-bucket')")
            found = gcp.get_storage_client().bucket(self.bucket)
            self.__dict__["_gcs_bucket"] = found
        return found

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_gcs_bucket", None)
        return state

    def _describe_root(self) -> str:
        return f"gs://{self.bucket}/"

    @contextmanager
    def _boundary(self, operation: str, location: str) -> Iterator[None]:
        """Translate google-cloud errors: a missing blob or bucket becomes FileNotFoundError
        (which the primitives turn into False or a ResultStorageError); any other failure
        to reach the bucket (an API error, retries that ran out, credentials that cannot
        be found or are refused, a connection that failed) a ResultStorageError."""
        errors = import_optional("google.api_core.exceptions", "GCSResult")
        auth = import_optional("google.auth.exceptions", "GCSResult")
        try:
            yield
        except errors.NotFound as exc:
            raise FileNotFoundError(f"gs://{self.bucket}/{location}") from exc
        except (errors.GoogleAPIError, auth.GoogleAuthError, ConnectionError, OSError) as exc:
            raise ResultStorageError(
                f"GCSResult: {operation} gs://{self.bucket}/{location} failed: {exc!r}; check "
                "the bucket, the credentials (GOOGLE_APPLICATION_CREDENTIALS) and, for an "
                "emulator, STORAGE_EMULATOR_HOST"
            ) from exc

    def _call(self, operation: str, location: str, *args: Any) -> Any:
        with self._boundary(operation, location):
            return getattr(self.gcs_bucket.blob(location), operation)(*args)

    def _missing(self, location: str) -> None:
        """A blob was not found: raise unless the bucket exists (asked once per bucket and
        process), since a missing bucket makes every blob look missing."""
        if self.bucket in _KNOWN_BUCKETS:
            return
        errors = import_optional("google.api_core.exceptions", "GCSResult")
        try:
            with self._boundary("find the bucket of", location):
                found = self.gcs_bucket.exists()
        except ResultStorageError as exc:
            if isinstance(exc.__cause__, errors.Forbidden):  # (credentials that may read
                _KNOWN_BUCKETS.add(str(self.bucket))  # objects, not buckets: a plain miss,
                return  # not asked again)
            raise
        if not found:
            raise ResultStorageError(
                f"GCSResult: no bucket {self.bucket!r} (looking for gs://{self.bucket}/"
                f"{location}); create it, or give GCSResult(bucket=...) an existing one"
            )
        _KNOWN_BUCKETS.add(str(self.bucket))

    def _exists(self, location: str) -> bool:
        if self._call("exists", location):
            return True
        self._missing(location)
        return False

    def _read_bytes(self, location: str) -> bytes:
        try:
            return self._call("download_as_bytes", location)  # type: ignore[no-any-return]
        except FileNotFoundError as exc:
            raise ValueNotFoundError(f"GCSResult: no blob at {exc}") from exc

    def _write_bytes(self, location: str, data: bytes) -> None:
        try:
            self._call("upload_from_string", location, data)
        except FileNotFoundError as exc:
            raise ResultStorageError(
                f"GCSResult: cannot write {exc}: no bucket {self.bucket!r}"
            ) from exc

    def _delete(self, location: str) -> bool:
        try:
            self._call("delete", location)
        except FileNotFoundError:
            return False
        return True

    def _read_bytes_if_exists(self, location: str) -> bytes | None:
        try:
            return self._call("download_as_bytes", location)  # type: ignore[no-any-return]
        except FileNotFoundError:
            self._missing(location)
            return None

    def _stat(self, location: str) -> tuple[int, datetime] | None:
        try:
            with self._boundary("get_blob", location):
                blob = self.gcs_bucket.get_blob(location)
        except FileNotFoundError:
            return None
        if blob is None:
            return None
        return int(blob.size), blob.updated.astimezone(timezone.utc)

    def _list(self, prefix: str) -> list[str]:
        try:
            with self._boundary("list_blobs", prefix):
                return [blob.name for blob in self.gcs_bucket.list_blobs(prefix=prefix)]
        except FileNotFoundError as exc:
            raise ResultStorageError(
                f"GCSResult: cannot list {exc}: no bucket {self.bucket!r}"
            ) from exc
