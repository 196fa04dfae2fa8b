"""The console's storage settings in one transaction (system-backup-recovery.rst "Update
Storage Configuration"): per-location quota, cleanup threshold, enabled, bucket/region/path
and retention, and the tenant's policies (default location, replication, compression)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from audit.services import emit
from backupplatform.errors import ValidationFailed
from tenants.models import Tenant

from ..models import Storage, StoragePolicy, StorageStatus
from . import storages as svc
from .copies import storage_by_name

CONFIG_KEYS = {
    "bucket": ("s3", "minio", "gcs"),
    "region": ("s3", "minio"),
    "path": ("local", "sftp"),
    "path_prefix": ("s3", "minio", "gcs", "azure"),
    "container": ("azure",),
}
RETENTION_KEYS = ("keep_last_n", "keep_days", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")


@transaction.atomic
def storage_settings_update(*, tenant: Tenant, locations: dict[str, dict], policies: dict[str, Any]) -> list[str]:
    """Apply every change or none. ``locations`` is keyed by storage name (or type or id)."""
    changes: list[str] = []
    for name, values in locations.items():
        storage = storage_by_name(tenant=tenant, name=name, field=f"storage_locations.{name}")
        update: dict[str, Any] = {}
        configuration: dict[str, Any] = {}
        for key, value in values.items():
            if key == "quota":
                update["quota_bytes"] = value
            elif key == "cleanup_threshold":
                update["cleanup_threshold"] = value
            elif key == "enabled":
                update["status"] = StorageStatus.ACTIVE if value else StorageStatus.INACTIVE
            elif key == "default":
                if value:
                    update["is_default"] = True
            elif key == "retention":
                update["retention"] = {k: v for k, v in value.items() if v is not None}
            elif key in CONFIG_KEYS:
                if storage.type not in CONFIG_KEYS[key]:
                    raise ValidationFailed(
                        details={f"storage_locations.{name}.{key}": [f"A {storage.type} storage has no {key}."]}
                    )
                configuration[key] = value
        if configuration:
            update["configuration"] = configuration
        if update:
            svc.storage_update(storage=storage, **update)
            changes += [f"{storage.name}.{k}" for k in sorted(values)]
    if policies:
        policy, _ = StoragePolicy.objects.select_for_update().get_or_create(tenant=tenant)
        if "default_location" in policies:
            storage = storage_by_name(
                tenant=tenant, name=policies["default_location"], field="policies.default_location"
            )
            svc.storage_update(storage=storage, is_default=True)
        if "replication_target" in policies:
            target = policies["replication_target"]
            policy.replication_target = (
                storage_by_name(tenant=tenant, name=target, field="policies.replication_target") if target else None
            )
        if "replication_enabled" in policies:
            policy.replication_enabled = policies["replication_enabled"]
        if "compression_default" in policies:
            policy.compression_default = policies["compression_default"]
        if policy.replication_enabled:
            if policy.replication_target is None:
                policy.replication_target = (
                    Storage.objects.filter(tenant=tenant, status=StorageStatus.ACTIVE)
                    .exclude(is_default=True)
                    .order_by("id")
                    .first()
                )
            if policy.replication_target is None:
                raise ValidationFailed(
                    details={
                        "policies.replication_enabled": [
                            "Replication needs a second storage (policies.replication_target)."
                        ]
                    }
                )
            if policy.replication_target.is_default:
                raise ValidationFailed(
                    details={
                        "policies.replication_target": ["The replication target must not be the default location."]
                    }
                )
        policy.save()
        changes += [f"policies.{k}" for k in sorted(policies)]
    emit(
        action="storage_settings_update",
        tenant=tenant,
        resource_type="storage",
        resource_id="",
        details={"changes": changes},
    )
    return changes
