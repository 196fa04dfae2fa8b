"""Workspace facade: an application's backups and restores (workspace-backup-api.md "Backup
Operations", "Restore Operations"). The seed's Kubernetes words map onto our sources: an
application's artifact holds one member per source (databases, folders, configuration).

Statuses use the document's words: a backup or restore that is queued is ``running`` (the
document knows ``running``, ``completed`` and ``failed``), as the trigger's answer says."""

from __future__ import annotations

from datetime import timedelta

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers

from backupplatform import units
from backupplatform.errors import NotFound, ValidationFailed
from backupplatform.facades.base import respond
from backupplatform.facades.serializers import (
    InputSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictDictField,
    validated,
)
from backups import backup_selectors
from backups.models import Application, Backup, OperationStatus, Restore
from backups.services import restores as restore_services
from backups.services.downloads import ARCHIVE_FORMATS, backup_download_stream
from schedules.selectors import backup_retention_outlook
from tenants.models import Role

from . import ids
from .conventions import WorkspaceViewSet
from .ids import IdInput, PublicIdField
from .permissions import DedicatedPlanMixin

OVERWRITE_CONFIRMATION = "I understand this will overwrite existing data"


def human_duration(start, end) -> str | None:
    if not (start and end):
        return None
    seconds = int((end - start).total_seconds())
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h {m}m {s}s" if h else f"{m}m {s}s"


def size_gb(value: int) -> float:
    return units.gigabytes(value)


def workspace_status(status: str) -> str:
    """The document's status words: queued work is already ``running`` for the caller."""
    return "running" if status == OperationStatus.PENDING else status


def checksum(value: str) -> str | None:
    """Checksums as this API writes them: ``sha256:<hex>``."""
    return f"sha256:{value}" if value else None


class BackupListItemSerializer(serializers.ModelSerializer):
    id = PublicIdField("backup")
    application_id = PublicIdField("application", allow_null=True)
    storage_id = PublicIdField("storage", allow_null=True)
    status = serializers.SerializerMethodField()
    type = serializers.CharField(source="trigger")
    duration = serializers.SerializerMethodField()
    size_gb = serializers.SerializerMethodField()
    retention = serializers.SerializerMethodField()

    class Meta:
        model = Backup
        fields = [
            "id",
            "application_id",
            "storage_id",
            "status",
            "type",
            "started_at",
            "completed_at",
            "duration",
            "size_gb",
            "retention",
        ]

    def get_status(self, obj) -> str:
        return workspace_status(obj.status)

    def get_duration(self, obj) -> str | None:
        return human_duration(obj.started_at, obj.completed_at)

    def get_size_gb(self, obj) -> float:
        return size_gb(obj.stored_bytes)

    def get_retention(self, obj) -> dict:
        outlook = backup_retention_outlook(obj)
        return {
            "expires_at": serializers.DateTimeField().to_representation(outlook["expires_at"])
            if outlook["expires_at"]
            else None,
            "category": obj.retention_category or outlook["category"],
            "keep_forever": outlook["keep_forever"],
        }


class BackupDetailSerializer(BackupListItemSerializer):
    description = serializers.CharField()
    compression_ratio = serializers.SerializerMethodField()
    backup_path = serializers.CharField(source="storage_path")
    manifest = serializers.SerializerMethodField()
    verification = serializers.SerializerMethodField()
    error_message = serializers.CharField()

    class Meta(BackupListItemSerializer.Meta):
        fields = [
            *BackupListItemSerializer.Meta.fields,
            "description",
            "compression_ratio",
            "backup_path",
            "manifest",
            "verification",
            "error_message",
        ]

    def get_compression_ratio(self, obj) -> float | None:
        return round(obj.compressed_bytes / obj.size_bytes, 3) if obj.size_bytes else None

    def get_manifest(self, obj) -> dict:
        bundle = obj.manifest.get("bundle") or {}
        types = {s.get("member"): s.get("type") for s in bundle.get("sources") or []}
        members = bundle.get("members") or []
        return {
            "sources": len(members),
            "members": [
                {"name": m.get("name"), "size_gb": size_gb(m.get("size", 0)), "type": types.get(m.get("name"))}
                for m in members
            ],
        }

    def get_verification(self, obj) -> dict:
        return {"verified": obj.verified, "verified_at": obj.verified_at, "checksum": checksum(obj.checksum)}


# The kinds of what a restore brings back, by the type of each source (the document's
# "deployments", "services"... are Kubernetes resources; ours are these).
RESOURCE_KINDS = {"database": "databases", "folder": "folders", "file": "files", "configuration": "configuration"}


