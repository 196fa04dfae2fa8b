"""Console facade: "Storage Management" (system-backup-recovery.rst).

Every storage of the tenant is a location (``id`` = its name, ``storage_id`` its number):
quota, what is really stored there (its available backup copies), health, last sync, its
own retention. ``storage/sync`` copies backups between two locations (``BackupCopy`` rows;
``verify_after_sync`` re-reads each copy), in an operation of kind ``sync``.
"""

from __future__ import annotations

import os
import shutil

from django.db.models import Count, Max, Min, Sum
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers

from backupplatform.errors import NotFound
from backupplatform.facades.base import respond
from backupplatform.facades.scheduling import iso
from backupplatform.facades.schema import FACADE_ERROR
from backupplatform.facades.serializers import (
    InputSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictDictField,
    StrictIntegerField,
    validated,
)
from backups.models import Backup, BackupCopy, BackupStatus, CopyStatus, Operation, OperationKind, Storage
from backups.services import copies as service
from backups.services.copies import human_bytes
from backups.services.recovery import _duration_text
from backups.services.storage_settings import RETENTION_KEYS, storage_settings_update
from tenants.models import Role

from .conventions import ConsoleView
from .operation_bodies import operation_or_404, progress_body, progress_shape
from .serializers import parse_size

KIND = {"local": "local", "sftp": "remote"}
PROVIDER = {
    "s3": "AWS S3",
    "minio": "MinIO",
    "gcs": "Google Cloud Storage",
    "azure": "Azure Blob Storage",
    "sftp": "SFTP",
    "local": "Local disk",
}


def _health(storage: Storage) -> str:
    if storage.status != "active":
        return "disabled" if storage.status == "inactive" else "error"
    if storage.type == "local":
        return "good" if os.path.isdir((storage.configuration or {}).get("path", "")) else "offline"
    if storage.last_test_ok is None:
        return "unknown"
    return "connected" if storage.last_test_ok else "offline"


def location_body(storage: Storage, *, default_name: str | None) -> dict:
    used = service.storage_used_bytes(storage=storage)
    config = storage.configuration or {}
    available = None
    if storage.quota_bytes:
        available = max(0, storage.quota_bytes - used)
    elif storage.type == "local" and os.path.isdir(config.get("path", "")):
        available = shutil.disk_usage(config["path"]).free
    copies = BackupCopy.objects.filter(storage=storage)
    counts = {row["status"]: row["n"] for row in copies.values("status").annotate(n=Count("id"))}
    return {
        "id": storage.name,
        "storage_id": storage.pk,
        "type": KIND.get(storage.type, "cloud"),
        "storage_type": storage.type,
        "name": storage.name,
        "provider": PROVIDER.get(storage.type, storage.type),
        "enabled": storage.status == "active",
        "path": config.get("path"),
        "bucket": config.get("bucket") or config.get("container"),
        "region": config.get("region"),
        "quota": human_bytes(storage.quota_bytes) if storage.quota_bytes else None,
        "quota_bytes": storage.quota_bytes,
        "used": human_bytes(used),
        "used_bytes": used,
        "available": human_bytes(available) if available is not None else None,
        "available_bytes": available,
        "usage_percent": round(used * 100 / storage.quota_bytes, 1) if storage.quota_bytes else None,
        "cleanup_threshold": storage.cleanup_threshold,
        "health": _health(storage),
        "last_sync": iso(storage.last_synced_at),
        "last_tested": iso(storage.last_tested_at),
        "default": storage.name == default_name,
        "backup_copies": counts.get(CopyStatus.AVAILABLE, 0),
        "missing_copies": counts.get(CopyStatus.MISSING, 0) + counts.get(CopyStatus.CORRUPT, 0),
        "retention": {k: (storage.retention or {}).get(k) for k in RETENTION_KEYS},
        "configuration_required": storage.last_test_ok is False,
    }


