"""Statistics and report figures of a tenant's backups (system-backup-recovery.rst
"Reporting & Statistics").

Every figure is an aggregate query in the database (counts, sums and averages grouped by
day, type and storage): the number of queries is the same for 10 backups or 10 million,
and no backup row is loaded into Python. Only the CSV report reads rows, streamed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import Avg, Case, CharField, Count, F, Q, QuerySet, Sum, Value, When
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from tenants.models import Tenant

from .models import (
    Backup,
    BackupStatus,
    BackupTrigger,
    OperationStatus,
    Snapshot,
    Storage,
    Verification,
)

PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30), "90d": timedelta(days=90)}
OK = Q(status=BackupStatus.COMPLETED)
FAILED = Q(status=BackupStatus.FAILED)


def console_kind() -> Case:
    """The console's backup type as a database expression (``backup_console_type``)."""
    return Case(
        When(trigger=BackupTrigger.PRE_RESTORE, then=Value("pre-ota")),
        When(components=["config"], then=Value("config")),
        default=Value("full"),
        output_field=CharField(),
    )


def _summary(qs: QuerySet[Backup], window: Q) -> dict[str, Any]:
    agg = qs.aggregate(
        total=Count("id", filter=window),
        successful=Count("id", filter=window & OK),
        failed=Count("id", filter=window & FAILED),
        cancelled=Count("id", filter=window & Q(status=BackupStatus.CANCELLED)),
        running=Count("id", filter=window & Q(status__in=(BackupStatus.PENDING, BackupStatus.RUNNING))),
        size=Coalesce(Sum("stored_bytes", filter=window & OK), 0),
        raw=Coalesce(Sum("size_bytes", filter=window & OK), 0),
        average=Avg("stored_bytes", filter=window & OK),
        average_duration=Avg(F("completed_at") - F("started_at"), filter=window & OK),
        stored=Coalesce(Sum("stored_bytes", filter=OK & Q(storage__isnull=False)), 0),
    )
    finished = agg["successful"] + agg["failed"]
    agg["success_rate"] = round(agg["successful"] * 100 / finished, 1) if finished else None
    agg["average"] = int(agg["average"]) if agg["average"] is not None else None
    duration = agg.pop("average_duration")
    agg["average_duration_seconds"] = int(duration.total_seconds()) if duration is not None else None
    return agg


def _timeline(qs: QuerySet[Backup], start: date, end: date) -> list[dict[str, Any]]:
    """One entry per day from ``start`` to ``end`` (UTC), days without backups included."""
    rows = {
        r["day"]: r
        for r in (
            qs.annotate(day=TruncDate("created_at", tzinfo=UTC))
            .values("day")
            .annotate(
                total=Count("id"),
                successful=Count("id", filter=OK),
                failed=Count("id", filter=FAILED),
                size=Coalesce(Sum("stored_bytes", filter=OK), 0),
            )
            .order_by("day")
        )
    }
    days, day = [], start
    while day <= end:  # at most one entry per day of the window, not per backup
        row = rows.get(day, {})
        days.append(
            {
                "date": day,
                "total": row.get("total", 0),
                "successful": row.get("successful", 0),
                "failed": row.get("failed", 0),
                "size_bytes": row.get("size", 0),
            }
        )
        day += timedelta(days=1)
    return days


CONSOLE_KINDS = ("full", "config", "pre-ota")


def _by_type(qs: QuerySet[Backup], snapshots: QuerySet[Snapshot]) -> dict[str, dict[str, int]]:
    """Every console type, the ones without backups at 0 (a chart draws each series), and the
    configuration snapshots taken in the window as ``snapshot``."""
    rows = (
        qs.annotate(kind=console_kind())
        .values("kind")
        .annotate(count=Count("id"), size=Coalesce(Sum("stored_bytes", filter=OK), 0))
        .order_by("kind")
    )
    found = {r["kind"]: {"count": r["count"], "size_bytes": r["size"]} for r in rows}
    taken = snapshots.aggregate(count=Count("id"), size=Coalesce(Sum("size_bytes"), 0))
    return {
        **{kind: found.get(kind, {"count": 0, "size_bytes": 0}) for kind in CONSOLE_KINDS},
        **{kind: v for kind, v in found.items() if kind not in CONSOLE_KINDS},
        "snapshot": {"count": taken["count"], "size_bytes": taken["size"]},
    }


def _by_storage(qs: QuerySet[Backup]) -> dict[str, dict[str, Any]]:
    """Completed backups per storage that holds them (grouped by storage id, then named:
    grouping the backups by the joined storage's name costs several times more)."""
    rows = list(
        qs.filter(OK, storage__isnull=False)
        .values("storage_id")
        .annotate(count=Count("id"), size=Coalesce(Sum("stored_bytes"), 0))
        .order_by()
    )
    names = {
        s["pk"]: s for s in Storage.objects.filter(pk__in=[r["storage_id"] for r in rows]).values("pk", "name", "type")
    }
    return {
        names[r["storage_id"]]["name"]: {
            "type": names[r["storage_id"]]["type"],
            "count": r["count"],
            "size_bytes": r["size"],
        }
        for r in sorted(rows, key=lambda r: names[r["storage_id"]]["name"])
    }


