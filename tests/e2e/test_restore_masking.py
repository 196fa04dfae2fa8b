"""Masked restores through the service, as a worker runs them: the target database never holds
unmasked data (a reader polling it during the restore sees none), a masking failure or a killed
worker leaves neither the target nor a staging database, and progress moves through restore,
masking (per table) and the swap without going back. Application restores put a folder's
contents straight into the target folder."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import threading
from datetime import timedelta
from pathlib import Path

import psycopg
import pymysql
import pytest
from channels.db import database_sync_to_async
from channels.testing.websocket import WebsocketCommunicator
from django.utils import timezone
from psycopg import sql
from rest_framework_simplejwt.tokens import AccessToken

from backupplatform.asgi import application
from backups.engines.staging import MARKER
from backups.models import Application, Backup, Operation, Server, Source
from backups.services.backups import backup_run, backup_start
from backups.services.operations import operation_reap
from backups.services.restores import restore_discard_staging, restore_run, restore_start
from tests.support.workers import wait_for

from .conftest import MY, PG, needs_mysql, needs_pg, pg_drop

pytestmark = [pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
UNMASKED = "person%@example.com"
RULES = {"email": "hash", "phone": "randomize"}


def pg_databases() -> set[str]:
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}


def pg_staging_of(target: str) -> list[str]:
    return sorted(n for n in pg_databases() if n.startswith(target + MARKER))


def pg_people(name: str) -> tuple[int, int] | None:
    """(rows, unmasked rows) in people; None if the database has no such table (yet)."""
    try:
        with psycopg.connect(dbname=name, connect_timeout=2, **PG) as conn:
            row = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE email LIKE %s) FROM people", (UNMASKED,)
            ).fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return int(row[0]), int(row[1])


@pytest.fixture
def people_db(cleanup_pg):
    """Factory: a database with `people` (unmasked e-mails) and `orders`, then its names to drop."""

    def make(rows: int) -> str:
        name = f"bp_people_{secrets.token_hex(4)}"
        cleanup_pg.append(name)
        with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        with psycopg.connect(dbname=name, **PG) as conn:
            conn.execute("CREATE TABLE people (id serial PRIMARY KEY, email text NOT NULL, phone text, city text)")
            conn.execute(
                "INSERT INTO people (email, phone, city) SELECT 'person' || n || '@example.com',"
                " '555-' || lpad(n::text, 7, '0'), 'City ' || (n %% 10) FROM generate_series(1, %s) n",
                (rows,),
            )
            conn.execute("CREATE TABLE orders (id serial PRIMARY KEY, email text, amount numeric(10,2))")
            conn.execute(
                "INSERT INTO orders (email, amount) SELECT 'person' || n || '@example.com', n"
                " FROM generate_series(1, 3000) n"
            )
        return name

    return make


@pytest.fixture
def target_name(cleanup_pg):
    name = f"bp_masked_{secrets.token_hex(4)}"
    cleanup_pg.append(name)
    yield name
    for staging in pg_staging_of(name):
        pg_drop(staging)


async def socket_for(user):
    token = await database_sync_to_async(lambda: str(AccessToken.for_user(user)))()
    communicator = WebsocketCommunicator(application, f"/ws?token={token}")
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    return communicator


def backup_of(tenant, server, storage, database) -> Backup:
    op = backup_start(tenant=tenant, server=server, database_name=database, storage=storage, queue=False)
    backup_run(operation_id=op.pk)
    backup = Backup.objects.get(pk=op.backup_id)
    assert backup.status == "completed", backup.error_message
    return backup


class Watcher(threading.Thread):
    """A curious user: lists the databases and reads the target's people table, over and over."""

    def __init__(self, target: str) -> None:
        super().__init__(daemon=True)
        self.target, self.stop, self.polls = target, threading.Event(), 0
        self.seen: list[tuple[int, int] | None] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                if self.target in pg_databases():
                    with contextlib.suppress(psycopg.OperationalError):
                        self.seen.append(pg_people(self.target))
                self.polls += 1
        except BaseException as exc:
            self.error = exc

    def result(self) -> list[tuple[int, int] | None]:
        self.stop.set()
        self.join(30)
        assert self.error is None, self.error
        assert self.polls > 0
        return self.seen


@needs_pg
def test_a_reader_never_sees_unmasked_rows_in_the_target_during_a_masked_restore(
    tenant_a, pg_server_row, local_storage, people_db, target_name
):
    backup = backup_of(tenant_a, pg_server_row, local_storage, people_db(20000))
    restore = restore_start(
        tenant=tenant_a,
        backup=backup,
        target_server=pg_server_row,
        target_database=target_name,
        masking_rules=RULES,
        queue=False,
    )
    watcher = Watcher(target_name)
    watcher.start()
    restore_run(operation_id=restore.operation_id)
    seen = watcher.result()
    restore.refresh_from_db()
    assert restore.status == "completed", restore.error_message
    assert [s for s in seen if s and s[1]] == [], "a reader saw unmasked rows in the target"
    # The target appears complete and masked, or not at all: never empty or partial either.
    assert [s for s in seen if s != (20000, 0)] == []
    assert pg_people(target_name) == (20000, 0)
    assert pg_staging_of(target_name) == []
    assert set(restore.result["masking"]["tables"]) == {"public.people", "public.orders"}


