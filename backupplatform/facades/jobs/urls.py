from __future__ import annotations

from django.urls import path

from . import auth, backup_jobs, storage, verify, views, webhooks

jobs = backup_jobs.BackupJobViewSet.as_view


def job_routes(prefix: str) -> list:
    """api-layer.md "Backup Operations": its /api/v1/backups routes, under ``prefix``."""
    return [
        path(prefix, jobs({"get": "list", "post": "create"}), name="job-list"),
        path(f"{prefix}/<str:pk>", jobs({"get": "retrieve", "put": "update", "delete": "destroy"}), name="job-detail"),
        path(f"{prefix}/<str:pk>/run", jobs({"post": "run"}), name="job-run"),
        path(f"{prefix}/<str:pk>/executions", jobs({"get": "executions"}), name="job-executions"),
    ]


# On the main listener, where /api/v1/backups are db-backup-platform.md's backups, the jobs
# are at /api/v1/jobs.
urlpatterns = [
    *job_routes("jobs"),
    path("api-keys", views.ApiKeyViewSet.as_view({"get": "list", "post": "create"}), name="apikey-list"),
    path("api-keys/<str:pk>", views.ApiKeyViewSet.as_view({"delete": "destroy"}), name="apikey-detail"),
    path("storage/providers", storage.StorageProviderViewSet.as_view({"get": "list"}), name="storage-provider-list"),
    path(
        "storage/providers/<str:pk>",
        storage.StorageProviderViewSet.as_view({"get": "retrieve"}),
        name="storage-provider-detail",
    ),
    path("storage/test", storage.StorageTestView.as_view(), name="storage-test"),
    path("storage/<str:pk>/space", storage.StorageSpaceView.as_view(), name="storage-space"),
    path("storage/<str:pk>/backups", storage.StorageBackupsView.as_view({"get": "list"}), name="storage-backups"),
    # api-layer.md "Verification Testing"
    path("verify", verify.VerificationViewSet.as_view({"get": "list"}), name="verify-list"),
    path("verify/<str:backup_id>", verify.VerificationViewSet.as_view({"post": "start"}), name="verify-start"),
    path("verify/<str:backup_id>/status", verify.VerificationViewSet.as_view({"get": "status"}), name="verify-status"),
    path("verify/<str:backup_id>/result", verify.VerificationViewSet.as_view({"get": "result"}), name="verify-result"),
    path("verify/<str:pk>/cancel", verify.VerificationViewSet.as_view({"post": "cancel"}), name="verify-cancel"),
    # api-layer.md "Webhook support for events" (GET of one webhook is ours: its deliveries)
    path("webhooks", webhooks.WebhookViewSet.as_view({"get": "list", "post": "create"}), name="webhook-list"),
    path(
        "webhooks/<str:pk>",
        webhooks.WebhookViewSet.as_view({"get": "retrieve", "delete": "destroy"}),
        name="webhook-detail",
    ),
]

# The jobs API's own listener (backupplatform/listeners.py): the document's paths, its login.
listener_urlpatterns = [
    path("auth/login", auth.LoginView.as_view(), name="jobs-auth-login"),
    path("auth/refresh", auth.RefreshView.as_view(), name="jobs-auth-refresh"),
    path("auth/logout", auth.LogoutView.as_view(), name="jobs-auth-logout"),
    *job_routes("backups"),
    *(p for p in urlpatterns if not (p.name or "").startswith("job-")),
]
