"""Every WebSocket route (``endpoints.tsv`` rows of kind WS)."""

from __future__ import annotations

from django.urls import path

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
