from __future__ import annotations

from django.urls import path

from . import backups, policies, views

app_backups = backups.ApplicationBackupViewSet.as_view
app_restores = backups.ApplicationRestoreViewSet.as_view

storages = views.BackupStorageViewSet.as_view({"get": "list", "post": "create"})
storage = views.BackupStorageViewSet.as_view({"get": "retrieve", "put": "update", "delete": "destroy"})
applications = views.ApplicationViewSet.as_view({"get": "list", "post": "create"})
application = views.ApplicationViewSet.as_view({"get": "retrieve", "put": "update", "delete": "destroy"})

urlpatterns = [
    path("backup-storages", storages, name="ws-storage-list"),
    path("backup-storages/<str:storage_id>", storage, name="ws-storage-detail"),
    path(
        "backup-storages/<str:storage_id>/usage",
        views.BackupStorageViewSet.as_view({"get": "usage"}),
        name="ws-storage-usage",
    ),
    path("backup-storage-usage", views.WorkspaceStorageUsageView.as_view(), name="ws-storage-usage-total"),
    path("applications", applications, name="ws-application-list"),
    path("applications/<str:app_id>", application, name="ws-application-detail"),
    # workspace-backup-api.md "Backup Policies" and "Trigger Manual Backup" (before backups/<backup_id>)
    path("applications/<str:app_id>/backup-policy", policies.BackupPolicyView.as_view(), name="ws-backup-policy"),
    path("applications/<str:app_id>/backups/trigger", policies.TriggerBackupView.as_view(), name="ws-backup-trigger"),
    # workspace-backup-api.md "Backup Operations" and "Restore Operations"
    path("applications/<str:app_id>/backups", app_backups({"get": "list"}), name="ws-backup-list"),
    path("applications/<str:app_id>/backups/latest", app_backups({"get": "latest"}), name="ws-backup-latest"),
    path(
        "applications/<str:app_id>/backups/<str:backup_id>", app_backups({"get": "retrieve"}), name="ws-backup-detail"
    ),
    path(
        "applications/<str:app_id>/backups/<str:backup_id>/manifest",
        app_backups({"get": "manifest"}),
        name="ws-backup-manifest",
    ),
    path(
        "applications/<str:app_id>/backups/<str:backup_id>/download",
        app_backups({"get": "download"}),
        name="ws-backup-download",
    ),
    path(
        "applications/<str:app_id>/backups/<str:backup_id>/restore",
        app_backups({"post": "restore"}),
        name="ws-backup-restore",
    ),
    path("applications/<str:app_id>/restores", app_restores({"get": "list"}), name="ws-restore-list"),
    path(
        "applications/<str:app_id>/restores/<str:restore_id>",
        app_restores({"get": "retrieve"}),
        name="ws-restore-detail",
    ),
]
