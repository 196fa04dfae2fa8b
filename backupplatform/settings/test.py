"""Test settings: the database and Redis that ``backupplatform.runner test`` found or started."""

from __future__ import annotations

from .base import *  # noqa: F403
from .base import env

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
