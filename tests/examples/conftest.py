"""Fixtures of the examples-as-tests: the world the documents' ids stand for, and the
count of examples per document printed at the end of the session."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.services import *  # noqa: F403

from .harness import DOCUMENT_OF_MODULE
from .world import World

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


@pytest.fixture(scope="module")
def example_database() -> Iterator[str]:
    """A small PostgreSQL database the world's server holds (one per module: backing it up
    is what the examples need, not changing it)."""
    import psycopg
    from psycopg import sql

    name = f"bp_examples_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=3, **PG) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        pytest.skip(f"the examples need PostgreSQL on 127.0.0.1:5432 ({exc})")
    with psycopg.connect(dbname=name, **PG) as conn:
        conn.execute("CREATE TABLE customers (id serial PRIMARY KEY, email text, phone text, ssn text)")
        conn.execute("INSERT INTO customers (email, phone, ssn) SELECT 'u' || n || '@example.com', '555-' || n, "
                     "'SSN' || n FROM generate_series(1, 50) n")
    yield name
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def world(tenant_a, admin_a, tmp_path, s3_bucket, example_database) -> World:
    return World(tenant=tenant_a, admin=admin_a, tmp_path=tmp_path, s3=s3_bucket, database=example_database)


def pytest_terminal_summary(terminalreporter):
    counts: dict[str, Counter] = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            if "::test_example[" not in nodeid and "::test_websocket_example[" not in nodeid:
                continue
            if outcome == "passed" and report.when != "call":
                continue
            module = Path(nodeid.split("::")[0]).stem
            document = DOCUMENT_OF_MODULE.get(module)
            if document:
                counts.setdefault(document, Counter())[outcome] += 1
    if not counts:
        return
    terminalreporter.write_sep("-", "Examples as tests")
    for document, counter in sorted(counts.items()):
        total = sum(counter.values())
        parts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counter.items()))
        terminalreporter.write_line(f"{document}: {total} examples ({parts})")
