"""PostgreSQL: ``pg_dump`` custom-format stream out, ``pg_restore`` from a stream in.

Dump: ``pg_dump -Fc -Z0`` (custom format, so ``pg_restore`` can restore
selectively, or in parallel from a file; no compression because the pipeline
compresses) over the network with the server's credentials; ``PGPASSWORD`` is
in the tool's environment, never on its command line.

Restore strategies (``pg_restore_sink``), always ``--no-owner --no-privileges
--exit-on-error --single-transaction`` so a failed restore leaves no half-restored
objects in an existing database:

``create_new`` (default)
    ``create_database=True``: ``CREATE DATABASE`` the target; fails clearly
    (``code="target_exists"``) if it already exists. If the restore fails or is
    aborted, the database we created is dropped.
    ``create_database=False``: the target must exist and hold no relations
    (for users without ``CREATEDB``); otherwise ``code="target_not_empty"``.
``overwrite``
    ``create_database=True``: restore into a new staging database; only when
    ``pg_restore`` succeeded is the target dropped (``WITH (FORCE)``, which ends
    other sessions on it) and the staging database renamed to the target. A
    failed restore therefore never destroys the existing target.
    ``create_database=False``: ``pg_restore --clean --if-exists`` into the
    existing target in one transaction (objects absent from the dump survive).

``prepare`` (e.g. masking; needs ``create_database=True``): the restore always
goes into a staging database (:mod:`.staging`) that only its owner and
superusers may connect to; ``prepare(staging_params)`` runs there after
``pg_restore`` succeeded, and only then is the staging database renamed to the
target (``create_new``: the target must still not exist; ``overwrite``: the old
target is dropped first). Until then the target does not exist (``create_new``)
or keeps its old content (``overwrite``). If ``pg_restore`` or ``prepare``
fails (or raises anything, even ``KeyboardInterrupt``), the staging database is
dropped and the target is untouched. A worker killed in between leaves only the
staging database, which :func:`.staging.cleanup_staging` drops.

Restoring from a stream is sequential; ``pg_restore -j`` needs a seekable file.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import conninfo, sql

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
from .pg_tables import table_list_for
from .spool import SpoolSink, check_spool_space
from .staging import is_staging_name, staging_name

logger = logging.getLogger(__name__)

MAINTENANCE_DATABASES = ("postgres", "template1")
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")


def _env(params: ConnectionParams) -> dict[str, str]:
    extra = {"PGCONNECT_TIMEOUT": str(max(2, params.connect_timeout))}
    if params.password:
        extra["PGPASSWORD"] = params.password
    return tool_env(extra)


def _target_args(params: ConnectionParams, database: str) -> list[str]:
    # -d gets a conninfo string we build, so a database name containing "=" can never
    # be read as connection options.
    return [
        "--no-password",
        "-h",
        params.host,
        "-p",
        str(params.port),
        "-U",
        params.username,
        "-d",
        conninfo.make_conninfo(dbname=database),
    ]


def connect(params: ConnectionParams, database: str | None = None, **kwargs: Any) -> psycopg.Connection:
    """A psycopg connection to ``database`` (default ``params.database``); errors become EngineError."""
    dbname = database or params.database
    try:
        return psycopg.connect(
            host=params.host,
            port=params.port,
            user=params.username,
            password=params.password or None,
            dbname=dbname,
            connect_timeout=max(2, params.connect_timeout),
            **kwargs,
        )
    except psycopg.Error as exc:
        raise EngineError(
            f"Cannot connect to PostgreSQL database {dbname!r} on {params.host}:{params.port}: "
            + scrub(str(exc).strip(), [params.password]),
            code="connection_failed",
        ) from None


def _admin(params: ConnectionParams) -> psycopg.Connection:
    """An autocommit connection to a maintenance database (for CREATE/DROP DATABASE)."""
    last: EngineError | None = None
    for name in MAINTENANCE_DATABASES:
        try:
            return connect(params, name, autocommit=True)
        except EngineError as exc:
            last = exc
    assert last is not None
    raise last


def _pg_error(action: str, exc: psycopg.Error, params: ConnectionParams) -> EngineError:
    return EngineError(f"{action}: {scrub(str(exc).strip(), [params.password])}", code="query_failed")


def server_version(params: ConnectionParams) -> str:
    return _server_facts(params)[0]


#: Table names kept in a backup's manifest (for choosing tables to restore) up to this many.
MAX_LISTED_TABLES = 2000


def _server_facts(params: ConnectionParams) -> tuple[str, list[str] | None]:
    """The server's version and the database's tables (``schema.table``; ``None`` past
    ``MAX_LISTED_TABLES``), in one connection."""
    with connect(params, autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        tables = [
            f"{schema}.{name}"
            for schema, name in conn.execute(
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition "
                "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%' "
                "ORDER BY 1, 2 LIMIT %s",
                (MAX_LISTED_TABLES + 1,),
            ).fetchall()
        ]
    return (str(row[0]) if row else ""), (tables if len(tables) <= MAX_LISTED_TABLES else None)


def pg_database_exists(params: ConnectionParams, name: str | None = None) -> bool:
    name = name or params.database
    with _admin(params) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def pg_create_database(params: ConnectionParams, name: str | None = None) -> None:
    """``CREATE DATABASE name TEMPLATE template0`` (a clean database for a restore)."""
    name = name or params.database
    with _admin(params) as conn:
        try:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:
            raise EngineError(f"Database {name!r} already exists", code="target_exists") from None
        except psycopg.Error as exc:
            raise _pg_error(f"Cannot create database {name!r}", exc, params) from None


def _drop(conn: psycopg.Connection, name: str) -> None:
    stmt = sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))
    if conn.info.server_version >= 130000:
        stmt = stmt + sql.SQL(" WITH (FORCE)")
    else:
        _end_sessions(conn, name)
    conn.execute(stmt)


def _end_sessions(conn: psycopg.Connection, name: str) -> None:
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
        (name,),
    )


def pg_drop_database(params: ConnectionParams, name: str | None = None, *, force: bool = True) -> None:
    """``DROP DATABASE IF EXISTS``; ``force`` ends other sessions on it first."""
    name = name or params.database
    with _admin(params) as conn:
        try:
            if force:
                _drop(conn, name)
            else:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        except psycopg.Error as exc:
            raise _pg_error(f"Cannot drop database {name!r}", exc, params) from None


def pg_database_is_empty(params: ConnectionParams, name: str | None = None) -> bool:
    with connect(params, name, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp%%'"
        ).fetchone()
    return bool(row and row[0] == 0)


def _create_staging(params: ConnectionParams, name: str) -> None:
    """A staging database only its owner (the restoring role) and superusers may connect to:
    unmasked data must not be readable by other roles while it is there."""
    pg_create_database(params, name)
    try:
        with _admin(params) as conn:
            conn.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))
    except BaseException:
        with contextlib.suppress(Exception):
            pg_drop_database(params, name)
        raise


def _swap_in(params: ConnectionParams, staging: str, target: str, *, replace: bool) -> None:
    """Give the staging database the target's name (dropping an old target if ``replace``)."""
    stg, tgt = sql.Identifier(staging), sql.Identifier(target)
    with _admin(params) as conn:
        try:
            # RENAME needs the database idle: let nobody new in, end whoever is there
            # (pg_terminate_backend may be refused to a non-superuser; RENAME then says why).
            conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(stg))
            with contextlib.suppress(psycopg.Error):
                _end_sessions(conn, staging)
            if replace:
                _drop(conn, target)
            conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(stg, tgt))
        except psycopg.errors.DuplicateDatabase:
            raise EngineError(
                f"Target database {target!r} was created while the restore ran "
                "(strategy create_new); the restored copy was dropped",
                code="target_exists",
            ) from None
        except psycopg.Error as exc:
            raise _pg_error(f"Cannot rename database {staging!r} to {target!r}", exc, params) from None
        try:
            conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(tgt))
            # The privileges CREATE DATABASE gives by default, revoked while it was staging.
            conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO PUBLIC").format(tgt))
        except psycopg.Error as exc:
            raise _pg_error(f"Cannot open database {target!r} to connections", exc, params) from None


