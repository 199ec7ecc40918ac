"""google-cloud-storage clients for GCS results: created lazily, cached per process.

Clients use the library's standard configuration: application default credentials, or
``STORAGE_EMULATOR_HOST`` for an emulator (anonymous credentials), so tests and users
point flowcore at fake-gcs-server the same way.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from flowcore.utilities._optional import import_optional

__all__ = ["get_storage_client"]

_CLIENTS: dict[tuple[Any, ...], Any] = {}
_LOCK = threading.Lock()


def get_storage_client(project: str | None = None, credentials: Any = None) -> Any:
    """A cached ``google.cloud.storage.Client``."""
    storage = import_optional("google.cloud.storage", "A Google Cloud Storage client")
    key = (os.getpid(), project, id(credentials), os.environ.get("STORAGE_EMULATOR_HOST"))
    client = _CLIENTS.get(key)
    if client is None:
        with _LOCK:
            client = _CLIENTS.get(key)
            if client is None:
                client = storage.Client(project=project, credentials=credentials)
                _CLIENTS[key] = client
    return client
