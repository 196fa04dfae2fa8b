"""API authentication: ``X-API-Key`` keys and JWT bearer tokens (simplejwt)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework_simplejwt.authentication import JWTAuthentication

from .models import API_KEY_PREFIX, ApiKey, Tenant, hash_api_key

API_KEY_HEADER = "HTTP_X_API_KEY"


@dataclass
class ApiKeyPrincipal:
    """The caller behind an API key: no user account, one tenant and one role."""

    key: ApiKey
    is_authenticated: bool = True
    is_active: bool = True
    is_superuser: bool = False
    is_staff: bool = False
    is_anonymous: bool = False
    pk: None = None
    id: None = None

    @property
    def username(self) -> str:
        return f"apikey:{self.key.name}"

    @property
    def tenant(self) -> Tenant:
        return self.key.tenant

    def __str__(self) -> str:
        return self.username


def find_api_key(raw: str) -> ApiKey | None:
    """The active key matching ``raw`` (compared by hash in constant time), or ``None``."""
    parts = raw.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX:
        return None
    key = ApiKey.objects.select_related("tenant").filter(prefix=parts[1]).first()
    if key is None or not hmac.compare_digest(key.key_hash, hash_api_key(raw.strip())):
        return None
    return key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``X-API-Key: bpk_<prefix>_<secret>`` (api-layer.md "API Key Authentication")."""

    def authenticate(self, request):
        raw = request.META.get(API_KEY_HEADER)
        if not raw:
            return None
        key = find_api_key(raw)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid API key")
        if key.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API key has been revoked")
        if not key.tenant.is_active:
            raise exceptions.AuthenticationFailed("The workspace of this API key is disabled")
        # Written at most once a minute per key, so busy automation does not write per call.
        now = timezone.now()
        if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
            key.touch()
        request._request.api_key = key
        request._request.auth_method = "api_key"
        return ApiKeyPrincipal(key), key

    def authenticate_header(self, request):
        return "X-API-Key"


class BearerJWTAuthentication(JWTAuthentication):
    """``Authorization: Bearer <access token>``; marks the request's auth method."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is not None:
            request._request.auth_method = "jwt"
        return result
