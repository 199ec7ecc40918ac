"""Locks in a Redis server, for processes on any host that reaches it.

One Redis string per held key::

    <key_prefix><key>  =  <holder>        with a PX expiry of hold_timeout (none if None)

* acquire: ``SET name holder NX PX ms`` (atomic create-if-absent); if that fails, ``GET``
  says whether the holder already holds it (re-entry); otherwise poll with a pause growing
  from 5 ms to 0.1 s.
* renew: a Lua script sets the key's expiry to hold_timeout from now (``PEXPIRE``; for
  None, ``PERSIST``) only if its value is still the holder; an expired or taken key is
  left alone and the answer is False.
* release: a Lua script deletes the key only if its value is still the holder, so a holder
  whose lock expired and was taken by someone else cannot delete the new lock.
* expiry: Redis deletes the key when PX runs out, so a holder that died (or hung) frees the
  key after its hold timeout; Redis cannot see a dead holder sooner.

The redis-py client is created on first use (``pip install 'flowcore[redis]'``) and is not
pickled: the manager pickles by its constructor arguments and the copy (on a Dask worker,
say) opens its own connection.
"""

from __future__ import annotations

import math
import threading
from typing import Any

from flowcore.locking.base import DEFAULT_HOLD_TIMEOUT, LockManager, poll
from flowcore.utilities._optional import import_optional

__all__ = ["RedisLockManager"]

# KEYS[1]: the lock's Redis key; ARGV[1]: the holder. Deletes only the holder's own lock.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS[1]: the lock's Redis key; ARGV[1]: the holder; ARGV[2]: the new expiry in ms, or ""
# for none. Renews only the holder's own, unexpired lock; 1 if it did, else 0.
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
end
if ARGV[2] == '' then
    redis.call('PERSIST', KEYS[1])
    return 1
end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""


def _px(hold: float | None) -> int | None:
    """A hold timeout in whole milliseconds (at least 1), as Redis takes it."""
    return None if hold is None else max(1, math.ceil(hold * 1000))


def _text(value: Any) -> str | None:
    return value.decode("utf-8") if isinstance(value, bytes) else value


class RedisLockManager(LockManager):
    """Locks shared by every process that reaches one Redis server.

    Args:
        host, port, db, username, password, ssl: where and how to connect (redis-py's
            ``redis.Redis`` arguments).
        client_kwargs: further ``redis.Redis`` keyword arguments (timeouts, certificates...).
        default_hold_timeout: seconds until an unreleased lock expires when ``acquire_lock``
            is given no ``hold_timeout``; None: never (a crashed holder's key then stays until
            it is deleted by hand).
        key_prefix: prepended to every lock key in Redis.

    Raises:
        MissingExtraError: redis-py is not installed (an ``ImportError``).
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 6379,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        ssl: bool = False,
        client_kwargs: dict[str, Any] | None = None,
        default_hold_timeout: float | None = DEFAULT_HOLD_TIMEOUT,
        key_prefix: str = "flowcore-lock:",
    ) -> None:
        super().__init__(default_hold_timeout)
        import_optional("redis", "RedisLockManager")
        self.host = host
        self.port = port
        self.db = db
        self.username = username
        self.password = password
        self.ssl = ssl
        self.client_kwargs = dict(client_kwargs or {})
        self.key_prefix = key_prefix
        self._client: Any = None
        self._release: Any = None
        self._renew: Any = None
        self._client_lock = threading.Lock()

    @property
    def client(self) -> Any:
        """The ``redis.Redis`` client, created on first use."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    redis = import_optional("redis", "RedisLockManager")
                    client = redis.Redis(
                        host=self.host,
                        port=self.port,
                        db=self.db,
                        username=self.username,
                        password=self.password,
                        ssl=self.ssl,
                        **self.client_kwargs,
                    )
                    self._release = client.register_script(_RELEASE)
                    self._renew = client.register_script(_RENEW)
                    self._client = client
        return self._client

    # -- the contract ------------------------------------------------------------------

    def acquire_lock(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        px = _px(self._hold_seconds(hold_timeout))
        name = self.key_prefix + key

        def attempt() -> bool:
            if self.client.set(name, holder, nx=True, px=px):
                return True
            return _text(self.client.get(name)) == holder

        return poll(attempt, acquire_timeout)

    def renew_lock(self, key: str, holder: str, hold_timeout: float | None = None) -> bool:
        px = _px(self._hold_seconds(hold_timeout))
        client = self.client
        args = [holder, "" if px is None else str(px)]
        return bool(self._renew(keys=[self.key_prefix + key], args=args, client=client))

    def release_lock(self, key: str, holder: str) -> None:
        client = self.client
        if not self._release(keys=[self.key_prefix + key], args=[holder], client=client):
            raise ValueError(f"No lock on key {key!r} is held by holder {holder!r}")

    def is_locked(self, key: str) -> bool:
        return bool(self.client.exists(self.key_prefix + key))

    def is_lock_holder(self, key: str, holder: str) -> bool:
        return _text(self.client.get(self.key_prefix + key)) == holder

    def wait_for_lock(self, key: str, timeout: float | None = None) -> bool:
        return poll(lambda: not self.is_locked(key), timeout)

    def close(self) -> None:
        """Close this manager's connections to Redis (its next call opens new ones). Locks
        it holds are not released: they expire, or another call releases them."""
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- identity ----------------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"RedisLockManager(host={self.host!r}, port={self.port!r}, db={self.db!r}, "
            f"ssl={self.ssl!r}, default_hold_timeout={self.default_hold_timeout!r})"
        )

    def __reduce__(self) -> tuple[type[RedisLockManager], tuple[Any, ...]]:
        return (
            type(self),
            (
                self.host,
                self.port,
                self.db,
                self.username,
                self.password,
                self.ssl,
                self.client_kwargs,
                self.default_hold_timeout,
                self.key_prefix,
            ),
        )
