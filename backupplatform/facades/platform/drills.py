"""Platform facade, our extension: restore drills (``schedules.drills``) and their evidence.

- ``GET|PUT /api/v1/schedules/{id}/drill-policy``: when the schedule's drills run (cron in the
  schedule's timezone), what they check, where they restore;
- ``POST /api/v1/schedules/{id}/drills``: a drill now (its latest completed backup, or
  ``backup_id`` of that schedule);
- ``GET /api/v1/drills`` (``schedule_id``, ``limit``, ``offset``) and ``/api/v1/drills/{id}``;
- ``GET /api/v1/drills/evidence?format=pdf|json&start_date&end_date``: the workspace's
  evidence report for auditors, as a file.
"""

from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers

from backupplatform.errors import NotFound
from backupplatform.facades import query
from backupplatform.facades.base import respond
from backupplatform.facades.serializers import (
    InputSerializer,
    StrictCharField,
    StrictDictField,
    StrictIntegerField,
    validated,
)
from backups.models import Backup, Server
from schedules import drills, selectors
from schedules.evidence import FORMATS, drill_evidence, evidence_generate
from schedules.models import BackupJob, Drill
from tenants import capabilities
from tenants.models import Role

from .conventions import PlatformView, PlatformViewSet

# --- serializers ------------------------------------------------------------------------------


class DrillAssertionResultSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["checksum", "row_count", "sql", "file"])
    table = serializers.CharField(required=False)
    sql = serializers.CharField(required=False)
    path = serializers.CharField(required=False)
    database = serializers.CharField(required=False)
    sha256 = serializers.CharField(required=False)
    min = serializers.IntegerField(required=False)
    expect = serializers.JSONField(required=False, allow_null=True)
    actual = serializers.JSONField(allow_null=True)
    passed = serializers.BooleanField()
    error = serializers.CharField(allow_null=True)


class DrillSerializer(serializers.Serializer):
    """A restore drill: the backup it restored, its timings, each assertion and its result."""

    id = serializers.IntegerField()
    schedule_id = serializers.IntegerField(allow_null=True)
    schedule_name = serializers.CharField()
    trigger = serializers.CharField(help_text="manual or scheduled")
    scheduled_for = serializers.DateTimeField(allow_null=True)
    status = serializers.CharField(help_text="pending, running, passed or failed")
    passed = serializers.BooleanField(allow_null=True)
    backup_id = serializers.IntegerField(allow_null=True)
    backup_checksum = serializers.CharField(help_text="sha256:<hex> of the stored artifact, as recorded")
    checksum_verified = serializers.BooleanField(
        allow_null=True, help_text="the artifact read during the drill had that checksum"
    )
    backup_taken_at = serializers.DateTimeField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    rto_seconds = serializers.FloatField(allow_null=True, help_text="time to restore the scratch copy")
    rpo_seconds = serializers.FloatField(allow_null=True, help_text="age of the restored data at drill time")
    duration_seconds = serializers.FloatField(allow_null=True)
    assertions = DrillAssertionResultSerializer(many=True)
    scratch_dropped = serializers.BooleanField(allow_null=True)
    error = serializers.CharField()
    created_at = serializers.DateTimeField()

    def to_representation(self, instance):
        return drill_evidence(instance) if isinstance(instance, Drill) else instance


class DrillStartedSerializer(DrillSerializer):
    status_url = serializers.CharField()


class EvidenceWorkspaceSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()


class EvidencePeriodSerializer(serializers.Serializer):
    start_date = serializers.DateField()
    end_date = serializers.DateField()


class EvidenceSummarySerializer(serializers.Serializer):
    drills = serializers.IntegerField()
    passed = serializers.IntegerField()
    failed = serializers.IntegerField()
    rto_seconds_median = serializers.FloatField(allow_null=True)
    rto_seconds_max = serializers.FloatField(allow_null=True)
    rpo_seconds_max = serializers.FloatField(allow_null=True)


class DrillEvidenceSerializer(serializers.Serializer):
    """The evidence report as JSON (``format=json``): the same content as the PDF."""

    workspace = EvidenceWorkspaceSerializer()
    period = EvidencePeriodSerializer()
    generated_at = serializers.DateTimeField()
    summary = EvidenceSummarySerializer()
    drills = DrillSerializer(many=True)
    truncated = serializers.BooleanField(help_text="more drills than the report lists (the newest are listed)")


class DrillPolicySerializer(serializers.Serializer):
    schedule_id = serializers.IntegerField()
    cron_expression = serializers.CharField(help_text="in the schedule's timezone; empty: no scheduled drills")
    timezone = serializers.CharField()
    next_drill = serializers.DateTimeField(allow_null=True)
    assertions = serializers.ListField(child=serializers.DictField())
    scratch_server_id = serializers.IntegerField(allow_null=True)


class DrillPolicyInputSerializer(InputSerializer):
    cron_expression = StrictCharField(required=False, allow_blank=True, max_length=120)
    assertions = serializers.ListField(child=StrictDictField(), required=False, max_length=200)
    scratch_server_id = StrictIntegerField(required=False, allow_null=True, min_value=1)


class DrillStartInputSerializer(InputSerializer):
    backup_id = StrictIntegerField(required=False, min_value=1)


