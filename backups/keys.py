"""Per-tenant data keys for artifacts, wrapped by the platform master key (DESIGN.md
"Encryption keys"). A tenant admin can export the key for restores without the platform."""

from __future__ import annotations

import base64
import binascii
import secrets

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction

from backups.pipeline import (
    export_key_file,
    generate_data_key,
    key_fingerprint,
    unwrap_key,
    wrap_key,
)
from tenants.models import Tenant

from .models import TenantKey


def master_key() -> bytes:
    raw = getattr(settings, "BACKUP_MASTER_KEY", "") or ""
    try:
        key = base64.urlsafe_b64decode(raw.encode() + b"=" * (-len(raw) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ImproperlyConfigured("BACKUP_MASTER_KEY must be urlsafe base64 of 32 bytes") from exc
    if len(key) != 32:
        raise ImproperlyConfigured("BACKUP_MASTER_KEY must be urlsafe base64 of 32 bytes")
    return key


def _context(tenant_id: int) -> bytes:
    # Bound into the wrapping, so a wrapped key copied onto another tenant's row won't unwrap.
    return f"tenant:{tenant_id}".encode()


def tenant_data_key(tenant: Tenant) -> tuple[str, bytes]:
    """``(key_id, data_key)`` of ``tenant``, created on first use."""
    row = TenantKey.objects.filter(tenant=tenant).first()
    if row is None:
        data_key = generate_data_key()
        try:
            with transaction.atomic():
                row = TenantKey.objects.create(
                    tenant=tenant, key_id=f"{tenant.slug}-{secrets.token_hex(4)}",
                    wrapped_key=wrap_key(master_key(), data_key, context=_context(tenant.pk)))
        except IntegrityError:
            row = TenantKey.objects.get(tenant=tenant)
    return row.key_id, unwrap_key(master_key(), bytes(row.wrapped_key), context=_context(tenant.pk))


def key_for_id(tenant: Tenant, key_id: str) -> bytes:
    current_id, key = tenant_data_key(tenant)
    if key_id and key_id != current_id:
        raise ImproperlyConfigured(f"Artifact key {key_id} is not the tenant's key {current_id}")
    return key


def tenant_key_export(tenant: Tenant) -> tuple[str, bytes]:
    """The key file (JSON) for offline restores, and its file name."""
    from audit.services import emit

    key_id, key = tenant_data_key(tenant)
    emit(action="key_export", tenant=tenant, resource_type="tenant_key", resource_id=key_id,
         details={"fingerprint": key_fingerprint(key)})
    return f"{key_id}.key.json", export_key_file(key, key_id)
