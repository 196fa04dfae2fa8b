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

The services use this package as one namespace (``from backups import engines``);
``restore_sink`` / ``database_exists`` / ``drop_database`` dispatch on ``params.type``.
"""

from __future__ import annotations

from typing import Any

from .base import CREATE_NEW, OVERWRITE, ConnectionParams, EngineError, IterReader, RestoreSink, SourceStream
from .bundle import bundle_restore, bundle_source
from .config import config_restore_sink, config_source
from .files import tar_restore_sink, tar_source
from .files_restore import only_patterns
from .masking import apply_masking
from .mysql import mysql_database_exists, mysql_drop_database, mysql_restore_sink, mysqldump_source
from .postgres import pg_database_exists, pg_drop_database, pg_dump_source, pg_restore_sink
from .staging import cleanup_staging, staging_name
from .testrestore import run_assertions, table_row_counts

__all__ = [
    "CREATE_NEW",
    "OVERWRITE",
    "ConnectionParams",
    "EngineError",
    "IterReader",
    "RestoreSink",
    "SourceStream",
    "apply_masking",
    "bundle_restore",
    "bundle_source",
    "cleanup_staging",
    "config_restore_sink",
    "config_source",
    "database_exists",
    "drop_database",
    "mysql_restore_sink",
    "mysqldump_source",
    "only_patterns",
    "pg_dump_source",
    "pg_restore_sink",
    "restore_sink",
    "run_assertions",
    "staging_name",
    "table_row_counts",
    "tar_restore_sink",
    "tar_source",
]


def _unsupported(params: ConnectionParams) -> EngineError:
    return EngineError(f"No database engine for server type {params.type!r}", code="unsupported")


def restore_sink(params: ConnectionParams, *, strategy: str = CREATE_NEW, create_database: bool = True) -> Any:
    """``pg_restore_sink`` or ``mysql_restore_sink`` by ``params.type``."""
    if params.is_postgres:
        return pg_restore_sink(params, strategy=strategy, create_database=create_database)
    if params.is_mysql:
        return mysql_restore_sink(params, strategy=strategy, create_database=create_database)
    raise _unsupported(params)


def database_exists(params: ConnectionParams, name: str | None = None) -> bool:
    if params.is_postgres:
        return pg_database_exists(params, name)
    if params.is_mysql:
        return mysql_database_exists(params, name)
    raise _unsupported(params)


def drop_database(params: ConnectionParams, name: str | None = None) -> None:
    if params.is_postgres:
        pg_drop_database(params, name)
        return
    if params.is_mysql:
        mysql_drop_database(params, name)
        return
    raise _unsupported(params)
