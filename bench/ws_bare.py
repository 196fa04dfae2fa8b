"""The alternative of ``bench/ws_fanout.py``: bare Channels consumers on the same channel
layer, joining one group and sending on what they receive (no authentication, no scoping)."""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backupplatform.settings.local")
django.setup()

from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

GROUP = "bench-bare"


class BareConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def event_forward(self, message: dict) -> None:
        await self.send_json(message["event"])


application = ProtocolTypeRouter({"websocket": URLRouter([path("ws", BareConsumer.as_asgi())])})
