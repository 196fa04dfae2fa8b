"""Models of the Acronis integration: one configuration per tenant, and what the poller
remembers between runs (agents' online streaks, activities' last seen states)."""

from __future__ import annotations

from django.db import models

from backupplatform.fields import EncryptedTextField
from tenants.models import Tenant, TenantOwnedModel

GRANT_CLIENT_CREDENTIALS = "client_credentials"


class AcronisConfig(TenantOwnedModel):
    """A tenant's Acronis API client. ``client_secret`` is encrypted at rest and never returned."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="+")
    base_url = models.URLField(max_length=500)
    client_id = models.CharField(max_length=255)
    client_secret = EncryptedTextField()
    grant_type = models.CharField(max_length=64, default=GRANT_CLIENT_CREDENTIALS)
    # A customer tenant UUID: calls then use a customer-scoped token (cloud API §1).
    tenant_scope = models.CharField(
        max_length=36,
        blank=True,
        default="",
        help_text="Optional customer tenant UUID: read that customer with a customer-scoped token.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "Acronis configuration"
        verbose_name_plural = "Acronis configurations"

    def __str__(self) -> str:
        return f"Acronis config of {self.tenant_id} ({self.base_url})"


class AcronisAgentState(TenantOwnedModel):
    """What the platform saw of one agent: ``online_since`` starts each online streak.

    Acronis exposes no uptime or last-seen field (cloud API §3); the seed's ``uptime`` is
    derived from this: the time since our poller first saw the agent online in its current
    streak, ``None`` when offline or never seen online.
    """

    agent_id = models.CharField(max_length=64)
    hostname = models.CharField(max_length=255, blank=True)
    online = models.BooleanField(default=False)
    online_since = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "agent_id"], name="acronis_agent_state_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.hostname or self.agent_id} ({'online' if self.online else 'offline'})"


class AcronisPollState(TenantOwnedModel):
    """The poller's memory per tenant: last seen ``state/result`` of each backup activity."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="+")
    activity_states = models.JSONField(default=dict, blank=True)
    polled_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Acronis poll state of {self.tenant_id}"
