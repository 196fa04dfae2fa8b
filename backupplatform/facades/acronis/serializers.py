"""acronis-integration.md request bodies and response shapes (the latter for the schema)."""

from __future__ import annotations

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from backupplatform.facades.serializers import InputSerializer, StrictCharField


class ConfigInput(InputSerializer):
    """POST/PUT /config. Types and presence are ``ACRONIS_VALIDATION_ERROR``; well-typed but
    unusable values (not an http(s) URL, an unsupported grant type, a scope that is not a
    UUID) are ``ACRONIS_INVALID_CONFIG``, checked by ``acronis.services.config_check``."""

    base_url = StrictCharField(max_length=500)
    client_id = StrictCharField(max_length=255)
    client_secret = StrictCharField(max_length=4096, write_only=True)
    grant_type = StrictCharField(max_length=64, required=False, default="client_credentials")
    tenant_scope = StrictCharField(max_length=64, required=False, allow_null=True, allow_blank=True)


class ConfigUpdateInput(ConfigInput):
    """PUT may omit ``client_secret`` to keep the stored one."""

    client_secret = StrictCharField(max_length=4096, write_only=True, required=False)


PLATFORM = inline_serializer(
    "AcronisPlatform",
    {
        "family": serializers.CharField(allow_null=True),
        "arch": serializers.CharField(allow_null=True),
        "name": serializers.CharField(allow_null=True),
        "version": serializers.CharField(allow_null=True),
    },
)

ConfigStatusShape = inline_serializer(
    "AcronisConfigStatus",
    {
        "base_url": serializers.CharField(),
        "client_id": serializers.CharField(),
        "grant_type": serializers.CharField(),
        "tenant_scope": serializers.UUIDField(allow_null=True),
        "configured": serializers.BooleanField(),
        "last_updated": serializers.DateTimeField(),
    },
)

ConfiguredShape = inline_serializer("AcronisConfigured", {"configured": serializers.BooleanField()})

AgentShape = inline_serializer(
    "AcronisAgent",
    {
        "id_agent": serializers.CharField(),
        "hostname": serializers.CharField(),
        "id_tenant": serializers.CharField(),
        "online": serializers.BooleanField(),
        "uptime": serializers.CharField(allow_null=True),
        "uptime_timestamp": serializers.FloatField(allow_null=True),
        "platform": PLATFORM,
    },
    many=True,
)

WorkloadShape = inline_serializer(
    "AcronisWorkload",
    {
        "id_workload": serializers.CharField(),
        "hostname": serializers.CharField(),
        "id_tenant": serializers.CharField(),
        "type": serializers.CharField(),
        "status": serializers.CharField(),
    },
    many=True,
)

AssociationShape = inline_serializer(
    "AcronisAssociation",
    {
        "agent_id": serializers.CharField(),
        "workload_id": serializers.CharField(),
        "hostname": serializers.CharField(),
        "association_type": serializers.ChoiceField(choices=["direct", "policy", "hostname"]),
    },
    many=True,
)

BackupStatsShape = inline_serializer(
    "AcronisBackupStatistics", {"summary": serializers.DictField(), "workload_data": serializers.DictField()}
)

AgentBackupsShape = inline_serializer(
    "AcronisAgentBackups",
    {
        "agent_info": serializers.DictField(),
        "backup_summary": serializers.DictField(),
        "backups": serializers.ListField(child=serializers.DictField()),
    },
)

HealthShape = inline_serializer(
    "AcronisHealth",
    {
        "api_status": serializers.CharField(),
        "last_check": serializers.DateTimeField(),
        "response_time_ms": serializers.IntegerField(),
        "token_valid": serializers.BooleanField(),
        "endpoints_tested": serializers.ListField(child=serializers.DictField()),
        "configuration": serializers.DictField(),
        "circuit_breaker": inline_serializer(
            "AcronisCircuitBreaker",
            {
                "state": serializers.ChoiceField(choices=["closed", "open", "half_open"]),
                "consecutive_failures": serializers.IntegerField(),
                "retry_in": serializers.IntegerField(allow_null=True),
            },
        ),
        "rate_limit": inline_serializer(
            "AcronisRateLimit",
            {"backing_off": serializers.BooleanField(), "retry_after": serializers.IntegerField(allow_null=True)},
        ),
    },
)


def public_workload(row: dict) -> dict:
    """The seed's workload row (the internal ``agent_id`` is for associations only)."""
    return {k: row[k] for k in ("id_workload", "hostname", "id_tenant", "type", "status")}
