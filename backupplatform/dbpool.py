"""The ASGI process's bounded PostgreSQL connection pool (settings ``DB_POOL_*``).

Django opens one connection per thread; under ASGI every request runs its sync code in a
fresh thread, so with persistent connections the count grows with the load until PostgreSQL
answers "too many clients already". Django's psycopg pool (``OPTIONS["pool"]``, Django 5.1+)
hands each request a connection from a bounded set and takes it back when the request ends.
Only the ASGI server uses it: Celery's prefork workers fork after Django is set up, and a
pool (with its own threads) does not survive a fork.
"""

from __future__ import annotations

import logging

from django.conf import settings

logger = logging.getLogger(__name__)


def use_pool() -> bool:
    """Switch the default PostgreSQL connection to a pool, before any connection is made."""
    db = settings.DATABASES["default"]
    if not getattr(settings, "DB_POOL_ASGI", False) or db.get("ENGINE") != "django.db.backends.postgresql":
        return False
    db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": settings.DB_POOL_MIN_SIZE,
        "max_size": settings.DB_POOL_MAX_SIZE,
        "timeout": settings.DB_POOL_TIMEOUT,
    }
    db["CONN_MAX_AGE"] = 0  # required with a pool: the pool keeps connections, not the threads
    logger.info("PostgreSQL connection pool: %s-%s connections", settings.DB_POOL_MIN_SIZE, settings.DB_POOL_MAX_SIZE)
    return True
