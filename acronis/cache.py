"""The Acronis integration's cache: per tenant, in the shared Django cache, single-flight.

Layout of keys (all under the Django cache's own ``KEY_PREFIX``)::

    acronis:t<tenant_id>:gen                     generation token of the tenant's data
    acronis:t<tenant_id>:<gen>:<name>            {"data", "stored_at", "ttl"}
    acronis:t<tenant_id>:<gen>:<name>:lock       held by the one request fetching <name>
    acronis:t<tenant_id>:<gen>:<name>:failed     the holder's error, for its waiters (5 s)
    acronis:t<tenant_id>:token:...               the client's OAuth tokens (acronis/client/)
    acronis:t<tenant_id>:upstream:...            its circuit breaker and rate-limit backoff
    acronis:t<tenant_id>:config                  the public part of the config (no timeout)

A config change calls ``invalidate_tenant``: it replaces the generation token, so every
cached value of the tenant becomes unreachable at once (old entries expire on their TTL)
and the config entry is deleted. Other tenants' keys are never touched.

``cached_fetch`` is single-flight across threads and processes, like the client's token:
on a miss, ``cache.add`` takes a lock; the holder loads and stores the value, the others
poll the cache. If the holder fails, its error is kept for a few seconds so the waiters
fail with it instead of each calling Acronis again. When that error says Acronis could
not be reached at all (connection, timeout, network), it is served for those seconds to
every new request too: a dashboard opening five routes then waits for one failure, not
five.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache

from acronis.errors import AcronisError, AcronisTimeoutError

logger = logging.getLogger(__name__)

# Seed, "Caching".
AGENTS_TTL = 300
WORKLOADS_TTL = 300
ASSOCIATIONS_TTL = 300
BACKUPS_TTL = 120

LOCK_TTL = 60  # longer than any one load (client deadline 30 s per call)
WAIT_TIMEOUT = 45.0
POLL_INTERVAL = 0.02
FAILURE_TTL = 5


@dataclass(frozen=True)
class CacheInfo:
    """The seed's ``cache_info``: served from cache, its age and remaining life (seconds)."""

    cached: bool
    cache_age: int
    expires_in: int

    def as_dict(self) -> dict[str, Any]:
        return {"cached": self.cached, "cache_age": self.cache_age, "expires_in": self.expires_in}


def tenant_prefix(tenant_id: int) -> str:
    """Namespace of one tenant's keys; also the client's ``cache_key_prefix``."""
    return f"acronis:t{tenant_id}"


def _generation(tenant_id: int) -> str:
    key = f"{tenant_prefix(tenant_id)}:gen"
    gen = cache.get(key)
    if gen is None:
        cache.add(key, uuid.uuid4().hex[:12], None)
        gen = cache.get(key)
    return gen


def data_key(tenant_id: int, name: str) -> str:
    return f"{tenant_prefix(tenant_id)}:{_generation(tenant_id)}:{name}"


def invalidate_tenant(tenant_id: int) -> None:
    """Forget every cached value of the tenant (config change, config delete)."""
    cache.set(f"{tenant_prefix(tenant_id)}:gen", uuid.uuid4().hex[:12], None)
    cache.delete(config_key(tenant_id))


def config_key(tenant_id: int) -> str:
    return f"{tenant_prefix(tenant_id)}:config"


def _info(entry: dict, cached: bool) -> CacheInfo:
    age = max(0.0, time.time() - float(entry["stored_at"]))
    return CacheInfo(cached=cached, cache_age=int(age), expires_in=max(0, round(entry["ttl"] - age)))


def _raise_stored(failure: dict) -> None:
    raise AcronisError(
        failure.get("message"),
        code=failure.get("code"),
        http_status=failure.get("http_status"),
        help=failure.get("help"),
        technical=failure.get("technical"),
        retry_after=failure.get("retry_after"),
    )


def _failure(exc: AcronisError) -> dict[str, Any]:
    # ``unreachable`` is set by the transport when nothing answered; an error raised by an
    # open circuit breaker is not, so it is re-checked (cheaply) and the half-open probe
    # is not hidden behind this memory.
    return {
        "message": exc.message,
        "code": exc.code,
        "http_status": exc.http_status,
        "help": exc.help,
        "technical": exc.technical,
        "retry_after": exc.retry_after,
        "unreachable": exc.unreachable,
    }


def store(tenant_id: int, name: str, data: Any, ttl: int) -> CacheInfo:
    entry = {"data": data, "stored_at": time.time(), "ttl": ttl}
    cache.set(data_key(tenant_id, name), entry, ttl)
    return _info(entry, False)


def cached_fetch(
    tenant_id: int, name: str, ttl: int, loader: Callable[[], Any], *, refresh: bool = False
) -> tuple[Any, CacheInfo]:
    """``(value, cache_info)``: the cached value, or ``loader()`` run by exactly one caller.

    ``refresh=True`` (the poller) loads even when a value is cached, still single-flight.
    """
    key = data_key(tenant_id, name)
    lock_key, failed_key = f"{key}:lock", f"{key}:failed"
    if not refresh:
        entry = cache.get(key)
        if isinstance(entry, dict):
            return entry["data"], _info(entry, True)
        failure = cache.get(failed_key)
        if isinstance(failure, dict) and failure.get("unreachable"):
            _raise_stored(failure)
    owner = uuid.uuid4().hex
    deadline = time.monotonic() + WAIT_TIMEOUT
    while True:
        if cache.add(lock_key, owner, LOCK_TTL):
            try:
                if not refresh:
                    entry = cache.get(key)  # a holder may have just finished
                    if isinstance(entry, dict):
                        return entry["data"], _info(entry, True)
                try:
                    data = loader()
                except AcronisError as exc:
                    cache.set(failed_key, _failure(exc), FAILURE_TTL)
                    raise
                cache.delete(failed_key)
                return data, store(tenant_id, name, data, ttl)
            finally:
                if cache.get(lock_key) == owner:
                    cache.delete(lock_key)
        # Someone else is loading: wait for their value (or their failure).
        while time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL)
            entry = cache.get(key)
            if isinstance(entry, dict) and not refresh:
                return entry["data"], _info(entry, True)
            failure = cache.get(failed_key)
            if isinstance(failure, dict):
                _raise_stored(failure)
            if cache.get(lock_key) is None:
                if isinstance(entry, dict):  # a refresh by someone else just finished
                    return entry["data"], _info(entry, True)
                break  # the holder gave up without storing: try ourselves
        else:
            raise AcronisTimeoutError(technical=f"timed out waiting for another worker to load {name}")


def config_get(tenant_id: int) -> Any:
    return cache.get(config_key(tenant_id))


def config_set(tenant_id: int, value: Any) -> None:
    cache.set(config_key(tenant_id), value, None)  # until changed
