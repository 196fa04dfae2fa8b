"""Shapes of system-backup-recovery.rst "Scheduled Backups" and "Cleanup Operations"."""

from __future__ import annotations

import re

from drf_spectacular.utils import PolymorphicProxySerializer, inline_serializer
from rest_framework import serializers

from backupplatform.facades.scheduling import (
    BackupTypeField,
    StrictTimeField,
    iso,
    next_run,
    weekday_list,
)
from backupplatform.facades.serializers import (
    InputSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
)
from backups.progress import format_eta
from schedules.models import BackupJob, ScheduleType

FREQUENCIES = ["hourly", "daily", "weekly", "monthly", "custom"]
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB)\s*$", re.IGNORECASE)


class ConsoleNotificationsSerializer(InputSerializer):
    on_success = StrictBooleanField(required=False)
    on_failure = StrictBooleanField(required=False)


class ScheduleSerializer(serializers.Serializer):
    """One schedule as the console form shows it (``id`` is the job's stable ``public_id``)."""

    def to_representation(self, job: BackupJob) -> dict:
        custom = job.schedule_type in (ScheduleType.CRON, ScheduleType.CUSTOM)
        body = {
            "id": job.public_id,
            "enabled": job.enabled,
            "name": job.name,
            "type": job.backup_type,
            "frequency": "custom" if custom else job.schedule_type,
            "time": job.schedule_time.strftime("%H:%M") if job.schedule_time else None,
            "timezone": job.timezone,
            "retention_count": job.retention_count,
            "encryption": True,  # artifacts are always AES-256-GCM encrypted
            "destination": job.storage.name if job.storage else "local",
            "auto_purge": job.auto_purge,
            "last_execution": iso(job.last_run_at),
            "next_execution": iso(next_run(job)),
            "notifications": {
                "on_success": bool((job.notifications or {}).get("on_success", False)),
                "on_failure": bool((job.notifications or {}).get("on_failure", True)),
            },
        }
        if custom:
            body["cron"] = job.cron_expression
        if job.days_of_week:
            body["days_of_week"] = job.days_of_week
        return body


class ScheduleUpdateSerializer(InputSerializer):
    schedule_id = StrictCharField(max_length=64)
    name = StrictCharField(required=False, max_length=200)
    enabled = StrictBooleanField(required=False)
    frequency = serializers.ChoiceField(choices=FREQUENCIES, required=False)
    time = StrictTimeField(required=False, allow_null=True)
    timezone = StrictCharField(required=False, max_length=64)
    days_of_week = weekday_list(required=False, allow_null=True)
    day_of_month = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=28)
    cron = StrictCharField(required=False, max_length=120)
    retention_count = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=100_000)
    type = BackupTypeField(required=False, max_length=20)
    destination = StrictCharField(required=False, max_length=200)
    encryption = StrictBooleanField(required=False)
    auto_purge = StrictBooleanField(required=False)
    notifications = ConsoleNotificationsSerializer(required=False)

    def validate_schedule_id(self, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", value):
            raise serializers.ValidationError("Use letters, digits, '_', '-' or '.'.")
        return value

    def validate_encryption(self, value: bool) -> bool:
        if not value:
            raise serializers.ValidationError("Backups are always encrypted (AES-256-GCM).")
        return value


class ScheduleToggleSerializer(InputSerializer):
    schedule_id = StrictCharField(max_length=64)
    enabled = StrictBooleanField()


def parse_size(value: str) -> int:
    match = _SIZE.match(value)
    if not match:
        raise serializers.ValidationError("Use a size such as '5 GB'.")
    power = ["B", "KB", "MB", "GB", "TB"].index(match.group(2).upper())
    return int(float(match.group(1)) * 1024**power)


class CleanupSerializer(InputSerializer):
    dry_run = StrictBooleanField(required=False, default=True)
    storage_locations = serializers.ListField(child=StrictCharField(max_length=200), required=False, max_length=50)
    retention_policy = StrictCharField(required=False, max_length=40)
    max_age_days = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=100_000)
    min_free_space = StrictCharField(required=False, max_length=40)
    reason = StrictCharField(required=False, allow_blank=True, max_length=500)
    schedule_id = StrictCharField(required=False, max_length=64)

    def validate_min_free_space(self, value: str) -> int:
        return parse_size(value)


class CleanupExecuteSerializer(InputSerializer):
    cleanup_plan_id = StrictCharField(max_length=64)
    confirmation = StrictBooleanField()
    notify_on_completion = StrictBooleanField(required=False)

    def validate_confirmation(self, value: bool) -> bool:
        if value is not True:
            raise serializers.ValidationError("Confirm the cleanup with true.")
        return value


