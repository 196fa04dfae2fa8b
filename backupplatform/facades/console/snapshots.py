"""Console facade: "Snapshot Management" (system-backup-recovery.rst).

Snapshots are the tenant's configuration (servers, storages, retention policies,
applications with their sources, schedules, storage policies) stored encrypted
(``backups.services.snapshots``). Restoring one runs in an operation of kind ``restore``
whose progress is at ``/cloud-integration/backup/restore/progress/{restore_id}``.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers

from backupplatform.facades.base import respond
from backupplatform.facades.pagination import int_param
from backupplatform.facades.scheduling import iso
from backupplatform.facades.serializers import (
    InputSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    validated,
)
from backups.models import Snapshot
from backups.services import snapshots as service
from backups.services.config import COMPONENTS
from backups.services.copies import human_bytes
from tenants.models import Role

from .conventions import ConsoleView
from .operation_bodies import RESTORE_PROGRESS_PREFIX


def snapshot_body(snapshot: Snapshot) -> dict:
    return {
        "id": snapshot.pk,
        "name": snapshot.name,
        "description": snapshot.description,
        "created_at": iso(snapshot.created_at),
        "size": human_bytes(snapshot.size_bytes),
        "size_bytes": snapshot.size_bytes,
        "tags": snapshot.tags,
        "components": snapshot.components,
        "counts": (snapshot.data or {}).get("counts", {}),
        "created_by": snapshot.created_by.username if snapshot.created_by else "system",
        "trigger": snapshot.trigger,
        "checksum": f"sha256:{snapshot.checksum}" if snapshot.checksum else None,
        "encrypted": True,
        "status": snapshot.status,
    }


class SnapshotCreateSerializer(InputSerializer):
    name = StrictCharField(max_length=200)
    description = StrictCharField(required=False, allow_blank=True, max_length=1000)
    tags = serializers.ListField(child=StrictCharField(max_length=50), required=False, max_length=20)
    components = serializers.ListField(
        child=serializers.ChoiceField(choices=COMPONENTS), required=False, allow_empty=False, max_length=len(COMPONENTS)
    )
    include_settings = StrictBooleanField(required=False, default=True)
    include_data = StrictBooleanField(required=False, default=False)

    def validate_include_data(self, value: bool) -> bool:
        if value:
            raise serializers.ValidationError("Snapshots hold configuration only; back data up with /create.")
        return value

    def validate_include_settings(self, value: bool) -> bool:
        if not value:
            raise serializers.ValidationError("A snapshot is the settings; false would make it empty.")
        return value


class SnapshotRestoreSerializer(InputSerializer):
    snapshot_id = StrictIntegerField(min_value=1, max_value=2**63 - 1)
    components = serializers.ListField(
        child=serializers.ChoiceField(choices=COMPONENTS), required=False, allow_empty=False, max_length=len(COMPONENTS)
    )
    create_backup = StrictBooleanField(required=False, default=False)
    reason = StrictCharField(required=False, allow_blank=True, max_length=500)


_ts = {"allow_null": True, "help_text": "ISO 8601 UTC"}
SnapshotShape = inline_serializer(
    "ConsoleSnapshot",
    {
        "id": serializers.IntegerField(),
        "name": serializers.CharField(),
        "description": serializers.CharField(),
        "created_at": serializers.CharField(**_ts),
        "size": serializers.CharField(),
        "size_bytes": serializers.IntegerField(),
        "tags": serializers.ListField(child=serializers.CharField()),
        "components": serializers.ListField(child=serializers.CharField()),
        "counts": serializers.DictField(child=serializers.IntegerField()),
        "created_by": serializers.CharField(),
        "trigger": serializers.CharField(),
        "checksum": serializers.CharField(allow_null=True),
        "encrypted": serializers.BooleanField(),
        "status": serializers.CharField(),
    },
)
SnapshotListShape = inline_serializer(
    "ConsoleSnapshotList",
    {
        "snapshots": SnapshotShape.__class__(many=True),
        "total": serializers.IntegerField(),
        "active": serializers.IntegerField(),
        "components_available": serializers.ListField(child=serializers.CharField()),
    },
)
SnapshotCreatedShape = inline_serializer(
    "ConsoleSnapshotCreated",
    {
        "status": serializers.CharField(),
        "snapshot_id": serializers.IntegerField(),
        "name": serializers.CharField(),
        "size": serializers.CharField(),
        "message": serializers.CharField(),
        "snapshot": SnapshotShape.__class__(),
    },
)
SnapshotRestoreShape = inline_serializer(
    "ConsoleSnapshotRestoreStarted",
    {
        "status": serializers.CharField(),
        "restore_id": serializers.CharField(),
        "snapshot_id": serializers.IntegerField(),
        "components": serializers.ListField(child=serializers.CharField()),
        "estimated_duration": serializers.CharField(),
        "pre_restore_backup_id": serializers.IntegerField(allow_null=True),
        "pre_restore_snapshot": SnapshotShape.__class__(allow_null=True),
        "progress_url": serializers.CharField(),
    },
)


class SnapshotsView(ConsoleView):
    """The tenant's configuration snapshots, newest first (viewers)."""

    roles = {"GET": Role.VIEWER}

    @extend_schema(operation_id="console_snapshots_list", responses={200: SnapshotListShape})
    def get(self, request):
        tenant = self.require_tenant()
        limit = int_param(request, "limit", 50, minimum=1, maximum=1000)
        qs = (
            Snapshot.objects.filter(tenant=tenant)
            .select_related("created_by")
            .defer("artifact")
            .order_by("-created_at", "-id")
        )
        rows = list(qs[:limit])
        return respond(
            {
                "snapshots": [snapshot_body(s) for s in rows],
                "total": qs.count(),
                "active": qs.filter(status="active").count(),
                "components_available": list(COMPONENTS),
            }
        )


