from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models

from tenants.models import TenantOwnedModel


class OperationKind(models.TextChoices):
    BACKUP = "backup", "Backup"
    RESTORE = "restore", "Restore"
    VERIFY = "verify", "Verify"
    IMPORT = "import", "Import"
    SYNC = "sync", "Storage sync"
    CLEANUP = "cleanup", "Cleanup"
    RECOVERY = "recovery", "Recovery"


class OperationStatus(models.TextChoices):
    """pending -> running -> completed | failed | cancelled (a crash: failed by the reaper)."""

    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


def operation_public_id() -> str:
    return secrets.token_hex(8)


class Operation(TenantOwnedModel):
    """Long work: progress, step, bytes, cancel flag and heartbeat (DESIGN.md "Work and progress")."""

    public_id = models.CharField(max_length=32, unique=True, default=operation_public_id, editable=False)
    kind = models.CharField(max_length=20, choices=OperationKind.choices)
    status = models.CharField(
        max_length=20, choices=OperationStatus.choices, default=OperationStatus.PENDING, db_index=True
    )
    progress = models.PositiveSmallIntegerField(default=0)
    step = models.CharField(max_length=100, blank=True)
    component = models.CharField(max_length=100, blank=True)
    bytes_done = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(null=True, blank=True)
    throughput_bps = models.BigIntegerField(null=True, blank=True)
    eta_seconds = models.IntegerField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    errors = models.PositiveIntegerField(default=0)
    warnings = models.PositiveIntegerField(default=0)
    error_message = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    backup = models.ForeignKey(
        "backups.Backup", null=True, blank=True, on_delete=models.SET_NULL, related_name="operations"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    # Lists of these carry totals: counts are cached until the next write (backupplatform/counting.py).
    counted = True

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "-created_at", "-id"], name="operation_tenant_recent"),
            models.Index(fields=["status", "heartbeat_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.public_id} ({self.status})"


class RestoreStrategy(models.TextChoices):
    CREATE_NEW = "create_new", "Create new"
    OVERWRITE = "overwrite", "Overwrite"
    MERGE = "merge", "Merge"


class WorkRecord(TenantOwnedModel):
    """What a restore and a verification record beside their operation: options, status,
    result, who asked and when it ran."""

    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=OperationStatus.choices, default=OperationStatus.PENDING)
    result = models.JSONField(default=dict, blank=True)
    error_message = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    # Lists of these carry totals: counts are cached until the next write (backupplatform/counting.py).
    counted = True

    class Meta:
        ordering = ["-created_at", "-id"]
        abstract = True


class Restore(WorkRecord):
    backup = models.ForeignKey("backups.Backup", null=True, on_delete=models.SET_NULL, related_name="restores")
    operation = models.OneToOneField(
        Operation, null=True, blank=True, on_delete=models.SET_NULL, related_name="restore"
    )
    application = models.ForeignKey(
        "backups.Application", null=True, blank=True, on_delete=models.SET_NULL, related_name="restores"
    )
    target_application = models.ForeignKey(
        "backups.Application", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    target_server = models.ForeignKey(
        "backups.Server", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    target_database = models.CharField(max_length=200, blank=True)
    target_path = models.CharField(max_length=1024, blank=True)
    strategy = models.CharField(max_length=20, choices=RestoreStrategy.choices, default=RestoreStrategy.CREATE_NEW)
    masking_rules = models.JSONField(default=dict, blank=True)

    class Meta(WorkRecord.Meta):
        indexes = [models.Index(fields=["tenant", "-created_at", "-id"], name="restore_tenant_recent")]


class Verification(WorkRecord):
    backup = models.ForeignKey("backups.Backup", on_delete=models.CASCADE, related_name="verifications")
    operation = models.OneToOneField(
        Operation, null=True, blank=True, on_delete=models.SET_NULL, related_name="verification"
    )
    test_type = models.CharField(max_length=20, default="checksum")
    scope = models.CharField(max_length=20, default="full")
    passed = models.BooleanField(null=True, blank=True)

    class Meta(WorkRecord.Meta):
        indexes = [models.Index(fields=["tenant", "-created_at", "-id"], name="verification_tenant_recent")]


class Snapshot(TenantOwnedModel):
    """The tenant's configuration (system-backup-recovery.rst "Snapshot Management").

    The content is ``artifact``: the configuration JSON as a BPAF artifact encrypted with the
    tenant's data key (credentials inside it are still their Fernet tokens), never clear JSON.
    ``data`` holds only a summary (counts per component), no configuration.
    """

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)
    components = models.JSONField(default=list, blank=True)
    data = models.JSONField(default=dict, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    artifact = models.BinaryField(null=True, blank=True)
    checksum = models.CharField(max_length=80, blank=True, help_text="sha256 of the artifact")
    key_id = models.CharField(max_length=64, blank=True)
    trigger = models.CharField(max_length=30, default="manual", help_text="manual, pre_restore, pre_recovery, imported")
    status = models.CharField(max_length=20, default="active")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
