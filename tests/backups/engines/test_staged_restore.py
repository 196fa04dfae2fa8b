"""Masked restores go through a staging database: the target never shows unmasked rows, and a
failure at any point (restore error, masking error, an exception in the masking loop, a
killed process) leaves neither the target nor unmasked data behind."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

from backups.engines.base import ConnectionParams, EngineError, copy_into
from backups.engines.masking import apply_masking
from backups.engines.mysql import connect as my_connect
from backups.engines.mysql import (
    mysql_create_database,
    mysql_database_exists,
    mysql_restore_sink,
    mysqldump_source,
)
from backups.engines.postgres import connect as pg_connect
from backups.engines.postgres import (
    pg_create_database,
    pg_database_exists,
    pg_dump_source,
    pg_restore_sink,
)
from backups.engines.staging import (
    MARKER,
    cleanup_staging,
    drop_staging,
    list_staging,
    staging_created_at,
    staging_name,
)

from .helpers import mysql_plain_dump, pg_plain_dump

ROOT = Path(__file__).resolve().parents[3]
ROWS = 4000
RULES = {"email": "hash", "phone": "randomize"}
UNMASKED = "person%@example.com"


# --------------------------------------------------------------------------- per engine


class Engine:
    """What the tests need from one database engine, on a real server."""

    name = ""

    def __init__(self, server: ConnectionParams, make_db: Any) -> None:
        self.server, self.make_db = server, make_db

    def source(self) -> ConnectionParams:
        raise NotImplementedError

    def dump(self, params: ConnectionParams) -> bytes:
        source = self.dump_source(params)
        with source:
            data = b"".join(iter(lambda: source.read(1 << 16), b""))
            source.finish()
        return data

    def staging_of(self, target: ConnectionParams) -> list[str]:
        return [n for n in list_staging(self.server) if n.startswith(target.database + MARKER)]

    def cleanup(self, target: ConnectionParams) -> None:
        for name in self.staging_of(target):
            with contextlib.suppress(Exception):
                drop_staging(self.server, name)


class Postgres(Engine):
    name = "postgresql"
    dump_source = staticmethod(pg_dump_source)
    sink = staticmethod(pg_restore_sink)
    exists = staticmethod(pg_database_exists)

    def source(self) -> ConnectionParams:
        params = self.make_db()
        pg_create_database(params)
        with pg_connect(params) as conn:
            conn.execute(
                "CREATE TABLE people (id serial PRIMARY KEY, email text NOT NULL, phone varchar(20), city text)"
            )
            conn.execute(
                "INSERT INTO people (email, phone, city) SELECT 'person' || n || '@example.com',"
                " '555' || lpad(n::text, 7, '0'), 'City ' || (n %% 10) FROM generate_series(1, %s) n",
                (ROWS,),
            )
        return params

    def create_old_target(self, params: ConnectionParams) -> None:
        pg_create_database(params)
        with pg_connect(params) as conn:
            conn.execute("CREATE TABLE people (id int, email text, phone text)")
            conn.execute("INSERT INTO people VALUES (1, 'old@old.example', '1')")

    def databases(self) -> set[str]:
        with pg_connect(self.server, "postgres", autocommit=True) as conn:
            return {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}

    def people(self, params: ConnectionParams) -> tuple[int, int] | None:
        """(rows, unmasked rows) of the people table; None if the table is not there."""
        try:
            with pg_connect(params) as conn:
                row = conn.execute(
                    "SELECT count(*), count(*) FILTER (WHERE email LIKE %s) FROM people",
                    (UNMASKED,),
                ).fetchone()
        except psycopg.errors.UndefinedTable:
            return None
        return int(row[0]), int(row[1])

    def schema(self, params: ConnectionParams) -> str:
        return pg_plain_dump(params, "--schema-only")


class MySQL(Engine):
    name = "mysql"
    dump_source = staticmethod(mysqldump_source)
    sink = staticmethod(mysql_restore_sink)
    exists = staticmethod(mysql_database_exists)

    def _run(self, params: ConnectionParams, *statements: str, args: Any = None) -> None:
        conn = my_connect(params, autocommit=True)
        try:
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement, args)
        finally:
            conn.close()

    def source(self) -> ConnectionParams:
        params = self.make_db()
        mysql_create_database(params)
        self._run(
            params,
            "CREATE TABLE people (id INT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(100) NOT NULL,"
            " phone VARCHAR(20), city VARCHAR(40))",
            "CREATE TABLE seq (n INT PRIMARY KEY)",
        )
        conn = my_connect(params, autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO people (email, phone, city) VALUES (%s, %s, %s)",
                    [(f"person{n}@example.com", f"555{n:07d}", f"City {n % 10}") for n in range(1, ROWS + 1)],
                )
        finally:
            conn.close()
        return params

    def create_old_target(self, params: ConnectionParams) -> None:
        mysql_create_database(params)
        self._run(
            params,
            "CREATE TABLE people (id INT, email VARCHAR(100), phone VARCHAR(20))",
            "INSERT INTO people VALUES (1, 'old@old.example', '1')",
        )

    def databases(self) -> set[str]:
        conn = my_connect(self.server, "", autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT schema_name FROM information_schema.schemata")
                return {r[0] for r in cur.fetchall()}
        finally:
            conn.close()

    def people(self, params: ConnectionParams) -> tuple[int, int] | None:
        try:
            conn = my_connect(params, autocommit=True)
        except EngineError:
            return None
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*), coalesce(sum(email LIKE %s), 0) FROM people", (UNMASKED,))
                rows, unmasked = cur.fetchone()
        except pymysql.MySQLError as exc:
            if exc.args and exc.args[0] == 1146:  # no such table
                return None
            raise
        finally:
            conn.close()
        return int(rows), int(unmasked)

    def schema(self, params: ConnectionParams) -> str:
        return mysql_plain_dump(params, "--no-data")


@pytest.fixture(params=["postgresql", "mysql"])
def engine(request: pytest.FixtureRequest) -> Engine:
    if request.param == "postgresql":
        return Postgres(request.getfixturevalue("pg_params"), request.getfixturevalue("pg_db"))
    return MySQL(request.getfixturevalue("my_params"), request.getfixturevalue("my_db"))


@pytest.fixture
def target(engine: Engine):  # type: ignore[no-untyped-def]
    params = engine.make_db()
    yield params
    engine.cleanup(params)


class Watcher(threading.Thread):
    """Polls the server like a curious user: lists databases and reads the target's table."""

    def __init__(self, engine: Engine, target: ConnectionParams) -> None:
        super().__init__(daemon=True)
        self.engine, self.target = engine, target
        self.stop = threading.Event()
        self.polls = 0
        self.cond = threading.Condition()
        self.seen: list[tuple[int, int] | None] = []  # what the target held, each time it was listed
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                if self.target.database in self.engine.databases():
                    with contextlib.suppress(EngineError, psycopg.OperationalError):
                        self.seen.append(self.engine.people(self.target))
                with self.cond:
                    self.polls += 1
                    self.cond.notify_all()
        except BaseException as exc:
            self.error = exc

    def wait_polls(self, count: int) -> None:
        """Block until ``count`` more complete polls happened (the watcher looked meanwhile)."""
        with self.cond:
            goal = self.polls + count
            assert self.cond.wait_for(lambda: self.polls >= goal or self.error, timeout=60)

    def finish(self) -> None:
        self.wait_polls(2)
        self.stop.set()
        self.join(30)
        assert self.error is None, self.error


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("strategy", ["create_new", "overwrite"])
def test_a_reader_never_sees_unmasked_rows_under_the_target_name(engine, target, strategy):
    source = engine.source()
    dump = engine.dump(source)
    if strategy == "overwrite":
        engine.create_old_target(target)
    watcher = Watcher(engine, target)
    watcher.start()
    during: dict[str, Any] = {}

    def prepare(staging: ConnectionParams) -> None:
        def progress(where) -> None:  # type: ignore[no-untyped-def]
            if not during:  # inside the masking loop: let the watcher look a few times
                watcher.wait_polls(3)
                during["databases"] = engine.databases()
                during["staging"] = engine.people(staging)
                during["target"] = engine.people(target) if engine.exists(target) else "absent"

        apply_masking(staging, RULES, progress=progress)

    sink = engine.sink(target, strategy=strategy, prepare=prepare)
    with sink:
        copy_into(dump, sink)
        result = sink.finish()
    watcher.finish()

    assert result["staging"].startswith(target.database + MARKER)
    # While masking ran, the unmasked copy existed only in the staging database.
    assert result["staging"] in during["databases"]
    assert during["staging"] == (ROWS, ROWS)
    assert during["target"] == ("absent" if strategy == "create_new" else (1, 0))
    # A reader saw the target either not at all, as it was, or complete and masked (MySQL
    # also shows the new target empty for a moment: it is created, then the tables move in).
    allowed = [(1, 0), (ROWS, 0)] + ([None] if engine.name == "mysql" else [])
    assert watcher.seen, "the watcher never saw the finished target"
    assert all(seen in allowed for seen in watcher.seen), watcher.seen
    assert engine.people(target) == (ROWS, 0)
    assert engine.staging_of(target) == []
    assert engine.schema(target) == engine.schema(source)


