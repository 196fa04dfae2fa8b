"""Workspace facade: an application's backups and restores (workspace-backup-api.md "Backup
Operations", "Restore Operations"). The seed's Kubernetes words map onto our sources: an
application's artifact holds one member per source (databases, folders, configuration)."""

from __future__ import annotations

import zlib
from datetime import timedelta

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers

from audit.services import emit
from backupplatform.errors import NotFound, ValidationFailed
from backupplatform.facades.base import respond
from backupplatform.facades.serializers import (
    InputSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictDictField,
    validated,
)
from backupplatform.ids import is_id, parse_id
from backups import backup_selectors
from backups.keys import key_for_id
from backups.models import Application, Backup, Restore
from backups.pipeline import restore_stream
from backups.services import backups as backup_services
from backups.services import restores as restore_services
from tenants.models import Role

from .conventions import WorkspaceViewSet
from .permissions import DedicatedPlanMixin

GB = 1024 ** 3
OVERWRITE_CONFIRMATION = "I understand this will overwrite existing data"


def human_duration(start, end) -> str | None:
    if not (start and end):
        return None
    seconds = int((end - start).total_seconds())
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h {m}m {s}s" if h else f"{m}m {s}s"


def size_gb(value: int) -> float:
    return round((value or 0) / GB, 3)


class BackupListItemSerializer(serializers.ModelSerializer):
    application_id = serializers.IntegerField(allow_null=True)
    storage_id = serializers.IntegerField(allow_null=True)
    type = serializers.CharField(source="trigger")
    duration = serializers.SerializerMethodField()
    size_gb = serializers.SerializerMethodField()
    retention = serializers.SerializerMethodField()

    class Meta:
        model = Backup
        fields = ["id", "application_id", "storage_id", "status", "type", "started_at", "completed_at", "duration",
                  "size_gb", "retention"]

    def get_duration(self, obj) -> str | None:
        return human_duration(obj.started_at, obj.completed_at)

    def get_size_gb(self, obj) -> float:
        return size_gb(obj.stored_bytes)

    def get_retention(self, obj) -> dict:
        return {"expires_at": obj.keep_until, "category": obj.retention_category or obj.trigger,
                "keep_forever": obj.keep_forever}


class BackupDetailSerializer(BackupListItemSerializer):
    description = serializers.CharField()
    compression_ratio = serializers.SerializerMethodField()
    backup_path = serializers.CharField(source="storage_path")
    manifest = serializers.SerializerMethodField()
    verification = serializers.SerializerMethodField()
    error_message = serializers.CharField()

    class Meta(BackupListItemSerializer.Meta):
        fields = [*BackupListItemSerializer.Meta.fields, "description", "compression_ratio", "backup_path",
                  "manifest", "verification", "error_message"]

    def get_compression_ratio(self, obj) -> float | None:
        return round(obj.compressed_bytes / obj.size_bytes, 3) if obj.size_bytes else None

    def get_manifest(self, obj) -> dict:
        bundle = obj.manifest.get("bundle") or {}
        types = {s.get("member"): s.get("type") for s in bundle.get("sources") or []}
        members = bundle.get("members") or []
        return {"sources": len(members),
                "members": [{"name": m.get("name"), "size_gb": size_gb(m.get("size", 0)),
                             "type": types.get(m.get("name"))} for m in members]}

    def get_verification(self, obj) -> dict:
        return {"verified": obj.verified, "verified_at": obj.verified_at,
                "checksum": f"sha256:{obj.checksum}" if obj.checksum else None}


class AppRestoreSerializer(serializers.ModelSerializer):
    backup_id = serializers.IntegerField(allow_null=True)
    application_id = serializers.IntegerField(allow_null=True)
    target_application = serializers.IntegerField(source="target_application_id", allow_null=True)
    duration = serializers.SerializerMethodField()
    restore_options = serializers.SerializerMethodField()
    restored_resources = serializers.SerializerMethodField()
    error_message = serializers.CharField()

    class Meta:
        model = Restore
        fields = ["id", "backup_id", "application_id", "target_application", "status", "started_at", "completed_at",
                  "duration", "restore_options", "restored_resources", "error_message"]

    def get_duration(self, obj) -> str | None:
        return human_duration(obj.started_at, obj.completed_at)

    def get_restore_options(self, obj) -> dict:
        return {**(obj.options or {}), "restore_strategy": obj.strategy}

    def get_restored_resources(self, obj) -> dict:
        return (obj.result or {}).get("restore") or {}


class AppRestoreOptionsSerializer(InputSerializer):
    include_volumes = StrictBooleanField(required=False)
    include_configmaps = StrictBooleanField(required=False)
    include_secrets = StrictBooleanField(required=False)
    restore_strategy = serializers.ChoiceField(choices=["create_new", "overwrite", "merge"], default="create_new")


