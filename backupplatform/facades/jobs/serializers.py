"""api-layer.md shapes: API keys."""

from __future__ import annotations

from rest_framework import serializers

from backupplatform.facades.serializers import InputSerializer, StrictCharField
from tenants.models import ApiKey, Role


class ApiKeySerializer(serializers.ModelSerializer):
    is_active = serializers.BooleanField(read_only=True)
    workspace = serializers.CharField(source="tenant.slug", read_only=True)

    class Meta:
        model = ApiKey
        fields = ["id", "name", "role", "prefix", "workspace", "is_active", "created_at", "last_used_at", "revoked_at"]


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(help_text="The key itself: shown once, never again")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]


class ApiKeyCreateSerializer(InputSerializer):
    name = StrictCharField(max_length=100)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.VIEWER)