@needs_pg
def test_a_masking_failure_leaves_neither_the_target_nor_a_staging_database(
    tenant_a, pg_server_row, local_storage, people_db, target_name
):
    backup = backup_of(tenant_a, pg_server_row, local_storage, people_db(20000))
    rules = {**RULES, "amount": "fixed:not a number"}  # orders.amount is numeric: the UPDATE fails
    restore = restore_start(
        tenant=tenant_a,
        backup=backup,
        target_server=pg_server_row,
        target_database=target_name,
        masking_rules=rules,
        queue=False,
    )
    watcher = Watcher(target_name)
    watcher.start()
    restore_run(operation_id=restore.operation_id)
    seen = watcher.result()
    restore.refresh_from_db()
    assert restore.status == "failed"
    assert "Masking failed" in restore.error_message and "public.orders" in restore.error_message
    assert [e["table"] for e in restore.result["masking"]["errors"]] == ["public.orders"]
    assert seen == []  # the target never existed, not even for a moment
    assert target_name not in pg_databases()
    assert pg_staging_of(target_name) == []


@needs_pg
async def test_masked_restore_progress_goes_through_restore_masking_and_swap(
    operator_a, tenant_a, pg_server_row, local_storage, people_db, target_name
):
    source = await database_sync_to_async(people_db)(20000)
    backup = await database_sync_to_async(backup_of)(tenant_a, pg_server_row, local_storage, source)
    socket = await socket_for(operator_a)
    restore = await database_sync_to_async(restore_start)(
        tenant=tenant_a,
        backup=backup,
        target_server=pg_server_row,
        target_database=target_name,
        masking_rules={**RULES, "amount": "randomize"},
        queue=False,
    )
    await database_sync_to_async(restore_run)(operation_id=restore.operation_id)
    events = []
    while not events or events[-1]["type"] != "restore_completed":
        events.append(await socket.receive_json_from(timeout=5))
    await socket.disconnect()
    progress = [(e["current_step"], e["progress"]) for e in events if e["type"] == "restore_progress"]
    percents = [p for _, p in progress]
    assert percents == sorted(percents), progress  # never backwards
    masking = [p for step, p in progress if step == "masking_data"]
    assert len(set(masking)) >= 3 and masking == sorted(masking), progress
    assert masking[0] >= 80 and masking[-1] <= 98
    before = [p for step, p in progress[: progress.index(("masking_data", masking[0]))]]
    assert max(before) <= 80, progress
    assert ("swapping_in", 99) in progress and progress[-1] == ("completed", 100)
    final = await database_sync_to_async(Operation.objects.get)(pk=restore.operation_id)
    assert final.status == "completed" and final.progress == 100


@needs_pg
@pytest.mark.slow
def test_a_worker_killed_while_masking_leaves_no_target_and_its_staging_is_dropped(
    tenant_a, pg_server_row, local_storage, people_db, target_name, start_worker
):
    backup = backup_of(tenant_a, pg_server_row, local_storage, people_db(150000))
    worker = start_worker()
    restore = restore_start(
        tenant=tenant_a,
        backup=backup,
        target_server=pg_server_row,
        target_database=target_name,
        masking_rules={"phone": "randomize"},
    )
    wait_for(lambda: Operation.objects.filter(pk=restore.operation_id, step__startswith="mask").exists(), 120)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(10)

    assert target_name not in pg_databases()  # the unmasked copy never had the target's name
    restore.refresh_from_db()
    staging = [entry["database"] for entry in restore.result["staging"]]
    assert pg_staging_of(target_name) == staging
    assert pg_people(staging[0])[1] == 150000  # what the dead worker left: unmasked, so it must go
    assert restore_discard_staging(restore=restore) == []  # still running as far as anyone knows

    operation_reap(now=timezone.now() + timedelta(seconds=121))  # fails it and drops its staging
    restore.refresh_from_db()
    assert restore.status == "failed"
    assert pg_staging_of(target_name) == [] and target_name not in pg_databases()
    assert restore_discard_staging(restore=restore) == []  # idempotent


