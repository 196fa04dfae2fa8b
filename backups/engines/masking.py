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

from collections.abc import Mapping
from typing import Any

from .base import ConnectionParams, EngineError
from .masking_mysql import mask_mysql
from .masking_postgres import mask_postgres
from .masking_rules import MaskingProgress, ProgressCallback, Rule, parse_rule, parse_rules

__all__ = ["MaskingProgress", "Rule", "apply_masking", "parse_rule", "parse_rules"]


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
        return mask_postgres(params, parsed, progress)
    if params.is_mysql:
        return mask_mysql(params, parsed, progress)
    raise EngineError(f"Masking is not supported for {params.type!r} servers", code="unsupported")
