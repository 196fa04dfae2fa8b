"""Masking a restored MySQL/MariaDB copy (see :mod:`backups.engines.masking`)."""

from __future__ import annotations

import logging
from typing import Any

from .base import ConnectionParams
from .masking_rules import (
    BATCH_ROWS,
    MY_FLOAT,
    MY_INT,
    MY_TEXT,
    Column,
    Dialect,
    ProgressCallback,
    Report,
    Rule,
    plan_columns,
    run_plan,
)
from .mysql import connect
from .mysql import quote_ident as q

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- MySQL


class _MySQL(Dialect):
    name = "mysql"
    text_types = MY_TEXT
    int_types = MY_INT
    float_types = MY_FLOAT
    decimal_types = {"decimal", "numeric"}


def _my_columns(conn: Any, database: str, names: list[str]) -> list[Column]:
    placeholders = ", ".join(["%s"] * len(names))
    with conn.cursor() as cur:
        cur.execute(
            "SELECT c.table_schema, c.table_name, c.column_name, c.data_type,"  # noqa: S608 - quoted identifiers
            " c.character_maximum_length, c.is_nullable, c.numeric_precision, c.numeric_scale"
            " FROM information_schema.columns c JOIN information_schema.tables t"
            " ON t.table_schema = c.table_schema AND t.table_name = c.table_name"
            " WHERE t.table_type = 'BASE TABLE' AND c.table_schema = %s"
            " AND c.extra NOT LIKE %s"
            f" AND lower(c.column_name) IN ({placeholders})"
            " ORDER BY c.table_name, c.ordinal_position",
            [database, "%GENERATED%", *names],
        )
        rows = cur.fetchall()
    return [Column(s, t, n, str(d).lower(), m, nl == "YES", p, sc) for s, t, n, d, m, nl, p, sc in rows]


def _my_primary_key(conn: Any, schema: str, table: str) -> list[str]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT column_name FROM information_schema.key_column_usage"
            " WHERE table_schema = %s AND table_name = %s AND constraint_name = 'PRIMARY'"
            " ORDER BY ordinal_position",
            (schema, table),
        )
        return [row[0] for row in cur.fetchall()]


def _my_mask_table(conn: Any, columns: list[tuple[Column, Rule]], report: Report) -> int:

    first = columns[0][0]
    table = f"{q(first.schema)}.{q(first.table)}"
    sets, args = [], []
    for column, rule in columns:
        ident = q(column.name)
        if rule.type == "hash":
            expr = f"SHA2({ident}, 256)"
            if column.max_length:
                expr = f"LEFT({expr}, {int(column.max_length)})"
            sets.append(f"{ident} = {expr}")
        elif rule.type == "null":
            sets.append(f"{ident} = NULL")
        elif rule.type == "fixed":
            sets.append(f"{ident} = CASE WHEN {ident} IS NULL THEN NULL ELSE %s END")
            args.append(None if rule.value is None else str(rule.value))
    random_cols = [c for c, r in columns if r.type == "randomize"]
    key = _my_primary_key(conn, first.schema, first.table) if random_cols else []
    rows = 0
    conn.begin()
    try:
        with conn.cursor() as cur:
            if sets:
                cur.execute(f"SELECT COUNT(*) FROM {table}")  # noqa: S608 - quoted identifiers
                rows = cur.fetchone()[0]
                cur.execute(f"UPDATE {table} SET {', '.join(sets)}", args)  # noqa: S608 - quoted identifiers
            if random_cols:
                cols = ", ".join(q(c.name) for c in random_cols)
                keys = ", ".join(q(k) for k in key)
                cur.execute(f"SELECT {keys}, {cols} FROM {table}")  # noqa: S608 - quoted identifiers
                fetched = cur.fetchall()
                rows = max(rows, len(fetched))
                where = " AND ".join(f"{q(k)} = %s" for k in key)
                assignments = ", ".join(f"{q(c.name)} = %s" for c in random_cols)
                dialect = _MySQL()
                report(0, len(fetched))
                update = f"UPDATE {table} SET {assignments} WHERE {where}"  # noqa: S608 - quoted identifiers
                for start in range(0, len(fetched), BATCH_ROWS):
                    part = fetched[start : start + BATCH_ROWS]
                    cur.executemany(
                        update,
                        [
                            [
                                *(
                                    None if v is None else dialect.random_value(c, v)
                                    for c, v in zip(random_cols, row[len(key) :], strict=True)
                                ),
                                *row[: len(key)],
                            ]
                            for row in part
                        ],
                    )
                    report(start + len(part), len(fetched))
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return rows


def mask_mysql(params: ConnectionParams, rules: dict[str, Rule], progress: ProgressCallback | None) -> dict[str, Any]:
    import pymysql

    conn = connect(params, autocommit=True)
    try:
        columns = _my_columns(conn, params.database or "", list(rules))
        plan, skipped = plan_columns(_MySQL(), columns, rules)
        for key, cols in list(plan.items()):
            if any(r.type == "randomize" for _, r in cols) and not _my_primary_key(
                conn, cols[0][0].schema, cols[0][0].table
            ):
                keep = []
                for column, rule in cols:
                    if rule.type == "randomize":
                        skipped.append(
                            {
                                "table": key,
                                "column": column.name,
                                "rule": rule.type,
                                "reason": "randomize needs a primary key on MySQL",
                            }
                        )
                    else:
                        keep.append((column, rule))
                if keep:
                    plan[key] = keep
                else:
                    del plan[key]
        return run_plan(
            plan,
            skipped,
            lambda cols, report: _my_mask_table(conn, cols, report),
            pymysql.MySQLError,
            params,
            progress=progress,
            sizes=_my_sizes(conn, params.database or "", plan),
        )
    finally:
        conn.close()


def _my_sizes(conn: Any, database: str, plan: dict[str, list[tuple[Column, Rule]]]) -> dict[str, int]:
    if not plan:
        return {}
    with conn.cursor() as cur:
        cur.execute(
            "SELECT table_name, coalesce(data_length, 0) FROM information_schema.tables WHERE table_schema = %s",
            (database,),
        )
        by_name = {str(name): int(size) for name, size in cur.fetchall()}
    return {key: by_name.get(cols[0][0].table, 0) for key, cols in plan.items()}


# --------------------------------------------------------------------------- running a plan
