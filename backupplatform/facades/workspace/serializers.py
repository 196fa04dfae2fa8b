"""workspace-backup-api.md shapes: backup storages, storage usage; applications (extension).

Ids are written as the document writes them, ``"storage-123"`` (``ids.py``; the number is the
row's id in every facade). ``workspace_id`` is the workspace slug (``ws_id``).
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from backupplatform.facades.serializers import (
    InputSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictDictField,
    StrictIntegerField,
)
from backupplatform.isotime import utc_iso as iso
from backups.config_selectors import storage_usage_by_application, storage_usage_summary
from backups.models import Application, SourceType, Storage, StorageStatus, StorageType
from backups.models.applications import Component
from backups.services.applications import source_fields
from backups.services.storages import storage_public_credentials

from .ids import PublicIdField

WRITABLE_STORAGE_STATUSES = [(StorageStatus.ACTIVE.value, "Active"), (StorageStatus.INACTIVE.value, "Inactive")]


def flatten_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested errors -> ``{"sources[1].server_id": [...]}`` (dotted paths, indexed lists)."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            if isinstance(key, int):  # DRF reports list items by index in a dict
                path = f"{prefix}[{key}]"
            elif key == "non_field_errors" and prefix:
                path = prefix
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            out.update(flatten_errors(value, path))
    elif isinstance(detail, list) and any(isinstance(v, dict | list) for v in detail):
        for index, value in enumerate(detail):
            if value:
                out.update(flatten_errors(value, f"{prefix}[{index}]"))
    else:
        out[prefix or "non_field_errors"] = [str(v) for v in (detail if isinstance(detail, list) else [detail])]
    return out


def validated_flat(serializer_class: type[serializers.Serializer], data: Any) -> dict:
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        raise serializers.ValidationError(flatten_errors(serializer.errors))
    return serializer.validated_data


class OptionalFields:
    """Update bodies: every field optional, only what is given changes (never ``partial=True``,
    which would also relax the required fields of nested items)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False


# --- storages ---------------------------------------------------------------------------------


class StorageSerializer(serializers.ModelSerializer):
    """The seed's "Backup Storage Object"; with ``context={"detail": True}`` also
    ``connection_status`` and the usage breakdown by application ("Get Backup Storage")."""

    id = PublicIdField("storage")
    workspace_id = serializers.CharField(source="tenant.slug", read_only=True)
    credentials = serializers.SerializerMethodField()
    usage = serializers.SerializerMethodField()

    class Meta:
        model = Storage
        fields = [
            "id",
            "name",
            "description",
            "workspace_id",
            "type",
            "status",
            "is_default",
            "created_at",
            "updated_at",
            "configuration",
            "credentials",
            "labels",
            "quota_bytes",
            "usage",
        ]

    def get_credentials(self, obj: Storage) -> dict[str, str]:
        return storage_public_credentials(obj.credentials)

    def get_usage(self, obj: Storage) -> dict[str, Any]:
        usage = storage_usage_summary(storage=obj)
        if self.context.get("detail"):
            usage["breakdown"] = {"by_application": storage_usage_by_application(storage=obj)}
        return usage

    def to_representation(self, instance: Storage) -> dict[str, Any]:
        data = super().to_representation(instance)
        if self.context.get("detail"):
            tested = instance.last_test_ok
            data["connection_status"] = {
                "status": "untested" if tested is None else ("connected" if tested else "failed"),
                "last_tested": iso(instance.last_tested_at),
                "test_result": None if tested is None else ("success" if tested else "failure"),
                "message": instance.last_test_message or None,
            }
        return data


class StorageCreateInput(InputSerializer):
    name = StrictCharField(max_length=200)
    description = StrictCharField(required=False, allow_blank=True, max_length=5000)
    type = serializers.ChoiceField(choices=StorageType.choices)
    configuration = StrictDictField(required=False)
    credentials = StrictDictField(required=False)
    labels = StrictDictField(required=False)
    is_default = StrictBooleanField(required=False)
    quota_bytes = StrictIntegerField(required=False, allow_null=True, min_value=0)
    status = serializers.ChoiceField(choices=WRITABLE_STORAGE_STATUSES, required=False)


class StorageUpdateInput(OptionalFields, InputSerializer):
    """ "Update Backup Storage": ``configuration``/``credentials`` merge key by key."""

    name = StrictCharField(max_length=200)
    description = StrictCharField(allow_blank=True, max_length=5000)
    configuration = StrictDictField()
    credentials = StrictDictField()
    labels = StrictDictField()
    is_default = StrictBooleanField()
    quota_bytes = StrictIntegerField(allow_null=True, min_value=0)
    status = serializers.ChoiceField(choices=WRITABLE_STORAGE_STATUSES)


# --- applications (extension) -------------------------------------------------------------------


class SourceInput(InputSerializer):
    id = StrictIntegerField(required=False, min_value=1)
    name = StrictCharField(required=False, max_length=200)
    type = serializers.ChoiceField(choices=SourceType.choices)
    server_id = StrictIntegerField(required=False, allow_null=True, min_value=1)
    database_name = StrictCharField(required=False, allow_blank=True, max_length=200)
    path = StrictCharField(required=False, allow_blank=True, max_length=1024)
    include = serializers.ListField(child=StrictCharField(max_length=512), required=False, max_length=200)
    exclude = serializers.ListField(child=StrictCharField(max_length=512), required=False, max_length=200)
    component = serializers.ChoiceField(choices=Component.choices, required=False)


class ApplicationCreateInput(InputSerializer):
    name = StrictCharField(max_length=200)
    namespace = StrictCharField(required=False, allow_blank=True, max_length=200)
    labels = StrictDictField(required=False)
    description = StrictCharField(required=False, allow_blank=True, max_length=5000)
    sources = SourceInput(many=True, required=False, max_length=100)


class ApplicationUpdateInput(OptionalFields, ApplicationCreateInput):
    """A given ``sources`` list replaces the current sources (ids update, new items create)."""


class ApplicationSerializer(serializers.ModelSerializer):
    id = PublicIdField("application")
    workspace_id = serializers.CharField(source="tenant.slug", read_only=True)
    sources = serializers.SerializerMethodField()

    class Meta:
        model = Application
        fields = [
            "id",
            "name",
            "namespace",
            "labels",
            "description",
            "is_default",
            "workspace_id",
            "sources",
            "created_at",
            "updated_at",
        ]

    def get_sources(self, obj: Application) -> list[dict[str, Any]]:
        return [source_fields(s) for s in obj.sources.all()]
