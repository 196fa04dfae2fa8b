from __future__ import annotations

from django.urls import path

from . import policies, views

storages = views.BackupStorageViewSet.as_view({"get": "list", "post": "create"})
storage = views.BackupStorageViewSet.as_view({"get": "retrieve", "put": "update", "delete": "destroy"})
applications = views.ApplicationViewSet.as_view({"get": "list", "post": "create"})
application = views.ApplicationViewSet.as_view({"get": "retrieve", "put": "update", "delete": "destroy"})

urlpatterns = [
    # workspace-backup-api.md "Backup Policies" and "Trigger Manual Backup" (before backups/<backup_id>)
    path("applications/<str:app_id>/backup-policy", policies.BackupPolicyView.as_view(), name="ws-backup-policy"),
    path("applications/<str:app_id>/backups/trigger", policies.TriggerBackupView.as_view(), name="ws-backup-trigger"),
    path("backup-storages", storages, name="ws-storage-list"),
    path("backup-storages/<str:storage_id>", storage, name="ws-storage-detail"),
    path("backup-storages/<str:storage_id>/usage", views.BackupStorageViewSet.as_view({"get": "usage"}),
         name="ws-storage-usage"),
    path("backup-storage-usage", views.WorkspaceStorageUsageView.as_view(), name="ws-storage-usage-total"),
    path("applications", applications, name="ws-application-list"),
    path("applications/<str:app_id>", application, name="ws-application-detail"),
]
