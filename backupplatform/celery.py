"""The Celery application shared by the worker, beat and the web processes."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backupplatform.settings.local")

app = Celery("backupplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
