"""Keys for the local mode, kept in ``var/keys/`` so a second run reuses them.

The secret key and the field-encryption key are generated here on first use. The backup
master key is not: ``backups.keys`` reads ``BACKUP_MASTER_KEY_FILE`` when it needs the key and
creates it only while no wrapped tenant key exists, because a new master key cannot open
the data keys an old one wrapped (a lost file must be an error, never a fresh key).
"""

from __future__ import annotations

import base64
import os
import secrets
import tempfile
from pathlib import Path


def new_key() -> str:
    """A Fernet key or a 32-byte master key: urlsafe base64 of 32 random bytes."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _generate(kind: str) -> str:
    if kind == "secret_key":
        return secrets.token_urlsafe(50)
    return new_key()


def create_key_file(path: Path, value: str) -> bool:
    """Write ``value`` to a new file (mode 0600); False if the file already exists."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return True


def replace_key_file(path: Path, lines: list[str]) -> None:
    """Atomically replace a key file (mode 0600) with ``lines``, newest key first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write("".join(f"{line}\n" for line in lines))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_key_lines(path: Path) -> list[str]:
    """The keys in a key file, one per non-empty line (comments with ``#``); [] if absent."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def local_secret(var_dir: Path, kind: str) -> str:
    """Return the key named ``kind`` from ``var/keys/``, creating it (mode 0600) on first use."""
    path = Path(var_dir) / "keys" / kind
    if path.exists():
        return path.read_text().strip()
    create_key_file(path, _generate(kind))
    return path.read_text().strip()
