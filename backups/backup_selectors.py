"""Reads of backups, restores, verifications and operations."""

from __future__ import annotations

from datetime import UTC, timedelta

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime, parse_duration

from backupplatform.errors import ValidationFailed
from backupplatform.ids import parse_id
from tenants.models import TenantScope

from .models import Backup, BackupStatus, Operation, Restore, Verification


def backup_list(*, tenant: TenantScope, filters: dict | None = None) -> QuerySet[Backup]:
    """Backups newest first. Filters: ``server_id``, ``db_type``, ``status``, ``application_id``,
    ``storage_id``, ``since`` (a duration like ``24h``/``7d`` or an ISO date-time)."""
    qs = Backup.objects.for_tenant(tenant).select_related("storage", "server", "application", "tenant")
    filters = filters or {}
    for name, field in (("server_id", "server_id"), ("application_id", "application_id"),
                        ("storage_id", "storage_id")):
        value = filters.get(name)
        if value not in (None, ""):
            if parse_id(value) is None:
                raise ValidationFailed(details={name: ["A whole number is required."]})
            qs = qs.filter(**{field: parse_id(value)})
    if filters.get("db_type"):
        qs = qs.filter(db_type=filters["db_type"])
    if filters.get("status"):
        status = filters["status"]
        if status not in BackupStatus.values:
            raise ValidationFailed(details={"status": [f"Must be one of: {', '.join(BackupStatus.values)}."]})
        qs = qs.filter(status=status)
    if filters.get("since"):
        qs = qs.filter(created_at__gte=parse_since(filters["since"]))
    return qs.order_by("-created_at", "-id")


def parse_since(raw: str):
    """``24h``, ``7d``, ``30m``, ``2w``, an ISO 8601 duration, or an ISO date-time."""
    raw = str(raw).strip()
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    try:
        if raw[:-1].isascii() and raw[:-1].isdigit() and raw[-1:] in units:
            return timezone.now() - timedelta(**{units[raw[-1]]: int(raw[:-1])})
        when = parse_datetime(raw)
        if when is not None:
            return when if timezone.is_aware(when) else timezone.make_aware(when, UTC)
        duration = parse_duration(raw)
        if duration is not None:
            return timezone.now() - duration
    except (OverflowError, ValueError):  # further back than dates go, or not a real date
        raise ValidationFailed(details={"since": ["Out of range: use a duration such as 24h or a date-time."]}) from None
    raise ValidationFailed(details={"since": ["Use a duration such as 24h, 7d, 2w, or an ISO 8601 date-time."]})


def restore_list(*, tenant: TenantScope, application_id: int | None = None, status: str | None = None) -> QuerySet[Restore]:
    qs = Restore.objects.for_tenant(tenant).select_related("backup", "operation", "target_application")
    if application_id is not None:
        qs = qs.filter(application_id=application_id)
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-created_at", "-id")


def verification_list(*, tenant: TenantScope) -> QuerySet[Verification]:
    return Verification.objects.for_tenant(tenant).select_related("backup", "operation").order_by("-created_at", "-id")


def latest_verification(*, tenant: TenantScope, backup: Backup) -> Verification | None:
    return verification_list(tenant=tenant).filter(backup=backup).first()


def operation_get(*, tenant: TenantScope, public_id: str, kinds: tuple[str, ...] | None = None) -> Operation | None:
    qs = Operation.objects.for_tenant(tenant).filter(public_id=public_id)
    if kinds:
        qs = qs.filter(kind__in=kinds)
    return qs.select_related("backup").first()


def backup_locations(*, backup: Backup) -> list[dict]:
    """Every place ``backup``'s artifact is kept, primary first (system-backup-recovery.rst
    "Get Backup Details" ``storage_locations``): one entry per ``BackupCopy``, and the primary
    copy of a backup stored before copies were recorded."""
    from .models import BackupCopy

    copies = list(BackupCopy.objects.filter(backup=backup).select_related("storage").order_by("created_at", "id"))
    entries = [{"storage_id": c.storage_id, "storage": c.storage.name if c.storage else None,
                "type": c.storage.type if c.storage else None, "path": c.path, "size": c.size_bytes,
                "checksum": c.checksum, "verified": c.verified, "status": c.status,
                "primary": c.storage_id is not None and c.storage_id == backup.storage_id,
                "created_at": c.created_at, "verified_at": c.verified_at} for c in copies]
    if backup.storage_id and not any(e["primary"] for e in entries) and backup.status == BackupStatus.COMPLETED:
        storage = backup.storage
        entries.insert(0, {"storage_id": storage.pk, "storage": storage.name, "type": storage.type,
                           "path": backup.storage_path, "size": backup.stored_bytes, "checksum": backup.checksum,
                           "verified": backup.verified, "status": "available", "primary": True,
                           "created_at": backup.completed_at or backup.created_at, "verified_at": backup.verified_at})
    entries.sort(key=lambda e: not e["primary"])
    return entries
