"""system-backup-recovery.rst "Backup Management (SECTION 1)": list, create, download,
delete of the tenant's backups (details: ``backup_details``).

The console's "components" are the sources of the tenant's default application
(``backups.services.application_get_default``), named by their component (system, data,
config, database); ``create`` backs them up (all, or the chosen ones) into one artifact.
Where a backup is kept comes from ``backups.backup_selectors.backup_locations``, which the
list, details and delete all read.
"""

from __future__ import annotations

from typing import Any

from django.http import StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers

from backupplatform import humanize
from backupplatform.errors import NotFound, ValidationFailed
from backupplatform.facades.base import respond
from backupplatform.facades.schema import FACADE_ERROR
from backupplatform.facades.serializers import (
    InputSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    validated,
)
from backupplatform.ids import parse_id
from backupplatform.isotime import utc_iso as iso
from backups import backup_selectors as selectors
from backups.backup_selectors import BackupLocation
from backups.models import Backup, BackupTrigger
from backups.models.applications import Component
from backups.services import application_get_default
from backups.services import backups as backup_services
from backups.services.downloads import backup_download_stream, backup_filename
from backups.services.storages import storage_resolve
from schedules.status import storage_usages
from tenants.models import Role

from .conventions import ConsolePagination, ConsoleView

TYPE_LABELS = {"full": "Full System", "config": "Configuration", "pre-ota": "Pre-update"}
LOCATION_TYPES = {"local": "local", "sftp": "remote"}  # everything else is an object store: "cloud"
COMPONENTS = [c.value for c in Component]


def location_type(storage) -> str | None:
    return None if storage is None else LOCATION_TYPES.get(storage.type, "cloud")


def backup_or_404(tenant, backup_id: Any) -> Backup:
    pk = parse_id(backup_id)
    backup = selectors.backup_table(tenant=tenant).filter(pk=pk).first() if pk is not None else None
    if backup is None:
        raise NotFound("Backup not found", code="BACKUP_NOT_FOUND", details={"backup_id": str(backup_id)[:64]})
    return backup


def backup_components(backup: Backup) -> list[str]:
    """The components in a backup: those asked for, else those of its sources."""
    if backup.components:
        return list(backup.components)
    sources = ((backup.manifest or {}).get("bundle") or {}).get("sources") or []
    found = [s.get("component") for s in sources if s.get("component")]
    if found:
        return sorted(set(found), key=found.index)
    return ["database"] if backup.server_id else []


def summary(backup: Backup, kind: str, loc_type: str | None) -> str:
    parts = [TYPE_LABELS[kind], "Encrypted" if backup.encrypted else "Not encrypted"]
    if loc_type:
        parts.append(loc_type.capitalize())
    return " • ".join(parts)


def backup_row(backup: Backup, locations: list[BackupLocation]) -> dict:
    """One row of the backup table (the seed's ``backups[]``)."""
    kind = selectors.backup_console_type(backup)
    storage = locations[0].storage if locations else backup.storage
    loc_type = location_type(storage)
    return {
        "id": backup.pk,
        "name": backup.name,
        "filename": backup_filename(backup),
        "type": TYPE_LABELS[kind],
        "type_code": kind,
        "status": backup.status,
        "created_at": iso(backup.created_at),
        "completed_at": iso(backup.completed_at),
        "size": backup.size_bytes,
        "size_display": humanize.size(backup.size_bytes),
        "stored_bytes": backup.stored_bytes,
        "stored_size": humanize.size(backup.stored_bytes),
        "duration": humanize.clock(backup.duration_seconds),
        "duration_seconds": backup.duration_seconds,
        "checksum": backup.checksum or None,
        "location": storage.name if storage is not None else None,
        "location_type": loc_type,
        "locations": [loc.storage.name for loc in locations],
        "encrypted": backup.encrypted,
        "integrity": selectors.backup_integrity(backup),
        "description": backup.description or summary(backup, kind, loc_type),
        "summary": summary(backup, kind, loc_type),
        "components": backup_components(backup),
        "trigger": backup.trigger,
        "schedule_id": backup.job.public_id if backup.job_id else None,
        "error": backup.error_message or None,
    }