def _policy(job: BackupJob) -> dict:
    return {
        "schedule_id": job.pk,
        "cron_expression": job.drill_cron_expression,
        "timezone": job.timezone,
        "next_drill": selectors.drill_next_run(job),
        "assertions": job.drill_assertions or [],
        "scratch_server_id": job.drill_server_id,
    }


# --- views ------------------------------------------------------------------------------------

NOT_FOUND = ("Schedule not found", "SCHEDULE_NOT_FOUND")


class ScheduleDrillViewSet(PlatformViewSet):
    """A schedule's drill policy (viewers read, admins change) and drills started now (operators)."""

    feature = capabilities.BACKUPS
    queryset = BackupJob.objects.none()
    serializer_class = DrillPolicySerializer
    unpaginated = True
    not_found = NOT_FOUND
    roles = {"policy": Role.VIEWER, "update_policy": Role.ADMIN, "start": Role.OPERATOR}

    def tenant_queryset(self, tenant):
        return selectors.job_list(tenant=tenant)

    @extend_schema(operation_id="schedule_drill_policy_retrieve", responses={200: DrillPolicySerializer})
    def policy(self, request, pk=None):
        return respond(_policy(self.get_object()))

    @extend_schema(
        operation_id="schedule_drill_policy_update",
        request=DrillPolicyInputSerializer,
        responses={200: DrillPolicySerializer},
    )
    def update_policy(self, request, pk=None):
        job = self.get_object()
        data = validated(DrillPolicyInputSerializer, request.data)
        changes: dict = {}
        if "cron_expression" in data:
            changes["cron_expression"] = data["cron_expression"]
        if "assertions" in data:
            changes["assertions"] = [dict(a) for a in data["assertions"]]
        if "scratch_server_id" in data:
            server = None
            if data["scratch_server_id"] is not None:
                server = Server.objects.filter(tenant=job.tenant, pk=data["scratch_server_id"]).first()
                if server is None:
                    raise NotFound("Server not found", code="SERVER_NOT_FOUND")
            changes["scratch_server"] = server
        job = drills.drill_configure(job=job, **changes)
        return respond(_policy(job))

    @extend_schema(
        operation_id="schedule_drill_start", request=DrillStartInputSerializer, responses={201: DrillStartedSerializer}
    )
    def start(self, request, pk=None):
        job = self.get_object()
        data = validated(DrillStartInputSerializer, request.data or {})
        backup = None
        if "backup_id" in data:
            backup = Backup.objects.filter(tenant=job.tenant, job=job, pk=data["backup_id"]).first()
            if backup is None:
                raise NotFound("Backup not found", code="BACKUP_NOT_FOUND")
        drill = drills.drill_start(tenant=job.tenant, job=job, actor=request.user, backup=backup)
        return respond({**drill_evidence(drill), "status_url": f"/api/v1/drills/{drill.pk}"}, status_code=201)


LIST_QUERY = {"schedule_id": query.ID, "limit": query.Int(1, 1000), "offset": query.Int(0)}


class DrillViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PlatformViewSet):
    """The workspace's restore drills, newest first (viewers)."""

    feature = capabilities.BACKUPS
    serializer_class = DrillSerializer
    queryset = Drill.objects.none()
    not_found = ("Drill not found", "DRILL_NOT_FOUND")
    roles = {"list": Role.VIEWER, "retrieve": Role.VIEWER}

    def tenant_queryset(self, tenant):
        job_id = None
        if self.action == "list" and self.request.query_params.get("schedule_id"):
            job_id = int(self.request.query_params["schedule_id"])
        return selectors.drill_list(tenant=tenant, job_id=job_id)

    @extend_schema(parameters=[OpenApiParameter("schedule_id", OpenApiTypes.INT)])
    def list(self, request, *args, **kwargs):
        query.check_query(request, LIST_QUERY)
        return super().list(request, *args, **kwargs)


EVIDENCE_QUERY = {"format": query.Choice(*FORMATS), "start_date": query.DATE, "end_date": query.DATE}


class DrillEvidenceView(PlatformView):
    """The workspace's drill evidence as a file (viewers): PDF for people, JSON for programs."""

    feature = capabilities.BACKUPS
    roles = {"GET": Role.VIEWER}

    @extend_schema(
        operation_id="drill_evidence",
        parameters=[
            OpenApiParameter("format", OpenApiTypes.STR, enum=list(FORMATS), description="default pdf"),
            OpenApiParameter("start_date", OpenApiTypes.DATE, description="default: 29 days before end_date"),
            OpenApiParameter("end_date", OpenApiTypes.DATE, description="default: today (UTC)"),
        ],
        responses={(200, "application/pdf"): OpenApiTypes.BINARY, (200, "application/json"): DrillEvidenceSerializer},
    )
    def get(self, request):
        query.check_query(request, EVIDENCE_QUERY)
        tenant = self.require_tenant()
        params = request.query_params
        report = evidence_generate(
            tenant=tenant,
            format=params.get("format") or "pdf",
            start=_date(params.get("start_date")),
            end=_date(params.get("end_date")),
            location="query",
        )
        response = StreamingHttpResponse(report.chunks, content_type=report.content_type)
        response["Content-Disposition"] = f'attachment; filename="{report.filename}"'
        return response


def _date(raw: str | None):
    from django.utils.dateparse import parse_date, parse_datetime

    if not raw:
        return None
    moment = parse_datetime(raw)
    return moment.date() if moment is not None else parse_date(raw)
