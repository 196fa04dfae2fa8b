"""Fuzzing every operation of ``/api/schema/`` with schemathesis (the ``test_openapi_fuzz_*``
modules, one per group of facades so pytest-xdist spreads them), as alpha's admin, against the
real WSGI application and database: no server error, and every answer (successes and
errors alike) has a documented status code, content type and body schema.

Each operation gets schemathesis' coverage cases (boundary values, missing and wrongly typed
fields) and then ``MAX_EXAMPLES`` generated ones. Generated path ids are half the time the ids of real rows (so the views' happy paths run,
not only their 404s) and half the time whatever the schema allows; bodies that name another
object (``server_id``, ``schedule_id``...) get real ids the same way. The number of
examples is small and the run derandomized, so the suite stays within a few minutes and
fails the same way on every machine. ``tests/fuzz/conftest.py`` prints what ran.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .conftest import BODY_IDS, RUN, WSGI_APP, World, real_path_kind, record

# Small and derandomized for CI; FUZZ_MAX_EXAMPLES=200 for a deeper run by hand.
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "12"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

REAL = "REALROW_"


def Real(kind: str) -> str:
    """Stands for the id of a real row of the test's world, resolved just before the call
    (cases are also drawn at collection time, before any row exists)."""
    return REAL + kind


def resolve(values: Any, world: World) -> Any:
    if not isinstance(values, dict):
        return values

    def real(value: Any) -> Any:
        if not (isinstance(value, str) and value.startswith(REAL)):
            return value
        kind = value[len(REAL) :]
        return world.ws_id if kind == "ws_id" else world.ids[kind]

    return {k: real(v) for k, v in values.items()}


def load_schema():
    config = schemathesis.Config.from_dict(
        {
            "seed": 20240601,
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                # Credentials are the world's (a random X-API-Key would mask every view).
                "with-security-parameters": False,
            },
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
        }
    )
    schema = schemathesis.openapi.from_wsgi("/api/schema/", WSGI_APP, config=config)

    @schema.hook
    def flatmap_path_parameters(context, path_parameters):
        path = context.operation.path
        real = {name: Real(real_path_kind(path, name)) for name in (path_parameters or {})}
        return st.sampled_from([path_parameters, {**(path_parameters or {}), **real}])

    @schema.hook
    def flatmap_body(context, body):
        if not isinstance(body, dict) or not set(body) & set(BODY_IDS):
            return st.just(body)
        return st.sampled_from([body, {**body, **{k: Real(v) for k, v in BODY_IDS.items() if k in body}}])

    return schema


SETTINGS = settings(
    max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


def check_operation(case, fuzz_world) -> None:
    case.path_parameters = resolve(case.path_parameters, fuzz_world)
    case.body = resolve(case.body, fuzz_world)
    # Every other example authenticates with the workspace's admin API key instead of a JWT.
    operation = case.operation.label
    if sum(RUN.get("schemathesis", {}).get("by_operation", {}).get(operation, {}).values()) % 2:
        headers = {"X-API-Key": fuzz_world.api_key}
    else:
        headers = {"Authorization": f"Bearer {fuzz_world.token}"}
    response = case.call(headers=headers)
    record("schemathesis", operation, response.status_code)
    case.validate_response(response, checks=CHECKS, headers=headers)
