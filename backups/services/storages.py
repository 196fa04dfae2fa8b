"""Storages: create, update, delete, real probes, and usage from what is really stored.

workspace-backup-api.md "Backup Storage Management", api-layer.md "Storage Management".
Configuration is validated per type by ``backups.storage.validate_config`` and refused with
``INVALID_STORAGE_CONFIG`` and the seed's ``{field: message}`` details. Credentials are
encrypted at rest; ``storage_public_credentials`` is the only way they are shown.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import emit
from backupplatform import units
from backupplatform.errors import Conflict, DomainError, ValidationFailed
from backups import storage as backends
from tenants import capabilities
from tenants.models import Tenant

from .. import confinement
from ..models import Storage, StorageStatus
from ..storage.targets import network_errors

logger = logging.getLogger(__name__)

HIDDEN = "[HIDDEN]"
# Credential fields that identify rather than authenticate: shown (access key ids shortened
# to their prefix, as the seed's "AKIA..."), every other credential is "[HIDDEN]".
PUBLIC_CREDENTIALS = {"access_key_id", "username", "account_name"}
EDITABLE_FIELDS = (
    "name",
    "description",
    "status",
    "labels",
    "is_default",
    "quota_bytes",
    "price_per_gb_month",
    "cleanup_threshold",
    "retention",
)


class InvalidStorageConfiguration(DomainError):
    """workspace-backup-api.md "Error Responses": details are ``{field: message}`` strings."""

    status = 400
    code = "INVALID_STORAGE_CONFIG"
    default_message = "Invalid storage configuration"


def storage_public_credentials(credentials: dict | None) -> dict[str, str]:
    """Credentials as an API may show them: identifiers (shortened), secrets ``[HIDDEN]``."""
    shown: dict[str, str] = {}
    for key, value in sorted((credentials or {}).items()):
        if key == "access_key_id" and isinstance(value, str):
            shown[key] = f"{value[:4]}..." if len(value) > 4 else "..."
        elif key in PUBLIC_CREDENTIALS and isinstance(value, str):
            shown[key] = value
        else:
            shown[key] = HIDDEN
    return shown


def _validate(
    type: str, configuration: dict, credentials: dict, *, tenant: Tenant, storage_id: int | None = None
) -> None:
    errors = {
        **network_errors(type, configuration, credentials),
        **backends.validate_config(type, configuration, credentials),
    }
    if (
        type == "local"
        and "path" not in errors
        and (reason := confinement.check_storage_folder(tenant, configuration.get("path", ""), storage_id=storage_id))
    ):
        errors["path"] = reason
    if errors:
        raise InvalidStorageConfiguration(details=errors)


def _check_name(*, tenant: Tenant, name: str, exclude_pk: int | None = None) -> None:
    qs = Storage.objects.filter(tenant=tenant, name=name)
    if exclude_pk is not None:
        qs = qs.exclude(pk=exclude_pk)
    if qs.exists():
        raise ValidationFailed(details={"name": ["A storage with this name already exists."]})


def _merge(current: dict, changes: dict | None) -> dict:
    """Shallow merge: a key set to ``null`` is removed (workspace seed "Update": partial)."""
    merged = dict(current or {})
    for key, value in (changes or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _set_default(storage: Storage) -> None:
    Storage.objects.filter(tenant=storage.tenant, is_default=True).exclude(pk=storage.pk).update(is_default=False)


@transaction.atomic
def storage_create(
    *,
    tenant: Tenant,
    name: str,
    type: str,
    configuration: dict | None = None,
    credentials: dict | None = None,
    description: str = "",
    labels: dict | None = None,
    is_default: bool = False,
    quota_bytes: int | None = None,
    status: str = StorageStatus.ACTIVE,
    price_per_gb_month: Decimal | None = None,
) -> Storage:
    """Create a storage (``price_per_gb_month`` is the platform operator's: no API sets it)."""
    capabilities.require_feature(tenant)
    configuration, credentials = dict(configuration or {}), dict(credentials or {})
    _validate(type, configuration, credentials, tenant=tenant)
    _check_name(tenant=tenant, name=name)
    first = not Storage.objects.filter(tenant=tenant).exists()
    storage = Storage.objects.create(
        tenant=tenant,
        name=name,
        type=type,
        configuration=configuration,
        credentials=credentials,
        description=description,
        labels=labels or {},
        is_default=is_default or first,
        quota_bytes=quota_bytes,
        status=status,
        **({"price_per_gb_month": price_per_gb_month} if price_per_gb_month is not None else {}),
    )
    if storage.is_default:
        _set_default(storage)
    emit(
        action="storage_create",
        tenant=tenant,
        resource_type="storage",
        resource_id=storage.pk,
        details={"name": name, "type": type, "configuration": configuration, "credential_fields": sorted(credentials)},
    )
    return storage


@transaction.atomic
def storage_update(*, storage: Storage, **changes: Any) -> Storage:
    """Partial update. ``configuration`` and ``credentials`` merge key by key, then the
    result is validated as a whole (the type cannot change: create another storage)."""
    capabilities.require_feature(storage.tenant)
    changed: list[str] = []
    if "name" in changes and changes["name"] != storage.name:
        _check_name(tenant=storage.tenant, name=changes["name"], exclude_pk=storage.pk)
    configuration = _merge(storage.configuration, changes.get("configuration"))
    credentials = _merge(storage.credentials, changes.get("credentials"))
    if "configuration" in changes or "credentials" in changes:
        _validate(storage.type, configuration, credentials, tenant=storage.tenant, storage_id=storage.pk)
        if configuration != storage.configuration:
            storage.configuration = configuration
            changed.append("configuration")
        credential_fields = sorted(
            k
            for k in set(credentials) | set(storage.credentials or {})
            if credentials.get(k) != (storage.credentials or {}).get(k)
        )
        if credential_fields:
            storage.credentials = credentials
            changed.append("credentials")
    else:
        credential_fields = []
    for field in EDITABLE_FIELDS:
        if field in changes and getattr(storage, field) != changes[field]:
            setattr(storage, field, changes[field])
            changed.append(field)
    if {"configuration", "credentials"} & set(changed):
        storage.last_test_ok = None  # the last probe was of another configuration
        storage.last_test_message = ""
    storage.save()
    if storage.is_default:
        _set_default(storage)
    emit(
        action="storage_update",
        tenant=storage.tenant,
        resource_type="storage",
        resource_id=storage.pk,
        details={"changed_fields": changed, "credential_fields": credential_fields},
    )
    return storage


@transaction.atomic
def storage_delete(*, storage: Storage, force: bool = False) -> None:
    """Delete a storage; its backups' rows are kept (``Backup.storage`` becomes null).

    Backup jobs (policies) that write to it block the deletion unless ``force``, which
    detaches them (``BackupJob.storage`` set null: they must be pointed elsewhere).
    """
    # The jobs that write here, through the reverse relation (backups never import schedules).
    jobs = list(storage.jobs.order_by("pk").values_list("pk", flat=True))
    if jobs and not force:
        raise Conflict(
            f"Storage is used by {len(jobs)} backup polic{'y' if len(jobs) == 1 else 'ies'}; "
            "pass force=true to detach them",
            code="STORAGE_IN_USE",
            details={"policy_ids": jobs, "policy_count": len(jobs)},
        )
    if jobs:
        storage.jobs.update(storage=None)
    pk, tenant, name = storage.pk, storage.tenant, storage.name
    storage.delete()
    emit(
        action="storage_delete",
        tenant=tenant,
        resource_type="storage",
        resource_id=pk,
        details={"name": name, "force": force, "detached_policy_ids": jobs},
    )


class UnsupportedProvider(DomainError):
    status = 400
    code = "UNSUPPORTED_PROVIDER"
    default_message = "This kind of storage is not supported"


NETWORK_SUPPORTED = "an sftp:// URL (sftp://user[:password]@host[:port]/folder) or a mounted folder (/mnt/backups)"


def storage_config_from_connection_string(connection_string: str) -> tuple[str, dict, dict]:
    """api-layer.md "Test Storage Connection" names a *network* storage by a connection string.
    What we can reach: ``sftp://user[:password]@host[:port]/path`` (an SFTP storage) and an
    absolute folder or ``file:///folder`` (a network share mounted on the platform's machine:
    a local storage). SMB/CIFS shares (``\\\\server\\share``, ``smb://``) cannot be reached
    directly: ``UnsupportedProvider`` says to mount them. Returns ``(type, configuration,
    credentials)``."""
    from urllib.parse import unquote, urlsplit

    raw = (connection_string or "").strip()
    if not raw:
        raise ValidationFailed(details={"connection_string": ["Give the storage's address."]})
    if raw.startswith(("\\\\", "//")) or raw.lower().startswith(("smb://", "cifs://")):
        raise UnsupportedProvider(
            f"SMB/CIFS shares ({raw}) cannot be reached directly: mount the share on the platform's machine "
            f"and give its folder, or use an sftp:// URL",
            details={"connection_string": raw, "supported": NETWORK_SUPPORTED},
        )
    if raw.startswith("/") or raw.lower().startswith("file://"):
        path = unquote(urlsplit(raw).path) if raw.lower().startswith("file://") else raw
        return "local", {"path": path}, {}
    parts = urlsplit(raw)
    if parts.scheme.lower() == "sftp":
        try:
            port = parts.port or 22
        except ValueError:
            raise ValidationFailed(details={"connection_string": ["The port is not a number from 1 to 65535."]})
        configuration = {"host": parts.hostname or "", "port": port, "path": unquote(parts.path) or "/"}
        if parts.username:
            configuration["username"] = unquote(parts.username)
        credentials = {"password": unquote(parts.password)} if parts.password else {}
        return "sftp", configuration, credentials
    raise UnsupportedProvider(
        f"Cannot reach {raw!r}: use {NETWORK_SUPPORTED}",
        details={"connection_string": raw, "supported": NETWORK_SUPPORTED},
    )


# -- probes ------------------------------------------------------------------------------


def storage_resolve(*, tenant: Tenant, name: str) -> Storage:
    """The tenant's storage a person names: by name, else by type (the default of that type
    first). ``"local"`` with no local storage yet is the tenant's default local folder
    (system-backup-recovery.rst ``destination: "local"``). Unknown names are a validation
    error on ``destination``."""
    storage = (
        Storage.objects.filter(tenant=tenant, name=name).first()
        or Storage.objects.filter(tenant=tenant, type=name).order_by("-is_default", "id").first()
    )
    if storage is not None:
        return storage
    if name == "local":  # the tenant's own default folder, made on first use
        return storage_create(
            tenant=tenant,
            name="local",
            type="local",
            configuration={"path": confinement.default_storage_folder(tenant)},
        )
    raise ValidationFailed(details={"destination": [f"No storage location named '{name}'."]})


def storage_probe_config(
    *, tenant: Tenant, type: str, configuration: dict | None, credentials: dict | None
) -> backends.ProbeResult:
    """Probe an unsaved configuration (api-layer.md "Test Storage Connection")."""
    capabilities.require_feature(tenant)
    configuration, credentials = dict(configuration or {}), dict(credentials or {})
    _validate(type, configuration, credentials, tenant=tenant)
    result = backends.probe(type, configuration, credentials)
    emit(
        action="storage_test",
        tenant=tenant,
        resource_type="storage",
        resource_id="",
        details={
            "type": type,
            "configuration": configuration,
            "success": result.ok,
            "message": result.message,
            "latency_ms": result.latency_ms,
        },
    )
    return result


@transaction.atomic
def storage_probe(*, storage: Storage) -> backends.ProbeResult:
    """Write, read back, compare and delete a small object; record the outcome on the row."""
    capabilities.require_feature(storage.tenant)
    result = backends.probe(storage.type, storage.configuration, storage.credentials)
    storage.last_tested_at = timezone.now()
    storage.last_test_ok = result.ok
    storage.last_test_message = result.message[:500]
    if not result.ok and storage.status == StorageStatus.ACTIVE:
        storage.status = StorageStatus.ERROR
    elif result.ok and storage.status == StorageStatus.ERROR:
        storage.status = StorageStatus.ACTIVE
    storage.save(update_fields=["last_tested_at", "last_test_ok", "last_test_message", "status", "updated_at"])
    emit(
        action="storage_test",
        tenant=storage.tenant,
        resource_type="storage",
        resource_id=storage.pk,
        details={
            "success": result.ok,
            "message": result.message,
            "latency_ms": result.latency_ms,
            "error_kind": result.error_kind,
        },
    )
    return result


@dataclass(frozen=True)
class FreeSpace:
    available_bytes: int | None
    error: str | None = None


def storage_free_space(*, storage: Storage) -> FreeSpace:
    """What the backend says is free (``None`` where it cannot say); never raises."""
    try:
        with backends.open_backend(storage.type, storage.configuration, storage.credentials) as backend:
            return FreeSpace(backend.free_space())
    except backends.StorageError as exc:
        return FreeSpace(None, exc.message)


#: Storage types whose writers can leave incomplete uploads on the provider's side.
SWEPT_TYPES = ("s3", "minio", "azure", "gcs")


def storage_sweep_abandoned_uploads(*, older_than: timedelta | None = None) -> int:
    """Abort incomplete uploads older than ``older_than`` (``STORAGE_ABANDONED_UPLOAD_AGE``)
    under the platform's prefixes of every object storage: the tenant's folder and probe objects.

    A writer aborts its own upload, with retries; this catches the ones whose abort never got
    through (the storage stayed down) or whose worker was killed. Returns how many were removed.
    """
    age = older_than if older_than is not None else timedelta(seconds=settings.STORAGE_ABANDONED_UPLOAD_AGE)
    total = 0
    for storage in Storage.objects.filter(type__in=SWEPT_TYPES).select_related("tenant").order_by("pk"):
        try:
            with backends.open_backend(storage.type, storage.configuration, storage.credentials) as backend:
                removed = backend.sweep_abandoned(prefixes=[f"{storage.tenant.slug}/", ".probe-"], older_than=age)
        except backends.StorageError as exc:
            logger.warning("could not sweep abandoned uploads of storage %s: %s", storage.pk, exc)
            continue
        if removed:
            logger.info("aborted %d abandoned upload(s) on storage %s", removed, storage.pk)
            emit(
                action="storage_sweep",
                tenant=storage.tenant,
                resource_type="storage",
                resource_id=storage.pk,
                details={"aborted_uploads": removed, "older_than_seconds": int(age.total_seconds())},
            )
        total += removed
    return total


def monthly_cost(size_bytes: int, price_per_gb_month: Decimal) -> float:
    return units.monthly_cost(size_bytes, price_per_gb_month)


def to_gb(size_bytes: int | None) -> float:
    return units.gigabytes(size_bytes)
