"""db-backup-platform.md conventions: bare JSON bodies; lists with ``total``/``items``
(``limit``/``offset``); errors ``{detail, code, timestamp}``; validation errors 422 with
``detail`` as a list of ``{loc, msg, type}`` ("Example Validation Error")."""

from __future__ import annotations

from rest_framework.response import Response

from backupplatform.facades.base import ErrorInfo, Facade, FacadeAPIView, FacadeViewSet
from backupplatform.facades.pagination import LimitOffsetPagination
from backupplatform.isotime import utc_now_iso


class PlatformPagination(LimitOffsetPagination):
    def get_paginated_response(self, data):
        response = Response({"total": self.total, "items": data})
        response.enveloped = True
        return response

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["total", "items"],
            "properties": {"total": {"type": "integer", "example": 248}, "items": schema},
        }

    def get_schema_operation_parameters(self, view):
        return [
            {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "default": 100}},
            {"name": "offset", "in": "query", "required": False, "schema": {"type": "integer", "default": 0}},
        ]


def _validation_items(fields: dict, prefix: tuple = ("body",)) -> list[dict]:
    """``{field: [messages]}`` as the document's validation items ``{loc, msg, type}``; a
    ``FieldError`` message carries its own type (``type_error.integer``...)."""
    items: list[dict] = []
    for name, messages in fields.items():
        loc = [*prefix] if name == "non_field_errors" else [*prefix, name]
        if isinstance(messages, dict):
            items.extend(_validation_items(messages, (*prefix, name)))
            continue
        for message in messages if isinstance(messages, list) else [messages]:
            if isinstance(message, dict):
                items.extend(_validation_items(message, tuple(loc)))
                continue
            kind = getattr(message, "kind", None)
            missing = kind == "value_error.missing" or (kind is None and "required" in str(message))
            items.append(
                {
                    "loc": loc,
                    "msg": "field required" if missing else str(message),
                    "type": "value_error.missing" if missing else (kind or "value_error"),
                }
            )
    return items


class PlatformFacade(Facade):
    name = "platform"
    validation_status = 422
    paginator_class = PlatformPagination

    def error_body(self, error: ErrorInfo) -> dict:
        if error.field_errors is not None:
            detail = _validation_items(error.field_errors, (error.location,))
        else:
            detail = error.message
        body = {"detail": detail, "code": error.code, "timestamp": utc_now_iso()}
        if error.details is not None and error.field_errors is None:
            body["details"] = error.details
        return body

    def error_schema(self) -> dict:
        return {
            "type": "object",
            "required": ["detail", "code", "timestamp"],
            "properties": {
                "detail": {
                    "oneOf": [
                        {"type": "string"},
                        {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "loc": {"type": "array", "items": {"type": "string"}},
                                    "msg": {"type": "string"},
                                    "type": {"type": "string"},
                                },
                            },
                        },
                    ]
                },
                "code": {"type": "string", "example": "NOT_FOUND"},
                "timestamp": {"type": "string", "format": "date-time"},
            },
        }


PLATFORM = PlatformFacade()


class PlatformView(FacadeAPIView):
    facade = PLATFORM


class PlatformViewSet(FacadeViewSet):
    facade = PLATFORM