@needs_mysql
def test_masked_mariadb_restore_never_shows_unmasked_rows_and_leaves_no_staging(tenant_a, local_storage):
    source, target = f"bp_my_{secrets.token_hex(4)}", f"bp_my_masked_{secrets.token_hex(4)}"
    conn = pymysql.connect(autocommit=True, **MY)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{source}`")
            cur.execute(
                f"CREATE TABLE `{source}`.people (id INT AUTO_INCREMENT PRIMARY KEY,"
                " email VARCHAR(100), phone VARCHAR(20))"
            )
            cur.executemany(
                f"INSERT INTO `{source}`.people (email, phone) VALUES (%s, %s)",
                [(f"person{n}@example.com", f"555{n:07d}") for n in range(1, 2001)],
            )
        server = Server.objects.create(
            tenant=tenant_a,
            name="maria",
            type="mysql",
            host=MY["host"],
            port=MY["port"],
            credentials={"username": MY["user"], "password": ""},
        )
        backup = backup_of(tenant_a, server, local_storage, source)
        restore = restore_start(
            tenant=tenant_a,
            backup=backup,
            target_server=server,
            target_database=target,
            masking_rules=RULES,
            queue=False,
        )
        stop, unmasked = threading.Event(), []

        def watch() -> None:  # a reader polling the target's table while the restore runs
            reader = pymysql.connect(autocommit=True, **MY)
            with reader.cursor() as cur:
                while True:
                    last = stop.is_set()  # one more look once the restore has ended
                    with contextlib.suppress(pymysql.MySQLError):  # no database or table yet
                        cur.execute(f"SELECT count(*) FROM `{target}`.people WHERE email LIKE %s", (UNMASKED,))
                        unmasked.append(cur.fetchone()[0])
                    if last:
                        break
            reader.close()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        restore_run(operation_id=restore.operation_id)
        stop.set()
        watcher.join(30)
        restore.refresh_from_db()
        assert restore.status == "completed", restore.error_message
        assert unmasked and not any(unmasked), "a reader saw unmasked rows in the target"
        assert set(restore.result["masking"]["tables"]) == {f"{target}.people"}
        with conn.cursor() as cur:
            cur.execute(f"SELECT count(*), sum(email LIKE %s) FROM `{target}`.people", (UNMASKED,))
            assert cur.fetchone() == (2000, 0)
            cur.execute(
                "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s", (f"{target}{MARKER}%",)
            )
            assert cur.fetchall() == ()
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{source}`")
            cur.execute(f"DROP DATABASE IF EXISTS `{target}`")
        conn.close()


@needs_pg
def test_masking_applies_to_the_databases_of_an_application_restore(
    tenant_a, pg_server_row, local_storage, people_db, cleanup_pg
):
    source = people_db(500)
    app = Application.objects.create(tenant=tenant_a, name="crm")
    Source.objects.create(
        tenant=tenant_a,
        application=app,
        name="main",
        type="postgresql",
        server=pg_server_row,
        database_name=source,
        position=0,
    )
    op = backup_start(tenant=tenant_a, application=app, storage=local_storage, queue=False)
    backup_run(operation_id=op.pk)
    backup = Backup.objects.get(pk=op.backup_id)
    assert backup.status == "completed", backup.error_message
    restore = restore_start(tenant=tenant_a, backup=backup, masking_rules=RULES, queue=False)
    target = f"{source}_restored_{restore.pk}"
    cleanup_pg.append(target)
    restore_run(operation_id=restore.operation_id)
    restore.refresh_from_db()
    assert restore.status == "completed", restore.error_message
    assert pg_people(target) == (500, 0)
    assert set(restore.result["masking"][target]["tables"]) == {"public.people", "public.orders"}
    assert pg_staging_of(target) == []


def test_an_application_restore_puts_a_folders_contents_straight_into_the_target(tenant_a, local_storage, tmp_path):
    folder = tmp_path / "srv" / "data"
    (folder / "img").mkdir(parents=True)
    (folder / "img" / "a.png").write_bytes(b"\x89PNG" + bytes(100))
    (folder / "index.html").write_text("<h1>hi</h1>")
    db_file = tmp_path / "var" / "app.sqlite"
    db_file.parent.mkdir()
    db_file.write_bytes(b"SQLite format 3\x00")
    app = Application.objects.create(tenant=tenant_a, name="site")
    Source.objects.create(tenant=tenant_a, application=app, name="data", type="path", path=str(folder), position=0)
    op = backup_start(tenant=tenant_a, application=app, storage=local_storage, queue=False)
    backup_run(operation_id=op.pk)
    backup = Backup.objects.get(pk=op.backup_id)
    assert backup.status == "completed", backup.error_message

    target = tmp_path / "restore" / "x"
    restore = restore_start(tenant=tenant_a, backup=backup, target_path=str(target), queue=False)
    restore_run(operation_id=restore.operation_id)
    restore.refresh_from_db()
    assert restore.status == "completed", restore.error_message
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == ["img", "img/a.png", "index.html"]
    assert (target / "img" / "a.png").read_bytes() == b"\x89PNG" + bytes(100)

    # Several folders into one target: each gets a sub-folder named after its source.
    Source.objects.create(tenant=tenant_a, application=app, name="db", type="sqlite", path=str(db_file), position=1)
    op = backup_start(tenant=tenant_a, application=app, storage=local_storage, queue=False)
    backup_run(operation_id=op.pk)
    both = tmp_path / "restore" / "both"
    restore = restore_start(
        tenant=tenant_a, backup=Backup.objects.get(pk=op.backup_id), target_path=str(both), queue=False
    )
    restore_run(operation_id=restore.operation_id)
    restore.refresh_from_db()
    assert restore.status == "completed", restore.error_message
    assert sorted(p.relative_to(both).as_posix() for p in both.rglob("*") if p.is_file()) == [
        "data/img/a.png",
        "data/index.html",
        "db/app.sqlite",
    ]
