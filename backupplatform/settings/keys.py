"""Keys for the local mode: generated once, kept in ``var/`` so a second run reuses them."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path


def _generate(kind: str) -> str:
    if kind == "secret_key":
        return secrets.token_urlsafe(50)
    # Fernet keys and the 32-byte master key are urlsafe base64 of 32 random bytes.
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def local_secret(var_dir: Path, kind: str) -> str:
    """Return the key named ``kind`` from ``var/keys/``, creating it (mode 0600) on first use."""
    path = Path(var_dir) / "keys" / kind
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = _generate(kind)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value
