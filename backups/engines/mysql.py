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
    ``create_database=True``: ``DROP DATABASE`` + ``CREATE DATABASE``, then
    restore. MySQL cannot rename a database, so unlike PostgreSQL this is not
    atomic: a failed restore leaves the target partially restored.
    ``create_database=False``: restore into the existing database; the dump's
    ``DROP TABLE IF EXISTS`` replaces each dumped table, other objects survive.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
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


def _query(
    params: ConnectionParams, statement: str, args: Any = None, *, database: str | None = ""
) -> list[tuple]:
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
    return bool(
        _query(params, "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (name,))
    )


def mysql_database_is_empty(params: ConnectionParams, name: str | None = None) -> bool:
    name = name or params.database
    rows = _query(
        params, "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", (name,)
    )
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
        raise EngineError(
            "Passwords with line breaks are not supported by the MySQL tools", code="invalid_params"
        )
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
    return ProcessSource(
        argv, tool="mysqldump", info=info, env=tool_env(), secrets=[params.password], cleanup=remove
    )


# --------------------------------------------------------------------------- restore


def mysql_restore_sink(
    params: ConnectionParams,
    *,
    strategy: str = CREATE_NEW,
    create_database: bool = True,
) -> ProcessSink:
    """A sink that pipes a SQL dump into ``mysql`` on ``params.database`` (see module doc)."""
    check_strategy(strategy)
    target = _check_name(params.database, "target")
    if params.password and ("\n" in params.password or "\r" in params.password):
        raise EngineError(
            "Passwords with line breaks are not supported by the MySQL tools", code="invalid_params"
        )
    exists = mysql_database_exists(params, target)
    on_failure = None
    created = False
    if strategy == CREATE_NEW and create_database:
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
    elif strategy == OVERWRITE and create_database:
        if exists:
            mysql_drop_database(params, target)
        mysql_create_database(params, target)
        created = True
    elif not exists:
        raise EngineError(f"Target database {target!r} does not exist", code="target_missing")

    defaults, remove = _defaults_file(params)
    argv = ["mysql", *_common_args(params, defaults), "--binary-mode", f"--database={target}"]
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
        on_failure=on_failure,
        cleanup=remove,
    )