def storage_page(tenant) -> dict:
    storages = list(Storage.objects.filter(tenant=tenant).order_by("-is_default", "name", "id"))
    default = next((s.name for s in storages if s.is_default), None)
    policy = service.storage_policy_get(tenant=tenant)
    completed = Backup.objects.filter(tenant=tenant, status=BackupStatus.COMPLETED)
    agg = completed.aggregate(
        n=Count("id"), size=Sum("stored_bytes"), largest=Max("stored_bytes"), oldest=Min("created_at")
    )
    return {
        "storage_locations": [location_body(s, default_name=default) for s in storages],
        "policies": {
            "default_location": default,
            "replication_enabled": policy.replication_enabled,
            "replication_target": policy.replication_target.name if policy.replication_target else None,
            "encryption_default": True,
            "compression_default": policy.compression_default,
        },
        "summary": {
            "total_backups": agg["n"] or 0,
            "total_size": human_bytes(agg["size"] or 0),
            "total_size_bytes": int(agg["size"] or 0),
            "largest_backup": human_bytes(agg["largest"] or 0),
            "oldest_backup": iso(agg["oldest"]),
            "total_copies": BackupCopy.objects.filter(tenant=tenant, status=CopyStatus.AVAILABLE).count(),
        },
    }


@extend_schema_field({"oneOf": [{"type": "string", "example": "20 GB"}, {"type": "integer"}], "nullable": True})
class SizeField(serializers.Field):
    """``"20 GB"``, a number of bytes, or null (no quota)."""

    def to_internal_value(self, data):
        if data is None:
            return None
        if isinstance(data, bool):
            raise serializers.ValidationError("Use a size such as '20 GB' or a number of bytes.")
        if isinstance(data, int):
            value = data
        elif isinstance(data, str) and len(data) <= 40:
            value = parse_size(data)
        else:
            raise serializers.ValidationError("Use a size such as '20 GB' or a number of bytes.")
        if not 0 < value < 2**62:
            raise serializers.ValidationError("Must be more than 0 bytes.")
        return value

    def to_representation(self, value):
        return value


class RetentionSerializer(InputSerializer):
    keep_last_n = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=100_000)
    keep_days = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=100_000)
    keep_daily = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=100_000)
    keep_weekly = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=100_000)
    keep_monthly = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=100_000)
    keep_yearly = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=100_000)


class LocationSerializer(InputSerializer):
    quota = SizeField(required=False, allow_null=True)
    cleanup_threshold = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=100)
    enabled = StrictBooleanField(required=False)
    default = StrictBooleanField(required=False)
    bucket = StrictCharField(required=False, max_length=63)
    region = StrictCharField(required=False, max_length=40)
    path = StrictCharField(required=False, max_length=1024)
    path_prefix = StrictCharField(required=False, allow_blank=True, max_length=500)
    container = StrictCharField(required=False, max_length=63)
    retention = RetentionSerializer(required=False)


@extend_schema_field({"type": "string", "pattern": "^(gzip|zstd)$"})
class CompressionField(StrictCharField):
    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value not in ("gzip", "zstd"):
            raise serializers.ValidationError("Use 'gzip' or 'zstd'.")
        return value


class PoliciesSerializer(InputSerializer):
    default_location = StrictCharField(required=False, max_length=200)
    replication_enabled = StrictBooleanField(required=False)
    replication_target = StrictCharField(required=False, allow_null=True, max_length=200)
    encryption_default = StrictBooleanField(required=False)
    compression_default = CompressionField(required=False)

    def validate_encryption_default(self, value: bool) -> bool:
        if not value:
            raise serializers.ValidationError("Backups are always encrypted (AES-256-GCM).")
        return value


class StorageUpdateSerializer(InputSerializer):
    storage_locations = StrictDictField(child=LocationSerializer(), required=False)
    policies = PoliciesSerializer(required=False)

    def validate_storage_locations(self, value: dict) -> dict:
        if len(value) > 50 or any(not isinstance(k, str) or not 0 < len(k) <= 200 for k in value):
            raise serializers.ValidationError("Name each location by its id (1-200 characters).")
        return value


