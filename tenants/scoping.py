"""Tenant scoping in one place (CONVENTIONS.md "Tenancy in one place").

- ``resolve_tenant()`` decides the caller's tenant and role from the URL (``ws_id``), the
  API key (bound to one tenant), or the user's memberships (``X-Workspace`` picks one).
- ``TenantContextMixin`` (every facade view) sets ``request.tenant`` and ``request.role``
  and scopes querysets through ``tenant_queryset(scope)``: another tenant's row is simply
  not there, so it is a 404, never a 403 that confirms it exists.
- ``TenantScopedAdminMixin`` does the same for the Django admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import models
from django.http import Http404

from audit.services import emit
from backupplatform.errors import Forbidden, NotFound, ValidationFailed

from .models import ALL_TENANTS, Membership, Role, Tenant, TenantScope

WORKSPACE_HEADER = "HTTP_X_WORKSPACE"


@dataclass(frozen=True)
class TenantContext:
    tenant: Tenant | None
    role: str | None
    # Set when the caller belongs to several workspaces and named none: fine for reads of
    # caller-level resources (me, workspaces), an error for anything tenant-owned.
    ambiguous: bool = False


def resolve_tenant(request: Any, ws_id: str | None = None) -> TenantContext:
    """The tenant and role a request acts in. Raises ``NotFound`` for tenants it cannot see."""
    user = request.user
    if not (user and user.is_authenticated):
        return TenantContext(None, None)
    header = (request.META.get(WORKSPACE_HEADER) or "").strip() or None
    wanted = ws_id or header

    api_key = getattr(request, "api_key", None)
    if api_key is not None:
        if wanted and wanted != api_key.tenant.slug:
            raise NotFound("Workspace not found")
        return TenantContext(api_key.tenant, api_key.role)

    if user.is_superuser:
        if wanted:
            tenant = Tenant.objects.filter(slug=wanted).first()
            if tenant is None:
                raise NotFound("Workspace not found")
            return TenantContext(tenant, Role.ADMIN)
        return TenantContext(None, Role.ADMIN)

    memberships = Membership.objects.filter(user=user, is_active=True, tenant__is_active=True).select_related("tenant")
    if wanted:
        membership = memberships.filter(tenant__slug=wanted).first()
        if membership is None:
            raise NotFound("Workspace not found")
        return TenantContext(membership.tenant, membership.role)
    found = list(memberships[:2])
    if len(found) == 1:
        return TenantContext(found[0].tenant, found[0].role)
    return TenantContext(None, None, ambiguous=len(found) > 1)


class TenantContextMixin:
    """Sets ``request.tenant`` / ``request.role`` before permissions are checked, and scopes
    every tenant-owned queryset of the view (the one place views are scoped).

    A view over tenant-owned rows defines ``tenant_queryset(scope)``; ``get_queryset()``
    calls it with the caller's tenant, or with ``ALL_TENANTS`` for a platform operator who
    named no workspace. Another tenant's row is simply not in the queryset: a 404.
    """

    # The URL keyword that names the workspace (workspace facade: ``ws_id``).
    tenant_url_kwarg: str | None = None

    def resolve_tenant_context(self, request: Any) -> None:
        ws_id = self.kwargs.get(self.tenant_url_kwarg) if self.tenant_url_kwarg else None
        ctx = resolve_tenant(request, ws_id)
        request.tenant = ctx.tenant
        request.role = ctx.role
        request.tenant_ambiguous = ctx.ambiguous

    def require_tenant(self) -> Tenant:
        """The tenant a write lands in; a platform operator must name one."""
        request = self.request
        if request.tenant is not None:
            return request.tenant
        if getattr(request, "tenant_ambiguous", False) or request.user.is_superuser:
            raise ValidationFailed(
                "Choose a workspace with the X-Workspace header",
                details={"X-Workspace": ["This header is required: you can act in several workspaces."]},
            )
        raise Forbidden("You are not a member of any workspace")

    def tenant_scope(self) -> TenantScope:
        """The caller's tenant, or ``ALL_TENANTS`` for a superuser without a workspace."""
        request = self.request
        if request.tenant is not None:
            return request.tenant
        if request.user.is_superuser and not getattr(request, "tenant_ambiguous", False):
            return ALL_TENANTS
        return self.require_tenant()  # raises: choose a workspace / not a member

    def get_queryset(self) -> models.QuerySet:
        hook = getattr(self, "tenant_queryset", None)
        if hook is None:
            return super().get_queryset()
        if getattr(self, "swagger_fake_view", False):  # the schema generator's fake view
            return self.queryset
        return hook(self.tenant_scope())


