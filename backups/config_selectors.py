"""Reads of what a tenant configured (servers, storages, applications) and what it uses (CONVENTIONS.md "Services and selectors"); also the services' liveness.

Space and usage figures come from what is really stored: ``Backup.stored_bytes`` of the
completed backups on a storage (the artifact's size as written), never from estimates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from django.db.models import Count, IntegerField, Max, Min, Prefetch, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from backupplatform import heartbeats, units
from backupplatform.isotime import utc_iso as iso
from tenants.models import Tenant, TenantScope

from .models import Application, Backup, BackupStatus, Server, Source, Storage
from .services.storages import monthly_cost, to_gb

COMPLETED = Q(backups__status=BackupStatus.COMPLETED)
USAGE_PERIODS = ("current_month", "last_month", "last_3_months")


def server_list(*, tenant: TenantScope) -> QuerySet[Server]:
    return Server.objects.for_tenant(tenant).order_by("name", "id")


def application_list(*, tenant: TenantScope) -> QuerySet[Application]:
    return (
        Application.objects.for_tenant(tenant)
        .order_by("-is_default", "name", "id")
        .prefetch_related(Prefetch("sources", queryset=Source.objects.order_by("position", "id")))
    )


def storage_list(*, tenant: TenantScope, type: str | None = None, status: str | None = None) -> QuerySet[Storage]:
    """Storages with ``used_bytes`` and ``backup_count`` annotated (one query, no N+1)."""
    qs = Storage.objects.for_tenant(tenant)
    if type:
        qs = qs.filter(type=type)
    if status:
        qs = qs.filter(status=status)
    return qs.annotate(
        used_bytes=Coalesce(Sum("backups__stored_bytes", filter=COMPLETED), Value(0), output_field=IntegerField()),
        backup_count=Count("backups", filter=COMPLETED),
    ).order_by("name", "id")


def completed_backups(*, storage: Storage) -> QuerySet[Backup]:
    return Backup.objects.filter(storage=storage, status=BackupStatus.COMPLETED)


def storage_backup_list(*, storage: Storage) -> QuerySet[Backup]:
    """Every backup row held on ``storage``, newest first."""
    return Backup.objects.filter(storage=storage).order_by("-created_at", "-id")


def storage_used(*, storage: Storage) -> tuple[int, int]:
    agg = completed_backups(storage=storage).aggregate(size=Sum("stored_bytes"), count=Count("id"))
    return int(agg["size"] or 0), int(agg["count"] or 0)


def storage_usage_summary(*, storage: Storage) -> dict[str, Any]:
    """The seed's ``usage`` object; uses the list annotations when present."""
    used = getattr(storage, "used_bytes", None)
    count = getattr(storage, "backup_count", None)
    if used is None or count is None:
        used, count = storage_used(storage=storage)
    return {
        "total_size_gb": to_gb(used),
        "backup_count": count,
        "monthly_cost": monthly_cost(used, storage.price_per_gb_month),
    }


def storage_usage_by_application(*, storage: Storage) -> list[dict[str, Any]]:
    rows = (
        completed_backups(storage=storage)
        .filter(application__isnull=False)
        .values("application_id", "application__name")
        .annotate(size=Sum("stored_bytes"), count=Count("id"))
        .order_by("application__name", "application_id")
    )
    return [
        {
            "application_id": r["application_id"],
            "application_name": r["application__name"],
            "size_gb": to_gb(r["size"]),
            "backup_count": r["count"],
        }
        for r in rows
    ]


def _when() -> Any:
    return Coalesce("completed_at", "created_at")


def _period_bounds(period: str, now: datetime) -> tuple[datetime, datetime]:
    start_of_month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if period == "last_month":
        end = start_of_month
        prev = (start_of_month - timedelta(days=1)).replace(day=1)
        return prev, end
    if period == "last_3_months":
        return now - timedelta(days=90), now
    return start_of_month, now


def storage_usage_report(*, storage: Storage, period: str = "current_month") -> dict[str, Any]:
    """workspace-backup-api.md, "Get Storage Usage": current usage, growth and cost.

    Growth is measured from the backups completed in ``period``; costs use the storage's
    ``price_per_gb_month`` (set by the platform admin). We do not meter transfers or
    requests, so those costs are 0 rather than invented.
    """
    now = timezone.now()
    start, end = _period_bounds(period, now)
    backups = completed_backups(storage=storage).annotate(when=_when())
    agg = backups.aggregate(
        size=Sum("stored_bytes"),
        count=Count("id"),
        oldest=Min("when"),
        newest=Max("when"),
        apps=Count("application", distinct=True),
    )
    total = int(agg["size"] or 0)
    in_period = int(backups.filter(when__gte=start, when__lt=end).aggregate(s=Sum("stored_bytes"))["s"] or 0)
    days = max((end - start).total_seconds() / 86400, 1.0)
    last_week = int(backups.filter(when__gte=now - timedelta(days=7)).aggregate(s=Sum("stored_bytes"))["s"] or 0)
    before_week = total - last_week
    weekly_pct = round(last_week / before_week * 100, 1) if before_week > 0 else (100.0 if last_week else 0.0)
    daily = in_period / days
    storage_cost = monthly_cost(total, storage.price_per_gb_month)
    return {
        "storage_id": storage.pk,
        "period": {"name": period, "start": iso(start), "end": iso(end)},
        "current_usage": {
            "total_size_gb": to_gb(total),
            "total_size_bytes": total,
            "backup_count": agg["count"] or 0,
            "applications": agg["apps"] or 0,
            "oldest_backup": iso(agg["oldest"]),
            "newest_backup": iso(agg["newest"]),
        },
        "growth_trend": {
            "daily_average_gb": to_gb(daily),
            "weekly_growth_percentage": weekly_pct,
            "projected_monthly_size_gb": to_gb(total + daily * 30),
        },
        "cost_breakdown": {
            "price_per_gb_month": float(storage.price_per_gb_month),
            "storage_cost": storage_cost,
            "transfer_cost": 0.0,
            "request_cost": 0.0,
            "total_monthly_cost": storage_cost,
        },
    }