class SyncSerializer(InputSerializer):
    source = StrictCharField(max_length=200)
    destination = StrictCharField(max_length=200)
    backup_ids = serializers.ListField(child=serializers.JSONField(), required=False, max_length=10_000)
    verify_after_sync = StrictBooleanField(required=False, default=True)

    def validate_backup_ids(self, value: list) -> list[int] | None:
        if value == ["all"] or not value:
            return None
        ids = []
        for item in value:
            if isinstance(item, bool) or not isinstance(item, int) or not 0 < item < 2**63:
                raise serializers.ValidationError('Backup ids (whole numbers) or ["all"].')
            ids.append(item)
        return ids


_ts = {"allow_null": True, "help_text": "ISO 8601 UTC"}
LocationShape = inline_serializer(
    "ConsoleStorageLocation",
    {
        "id": serializers.CharField(),
        "storage_id": serializers.IntegerField(),
        "type": serializers.CharField(),
        "storage_type": serializers.CharField(),
        "name": serializers.CharField(),
        "provider": serializers.CharField(),
        "enabled": serializers.BooleanField(),
        "path": serializers.CharField(allow_null=True),
        "bucket": serializers.CharField(allow_null=True),
        "region": serializers.CharField(allow_null=True),
        "quota": serializers.CharField(allow_null=True),
        "quota_bytes": serializers.IntegerField(allow_null=True),
        "used": serializers.CharField(),
        "used_bytes": serializers.IntegerField(),
        "available": serializers.CharField(allow_null=True),
        "available_bytes": serializers.IntegerField(allow_null=True),
        "usage_percent": serializers.FloatField(allow_null=True),
        "cleanup_threshold": serializers.IntegerField(allow_null=True),
        "health": serializers.CharField(),
        "last_sync": serializers.CharField(**_ts),
        "last_tested": serializers.CharField(**_ts),
        "default": serializers.BooleanField(),
        "backup_copies": serializers.IntegerField(),
        "missing_copies": serializers.IntegerField(),
        "retention": serializers.DictField(child=serializers.IntegerField(allow_null=True)),
        "configuration_required": serializers.BooleanField(),
    },
)
PoliciesShape = inline_serializer(
    "ConsoleStoragePolicies",
    {
        "default_location": serializers.CharField(allow_null=True),
        "replication_enabled": serializers.BooleanField(),
        "replication_target": serializers.CharField(allow_null=True),
        "encryption_default": serializers.BooleanField(),
        "compression_default": serializers.CharField(),
    },
)
StoragePageShape = inline_serializer(
    "ConsoleStorage",
    {
        "storage_locations": LocationShape.__class__(many=True),
        "policies": PoliciesShape.__class__(),
        "summary": inline_serializer(
            "ConsoleStorageSummary",
            {
                "total_backups": serializers.IntegerField(),
                "total_size": serializers.CharField(),
                "total_size_bytes": serializers.IntegerField(),
                "largest_backup": serializers.CharField(),
                "oldest_backup": serializers.CharField(**_ts),
                "total_copies": serializers.IntegerField(),
            },
        ),
    },
)
UpdatedShape = inline_serializer(
    "ConsoleStorageUpdated",
    {
        "status": serializers.CharField(),
        "message": serializers.CharField(),
        "restart_required": serializers.BooleanField(),
        "changes_applied": serializers.BooleanField(),
        "changes": serializers.ListField(child=serializers.CharField()),
        "storage_locations": LocationShape.__class__(many=True),
        "policies": PoliciesShape.__class__(),
    },
)
SyncStartedShape = inline_serializer(
    "ConsoleSyncStarted",
    {
        "status": serializers.CharField(),
        "sync_id": serializers.CharField(),
        "source": serializers.CharField(),
        "destination": serializers.CharField(),
        "backups_to_sync": serializers.IntegerField(),
        "backups_already_there": serializers.IntegerField(),
        "estimated_size": serializers.CharField(),
        "estimated_duration": serializers.CharField(),
        "verify_after_sync": serializers.BooleanField(),
        "progress_url": serializers.CharField(),
    },
)
SyncProgressShape = progress_shape(
    "ConsoleSyncProgress",
    "sync_id",
    {
        "source": serializers.CharField(allow_null=True),
        "destination": serializers.CharField(allow_null=True),
        "backups_total": serializers.IntegerField(),
        "backups_synced": serializers.IntegerField(),
        "backups_skipped": serializers.IntegerField(),
        "verify_after_sync": serializers.BooleanField(),
        "failed": serializers.ListField(child=serializers.JSONField()),
    },
)


