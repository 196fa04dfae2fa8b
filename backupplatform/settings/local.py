"""``make run`` defaults: SQLite in ``var/``, the embedded Redis, generated keys kept in ``var/``."""

from __future__ import annotations

from .base import *  # noqa: F403
from .base import VAR_DIR, env
from .keys import local_secret

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = SECRET_KEY or local_secret(VAR_DIR, "secret_key")  # noqa: F405
FIELD_ENCRYPTION_KEYS = FIELD_ENCRYPTION_KEYS or [local_secret(VAR_DIR, "field_key")]  # noqa: F405
BACKUP_MASTER_KEY = env("BACKUP_MASTER_KEY", default="")
# Used when BACKUP_MASTER_KEY is empty. Read by backups.keys when a key is needed, and created
# there only while no wrapped tenant key exists: a missing file is an error, not a new key.
BACKUP_MASTER_KEY_FILE = env("BACKUP_MASTER_KEY_FILE", default=str(VAR_DIR / "keys" / "master_key"))
# One machine: databases and storages on loopback and the local network are the usual targets.
OUTBOUND_ALLOWED_NETWORKS = env.list(
    "OUTBOUND_ALLOWED_NETWORKS",
    default=["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"],
)
# The jobs API's own listener (``make run`` serves it on this port too).
JOBS_API_PORTS = env.list("JOBS_API_PORTS", cast=int, default=[5000])
