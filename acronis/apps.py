from __future__ import annotations

from django.apps import AppConfig


class AcronisConfig(AppConfig):
    name = "acronis"
