from __future__ import annotations

from decimal import Decimal

from django.db import models

from backupplatform.fields import EncryptedJSONField
from tenants.models import TenantOwnedModel


class StorageType(models.TextChoices):
    LOCAL = "local", "Local disk"
    S3 = "s3", "Amazon S3 compatible"
    MINIO = "minio", "MinIO"
    GCS = "gcs", "Google Cloud Storage"
    AZURE = "azure", "Azure Blob Storage"
    SFTP = "sftp", "SFTP"


class StorageStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    INACTIVE = "inactive", "Inactive"
    ERROR = "error", "Error"


class Storage(TenantOwnedModel):
    """Where backups are kept. ``credentials`` are encrypted and shown as ``[HIDDEN]``."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    type = models.CharField(max_length=20, choices=StorageType.choices)
    status = models.CharField(max_length=20, choices=StorageStatus.choices, default=StorageStatus.ACTIVE)
    configuration = models.JSONField(default=dict, blank=True)
    credentials = EncryptedJSONField(default=dict, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    is_default = models.BooleanField(default=False)
    # Set by the platform admin; usage costs are computed from it (workspace-backup-api.md "usage").
    price_per_gb_month = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("0"))
    quota_bytes = models.BigIntegerField(null=True, blank=True)
    # Percent of the quota past which a ``storage_alert`` is raised (system-backup-recovery.rst).
    cleanup_threshold = models.PositiveSmallIntegerField(null=True, blank=True)
    # This location's own retention (keep_last_n, keep_days, keep_daily/weekly/monthly/yearly):
    # e.g. 7 daily copies on local disk and 12 monthly in S3 (schedules.services.location_retention_apply).
    retention = models.JSONField(default=dict, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    last_tested_at = models.DateTimeField(null=True, blank=True)
    last_test_ok = models.BooleanField(null=True, blank=True)
    last_test_message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="unique_storage_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.type})"
