"""Fixtures of the examples-as-tests: the world the documents' ids stand for, and the
count of examples per document printed at the end of the session."""

from __future__ import annotations

import contextlib
import importlib
import secrets
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.conftest import make_member
from tests.fixtures.services import *  # noqa: F403

from .harness import EXAMPLE_DOCUMENTS
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
        conn.execute(
            "INSERT INTO customers (email, phone, ssn) SELECT 'u' || n || '@example.com', '555-' || n, "
            "'SSN' || n FROM generate_series(1, 50) n"
        )
    yield name
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def module_world(
    request, django_db_setup, django_db_blocker, tmp_path_factory, s3_server, example_database
) -> Iterator[World]:
    """One world per module, made once inside a transaction that is rolled back at the end of the
    module (as Django's ``setUpTestData``): each test runs in a savepoint inside it, so an
    example that deletes or changes an object leaves the next one the same world. Objects a
    test makes are its own (``World.fork``). The module's ``PRECREATE`` kinds are made here."""
    from django.db import transaction

    from tenants.models import Plan, Role, Tenant

    bucket = S3Bucket(endpoint_url=s3_server, name=f"examples-{secrets.token_hex(6)}")  # noqa: F405
    bucket.client().create_bucket(Bucket=bucket.name)
    root = tmp_path_factory.mktemp("examples")
    with django_db_blocker.unblock():
        atomic = transaction.atomic()
        atomic.__enter__()
    try:
        with django_db_blocker.unblock():
            tenant = Tenant.objects.create(
                slug="examples", name="Examples", plan=Plan.DEDICATED, path_roots=[str(root)]
            )
            ssh = request.getfixturevalue("sftp_server") if getattr(request.module, "NEEDS_SSH", False) else None
            world = World(
                tenant=tenant,
                admin=make_member(tenant, "exadmin", Role.ADMIN),
                tmp_path=root,
                s3=bucket,
                database=example_database,
                ssh=ssh,
            )
            for kind in getattr(request.module, "PRECREATE", ()):
                world.get(kind)
        yield world
    finally:
        with django_db_blocker.unblock():
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)
        with contextlib.suppress(Exception):
            empty_bucket(bucket)


def empty_bucket(bucket) -> None:
    client = bucket.client()
    for upload in client.list_multipart_uploads(Bucket=bucket.name).get("Uploads", []):
        client.abort_multipart_upload(Bucket=bucket.name, Key=upload["Key"], UploadId=upload["UploadId"])
    for item in client.list_objects_v2(Bucket=bucket.name).get("Contents", []):
        client.delete_object(Bucket=bucket.name, Key=item["Key"])
    client.delete_bucket(Bucket=bucket.name)


@pytest.fixture
def world(module_world, db) -> World:
    """The module's world, for one test (which runs in a savepoint of the module's transaction)."""
    return module_world.fork()


@pytest.fixture
def fresh_world(tenant_a, admin_a, tmp_path, s3_bucket, example_database) -> World:
    """A world of its own, for tests whose database work must really commit (a live server,
    sockets fed after commit)."""
    return World(tenant=tenant_a, admin=admin_a, tmp_path=tmp_path, s3=s3_bucket, database=example_database)


def examples_summary(terminalreporter) -> None:
    """Printed by the root conftest (also under pytest-xdist, where this process collected nothing)."""
    counts: dict[str, Counter] = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            if outcome == "passed" and report.when != "call":
                continue
            if "[" not in nodeid:
                continue
            module = nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py")
            test = nodeid.split("::")[-1].split("[", 1)[0]
            key = (f"{module}::{test}", nodeid.split("[", 1)[1][:-1])
            if key not in EXAMPLE_DOCUMENTS and nodeid.startswith("tests/examples/"):
                # Under pytest-xdist the workers collected the examples, not this process.
                with contextlib.suppress(Exception):
                    importlib.import_module(f"tests.examples.{module}")
            document = EXAMPLE_DOCUMENTS.get(key)
            if document:
                counts.setdefault(document, Counter())[outcome] += 1
    if not counts:
        return
    terminalreporter.write_sep("-", "Examples as tests")
    for document, counter in sorted(counts.items()):
        total = sum(counter.values())
        parts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counter.items()))
        terminalreporter.write_line(f"{document}: {total} examples ({parts})")
