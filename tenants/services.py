"""Writes for tenants, users, memberships and API keys. Each records its audit event."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import update_last_login
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken

from audit.services import emit
from backupplatform.errors import Conflict, Forbidden, NotFound, ValidationFailed

from .models import ROLE_RANK, ApiKey, Membership, OidcIdentity, Plan, Role, Tenant, hash_api_key, slug_validator

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
    emit(
        action="tenant_create",
        tenant=tenant,
        resource_type="tenant",
        resource_id=tenant.pk,
        details={"slug": slug, "plan": plan},
    )
    return tenant


def _unique_slug(base: str) -> str:
    root = (slugify(base) or "workspace")[:40].strip("-") or "workspace"
    slug, n = root, 1
    while Tenant.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{root}-{n}"
    return slug


@transaction.atomic
def user_create(
    *, tenant: Tenant, username: str, role: str, password: str | None = None, email: str = "", full_name: str = ""
) -> Membership:
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
    emit(
        action="user_create",
        tenant=tenant,
        resource_type="user",
        resource_id=user.pk,
        details={"username": username, "email": email, "role": role},
    )
    return membership


def _admins_left(tenant: Tenant, excluding: Membership) -> int:
    return Membership.objects.filter(tenant=tenant, role=Role.ADMIN, is_active=True).exclude(pk=excluding.pk).count()


@transaction.atomic
def member_update(
    *,
    membership: Membership,
    actor: Any = None,
    role: str | None = None,
    is_active: bool | None = None,
    email: str | None = None,
    full_name: str | None = None,
    password: str | None = None,
) -> Membership:
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
    emit(
        action="user_update",
        tenant=membership.tenant,
        resource_type="user",
        resource_id=user.pk,
        details={"username": user.username, **changes},
    )
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
    emit(
        action="user_delete",
        tenant=tenant,
        resource_type="user",
        resource_id=user_id,
        details={"username": username, "account_deleted": account_deleted},
    )


@transaction.atomic
def membership_set(*, user: Any, tenant: Tenant, role: str) -> Membership:
    if role not in Role.values:
        raise ValidationFailed(details={"role": [f"Must be one of: {', '.join(Role.values)}."]})
    membership, created = Membership.objects.update_or_create(user=user, tenant=tenant, defaults={"role": role})
    emit(
        action="membership_create" if created else "membership_update",
        tenant=tenant,
        resource_type="user",
        resource_id=user.pk,
        details={"username": user.username, "role": role},
    )
    return membership


@transaction.atomic
def user_register(
    *, username: str, password: str, email: str = "", full_name: str = "", workspace_name: str = ""
) -> Membership:
    """Self-registration: a new account that administers a new workspace on the shared plan."""
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationFailed(details={"username": ["A user with that username already exists."]})
    tenant = Tenant.objects.create(
        slug=_unique_slug(workspace_name or username),
        name=workspace_name or f"{username}'s workspace",
        plan=Plan.SHARED,
    )
    emit(
        action="tenant_create",
        tenant=tenant,
        resource_type="tenant",
        resource_id=tenant.pk,
        details={"slug": tenant.slug, "plan": tenant.plan, "via": "register"},
    )
    return user_create(
        tenant=tenant, username=username, role=Role.ADMIN, password=password, email=email, full_name=full_name
    )


@transaction.atomic
def user_sign_in(*, request: Any, username: str, password: str) -> Any | None:
    """The user these credentials name, its last login recorded (``auth_login``), or ``None``
    (``auth_login_failed``, with the name tried)."""
    user = authenticate(request, username=username, password=password)
    if user is None:
        emit(action="auth_login_failed", resource_type="user", details={"username": username})
        return None
    update_last_login(None, user)
    emit(
        action="auth_login", actor=user, resource_type="user", resource_id=user.pk, details={"username": user.username}
    )
    return user


def refresh_token_revoke(*, raw: str) -> Any | None:
    """Sign out: the refresh token can no longer be used (``auth_logout``); returns its user's
    id, or ``None`` when the token is not a valid one."""
    try:
        token = RefreshToken(raw)
        token.blacklist()
    except TokenError:
        return None
    emit(action="auth_logout", resource_type="user", resource_id=token.get("user_id"))
    return token.get("user_id")


def api_key_create(*, tenant: Tenant, name: str, role: str, created_by: Any = None) -> tuple[ApiKey, str]:
    """Create a key; returns ``(key, raw)``. The raw key is shown once and never stored."""
    if role not in Role.values:
        raise ValidationFailed(details={"role": [f"Must be one of: {', '.join(Role.values)}."]})
    if not name or not name.strip():
        raise ValidationFailed(details={"name": ["This field may not be blank."]})
    prefix, raw = ApiKey.generate()
    key = ApiKey.objects.create(
        tenant=tenant,
        name=name.strip(),
        role=role,
        prefix=prefix,
        key_hash=hash_api_key(raw),
        created_by=created_by if getattr(created_by, "pk", None) else None,
    )
    emit(
        action="apikey_create",
        tenant=tenant,
        resource_type="api_key",
        resource_id=key.pk,
        details={"name": key.name, "role": role, "prefix": prefix},
    )
    return key, raw


@transaction.atomic
def api_key_revoke(*, key: ApiKey) -> ApiKey:
    if key.revoked_at is not None:
        raise NotFound("API key not found")
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked_at"])
    emit(
        action="apikey_revoke",
        tenant=key.tenant,
        resource_type="api_key",
        resource_id=key.pk,
        details={"name": key.name, "prefix": key.prefix},
    )
    return key


# --- Sign-in: a second factor (TOTP) and single sign-on (OIDC) ---------------------------------
# TOTP seeds stay in the device rows: no audit event, log line or response carries one.


def two_factor_tenants(user: Any) -> list[Tenant]:
    """The active tenants that make this user sign in with a second factor."""
    return list(
        Tenant.objects.filter(
            is_active=True, require_two_factor=True, memberships__user=user, memberships__is_active=True
        ).distinct()
    )


def two_factor_enrolled(user: Any) -> bool:
    from django_otp import user_has_device

    return user_has_device(user, confirmed=True)


def two_factor_required(user: Any) -> bool:
    """A second factor is asked of users who enrolled one, and of members of tenants that
    require it (they must enrol at their next sign-in)."""
    return bool(user and user.is_authenticated) and (two_factor_enrolled(user) or bool(two_factor_tenants(user)))


@transaction.atomic
def totp_enrolment_start(*, user: Any) -> Any:
    """A new, unconfirmed authenticator for ``user`` (earlier unconfirmed ones are dropped)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)


