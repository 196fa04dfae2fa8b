"""Every WebSocket route (``endpoints.tsv`` rows of kind WS)."""

from __future__ import annotations

from django.urls import path

from acronis import consumers as acronis_consumers
from audit import consumers

websocket_urlpatterns = [
    path("ws", consumers.PlatformEventsConsumer.as_asgi()),
    path("api/acronis/ws", acronis_consumers.AcronisEventsConsumer.as_asgi()),
]