class AppRestoreRequestSerializer(InputSerializer):
    target_application = serializers.JSONField(required=False)
    namespace_mapping = StrictDictField(required=False, child=serializers.CharField())
    restore_options = AppRestoreOptionsSerializer(required=False)
    target_path = StrictCharField(required=False, max_length=1024)
    confirmation = StrictCharField(required=False, allow_blank=True, max_length=200)


# Response shapes for the OpenAPI schema (the views build these bodies).
ManifestShape = inline_serializer("BackupManifest", {
    "backup_id": serializers.IntegerField(), "created_at": serializers.DateTimeField(),
    "version": serializers.CharField(),
    "application": inline_serializer("BackupManifestApplication", {
        "id": serializers.IntegerField(allow_null=True), "name": serializers.CharField(allow_null=True),
        "namespace": serializers.CharField(allow_null=True)}),
    "resources": inline_serializer("BackupManifestResources", {
        "sources": serializers.ListField(child=serializers.DictField()),
        "members": serializers.ListField(child=inline_serializer("BackupManifestMember", {
            "name": serializers.CharField(allow_null=True), "size": serializers.IntegerField(allow_null=True),
            "sha256": serializers.CharField(allow_null=True)}))}),
    "metadata": inline_serializer("BackupManifestMetadata", {
        "backup_tool_version": serializers.CharField(), "compression": serializers.CharField(),
        "encryption": serializers.CharField(allow_null=True), "format": serializers.CharField(allow_null=True),
        "sha256": serializers.CharField(), "stored_bytes": serializers.IntegerField(),
        "raw_bytes": serializers.IntegerField()}),
})
RestoreStartedShape = inline_serializer("ApplicationRestoreStarted", {
    "restore_id": serializers.IntegerField(), "backup_id": serializers.IntegerField(),
    "target_application": serializers.IntegerField(allow_null=True), "status": serializers.CharField(),
    "started_at": serializers.DateTimeField(), "estimated_completion": serializers.DateTimeField(allow_null=True)})


class AppBackupsBase(DedicatedPlanMixin, WorkspaceViewSet):
    """Resolves ``app_id`` inside the workspace (another workspace's application is a 404)."""

    def application(self) -> Application:
        app_id = self.kwargs.get("app_id")
        app = None
        if is_id(app_id):
            app = Application.objects.filter(tenant=self.require_tenant(), pk=parse_id(app_id)).first()
        if app is None:
            raise NotFound("Application not found", code="APPLICATION_NOT_FOUND")
        return app


