from __future__ import annotations

from django.conf import settings
from django.db import models

from tenants.models import Tenant, TenantOwnedModel


class BackupStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class BackupTrigger(models.TextChoices):
    MANUAL = "manual", "Manual"
    SCHEDULED = "scheduled", "Scheduled"
    PRE_RESTORE = "pre_restore", "Before a restore"
    IMPORTED = "imported", "Imported"


class Backup(TenantOwnedModel):
    """One run, one artifact. ``completed`` only once the artifact is stored and its
    checksum recorded."""

    name = models.CharField(max_length=255, blank=True)
    description = models.TextField(blank=True)
    backup_type = models.CharField(max_length=30, default="full")
    trigger = models.CharField(max_length=20, choices=BackupTrigger.choices, default=BackupTrigger.MANUAL)
    status = models.CharField(max_length=20, choices=BackupStatus.choices, default=BackupStatus.PENDING, db_index=True)
    # What was backed up: a single database (platform facade) or an application.
    application = models.ForeignKey(
        "backups.Application", null=True, blank=True, on_delete=models.SET_NULL, related_name="backups"
    )
    server = models.ForeignKey(
        "backups.Server", null=True, blank=True, on_delete=models.SET_NULL, related_name="backups"
    )
    database_name = models.CharField(max_length=200, blank=True)
    db_type = models.CharField(max_length=20, blank=True)
    components = models.JSONField(default=list, blank=True)
    job = models.ForeignKey(
        "schedules.BackupJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="backups"
    )
    # Where it is. Deleting a storage keeps its backups' rows (workspace seed: "backups kept").
    storage = models.ForeignKey(
        "backups.Storage", null=True, blank=True, on_delete=models.SET_NULL, related_name="backups"
    )
    storage_path = models.CharField(max_length=1024, blank=True)
    size_bytes = models.BigIntegerField(default=0, help_text="bytes read from the sources")
    compressed_bytes = models.BigIntegerField(default=0)
    stored_bytes = models.BigIntegerField(default=0, help_text="bytes of the stored artifact")
    checksum = models.CharField(max_length=80, blank=True, help_text="sha256 of the stored artifact")
    compression = models.CharField(max_length=10, default="zstd")
    encrypted = models.BooleanField(default=True)
    key_id = models.CharField(max_length=64, blank=True)
    manifest = models.JSONField(default=dict, blank=True)
    verified = models.BooleanField(default=False)
    verified_at = models.DateTimeField(null=True, blank=True)
    keep_until = models.DateTimeField(null=True, blank=True)
    keep_forever = models.BooleanField(default=False)
    retention_category = models.CharField(max_length=20, blank=True)
    error_message = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    # Lists of these carry totals: counts are cached until the next write (backupplatform/counting.py).
    counted = True

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "-created_at", "-id"], name="backup_tenant_recent"),
            models.Index(fields=["tenant", "status", "-created_at"]),
        ]

    def __str__(self) -> str:
        return self.name or f"backup {self.pk}"

    @property
    def duration_seconds(self) -> int | None:
        if self.started_at and self.completed_at:
            return int((self.completed_at - self.started_at).total_seconds())
        return None


class TenantKey(models.Model):
    """One data key of a tenant's key ring, wrapped by the platform master key.

    New backups use the tenant's current key; older keys stay in the ring for the artifacts
    they encrypted (an artifact names its key in its header, ``Backup.key_id``). The
    fingerprints are public: ``fingerprint`` names the data key (the one in exported key
    files), ``master_fingerprint`` the master key that wrapped it, so a platform started
    with another master key can say which one it needs.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="data_keys")
    key_id = models.CharField(max_length=64, unique=True)
    wrapped_key = models.BinaryField()
    fingerprint = models.CharField(max_length=32, blank=True)
    master_fingerprint = models.CharField(max_length=32, blank=True)
    is_current = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # When a newer key became current (rotation); the key still decrypts older artifacts.
    retired_at = models.DateTimeField(null=True, blank=True)
    # Set when the key was imported from an exported key file (``manage.py importkey``).
    imported_at = models.DateTimeField(null=True, blank=True)
    # Last export of a key file holding this key (API, admin or ``exportkey``).
    last_exported_at = models.DateTimeField(null=True, blank=True)
    # An operator gave up on a key whose master key is lost (``rotatemasterkey
    # --abandon-unreadable``): it no longer blocks start-up; its artifacts need its key file.
    abandoned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["tenant_id", "-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"], condition=models.Q(is_current=True), name="one_current_data_key_per_tenant"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant} key {self.key_id}"
