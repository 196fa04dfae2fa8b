"""Workspace facade (workspace-backup-api.md "Backup Policies", "Trigger Manual Backup").

An application's backup policy is its ``BackupJob`` (one per application): frequency/time/
timezone/days_of_week, GFS ``retention``, ``options``, ``notifications``. The policy ``id``
is the job's ``public_id``. Changing or deleting a policy while one of its runs is going is
refused with 409 ``BACKUP_IN_PROGRESS``. Dedicated plan only (``DedicatedPlanMixin``).
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers

from backupplatform.errors import NotFound, fields_renamed
from backupplatform.facades.base import respond
from backupplatform.facades.scheduling import StrictTimeField, iso, next_run, weekday_list
from backupplatform.facades.serializers import (
    InputSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictDictField,
    StrictIntegerField,
    validated,
)
from backups.models import Application, Storage
from backups.services.backups import backup_start
from schedules import selectors, services
from schedules.models import BackupJob, ScheduleType
from tenants.models import Role

from . import ids
from .backups import workspace_status
from .conventions import WorkspaceView
from .ids import IdInput
from .permissions import DedicatedPlanMixin

FREQUENCIES = ["hourly", "daily", "weekly", "monthly", "custom"]
ALIASES = {
    "schedule_type": "schedule.frequency",
    "schedule_time": "schedule.time",
    "timezone": "schedule.timezone",
    "days_of_week": "schedule.days_of_week",
    "day_of_month": "schedule.day_of_month",
    "cron_expression": "schedule.cron",
    "storage_id": "storage_id",
}


class PolicyScheduleInputSerializer(InputSerializer):
    frequency = serializers.ChoiceField(choices=FREQUENCIES)
    time = StrictTimeField(required=False, allow_null=True)
    timezone = StrictCharField(required=False, max_length=64)
    days_of_week = weekday_list(required=False, allow_null=True)
    day_of_month = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=28)
    cron = StrictCharField(required=False, max_length=120)


class PolicyRetentionInputSerializer(InputSerializer):
    daily = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=100_000)
    weekly = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=100_000)
    monthly = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=100_000)
    yearly = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=100_000)


class PolicyNotificationsInputSerializer(InputSerializer):
    on_success = StrictBooleanField(required=False)
    on_failure = StrictBooleanField(required=False)
    channels = serializers.ListField(child=StrictCharField(max_length=300), required=False, max_length=20)


class PolicyInputSerializer(InputSerializer):
    storage_id = IdInput("storage", required=False, allow_null=True)
    enabled = StrictBooleanField(required=False)
    schedule = PolicyScheduleInputSerializer()
    retention = PolicyRetentionInputSerializer(required=False)
    options = StrictDictField(required=False)
    notifications = PolicyNotificationsInputSerializer(required=False)


class PolicyUpdateSerializer(PolicyInputSerializer):
    schedule = PolicyScheduleInputSerializer(required=False)


class TriggerInputSerializer(InputSerializer):
    description = StrictCharField(required=False, allow_blank=True, max_length=5000)
    retention_override = StrictDictField(required=False)
    options = StrictDictField(required=False)

    def validate_retention_override(self, value: dict) -> dict:
        unknown = sorted(set(value) - {"keep_until", "keep_forever"})
        if unknown:
            raise serializers.ValidationError({name: "Unknown field." for name in unknown})
        out = {}
        if "keep_until" in value and value["keep_until"] is not None:
            if not isinstance(value["keep_until"], str):
                raise serializers.ValidationError({"keep_until": "A date-time string is required."})
            out["keep_until"] = serializers.DateTimeField().to_internal_value(value["keep_until"])
        if "keep_forever" in value:
            if not isinstance(value["keep_forever"], bool):
                raise serializers.ValidationError({"keep_forever": "Must be true or false."})
            out["keep_forever"] = value["keep_forever"]
        return out


class PolicySerializer(serializers.Serializer):
    """The seed's Backup Policy Object, with ``next_backup``/``last_backup`` and statistics."""

    def to_representation(self, job: BackupJob) -> dict:
        schedule = {
            "frequency": "custom"
            if job.schedule_type in (ScheduleType.CRON, ScheduleType.CUSTOM)
            else job.schedule_type,
            "time": job.schedule_time.strftime("%H:%M") if job.schedule_time else None,
            "timezone": job.timezone,
            "days_of_week": job.days_of_week or None,
            "next_backup": iso(next_run(job)),
            "last_backup": iso(job.last_run_at),
        }
        if schedule["frequency"] == "custom":
            schedule["cron"] = job.cron_expression
        if job.schedule_type == ScheduleType.MONTHLY:
            schedule["day_of_month"] = job.day_of_month or 1
        body = {
            "id": ids.public("policy", job.pk),
            "application_id": job.application_id,
            "storage_id": job.storage_id,
            "enabled": job.enabled,
            "created_at": iso(job.created_at),
            "updated_at": iso(job.updated_at),
            "schedule": schedule,
            "retention": {k: (job.retention or {}).get(k) for k in ("daily", "weekly", "monthly", "yearly")},
            "options": job.options or {},
            "notifications": job.notifications or {},
        }
        if self.context.get("statistics"):
            body["statistics"] = selectors.job_statistics(job)
        return body


