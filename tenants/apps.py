from __future__ import annotations

from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants and access"

    def ready(self) -> None:
        from . import (
            schema,  # noqa: F401  (registers the OpenAPI auth extensions)
            signals,  # noqa: F401  (tells open WebSockets when access changes)
        )
