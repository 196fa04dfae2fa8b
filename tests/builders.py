"""Rows the tests build again and again, in one place: this machine's database servers and a
local storage. Each returns the saved row; keyword arguments override or add fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backups.models import Server, Storage


def make_pg_server(tenant: Any, name: str = "pg", **fields: Any) -> Server:
    """The local PostgreSQL (127.0.0.1:5432, user ``postgres``, trust)."""
    values = {"host": "127.0.0.1", "port": 5432, "credentials": {"username": "postgres", "password": ""}, **fields}
    return Server.objects.create(tenant=tenant, name=name, type="postgresql", **values)


def make_mariadb_server(tenant: Any, name: str = "maria", **fields: Any) -> Server:
    """The local MariaDB (127.0.0.1:3306, ``root`` without a password)."""
    values = {"host": "127.0.0.1", "port": 3306, "credentials": {"username": "root", "password": ""}, **fields}
    return Server.objects.create(tenant=tenant, name=name, type="mysql", **values)


def make_local_storage(tenant: Any, path: Path | str, name: str = "local", **fields: Any) -> Storage:
    """A local storage writing under ``path`` (the tenant's default unless ``is_default=False``)."""
    values = {"is_default": True, **fields}
    return Storage.objects.create(tenant=tenant, name=name, type="local", configuration={"path": str(path)}, **values)