# --------------------------------------------------------------------------- dump


def pg_dump_source(params: ConnectionParams) -> ProcessSource:
    """Start ``pg_dump -Fc -Z0`` of ``params.database``; read the dump from the returned source.

    ``info``: ``engine``, ``tool``, ``tool_version`` (``pg_dump --version``),
    ``server_version`` (``SHOW server_version``), ``database``, ``format``, ``tables``
    (``schema.table``, when there are at most ``MAX_LISTED_TABLES``).
    Raises :class:`EngineError` at once if the server or database is unreachable.
    """
    if not params.database:
        raise EngineError("No database given to back up", code="invalid_params")
    version, tables = _server_facts(params)
    info = {
        "engine": "postgresql",
        "tool": "pg_dump",
        "tool_version": tool_version(["pg_dump", "--version"]),
        "server_version": version,
        "database": params.database,
        "format": "custom",
        **({"tables": tables} if tables is not None else {}),
    }
    argv = ["pg_dump", "-Fc", "-Z0", *_target_args(params, params.database)]
    return ProcessSource(argv, tool="pg_dump", info=info, env=_env(params), secrets=[params.password])


# --------------------------------------------------------------------------- restore


def pg_restore_sink(
    params: ConnectionParams,
    *,
    strategy: str = CREATE_NEW,
    create_database: bool = True,
    prepare: Callable[[ConnectionParams], Any] | None = None,
    staging: str | None = None,
    plain: bool = False,
    jobs: int = 1,
    spool_dir: str | None = None,
    spool_size: int | None = None,
    tables: list[str] | None = None,
) -> ProcessSink | SpoolSink:
    """A sink that restores a custom-format dump into ``params.database`` (see module doc).

    ``jobs > 1``: a parallel restore (``pg_restore --jobs``). pg_restore can only load a
    dump in parallel from a file, so the stream is first written to a temporary file in
    ``spool_dir`` (default: the system's temporary directory; ``spool_size`` bytes are
    checked to be free there before anything is created), then restored with ``jobs``
    connections and the file deleted. A parallel restore cannot be one transaction, so it
    needs a database this sink creates (``create_database``), which a failure drops.

    ``tables``: restore only these tables (``schema.table`` or ``table``), with their indexes,
    constraints, defaults, sequences and what they depend on (:mod:`.pg_tables`). The dump's
    table of contents is read from a file, so the stream is spooled first as for ``jobs``.

    ``plain``: the stream is a plain-SQL dump (``pg_dump -Fp``, e.g. an imported file); it
    is run by ``psql`` in one transaction, stopping at the first error.

    ``prepare(staging_params)`` runs on the restored copy before it takes the
    target's name; ``staging`` names the staging database (from
    :func:`.staging.staging_name`, so the caller can record it first).
    """
    _check_restore_args(params, strategy, create_database, prepare, staging, plain, jobs)
    if tables is not None and (plain or not tables):
        raise EngineError("Tables can be chosen from a pg_dump custom-format backup only", code="invalid_params")
    spooled = jobs > 1 or bool(tables)
    if spooled:
        spool_dir = spool_dir or tempfile.gettempdir()
        if jobs > 1:
            check_spool_space(spool_dir, spool_size)
        else:
            check_spool_space(
                spool_dir,
                spool_size,
                what="A restore of chosen tables",
                instead="Restore the whole database (streamed, no temporary space)",
            )
    into = _restore_target(params, strategy, create_database, prepare, staging)
    argv = _restore_argv(params, into, jobs=jobs, plain=plain)
    result = {
        "engine": "postgresql",
        "database": params.database,
        "strategy": strategy,
        "created": into.created,
        "tool_version": tool_version(["pg_restore", "--version"]),
        **({"jobs": jobs} if jobs > 1 else {}),
        **({"tables": list(tables)} if tables else {}),
    }

    def start(path: str | None = None) -> ProcessSink:
        chosen: list[str] = []
        if tables and path:
            try:
                listing = table_list_for(path, tables, secrets=[params.password])
                Path(f"{path}.list").write_text(listing)
            except BaseException:
                if into.on_failure is not None:
                    with contextlib.suppress(Exception):
                        into.on_failure()
                raise
            chosen = ["-L", f"{path}.list"]
        return ProcessSink(
            [*argv, *chosen, path] if path else argv,
            tool="psql" if plain else "pg_restore",
            env=_env(params),
            secrets=[params.password],
            result=result,
            on_success=into.on_success,
            on_failure=into.on_failure,
            cleanup=(lambda: Path(f"{path}.list").unlink(missing_ok=True)) if chosen else None,
        )

    try:
        return SpoolSink(start, spool_dir=spool_dir, on_abort=into.on_failure) if spooled else start()
    except BaseException:  # the sink never started: drop what was created for it
        if into.on_failure is not None:
            with contextlib.suppress(Exception):
                into.on_failure()
        raise


