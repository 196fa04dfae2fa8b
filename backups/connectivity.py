"""Real connection tests and database discovery for servers.

Transport only: plain arguments in, plain results out, no ORM. The Django side
(``backups.services``) passes a ``Server``'s decrypted credentials here.

- :func:`test_connection` implements db-backup-platform.md, "Test Server
  Connection" (``{"success", "message", "latency_ms"}``): PostgreSQL (psycopg 3,
  ``SELECT version()``), MySQL/MariaDB (PyMySQL, ``SELECT VERSION()``), SSH
  (paramiko, password or RSA/Ed25519/ECDSA key), anything else a TCP connect.
  It never raises for connection failures; it classifies them (``kind``).
- :func:`list_databases` implements "List Databases on Server".
- :func:`open_ssh` and :func:`load_private_key` are shared with the SFTP
  storage backend.

No message ever contains the password or key: drivers' messages are scrubbed
of them before they are returned.
"""

from __future__ import annotations

import io
import logging
import math
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import paramiko

from backupplatform import netpolicy

from .connection_errors import (  # noqa: F401  (KINDS, ConnectionFailed, InvalidPrivateKey: part of this module's API)
    KINDS,
    ConnectionFailed,
    InvalidPrivateKey,
    auth_failed,
    classify_mysql,
    classify_pg,
    classify_socket,
    classify_ssh,
    first_line,
    refused,
    timed_out,
)

logger = logging.getLogger(__name__)

POSTGRES_TYPES = frozenset({"postgresql", "postgres"})
MYSQL_TYPES = frozenset({"mysql", "mariadb"})
SSH_TYPES = frozenset({"ssh", "sftp"})


MYSQL_SYSTEM_SCHEMAS = ("information_schema", "performance_schema", "mysql", "sys")

# libpq refuses connect_timeout below 2 s (it rounds up), so we say what we used.
_PG_MIN_TIMEOUT = 2


@dataclass(frozen=True)
class ConnectionResult:
    """Outcome of :func:`test_connection`.

    ``kind`` is ``None`` on success, else one of :data:`KINDS`. ``details``
    carries non-secret facts: ``server_version``, and for SSH ``host_key`` (the
    server's public key line, to pin it next time).
    """

    success: bool
    message: str
    latency_ms: int
    kind: str | None = None
    details: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- public API -------------------------------------------------------------------


def test_connection(
    *,
    type: str,
    host: str,
    port: int,
    username: str | None = None,
    password: str | None = None,
    ssh_key: str | None = None,
    database: str | None = None,
    timeout: float = 5.0,
    host_key: str | None = None,
) -> ConnectionResult:
    """Really connect to a server and report how it went; never raises for failures.

    ``type`` selects the protocol (``postgresql``/``postgres``, ``mysql``/
    ``mariadb``, ``ssh``; anything else, e.g. ``docker`` or ``local``, is a
    TCP connect). ``ssh_key`` is a private key in OpenSSH or PEM form;
    ``host_key`` optionally pins the SSH server's public key
    (``"ssh-ed25519 AAAA..."``).
    """
    server_type = (type or "").lower()
    started = time.monotonic()
    secrets = [password, ssh_key]
    try:
        _resolve(host, port)
        if server_type in POSTGRES_TYPES:
            details = _pg_check(host, port, username, password, database, timeout)
        elif server_type in MYSQL_TYPES:
            details = _mysql_check(host, port, username, password, database, timeout)
        elif server_type in SSH_TYPES:
            client = open_ssh(
                host=host,
                port=port,
                username=username,
                password=password,
                private_key=ssh_key,
                host_key=host_key,
                timeout=timeout,
            )
            try:
                details = _ssh_details(client)
            finally:
                client.close()
        else:
            details = _tcp_check(host, port, timeout)
    except ConnectionFailed as exc:
        message = scrub(exc.message, secrets)
        logger.info("Connection test %s %s:%s failed (%s): %s", server_type, host, port, exc.kind, message)
        return ConnectionResult(False, message, _elapsed_ms(started), exc.kind)
    latency = _elapsed_ms(started)
    logger.info("Connection test %s %s:%s succeeded in %d ms", server_type, host, port, latency)
    return ConnectionResult(True, "Connection successful", latency, None, details)


# Not a pytest test, although its name (the seed's) starts with "test_".
test_connection.__test__ = False  # type: ignore[attr-defined]


