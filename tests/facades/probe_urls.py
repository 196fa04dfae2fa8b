"""A probe view per facade, mounted under each facade's prefix, to test the conventions of
every facade (envelope, errors, pagination) independently of the routes issues add."""

from __future__ import annotations

from django.urls import include, path
from rest_framework import mixins

from audit.models import AuditEvent
from backupplatform.facades.acronis.conventions import AcronisViewSet
from backupplatform.facades.base import respond
from backupplatform.facades.console.conventions import ConsoleViewSet
from backupplatform.facades.jobs.conventions import JobsViewSet
from backupplatform.facades.platform.conventions import PlatformViewSet
from backupplatform.facades.serializers import (
    InputSerializer,
    StrictBooleanField,
    StrictCharField,
    validated,
)
from backupplatform.facades.workspace.conventions import WorkspaceViewSet
from backupplatform.urls import handler404, handler500  # noqa: F401
from backupplatform.urls import urlpatterns as main_urlpatterns
from tenants.models import ALL_TENANTS, Role


class ProbeInput(InputSerializer):
    name = StrictCharField(max_length=20)
    enabled = StrictBooleanField(required=False)


class Probe(mixins.ListModelMixin):
    queryset = AuditEvent.objects.filter(action__regex=r"^[ab]_").order_by("id")

    def tenant_queryset(self, tenant):
        qs = self.queryset.all()
        return qs if tenant is ALL_TENANTS else qs.filter(tenant=tenant)

    roles = {"list": Role.VIEWER, "create": Role.OPERATOR, "boom": Role.VIEWER}
    list_key = "events"

    def get_serializer(self, *args, **kwargs):
        from rest_framework import serializers

        class S(serializers.Serializer):
            id = serializers.IntegerField()
            action = serializers.CharField()

        return S(*args, **kwargs)

    def create(self, request, **kwargs):
        data = validated(ProbeInput, request.data)
        return respond({"name": data["name"]}, status_code=201, message="Created")

    def boom(self, request, **kwargs):
        raise RuntimeError("secret internals")


def probe(base):
    cls = type(f"Probe{base.__name__}", (Probe, base), {})
    return [
        path("_probe", cls.as_view({"get": "list", "post": "create"})),
        path("_probe/boom", cls.as_view({"get": "boom"})),
    ]


urlpatterns = [
    path("api/acronis/", include(probe(AcronisViewSet))),
    path("cloud-integration/backup/", include(probe(ConsoleViewSet))),
    path("api/v1/workspaces/<str:ws_id>/", include(probe(WorkspaceViewSet))),
    path("api/v1/jobs/", include(probe(JobsViewSet))),
    path("api/v1/", include(probe(PlatformViewSet))),
    *main_urlpatterns,
]
