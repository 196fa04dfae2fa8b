"""system-backup-recovery.rst "Backup System Status": ``GET /status``, the overview cards.

The figures and rules are ``schedules.status.system_status``; this module only shapes them
as the seed shows them, with each human size or percentage next to its exact number. The
``/ws/backup/health`` socket sends parts of the same body (``health_messages``).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers

from backupplatform import humanize
from backupplatform.facades.base import respond
from backupplatform.isotime import utc_iso as iso
from backups.models import TenantKey
from schedules.status import Alert, StorageUsage, SystemStatus, system_status
from tenants.models import Role

from .conventions import ConsoleView

ALGORITHM = "AES-256-GCM"


def _json(value: Any) -> Any:
    return iso(value) if hasattr(value, "astimezone") else value


def alert_body(alert: Alert) -> dict:
    return {
        "level": alert.level,
        "code": alert.code,
        "message": alert.message,
        **{k: _json(v) for k, v in alert.data.items()},
    }


def local_storage_body(usage: StorageUsage | None) -> dict:
    """The seed's ``local_storage`` card: ``used`` is a percentage, ``available`` a size."""
    if usage is None:
        return {
            "status": "not_configured",
            "name": None,
            "used": None,
            "used_percent": None,
            "used_bytes": 0,
            "used_size": "0 B",
            "available": None,
            "available_bytes": None,
            "capacity_bytes": None,
            "threshold_percent": None,
        }
    health = usage.health
    return {
        "status": "healthy" if health == "good" else health,
        "name": usage.storage.name,
        "used": humanize.percent(usage.used_percent, 0) if usage.used_percent is not None else None,
        "used_percent": usage.used_percent,
        "used_bytes": usage.used_bytes,
        "used_size": humanize.size(usage.used_bytes),
        "available": humanize.size(usage.available_bytes),
        "available_bytes": usage.available_bytes,
        "capacity_bytes": usage.capacity_bytes,
        "threshold_percent": usage.threshold_percent,
    }


def cloud_storage_body(usage: StorageUsage | None) -> dict:
    """The seed's ``cloud_storage`` card: ``connected`` unless its last probe failed."""
    if usage is None:
        return {
            "status": "not_configured",
            "name": None,
            "type": None,
            "used": None,
            "used_bytes": 0,
            "last_checked": None,
        }
    status = "disabled" if usage.health == "disabled" else "connected" if usage.reachable else "disconnected"
    return {
        "status": status,
        "name": usage.storage.name,
        "type": usage.storage.type,
        "used": humanize.size(usage.used_bytes),
        "used_bytes": usage.used_bytes,
        "last_checked": iso(usage.storage.last_tested_at),
    }


def scheduler_body(status: SystemStatus) -> dict:
    live = status.liveness
    return {
        "status": status.scheduler["status"],
        "next_run": iso(status.scheduler["next_run"]),
        "enabled_schedules": status.scheduler["enabled_schedules"],
        "beat": live.beat,
        "beat_last_seen": iso(live.beat_seen_at),
        "worker": live.worker,
        "worker_last_seen": iso(live.worker_seen_at),
    }


def acronis_body(status: SystemStatus) -> dict:
    if status.acronis is None:
        return {"status": "not_configured", "last_polled_at": None}
    return {"status": status.acronis["status"], "last_polled_at": iso(status.acronis["last_polled_at"])}


def status_body(status: SystemStatus, *, key_id: str | None) -> dict:
    return {
        "backup_system": status.health,
        "security_score": status.security_score,
        "security_rules": [
            {"rule": r.rule, "description": r.description, "points": r.points, "status": r.status, "detail": r.detail}
            for r in status.security_rules
        ],
        "last_successful_backup": iso(status.last_successful_backup),
        "total_backups": status.total_backups,
        "completed_backups": status.completed_backups,
        "storage_used": humanize.size(status.stored_bytes),
        "storage_used_bytes": status.stored_bytes,
        "components": {
            "scheduler": scheduler_body(status),
            "local_storage": local_storage_body(status.local_storage),
            "cloud_storage": cloud_storage_body(status.cloud_storage),
            "encryption": {"status": "enabled", "algorithm": ALGORITHM, "key_id": key_id},
            "acronis": acronis_body(status),
        },
        "alerts": [alert_body(a) for a in status.alerts],
    }


def health_messages(status: SystemStatus) -> list[dict]:
    """``/ws/backup/health`` messages (``storage_health``, ``service_status``,
    ``connectivity_status``) from the same figures as ``GET /status``."""
    local, cloud = status.local_storage, status.cloud_storage
    storages = [
        {
            "name": u.storage.name,
            "type": u.storage.type,
            "health": u.health,
            "used": humanize.size(u.used_bytes),
            "used_bytes": u.used_bytes,
            "available": humanize.size(u.available_bytes),
            "available_bytes": u.available_bytes,
            "utilization": u.used_percent,
        }
        for u in status.storages
    ]
    return [
        {
            "type": "storage_health",
            "local": None
            if local is None
            else {
                "health": local.health,
                "used": humanize.size(local.used_bytes),
                "used_bytes": local.used_bytes,
                "available": humanize.size(local.available_bytes),
                "available_bytes": local.available_bytes,
                "utilization": local.used_percent,
            },
            "cloud": None
            if cloud is None
            else {
                "health": cloud_storage_body(cloud)["status"],
                "used": humanize.size(cloud.used_bytes),
                "used_bytes": cloud.used_bytes,
                "last_sync": iso(cloud.storage.last_synced_at),
                "last_checked": iso(cloud.storage.last_tested_at),
            },
            "storages": storages,
        },
        {
            "type": "service_status",
            "backup_system": status.health,
            "scheduler": {"stopped": "stopped", "enabled": "running", "disabled": "idle"}[status.scheduler["status"]],
            "next_run": iso(status.scheduler["next_run"]),
            "beat": status.liveness.beat,
            "worker": status.liveness.worker,
            "encryption": "enabled",
            "compression": "enabled",
            "alerts": [alert_body(a) for a in status.alerts if a.level != "info"],
        },
        {
            "type": "connectivity_status",
            "cloud": cloud_storage_body(cloud)["status"],
            "storages": [
                {
                    "name": u.storage.name,
                    "type": u.storage.type,
                    "status": "connected" if u.reachable else "disconnected",
                    "last_checked": iso(u.storage.last_tested_at),
                }
                for u in status.storages
                if u.offsite
            ],
            "acronis": acronis_body(status)["status"],
        },
    ]


