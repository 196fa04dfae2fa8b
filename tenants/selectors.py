"""Reads for tenants, members and API keys."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from backupplatform.tenancy import scoped

from .models import ApiKey, Membership, Role, Tenant, TenantScope


def workspaces_for(request: Any) -> list[dict]:
    """The workspaces the caller can act in, with the caller's role in each."""
    api_key = getattr(request, "api_key", None)
    if api_key is not None:
        pairs = [(api_key.tenant, api_key.role)]
    elif request.user.is_superuser:
        pairs = [(t, Role.ADMIN) for t in Tenant.objects.order_by("slug")]
    else:
        pairs = [
            (m.tenant, m.role)
            for m in Membership.objects.filter(user=request.user, is_active=True, tenant__is_active=True)
            .select_related("tenant")
            .order_by("tenant__slug")
        ]
    return [
        {"id": t.slug, "name": t.name, "plan": t.plan, "role": role, "created_at": t.created_at} for t, role in pairs
    ]


def member_list(*, tenant: TenantScope) -> QuerySet[Membership]:
    qs = scoped(Membership.objects.select_related("user", "tenant"), tenant)
    return qs.order_by("user__username", "id")


def api_key_list(*, tenant: TenantScope) -> QuerySet[ApiKey]:
    qs = ApiKey.objects.select_related("tenant").for_tenant(tenant)
    return qs.order_by("-created_at", "-id")
