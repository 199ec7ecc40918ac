"""boto3 clients for S3 results: created lazily, cached per process, never pickled.

Clients use boto3's standard configuration (the credential chain, ``AWS_ENDPOINT_URL``,
``AWS_DEFAULT_REGION``), so pointing flowcore at MinIO or a local S3 server needs no
flowcore setting. Credentials in ``flowcore.context.secrets["AWS_CREDENTIALS"]``
(``{"ACCESS_KEY": ..., "SECRET_ACCESS_KEY": ..., "SESSION_TOKEN": ...}``) take
precedence, as in Prefect 1.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from flowcore.utilities import context as _context
from flowcore.utilities._optional import import_optional

__all__ = ["get_boto_client"]

_CLIENTS: dict[tuple[Any, ...], Any] = {}
_LOCK = threading.Lock()


def get_boto_client(resource: str, credentials: dict[str, str] | None = None, **kwargs: Any) -> Any:
    """A cached boto3 client for ``resource`` (e.g. ``"s3"``); ``kwargs`` go to ``client()``."""
    boto3 = import_optional("boto3", f"A boto3 '{resource}' client")
    if credentials is None:
        credentials = (_context.current().get("secrets") or {}).get("AWS_CREDENTIALS") or {}
    key = (
        os.getpid(),
        resource,
        os.environ.get("AWS_ENDPOINT_URL"),
        repr(sorted(credentials.items())),
        repr(sorted(kwargs.items())),
    )
    client = _CLIENTS.get(key)
    if client is None:
        with _LOCK:
            client = _CLIENTS.get(key)
            if client is None:
                session = boto3.session.Session(
                    aws_access_key_id=credentials.get("ACCESS_KEY"),
                    aws_secret_access_key=credentials.get("SECRET_ACCESS_KEY"),
                    aws_session_token=credentials.get("SESSION_TOKEN"),
                )
                client = session.client(resource, **kwargs)
                _CLIENTS[key] = client
    return client