def tenant_key_id(tenant) -> str | None:
    return TenantKey.objects.filter(tenant=tenant).values_list("key_id", flat=True).first()


# --- schema -----------------------------------------------------------------------------------

_s, _n = {"allow_null": True}, {"allow_null": True, "required": False}
StatusShape = inline_serializer(
    "ConsoleStatus",
    {
        "backup_system": serializers.CharField(help_text="one of: " + ", ".join(["healthy", "degraded", "failing"])),
        "security_score": serializers.IntegerField(**_s, help_text="0-100; null when no rule can be measured"),
        "security_rules": serializers.ListField(
            child=inline_serializer(
                "ConsoleSecurityRule",
                {
                    "rule": serializers.CharField(),
                    "description": serializers.CharField(),
                    "points": serializers.IntegerField(),
                    "status": serializers.CharField(
                        help_text="one of: " + ", ".join(["passed", "failed", "unknown", "not_available"])
                    ),
                    "detail": serializers.CharField(),
                },
            )
        ),
        "last_successful_backup": serializers.CharField(**_s),
        "total_backups": serializers.IntegerField(),
        "completed_backups": serializers.IntegerField(),
        "storage_used": serializers.CharField(help_text='e.g. "1.4 GB"'),
        "storage_used_bytes": serializers.IntegerField(),
        "components": inline_serializer(
            "ConsoleStatusComponents",
            {
                "scheduler": inline_serializer(
                    "ConsoleStatusScheduler",
                    {
                        "status": serializers.CharField(
                            help_text="one of: " + ", ".join(["enabled", "disabled", "stopped"])
                        ),
                        "next_run": serializers.CharField(**_s),
                        "enabled_schedules": serializers.IntegerField(),
                        "beat": serializers.CharField(help_text="one of: " + ", ".join(["up", "down", "unknown"])),
                        "beat_last_seen": serializers.CharField(**_s),
                        "worker": serializers.CharField(help_text="one of: " + ", ".join(["up", "down", "unknown"])),
                        "worker_last_seen": serializers.CharField(**_s),
                    },
                ),
                "local_storage": inline_serializer(
                    "ConsoleStatusLocalStorage",
                    {
                        "status": serializers.CharField(),
                        "name": serializers.CharField(**_s),
                        "used": serializers.CharField(**_s, help_text='percentage, e.g. "14%"'),
                        "used_percent": serializers.FloatField(**_s),
                        "used_bytes": serializers.IntegerField(),
                        "used_size": serializers.CharField(),
                        "available": serializers.CharField(**_s),
                        "available_bytes": serializers.IntegerField(**_s),
                        "capacity_bytes": serializers.IntegerField(**_s),
                        "threshold_percent": serializers.IntegerField(**_s),
                    },
                ),
                "cloud_storage": inline_serializer(
                    "ConsoleStatusCloudStorage",
                    {
                        "status": serializers.CharField(),
                        "name": serializers.CharField(**_s),
                        "type": serializers.CharField(**_s),
                        "used": serializers.CharField(**_s),
                        "used_bytes": serializers.IntegerField(),
                        "last_checked": serializers.CharField(**_s),
                    },
                ),
                "encryption": inline_serializer(
                    "ConsoleStatusEncryption",
                    {
                        "status": serializers.CharField(),
                        "algorithm": serializers.CharField(),
                        "key_id": serializers.CharField(**_s),
                    },
                ),
                "acronis": inline_serializer(
                    "ConsoleStatusAcronis",
                    {
                        "status": serializers.CharField(
                            help_text="one of: " + ", ".join(["connected", "disconnected", "not_configured"])
                        ),
                        "last_polled_at": serializers.CharField(**_s),
                    },
                ),
            },
        ),
        "alerts": serializers.ListField(
            child=inline_serializer(
                "ConsoleAlert",
                {
                    "level": serializers.CharField(help_text="one of: " + ", ".join(["info", "warning", "critical"])),
                    "code": serializers.CharField(),
                    "message": serializers.CharField(),
                },
            )
        ),
    },
)


class StatusView(ConsoleView):
    """Overall status, security score, components and alerts (viewers)."""

    roles = {"GET": Role.VIEWER}

    @extend_schema(operation_id="console_status", responses={200: StatusShape})
    def get(self, request):
        tenant = self.require_tenant()
        return respond(status_body(system_status(tenant=tenant), key_id=tenant_key_id(tenant)))
