"""The Redis cache with one connection pool per process (``CACHES["default"]``).

Django builds a cache object per thread, and each ``RedisCache`` object its own client with
its own connection pools. Under ASGI every request runs its sync code in a fresh thread, so
every request opened (and handshook) a new Redis connection: on a list page that reads a
cached total, the connection cost more than the rest of the page's database work. Here every
cache object of a process shares one client, whose redis-py pools are thread-safe and reset
themselves in a forked child (Celery's prefork workers).
"""

from __future__ import annotations

import threading

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.utils.functional import cached_property

_clients: dict[tuple, RedisCacheClient] = {}
_lock = threading.Lock()


class SharedRedisCache(RedisCache):
    @cached_property
    def _cache(self) -> RedisCacheClient:
        key = (tuple(self._servers), repr(sorted(self._options.items())))
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = self._class(self._servers, **self._options)
        return client