def test_postgres_staging_database_admits_only_its_owner(pg_params, pg_db):
    engine = Postgres(pg_params, pg_db)
    target = pg_db()
    dump = engine.dump(engine.source())
    seen = {}

    def privilege(conn: Any, name: str) -> bool:
        return conn.execute("SELECT has_database_privilege('public', %s, 'CONNECT')", (name,)).fetchone()[0]

    def prepare(staging: ConnectionParams) -> None:
        with pg_connect(pg_params, "postgres") as conn:
            seen["staging"] = privilege(conn, staging.database)

    with pg_restore_sink(target, prepare=prepare) as sink:
        copy_into(dump, sink)
        sink.finish()
    with pg_connect(pg_params, "postgres") as conn:
        seen["target"] = privilege(conn, target.database)
    assert seen == {"staging": False, "target": True}


class Boom(Exception):
    pass


@pytest.mark.parametrize("strategy", ["create_new", "overwrite"])
@pytest.mark.parametrize("failure", ["restore_error", "masking_error", "raise_in_loop", "interrupt"])
def test_a_failure_leaves_no_target_and_no_staging(engine, target, strategy, failure):
    source = engine.source()
    dump = engine.dump(source)
    if strategy == "overwrite":
        engine.create_old_target(target)
    calls = []

    def prepare(staging: ConnectionParams) -> None:
        def progress(where) -> None:  # type: ignore[no-untyped-def]
            calls.append(where)
            if where.rows_done and failure == "raise_in_loop":
                raise Boom("crash inside the masking loop")
            if where.rows_done and failure == "interrupt":
                raise KeyboardInterrupt

        rules = {**RULES, "city": "fixed:x"}
        if failure == "masking_error":  # a value the column cannot hold: the database refuses
            rules["id"] = {"type": "fixed", "value": "not a number"}
        result = apply_masking(staging, rules, progress=progress)
        if result["errors"]:
            raise EngineError(f"masking failed: {result['errors']}", code="masking_failed")

    expected = {
        "restore_error": EngineError,
        "masking_error": EngineError,
        "raise_in_loop": Boom,
        "interrupt": KeyboardInterrupt,
    }[failure]
    sink = engine.sink(target, strategy=strategy, prepare=prepare)
    with pytest.raises(expected), sink:
        if failure == "restore_error":
            sink.write(dump[: len(dump) // 2])  # a truncated dump: the restore tool fails
        else:
            sink.write(dump)
        sink.finish()

    if failure in ("raise_in_loop", "interrupt"):
        assert any(c.rows_done for c in calls), "the failure was not inside the masking loop"
    if strategy == "create_new":
        assert not engine.exists(target)
    else:
        assert engine.people(target) == (1, 0)  # the old target, untouched
    assert engine.staging_of(target) == []


CHILD = """
import json, os, signal, sys
from backups.engines.base import ConnectionParams
from backups.engines.masking import apply_masking
from backups.engines.mysql import mysql_restore_sink
from backups.engines.postgres import pg_restore_sink

params = ConnectionParams(**json.loads(sys.argv[1]))
sink_factory = pg_restore_sink if params.is_postgres else mysql_restore_sink
marker = sys.argv[3]

def progress(where):
    if where.rows_done:  # half-way through a table: tell the parent, then wait to be killed
        with open(marker, "w") as handle:
            handle.write(where.table)
        signal.pause()

sink = sink_factory(params, prepare=lambda s: apply_masking(s, {"phone": "randomize"},
                    progress=progress), staging=sys.argv[4])
with open(sys.argv[2], "rb") as dump:
    while block := dump.read(1 << 16):
        sink.write(block)
sink.finish()
"""


def test_a_killed_restore_leaves_only_staging_which_cleanup_drops(engine, target, tmp_path):
    dump = tmp_path / "dump"
    dump.write_bytes(engine.dump(engine.source()))
    marker = tmp_path / "masking"
    staging = staging_name(target.database)
    fields = {k: getattr(target, k) for k in ("type", "host", "port", "username", "password")}
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            json.dumps({**fields, "database": target.database}),
            str(dump),
            str(marker),
            staging,
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        for _ in range(1200):  # until the child is inside the masking loop (or has died)
            if marker.exists() or child.poll() is not None:
                break
            time.sleep(0.05)
        assert marker.exists(), f"the child never reached masking (exit code {child.poll()})"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)

    assert not engine.exists(target)  # the unmasked data never had the target's name
    assert engine.staging_of(target) == [staging]
    # Only what it is told to: a young staging database survives an age-based cleanup.
    assert cleanup_staging(engine.server, names=[staging], older_than=dt.timedelta(hours=1)) == []
    assert cleanup_staging(engine.server, names=[staging]) == [staging]
    assert engine.staging_of(target) == []
    assert not engine.exists(target)


def test_cleanup_by_age_drops_only_old_staging_databases(engine, target):
    old = staging_name(target.database, now=dt.datetime(2020, 1, 1, tzinfo=dt.UTC).timestamp())
    young = staging_name(target.database)
    for name in (old, young):
        (pg_create_database if engine.name == "postgresql" else mysql_create_database)(engine.server, name)
    assert staging_created_at(old) == dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    dropped = cleanup_staging(engine.server, names=[old, young], older_than=dt.timedelta(hours=1))
    assert dropped == [old]
    assert engine.staging_of(target) == [young]
    with pytest.raises(EngineError, match="not a staging database"):
        drop_staging(engine.server, target.database)


def test_mysql_swap_keeps_views_triggers_routines_events_and_foreign_keys(my_source, my_db, my_params):
    """Views and triggers cannot move with RENAME TABLE: they are created again in the target."""
    engine = MySQL(my_params, my_db)
    engine._run(
        my_source,
        "CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT,"
        " FOREIGN KEY (customer_id) REFERENCES customers (id)) ENGINE=InnoDB",
        "INSERT INTO orders VALUES (1, 1), (2, 2)",
        "CREATE VIEW rich_names AS SELECT name FROM big_customers",  # a view on a view
        "CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2",
        "CREATE EVENT purge_log ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00'"
        " DO DELETE FROM audit_log WHERE id < 0",
        "CREATE TRIGGER customers_bu BEFORE UPDATE ON customers FOR EACH ROW"
        " SET NEW.note = CONCAT('v', COALESCE(NEW.note, ''))",
    )
    target = my_db()
    dump = engine.dump(my_source)
    with mysql_restore_sink(target, prepare=lambda s: apply_masking(s, {"email": "hash"})) as sink:
        copy_into(dump, sink)
        sink.finish()
    try:
        assert engine.schema(target) == engine.schema(my_source)
        conn = my_connect(target, autocommit=True)
        with conn.cursor() as cur:
            cur.execute("SELECT twice(21), (SELECT count(*) FROM rich_names)")
            assert cur.fetchone() == (42, 27)
            with pytest.raises(pymysql.IntegrityError):  # the foreign key still holds
                cur.execute("INSERT INTO orders VALUES (3, 999)")
            cur.execute("INSERT INTO customers (name) VALUES ('new')")  # the trigger still fires
            cur.execute("SELECT msg FROM audit_log ORDER BY id DESC LIMIT 1")
            assert cur.fetchone()[0].startswith("new ")
            cur.execute("SELECT count(*) FROM customers WHERE email LIKE %s", ("user%",))
            assert cur.fetchone()[0] == 0
        conn.close()
    finally:
        MySQL(my_params, my_db).cleanup(target)


def test_mysql_failed_overwrite_keeps_the_existing_target(my_source, my_db, my_params):
    engine = MySQL(my_params, my_db)
    target = my_db()
    engine.create_old_target(target)
    before = mysql_plain_dump(target)
    sink = mysql_restore_sink(target, strategy="overwrite")
    with pytest.raises(EngineError, match="mysql failed"), sink:
        sink.write(b"CREATE TABLE t (x INT);\nTHIS IS NOT SQL;\n")
        sink.finish()
    assert mysql_plain_dump(target) == before
    assert engine.staging_of(target) == []


def test_masking_needs_a_database_the_restore_may_create(pg_db, my_db):
    for sink, params in ((pg_restore_sink, pg_db()), (mysql_restore_sink, my_db())):
        with pytest.raises(EngineError, match="needs create_database") as info:
            sink(params, create_database=False, prepare=lambda s: None)
        assert info.value.code == "invalid_params"