def restored_resources(restore: Restore, *, detail: bool) -> dict:
    """What a restore brought back: counts per kind (a list's rows), or per kind the items
    with their names (``detail``). Never the artifact's manifest."""
    result = restore.result or {}
    members = (result.get("restore") or {}).get("members") or {}
    done_status = "overwritten" if restore.strategy == "overwrite" else "created"
    out: dict = {}
    for member, target in (result.get("targets") or {}).items():
        kind = RESOURCE_KINDS.get(target.get("type"), "other")
        restored = bool((members.get(member) or {}).get("restored"))
        if detail:
            out.setdefault(kind, []).append(
                {
                    "name": target.get("name"),
                    "original_name": target.get("original_name"),
                    "status": done_status if restored else ("failed" if restore.status == "failed" else "pending"),
                }
            )
        elif restored:
            out[kind] = out.get(kind, 0) + 1
    return out


class AppRestoreSerializer(serializers.ModelSerializer):
    """A restore as "List Backup Restores" shows it (``restored_resources`` are counts)."""

    id = PublicIdField("restore")
    backup_id = PublicIdField("backup", allow_null=True)
    application_id = PublicIdField("application", allow_null=True)
    target_application = PublicIdField("application", source="target_application_id", allow_null=True)
    status = serializers.SerializerMethodField()
    duration = serializers.SerializerMethodField()
    restored_resources = serializers.SerializerMethodField()
    error_message = serializers.CharField()

    class Meta:
        model = Restore
        fields = [
            "id",
            "backup_id",
            "application_id",
            "target_application",
            "status",
            "started_at",
            "completed_at",
            "duration",
            "restored_resources",
            "error_message",
        ]

    def get_status(self, obj) -> str:
        return workspace_status(obj.status)

    def get_duration(self, obj) -> str | None:
        return human_duration(obj.started_at, obj.completed_at)

    def get_restored_resources(self, obj) -> dict:
        return restored_resources(obj, detail=False)


class AppRestoreDetailSerializer(AppRestoreSerializer):
    """ "Get Backup Restore": also the options, each restored item, and the verification (every
    member's SHA-256 was checked against the backup's manifest as it was restored)."""

    restore_options = serializers.SerializerMethodField()
    verification = serializers.SerializerMethodField()

    class Meta(AppRestoreSerializer.Meta):
        fields = [*AppRestoreSerializer.Meta.fields, "restore_options", "verification"]

    def get_restore_options(self, obj) -> dict:
        return {**(obj.options or {}), "restore_strategy": obj.strategy}

    def get_restored_resources(self, obj) -> dict:
        return restored_resources(obj, detail=True)

    def get_verification(self, obj) -> dict:
        verified = obj.status == OperationStatus.COMPLETED
        return {
            "verified": verified,
            "verified_at": obj.completed_at if verified else None,
            "health_check_passed": verified,
            "checksums": "sha256 of every member matched the manifest" if verified else None,
        }


class AppRestoreOptionsSerializer(InputSerializer):
    include_volumes = StrictBooleanField(required=False)
    include_configmaps = StrictBooleanField(required=False)
    include_secrets = StrictBooleanField(required=False)
    restore_strategy = serializers.ChoiceField(choices=["create_new", "overwrite", "merge"], default="create_new")


class AppRestoreRequestSerializer(InputSerializer):
    target_application = IdInput("application", required=False, allow_null=True)
    namespace_mapping = StrictDictField(required=False, child=serializers.CharField())
    restore_options = AppRestoreOptionsSerializer(required=False)
    target_path = StrictCharField(required=False, max_length=1024)
    confirmation = StrictCharField(required=False, allow_blank=True, max_length=200)


