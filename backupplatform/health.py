"""``GET /health/``: is the platform able to do its work right now?

Checks (each ``up`` or ``down``; the response is 200 when all are up, 503 otherwise):

- ``database``: a query on the platform's database.
- ``redis``: ``PING`` to the Redis that is broker, cache and channel layer.
- ``worker``: at least one Celery worker wrote its heartbeat within
  ``HEALTH_WORKER_STALE_AFTER`` seconds (default 60; each worker writes every
  ``HEALTH_HEARTBEAT_INTERVAL`` = 10 s from its event loop, so a worker stuck reconnecting
  to the broker stops beating too).
- ``beat``: the beat scheduler ticked within ``HEALTH_BEAT_STALE_AFTER`` seconds (default
  60; it ticks at least every 5 s and records a tick at most every 10 s).
- ``reaper``: the reaper ran within ``HEALTH_REAPER_STALE_AFTER`` seconds (default 180;
  beat sends it every 60 s and a worker runs it: down means beat or every worker is gone,
  and operations of dead workers stay ``running``).
- ``operations``: no operation is ``pending`` far longer than the queue explains
  (``backups.operation_selectors.operations_stuck_pending``).

The heartbeats live in Redis (``backupplatform.heartbeats``: a hash of worker name -> last
beat, and one key each for beat and the reaper) under the cache key prefix. The body holds ages and counts only (no host names, no error texts with
addresses), so the route can stay unauthenticated for monitoring (api-layer.md "Public:
No authentication (health check only)").
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from backupplatform import heartbeats
from backups.operation_selectors import operations_stuck_pending
from backups.services.operations import db_reconnect

logger = logging.getLogger(__name__)


def check_database() -> dict[str, Any]:
    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "down"; the class name is enough to act on
        db_reconnect()
        return {"status": "down", "error": exc.__class__.__name__}
    return {"status": "up", "latency_ms": round((time.monotonic() - started) * 1000, 1)}


def check_redis() -> dict[str, Any]:
    started = time.monotonic()
    try:
        heartbeats.client().ping()
    except redis.RedisError as exc:
        return {"status": "down", "error": exc.__class__.__name__}
    return {"status": "up", "latency_ms": round((time.monotonic() - started) * 1000, 1)}


def check_operations() -> dict[str, Any]:

    try:
        stuck = list(operations_stuck_pending().values_list("created_at", flat=True)[:1000])
    except Exception as exc:  # the database check reports the cause
        return {"status": "unknown", "error": exc.__class__.__name__}
    from django.utils import timezone

    oldest = (timezone.now() - stuck[0]).total_seconds() if stuck else None
    return {
        "status": "down" if stuck else "up",
        "stuck_pending": len(stuck),
        "oldest_pending_seconds": round(oldest, 1) if oldest is not None else None,
    }


def health_report() -> tuple[bool, dict[str, Any]]:
    """``(healthy, body)`` of ``GET /health/``."""
    now = time.time()
    limits = heartbeats.thresholds()
    checks = {
        "database": check_database(),
        "redis": check_redis(),
        "worker": heartbeats.check_workers(now),
        "beat": heartbeats.check_mark("beat", limits["beat_stale_after_seconds"], now),
        "reaper": heartbeats.check_mark("reaper", limits["reaper_stale_after_seconds"], now),
    }
    checks["operations"] = check_operations() if checks["database"]["status"] == "up" else {"status": "unknown"}
    healthy = all(check["status"] == "up" for check in checks.values())
    return healthy, {"status": "ok" if healthy else "unhealthy", "checks": checks, "thresholds": limits}


@require_safe
@never_cache
def health(request: HttpRequest) -> JsonResponse:
    """200 when every check is up, 503 otherwise (body: each check with ages and counts)."""
    healthy, body = health_report()
    return JsonResponse(body, status=200 if healthy else 503)
