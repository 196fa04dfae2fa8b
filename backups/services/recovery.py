"""Disaster recovery (system-backup-recovery.rst "Disaster Recovery Operations").

``recovery_start`` restores every source of a backup (or the sources ``module_filter``
names) over its original targets with the ``overwrite`` strategy, which restores into a
staging copy and swaps it in only on success (``services.restores``), in an ``Operation`` of
kind ``recovery``. ``recovery_preview`` is the impact analysis shown before: what would be
replaced, how big it is, how long it should take (measured from this tenant's past
restores), and how much newer data would be lost.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from backupplatform.errors import Conflict, ValidationFailed
from backupplatform.isotime import utc_iso
from tenants.models import Tenant

from ..models import (
    Backup,
    BackupCopy,
    BackupStatus,
    Operation,
    OperationKind,
    OperationStatus,
    Restore,
    SourceType,
)
from .copies import human_bytes
from .restores import restore_start
from .snapshots import snapshot_create

COMPONENT_OF = {
    SourceType.POSTGRESQL: "database",
    SourceType.MYSQL: "database",
    SourceType.SQLITE: "database",
    SourceType.PATH: "data",
    SourceType.PLATFORM_CONFIG: "config",
}
# How many past restores the throughput is measured from.
THROUGHPUT_SAMPLE = 20


def recovery_items(backup: Backup) -> list[dict[str, Any]]:
    """What a recovery of ``backup`` puts back: one item per member (application artifact)
    or the one database, with its original target and size."""
    bundle = backup.manifest.get("bundle") or {}
    sizes = {m.get("name"): m.get("size") for m in bundle.get("members") or []}
    items = []
    for item in bundle.get("sources") or []:
        kind = item.get("type")
        target = item.get("path") if kind in (SourceType.PATH, SourceType.SQLITE) else item.get("database")
        items.append(
            {
                "member": item["member"],
                "name": item.get("name") or item["member"],
                "type": kind,
                "component": item.get("component") or COMPONENT_OF.get(kind, "data"),
                "target": target,
                "size": int(sizes.get(item["member"]) or 0),
            }
        )
    if not items and backup.db_type:
        items.append(
            {
                "member": None,
                "name": backup.database_name,
                "type": backup.db_type,
                "component": "database",
                "target": backup.database_name,
                "size": backup.size_bytes,
            }
        )
    return items


def _filter(items: list[dict], module_filter: list[str] | None) -> list[dict]:
    if not module_filter:
        return items
    chosen = [i for i in items if i["name"] in module_filter or i["component"] in module_filter]
    unknown = sorted(set(module_filter) - {i["name"] for i in items} - {i["component"] for i in items})
    if unknown or not chosen:
        names = sorted({i["name"] for i in items} | {i["component"] for i in items})
        raise ValidationFailed(
            details={
                "module_filter": [
                    f"Not in this backup: {', '.join(unknown) or ', '.join(module_filter)}; it holds {', '.join(names)}."
                ]
            }
        )
    return chosen


def restore_throughput(*, tenant: Tenant) -> dict[str, Any] | None:
    """Bytes per second of this tenant's last completed restores (recoveries included): the
    restored backups' sizes over the restores' wall-clock durations."""
    rows = list(
        Restore.objects.filter(
            tenant=tenant,
            status=OperationStatus.COMPLETED,
            backup__size_bytes__gt=0,
            started_at__isnull=False,
            completed_at__gt=F("started_at"),
        )
        .order_by("-completed_at")
        .values_list("backup__size_bytes", "started_at", "completed_at")[:THROUGHPUT_SAMPLE]
    )
    if not rows:
        return None
    total = sum(r[0] for r in rows)
    seconds = sum((r[2] - r[1]).total_seconds() for r in rows)
    return {"bytes_per_second": total / max(seconds, 0.001), "samples": len(rows)}


def _duration_text(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds))} seconds"
    if seconds < 5400:
        return f"{round(seconds / 60)} minutes"
    return f"{seconds / 3600:.1f} hours"


def recovery_estimate(*, tenant: Tenant, backup: Backup, size: int) -> dict[str, Any]:
    """Downtime estimate and what it rests on."""
    measured = restore_throughput(tenant=tenant)
    if measured:
        rate = measured["bytes_per_second"]
        basis = f"{measured['samples']} completed restore(s) of this workspace, {human_bytes(int(rate))}/s on average"
    else:
        duration = (backup.manifest or {}).get("duration_seconds") or backup.duration_seconds
        if not duration or not backup.size_bytes:
            return {"seconds": None, "text": "unknown", "basis": "no restore of this workspace has completed yet"}
        rate = backup.size_bytes / max(float(duration), 0.001)
        basis = f"no restore of this workspace has completed yet; this backup's own speed ({human_bytes(int(rate))}/s)"
    seconds = size / max(rate, 1.0)
    return {
        "seconds": round(seconds, 1),
        "text": _duration_text(seconds),
        "basis": basis,
        "bytes_per_second": int(rate),
    }


def _series(backup: Backup):
    qs = Backup.objects.filter(tenant_id=backup.tenant_id, status=BackupStatus.COMPLETED)
    if backup.application_id:
        return qs.filter(application_id=backup.application_id)
    return qs.filter(server_id=backup.server_id, database_name=backup.database_name, application__isnull=True)


def recovery_preview(*, backup: Backup, module_filter: list[str] | None = None) -> dict[str, Any]:
    """The impact analysis of recovering ``backup`` (nothing is changed)."""
    if backup.status != BackupStatus.COMPLETED:
        raise Conflict(
            f"Only completed backups can be recovered (this one is {backup.status})", code="BACKUP_NOT_COMPLETED"
        )
    now = timezone.now()
    items = _filter(recovery_items(backup), module_filter)
    size = sum(i["size"] for i in items) or backup.size_bytes
    estimate = recovery_estimate(tenant=backup.tenant, backup=backup, size=size)
    taken = backup.completed_at or backup.created_at
    age = now - taken
    newer = list(
        _series(backup)
        .filter(created_at__gt=backup.created_at)
        .order_by("-created_at")
        .values("id", "name", "created_at")[:5]
    )
    newer_count = _series(backup).filter(created_at__gt=backup.created_at).count()
    if newer_count or age > timedelta(days=7):
        risk = "high"
    elif age > timedelta(hours=24):
        risk = "medium"
    else:
        risk = "low"
    databases = [i for i in items if i["component"] == "database"]
    warnings = [
        f"All current data of {len(items)} component(s) will be replaced: "
        + ", ".join(f"{i['name']} ({i['target']})" for i in items)
    ]
    if newer_count:
        warnings.append(
            f"{newer_count} newer backup(s) exist; changes made since {taken:%Y-%m-%d %H:%M} UTC "
            f"will be lost (newest: #{newer[0]['id']} of {newer[0]['created_at']:%Y-%m-%d %H:%M} UTC)"
        )
    if backup.verified and backup.verified_at:
        if now - backup.verified_at > timedelta(days=7):
            warnings.append(f"Not verified since {backup.verified_at:%Y-%m-%d %H:%M} UTC")
    else:
        warnings.append("This backup has never been verified")
    missing = BackupCopy.objects.filter(backup=backup).exclude(status="available").count()
    if missing:
        warnings.append(
            f"{missing} stored cop{'y is' if missing == 1 else 'ies are'} missing or damaged; "
            "the recovery reads another copy"
        )
    if databases:
        warnings.append("Open connections to the databases are ended when the restored copy is swapped in")
    recommendations = []
    if not backup.verified:
        recommendations.append("Verify backup integrity before proceeding")
    if newer_count:
        recommendations.append(f"Consider the newest backup #{newer[0]['id']} instead")
    recommendations.append("Keep create_pre_recovery_snapshot on, so the configuration can be rolled back")
    if databases:
        recommendations.append("Ensure no users or applications are writing to the databases")
    return {
        "backup_id": backup.pk,
        "backup_name": backup.name,
        "recovery_type": "full" if not module_filter else "partial",
        "created_at": utc_iso(taken, micro=True),
        "impact_analysis": {
            "components_affected": sorted({i["component"] for i in items}),
            "items": items,
            "total_size": size,
            "total_size_display": human_bytes(size),
            "estimated_downtime": estimate["text"],
            "estimated_downtime_seconds": estimate["seconds"],
            "estimate_basis": estimate["basis"],
            "restart_required": False,
            "data_loss_risk": risk,
            "data_loss": {
                "hours_since_backup": round(age.total_seconds() / 3600, 1),
                "newer_backups": newer_count,
                "newest_backup_id": newer[0]["id"] if newer else None,
            },
            "pre_recovery_actions": ["create_snapshot", *(["end_database_sessions"] if databases else [])],
            "post_recovery_actions": ["verify_integrity"],
        },
        "warnings": warnings,
        "recommendations": recommendations,
    }


@transaction.atomic
def recovery_start(
    *,
    tenant: Tenant,
    backup: Backup,
    actor: Any = None,
    confirmation: bool = False,
    create_pre_recovery_snapshot: bool = True,
    module_filter: list[str] | None = None,
    reason: str = "",
    recovery_type: str = "full",
    queue: bool = True,
) -> tuple[Restore, Any]:
    """Restore ``backup`` over its original targets (all or ``module_filter``). Returns the
    restore (its operation is of kind ``recovery``) and the pre-recovery snapshot (or None)."""

    if confirmation is not True:
        raise ValidationFailed(details={"confirmation": ["Recovery replaces current data: confirm with true."]})
    if backup.status != BackupStatus.COMPLETED:
        raise Conflict(
            f"Only completed backups can be recovered (this one is {backup.status})", code="BACKUP_NOT_COMPLETED"
        )
    items = _filter(recovery_items(backup), module_filter)
    if not backup.db_type and not backup.application_id and any(i["component"] == "database" for i in items):
        raise ValidationFailed(
            details={"backup_id": ["This imported backup has no original target; restore it through a target instead."]}
        )
    if backup.db_type and backup.server_id is None:
        raise ValidationFailed(
            details={
                "backup_id": [
                    "This database backup has no original server (imported or deleted); restore it into a target."
                ]
            }
        )
    snapshot = None
    if create_pre_recovery_snapshot:
        snapshot = snapshot_create(
            tenant=tenant,
            actor=actor,
            name=f"pre_recovery_{backup.pk}_{timezone.now():%Y%m%d_%H%M%S}",
            tags=["pre-recovery"],
            description=f"Taken before recovering backup {backup.pk}: {reason}"[:1000],
            trigger="pre_recovery",
        )
    options = {
        "reason": reason,
        "recovery_type": recovery_type,
        "pre_recovery_snapshot_id": snapshot.pk if snapshot else None,
    }
    if backup.db_type:
        restore = restore_start(
            tenant=tenant,
            backup=backup,
            actor=actor,
            target_server=backup.server,
            target_database=backup.database_name,
            strategy="overwrite",
            options=options,
            queue=queue,
            kind=OperationKind.RECOVERY,
        )
    else:
        options["members"] = [i["member"] for i in items]
        restore = restore_start(
            tenant=tenant,
            backup=backup,
            actor=actor,
            strategy="overwrite",
            options=options,
            queue=queue,
            kind=OperationKind.RECOVERY,
        )
    Operation.objects.filter(pk=restore.operation_id).update(
        details={
            "recovery": {
                "backup_id": backup.pk,
                "items": [i["name"] for i in items],
                "reason": reason,
                "pre_recovery_snapshot_id": snapshot.pk if snapshot else None,
            }
        }
    )
    return restore, snapshot
