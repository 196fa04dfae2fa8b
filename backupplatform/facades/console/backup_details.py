"""system-backup-recovery.rst "Backup Management (SECTION 1)", "Get Backup Details": one
backup with its components' sizes, where it is kept and its verification history."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers

from backupplatform import humanize
from backupplatform.facades.base import respond
from backupplatform.isotime import utc_iso as iso
from backups import backup_selectors as selectors
from backups.backup_selectors import BackupLocation
from backups.models import Backup, BackupTrigger, Verification
from tenants.models import Role

from .backups import COMPONENTS, NULLABLE, backup_components, backup_or_404, backup_row, location_type
from .conventions import ConsoleView


def component_sizes(backup: Backup) -> dict[str, dict]:
    """Each console component: whether the backup holds it and its size (the members of the
    artifact's manifest, added up by their source's component)."""
    included = set(backup_components(backup))
    bundle = (backup.manifest or {}).get("bundle") or {}
    member_component = {s.get("member"): s.get("component") for s in bundle.get("sources") or []}
    sizes = dict.fromkeys(COMPONENTS, 0)
    for member in bundle.get("members") or []:
        component = member_component.get(member.get("name"))
        if component in sizes:
            sizes[component] += int(member.get("size") or 0)
    if backup.server_id and not bundle:
        sizes["database"] = backup.size_bytes
    return {c: {"included": c in included, "size": humanize.size(sizes[c]), "size_bytes": sizes[c]} for c in COMPONENTS}


def verification_row(v: Verification) -> dict:
    return {
        "id": v.pk,
        "test_type": v.test_type,
        "status": v.status,
        "passed": v.passed,
        "started_at": iso(v.started_at),
        "completed_at": iso(v.completed_at),
        "duration_seconds": (v.result or {}).get("duration_seconds"),
        "error": v.error_message or None,
    }


def backup_details(backup: Backup, locations: list[BackupLocation], history: list[Verification]) -> dict:
    row = backup_row(backup, locations)
    last = next((v for v in history if v.passed is not None), None)
    ratio = round(backup.size_bytes / backup.stored_bytes, 2) if backup.stored_bytes else None
    created_by = (
        "scheduler"
        if backup.trigger == BackupTrigger.SCHEDULED
        else backup.created_by.username
        if backup.created_by_id
        else backup.trigger
    )
    return {
        **{
            k: row[k]
            for k in (
                "id",
                "name",
                "filename",
                "type",
                "type_code",
                "status",
                "created_at",
                "completed_at",
                "size",
                "size_display",
                "duration",
                "duration_seconds",
                "checksum",
                "encrypted",
                "error",
            )
        },
        "compressed_size": backup.stored_bytes,
        "compressed_size_display": humanize.size(backup.stored_bytes),
        "compression": backup.compression,
        "compression_ratio": ratio,
        "checksum_algorithm": "sha256",
        "integrity": {
            "status": row["integrity"],
            "verified": backup.verified,
            "verification_time": iso(backup.verified_at),
            # The artifact's AES-GCM tags authenticate every chunk: a passing decrypting
            # verification is the signature check.
            "signature_valid": None if last is None else bool(last.passed),
            "last_verification": verification_row(last) if last else None,
        },
        "encryption": {
            "enabled": backup.encrypted,
            "algorithm": "AES-256-GCM" if backup.encrypted else None,
            "key_id": backup.key_id or None,
        },
        "components": component_sizes(backup),
        "metadata": {
            "created_by": created_by,
            "trigger": backup.trigger,
            "schedule_id": row["schedule_id"],
            "application": backup.application.name if backup.application_id else None,
            "version": (backup.manifest or {}).get("version"),
            "format": (backup.manifest or {}).get("format"),
            "description": backup.description or row["summary"],
        },
        "storage_locations": [
            {
                "storage": loc.storage.name,
                "storage_id": loc.storage.pk,
                "type": location_type(loc.storage),
                "storage_type": loc.storage.type,
                "path": loc.path,
                "primary": loc.primary,
                "verified": loc.verified,
                "status": loc.status,
            }
            for loc in locations
        ],
        "verification_history": [verification_row(v) for v in history],
    }


_vrow = inline_serializer(
    "ConsoleVerification",
    {
        "id": serializers.IntegerField(),
        "test_type": serializers.CharField(),
        "status": serializers.CharField(),
        "passed": serializers.BooleanField(**NULLABLE),
        "started_at": serializers.CharField(**NULLABLE),
        "completed_at": serializers.CharField(**NULLABLE),
        "duration_seconds": serializers.FloatField(**NULLABLE),
        "error": serializers.CharField(**NULLABLE),
    },
)
_component = inline_serializer(
    "ConsoleBackupComponent",
    {"included": serializers.BooleanField(), "size": serializers.CharField(), "size_bytes": serializers.IntegerField()},
)
BackupDetailsShape = inline_serializer(
    "ConsoleBackupDetails",
    {
        "id": serializers.IntegerField(),
        "name": serializers.CharField(),
        "filename": serializers.CharField(),
        "type": serializers.CharField(),
        "type_code": serializers.CharField(),
        "status": serializers.CharField(),
        "created_at": serializers.CharField(),
        "completed_at": serializers.CharField(**NULLABLE),
        "size": serializers.IntegerField(),
        "size_display": serializers.CharField(),
        "compressed_size": serializers.IntegerField(),
        "compressed_size_display": serializers.CharField(),
        "compression": serializers.CharField(),
        "compression_ratio": serializers.FloatField(**NULLABLE),
        "duration": serializers.CharField(**NULLABLE),
        "duration_seconds": serializers.IntegerField(**NULLABLE),
        "checksum": serializers.CharField(**NULLABLE),
        "checksum_algorithm": serializers.CharField(),
        "encrypted": serializers.BooleanField(),
        "error": serializers.CharField(**NULLABLE),
        "integrity": inline_serializer(
            "ConsoleBackupIntegrity",
            {
                "status": serializers.CharField(),
                "verified": serializers.BooleanField(),
                "verification_time": serializers.CharField(**NULLABLE),
                "signature_valid": serializers.BooleanField(**NULLABLE),
                "last_verification": inline_serializer(
                    "ConsoleLastVerification",
                    {
                        "id": serializers.IntegerField(),
                        "test_type": serializers.CharField(),
                        "status": serializers.CharField(),
                        "passed": serializers.BooleanField(**NULLABLE),
                    },
                    allow_null=True,
                ),
            },
        ),
        "encryption": inline_serializer(
            "ConsoleBackupEncryption",
            {
                "enabled": serializers.BooleanField(),
                "algorithm": serializers.CharField(**NULLABLE),
                "key_id": serializers.CharField(**NULLABLE),
            },
        ),
        "components": inline_serializer("ConsoleBackupComponents", {c: _component for c in COMPONENTS}),
        "metadata": inline_serializer(
            "ConsoleBackupMetadata",
            {
                "created_by": serializers.CharField(),
                "trigger": serializers.CharField(),
                "schedule_id": serializers.CharField(**NULLABLE),
                "application": serializers.CharField(**NULLABLE),
                "version": serializers.CharField(**NULLABLE),
                "format": serializers.CharField(**NULLABLE),
                "description": serializers.CharField(),
            },
        ),
        "storage_locations": serializers.ListField(
            child=inline_serializer(
                "ConsoleBackupLocation",
                {
                    "storage": serializers.CharField(),
                    "storage_id": serializers.IntegerField(),
                    "type": serializers.CharField(),
                    "storage_type": serializers.CharField(),
                    "path": serializers.CharField(),
                    "primary": serializers.BooleanField(),
                    "verified": serializers.BooleanField(),
                    "status": serializers.CharField(),
                },
            )
        ),
        "verification_history": serializers.ListField(child=_vrow),
    },
)


class BackupDetailsView(ConsoleView):
    """Everything about one backup (viewers): integrity, encryption, components with sizes,
    the storages holding it and its verifications."""

    roles = {"GET": Role.VIEWER}

    @extend_schema(operation_id="console_backup_details", responses={200: BackupDetailsShape})
    def get(self, request, backup_id=None):
        tenant = self.require_tenant()
        backup = backup_or_404(tenant, backup_id)
        history = list(selectors.verification_list(tenant=tenant).filter(backup=backup)[:50])
        return respond(backup_details(backup, selectors.backup_locations(backup=backup), history))
