from __future__ import annotations

from django.apps import AppConfig


class BackupplatformConfig(AppConfig):
    name = "backupplatform"
    verbose_name = "Platform"
