"""What the five facades share.

A facade is configuration, not code per view: a ``Facade`` object says how successes are
wrapped (envelope), how errors look (error body and codes), how lists paginate and which
throttles apply. A view declares its facade once by inheriting the facade's base view
(``PlatformView``, ``JobsViewSet``...), and everything else follows from here:

- ``FacadeMixin.finalize_response`` wraps successful bodies in the facade's envelope;
- ``FacadeMixin.get_exception_handler`` renders every error (validation, 401, 403, 404,
  405, 413, 415, 429, domain errors, unexpected errors) in the facade's error body;
- ``handler404``/``handler500`` in ``backupplatform.urls`` do the same for requests that
  never reach a view, choosing the facade from the path and listener (``facade_for_request``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, JsonResponse
from rest_framework import exceptions, viewsets
from rest_framework.pagination import BasePagination
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import context as audit_context
from backupplatform.errors import DomainError, NotFound, ValidationFailed
from backupplatform.ids import parse_id
from tenants import capabilities
from tenants.models import Role, role_at_least
from tenants.scoping import TenantContextMixin

logger = logging.getLogger(__name__)


# Default error codes by HTTP status; a facade overrides the ones its seed names differently.
DEFAULT_CODES: dict[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "REQUEST_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


@dataclass
class ErrorInfo:
    """An error, independent of how a facade shows it."""

    status: int
    code: str
    message: str
    details: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    # For validation errors: ``{field: [messages]}`` as DRF produced them, and where the
    # fields are ("body", "query", "path").
    field_errors: Any = None
    location: str = "body"


class Facade:
    """One API surface's conventions. Subclasses describe a seed's documented shapes."""

    name = "base"
    codes: dict[int, str] = {}
    code_aliases: dict[str, str] = {}
    validation_status = 400
    validation_code = "VALIDATION_ERROR"
    validation_message = "Invalid request data"
    malformed_code = "BAD_REQUEST"
    paginator_class: type[BasePagination] | None = None
    throttle_classes: tuple[type, ...] = ()

    # --- success -------------------------------------------------------------------
    def envelope(self, data: Any, *, message: str | None = None, extra: dict | None = None) -> Any:
        """Wrap a successful body. The default returns it as it is."""
        if extra:
            return {**data, **extra} if isinstance(data, dict) else data
        return data

    def envelope_schema(self, schema: dict) -> dict:
        return schema

    # --- errors --------------------------------------------------------------------
    def code_for(self, status_code: int, code: str | None = None) -> str:
        if code:
            return self.code_aliases.get(code, code)
        return self.codes.get(status_code) or DEFAULT_CODES.get(status_code, "ERROR")

    def error_body(self, error: ErrorInfo) -> dict:
        raise NotImplementedError

    def error_schema(self) -> dict:
        raise NotImplementedError


def _flatten_messages(detail: Any) -> Any:
    """DRF ErrorDetail trees -> plain str / list / dict."""
    if isinstance(detail, dict):
        return {str(k): _flatten_messages(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_flatten_messages(v) for v in detail]
    return str(detail)


def _first_message(detail: Any) -> str:
    if isinstance(detail, dict):
        for value in detail.values():
            return _first_message(value)
        return ""
    if isinstance(detail, list):
        return _first_message(detail[0]) if detail else ""
    return str(detail)


def error_info_from_exception(exc: BaseException, facade: Facade) -> ErrorInfo:
    """Classify any exception into an ``ErrorInfo``; unknown ones become a logged 500."""
    if isinstance(exc, ValidationFailed) and isinstance(exc.details, dict):
        fields = {k: v if isinstance(v, list) else [v] for k, v in exc.details.items()}
        return ErrorInfo(
            facade.validation_status,
            facade.code_for(
                facade.validation_status, exc.code if exc.code != "VALIDATION_ERROR" else facade.validation_code
            ),
            exc.message if exc.message != ValidationFailed.default_message else facade.validation_message,
            fields,
            field_errors=fields,
            location=getattr(exc, "location", "body"),
        )
    if isinstance(exc, DomainError):
        return ErrorInfo(exc.status, facade.code_for(exc.status, exc.code), exc.message, exc.details, dict(exc.headers))
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        return ErrorInfo(413, facade.code_for(413), "The request body is too large")
    elif isinstance(exc, SuspiciousOperation):
        return ErrorInfo(400, facade.code_for(400, facade.malformed_code), "The request is not acceptable")

    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten_messages(exc.detail)
        if not isinstance(fields, dict):
            fields = {"non_field_errors": fields if isinstance(fields, list) else [fields]}
        return ErrorInfo(
            facade.validation_status,
            facade.code_for(facade.validation_status, facade.validation_code),
            facade.validation_message,
            fields,
            field_errors=fields,
        )
    if isinstance(exc, exceptions.ParseError):
        return ErrorInfo(400, facade.code_for(400, facade.malformed_code), f"Malformed request body: {exc.detail}")
    if isinstance(exc, exceptions.APIException):
        headers: dict[str, str] = {}
        details = None
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(max(1, math.ceil(exc.wait)))
            details = {"retry_after": int(headers["Retry-After"])}
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            headers["WWW-Authenticate"] = 'Bearer realm="api"'
        message = _first_message(exc.detail) if not isinstance(exc.detail, str) else str(exc.detail)
        return ErrorInfo(exc.status_code, facade.code_for(exc.status_code), message, details, headers)

    logger.exception("Unexpected error in %s facade", facade.name, exc_info=exc)
    return ErrorInfo(500, facade.code_for(500), "An unexpected error occurred; it has been logged")


def error_response(error: ErrorInfo, facade: Facade) -> Response:
    response = Response(facade.error_body(error), status=error.status, headers=error.headers)
    response.enveloped = True
    return response


def error_json_response(error: ErrorInfo, facade: Facade) -> JsonResponse:
    """The same error body for plain Django responses (no DRF view involved)."""
    response = JsonResponse(facade.error_body(error), status=error.status, safe=False)
    for key, value in error.headers.items():
        response[key] = value
    return response


def _nul_locations(value: Any, where: str) -> list[str]:
    """Where ``value`` (a parsed JSON body or a parameter) holds a NUL character."""
    if isinstance(value, str):
        return [where] if "\x00" in value else []
    if isinstance(value, dict):
        found = [where] if any(isinstance(k, str) and "\x00" in k for k in value) else []
        for key, item in value.items():
            found += _nul_locations(item, f"{where}.{key}" if where else str(key))
        return found
    if isinstance(value, list):
        found = []
        for index, item in enumerate(value):
            found += _nul_locations(item, f"{where}[{index}]" if where else f"[{index}]")
        return found
    return []


def reject_nul_characters(request, kwargs: dict) -> None:
    """PostgreSQL stores no NUL character in text or JSON: refuse it in the path, the query
    and the body as a validation error instead of failing in the database (a 500)."""
    found: list[str] = []
    for name, value in kwargs.items():
        found += _nul_locations(value, str(name))
    for name in request.query_params:
        found += [name] if "\x00" in name else []
        for value in request.query_params.getlist(name):
            found += _nul_locations(value, name)
    if request.content_type and request.content_type.startswith("application/json"):
        found += _nul_locations(request.data, "")
    if found:
        raise ValidationFailed(details={where or "body": ["Null characters are not allowed."] for where in found[:20]})


# --- permissions -----------------------------------------------------------------------


class RolePermission(BasePermission):
    """Enforce the role a view asks for (viewer reads; operator runs; admin manages).

    A view says which role each action or method needs through ``roles`` (a dict keyed by
    viewset action or HTTP method); safe methods default to ``viewer``, others to ``admin``.
    Superusers are platform operators and pass.
    """

    message = "Your role does not allow this action"

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        needed = view.required_role(request)
        if needed is None:
            return True
        if getattr(request.user, "is_superuser", False):
            return True
        return role_at_least(getattr(request, "role", None), needed)


# --- views -----------------------------------------------------------------------------


class FacadeMixin(TenantContextMixin):
    """Declares a view's facade: envelope, error body, pagination, throttles, tenancy, roles."""

    facade: Facade
    roles: dict[str, str | None] = {}
    permission_classes = [IsAuthenticated, RolePermission]
    # Message shown in envelopes that carry one (api-layer.md ``message``).
    success_message: str | None = None

    # The plan feature this view belongs to (tenants/capabilities.py): a workspace whose plan
    # lacks it gets 403 ``FEATURE_NOT_AVAILABLE`` in this facade's error body, reads included.
    feature: str | None = None
    # ``(message, code)`` of this view's object when the URL names none of the caller's: a
    # malformed id and an unknown one are the same answer, one code per kind of object.
    not_found: tuple[str, str] | None = None

    def parse_lookup(self, value: Any) -> Any:
        """The lookup value in the URL as the database sees it (``None``: no such object)."""
        return parse_id(value)

    def get_object(self):
        if self.not_found is None:
            return super().get_object()
        lookup_field = getattr(self, "lookup_field", "pk")
        value = self.parse_lookup(self.kwargs.get(getattr(self, "lookup_url_kwarg", None) or lookup_field))
        obj = None
        if value is not None:
            queryset = self.get_queryset()
            if hasattr(self, "filter_queryset"):
                queryset = self.filter_queryset(queryset)
            obj = queryset.filter(**{lookup_field: value}).first()
        if obj is None:
            raise NotFound(self.not_found[0], code=self.not_found[1])
        self.check_object_permissions(self.request, obj)
        return obj

    def get_throttles(self):
        return [cls() for cls in (*self.facade.throttle_classes, *getattr(self, "extra_throttles", ()))]

    @property
    def pagination_class(self):
        """The facade's paginator, unless the view says its seed shows a plain array."""
        return None if getattr(self, "unpaginated", False) else self.facade.paginator_class

    def required_role(self, request) -> str | None:
        action = getattr(self, "action", None)
        if action and action in self.roles:
            return self.roles[action]
        if request.method in self.roles:
            return self.roles[request.method]
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return Role.VIEWER
        return Role.ADMIN

    def check_permissions(self, request) -> None:
        self.resolve_tenant_context(request)
        if getattr(request, "tenant_ambiguous", False) and self.required_role(request) is not None:
            self.require_tenant()  # several workspaces and none named: say how to choose
        audit_context.set_context(
            user=request.user if getattr(request.user, "pk", None) else None,
            auth_method=getattr(request, "auth_method", ""),
            api_key=getattr(request, "api_key", None),
        )
        if self.feature and request.user and request.user.is_authenticated:
            # The plan before the role: a workspace without the feature has none of it, whoever asks.
            capabilities.require_feature(getattr(request, "tenant", None), self.feature)
        super().check_permissions(request)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication, permissions, throttles
        reject_nul_characters(request, kwargs)

    def get_exception_handler(self) -> Callable:
        facade = self.facade

        def handler(exc: BaseException, context: dict) -> Response:
            return error_response(error_info_from_exception(exc, facade), facade)

        return handler

    def handle_exception(self, exc):
        # Unlike DRF's default, an unauthenticated call is always a 401 (never a 403), and
        # the handler answers every exception (unexpected ones were logged as 500s).
        response = self.get_exception_handler()(exc, self.get_exception_handler_context())
        response.exception = True
        return response

    def envelope_response(self, response: Response) -> Response:
        if getattr(response, "enveloped", False) or response.status_code >= 400:
            return response
        if response.status_code == 204:
            return response
        response.data = self.facade.envelope(
            response.data,
            message=getattr(response, "message", None) or self.success_message,
            extra=getattr(response, "extra", None),
        )
        response.enveloped = True
        return response

    def finalize_response(self, request, response, *args, **kwargs):
        if isinstance(response, Response):
            response = self.envelope_response(response)
        return super().finalize_response(request, response, *args, **kwargs)


