"""drf-spectacular integration: each operation's responses as its facade really answers them.

Done once here rather than on every view:

- success bodies are wrapped in the view's facade envelope (``Facade.envelope_schema``),
  unless a paginator builds the whole body (its ``get_paginated_response_schema``);
- only views that really paginate get the paginator's list shape: generic list views, and
  plain views that paginate by hand and say so with ``paginates = True``;
- every operation documents the facade's error body (``Facade.error_schema``) for the
  statuses any request can meet: 400, the facade's validation status (422 on the platform
  facade), 401, 403, 404, 429, plus 409 for writes and 413/415 for requests with a body;
- a view documents the rarer ones it can answer with ``FACADE_ERROR`` in its responses
  (``@extend_schema(responses={200: X, 502: FACADE_ERROR})``);
- request bodies are JSON only, and strict input serializers say ``additionalProperties:
  false`` (unknown fields are a validation error).
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from rest_framework.generics import GenericAPIView

from backupplatform.facades.serializers import InputSerializer


class _FacadeError:
    """Marker for ``@extend_schema(responses=...)``: this status answers the facade's error body."""

    def __repr__(self) -> str:
        return "FACADE_ERROR"


FACADE_ERROR = _FacadeError()

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
BODY_METHODS = ("POST", "PUT", "PATCH")


class FacadeAutoSchema(AutoSchema):
    """Wraps success bodies in the view's facade envelope and documents its error body."""

    COMMON_ERROR_STATUSES = ("400", "401", "403", "404", "429")

    def _facade(self):
        return getattr(self.view, "facade", None)

    def map_parsers(self):
        # Request bodies are JSON: the strict fields refuse form-encoded strings for numbers
        # and booleans, so documenting form and multipart bodies would promise what fails.
        if self._facade() is not None:
            # Uploads (the console's import) are the one multipart body.
            return ["multipart/form-data"] if getattr(self.view, "upload", False) else ["application/json"]
        return super().map_parsers()

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "request" and isinstance(serializer, InputSerializer):
            schema["additionalProperties"] = False  # unknown fields are a validation error
        return schema

    def _get_paginator(self):
        # ``FacadeMixin.pagination_class`` names the facade's paginator on every view, but
        # only generic list views use it by themselves.
        if isinstance(self.view, GenericAPIView) or getattr(self.view, "paginates", False):
            return super()._get_paginator()
        return None

    def _error_response(self, description: str = "") -> dict:
        return {
            "content": {"application/json": {"schema": self._facade().error_schema()}},
            "description": description or "Error in the facade's documented error body",
        }

    def _get_response_for_code(self, serializer, status_code, media_types=None, direction="response"):
        facade = self._facade()
        if serializer is FACADE_ERROR and facade is not None:
            return self._error_response()
        response = super()._get_response_for_code(serializer, status_code, media_types, direction)
        if facade is None or not str(status_code).startswith("2"):
            return response
        if self._is_list_view(serializer) and self._get_paginator() is not None:
            return response  # the paginator's schema is the whole body
        for media in response.get("content", {}).values():
            if "schema" in media and media_types in (None, ["application/json"]):
                media["schema"] = facade.envelope_schema(media["schema"])
        if "content" not in response and str(status_code) != "204":
            # ``respond(None)``: the envelope still comes, around ``data: null``.
            response["content"] = {"application/json": {"schema": facade.envelope_schema({"nullable": True})}}
        return response

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        facade = self._facade()
        if facade is None:
            return responses
        statuses = list(self.COMMON_ERROR_STATUSES)
        if facade.validation_status != 400:
            statuses.append(str(facade.validation_status))
        if self.method in WRITE_METHODS:
            statuses.append("409")
        if self.method in BODY_METHODS:
            statuses += ["413", "415"]
        for status in statuses:
            responses.setdefault(status, self._error_response())
        return responses


#: Paths that serve the same views as documented ones (system-backup-recovery.rst
#: "Versioning": ``/cloud-integration/v1/backup/...`` is ``/cloud-integration/backup/...``).
ALIAS_PREFIXES = ("/cloud-integration/v1/",)


def drop_aliases(endpoints: list) -> list:
    """drf-spectacular preprocessing hook: document each operation once, under its seed's
    path, not again under an alias that serves it too."""
    return [endpoint for endpoint in endpoints if not endpoint[0].startswith(ALIAS_PREFIXES)]
