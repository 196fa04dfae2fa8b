"""system-backup-recovery.rst conventions: bare JSON bodies, each list under its own key
with ``total`` (``limit``); errors ``{"error": {code, message, details, timestamp}}`` with
the seed's codes; 60 requests per minute per IP ("Rate Limiting")."""

from __future__ import annotations

from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle

from backupplatform.facades.base import ErrorInfo, Facade, FacadeAPIView, FacadeViewSet
from backupplatform.facades.pagination import int_param
from backupplatform.isotime import utc_now_iso
from tenants import capabilities


class ConsolePagination(BasePagination):
    """``limit`` (default 50); the list goes under the view's ``list_key``."""

    default_limit = 50
    max_limit = 1000

    def paginate_queryset(self, queryset, request, view=None):
        self.limit = int_param(request, "limit", self.default_limit, minimum=1, maximum=self.max_limit)
        self.total = queryset.count() if not isinstance(queryset, list) else len(queryset)
        self.key = getattr(view, "list_key", "items")
        return list(queryset[: self.limit])

    def get_paginated_response(self, data):
        response = Response({self.key: data, "total": self.total})
        response.enveloped = True
        return response

    def get_paginated_response_schema(self, schema):
        return {"type": "object", "properties": {"items": schema, "total": {"type": "integer"}}}

    def get_schema_operation_parameters(self, view):
        return [{"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "default": 50}}]


class ConsoleIPThrottle(SimpleRateThrottle):
    scope = "console"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def error_details(details) -> dict:
    """``error.details`` is always an object, so a page reads it one way: the seed's own
    example is a sentence, which goes under ``reason``; nothing to add is ``{}``."""
    if details is None:
        return {}
    if isinstance(details, dict):
        return details
    if isinstance(details, list | tuple):
        return {"errors": list(details)}
    return {"reason": str(details)}


class ConsoleFacade(Facade):
    name = "console"
    paginator_class = ConsolePagination
    throttle_classes = (ConsoleIPThrottle,)
    codes = {404: "NOT_FOUND", 422: "VALIDATION_ERROR"}
    code_aliases = {"TOO_MANY_OPERATIONS": "RATE_LIMITED"}

    def error_body(self, error: ErrorInfo) -> dict:
        return {
            "error": {
                "code": error.code,
                "message": error.message,
                "details": error_details(error.details),
                "timestamp": utc_now_iso(),
            }
        }

    def error_schema(self) -> dict:
        return {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message", "details", "timestamp"],
                    "properties": {
                        "code": {"type": "string", "example": "BACKUP_NOT_FOUND"},
                        "message": {"type": "string"},
                        "details": {
                            "type": "object",
                            "additionalProperties": True,
                            "description": "Always an object: the fields at fault, or what explains the error "
                            "(``{}`` when the message says it all)",
                        },
                        "timestamp": {"type": "string", "format": "date-time"},
                    },
                }
            },
        }


CONSOLE = ConsoleFacade()


class ConsoleView(FacadeAPIView):
    facade = CONSOLE
    feature = capabilities.BACKUPS  # the whole console is backup and recovery (tenants/capabilities.py)


class ConsoleViewSet(FacadeViewSet):
    facade = CONSOLE
    feature = capabilities.BACKUPS