# Response shapes for the OpenAPI schema (``PolicySerializer`` builds the body by hand).
_ts = {"allow_null": True, "help_text": "ISO 8601 UTC"}
PolicyShape = inline_serializer(
    "BackupPolicy",
    {
        "id": serializers.CharField(),
        "application_id": serializers.CharField(),
        "storage_id": serializers.CharField(allow_null=True),
        "enabled": serializers.BooleanField(),
        "created_at": serializers.CharField(**_ts),
        "updated_at": serializers.CharField(**_ts),
        "schedule": inline_serializer(
            "BackupPolicySchedule",
            {
                "frequency": serializers.ChoiceField(choices=FREQUENCIES),
                "time": serializers.CharField(allow_null=True),
                "timezone": serializers.CharField(),
                "days_of_week": serializers.ListField(child=serializers.IntegerField(), allow_null=True),
                "next_backup": serializers.CharField(**_ts),
                "last_backup": serializers.CharField(**_ts),
                "cron": serializers.CharField(required=False, help_text="custom frequency only"),
                "day_of_month": serializers.IntegerField(required=False, help_text="monthly frequency only"),
            },
        ),
        "retention": inline_serializer(
            "BackupPolicyRetention",
            {name: serializers.IntegerField(allow_null=True) for name in ("daily", "weekly", "monthly", "yearly")},
        ),
        "options": serializers.DictField(),
        "notifications": serializers.DictField(),
        "statistics": inline_serializer(
            "BackupPolicyStatistics",
            {
                "total_backups": serializers.IntegerField(),
                "successful_backups": serializers.IntegerField(),
                "failed_backups": serializers.IntegerField(),
                "average_size_gb": serializers.FloatField(),
                "average_duration_minutes": serializers.FloatField(),
            },
            required=False,
            help_text="GET only",
        ),
    },
)
PolicyDeletedShape = inline_serializer(
    "BackupPolicyDeleted", {"message": serializers.CharField(), "policy_id": serializers.CharField()}
)
TriggeredShape = inline_serializer(
    "BackupTriggered",
    {
        "backup_id": serializers.CharField(allow_null=True),
        "application_id": serializers.CharField(),
        "status": serializers.CharField(),
        "started_at": serializers.CharField(**_ts),
        "estimated_completion": serializers.CharField(**_ts),
    },
)


SCHEDULE_KEYS = {
    "frequency": "schedule_type",
    "time": "schedule_time",
    "timezone": "timezone",
    "days_of_week": "days_of_week",
    "day_of_month": "day_of_month",
    "cron": "cron_expression",
}


def _fields(tenant, data: dict, *, update: bool = False) -> dict:
    """Job fields from a policy body. On update only what the body gives changes: a
    ``schedule`` without ``days_of_week`` keeps the policy's days (a ``null`` clears them)."""
    fields: dict = {}
    if "storage_id" in data:
        fields["storage"] = selectors.tenant_object(Storage, tenant=tenant, pk=data["storage_id"], field="storage_id")
    if "enabled" in data:
        fields["enabled"] = data["enabled"]
    if "schedule" in data:
        sched = data["schedule"]
        for key, field in SCHEDULE_KEYS.items():
            if key in sched:
                fields[field] = sched[key]
            elif not update and key not in ("timezone", "frequency"):
                fields[field] = None
        if "days_of_week" in fields:
            fields["days_of_week"] = fields["days_of_week"] or []
        if "cron_expression" in fields:
            fields["cron_expression"] = fields["cron_expression"] or ""
    if "retention" in data:
        fields["retention"] = {k: v for k, v in data["retention"].items() if v is not None}
    if "options" in data:
        fields["options"] = data["options"]
    if "notifications" in data:
        fields["notifications"] = data["notifications"]
    return fields


