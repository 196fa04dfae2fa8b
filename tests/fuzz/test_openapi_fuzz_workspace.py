"""schemathesis over every operation of the workspace API (see ``tests/fuzz/openapi.py``)."""

from __future__ import annotations

import pytest

from .openapi import SETTINGS, check_operation, load_schema

pytestmark = [pytest.mark.django_db, pytest.mark.fuzz]

schema = load_schema().include(path_regex=r"^/api/v1/workspaces")


@schema.parametrize()
@SETTINGS
def test_operation_is_documented_and_never_a_server_error(case, fuzz_world):
    check_operation(case, fuzz_world)
