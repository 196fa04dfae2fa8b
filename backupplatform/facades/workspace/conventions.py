"""workspace-backup-api.md conventions: ``{"data": ...}``; lists add ``pagination``
(``page``/``per_page``); errors ``{"error": {code, message, details}}``; the workspace comes
from the URL (``ws_id`` = the tenant's slug); backup features need the dedicated plan."""

from __future__ import annotations

from rest_framework.response import Response

from backupplatform.facades.base import ErrorInfo, Facade, FacadeAPIView, FacadeViewSet
from backupplatform.facades.pagination import PagePagination

from .ids import public_ids


class WorkspacePagination(PagePagination):
    size_param = "per_page"

    def get_paginated_response(self, data):
        response = Response(
            {
                "data": public_ids(data),
                "pagination": {"page": self.page, "per_page": self.size, "total": self.total, "pages": self.pages},
            }
        )
        response.enveloped = True
        return response

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["data", "pagination"],
            "properties": {
                "data": schema,
                "pagination": {
                    "type": "object",
                    "properties": {
                        "page": {"type": "integer"},
                        "per_page": {"type": "integer"},
                        "total": {"type": "integer"},
                        "pages": {"type": "integer"},
                    },
                },
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {"name": n, "in": "query", "required": False, "schema": {"type": "integer"}} for n in ("page", "per_page")
        ]


class WorkspaceFacade(Facade):
    name = "workspace"
    paginator_class = WorkspacePagination
    # An application has one backup policy: the services' conflict is this API's POLICY_EXISTS.
    code_aliases = {"SCHEDULE_CONFLICT": "POLICY_EXISTS"}

    def envelope(self, data, *, message=None, extra=None):
        body = {"data": public_ids(data)}
        if extra:
            body.update(extra)
        return body

    def envelope_schema(self, schema):
        return {"type": "object", "required": ["data"], "properties": {"data": schema}}

    def error_body(self, error: ErrorInfo) -> dict:
        return {
            "error": {
                "code": error.code,
                "message": error.message,
                "details": public_ids(error.details) if error.details is not None else {},
            }
        }

    def error_schema(self) -> dict:
        return {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string", "example": "INVALID_STORAGE_CONFIG"},
                        "message": {"type": "string"},
                        "details": {"type": "object", "additionalProperties": True},
                    },
                }
            },
        }


WORKSPACE = WorkspaceFacade()


class WorkspaceView(FacadeAPIView):
    facade = WORKSPACE
    tenant_url_kwarg = "ws_id"


class WorkspaceViewSet(FacadeViewSet):
    facade = WORKSPACE
    tenant_url_kwarg = "ws_id"
