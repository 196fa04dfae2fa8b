"""api-layer.md conventions: ``{success, message, data}``; errors ``{success: false, error,
message, details}``; lists ``{success, data, total, page, page_size, total_pages}``;
100 requests per minute per user."""

from __future__ import annotations

from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle

from backupplatform.facades.base import ErrorInfo, Facade, FacadeAPIView, FacadeViewSet
from backupplatform.facades.pagination import PagePagination


class JobsPagination(PagePagination):
    size_param = "page_size"

    def get_paginated_response(self, data):
        response = Response(
            {
                "success": True,
                "data": data,
                "total": self.total,
                "page": self.page,
                "page_size": self.size,
                "total_pages": self.pages,
            }
        )
        response.enveloped = True
        return response

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["success", "data", "total", "page", "page_size", "total_pages"],
            "properties": {
                "success": {"type": "boolean", "example": True},
                "data": schema,
                "total": {"type": "integer"},
                "page": {"type": "integer"},
                "page_size": {"type": "integer"},
                "total_pages": {"type": "integer"},
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {"name": n, "in": "query", "required": False, "schema": {"type": "integer"}} for n in ("page", "page_size")
        ]


class JobsUserThrottle(SimpleRateThrottle):
    """api-layer.md "Rate Limiting": 100 requests per minute per user (or key, or IP)."""

    scope = "jobs"

    def get_cache_key(self, request, view):
        api_key = getattr(request, "api_key", None)
        if api_key is not None:
            ident = f"key-{api_key.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"ip-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class JobsFacade(Facade):
    name = "jobs"
    paginator_class = JobsPagination
    throttle_classes = (JobsUserThrottle,)

    def envelope(self, data, *, message=None, extra=None):
        body = {"success": True, "message": message or "Operation completed successfully", "data": data}
        if extra:
            body.update(extra)
        return body

    def envelope_schema(self, schema):
        return {
            "type": "object",
            "required": ["success", "message", "data"],
            "properties": {
                "success": {"type": "boolean", "example": True},
                "message": {"type": "string"},
                "data": schema,
            },
        }

    def error_body(self, error: ErrorInfo) -> dict:
        return {
            "success": False,
            "error": error.code,
            "message": error.message,
            "details": error.details if error.details is not None else {},
        }

    def error_schema(self) -> dict:
        return {
            "type": "object",
            "required": ["success", "error", "message", "details"],
            "properties": {
                "success": {"type": "boolean", "example": False},
                "error": {"type": "string", "example": "VALIDATION_ERROR"},
                "message": {"type": "string"},
                "details": {"type": "object", "additionalProperties": True},
            },
        }


JOBS = JobsFacade()


class JobsView(FacadeAPIView):
    facade = JOBS


class JobsViewSet(FacadeViewSet):
    facade = JOBS