class ApplicationBackupViewSet(mixins.ListModelMixin, AppBackupsBase):
    serializer_class = BackupListItemSerializer
    queryset = Backup.objects.none()
    roles = {"list": Role.VIEWER, "latest": Role.VIEWER, "retrieve": Role.VIEWER, "manifest": Role.VIEWER,
             "download": Role.OPERATOR, "restore": Role.OPERATOR}

    def tenant_queryset(self, tenant):
        filters = {"status": self.request.query_params.get("status"), "since": self.request.query_params.get("since")}
        return backup_selectors.backup_list(tenant=tenant, filters=filters).filter(
            application=self.application())

    def backup(self) -> Backup:
        backup_id = self.kwargs.get("backup_id")
        backup = None
        if is_id(backup_id):
            backup = backup_selectors.backup_list(tenant=self.require_tenant()).filter(
                application=self.application(), pk=parse_id(backup_id)).first()
        if backup is None:
            raise NotFound("Backup not found", code="BACKUP_NOT_FOUND")
        return backup

    @extend_schema(parameters=[OpenApiParameter("status", OpenApiTypes.STR, enum=["completed", "failed", "running"]),
                               OpenApiParameter("since", OpenApiTypes.STR, description="e.g. 24h, 7d")])
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
        return respond({
            "backup_id": backup.pk,
            "created_at": backup.created_at,
            "version": backup.manifest.get("version", "v1"),
            "application": {"id": app.pk if app else None, "name": app.name if app else None,
                            "namespace": app.namespace if app else None},
            "resources": {"sources": bundle.get("sources", []),
                          "members": [{k: m.get(k) for k in ("name", "size", "sha256")}
                                      for m in bundle.get("members", [])]},
            "metadata": {"backup_tool_version": source.get("tool_version") or "backupplatform 1.0",
                         "compression": backup.compression, "encryption": "AES-256-GCM" if backup.encrypted else None,
                         "format": backup.manifest.get("format"), "sha256": backup.checksum,
                         "stored_bytes": backup.stored_bytes, "raw_bytes": backup.size_bytes},
        })

    @extend_schema(parameters=[OpenApiParameter("format", OpenApiTypes.STR, enum=["tar.gz", "zip"])],
                   responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def download(self, request, ws_id=None, app_id=None, backup_id=None):
        """The backup's content (decrypted) as tar.gz or zip, streamed: never whole in memory."""
        fmt = request.query_params.get("format", "tar.gz")
        if fmt not in ("tar.gz", "zip"):
            raise ValidationFailed(details={"format": ["Use 'tar.gz' or 'zip'."]})
        backup = self.backup()
        key = key_for_id(backup.tenant, backup.key_id)
        backend, reader = backup_services.backup_open_artifact(backup=backup)
        emit(action="backup_download", tenant=backup.tenant, resource_type="backup",
                             resource_id=backup.pk, details={"format": fmt})
        body = _gzip_stream(restore_stream(reader, key)) if fmt == "tar.gz" else _zip_stream(restore_stream(reader, key))

        def closing():
            try:
                yield from body
            finally:
                reader.close()
                backend.close()

        response = StreamingHttpResponse(closing(), content_type="application/octet-stream")
        response["Content-Disposition"] = f'attachment; filename="backup-{backup.pk}.{fmt}"'
        return response

    @extend_schema(request=AppRestoreRequestSerializer, responses={202: RestoreStartedShape})
    def restore(self, request, ws_id=None, app_id=None, backup_id=None):
        backup = self.backup()
        data = validated(AppRestoreRequestSerializer, request.data)
        options = dict(data.get("restore_options") or {})
        strategy = options.pop("restore_strategy", "create_new")
        if strategy == "merge":
            raise ValidationFailed(details={"restore_options.restore_strategy": [
                "merge is not supported for database and file sources; use create_new or overwrite."]})
        if strategy == "overwrite" and data.get("confirmation") != OVERWRITE_CONFIRMATION:
            raise ValidationFailed(details={"confirmation": [
                f"Overwriting needs the confirmation text: '{OVERWRITE_CONFIRMATION}'."]})
        target = None
        raw_target = data.get("target_application")
        if raw_target not in (None, ""):
            if not is_id(raw_target):
                raise ValidationFailed(details={"target_application": ["An application id of this workspace."]})
            target = Application.objects.filter(tenant=backup.tenant, pk=parse_id(raw_target)).first()
            if target is None:
                raise NotFound("Target application not found", code="APPLICATION_NOT_FOUND")
        restore = restore_services.restore_start(
            tenant=backup.tenant, backup=backup, actor=request.user, target_application=target,
            target_path=data.get("target_path", ""), strategy=strategy,
            options={**options, "namespace_mapping": data.get("namespace_mapping") or {}})
        estimate = None
        if backup.started_at and backup.completed_at:
            estimate = restore.created_at + (backup.completed_at - backup.started_at) + timedelta(seconds=30)
        return respond({"restore_id": restore.pk, "backup_id": backup.pk,
                        "target_application": restore.target_application_id, "status": "running",
                        "started_at": restore.created_at, "estimated_completion": estimate}, status_code=202)


class ApplicationRestoreViewSet(mixins.ListModelMixin, AppBackupsBase):
    serializer_class = AppRestoreSerializer
    queryset = Restore.objects.none()
    roles = {"list": Role.VIEWER, "retrieve": Role.VIEWER}

    def tenant_queryset(self, tenant):
        return backup_selectors.restore_list(tenant=tenant, application_id=self.application().pk,
                                             status=self.request.query_params.get("status") or None)

    @extend_schema(responses={200: AppRestoreSerializer})
    def retrieve(self, request, ws_id=None, app_id=None, restore_id=None):
        restore = None
        if is_id(restore_id):
            restore = self.get_queryset().filter(pk=parse_id(restore_id)).first()
        if restore is None:
            raise NotFound("Restore not found", code="RESTORE_NOT_FOUND")
        return respond(AppRestoreSerializer(restore).data)


def _gzip_stream(pieces):
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    for piece in pieces:
        out = compressor.compress(piece)
        if out:
            yield out
    yield compressor.flush()


class _Spool:
    """A write-only file whose writes are drained by a generator (for streaming zip)."""

    def __init__(self):
        self.parts: list[bytes] = []
        self.pos = 0

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        self.pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self.pos

    def flush(self) -> None:
        pass

    def drain(self):
        parts, self.parts = self.parts, []
        return parts


def _zip_stream(pieces):
    """Re-pack the artifact's tar as a zip, member by member, without seeking."""
    import tarfile
    import zipfile

    from backups.engines.base import IterReader

    spool = _Spool()
    with tarfile.open(fileobj=IterReader(pieces), mode="r|") as tar, \
            zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for member in tar:
            if not member.isfile():
                continue
            source = tar.extractfile(member)
            info = zipfile.ZipInfo(member.name)
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as target:
                while True:
                    block = source.read(1024 * 1024)
                    if not block:
                        break
                    target.write(block)
                    yield from spool.drain()
            yield from spool.drain()
    yield from spool.drain()
