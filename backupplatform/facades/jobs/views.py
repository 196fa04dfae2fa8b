"""Jobs facade (api-layer.md): API keys."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins

from backupplatform.facades.base import respond
from backupplatform.facades.serializers import validated
from tenants import selectors as tenant_selectors
from tenants import services as tenant_services
from tenants.models import ApiKey, Role

from .conventions import JobsViewSet
from .serializers import ApiKeyCreatedSerializer, ApiKeyCreateSerializer, ApiKeySerializer


class ApiKeyViewSet(mixins.ListModelMixin, JobsViewSet):
    """API keys of the workspace (admins). The key is returned once, at creation."""

    serializer_class = ApiKeySerializer
    queryset = ApiKey.objects.none()
    not_found = ("API key not found", "API_KEY_NOT_FOUND")
    roles = {"list": Role.ADMIN, "create": Role.ADMIN, "destroy": Role.ADMIN}

    def tenant_queryset(self, tenant):
        return tenant_selectors.api_key_list(tenant=tenant)

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeyCreatedSerializer})
    def create(self, request):
        data = validated(ApiKeyCreateSerializer, request.data)
        creator = request.user if getattr(request.user, "pk", None) else None
        key, raw = tenant_services.api_key_create(tenant=self.require_tenant(), created_by=creator, **data)
        body = {**ApiKeySerializer(key).data, "key": raw}
        return respond(body, status_code=201, message="API key created; copy it now: it will not be shown again")

    @extend_schema(responses={200: ApiKeySerializer})
    def destroy(self, request, pk=None):
        key = tenant_services.api_key_revoke(key=self.get_object())
        return respond(ApiKeySerializer(key).data, message="API key revoked")
