"""system-backup-recovery.rst "WebSocket API": ``/ws/backup/updates``, ``/ws/backup/notifications``
and ``/ws/backup/health``.

They are ``tenants.consumers.TenantEventConsumer`` (authentication, tenant scoping, losing
access) narrowed to the seed's message types. The engines publish their own events
(``backups.progress.progress_event``, ``backup_completed``...); each consumer reshapes them
into the seed's fields from the event alone (no database work per event).

- updates: ``backup_progress``, ``restore_progress``, ``import_progress``, ``sync_progress``,
  ``cleanup_progress``.
- notifications: ``backup_completed``, ``backup_failed``, ``restore_completed`` (and
  ``restore_failed``), ``storage_alert``, ``schedule_event``.
- health: ``storage_health``, ``service_status``, ``connectivity_status`` on connect, when
  they change (checked every ``CONSOLE_WS_HEALTH_POLL`` seconds, 5) and every
  ``CONSOLE_WS_HEALTH_INTERVAL`` seconds (30) in any case. The figures are those of
  ``GET /status``, computed at most once per poll interval per tenant (cached), not per socket.

"Rate Limiting": at most ``CONSOLE_WS_MAX_CONNECTIONS`` (3) of these sockets per user (or
API key) at once, counted in Redis so the limit holds across processes; the next one is
accepted and closed at once with code 4429. Other close codes: 4401 not authenticated, 4403
no access (or access lost), 4400 a health socket of a user in several workspaces that named
none (``?workspace=<slug>``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from functools import lru_cache
from typing import Any

import redis
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.cache import cache

from backupplatform import humanize
from schedules.status import system_status
from tenants.consumers import TenantEventConsumer
from tenants.models import Tenant

from .status import health_messages

logger = logging.getLogger(__name__)

TOO_MANY_CONNECTIONS = 4429
WORKSPACE_REQUIRED = 4400
#: A socket refreshes its place every SLOT_REFRESH seconds; a place older than SLOT_TTL is
#: a process that died without saying goodbye, and no longer counts.
SLOT_REFRESH = 30
SLOT_TTL = 90


def max_connections() -> int:
    return int(getattr(settings, "CONSOLE_WS_MAX_CONNECTIONS", 3))


# --- connection limit -----------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def _slots_key(principal: str) -> str:
    prefix = settings.CACHES.get("default", {}).get("KEY_PREFIX") or "bp"
    return f"{prefix}:ws:console:{principal}"


def slot_take(principal: str, member: str, *, limit: int) -> bool:
    """Count this socket among the principal's; ``False`` (and not counted) past ``limit``.
    One MULTI/EXEC, so two sockets opening at once are counted one after the other."""
    key, now = _slots_key(principal), time.time()
    client = _client(settings.REDIS_URL)
    try:
        pipe = client.pipeline(transaction=True)
        pipe.zremrangebyscore(key, 0, now - SLOT_TTL)
        pipe.zadd(key, {member: now})
        pipe.zcard(key)
        pipe.expire(key, SLOT_TTL)
        count = pipe.execute()[2]
        if count > limit:
            client.zrem(key, member)
            return False
    except redis.RedisError:  # Redis is the channel layer too: without it nothing works anyway
        logger.warning("could not count console sockets of %s", principal, exc_info=True)
    return True


def slot_refresh(principal: str, member: str) -> None:
    with contextlib.suppress(redis.RedisError):
        _client(settings.REDIS_URL).zadd(_slots_key(principal), {member: time.time()}, xx=True)


def slot_release(principal: str, member: str) -> None:
    with contextlib.suppress(redis.RedisError):
        _client(settings.REDIS_URL).zrem(_slots_key(principal), member)


def principal_of(user: Any) -> str:
    api_key = getattr(user, "key", None)
    return f"key:{api_key.pk}" if api_key is not None else f"user:{user.pk}"


class ConsoleSocket(TenantEventConsumer):
    """A console socket: counted per principal (at most ``max_connections()`` at once)."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await super().connect()  # closes with 4401
            return
        self.principal = principal_of(user)
        if not await sync_to_async(slot_take)(self.principal, self.channel_name, limit=max_connections()):
            await self.accept()
            await self.close(code=TOO_MANY_CONNECTIONS)
            return
        self.slot_held = True
        await super().connect()
        if not hasattr(self, "groups_joined"):  # refused (no access): give the place back
            await self._release()
            return
        self.refresher = asyncio.ensure_future(self._refresh_slot())
        await self.opened()

    async def opened(self) -> None:
        """Called once the socket is accepted and counted."""

    async def _refresh_slot(self) -> None:
        while True:
            await asyncio.sleep(SLOT_REFRESH)
            await sync_to_async(slot_refresh)(self.principal, self.channel_name)

    async def _release(self) -> None:
        if getattr(self, "slot_held", False):
            self.slot_held = False
            await sync_to_async(slot_release)(self.principal, self.channel_name)

    async def disconnect(self, code: int) -> None:
        for name in ("refresher", "poller"):
            task = getattr(self, name, None)
            if task is not None:
                task.cancel()
        await self._release()
        await super().disconnect(code)

    def shape(self, event: dict) -> dict | None:
        """The seed's message for an engine event (``None``: not for this socket)."""
        return event

    async def event_forward(self, message: dict) -> None:
        if getattr(self, "access_closed", False) or (
            "tenant_id" in message and message["tenant_id"] not in self.tenant_ids
        ):
            return
        event = message.get("event") or {}
        if self.types and event.get("type") not in self.types:
            return
        shaped = self.shape(event)
        if shaped is not None:
            await self.send_json(shaped)


