"""Verification by test restore: restore into a scratch database, count rows, run assertions.

:func:`run_test_restore` is the whole "test_restore" verification: it restores
an artifact's plaintext stream into a new scratch database on the given server
(strategy ``create_new``), records ``table_row_counts``, runs the request's SQL
assertions, records how long it took, and always drops the scratch database.

Assertions are ``{"sql": "SELECT ...", "expect": value}``. Each SQL must be a
single ``SELECT`` (or ``WITH ... SELECT``) statement: anything else is refused
before anything runs (:func:`validate_assertions` raises ``code="invalid_assertion"``).
Each one runs in its own READ ONLY transaction with a statement timeout, and
the first column of the first row is compared with ``expect`` (numbers
numerically, booleans as booleans, ``None`` as SQL NULL, anything else as text).
"""

from __future__ import annotations

import decimal
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any

from .base import ConnectionParams, EngineError, copy_into, scrub

DEFAULT_TIMEOUT = 30
_FORBIDDEN = re.compile(r"\binto\s+(outfile|dumpfile)\b|\bfor\s+(update|share)\b", re.I)


def _single_select(statement: Any) -> str:
    if not isinstance(statement, str) or not statement.strip():
        raise EngineError("Assertion SQL must be a non-empty string", code="invalid_assertion")
    text = statement.strip().rstrip(";").strip()
    if ";" in text:
        raise EngineError(f"Assertion SQL must be a single statement: {statement!r}", code="invalid_assertion")
    first = re.match(r"[A-Za-z]+", text)
    if not first or first.group(0).lower() not in ("select", "with"):
        raise EngineError(f"Assertion SQL must be a read-only SELECT: {statement!r}", code="invalid_assertion")
    if _FORBIDDEN.search(text):
        raise EngineError(f"Assertion SQL must not write or lock: {statement!r}", code="invalid_assertion")
    return text


