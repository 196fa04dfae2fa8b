"""Tenants (workspaces), memberships with roles, and API keys."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from backupplatform.tenancy import ALL_TENANTS, TenantQuerySet, UnscopedQuery

__all__ = ["ALL_TENANTS", "TenantQuerySet", "UnscopedQuery"]  # re-exported: tenants.models is where callers look


class Plan(models.TextChoices):
    SHARED = "shared", "Shared"
    DEDICATED = "dedicated", "Dedicated"


class Role(models.TextChoices):
    """viewer reads; operator also runs, verifies and restores; admin also manages."""

    ADMIN = "admin", "Admin"
    OPERATOR = "operator", "Operator"
    VIEWER = "viewer", "Viewer"


ROLE_RANK = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}


def role_at_least(role: str | None, needed: str) -> bool:
    return role is not None and ROLE_RANK.get(role, 0) >= ROLE_RANK[needed]


slug_validator = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$",
    "Use 1-50 lowercase letters, digits and hyphens, not starting or ending with a hyphen.",
)


class Tenant(models.Model):
    """A workspace: every tenant-owned row points here. ``slug`` is the public ``ws_id``."""

    slug = models.CharField(max_length=50, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    plan = models.CharField(max_length=20, choices=Plan.choices, default=Plan.SHARED)
    max_concurrent_backups = models.PositiveIntegerField(default=5)
    # Folders of the platform's machines this tenant may use (local storages, file sources,
    # restore targets); empty means ``<root>/<slug>`` under each platform root. Superusers only.
    path_roots = models.JSONField(default=list, blank=True)
    # Members must sign in to the admin with a second factor (TOTP); its admins may set it.
    require_two_factor = models.BooleanField(
        default=False, help_text="Members must sign in to the admin with an authenticator app (TOTP) code."
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


# What a tenant-scoped selector accepts: one tenant, or every tenant said out loud.
TenantScope = Any  # Tenant | AllTenants


class TenantOwnedModel(models.Model):
    """Abstract base of every tenant-owned row (CONVENTIONS.md "Tenancy in one place")."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")

    objects = TenantQuerySet.as_manager()

    class Meta:
        abstract = True


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.VIEWER)
    # Deactivating a member is per workspace: the same account may be active elsewhere.
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tenant__slug", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant"], name="unique_membership"),
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant} ({self.role})"


class OidcIdentity(models.Model):
    """The account an OpenID Connect subject signs in as (matched by issuer and ``sub``, never
    by e-mail, so an identity provider cannot take over a local account)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oidc_identity")
    issuer = models.CharField(max_length=255, blank=True)
    subject = models.CharField(max_length=255)
    last_login_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "OIDC identity"
        verbose_name_plural = "OIDC identities"
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="unique_oidc_subject")]

    def __str__(self) -> str:
        return f"{self.subject} -> {self.user}"


API_KEY_PREFIX = "bpk"


def hash_api_key(raw: str) -> str:
    # Keys carry 256 bits of randomness, so a fast hash is enough (no brute force possible).
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiKey(TenantOwnedModel):
    """A random key bound to one tenant and a role; only its hash and lookup prefix are kept."""

    name = models.CharField(max_length=100)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.VIEWER)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @staticmethod
    def generate() -> tuple[str, str]:
        """Return ``(prefix, raw_key)``; the raw key is shown once and never stored."""
        prefix = secrets.token_hex(4)
        return prefix, f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"

    def touch(self) -> None:
        now = timezone.now()
        ApiKey.objects.filter(pk=self.pk).update(last_used_at=now)
        self.last_used_at = now
