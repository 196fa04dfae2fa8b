"""acronis-integration.md conventions: ``{success, data, timestamp}`` (lists add ``count``
and ``pagination``, cached data adds ``cache_info``); errors ``{success: false, error,
error_code, timestamp, help, details}`` with ``ACRONIS_*`` codes."""

from __future__ import annotations

import math

from rest_framework.response import Response

from backupplatform.facades.base import ErrorInfo, Facade, FacadeAPIView, FacadeViewSet
from backupplatform.facades.pagination import PagePagination
from backupplatform.isotime import utc_now_iso

HELP = {
    400: "Check the request parameters against the API documentation.",
    401: "Log in again or send a valid access token or API key.",
    403: "Ask a workspace admin for the role this action needs.",
    404: "Check the URL; this resource does not exist in your workspace.",
    405: "Use one of the methods this endpoint documents.",
    413: "Send a smaller request body.",
    429: "Wait before retrying; the Retry-After header says how long.",
    500: "Try again; if it persists, contact the platform operator.",
}


CACHE_INFO_SCHEMA = {
    "type": "object",
    "description": "Present on data served from the cache layer",
    "properties": {
        "cached": {"type": "boolean"},
        "cache_age": {"type": "integer", "nullable": True},
        "expires_in": {"type": "integer", "nullable": True},
    },
}


class AcronisPagination(PagePagination):
    size_param = "per_page"
    default_size = 50
    max_size = 200

    def build(self, data, total):
        pages = max(1, math.ceil(total / self.size)) if total else 0
        return {
            "page": self.page,
            "per_page": self.size,
            "total": total,
            "pages": pages,
            "has_next": self.page < pages,
            "has_prev": self.page > 1,
            "next_page": self.page + 1 if self.page < pages else None,
            "prev_page": self.page - 1 if self.page > 1 else None,
        }

    def get_paginated_response(self, data):
        response = Response(
            {
                "success": True,
                "data": data,
                "count": len(data),
                "pagination": self.build(data, self.total),
                "timestamp": utc_now_iso(),
            }
        )
        response.enveloped = True
        return response

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["success", "data", "count", "pagination", "timestamp"],
            "properties": {
                "success": {"type": "boolean", "example": True},
                "data": schema,
                "count": {"type": "integer"},
                "pagination": {
                    "type": "object",
                    "required": ["page", "per_page", "total", "pages"],
                    "properties": {
                        "page": {"type": "integer"},
                        "per_page": {"type": "integer"},
                        "total": {"type": "integer"},
                        "pages": {"type": "integer"},
                        "has_next": {"type": "boolean"},
                        "has_prev": {"type": "boolean"},
                        "next_page": {"type": "integer", "nullable": True},
                        "prev_page": {"type": "integer", "nullable": True},
                    },
                },
                "cache_info": CACHE_INFO_SCHEMA,
                "timestamp": {"type": "string", "format": "date-time"},
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {"name": n, "in": "query", "required": False, "schema": {"type": "integer"}} for n in ("page", "per_page")
        ]


class AcronisFacade(Facade):
    name = "acronis"
    paginator_class = AcronisPagination
    validation_code = "ACRONIS_VALIDATION_ERROR"
    malformed_code = "ACRONIS_VALIDATION_ERROR"
    codes = {
        400: "ACRONIS_VALIDATION_ERROR",
        401: "ACRONIS_PERMISSION_ERROR",
        403: "ACRONIS_PERMISSION_ERROR",
        404: "ACRONIS_CLIENT_ERROR",
        405: "ACRONIS_CLIENT_ERROR",
        406: "ACRONIS_CLIENT_ERROR",
        413: "ACRONIS_VALIDATION_ERROR",
        415: "ACRONIS_VALIDATION_ERROR",
        429: "ACRONIS_RATE_LIMITED",
        500: "ACRONIS_INTERNAL_ERROR",
    }
    code_aliases = {
        "VALIDATION_ERROR": "ACRONIS_VALIDATION_ERROR",
        "NOT_FOUND": "ACRONIS_CLIENT_ERROR",
        "FORBIDDEN": "ACRONIS_PERMISSION_ERROR",
        "BAD_REQUEST": "ACRONIS_VALIDATION_ERROR",
    }

    def envelope(self, data, *, message=None, extra=None):
        body = {"success": True}
        if message:
            body["message"] = message
        body["data"] = data
        if isinstance(data, list):
            body["count"] = len(data)
        if extra:
            body.update(extra)
        body["timestamp"] = utc_now_iso()
        return body

    def envelope_schema(self, schema):
        return {
            "type": "object",
            "required": ["success", "data", "timestamp"],
            "properties": {
                "success": {"type": "boolean", "example": True},
                "message": {"type": "string"},
                "data": schema,
                "count": {"type": "integer", "description": "When data is a list"},
                "cache_info": CACHE_INFO_SCHEMA,
                "timestamp": {"type": "string", "format": "date-time"},
            },
        }

    def error_body(self, error: ErrorInfo) -> dict:
        body = {
            "success": False,
            "error": error.message,
            "error_code": error.code,
            "timestamp": utc_now_iso(),
            "help": HELP.get(error.status, HELP[500] if error.status >= 500 else HELP[400]),
        }
        details = error.details if error.details is not None else {}
        if error.field_errors is not None:
            details = {"technical_error": "Request validation failed", "fields": error.field_errors}
        elif not isinstance(details, dict) or "technical_error" not in details:
            details = {
                "technical_error": error.message,
                **(details if isinstance(details, dict) else {"info": details}),
            }
        body["details"] = details
        if "Retry-After" in error.headers:
            body["retry_after"] = int(error.headers["Retry-After"])
        return body

    def error_schema(self) -> dict:
        return {
            "type": "object",
            "required": ["success", "error", "error_code", "timestamp"],
            "properties": {
                "success": {"type": "boolean", "example": False},
                "error": {"type": "string"},
                "error_code": {"type": "string", "example": "ACRONIS_CONFIG_MISSING"},
                "timestamp": {"type": "string", "format": "date-time"},
                "help": {"type": "string"},
                "details": {"type": "object", "additionalProperties": True},
                "retry_after": {"type": "integer"},
                "data": {
                    "type": "object",
                    "additionalProperties": True,
                    "description": "GET /health: what the failed check found",
                },
            },
        }


ACRONIS = AcronisFacade()


class AcronisView(FacadeAPIView):
    facade = ACRONIS


class AcronisViewSet(FacadeViewSet):
    facade = ACRONIS
