"""Tenant scoping that cannot be forgotten.

Every tenant-owned query names its scope: one tenant, or ``ALL_TENANTS`` said out loud (a
platform operator's view, a platform-wide task). A missing tenant (``None``) raises
``UnscopedQuery`` instead of quietly returning every tenant's rows.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from backupplatform.counting import GenerationQuerySet


class AllTenants:
    """The explicit scope of a platform operator's view over every tenant (a singleton)."""

    _instance: AllTenants | None = None

    def __new__(cls) -> AllTenants:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ALL_TENANTS"

    def __bool__(self) -> bool:  # so ``if tenant:`` never mistakes it for one tenant
        return False


ALL_TENANTS = AllTenants()


class UnscopedQuery(TypeError):
    """A tenant-owned query was asked for without a tenant."""


def scoped(queryset: models.QuerySet, tenant: Any, *, field: str = "tenant") -> models.QuerySet:
    """``queryset`` narrowed to ``tenant`` (a Tenant), or left whole for ``ALL_TENANTS``."""
    if tenant is ALL_TENANTS:
        return queryset.all()
    if not isinstance(tenant, models.Model) or tenant.pk is None:
        raise UnscopedQuery(f"{queryset.model.__name__} rows need a tenant; pass ALL_TENANTS for a platform-wide view")
    return queryset.filter(**{field: tenant})


class TenantQuerySet(GenerationQuerySet):
    """The queryset of tenant-owned rows (``tenants.models.TenantOwnedModel`` and the audit
    app's channels and webhooks)."""

    def for_tenant(self, tenant: Any) -> TenantQuerySet:
        """Rows of ``tenant``; ``ALL_TENANTS`` for a platform operator's view of every tenant.

        Anything else (``None`` above all) raises ``UnscopedQuery``: an unscoped query must be
        asked for explicitly, never reached by forgetting the tenant.
        """
        return scoped(self, tenant)

    def all_tenants(self) -> TenantQuerySet:
        """Every tenant's rows (superuser and platform-task paths only)."""
        return self.all()
