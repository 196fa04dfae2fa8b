"""The append-only audit log."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from tenants.models import Tenant


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

    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # An action done with an API key has no user: the key is the actor (``actor_name`` is
    # ``apikey:<name>``). No constraint, nothing done on delete: the log keeps the key's id
    # after the key row is gone, and an audit row is never updated.
    api_key = models.ForeignKey(
        "tenants.ApiKey", null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False,
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
