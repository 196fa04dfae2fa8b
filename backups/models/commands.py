"""Remote command templates and their executions (db-backup-platform.md "Commands")."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from tenants.models import TenantOwnedModel


class CommandTemplate(TenantOwnedModel):
    """A shell command with ``{{variable}}`` placeholders; each value is shell-quoted when
    the command runs, so a value is always one literal argument."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    command_template = models.TextField()
    type = models.CharField(max_length=30, default="shell")
    tags = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="unique_command_name")]

    def __str__(self) -> str:
        return self.name


class ExecutionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    TIMEOUT = "timeout", "Timed out"


class CommandExecution(TenantOwnedModel):
    """One run of a template on a server over SSH: the exact command, output (capped), exit
    code, duration and who ran it."""

    command = models.ForeignKey(CommandTemplate, null=True, on_delete=models.SET_NULL, related_name="executions")
    server = models.ForeignKey("backups.Server", null=True, on_delete=models.SET_NULL, related_name="+")
    command_text = models.TextField()
    variables = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=12, choices=ExecutionStatus.choices, default=ExecutionStatus.PENDING)
    exit_code = models.IntegerField(null=True, blank=True)
    stdout = models.TextField(blank=True)
    stderr = models.TextField(blank=True)
    output_truncated = models.BooleanField(default=False)
    error_message = models.TextField(blank=True)
    timeout_seconds = models.PositiveIntegerField(default=60)
    task_id = models.CharField(max_length=64, blank=True)
    executed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    executed_by_name = models.CharField(max_length=150, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.command_text[:60]} ({self.status})"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.completed_at:
            return round((self.completed_at - self.started_at).total_seconds(), 3)
        return None
