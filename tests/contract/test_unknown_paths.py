"""Paths nothing serves: an API's own 404 body (also with DEBUG on, where Django would show its
HTML page listing every route), and a clean close for WebSocket paths."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client

from backupplatform.asgi import application


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize(
    ("path", "shape"),
    [
        ("/api/v1/nothing-here", {"detail", "code", "timestamp"}),
        ("/api/v1/servers/", {"detail", "code", "timestamp"}),
        ("/api/v1/workspaces/alpha/nothing", {"error"}),
        ("/api/v1/jobs/1/nothing", {"success", "error", "message", "details"}),
        ("/cloud-integration/backup/nothing", {"error"}),
        ("/api/acronis/nothing", {"success", "error", "error_code", "timestamp", "help", "details"}),
    ],
)
def test_an_unknown_api_path_is_that_apis_404(db, settings, debug, path, shape):
    settings.DEBUG = debug
    for method in ("get", "post", "delete"):
        response = getattr(Client(raise_request_exception=False), method)(path)
        assert response.status_code == 404, (method, response.content[:200])
        assert response["Content-Type"] == "application/json" and set(response.json()) == shape


def test_the_jobs_listener_answers_unknown_paths_in_the_jobs_format(db, settings):
    settings.JOBS_API_PORTS = [5000]
    response = Client().get("/api/v1/servers", SERVER_PORT="5000")  # the platform's, not served there
    assert response.status_code == 404 and response.json()["success"] is False
    assert response.json()["error"] == "NOT_FOUND"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/ws/backup/nothing-here", "/ws/nothing", "/api/acronis/ws/x", "/"])
async def test_an_unknown_websocket_path_is_closed_cleanly(path):
    socket = WebsocketCommunicator(application, path)
    connected, _ = await socket.connect(timeout=5)
    assert connected
    closed = await socket.receive_output(timeout=5)
    assert closed["type"] == "websocket.close" and closed["code"] == 4404
    assert path in closed["reason"]
