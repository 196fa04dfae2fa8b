"""The served OpenAPI document describes each facade as it answers (README "What is served"):
its success envelope around a body whose fields are named, its list shape, and its error
body on every operation. The fuzz tests check responses against these descriptions; a
free-form ``object`` would let any body pass, so it is refused here."""

from __future__ import annotations

import pytest

from backupplatform.facades.registry import FACADES

from .conftest import facade_of

pytestmark = pytest.mark.fuzz

# Keys of each facade's success envelope (non-list bodies) and of its paginated lists.
ENVELOPES = {
    "platform": set(),
    "console": set(),
    "jobs": {"success", "message", "data"},
    "workspace": {"data"},
    "acronis": {"success", "data", "timestamp"},
}
LISTS = {
    "platform": {"total", "items"},
    "jobs": {"success", "data", "total", "page", "page_size", "total_pages"},
    "workspace": {"data", "pagination"},
    "acronis": {"success", "data", "count", "pagination", "timestamp"},
}


UPLOADS = {"/cloud-integration/backup/import", "/cloud-integration/backup/import/validate"}


def resolve(schema: dict, node: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def described(schema: dict, node: dict) -> bool:
    """A body a client can rely on: named fields, a list of such, a scalar, or always null."""
    node = resolve(schema, node)
    if "oneOf" in node:
        return all(described(schema, option) for option in node["oneOf"])
    if node.get("enum") == [None]:
        return True
    if node.get("type") == "array":
        return described(schema, node.get("items", {}))
    if node.get("type") == "object" or "properties" in node:
        return bool(node.get("properties"))
    return node.get("type") in ("string", "integer", "number", "boolean")


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, op in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield facade_of(path), method.upper(), path, op


def test_every_success_body_names_its_fields_inside_the_facades_envelope(openapi):
    vague, unwrapped = [], []
    for facade, method, path, op in operations(openapi):
        for status, response in op["responses"].items():
            media = response.get("content", {}).get("application/json")
            if not status.startswith("2") or media is None:
                continue
            body = resolve(openapi, media["schema"])
            keys = set(body.get("properties", {}))
            if facade in LISTS and LISTS[facade] <= keys:
                data = body["properties"]["items" if facade == "platform" else "data"]
            elif ENVELOPES[facade]:
                if not ENVELOPES[facade] <= keys:
                    unwrapped.append(f"{method} {path} {status}: {sorted(keys)}")
                    continue
                data = body["properties"]["data"]
            else:
                data = body
            if not described(openapi, data):
                vague.append(f"{method} {path} {status}")
    assert not unwrapped, "success bodies outside the facade's envelope:\n" + "\n".join(unwrapped)
    assert not vague, "success bodies documented as a free-form object:\n" + "\n".join(vague)


def test_every_operation_documents_the_facades_error_body_for_the_errors_it_can_answer(openapi):
    missing = []
    for facade, method, path, op in operations(openapi):
        expected = {"400", "401", "403", "404", "429", str(FACADES[facade].validation_status)}
        if method != "GET":
            expected.add("409")
        if method in ("POST", "PUT", "PATCH"):
            expected |= {"413", "415"}
        for status in sorted(expected):
            response = op["responses"].get(status)
            schema = response and response.get("content", {}).get("application/json", {}).get("schema")
            if schema != FACADES[facade].error_schema():
                missing.append(f"{method} {path} {status}")
    assert not missing, "operations without the facade's error body:\n" + "\n".join(missing)


def test_request_bodies_are_json_and_refuse_unknown_fields(openapi):
    loose = []
    for _facade, method, path, op in operations(openapi):
        body = op.get("requestBody")
        if body is None:
            continue
        # The console's uploads (import, import/validate) are multipart; every other body is JSON.
        media = "multipart/form-data" if path in UPLOADS else "application/json"
        if set(body["content"]) != {media}:
            loose.append(f"{method} {path}: {sorted(body['content'])}")
            continue
        schema = resolve(openapi, body["content"][media]["schema"])
        if schema.get("type") == "object" and schema.get("additionalProperties") is not False:
            loose.append(f"{method} {path}: unknown fields not refused")
    assert not loose, "\n".join(loose)
