"""Platform facade (db-backup-platform.md): workspaces, users, audit logs."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins

from audit.models import AuditEvent
from audit.selectors import audit_event_list
from backupplatform.facades import query
from backupplatform.facades.base import respond
from backupplatform.facades.serializers import validated
from tenants import selectors as tenant_selectors
from tenants import services as tenant_services
from tenants.models import Membership, Role

from .conventions import PlatformView, PlatformViewSet
from .serializers import (
    AuditEventSerializer,
    UserCreateSerializer,
    UserSerializer,
    UserUpdateSerializer,
    WorkspaceSerializer,
)


class WorkspaceListView(PlatformView):
    """The workspaces (tenants) the caller belongs to, with the caller's role in each."""

    roles = {"GET": None}

    @extend_schema(responses={200: WorkspaceSerializer(many=True)})
    def get(self, request):
        return respond(WorkspaceSerializer(tenant_selectors.workspaces_for(request), many=True).data)


class UserViewSet(mixins.ListModelMixin, PlatformViewSet):
    """Members of the caller's workspace (admin only, db-backup-platform.md "Users")."""

    serializer_class = UserSerializer
    unpaginated = True  # the seed's lists of this section are plain arrays
    queryset = Membership.objects.none()
    lookup_field = "user_id"
    lookup_url_kwarg = "pk"
    not_found = ("User not found", "USER_NOT_FOUND")
    roles = {"list": Role.ADMIN, "create": Role.ADMIN, "update": Role.ADMIN, "destroy": Role.ADMIN}

    def tenant_queryset(self, tenant):
        return tenant_selectors.member_list(tenant=tenant)

    @extend_schema(request=UserCreateSerializer, responses={201: UserSerializer})
    def create(self, request):
        data = validated(UserCreateSerializer, request.data)
        membership = tenant_services.user_create(tenant=self.require_tenant(), **data)
        return respond(UserSerializer(membership).data, status_code=201)

    @extend_schema(request=UserUpdateSerializer, responses={200: UserSerializer})
    def update(self, request, pk=None):
        membership = self.get_object()
        data = validated(UserUpdateSerializer, request.data)
        membership = tenant_services.member_update(membership=membership, actor=request.user, **data)
        return respond(UserSerializer(membership).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        tenant_services.member_remove(membership=self.get_object(), actor=request.user)
        return respond(status_code=204)


# db-backup-platform.md "List Audit Logs" lists these query parameters (the export adds format).
AUDIT_QUERY = {
    "user_id": query.ID,
    "action": query.STR,
    "resource_type": query.STR,
    "start_date": query.DATE,
    "end_date": query.DATE,
    "limit": query.Int(1, 1000),
    "offset": query.Int(0),
}
AUDIT_FILTERS = [
    OpenApiParameter("user_id", OpenApiTypes.INT),
    OpenApiParameter("action", OpenApiTypes.STR),
    OpenApiParameter("resource_type", OpenApiTypes.STR),
    OpenApiParameter("start_date", OpenApiTypes.STR, description="YYYY-MM-DD or ISO 8601"),
    OpenApiParameter("end_date", OpenApiTypes.STR, description="YYYY-MM-DD or ISO 8601"),
]


class AuditLogView(mixins.ListModelMixin, PlatformViewSet):
    """The workspace's audit log (admins), newest first, with the seed's filters."""

    serializer_class = AuditEventSerializer
    queryset = AuditEvent.objects.none()
    roles = {"list": Role.ADMIN}

    def tenant_queryset(self, tenant):
        return audit_event_list(tenant=tenant, filters=self.request.query_params)

    @extend_schema(parameters=AUDIT_FILTERS)
    def list(self, request, *args, **kwargs):
        query.check_query(request, AUDIT_QUERY)
        return super().list(request, *args, **kwargs)


class _Echo:
    def write(self, value: str) -> str:
        return value


CSV_COLUMNS = [
    "id",
    "created_at",
    "user_id",
    "username",
    "action",
    "resource_type",
    "resource_id",
    "ip_address",
    "details",
    "api_key_id",
]


class AuditExportView(PlatformView):
    """CSV export of the audit log, streamed row by row (no whole file in memory)."""

    roles = {"GET": Role.ADMIN}

    @extend_schema(
        parameters=[OpenApiParameter("format", OpenApiTypes.STR, enum=["csv"]), *AUDIT_FILTERS],
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request):
        filters = {k: v for k, v in AUDIT_QUERY.items() if k not in ("limit", "offset")}
        query.check_query(request, {**filters, "format": query.Choice("csv")})
        events = audit_event_list(tenant=self.tenant_scope(), filters=request.query_params)
        writer = csv.writer(_Echo())

        def rows() -> Iterator[str]:
            yield writer.writerow(CSV_COLUMNS)
            for e in events.iterator(chunk_size=500):
                yield writer.writerow(
                    [
                        e.pk,
                        e.created_at.isoformat(),
                        e.actor_id or "",
                        e.actor_name,
                        e.action,
                        e.resource_type,
                        e.resource_id,
                        e.ip_address or "",
                        json.dumps(e.details, sort_keys=True),
                        e.api_key_id or "",
                    ]
                )

        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="audit_log.csv"'
        return response
