"""Odd values in every path and query parameter of every documented operation: ids made of
Unicode digits, numbers past 64 bits, control characters, overlong strings. None may be a
server error; every error is the facade's documented error body.

Deterministic and exhaustive over parameters (where the schemathesis run samples), one
test per facade: the other path parameters of an operation are real ids of the fuzz world,
so the odd value is what the view has to cope with.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import jsonschema
import pytest
from django.db import transaction
from django.test import Client

from backupplatform.facades.registry import FACADES

from .conftest import facade_of, real_path_kind, record

pytestmark = [pytest.mark.django_db, pytest.mark.fuzz]

ODD_VALUES = [
    "³",  # a digit to str.isdigit(), not to int()
    "٣",  # Arabic-Indic three: int() reads it as 3
    "１２",  # fullwidth digits
    str(2**63),  # one past PostgreSQL's bigint
    str(2**64 + 1),
    "9" * 40,
    "-1",
    "0",
    "1e400",
    "\x01\x1f",  # control characters
    "a\x7fb",
    "\u202e1",  # right-to-left override
    "x" * 5000,  # overlong
    "%",
    "../../etc/passwd",
    " 1 ",
]


def operations(schema: dict, facade: str):
    """(method, path, path parameter names, query parameter names)."""
    found = []
    for path, item in schema["paths"].items():
        if facade_of(path) != facade:
            continue
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            params = [*item.get("parameters", []), *op.get("parameters", [])]
            found.append(
                (
                    method,
                    path,
                    [p["name"] for p in params if p["in"] == "path"],
                    [p["name"] for p in params if p["in"] == "query"],
                )
            )
    return sorted(found, key=lambda o: (o[1], o[0]))


def real_value(path: str, name: str, world) -> str:
    kind = real_path_kind(path, name)
    return world.ws_id if kind == "ws_id" else str(world.ids[kind])


class _Undo(Exception):
    pass


def call_and_undo(client, method: str, url: str, **kwargs):
    """One request in a savepoint rolled back afterwards: each starts from the same rows, and
    a database error in one cannot poison the next."""
    try:
        with transaction.atomic():
            response = getattr(client, method)(url, **kwargs)
            content = b"".join(response.streaming_content) if response.streaming else response.content
            raise _Undo
    except _Undo:
        pass
    return response, content


@pytest.mark.parametrize("facade", sorted(FACADES))
def test_odd_parameters_are_client_errors_in_the_facades_format(facade, openapi, fuzz_world):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {fuzz_world.token}", raise_request_exception=False)
    error_schema = FACADES[facade].error_schema()
    problems = []
    requests = 0
    for method, path, path_params, query_params in operations(openapi, facade):
        cases = [("path", name, odd) for name in path_params for odd in ODD_VALUES]
        cases += [("query", name, odd) for name in query_params for odd in ODD_VALUES]
        for where, name, odd in cases:
            url = path
            for param in path_params:
                value = odd if (where, param) == ("path", name) else real_value(path, param, fuzz_world)
                url = url.replace("{" + param + "}", quote(value, safe=""))
            query = f"?{quote(name, safe='')}={quote(odd, safe='')}" if where == "query" else ""
            kwargs = {"content_type": "application/json", "data": "{}"} if method in ("post", "put", "patch") else {}
            response, content = call_and_undo(client, method, url + query, **kwargs)
            requests += 1
            record("odd input", f"{method.upper()} {path}", response.status_code)
            label = f"{method.upper()} {url[:120]}{query[:60]} -> {response.status_code}"
            if response.status_code >= 500:
                problems.append(f"{label}: {content[:300]!r}")
            elif response.status_code >= 400:
                try:
                    jsonschema.validate(json.loads(content), error_schema)
                except (ValueError, jsonschema.ValidationError) as exc:
                    problems.append(f"{label}: not the {facade} error body: {str(exc)[:200]}")
    assert requests > 0
    assert not problems, f"{len(problems)} of {requests} requests:\n" + "\n".join(problems[:40])


@pytest.mark.parametrize("value", ["³:⁴⁵", "١٢:٣٠", "12:３０"])
def test_times_written_with_other_digits_are_validation_errors(value, fuzz_world):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {fuzz_world.token}", raise_request_exception=False)
    response, content = call_and_undo(
        client,
        "post",
        "/api/v1/jobs",
        content_type="application/json",
        data={"name": "odd time", "source_path": "/tmp", "schedule_type": "daily", "schedule_time": value},
    )
    assert response.status_code == 400, content[:300]
    assert "schedule_time" in json.loads(content)["details"]


def test_a_port_written_with_other_digits_is_a_validation_error(fuzz_world):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {fuzz_world.token}", raise_request_exception=False)
    response, content = call_and_undo(
        client,
        "post",
        "/api/v1/storage/test",
        content_type="application/json",
        data={
            "provider_type": "sftp",
            "configuration": {"host": "127.0.0.1", "port": "²²", "path": "/tmp"},
            "credentials": {"username": "u", "password": "p"},
        },
    )
    assert response.status_code == 400, content[:300]