class _AppView(DedicatedPlanMixin, WorkspaceView):
    def application(self) -> Application:
        pk = ids.parse("application", self.kwargs.get("app_id"))
        app = Application.objects.filter(tenant=self.require_tenant(), pk=pk).first() if pk is not None else None
        if app is None:
            raise NotFound("Application not found", code="APPLICATION_NOT_FOUND")
        return app

    def policy(self, app: Application) -> BackupJob:
        job = selectors.job_list(tenant=app.tenant).filter(application=app).first()
        if job is None:
            raise NotFound("This application has no backup policy", code="POLICY_NOT_FOUND")
        return job


class BackupPolicyView(_AppView):
    """The application's backup policy: viewers read, admins create/update/delete."""

    roles = {"GET": Role.VIEWER, "POST": Role.ADMIN, "PUT": Role.ADMIN, "DELETE": Role.ADMIN}

    @extend_schema(responses={200: PolicyShape})
    def get(self, request, ws_id=None, app_id=None):
        job = self.policy(self.application())
        return respond(PolicySerializer(job, context={"statistics": True}).data)

    @extend_schema(request=PolicyInputSerializer, responses={201: PolicyShape})
    def post(self, request, ws_id=None, app_id=None):
        app = self.application()
        data = validated(PolicyInputSerializer, request.data)
        fields = _fields(app.tenant, data)
        fields.setdefault("timezone", "UTC")
        # "compression": true is the document's gzip (its manifests say "compression": "gzip").
        fields["options"] = {"compression": True, **fields.get("options", {})}
        with fields_renamed(ALIASES):
            job = services.job_create(
                tenant=app.tenant, actor=request.user, name=f"{app.name} backup policy"[:200], application=app, **fields
            )
        return respond(PolicySerializer(job).data, status_code=201)

    @extend_schema(request=PolicyUpdateSerializer, responses={200: PolicyShape})
    def put(self, request, ws_id=None, app_id=None):
        app = self.application()
        job = self.policy(app)
        data = validated(PolicyUpdateSerializer, request.data)
        services.job_require_idle(job=job)
        fields = _fields(app.tenant, data, update=True)
        if "options" in fields:
            fields["options"] = {**(job.options or {}), **fields["options"]}
        with fields_renamed(ALIASES):
            job = services.job_update(job=job, **fields)
        return respond(PolicySerializer(job).data)

    @extend_schema(responses={200: PolicyDeletedShape})
    def delete(self, request, ws_id=None, app_id=None):
        job = self.policy(self.application())
        services.job_require_idle(job=job)
        policy_id = ids.public("policy", job.pk)
        services.job_delete(job=job)
        return respond({"message": "Backup policy deleted successfully", "policy_id": policy_id})


class TriggerBackupView(_AppView):
    """Manual backup of the application (operators), with ``retention_override``."""

    roles = {"POST": Role.OPERATOR}

    @extend_schema(request=TriggerInputSerializer, responses={202: TriggeredShape})
    def post(self, request, ws_id=None, app_id=None):

        app = self.application()
        data = validated(TriggerInputSerializer, request.data)
        override = data.get("retention_override") or {}
        options = data.get("options") or {}
        job = selectors.job_list(tenant=app.tenant).filter(application=app).first()
        if job is not None:
            op = services.job_run(
                job=job,
                actor=request.user,
                description=data.get("description", ""),
                keep_until=override.get("keep_until"),
                keep_forever=bool(override.get("keep_forever")),
                options=options,
            )
        else:
            # Without a policy, the trigger's own options say: "compression": true is gzip.
            compression = "none" if options.get("compression") is False else "gzip"
            op = backup_start(
                tenant=app.tenant,
                actor=request.user,
                application=app,
                compression=compression,
                description=data.get("description", ""),
                keep_until=override.get("keep_until"),
                keep_forever=bool(override.get("keep_forever")),
                options=options,
            )
        average = selectors.job_average_duration(job)
        started = timezone.now()
        return respond(
            {
                "backup_id": op.backup_id,
                "application_id": app.pk,
                "status": workspace_status(op.backup.status if op.backup else op.status),
                "started_at": iso(started),
                # From the average duration of the policy's completed runs; unknown before the first.
                "estimated_completion": iso(started + average) if average else None,
            },
            status_code=202,
        )