# --- list -------------------------------------------------------------------------------------


class ListQuerySerializer(InputSerializer):
    type = serializers.ChoiceField(choices=list(selectors.CONSOLE_TYPES), required=False)
    date_from = serializers.DateField(input_formats=["%Y-%m-%d"], required=False)
    date_to = serializers.DateField(input_formats=["%Y-%m-%d"], required=False)

    def to_internal_value(self, data: Any) -> Any:
        # Query strings: only the filters are read (clients add cache busters and the like).
        return super().to_internal_value({k: v for k, v in data.items() if k in self.fields})

    def validate(self, attrs: dict) -> dict:
        if attrs.get("date_from") and attrs.get("date_to") and attrs["date_from"] > attrs["date_to"]:
            raise serializers.ValidationError({"date_to": ["Must not be before date_from."]})
        return attrs


NULLABLE = {"allow_null": True}
BackupRowShape = inline_serializer(
    "ConsoleBackupRow",
    {
        "id": serializers.IntegerField(),
        "name": serializers.CharField(),
        "filename": serializers.CharField(),
        "type": serializers.CharField(help_text='"Full System", "Configuration" or "Pre-update"'),
        "type_code": serializers.CharField(help_text="one of: " + ", ".join(list(selectors.CONSOLE_TYPES))),
        "status": serializers.CharField(),
        "created_at": serializers.CharField(),
        "completed_at": serializers.CharField(**NULLABLE),
        "size": serializers.IntegerField(help_text="bytes backed up (before compression)"),
        "size_display": serializers.CharField(help_text='e.g. "220 MB"'),
        "stored_bytes": serializers.IntegerField(help_text="bytes of the stored artifact"),
        "stored_size": serializers.CharField(),
        "duration": serializers.CharField(**NULLABLE, help_text='"00:05:15"'),
        "duration_seconds": serializers.IntegerField(**NULLABLE),
        "checksum": serializers.CharField(**NULLABLE),
        "location": serializers.CharField(**NULLABLE),
        "location_type": serializers.CharField(**NULLABLE),
        "locations": serializers.ListField(child=serializers.CharField()),
        "encrypted": serializers.BooleanField(),
        "integrity": serializers.CharField(help_text="verified, unverified, failed, or the backup's status"),
        "description": serializers.CharField(),
        "summary": serializers.CharField(),
        "components": serializers.ListField(child=serializers.CharField()),
        "trigger": serializers.CharField(),
        "schedule_id": serializers.CharField(**NULLABLE),
        "error": serializers.CharField(**NULLABLE),
    },
)
BackupListShape = inline_serializer(
    "ConsoleBackupList",
    {
        "backups": serializers.ListField(child=BackupRowShape),
        "total": serializers.IntegerField(),
        "limit": serializers.IntegerField(),
        "storage_used": serializers.CharField(),
        "storage_used_bytes": serializers.IntegerField(),
        "storage_available": serializers.CharField(**NULLABLE),
        "storage_available_bytes": serializers.IntegerField(**NULLABLE),
    },
)


