"""Masking rules applied to a restored copy (db-backup-platform.md, "Restore Backup").

The caller passes the connection parameters of the **restored copy**; this
module connects to nothing else, so the source database is never touched.

``rules`` map a column name (matched case-insensitively in every base table of
the database, via ``information_schema.columns``; generated columns are
skipped) to a rule:

``"hash"``
    sha256 hex of the value, truncated to the column's maximum length
    (``varchar(n)`` / ``char(n)``). Text columns only.
``"randomize"``
    Text: a random value of the same length and shape: each digit becomes a
    random digit, each ASCII letter a random letter of the same case (other
    characters, e.g. ``@`` ``.`` ``-`` and spaces, are kept), so numeric-looking
    text stays digits and everything else becomes letters. Integer / decimal /
    float columns: a random number with the same number of integer digits
    (clamped to the type's range and precision). Other types are skipped.
``"null"``
    ``NULL``, only if the column is nullable (otherwise the column is listed in
    ``skipped`` and left as it is).
``{"type": "fixed", "value": "..."}`` or ``"fixed:VALUE"``
    The given value (the database casts it to the column's type).

NULL values stay NULL under every rule. Each table is masked in one
transaction (all its rules, or none if any statement fails: the table is then
listed in ``errors``). The SQL rules run as one ``UPDATE`` per table;
``randomize`` updates row by row in the same transaction, addressed by ``ctid``
(PostgreSQL, rows read in batches of ``BATCH_ROWS`` through a server-side cursor)
or the primary key (MySQL; tables without one are skipped for ``randomize``).

``progress`` (optional) receives a :class:`MaskingProgress` when a table starts,
after each batch of randomized rows and when a table ends; ``fraction`` weighs
tables by their on-disk size. A single ``UPDATE`` is not divided, so a large
table with only SQL rules moves the fraction when it is done. Whatever the
callback raises (a cancel, a crash) rolls back the table being masked and
propagates; a caller that masks a staging copy then drops it (see :mod:`.staging`).

Result: ``{"tables": {"public.users": {"columns": ["email"], "rows": 10}},
"skipped": [{"table", "column", "rule", "reason"}], "errors": [{"table", "error"}]}``.
For MySQL the "schema" part of a table name is the database name.
"""

from __future__ import annotations

import decimal
import logging
import random
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .base import ConnectionParams, EngineError, scrub

logger = logging.getLogger(__name__)

RULE_TYPES = ("hash", "randomize", "null", "fixed")

_rng = random.SystemRandom()

PG_TEXT = {"text", "character varying", "character", "citext"}
PG_INT = {"smallint": 2**15 - 1, "integer": 2**31 - 1, "bigint": 2**63 - 1}
PG_FLOAT = {"real", "double precision"}
MY_TEXT = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext"}
MY_INT = {
    "tinyint": 2**7 - 1,
    "smallint": 2**15 - 1,
    "mediumint": 2**23 - 1,
    "int": 2**31 - 1,
    "integer": 2**31 - 1,
    "bigint": 2**63 - 1,
}
MY_FLOAT = {"float", "double", "real"}


#: Rows fetched and updated per batch by ``randomize`` (memory and progress granularity).
BATCH_ROWS = 2000


@dataclass(frozen=True)
class MaskingProgress:
    """Where masking is: ``fraction`` (0..1) of the whole work, weighing tables by their size."""

    table: str  # "public.customers" (MySQL: "database.customers")
    tables_done: int  # tables finished before this one
    tables: int  # tables to mask
    rows_done: int  # rows of this table masked so far
    rows: int | None  # rows of this table, once known
    fraction: float


ProgressCallback = Callable[[MaskingProgress], None]
_Report = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class Rule:
    type: str
    value: Any = None

    @property
    def label(self) -> str:
        return self.type


def parse_rule(column: str, rule: str | Mapping[str, Any]) -> Rule:
    """``"hash"``, ``"randomize"``, ``"null"``, ``"fixed:VALUE"`` or ``{"type": ..., "value": ...}``."""
    if isinstance(rule, str):
        if rule.startswith("fixed:"):
            return Rule("fixed", rule[len("fixed:") :])
        if rule in ("hash", "randomize", "null"):
            return Rule(rule)
    elif isinstance(rule, Mapping):
        kind = rule.get("type")
        if kind == "fixed":
            if "value" not in rule:
                raise EngineError(
                    f"Masking rule for {column!r}: fixed needs a value", code="invalid_rule"
                )
            return Rule("fixed", rule["value"])
        if kind in ("hash", "randomize", "null"):
            return Rule(str(kind))
    raise EngineError(
        f"Unknown masking rule for {column!r}: {rule!r} (expected hash, randomize, null or fixed)",
        code="invalid_rule",
    )


