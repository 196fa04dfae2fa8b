"""Shapes of db-backup-platform.md ("Authentication", "Users", "Audit Logs") and the
platform extensions (``/auth/me``, ``/workspaces``)."""

from __future__ import annotations

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from backupplatform.facades.serializers import (
    InputSerializer,
    StrictBooleanField,
    StrictCharField,
)
from backupplatform.ids import parse_id
from tenants.models import Membership, Role


class LoginSerializer(InputSerializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(max_length=256, trim_whitespace=False)


class TokenPairSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    refresh_token = serializers.CharField()
    token_type = serializers.CharField(default="bearer")


class RefreshSerializer(InputSerializer):
    refresh_token = StrictCharField(max_length=2000)


class RegisterSerializer(InputSerializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(max_length=256, trim_whitespace=False)
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)
    full_name = StrictCharField(required=False, allow_blank=True, max_length=300)
    workspace_name = StrictCharField(required=False, allow_blank=True, max_length=200)

    def validate_username(self, value: str) -> str:
        from django.contrib.auth.validators import UnicodeUsernameValidator

        UnicodeUsernameValidator()(value)
        return value


class WorkspaceSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The workspace's slug (its ws_id)")
    name = serializers.CharField()
    plan = serializers.CharField()
    role = serializers.CharField()
    created_at = serializers.DateTimeField()


class MeUserSerializer(serializers.Serializer):
    """The caller: a user (``full_name``) or, with ``X-API-Key``, the key (``id`` null, ``api_key``)."""

    id = serializers.IntegerField(allow_null=True)
    username = serializers.CharField()
    email = serializers.CharField(allow_blank=True)
    is_superuser = serializers.BooleanField()
    full_name = serializers.CharField(required=False, allow_blank=True)
    api_key = inline_serializer(
        "MeApiKey",
        {"id": serializers.IntegerField(), "name": serializers.CharField(), "prefix": serializers.CharField()},
        required=False,
    )


class MeSerializer(serializers.Serializer):
    user = MeUserSerializer()
    workspace = serializers.CharField(allow_null=True)
    role = serializers.CharField(allow_null=True)
    auth_method = serializers.CharField()
    workspaces = WorkspaceSerializer(many=True)


class UserSerializer(serializers.ModelSerializer):
    """A member of the caller's workspace (db-backup-platform.md "Users")."""

    id = serializers.IntegerField(source="user.id")
    username = serializers.CharField(source="user.username")
    email = serializers.CharField(source="user.email")
    full_name = serializers.SerializerMethodField()
    last_login = serializers.DateTimeField(source="user.last_login", allow_null=True)

    class Meta:
        model = Membership
        fields = ["id", "username", "email", "full_name", "role", "is_active", "created_at", "last_login"]

    def get_full_name(self, obj: Membership) -> str:
        return obj.user.get_full_name()


class UserCreateSerializer(InputSerializer):
    username = StrictCharField(max_length=150)
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)
    password = StrictCharField(max_length=256, trim_whitespace=False)
    full_name = StrictCharField(required=False, allow_blank=True, max_length=300)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.VIEWER)

    def validate_username(self, value: str) -> str:
        from django.contrib.auth.validators import UnicodeUsernameValidator

        UnicodeUsernameValidator()(value)
        return value


class UserUpdateSerializer(InputSerializer):
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    is_active = StrictBooleanField(required=False)
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)
    full_name = StrictCharField(required=False, allow_blank=True, max_length=300)
    password = StrictCharField(required=False, max_length=256, trim_whitespace=False)


class AuditEventSerializer(serializers.Serializer):
    """An audit event (db-backup-platform.md "List Audit Logs"). Done with an API key: no
    ``user_id``, ``username`` ``apikey:<name>`` and the key's ``api_key_id``."""

    id = serializers.IntegerField()
    user_id = serializers.IntegerField(source="actor_id", allow_null=True)
    username = serializers.CharField(source="actor_name")
    api_key_id = serializers.IntegerField(allow_null=True)
    action = serializers.CharField()
    resource_type = serializers.CharField()
    resource_id = serializers.SerializerMethodField()
    details = serializers.JSONField()
    ip_address = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()

    def get_resource_id(self, obj) -> int | str | None:
        value = obj.resource_id
        if value == "":
            return None
        return parse_id(value) or value


class MessageSerializer(serializers.Serializer):
    message = serializers.CharField()