class BackupListView(ConsoleView):
    """The backup table (viewers): newest first, ``limit`` rows (default 50, at most 1000)."""

    roles = {"GET": Role.VIEWER}

    @extend_schema(
        operation_id="console_backups_list",
        responses={200: BackupListShape},
        parameters=[
            OpenApiParameter("type", OpenApiTypes.STR, enum=list(selectors.CONSOLE_TYPES)),
            OpenApiParameter("date_from", OpenApiTypes.DATE),
            OpenApiParameter("date_to", OpenApiTypes.DATE),
            OpenApiParameter("limit", OpenApiTypes.INT, description="default 50, at most 1000"),
        ],
    )
    def get(self, request):
        tenant = self.require_tenant()
        filters = validated(ListQuerySerializer, request.query_params)
        paginator = ConsolePagination()
        page = paginator.paginate_queryset(selectors.backup_table(tenant=tenant, **filters), request, view=self)
        locations = selectors.backup_locations_map(backups=page)
        usages = storage_usages(tenant=tenant)
        used = sum(u.used_bytes for u in usages)
        usage = next((u for u in usages if u.storage.is_default), usages[0] if usages else None)
        available = usage.available_bytes if usage is not None else None
        return respond(
            {
                "backups": [backup_row(b, locations[b.pk]) for b in page],
                "total": paginator.total,
                "limit": paginator.limit,
                "storage_used": humanize.size(used),
                "storage_used_bytes": used,
                "storage_available": humanize.size(available),
                "storage_available_bytes": available,
            }
        )


# --- create -----------------------------------------------------------------------------------


class ConsoleBackupCreateSerializer(InputSerializer):
    name = StrictCharField(required=False, allow_blank=True, max_length=200)
    type = serializers.ChoiceField(
        choices=["full", "config"],
        required=False,
        default="full",
        help_text="config backs up the config component alone",
    )
    components = serializers.ListField(
        child=serializers.ChoiceField(choices=COMPONENTS), required=False, allow_empty=False, max_length=len(COMPONENTS)
    )
    destination = StrictCharField(required=False, max_length=200, help_text="a storage's name or type")
    encrypt = StrictBooleanField(required=False, default=True)
    compression = serializers.ChoiceField(choices=list(backup_services.COMPRESSIONS), required=False, default="zstd")
    verify_integrity = StrictBooleanField(required=False, default=False)
    description = StrictCharField(required=False, allow_blank=True, max_length=2000)

    def validate_encrypt(self, value: bool) -> bool:
        if not value:
            raise serializers.ValidationError("Backups are always encrypted (AES-256-GCM).")
        return value


BackupStartedShape = inline_serializer(
    "ConsoleBackupStarted",
    {
        "status": serializers.CharField(help_text="one of: " + ", ".join(["started"])),
        "backup_id": serializers.IntegerField(),
        "job_id": serializers.CharField(),
        "name": serializers.CharField(),
        "components": serializers.ListField(child=serializers.CharField()),
        "destination": serializers.CharField(),
        "estimated_size": serializers.CharField(**NULLABLE),
        "estimated_size_bytes": serializers.IntegerField(**NULLABLE),
        "estimated_duration": serializers.CharField(**NULLABLE),
        "estimated_duration_seconds": serializers.IntegerField(**NULLABLE),
        "progress_url": serializers.CharField(),
    },
)


class BackupCreateView(ConsoleView):
    """Start a manual backup of the chosen components (operators): 201 with ``job_id`` and
    ``progress_url``; follow it there or on ``/ws/backup/updates``."""

    roles = {"POST": Role.OPERATOR}

    @extend_schema(
        operation_id="console_backup_create", request=ConsoleBackupCreateSerializer, responses={201: BackupStartedShape}
    )
    def post(self, request):
        tenant = self.require_tenant()
        data = validated(ConsoleBackupCreateSerializer, request.data)
        components = sorted(set(data.get("components") or ([] if data["type"] == "full" else ["config"])))
        if data["type"] == "config" and components != ["config"]:
            raise ValidationFailed(details={"components": ['A "config" backup holds the config component only.']})
        application = application_get_default(tenant=tenant)
        storage = storage_resolve(tenant=tenant, name=data["destination"]) if data.get("destination") else None
        estimate = selectors.backup_estimate(tenant=tenant, application=application, components=components)
        op = backup_services.backup_start(
            tenant=tenant,
            actor=request.user,
            application=application,
            components=components,
            storage=storage,
            compression=data["compression"],
            encrypt=data["encrypt"],
            name=data.get("name", ""),
            description=data.get("description", ""),
            trigger=BackupTrigger.MANUAL,
            options={"verify_integrity": data["verify_integrity"], "via": "console"},
        )
        backup = op.backup
        return respond(
            {
                "status": "started",
                "backup_id": backup.pk,
                "job_id": op.public_id,
                "name": backup.name,
                "components": components
                or sorted(set(application.sources.exclude(component="").values_list("component", flat=True))),
                "destination": backup.storage.name,
                "estimated_size": humanize.size(estimate["stored_bytes"]),
                "estimated_size_bytes": estimate["stored_bytes"],
                "estimated_duration": humanize.spoken(estimate["duration_seconds"]),
                "estimated_duration_seconds": estimate["duration_seconds"],
                "progress_url": reverse("console-progress", kwargs={"job_id": op.public_id}),
            },
            status_code=201,
        )


