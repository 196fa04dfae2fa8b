from __future__ import annotations

from django.urls import path

from . import (
    backup_details,
    backups,
    progress,
    recovery,
    reports,
    snapshots,
    statistics,
    status,
    storage,
    transfer,
    views,
)

urlpatterns = [
    # system-backup-recovery.rst "Scheduled Backups (SECTION 2)"
    path("schedules", views.SchedulesView.as_view(), name="console-schedules"),
    path("schedules/update", views.ScheduleUpdateView.as_view(), name="console-schedule-update"),
    path("schedules/toggle", views.ScheduleToggleView.as_view(), name="console-schedule-toggle"),
    # "Cleanup Operations"
    path("cleanup", views.CleanupView.as_view(), name="console-cleanup"),
    path("cleanup/execute", views.CleanupExecuteView.as_view(), name="console-cleanup-execute"),
    path("cleanup/progress/<str:cleanup_id>", views.CleanupProgressView.as_view(), name="console-cleanup-progress"),
    # "Backup System Status", "Backup Management (SECTION 1)", "Progress Monitoring",
    # "Reporting & Statistics"
    path("status", status.StatusView.as_view(), name="console-status"),
    path("list", backups.BackupListView.as_view(), name="console-backup-list"),
    path("create", backups.BackupCreateView.as_view(), name="console-backup-create"),
    path("download/<str:backup_id>", backups.BackupDownloadView.as_view(), name="console-backup-download"),
    path("delete", backups.BackupDeleteView.as_view(), name="console-backup-delete"),
    path("details/<str:backup_id>", backup_details.BackupDetailsView.as_view(), name="console-backup-details"),
    path("progress/<str:job_id>", progress.BackupProgressView.as_view(), name="console-progress"),
    path("restore/progress/<str:restore_id>", progress.RestoreProgressView.as_view(), name="console-restore-progress"),
    path("operation/cancel", progress.CancelView.as_view(), name="console-operation-cancel"),
    path("statistics", statistics.StatisticsView.as_view(), name="console-statistics"),
    path("report/generate", reports.ReportView.as_view(), name="console-report-generate"),
    # "Snapshot Management", "Disaster Recovery Operations", "Import & Export Operations",
    # "Storage Management"
    path("snapshots", snapshots.SnapshotsView.as_view(), name="console-snapshots"),
    path("snapshots/create", snapshots.SnapshotCreateView.as_view(), name="console-snapshot-create"),
    path("snapshots/restore", snapshots.SnapshotRestoreView.as_view(), name="console-snapshot-restore"),
    path("recovery/initiate", recovery.RecoveryInitiateView.as_view(), name="console-recovery-initiate"),
    path("recovery/preview/<str:backup_id>", recovery.RecoveryPreviewView.as_view(), name="console-recovery-preview"),
    path(
        "recovery/progress/<str:recovery_id>", recovery.RecoveryProgressView.as_view(), name="console-recovery-progress"
    ),
    path("import", transfer.ImportView.as_view(), name="console-import"),
    path("import/validate", transfer.ImportValidateView.as_view(), name="console-import-validate"),
    path("import/progress/<str:import_id>", transfer.ImportProgressView.as_view(), name="console-import-progress"),
    path("export/config", transfer.ExportConfigView.as_view(), name="console-export-config"),
    path("storage", storage.StorageView.as_view(), name="console-storage"),
    path("storage/update", storage.StorageUpdateView.as_view(), name="console-storage-update"),
    path("storage/sync", storage.StorageSyncView.as_view(), name="console-storage-sync"),
    path(
        "storage/sync/progress/<str:sync_id>",
        storage.StorageSyncProgressView.as_view(),
        name="console-storage-sync-progress",
    ),
]
