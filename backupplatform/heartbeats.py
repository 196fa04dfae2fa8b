"""Heartbeats of the platform's processes, in Redis: each Celery worker (from its event loop),
beat (its ticks) and the reaper (its runs) record when they last showed a sign of life.

Read by ``GET /health/`` (``backupplatform.health``) and by the console's status
(``backups.config_selectors.service_liveness``). Writing one never fails the process that writes
it: a heartbeat that cannot be written is simply missing, which is what the checks are for.
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
    return {
        "status": "up" if alive else "down",
        "alive": len(alive),
        "last_seen_seconds": _age(max(seen) if seen else None, now),
    }


def check_mark(name: str, stale_after: int, now: float) -> dict[str, Any]:
    try:
        raw = client().get(_key(name))
    except redis.RedisError:
        return {"status": "unknown", "last_seen_seconds": None}
    at = float(raw) if raw else None
    up = at is not None and now - at <= stale_after
    return {"status": "up" if up else "down", "last_seen_seconds": _age(at, now)}