# --- /ws/backup/updates ---------------------------------------------------------------------------

PROGRESS_IDS = {
    "backup_progress": "job_id",
    "restore_progress": "restore_id",
    "import_progress": "import_id",
    "sync_progress": "sync_id",
    "cleanup_progress": "cleanup_id",
}


def progress_message(event: dict) -> dict:
    """``{"type": "backup_progress", "job_id", "backup_id", "progress", "current_step",
    "eta"}`` and the others of "Real-time Backup Updates", with bytes done and expected and
    the throughput, each human and exact."""
    kind = event["type"]
    job_id = event.get("job_id") or event.get("operation_id")
    message = {
        "type": kind,
        PROGRESS_IDS[kind]: event.get("restore_id") or job_id,
        "job_id": job_id,
        "status": event.get("status"),
        "progress": event.get("progress"),
        "current_step": event.get("current_step"),
        "eta": event.get("eta"),
    }
    if event.get("backup_id") is not None:
        message["backup_id"] = event["backup_id"]
    done = event.get("bytes_done", event.get("bytes_processed"))
    total, speed = event.get("bytes_total"), event.get("throughput_bps")
    message.update(
        {
            "processed": humanize.size(done),
            "processed_bytes": done,
            "total": humanize.size(total),
            "total_bytes": total,
            "speed": humanize.rate(speed),
            "speed_bytes_per_second": speed,
        }
    )
    return message


class UpdatesConsumer(ConsoleSocket):
    """``/ws/backup/updates``: progress of backups, restores, imports, syncs and cleanups."""

    streams = ("updates",)
    types = frozenset(PROGRESS_IDS)

    def shape(self, event: dict) -> dict | None:
        return progress_message(event)


# --- /ws/backup/notifications ---------------------------------------------------------------------

SCHEDULE_EVENTS = {
    "started": "execution_started",
    "skipped": "execution_skipped",
    "completed": "execution_completed",
    "failed": "execution_failed",
}


