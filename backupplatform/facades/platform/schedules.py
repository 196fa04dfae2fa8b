"""Platform facade (db-backup-platform.md "Schedules", "Retention Policies").

A schedule is a ``BackupJob`` on one server database with a cron expression and timezone;
``next_run`` is computed by ``schedules.timing`` (DST-correct) and beat runs it. Both lists
are plain arrays as the seed shows.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers

from backupplatform.errors import fields_renamed
from backupplatform.facades.base import respond
from backupplatform.facades.scheduling import BackupTypeField, iso, next_run
from backupplatform.facades.serializers import (
    InputSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    validated,
)
from backups.models import Server
from schedules import selectors, services
from schedules.models import BackupJob, RetentionPolicy, ScheduleType
from tenants import capabilities
from tenants.models import Role

from .conventions import PlatformViewSet

# --- serializers ------------------------------------------------------------------------------


class ScheduleSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    server_id = serializers.IntegerField(allow_null=True)
    database_name = serializers.CharField()
    cron_expression = serializers.CharField()
    timezone = serializers.CharField()
    backup_type = serializers.CharField()
    retention_policy_id = serializers.IntegerField(allow_null=True)
    enabled = serializers.BooleanField()
    notify_on_success = serializers.SerializerMethodField()
    notify_on_failure = serializers.SerializerMethodField()
    last_run = serializers.SerializerMethodField()
    next_run = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_notify_on_success(self, job) -> bool:
        return bool((job.notifications or {}).get("on_success", False))

    def get_notify_on_failure(self, job) -> bool:
        return bool((job.notifications or {}).get("on_failure", True))

    def get_last_run(self, job) -> str | None:
        return iso(job.last_run_at)

    def get_next_run(self, job) -> str | None:
        return iso(next_run(job))


class ScheduleInputSerializer(InputSerializer):
    name = StrictCharField(max_length=200)
    description = StrictCharField(required=False, allow_blank=True, max_length=5000)
    server_id = StrictIntegerField(min_value=1)
    database_name = StrictCharField(max_length=200)
    cron_expression = StrictCharField(max_length=120)
    timezone = StrictCharField(required=False, max_length=64)
    backup_type = BackupTypeField(required=False, max_length=20)
    retention_policy_id = StrictIntegerField(min_value=1, required=False, allow_null=True)
    enabled = StrictBooleanField(required=False)
    notify_on_success = StrictBooleanField(required=False)
    notify_on_failure = StrictBooleanField(required=False)


class RetentionPolicySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    keep_last_n = serializers.IntegerField(allow_null=True)
    keep_days = serializers.IntegerField(allow_null=True)
    keep_daily = serializers.IntegerField(allow_null=True)
    keep_weekly = serializers.IntegerField(allow_null=True)
    keep_monthly = serializers.IntegerField(allow_null=True)
    keep_yearly = serializers.IntegerField(allow_null=True)
    min_verified_kept = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


def _keep(**kwargs):
    return StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=1_000_000, **kwargs)


class RetentionPolicyInputSerializer(InputSerializer):
    name = StrictCharField(max_length=200)
    description = StrictCharField(required=False, allow_blank=True, max_length=5000)
    keep_last_n = _keep()
    keep_days = _keep()
    keep_daily = _keep()
    keep_weekly = _keep()
    keep_monthly = _keep()
    keep_yearly = _keep()
    min_verified_kept = StrictIntegerField(required=False, min_value=0, max_value=1000)


# --- views ------------------------------------------------------------------------------------


def _job_fields(tenant, data: dict) -> dict:
    fields: dict = {}
    for name in ("name", "description", "database_name", "cron_expression", "timezone", "backup_type", "enabled"):
        if name in data:
            fields[name] = data[name]
    if "server_id" in data:
        fields["server"] = selectors.tenant_object(Server, tenant=tenant, pk=data["server_id"], field="server_id")
    if "retention_policy_id" in data:
        fields["retention_policy"] = selectors.tenant_object(
            RetentionPolicy, tenant=tenant, pk=data["retention_policy_id"], field="retention_policy_id"
        )
    return fields


ALIASES = {"server": "server_id", "retention_policy": "retention_policy_id"}


class ScheduleViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PlatformViewSet):
    """Backup schedules of the workspace: viewers read, admins manage."""

    feature = capabilities.BACKUPS

    serializer_class = ScheduleSerializer
    queryset = BackupJob.objects.none()
    unpaginated = True
    not_found = ("Schedule not found", "SCHEDULE_NOT_FOUND")
    roles = {
        "list": Role.VIEWER,
        "retrieve": Role.VIEWER,
        "create": Role.ADMIN,
        "update": Role.ADMIN,
        "destroy": Role.ADMIN,
    }

    def tenant_queryset(self, tenant):
        return selectors.job_list(tenant=tenant)

    @extend_schema(request=ScheduleInputSerializer, responses={201: ScheduleSerializer})
    def create(self, request):
        tenant = self.require_tenant()
        data = validated(ScheduleInputSerializer, request.data)
        fields = _job_fields(tenant, data)
        fields["notifications"] = {
            "on_success": data.get("notify_on_success", False),
            "on_failure": data.get("notify_on_failure", True),
        }
        with fields_renamed(ALIASES):
            job = services.job_create(tenant=tenant, actor=request.user, schedule_type=ScheduleType.CRON, **fields)
        return respond(ScheduleSerializer(job).data, status_code=201)

    @extend_schema(request=ScheduleInputSerializer(partial=True), responses={200: ScheduleSerializer})
    def update(self, request, pk=None):
        job = self.get_object()
        data = validated(ScheduleInputSerializer, request.data, partial=True)
        fields = _job_fields(job.tenant, data)
        if "notify_on_success" in data or "notify_on_failure" in data:
            notifications = dict(job.notifications or {})
            for key in ("on_success", "on_failure"):
                if f"notify_{key}" in data:
                    notifications[key] = data[f"notify_{key}"]
            fields["notifications"] = notifications
        if "cron_expression" in data:
            fields["schedule_type"] = ScheduleType.CRON
        with fields_renamed(ALIASES):
            job = services.job_update(job=job, **fields)
        return respond(ScheduleSerializer(job).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        services.job_delete(job=self.get_object())
        return respond(None, status_code=204)


class RetentionPolicyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PlatformViewSet):
    """Retention policies: viewers read, admins manage; a policy in use cannot be deleted (409)."""

    feature = capabilities.BACKUPS

    serializer_class = RetentionPolicySerializer
    queryset = RetentionPolicy.objects.none()
    unpaginated = True
    not_found = ("Retention policy not found", "RETENTION_POLICY_NOT_FOUND")
    roles = {
        "list": Role.VIEWER,
        "retrieve": Role.VIEWER,
        "create": Role.ADMIN,
        "update": Role.ADMIN,
        "destroy": Role.ADMIN,
    }

    def tenant_queryset(self, tenant):
        return RetentionPolicy.objects.for_tenant(tenant)

    @extend_schema(request=RetentionPolicyInputSerializer, responses={201: RetentionPolicySerializer})
    def create(self, request):
        data = validated(RetentionPolicyInputSerializer, request.data)
        policy = services.retention_policy_create(tenant=self.require_tenant(), **data)
        return respond(RetentionPolicySerializer(policy).data, status_code=201)

    @extend_schema(request=RetentionPolicyInputSerializer(partial=True), responses={200: RetentionPolicySerializer})
    def update(self, request, pk=None):
        policy = self.get_object()
        data = validated(RetentionPolicyInputSerializer, request.data, partial=True)
        policy = services.retention_policy_update(policy=policy, **data)
        return respond(RetentionPolicySerializer(policy).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        services.retention_policy_delete(policy=self.get_object())
        return respond(None, status_code=204)
