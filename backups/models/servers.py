from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from backupplatform.fields import EncryptedJSONField
from tenants.models import TenantOwnedModel


class ServerType(models.TextChoices):
    POSTGRESQL = "postgresql", "PostgreSQL"
    MYSQL = "mysql", "MySQL / MariaDB"
    SSH = "ssh", "SSH"
    DOCKER = "docker", "Docker"
    LOCAL = "local", "Local"


class HealthStatus(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    HEALTHY = "healthy", "Healthy"
    UNHEALTHY = "unhealthy", "Unhealthy"


class Server(TenantOwnedModel):
    """A machine or database server (db-backup-platform.md "Servers").

    ``credentials`` (username, password, ssh_key) are encrypted at rest and never returned.
    """

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    type = models.CharField(max_length=20, choices=ServerType.choices)
    environment = models.CharField(max_length=50, blank=True)
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField(validators=[MinValueValidator(1), MaxValueValidator(65535)])
    tags = models.JSONField(default=dict, blank=True)
    credentials = EncryptedJSONField(default=dict, blank=True)
    health_status = models.CharField(max_length=20, choices=HealthStatus.choices, default=HealthStatus.UNKNOWN)
    health_message = models.CharField(max_length=500, blank=True)
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="unique_server_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.type} {self.host}:{self.port})"
