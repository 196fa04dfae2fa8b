"""Fixtures for the engine tests: real PostgreSQL / MariaDB servers, throwaway databases."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from backups.engines.base import ConnectionParams
from tests.fixtures.services import *  # noqa: F403

PG_SOURCE_SQL = [
    "CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email varchar(40),"
    " phone varchar(20), balance numeric(10,2), created timestamptz NOT NULL DEFAULT now(),"
    " doc jsonb, avatar bytea, note text)",
    "CREATE INDEX customers_email_idx ON customers (email)",
    "CREATE SEQUENCE invoice_seq START 100",
    "CREATE TABLE invoices (id int PRIMARY KEY DEFAULT nextval('invoice_seq'),"
    " customer_id int REFERENCES customers, amount numeric(12,2))",
    'CREATE TABLE "Contacts" (id int PRIMARY KEY, "EMAIL" text, kind text)',
    "CREATE VIEW big_customers AS SELECT id, name, balance FROM customers WHERE balance > 100",
    "INSERT INTO customers (name, email, phone, balance, created, doc, avatar, note)"
    " SELECT 'Customer ' || n, 'user' || n || '@example.com', '555' || lpad(n::text, 7, '0'),"
    " n * 7.25, timestamptz '2024-01-01 12:00:00+00' + n * interval '1 hour',"
    " jsonb_build_object('n', n, 'tags', jsonb_build_array('a', n)),"
    " decode(md5(n::text), 'hex') || '\\x00ff0a0d'::bytea, CASE WHEN n % 3 = 0 THEN NULL ELSE 'note ' || n END"
    " FROM generate_series(1, 50) n",
    "INSERT INTO invoices (customer_id, amount) SELECT (n % 50) + 1, n * 1.5 FROM generate_series(1, 20) n",
    "INSERT INTO \"Contacts\" VALUES (1, 'a@x.org', 'k'), (2, NULL, 'k')",
    "SELECT lo_from_bytea(0, '\\x000102ff'::bytea)",
]

MY_SOURCE_SQL = [
    "CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(64) NOT NULL,"
    " email VARCHAR(40), phone VARCHAR(20), balance DECIMAL(10,2), created DATETIME,"
    " doc JSON, avatar BLOB, note TEXT) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "CREATE INDEX customers_email_idx ON customers (email)",
    "CREATE TABLE audit_log (id INT AUTO_INCREMENT PRIMARY KEY, msg VARCHAR(100)) ENGINE=InnoDB",
    "CREATE VIEW big_customers AS SELECT id, name, balance FROM customers WHERE balance > 100",
    "CREATE TRIGGER customers_ai AFTER INSERT ON customers FOR EACH ROW"
    " INSERT INTO audit_log (msg) VALUES (CONCAT('new ', NEW.id))",
    "CREATE PROCEDURE count_customers() SELECT COUNT(*) FROM customers",
]


def my_source_rows(cursor: Any) -> None:
    rows = [
        (
            f"Customer {n} \N{SNOWMAN}",
            f"user{n}@example.com",
            f"555{n:07d}",
            n * 7.25,
            f"2024-01-01 {n % 24:02d}:00:00",
            f'{{"n": {n}}}',
            bytes(range(256)) + bytes([n]),
            None if n % 3 == 0 else f"note {n}",
        )
        for n in range(1, 41)
    ]
    cursor.executemany(
        "INSERT INTO customers (name, email, phone, balance, created, doc, avatar, note)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        rows,
    )


@pytest.fixture
def pg_params(pg_server: dict[str, Any]) -> ConnectionParams:
    return ConnectionParams(
        "postgresql",
        pg_server["host"],
        pg_server["port"],
        pg_server["user"],
        pg_server["password"] or None,
        None,
    )


@pytest.fixture
def my_params(mysql_server: dict[str, Any]) -> ConnectionParams:
    return ConnectionParams(
        "mysql",
        mysql_server["host"],
        mysql_server["port"],
        mysql_server["user"],
        mysql_server["password"] or None,
        None,
    )


@pytest.fixture
def pg_db(pg_params: ConnectionParams) -> Iterator[Callable[[], ConnectionParams]]:
    """A factory of unique database names on the PG server; all dropped afterwards."""
    from backups.engines.postgres import pg_drop_database

    names: list[str] = []

    def make() -> ConnectionParams:
        name = f"bp_eng_{secrets.token_hex(5)}"
        names.append(name)
        return pg_params.with_database(name)

    yield make
    for name in names:
        with contextlib.suppress(Exception):
            pg_drop_database(pg_params, name)


@pytest.fixture
def my_db(my_params: ConnectionParams) -> Iterator[Callable[[], ConnectionParams]]:
    from backups.engines.mysql import mysql_drop_database

    names: list[str] = []

    def make() -> ConnectionParams:
        name = f"bp_eng_{secrets.token_hex(5)}"
        names.append(name)
        return my_params.with_database(name)

    yield make
    for name in names:
        with contextlib.suppress(Exception):
            mysql_drop_database(my_params, name)


@pytest.fixture
def pg_source(pg_db: Callable[[], ConnectionParams]) -> ConnectionParams:
    """A PostgreSQL database with several tables and types, a sequence, an index, a view, a large object."""
    import psycopg

    from backups.engines.postgres import connect, pg_create_database

    params = pg_db()
    pg_create_database(params)
    with connect(params) as conn:
        for statement in PG_SOURCE_SQL:
            conn.execute(statement)
        conn.execute("SELECT setval('invoice_seq', 150)")
    assert isinstance(conn, psycopg.Connection)
    return params


@pytest.fixture
def my_source(my_db: Callable[[], ConnectionParams]) -> ConnectionParams:
    from backups.engines.mysql import connect, mysql_create_database

    params = my_db()
    mysql_create_database(params)
    conn = connect(params, autocommit=True)
    try:
        with conn.cursor() as cursor:
            for statement in MY_SOURCE_SQL:
                cursor.execute(statement)
            my_source_rows(cursor)
    finally:
        conn.close()
    return params
