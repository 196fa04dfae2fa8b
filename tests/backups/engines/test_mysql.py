"""MySQL/MariaDB engine against the real server."""

from __future__ import annotations

import os
import secrets
import time

import pytest

from backups.engines.base import ConnectionParams, EngineError, copy_into
from backups.engines.mysql import (
    connect,
    mysql_create_database,
    mysql_database_exists,
    mysql_restore_sink,
    mysqldump_source,
)

from .helpers import mysql_plain_dump, transfer


def _checksums(params: ConnectionParams) -> dict[str, int]:
    conn = connect(params, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("CHECKSUM TABLE customers, audit_log")
            return {name.split(".")[-1]: value for name, value in cur.fetchall()}
    finally:
        conn.close()


def test_round_trip_is_identical(my_source, my_db):
    target = my_db()
    with mysqldump_source(my_source) as source:
        assert source.info["engine"] == "mysql"
        assert "mysqldump" in source.info["tool_version"]
        assert source.info["server_version"]
        with mysql_restore_sink(target) as sink:
            copy_into(source, sink)
            source.finish()
            result = sink.finish()
    assert result["created"] is True
    assert mysql_plain_dump(target) == mysql_plain_dump(my_source)
    assert _checksums(target) == _checksums(my_source)
    conn = connect(target, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SELECT avatar, name FROM customers WHERE id = 1")
        avatar, name = cur.fetchone()
    conn.close()
    assert avatar == bytes(range(256)) + b"\x01"
    assert "\N{SNOWMAN}" in name


def test_overwrite_and_create_new_strategies(my_source, my_db):
    target = my_db()
    mysql_create_database(target)
    conn = connect(target, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE stale (x INT)")
    conn.close()
    with pytest.raises(EngineError, match="already exists") as info:
        mysql_restore_sink(target)
    assert info.value.code == "target_exists"
    transfer(mysqldump_source(my_source), mysql_restore_sink(target, strategy="overwrite"))
    assert mysql_plain_dump(target) == mysql_plain_dump(my_source)


def test_failed_create_new_restore_drops_the_database(my_db):
    target = my_db()
    sink = mysql_restore_sink(target)
    assert mysql_database_exists(target)
    with pytest.raises(EngineError, match="mysql failed"):
        sink.write(b"THIS IS NOT SQL;\n")
        sink.finish()
    assert not mysql_database_exists(target)


def test_password_goes_through_a_private_defaults_file(my_source, my_params):
    user = f"bp_eng_{secrets.token_hex(3)}"
    password = 'p@ss"w\\rd #;x' + secrets.token_hex(3)
    root = connect(my_params, "", autocommit=True)
    try:
        with root.cursor() as cur:
            for host in ("%", "localhost"):
                cur.execute(f"CREATE USER '{user}'@%s IDENTIFIED BY %s", (host, password))
                cur.execute(f"GRANT ALL ON `{my_source.database}`.* TO '{user}'@%s", (host,))
                cur.execute(f"GRANT SELECT ON mysql.proc TO '{user}'@%s", (host,))
        params = ConnectionParams("mysql", my_params.host, my_params.port, user, password, my_source.database)
        with mysqldump_source(params) as source:
            deadline = time.monotonic() + 5
            while True:  # wait for the exec (before it, cmdline is the forked Python's)
                with open(f"/proc/{source.pid}/cmdline", "rb") as handle:
                    cmdline = handle.read()
                if cmdline.startswith(b"mysqldump") or time.monotonic() > deadline:
                    break
            assert password.encode() not in cmdline
            defaults = next(
                arg.split(b"=", 1)[1].decode() for arg in cmdline.split(b"\0") if arg.startswith(b"--defaults-file=")
            )
            assert os.stat(defaults).st_mode & 0o777 == 0o600
            data = b""
            while block := source.read(65536):
                data += block
            source.finish()
        assert b"CREATE TABLE `customers`" in data
        assert not os.path.exists(defaults)
        wrong = ConnectionParams("mysql", my_params.host, my_params.port, user, "wrong-pass-123", my_source.database)
        with pytest.raises(EngineError, match="Access denied") as info:
            mysqldump_source(wrong)
        assert "wrong-pass-123" not in str(info.value)
    finally:
        with root.cursor() as cur:
            for host in ("%", "localhost"):
                cur.execute(f"DROP USER IF EXISTS '{user}'@%s", (host,))
        root.close()


def test_kill_leaves_no_process(my_source):
    source = mysqldump_source(my_source)
    pid = source.pid
    source.kill()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
