"""Jobs facade: verification testing (api-layer.md "Verification Testing")."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers

from backupplatform.errors import NotFound
from backupplatform.facades.base import respond
from backupplatform.facades.serializers import InputSerializer, validated
from backupplatform.ids import is_id, parse_id
from backups import backup_selectors
from backups.models import Backup, Verification
from backups.services import verifications as verification_services
from tenants import capabilities
from tenants.models import Role

from .conventions import JobsViewSet


class VerificationSerializer(serializers.ModelSerializer):
    backup_id = serializers.IntegerField()
    operation_id = serializers.CharField(source="operation.public_id", allow_null=True, default=None)
    progress = serializers.IntegerField(source="operation.progress", default=0)
    current_step = serializers.CharField(source="operation.step", default="")

    class Meta:
        model = Verification
        fields = [
            "id",
            "backup_id",
            "test_type",
            "scope",
            "status",
            "passed",
            "progress",
            "current_step",
            "operation_id",
            "started_at",
            "completed_at",
            "created_at",
        ]


class VerificationResultSerializer(VerificationSerializer):
    result = serializers.JSONField()
    error_message = serializers.CharField()

    class Meta(VerificationSerializer.Meta):
        fields = [*VerificationSerializer.Meta.fields, "result", "error_message"]


class AssertionSerializer(InputSerializer):
    sql = serializers.CharField(max_length=5000)
    expect = serializers.JSONField(required=False, allow_null=True)
    name = serializers.CharField(required=False, max_length=200)


class VerifyRequestSerializer(InputSerializer):
    test_type = serializers.ChoiceField(choices=verification_services.TEST_TYPES, default="checksum")
    scope = serializers.ChoiceField(choices=["full", "quick"], default="full")
    assertions = AssertionSerializer(many=True, required=False)


class VerificationViewSet(mixins.ListModelMixin, JobsViewSet):
    feature = capabilities.BACKUPS
    serializer_class = VerificationSerializer
    queryset = Verification.objects.none()
    roles = {
        "list": Role.VIEWER,
        "start": Role.OPERATOR,
        "status": Role.VIEWER,
        "result": Role.VIEWER,
        "cancel": Role.OPERATOR,
    }

    def tenant_queryset(self, tenant):
        return backup_selectors.verification_list(tenant=tenant)

    def _backup(self, backup_id) -> Backup:
        backup = None
        if is_id(backup_id):
            backup = backup_selectors.backup_list(tenant=self.tenant_scope()).filter(pk=parse_id(backup_id)).first()
        if backup is None:
            raise NotFound("Backup not found", code="BACKUP_NOT_FOUND")
        return backup

    def _latest(self, backup_id) -> Verification:
        verification = backup_selectors.latest_verification(tenant=self.tenant_scope(), backup=self._backup(backup_id))
        if verification is None:
            raise NotFound("This backup has not been verified yet", code="VERIFICATION_NOT_FOUND")
        return verification

    @extend_schema(request=VerifyRequestSerializer, responses={202: VerificationSerializer})
    def start(self, request, backup_id=None):
        backup = self._backup(backup_id)
        data = validated(VerifyRequestSerializer, request.data)
        verification = verification_services.verification_start(
            tenant=backup.tenant,
            backup=backup,
            actor=request.user,
            test_type=data["test_type"],
            scope=data["scope"],
            assertions=[dict(a) for a in data.get("assertions", [])],
        )
        return respond(VerificationSerializer(verification).data, status_code=202, message="Verification started")

    @extend_schema(responses={200: VerificationSerializer})
    def status(self, request, backup_id=None):
        return respond(VerificationSerializer(self._latest(backup_id)).data, message="Verification status")

    @extend_schema(responses={200: VerificationResultSerializer})
    def result(self, request, backup_id=None):
        return respond(VerificationResultSerializer(self._latest(backup_id)).data, message="Verification result")

    @extend_schema(request=None, responses={200: VerificationSerializer})
    def cancel(self, request, pk=None):
        verification = None
        if is_id(pk):
            verification = self.get_queryset().filter(pk=parse_id(pk)).first()
        if verification is None:
            raise NotFound("Verification not found", code="VERIFICATION_NOT_FOUND")
        verification = verification_services.verification_cancel(tenant=verification.tenant, verification=verification)
        return respond(VerificationSerializer(verification).data, message="Cancellation requested")