def list_databases(
    *,
    type: str,
    host: str,
    port: int,
    username: str,
    password: str | None,
    timeout: float = 5.0,
) -> list[dict[str, Any]]:
    """List the databases of a PostgreSQL or MySQL/MariaDB server, ordered by name.

    Each entry is ``{"name", "size_mb", "size_bytes", "type"}``; ``size_mb`` is a
    float rounded to 2 decimals (db-backup-platform.md, "List Databases on
    Server"), ``size_bytes`` the exact figure. PostgreSQL: ``pg_database``
    without templates (size ``None`` where we may not connect). MySQL:
    ``information_schema`` sums of data and index length, system schemas
    excluded. Raises :class:`ConnectionFailed` (classified) or ``ValueError``
    for other server types.
    """
    server_type = (type or "").lower()
    try:
        _resolve(host, port)
        if server_type in POSTGRES_TYPES:
            rows = _pg_databases(host, port, username, password, timeout)
            kind = "postgresql"
        elif server_type in MYSQL_TYPES:
            rows = _mysql_databases(host, port, username, password, timeout)
            kind = server_type
        else:
            raise ValueError(f"Cannot list databases of a {type!r} server")
    except ConnectionFailed as exc:
        raise ConnectionFailed(exc.kind, scrub(exc.message, [password])) from None
    return [
        {
            "name": name,
            "size_mb": None if size is None else round(int(size) / (1024 * 1024), 2),
            "size_bytes": None if size is None else int(size),
            "type": kind,
        }
        for name, size in rows
    ]


def load_private_key(text: str, passphrase: str | None = None) -> paramiko.PKey:
    """Parse an Ed25519, RSA or ECDSA private key given as text (OpenSSH or PEM)."""
    if not isinstance(text, str) or "PRIVATE KEY" not in text:
        raise InvalidPrivateKey("Private key is not in OpenSSH or PEM format")
    needs_passphrase = False
    for key_class in (paramiko.Ed25519Key, paramiko.RSAKey, paramiko.ECDSAKey):
        try:
            return key_class.from_private_key(io.StringIO(text.strip() + "\n"), passphrase)
        except paramiko.PasswordRequiredException:
            needs_passphrase = True
        except (paramiko.SSHException, ValueError, TypeError, IndexError):
            continue
    if needs_passphrase:
        raise InvalidPrivateKey("Private key is encrypted and needs a passphrase")
    raise InvalidPrivateKey("Private key could not be parsed (unsupported type or wrong passphrase)")


def open_ssh(
    *,
    host: str,
    port: int,
    username: str | None,
    password: str | None = None,
    private_key: str | None = None,
    passphrase: str | None = None,
    host_key: str | None = None,
    timeout: float = 10.0,
) -> paramiko.SSHClient:
    """Open an authenticated SSH connection or raise a classified :class:`ConnectionFailed`.

    Tries the key first, then the password (paramiko's order). Never consults
    an agent or ``~/.ssh``: a server process must use only what it was given.
    """
    if not username:
        raise ConnectionFailed("auth_failed", "A username is required for SSH")
    pkey = None
    if private_key:
        try:
            pkey = load_private_key(private_key, passphrase)
        except InvalidPrivateKey as exc:
            raise ConnectionFailed("auth_failed", str(exc)) from None
    if pkey is None and not password:
        raise ConnectionFailed("auth_failed", f"No password or SSH key given for user '{username}'")
    # Connect and wait for the server's banner ourselves: paramiko reports
    # refused/silent peers through its transport thread as vague SSHExceptions.
    try:
        sock = socket.create_connection((host, int(port)), timeout=timeout)
    except OSError as exc:
        raise classify_socket(exc, host, port, timeout) from None
    try:
        if not sock.recv(1, socket.MSG_PEEK):
            raise ConnectionFailed("error", f"{host}:{port} closed the connection before SSH began")
    except OSError as exc:
        sock.close()
        raise classify_socket(exc, host, port, timeout) from None
    except ConnectionFailed:
        sock.close()
        raise
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(_HostKeyPolicy(host_key))
    try:
        client.connect(
            sock=sock,
            hostname=host,
            port=int(port),
            username=username,
            password=password or None,
            pkey=pkey,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            channel_timeout=timeout,
            look_for_keys=False,
            allow_agent=False,
        )
    except Exception as exc:
        client.close()
        sock.close()
        raise classify_ssh(exc, host, port, username, timeout) from None
    return client


