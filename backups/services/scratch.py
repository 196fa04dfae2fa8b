"""Scratch restores: a backup restored into throw-away copies, checked, then always removed.

A restore drill (``schedules.drills``) proves a backup can be restored and holds what it
should: it restores the artifact into copies nobody uses, measures how long that took, runs
assertions against them, and removes them whatever happened. This module is that restore:

- a database backup goes into a new database named by the platform
  (``bp_drill_<backup id>_<random>``) on the backup's own server, or on a scratch server of
  the same type when one is given;
- an application backup (a bundle) restores each database source the same way
  (``<database>_bpdrill_<random>``) and each folder or SQLite source into a scratch folder
  inside the workspace's own folders (``backups.confinement``), in a sub-folder named after
  the source when there are several;
- the stored artifact's SHA-256 is computed while it streams, so the drill also proves the
  bytes are the ones recorded.

:func:`scratch_restore` is a context manager: the copies exist inside the ``with`` block and
are dropped on the way out, also when the restore or the checks raise. What was dropped (and
any error dropping it) is recorded on the :class:`ScratchCopy`.

Assertions (:func:`assertions_validate`, :func:`assertions_run`) are a list of objects:

- ``{"type": "row_count", "table": "public.customers", "expect": 300}`` or ``"min": 1``
  (PostgreSQL tables as ``schema.table``, ``table`` alone meaning ``public.table``; MySQL/
  MariaDB tables by name), optional ``"database"`` for an application with several;
- ``{"type": "sql", "sql": "SELECT count(*) > 0 FROM orders"}``: a single read-only SELECT
  whose first value must be truthy, or equal ``"expect"`` when given;
- ``{"type": "file", "path": "uploads/logo.png", "sha256": "..."}``: the file exists in the
  restored folder (relative path), with that SHA-256 when given.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from backupplatform import paths
from backupplatform.errors import ValidationFailed
from tenants.models import Tenant

from .. import confinement, engines
from ..engines.base import EngineError
from ..engines.testrestore import _single_select
from ..keys import key_for_id
from ..models import Backup, Server, ServerType, SourceType
from ..pipeline import restore_stream
from .backup_sources import connection_params
from .backups import backup_open_artifact

logger = logging.getLogger(__name__)

ASSERTION_TYPES = ("row_count", "sql", "file")
MAX_ASSERTIONS = 200
DRILL_FOLDER = ".bp-drills"


class ScratchError(Exception):
    """A drill could not restore (the reason is the message, shown to people)."""


@dataclass
class ScratchCopy:
    """Where a backup was restored for a drill, and what removing it did."""

    backup: Backup
    # Original database name -> connection to its scratch copy.
    databases: dict[str, engines.ConnectionParams] = field(default_factory=dict)
    # Original database name -> id of the server row its scratch copy is on.
    servers: dict[str, int] = field(default_factory=dict)
    # The folder holding the restored files (``None``: no files in this backup).
    folder: str | None = None
    restore_seconds: float | None = None
    checksum: str = ""
    checksum_matches: bool | None = None
    restored_bytes: int = 0
    dropped: bool = False
    cleanup_errors: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {
            "databases": {
                name: {"database": p.database, "server_id": self.servers.get(name), "host": p.host, "port": p.port}
                for name, p in self.databases.items()
            },
            "folder": self.folder,
            "dropped": self.dropped,
            "cleanup_errors": self.cleanup_errors,
        }


class _HashingReader:
    """Hashes and counts the stored bytes as the decryptor reads them."""

    def __init__(self, raw):
        self.raw, self.sha, self.count = raw, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.sha.update(data)
        self.count += len(data)
        return data


def new_token() -> str:
    return secrets.token_hex(4)


def _scratch_names(backup: Backup, scratch_server: Server | None, token: str) -> list[engines.ConnectionParams]:
    """Every database a scratch restore of ``backup`` with ``token`` creates (or would)."""
    if backup.db_type:
        server = _same_type(scratch_server, backup.db_type) or backup.server
        return [connection_params(server, _scratch_db_name(f"bp_drill_{backup.pk}_{token}"))] if server else []
    found = []
    bundle = backup.manifest.get("bundle", {}) or {}
    for item in bundle.get("sources") or backup.manifest.get("source", {}).get("sources", []) or []:
        if item.get("type") not in (SourceType.POSTGRESQL, SourceType.MYSQL) or backup.application is None:
            continue
        source = backup.application.sources.filter(name=item.get("name")).select_related("server").first()
        server = _same_type(scratch_server, item["type"]) or (source.server if source else None)
        if server is not None:
            found.append(connection_params(server, _scratch_db_name(f"{item['database']}_bpdrill_{token}")))
    return found


def scratch_discard(*, backup: Backup, scratch_server: Server | None, token: str, label: str) -> ScratchCopy:
    """Drop what a scratch restore with ``token`` and ``label`` may have left (its process
    died before its own cleanup). Idempotent; the result says what failed to go."""
    copy = ScratchCopy(backup=backup)
    databases = _scratch_names(backup, scratch_server, token)
    for root in confinement.tenant_roots(backup.tenant):
        candidate = os.path.join(root, DRILL_FOLDER, label)
        if os.path.isdir(candidate) and confinement.check_data_path(backup.tenant, candidate) is None:
            copy.folder = candidate
            break
    _drop(copy, databases)
    copy.databases = {p.database: p for p in databases}
    return copy


def scratch_folder_for(tenant: Tenant, label: str) -> str:
    """A new folder for a drill's files inside the tenant's own folders (the first root where
    the platform may restore), e.g. ``<root>/.bp-drills/<label>``."""
    for root in confinement.tenant_roots(tenant):
        candidate = os.path.join(root, DRILL_FOLDER, label)
        if confinement.check_data_path(tenant, candidate) is None:
            return candidate
    raise ScratchError(
        "This workspace has no folder where a drill may restore files (its folders are "
        "storage folders); ask the platform operator to set the workspace's folders"
    )


def _scratch_db_name(base: str) -> str:
    return base[:63]


def _same_type(server: Server | None, kind: str) -> Server | None:
    return server if server is not None and server.type == kind else None


@contextlib.contextmanager
def scratch_restore(
    *,
    backup: Backup,
    scratch_server: Server | None = None,
    label: str | None = None,
    copy: ScratchCopy | None = None,
    token: str | None = None,
) -> Iterator[ScratchCopy]:
    """Restore ``backup`` into scratch copies; yield them; drop them on the way out.

    Raises :class:`ScratchError` (or the engine's error) when the restore fails; the copies
    made so far are dropped all the same. Pass ``copy`` to read what was made and dropped
    even when the restore raised. The names follow from ``token`` and ``label``
    (:func:`new_token`): record them first, and :func:`scratch_discard` finds the copies
    of a process that died before it could drop them.
    """
    token = token or new_token()
    label = label or f"backup-{backup.pk}-{token}"
    copy = copy if copy is not None else ScratchCopy(backup=backup)
    made_databases: list[engines.ConnectionParams] = []
    backend = raw = reader = sink = None
    try:
        began = time.monotonic()
        key = key_for_id(backup.tenant, backup.key_id)
        backend, raw = backup_open_artifact(backup=backup)
        reader = _HashingReader(raw)
        plaintext = restore_stream(reader, key)
        if backup.db_type:
            server = _same_type(scratch_server, backup.db_type) or backup.server
            if server is None:
                raise ScratchError("The backup's server is gone and no scratch server is set for drills")
            params = connection_params(server, _scratch_db_name(f"bp_drill_{backup.pk}_{token}"))
            plain = (backup.manifest.get("source") or {}).get("format") == "plain"
            made_databases.append(params)  # before it exists: dropped even if creating it fails halfway
            if server.type == ServerType.POSTGRESQL:
                sink = engines.pg_restore_sink(params, strategy="create_new", create_database=True, plain=plain)
            else:
                sink = engines.mysql_restore_sink(params, strategy="create_new", create_database=True)
            for piece in plaintext:
                sink.write(piece)
                copy.restored_bytes += len(piece)
            sink.finish()
            sink = None
            copy.databases[backup.database_name or params.database] = params
            copy.servers[backup.database_name or params.database] = server.pk
        else:
            handlers = _bundle_handlers(backup, scratch_server, token, label, copy, made_databases)
            engines.bundle_restore(plaintext, handlers)
            copy.restored_bytes = reader.count
        while reader.read(1024 * 1024):  # trailing bytes would change the hash
            pass
        copy.restore_seconds = round(time.monotonic() - began, 3)
        copy.checksum = reader.sha.hexdigest()
        copy.checksum_matches = copy.checksum == backup.checksum
        yield copy
    finally:
        if sink is not None:
            with contextlib.suppress(Exception):
                sink.abort()
        for closable in (raw, backend):
            if closable is not None:
                with contextlib.suppress(Exception):
                    closable.close()
        _drop(copy, made_databases)


def _bundle_handlers(
    backup: Backup,
    scratch_server: Server | None,
    token: str,
    label: str,
    copy: ScratchCopy,
    made: list[engines.ConnectionParams],
) -> dict:
    bundle = backup.manifest.get("bundle", {}) or {}
    items = bundle.get("sources") or backup.manifest.get("source", {}).get("sources", []) or []
    members = {m.get("name"): m.get("info") or {} for m in bundle.get("members") or []}
    file_items = [i for i in items if i.get("type") in (SourceType.PATH, SourceType.SQLITE)]
    if file_items:
        copy.folder = scratch_folder_for(backup.tenant, label)
    handlers: dict[str, Any] = {}
    for item in items:
        member, kind = item["member"], item["type"]
        if kind in (SourceType.POSTGRESQL, SourceType.MYSQL):
            source = (
                backup.application.sources.filter(name=item.get("name")).select_related("server").first()
                if backup.application
                else None
            )
            server = _same_type(scratch_server, kind) or (source.server if source else None)
            if server is None:
                raise ScratchError(f"No server to restore the database {item.get('database')!r} into")
            params = connection_params(server, _scratch_db_name(f"{item['database']}_bpdrill_{token}"))
            factory = engines.pg_restore_sink if kind == SourceType.POSTGRESQL else engines.mysql_restore_sink

            def make(f=factory, p=params, name=item["database"], server_id=server.pk):
                made.append(p)
                copy.databases[name] = p
                copy.servers[name] = server_id
                return f(p, strategy="create_new", create_database=True)

            handlers[member] = make
        elif kind in (SourceType.PATH, SourceType.SQLITE):
            target = copy.folder
            if len(file_items) > 1:
                name = re.sub(r"[^A-Za-z0-9._-]+", "_", item.get("name") or "").strip("._") or member
                target = os.path.join(copy.folder, name)
            info = members.get(member, {})
            sources = info.get("paths") or [item["path"]]
            source_path, root = (sources[0] if len(sources) == 1 else None), info.get("root") or "/"
            handlers[member] = lambda t=target, s=source_path, r=root: engines.tar_restore_sink(
                t, strategy="create_new", source=s, root=r
            )
        elif kind == SourceType.PLATFORM_CONFIG:
            handlers[member] = engines.config_restore_sink
    return handlers


def _drop(copy: ScratchCopy, databases: list[engines.ConnectionParams]) -> None:
    """Remove every scratch database and the scratch folder; record what failed."""
    for params in databases:
        try:
            engines.drop_database(params)
        except Exception as exc:  # recorded: a scratch copy left behind must be visible
            logger.warning("could not drop scratch database %s: %s", params.database, exc)
            copy.cleanup_errors.append(f"database {params.database}: {getattr(exc, 'message', None) or exc}")
    if copy.folder:
        try:
            if os.path.lexists(copy.folder):
                shutil.rmtree(copy.folder)
            parent = os.path.dirname(copy.folder)
            with contextlib.suppress(OSError):  # the shared drills folder, once empty
                os.rmdir(parent)
        except OSError as exc:
            logger.warning("could not remove scratch folder %s: %s", copy.folder, exc)
            copy.cleanup_errors.append(f"folder {copy.folder}: {exc}")
    copy.dropped = not copy.cleanup_errors


# --- assertions -------------------------------------------------------------------------------


def _clean_relative(path: Any) -> str | None:
    if not isinstance(path, str) or not path.strip() or "\x00" in path:
        return None
    parts = [p for p in path.strip().split("/") if p not in ("", ".")]
    if path.startswith("/") or ".." in parts or not parts:
        return None
    return "/".join(parts)


def assertions_validate(assertions: Any, *, field_name: str = "assertions") -> list[dict]:
    """Check a drill's assertions (see the module doc); returns them normalised or raises
    ``ValidationFailed`` naming each bad item (``assertions.2.sql``)."""

    if assertions in (None, []):
        return []
    if not isinstance(assertions, list):
        raise ValidationFailed(details={field_name: ["A list of assertions (row_count, sql, file)."]})
    if len(assertions) > MAX_ASSERTIONS:
        raise ValidationFailed(details={field_name: [f"At most {MAX_ASSERTIONS} assertions."]})
    errors: dict[str, list[str]] = {}
    out: list[dict] = []
    for index, item in enumerate(assertions):
        where = f"{field_name}.{index}"
        if not isinstance(item, dict) or item.get("type") not in ASSERTION_TYPES:
            errors[f"{where}.type"] = [f"Must be one of: {', '.join(ASSERTION_TYPES)}."]
            continue
        kind = item["type"]
        allowed = {
            "row_count": {"type", "table", "expect", "min", "database"},
            "sql": {"type", "sql", "expect", "database"},
            "file": {"type", "path", "sha256"},
        }[kind]
        if unknown := sorted(set(item) - allowed):
            errors[where] = [f"Unknown field(s) for a {kind} assertion: {', '.join(map(str, unknown))[:200]}."]
            continue
        database = item.get("database")
        if database is not None and (not isinstance(database, str) or not database.strip()):
            errors[f"{where}.database"] = ["A database name of the backup."]
            continue
        clean: dict[str, Any] = {"type": kind}
        if database:
            clean["database"] = database
        if kind == "row_count":
            table = item.get("table")
            if not isinstance(table, str) or not re.fullmatch(r"[A-Za-z0-9_$.-]{1,127}", table):
                errors[f"{where}.table"] = ["A table name ('schema.table' or 'table')."]
                continue
            expect, minimum = item.get("expect"), item.get("min")
            if (expect is None) == (minimum is None):
                errors[where] = ["Give either 'expect' (exact rows) or 'min' (at least)."]
                continue
            value = expect if expect is not None else minimum
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
                errors[f"{where}.{'expect' if expect is not None else 'min'}"] = ["A whole number of rows (0 or more)."]
                continue
            clean.update({"table": table, "expect" if expect is not None else "min": value})
        elif kind == "sql":
            try:
                clean["sql"] = _single_select(item.get("sql"))
            except EngineError as exc:
                errors[f"{where}.sql"] = [exc.message if hasattr(exc, "message") else str(exc)]
                continue
            if len(clean["sql"]) > 10_000:
                errors[f"{where}.sql"] = ["At most 10,000 characters."]
                continue
            if "expect" in item:
                expect = item["expect"]
                if not (expect is None or isinstance(expect, bool | int | float | str)):
                    errors[f"{where}.expect"] = ["A number, text, true/false or null."]
                    continue
                clean["expect"] = expect
        else:
            path = _clean_relative(item.get("path"))
            if path is None:
                errors[f"{where}.path"] = ["A path relative to the restored folder, without '..'."]
                continue
            clean["path"] = path
            digest = item.get("sha256")
            if digest is not None:
                if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
                    errors[f"{where}.sha256"] = ["64 hexadecimal characters."]
                    continue
                clean["sha256"] = digest.lower()
        out.append(clean)
    if errors:
        raise ValidationFailed(details=errors)
    return out


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "f", "false", "no", "off")
    return bool(value)


def _pick_database(copy: ScratchCopy, name: str | None) -> tuple[engines.ConnectionParams | None, str]:
    if name:
        params = copy.databases.get(name)
        return params, "" if params else f"The backup holds no database {name!r}"
    if len(copy.databases) == 1:
        return next(iter(copy.databases.values())), ""
    if not copy.databases:
        return None, "The backup holds no database"
    return None, f"Name the database: one of {', '.join(sorted(copy.databases))}"


def _row_counts(params: engines.ConnectionParams, cache: dict) -> dict[str, int]:
    if params.database not in cache:
        counts = engines.table_row_counts(params)
        if params.type != "postgresql":  # "<scratch db>.table" -> "table"
            counts = {k.split(".", 1)[1] if "." in k else k: v for k, v in counts.items()}
        cache[params.database] = counts
    return cache[params.database]


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def assertions_run(copy: ScratchCopy, assertions: list[dict]) -> list[dict]:
    """Each assertion against the scratch copy: ``[{..the assertion.., "actual", "passed",
    "error"}]``. An error (missing table, SQL error) fails that assertion only."""
    results: list[dict] = []
    counts_cache: dict[str, dict[str, int]] = {}
    for item in assertions:
        result: dict[str, Any] = {**item, "actual": None, "passed": False, "error": None}
        try:
            if item["type"] == "row_count":
                params, error = _pick_database(copy, item.get("database"))
                if params is None:
                    result["error"] = error
                else:
                    counts = _row_counts(params, counts_cache)
                    table = item["table"]
                    if table not in counts and params.type == "postgresql" and "." not in table:
                        table = f"public.{table}"
                    if table not in counts:
                        result["error"] = f"No table {item['table']!r} in the restored database"
                    else:
                        actual = counts[table]
                        result["actual"] = actual
                        result["passed"] = actual == item["expect"] if "expect" in item else actual >= item["min"]
            elif item["type"] == "sql":
                params, error = _pick_database(copy, item.get("database"))
                if params is None:
                    result["error"] = error
                else:
                    expect = item.get("expect", True)
                    ran = engines.run_assertions(params, [{"sql": item["sql"], "expect": expect}])[0]
                    result["actual"], result["error"] = ran["actual"], ran["error"]
                    if ran["error"] is None:
                        result["passed"] = ran["passed"] if "expect" in item else _truthy(ran["actual"])
            else:
                if copy.folder is None:
                    result["error"] = "The backup holds no files"
                else:
                    root = paths.resolve(copy.folder)
                    target = paths.resolve(os.path.join(copy.folder, item["path"]))
                    if not paths.is_within(target, root):
                        result["error"] = "The path leaves the restored folder"
                    elif not os.path.isfile(target):
                        result["actual"] = "missing"
                        result["error"] = f"No file {item['path']!r} in the restored folder"
                    elif "sha256" in item:
                        result["actual"] = _sha256(target)
                        result["passed"] = result["actual"] == item["sha256"]
                    else:
                        result["actual"] = "exists"
                        result["passed"] = True
        except Exception as exc:  # an assertion that cannot run fails with its reason
            result["error"] = (getattr(exc, "message", None) or str(exc))[:1000]
            result["passed"] = False
        if isinstance(result["actual"], str) and len(result["actual"]) > 1000:  # evidence, not a data dump
            result["actual"] = result["actual"][:1000] + "..."
        results.append(result)
    return results
