"""MySQL / MariaDB: ``mysqldump`` stream out, ``mysql`` from a stream in.

The password goes into a temporary defaults file (mode 0600, deleted when the
tool has exited) passed with ``--defaults-file`` (so no user's ``~/.my.cnf``
changes what we run), never on the command line; always ``--protocol=TCP``.

The dump is of one database without ``--databases`` (no ``CREATE DATABASE`` /
``USE`` inside), so it restores into a database of any name.

Restore strategies (``mysql_restore_sink``):

``create_new`` (default)
    ``create_database=True``: ``CREATE DATABASE``; fails clearly
    (``code="target_exists"``) if it exists; dropped again if the restore fails.
    ``create_database=False``: the target must exist and hold no tables.
``overwrite``
    ``create_database=True``: restore into a staging database (:mod:`.staging`);
    only when ``mysql`` succeeded is the old target dropped and the staging
    database's content swapped in (below), so a failed restore never touches
    the target. ``create_database=False``: restore into the existing database;
    the dump's ``DROP TABLE IF EXISTS`` replaces each dumped table, other
    objects survive.

``prepare`` (e.g. masking; needs ``create_database=True``): the restore goes
into a staging database, ``prepare(staging_params)`` runs there, and only then
is the content swapped into the target. MySQL cannot rename a database, so the
swap creates the target and moves **every table in one atomic** ``RENAME TABLE
stg.t1 TO target.t1, ...``; views, triggers, stored routines and events cannot
move between databases, so their definitions (``SHOW CREATE ...``, with their
``sql_mode`` and character set) are read from the staging database, dropped
there, and created again in the target right after the tables arrived. If the
restore or ``prepare`` fails, the staging database is dropped and the target is
never created (``create_new``) or left as it was (``overwrite``). If the swap
itself fails (only metadata statements run then), the half-built target is
dropped too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pymysql

from .base import (
    CREATE_NEW,
    OVERWRITE,
    ConnectionParams,
    EngineError,
    ProcessSink,
    ProcessSource,
    check_strategy,
    scrub,
    tool_env,
    tool_version,
)
from .staging import is_staging_name, staging_name

logger = logging.getLogger(__name__)

SYSTEM_SCHEMAS = ("information_schema", "performance_schema", "mysql", "sys")


def quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def connect(params: ConnectionParams, database: str | None = None, **kwargs: Any) -> Any:
    """A PyMySQL connection (``database=""`` for none); errors become EngineError."""
    db = params.database if database is None else database
    try:
        return pymysql.connect(
            host=params.host,
            port=int(params.port),
            user=params.username,
            password=params.password or "",
            database=db or None,
            connect_timeout=max(2, params.connect_timeout),
            charset="utf8mb4",
            **kwargs,
        )
    except pymysql.MySQLError as exc:
        raise EngineError(
            f"Cannot connect to MySQL database {db!r} on {params.host}:{params.port}: "
            + scrub(str(exc), [params.password]),
            code="connection_failed",
        ) from None


def _query(params: ConnectionParams, statement: str, args: Any = None, *, database: str | None = "") -> list[tuple]:
    conn = connect(params, database, autocommit=True)
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement, args)
            return list(cursor.fetchall())
    except pymysql.MySQLError as exc:
        raise EngineError(scrub(str(exc), [params.password]), code="query_failed") from None
    finally:
        conn.close()


def server_version(params: ConnectionParams) -> str:
    rows = _query(params, "SELECT VERSION()", database=params.database)
    return str(rows[0][0]) if rows else ""


def mysql_database_exists(params: ConnectionParams, name: str | None = None) -> bool:
    name = name or params.database
    return bool(_query(params, "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (name,)))


def mysql_database_is_empty(params: ConnectionParams, name: str | None = None) -> bool:
    name = name or params.database
    rows = _query(params, "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", (name,))
    return rows[0][0] == 0


def mysql_create_database(params: ConnectionParams, name: str | None = None) -> None:
    name = name or params.database
    assert name
    if mysql_database_exists(params, name):
        raise EngineError(f"Database {name!r} already exists", code="target_exists")
    _query(params, f"CREATE DATABASE {quote_ident(name)}")


def mysql_drop_database(params: ConnectionParams, name: str | None = None) -> None:
    name = name or params.database
    assert name
    _query(params, f"DROP DATABASE IF EXISTS {quote_ident(name)}")


def _defaults_file(params: ConnectionParams) -> tuple[str, Callable[[], None]]:
    """A 0600 option file holding the password; returns (path, remove)."""
    password = params.password or ""
    if "\n" in password or "\r" in password:
        raise EngineError("Passwords with line breaks are not supported by the MySQL tools", code="invalid_params")
    fd, path = tempfile.mkstemp(prefix="bp-my-", suffix=".cnf")  # created 0600
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("[client]\n")
        if password:
            escaped = password.replace("\\", "\\\\").replace('"', '\\"')
            handle.write(f'password="{escaped}"\n')

    def remove() -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    return path, remove


def _common_args(params: ConnectionParams, defaults: str) -> list[str]:
    return [
        f"--defaults-file={defaults}",  # must come first
        "--protocol=TCP",
        f"--host={params.host}",
        f"--port={int(params.port)}",
        f"--user={params.username}",
        "--default-character-set=utf8mb4",
    ]


def _check_name(name: str | None, what: str) -> str:
    if not name:
        raise EngineError(f"No {what} database given", code="invalid_params")
    if name.startswith("-"):
        raise EngineError(f"Invalid database name {name!r}", code="invalid_params")
    return name


# --------------------------------------------------------------------------- dump


def mysqldump_source(params: ConnectionParams) -> ProcessSource:
    """Start ``mysqldump --single-transaction`` of ``params.database``.

    ``info``: ``engine`` ("mysql"), ``tool``, ``tool_version``, ``server_version``
    (``SELECT VERSION()``, which says "MariaDB" for MariaDB), ``database``, ``format`` ("sql").
    """
    database = _check_name(params.database, "source")
    version = server_version(params)
    info = {
        "engine": "mysql",
        "flavor": "mariadb" if "mariadb" in version.lower() else "mysql",
        "tool": "mysqldump",
        "tool_version": tool_version(["mysqldump", "--version"]),
        "server_version": version,
        "database": database,
        "format": "sql",
    }
    defaults, remove = _defaults_file(params)
    argv = [
        "mysqldump",
        *_common_args(params, defaults),
        "--single-transaction",
        "--routines",
        "--triggers",
        "--events",
        "--hex-blob",
        "--no-tablespaces",
        database,
    ]
    return ProcessSource(argv, tool="mysqldump", info=info, env=tool_env(), secrets=[params.password], cleanup=remove)


# --------------------------------------------------------------------------- restore


# --------------------------------------------------------------------------- staging swap

#: How long the swap waits for metadata locks (a reader's open transaction on a table).
SWAP_LOCK_WAIT = 120


@dataclass
class _Definition:
    """A view, trigger, routine or event as ``SHOW CREATE`` gives it, to create it again elsewhere."""

    kind: str  # VIEW, TRIGGER, FUNCTION, PROCEDURE, EVENT, PACKAGE, PACKAGE BODY
    name: str
    statement: str
    sql_mode: str | None = None
    charset: str | None = None
    collation: str | None = None
    time_zone: str | None = None


def _show_create(cur: Any, kind: str, name: str) -> _Definition:
    cur.execute(f"SHOW CREATE {kind} {quote_ident(name)}")
    row = cur.fetchone()
    columns = [d[0].lower() for d in cur.description]
    values = dict(zip(columns, row, strict=True)) if row else {}
    statement = next(
        (v for k, v in values.items() if k.startswith("create ") or k == "sql original statement"),
        None,
    )
    if not statement:
        # SHOW CREATE hides a routine's body from a user who may not see it: better to fail
        # than to restore without it.
        raise EngineError(
            f"Cannot read the definition of {kind.lower()} {name!r} (missing privileges?)",
            code="restore_failed",
        )
    return _Definition(
        kind,
        name,
        statement,
        sql_mode=values.get("sql_mode"),
        charset=values.get("character_set_client"),
        collation=values.get("collation_connection"),
        time_zone=values.get("time_zone"),
    )


def _schema_objects(cur: Any, schema: str) -> dict[str, Any]:
    """Tables to move and the definitions to create again, read from ``schema`` (the current one)."""
    cur.execute(
        "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = %s ORDER BY table_name",
        (schema,),
    )
    listed = cur.fetchall()
    tables = [name for name, kind in listed if kind != "VIEW"]
    # With the staging database as the current one, SHOW CREATE VIEW leaves its own
    # tables unqualified, so the definition works unchanged in the target.
    views = [_show_create(cur, "VIEW", name) for name, kind in listed if kind == "VIEW"]
    cur.execute(
        "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = %s"
        " ORDER BY event_object_table, action_timing, event_manipulation, action_order",
        (schema,),
    )
    triggers = [_show_create(cur, "TRIGGER", row[0]) for row in cur.fetchall()]
    cur.execute(
        "SELECT routine_type, routine_name FROM information_schema.routines"
        " WHERE routine_schema = %s ORDER BY routine_type = 'PACKAGE BODY', routine_type, routine_name",
        (schema,),
    )
    routines = [_show_create(cur, kind, name) for kind, name in cur.fetchall()]
    cur.execute(
        "SELECT event_name FROM information_schema.events WHERE event_schema = %s ORDER BY event_name",
        (schema,),
    )
    events = [_show_create(cur, "EVENT", row[0]) for row in cur.fetchall()]
    return {
        "tables": tables,
        "views": views,
        "triggers": triggers,
        "routines": routines,
        "events": events,
    }


def _create_again(cur: Any, item: _Definition, staging: str, target: str) -> None:
    """Run ``item``'s CREATE in the current database with the session settings it was made with."""
    settings = []
    if item.sql_mode is not None:
        settings.append(("sql_mode", item.sql_mode))
    if item.time_zone:
        settings.append(("time_zone", item.time_zone))
    if item.charset:
        settings.append(("character_set_client", item.charset))
    if item.collation:
        settings.append(("collation_connection", item.collation))
    for name, value in settings:
        cur.execute(f"SET SESSION {name} = %s", (value,))
    try:
        statement = item.statement.replace(f"{quote_ident(staging)}.", f"{quote_ident(target)}.")
        cur.execute(statement)
    finally:
        cur.execute("SET NAMES utf8mb4")