class FacadeAPIView(FacadeMixin, APIView):
    """A plain view of a facade."""


class FacadeViewSet(FacadeMixin, viewsets.GenericViewSet):
    """A viewset of a facade; list/retrieve helpers come from ``FacadeListMixin`` etc."""


def respond(
    data: Any = None,
    *,
    status_code: int = 200,
    message: str | None = None,
    extra: dict | None = None,
    headers: dict | None = None,
) -> Response:
    """A success ``Response`` that the facade envelope will wrap (with a message if any)."""
    response = Response(data, status=status_code, headers=headers)
    response.message = message
    response.extra = extra
    return response


def enveloped(data: Any, *, status_code: int = 200, headers: dict | None = None) -> Response:
    """A ``Response`` whose body is final (already in the facade's shape)."""
    response = Response(data, status=status_code, headers=headers)
    response.enveloped = True
    return response


# --- facade lookup by path (for 404/500 outside views, and the WebSocket router) ----------

_PATH_FACADES: list[tuple[Callable[[str], bool], str]] = [
    (lambda p: p.startswith("/api/acronis"), "acronis"),
    (lambda p: p.startswith("/cloud-integration"), "console"),
    (lambda p: p.startswith("/api/v1/workspaces/"), "workspace"),
    (
        lambda p: any(
            p == f"/api/v1/{s}" or p.startswith(f"/api/v1/{s}/")
            for s in ("jobs", "storage", "verify", "api-keys", "webhooks")
        ),
        "jobs",
    ),
    (lambda p: p.startswith("/api/"), "platform"),
]


def facade_for_path(path: str) -> Facade | None:
    from backupplatform.facades.registry import FACADES

    for matches, name in _PATH_FACADES:
        if matches(path):
            return FACADES[name]
    return None


def facade_for_request(request) -> Facade | None:
    """``facade_for_path``, except on the jobs API's listener, where every ``/api/v1`` path is
    the jobs API's (``/api/v1/backups`` are backup jobs there)."""
    from backupplatform.facades.registry import FACADES
    from backupplatform.listeners import JOBS_URLCONF

    path = request.path
    if getattr(request, "urlconf", None) == JOBS_URLCONF and path.startswith("/api/v1/"):
        return FACADES["jobs"]
    return facade_for_path(path)
