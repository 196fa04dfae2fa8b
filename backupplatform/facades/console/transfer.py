"""Console facade: "Import & Export Operations" (system-backup-recovery.rst).

Uploads are ``multipart/form-data`` with the file in the field ``file``. The file is streamed
to the tenant's staging folder by ``StagingUploadHandler`` (never held in memory), at most
``IMPORT_MAX_UPLOAD_BYTES`` (5 GB, 413 past it), one upload at a time per tenant (429). It is
then recognised and checked by ``backups.services.imports``; a refused file is deleted and
nothing is written.
"""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.parsers import MultiPartParser

from backupplatform.facades.base import respond
from backupplatform.facades.schema import FACADE_ERROR
from backupplatform.facades.serializers import InputSerializer, StrictCharField, validated
from backupplatform.ids import parse_id
from backups.models import OperationKind, Server
from backups.services import imports as service
from backups.services.config import platform_config_download
from tenants.models import Role

from .conventions import ConsoleView
from .operation_bodies import operation_or_404, progress_body, progress_shape

BOOL_TEXT = ["true", "false"]


@extend_schema_field({"type": "string", "pattern": "^(true|false)$", "default": "false"})
class FormBoolField(StrictCharField):
    """A boolean form field: multipart values are text, ``"true"`` or ``"false"``."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value not in BOOL_TEXT:
            raise serializers.ValidationError("Use 'true' or 'false'.")
        return value


class ValidateForm(InputSerializer):
    file = serializers.FileField(help_text="the backup file (streamed to disk, at most 5 GB)")


class ImportForm(ValidateForm):
    auto_restore = FormBoolField(required=False, default="false")
    create_backup_before = FormBoolField(required=False, default="false")
    target_server_id = StrictCharField(
        required=False, max_length=20, help_text="auto_restore of a database dump: the server to restore into"
    )
    target_database = StrictCharField(required=False, max_length=63)
    target_path = StrictCharField(
        required=False, max_length=1024, help_text="auto_restore of a file archive: the folder to restore into"
    )


ValidationShape = inline_serializer(
    "ConsoleImportValidation",
    {
        "file_format": serializers.CharField(),
        "format": serializers.CharField(),
        "format_description": serializers.CharField(),
        "signature": serializers.CharField(),
        "checksum": serializers.CharField(),
        "version_compatibility": serializers.CharField(),
        "size": serializers.CharField(),
        "size_bytes": serializers.IntegerField(),
        "type": serializers.CharField(),
        "created": serializers.CharField(allow_null=True),
        "gateway_id": serializers.CharField(allow_null=True),
        "components": serializers.ListField(child=serializers.CharField()),
        "details": serializers.JSONField(),
    },
)
ValidatedShape = inline_serializer(
    "ConsoleImportValidated",
    {
        "status": serializers.CharField(),
        "filename": serializers.CharField(),
        "validation": ValidationShape.__class__(),
        "warnings": serializers.ListField(child=serializers.CharField()),
        "recommendations": serializers.ListField(child=serializers.CharField()),
    },
)
ImportStartedShape = inline_serializer(
    "ConsoleImportStarted",
    {
        "status": serializers.CharField(),
        "import_id": serializers.CharField(),
        "filename": serializers.CharField(),
        "validation_results": inline_serializer(
            "ConsoleImportResults",
            {
                "format": serializers.CharField(),
                "signature": serializers.CharField(),
                "version": serializers.CharField(),
                "checksum": serializers.CharField(),
            },
        ),
        "backup_info": inline_serializer(
            "ConsoleImportBackupInfo",
            {
                "name": serializers.CharField(),
                "type": serializers.CharField(),
                "size": serializers.CharField(),
                "created": serializers.CharField(allow_null=True),
                "gateway_compatibility": serializers.CharField(),
                "components": serializers.ListField(child=serializers.CharField()),
            },
        ),
        "backup_id": serializers.IntegerField(allow_null=True),
        "validation": ValidationShape.__class__(),
        "progress_url": serializers.CharField(),
    },
)
ImportProgressShape = progress_shape(
    "ConsoleImportProgress",
    "import_id",
    {
        "filename": serializers.CharField(),
        "format": serializers.CharField(),
        "backup_id": serializers.IntegerField(allow_null=True),
        "snapshot_id": serializers.IntegerField(allow_null=True),
        "restore_id": serializers.CharField(allow_null=True),
        "pre_import_backup_id": serializers.IntegerField(allow_null=True),
        "auto_restore_error": serializers.CharField(allow_null=True),
    },
)
ExportShape = inline_serializer(
    "ConsoleConfigExport",
    {
        "export_type": serializers.CharField(),
        "format": serializers.CharField(),
        "timestamp": serializers.CharField(),
        "gateway": inline_serializer(
            "ConsoleConfigGateway",
            {"id": serializers.CharField(), "name": serializers.CharField(), "version": serializers.CharField()},
        ),
        "modules": serializers.JSONField(),
        "settings": serializers.JSONField(),
        "metadata": serializers.JSONField(),
    },
)


def _recommendations(inspection) -> list[str]:
    tips = ["Create a current backup before restoring (create_backup_before)"]
    if inspection.kind in ("pg_custom", "pg_plain", "mysql_sql"):
        tips.append("Restore into a new database first and check it before replacing the live one")
    if inspection.kind in ("tar", "tar.gz", "tar.zst"):
        tips.append("Restore into an empty folder (target_path)")
    if inspection.kind == "config":
        tips.append("The file is imported as a snapshot: restore it with snapshots/restore")
    return tips


class UploadView(ConsoleView):
    """Receives the multipart upload into the staging folder (see module docstring)."""

    parser_classes = [MultiPartParser]
    upload = True  # the schema documents multipart/form-data for these operations
    form = ValidateForm

    def receive(self, request):
        """``(upload, form fields, inspection)``; the staged file is deleted on any refusal."""
        tenant = self.require_tenant()
        if not (request.content_type or "").startswith("multipart/form-data"):
            raise UnsupportedMediaType(request.content_type or "none")
        limit = service.limits()["max_upload_bytes"]
        length = parse_id(request.META.get("CONTENT_LENGTH") or "0") or 0
        if length > limit + (1 << 20):  # the form's own bytes besides the file
            raise service.UploadTooLarge(
                f"The file is larger than the {limit} bytes an upload may have", details={"max_bytes": limit}
            )
        with service.upload_slot(tenant) as key:
            handler = service.StagingUploadHandler(tenant=tenant, limit=limit, lock_key=key, request=request._request)
            request._request.upload_handlers = [handler]
            try:
                staged = request.FILES.get("file")
                fields = {k: request.data.get(k) for k in request.data if k != "file"}
                if staged is None:
                    validated(self.form, fields)  # unknown fields first, then "file" is required
                    raise service.ImportRefused(
                        "Send the file in the multipart field 'file'", details={"file": ["This field is required."]}
                    )
                data = validated(self.form, {**fields, "file": _Present()})
                inspection = service.inspect_upload(tenant=tenant, upload=staged)
            except BaseException:
                handler.cleanup()
                raise
        return staged, data, inspection


class _Present:
    """Stands for the staged file in form validation (the file itself is already on disk)."""

    name = "file"
    size = 1


class ImportValidateView(UploadView):
    """Check a file without importing it (operators); nothing is kept."""

    roles = {"POST": Role.OPERATOR}

    @extend_schema(request=ValidateForm, responses={200: ValidatedShape, 507: FACADE_ERROR})
    def post(self, request):
        staged, _data, inspection = self.receive(request)
        import os

        os.unlink(staged.path)  # validation keeps nothing
        return respond(
            {
                "status": "validated",
                "filename": staged.name,
                "validation": service.describe(inspection),
                "warnings": inspection.warnings,
                "recommendations": _recommendations(inspection),
            }
        )


class ImportView(UploadView):
    """Import a file as a backup of the tenant (or a configuration export as a snapshot)."""

    roles = {"POST": Role.OPERATOR}
    form = ImportForm

    @extend_schema(request=ImportForm, responses={200: ImportStartedShape, 507: FACADE_ERROR})
    def post(self, request):
        tenant = self.require_tenant()
        staged, data, inspection = self.receive(request)
        try:
            server = None
            if data.get("target_server_id"):
                pk = parse_id(data["target_server_id"])
                server = Server.objects.filter(tenant=tenant, pk=pk).first() if pk is not None else None
                if server is None:
                    raise service.ImportRefused(details={"target_server_id": ["Not found."]})
            op = service.import_start(
                tenant=tenant,
                upload=staged,
                inspection=inspection,
                actor=request.user,
                auto_restore=data["auto_restore"] == "true",
                create_backup_before=data["create_backup_before"] == "true",
                target_server=server,
                target_database=data.get("target_database", ""),
                target_path=data.get("target_path", ""),
            )
        except BaseException:
            import os

            os.unlink(staged.path)
            raise
        validation = service.describe(inspection)
        backup = op.backup
        return respond(
            {
                "status": "import_started",
                "import_id": op.public_id,
                "filename": staged.name,
                "validation_results": {
                    "format": "valid",
                    "signature": inspection.signature,
                    "version": "compatible",
                    "checksum": "valid",
                },
                "backup_info": {
                    "name": backup.name if backup else f"Imported_{staged.name}",
                    "type": validation["type"],
                    "size": validation["size"],
                    "created": validation["created"],
                    "gateway_compatibility": f"{tenant.slug} (this workspace)",
                    "components": validation["components"],
                },
                "backup_id": backup.pk if backup else None,
                "validation": validation,
                "progress_url": reverse("console-import-progress", kwargs={"import_id": op.public_id}),
            }
        )


class ImportProgressView(ConsoleView):
    roles = {"GET": Role.VIEWER}

    @extend_schema(responses={200: ImportProgressShape})
    def get(self, request, import_id=None):
        op = operation_or_404(self.require_tenant(), import_id, OperationKind.IMPORT, "Import")
        details = op.details or {}
        return respond(
            progress_body(
                op,
                id_field="import_id",
                operation="import",
                details={
                    "filename": details.get("filename", ""),
                    "format": details.get("kind", ""),
                    "backup_id": op.backup_id,
                    "snapshot_id": details.get("snapshot_id"),
                    "restore_id": details.get("restore_id"),
                    "pre_import_backup_id": details.get("pre_import_backup_id"),
                    "auto_restore_error": details.get("auto_restore_error"),
                },
            )
        )


class ExportConfigView(ConsoleView):
    """The configuration as a JSON attachment, secrets excluded (admins); re-importable
    through ``import`` as a snapshot."""

    roles = {"GET": Role.ADMIN}

    @extend_schema(responses={200: ExportShape})
    def get(self, request):
        document = platform_config_download(
            tenant=self.require_tenant(),
            exported_by=request.user.username or "api key",
            reason=request.query_params.get("reason", ""),
        )
        filename = f"config_export_{document['timestamp'][:10].replace('-', '')}.json"
        return respond(document, headers={"Content-Disposition": f'attachment; filename="{filename}"'})