# --- download ---------------------------------------------------------------------------------


def _flag(request, name: str) -> bool:
    raw = request.query_params.get(name)
    if raw in (None, "", "0", "false"):
        return False
    if raw in ("1", "true"):
        return True
    raise ValidationFailed(details={name: ["Use 1 or 0 (true or false)."]})


class BackupDownloadView(ConsoleView):
    """Stream a backup (operators): its content decrypted on the fly (an application's tar,
    a database's dump), or with ``?raw=1`` the encrypted artifact as stored."""

    roles = {"GET": Role.OPERATOR}

    @extend_schema(
        operation_id="console_backup_download",
        parameters=[
            OpenApiParameter(
                "raw",
                OpenApiTypes.STR,
                enum=["0", "1", "true", "false"],
                description="1: the encrypted artifact as stored",
            )
        ],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, 409: FACADE_ERROR, 503: FACADE_ERROR},
    )
    def get(self, request, backup_id=None):
        tenant = self.require_tenant()
        raw = _flag(request, "raw")
        download = backup_download_stream(backup=backup_or_404(tenant, backup_id), raw=raw)
        # The document's type for every download; the file name says what it holds (.tar, .dump...).
        response = StreamingHttpResponse(download.chunks, content_type="application/octet-stream")
        response["Content-Disposition"] = f'attachment; filename="{download.filename}"'
        if download.size is not None and raw:
            response["Content-Length"] = str(download.size)
        return response


# --- delete -----------------------------------------------------------------------------------


class ConsoleBackupDeleteSerializer(InputSerializer):
    backup_id = StrictIntegerField(min_value=1, max_value=2**63 - 1)
    reason = StrictCharField(required=False, allow_blank=True, max_length=500)


BackupDeletedShape = inline_serializer(
    "ConsoleBackupDeleted",
    {
        "status": serializers.CharField(help_text="one of: " + ", ".join(["deleted"])),
        "backup_id": serializers.IntegerField(),
        "message": serializers.CharField(),
        "storage_freed": serializers.CharField(help_text='e.g. "220 MB"'),
        "storage_freed_bytes": serializers.IntegerField(),
        "locations": serializers.ListField(child=serializers.CharField()),
    },
)


class BackupDeleteView(ConsoleView):
    """Delete a backup from every storage holding it (admins); refused while it runs or a
    restore, recovery, sync or verification reads it (409 ``BACKUP_IN_USE``)."""

    roles = {"POST": Role.ADMIN}

    @extend_schema(
        operation_id="console_backup_delete", request=ConsoleBackupDeleteSerializer, responses={200: BackupDeletedShape}
    )
    def post(self, request):
        tenant = self.require_tenant()
        data = validated(ConsoleBackupDeleteSerializer, request.data)
        backup = backup_or_404(tenant, data["backup_id"])
        locations = [loc.storage.name for loc in selectors.backup_locations(backup=backup)]
        freed = backup_services.backup_delete(backup=backup, reason=data.get("reason", ""))
        return respond(
            {
                "status": "deleted",
                "backup_id": data["backup_id"],
                "message": "Backup deleted successfully",
                "storage_freed": humanize.size(freed),
                "storage_freed_bytes": freed,
                "locations": locations,
            }
        )
