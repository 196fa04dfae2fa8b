"""system-backup-recovery.rst "Generate Report": ``GET /report/generate``, a file to save.

The report is built by ``backups.reports.report_generate`` (PDF, HTML or CSV); one per
minute per tenant, past which the answer is 429 with ``Retry-After``.
"""

from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers

from backupplatform.facades.serializers import InputSerializer, validated
from backups.reports import FORMATS, report_generate
from tenants.models import Role

from .conventions import ConsoleView


class ReportQuerySerializer(InputSerializer):
    format = serializers.ChoiceField(choices=list(FORMATS), required=False, default="pdf")
    start_date = serializers.DateField(input_formats=["%Y-%m-%d"], required=False)
    end_date = serializers.DateField(input_formats=["%Y-%m-%d"], required=False)

    def to_internal_value(self, data):
        return super().to_internal_value({k: v for k, v in data.items() if k in self.fields})


class ReportView(ConsoleView):
    """A report of a period as an attachment (viewers): summary, day-by-day chart,
    failures and verifications (PDF, HTML), or one row per backup (CSV)."""

    roles = {"GET": Role.VIEWER}

    @extend_schema(
        operation_id="console_report_generate",
        parameters=[
            OpenApiParameter("format", OpenApiTypes.STR, enum=list(FORMATS), description="default pdf"),
            OpenApiParameter("start_date", OpenApiTypes.DATE, description="default: 29 days before end_date"),
            OpenApiParameter("end_date", OpenApiTypes.DATE, description="default: today (UTC)"),
        ],
        responses={
            (200, "application/pdf"): OpenApiTypes.BINARY,
            (200, "text/html"): OpenApiTypes.STR,
            (200, "text/csv"): OpenApiTypes.STR,
        },
    )
    def get(self, request):
        tenant = self.require_tenant()
        query = validated(ReportQuerySerializer, request.query_params)
        report = report_generate(
            tenant=tenant,
            format=query["format"],
            start=query.get("start_date"),
            end=query.get("end_date"),
            actor=request.user,
        )
        response = StreamingHttpResponse(report.chunks, content_type=report.content_type)
        response["Content-Disposition"] = f'attachment; filename="{report.filename}"'
        return response
