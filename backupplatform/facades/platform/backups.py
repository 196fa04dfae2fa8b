"""Platform facade: backups (db-backup-platform.md "Backups") and the signed download link."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers
from rest_framework.permissions import AllowAny

from backupplatform.errors import NotFound, ValidationFailed
from backupplatform.facades import query
from backupplatform.facades.base import respond
from backupplatform.facades.serializers import (
    InputSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictDictField,
    StrictIntegerField,
    validated,
)
from backupplatform.ids import parse_id
from backups import backup_selectors
from backups.config_selectors import artifact_location, backup_location
from backups.models import Backup, BackupStatus, OperationKind, Restore, Server, ServerType, Storage
from backups.services import backups as backup_services
from backups.services import restores as restore_services
from tenants import capabilities
from tenants.models import Role

from .conventions import PlatformView, PlatformViewSet


class BackupSerializer(serializers.ModelSerializer):
    """A backup as db-backup-platform.md "List Backups" shows it."""

    server_id = serializers.IntegerField(allow_null=True)
    storage_path = serializers.SerializerMethodField()
    size_bytes = serializers.IntegerField(source="stored_bytes")
    is_encrypted = serializers.BooleanField(source="encrypted")
    is_compressed = serializers.SerializerMethodField()
    compression_type = serializers.CharField(source="compression")
    checksum = serializers.SerializerMethodField()
    duration_seconds = serializers.IntegerField(allow_null=True)
    error_message = serializers.CharField()

    class Meta:
        model = Backup
        fields = [
            "id",
            "server_id",
            "database_name",
            "db_type",
            "backup_type",
            "status",
            "size_bytes",
            "storage_path",
            "is_encrypted",
            "is_compressed",
            "compression_type",
            "checksum",
            "started_at",
            "completed_at",
            "duration_seconds",
            "created_at",
            "error_message",
        ]

    def get_storage_path(self, obj: Backup) -> str:
        return backup_location(obj)

    def get_is_compressed(self, obj: Backup) -> bool:
        return obj.compression != "none"

    def get_checksum(self, obj: Backup) -> str:
        return f"sha256:{obj.checksum}" if obj.checksum else ""


_DATETIME = serializers.DateTimeField()

# The columns a list page reads: plain values, no model instances (``backup_list_rows``).
LIST_COLUMNS = (
    "id",
    "server_id",
    "database_name",
    "db_type",
    "backup_type",
    "status",
    "stored_bytes",
    "storage_path",
    "encrypted",
    "compression",
    "checksum",
    "started_at",
    "completed_at",
    "created_at",
    "error_message",
    "storage__type",
    "storage__name",
    "storage__configuration",
)


def backup_list_rows(rows) -> list[dict]:
    """``BackupSerializer``'s fields for a list page, built from ``LIST_COLUMNS`` values
    without model instances or DRF's per-field work (``tests/facades/test_backup_list_rows.py``
    holds the two equal)."""
    zone = _DATETIME.default_timezone()  # what DRF's DateTimeField converts to, once per page

    def moment(value):
        if value is None:
            return None
        text = value.astimezone(zone).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return [_list_row(row, moment) for row in rows]


def _list_row(row: dict, moment) -> dict:
    started, completed, key = row["started_at"], row["completed_at"], row["storage_path"]
    if row["storage__type"] is None or not key:
        location = key
    else:
        location = artifact_location(row["storage__type"], row["storage__name"], row["storage__configuration"], key)
    return {
        "id": row["id"],
        "server_id": row["server_id"],
        "database_name": row["database_name"],
        "db_type": row["db_type"],
        "backup_type": row["backup_type"],
        "status": row["status"],
        "size_bytes": row["stored_bytes"],
        "storage_path": location,
        "is_encrypted": bool(row["encrypted"]),
        "is_compressed": row["compression"] != "none",
        "compression_type": row["compression"],
        "checksum": f"sha256:{row['checksum']}" if row["checksum"] else "",
        "started_at": moment(started),
        "completed_at": moment(completed),
        "duration_seconds": int((completed - started).total_seconds()) if started and completed else None,
        "created_at": moment(row["created_at"]),
        "error_message": row["error_message"],
    }


class OperationProgressFields(serializers.Serializer):
    """How far a backup or restore is: the numbers of its operation (``operation_of``), 100 %
    once it completed."""

    progress = serializers.SerializerMethodField()
    current_step = serializers.SerializerMethodField()
    bytes_processed = serializers.SerializerMethodField()
    bytes_total = serializers.SerializerMethodField()
    throughput_bps = serializers.SerializerMethodField()
    eta_seconds = serializers.SerializerMethodField()

    def operation_of(self, obj):
        raise NotImplementedError

    def _value(self, obj, field: str, default=None):
        op = self.operation_of(obj)
        return getattr(op, field) if op is not None else default

    def get_progress(self, obj) -> int:
        return 100 if obj.status == BackupStatus.COMPLETED else self._value(obj, "progress", 0)

    def get_current_step(self, obj) -> str:
        return self._value(obj, "step", "")

    def get_bytes_processed(self, obj) -> int:
        return self._value(obj, "bytes_done", 0)

    def get_bytes_total(self, obj) -> int | None:
        return self._value(obj, "bytes_total")

    def get_throughput_bps(self, obj) -> int | None:
        return self._value(obj, "throughput_bps")

    def get_eta_seconds(self, obj) -> int | None:
        return self._value(obj, "eta_seconds")


class BackupWithProgressSerializer(OperationProgressFields, BackupSerializer):
    """ "Get Backup": the list's fields and, while it runs, how far it is (the numbers of the
    backup's operation; ``size_bytes`` is the stored artifact's size, known once it is stored)."""

    operation_id = serializers.SerializerMethodField()

    class Meta(BackupSerializer.Meta):
        fields = [
            *BackupSerializer.Meta.fields,
            "operation_id",
            "progress",
            "current_step",
            "bytes_processed",
            "bytes_total",
            "throughput_bps",
            "eta_seconds",
        ]

    def operation_of(self, obj: Backup):
        if not hasattr(obj, "_backup_operation"):
            obj._backup_operation = obj.operations.filter(kind=OperationKind.BACKUP).order_by("-created_at").first()
        return obj._backup_operation

    def get_operation_id(self, obj: Backup) -> str | None:
        return self._value(obj, "public_id")


class BackupCreateSerializer(InputSerializer):
    server_id = StrictIntegerField()
    database_name = StrictCharField(max_length=200)
    db_type = serializers.ChoiceField(choices=["postgresql", "mysql"], required=False)
    backup_type = serializers.ChoiceField(choices=["full"], default="full")
    compress = StrictBooleanField(default=True)
    compression_type = serializers.ChoiceField(choices=["gzip", "zstd"], default="zstd")
    encrypt = StrictBooleanField(default=True)
    storage_id = StrictIntegerField(required=False)


class BackupQueuedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    message = serializers.CharField()
    task_id = serializers.CharField()


class RestoreRequestSerializer(InputSerializer):
    target_server_id = StrictIntegerField(required=False)
    target_database = StrictCharField(max_length=63)
    mask_sensitive_data = StrictBooleanField(default=False)
    masking_rules = StrictDictField(required=False, default=dict)
    restore_strategy = serializers.ChoiceField(choices=["create_new", "overwrite"], default="create_new")
    jobs = StrictIntegerField(
        required=False,
        min_value=1,
        max_value=16,
        help_text=(
            "PostgreSQL only: restore with this many parallel connections (pg_restore --jobs). The "
            "decrypted dump is first written to the worker's temporary folder, which must have room "
            "for it (checked first). Default 1: streamed straight into pg_restore, no temporary space."
        ),
    )

    def validate_target_database(self, value: str) -> str:
        import re

        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$-]{0,62}", value):
            raise serializers.ValidationError("Use letters, digits, '_', '-' or '$' (at most 63 characters).")
        return value


class TaskQueuedSerializer(serializers.Serializer):
    task_id = serializers.CharField()
    status = serializers.CharField()
    message = serializers.CharField()


class RestoreQueuedSerializer(TaskQueuedSerializer):
    restore_id = serializers.IntegerField()
    status_url = serializers.CharField()
    warnings = serializers.ListField(
        child=serializers.CharField(),
        help_text=(
            "What may surprise in this restore (another PostgreSQL major version, another encoding, "
            "MySQL into MariaDB), from the versions recorded with the backup and the target server's."
        ),
    )


class RestoreStatusSerializer(OperationProgressFields, serializers.ModelSerializer):
    """A restore and the live progress of its operation (our extension: the seed's restore
    answers with a task id, and this is where that task is followed)."""

    backup_id = serializers.IntegerField(allow_null=True)
    target_server_id = serializers.IntegerField(allow_null=True)
    masked_columns = serializers.SerializerMethodField()
    warnings = serializers.SerializerMethodField()

    class Meta:
        model = Restore
        fields = [
            "id",
            "backup_id",
            "status",
            "progress",
            "current_step",
            "bytes_processed",
            "bytes_total",
            "throughput_bps",
            "eta_seconds",
            "target_server_id",
            "target_database",
            "target_path",
            "strategy",
            "masked_columns",
            "warnings",
            "error_message",
            "created_at",
            "started_at",
            "completed_at",
        ]

    def operation_of(self, obj: Restore):
        return obj.operation

    def get_masked_columns(self, obj: Restore) -> list[str]:
        return sorted(obj.masking_rules or {})

    def get_warnings(self, obj: Restore) -> list[str]:
        return restore_services.restore_warnings(obj)


class DownloadLinkSerializer(serializers.Serializer):
    download_url = serializers.CharField()
    expires_at = serializers.DateTimeField()


# db-backup-platform.md "List Backups": the query parameters it lists, and only those.
DB_TYPES = (ServerType.POSTGRESQL.value, ServerType.MYSQL.value)
LIST_QUERY = {
    "server_id": query.ID,
    "db_type": query.Choice(*DB_TYPES),
    "status": query.Choice(*BackupStatus.values),
    "limit": query.Int(1, 1000),
    "offset": query.Int(0),
}
LIST_FILTERS = [
    OpenApiParameter("server_id", OpenApiTypes.INT),
    OpenApiParameter("db_type", OpenApiTypes.STR, enum=list(DB_TYPES)),
    OpenApiParameter("status", OpenApiTypes.STR, enum=BackupStatus.values),
]


class BackupViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PlatformViewSet):
    feature = capabilities.BACKUPS
    serializer_class = BackupSerializer
    queryset = Backup.objects.none()
    roles = {
        "list": Role.VIEWER,
        "retrieve": Role.VIEWER,
        "create": Role.OPERATOR,
        "download": Role.OPERATOR,
        "restore": Role.OPERATOR,
        "destroy": Role.ADMIN,
    }

    def tenant_queryset(self, tenant):
        if self.action == "list":  # a page reads plain columns of the backup and its storage
            return backup_selectors.backup_list(tenant=tenant, filters=self.request.query_params, related=()).values(
                *LIST_COLUMNS
            )
        return backup_selectors.backup_list(tenant=tenant)

    def get_object(self):
        pk = parse_id(self.kwargs["pk"])
        if pk is None:
            raise NotFound("Backup not found", code="BACKUP_NOT_FOUND")
        backup = self.get_queryset().filter(pk=pk).first()
        if backup is None:
            raise NotFound("Backup not found", code="BACKUP_NOT_FOUND")
        return backup

    @extend_schema(responses={200: BackupWithProgressSerializer})
    def retrieve(self, request, pk=None):
        return respond(BackupWithProgressSerializer(self.get_object()).data)

    @extend_schema(parameters=LIST_FILTERS)
    def list(self, request, *args, **kwargs):
        query.check_query(request, LIST_QUERY)
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(backup_list_rows(page))

    # The backup row exists when this answers: 201 (db-backup-platform.md lists 201, not 202).
    @extend_schema(request=BackupCreateSerializer, responses={201: BackupQueuedSerializer})
    def create(self, request):
        data = validated(BackupCreateSerializer, request.data)
        tenant = self.require_tenant()
        server = Server.objects.filter(tenant=tenant, pk=data["server_id"]).first()
        if server is None:
            raise NotFound("Server not found", code="SERVER_NOT_FOUND")
        if data.get("db_type") and data["db_type"] != server.type:
            raise ValidationFailed(details={"db_type": [f"The server is a {server.type} server."]})
        storage = None
        if "storage_id" in data:
            storage = Storage.objects.filter(tenant=tenant, pk=data["storage_id"]).first()
            if storage is None:
                raise NotFound("Storage not found", code="STORAGE_NOT_FOUND")
        op = backup_services.backup_start(
            tenant=tenant,
            actor=request.user,
            server=server,
            database_name=data["database_name"],
            storage=storage,
            compression=data["compression_type"] if data["compress"] else "none",
            encrypt=data["encrypt"],
            backup_type=data["backup_type"],
        )
        return respond(
            {"id": op.backup_id, "status": "pending", "message": "Backup job queued", "task_id": op.celery_task_id},
            status_code=201,
        )

    @extend_schema(request=None, responses={200: DownloadLinkSerializer})
    def download(self, request, pk=None):
        url, expires_at = backup_services.backup_download_link(backup=self.get_object(), request=request)
        return respond({"download_url": url, "expires_at": expires_at})

    # The restore row exists when this answers (GET /restores/{id} shows it): 201.
    @extend_schema(request=RestoreRequestSerializer, responses={201: RestoreQueuedSerializer})
    def restore(self, request, pk=None):
        backup = self.get_object()
        data = validated(RestoreRequestSerializer, request.data)
        tenant = backup.tenant
        target = None
        if data.get("target_server_id") is not None:
            target = Server.objects.filter(tenant=tenant, pk=data["target_server_id"]).first()
            if target is None:
                raise NotFound("Target server not found", code="SERVER_NOT_FOUND")
        rules = data.get("masking_rules") or {}
        if rules and not data["mask_sensitive_data"]:
            raise ValidationFailed(details={"mask_sensitive_data": ["Set to true to apply masking_rules."]})
        restore = restore_services.restore_start(
            tenant=tenant,
            backup=backup,
            actor=request.user,
            target_server=target,
            target_database=data["target_database"],
            strategy=data["restore_strategy"],
            masking_rules=rules if data["mask_sensitive_data"] else {},
            options={"jobs": data["jobs"]} if "jobs" in data else None,
        )
        return respond(
            {
                "task_id": restore.operation.celery_task_id,
                "restore_id": restore.pk,
                "status": "pending",
                "message": "Restore job queued",
                "status_url": f"/api/v1/restores/{restore.pk}",
                "warnings": restore_services.restore_warnings(restore),
            },
            status_code=201,
        )

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        backup_services.backup_delete(backup=self.get_object())
        return respond(status_code=204)


class RestoreViewSet(mixins.RetrieveModelMixin, PlatformViewSet):
    """``GET /api/v1/restores/{id}``: a restore's status and progress (viewers)."""

    feature = capabilities.BACKUPS

    serializer_class = RestoreStatusSerializer
    queryset = Restore.objects.none()
    roles = {"retrieve": Role.VIEWER}

    def tenant_queryset(self, tenant):
        return backup_selectors.restore_list(tenant=tenant)

    def get_object(self):
        pk = parse_id(self.kwargs["pk"])
        restore = self.get_queryset().filter(pk=pk).first() if pk is not None else None
        if restore is None:
            raise NotFound("Restore not found", code="RESTORE_NOT_FOUND")
        return restore


class SignedDownloadView(PlatformView):
    """Streams an artifact for an expiring signed link (storages without presigned URLs)."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    roles = {"GET": None}

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY}, auth=[])
    def get(self, request, token: str):
        backup = backup_services.backup_from_download_token(token)
        backend, reader = backup_services.backup_open_artifact(backup=backup)

        def chunks():
            try:
                while True:
                    piece = reader.read(1024 * 1024)
                    if not piece:
                        break
                    yield piece
            finally:
                reader.close()
                backend.close()

        response = StreamingHttpResponse(chunks(), content_type="application/octet-stream")
        filename = backup.storage_path.rsplit("/", 1)[-1]
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        if backup.stored_bytes:
            response["Content-Length"] = str(backup.stored_bytes)
        return response