# Response shapes for the OpenAPI schema (the views build these bodies).
ManifestShape = inline_serializer(
    "BackupManifest",
    {
        "backup_id": serializers.CharField(),
        "created_at": serializers.DateTimeField(),
        "version": serializers.CharField(),
        "application": inline_serializer(
            "BackupManifestApplication",
            {
                "id": serializers.CharField(allow_null=True),
                "name": serializers.CharField(allow_null=True),
                "namespace": serializers.CharField(allow_null=True),
            },
        ),
        "resources": inline_serializer(
            "BackupManifestResources",
            {
                "sources": serializers.ListField(child=serializers.DictField()),
                "members": serializers.ListField(
                    child=inline_serializer(
                        "BackupManifestMember",
                        {
                            "name": serializers.CharField(allow_null=True),
                            "size": serializers.IntegerField(allow_null=True),
                            "checksum": serializers.CharField(allow_null=True),
                        },
                    )
                ),
            },
        ),
        "metadata": inline_serializer(
            "BackupManifestMetadata",
            {
                "backup_tool_version": serializers.CharField(),
                "compression": serializers.CharField(),
                "encryption": serializers.CharField(allow_null=True),
                "format": serializers.CharField(allow_null=True),
                "checksum": serializers.CharField(allow_null=True),
                "stored_bytes": serializers.IntegerField(),
                "raw_bytes": serializers.IntegerField(),
            },
        ),
    },
)
RestoreStartedShape = inline_serializer(
    "ApplicationRestoreStarted",
    {
        "restore_id": serializers.CharField(),
        "backup_id": serializers.CharField(),
        "target_application": serializers.CharField(allow_null=True),
        "status": serializers.CharField(),
        "started_at": serializers.DateTimeField(),
        "estimated_completion": serializers.DateTimeField(allow_null=True),
    },
)


# ``?status=`` of the lists: the document's words, "running" covering queued work too.
LIST_STATUSES = {
    "running": ("pending", "running"),
    "completed": ("completed",),
    "failed": ("failed",),
    "cancelled": ("cancelled",),
}


class AppBackupsBase(DedicatedPlanMixin, WorkspaceViewSet):
    """Resolves ``app_id`` inside the workspace (another workspace's application is a 404)."""

    def application(self) -> Application:
        pk = ids.parse("application", self.kwargs.get("app_id"))
        app = Application.objects.filter(tenant=self.require_tenant(), pk=pk).first() if pk is not None else None
        if app is None:
            raise NotFound("Application not found", code="APPLICATION_NOT_FOUND")
        return app


