"""Server connection tests and database listing against real servers on loopback."""

from __future__ import annotations

import time

import pytest

from backups.connectivity import (
    ConnectionFailed,
    list_databases,
    test_connection,
)
from tests.fixtures.services import SSHServerInfo, ThrowawayDatabase

SECRET = "Sup3r-Secret-Passw0rd!"


# -- PostgreSQL ---------------------------------------------------------------------


def test_postgresql_connection_succeeds_with_latency_and_version(pg_server: dict) -> None:
    result = test_connection(
        type="postgresql",
        host=pg_server["host"],
        port=pg_server["port"],
        username=pg_server["user"],
        password=pg_server["password"],
    )
    assert result.success, result.message
    assert result.message == "Connection successful"
    assert result.kind is None
    assert 0 < result.latency_ms < 5000
    assert result.details["server_version"].startswith("PostgreSQL ")


def test_postgresql_unknown_role_is_an_authentication_failure(pg_server: dict) -> None:
    # The test server trusts loopback, so an unknown role is the auth failure it can show.
    result = test_connection(
        type="postgresql",
        host=pg_server["host"],
        port=pg_server["port"],
        username="no_such_role",
        password=SECRET,
    )
    assert not result.success
    assert result.kind == "auth_failed"
    assert result.message == "Authentication failed for user 'no_such_role'"
    assert SECRET not in result.message


def test_postgresql_missing_database_is_named(pg_server: dict) -> None:
    result = test_connection(
        type="postgres",
        host=pg_server["host"],
        port=pg_server["port"],
        username=pg_server["user"],
        database="no_such_db_here",
    )
    assert (result.success, result.kind) == (False, "error")
    assert result.message == "Database 'no_such_db_here' does not exist"


def test_postgresql_on_a_closed_port_is_refused(closed_port: int) -> None:
    result = test_connection(
        type="postgresql", host="127.0.0.1", port=closed_port, username="postgres", password=SECRET
    )
    assert (result.success, result.kind) == (False, "refused")
    assert result.message == f"Connection refused by 127.0.0.1:{closed_port}"


def test_postgresql_on_a_silent_server_times_out(silent_port: int) -> None:
    started = time.monotonic()
    result = test_connection(
        type="postgresql",
        host="127.0.0.1",
        port=silent_port,
        username="postgres",
        password=SECRET,
        timeout=1,
    )
    assert (result.success, result.kind) == (False, "timeout")
    # libpq's shortest connect timeout is 2 s; the message says what was used.
    assert result.message == "Timed out after 2.0 s"
    assert time.monotonic() - started < 5


# -- MySQL / MariaDB ---------------------------------------------------------------------


def test_mariadb_connection_succeeds_with_latency(mysql_server: dict) -> None:
    result = test_connection(
        type="mariadb",
        host=mysql_server["host"],
        port=mysql_server["port"],
        username=mysql_server["user"],
        password=mysql_server["password"],
    )
    assert result.success, result.message
    assert 0 < result.latency_ms < 5000
    assert result.details["server_version"]


def test_mysql_wrong_password_is_an_authentication_failure(mysql_server: dict) -> None:
    result = test_connection(
        type="mysql",
        host=mysql_server["host"],
        port=mysql_server["port"],
        username=mysql_server["user"],
        password=SECRET,
    )
    assert (result.success, result.kind) == (False, "auth_failed")
    assert result.message == f"Authentication failed for user '{mysql_server['user']}'"
    assert SECRET not in result.message


def test_mysql_on_a_closed_port_is_refused(closed_port: int) -> None:
    result = test_connection(type="mysql", host="127.0.0.1", port=closed_port, username="root")
    assert (result.success, result.kind) == (False, "refused")
    assert result.message == f"Connection refused by 127.0.0.1:{closed_port}"


def test_mysql_on_a_silent_server_times_out(silent_port: int) -> None:
    started = time.monotonic()
    result = test_connection(
        type="mysql",
        host="127.0.0.1",
        port=silent_port,
        username="root",
        password=SECRET,
        timeout=1,
    )
    assert (result.success, result.kind) == (False, "timeout")
    assert result.message == "Timed out after 1.0 s"
    assert time.monotonic() - started < 4


# -- SSH -----------------------------------------------------------------------------


def test_ssh_with_password_succeeds_and_reports_the_host_key(sftp_server: SSHServerInfo) -> None:
    result = test_connection(
        type="ssh",
        host=sftp_server.host,
        port=sftp_server.port,
        username=sftp_server.username,
        password=sftp_server.password,
    )
    assert result.success, result.message
    assert result.latency_ms > 0
    assert result.details["host_key"] == sftp_server.host_key
    assert "AsyncSSH" in result.details["server_version"]


@pytest.mark.parametrize("key_attr", ["private_key", "rsa_private_key"])
def test_ssh_with_a_private_key_succeeds(sftp_server: SSHServerInfo, key_attr: str) -> None:
    result = test_connection(
        type="ssh",
        host=sftp_server.host,
        port=sftp_server.port,
        username=sftp_server.username,
        ssh_key=getattr(sftp_server, key_attr),
        host_key=sftp_server.host_key,
    )
    assert result.success, result.message


