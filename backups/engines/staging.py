"""Staging databases: where a restore is written (and masked) before it takes the target's name.

A masked restore must never show unmasked rows under the target's name, not
even for a moment, and must leave nothing unmasked behind if it fails or the
worker dies. So the sinks of :mod:`.postgres` and :mod:`.mysql` can restore
into a **staging database** first, run a ``prepare`` step there (the masking),
and only then swap it in (PostgreSQL renames the database; MySQL/MariaDB moves
the tables with one atomic ``RENAME TABLE``). A failed restore or prepare drops
the staging database; the target is never created.

A worker that is killed cannot drop anything, so staging databases have names
that say what they are and when they were made::

    <up to 38 bytes of the target's name>_bpstage_<created, unix time hex><random hex>

:func:`cleanup_staging` finds them on a server and drops those it is told to
(by name, e.g. the ones a dead restore recorded, and/or by age).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time
from collections.abc import Iterable

from .base import ConnectionParams, EngineError

MARKER = "_bpstage_"
#: What a staging name ends with: the marker, 8 hex digits of unix time, 8 random hex digits.
_TAIL = re.compile(re.escape(MARKER) + r"([0-9a-f]{8})([0-9a-f]{8})$")
#: Bytes of the target's name kept at the front (PostgreSQL names hold 63 bytes, MySQL 64 characters).
HEAD_BYTES = 38


def staging_name(target: str, *, now: float | None = None) -> str:
    """A new, unique staging database name for ``target``."""
    head = target.encode("utf-8")[:HEAD_BYTES].decode("utf-8", "ignore")
    stamp = int(time.time() if now is None else now)
    return f"{head}{MARKER}{stamp:08x}{secrets.token_hex(4)}"


def is_staging_name(name: str) -> bool:
    return _TAIL.search(name) is not None


def staging_created_at(name: str) -> dt.datetime | None:
    """When the staging database ``name`` was made (from its name), or None if it is not one."""
    match = _TAIL.search(name)
    if match is None:
        return None
    return dt.datetime.fromtimestamp(int(match.group(1), 16), tz=dt.UTC)


def list_staging(params: ConnectionParams) -> list[str]:
    """Names of the staging databases on the server of ``params``."""
    if params.is_postgres:
        from .postgres import _admin

        with _admin(params) as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_database WHERE strpos(datname, %s) > 0 ORDER BY datname",
                (MARKER,),
            ).fetchall()
    elif params.is_mysql:
        from .mysql import _query

        rows = _query(
            params,
            "SELECT schema_name FROM information_schema.schemata"
            " WHERE LOCATE(%s, schema_name) > 0 ORDER BY schema_name",
            (MARKER,),
        )
    else:
        raise EngineError(f"No database engine for server type {params.type!r}", code="unsupported")
    return [str(row[0]) for row in rows if is_staging_name(str(row[0]))]


def drop_staging(params: ConnectionParams, name: str) -> None:
    """Drop one staging database (ending its sessions); refuses a name that is not a staging name."""
    if not is_staging_name(name):
        raise EngineError(f"{name!r} is not a staging database", code="invalid_params")
    if params.is_postgres:
        from .postgres import pg_drop_database

        pg_drop_database(params, name)
    elif params.is_mysql:
        from .mysql import mysql_drop_database

        mysql_drop_database(params, name)
    else:
        raise EngineError(f"No database engine for server type {params.type!r}", code="unsupported")


def cleanup_staging(
    params: ConnectionParams,
    *,
    names: Iterable[str] | None = None,
    older_than: dt.timedelta | None = None,
    now: dt.datetime | None = None,
) -> list[str]:
    """Drop staging databases left on a server by restores that died; returns the dropped names.

    ``names``: only these (e.g. what a restore recorded before it created them);
    ``older_than``: only those made longer ago than this (e.g. the restore task's
    hard time limit, after which no live restore can still be using one). With
    both, a database must match both; with neither, every staging database on
    the server is dropped, so call it that way only when no restore can be running.
    """
    wanted = None if names is None else set(names)
    cutoff = None if older_than is None else (now or dt.datetime.now(dt.UTC)) - older_than
    dropped = []
    for name in list_staging(params):
        if wanted is not None and name not in wanted:
            continue
        created = staging_created_at(name)
        if cutoff is not None and (created is None or created > cutoff):
            continue
        drop_staging(params, name)
        dropped.append(name)
    return dropped
