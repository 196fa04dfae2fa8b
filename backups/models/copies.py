"""Where a backup's artifact lives: one row per copy (the first storage, syncs, replication).

``Backup.storage``/``storage_path`` stay the primary copy every reader opens first; a
``BackupCopy`` exists for each copy, the primary included, so a backup kept on local disk
and in S3 has two rows. Retention can remove one location's copy and leave the others; the
backup row goes only with its last copy (``backups.services.copies``).
"""

from __future__ import annotations

from django.db import models

from tenants.models import TenantOwnedModel


class CopyStatus(models.TextChoices):
    AVAILABLE = "available", "Available"
    MISSING = "missing", "Missing (the stored file is gone)"
    CORRUPT = "corrupt", "Corrupt (checksum mismatch)"


class BackupCopy(TenantOwnedModel):
    backup = models.ForeignKey("backups.Backup", on_delete=models.CASCADE, related_name="copies")
    # A deleted storage keeps the row (the backup's history), like Backup.storage.
    storage = models.ForeignKey("backups.Storage", null=True, on_delete=models.SET_NULL, related_name="copies")
    path = models.CharField(max_length=1024)
    size_bytes = models.BigIntegerField(default=0)
    checksum = models.CharField(max_length=80, blank=True, help_text="sha256 of the stored bytes")
    verified = models.BooleanField(default=False, help_text="re-read after writing and the checksum matched")
    status = models.CharField(max_length=20, choices=CopyStatus.choices, default=CopyStatus.AVAILABLE)
    error_message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    verified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["backup_id", "created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["backup", "storage"], name="one_copy_per_storage")]

    def __str__(self) -> str:
        return f"copy of backup {self.backup_id} on storage {self.storage_id}"


class StoragePolicy(TenantOwnedModel):
    """A tenant's storage policies (system-backup-recovery.rst "Storage Management" ``policies``).

    ``default_location`` is the storage marked ``is_default``; artifacts are always
    encrypted, so ``encryption_default`` is always true.
    """

    replication_enabled = models.BooleanField(default=False)
    replication_target = models.ForeignKey(
        "backups.Storage", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    compression_default = models.CharField(max_length=10, default="zstd")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="one_storage_policy_per_tenant")]
