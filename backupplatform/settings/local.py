"""``make run`` defaults: SQLite in ``var/``, the embedded Redis, generated keys kept in ``var/``."""

from __future__ import annotations

from .base import *  # noqa: F403
from .base import VAR_DIR, env
from .keys import local_secret

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = SECRET_KEY or local_secret(VAR_DIR, "secret_key")  # noqa: F405
FIELD_ENCRYPTION_KEYS = FIELD_ENCRYPTION_KEYS or [local_secret(VAR_DIR, "field_key")]  # noqa: F405
BACKUP_MASTER_KEY = env("BACKUP_MASTER_KEY", default="") or local_secret(VAR_DIR, "master_key")