def scrub(message: str, secrets: list[str | None]) -> str:
    """Replace every secret (of 3+ characters) in ``message`` by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 3:
            message = message.replace(secret, "***")
    return message


# -- protocols ----------------------------------------------------------------


def _resolve(host: str, port: int) -> None:
    if not host:
        raise ConnectionFailed("unknown_host", "No host given")
    try:
        socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise ConnectionFailed("unknown_host", f"Unknown host '{host}'") from None
    except (ValueError, OverflowError):
        raise ConnectionFailed("error", f"Invalid port {port!r}") from None
    # Checked again at every connection: a name may resolve elsewhere than when it was saved.
    if reason := netpolicy.host_refusal(host, int(port)):
        raise ConnectionFailed("not_allowed", f"{host}:{port} is not allowed as a target: {reason}")


def _tcp_check(host: str, port: int, timeout: float) -> dict[str, str]:
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise classify_socket(exc, host, port, timeout) from None
    return {}


def _pg_connect(
    host: str,
    port: int,
    username: str | None,
    password: str | None,
    database: str | None,
    timeout: float,
) -> Any:
    import psycopg

    connect_timeout = max(_PG_MIN_TIMEOUT, math.ceil(timeout))
    try:
        return psycopg.connect(
            host=host,
            port=int(port),
            user=username or None,
            password=password or None,
            dbname=database or "postgres",
            connect_timeout=connect_timeout,
            application_name="backupplatform-check",
            options=f"-c statement_timeout={int(connect_timeout * 1000)}",
        )
    except psycopg.Error as exc:
        raise classify_pg(exc, host, port, username, database, connect_timeout) from None


def _pg_check(
    host: str,
    port: int,
    username: str | None,
    password: str | None,
    database: str | None,
    timeout: float,
) -> dict[str, str]:
    import psycopg

    conn = _pg_connect(host, port, username, password, database, timeout)
    try:
        with conn:
            row = conn.execute("SELECT version()").fetchone()
    except psycopg.Error as exc:
        raise ConnectionFailed("error", f"PostgreSQL error: {first_line(exc)}") from None
    return {"server_version": str(row[0]) if row else ""}


def _pg_databases(
    host: str, port: int, username: str | None, password: str | None, timeout: float
) -> list[tuple[str, int | None]]:
    import psycopg

    conn = _pg_connect(host, port, username, password, None, timeout)
    try:
        with conn:
            # pg_database_size() fails on databases we may not connect to.
            rows = conn.execute(
                "SELECT datname,"
                " CASE WHEN has_database_privilege(datname, 'CONNECT')"
                " THEN pg_database_size(datname) END"
                " FROM pg_database WHERE NOT datistemplate AND datallowconn"
                " ORDER BY datname"
            ).fetchall()
    except psycopg.Error as exc:
        raise ConnectionFailed("error", f"PostgreSQL error: {first_line(exc)}") from None
    return [(name, size) for name, size in rows]


def _mysql_connect(
    host: str,
    port: int,
    username: str | None,
    password: str | None,
    database: str | None,
    timeout: float,
) -> Any:
    import pymysql

    try:
        return pymysql.connect(
            host=host,
            port=int(port),
            user=username or None,
            password=password or "",
            database=database or None,
            connect_timeout=timeout,
            read_timeout=timeout,
            write_timeout=timeout,
            charset="utf8mb4",
        )
    except pymysql.MySQLError as exc:
        raise classify_mysql(exc, host, port, username, database, timeout) from None


def _mysql_check(
    host: str,
    port: int,
    username: str | None,
    password: str | None,
    database: str | None,
    timeout: float,
) -> dict[str, str]:
    import pymysql

    conn = _mysql_connect(host, port, username, password, database, timeout)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT VERSION()")
            row = cursor.fetchone()
    except pymysql.MySQLError as exc:
        raise classify_mysql(exc, host, port, username, database, timeout) from None
    finally:
        conn.close()
    return {"server_version": str(row[0]) if row else ""}


def _mysql_databases(
    host: str, port: int, username: str | None, password: str | None, timeout: float
) -> list[tuple[str, int | None]]:
    import pymysql

    conn = _mysql_connect(host, port, username, password, None, timeout)
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT s.schema_name,"
                " COALESCE(SUM(t.data_length + t.index_length), 0)"
                " FROM information_schema.schemata s"
                " LEFT JOIN information_schema.tables t ON t.table_schema = s.schema_name"
                " WHERE s.schema_name NOT IN (%s, %s, %s, %s)"
                " GROUP BY s.schema_name ORDER BY s.schema_name",
                MYSQL_SYSTEM_SCHEMAS,
            )
            rows = cursor.fetchall()
    except pymysql.MySQLError as exc:
        raise classify_mysql(exc, host, port, username, None, timeout) from None
    finally:
        conn.close()
    return [(str(name), int(size)) for name, size in rows]


def _ssh_details(client: paramiko.SSHClient) -> dict[str, str]:
    transport = client.get_transport()
    if transport is None:
        return {}
    key = transport.get_remote_server_key()
    return {
        "server_version": str(transport.remote_version),
        "host_key": f"{key.get_name()} {key.get_base64()}",
    }


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Accept the server key if it matches the pinned one; with no pin, accept any key and log it.

    Nothing pins a key by itself: a server's or SFTP storage's ``host_key`` does (a
    successful test reports the key it saw in ``details["host_key"]`` to copy from).
    """

    def __init__(self, expected: str | None) -> None:
        self._expected = expected.split()[:2] if expected else None

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        offered = [key.get_name(), key.get_base64()]
        if self._expected is None:
            logger.info("Accepting unpinned SSH host key of %s (%s)", hostname, key.fingerprint)
            return
        if offered != self._expected:
            raise paramiko.BadHostKeyException(hostname, key, _PinnedKey(self._expected))


class _PinnedKey:
    """Just enough of a key for ``BadHostKeyException``'s message."""

    def __init__(self, fields: list[str]) -> None:
        self._fields = fields

    def get_base64(self) -> str:
        return self._fields[1] if len(self._fields) > 1 else ""


def _elapsed_ms(since: float) -> int:
    return math.ceil((time.monotonic() - since) * 1000)
