"""The backup platform's Django project: settings, URLs, ASGI, Celery and the API facades."""

from __future__ import annotations

from .celery import app as celery_app

__all__ = ("celery_app",)
