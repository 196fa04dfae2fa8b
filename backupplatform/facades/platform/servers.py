"""Platform facade: servers (db-backup-platform.md, "Servers").

List is a plain array (the seed shows one). Credentials are write-only: responses show the
username and ``[HIDDEN]`` for every secret that is set. ``PUT`` takes partial bodies; in
``credentials`` a key set to ``null`` or ``""`` removes it, keys left out are kept.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers

from backupplatform.facades.base import respond
from backupplatform.facades.serializers import (
    InputSerializer,
    StrictCharField,
    StrictDictField,
    StrictIntegerField,
    validated,
)
from backupplatform.fields import HIDDEN
from backups import services
from backups.config_selectors import server_list
from backups.models import Server, ServerType
from backups.storage.validation import host_error
from tenants import capabilities
from tenants.models import Role

from .conventions import PlatformViewSet

# --- shapes --------------------------------------------------------------------------------


class ServerSerializer(serializers.ModelSerializer):
    credentials = serializers.SerializerMethodField()

    class Meta:
        model = Server
        fields = [
            "id",
            "name",
            "description",
            "type",
            "environment",
            "host",
            "port",
            "tags",
            "credentials",
            "health_status",
            "health_message",
            "last_heartbeat",
            "created_at",
            "updated_at",
        ]

    def get_credentials(self, obj: Server) -> dict[str, str]:
        creds = obj.credentials or {}
        return {k: (v if k in ("username", "host_key") else HIDDEN) for k, v in sorted(creds.items()) if v}


class CredentialsInput(InputSerializer):
    username = StrictCharField(max_length=200, required=False, allow_blank=True, allow_null=True)
    password = StrictCharField(
        max_length=1000, required=False, allow_blank=True, allow_null=True, trim_whitespace=False
    )
    ssh_key = StrictCharField(
        max_length=20000, required=False, allow_blank=True, allow_null=True, trim_whitespace=False
    )
    host_key = StrictCharField(
        max_length=5000,
        required=False,
        allow_blank=True,
        allow_null=True,
        help_text='The SSH server\'s public key line to pin ("ssh-ed25519 AAAA...")',
    )

    def validate_host_key(self, value):
        if value and (len(value.split()) < 2 or not value.split()[0].startswith(("ssh-", "ecdsa-"))):
            raise serializers.ValidationError("A public key line such as 'ssh-ed25519 AAAA...' is required.")
        return value


class ServerCreateInput(InputSerializer):
    name = StrictCharField(max_length=200)
    description = StrictCharField(required=False, allow_blank=True, max_length=5000)
    type = serializers.ChoiceField(choices=ServerType.choices)
    environment = StrictCharField(required=False, allow_blank=True, max_length=50)
    host = StrictCharField(max_length=255)
    port = StrictIntegerField(min_value=1, max_value=65535)
    tags = StrictDictField(required=False)
    credentials = CredentialsInput(required=False)

    def validate_host(self, value: str) -> str:
        if (error := host_error(value)) is not None:
            raise serializers.ValidationError(error)
        return value


class ServerUpdateInput(ServerCreateInput):
    """Every field optional: only what is given changes (the seed's example sends two)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False


TestResult = inline_serializer(
    "ServerConnectionTest",
    {
        "success": serializers.BooleanField(),
        "message": serializers.CharField(),
        "latency_ms": serializers.IntegerField(),
        "error_kind": serializers.CharField(allow_null=True),
        "server_version": serializers.CharField(allow_null=True),
        "health_status": serializers.CharField(),
    },
)
DatabaseList = inline_serializer(
    "ServerDatabases",
    {
        "databases": inline_serializer(
            "ServerDatabase",
            {
                "name": serializers.CharField(),
                "size_mb": serializers.FloatField(allow_null=True),
                "size_bytes": serializers.IntegerField(allow_null=True),
                "type": serializers.CharField(),
            },
            many=True,
        )
    },
)


# --- views ---------------------------------------------------------------------------------


class ServerViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PlatformViewSet):
    """Servers of the caller's workspace: viewers read, operators test, admins manage."""

    feature = capabilities.BACKUPS

    serializer_class = ServerSerializer
    queryset = Server.objects.none()
    unpaginated = True  # "List Servers" shows a plain array
    not_found = ("Server not found", "SERVER_NOT_FOUND")
    roles = {
        "list": Role.VIEWER,
        "retrieve": Role.VIEWER,
        "databases": Role.VIEWER,
        "test_connection": Role.OPERATOR,
        "create": Role.ADMIN,
        "update": Role.ADMIN,
        "partial_update": Role.ADMIN,
        "destroy": Role.ADMIN,
    }

    def tenant_queryset(self, tenant):
        return server_list(tenant=tenant)

    @extend_schema(request=ServerCreateInput, responses={201: ServerSerializer})
    def create(self, request):
        data = validated(ServerCreateInput, request.data)
        server = services.server_create(tenant=self.require_tenant(), **data)
        return respond(ServerSerializer(server).data, status_code=201)

    @extend_schema(request=ServerUpdateInput, responses={200: ServerSerializer})
    def update(self, request, pk=None):
        server = self.get_object()
        data = validated(ServerUpdateInput, request.data)
        server = services.server_update(server=server, **data)
        return respond(ServerSerializer(server).data)

    @extend_schema(request=ServerUpdateInput, responses={200: ServerSerializer})
    def partial_update(self, request, pk=None):
        return self.update(request, pk)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        services.server_delete(server=self.get_object())
        return respond(status_code=204)

    @extend_schema(request=None, responses={200: TestResult})
    def test_connection(self, request, pk=None):
        server = self.get_object()
        result = services.server_test_connection(server=server)
        return respond(
            {
                "success": result.success,
                "message": result.message,
                "latency_ms": result.latency_ms,
                "error_kind": result.kind,
                "server_version": result.details.get("server_version"),
                "health_status": server.health_status,
            }
        )

    @extend_schema(responses={200: DatabaseList})
    def databases(self, request, pk=None):
        server = self.get_object()
        return respond({"databases": services.server_list_databases(server=server)})