# --- admin ---------------------------------------------------------------------------------


def admin_tenant_ids(request: Any) -> list[int] | None:
    """Tenants a staff user may see in the admin; ``None`` for superusers (all)."""
    if request.user.is_superuser:
        return None
    if not (request.user.is_authenticated and request.user.is_active and request.user.is_staff):
        return []
    if not hasattr(request, "_admin_tenant_ids"):
        request._admin_tenant_ids = list(
            Membership.objects.filter(user=request.user, role=Role.ADMIN).values_list("tenant_id", flat=True)
        )
    return request._admin_tenant_ids


class OutOfScopeIs404AdminMixin:
    """For staff who are not superusers, a row outside ``get_queryset`` is a 404 on its change,
    delete and history pages, exactly like a row that does not exist (Django's default is a
    redirect to the index, or a 403 where the permission check comes first)."""

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None and admin_tenant_ids(request) is not None:
            raise Http404
        return obj


class TenantScopedAdminMixin(OutOfScopeIs404AdminMixin):
    """Staff who are not superusers see and edit only rows of tenants they administer."""

    tenant_field = "tenant"

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        ids = admin_tenant_ids(request)
        if ids is None:
            return queryset
        return queryset.filter(**{f"{self.tenant_field}__in": ids})

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        ids = admin_tenant_ids(request)
        model = db_field.remote_field.model
        if ids is not None and model is Tenant:
            kwargs["queryset"] = Tenant.objects.filter(pk__in=ids)
        elif (
            ids is not None
            and "queryset" not in kwargs
            and any(f.name == "tenant" and f.is_relation for f in model._meta.get_fields())
        ):
            # A choice of another tenant's rows (servers, storages, policies) is not offered.
            kwargs["queryset"] = model._default_manager.filter(tenant_id__in=ids)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_module_permission(self, request) -> bool:
        return (
            request.user.is_active
            and request.user.is_staff
            and (request.user.is_superuser or bool(admin_tenant_ids(request)))
        )

    def has_view_permission(self, request, obj=None) -> bool:
        return self._allowed(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._allowed(request, obj)

    def has_add_permission(self, request, *args) -> bool:
        return self._allowed(request, None)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._allowed(request, obj)

    def _allowed(self, request, obj) -> bool:
        ids = admin_tenant_ids(request)
        if ids is None:
            return request.user.is_active and request.user.is_staff
        if not ids:
            return False
        if obj is None:
            return True
        tenant_id = obj.pk if isinstance(obj, Tenant) else getattr(obj, f"{self.tenant_field}_id", None)
        return tenant_id in ids


class AuditedAdminMixin:
    """Admin saves and deletes go through ``audit.emit`` like every other write."""

    audit_resource_type: str | None = None

    def _resource_type(self, obj) -> str:
        return self.audit_resource_type or obj._meta.model_name

    def _tenant_of(self, obj):
        if isinstance(obj, Tenant):
            return obj
        return getattr(obj, "tenant", None)

    def save_model(self, request, obj, form, change):

        super().save_model(request, obj, form, change)
        changed = list(form.changed_data) if form is not None else []
        emit(
            action=f"{self._resource_type(obj)}_{'update' if change else 'create'}",
            tenant=self._tenant_of(obj),
            resource_type=self._resource_type(obj),
            resource_id=obj.pk,
            details={"changed_fields": changed, "via": "admin"},
        )

    def delete_model(self, request, obj):

        pk, tenant, kind = obj.pk, self._tenant_of(obj), self._resource_type(obj)
        super().delete_model(request, obj)
        emit(
            action=f"{kind}_delete",
            tenant=tenant if kind != "tenant" else None,
            resource_type=kind,
            resource_id=pk,
            details={"via": "admin", "name": str(obj)},
        )

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)
