"""WebSocket authentication: a JWT (``?token=`` or the ``Sec-WebSocket-Protocol`` header),
an API key (``?api_key=``), or the admin's session cookie (Channels' AuthMiddleware)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken

from . import services
from .authentication import ApiKeyPrincipal, find_api_key
from .signin import OIDC_BACKEND


def _subprotocol_token(scope: dict) -> tuple[str | None, str | None]:
    """Browsers cannot set headers on WebSockets; clients send ``["bearer", "<jwt>"]`` or
    ``["access_token.<jwt>"]`` as subprotocols. Returns ``(token, subprotocol to accept)``."""
    protocols = scope.get("subprotocols") or []
    for i, proto in enumerate(protocols):
        if proto.lower() in ("bearer", "jwt") and i + 1 < len(protocols):
            return protocols[i + 1], proto
        if proto.startswith("access_token."):
            return proto.split(".", 1)[1], proto
    return None, None


@database_sync_to_async
def _user_for_token(raw: str) -> Any:
    try:
        token = AccessToken(raw)
    except TokenError:
        return None
    user = get_user_model().objects.filter(pk=token.get("user_id"), is_active=True).first()
    return user


@database_sync_to_async
def _principal_for_key(raw: str) -> Any:
    key = find_api_key(raw)
    if key is None or key.revoked_at is not None or not key.tenant.is_active:
        return None
    return ApiKeyPrincipal(key)


class TokenAuthMiddleware:
    """Sets ``scope["user"]`` from a token when one is given; otherwise leaves the session
    user that ``AuthMiddlewareStack`` found. A bad token means anonymous (closed 4401)."""

    def __init__(self, inner: Any):
        self.inner = inner

    async def __call__(self, scope: dict, receive: Any, send: Any) -> Any:
        query = parse_qs((scope.get("query_string") or b"").decode())
        token = (query.get("token") or [None])[0]
        accept_protocol = None
        if token is None:
            token, accept_protocol = _subprotocol_token(scope)
        api_key = (query.get("api_key") or [None])[0]
        scope = dict(scope)
        scope["accept_subprotocol"] = accept_protocol
        scope["workspace"] = (query.get("workspace") or [None])[0]
        if token:
            scope["user"] = await _user_for_token(token) or AnonymousUser()
            scope["auth_method"] = "jwt"
        elif api_key:
            scope["user"] = await _principal_for_key(api_key) or AnonymousUser()
            scope["auth_method"] = "api_key"
        elif await _session_lacks_second_factor(scope):
            scope["user"] = AnonymousUser()
        return await self.inner(scope, receive, send)


@database_sync_to_async
def _session_lacks_second_factor(scope: dict) -> bool:
    """An admin session opened without the second factor its user now needs (the tenant
    turned it on since) is no sign-in for the socket either (tenants/signin.py)."""
    from django.contrib.auth import BACKEND_SESSION_KEY
    from django_otp import DEVICE_ID_SESSION_KEY

    user, session = scope.get("user"), scope.get("session")
    if user is None or not getattr(user, "is_authenticated", False) or session is None:
        return False
    if session.get(DEVICE_ID_SESSION_KEY) or session.get(BACKEND_SESSION_KEY) == OIDC_BACKEND:
        return False
    return services.two_factor_required(user)


def WebSocketAuthStack(inner: Any) -> Any:
    return AuthMiddlewareStack(TokenAuthMiddleware(inner))
