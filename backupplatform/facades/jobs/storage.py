"""Jobs facade: storage management (api-layer.md, "Storage Management").

The seed lists the routes only; shapes decided here:

- a *provider* is one of the workspace's storages: ``provider_type`` is its type, secrets
  are ``[HIDDEN]``, ``used_bytes``/``backup_count`` come from the completed backups on it;
- ``POST /storage/test`` takes ``{"storage_id": N}`` or an unsaved
  ``{"provider_type", "configuration", "credentials"}`` and really writes, reads back,
  compares and deletes a small object, returning each step's timing. A failed probe is a
  result (``data.success`` false), not an error; an invalid configuration is a 400
  ``INVALID_STORAGE_CONFIG``;
- ``/storage/{id}/space``: used bytes from the stored artifacts, available bytes from the
  backend where it can say (local, SFTP), the quota if one is set.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers

from backupplatform import units
from backupplatform.errors import NotFound
from backupplatform.facades.base import respond
from backupplatform.facades.serializers import (
    InputSerializer,
    StrictCharField,
    StrictDictField,
    StrictIntegerField,
)
from backupplatform.isotime import utc_iso as iso
from backups import config_selectors as selectors
from backups import services
from backups.models import Backup, Storage
from backups.storage import STORAGE_TYPES
from tenants import capabilities
from tenants.models import Role

from .backup_jobs import ChecksumField
from .conventions import JobsView, JobsViewSet


class ProviderSerializer(serializers.ModelSerializer):
    provider_type = serializers.CharField(source="type", read_only=True)
    workspace = serializers.CharField(source="tenant.slug", read_only=True)
    credentials = serializers.SerializerMethodField()
    used_bytes = serializers.IntegerField(read_only=True)
    backup_count = serializers.IntegerField(read_only=True)
    last_test = serializers.SerializerMethodField()

    class Meta:
        model = Storage
        fields = [
            "id",
            "name",
            "description",
            "provider_type",
            "workspace",
            "status",
            "is_default",
            "configuration",
            "credentials",
            "labels",
            "quota_bytes",
            "used_bytes",
            "backup_count",
            "last_test",
            "created_at",
            "updated_at",
        ]

    def get_credentials(self, obj: Storage) -> dict[str, str]:
        return services.storage_public_credentials(obj.credentials)

    def get_last_test(self, obj: Storage) -> dict[str, Any]:
        return {
            "tested_at": iso(obj.last_tested_at),
            "success": obj.last_test_ok,
            "message": obj.last_test_message or None,
        }


class StoredBackupSerializer(serializers.ModelSerializer):
    checksum = ChecksumField()

    class Meta:
        model = Backup
        fields = [
            "id",
            "name",
            "status",
            "backup_type",
            "trigger",
            "application_id",
            "server_id",
            "database_name",
            "job_id",
            "storage_path",
            "size_bytes",
            "stored_bytes",
            "checksum",
            "compression",
            "encrypted",
            "verified",
            "created_at",
            "started_at",
            "completed_at",
        ]


PROVIDER_TYPES = (*STORAGE_TYPES, "network")


class StorageTestInput(InputSerializer):
    """A saved storage (``storage_id``), an unsaved one (``provider_type`` with
    ``configuration`` and ``credentials``), or the document's ``"provider_type": "network"``
    with a ``connection_string`` (``services.storage_config_from_connection_string``)."""

    storage_id = StrictIntegerField(required=False, min_value=1)
    provider_type = serializers.CharField(required=False)
    configuration = StrictDictField(required=False)
    credentials = StrictDictField(required=False)
    connection_string = StrictCharField(required=False, max_length=2000)

    def to_internal_value(self, data: Any) -> Any:
        # Name an unsupported provider_type together with unknown fields.
        errors: dict[str, list[str]] = {}
        if isinstance(data, dict):
            kind = data.get("provider_type")
            if "provider_type" in data and kind not in PROVIDER_TYPES:
                errors["provider_type"] = [
                    f"Unsupported provider type {kind!r}; supported types: {', '.join(PROVIDER_TYPES)}."
                ]
            errors.update({name: ["Unknown field."] for name in sorted(set(data) - set(self.fields))})
        if errors:
            raise serializers.ValidationError(errors)
        return super().to_internal_value(data)

    def validate(self, attrs: dict) -> dict:
        if "storage_id" in attrs:
            extra = sorted(set(attrs) - {"storage_id"})
            if extra:
                raise serializers.ValidationError(
                    {name: ["Give either storage_id or an unsaved configuration."] for name in extra}
                )
        elif "provider_type" not in attrs:
            raise serializers.ValidationError(
                {"storage_id": ["Give storage_id, or provider_type with configuration and credentials."]}
            )
        elif attrs["provider_type"] == "network":
            if "connection_string" not in attrs:
                raise serializers.ValidationError({"connection_string": ["A network storage needs its address."]})
            extra = sorted({"configuration", "credentials"} & set(attrs))
            if extra:
                raise serializers.ValidationError(
                    {name: ["A network storage is given by its connection_string."] for name in extra}
                )
        elif "connection_string" in attrs:
            raise serializers.ValidationError(
                {
                    "connection_string": [
                        "Only a network storage has a connection_string; give configuration and credentials."
                    ]
                }
            )
        return attrs


ProbeShape = inline_serializer(
    "StorageProbe",
    {
        "success": serializers.BooleanField(),
        "message": serializers.CharField(),
        "latency_ms": serializers.IntegerField(),
        "error_kind": serializers.CharField(allow_null=True),
        "provider_type": serializers.CharField(),
        "storage_id": serializers.IntegerField(allow_null=True),
        "steps": inline_serializer(
            "StorageProbeStep",
            {
                "name": serializers.CharField(),
                "ok": serializers.BooleanField(),
                "duration_ms": serializers.IntegerField(),
                "error": serializers.CharField(allow_null=True),
            },
            many=True,
        ),
    },
)
SpaceShape = inline_serializer(
    "StorageSpace",
    {
        "storage_id": serializers.IntegerField(),
        "provider_type": serializers.CharField(),
        "used_bytes": serializers.IntegerField(),
        "used_gb": serializers.FloatField(),
        "backup_count": serializers.IntegerField(),
        "available_bytes": serializers.IntegerField(allow_null=True),
        "available_error": serializers.CharField(allow_null=True),
        "quota_bytes": serializers.IntegerField(allow_null=True),
        "quota_remaining_bytes": serializers.IntegerField(allow_null=True),
        "quota_used_percent": serializers.FloatField(allow_null=True),
    },
)


class _StorageScoped:
    queryset = Storage.objects.none()
    feature = capabilities.BACKUPS
    not_found = ("Storage not found", "STORAGE_NOT_FOUND")

    def tenant_queryset(self, tenant):
        return selectors.storage_list(tenant=tenant).select_related("tenant")


class StorageProviderViewSet(_StorageScoped, mixins.ListModelMixin, mixins.RetrieveModelMixin, JobsViewSet):
    """``GET /storage/providers`` (paginated ``page``/``page_size``) and ``/providers/{id}``."""

    serializer_class = ProviderSerializer
    success_message = "Storage providers retrieved"


class StorageTestView(_StorageScoped, JobsView):
    """``POST /storage/test``: a real write/read/compare/delete probe (operators)."""

    roles = {"POST": Role.OPERATOR}

    @extend_schema(request=StorageTestInput, responses={200: ProbeShape})
    def post(self, request):
        serializer = StorageTestInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if "storage_id" in data:
            storage = self.get_queryset().filter(pk=data["storage_id"]).first()
            if storage is None:
                raise NotFound(*self.not_found[:1], code=self.not_found[1])
            result = services.storage_probe(storage=storage)
            kind, storage_id = storage.type, storage.pk
        else:
            kind, storage_id = data["provider_type"], None
            configuration, credentials = data.get("configuration"), data.get("credentials")
            if kind == "network":
                kind, configuration, credentials = services.storage_config_from_connection_string(
                    data["connection_string"]
                )
            result = services.storage_probe_config(
                tenant=self.require_tenant(), type=kind, configuration=configuration, credentials=credentials
            )
        body = result.as_dict()
        return respond(
            {
                "success": body["ok"],
                "message": body["message"],
                "latency_ms": body["latency_ms"],
                "error_kind": body["error_kind"],
                "provider_type": kind,
                "storage_id": storage_id,
                "steps": body["steps"],
            },
            message="Storage test passed" if result.ok else "Storage test failed",
        )


class StorageSpaceView(_StorageScoped, JobsView):
    """``GET /storage/{id}/space``."""

    @extend_schema(responses={200: SpaceShape})
    def get(self, request, pk=None):
        storage = self.get_object()
        free = services.storage_free_space(storage=storage)
        used = storage.used_bytes
        quota = storage.quota_bytes
        return respond(
            {
                "storage_id": storage.pk,
                "provider_type": storage.type,
                "used_bytes": used,
                "used_gb": units.gigabytes(used),
                "backup_count": storage.backup_count,
                "available_bytes": free.available_bytes,
                "available_error": free.error,
                "quota_bytes": quota,
                "quota_remaining_bytes": None if quota is None else max(quota - used, 0),
                "quota_used_percent": None if not quota else round(used / quota * 100, 2),
            },
            message="Storage space retrieved",
        )


class StorageBackupsView(_StorageScoped, mixins.ListModelMixin, JobsViewSet):
    """``GET /storage/{id}/backups``: backups on that storage, newest first (paginated)."""

    serializer_class = StoredBackupSerializer

    def list(self, request, *args, **kwargs):
        storage = self.get_object()
        page = self.paginate_queryset(selectors.storage_backup_list(storage=storage))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)
