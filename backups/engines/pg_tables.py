"""Restore some tables of a PostgreSQL dump: the list ``pg_restore -L`` loads.

``pg_restore -t`` restores a table's definition and data but none of its indexes,
constraints, defaults or sequences, nor the schema or types it needs. Instead this reads the
dump's table of contents with its dependencies (``pg_restore -s -v`` prints them before each
entry) and keeps:

- the named tables, their data, and every entry they depend on (schemas, types, functions,
  sequences), transitively;
- every entry that hangs on kept tables only: defaults, primary keys and other constraints,
  indexes, triggers, sequences they own (with their values), comments, privileges, views over
  them; a foreign key to a table that is not restored is left out (it could not be created);
- extensions, which columns may need without the dump saying so.

Other tables, their data and views that read them are left out. Names are
``schema.table``, or ``table`` for one in ``public`` (or the only schema that has one).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field

from .base import EngineError, scrub, tool_env

# A TOC entry as ``pg_restore -s -v`` prints it ahead of its SQL.
_ENTRY = re.compile(
    r"^-- TOC entry (?P<id>\d+) \(class \d+ OID \d+\)\n"
    r"(?:-- Dependencies: (?P<deps>[\d ]+)\n)?"
    r"-- Name: (?P<name>.*?); Type: (?P<type>[^;]+); Schema: (?P<schema>[^;]*);",
    re.M,
)
# ``pg_restore -l``: "3374; 0 254935 TABLE DATA public items postgres".
_LISTED = re.compile(r"^(?P<id>\d+); \d+ \d+ (?P<rest>.*)$")
# Kinds of entries that are tables (or read them) in their own right: never pulled in by another.
_RELATIONS = {"TABLE", "VIEW", "MATERIALIZED VIEW", "FOREIGN TABLE", "TABLE DATA", "MATERIALIZED VIEW DATA"}
_TABLES = {"TABLE", "FOREIGN TABLE", "TABLE DATA"}  # views over kept tables only are kept too
_ALWAYS = {"EXTENSION"}


@dataclass
class Entry:
    id: int
    type: str
    schema: str
    name: str
    deps: set[int] = field(default_factory=set)


def parse_entries(schema_sql: str) -> dict[int, Entry]:
    """The entries of ``pg_restore -s -v -f -`` output, by TOC id."""
    return {
        int(m["id"]): Entry(
            int(m["id"]), m["type"], m["schema"], m["name"], {int(d) for d in (m["deps"] or "").split()}
        )
        for m in _ENTRY.finditer(schema_sql)
    }


def resolve_tables(entries: dict[int, Entry], names: list[str]) -> tuple[set[int], list[str]]:
    """The TOC ids of the tables ``names`` mean, and the names no table matched."""
    tables = [e for e in entries.values() if e.type == "TABLE"]
    found: set[int] = set()
    missing: list[str] = []
    for raw in names:
        wanted = raw.strip()
        schema, _, table = wanted.rpartition(".")
        if schema:
            matches = [e for e in tables if e.schema == schema and e.name == table]
        else:
            matches = [e for e in tables if e.name == table and e.schema == "public"] or [
                e for e in tables if e.name == table
            ]
        if len(matches) == 1:
            found.add(matches[0].id)
        else:
            missing.append(wanted if not matches else f"{wanted} (in {len(matches)} schemas: name one)")
    return found, missing


def select_entries(entries: dict[int, Entry], tables: set[int]) -> set[int]:
    """``tables`` plus what they need and what hangs on them only (see the module doc)."""
    keep: set[int] = set()

    def pull(entry_id: int) -> Entry | None:
        """Keep ``entry_id`` and its dependencies; the other table that needs (keeping nothing)."""
        needed, stack = set(), [entry_id]
        while stack:
            current = stack.pop()
            entry = entries.get(current)
            if current in keep or current in needed or entry is None:  # data entries are not listed
                continue
            if entry.type in _RELATIONS and current not in tables and current != entry_id:
                return entry
            needed.add(current)
            stack.extend(entry.deps)
        keep.update(needed)
        return None

    for table in tables:
        if (other := pull(table)) is not None:
            raise EngineError(
                f"Table {entries[table].schema}.{entries[table].name} needs {other.schema}.{other.name} "
                "(inheritance or partitioning): restore it too",
                code="tables_not_found",
            )
    for entry in entries.values():
        if entry.type in _ALWAYS:
            pull(entry.id)
    anchors = set(tables)  # what hangs on a restored table hangs on these
    changed = True
    while changed:  # constraints, indexes, defaults, owned sequences, triggers, comments ...
        changed = False
        for entry in entries.values():
            if entry.id in anchors or entry.type in _TABLES or not (entry.deps & anchors):
                continue
            if entry.id in keep or pull(entry.id) is None:
                anchors.add(entry.id)
                changed = True
    return keep


def restore_list(listing: str, entries: dict[int, Entry], keep: set[int]) -> str:
    """The lines of ``pg_restore -l`` output to load: the kept entries, the data of kept tables
    and the values of kept sequences."""
    kept_names = {(entries[i].type, entries[i].schema, entries[i].name) for i in keep}
    lines = []
    for line in listing.splitlines():
        m = _LISTED.match(line)
        if not m:
            continue
        if int(m["id"]) in keep:
            lines.append(line)
            continue
        for data_type, of in (
            ("TABLE DATA", "TABLE"),
            ("SEQUENCE SET", "SEQUENCE"),
            ("MATERIALIZED VIEW DATA", "MATERIALIZED VIEW"),
        ):
            if m["rest"].startswith(data_type + " "):
                schema, _, name = m["rest"][len(data_type) + 1 :].rsplit(" ", 1)[0].partition(" ")
                if (of, schema, name) in kept_names:
                    lines.append(line)
    return "\n".join(lines) + "\n"


def table_list_for(path: str, names: list[str], *, secrets: list[str | None]) -> str:
    """The ``pg_restore -L`` list restoring ``names`` from the custom-format dump at ``path``;
    ``EngineError(code="tables_not_found")`` names any table the dump does not have."""
    listing = _run(["pg_restore", "-l", path], secrets)
    schema_sql = _run(["pg_restore", "-s", "-v", "-f", "-", path], secrets)
    entries = parse_entries(schema_sql)
    tables, missing = resolve_tables(entries, names)
    if missing:
        known = sorted(f"{e.schema}.{e.name}" for e in entries.values() if e.type == "TABLE")
        raise EngineError(
            f"Not a table of this backup: {', '.join(missing)}. It has: {', '.join(known[:50]) or 'no tables'}",
            code="tables_not_found",
        )
    return restore_list(listing, entries, select_entries(entries, tables))


def _run(argv: list[str], secrets: list[str | None]) -> str:
    done = subprocess.run(argv, capture_output=True, env=tool_env(), check=False, timeout=600)
    if done.returncode != 0:
        said = scrub(done.stderr.decode(errors="replace").strip()[-2000:], secrets)
        raise EngineError(f"pg_restore could not read the dump's contents: {said}", code="restore_failed")
    return done.stdout.decode(errors="replace")