def cleanup_progress(op) -> dict:
    """``GET /cleanup/progress/{id}``, in the shape of the seed's other progress bodies."""
    details = op.details or {}
    return {
        "cleanup_id": op.public_id,
        "operation": "cleanup",
        "status": op.status,
        "progress": op.progress,
        "current_step": op.step,
        "details": {
            "cleanup_plan_id": details.get("cleanup_plan_id"),
            "backups_total": details.get("backups_total", 0),
            "backups_removed": details.get("backups_removed", 0),
            "space_freed": details.get("space_freed") or f"{details.get('space_freed_bytes', 0)} B",
            "failed": details.get("failed", []),
            "skipped": details.get("skipped", []),
            "eta": format_eta(op.eta_seconds),
        },
        "errors": op.errors,
        "warnings": op.warnings,
        "started_at": iso(op.started_at),
        "finished_at": iso(op.finished_at),
    }


# --- response shapes, for the OpenAPI schema (the views build these bodies) ---------------

_ts = {"allow_null": True, "help_text": "ISO 8601 UTC"}

ConsoleScheduleShape = inline_serializer(
    "ConsoleSchedule",
    {
        "id": serializers.CharField(),
        "enabled": serializers.BooleanField(),
        "name": serializers.CharField(),
        "type": serializers.CharField(),
        "frequency": serializers.ChoiceField(choices=FREQUENCIES),
        "time": serializers.CharField(allow_null=True),
        "timezone": serializers.CharField(),
        "retention_count": serializers.IntegerField(allow_null=True),
        "encryption": serializers.BooleanField(),
        "destination": serializers.CharField(),
        "auto_purge": serializers.BooleanField(),
        "last_execution": serializers.CharField(**_ts),
        "next_execution": serializers.CharField(**_ts),
        "notifications": inline_serializer(
            "ConsoleScheduleNotifications",
            {"on_success": serializers.BooleanField(), "on_failure": serializers.BooleanField()},
        ),
        "cron": serializers.CharField(required=False, help_text="custom schedules only"),
        "days_of_week": serializers.ListField(child=serializers.IntegerField(), required=False),
    },
)
ScheduleListShape = inline_serializer(
    "ConsoleScheduleList",
    {"schedules": serializers.ListField(child=ConsoleScheduleShape), "total_schedules": serializers.IntegerField()},
)
ScheduleSavedShape = inline_serializer(
    "ConsoleScheduleSaved",
    {
        "status": serializers.CharField(help_text='"updated"'),
        "schedule_id": serializers.CharField(),
        "next_execution": serializers.CharField(**_ts),
        "message": serializers.CharField(),
    },
)
ScheduleToggledShape = inline_serializer(
    "ConsoleScheduleToggled",
    {
        "status": serializers.ChoiceField(choices=["updated"]),
        "schedule_id": serializers.CharField(),
        "enabled": serializers.BooleanField(),
        "message": serializers.CharField(),
    },
)
CleanupAnalysedShape = inline_serializer(
    "ConsoleCleanupAnalysed",
    {
        "status": serializers.ChoiceField(choices=["analyzed"]),
        "dry_run": serializers.BooleanField(),
        "cleanup_plan_id": serializers.CharField(),
        "analysis": inline_serializer(
            "ConsoleCleanupAnalysis",
            {
                "total_backups": serializers.IntegerField(),
                "eligible_for_removal": serializers.IntegerField(),
                "space_to_free": serializers.CharField(),
                "backups_to_keep": serializers.IntegerField(),
                "protected_backups": serializers.IntegerField(),
            },
        ),
        "backup_ids": serializers.ListField(child=serializers.IntegerField()),
        "expires_at": serializers.CharField(),
        "action_required": serializers.BooleanField(),
        "confirm_action": serializers.CharField(),
    },
)
CleanupStartedShape = inline_serializer(
    "ConsoleCleanupStarted",
    {
        "status": serializers.ChoiceField(choices=["cleanup_started"]),
        "cleanup_id": serializers.CharField(),
        "cleanup_plan_id": serializers.CharField(),
        "backups_to_remove": serializers.IntegerField(),
        "estimated_space": serializers.CharField(),
        "estimated_duration": serializers.CharField(),
        "progress_url": serializers.CharField(),
    },
)
CleanupShape = PolymorphicProxySerializer(
    component_name="ConsoleCleanupResult",
    serializers=[CleanupAnalysedShape, CleanupStartedShape],
    resource_type_field_name=None,
)
CleanupProgressShape = inline_serializer(
    "ConsoleCleanupProgress",
    {
        "cleanup_id": serializers.CharField(),
        "operation": serializers.CharField(),
        "status": serializers.CharField(),
        "progress": serializers.IntegerField(),
        "current_step": serializers.CharField(),
        "details": inline_serializer(
            "ConsoleCleanupProgressDetails",
            {
                "cleanup_plan_id": serializers.CharField(allow_null=True),
                "backups_total": serializers.IntegerField(),
                "backups_removed": serializers.IntegerField(),
                "space_freed": serializers.CharField(),
                "failed": serializers.ListField(child=serializers.JSONField()),
                "skipped": serializers.ListField(child=serializers.JSONField()),
                "eta": serializers.CharField(allow_null=True),
            },
        ),
        "errors": serializers.IntegerField(),
        "warnings": serializers.IntegerField(),
        "started_at": serializers.CharField(**_ts),
        "finished_at": serializers.CharField(**_ts),
    },
)
