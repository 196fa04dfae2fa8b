"""Console facade: "Disaster Recovery Operations" (system-backup-recovery.rst).

``recovery/initiate`` restores a backup over its original targets (``overwrite``: staged,
swapped in only on success) after an optional pre-recovery snapshot; ``confirmation: true``
is required. ``recovery/preview/{backup_id}`` is the impact analysis
(``backups.services.recovery.recovery_preview``), ``recovery/progress/{id}`` the operation.
"""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers

from backupplatform.errors import NotFound, ValidationFailed
from backupplatform.facades.base import respond
from backupplatform.facades.serializers import (
    InputSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    validated,
)
from backupplatform.ids import parse_id
from backups.models import Backup, OperationKind
from backups.services import recovery as service
from tenants.models import Role

from .conventions import ConsoleView
from .operation_bodies import operation_or_404, progress_body, progress_shape


def backup_or_404(tenant, backup_id) -> Backup:
    pk = parse_id(backup_id)
    backup = (
        Backup.objects.filter(tenant=tenant, pk=pk).select_related("tenant", "server", "storage").first()
        if pk is not None
        else None
    )
    if backup is None:
        raise NotFound("Backup not found", code="BACKUP_NOT_FOUND", details={"backup_id": str(backup_id)[:40]})
    return backup


class RecoverySerializer(InputSerializer):
    backup_id = StrictIntegerField(min_value=1, max_value=2**63 - 1)
    recovery_type = serializers.ChoiceField(choices=["full", "partial"], required=False, default="full")
    create_pre_recovery_snapshot = StrictBooleanField(required=False, default=True)
    module_filter = serializers.ListField(
        child=StrictCharField(max_length=200), required=False, allow_null=True, allow_empty=False, max_length=100
    )
    reason = StrictCharField(required=False, allow_blank=True, max_length=500)
    confirmation = StrictBooleanField()

    def validate_confirmation(self, value: bool) -> bool:
        if value is not True:
            raise serializers.ValidationError("Recovery replaces current data: confirm with true.")
        return value


ItemShape = inline_serializer(
    "ConsoleRecoveryItem",
    {
        "member": serializers.CharField(allow_null=True),
        "name": serializers.CharField(),
        "type": serializers.CharField(),
        "component": serializers.CharField(),
        "target": serializers.CharField(allow_null=True),
        "size": serializers.IntegerField(),
    },
)
PreviewShape = inline_serializer(
    "ConsoleRecoveryPreview",
    {
        "backup_id": serializers.IntegerField(),
        "backup_name": serializers.CharField(),
        "recovery_type": serializers.CharField(),
        "created_at": serializers.CharField(),
        "impact_analysis": inline_serializer(
            "ConsoleRecoveryImpact",
            {
                "components_affected": serializers.ListField(child=serializers.CharField()),
                "items": ItemShape.__class__(many=True),
                "total_size": serializers.IntegerField(),
                "total_size_display": serializers.CharField(),
                "estimated_downtime": serializers.CharField(),
                "estimated_downtime_seconds": serializers.FloatField(allow_null=True),
                "estimate_basis": serializers.CharField(),
                "restart_required": serializers.BooleanField(),
                "data_loss_risk": serializers.ChoiceField(choices=["low", "medium", "high"]),
                "data_loss": inline_serializer(
                    "ConsoleRecoveryDataLoss",
                    {
                        "hours_since_backup": serializers.FloatField(),
                        "newer_backups": serializers.IntegerField(),
                        "newest_backup_id": serializers.IntegerField(allow_null=True),
                    },
                ),
                "pre_recovery_actions": serializers.ListField(child=serializers.CharField()),
                "post_recovery_actions": serializers.ListField(child=serializers.CharField()),
            },
        ),
        "warnings": serializers.ListField(child=serializers.CharField()),
        "recommendations": serializers.ListField(child=serializers.CharField()),
    },
)
StartedShape = inline_serializer(
    "ConsoleRecoveryStarted",
    {
        "status": serializers.CharField(),
        "recovery_id": serializers.CharField(),
        "backup_id": serializers.IntegerField(),
        "estimated_duration": serializers.CharField(),
        "estimate_basis": serializers.CharField(),
        "pre_recovery_snapshot_id": serializers.IntegerField(allow_null=True),
        "warning": serializers.CharField(),
        "components": ItemShape.__class__(many=True),
        "progress_url": serializers.CharField(),
    },
)
ProgressShape = progress_shape(
    "ConsoleRecoveryProgress",
    "recovery_id",
    {
        "backup_id": serializers.IntegerField(allow_null=True),
        "pre_recovery_snapshot_id": serializers.IntegerField(allow_null=True),
        "items": serializers.ListField(child=serializers.CharField()),
        "result": serializers.JSONField(allow_null=True),
    },
)