def parse_rules(rules: Mapping[str, str | Mapping[str, Any]]) -> dict[str, Rule]:
    """Validate and normalise rules (keys lower-cased); raises EngineError ``invalid_rule``."""
    parsed: dict[str, Rule] = {}
    for column, rule in rules.items():
        if not isinstance(column, str) or not column:
            raise EngineError(f"Invalid column name {column!r}", code="invalid_rule")
        parsed[column.lower()] = parse_rule(column, rule)
    return parsed


@dataclass
class Column:
    schema: str
    table: str
    name: str
    data_type: str
    max_length: int | None
    nullable: bool
    precision: int | None
    scale: int | None

    @property
    def table_key(self) -> str:
        return f"{self.schema}.{self.table}"


# --------------------------------------------------------------------------- random values


def random_text(value: str) -> str:
    out = []
    for ch in value:
        if ch.isdigit():
            out.append(_rng.choice(string.digits))
        elif ch in string.ascii_uppercase:
            out.append(_rng.choice(string.ascii_uppercase))
        elif ch.isalpha():
            out.append(_rng.choice(string.ascii_lowercase))
        else:
            out.append(ch)
    return "".join(out)


def _int_digits(value: Any) -> int:
    try:
        return max(1, len(str(abs(int(value)))))
    except (TypeError, ValueError, OverflowError):
        return 1


def random_int(value: Any, maximum: int) -> int:
    digits = _int_digits(value)
    low = 0 if digits == 1 else 10 ** (digits - 1)
    return min(_rng.randint(low, 10**digits - 1), maximum)


def random_decimal(value: Any, precision: int | None, scale: int | None) -> decimal.Decimal:
    scale = scale or 0
    int_room = (precision - scale) if precision else 15
    digits = min(_int_digits(value), max(int_room, 0))
    whole = (
        _rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10**digits - 1) if digits > 0 else 0
    )
    frac = _rng.randint(0, 10**scale - 1) if scale else 0
    return decimal.Decimal(f"{whole}.{frac:0{scale}d}") if scale else decimal.Decimal(whole)


def random_float(value: Any) -> float:
    digits = _int_digits(value)
    return _rng.uniform(10 ** (digits - 1) if digits > 1 else 0, 10**digits - 1)


# --------------------------------------------------------------------------- planning


class _Dialect:
    name = ""
    text_types: set[str] = set()
    int_types: dict[str, int] = {}
    float_types: set[str] = set()
    decimal_types: set[str] = set()

    def kind(self, column: Column) -> str:
        if column.data_type in self.text_types:
            return "text"
        if column.data_type in self.int_types:
            return "int"
        if column.data_type in self.decimal_types:
            return "decimal"
        if column.data_type in self.float_types:
            return "float"
        return "other"

    def random_value(self, column: Column, value: Any) -> Any:
        kind = self.kind(column)
        if kind == "text":
            return random_text(str(value))
        if kind == "int":
            return random_int(value, self.int_types[column.data_type])
        if kind == "decimal":
            return random_decimal(value, column.precision, column.scale)
        return random_float(value)


def _plan(
    dialect: _Dialect, columns: list[Column], rules: dict[str, Rule]
) -> tuple[dict[str, list[tuple[Column, Rule]]], list[dict[str, Any]]]:
    tables: dict[str, list[tuple[Column, Rule]]] = {}
    skipped: list[dict[str, Any]] = []
    for column in columns:
        rule = rules[column.name.lower()]
        kind = dialect.kind(column)
        reason = None
        if rule.type == "hash" and kind != "text":
            reason = f"hash needs a text column (column is {column.data_type})"
        elif rule.type == "randomize" and kind == "other":
            reason = f"randomize does not support {column.data_type} columns"
        elif rule.type == "null" and not column.nullable:
            reason = "column is NOT NULL; cannot set it to null"
        if reason:
            skipped.append(
                {
                    "table": column.table_key,
                    "column": column.name,
                    "rule": rule.type,
                    "reason": reason,
                }
            )
            continue
        tables.setdefault(column.table_key, []).append((column, rule))
    return tables, skipped


# --------------------------------------------------------------------------- PostgreSQL


class _Postgres(_Dialect):
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


