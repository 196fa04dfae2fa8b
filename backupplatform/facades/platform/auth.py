"""JWT login / register / refresh / logout / me (db-backup-platform.md "Authentication",
api-layer.md "Authentication"), on simplejwt with the refresh-token blacklist."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import AuthenticationFailed, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.throttling import SimpleRateThrottle
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.tokens import RefreshToken

from backupplatform.errors import DomainError, Forbidden
from backupplatform.facades.base import respond
from backupplatform.facades.serializers import validated
from tenants import selectors as tenant_selectors
from tenants import services as tenant_services

from .conventions import PlatformView
from .serializers import (
    LoginSerializer,
    MeSerializer,
    MessageSerializer,
    RefreshSerializer,
    RegisterSerializer,
    TokenPairSerializer,
)


class InvalidCredentials(DomainError):
    status = 401
    code = "INVALID_CREDENTIALS"
    default_message = "Invalid username or password"


class InvalidToken(DomainError):
    status = 401
    code = "TOKEN_INVALID"
    default_message = "Token is invalid, expired or revoked"


class LoginIPThrottle(SimpleRateThrottle):
    """5 login attempts per minute per client IP."""

    scope = "login"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": "login-ip", "ident": self.get_ident(request)}


class LoginUsernameThrottle(SimpleRateThrottle):
    """5 login attempts per minute per username, whatever the IP."""

    scope = "login"

    def get_cache_key(self, request, view):
        username = request.data.get("username") if isinstance(request.data, dict) else None
        if not isinstance(username, str) or not username:
            return None
        # Hashed: a username may hold spaces or control characters, unfit for a cache key.
        ident = hashlib.sha256(username.lower()[:150].encode("utf-8", "surrogatepass")).hexdigest()
        return self.cache_format % {"scope": "login-user", "ident": ident}


def token_pair(user) -> dict:
    refresh = RefreshToken.for_user(user)
    return {"access_token": str(refresh.access_token), "refresh_token": str(refresh), "token_type": "bearer"}


class LoginView(PlatformView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    extra_throttles = (LoginIPThrottle, LoginUsernameThrottle)
    roles = {"POST": None}

    @extend_schema(request=LoginSerializer, responses={200: TokenPairSerializer}, auth=[])
    def post(self, request):
        data = validated(LoginSerializer, request.data)
        user = tenant_services.user_sign_in(
            request=request._request, username=data["username"], password=data["password"]
        )
        if user is None:
            raise InvalidCredentials()
        return respond(token_pair(user))


class RegisterView(PlatformView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    extra_throttles = (LoginIPThrottle,)
    roles = {"POST": None}

    @extend_schema(request=RegisterSerializer, responses={201: TokenPairSerializer}, auth=[])
    def post(self, request):
        if not settings.REGISTRATION_ENABLED:
            raise Forbidden("Self-registration is disabled on this platform", code="REGISTRATION_DISABLED")
        data = validated(RegisterSerializer, request.data)
        membership = tenant_services.user_register(**data)
        body = {
            "id": membership.user.pk,
            "username": membership.user.username,
            "email": membership.user.email,
            "workspace": membership.tenant.slug,
            "role": membership.role,
            **token_pair(membership.user),
        }
        return respond(body, status_code=201)


class RefreshView(PlatformView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    extra_throttles = (LoginIPThrottle,)
    roles = {"POST": None}

    @extend_schema(request=RefreshSerializer, responses={200: TokenPairSerializer}, auth=[])
    def post(self, request):
        data = validated(RefreshSerializer, request.data)
        # simplejwt does the rotation: the old refresh token is blacklisted, a new one issued.
        serializer = TokenRefreshSerializer(data={"refresh": data["refresh_token"]})
        try:
            serializer.is_valid(raise_exception=True)
        except (TokenError, AuthenticationFailed, ObjectDoesNotExist, ValidationError):
            raise InvalidToken()
        result = serializer.validated_data
        return respond({"access_token": result["access"], "refresh_token": result["refresh"], "token_type": "bearer"})


class LogoutView(PlatformView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    roles = {"POST": None}

    @extend_schema(request=RefreshSerializer, responses={200: MessageSerializer}, auth=[])
    def post(self, request):
        data = validated(RefreshSerializer, request.data)
        if tenant_services.refresh_token_revoke(raw=data["refresh_token"]) is None:
            raise InvalidToken()
        return respond({"message": "Logged out; the refresh token is no longer valid"})


class MeView(PlatformView):
    roles = {"GET": None}

    @extend_schema(responses={200: MeSerializer})
    def get(self, request):
        user = request.user
        api_key = getattr(request, "api_key", None)
        if api_key is not None:
            user_info = {
                "id": None,
                "username": user.username,
                "email": "",
                "is_superuser": False,
                "api_key": {"id": api_key.pk, "name": api_key.name, "prefix": api_key.prefix},
            }
        else:
            user_info = {
                "id": user.pk,
                "username": user.username,
                "email": user.email,
                "full_name": user.get_full_name(),
                "is_superuser": user.is_superuser,
            }
        return respond(
            {
                "user": user_info,
                "workspace": request.tenant.slug if request.tenant else None,
                "role": request.role,
                "auth_method": getattr(request, "auth_method", "") or "session",
                "workspaces": tenant_selectors.workspaces_for(request),
            }
        )
