"""Jobs facade (api-layer.md "Backup Operations"): backup jobs at ``/api/v1/jobs``.

The seed's ``/api/v1/backups`` job routes live here (that path belongs to the platform's
backup artifacts). A job is a ``BackupJob``: ``source_path`` (files, read through a path
source of the job's own application), or a server database / an application;
``schedule_type`` + ``schedule_time``; ``retention_days``; ``priority`` 1-10 (Celery
priority, see schedules/beat.py); ``is_active`` = enabled.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import mixins, serializers

from backupplatform.errors import fields_renamed
from backupplatform.facades.base import respond
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
    validated,
)
from backups.models import Application, Backup, Server, Storage
from schedules import selectors, services
from schedules.models import BackupJob
from tenants import capabilities
from tenants.models import Role

from .conventions import JobsViewSet

SCHEDULE_TYPES = ["hourly", "daily", "weekly", "monthly", "custom", "cron"]
ALIASES = {
    "schedule_time": "schedule_time",
    "server": "server_id",
    "application": "application_id",
    "storage": "storage_id",
    "enabled": "is_active",
}


class JobSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    source_path = serializers.CharField()
    server_id = serializers.IntegerField(allow_null=True)
    database_name = serializers.CharField()
    application_id = serializers.IntegerField(allow_null=True)
    storage_id = serializers.IntegerField(allow_null=True)
    backup_type = serializers.CharField()
    schedule_type = serializers.CharField()
    schedule_time = StrictTimeField(allow_null=True)
    cron_expression = serializers.CharField()
    timezone = serializers.CharField()
    days_of_week = serializers.ListField(child=serializers.IntegerField())
    day_of_month = serializers.IntegerField(allow_null=True)
    retention_days = serializers.IntegerField(allow_null=True)
    priority = serializers.IntegerField()
    is_active = serializers.BooleanField(source="enabled")
    last_run = serializers.SerializerMethodField()
    next_run = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_last_run(self, job) -> str | None:
        return iso(job.last_run_at)

    def get_next_run(self, job) -> str | None:
        return iso(next_run(job))


class JobInputSerializer(InputSerializer):
    name = StrictCharField(max_length=200)
    description = StrictCharField(required=False, allow_blank=True, max_length=5000)
    source_path = StrictCharField(required=False, max_length=1024)
    server_id = StrictIntegerField(required=False, min_value=1)
    database_name = StrictCharField(required=False, max_length=200)
    application_id = StrictIntegerField(required=False, min_value=1)
    storage_id = StrictIntegerField(required=False, allow_null=True, min_value=1)
    backup_type = BackupTypeField(required=False, max_length=20)
    schedule_type = serializers.ChoiceField(choices=SCHEDULE_TYPES)
    schedule_time = StrictTimeField(required=False, allow_null=True)
    cron_expression = StrictCharField(required=False, max_length=120)
    timezone = StrictCharField(required=False, max_length=64)
    days_of_week = weekday_list(required=False, allow_null=True)
    day_of_month = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=28)
    retention_days = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=100_000)
    priority = StrictIntegerField(required=False, min_value=1, max_value=10)
    is_active = StrictBooleanField(required=False)


class RunInputSerializer(InputSerializer):
    backup_type = BackupTypeField(required=False, max_length=20)
    notify = StrictBooleanField(required=False)


@extend_schema_field({"type": "string", "nullable": True, "example": "sha256:9f86d08..."})
class ChecksumField(serializers.Field):
    """Checksums as this API writes them, the form db-backup-platform.md uses: ``sha256:<hex>``."""

    def __init__(self, **kwargs):
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def to_representation(self, value):
        return f"sha256:{value}" if value else None


class ExecutionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    job_id = serializers.IntegerField(allow_null=True)
    name = serializers.CharField()
    status = serializers.CharField()
    trigger = serializers.CharField()
    backup_type = serializers.CharField()
    size_bytes = serializers.IntegerField()
    stored_bytes = serializers.IntegerField()
    checksum = ChecksumField()
    verified = serializers.BooleanField()
    error_message = serializers.CharField()
    started_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    duration_seconds = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()


JobDeletedShape = inline_serializer("JobDeleted", {"id": serializers.IntegerField()})
JobRunShape = inline_serializer(
    "JobRunStarted",
    {
        "job_id": serializers.IntegerField(),
        "operation_id": serializers.CharField(),
        "backup_id": serializers.IntegerField(allow_null=True),
        "status": serializers.CharField(),
        "created_at": serializers.CharField(allow_null=True),
    },
)


def _fields(tenant, data: dict) -> dict:
    fields: dict = {}
    for name in (
        "name",
        "description",
        "source_path",
        "database_name",
        "backup_type",
        "schedule_type",
        "schedule_time",
        "cron_expression",
        "timezone",
        "day_of_month",
        "retention_days",
        "priority",
    ):
        if name in data:
            fields[name] = data[name]
    if "days_of_week" in data:
        fields["days_of_week"] = data["days_of_week"] or []
    if "is_active" in data:
        fields["enabled"] = data["is_active"]
    for key, model in (("server_id", Server), ("application_id", Application), ("storage_id", Storage)):
        if key in data:
            fields[key[:-3]] = selectors.tenant_object(model, tenant=tenant, pk=data[key], field=key)
    return fields


class BackupJobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, JobsViewSet):
    """Backup jobs: viewers read, operators run, admins manage."""

    feature = capabilities.BACKUPS

    serializer_class = JobSerializer
    queryset = BackupJob.objects.none()
    not_found = ("Backup job not found", "JOB_NOT_FOUND")
    roles = {
        "list": Role.VIEWER,
        "retrieve": Role.VIEWER,
        "executions": Role.VIEWER,
        "create": Role.ADMIN,
        "update": Role.ADMIN,
        "destroy": Role.ADMIN,
        "run": Role.OPERATOR,
    }

    def tenant_queryset(self, tenant):
        listing = getattr(self, "action", None) == "list"
        return selectors.job_list(tenant=tenant, filters=self.request.query_params if listing else None)

    @extend_schema(parameters=[OpenApiParameter("is_active", OpenApiTypes.BOOL, required=False)])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=JobInputSerializer, responses={201: JobSerializer})
    def create(self, request):
        tenant = self.require_tenant()
        data = validated(JobInputSerializer, request.data)
        with fields_renamed(ALIASES):
            job = services.job_create(tenant=tenant, actor=request.user, **_fields(tenant, data))
        return respond(JobSerializer(job).data, status_code=201, message="Backup job created")

    @extend_schema(request=JobInputSerializer(partial=True), responses={200: JobSerializer})
    def update(self, request, pk=None):
        job = self.get_object()
        data = validated(JobInputSerializer, request.data, partial=True)
        with fields_renamed(ALIASES):
            job = services.job_update(job=job, **_fields(job.tenant, data))
        return respond(JobSerializer(job).data, message="Backup job updated")

    @extend_schema(responses={200: JobDeletedShape})
    def destroy(self, request, pk=None):
        job = self.get_object()
        job_id = job.pk
        services.job_delete(job=job)
        return respond({"id": job_id}, message="Backup job deleted")

    @extend_schema(request=RunInputSerializer, responses={202: JobRunShape})
    def run(self, request, pk=None):
        job = self.get_object()
        data = validated(RunInputSerializer, request.data)
        op = services.job_run(
            job=job,
            actor=request.user,
            backup_type=data.get("backup_type"),
            options={"notify": data["notify"]} if "notify" in data else None,
        )
        return respond(
            {
                "job_id": job.pk,
                "operation_id": op.public_id,
                "backup_id": op.backup_id,
                "status": op.status,
                "created_at": iso(op.created_at),
            },
            status_code=202,
            message="Backup started",
        )

    @extend_schema(responses={200: ExecutionSerializer(many=True)})
    def executions(self, request, pk=None):
        job = self.get_object()
        qs = Backup.objects.filter(job=job).order_by("-created_at", "-id")
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(ExecutionSerializer(page, many=True).data)
