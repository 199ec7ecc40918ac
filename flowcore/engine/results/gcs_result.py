"""``GCSResult``: values stored as Google Cloud Storage blobs (extra ``gcp``)."""

from __future__ import annotations

from typing import Any

from flowcore.engine.result.base import Result
from flowcore.exceptions import ResultStorageError
from flowcore.utilities import gcp
from flowcore.utilities._optional import import_optional

__all__ = ["GCSResult"]


class GCSResult(Result):
    """Store values as blobs in a GCS bucket (a blob appears only when its upload completes).

    Args:
        bucket: the bucket name.
        **kwargs: ``Result`` arguments (``value``, ``location``, ``serializer``).

    The client uses google-cloud-storage's standard configuration: application default
    credentials, or ``STORAGE_EMULATOR_HOST`` for an emulator.
    """

    def __init__(self, bucket: str | None = None, **kwargs: Any) -> None:
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

    def _call(self, operation: str, location: str, *args: Any) -> Any:
        errors = import_optional("google.api_core.exceptions", "GCSResult")
        try:
            return getattr(self.gcs_bucket.blob(location), operation)(*args)
        except errors.NotFound as exc:
            raise ResultStorageError(f"GCSResult: no blob at gs://{self.bucket}/{location}") from exc
        except errors.GoogleAPICallError as exc:
            raise ResultStorageError(
                f"GCSResult: {operation} gs://{self.bucket}/{location} failed: {exc}"
            ) from exc

    def _exists(self, location: str) -> bool:
        return bool(self._call("exists", location))

    def _read_bytes(self, location: str) -> bytes:
        return self._call("download_as_bytes", location)  # type: ignore[no-any-return]

    def _write_bytes(self, location: str, data: bytes) -> None:
        self._call("upload_from_string", location, data)
