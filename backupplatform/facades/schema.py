"""drf-spectacular integration: response schemas show each facade's envelope and errors."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema


class FacadeAutoSchema(AutoSchema):
    """Wraps success bodies in the view's facade envelope and documents its error body."""

    ERROR_STATUSES = ("400", "401", "403", "404", "429")

    def _facade(self):
        return getattr(self.view, "facade", None)

    def _get_response_for_code(self, serializer, status_code, media_types=None, direction="response"):
        response = super()._get_response_for_code(serializer, status_code, media_types, direction)
        facade = self._facade()
        if facade is None or not str(status_code).startswith("2") or self._is_list_view(serializer):
            return response
        for media in response.get("content", {}).values():
            if "schema" in media and media_types in (None, ["application/json"]):
                media["schema"] = facade.envelope_schema(media["schema"])
        return response

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        facade = self._facade()
        if facade is None:
            return responses
        error = {"content": {"application/json": {"schema": facade.error_schema()}},
                 "description": "Error in the facade's documented error body"}
        for status in self.ERROR_STATUSES:
            responses.setdefault(status, error)
        if facade.validation_status != 400:
            responses.setdefault(str(facade.validation_status), error)
        return responses
