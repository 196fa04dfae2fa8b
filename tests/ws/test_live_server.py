"""The platform's socket through a real ASGI server (uvicorn) and Redis channel layer."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
import websockets
from rest_framework_simplejwt.tokens import AccessToken

from tests.support.live_asgi import start_asgi, stop

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def live_asgi(settings, django_db_setup):
    proc, port = start_asgi()
    yield f"127.0.0.1:{port}"
    stop(proc)


def test_event_travels_from_http_write_to_socket_through_redis(live_asgi, admin_a):
    token = str(AccessToken.for_user(admin_a))

    async def scenario():
        async with websockets.connect(f"ws://{live_asgi}/ws?token={token}") as ws:
            request = urllib.request.Request(
                f"http://{live_asgi}/api/v1/api-keys",
                method="POST",
                data=json.dumps({"name": "live", "role": "viewer"}).encode(),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            body = await asyncio.get_running_loop().run_in_executor(
                None, lambda: urllib.request.urlopen(request).read()
            )
            raw_key = json.loads(body)["data"]["key"]
            event = json.loads(await asyncio.wait_for(ws.recv(), 10))
            return raw_key, event

    raw_key, event = asyncio.run(scenario())
    assert event["type"] == "audit" and event["action"] == "apikey_create"
    assert raw_key not in json.dumps(event)


def test_unauthenticated_live_socket_gets_close_code_4401(live_asgi):
    async def scenario():
        async with websockets.connect(f"ws://{live_asgi}/ws") as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            return closed.value.rcvd.code

    assert asyncio.run(scenario()) == 4401
