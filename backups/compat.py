"""What a restore needs to know: the source's versions and encoding, and the target's.

Each backup records, per database it dumps (``database_facts``, into the manifest's
``source`` or each bundle member's ``info``), the server's version, the database's encoding,
collation and size, next to the dump tool's version the engine records. Before a restore,
``restore_compatibility`` compares that with the target server: it refuses what cannot work
(a PostgreSQL dump of a newer major version than the target server, or one the platform's
``pg_restore`` is too old to read) with the reason, and warns about what may surprise (another
major version, another encoding, MySQL into MariaDB or back).
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass, field, replace
from typing import Any

from . import engines
from .engines.base import tool_version

logger = logging.getLogger(__name__)

# Enough to read a version; a slow server must not hold the request that starts a restore.
CHECK_TIMEOUT = 5


# --- facts --------------------------------------------------------------------------------


def _quick(params: engines.ConnectionParams) -> engines.ConnectionParams:
    return replace(params, connect_timeout=min(params.connect_timeout, CHECK_TIMEOUT))


def _pg_facts(params: engines.ConnectionParams, database: str | None) -> dict[str, Any]:
    from .engines.postgres import connect

    with connect(_quick(params), database or "postgres", autocommit=True) as conn:
        row = conn.execute("SELECT current_setting('server_version'), current_setting('server_version_num')::int")
        version, number = row.fetchone()
        facts: dict[str, Any] = {"server_version": version, "server_version_num": number}
        if database:
            encoding, collation, size = conn.execute(
                "SELECT pg_encoding_to_char(encoding), datcollate, pg_database_size(datname)"
                " FROM pg_database WHERE datname = current_database()"
            ).fetchone()
            facts.update(encoding=encoding, collation=collation, size_bytes=int(size))
        else:
            # What CREATE DATABASE ... TEMPLATE template0 (every restore target) gets.
            facts["new_database_encoding"] = conn.execute(
                "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = 'template0'"
            ).fetchone()[0]
    return facts


def _mysql_facts(params: engines.ConnectionParams, database: str | None) -> dict[str, Any]:
    from .engines.mysql import connect

    conn = connect(_quick(params), "", autocommit=True)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT VERSION(), @@character_set_server, @@collation_server")
            version, charset, collation = cursor.fetchone()
            facts: dict[str, Any] = {
                "server_version": version,
                "flavor": "mariadb" if "mariadb" in version.lower() else "mysql",
            }
            if database:
                cursor.execute(
                    "SELECT default_character_set_name, default_collation_name"
                    " FROM information_schema.schemata WHERE schema_name = %s",
                    (database,),
                )
                found = cursor.fetchone()
                cursor.execute(
                    "SELECT COALESCE(SUM(data_length + index_length), 0)"
                    " FROM information_schema.tables WHERE table_schema = %s",
                    (database,),
                )
                size = cursor.fetchone()[0]
                if found:
                    facts.update(encoding=found[0], collation=found[1])
                facts["size_bytes"] = int(size)
            else:
                facts.update(new_database_encoding=charset, new_database_collation=collation)
    finally:
        conn.close()
    return facts


def database_facts(params: engines.ConnectionParams) -> dict[str, Any]:
    """Version of the server, encoding, collation and size of ``params.database``, recorded with
    the backup. Best effort: a failure is logged and leaves the facts out (the dump itself
    reports real connection errors)."""
    try:
        if params.is_postgres:
            return _pg_facts(params, params.database)
        return _mysql_facts(params, params.database)
    except Exception:  # facts for later judgement only; never fail a backup over them
        logger.info("could not read the facts of %s on %s", params.database, params.host, exc_info=True)
        return {}


def server_facts(params: engines.ConnectionParams) -> dict[str, Any]:
    """Version of a restore target server and the encoding a new database gets there."""
    if params.is_postgres:
        return _pg_facts(params, None)
    return _mysql_facts(params, None)


@functools.lru_cache(maxsize=1)
def local_pg_restore_version() -> str:
    return tool_version(["pg_restore", "--version"])


# --- versions -----------------------------------------------------------------------------


def pg_major(facts: dict[str, Any]) -> int | None:
    """The major version (10, 15, 17, ...; 9.6 gives 906) from ``server_version_num`` or the text."""
    number = facts.get("server_version_num")
    if isinstance(number, int) and number > 0:
        return number // 10000 if number >= 100000 else number // 100
    return version_major(facts.get("server_version") or "")


def version_major(text: str) -> int | None:
    """Major version in a version string ("15.20 (Debian...)", "pg_dump (PostgreSQL) 17.2")."""
    found = re.search(r"(\d+)\.(\d+)", text or "")
    if not found:
        found = re.search(r"(\d+)", text or "")
        return int(found.group(1)) if found else None
    major, minor = int(found.group(1)), int(found.group(2))
    return major * 100 + minor if major < 10 else major


def _show(major: int | None) -> str:
    if major is None:
        return "?"
    return f"{major // 100}.{major % 100}" if major >= 100 else str(major)


# --- judgement ----------------------------------------------------------------------------


@dataclass
class Compatibility:
    """Errors refuse the restore; warnings go with it (in the API's answer, the admin, the CLI)."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checked: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"warnings": self.warnings, "checked": self.checked}


def _judge_pg(name: str, source: dict, target: dict, report: Compatibility) -> None:
    src, tgt = pg_major(source), pg_major(target)
    where = f"{name}: " if name else ""
    if src is None:
        report.warnings.append(
            f"{where}the backup does not record its PostgreSQL server version; "
            "compatibility with the target server was not checked."
        )
    elif tgt is not None and src > tgt:
        report.errors.append(
            f"{where}this backup is a dump of PostgreSQL {source.get('server_version') or _show(src)}, and the "
            f"target server runs PostgreSQL {target.get('server_version') or _show(tgt)}: a dump of a newer "
            f"major version cannot be restored into an older server (its catalog and SQL use features "
            f"PostgreSQL {_show(tgt)} does not have). Restore into a server running PostgreSQL {_show(src)} "
            "or later."
        )
    elif tgt is not None and src != tgt:
        report.warnings.append(
            f"{where}the backup comes from PostgreSQL {source.get('server_version') or _show(src)} and the "
            f"target runs {target.get('server_version') or _show(tgt)}: a newer major version restores an "
            "older dump, but check extensions and features removed since."
        )
    dumped_by = version_major(source.get("tool_version") or "")
    local = version_major(local_pg_restore_version())
    if dumped_by is not None and local is not None and dumped_by > local:
        report.errors.append(
            f"{where}the dump was written by {source.get('tool_version')}, and this platform's pg_restore "
            f"is {local_pg_restore_version()}: pg_restore cannot read archives of a newer pg_dump. Install "
            f"pg_restore {_show(dumped_by)} or later where the platform's workers run."
        )
    encoding, new_encoding = source.get("encoding"), target.get("new_database_encoding")
    if encoding and new_encoding and encoding != new_encoding:
        report.warnings.append(
            f"{where}the source database's encoding is {encoding}, and a new database on the target server "
            f"gets {new_encoding}: text is converted, and a character {new_encoding} cannot represent "
            "fails the restore."
        )


def _judge_mysql(name: str, source: dict, target: dict, report: Compatibility) -> None:
    where = f"{name}: " if name else ""
    src_version, tgt_version = source.get("server_version") or "", target.get("server_version") or ""
    if not src_version:
        report.warnings.append(
            f"{where}the backup does not record its MySQL/MariaDB server version; "
            "compatibility with the target server was not checked."
        )
        return
    src_flavor = source.get("flavor") or ("mariadb" if "mariadb" in src_version.lower() else "mysql")
    tgt_flavor = target.get("flavor") or ("mariadb" if "mariadb" in tgt_version.lower() else "mysql")
    if src_flavor != tgt_flavor:
        report.warnings.append(
            f"{where}the backup comes from {src_flavor} {src_version} and the target runs {tgt_flavor} "
            f"{tgt_version}: their SQL differs (collations such as utf8mb4_0900_ai_ci, JSON, system "
            "tables), so parts of the dump may be refused."
        )
    elif (version_major(src_version) or 0) > (version_major(tgt_version) or 0):
        report.warnings.append(
            f"{where}the backup comes from {src_flavor} {src_version}, newer than the target's "
            f"{tgt_version}: statements or collations the older server does not know fail the restore."
        )
    encoding, new_encoding = source.get("encoding"), target.get("new_database_encoding")
    if encoding and new_encoding and encoding != new_encoding:
        report.warnings.append(
            f"{where}the source database's default character set is {encoding}, and a new database on the "
            f"target server gets {new_encoding} (tables keep the character sets the dump names)."
        )


def judge(
    *, engine: str, source: dict, target: dict, name: str = "", report: Compatibility | None = None
) -> Compatibility:
    """Compare a dump's recorded facts with a target server's."""
    report = report or Compatibility()
    if engine == "postgresql":
        _judge_pg(name, source, target, report)
    elif engine == "mysql":
        _judge_mysql(name, source, target, report)
    report.checked.append(
        {
            "name": name,
            "engine": engine,
            "source": {
                k: source.get(k)
                for k in ("server_version", "tool_version", "encoding", "collation", "size_bytes")
                if k in source
            },
            "target": target,
        }
    )
    return report


def check_target(
    *, engine: str, source: dict, params: engines.ConnectionParams, name: str, report: Compatibility
) -> None:
    """Read the target server's facts and judge; an unreachable target is a warning (the
    restore itself then says what is wrong)."""
    try:
        target = server_facts(params.with_database(None))
    except Exception as exc:  # any failure to read the version: warn, let the restore report it
        message = getattr(exc, "message", None) or str(exc)
        report.warnings.append(
            f"{name + ': ' if name else ''}could not read the target server's version "
            f"({message[:300]}); compatibility was not checked."
        )
        return
    judge(engine=engine, source=source, target=target, name=name, report=report)
