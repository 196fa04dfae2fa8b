"""The jobs API's own listener (api-layer.md, ``localhost:5000``; backupplatform/listeners.py):
its routes at the document's paths, ``/api/v1/backups`` being backup jobs; the Acronis API,
whose document also uses that port; the OpenAPI schema and docs of what is served here."""

from __future__ import annotations

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from backupplatform.facades.jobs.urls import listener_urlpatterns
from backupplatform.urls import handler400, handler403, handler404, handler500, unknown_api_path

urlpatterns = [
    path("api/schema/", SpectacularAPIView.as_view(urlconf="backupplatform.urls_jobs"), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("api/acronis/", include("backupplatform.facades.acronis.urls")),
    path("api/v1/", include(listener_urlpatterns)),
    re_path(r"^api/", unknown_api_path),
]

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
