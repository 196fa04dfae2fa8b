"""Real databases, storages and the backup engine, end to end."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess

import psycopg
import pymysql
import pytest
from psycopg import sql

from tests import builders
from tests.fixtures.services import *  # noqa: F403

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
MY = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}


def _pg_up() -> bool:
    try:
        psycopg.connect(dbname="postgres", connect_timeout=2, **PG).close()
        return True
    except psycopg.Error:
        return False


def _my_up() -> bool:
    try:
        pymysql.connect(connect_timeout=2, **MY).close()
        return True
    except pymysql.MySQLError:
        return False


needs_pg = pytest.mark.skipif(
    not (_pg_up() and shutil.which("pg_dump")), reason="needs a PostgreSQL server on 127.0.0.1:5432 and pg_dump"
)
needs_mysql = pytest.mark.skipif(
    not (_my_up() and shutil.which("mysqldump")), reason="needs MariaDB/MySQL on 127.0.0.1:3306 and mysqldump"
)


def pg_drop(name: str) -> None:
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def pg_dump_text(name: str) -> str:
    """A plain dump for comparing two databases (header comments and the name removed)."""
    out = subprocess.run(
        [
            "pg_dump",
            "-h",
            PG["host"],
            "-p",
            str(PG["port"]),
            "-U",
            PG["user"],
            "--no-owner",
            "--no-privileges",
            "--blobs",
            "-d",
            name,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = [line for line in out.splitlines() if not line.startswith("--") and "restrict" not in line.lower()]
    return "\n".join(lines).replace(name, "DBNAME")


@pytest.fixture
def pg_source_db():
    """A database with several tables, many types, a bytea column and a large object."""
    name = f"bp_src_{secrets.token_hex(4)}"
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(dbname=name, **PG) as conn:
        conn.execute("""
            CREATE TABLE customers (id serial PRIMARY KEY, email text NOT NULL, phone text, ssn text,
                                    balance numeric(12,2), created timestamptz DEFAULT now(), meta jsonb);
            CREATE TABLE blobs (id serial PRIMARY KEY, payload bytea, doc oid);
            CREATE INDEX customers_email ON customers (email);
            CREATE VIEW rich AS SELECT id, email FROM customers WHERE balance > 500;
            INSERT INTO customers (email, phone, ssn, balance, meta)
              SELECT 'user' || n || '@example.com', '555-01' || lpad(n::text, 4, '0'), 'SSN' || n,
                     n * 10.5, jsonb_build_object('n', n, 'tags', jsonb_build_array('a', 'b'))
              FROM generate_series(1, 300) n;
            INSERT INTO blobs (payload, doc)
              SELECT decode(md5(n::text) || '00ff10', 'hex'), lo_from_bytea(0, convert_to(repeat('x', 5000), 'UTF8'))
              FROM generate_series(1, 5) n;
        """)
    yield name
    pg_drop(name)


@pytest.fixture
def cleanup_pg():
    names: list[str] = []
    yield names
    for name in names:
        pg_drop(name)


@pytest.fixture
def pg_server_row(tenant_a):
    return builders.make_pg_server(tenant_a, "local-pg")


@pytest.fixture
def local_storage(tenant_a, tmp_path):
    return builders.make_local_storage(tenant_a, tmp_path / "store", "disk")


@pytest.fixture
def tiny_tempdir(tmp_path, monkeypatch):
    """The system temporary directory on a 1 MiB tmpfs: a real limit (needs root to mount)."""
    import tempfile

    mount = tmp_path / "tiny-tmp"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        with pytest.raises(OSError), open(mount / "probe", "wb") as probe:  # the limit is real
            probe.write(os.urandom(2 << 20))
            probe.flush()
        (mount / "probe").unlink()
        monkeypatch.setenv("TMPDIR", str(mount))
        monkeypatch.setattr(tempfile, "tempdir", str(mount))
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
