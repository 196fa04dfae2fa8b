"""Writes for tenants, users, memberships and API keys. Each records its audit event."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from audit.services import emit
from backupplatform.errors import Conflict, NotFound, ValidationFailed

from .models import ApiKey, Membership, Plan, Role, Tenant, hash_api_key, slug_validator

User = get_user_model()


def _check_password(password: str, user: Any = None) -> None:
    try:
        validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise ValidationFailed("Password is too weak", details={"password": list(exc.messages)})


@transaction.atomic
def tenant_create(*, slug: str, name: str = "", plan: str = Plan.SHARED) -> Tenant:
    try:
        slug_validator(slug)
    except DjangoValidationError as exc:
        raise ValidationFailed(details={"slug": list(exc.messages)})
    if plan not in Plan.values:
        raise ValidationFailed(details={"plan": [f"Must be one of: {', '.join(Plan.values)}."]})
    if Tenant.objects.filter(slug=slug).exists():
        raise Conflict(f"A workspace with slug '{slug}' already exists", code="ALREADY_EXISTS")
    tenant = Tenant.objects.create(slug=slug, name=name or slug, plan=plan)
    emit(action="tenant_create", tenant=tenant, resource_type="tenant", resource_id=tenant.pk,
         details={"slug": slug, "plan": plan})
    return tenant


def _unique_slug(base: str) -> str:
    root = (slugify(base) or "workspace")[:40].strip("-") or "workspace"
    slug, n = root, 1
    while Tenant.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{root}-{n}"
    return slug


@transaction.atomic
def user_create(*, tenant: Tenant, username: str, role: str, password: str | None = None,
                email: str = "", full_name: str = "") -> Membership:
    """Create an account and make it a member of ``tenant`` with ``role``."""
    if role not in Role.values:
        raise ValidationFailed(details={"role": [f"Must be one of: {', '.join(Role.values)}."]})
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationFailed(details={"username": ["A user with that username already exists."]})
    first, _, last = (full_name or "").partition(" ")
    user = User(username=username, email=email or "", first_name=first[:150], last_name=last[:150])
    if password:
        _check_password(password, user)
        user.set_password(password)
    else:
        user.set_unusable_password()
    try:
        user.save()
    except IntegrityError:
        raise ValidationFailed(details={"username": ["A user with that username already exists."]})
    membership = Membership.objects.create(user=user, tenant=tenant, role=role)
    emit(action="user_create", tenant=tenant, resource_type="user", resource_id=user.pk,
         details={"username": username, "email": email, "role": role})
    return membership


def _admins_left(tenant: Tenant, excluding: Membership) -> int:
    return (Membership.objects.filter(tenant=tenant, role=Role.ADMIN, is_active=True)
            .exclude(pk=excluding.pk).count())


@transaction.atomic
def member_update(*, membership: Membership, actor: Any = None, role: str | None = None,
                  is_active: bool | None = None, email: str | None = None,
                  full_name: str | None = None, password: str | None = None) -> Membership:
    membership = Membership.objects.select_for_update().select_related("user", "tenant").get(pk=membership.pk)
    user = membership.user
    changes: dict[str, Any] = {}
    demotes = (role is not None and role != Role.ADMIN) or is_active is False
    if membership.role == Role.ADMIN and demotes and _admins_left(membership.tenant, membership) == 0:
        raise Conflict("A workspace needs at least one active admin", code="LAST_ADMIN")
    if role is not None:
        if role not in Role.values:
            raise ValidationFailed(details={"role": [f"Must be one of: {', '.join(Role.values)}."]})
        changes["role"] = role
        membership.role = role
    if is_active is not None:
        changes["is_active"] = is_active
        membership.is_active = is_active
    membership.save()
    user_fields = []
    if email is not None:
        user.email = email
        user_fields.append("email")
        changes["email"] = email
    if full_name is not None:
        first, _, last = full_name.partition(" ")
        user.first_name, user.last_name = first[:150], last[:150]
        user_fields += ["first_name", "last_name"]
        changes["full_name"] = full_name
    if password:
        _check_password(password, user)
        user.set_password(password)
        user_fields.append("password")
        changes["password"] = "changed"
    if user_fields:
        user.save(update_fields=user_fields)
    emit(action="user_update", tenant=membership.tenant, resource_type="user", resource_id=user.pk,
         details={"username": user.username, **changes})
    return membership


@transaction.atomic
def member_remove(*, membership: Membership, actor: Any = None) -> None:
    """Remove a member; the account goes too when it belongs to no other workspace."""
    membership = Membership.objects.select_for_update().select_related("user", "tenant").get(pk=membership.pk)
    user = membership.user
    if actor is not None and getattr(actor, "pk", None) == user.pk:
        raise Conflict("You cannot remove yourself", code="SELF_REMOVAL")
    if membership.role == Role.ADMIN and _admins_left(membership.tenant, membership) == 0:
        raise Conflict("A workspace needs at least one active admin", code="LAST_ADMIN")
    tenant, user_id, username = membership.tenant, user.pk, user.username
    membership.delete()
    account_deleted = False
    if not user.memberships.exists() and not user.is_staff and not user.is_superuser:
        user.delete()
        account_deleted = True
    emit(action="user_delete", tenant=tenant, resource_type="user", resource_id=user_id,
         details={"username": username, "account_deleted": account_deleted})


@transaction.atomic
def membership_set(*, user: Any, tenant: Tenant, role: str) -> Membership:
    if role not in Role.values:
        raise ValidationFailed(details={"role": [f"Must be one of: {', '.join(Role.values)}."]})
    membership, created = Membership.objects.update_or_create(user=user, tenant=tenant, defaults={"role": role})
    emit(action="membership_create" if created else "membership_update", tenant=tenant,
         resource_type="user", resource_id=user.pk, details={"username": user.username, "role": role})
    return membership


@transaction.atomic
def user_register(*, username: str, password: str, email: str = "", full_name: str = "",
                  workspace_name: str = "") -> Membership:
    """Self-registration: a new account that administers a new workspace on the shared plan."""
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationFailed(details={"username": ["A user with that username already exists."]})
    tenant = Tenant.objects.create(slug=_unique_slug(workspace_name or username),
                                   name=workspace_name or f"{username}'s workspace", plan=Plan.SHARED)
    emit(action="tenant_create", tenant=tenant, resource_type="tenant", resource_id=tenant.pk,
         details={"slug": tenant.slug, "plan": tenant.plan, "via": "register"})
    return user_create(tenant=tenant, username=username, role=Role.ADMIN, password=password,
                       email=email, full_name=full_name)


@transaction.atomic
def api_key_create(*, tenant: Tenant, name: str, role: str, created_by: Any = None) -> tuple[ApiKey, str]:
    """Create a key; returns ``(key, raw)``. The raw key is shown once and never stored."""
    if role not in Role.values:
        raise ValidationFailed(details={"role": [f"Must be one of: {', '.join(Role.values)}."]})
    if not name or not name.strip():
        raise ValidationFailed(details={"name": ["This field may not be blank."]})
    prefix, raw = ApiKey.generate()
    key = ApiKey.objects.create(
        tenant=tenant, name=name.strip(), role=role, prefix=prefix, key_hash=hash_api_key(raw),
        created_by=created_by if getattr(created_by, "pk", None) else None,
    )
    emit(action="apikey_create", tenant=tenant, resource_type="api_key", resource_id=key.pk,
         details={"name": key.name, "role": role, "prefix": prefix})
    return key, raw


@transaction.atomic
def api_key_revoke(*, key: ApiKey) -> ApiKey:
    if key.revoked_at is not None:
        raise NotFound("API key not found")
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked_at"])
    emit(action="apikey_revoke", tenant=key.tenant, resource_type="api_key", resource_id=key.pk,
         details={"name": key.name, "prefix": key.prefix})
    return key
