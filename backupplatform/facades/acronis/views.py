"""acronis-integration.md routes. Thin: validate -> selector/service -> respond.

Upstream failures arrive as ``acronis.errors.AcronisError``; ``AcronisServiceView`` renders
them in the seed's error body with the error's own ``ACRONIS_*`` code, HTTP status
(``http_status``), ``help`` and, for rate limiting, ``retry_after`` plus a ``Retry-After``
header. Domain errors with a ``help`` attribute keep their help text too.
"""

from __future__ import annotations

import math
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from acronis import selectors, services
from acronis.errors import AcronisError
from backupplatform.errors import ValidationFailed
from backupplatform.facades.acronis.conventions import AcronisView
from backupplatform.facades.acronis.serializers import (
    AgentBackupsShape,
    AgentShape,
    AssociationShape,
    BackupStatsShape,
    ConfigInput,
    ConfigStatusShape,
    ConfigUpdateInput,
    ConfiguredShape,
    HealthShape,
    WorkloadShape,
    public_workload,
)
from backupplatform.facades.base import respond
from backupplatform.facades.pagination import int_param
from backupplatform.facades.schema import FACADE_ERROR
from backupplatform.facades.serializers import validated
from backupplatform.isotime import utc_now_iso
from tenants.models import Role

# ``DELETE /config`` answers ``data: null`` in the envelope.
NULL_DATA = {"type": "object", "nullable": True, "enum": [None], "description": "Always null"}


def acronis_error_response(exc: AcronisError) -> Response:
    headers = {}
    body: dict[str, Any] = {"success": False, **exc.to_dict(), "timestamp": utc_now_iso()}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        body["retry_after"] = int(headers["Retry-After"])
    response = Response(body, status=exc.http_status, headers=headers)
    response.enveloped = True
    return response


class AcronisServiceView(AcronisView):
    """An Acronis facade view whose work may fail upstream."""

    def get_exception_handler(self):
        base = super().get_exception_handler()

        def handler(exc, context):
            if isinstance(exc, AcronisError):
                return acronis_error_response(exc)
            response = base(exc, context)
            help_text = getattr(exc, "help", None)
            if isinstance(help_text, str) and isinstance(response.data, dict):
                response.data["help"] = help_text
            return response

        return handler

    def tenant(self):
        return self.require_tenant()