def test_ssh_wrong_password_is_an_authentication_failure(sftp_server: SSHServerInfo) -> None:
    result = test_connection(
        type="ssh",
        host=sftp_server.host,
        port=sftp_server.port,
        username=sftp_server.username,
        password=SECRET,
    )
    assert (result.success, result.kind) == (False, "auth_failed")
    assert result.message == f"Authentication failed for user '{sftp_server.username}'"
    assert SECRET not in result.message


def test_ssh_garbage_key_is_an_authentication_failure_without_the_key(
    sftp_server: SSHServerInfo,
) -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAnotakey\n-----END OPENSSH PRIVATE KEY-----"
    result = test_connection(type="ssh", host=sftp_server.host, port=sftp_server.port, username="backup", ssh_key=key)
    assert (result.success, result.kind) == (False, "auth_failed")
    assert "AAAAnotakey" not in result.message


def test_ssh_on_a_silent_server_times_out(silent_port: int) -> None:
    result = test_connection(type="ssh", host="127.0.0.1", port=silent_port, username="u", password=SECRET, timeout=1)
    assert (result.success, result.kind) == (False, "timeout")
    assert result.message == "Timed out after 1.0 s"


def test_ssh_on_a_closed_port_is_refused(closed_port: int) -> None:
    result = test_connection(type="ssh", host="127.0.0.1", port=closed_port, username="u", password=SECRET)
    assert (result.success, result.kind) == (False, "refused")
    assert result.message == f"Connection refused by 127.0.0.1:{closed_port}"


# -- TCP and common failures --------------------------------------------------------------


def test_docker_server_is_a_tcp_check(sftp_server: SSHServerInfo, closed_port: int) -> None:
    ok = test_connection(type="docker", host="127.0.0.1", port=sftp_server.port)
    assert ok.success and ok.kind is None
    refused = test_connection(type="local", host="127.0.0.1", port=closed_port)
    assert (refused.success, refused.kind) == (False, "refused")


def test_tcp_connect_to_a_blackhole_times_out(blackhole_port: int) -> None:
    started = time.monotonic()
    result = test_connection(type="docker", host="127.0.0.1", port=blackhole_port, timeout=0.5)
    assert (result.success, result.kind) == (False, "timeout")
    assert result.message == "Timed out after 0.5 s"
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("server_type", ["postgresql", "mysql", "ssh", "docker"])
def test_unknown_host_is_reported_for_every_type(server_type: str) -> None:
    result = test_connection(type=server_type, host="no-such-host.invalid", port=22, username="u", password=SECRET)
    assert (result.success, result.kind) == (False, "unknown_host")
    assert result.message == "Unknown host 'no-such-host.invalid'"
    assert result.as_dict()["success"] is False


# -- list_databases -------------------------------------------------------------------------


def test_list_databases_on_postgresql_includes_the_throwaway_db(
    pg_throwaway_db: ThrowawayDatabase,
) -> None:
    databases = list_databases(
        type="postgresql",
        host=pg_throwaway_db.host,
        port=pg_throwaway_db.port,
        username=pg_throwaway_db.user,
        password=pg_throwaway_db.password,
    )
    names = [db["name"] for db in databases]
    assert names == sorted(names)
    assert "template0" not in names and "template1" not in names
    entry = next(db for db in databases if db["name"] == pg_throwaway_db.name)
    assert entry["type"] == "postgresql"
    assert entry["size_mb"] > 0 and entry["size_bytes"] > 0
    assert entry["size_mb"] == round(entry["size_bytes"] / 1024 / 1024, 2)


def test_list_databases_on_mariadb_includes_the_throwaway_db(
    mysql_throwaway_db: ThrowawayDatabase,
) -> None:
    databases = list_databases(
        type="mysql",
        host=mysql_throwaway_db.host,
        port=mysql_throwaway_db.port,
        username=mysql_throwaway_db.user,
        password=mysql_throwaway_db.password,
    )
    names = [db["name"] for db in databases]
    assert not {"information_schema", "performance_schema", "mysql", "sys"} & set(names)
    entry = next(db for db in databases if db["name"] == mysql_throwaway_db.name)
    assert entry["type"] == "mysql"
    assert entry["size_bytes"] > 0 and entry["size_mb"] > 0


def test_list_databases_raises_a_classified_error_without_the_password(mysql_server: dict, closed_port: int) -> None:
    with pytest.raises(ConnectionFailed) as info:
        list_databases(
            type="mariadb",
            host=mysql_server["host"],
            port=mysql_server["port"],
            username=mysql_server["user"],
            password=SECRET,
        )
    assert info.value.kind == "auth_failed" and SECRET not in str(info.value)
    with pytest.raises(ConnectionFailed) as info:
        list_databases(type="postgresql", host="127.0.0.1", port=closed_port, username="x", password=SECRET)
    assert info.value.kind == "refused"
    with pytest.raises(ValueError, match="Cannot list databases"):
        list_databases(type="ssh", host="127.0.0.1", port=22, username="x", password=None)
