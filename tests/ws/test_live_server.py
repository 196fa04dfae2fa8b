"""The platform's socket through a real ASGI server (uvicorn) and Redis channel layer."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import websockets
from rest_framework_simplejwt.tokens import AccessToken

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db(transaction=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_asgi(settings, django_db_setup):
    from django.db import connection

    port = free_port()
    env = dict(os.environ)
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        pytest.skip("the live server needs a database the test and server processes share (PostgreSQL)")
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env["DJANGO_SETTINGS_MODULE"] = "backupplatform.settings.test"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "backupplatform.asgi:application",
            "--port",
            str(port),
            "--lifespan",
            "off",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


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
