"""WebSocket consumers: they authenticate the caller, join the tenant groups it may see and
forward what ``audit.services.emit()`` and the progress writers publish there
(CONVENTIONS.md "Channels"); they leave a tenant whose access the caller loses."""

from __future__ import annotations

import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.auth import get_user_model

from audit.services import tenant_group

from .models import ApiKey, Membership, Tenant
from .realtime import api_key_group, tenant_access_group, user_group

logger = logging.getLogger(__name__)

UNAUTHENTICATED = 4401
FORBIDDEN = 4403


def _visible_tenant_ids(user: Any, workspace: str | None) -> list[int]:
    api_key = getattr(user, "key", None)
    if api_key is not None:
        live = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True, tenant__is_active=True).exists()
        if not live or (workspace and workspace != api_key.tenant.slug):
            return []
        return [api_key.tenant_id]
    user = get_user_model().objects.filter(pk=user.pk, is_active=True).first()
    if user is None:  # deleted or deactivated since the socket opened
        return []
    if user.is_superuser:
        qs = Tenant.objects.all()
        if workspace:
            qs = qs.filter(slug=workspace)
        return list(qs.values_list("id", flat=True))
    qs = Membership.objects.filter(user=user, is_active=True, tenant__is_active=True)
    if workspace:
        qs = qs.filter(tenant__slug=workspace)
    return list(qs.values_list("tenant_id", flat=True))


visible_tenant_ids = database_sync_to_async(_visible_tenant_ids)


def principal_group(user: Any) -> str:
    api_key = getattr(user, "key", None)
    return api_key_group(api_key.pk) if api_key is not None else user_group(user.pk)


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
        # Where this socket hears that its access changed (membership, user, key, tenant).
        self.groups_joined += [principal_group(user), *(tenant_access_group(t) for t in self.tenant_ids)]
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept(subprotocol=self.scope.get("accept_subprotocol"))

    async def dispatch(self, message: dict) -> None:
        # Channels hops to its one sync thread before every handler, to close stale database
        # connections. Forwarding an event reads no database, and with hundreds of sockets
        # those hops, queued one after another on that thread, were most of a fan-out's time.
        if message["type"] == "event.forward":
            await self.event_forward(message)
        else:
            await super().dispatch(message)

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def access_changed(self, message: dict) -> None:
        """Re-check what this socket may see; leave lost tenants, close when none is left."""
        if getattr(self, "access_closed", False):
            return
        user = self.scope.get("user")
        still = set(await visible_tenant_ids(user, self.scope.get("workspace")))
        lost = [t for t in self.tenant_ids if t not in still]
        for tenant_id in lost:
            for group in [*(tenant_group(tenant_id, s) for s in self.streams), tenant_access_group(tenant_id)]:
                await self.channel_layer.group_discard(group, self.channel_name)
                if group in self.groups_joined:
                    self.groups_joined.remove(group)
        self.tenant_ids = [t for t in self.tenant_ids if t in still]
        if not self.tenant_ids:
            self.access_closed = True
            for group in self.groups_joined:
                await self.channel_layer.group_discard(group, self.channel_name)
            self.groups_joined = []
            await self.close(code=FORBIDDEN)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # The socket is for server pushes; a client may ping to keep it alive.
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def event_forward(self, message: dict) -> None:
        # Events already queued when access was lost are dropped too.
        if getattr(self, "access_closed", False) or (
            "tenant_id" in message and message["tenant_id"] not in self.tenant_ids
        ):
            return
        event = message.get("event") or {}
        if self.types and event.get("type") not in self.types:
            return
        await self.send_json(event)


class PlatformEventsConsumer(TenantEventConsumer):
    """``/ws`` (db-backup-platform.md "WebSocket Events"): backup_progress, server_health,
    notification, and audit events."""
