from __future__ import annotations

from django.urls import path

from . import backups, progress, reports, statistics, status, views

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
    path("details/<str:backup_id>", backups.BackupDetailsView.as_view(), name="console-backup-details"),
    path("progress/<str:job_id>", progress.BackupProgressView.as_view(), name="console-progress"),
    path("restore/progress/<str:restore_id>", progress.RestoreProgressView.as_view(),
         name="console-restore-progress"),
    path("operation/cancel", progress.CancelView.as_view(), name="console-operation-cancel"),
    path("statistics", statistics.StatisticsView.as_view(), name="console-statistics"),
    path("report/generate", reports.ReportView.as_view(), name="console-report-generate"),
]