class SnapshotCreateView(ConsoleView):
    """Take a snapshot of the configuration (operators)."""

    roles = {"POST": Role.OPERATOR}

    @extend_schema(request=SnapshotCreateSerializer, responses={201: SnapshotCreatedShape})
    def post(self, request):
        tenant = self.require_tenant()
        data = validated(SnapshotCreateSerializer, request.data)
        snapshot = service.snapshot_create(
            tenant=tenant,
            actor=request.user,
            name=data["name"],
            description=data.get("description", ""),
            tags=data.get("tags"),
            components=data.get("components"),
        )
        return respond(
            {
                "status": "created",
                "snapshot_id": snapshot.pk,
                "name": snapshot.name,
                "size": human_bytes(snapshot.size_bytes),
                "message": "Snapshot created successfully",
                "snapshot": snapshot_body(snapshot),
            },
            status_code=201,
        )


class SnapshotRestoreView(ConsoleView):
    """Apply a snapshot's components back, all or nothing (admins: it rewrites configuration)."""

    roles = {"POST": Role.ADMIN}

    @extend_schema(request=SnapshotRestoreSerializer, responses={200: SnapshotRestoreShape})
    def post(self, request):
        tenant = self.require_tenant()
        data = validated(SnapshotRestoreSerializer, request.data)
        snapshot = service.snapshot_get(tenant=tenant, snapshot_id=data["snapshot_id"])
        op = service.snapshot_restore_start(
            tenant=tenant,
            snapshot=snapshot,
            components=data.get("components"),
            create_backup=data["create_backup"],
            reason=data.get("reason", ""),
            actor=request.user,
        )
        pre_id = op.details.get("pre_restore_snapshot_id")
        pre = Snapshot.objects.filter(tenant=tenant, pk=pre_id).first() if pre_id else None
        return respond(
            {
                "status": "restore_started",
                "restore_id": op.public_id,
                "snapshot_id": snapshot.pk,
                "components": op.details["components"],
                # Applying configuration is a few database writes per row: seconds, not minutes.
                "estimated_duration": "under a minute",
                "pre_restore_backup_id": pre_id,
                "pre_restore_snapshot": snapshot_body(pre) if pre else None,
                "progress_url": f"{RESTORE_PROGRESS_PREFIX}{op.public_id}",
            }
        )
