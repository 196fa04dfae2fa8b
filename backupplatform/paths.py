"""Which folders of the platform's own machines tenants may use.

A ``local`` storage, a file source without a server and a restore's target folder all touch
the filesystem of the worker itself. In a multi-tenant platform that must be confined: a
tenant could otherwise back up (and download) ``/etc`` or another tenant's backups, or
restore over the platform's files. Only folders under ``settings.LOCAL_PATH_ROOTS`` are
accepted (``BACKUP_LOCAL_ROOT`` plus what the operator lists in ``LOCAL_PATH_ROOTS``).
"""

from __future__ import annotations

import os

from django.conf import settings


def allowed_roots() -> list[str]:
    roots = [settings.BACKUP_LOCAL_ROOT, *getattr(settings, "LOCAL_PATH_ROOTS", [])]
    return [os.path.realpath(r) for r in roots if r]


def path_allowed(path: str) -> bool:
    """True when ``path`` (absolute) resolves inside one of the allowed roots."""
    if not isinstance(path, str) or not path.startswith("/") or "\x00" in path:
        return False
    real = os.path.realpath(path)
    return any(real == root or real.startswith(root.rstrip("/") + "/") for root in allowed_roots())


def not_allowed_message() -> str:
    return ("Not inside a folder this platform allows (LOCAL_PATH_ROOTS): "
            + ", ".join(allowed_roots()))
