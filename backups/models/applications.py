from __future__ import annotations

from django.db import models

from tenants.models import TenantOwnedModel


class Application(TenantOwnedModel):
    """A named group of sources backed up together into one artifact (one restore point).

    Each tenant has a default application; the console facade's "components" are its sources.
    """

    name = models.CharField(max_length=200)
    namespace = models.CharField(max_length=200, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    description = models.TextField(blank=True)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="unique_application_name"),
            models.UniqueConstraint(
                fields=["tenant"], condition=models.Q(is_default=True), name="one_default_application"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class SourceType(models.TextChoices):
    POSTGRESQL = "postgresql", "PostgreSQL database"
    MYSQL = "mysql", "MySQL/MariaDB database"
    SQLITE = "sqlite", "SQLite file"
    PATH = "path", "Files and folders"
    PLATFORM_CONFIG = "platform_config", "Platform configuration"


class Component(models.TextChoices):
    """system-backup-recovery.rst components a source stands for."""

    SYSTEM = "system", "System"
    DATA = "data", "Data"
    CONFIG = "config", "Config"
    DATABASE = "database", "Database"


class Source(TenantOwnedModel):
    """One thing to protect inside an application."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="sources")
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=20, choices=SourceType.choices)
    server = models.ForeignKey(
        "backups.Server", null=True, blank=True, on_delete=models.PROTECT, related_name="sources"
    )
    database_name = models.CharField(max_length=200, blank=True)
    path = models.CharField(max_length=1024, blank=True, help_text="sqlite file or folder to back up")
    include = models.JSONField(default=list, blank=True)
    exclude = models.JSONField(default=list, blank=True)
    component = models.CharField(max_length=20, choices=Component.choices, blank=True)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["application_id", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["application", "name"], name="unique_source_name")]

    def __str__(self) -> str:
        return f"{self.application.name}/{self.name}"