def _bool_param(request, name: str, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    value = raw.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise ValidationFailed(details={name: [f"Must be true or false, got {raw!r}."]})


def _config_data(serializer_class, request) -> dict:
    """The validated body; a ``tenant_scope`` of ``null`` clears the scope (``""``), an
    absent one keeps it (``None``). Values are checked by ``services.config_check``."""
    data = dict(validated(serializer_class, request.data))
    if "tenant_scope" in data:
        data["tenant_scope"] = data["tenant_scope"] or ""
    return data


class ConfigView(AcronisServiceView):
    """GET (viewer) / POST / PUT / DELETE (admin) ``/api/acronis/config``."""

    roles = {"GET": Role.VIEWER, "POST": Role.ADMIN, "PUT": Role.ADMIN, "DELETE": Role.ADMIN}

    @extend_schema(operation_id="acronis_config_get", responses={200: ConfigStatusShape})
    def get(self, request):
        data = selectors.config_status(tenant=self.tenant())
        if data is None:
            raise services.ConfigMissing(details={"technical_error": "no Acronis configuration for this tenant"})
        return respond(data)

    @extend_schema(operation_id="acronis_config_create", request=ConfigInput, responses={201: ConfiguredShape})
    def post(self, request):
        data = _config_data(ConfigInput, request)
        services.config_save(tenant=self.tenant(), create=True, **data)
        return respond({"configured": True}, status_code=201, message="Configuration saved successfully")

    @extend_schema(operation_id="acronis_config_update", request=ConfigUpdateInput, responses={200: ConfiguredShape})
    def put(self, request):
        data = _config_data(ConfigUpdateInput, request)
        services.config_save(tenant=self.tenant(), create=False, **data)
        return respond({"configured": True}, message="Configuration saved successfully")

    @extend_schema(operation_id="acronis_config_delete", responses={200: NULL_DATA})
    def delete(self, request):
        services.config_delete(tenant=self.tenant())
        return respond(None, message="Configuration deleted successfully")


class AcronisListView(AcronisServiceView):
    """A list route: ``page``/``per_page`` (max 200) plus ``cache_info``."""

    paginates = True  # by hand, in ``paginated``

    def paginated(self, rows: list, info) -> Response:
        paginator = self.facade.paginator_class()
        page = paginator.paginate_queryset(rows, self.request, view=self)
        response = paginator.get_paginated_response(page)
        response.data["cache_info"] = info.as_dict()
        return response


# An upstream failure is the caller's 502 (504 on timeout); 429 is already on every route.
UPSTREAM_ERRORS = {502: FACADE_ERROR, 504: FACADE_ERROR}
PAGE_PARAMS = [OpenApiParameter("page", OpenApiTypes.INT), OpenApiParameter("per_page", OpenApiTypes.INT)]


class AgentsView(AcronisListView):
    @extend_schema(
        operation_id="acronis_agents_list", parameters=PAGE_PARAMS, responses={200: AgentShape, **UPSTREAM_ERRORS}
    )
    def get(self, request):
        rows, info = selectors.agents_list(tenant=self.tenant())
        return self.paginated(rows, info)


class WorkloadsView(AcronisListView):
    @extend_schema(
        operation_id="acronis_workloads_list", parameters=PAGE_PARAMS, responses={200: WorkloadShape, **UPSTREAM_ERRORS}
    )
    def get(self, request):
        rows, info = selectors.workloads_list(tenant=self.tenant())
        return self.paginated([public_workload(r) for r in rows], info)


class AssociationsView(AcronisListView):
    @extend_schema(
        operation_id="acronis_associations_list",
        parameters=PAGE_PARAMS,
        responses={200: AssociationShape, **UPSTREAM_ERRORS},
    )
    def get(self, request):
        rows, info = selectors.associations_list(tenant=self.tenant())
        return self.paginated(rows, info)


class BackupsView(AcronisServiceView):
    @extend_schema(
        operation_id="acronis_backups_statistics",
        parameters=[OpenApiParameter("limit", OpenApiTypes.INT), OpenApiParameter("days", OpenApiTypes.INT)],
        responses={200: BackupStatsShape, **UPSTREAM_ERRORS},
    )
    def get(self, request):
        limit = int_param(request, "limit", 50, minimum=1, maximum=1000)
        days = int_param(request, "days", selectors.DEFAULT_DAYS, minimum=1, maximum=365)
        data, info = selectors.backup_statistics(tenant=self.tenant(), days=days, limit=limit)
        return respond(data, extra={"cache_info": info.as_dict()})


class AgentBackupsView(AcronisServiceView):
    @extend_schema(
        operation_id="acronis_agent_backups",
        parameters=[
            OpenApiParameter("limit", OpenApiTypes.INT),
            OpenApiParameter("include_activities", OpenApiTypes.BOOL),
            OpenApiParameter("days", OpenApiTypes.INT),
        ],
        responses={200: AgentBackupsShape, **UPSTREAM_ERRORS},
    )
    def get(self, request, agent_id: str):
        limit = int_param(request, "limit", 100, minimum=1, maximum=1000)
        days = int_param(request, "days", selectors.DEFAULT_DAYS, minimum=1, maximum=365)
        include = _bool_param(request, "include_activities", True)
        data, info = selectors.agent_backups(
            tenant=self.tenant(), agent_id=agent_id, limit=limit, include_activities=include, days=days
        )
        return respond(data, extra={"cache_info": info.as_dict()})


class HealthView(AcronisServiceView):
    """Live check. Failure (including "not configured") is the seed's error response with
    ``error_code: ACRONIS_HEALTH_CHECK_FAILED`` and ``data``, status 503."""

    @extend_schema(operation_id="acronis_health", responses={200: HealthShape, 503: FACADE_ERROR})
    def get(self, request):
        ok, data, first_error = selectors.health_check(tenant=self.tenant())
        if ok:
            return respond(data)
        details: dict[str, Any] = {
            "technical_error": first_error.technical or first_error.message if first_error else "ACRONIS_CONFIG_MISSING"
        }
        if first_error is not None:
            details["upstream_error_code"] = first_error.code
        headers = {}
        body = {
            "success": False,
            "error": "Acronis API health check failed",
            "error_code": "ACRONIS_HEALTH_CHECK_FAILED",
            "timestamp": utc_now_iso(),
            "help": first_error.help if first_error else services.ConfigMissing.help,
            "details": details,
            "data": data,
        }
        if first_error is not None and first_error.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(first_error.retry_after)))
            body["retry_after"] = int(headers["Retry-After"])
        response = Response(body, status=503, headers=headers)
        response.enveloped = True
        return response