@transaction.atomic
def totp_enrolment_confirm(*, user: Any, device_id: int, token: str) -> Any | None:
    """Confirm the authenticator with a code from it; ``None`` when the code is wrong."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.select_for_update().filter(user=user, pk=device_id, confirmed=False).first()
    if device is None or not device.verify_token((token or "").strip()):
        emit(
            action="two_factor_failed",
            resource_type="user",
            resource_id=user.pk,
            details={"username": user.username, "step": "enrol"},
            actor=user,
        )
        return None
    TOTPDevice.objects.filter(user=user, confirmed=True).delete()  # one authenticator per account
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    emit(
        action="two_factor_enrol",
        resource_type="user",
        resource_id=user.pk,
        details={"username": user.username, "method": "totp"},
        actor=user,
    )
    return device


def totp_verify(*, user: Any, token: str) -> Any | None:
    """The confirmed device that accepts ``token`` (each code once; failures slow further
    attempts down), or ``None``."""
    from django_otp import match_token

    device = match_token(user, (token or "").strip())
    if device is None:
        emit(
            action="two_factor_failed",
            resource_type="user",
            resource_id=user.pk,
            details={"username": user.username, "step": "verify"},
            actor=user,
        )
    return device


@transaction.atomic
def two_factor_reset(*, user: Any, actor: Any) -> int:
    """Remove a user's authenticators (a lost phone): superusers, or an admin of every tenant
    the user belongs to. The user enrols again at the next sign-in where one is required."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    if not (actor.is_superuser or actor.pk == user.pk or _administers_all_tenants_of(actor, user)):
        raise Forbidden("Only a superuser or an admin of each of the user's workspaces can reset their second factor")
    removed, _ = TOTPDevice.objects.filter(user=user).delete()
    emit(
        action="two_factor_reset",
        resource_type="user",
        resource_id=user.pk,
        details={"username": user.username, "devices_removed": removed},
        actor=actor,
    )
    return removed


def _administers_all_tenants_of(actor: Any, user: Any) -> bool:
    tenants = set(Membership.objects.filter(user=user).values_list("tenant_id", flat=True))
    mine = set(
        Membership.objects.filter(user=actor, role=Role.ADMIN, is_active=True).values_list("tenant_id", flat=True)
    )
    return bool(tenants) and tenants <= mine


