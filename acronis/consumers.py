"""``/api/acronis/ws`` (acronis-integration.md "WebSocket Support"): ``backup_status_update``
events of the caller's tenant, published by the poller on the ``acronis`` stream."""

from __future__ import annotations

from tenants.consumers import TenantEventConsumer


class AcronisEventsConsumer(TenantEventConsumer):
    streams = ("acronis",)
    types = frozenset({"backup_status_update"})
