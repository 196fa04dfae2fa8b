"""Workspace facade (workspace-backup-api.md): backup storages, storage usage, and our
``/applications`` extension. Every view here needs the dedicated plan (``permissions.py``)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers

from backupplatform.errors import ValidationFailed
from backupplatform.facades.base import respond
from backups import config_selectors as selectors
from backups import services
from backups.models import Application, Storage, StorageStatus, StorageType
from tenants.models import Role

from . import ids
from .conventions import WorkspaceView, WorkspaceViewSet
from .permissions import DedicatedPlanMixin
from .serializers import (
    ApplicationCreateInput,
    ApplicationSerializer,
    ApplicationUpdateInput,
    StorageCreateInput,
    StorageSerializer,
    StorageUpdateInput,
    validated_flat,
)

USAGE_PERIODS = list(selectors.USAGE_PERIODS)
MANAGE = {
    "list": Role.VIEWER,
    "retrieve": Role.VIEWER,
    "usage": Role.VIEWER,
    "create": Role.ADMIN,
    "update": Role.ADMIN,
    "destroy": Role.ADMIN,
}


class PublicIdLookupMixin:
    """The object named in the URL by its public id (``storage-12``) or its number; anything
    else, or another workspace's object, is the kind's own 404 (``STORAGE_NOT_FOUND``)."""

    id_kind: str

    def parse_lookup(self, value):
        return ids.parse(self.id_kind, value)


def _choice_param(request, name: str, choices: list[str]) -> str | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    if value not in choices:
        raise ValidationFailed(details={name: [f"Must be one of: {', '.join(choices)}."]})
    return value


def _bool_param(request, name: str) -> bool:
    value = (request.query_params.get(name) or "").lower()
    if value in ("", "false", "0", "no"):
        return False
    if value in ("true", "1", "yes"):
        return True
    raise ValidationFailed(details={name: ["Must be true or false."]})


DeleteResult = inline_serializer(
    "StorageDeleted", {"message": serializers.CharField(), "storage_id": serializers.CharField()}
)
UsageReport = inline_serializer(
    "StorageUsageReport",
    {
        "storage_id": serializers.CharField(),
        "period": serializers.DictField(),
        "current_usage": serializers.DictField(),
        "growth_trend": serializers.DictField(),
        "cost_breakdown": serializers.DictField(),
    },
)
WorkspaceUsage = inline_serializer(
    "WorkspaceStorageUsage",
    {
        "workspace_id": serializers.CharField(),
        "total_usage": serializers.DictField(),
        "by_storage": serializers.ListField(child=serializers.DictField()),
        "by_application": serializers.ListField(child=serializers.DictField()),
        "cost_summary": serializers.DictField(),
    },
)


class BackupStorageViewSet(DedicatedPlanMixin, PublicIdLookupMixin, mixins.ListModelMixin, WorkspaceViewSet):
    """workspace-backup-api.md, "Backup Storage Management": viewers read, admins manage."""

    serializer_class = StorageSerializer
    queryset = Storage.objects.none()
    lookup_url_kwarg = "storage_id"
    id_kind = "storage"
    not_found = ("Backup storage not found", "STORAGE_NOT_FOUND")
    roles = MANAGE

    def tenant_queryset(self, tenant):
        request = self.request
        if self.action == "list":
            return selectors.storage_list(
                tenant=tenant,
                type=_choice_param(request, "type", StorageType.values),
                status=_choice_param(request, "status", StorageStatus.values),
            ).select_related("tenant")
        return selectors.storage_list(tenant=tenant).select_related("tenant")

    @extend_schema(
        parameters=[
            OpenApiParameter("type", OpenApiTypes.STR, enum=StorageType.values),
            OpenApiParameter("status", OpenApiTypes.STR, enum=StorageStatus.values),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=StorageCreateInput, responses={201: StorageSerializer})
    def create(self, request, ws_id=None):
        data = validated_flat(StorageCreateInput, request.data)
        storage = services.storage_create(tenant=self.require_tenant(), **data)
        return respond(StorageSerializer(self._reload(storage)).data, status_code=201)

    @extend_schema(responses={200: StorageSerializer})
    def retrieve(self, request, ws_id=None, storage_id=None):
        return respond(StorageSerializer(self.get_object(), context={"detail": True}).data)

    @extend_schema(request=StorageUpdateInput, responses={200: StorageSerializer})
    def update(self, request, ws_id=None, storage_id=None):
        storage = self.get_object()
        data = validated_flat(StorageUpdateInput, request.data)
        storage = services.storage_update(storage=storage, **data)
        return respond(StorageSerializer(self._reload(storage), context={"detail": True}).data)

    @extend_schema(
        parameters=[OpenApiParameter("force", OpenApiTypes.BOOL, description="Detach the backup policies that use it")],
        responses={200: DeleteResult},
    )
    def destroy(self, request, ws_id=None, storage_id=None):
        storage = self.get_object()
        pk = storage.pk
        services.storage_delete(storage=storage, force=_bool_param(request, "force"))
        return respond({"message": "Backup storage deleted successfully", "storage_id": pk})

    @extend_schema(
        parameters=[OpenApiParameter("period", OpenApiTypes.STR, enum=USAGE_PERIODS)], responses={200: UsageReport}
    )
    def usage(self, request, ws_id=None, storage_id=None):
        period = _choice_param(request, "period", USAGE_PERIODS) or "current_month"
        return respond(selectors.storage_usage_report(storage=self.get_object(), period=period))

    def _reload(self, storage: Storage) -> Storage:
        return selectors.storage_list(tenant=storage.tenant).select_related("tenant").get(pk=storage.pk)


class WorkspaceStorageUsageView(DedicatedPlanMixin, WorkspaceView):
    """workspace-backup-api.md, "Get Workspace Storage Usage"."""

    roles = {"GET": Role.VIEWER}

    @extend_schema(responses={200: WorkspaceUsage})
    def get(self, request, ws_id=None):
        return respond(selectors.workspace_storage_usage(tenant=self.require_tenant()))


class ApplicationViewSet(DedicatedPlanMixin, PublicIdLookupMixin, mixins.ListModelMixin, WorkspaceViewSet):
    """Our extension: applications (named groups of sources) with nested sources.

    Viewers read, admins manage (what to protect is configuration). The default
    application is listed first and cannot be deleted.
    """

    serializer_class = ApplicationSerializer
    queryset = Application.objects.none()
    lookup_url_kwarg = "app_id"
    id_kind = "application"
    not_found = ("Application not found", "APPLICATION_NOT_FOUND")
    roles = MANAGE

    def tenant_queryset(self, tenant):
        return selectors.application_list(tenant=tenant).select_related("tenant")

    def list(self, request, *args, **kwargs):
        services.application_get_default(tenant=self.require_tenant())
        return super().list(request, *args, **kwargs)

    @extend_schema(request=ApplicationCreateInput, responses={201: ApplicationSerializer})
    def create(self, request, ws_id=None):
        data = validated_flat(ApplicationCreateInput, request.data)
        app = services.application_create(tenant=self.require_tenant(), **data)
        return respond(ApplicationSerializer(self._reload(app)).data, status_code=201)

    @extend_schema(responses={200: ApplicationSerializer})
    def retrieve(self, request, ws_id=None, app_id=None):
        return respond(ApplicationSerializer(self.get_object()).data)

    @extend_schema(request=ApplicationUpdateInput, responses={200: ApplicationSerializer})
    def update(self, request, ws_id=None, app_id=None):
        app = self.get_object()
        data = validated_flat(ApplicationUpdateInput, request.data)
        app = services.application_update(app=app, **data)
        return respond(ApplicationSerializer(self._reload(app)).data)

    @extend_schema(
        responses={
            200: inline_serializer(
                "ApplicationDeleted", {"message": serializers.CharField(), "application_id": serializers.CharField()}
            )
        }
    )
    def destroy(self, request, ws_id=None, app_id=None):
        app = self.get_object()
        pk = app.pk
        services.application_delete(app=app)
        return respond({"message": "Application deleted successfully; its backups are kept", "application_id": pk})

    def _reload(self, app: Application) -> Application:
        return selectors.application_list(tenant=app.tenant).select_related("tenant").get(pk=app.pk)