def _check_restore_args(
    params: ConnectionParams,
    strategy: str,
    create_database: bool,
    prepare: Callable[[ConnectionParams], Any] | None,
    staging: str | None,
    plain: bool,
    jobs: int,
) -> None:
    check_strategy(strategy)
    if not params.database:
        raise EngineError("No target database given to restore into", code="invalid_params")
    if prepare is not None and not create_database:
        raise EngineError(
            "A restore with masking needs create_database: it restores into a staging database first",
            code="invalid_params",
        )
    if staging is not None and not is_staging_name(staging):
        raise EngineError(f"{staging!r} is not a staging database name", code="invalid_params")
    if jobs > 1 and plain:
        raise EngineError("A plain SQL dump cannot be restored in parallel", code="invalid_params")
    if jobs > 1 and not create_database:
        raise EngineError(
            "A parallel restore needs create_database: it cannot be one transaction, so it "
            "loads into a database it creates (and drops if the restore fails)",
            code="invalid_params",
        )
    if plain and strategy == OVERWRITE and not create_database:
        raise EngineError(
            "A plain SQL dump cannot be restored over an existing database without recreating it (use create_database)",
            code="invalid_params",
        )


@dataclass
class _RestoreTarget:
    """Where a restore loads (``database``), and what ends it either way."""

    database: str
    clean: bool = False  # pg_restore --clean: over an existing database it may not recreate
    created: bool = False
    on_failure: Callable[[], None] | None = None
    on_success: Callable[[], dict[str, Any]] | None = None


