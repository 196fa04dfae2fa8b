"""The engines the backup services use, in one namespace (``backups/engines/`` has the code)."""

from __future__ import annotations

from typing import Any

from .engines.base import ConnectionParams, EngineError, IterReader
from .engines.bundle import bundle_restore, bundle_source
from .engines.config import config_restore_sink, config_source
from .engines.files import tar_restore_sink, tar_source
from .engines.mysql import mysql_drop_database, mysql_restore_sink, mysqldump_source
from .engines.postgres import pg_drop_database, pg_dump_source, pg_restore_sink
from .engines.staging import cleanup_staging, staging_name

__all__ = [
    "ConnectionParams",
    "EngineError",
    "IterReader",
    "apply_masking",
    "bundle_restore",
    "bundle_source",
    "cleanup_staging",
    "config_restore_sink",
    "config_source",
    "drop_database",
    "mysql_restore_sink",
    "mysqldump_source",
    "pg_dump_source",
    "pg_restore_sink",
    "run_assertions",
    "staging_name",
    "table_row_counts",
    "tar_restore_sink",
    "tar_source",
]


def drop_database(params: ConnectionParams) -> None:
    if params.type == "postgresql":
        pg_drop_database(params)
    else:
        mysql_drop_database(params)


def apply_masking(params: ConnectionParams, rules: dict, *, progress: Any = None) -> dict[str, Any]:
    from .engines.masking import apply_masking as run

    return run(params, rules, progress=progress)


def table_row_counts(params: ConnectionParams) -> dict[str, int]:
    from .engines.testrestore import table_row_counts as run

    return run(params)


def run_assertions(params: ConnectionParams, assertions: list[dict]) -> list[dict]:
    from .engines.testrestore import run_assertions as run

    return run(params, assertions)