def notification_message(event: dict) -> dict | None:
    kind = event.get("type")
    if kind in ("backup_completed", "backup_failed"):
        size, duration = event.get("size"), event.get("duration")
        message = {
            "type": kind,
            "backup_id": event.get("backup_id"),
            "job_id": event.get("job_id"),
            "name": event.get("name"),
            "size": humanize.size(size),
            "size_bytes": size,
            "duration": humanize.clock(duration),
            "duration_seconds": None if duration is None else round(duration, 3),
            "timestamp": event.get("timestamp"),
        }
        if event.get("error"):
            message["error"] = event["error"]
        return message
    if kind in ("restore_completed", "restore_failed"):
        message = {
            "type": kind,
            "restore_id": event.get("restore_id"),
            "backup_id": event.get("backup_id"),
            "timestamp": event.get("timestamp"),
        }
        if event.get("error"):
            message["error"] = event["error"]
        return message
    if kind == "storage_alert":
        if "cleanup_id" in event:  # a cleanup that could not delete every backup
            return {
                "type": kind,
                "level": "warning",
                "storage": None,
                "cleanup_id": event["cleanup_id"],
                "message": f"Cleanup {event['cleanup_id']}: {event.get('failed', 0)} backup(s) could not be "
                f"deleted ({event.get('removed', 0)} removed, {event.get('space_freed')} freed)",
                "timestamp": event.get("timestamp"),
            }
        message = {
            "type": kind,
            "level": event.get("level", "warning"),
            "storage": event.get("storage"),
            "message": event.get("message"),
            "utilization": event.get("utilization"),
            "threshold": event.get("threshold"),
            "timestamp": event.get("timestamp"),
        }
        for name in ("available", "used", "total"):  # exact bytes where the producer gave them
            exact = event.get(f"{name}_bytes")
            message[name] = humanize.size(exact) if exact is not None else event.get(name)
            message[f"{name}_bytes"] = exact
        return message
    if kind == "schedule_event":
        raw = event.get("event", "")
        return {
            "type": kind,
            "event": SCHEDULE_EVENTS.get(raw, raw),
            "schedule_id": event.get("schedule_id"),
            "backup_id": event.get("backup_id"),
            "timestamp": event.get("timestamp"),
        }
    return None


class NotificationsConsumer(ConsoleSocket):
    """``/ws/backup/notifications``: toasts (backups and restores ending, storage alerts,
    schedule runs)."""

    streams = ("updates", "notifications")
    types = frozenset(
        {"backup_completed", "backup_failed", "restore_completed", "restore_failed", "storage_alert", "schedule_event"}
    )

    def shape(self, event: dict) -> dict | None:
        return notification_message(event)


# --- /ws/backup/health ----------------------------------------------------------------------------

HEALTH_TYPES = ("storage_health", "service_status", "connectivity_status")


def health_poll_seconds() -> float:
    return float(getattr(settings, "CONSOLE_WS_HEALTH_POLL", 5))


def health_interval_seconds() -> float:
    return float(getattr(settings, "CONSOLE_WS_HEALTH_INTERVAL", 30))


def health_snapshot(tenant_id: int) -> list[dict]:
    """The three health messages of a tenant, computed at most once per poll interval
    whatever the number of sockets (shared through the cache)."""

    key = f"console:health:{tenant_id}"
    messages = cache.get(key)
    if messages is None:
        tenant = Tenant.objects.filter(pk=tenant_id, is_active=True).first()
        if tenant is None:
            return []
        messages = health_messages(system_status(tenant=tenant))
        cache.set(key, messages, timeout=max(1, int(health_poll_seconds())))
    return messages


#: Figures that move by themselves (free space of a filesystem other programs write to):
#: a change of these alone is not news; their human forms (``"8.6 GB"``) still are.
VOLATILE = frozenset({"available_bytes", "capacity_bytes", "utilization"})


def steady_part(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: steady_part(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [steady_part(v) for v in value]
    return value


class HealthConsumer(ConsoleSocket):
    """``/ws/backup/health``: the overview cards' figures, pushed."""

    streams = ("health",)
    types = frozenset(HEALTH_TYPES)

    async def opened(self) -> None:
        if len(self.tenant_ids) != 1:
            await self.close(code=WORKSPACE_REQUIRED)
            return
        self.last_sent: dict[str, dict] = {}
        await self.send_health(force=True)
        self.poller = asyncio.ensure_future(self._poll())

    async def _poll(self) -> None:
        steady = health_interval_seconds()
        next_full = time.monotonic() + steady
        while not getattr(self, "access_closed", False):
            await asyncio.sleep(health_poll_seconds())
            force = time.monotonic() >= next_full
            if force:
                next_full = time.monotonic() + steady
            try:
                await self.send_health(force=force)
            except Exception:  # a failed check is tried again at the next poll
                logger.warning("health check for the console socket failed", exc_info=True)

    async def send_health(self, *, force: bool) -> None:
        if getattr(self, "access_closed", False) or not self.tenant_ids:
            return
        messages = await database_sync_to_async(health_snapshot)(self.tenant_ids[0])
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for message in messages:
            seen = steady_part(message)
            if force or self.last_sent.get(message["type"]) != seen:
                self.last_sent[message["type"]] = seen
                await self.send_json({**message, "timestamp": stamp})
