"""Read queries about tenants' backup keys: which key is current and whether a key file that
can restore the tenant's backups was ever exported (an overview shows "never exported")."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery

from backupplatform.tenancy import ALL_TENANTS, UnscopedQuery
from tenants.models import Tenant, TenantScope

from .models import TenantKey


def key_export_overview(*, tenant: TenantScope) -> QuerySet[Tenant]:
    """Tenants (one, or ``ALL_TENANTS``) annotated in one query with their current key:
    ``current_key_id``, ``current_key_fingerprint``, ``current_key_created_at``,
    ``current_key_exported_at`` (None: never exported, or not since the last rotation),
    and ``ring_size``. Ordered by slug."""
    current = TenantKey.objects.filter(tenant=OuterRef("pk"), is_current=True)
    if tenant is ALL_TENANTS:
        queryset = Tenant.objects.all()
    elif isinstance(tenant, Tenant) and tenant.pk is not None:
        queryset = Tenant.objects.filter(pk=tenant.pk)
    else:
        raise UnscopedQuery("key_export_overview needs a tenant, or ALL_TENANTS")
    return queryset.annotate(
        current_key_id=Subquery(current.values("key_id")[:1]),
        current_key_fingerprint=Subquery(current.values("fingerprint")[:1]),
        current_key_created_at=Subquery(current.values("created_at")[:1]),
        current_key_exported_at=Subquery(current.values("last_exported_at")[:1]),
        ring_size=Count("data_keys", filter=Q(data_keys__abandoned_at__isnull=True)),
    ).order_by("slug")


def tenant_key_status(*, tenant: Tenant) -> dict[str, Any]:
    """One tenant's key state, for the admin and an overview."""
    row = key_export_overview(tenant=tenant).get()
    return {
        "current_key_id": row.current_key_id,
        "fingerprint": row.current_key_fingerprint,
        "created_at": row.current_key_created_at,
        "last_exported_at": row.current_key_exported_at,
        "never_exported": row.current_key_exported_at is None,
        "ring_size": row.ring_size,
    }


def tenants_never_exported(*, tenant: TenantScope) -> QuerySet[Tenant]:
    """Tenants whose current key was never exported: a lost master key would lose their backups."""
    return key_export_overview(tenant=tenant).filter(current_key_exported_at__isnull=True)
