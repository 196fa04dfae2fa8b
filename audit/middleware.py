"""Binds the audit context (actor, IP) to each request, for the admin and the APIs."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from . import context


def client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


class AuditContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        source = "admin" if request.path.startswith("/admin/") else "api"
        with context.acting(
            user=user if user is not None and user.is_authenticated else None,
            ip=client_ip(request),
            auth_method="session" if user is not None and user.is_authenticated else "",
            source=source,
        ):
            return self.get_response(request)