class StorageView(ConsoleView):
    roles = {"GET": Role.VIEWER}

    @extend_schema(operation_id="console_storage_get", responses={200: StoragePageShape})
    def get(self, request):
        return respond(storage_page(self.require_tenant()))


class StorageUpdateView(ConsoleView):
    """Update locations and policies in one transaction (admins)."""

    roles = {"POST": Role.ADMIN}

    @extend_schema(request=StorageUpdateSerializer, responses={200: UpdatedShape})
    def post(self, request):
        tenant = self.require_tenant()
        data = validated(StorageUpdateSerializer, request.data)
        changes = storage_settings_update(
            tenant=tenant, locations=data.get("storage_locations") or {}, policies=data.get("policies") or {}
        )
        page = storage_page(tenant)
        return respond(
            {
                "status": "updated",
                "message": "Storage configuration updated",
                "restart_required": False,
                "changes_applied": bool(changes),
                "changes": changes,
                "storage_locations": page["storage_locations"],
                "policies": page["policies"],
            }
        )


def _duration(size: int, tenant) -> str:
    # Copies run at the speed of the slower storage; the tenant's past syncs tell it.

    done = (
        Operation.objects.filter(tenant=tenant, kind=OperationKind.SYNC, status="completed", throughput_bps__gt=0)
        .order_by("-finished_at")
        .values_list("throughput_bps", flat=True)[:10]
    )
    rate = sum(done) / len(done) if done else 20 * 1024 * 1024
    return _duration_text(size / max(rate, 1))


class StorageSyncView(ConsoleView):
    """Copy backups from one location to another (operators)."""

    roles = {"POST": Role.OPERATOR}

    @extend_schema(request=SyncSerializer, responses={200: SyncStartedShape, 507: FACADE_ERROR})
    def post(self, request):
        tenant = self.require_tenant()
        data = validated(SyncSerializer, request.data)
        source = service.storage_by_name(tenant=tenant, name=data["source"], field="source")
        destination = service.storage_by_name(tenant=tenant, name=data["destination"], field="destination")
        ids = data.get("backup_ids")
        backups = list(Backup.objects.filter(tenant=tenant, pk__in=ids)) if ids else None
        if ids and len(backups) != len(set(ids)):
            raise NotFound(
                "Backup not found",
                code="BACKUP_NOT_FOUND",
                details={"backup_ids": sorted(set(ids) - {b.pk for b in backups})},
            )
        op = service.sync_start(
            tenant=tenant,
            source=source,
            destination=destination,
            backups=backups,
            verify=data["verify_after_sync"],
            actor=request.user,
        )
        details = op.details
        todo = details["backups_total"] - details["backups_skipped"]
        return respond(
            {
                "status": "sync_started",
                "sync_id": op.public_id,
                "source": source.name,
                "destination": destination.name,
                "backups_to_sync": todo,
                "backups_already_there": details["backups_skipped"],
                "estimated_size": human_bytes(details["bytes_total"]),
                "estimated_duration": _duration(details["bytes_total"], tenant),
                "verify_after_sync": details["verify"],
                "progress_url": service.sync_progress_url(op),
            }
        )


class StorageSyncProgressView(ConsoleView):
    roles = {"GET": Role.VIEWER}

    @extend_schema(responses={200: SyncProgressShape})
    def get(self, request, sync_id=None):
        op = operation_or_404(self.require_tenant(), sync_id, OperationKind.SYNC, "Sync")
        d = op.details or {}
        return respond(
            progress_body(
                op,
                id_field="sync_id",
                operation="sync",
                details={
                    "source": d.get("source"),
                    "destination": d.get("destination"),
                    "backups_total": d.get("backups_total", 0),
                    "backups_synced": d.get("backups_synced", 0),
                    "backups_skipped": d.get("backups_skipped", 0),
                    "verify_after_sync": bool(d.get("verify")),
                    "failed": d.get("failed", []),
                },
            )
        )
