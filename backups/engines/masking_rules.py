"""Masking rules, the values they produce, and how a plan of tables is run (see
:mod:`backups.engines.masking` for what each rule does)."""

from __future__ import annotations

import decimal
import logging
import random
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .base import EngineError, scrub

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
Report = Callable[[int, "int | None"], None]


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
                raise EngineError(f"Masking rule for {column!r}: fixed needs a value", code="invalid_rule")
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
    whole = _rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10**digits - 1) if digits > 0 else 0
    frac = _rng.randint(0, 10**scale - 1) if scale else 0
    return decimal.Decimal(f"{whole}.{frac:0{scale}d}") if scale else decimal.Decimal(whole)


def random_float(value: Any) -> float:
    digits = _int_digits(value)
    return _rng.uniform(10 ** (digits - 1) if digits > 1 else 0, 10**digits - 1)


# --------------------------------------------------------------------------- planning


class Dialect:
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


def plan_columns(
    dialect: Dialect, columns: list[Column], rules: dict[str, Rule]
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


# --------------------------------------------------------------------------- running a plan


def run_plan(  # type: ignore[no-untyped-def]
    plan, skipped, mask_table, db_error, params, *, progress=None, sizes=None
) -> dict[str, Any]:
    tables: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
    sizes = sizes or {}
    # Every table weighs at least a page, so empty tables still move the bar.
    weights = {key: max(sizes.get(key, 0), 8192) for key in plan}
    total_weight = sum(weights.values()) or 1
    done_weight = 0

    def reporter(index: int, key: str) -> Report:
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
