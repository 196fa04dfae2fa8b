"""Every WebSocket route (``endpoints.tsv`` rows of kind WS)."""

from __future__ import annotations

from channels.generic.websocket import AsyncWebsocketConsumer
from django.urls import path, re_path

from acronis import consumers as acronis_consumers
from backupplatform.facades.console import sockets as console_sockets
from tenants import consumers

websocket_urlpatterns = [
    path("ws", consumers.PlatformEventsConsumer.as_asgi()),
    path("api/acronis/ws", acronis_consumers.AcronisEventsConsumer.as_asgi()),
    # system-backup-recovery.rst "WebSocket API"
    path("ws/backup/updates", console_sockets.UpdatesConsumer.as_asgi()),
    path("ws/backup/notifications", console_sockets.NotificationsConsumer.as_asgi()),
    path("ws/backup/health", console_sockets.HealthConsumer.as_asgi()),
]


UNKNOWN_PATH = 4404


class UnknownPathConsumer(AsyncWebsocketConsumer):
    """A WebSocket path no route serves (a typo, a route still to come): accepted, then closed
    with code 4404 and the reason, instead of the server's HTTP 500 for an application that
    raised."""

    async def connect(self):
        await self.accept()
        reason = f"No WebSocket at {self.scope.get('path', '')[:80]}"
        await self.close(code=UNKNOWN_PATH, reason=reason.encode("utf-8")[:120].decode("utf-8", "ignore"))


# Routed after every real route (asgi.py), so routes added above are always found first.
fallback_urlpatterns = [re_path(r"^", UnknownPathConsumer.as_asgi())]
