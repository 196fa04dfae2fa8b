"""PostgreSQL engine against the real server: round trip, strategies, failures, cancellation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backups.engines import restore_sink
from backups.engines.base import ConnectionParams, EngineError, copy_into
from backups.engines.postgres import (
    connect,
    pg_create_database,
    pg_database_exists,
    pg_dump_source,
    pg_restore_sink,
)
from backups.engines.staging import list_staging

from .helpers import pg_plain_dump, transfer


def test_round_trip_is_identical(pg_source, pg_db):
    target = pg_db()
    with pg_dump_source(pg_source) as source:
        assert source.info["engine"] == "postgresql"
        assert source.info["tool_version"].startswith("pg_dump (PostgreSQL)")
        assert source.info["server_version"]
        assert source.info["database"] == pg_source.database
        with pg_restore_sink(target) as sink:
            copy_into(source, sink)
            source.finish()
            result = sink.finish()
    assert result["created"] is True and result["bytes"] > 0
    # Schema, data, sequence values, large objects: the full plain dumps are identical.
    assert pg_plain_dump(target) == pg_plain_dump(pg_source)
    with connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()[0] == 1
        avatar = conn.execute("SELECT avatar FROM customers WHERE id = 1").fetchone()[0]
        assert avatar.endswith(b"\x00\xff\n\r")


def test_overwrite_replaces_existing_data(pg_source, pg_db):
    target = pg_db()
    pg_create_database(target)
    with connect(target) as conn:
        conn.execute("CREATE TABLE stale (x int)")
        conn.execute("CREATE TABLE customers (id int)")
        conn.execute("INSERT INTO customers VALUES (999)")
    transfer(pg_dump_source(pg_source), pg_restore_sink(target, strategy="overwrite"))
    assert pg_plain_dump(target) == pg_plain_dump(pg_source)
    with connect(target) as conn:
        assert conn.execute("SELECT to_regclass('stale')").fetchone()[0] is None


def test_overwrite_in_place_without_create(pg_source, pg_db):
    target = pg_db()
    transfer(pg_dump_source(pg_source), pg_restore_sink(target))
    with connect(target) as conn:
        conn.execute("DELETE FROM invoices")
    transfer(
        pg_dump_source(pg_source),
        pg_restore_sink(target, strategy="overwrite", create_database=False),
    )
    assert pg_plain_dump(target) == pg_plain_dump(pg_source)


def test_failed_overwrite_keeps_the_existing_target(pg_source, pg_db):
    target = pg_db()
    transfer(pg_dump_source(pg_source), pg_restore_sink(target))
    before = pg_plain_dump(target)
    sink = pg_restore_sink(target, strategy="overwrite")
    with pytest.raises(EngineError, match="pg_restore failed"), sink:
        sink.write(b"this is not a custom-format dump" * 100)
        sink.finish()
    assert pg_plain_dump(target) == before
    assert [n for n in list_staging(target) if n.startswith(target.database)] == []


def test_create_new_into_existing_database_fails_clearly(pg_source):
    with pytest.raises(EngineError, match="already exists") as info:
        pg_restore_sink(pg_source, strategy="create_new")
    assert info.value.code == "target_exists"


def test_create_new_without_create_needs_an_empty_database(pg_source, pg_db):
    with pytest.raises(EngineError, match="not empty"):
        pg_restore_sink(pg_source, create_database=False)
    empty = pg_db()
    pg_create_database(empty)
    transfer(pg_dump_source(pg_source), pg_restore_sink(empty, create_database=False))
    assert pg_plain_dump(empty) == pg_plain_dump(pg_source)


def test_failed_create_new_restore_drops_the_new_database(pg_db):
    target = pg_db()
    sink = pg_restore_sink(target)
    assert pg_database_exists(target)
    with pytest.raises(EngineError, match="pg_restore failed") as info:
        sink.write(b"garbage" * 10)
        sink.finish()
    assert "input file does not appear to be a valid archive" in str(info.value)
    assert not pg_database_exists(target)


def test_unknown_strategy_is_refused(pg_db):
    with pytest.raises(EngineError, match="Unknown restore strategy"):
        restore_sink(pg_db(), strategy="merge")


def test_failing_dump_raises_a_clear_error_without_the_password(pg_params):
    secret = "s3cret-Pa55-word"
    params = ConnectionParams(
        "postgresql",
        pg_params.host,
        pg_params.port,
        pg_params.username,
        secret,
        "bp_eng_missing_db",
    )
    assert secret not in repr(params) and secret not in str(params)
    with pytest.raises(EngineError) as info:
        pg_dump_source(params)
    message = str(info.value)
    assert "bp_eng_missing_db" in message and "does not exist" in message
    assert secret not in message


def _add_filler(params: ConnectionParams) -> None:
    """~10 MB of rows, so pg_dump blocks on the pipe until someone reads."""
    with connect(params) as conn:
        conn.execute("CREATE TABLE filler AS SELECT n, repeat(md5(n::text), 8) AS pad FROM generate_series(1, 40000) n")


def test_a_dump_nobody_read_to_the_end_fails_with_the_tool_stderr(pg_source):
    _add_filler(pg_source)
    with pg_dump_source(pg_source) as source:
        assert source.read(1024)
        with pytest.raises(EngineError, match=r"pg_dump failed .*SIGPIPE.*not read to the end") as info:
            source.finish()
    assert info.value.code == "dump_failed"


def test_password_is_in_the_environment_not_argv_and_kill_leaves_no_process(pg_source):
    secret = "s3cret-Pa55-word"  # trust auth ignores it, but it is passed along
    params = ConnectionParams(
        "postgresql", pg_source.host, pg_source.port, pg_source.username, secret, pg_source.database
    )
    _add_filler(params)
    source = pg_dump_source(params)
    pid = source.pid
    assert source.read(1024)  # pg_dump runs (exec done); mid-stream, blocked on the full pipe
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert cmdline.split(b"\0")[0].endswith(b"pg_dump") and secret.encode() not in cmdline
    assert f"PGPASSWORD={secret}".encode() in Path(f"/proc/{pid}/environ").read_bytes()
    source.kill()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped: no zombie left


def test_context_exit_without_finish_kills(pg_source):
    with pg_dump_source(pg_source) as source:
        pid = source.pid
        source.read(10)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_parallel_restore_spools_to_a_file_then_loads_with_jobs(pg_source, pg_db, tmp_path):
    target = pg_db()
    spool = tmp_path / "spool"
    spool.mkdir()
    with pg_dump_source(pg_source) as source:
        sink = pg_restore_sink(target, jobs=3, spool_dir=str(spool), spool_size=1 << 20)
        copy_into(source, sink)
        source.finish()
        assert [p.name for p in spool.iterdir()] == [Path(sink.path).name]  # the dump goes to disk
        result = sink.finish()
    assert result["jobs"] == 3 and result["created"] is True
    assert pg_plain_dump(target) == pg_plain_dump(pg_source)
    assert list(spool.iterdir()) == []  # the file is gone

    # Overwrite goes through a staging database, swapped in when the parallel load succeeded.
    with connect(target) as conn:
        conn.execute("DELETE FROM invoices")
    transfer(pg_dump_source(pg_source), pg_restore_sink(target, strategy="overwrite", jobs=2))
    assert pg_plain_dump(target) == pg_plain_dump(pg_source)


def test_parallel_restore_checks_the_temporary_space_first(pg_db, tmp_path):
    target = pg_db()
    with pytest.raises(EngineError, match=r"needs .* MiB free there") as info:
        pg_restore_sink(target, jobs=2, spool_dir=str(tmp_path), spool_size=1 << 60)
    assert info.value.code == "insufficient_space"
    assert not pg_database_exists(target)  # refused before anything was created


def test_failed_parallel_restore_drops_the_database_and_the_file(pg_db, tmp_path):
    target = pg_db()
    sink = pg_restore_sink(target, jobs=2, spool_dir=str(tmp_path))
    sink.write(b"garbage" * 10)
    with pytest.raises(EngineError, match="pg_restore failed"):
        sink.finish()
    assert not pg_database_exists(target) and list(tmp_path.iterdir()) == []
    aborted = pg_restore_sink(target, jobs=2, spool_dir=str(tmp_path))
    aborted.write(b"partial")
    aborted.abort()
    assert not pg_database_exists(target) and list(tmp_path.iterdir()) == []


def test_parallel_restore_needs_a_database_it_creates(pg_db):
    target = pg_db()
    pg_create_database(target)
    with pytest.raises(EngineError, match="needs create_database") as info:
        pg_restore_sink(target, create_database=False, jobs=2)
    assert info.value.code == "invalid_params"
    with pytest.raises(EngineError, match="plain SQL dump cannot be restored in parallel"):
        pg_restore_sink(target, strategy="overwrite", plain=True, jobs=2)


def test_tool_versions_are_asked_once_per_executable_until_it_changes(tmp_path, monkeypatch):
    from backups.engines.base import tool_version

    calls = tmp_path / "calls"
    tool = tmp_path / "bp-fake-dump"

    def install(version: str) -> None:
        tool.write_text(f"#!/bin/sh\necho x >> {calls}\necho '{version}'\n")
        tool.chmod(0o755)

    install("bp-fake-dump 1.0")
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert tool_version(["bp-fake-dump", "--version"]) == "bp-fake-dump 1.0"
    assert tool_version(["bp-fake-dump", "--version"]) == "bp-fake-dump 1.0"
    assert calls.read_text().count("x") == 1  # the second answer was remembered
    install("bp-fake-dump 2.0-upgraded")  # another file: asked again
    assert tool_version(["bp-fake-dump", "--version"]) == "bp-fake-dump 2.0-upgraded"
    assert calls.read_text().count("x") == 2


def test_a_full_disk_while_spooling_fails_the_parallel_restore_and_leaves_nothing(pg_db, tmp_path, monkeypatch):
    """The spool file is written on its own thread; a write that fails there (the disk filled
    up after the space check) still fails the restore with the disk's reason, drops the
    database and deletes the file."""
    import errno

    target = pg_db()
    sink = pg_restore_sink(target, jobs=2, spool_dir=str(tmp_path))
    written = []

    def full(data):
        if written:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(len(data))
        return len(data)

    monkeypatch.setattr(sink._file, "write", full)
    with pytest.raises(EngineError, match="No space left on device") as info:
        for _ in range(64):  # the writer fails on the second piece; a later write or finish says so
            sink.write(b"x" * 65536)
        sink.finish()
    assert info.value.code == "insufficient_space"
    assert not pg_database_exists(target) and list(tmp_path.iterdir()) == []
