from __future__ import annotations

from django.urls import path

from . import backup_jobs, storage, verify, views, webhooks

jobs = backup_jobs.BackupJobViewSet.as_view
urlpatterns = [
    # api-layer.md "Backup Operations" (the seed's /api/v1/backups job routes)
    path("jobs", jobs({"get": "list", "post": "create"}), name="job-list"),
    path("jobs/<str:pk>", jobs({"get": "retrieve", "put": "update", "delete": "destroy"}), name="job-detail"),
    path("jobs/<str:pk>/run", jobs({"post": "run"}), name="job-run"),
    path("jobs/<str:pk>/executions", jobs({"get": "executions"}), name="job-executions"),
    path("api-keys", views.ApiKeyViewSet.as_view({"get": "list", "post": "create"}), name="apikey-list"),
    path("api-keys/<str:pk>", views.ApiKeyViewSet.as_view({"delete": "destroy"}), name="apikey-detail"),
    path("storage/providers", storage.StorageProviderViewSet.as_view({"get": "list"}), name="storage-provider-list"),
    path("storage/providers/<str:pk>", storage.StorageProviderViewSet.as_view({"get": "retrieve"}),
         name="storage-provider-detail"),
    path("storage/test", storage.StorageTestView.as_view(), name="storage-test"),
    path("storage/<str:pk>/space", storage.StorageSpaceView.as_view(), name="storage-space"),
    path("storage/<str:pk>/backups", storage.StorageBackupsView.as_view({"get": "list"}), name="storage-backups"),
    # api-layer.md "Verification Testing"
    path("verify", verify.VerificationViewSet.as_view({"get": "list"}), name="verify-list"),
    path("verify/<str:backup_id>", verify.VerificationViewSet.as_view({"post": "start"}), name="verify-start"),
    path("verify/<str:backup_id>/status", verify.VerificationViewSet.as_view({"get": "status"}),
         name="verify-status"),
    path("verify/<str:backup_id>/result", verify.VerificationViewSet.as_view({"get": "result"}),
         name="verify-result"),
    path("verify/<str:pk>/cancel", verify.VerificationViewSet.as_view({"post": "cancel"}), name="verify-cancel"),
    # api-layer.md "Webhook support for events" (GET of one webhook is ours: its deliveries)
    path("webhooks", webhooks.WebhookViewSet.as_view({"get": "list", "post": "create"}), name="webhook-list"),
    path("webhooks/<str:pk>", webhooks.WebhookViewSet.as_view({"get": "retrieve", "delete": "destroy"}),
         name="webhook-detail"),
]
