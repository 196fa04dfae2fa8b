"""ASGI entry point: HTTP (Django) and WebSockets (Channels) in one application."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backupplatform.settings.local")
# Build Django before importing consumers (they import models).
django_asgi_app = get_asgi_application()

from backupplatform.dbpool import use_pool  # noqa: E402

use_pool()  # before the first connection: the ASGI server's connections come from a pool

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from backupplatform.routing import fallback_urlpatterns, websocket_urlpatterns  # noqa: E402
from tenants.ws_auth import WebSocketAuthStack  # noqa: E402


class BrowserOriginValidator(OriginValidator):
    """Browsers always send ``Origin`` on WebSockets: theirs must be one of our hosts (this is
    what protects the session-cookie login). Scripts and dashboards that send no ``Origin``
    authenticate with a token or API key, which a foreign page cannot borrow, so they pass."""

    def valid_origin(self, parsed_origin):
        if parsed_origin is None:
            return True
        return self.validate_origin(parsed_origin)


def allowed_origins() -> list[str]:
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = ["localhost", "127.0.0.1", "[::1]"]
    return hosts + list(settings.CSRF_TRUSTED_ORIGINS)


class _StaticFilesFallback:
    """Serve ``/static/`` (admin, console and Swagger assets) without a web server
    (``SERVE_STATIC``: local mode, the live test server)."""

    def __init__(self, app):
        from django.conf import settings

        self.app = app
        if settings.DEBUG or getattr(settings, "SERVE_STATIC", False):
            from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

            self.app = ASGIStaticFilesHandler(app)

    async def __call__(self, scope, receive, send):
        return await self.app(scope, receive, send)


class _KeysCheckedAtStartup:
    """Answers the ASGI ``lifespan`` startup: the server refuses to start when the tenants'
    backup keys cannot be opened with the configured master key (``backups.keys``)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)
        from asgiref.sync import sync_to_async

        from backups.keys import MasterKeyError, check_keys_at_start

        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await sync_to_async(check_keys_at_start)()
                except MasterKeyError as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


application = _KeysCheckedAtStartup(
    ProtocolTypeRouter(
        {
            "http": _StaticFilesFallback(django_asgi_app),
            "websocket": BrowserOriginValidator(
                WebSocketAuthStack(URLRouter([*websocket_urlpatterns, *fallback_urlpatterns])), allowed_origins()
            ),
        }
    )
)
