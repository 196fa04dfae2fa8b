from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    # system-backup-recovery.rst "Scheduled Backups (SECTION 2)"
    path("schedules", views.SchedulesView.as_view(), name="console-schedules"),
    path("schedules/update", views.ScheduleUpdateView.as_view(), name="console-schedule-update"),
    path("schedules/toggle", views.ScheduleToggleView.as_view(), name="console-schedule-toggle"),
    # "Cleanup Operations"
    path("cleanup", views.CleanupView.as_view(), name="console-cleanup"),
    path("cleanup/execute", views.CleanupExecuteView.as_view(), name="console-cleanup-execute"),
    path("cleanup/progress/<str:cleanup_id>", views.CleanupProgressView.as_view(), name="console-cleanup-progress"),
]