def _filter_param(request) -> list[str] | None:
    raw = request.query_params.get("module_filter")
    if raw is None or raw == "":
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if not names or len(names) > 100 or any(len(n) > 200 for n in names):
        raise ValidationFailed(details={"module_filter": ["Comma-separated component or source names."]})
    return names


class RecoveryPreviewView(ConsoleView):
    """Impact analysis of recovering a backup (viewers); nothing changes."""

    roles = {"GET": Role.VIEWER}

    @extend_schema(
        responses={200: PreviewShape},
        parameters=[
            OpenApiParameter(
                "module_filter", str, required=False, description="comma-separated components or source names"
            )
        ],
    )
    def get(self, request, backup_id=None):
        backup = backup_or_404(self.require_tenant(), backup_id)
        return respond(service.recovery_preview(backup=backup, module_filter=_filter_param(request)))


class RecoveryInitiateView(ConsoleView):
    """Start a disaster recovery (operators; ``confirmation: true``)."""

    roles = {"POST": Role.OPERATOR}

    @extend_schema(request=RecoverySerializer, responses={200: StartedShape})
    def post(self, request):
        tenant = self.require_tenant()
        data = validated(RecoverySerializer, request.data)
        backup = backup_or_404(tenant, data["backup_id"])
        preview = service.recovery_preview(backup=backup, module_filter=data.get("module_filter"))
        restore, snapshot = service.recovery_start(
            tenant=tenant,
            backup=backup,
            actor=request.user,
            confirmation=data["confirmation"],
            create_pre_recovery_snapshot=data["create_pre_recovery_snapshot"],
            module_filter=data.get("module_filter"),
            reason=data.get("reason", ""),
            recovery_type=data["recovery_type"],
        )
        public_id = restore.operation.public_id
        impact = preview["impact_analysis"]
        return respond(
            {
                "status": "recovery_started",
                "recovery_id": public_id,
                "backup_id": backup.pk,
                "estimated_duration": impact["estimated_downtime"],
                "estimate_basis": impact["estimate_basis"],
                "pre_recovery_snapshot_id": snapshot.pk if snapshot else None,
                "warning": "Current data of the affected components is replaced; open database connections are ended",
                "components": impact["items"],
                "progress_url": reverse("console-recovery-progress", kwargs={"recovery_id": public_id}),
            }
        )


class RecoveryProgressView(ConsoleView):
    roles = {"GET": Role.VIEWER}

    @extend_schema(responses={200: ProgressShape})
    def get(self, request, recovery_id=None):
        op = operation_or_404(self.require_tenant(), recovery_id, OperationKind.RECOVERY, "Recovery")
        recovery = (op.details or {}).get("recovery") or {}
        return respond(
            progress_body(
                op,
                id_field="recovery_id",
                operation="recovery",
                details={
                    "backup_id": op.backup_id,
                    "pre_recovery_snapshot_id": recovery.get("pre_recovery_snapshot_id"),
                    "items": recovery.get("items", []),
                    "result": (op.details or {}).get("result"),
                },
            )
        )
