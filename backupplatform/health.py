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

The heartbeats live in Redis (a hash of worker name -> last beat, and one key each for beat
and the reaper) under the cache key prefix. Writing one never fails the process that
writes it: a heartbeat that cannot be written is simply missing, which is what the check
is for. The body holds ages and counts only (no host names, no error texts with
addresses), so the route can stay unauthenticated for monitoring (api-layer.md "Public:
No authentication (health check only)").
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from functools import lru_cache
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)

#: Heartbeats older than this are removed from the worker hash (seconds).
FORGET_AFTER = 24 * 3600


def heartbeat_interval() -> float:
    return float(getattr(settings, "HEALTH_HEARTBEAT_INTERVAL", 10))


def thresholds() -> dict[str, int]:
    return {
        "worker_stale_after_seconds": int(getattr(settings, "HEALTH_WORKER_STALE_AFTER", 60)),
        "beat_stale_after_seconds": int(getattr(settings, "HEALTH_BEAT_STALE_AFTER", 60)),
        "reaper_stale_after_seconds": int(getattr(settings, "HEALTH_REAPER_STALE_AFTER", 180)),
        "operation_pending_grace_seconds": int(getattr(settings, "OPERATION_PENDING_GRACE", 300)),
    }


def _key(name: str) -> str:
    prefix = settings.CACHES.get("default", {}).get("KEY_PREFIX") or "bp"
    return f"{prefix}:health:{name}"


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30)


def client() -> redis.Redis:
    return _client(settings.REDIS_URL)


# --- writers (worker, beat, reaper) -------------------------------------------------------------


def mark_worker(hostname: str, **info: Any) -> None:
    """Record that the worker ``hostname`` is alive (its event loop runs)."""
    value = json.dumps({"at": time.time(), "pid": os.getpid(), **info})
    try:
        client().hset(_key("workers"), hostname, value)
    except redis.RedisError as exc:
        logger.debug("worker heartbeat not written: %s", exc)


def forget_worker(hostname: str) -> None:
    """A worker that stops cleanly removes its heartbeat (a killed one ages out)."""
    try:
        client().hdel(_key("workers"), hostname)
    except redis.RedisError as exc:
        logger.debug("worker heartbeat not removed: %s", exc)


def mark_beat() -> None:
    _mark("beat")


def mark_reaper_run() -> None:
    _mark("reaper")


def _mark(name: str) -> None:
    try:
        client().set(_key(name), str(time.time()), ex=FORGET_AFTER)
    except redis.RedisError as exc:
        logger.debug("%s heartbeat not written: %s", name, exc)


# --- checks ----------------------------------------------------------------------------------------


def _age(at: float | None, now: float) -> float | None:
    return None if at is None else round(max(0.0, now - at), 1)


def check_database() -> dict[str, Any]:
    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "down"; the class name is enough to act on
        from backups.services.operations import db_reconnect

        db_reconnect()
        return {"status": "down", "error": exc.__class__.__name__}
    return {"status": "up", "latency_ms": round((time.monotonic() - started) * 1000, 1)}


def check_redis() -> dict[str, Any]:
    started = time.monotonic()
    try:
        client().ping()
    except redis.RedisError as exc:
        return {"status": "down", "error": exc.__class__.__name__}
    return {"status": "up", "latency_ms": round((time.monotonic() - started) * 1000, 1)}


def check_workers(now: float) -> dict[str, Any]:
    stale_after = thresholds()["worker_stale_after_seconds"]
    try:
        entries = client().hgetall(_key("workers"))
    except redis.RedisError:
        return {"status": "unknown", "alive": 0, "last_seen_seconds": None}
    seen: list[float] = []
    forgotten = []
    for name, raw in entries.items():
        try:
            at = float(json.loads(raw)["at"])
        except (ValueError, KeyError, TypeError):
            forgotten.append(name)
            continue
        if now - at > FORGET_AFTER:
            forgotten.append(name)
        else:
            seen.append(at)
    if forgotten:
        with contextlib.suppress(redis.RedisError):
            client().hdel(_key("workers"), *forgotten)
    alive = [at for at in seen if now - at <= stale_after]
    return {"status": "up" if alive else "down", "alive": len(alive),
            "last_seen_seconds": _age(max(seen) if seen else None, now)}


def check_mark(name: str, stale_after: int, now: float) -> dict[str, Any]:
    try:
        raw = client().get(_key(name))
    except redis.RedisError:
        return {"status": "unknown", "last_seen_seconds": None}
    at = float(raw) if raw else None
    up = at is not None and now - at <= stale_after
    return {"status": "up" if up else "down", "last_seen_seconds": _age(at, now)}


def check_operations() -> dict[str, Any]:
    from backups.operation_selectors import operations_stuck_pending

    try:
        stuck = list(operations_stuck_pending().values_list("created_at", flat=True)[:1000])
    except Exception as exc:  # the database check reports the cause
        return {"status": "unknown", "error": exc.__class__.__name__}
    from django.utils import timezone

    oldest = (timezone.now() - stuck[0]).total_seconds() if stuck else None
    return {"status": "down" if stuck else "up", "stuck_pending": len(stuck),
            "oldest_pending_seconds": round(oldest, 1) if oldest is not None else None}


def health_report() -> tuple[bool, dict[str, Any]]:
    """``(healthy, body)`` of ``GET /health/``."""
    now = time.time()
    limits = thresholds()
    checks = {
        "database": check_database(),
        "redis": check_redis(),
        "worker": check_workers(now),
        "beat": check_mark("beat", limits["beat_stale_after_seconds"], now),
        "reaper": check_mark("reaper", limits["reaper_stale_after_seconds"], now),
    }
    checks["operations"] = (check_operations() if checks["database"]["status"] == "up"
                            else {"status": "unknown"})
    healthy = all(check["status"] == "up" for check in checks.values())
    return healthy, {"status": "ok" if healthy else "unhealthy", "checks": checks, "thresholds": limits}


@require_safe
@never_cache
def health(request: HttpRequest) -> JsonResponse:
    """200 when every check is up, 503 otherwise (body: each check with ages and counts)."""
    healthy, body = health_report()
    return JsonResponse(body, status=200 if healthy else 503)
