"""The state of a tenant's backups at a glance: health, security score, storage use and
alerts (system-backup-recovery.rst "Get Backup Status" and the ``/ws/backup/health``
socket). Reads only; every figure comes from recorded facts (runs, verifications, storage
probes, beat and worker signs of life), never from estimates.

Health (``backup_system``) follows the alerts: ``failing`` when any alert is critical,
``degraded`` when any is a warning, ``healthy`` otherwise. The rules of the security score
are ``SECURITY_RULES``; the README lists both.

It lives in ``schedules``, the highest of the domain apps, because it reads all of them:
backups and storages, the schedules, and the Acronis connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Q
from django.utils import timezone

from acronis.selectors import connection_state
from backups.backup_selectors import backup_locations
from backups.config_selectors import Liveness, service_liveness, storage_list
from backups.models import Backup, BackupStatus, Storage, StorageStatus, StorageType, TenantKey
from backups.services.storages import storage_free_space
from tenants.models import Tenant

from .selectors import job_list, job_next_run, jobs_missed


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def verify_max_age_days() -> int:
    """ "No verified backup in N days" (``CONSOLE_VERIFY_MAX_AGE_DAYS``, default 7)."""
    return int(_setting("CONSOLE_VERIFY_MAX_AGE_DAYS", 7))


def storage_threshold(storage: Storage) -> int:
    """Percent of a storage's capacity past which it raises a warning: the storage's own
    ``cleanup_threshold`` (set through the console's storage settings), else
    ``STORAGE_ALERT_THRESHOLD`` (80)."""
    value = getattr(storage, "cleanup_threshold", None) or (storage.configuration or {}).get("cleanup_threshold")
    if isinstance(value, int | float) and not isinstance(value, bool) and 1 <= value <= 100:
        return int(value)
    return int(_setting("STORAGE_ALERT_THRESHOLD", 80))


#: Full past this percent is critical, whatever the threshold.
STORAGE_CRITICAL = 95
OFFSITE_TYPES = (StorageType.S3, StorageType.MINIO, StorageType.GCS, StorageType.AZURE, StorageType.SFTP)


@dataclass
class StorageUsage:
    """What a storage holds and how full it is. ``capacity_bytes`` is its quota, else (local
    folders) what the filesystem has room for; ``None`` where neither is known."""

    storage: Storage
    used_bytes: int
    backup_count: int
    available_bytes: int | None
    capacity_bytes: int | None
    threshold_percent: int

    @property
    def used_percent(self) -> float | None:
        if not self.capacity_bytes:
            return None
        return round(self.used_bytes * 100 / self.capacity_bytes, 1)

    @property
    def reachable(self) -> bool:
        return self.storage.status != StorageStatus.ERROR and self.storage.last_test_ok is not False

    @property
    def health(self) -> str:
        """``good``, ``warning`` (past its threshold), ``critical`` (past 95 % or no room
        left), ``offline`` (its last probe failed) or ``disabled``."""
        if self.storage.status == StorageStatus.INACTIVE:
            return "disabled"
        if not self.reachable:
            return "offline"
        percent = self.used_percent
        if (percent is not None and percent >= STORAGE_CRITICAL) or self.available_bytes == 0:
            return "critical"
        if percent is not None and percent >= self.threshold_percent:
            return "warning"
        return "good"

    @property
    def offsite(self) -> bool:
        return self.storage.type in OFFSITE_TYPES


def storage_usages(*, tenant: Tenant) -> list[StorageUsage]:
    """Every storage of the tenant with its use (one query; local folders also ask the
    filesystem, which costs no network)."""

    usages = []
    for storage in storage_list(tenant=tenant):
        available = None
        if storage.type == StorageType.LOCAL and storage.status != StorageStatus.INACTIVE:
            available = storage_free_space(storage=storage).available_bytes
        capacity = None
        if storage.quota_bytes:
            capacity = storage.quota_bytes
            available = (
                max(0, storage.quota_bytes - storage.used_bytes)
                if available is None
                else min(available, max(0, storage.quota_bytes - storage.used_bytes))
            )
        elif available is not None:
            capacity = storage.used_bytes + available
        usages.append(
            StorageUsage(
                storage=storage,
                used_bytes=storage.used_bytes,
                backup_count=storage.backup_count,
                available_bytes=available,
                capacity_bytes=capacity,
                threshold_percent=storage_threshold(storage),
            )
        )
    return usages


@dataclass
class Alert:
    level: str  # info, warning, critical
    code: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class SecurityRule:
    """One rule of the security score. ``status``: ``passed``, ``failed``, ``unknown`` (not
    measurable here yet: left out of the score) or ``not_available`` (the feature does not
    exist: left out of the score)."""

    rule: str
    description: str
    points: int
    status: str
    detail: str

    @property
    def scored(self) -> bool:
        return self.status in ("passed", "failed")


#: rule -> (points, what it checks). Points of rules that cannot be measured are left out,
#: and the score is the share of the measurable points earned (0-100).
SECURITY_RULES = {
    "encryption": (25, "Every completed backup is encrypted (AES-256-GCM)"),
    "recent_verification": (25, "A backup was verified within the last N days (CONSOLE_VERIFY_MAX_AGE_DAYS)"),
    "offsite_copy": (25, "The newest backup has a copy off this machine (S3, MinIO, GCS, Azure or SFTP)"),
    "key_exported": (25, "The workspace's data key was exported for offline restores"),
    "admins_2fa": (0, "Every admin signs in with two factors"),
}


def _key_exported(tenant: Tenant) -> tuple[str, str]:
    """Whether the data key was exported, where the platform records it; ``unknown`` where
    it does not (an export marker on ``TenantKey``)."""
    fields = {f.name for f in TenantKey._meta.get_fields()}
    marker = next((name for name in ("exported_at", "last_exported_at", "key_exported_at") if name in fields), None)
    if marker is None:
        return "unknown", "The platform does not record key exports yet"
    exported = TenantKey.objects.filter(tenant=tenant).values_list(marker, flat=True).first()
    if exported:
        return "passed", f"Exported {exported.isoformat()}"
    return "failed", "Export the key (manage.py exportkey) and keep it somewhere safe"


@dataclass
class SystemStatus:
    health: str
    security_score: int | None
    security_rules: list[SecurityRule]
    last_successful_backup: datetime | None
    total_backups: int
    completed_backups: int
    stored_bytes: int
    storages: list[StorageUsage]
    scheduler: dict[str, Any]
    liveness: Liveness
    acronis: dict[str, Any] | None
    alerts: list[Alert]

    @property
    def local_storage(self) -> StorageUsage | None:
        """The default storage if it is local, else the first local one."""
        local = [u for u in self.storages if u.storage.type == StorageType.LOCAL]
        return next((u for u in local if u.storage.is_default), local[0] if local else None)

    @property
    def cloud_storage(self) -> StorageUsage | None:
        offsite = [u for u in self.storages if u.offsite]
        return next((u for u in offsite if u.storage.is_default), offsite[0] if offsite else None)


def system_status(*, tenant: Tenant, now: datetime | None = None) -> SystemStatus:

    now = now or timezone.now()
    backups = Backup.objects.filter(tenant=tenant)
    max_age = verify_max_age_days()
    agg = backups.aggregate(
        total=Count("id"),
        completed=Count("id", filter=Q(status=BackupStatus.COMPLETED)),
        last_ok=Max("completed_at", filter=Q(status=BackupStatus.COMPLETED)),
        unencrypted=Count("id", filter=Q(status=BackupStatus.COMPLETED, encrypted=False)),
        last_verified=Max("verified_at", filter=Q(verified=True)),
    )
    last_finished = (
        backups.filter(status__in=(BackupStatus.COMPLETED, BackupStatus.FAILED))
        .select_related("storage")
        .order_by("-completed_at", "-id")
        .first()
    )
    newest_ok = (
        last_finished
        if last_finished is not None and last_finished.status == BackupStatus.COMPLETED
        else backups.filter(status=BackupStatus.COMPLETED)
        .select_related("storage")
        .order_by("-completed_at", "-id")
        .first()
    )
    storages = storage_usages(tenant=tenant)
    liveness = service_liveness(now=now)
    jobs = [job for job in job_list(tenant=tenant) if job.enabled]
    next_runs = [run for run in (job_next_run(job, after=now) for job in jobs) if run is not None]
    next_run = min(next_runs) if next_runs else None
    acronis = connection_state(tenant=tenant)
    alerts: list[Alert] = []

    # --- alerts -------------------------------------------------------------------------
    if liveness.worker == "down":
        alerts.append(Alert("critical", "worker_down", "No backup worker is running: queued work is not picked up"))
    if liveness.beat == "down":
        alerts.append(
            Alert(
                "critical" if jobs else "warning",
                "scheduler_down",
                "The scheduler (beat) has stopped: scheduled backups will not run",
                {"last_seen": liveness.beat_seen_at},
            )
        )
    if last_finished is not None and last_finished.status == BackupStatus.FAILED:
        alerts.append(
            Alert(
                "critical",
                "last_backup_failed",
                f"The last backup ({last_finished.name}) failed: {last_finished.error_message or 'no reason recorded'}",
                {"backup_id": last_finished.pk},
            )
        )
    for usage in storages:
        health, name = usage.health, usage.storage.name
        if health == "offline":
            alerts.append(
                Alert(
                    "critical" if usage.storage.is_default else "warning",
                    "storage_unreachable",
                    f"Storage '{name}' cannot be reached: {usage.storage.last_test_message or 'its last check failed'}",
                    {"storage_id": usage.storage.pk},
                )
            )
        elif health in ("warning", "critical"):
            alerts.append(
                Alert(
                    health,
                    "storage_threshold",
                    f"Storage '{name}' is {usage.used_percent:g}% full"
                    if usage.used_percent is not None
                    else f"Storage '{name}' has no room left",
                    {
                        "storage_id": usage.storage.pk,
                        "used_percent": usage.used_percent,
                        "threshold_percent": usage.threshold_percent,
                    },
                )
            )
    verified_recently = agg["last_verified"] is not None and agg["last_verified"] >= now - timedelta(days=max_age)
    if agg["completed"] and not verified_recently:
        alerts.append(
            Alert(
                "warning",
                "no_recent_verification",
                f"No backup has been verified in the last {max_age} days",
                {"last_verified_at": agg["last_verified"], "days": max_age},
            )
        )
    for job, due in jobs_missed(tenant=tenant, now=now, grace_seconds=int(_setting("SCHEDULE_MISSED_GRACE", 900))):
        alerts.append(
            Alert(
                "warning",
                "schedule_missed",
                f"Schedule '{job.name}' missed its run due {due:%Y-%m-%d %H:%M} UTC",
                {"schedule_id": job.public_id, "due_at": due},
            )
        )
    if acronis is not None and acronis["status"] != "connected":
        alerts.append(
            Alert(
                "warning",
                "acronis_disconnected",
                "Acronis Cyber Protect Cloud cannot be reached",
                {"last_polled_at": acronis["last_polled_at"]},
            )
        )
    if next_run is not None:
        hours = (next_run - now).total_seconds() / 3600
        when = f"{round(hours)} hours" if hours >= 1.5 else f"{max(1, round(hours * 60))} minutes"
        alerts.append(Alert("info", "next_scheduled_backup", f"Scheduled backup in {when}", {"next_run": next_run}))

    # --- security score -------------------------------------------------------------------
    rules = []

    def rule(name: str, status: str, detail: str) -> None:
        points, description = SECURITY_RULES[name]
        rules.append(SecurityRule(name, description, points, status, detail))

    if agg["completed"]:
        rule(
            "encryption",
            "failed" if agg["unencrypted"] else "passed",
            f"{agg['unencrypted']} completed backup(s) are not encrypted"
            if agg["unencrypted"]
            else "All completed backups are encrypted",
        )
    else:
        rule("encryption", "unknown", "No completed backup yet")
    rule(
        "recent_verification",
        "passed" if verified_recently else "failed",
        f"Last verified {agg['last_verified']:%Y-%m-%d}" if agg["last_verified"] else "No backup has been verified",
    )
    if newest_ok is None:
        rule("offsite_copy", "failed", "No completed backup yet")
    else:
        offsite = [loc.storage.name for loc in backup_locations(backup=newest_ok) if loc.storage.type in OFFSITE_TYPES]
        rule(
            "offsite_copy",
            "passed" if offsite else "failed",
            f"Copy in {', '.join(offsite)}"
            if offsite
            else f"The newest backup ({newest_ok.name}) is only on this machine",
        )
    rule("key_exported", *_key_exported(tenant))
    rule("admins_2fa", "not_available", "Two-factor sign-in does not exist on this platform yet; not scored")
    possible = sum(r.points for r in rules if r.scored)
    earned = sum(r.points for r in rules if r.status == "passed")
    score = round(earned * 100 / possible) if possible else None

    levels = {a.level for a in alerts}
    health = "failing" if "critical" in levels else "degraded" if "warning" in levels else "healthy"
    scheduler = {
        "status": ("stopped" if liveness.beat == "down" else "enabled" if jobs else "disabled"),
        "next_run": next_run,
        "enabled_schedules": len(jobs),
    }
    return SystemStatus(
        health=health,
        security_score=score,
        security_rules=rules,
        last_successful_backup=agg["last_ok"],
        total_backups=agg["total"],
        completed_backups=agg["completed"],
        stored_bytes=sum(u.used_bytes for u in storages),
        storages=storages,
        scheduler=scheduler,
        liveness=liveness,
        acronis=acronis,
        alerts=alerts,
    )
