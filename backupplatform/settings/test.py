"""Test settings: the database and Redis that ``backupplatform.runner test`` found or started."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


def _isolate_xdist_worker() -> None:
    """Under pytest-xdist (``make test`` runs two workers) each worker process (gw0, gw1...)
    gets its own Redis database and its own storage and staging folders, as pytest-django
    gives it its own test database. Written to the environment before the settings read
    it, so the processes a test starts (Celery workers, live servers) inherit the same."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or "pytest" not in sys.modules or os.environ.get("BP_XDIST_ISOLATED") == worker:
        return
    index = int(worker[2:])
    url = urlsplit(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/5"))
    database = (int(url.path.strip("/") or 0) + index) % 16
    os.environ["REDIS_URL"] = urlunsplit(url._replace(path=f"/{database}"))
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.pop("CELERY_RESULT_BACKEND", None)
    var = Path(os.environ.get("PLATFORM_VAR_DIR") or Path(__file__).resolve().parents[2] / "var")
    for name, default in (("BACKUP_LOCAL_ROOT", var / "backups"), ("IMPORT_STAGING_ROOT", var / "staging")):
        os.environ[name] = f"{os.environ.get(name) or default}-{worker}"
    os.environ["BP_XDIST_ISOLATED"] = worker


_isolate_xdist_worker()

from .base import *  # noqa: E402, F403
from .base import env  # noqa: E402

DEBUG = False
SECRET_KEY = "test-secret-key-not-for-production-0123456789abcdefghijklmnop"
FIELD_ENCRYPTION_KEYS = ["6q3Y8kS0b2t3wqJmX7vZ6p1y9hNnR4uVdC5eF8gH0iA="]
BACKUP_MASTER_KEY = "dGVzdC1tYXN0ZXIta2V5LTMyLWJ5dGVzLWxvbmctISE="
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# Throttles stay on but generous; throttle tests override the rates they check.
REST_FRAMEWORK = {**REST_FRAMEWORK}  # noqa: F405
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {"login": "1000/min", "console": "1000/min", "jobs": "1000/min"}
# Connections are not kept across requests, so the test database can be dropped at the end.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
# Tests create their folders under the system temp directory.
LOCAL_PATH_ROOTS = ["/tmp"]
# Test servers (databases, S3, SFTP, emulators, the fake Acronis) listen on loopback, the seeds'
# examples name private addresses, and the
# suite backs up databases of the PostgreSQL server its own test database lives on; the
# network policy's tests switch these back off.
OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
OUTBOUND_ALLOW_PLATFORM_SERVICES = True
# The in-process tests import asgi.py; only a live server started with DB_POOL_ASGI=1 pools.
DB_POOL_ASGI = env.bool("DB_POOL_ASGI", default=False)
