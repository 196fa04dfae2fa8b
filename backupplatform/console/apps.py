"""The admin app with the console's site as its default site."""

from __future__ import annotations

from django.contrib.admin.apps import AdminConfig


class ConsoleAdminConfig(AdminConfig):
    default_site = "backupplatform.console.site.ConsoleAdminSite"
