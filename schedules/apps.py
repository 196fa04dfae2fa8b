from __future__ import annotations

from django.apps import AppConfig


class SchedulesConfig(AppConfig):
    name = "schedules"

    def ready(self) -> None:
        from backups import signals

        from . import configuration, hooks, notices

        signals.backup_completed.connect(hooks.on_backup_completed, dispatch_uid="schedules-backup-completed")
        signals.backup_reaped.connect(hooks.on_backup_reaped, dispatch_uid="schedules-backup-reaped")
        configuration.register()  # retention policies and schedules in configuration snapshots
        notices.register()  # what notifications say about jobs
