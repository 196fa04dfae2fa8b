"""The events that channels and webhooks can subscribe to, and how audit actions map to them.

``emit()`` records every action; a few of them are worth telling people or other systems
about. ``event_type_for`` names the event an audit action is (``None`` for the rest), looking
at its details where one action covers several outcomes (a verification that completed
without passing failed; a server's health change is ``server.down`` or ``server.up``).

Names are the workspace seed's ("Webhooks": ``backup.completed``, ``backup.failed``...) and
ours in the same style for what it does not list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .models import LEVEL_RANK, Level


@dataclass(frozen=True)
class EventType:
    name: str
    level: str
    label: str


EVENT_TYPES: dict[str, EventType] = {
    e.name: e
    for e in [
        EventType("backup.started", Level.INFO, "Backup started"),
        EventType("backup.completed", Level.INFO, "Backup succeeded"),
        EventType("backup.failed", Level.ERROR, "Backup failed"),
        EventType("backup.deleted", Level.INFO, "Backup deleted"),
        EventType("backup.policy.created", Level.INFO, "Backup policy created"),
        EventType("backup.policy.updated", Level.INFO, "Backup policy updated"),
        EventType("backup.policy.deleted", Level.INFO, "Backup policy deleted"),
        EventType("restore.started", Level.INFO, "Restore started"),
        EventType("restore.completed", Level.INFO, "Restore completed"),
        EventType("restore.failed", Level.ERROR, "Restore failed"),
        EventType("verification.failed", Level.ERROR, "Verification failed"),
        EventType("drill.failed", Level.ERROR, "Restore drill failed"),
        EventType("storage.alert", Level.WARNING, "Storage alert"),
        EventType("server.down", Level.ERROR, "Server down"),
        EventType("server.up", Level.INFO, "Server up"),
        EventType("schedule.missed", Level.WARNING, "Scheduled run missed"),
        EventType("cleanup.completed", Level.INFO, "Cleanup done"),
        EventType("acronis.disconnected", Level.ERROR, "Acronis disconnected"),
        EventType("acronis.backup_error", Level.ERROR, "Acronis backup error"),
        EventType("command.completed", Level.INFO, "Remote command finished"),
        EventType("command.failed", Level.WARNING, "Remote command failed"),
    ]
}

# What a new channel hears when it names no event types: what goes wrong.
DEFAULT_CHANNEL_EVENTS = [
    "backup.failed",
    "restore.failed",
    "verification.failed",
    "drill.failed",
    "storage.alert",
    "server.down",
    "schedule.missed",
    "acronis.disconnected",
    "acronis.backup_error",
]

# Events that repeat identically when something stays broken: grouped per channel and key.
GROUPED = frozenset(
    {
        "backup.failed",
        "verification.failed",
        "drill.failed",
        "restore.failed",
        "schedule.missed",
        "acronis.backup_error",
        "storage.alert",
        "command.failed",
    }
)

_SIMPLE = {
    "backup_create": "backup.started",
    "backup_completed": "backup.completed",
    "backup_failed": "backup.failed",
    "backup_reaped": "backup.failed",
    "backup_delete": "backup.deleted",
    "job_create": "backup.policy.created",
    "job_update": "backup.policy.updated",
    "job_delete": "backup.policy.deleted",
    "restore_create": "restore.started",
    "restore_completed": "restore.completed",
    "restore_failed": "restore.failed",
    "restore_reaped": "restore.failed",
    "verify_failed": "verification.failed",
    "verify_reaped": "verification.failed",
    "drill_failed": "drill.failed",
    "job_run_skipped": "schedule.missed",
    "acronis_disconnected": "acronis.disconnected",
    "acronis_backup_error": "acronis.backup_error",
    "command_execution_completed": "command.completed",
    "command_execution_failed": "command.failed",
}


def event_type_for(action: str, details: dict[str, Any], resource_id: Any = "") -> str | None:
    """The event an audit action is, or ``None`` when nobody subscribes to such things."""
    if action in _SIMPLE:
        return _SIMPLE[action]
    if action == "verify_completed":
        return "verification.failed" if details.get("passed") is False else None
    if action == "server_health_change":
        status = details.get("health_status")
        return {"unhealthy": "server.down", "healthy": "server.up"}.get(status)
    if action == "cleanup_complete":
        return "storage.alert" if details.get("failed") else "cleanup.completed"
    if action == "storage_test":  # a saved storage that failed its test (not a trial of a new one)
        return "storage.alert" if details.get("success") is False and resource_id not in ("", None) else None
    return None


def level_rank(level: str) -> int:

    return LEVEL_RANK.get(level, 0)
