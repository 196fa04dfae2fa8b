"""Masking a restored PostgreSQL copy (see :mod:`backups.engines.masking`)."""

from __future__ import annotations

import logging
from typing import Any

from .base import ConnectionParams
from .masking_rules import (
    BATCH_ROWS,
    PG_FLOAT,
    PG_INT,
    PG_TEXT,
    Column,
    Dialect,
    ProgressCallback,
    Report,
    Rule,
    plan_columns,
    run_plan,
)
from .postgres import connect

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- PostgreSQL


class _Postgres(Dialect):
    name = "postgresql"
    text_types = PG_TEXT
    int_types = PG_INT
    float_types = PG_FLOAT
    decimal_types = {"numeric"}


def _pg_columns(conn: Any, names: list[str]) -> list[Column]:
    rows = conn.execute(
        "SELECT c.table_schema, c.table_name, c.column_name, c.data_type,"
        " c.character_maximum_length, c.is_nullable, c.numeric_precision, c.numeric_scale"
        " FROM information_schema.columns c JOIN information_schema.tables t"
        " ON t.table_schema = c.table_schema AND t.table_name = c.table_name"
        " WHERE t.table_type = 'BASE TABLE'"
        " AND c.table_schema NOT IN ('pg_catalog', 'information_schema')"
        " AND c.is_generated = 'NEVER' AND lower(c.column_name) = ANY(%s)"
        " ORDER BY c.table_schema, c.table_name, c.ordinal_position",
        (names,),
    ).fetchall()
    out = []
    for schema, table, name, dtype, maxlen, nullable, precision, scale in rows:
        if dtype == "USER-DEFINED":
            dtype = "other"
        out.append(Column(schema, table, name, dtype, maxlen, nullable == "YES", precision, scale))
    return out


def _pg_mask_table(conn: Any, columns: list[tuple[Column, Rule]], report: Report) -> int:
    from psycopg import sql

    first = columns[0][0]
    table = sql.Identifier(first.schema, first.table)
    sets = []
    args: list[Any] = []
    fixed: list[tuple[Any, str | None]] = []
    for column, rule in columns:
        ident = sql.Identifier(column.name)
        if rule.type == "hash":
            expr = sql.SQL("encode(sha256(convert_to({}::text, 'UTF8')), 'hex')").format(ident)
            if column.max_length:
                expr = sql.SQL("left({}, {})").format(expr, sql.Literal(column.max_length))
            sets.append(sql.SQL("{} = {}").format(ident, expr))
        elif rule.type == "null":
            sets.append(sql.SQL("{} = NULL").format(ident))
        elif rule.type == "fixed":
            # A separate UPDATE with an untyped literal, so PostgreSQL converts the value with
            # the column's own input function (jsonb, dates, numbers...), NULLs left as NULL.
            fixed.append((ident, None if rule.value is None else str(rule.value)))
    random_cols = [c for c, r in columns if r.type == "randomize"]
    rows = 0
    with conn.transaction(), conn.cursor() as cur:
        if sets:
            cur.execute(sql.SQL("UPDATE {} SET ").format(table) + sql.SQL(", ").join(sets), args)
            rows = cur.rowcount
        for ident, value in fixed:
            cur.execute(
                sql.SQL("UPDATE {} SET {} = {} WHERE {} IS NOT NULL").format(table, ident, sql.Literal(value), ident)
            )
            rows = max(rows, cur.rowcount)
        if random_cols:
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(table))
            total = cur.fetchone()[0]
            report(0, total)
            update = sql.SQL("UPDATE {} SET {} WHERE ctid = %s::tid").format(
                table,
                sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c.name)) for c in random_cols),
            )
            dialect = _Postgres()
            done = 0
            # A server-side cursor reads the rows in batches (memory stays bounded); it sees
            # the table as it was when opened, so rows updated meanwhile are not read again.
            with conn.cursor(name="bp_masking") as reader:
                reader.itersize = BATCH_ROWS
                reader.execute(
                    sql.SQL("SELECT ctid::text, {} FROM {}").format(
                        sql.SQL(", ").join(sql.Identifier(c.name) for c in random_cols), table
                    )
                )
                while fetched := reader.fetchmany(BATCH_ROWS):
                    cur.executemany(
                        update,
                        [
                            [
                                *(
                                    None if v is None else dialect.random_value(c, v)
                                    for c, v in zip(random_cols, row[1:], strict=True)
                                ),
                                row[0],
                            ]
                            for row in fetched
                        ],
                    )
                    done += len(fetched)
                    report(done, max(total, done))
            rows = max(rows, done)
    return rows


def mask_postgres(
    params: ConnectionParams, rules: dict[str, Rule], progress: ProgressCallback | None
) -> dict[str, Any]:
    import psycopg

    with connect(params, autocommit=True) as conn:
        columns = _pg_columns(conn, list(rules))
        plan, skipped = plan_columns(_Postgres(), columns, rules)
        sizes = _pg_sizes(conn, plan)
        return run_plan(
            plan,
            skipped,
            lambda cols, report: _pg_mask_table(conn, cols, report),
            psycopg.Error,
            params,
            progress=progress,
            sizes=sizes,
        )


def _pg_sizes(conn: Any, plan: dict[str, list[tuple[Column, Rule]]]) -> dict[str, int]:
    """Bytes of each table to mask: the work of masking one is about proportional to its size."""
    if not plan:
        return {}
    keys = list(plan)
    schemas = [plan[k][0][0].schema for k in keys]
    tables = [plan[k][0][0].table for k in keys]
    rows = conn.execute(
        "SELECT coalesce(pg_relation_size(to_regclass(format('%%I.%%I', s, t))), 0)"
        " FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS x(s, t, n) ORDER BY n",
        (schemas, tables),
    ).fetchall()
    return {key: int(row[0]) for key, row in zip(keys, rows, strict=True)}