def validate_assertions(assertions: Iterable[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Check every assertion (shape and single read-only SELECT); returns them normalised."""
    out = []
    for index, item in enumerate(assertions or []):
        if not isinstance(item, Mapping) or "sql" not in item or "expect" not in item:
            raise EngineError(
                f"Assertion {index} must be an object with 'sql' and 'expect'",
                code="invalid_assertion",
            )
        out.append({"sql": _single_select(item["sql"]), "expect": item["expect"]})
    return out


def _matches(actual: Any, expect: Any) -> bool:
    if isinstance(expect, bool):
        return actual in (0, 1, True, False) and bool(actual) is expect
    if expect is None:
        return actual is None
    if isinstance(expect, int | float) and isinstance(actual, int | float | decimal.Decimal):
        return decimal.Decimal(str(actual)) == decimal.Decimal(str(expect))
    if actual is None:
        return False
    if isinstance(actual, bytes):
        actual = actual.decode("utf-8", "replace")
    return str(actual) == str(expect)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


# --------------------------------------------------------------------------- row counts


def table_row_counts(params: ConnectionParams) -> dict[str, int]:
    """Exact ``count(*)`` of every base table: ``{"schema.table": n}`` (MySQL: "database.table")."""
    if params.is_postgres:
        from psycopg import sql

        from .postgres import connect

        with connect(params, autocommit=True) as conn:
            tables = conn.execute(
                "SELECT table_schema, table_name FROM information_schema.tables"
                " WHERE table_type = 'BASE TABLE'"
                " AND table_schema NOT IN ('pg_catalog', 'information_schema')"
                " ORDER BY 1, 2"
            ).fetchall()
            counts = {}
            for schema, table in tables:
                row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))).fetchone()
                counts[f"{schema}.{table}"] = int(row[0]) if row else 0
            return counts
    if params.is_mysql:
        from .mysql import connect, quote_ident

        conn = connect(params, autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT table_name FROM information_schema.tables"
                    " WHERE table_schema = %s AND table_type = 'BASE TABLE' ORDER BY 1",
                    (params.database,),
                )
                counts = {}
                for (table,) in cur.fetchall():
                    cur.execute(
                        f"SELECT COUNT(*) FROM {quote_ident(params.database or '')}.{quote_ident(table)}"  # noqa: S608 - quoted identifiers
                    )
                    counts[f"{params.database}.{table}"] = int(cur.fetchone()[0])
                return counts
        finally:
            conn.close()
    raise EngineError(f"Row counts are not supported for {params.type!r} servers", code="unsupported")


# --------------------------------------------------------------------------- assertions


def _result(item: dict[str, Any], actual: Any, error: str | None) -> dict[str, Any]:
    passed = error is None and _matches(actual, item["expect"])
    return {
        "sql": item["sql"],
        "expect": item["expect"],
        "actual": _jsonable(actual),
        "passed": passed,
        "error": error,
    }


def _pg_assertions(params: ConnectionParams, items: list[dict[str, Any]], timeout: int) -> list[dict[str, Any]]:
    import psycopg

    from .postgres import connect

    results = []
    with connect(params) as conn:
        for item in items:
            actual, error = None, None
            try:
                with conn.cursor() as cur:
                    cur.execute("SET TRANSACTION READ ONLY")
                    cur.execute("SELECT set_config('statement_timeout', %s, true)", (f"{timeout}s",))
                    cur.execute(item["sql"])
                    row = cur.fetchone() if cur.description else None
                    actual = row[0] if row else None
            except psycopg.Error as exc:
                error = scrub(str(exc).strip(), [params.password])
            finally:
                conn.rollback()
            results.append(_result(item, actual, error))
    return results


def _my_assertions(params: ConnectionParams, items: list[dict[str, Any]], timeout: int) -> list[dict[str, Any]]:
    import pymysql

    from .mysql import connect

    results = []
    conn = connect(params, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            mariadb = "mariadb" in str(cur.fetchone()[0]).lower()
            if mariadb:
                cur.execute("SET SESSION max_statement_time = %s", (timeout,))
            else:
                cur.execute("SET SESSION max_execution_time = %s", (timeout * 1000,))
        for item in items:
            actual, error = None, None
            try:
                with conn.cursor() as cur:
                    cur.execute("START TRANSACTION READ ONLY")
                    cur.execute(item["sql"])
                    row = cur.fetchone() if cur.description else None
                    actual = row[0] if row else None
            except pymysql.MySQLError as exc:
                error = scrub(str(exc), [params.password])
            finally:
                conn.rollback()
            results.append(_result(item, actual, error))
    finally:
        conn.close()
    return results


def run_assertions(
    params: ConnectionParams,
    assertions: Iterable[Mapping[str, Any]] | None,
    *,
    timeout: int = DEFAULT_TIMEOUT,
) -> list[dict[str, Any]]:
    """Run each assertion; returns ``[{"sql", "expect", "actual", "passed", "error"}]``.

    Invalid assertions (not a single SELECT) raise EngineError before any runs.
    A query error (or timeout) makes that assertion fail with ``error`` set.
    """
    items = validate_assertions(assertions)
    if not items:
        return []
    if params.is_postgres:
        return _pg_assertions(params, items, timeout)
    if params.is_mysql:
        return _my_assertions(params, items, timeout)
    raise EngineError(f"Assertions are not supported for {params.type!r} servers", code="unsupported")


# --------------------------------------------------------------------------- the whole verification


def run_test_restore(
    server: ConnectionParams,
    stream: Any,
    *,
    assertions: Iterable[Mapping[str, Any]] | None = None,
    scratch_database: str | None = None,
    timeout: int = DEFAULT_TIMEOUT,
) -> dict[str, Any]:
    """Restore ``stream`` (plaintext dump: readable, iterable of bytes or bytes) into a scratch DB.

    Returns ``{"database", "restore_seconds", "duration_seconds", "row_counts",
    "tables", "total_rows", "assertions", "passed"}``; ``passed`` is True when the
    restore worked and every assertion passed. Restore failures raise
    :class:`EngineError`. The scratch database is dropped in every case.
    """
    from . import drop_database, restore_sink

    items = validate_assertions(assertions)
    name = scratch_database or f"bp_verify_{secrets.token_hex(6)}"
    params = server.with_database(name)
    started = time.monotonic()
    try:
        sink = restore_sink(params, strategy="create_new", create_database=True)
        with sink:
            copy_into(stream, sink)
            restore = sink.finish()
        restored = time.monotonic()
        counts = table_row_counts(params)
        results = run_assertions(params, items, timeout=timeout)
    finally:
        drop_database(params)
    return {
        "database": name,
        "restore": restore,
        "restore_seconds": round(restored - started, 3),
        "duration_seconds": round(time.monotonic() - started, 3),
        "row_counts": counts,
        "tables": len(counts),
        "total_rows": sum(counts.values()),
        "assertions": results,
        "passed": all(r["passed"] for r in results),
    }
