"""Reads of backups, restores, verifications and operations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, timedelta

import django_filters
from django import forms
from django.db.models import Count, OuterRef, QuerySet, Subquery, Sum
from django.utils import timezone
from django.utils.dateparse import parse_datetime, parse_duration

from backupplatform.errors import ValidationFailed
from backupplatform.filtering import IdFilter, QueryFilterSet, choice_filter
from backupplatform.ids import parse_id
from tenants.models import TenantScope

from .models import (
    Backup,
    BackupStatus,
    BackupTrigger,
    Operation,
    OperationKind,
    OperationStatus,
    Restore,
    Storage,
    Verification,
)


class SinceField(forms.Field):
    """``since``: a duration back from now (``24h``, ``7d``, ISO 8601) or a date-time."""

    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return parse_since(value)
        except ValidationFailed as exc:
            raise forms.ValidationError(exc.details["since"][0]) from None


class SinceFilter(django_filters.Filter):
    field_class = SinceField


class BackupFilter(QueryFilterSet):
    server_id = IdFilter(field_name="server_id")
    application_id = IdFilter(field_name="application_id")
    storage_id = IdFilter(field_name="storage_id")
    db_type = django_filters.CharFilter(field_name="db_type")
    status = choice_filter("status", BackupStatus.values)
    since = SinceFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = Backup
        fields = ["server_id", "application_id", "storage_id", "db_type", "status", "since"]


BACKUP_RELATED = ("storage", "server", "application", "tenant")


def backup_list(
    *,
    tenant: TenantScope,
    filters: dict | None = None,
    related: tuple[str, ...] = BACKUP_RELATED,
    with_manifest: bool = True,
) -> QuerySet[Backup]:
    """Backups newest first. Filters: ``server_id``, ``db_type``, ``status``, ``application_id``,
    ``storage_id``, ``since`` (a duration like ``24h``/``7d`` or an ISO date-time).

    ``related``: the rows selected with each backup; a page that shows less asks for less
    (and ``with_manifest=False`` leaves the manifest out), so a list does not build and decode
    what it never shows."""
    # Secrets are never read by a list: left out, not decrypted per row (fetched on first use).
    deferred = [f"{name}__credentials" for name in ("storage", "server") if name in related]
    qs = Backup.objects.for_tenant(tenant).select_related(*related).defer(*deferred)
    if not with_manifest:
        qs = qs.defer("manifest")
    return BackupFilter.apply(filters, qs).order_by("-created_at", "-id")


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
        raise ValidationFailed(
            details={"since": ["Out of range: use a duration such as 24h or a date-time."]}
        ) from None
    raise ValidationFailed(details={"since": ["Use a duration such as 24h, 7d, 2w, or an ISO 8601 date-time."]})


def restore_list(
    *, tenant: TenantScope, application_id: int | None = None, status: str | None = None
) -> QuerySet[Restore]:
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


# --- where a backup is kept, and who is reading it ---------------------------------------------


@dataclass(frozen=True)
class BackupLocation:
    """One stored copy of a backup's artifact."""

    storage: Storage
    path: str
    primary: bool
    verified: bool
    status: str = "available"


def backup_locations_map(*, backups: list[Backup]) -> dict[int, list[BackupLocation]]:
    """Every storage holding each backup's artifact, the one it was written to first.

    This is the one place that says where a backup is: details, delete, the list, status
    and statistics all read it. A backup lives in the storage it was written to
    (``backup.storage``, selected with the backup: no query) and in every storage a copy of
    it was recorded in (``BackupCopy`` rows where that model exists: one query for the whole
    list). Only completed backups have an artifact to hold.
    """
    done = [b for b in backups if b.status == BackupStatus.COMPLETED]
    found: dict[int, list[BackupLocation]] = {b.pk: [] for b in backups}
    copies = _copy_model()
    if copies is not None and done:
        for copy in (
            copies.objects.filter(backup__in=done, storage__isnull=False)
            .select_related("storage")
            .order_by("backup_id", "created_at", "id")
        ):
            found[copy.backup_id].append(
                BackupLocation(
                    storage=copy.storage, path=copy.path, primary=False, verified=copy.verified, status=copy.status
                )
            )
    for b in done:
        if b.storage is None:
            continue
        rest = [loc for loc in found[b.pk] if not (loc.storage.pk == b.storage_id and loc.path == b.storage_path)]
        primary = next(
            (loc for loc in found[b.pk] if loc.storage.pk == b.storage_id and loc.path == b.storage_path), None
        )
        found[b.pk] = [
            BackupLocation(
                storage=b.storage,
                path=b.storage_path,
                primary=True,
                verified=b.verified or (primary is not None and primary.verified),
                status=primary.status if primary is not None else "available",
            ),
            *rest,
        ]
    return found


def _copy_model():
    """``backups.BackupCopy`` (copies of a backup kept in other storages), if installed."""
    from django.apps import apps

    try:
        return apps.get_model("backups", "BackupCopy")
    except LookupError:
        return None


def backup_locations(*, backup: Backup) -> list[BackupLocation]:
    return backup_locations_map(backups=[backup])[backup.pk]


#: Operations that read a backup's artifact while they run.
READING_KINDS = (OperationKind.RESTORE, OperationKind.RECOVERY, OperationKind.SYNC, OperationKind.VERIFY)


def backup_active_readers(*, backup: Backup) -> QuerySet[Operation]:
    """Pending or running operations that read ``backup`` (restores, recoveries, syncs,
    verifications): deleting it under them would break them."""
    return Operation.objects.filter(
        backup=backup, kind__in=READING_KINDS, status__in=(OperationStatus.PENDING, OperationStatus.RUNNING)
    ).order_by("created_at", "id")


