"""Backup engines: stream sources and restore sinks per kind of data (no Django ORM here).

- :mod:`.base`: ``ConnectionParams``, ``EngineError``, the ``SourceStream`` /
  ``RestoreSink`` protocols and the subprocess plumbing.
- :mod:`.postgres` (``pg_dump`` / ``pg_restore``), :mod:`.mysql` (``mysqldump`` /
  ``mysql``), :mod:`.files` (tar of paths), :mod:`.config` (tenant config JSON).
- :mod:`.bundle`: one artifact holding several sources plus ``manifest.json``.
- :mod:`.masking`: masking rules on a restored copy.
- :mod:`.staging`: staging databases a masked restore is written to before it takes the
  target's name, and the cleanup of those a killed worker left.
- :mod:`.testrestore`: row counts, SQL assertions, the test-restore verification.

``dump_source`` / ``restore_sink`` / ``drop_database`` dispatch on ``params.type``.
"""

from __future__ import annotations

from typing import Any

from .base import CREATE_NEW, OVERWRITE, ConnectionParams, EngineError, RestoreSink, SourceStream

__all__ = [
    "CREATE_NEW",
    "OVERWRITE",
    "ConnectionParams",
    "EngineError",
    "RestoreSink",
    "SourceStream",
    "database_exists",
    "drop_database",
    "dump_source",
    "restore_sink",
]


def _unsupported(params: ConnectionParams) -> EngineError:
    return EngineError(f"No database engine for server type {params.type!r}", code="unsupported")


def dump_source(params: ConnectionParams) -> Any:
    """``pg_dump_source`` or ``mysqldump_source`` by ``params.type``."""
    if params.is_postgres:
        from .postgres import pg_dump_source

        return pg_dump_source(params)
    if params.is_mysql:
        from .mysql import mysqldump_source

        return mysqldump_source(params)
    raise _unsupported(params)


def restore_sink(params: ConnectionParams, *, strategy: str = CREATE_NEW, create_database: bool = True) -> Any:
    """``pg_restore_sink`` or ``mysql_restore_sink`` by ``params.type``."""
    if params.is_postgres:
        from .postgres import pg_restore_sink

        return pg_restore_sink(params, strategy=strategy, create_database=create_database)
    if params.is_mysql:
        from .mysql import mysql_restore_sink

        return mysql_restore_sink(params, strategy=strategy, create_database=create_database)
    raise _unsupported(params)


def database_exists(params: ConnectionParams, name: str | None = None) -> bool:
    if params.is_postgres:
        from .postgres import pg_database_exists

        return pg_database_exists(params, name)
    if params.is_mysql:
        from .mysql import mysql_database_exists

        return mysql_database_exists(params, name)
    raise _unsupported(params)


def drop_database(params: ConnectionParams, name: str | None = None) -> None:
    if params.is_postgres:
        from .postgres import pg_drop_database

        pg_drop_database(params, name)
        return
    if params.is_mysql:
        from .mysql import mysql_drop_database

        mysql_drop_database(params, name)
        return
    raise _unsupported(params)
