"""WSGI entry point (HTTP only; the platform normally runs under ASGI, see asgi.py)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backupplatform.settings.local")
application = get_wsgi_application()
