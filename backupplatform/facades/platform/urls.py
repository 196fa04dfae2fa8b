from __future__ import annotations

from django.urls import path

from . import auth, backups, commands, drills, keys, notifications, schedules, servers, views

users = views.UserViewSet.as_view({"get": "list", "post": "create"})
user = views.UserViewSet.as_view({"put": "update", "delete": "destroy"})
server_list = servers.ServerViewSet.as_view({"get": "list", "post": "create"})
server_detail = servers.ServerViewSet.as_view(
    {"get": "retrieve", "put": "update", "patch": "partial_update", "delete": "destroy"}
)

schedule_list = schedules.ScheduleViewSet.as_view({"get": "list", "post": "create"})
schedule_detail = schedules.ScheduleViewSet.as_view({"get": "retrieve", "put": "update", "delete": "destroy"})
policy_list = schedules.RetentionPolicyViewSet.as_view({"get": "list", "post": "create"})
policy_detail = schedules.RetentionPolicyViewSet.as_view({"get": "retrieve", "put": "update", "delete": "destroy"})

urlpatterns = [
    path("auth/login", auth.LoginView.as_view(), name="auth-login"),
    path("auth/register", auth.RegisterView.as_view(), name="auth-register"),
    path("auth/refresh", auth.RefreshView.as_view(), name="auth-refresh"),
    path("auth/logout", auth.LogoutView.as_view(), name="auth-logout"),
    path("auth/me", auth.MeView.as_view(), name="auth-me"),
    path("workspaces", views.WorkspaceListView.as_view(), name="workspace-list"),
    path("users", users, name="user-list"),
    path("users/<str:pk>", user, name="user-detail"),
    path("audit/logs", views.AuditLogView.as_view({"get": "list"}), name="audit-logs"),
    path("audit/export", views.AuditExportView.as_view(), name="audit-export"),
    path("schedules", schedule_list, name="schedule-list"),
    path("schedules/<str:pk>", schedule_detail, name="schedule-detail"),
    # Our extension: restore drills and their evidence (schedules/drills.py).
    path(
        "schedules/<str:pk>/drill-policy",
        drills.ScheduleDrillViewSet.as_view({"get": "policy", "put": "update_policy"}),
        name="schedule-drill-policy",
    ),
    path(
        "schedules/<str:pk>/drills", drills.ScheduleDrillViewSet.as_view({"post": "start"}), name="schedule-drill-start"
    ),
    path("drills", drills.DrillViewSet.as_view({"get": "list"}), name="drill-list"),
    path("drills/evidence", drills.DrillEvidenceView.as_view(), name="drill-evidence"),
    path("drills/<str:pk>", drills.DrillViewSet.as_view({"get": "retrieve"}), name="drill-detail"),
    path("retention-policies", policy_list, name="retention-policy-list"),
    path("retention-policies/<str:pk>", policy_detail, name="retention-policy-detail"),
    path("servers", server_list, name="server-list"),
    path("servers/<str:pk>", server_detail, name="server-detail"),
    path(
        "servers/<str:pk>/test-connection",
        servers.ServerViewSet.as_view({"post": "test_connection"}),
        name="server-test-connection",
    ),
    path("servers/<str:pk>/databases", servers.ServerViewSet.as_view({"get": "databases"}), name="server-databases"),
    # db-backup-platform.md "Backups"
    path("backups", backups.BackupViewSet.as_view({"get": "list", "post": "create"}), name="backup-list"),
    path(
        "backups/<str:pk>",
        backups.BackupViewSet.as_view({"get": "retrieve", "delete": "destroy"}),
        name="backup-detail",
    ),
    path("backups/<str:pk>/download", backups.BackupViewSet.as_view({"post": "download"}), name="backup-download"),
    path("backups/<str:pk>/restore", backups.BackupViewSet.as_view({"post": "restore"}), name="backup-restore"),
    # Our extension: where the task that "Restore Backup" queued is followed.
    path("restores/<str:pk>", backups.RestoreViewSet.as_view({"get": "retrieve"}), name="restore-detail"),
    path("downloads/<str:token>", backups.SignedDownloadView.as_view(), name="backup-download-signed"),
    # Our extension: the workspace's key ring for restores without the platform (password again).
    path("keys/export", keys.KeyExportView.as_view(), name="key-export"),
    # db-backup-platform.md "Commands" and "Notifications" (get/update/delete are ours)
    path("commands", commands.CommandViewSet.as_view({"get": "list", "post": "create"}), name="command-list"),
    path(
        "commands/<str:pk>",
        commands.CommandViewSet.as_view({"get": "retrieve", "put": "update", "delete": "destroy"}),
        name="command-detail",
    ),
    path("commands/<str:pk>/execute", commands.CommandViewSet.as_view({"post": "execute"}), name="command-execute"),
    path(
        "commands/<str:pk>/executions",
        commands.CommandViewSet.as_view({"get": "executions"}),
        name="command-executions",
    ),
    path(
        "notifications/channels",
        notifications.ChannelViewSet.as_view({"get": "list", "post": "create"}),
        name="notification-channel-list",
    ),
    path(
        "notifications/channels/<str:pk>",
        notifications.ChannelViewSet.as_view({"get": "retrieve", "put": "update", "delete": "destroy"}),
        name="notification-channel-detail",
    ),
    path("notifications/test", notifications.NotificationTestView.as_view(), name="notification-test"),
]