def _swap_in(params: ConnectionParams, staging: str, target: str, *, replace: bool) -> None:
    """Move everything from the staging database into ``target`` (created here), then drop staging."""
    q = quote_ident
    conn = connect(params, staging, autocommit=True)
    created = False
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION lock_wait_timeout = %s", (SWAP_LOCK_WAIT,))
            cur.execute("SELECT @@SESSION.sql_mode, @@SESSION.time_zone")
            session_mode, session_zone = cur.fetchone()
            objects = _schema_objects(cur, staging)
            cur.execute(
                "SELECT default_character_set_name, default_collation_name"
                " FROM information_schema.schemata WHERE schema_name = %s",
                (staging,),
            )
            charset, collation = cur.fetchone()
            if replace:
                cur.execute(f"DROP DATABASE IF EXISTS {q(target)}")
            try:
                cur.execute(f"CREATE DATABASE {q(target)} CHARACTER SET {charset} COLLATE {collation}")
            except pymysql.MySQLError as exc:
                if exc.args and exc.args[0] == 1007:  # ER_DB_CREATE_EXISTS
                    raise EngineError(
                        f"Target database {target!r} was created while the restore ran "
                        "(strategy create_new); the restored copy was dropped",
                        code="target_exists",
                    ) from None
                raise
            created = True
            # Tables with triggers cannot change database, views cannot at all: drop them
            # here (their definitions are kept above) and create them again in the target.
            for item in objects["triggers"]:
                cur.execute(f"DROP TRIGGER {q(staging)}.{q(item.name)}")
            for item in objects["views"]:
                cur.execute(f"DROP VIEW {q(staging)}.{q(item.name)}")
            for item in objects["events"]:
                cur.execute(f"DROP EVENT {q(staging)}.{q(item.name)}")
            if objects["tables"]:
                # One statement: the tables appear in the target all at once, or not at all.
                cur.execute(
                    "RENAME TABLE " + ", ".join(f"{q(staging)}.{q(t)} TO {q(target)}.{q(t)}" for t in objects["tables"])
                )
            cur.execute(f"USE {q(target)}")
            for item in objects["routines"]:
                _create_again(cur, item, staging, target)
            pending = list(objects["views"])
            while pending:  # a view may select from another view: retry until none is left
                failed = []
                last_error: Exception | None = None
                for item in pending:
                    try:
                        _create_again(cur, item, staging, target)
                    except pymysql.MySQLError as exc:
                        failed.append(item)
                        last_error = exc
                if len(failed) == len(pending):
                    assert last_error is not None
                    raise last_error
                pending = failed
            for item in objects["triggers"] + objects["events"]:
                _create_again(cur, item, staging, target)
            cur.execute("SET SESSION sql_mode = %s, time_zone = %s", (session_mode, session_zone))
    except pymysql.MySQLError as exc:
        if created:
            with contextlib.suppress(Exception):
                mysql_drop_database(params, target)
        raise EngineError(
            f"Cannot move the restored database into {target!r}: " + scrub(str(exc), [params.password]),
            code="restore_failed",
        ) from None
    except BaseException:
        if created:
            with contextlib.suppress(Exception):
                mysql_drop_database(params, target)
        raise
    finally:
        conn.close()
    try:
        mysql_drop_database(params, staging)
    except EngineError:
        # The target is complete; an empty staging database left here is found by cleanup_staging.
        logger.warning("could not drop the emptied staging database %s", staging, exc_info=True)


