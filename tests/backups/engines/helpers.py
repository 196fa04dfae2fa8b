"""Helpers shared by the engine tests: plain-text dumps to compare databases."""

from __future__ import annotations

import os
import subprocess

from backups.engines.base import ConnectionParams, copy_into


def pg_plain_dump(params: ConnectionParams, *extra: str) -> str:
    """``pg_dump`` plain text without comments and the random \\restrict keys."""
    env = {**os.environ, "PGPASSWORD": params.password or ""}
    out = subprocess.run(
        [
            "pg_dump",
            "--no-owner",
            "-h",
            params.host,
            "-p",
            str(params.port),
            "-U",
            params.username,
            "-d",
            params.database or "",
            *extra,
        ],
        capture_output=True,
        check=True,
        env=env,
    ).stdout.decode()
    lines = [
        line for line in out.splitlines() if line.strip() and not line.startswith(("--", "\\restrict", "\\unrestrict"))
    ]
    return "\n".join(lines)


def mysql_plain_dump(params: ConnectionParams, *extra: str) -> str:
    out = subprocess.run(
        [
            "mysqldump",
            "--protocol=TCP",
            "-h",
            params.host,
            "-P",
            str(params.port),
            "-u",
            params.username,
            "--skip-dump-date",
            "--skip-comments",
            "--routines",
            "--triggers",
            "--events",
            "--hex-blob",
            "--no-tablespaces",
            *extra,
            params.database or "",
        ],
        capture_output=True,
        check=True,
    ).stdout.decode()
    return out.replace(params.database or "", "DBNAME")


def transfer(source, sink) -> dict:  # type: ignore[no-untyped-def]
    """Copy a source into a sink and finish both; returns the sink's result."""
    with source, sink:
        copy_into(source, sink)
        source.finish()
        return sink.finish()