STORAGE_KINDS = {"local": "local", "sftp": "remote"}  # every other type is a cloud


def storage_kind(storage_type: str) -> str:
    """The console's kind of a storage type: ``local``, ``remote`` (SFTP) or ``cloud``."""
    return STORAGE_KINDS.get(storage_type, "cloud")


def distribution_by_kind(distribution: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``storage_distribution`` (per location) summed per kind (``local``, ``cloud``, ``remote``,
    each present), each with its locations."""
    kinds: dict[str, dict[str, Any]] = {
        kind: {"count": 0, "size_bytes": 0, "locations": {}} for kind in ("local", "cloud", "remote")
    }
    for name, share in distribution.items():
        kind = kinds[storage_kind(share["type"])]
        kind["count"] += share["count"]
        kind["size_bytes"] += share["size_bytes"]
        kind["locations"][name] = share
    return kinds


@dataclass
class Statistics:
    period: str
    since: datetime
    until: datetime
    summary: dict[str, Any]
    by_type: dict[str, dict[str, int]]
    timeline: list[dict[str, Any]]
    storage_distribution: dict[str, dict[str, Any]]

    @property
    def growth_bytes_per_week(self) -> int:
        weeks = max((self.until - self.since).total_seconds() / (7 * 86400), 1 / 7)
        return int(self.summary["size"] / weeks)


def backup_statistics(*, tenant: Tenant, period: str = "30d", now: datetime | None = None) -> Statistics:
    """Four aggregate queries, whatever the number of backups."""
    now = now or timezone.now()
    since = now - PERIODS[period]
    backups = Backup.objects.filter(tenant=tenant)
    window = backups.filter(created_at__gte=since, created_at__lte=now)
    return Statistics(
        period=period,
        since=since,
        until=now,
        summary=_summary(backups, Q(created_at__gte=since, created_at__lte=now)),
        by_type=_by_type(window, Snapshot.objects.filter(tenant=tenant, created_at__gte=since, created_at__lte=now)),
        timeline=_timeline(window, since.astimezone(UTC).date(), now.astimezone(UTC).date()),
        storage_distribution=_by_storage(window),
    )


# --- reports ----------------------------------------------------------------------------------


@dataclass
class ReportData:
    tenant: Tenant
    start: date
    end: date
    generated_at: datetime
    summary: dict[str, Any]
    timeline: list[dict[str, Any]]
    by_type: dict[str, dict[str, int]]
    storage_distribution: dict[str, dict[str, Any]]
    failures: list[dict[str, Any]]
    failures_total: int
    verifications: list[dict[str, Any]]
    verifications_summary: dict[str, int]


#: Rows of failures and verifications a report lists (the counts cover them all).
REPORT_ROWS = 500


def day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    return (
        datetime.combine(start, time.min, tzinfo=UTC),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC),
    )


def report_backups(*, tenant: Tenant, start: date, end: date) -> QuerySet[Backup]:
    since, until = day_bounds(start, end)
    return Backup.objects.filter(tenant=tenant, created_at__gte=since, created_at__lt=until)


def report_data(*, tenant: Tenant, start: date, end: date) -> ReportData:
    """Everything a report shows for ``start``..``end`` (UTC days, inclusive), in a fixed
    number of queries."""
    since, until = day_bounds(start, end)
    window = report_backups(tenant=tenant, start=start, end=end)
    failed = window.filter(FAILED).order_by("-created_at", "-id")
    failures = [
        {
            "id": r["id"],
            "name": r["name"],
            "created_at": r["created_at"],
            "error": r["error_message"],
            "storage": r["storage__name"],
        }
        for r in failed.values("id", "name", "created_at", "error_message", "storage__name")[:REPORT_ROWS]
    ]
    checks = Verification.objects.filter(tenant=tenant, created_at__gte=since, created_at__lt=until)
    verifications = [
        {
            "id": r["id"],
            "backup_id": r["backup_id"],
            "backup": r["backup__name"],
            "test_type": r["test_type"],
            "status": r["status"],
            "passed": r["passed"],
            "completed_at": r["completed_at"],
            "error": r["error_message"],
        }
        for r in checks.order_by("-created_at", "-id").values(
            "id", "backup_id", "backup__name", "test_type", "status", "passed", "completed_at", "error_message"
        )[:REPORT_ROWS]
    ]
    counts = checks.aggregate(
        n=Count("id"),
        ok=Count("id", filter=Q(passed=True)),
        bad=Count("id", filter=Q(passed=False)),
        other=Count("id", filter=~Q(status=OperationStatus.COMPLETED)),
    )
    vsum = {"total": counts["n"], "passed": counts["ok"], "failed": counts["bad"], "other": counts["other"]}
    summary = _summary(Backup.objects.filter(tenant=tenant), Q(created_at__gte=since, created_at__lt=until))
    return ReportData(
        tenant=tenant,
        start=start,
        end=end,
        generated_at=timezone.now(),
        summary=summary,
        timeline=_timeline(window, start, end),
        by_type=_by_type(window, Snapshot.objects.filter(tenant=tenant, created_at__gte=since, created_at__lt=until)),
        storage_distribution=_by_storage(window),
        failures=failures,
        failures_total=summary["failed"],
        verifications=verifications,
        verifications_summary=vsum,
    )