# --------------------------------------------------------------------------- restore


def mysql_restore_sink(
    params: ConnectionParams,
    *,
    strategy: str = CREATE_NEW,
    create_database: bool = True,
    prepare: Callable[[ConnectionParams], Any] | None = None,
    staging: str | None = None,
) -> ProcessSink:
    """A sink that pipes a SQL dump into ``mysql`` on ``params.database`` (see module doc).

    ``prepare(staging_params)`` runs on the restored copy before it moves into
    the target; ``staging`` names the staging database (from
    :func:`.staging.staging_name`, so the caller can record it first).
    """
    check_strategy(strategy)
    target = _check_name(params.database, "target")
    if params.password and ("\n" in params.password or "\r" in params.password):
        raise EngineError("Passwords with line breaks are not supported by the MySQL tools", code="invalid_params")
    if prepare is not None and not create_database:
        raise EngineError(
            "A restore with masking needs create_database: it restores into a staging database first",
            code="invalid_params",
        )
    if staging is not None and not is_staging_name(staging):
        raise EngineError(f"{staging!r} is not a staging database name", code="invalid_params")
    exists = mysql_database_exists(params, target)
    restore_into = target
    on_failure = None
    on_success = None
    created = False
    if create_database and (prepare is not None or strategy == OVERWRITE):
        if strategy == CREATE_NEW and exists:
            raise EngineError(
                f"Target database {target!r} already exists (strategy create_new); "
                "choose another name or the overwrite strategy",
                code="target_exists",
            )
        restore_into = staging or staging_name(target)
        mysql_create_database(params, restore_into)

        def on_failure() -> None:
            mysql_drop_database(params, restore_into)

        def on_success() -> dict[str, Any]:
            if prepare is not None:
                prepare(params.with_database(restore_into))
            _swap_in(params, restore_into, target, replace=strategy == OVERWRITE)
            return {"created": True, "staging": restore_into}

    elif strategy == CREATE_NEW and create_database:
        if exists:
            raise EngineError(
                f"Target database {target!r} already exists (strategy create_new); "
                "choose another name or the overwrite strategy",
                code="target_exists",
            )
        mysql_create_database(params, target)
        created = True

        def on_failure() -> None:
            mysql_drop_database(params, target)

    elif strategy == CREATE_NEW:
        if not exists:
            raise EngineError(f"Target database {target!r} does not exist", code="target_missing")
        if not mysql_database_is_empty(params, target):
            raise EngineError(
                f"Target database {target!r} is not empty (strategy create_new)",
                code="target_not_empty",
            )
    elif not exists:
        raise EngineError(f"Target database {target!r} does not exist", code="target_missing")

    defaults, remove = _defaults_file(params)
    argv = ["mysql", *_common_args(params, defaults), "--binary-mode", f"--database={restore_into}"]
    return ProcessSink(
        argv,
        tool="mysql",
        env=tool_env(),
        secrets=[params.password],
        result={
            "engine": "mysql",
            "database": target,
            "strategy": strategy,
            "created": created,
            "tool_version": tool_version(["mysql", "--version"]),
        },
        on_success=on_success,
        on_failure=on_failure,
        cleanup=remove,
    )