def _refuse_existing(target: str) -> EngineError:
    return EngineError(
        f"Target database {target!r} already exists (strategy create_new); "
        "choose another name or the overwrite strategy",
        code="target_exists",
    )


def _refuse_missing(target: str) -> EngineError:
    return EngineError(f"Target database {target!r} does not exist and create_database is off", code="target_missing")


def _restore_target(
    params: ConnectionParams,
    strategy: str,
    create_database: bool,
    prepare: Callable[[ConnectionParams], Any] | None,
    staging: str | None,
) -> _RestoreTarget:
    """Create (or check) the database the restore loads, per the strategy (module doc)."""
    target = params.database
    exists = pg_database_exists(params, target)

    def drop(name: str) -> Callable[[], None]:
        return lambda: pg_drop_database(params, name)

    if create_database and (prepare is not None or (strategy == OVERWRITE and exists)):
        if strategy == CREATE_NEW and exists:
            raise _refuse_existing(target)
        restore_into = staging or staging_name(target)
        _create_staging(params, restore_into)

        def on_success() -> dict[str, Any]:
            if prepare is not None:
                prepare(params.with_database(restore_into))
            _swap_in(params, restore_into, target, replace=strategy == OVERWRITE)
            return {"created": not exists, "staging": restore_into}

        return _RestoreTarget(restore_into, on_failure=drop(restore_into), on_success=on_success)
    if create_database:  # create_new into a new database, or overwrite of one that is not there
        if strategy == CREATE_NEW and exists:
            raise _refuse_existing(target)
        pg_create_database(params, target)
        return _RestoreTarget(target, created=True, on_failure=drop(target))
    if not exists:
        raise _refuse_missing(target)
    if strategy == CREATE_NEW and not pg_database_is_empty(params, target):
        raise EngineError(f"Target database {target!r} is not empty (strategy create_new)", code="target_not_empty")
    return _RestoreTarget(target, clean=strategy == OVERWRITE)


def _restore_argv(params: ConnectionParams, into: _RestoreTarget, *, jobs: int, plain: bool) -> list[str]:
    if plain:
        return [
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "--single-transaction",
            *_target_args(params, into.database),
        ]
    return [
        "pg_restore",
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        *([f"--jobs={jobs}"] if jobs > 1 else ["--single-transaction"]),
        *(["--clean", "--if-exists"] if into.clean else []),
        *_target_args(params, into.database),
    ]
