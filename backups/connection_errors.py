"""Connection failures told apart (refused, timed out, authentication, unknown host...),
from the exceptions of sockets, paramiko, psycopg and PyMySQL; messages never carry secrets."""

from __future__ import annotations

import errno
import re
import socket

import paramiko

#: Failure kinds of :class:`ConnectionFailed` (and ``ConnectionResult.kind``).
KINDS = ("refused", "timeout", "auth_failed", "unknown_host", "not_allowed", "error")


class ConnectionFailed(Exception):
    """A classified connection failure (``kind`` in :data:`KINDS`)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidPrivateKey(ValueError):
    """The private key text could not be parsed (message is safe to show)."""


# -- classification ---------------------------------------------------------------


def refused(host: str, port: int) -> ConnectionFailed:
    return ConnectionFailed("refused", f"Connection refused by {host}:{port}")


def timed_out(timeout: float) -> ConnectionFailed:
    return ConnectionFailed("timeout", f"Timed out after {float(timeout):.1f} s")


def auth_failed(username: str | None) -> ConnectionFailed:
    return ConnectionFailed("auth_failed", f"Authentication failed for user '{username or ''}'")


def classify_socket(exc: BaseException, host: str, port: int, timeout: float) -> ConnectionFailed:
    if isinstance(exc, ConnectionRefusedError):
        return refused(host, port)
    if isinstance(exc, TimeoutError | socket.timeout):
        return timed_out(timeout)
    if isinstance(exc, socket.gaierror):
        return ConnectionFailed("unknown_host", f"Unknown host '{host}'")
    code = getattr(exc, "errno", None)
    if code == errno.ECONNREFUSED:
        return refused(host, port)
    if code in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return ConnectionFailed("error", f"Network unreachable: {host}:{port}")
    if code == errno.ETIMEDOUT:
        return timed_out(timeout)
    return ConnectionFailed("error", f"Could not connect to {host}:{port}: {exc.strerror or exc}")


def classify_ssh(exc: BaseException, host: str, port: int, username: str, timeout: float) -> ConnectionFailed:
    if isinstance(exc, paramiko.BadHostKeyException):
        return ConnectionFailed("error", f"Host key of {host}:{port} does not match the pinned key (possible MITM)")
    if isinstance(exc, paramiko.AuthenticationException):
        return auth_failed(username)
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        errors = list(exc.errors.values())
        if errors and all(isinstance(e, ConnectionRefusedError) for e in errors):
            return refused(host, port)
        return classify_socket(errors[0], host, port, timeout) if errors else refused(host, port)
    if isinstance(exc, OSError):
        return classify_socket(exc, host, port, timeout)
    if isinstance(exc, paramiko.SSHException):
        text = str(exc)
        if "banner" in text.lower() or "timed out" in text.lower():
            # paramiko reports a silent peer as "Error reading SSH protocol banner".
            return timed_out(timeout)
        if "No authentication methods" in text:
            return auth_failed(username)
        return ConnectionFailed("error", f"SSH error: {text}")
    return ConnectionFailed("error", f"SSH error: {type(exc).__name__}")


_PG_AUTH = re.compile(
    r"password authentication failed|authentication failed|role \".*\" does not exist"
    r"|no password supplied|pg_hba\.conf",
    re.IGNORECASE,
)


def classify_pg(
    exc: BaseException,
    host: str,
    port: int,
    username: str | None,
    database: str | None,
    timeout: float,
) -> ConnectionFailed:
    import psycopg

    text = str(exc)
    if isinstance(exc, psycopg.errors.ConnectionTimeout) or "timeout expired" in text:
        return timed_out(timeout)
    if "Connection refused" in text:
        return refused(host, port)
    if "failed to resolve host" in text or "could not translate host name" in text:
        return ConnectionFailed("unknown_host", f"Unknown host '{host}'")
    if _PG_AUTH.search(text):
        return auth_failed(username)
    if re.search(r"database \".*\" does not exist", text):
        return ConnectionFailed("error", f"Database '{database or 'postgres'}' does not exist")
    if "No route to host" in text or "Network is unreachable" in text:
        return ConnectionFailed("error", f"Network unreachable: {host}:{port}")
    return ConnectionFailed("error", f"PostgreSQL error: {first_line(exc)}")


def classify_mysql(
    exc: BaseException,
    host: str,
    port: int,
    username: str | None,
    database: str | None,
    timeout: float,
) -> ConnectionFailed:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    if code in (1044, 1045, 1698, 1251):
        return auth_failed(username)
    if code == 1049:
        return ConnectionFailed("error", f"Database '{database}' does not exist")
    if "timed out" in text:
        return timed_out(timeout)
    if "Connection refused" in text:
        return refused(host, port)
    if "Name or service not known" in text or "nodename nor servname" in text:
        return ConnectionFailed("unknown_host", f"Unknown host '{host}'")
    if code in (2013, 2006) and "Lost connection" in text:
        return timed_out(timeout)
    return ConnectionFailed("error", f"MySQL error: {text}")


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