def workspace_storage_usage(*, tenant: Tenant) -> dict[str, Any]:
    """workspace-backup-api.md, "Get Workspace Storage Usage"."""
    storages = list(storage_list(tenant=tenant))
    by_storage = [
        {
            "storage_id": s.pk,
            "name": s.name,
            "size_gb": to_gb(s.used_bytes),
            "backup_count": s.backup_count,
            "cost": monthly_cost(s.used_bytes, s.price_per_gb_month),
        }
        for s in storages
    ]
    rows = (
        Backup.objects.filter(
            tenant=tenant, status=BackupStatus.COMPLETED, storage__isnull=False, application__isnull=False
        )
        .values("application_id", "application__name")
        .annotate(size=Sum("stored_bytes"), count=Count("id"), last=Max(_when()))
        .order_by("application__name", "application_id")
    )
    by_application = [
        {
            "application_id": r["application_id"],
            "name": r["application__name"],
            "size_gb": to_gb(r["size"]),
            "backup_count": r["count"],
            "last_backup": iso(r["last"]),
        }
        for r in rows
    ]
    total_bytes = sum(s.used_bytes for s in storages)
    storage_cost = units.significant(sum(item["cost"] for item in by_storage))
    return {
        "workspace_id": tenant.slug,
        "total_usage": {
            "size_gb": to_gb(total_bytes),
            "backup_count": sum(s.backup_count for s in storages),
            "applications": len(by_application),
            "storage_backends": len(storages),
        },
        "by_storage": by_storage,
        "by_application": by_application,
        "cost_summary": {
            "total_monthly_cost": storage_cost,
            "storage_cost": storage_cost,
            "transfer_cost": 0.0,
            "request_cost": 0.0,
        },
    }


# --- are the workers and beat alive? ----------------------------------------------------------


@dataclass(frozen=True)
class Liveness:
    """``worker`` and ``beat`` are ``up``, ``down`` or ``unknown``; ``*_seen_at`` the last
    sign of life measured."""

    worker: str
    beat: str
    worker_seen_at: datetime | None
    beat_seen_at: datetime | None


def service_liveness(*, now: datetime | None = None) -> Liveness:
    """Whether Celery workers and beat are alive: the one source the console's status and its
    health socket read, from the heartbeats the processes write (``backupplatform.heartbeats``,
    the same ones ``GET /health/`` reads): each worker every 10 s from its event loop, beat on
    its ticks. ``up`` within ``HEALTH_WORKER_STALE_AFTER`` / ``HEALTH_BEAT_STALE_AFTER``
    (60 s), ``down`` after that, ``unknown`` when Redis cannot be read.
    """
    import time

    now = now or timezone.now()
    clock = time.time() - (timezone.now() - now).total_seconds()
    limits = heartbeats.thresholds()
    workers = heartbeats.check_workers(clock)
    beat = heartbeats.check_mark("beat", limits["beat_stale_after_seconds"], clock)

    def seen(check: dict) -> datetime | None:
        age = check.get("last_seen_seconds")
        return None if age is None else now - timedelta(seconds=age)

    return Liveness(
        worker=workers["status"], beat=beat["status"], worker_seen_at=seen(workers), beat_seen_at=seen(beat)
    )


def backup_location(backup: Backup) -> str:
    """Where a backup's artifact is, as a URL naming the storage and the artifact's key in it:
    ``s3://bucket/prefix/key``, ``gs://...``, ``azure://account/container/...``,
    ``sftp://host/path/key``, or ``local://<storage name>/key`` (never the platform's own
    folders: the storage's folder is the operator's business)."""
    if backup.storage is None or not backup.storage_path:
        return backup.storage_path
    storage = backup.storage
    return artifact_location(storage.type, storage.name, storage.configuration, backup.storage_path)


def artifact_location(storage_type: str, storage_name: str, config: dict | None, key: str) -> str:
    """``backup_location`` from the storage's columns (a list page reads them without models)."""
    config = config or {}
    prefix = (config.get("path_prefix") or "").strip("/")
    prefixed = f"{prefix}/{key}" if prefix else key
    if storage_type in ("s3", "minio"):
        return f"s3://{config.get('bucket', '')}/{prefixed}"
    if storage_type == "gcs":
        return f"gs://{config.get('bucket', '')}/{prefixed}"
    if storage_type == "azure":
        return f"azure://{config.get('account_name', '')}/{config.get('container', '')}/{prefixed}"
    if storage_type == "sftp":
        return f"sftp://{config.get('host', '')}{config.get('path', '').rstrip('/')}/{key}"
    return f"{storage_type}://{quote(storage_name, safe='')}/{key}"