@transaction.atomic
def tenant_two_factor_set(*, tenant: Tenant, required: bool, actor: Any) -> Tenant:
    """Make a second factor mandatory (or not) for the tenant's members: superusers and the
    tenant's admins."""
    if not (
        actor.is_superuser
        or Membership.objects.filter(user=actor, tenant=tenant, role=Role.ADMIN, is_active=True).exists()
    ):
        raise Forbidden("Only a superuser or an admin of this workspace can change its sign-in policy")
    tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
    if tenant.require_two_factor != bool(required):
        tenant.require_two_factor = bool(required)
        tenant.save(update_fields=["require_two_factor", "updated_at"])
        emit(
            action="tenant_update",
            tenant=tenant,
            resource_type="tenant",
            resource_id=tenant.pk,
            details={"slug": tenant.slug, "require_two_factor": tenant.require_two_factor},
            actor=actor,
        )
    return tenant


def oidc_tenant_roles(value: Any) -> dict[Tenant, str]:
    """``["acme:operator", "beta:admin", "other"]`` -> ``{<acme>: "operator", <beta>: "admin"}``:
    values naming an active tenant and a role; a tenant named twice keeps its highest role."""

    if isinstance(value, str):
        value = value.split()
    wanted: dict[str, str] = {}
    for item in value if isinstance(value, list) else []:
        if not isinstance(item, str) or item.count(":") != 1:
            continue
        slug, role = (part.strip() for part in item.split(":"))
        if role in Role.values and ROLE_RANK[role] > ROLE_RANK.get(wanted.get(slug), 0):
            wanted[slug] = role
    tenants = Tenant.objects.filter(slug__in=wanted, is_active=True)
    return {tenant: wanted[tenant.slug] for tenant in tenants}


def _oidc_username(claims: dict) -> str:
    base = str(claims.get("preferred_username") or claims.get("email") or claims["sub"])[:140]
    candidate, n = base, 1
    while User.objects.filter(username__iexact=candidate).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _oidc_profile(user: Any, claims: dict) -> None:
    user.email = str(claims.get("email") or user.email)[:254]
    user.first_name = str(claims.get("given_name") or user.first_name)[:150]
    user.last_name = str(claims.get("family_name") or user.last_name)[:150]


@transaction.atomic
def oidc_user_create(*, issuer: str, claims: dict, tenant_roles: dict[Tenant, str]) -> Any:

    user = User(username=_oidc_username(claims), is_staff=True)
    _oidc_profile(user, claims)
    user.set_unusable_password()  # signs in through the identity provider only
    user.save()
    OidcIdentity.objects.create(user=user, issuer=issuer, subject=str(claims["sub"]), last_login_at=timezone.now())
    emit(
        action="user_create",
        resource_type="user",
        resource_id=user.pk,
        details={"username": user.username, "via": "oidc"},
        actor=user,
    )
    oidc_memberships_sync(user=user, tenant_roles=tenant_roles)
    return user


@transaction.atomic
def oidc_user_update(*, user: Any, claims: dict, tenant_roles: dict[Tenant, str]) -> Any:

    _oidc_profile(user, claims)
    user.is_staff = True
    user.save(update_fields=["email", "first_name", "last_name", "is_staff"])
    OidcIdentity.objects.filter(user=user).update(last_login_at=timezone.now())
    oidc_memberships_sync(user=user, tenant_roles=tenant_roles)
    return user


@transaction.atomic
def oidc_memberships_sync(*, user: Any, tenant_roles: dict[Tenant, str]) -> None:
    """The user's memberships become what the identity provider says: tenants it names are
    joined (or their role changed), tenants it no longer names are left."""
    current = {m.tenant_id: m for m in Membership.objects.filter(user=user).select_related("tenant")}
    for tenant, role in tenant_roles.items():
        existing = current.pop(tenant.pk, None)
        if existing is None or existing.role != role or not existing.is_active:
            Membership.objects.update_or_create(user=user, tenant=tenant, defaults={"role": role, "is_active": True})
            emit(
                action="membership_create" if existing is None else "membership_update",
                tenant=tenant,
                resource_type="user",
                resource_id=user.pk,
                details={"username": user.username, "role": role, "via": "oidc"},
                actor=user,
            )
    for membership in current.values():
        tenant = membership.tenant
        membership.delete()
        emit(
            action="membership_delete",
            tenant=tenant,
            resource_type="user",
            resource_id=user.pk,
            details={"username": user.username, "via": "oidc"},
            actor=user,
        )
