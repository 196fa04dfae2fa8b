"""What the overview shows, for the tenants a user may see (one query set per card).

Every figure comes from recorded rows (backups, operations, verifications, jobs, storage
usage) and from ``schedules.status.system_status`` for the alerts, so the overview says what
the status API says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Q, Sum
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone

from backupplatform import humanize
from backups.models import (
    Application,
    Backup,
    BackupStatus,
    Operation,
    OperationStatus,
    Server,
    Verification,
)
from schedules.models import BackupJob
from schedules.selectors import job_next_runs
from schedules.status import storage_usages, system_status
from tenants.models import Tenant

ACTIVE = (OperationStatus.PENDING, OperationStatus.RUNNING)
DATABASE_SERVER_TYPES = ("postgresql", "mysql")


def grace() -> timedelta:
    return timedelta(seconds=int(getattr(settings, "SCHEDULE_MISSED_GRACE", 900)))


@dataclass
class RpoRow:
    """One protected thing (an application, or a database of a server) and how old its
    newest good backup is against its schedule."""

    tenant: Tenant
    name: str
    kind: str
    job: BackupJob | None
    last_good: datetime | None
    interval: timedelta | None
    url: str = ""

    @property
    def age(self) -> timedelta | None:
        return None if self.last_good is None else timezone.now() - self.last_good

    @property
    def state(self) -> str:
        """``ok``, ``stale`` (older than one schedule interval plus the grace), ``never``
        (scheduled, never backed up) or ``unscheduled`` (no enabled job)."""
        if self.job is None or not self.job.enabled:
            return "unscheduled"
        if self.last_good is None:
            return "never"
        if self.interval is not None and self.age > self.interval + grace():
            return "stale"
        return "ok"

    @property
    def age_text(self) -> str:
        return "never" if self.age is None else ago(self.age)

    @property
    def interval_text(self) -> str:
        return "-" if self.interval is None else every(self.interval)


def ago(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 90:
        return f"{seconds} s ago"
    if seconds < 5400:
        return f"{round(seconds / 60)} min ago"
    if seconds < 48 * 3600:
        return f"{round(seconds / 3600)} h ago"
    return f"{round(seconds / 86400)} days ago"


def every(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 3600:
        return f"every {round(seconds / 60)} min"
    if seconds < 86400:
        hours = round(seconds / 3600)
        return "hourly" if hours == 1 else f"every {hours} h"
    days = round(seconds / 86400)
    return "daily" if days == 1 else "weekly" if days == 7 else f"every {days} days"


def _interval(job: BackupJob) -> timedelta | None:
    runs = job_next_runs(job, count=2)
    return runs[1] - runs[0] if len(runs) == 2 else None


@dataclass
class Overview:
    tenants: list[Tenant]
    now: datetime
    protected: int = 0
    unprotected: list[Any] = field(default_factory=list)
    succeeded_24h: int = 0
    failed_24h: int = 0
    running: list[Operation] = field(default_factory=list)
    next_runs: list[tuple[datetime, BackupJob]] = field(default_factory=list)
    storages: list[Any] = field(default_factory=list)
    last_verified: Verification | None = None
    rpo: list[RpoRow] = field(default_factory=list)
    alerts: list[tuple[Tenant, Any]] = field(default_factory=list)
    days: list[dict] = field(default_factory=list)
    failures: list[Backup] = field(default_factory=list)
    health: str = "healthy"

    @property
    def stale_count(self) -> int:
        return sum(1 for r in self.rpo if r.state in ("stale", "never"))

    @property
    def total_sources(self) -> int:
        return self.protected + len(self.unprotected)


def overview(tenants: list[Tenant], *, now: datetime | None = None) -> Overview:
    now = now or timezone.now()
    ids = [t.pk for t in tenants]
    view = Overview(tenants=tenants, now=now)
    jobs = list(BackupJob.objects.filter(tenant_id__in=ids).select_related("tenant", "application", "server"))
    enabled = [j for j in jobs if j.enabled]

    # --- protected vs not: applications and database servers with an enabled job -------
    by_app = {j.application_id: j for j in jobs if j.application_id}
    by_server: dict[int, list[BackupJob]] = {}
    for job in jobs:
        if job.server_id and not job.application_id:
            by_server.setdefault(job.server_id, []).append(job)
    apps = list(
        Application.objects.filter(tenant_id__in=ids)
        .select_related("tenant")
        .annotate(n_sources=Count("sources"))
        .filter(n_sources__gt=0)
    )
    servers = list(Server.objects.filter(tenant_id__in=ids, type__in=DATABASE_SERVER_TYPES).select_related("tenant"))
    last_ok = Q(status=BackupStatus.COMPLETED)
    app_last = dict(
        Backup.objects.filter(last_ok, application_id__in=[a.pk for a in apps])
        .values("application_id")
        .annotate(t=Max("completed_at"))
        .values_list("application_id", "t")
    )
    db_last = {
        (s, d): t
        for s, d, t in Backup.objects.filter(last_ok, server_id__in=[s.pk for s in servers])
        .values("server_id", "database_name")
        .annotate(t=Max("completed_at"))
        .values_list("server_id", "database_name", "t")
    }
    for app in apps:
        job = by_app.get(app.pk)
        if job is not None and job.enabled:
            view.protected += 1
        else:
            view.unprotected.append(app)
        view.rpo.append(
            RpoRow(
                tenant=app.tenant,
                name=app.name,
                kind="application",
                job=job,
                last_good=app_last.get(app.pk),
                interval=_interval(job) if job else None,
                url=reverse("admin:backups_application_change", args=[app.pk]),
            )
        )
    for server in servers:
        server_jobs = [j for j in by_server.get(server.pk, []) if j.enabled]
        if server_jobs:
            view.protected += 1
        else:
            view.unprotected.append(server)
        for job in by_server.get(server.pk, []):
            view.rpo.append(
                RpoRow(
                    tenant=server.tenant,
                    name=f"{server.name} / {job.database_name}",
                    kind="database",
                    job=job,
                    last_good=db_last.get((server.pk, job.database_name)),
                    interval=_interval(job),
                    url=reverse("admin:backups_server_change", args=[server.pk]),
                )
            )
    order = {"stale": 0, "never": 1, "ok": 2, "unscheduled": 3}
    view.rpo.sort(key=lambda r: (order[r.state], r.name.lower()))

    # --- the last 24 hours, running work, next runs ------------------------------------
    since = now - timedelta(hours=24)
    backups = Backup.objects.filter(tenant_id__in=ids)
    day = backups.filter(Q(completed_at__gte=since) | Q(completed_at__isnull=True, created_at__gte=since)).aggregate(
        ok=Count("id", filter=Q(status=BackupStatus.COMPLETED)),
        failed=Count("id", filter=Q(status=BackupStatus.FAILED)),
    )
    view.succeeded_24h, view.failed_24h = day["ok"], day["failed"]
    view.running = list(
        Operation.objects.filter(tenant_id__in=ids, status__in=ACTIVE)
        .select_related("tenant", "backup")
        .order_by("created_at")[:20]
    )
    runs = [(run, job) for job in enabled for run in job_next_runs(job, count=1, after=now)]
    view.next_runs = sorted(runs, key=lambda r: r[0])[:5]

    # --- storage, verification -----------------------------------------------------------
    for tenant in tenants:
        view.storages.extend(storage_usages(tenant=tenant))
    view.last_verified = (
        Verification.objects.filter(tenant_id__in=ids, passed=True)
        .select_related("backup")
        .order_by("-completed_at", "-id")
        .first()
    )

    # --- alerts (the status API's) -------------------------------------------------------
    levels = set()
    for tenant in tenants:
        status = system_status(tenant=tenant, now=now)
        levels.add(status.health)
        view.alerts.extend((tenant, a) for a in status.alerts if a.level != "info")
    view.health = "failing" if "failing" in levels else "degraded" if "degraded" in levels else "healthy"
    rank = {"critical": 0, "warning": 1}
    view.alerts.sort(key=lambda ta: rank.get(ta[1].level, 2))

    # --- 30 days: successes, failures and bytes per day -----------------------------------
    start = (now - timedelta(days=29)).date()
    rows = {
        r["day"]: r
        for r in backups.filter(created_at__date__gte=start)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(
            ok=Count("id", filter=Q(status=BackupStatus.COMPLETED)),
            failed=Count("id", filter=Q(status=BackupStatus.FAILED)),
            bytes=Sum("stored_bytes", filter=Q(status=BackupStatus.COMPLETED)),
        )
    }
    view.days = [
        {
            "day": start + timedelta(days=i),
            "ok": (rows.get(start + timedelta(days=i)) or {}).get("ok", 0),
            "failed": (rows.get(start + timedelta(days=i)) or {}).get("failed", 0),
            "bytes": (rows.get(start + timedelta(days=i)) or {}).get("bytes") or 0,
        }
        for i in range(30)
    ]
    view.failures = list(
        backups.filter(status=BackupStatus.FAILED)
        .select_related("tenant", "server", "application")
        .order_by("-created_at")[:8]
    )
    return view


def chart(days: list[dict], *, width: int = 600, height: int = 140) -> dict:
    """Bars for the 30-day chart as SVG coordinates (successes green over failures red) and
    a line of stored bytes; computed here so the page needs no chart library."""
    top = max([d["ok"] + d["failed"] for d in days] + [1])
    top_bytes = max([d["bytes"] for d in days] + [1])
    slot = width / max(1, len(days))
    bars, points = [], []
    for i, d in enumerate(days):
        x = round(i * slot + 1, 1)
        ok_h = round(d["ok"] * (height - 20) / top, 1)
        failed_h = round(d["failed"] * (height - 20) / top, 1)
        bars.append(
            {
                "x": x,
                "w": round(slot - 2, 1),
                "ok_y": round(height - ok_h, 1),
                "ok_h": ok_h,
                "failed_y": round(height - ok_h - failed_h, 1),
                "failed_h": failed_h,
                "title": f"{d['day']:%d %b}: {d['ok']} succeeded, {d['failed']} failed, "
                f"{humanize.size(d['bytes'])} stored",
            }
        )
        points.append(f"{round(x + slot / 2, 1)},{round(height - d['bytes'] * (height - 20) / top_bytes, 1)}")
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "line": " ".join(points),
        "top": top,
        "top_bytes": humanize.size(top_bytes),
        "first": days[0]["day"] if days else None,
        "last": days[-1]["day"] if days else None,
    }
