"""URL routes: admin, OpenAPI docs, and the five facades (see ``endpoints.tsv``)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest
from django.urls import include, path, re_path
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from backupplatform import health
from backupplatform.facades.base import ErrorInfo, error_json_response, facade_for_request
from backupplatform.metrics import metrics_view
from tenants import signin


def _facade_error(request: HttpRequest, status: int, message: str):
    facade = facade_for_request(request)
    return error_json_response(ErrorInfo(status, facade.code_for(status), message), facade)


@csrf_exempt  # an unknown path is a 404 for every method: no CSRF check stands in front of it
def unknown_api_path(request: HttpRequest, *args, **kwargs):
    """A path under an API's prefix that names no route of it."""
    return _facade_error(request, 404, f"No such endpoint: {request.method} {request.path}")


def handler404(request: HttpRequest, exception: Exception | None = None):
    if facade_for_request(request) is None:
        return defaults.page_not_found(request, exception)
    return _facade_error(request, 404, "Not found")


def handler500(request: HttpRequest):
    if facade_for_request(request) is None:
        return defaults.server_error(request)
    return _facade_error(request, 500, "An unexpected error occurred; it has been logged")


def handler400(request: HttpRequest, exception: Exception | None = None):
    if facade_for_request(request) is None:
        return defaults.bad_request(request, exception)
    return _facade_error(request, 400, "Bad request")


def handler403(request: HttpRequest, exception: Exception | None = None):
    if facade_for_request(request) is None:
        return defaults.permission_denied(request, exception)
    return _facade_error(request, 403, "Forbidden")


urlpatterns = [
    # Liveness of the database, Redis, workers, beat and the reaper (README "Operating the platform").
    path("health/", health.health, name="health"),
    # The operators' console is the admin; its home is the overview.
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
    # Admin sign-in with a second factor where required (tenants/signin.py), before the admin's own.
    path("admin/login/", signin.SignInView.as_view(), name="signin-login"),
    path("admin/two-factor/", signin.TwoFactorView.as_view(), name="signin-two-factor"),
    path("admin/two-factor/setup/", signin.TwoFactorSetupView.as_view(), name="signin-two-factor-setup"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("api/acronis/", include("backupplatform.facades.acronis.urls")),
    # system-backup-recovery.rst "Versioning": /cloud-integration/v1/backup/... is the same API
    # (v1 is the current version); its routes are named in the "console-v1" namespace.
    path("cloud-integration/backup/", include("backupplatform.facades.console.urls")),
    path(
        "cloud-integration/v1/backup/",
        include(("backupplatform.facades.console.urls", "console"), namespace="console-v1"),
    ),
    path("api/v1/workspaces/<str:ws_id>/", include("backupplatform.facades.workspace.urls")),
    path("api/v1/", include("backupplatform.facades.jobs.urls")),
    path("api/v1/", include("backupplatform.facades.platform.urls")),
    # Prometheus (README "Notifications, webhooks, commands and metrics"), behind METRICS_TOKEN.
    path("metrics", metrics_view, name="metrics"),
    # OpenID Connect single sign-on (only when OIDC_RP_CLIENT_ID is set).
    *([path("oidc/", include("mozilla_django_oidc.urls"))] if settings.OIDC_ENABLED else []),
    # Last: any other path under an API's prefix is that API's 404, in its error body, also
    # with DEBUG on (where Django would answer with its HTML page listing every route).
    re_path(r"^(?:api|cloud-integration)/", unknown_api_path),
]