class ApplicationBackupViewSet(mixins.ListModelMixin, AppBackupsBase):
    serializer_class = BackupListItemSerializer
    queryset = Backup.objects.none()
    roles = {
        "list": Role.VIEWER,
        "latest": Role.VIEWER,
        "retrieve": Role.VIEWER,
        "manifest": Role.VIEWER,
        "download": Role.OPERATOR,
        "restore": Role.OPERATOR,
    }

    def tenant_queryset(self, tenant):
        status = self.request.query_params.get("status") or None
        if status not in (None, *LIST_STATUSES):
            raise ValidationFailed(
                details={"status": [f"Must be one of: {', '.join(LIST_STATUSES)}."]}, location="query"
            )
        qs = backup_selectors.backup_list(tenant=tenant, filters={"since": self.request.query_params.get("since")})
        qs = qs.select_related("job", "job__retention_policy")
        if status is not None:
            qs = qs.filter(status__in=LIST_STATUSES[status])
        return qs.filter(application=self.application())

    def backup(self) -> Backup:
        pk = ids.parse("backup", self.kwargs.get("backup_id"))
        backup = None
        if pk is not None:
            backup = (
                backup_selectors.backup_list(tenant=self.require_tenant())
                .filter(application=self.application(), pk=pk)
                .first()
            )
        if backup is None:
            raise NotFound("Backup not found", code="BACKUP_NOT_FOUND")
        return backup

    @extend_schema(
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=list(LIST_STATUSES)),
            OpenApiParameter("since", OpenApiTypes.STR, description="e.g. 24h, 7d"),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(responses={200: BackupDetailSerializer})
    def latest(self, request, ws_id=None, app_id=None):
        backup = self.get_queryset().first()
        if backup is None:
            raise NotFound("This application has no backups yet", code="BACKUP_NOT_FOUND")
        return respond(BackupDetailSerializer(backup).data)

    @extend_schema(responses={200: BackupDetailSerializer})
    def retrieve(self, request, ws_id=None, app_id=None, backup_id=None):
        return respond(BackupDetailSerializer(self.backup()).data)

    @extend_schema(responses={200: ManifestShape})
    def manifest(self, request, ws_id=None, app_id=None, backup_id=None):
        backup = self.backup()
        app = backup.application
        source = backup.manifest.get("source") or {}
        bundle = backup.manifest.get("bundle") or {}
        return respond(
            {
                "backup_id": backup.pk,
                "created_at": backup.created_at,
                "version": backup.manifest.get("version", "v1"),
                "application": {
                    "id": ids.public("application", app.pk) if app else None,
                    "name": app.name if app else None,
                    "namespace": app.namespace if app else None,
                },
                "resources": {
                    "sources": bundle.get("sources", []),
                    "members": [
                        {"name": m.get("name"), "size": m.get("size"), "checksum": checksum(m.get("sha256"))}
                        for m in bundle.get("members", [])
                    ],
                },
                "metadata": {
                    "backup_tool_version": source.get("tool_version") or "backupplatform 1.0",
                    "compression": backup.compression,
                    "encryption": "AES-256-GCM" if backup.encrypted else None,
                    "format": backup.manifest.get("format"),
                    "checksum": checksum(backup.checksum),
                    "stored_bytes": backup.stored_bytes,
                    "raw_bytes": backup.size_bytes,
                },
            }
        )

    @extend_schema(
        parameters=[OpenApiParameter("format", OpenApiTypes.STR, enum=["tar.gz", "zip"])],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
    )
    def download(self, request, ws_id=None, app_id=None, backup_id=None):
        """The backup's content (decrypted) as tar.gz or zip, streamed: never whole in memory."""
        fmt = request.query_params.get("format", "tar.gz")
        if fmt not in ARCHIVE_FORMATS:
            raise ValidationFailed(details={"format": ["Use 'tar.gz' or 'zip'."]})
        download = backup_download_stream(backup=self.backup(), archive=fmt)
        response = StreamingHttpResponse(download.chunks, content_type=download.content_type)
        response["Content-Disposition"] = f'attachment; filename="{download.filename}"'
        if download.size:
            response["Content-Length"] = str(download.size)
        return response

    @extend_schema(request=AppRestoreRequestSerializer, responses={202: RestoreStartedShape})
    def restore(self, request, ws_id=None, app_id=None, backup_id=None):
        backup = self.backup()
        data = validated(AppRestoreRequestSerializer, request.data)
        options = dict(data.get("restore_options") or {})
        strategy = options.pop("restore_strategy", "create_new")
        if strategy == "merge":
            raise ValidationFailed(
                details={
                    "restore_options.restore_strategy": [
                        "merge is not supported for database and file sources; use create_new or overwrite."
                    ]
                }
            )
        if strategy == "overwrite" and data.get("confirmation") != OVERWRITE_CONFIRMATION:
            raise ValidationFailed(
                details={"confirmation": [f"Overwriting needs the confirmation text: '{OVERWRITE_CONFIRMATION}'."]}
            )
        target = None
        if data.get("target_application") is not None:
            target = Application.objects.filter(tenant=backup.tenant, pk=data["target_application"]).first()
            if target is None:
                raise NotFound("Target application not found", code="APPLICATION_NOT_FOUND")
        restore = restore_services.restore_start(
            tenant=backup.tenant,
            backup=backup,
            actor=request.user,
            target_application=target,
            target_path=data.get("target_path", ""),
            strategy=strategy,
            options={**options, "namespace_mapping": data.get("namespace_mapping") or {}},
        )
        estimate = None
        if backup.started_at and backup.completed_at:
            estimate = restore.created_at + (backup.completed_at - backup.started_at) + timedelta(seconds=30)
        return respond(
            {
                "restore_id": restore.pk,
                "backup_id": backup.pk,
                "target_application": restore.target_application_id,
                "status": "running",
                "started_at": restore.created_at,
                "estimated_completion": estimate,
            },
            status_code=202,
        )


class ApplicationRestoreViewSet(mixins.ListModelMixin, AppBackupsBase):
    serializer_class = AppRestoreSerializer
    queryset = Restore.objects.none()
    roles = {"list": Role.VIEWER, "retrieve": Role.VIEWER}

    def tenant_queryset(self, tenant):
        status = self.request.query_params.get("status") or None
        if status not in (None, *LIST_STATUSES):
            raise ValidationFailed(
                details={"status": [f"Must be one of: {', '.join(LIST_STATUSES)}."]}, location="query"
            )
        qs = backup_selectors.restore_list(tenant=tenant, application_id=self.application().pk)
        return qs.filter(status__in=LIST_STATUSES[status]) if status else qs

    @extend_schema(parameters=[OpenApiParameter("status", OpenApiTypes.STR, enum=list(LIST_STATUSES))])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(responses={200: AppRestoreDetailSerializer})
    def retrieve(self, request, ws_id=None, app_id=None, restore_id=None):
        pk = ids.parse("restore", restore_id)
        restore = self.get_queryset().filter(pk=pk).first() if pk is not None else None
        if restore is None:
            raise NotFound("Restore not found", code="RESTORE_NOT_FOUND")
        return respond(AppRestoreDetailSerializer(restore).data)
