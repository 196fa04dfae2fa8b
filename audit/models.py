"""The append-only audit log."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from backupplatform.fields import EncryptedJSONField, EncryptedTextField
from backupplatform.tenancy import TenantQuerySet


class AppendOnlyError(Exception):
    """Raised on any attempt to change or delete an audit event."""


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):  # type: ignore[override]
        raise AppendOnlyError("Audit events are append-only")

    def delete(self):  # type: ignore[override]
        raise AppendOnlyError("Audit events are append-only")


class AuditEvent(models.Model):
    """Something that happened: who, in which tenant, did what to which resource, from where.

    Written only through ``audit.services.emit()``; never updated or deleted (the queryset
    and the model refuse; a tenant's events go away only with the tenant itself).
    """

    tenant = models.ForeignKey("tenants.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # An action done with an API key has no user: the key is the actor (``actor_name`` is
    # ``apikey:<name>``). No constraint, nothing done on delete: the log keeps the key's id
    # after the key row is gone, and an audit row is never updated.
    api_key = models.ForeignKey(
        "tenants.ApiKey",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_name = models.CharField(max_length=150, blank=True)
    auth_method = models.CharField(max_length=20, blank=True)
    action = models.CharField(max_length=100, db_index=True)
    resource_type = models.CharField(max_length=50, blank=True, db_index=True)
    resource_id = models.CharField(max_length=64, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    source = models.CharField(max_length=20, default="api")
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = AuditEventQuerySet.as_manager()
    # The audit log's total is cached until the next event (backupplatform/counting.py).
    counted = True

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} {self.resource_type}:{self.resource_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise AppendOnlyError("Audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Audit events are append-only")


# --- notification channels, webhooks and their deliveries (DESIGN.md "Work and progress") ------


class ChannelType(models.TextChoices):
    SLACK = "slack", "Slack"
    TEAMS = "teams", "Microsoft Teams"
    DISCORD = "discord", "Discord"
    EMAIL = "email", "E-mail"
    WEBHOOK = "webhook", "Generic webhook (JSON POST)"
    TELEGRAM = "telegram", "Telegram"


class Level(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    ERROR = "error", "Error"
    CRITICAL = "critical", "Critical"


LEVEL_RANK = {Level.INFO: 0, Level.WARNING: 1, Level.ERROR: 2, Level.CRITICAL: 3}


class NotificationChannel(models.Model):
    """Where people hear about events (db-backup-platform.md "Notifications").

    ``config`` (webhook URLs, bot tokens, SMTP passwords, addresses) is encrypted at rest as a
    whole and never returned: responses show its public keys and ``[HIDDEN]`` for secrets.
    A channel whose deliveries keep failing is flagged (``failing_since``), never disabled.
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=20, choices=ChannelType.choices)
    config = EncryptedJSONField(default=dict, blank=True)
    is_enabled = models.BooleanField(default=True)
    event_types = models.JSONField(default=list, blank=True)
    min_level = models.CharField(max_length=10, choices=Level.choices, default=Level.INFO)
    consecutive_failures = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=1000, blank=True)
    last_delivered_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="unique_channel_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.type})"


class Webhook(models.Model):
    """A URL subscribed to event types (api-layer.md "Webhook support for events").

    Deliveries are signed with HMAC-SHA256 using ``secret`` (shown once, at creation).
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=500, blank=True)
    event_types = models.JSONField(default=list)
    secret = EncryptedTextField()
    is_active = models.BooleanField(default=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=1000, blank=True)
    last_delivered_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.url


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RETRYING = "retrying", "Retrying"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
    SUPPRESSED = "suppressed", "Suppressed"


class Delivery(models.Model):
    """One message to one channel or webhook, with every attempt's outcome.

    ``payload`` is what is sent (for a webhook, the exact body that is signed), so a retry
    sends the same message with the same id.
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    channel = models.ForeignKey(
        NotificationChannel, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    webhook = models.ForeignKey(Webhook, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(AuditEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    event_type = models.CharField(max_length=60, db_index=True)
    public_id = models.CharField(max_length=40, unique=True)
    payload = models.JSONField(default=dict)
    status = models.CharField(
        max_length=12, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=1000, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    give_up_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.event_type} -> {self.channel or self.webhook} ({self.status})"


class NotificationGroup(models.Model):
    """Repeated identical events to one channel within a window: the first is sent, the
    rest are counted and summed up in one message when the window ends."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="+")
    event_type = models.CharField(max_length=60)
    key = models.CharField(max_length=200)
    window_ends_at = models.DateTimeField()
    suppressed = models.PositiveIntegerField(default=0)
    first_at = models.DateTimeField(null=True, blank=True)
    last_notice = models.JSONField(default=dict, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["channel", "event_type", "key"], name="unique_notice_group")]
        indexes = [models.Index(fields=["window_ends_at"])]

    def __str__(self) -> str:
        return f"{self.event_type} {self.key} (+{self.suppressed})"
