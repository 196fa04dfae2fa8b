"""``POST /api/v1/keys/export`` (our extension): a workspace admin downloads the key ring file
that restores the workspace's backups without the platform (DESIGN.md "Encryption keys").

The key ring is the one secret the platform ever hands out, so this route asks more than a
valid token: the caller's password again (a stolen token alone gets nothing), the admin
role, a person rather than an API key, and a throttle of its own (``THROTTLE_KEY_EXPORT``,
default 5 an hour per user, counting wrong passwords too). The audit log records each
export and each refusal by key id and fingerprint, never the key.
"""

from __future__ import annotations

import json

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.throttling import SimpleRateThrottle

from backupplatform.errors import DomainError, Forbidden
from backupplatform.facades.base import respond
from backupplatform.facades.schema import FACADE_ERROR
from backupplatform.facades.serializers import InputSerializer, StrictCharField, validated
from backups.keys import MasterKeyError, tenant_key_export_reauthenticated
from tenants.models import Role

from .conventions import PlatformView


class KeyExportThrottle(SimpleRateThrottle):
    """Key exports per user (per client IP before authentication), every attempt counted."""

    scope = "key_export"

    def get_rate(self) -> str:
        return getattr(settings, "THROTTLE_KEY_EXPORT", "5/hour")

    def get_cache_key(self, request, view) -> str:
        user = getattr(request, "user", None)
        ident = f"user-{user.pk}" if getattr(user, "pk", None) else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class KeyExportRequestSerializer(InputSerializer):
    password = StrictCharField(
        max_length=4096,
        trim_whitespace=False,
        style={"input_type": "password"},
        help_text="The caller's own password, typed again.",
    )


class RingKeySerializer(serializers.Serializer):
    key_id = serializers.CharField()
    algorithm = serializers.CharField()
    key = serializers.CharField(help_text="Standard base64 of the 32-byte data key. Secret.")
    fingerprint = serializers.CharField()
    created_at = serializers.DateTimeField(allow_null=True)
    current = serializers.BooleanField()


class KeyRingSerializer(serializers.Serializer):
    """The key ring file (docs/artifact-format.md "Key files"), as ``exportkey`` writes it."""

    type = serializers.CharField(help_text='"bpaf-key-ring"')
    version = serializers.IntegerField()
    tenant = serializers.CharField()
    exported_at = serializers.DateTimeField()
    current_key_id = serializers.CharField(allow_null=True)
    keys = RingKeySerializer(many=True)
    comment = serializers.CharField()


class KeyExportView(PlatformView):
    roles = {"POST": Role.ADMIN}
    extra_throttles = (KeyExportThrottle,)

    @extend_schema(
        request=KeyExportRequestSerializer,
        responses={200: KeyRingSerializer, 503: FACADE_ERROR},
        summary="Export the workspace's backup key ring (password required)",
    )
    def post(self, request):
        data = validated(KeyExportRequestSerializer, request.data)
        if getattr(request, "auth_method", "") == "api_key":
            raise Forbidden(
                "Exporting backup keys needs a person's password: sign in as a workspace admin "
                "(API keys cannot export keys)",
                code="REAUTHENTICATION_REQUIRED",
            )
        tenant = self.require_tenant()
        try:
            filename, content = tenant_key_export_reauthenticated(
                tenant=tenant, user=request.user, password=data["password"], via="api"
            )
        except MasterKeyError:
            # The operator's problem (the master key cannot open the keys), not the caller's.
            raise DomainError(
                "The platform cannot open this workspace's keys right now; its operator has been told at start-up",
                code="KEYS_UNAVAILABLE",
                status=503,
            ) from None
        return respond(
            json.loads(content),
            headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
        )