def _pg_mask_table(conn: Any, columns: list[tuple[Column, Rule]], report: _Report) -> int:
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
                sql.SQL("UPDATE {} SET {} = {} WHERE {} IS NOT NULL").format(
                    table, ident, sql.Literal(value), ident
                )
            )
            rows = max(rows, cur.rowcount)
        if random_cols:
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(table))
            total = cur.fetchone()[0]
            report(0, total)
            update = sql.SQL("UPDATE {} SET {} WHERE ctid = %s::tid").format(
                table,
                sql.SQL(", ").join(
                    sql.SQL("{} = %s").format(sql.Identifier(c.name)) for c in random_cols
                ),
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


def _mask_postgres(
    params: ConnectionParams, rules: dict[str, Rule], progress: ProgressCallback | None
) -> dict[str, Any]:
    import psycopg

    from .postgres import connect

    with connect(params, autocommit=True) as conn:
        columns = _pg_columns(conn, list(rules))
        plan, skipped = _plan(_Postgres(), columns, rules)
        sizes = _pg_sizes(conn, plan)
        return _run_plan(
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


# --------------------------------------------------------------------------- MySQL


class _MySQL(_Dialect):
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
    return [
        Column(s, t, n, str(d).lower(), m, nl == "YES", p, sc) for s, t, n, d, m, nl, p, sc in rows
    ]


def _my_primary_key(conn: Any, schema: str, table: str) -> list[str]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT column_name FROM information_schema.key_column_usage"
            " WHERE table_schema = %s AND table_name = %s AND constraint_name = 'PRIMARY'"
            " ORDER BY ordinal_position",
            (schema, table),
        )
        return [row[0] for row in cur.fetchall()]


def _my_mask_table(conn: Any, columns: list[tuple[Column, Rule]], report: _Report) -> int:
    from .mysql import quote_ident as q

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


def _mask_mysql(
    params: ConnectionParams, rules: dict[str, Rule], progress: ProgressCallback | None
) -> dict[str, Any]:
    import pymysql

    from .mysql import connect

    conn = connect(params, autocommit=True)
    try:
        columns = _my_columns(conn, params.database or "", list(rules))
        plan, skipped = _plan(_MySQL(), columns, rules)
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
        return _run_plan(
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


# --------------------------------------------------------------------------- entry point


def _my_sizes(
    conn: Any, database: str, plan: dict[str, list[tuple[Column, Rule]]]
) -> dict[str, int]:
    if not plan:
        return {}
    with conn.cursor() as cur:
        cur.execute(
            "SELECT table_name, coalesce(data_length, 0) FROM information_schema.tables"
            " WHERE table_schema = %s",
            (database,),
        )
        by_name = {str(name): int(size) for name, size in cur.fetchall()}
    return {key: by_name.get(cols[0][0].table, 0) for key, cols in plan.items()}


# --------------------------------------------------------------------------- entry point


def _run_plan(  # type: ignore[no-untyped-def]
    plan, skipped, mask_table, db_error, params, *, progress=None, sizes=None
) -> dict[str, Any]:
    tables: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
    sizes = sizes or {}
    # Every table weighs at least a page, so empty tables still move the bar.
    weights = {key: max(sizes.get(key, 0), 8192) for key in plan}
    total_weight = sum(weights.values()) or 1
    done_weight = 0

    def reporter(index: int, key: str) -> _Report:
        def report(rows_done: int, rows: int | None) -> None:
            if progress is None:
                return
            within = min(1.0, rows_done / rows) if rows else 0.0
            progress(
                MaskingProgress(
                    table=key,
                    tables_done=index,
                    tables=len(plan),
                    rows_done=rows_done,
                    rows=rows,
                    fraction=min(1.0, (done_weight + weights[key] * within) / total_weight),
                )
            )

        return report

    for index, (key, cols) in enumerate(plan.items()):
        report = reporter(index, key)
        report(0, None)
        try:
            rows = mask_table(cols, report)
        except db_error as exc:
            errors.append({"table": key, "error": scrub(str(exc).strip(), [params.password])})
            rows = None
        else:
            tables[key] = {
                "columns": [c.name for c, _ in cols],
                "rules": {c.name: r.type for c, r in cols},
                "rows": rows,
            }
        done_weight += weights[key]
        report(rows or 0, rows or 0)
    return {"tables": tables, "skipped": skipped, "errors": errors}


def apply_masking(
    params: ConnectionParams,
    rules: Mapping[str, str | Mapping[str, Any]],
    *,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Mask the restored copy at ``params`` (PostgreSQL or MySQL/MariaDB); see the module doc.

    ``progress(MaskingProgress)`` is called when a table starts, after every
    batch of randomized rows, and when a table ends; whatever it raises stops
    the masking (the table being masked is rolled back) and propagates.
    """
    parsed = parse_rules(rules)
    if not params.database:
        raise EngineError("No database given to mask", code="invalid_params")
    if not parsed:
        return {"tables": {}, "skipped": [], "errors": []}
    if params.is_postgres:
        return _mask_postgres(params, parsed, progress)
    if params.is_mysql:
        return _mask_mysql(params, parsed, progress)
    raise EngineError(f"Masking is not supported for {params.type!r} servers", code="unsupported")