# --- the console's backup table --------------------------------------------------------------

#: system-backup-recovery.rst "Get Backup List" ``type`` filter: what each value selects.
CONSOLE_TYPES = ("full", "config", "pre-ota")


def backup_console_type(backup: Backup) -> str:
    """``full``, ``config`` (the configuration alone) or ``pre-ota`` (taken before a
    restore or an update), as the console's ``type`` filter names them."""
    if backup.trigger == BackupTrigger.PRE_RESTORE:
        return "pre-ota"
    if list(backup.components or []) == ["config"]:
        return "config"
    return "full"


def backup_table(*, tenant: TenantScope, type: str | None = None, date_from=None, date_to=None) -> QuerySet[Backup]:
    """Backups newest first, with their storage and the outcome of their latest finished
    verification (``last_verification_passed``: True, False or None) in the same query."""
    latest = (
        Verification.objects.filter(backup=OuterRef("pk"), passed__isnull=False)
        .order_by("-created_at", "-id")
        .values("passed")[:1]
    )
    qs = (
        Backup.objects.for_tenant(tenant)
        .select_related("storage", "application", "job", "created_by")
        .annotate(last_verification_passed=Subquery(latest))
    )
    if type == "pre-ota":
        qs = qs.filter(trigger=BackupTrigger.PRE_RESTORE)
    elif type == "config":
        qs = qs.filter(components=["config"]).exclude(trigger=BackupTrigger.PRE_RESTORE)
    elif type == "full":
        qs = qs.exclude(components=["config"]).exclude(trigger=BackupTrigger.PRE_RESTORE)
    if date_from is not None:
        qs = qs.filter(created_at__date__gte=date_from)
    if date_to is not None:
        qs = qs.filter(created_at__date__lte=date_to)
    return qs.order_by("-created_at", "-id")


def backup_integrity(backup: Backup) -> str:
    """``verified``, ``failed`` (the latest verification failed), ``unverified``, or the
    backup's own state while it has no artifact (``pending``, ``running``, ``failed``...)."""
    if backup.status != BackupStatus.COMPLETED:
        return backup.status
    passed = getattr(backup, "last_verification_passed", None)
    if passed is False:
        return "failed"
    return "verified" if backup.verified else "unverified"


def backup_storage_totals(*, tenant: TenantScope) -> dict[str, int]:
    """Bytes and count of the tenant's completed backups (one aggregate query)."""
    agg = (
        Backup.objects.for_tenant(tenant)
        .filter(status=BackupStatus.COMPLETED)
        .aggregate(size=Sum("stored_bytes"), count=Count("id"))
    )
    return {"stored_bytes": int(agg["size"] or 0), "count": int(agg["count"] or 0)}


def backup_estimate(*, tenant: TenantScope, application=None, components: list[str] | None = None) -> dict:
    """Size and duration of the latest completed backup of the same application and
    components (or, when there is none, of the application's latest backup): what the next one
    will probably take (``None`` when the application has no completed backup)."""
    qs = Backup.objects.for_tenant(tenant).filter(status=BackupStatus.COMPLETED, application=application)
    fields = ("stored_bytes", "size_bytes", "started_at", "completed_at")
    last = None
    if components is not None:
        last = qs.filter(components=sorted(components)).order_by("-created_at", "-id").only(*fields).first()
    if last is None:  # no backup of exactly these components: the application's latest, an upper bound
        last = qs.order_by("-created_at", "-id").only(*fields).first()
    if last is None:
        return {"size_bytes": None, "stored_bytes": None, "duration_seconds": None}
    return {"size_bytes": last.size_bytes, "stored_bytes": last.stored_bytes, "duration_seconds": last.duration_seconds}


def restore_operation_get(*, tenant: TenantScope, restore_id: str) -> Operation | None:
    """The operation of a restore, named either way a client was given it: the operation's
    public id (console recoveries and snapshot restores, WebSocket events) or the
    ``restore_id`` number that ``POST /api/v1/backups/{id}/restore`` answers."""
    kinds = (OperationKind.RESTORE, OperationKind.RECOVERY)
    op = operation_get(tenant=tenant, public_id=restore_id, kinds=kinds)
    if op is None and (pk := parse_id(restore_id)) is not None:
        op = (
            Operation.objects.for_tenant(tenant)
            .filter(restore__pk=pk, kind__in=kinds)
            .select_related("backup", "restore")
            .first()
        )
    return op


def restore_file_counts(restore) -> tuple[int | None, int | None]:
    """Files a restore has put back and files it puts back in all (folders only: a database
    restore has none), from the backup's manifest and the restore's result; ``None`` where
    unknown (the count of files done is known once a folder is restored)."""
    backup = restore.backup
    members = ((backup.manifest or {}).get("bundle") or {}).get("members") or [] if backup is not None else []
    only = (restore.options or {}).get("members")
    chosen = [m for m in members if only is None or m.get("name") in only]
    counted = [m for m in chosen if isinstance((m.get("info") or {}).get("files"), int)]
    if not counted:
        return None, None
    total = sum(m["info"]["files"] for m in counted)
    done = ((restore.result or {}).get("restore") or {}).get("members") or {}
    finished = [v for v in done.values() if isinstance((v.get("result") or {}).get("files"), int)]
    processed = sum(v["result"]["files"] for v in finished) if finished else None
    return processed, total
