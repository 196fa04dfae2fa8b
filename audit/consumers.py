"""WebSocket consumers: they join the caller's tenant groups and forward what ``emit()`` and
the progress writers publish there (CONVENTIONS.md "Channels")."""

from __future__ import annotations

import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from tenants.models import Membership, Tenant

from .services import tenant_group

logger = logging.getLogger(__name__)

UNAUTHENTICATED = 4401
FORBIDDEN = 4403


@database_sync_to_async
def visible_tenant_ids(user: Any, workspace: str | None) -> list[int]:
    """Tenants whose events this user may receive (optionally narrowed to one workspace)."""
    api_key = getattr(user, "key", None)
    if api_key is not None:
        ids = [api_key.tenant_id]
        if workspace and workspace != api_key.tenant.slug:
            return []
        return ids
    if user.is_superuser:
        qs = Tenant.objects.all()
        if workspace:
            qs = qs.filter(slug=workspace)
        return list(qs.values_list("id", flat=True))
    qs = Membership.objects.filter(user=user, is_active=True, tenant__is_active=True)
    if workspace:
        qs = qs.filter(tenant__slug=workspace)
    return list(qs.values_list("tenant_id", flat=True))


class TenantEventConsumer(AsyncJsonWebsocketConsumer):
    """Forwards a tenant's events of the given ``streams`` and ``types`` to the socket.

    ``types`` empty means every type. Subclasses narrow what a route shows.
    """

    streams: tuple[str, ...] = ("updates",)
    types: frozenset[str] = frozenset()

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Accept, then close with an application code the client can read (a refused
            # handshake would only show as HTTP 403 to most clients).
            await self.accept()
            await self.close(code=UNAUTHENTICATED)
            return
        self.tenant_ids = await visible_tenant_ids(user, self.scope.get("workspace"))
        if not self.tenant_ids and self.scope.get("workspace"):
            await self.accept()
            await self.close(code=FORBIDDEN)
            return
        self.groups_joined = [tenant_group(t, s) for t in self.tenant_ids for s in self.streams]
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept(subprotocol=self.scope.get("accept_subprotocol"))

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # The socket is for server pushes; a client may ping to keep it alive.
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def event_forward(self, message: dict) -> None:
        event = message.get("event") or {}
        if self.types and event.get("type") not in self.types:
            return
        await self.send_json(event)


class PlatformEventsConsumer(TenantEventConsumer):
    """``/ws`` (db-backup-platform.md "WebSocket Events"): backup_progress, server_health,
    notification, and audit events."""
