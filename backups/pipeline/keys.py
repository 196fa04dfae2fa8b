"""Tenant data keys: generation, wrapping by the platform master key, and key files.

DESIGN.md, "The backup pipeline": one data key per tenant, wrapped by the
platform master key; a tenant admin can export it for offline restores.

Wrapped key layout (61 bytes)::

    0x01 (wrap version) || nonce (12 random bytes) || AES-256-GCM(master, data_key) (32 + 16 tag)

with associated data ``b"BPAF key wrap v1" || context``. ``context`` is optional
(the caller may bind e.g. the tenant id so a wrapped key copied onto another
tenant's row fails to unwrap).

The exported key files are UTF-8 JSON, documented in docs/artifact-format.md: a single
key (``bpaf-data-key``, what earlier versions exported) or a tenant's whole key ring
(``bpaf-key-ring``, what ``exportkey`` writes now).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import KeyFileError, KeyUnwrapError
from .format import KEY_BYTES, MAX_KEY_ID_BYTES

logger = logging.getLogger(__name__)

WRAP_VERSION = 1
_WRAP_AAD = b"BPAF key wrap v1"
_WRAP_NONCE_BYTES = 12
WRAPPED_KEY_BYTES = 1 + _WRAP_NONCE_BYTES + KEY_BYTES + 16

KEY_FILE_TYPE = "bpaf-data-key"
KEY_FILE_VERSION = 1
KEY_RING_TYPE = "bpaf-key-ring"
KEY_RING_VERSION = 1
ALGORITHM = "AES-256-GCM"


@dataclass(frozen=True)
class RingKey:
    """One data key of a key ring file (``key`` is the raw 32 bytes)."""

    key_id: str
    key: bytes
    current: bool = False
    created_at: str | None = None


@dataclass(frozen=True)
class KeyDocument:
    """A parsed key file: one key (``tenant`` is None) or a tenant's key ring."""

    keys: tuple[RingKey, ...]
    tenant: str | None = None

    @property
    def current(self) -> RingKey | None:
        return next((k for k in self.keys if k.current), None)

    def find(self, key_id: str) -> RingKey | None:
        return next((k for k in self.keys if k.key_id == key_id), None)


def generate_data_key() -> bytes:
    """Return a fresh random 32-byte data key (AES-256)."""
    return os.urandom(KEY_BYTES)


def _check_key(name: str, key: bytes) -> None:
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
        raise ValueError(f"{name} must be {KEY_BYTES} bytes")


def wrap_key(master: bytes, data_key: bytes, *, context: bytes = b"") -> bytes:
    """Encrypt ``data_key`` under the platform ``master`` key (AES-256-GCM, random nonce)."""
    _check_key("master key", master)
    _check_key("data key", data_key)
    nonce = os.urandom(_WRAP_NONCE_BYTES)
    sealed = AESGCM(bytes(master)).encrypt(nonce, bytes(data_key), _WRAP_AAD + context)
    return bytes((WRAP_VERSION,)) + nonce + sealed


def unwrap_key(master: bytes, wrapped: bytes, *, context: bytes = b"") -> bytes:
    """Recover a data key wrapped by :func:`wrap_key`; raise KeyUnwrapError if it does not verify."""
    _check_key("master key", master)
    if len(wrapped) != WRAPPED_KEY_BYTES or wrapped[0] != WRAP_VERSION:
        raise KeyUnwrapError(f"wrapped key is malformed (expected {WRAPPED_KEY_BYTES} bytes, version {WRAP_VERSION})")
    nonce = wrapped[1 : 1 + _WRAP_NONCE_BYTES]
    try:
        return AESGCM(bytes(master)).decrypt(nonce, bytes(wrapped[1 + _WRAP_NONCE_BYTES :]), _WRAP_AAD + context)
    except InvalidTag:
        raise KeyUnwrapError("wrapped key failed authentication: wrong master key, wrong context, or damaged key")


def key_fingerprint(data_key: bytes) -> str:
    """Short public fingerprint of a data key (32 hex chars); safe to show and log."""
    _check_key("data key", data_key)
    return hashlib.sha256(b"BPAF key fingerprint v1" + bytes(data_key)).hexdigest()[:32]


def master_key_fingerprint(master: bytes) -> str:
    """Public fingerprint of a master key (32 hex chars): names it in messages without revealing it."""
    _check_key("master key", master)
    return hashlib.sha256(b"BPAF master key fingerprint v1" + bytes(master)).hexdigest()[:32]


def export_key_file(data_key: bytes, key_id: str) -> bytes:
    """Return the JSON key file a tenant admin downloads for offline restores."""
    _check_key("data key", data_key)
    if not key_id or len(key_id.encode("utf-8")) > MAX_KEY_ID_BYTES:
        raise ValueError(f"key id must be 1..{MAX_KEY_ID_BYTES} bytes of UTF-8")
    document = {
        "type": KEY_FILE_TYPE,
        "version": KEY_FILE_VERSION,
        "key_id": key_id,
        "algorithm": ALGORITHM,
        "key": base64.b64encode(bytes(data_key)).decode("ascii"),
        "fingerprint": key_fingerprint(data_key),
        "comment": (
            "Secret. Decrypts this tenant's backup artifacts without the platform: "
            "python -m backups.pipeline.decrypt_cli --key-file THIS_FILE INPUT OUTPUT "
            "(format: docs/artifact-format.md)."
        ),
    }
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def export_key_ring(keys: list[RingKey], *, tenant: str, exported_at: str) -> bytes:
    """Return the JSON key ring file of a tenant: every data key, the current one marked."""
    if sum(k.current for k in keys) > 1:
        raise ValueError("a key ring has at most one current key")
    entries = []
    for ring_key in keys:
        _check_key("data key", ring_key.key)
        if not ring_key.key_id or len(ring_key.key_id.encode("utf-8")) > MAX_KEY_ID_BYTES:
            raise ValueError(f"key id must be 1..{MAX_KEY_ID_BYTES} bytes of UTF-8")
        entries.append(
            {
                "key_id": ring_key.key_id,
                "algorithm": ALGORITHM,
                "key": base64.b64encode(bytes(ring_key.key)).decode("ascii"),
                "fingerprint": key_fingerprint(ring_key.key),
                "created_at": ring_key.created_at,
                "current": ring_key.current,
            }
        )
    document = {
        "type": KEY_RING_TYPE,
        "version": KEY_RING_VERSION,
        "tenant": tenant,
        "exported_at": exported_at,
        "current_key_id": next((k.key_id for k in keys if k.current), None),
        "keys": entries,
        "comment": (
            "Secret. Decrypts every backup artifact of this tenant without the platform: "
            "python3 decrypt_cli.py --key-file THIS_FILE --check ARTIFACT, then "
            "python3 decrypt_cli.py --key-file THIS_FILE --decompress ARTIFACT OUTPUT "
            "(format: docs/artifact-format.md). Re-import with manage.py importkey THIS_FILE."
        ),
    }
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def _parse_entry(entry: object, where: str) -> tuple[str, bytes]:
    if not isinstance(entry, dict):
        raise KeyFileError(f"{where} is not an object")
    key_id = entry.get("key_id")
    if not isinstance(key_id, str) or not key_id:
        raise KeyFileError(f"{where} has no key_id")
    try:
        key = base64.b64decode(str(entry.get("key", "")), validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f'{where} "key" is not valid base64')
    if len(key) != KEY_BYTES:
        raise KeyFileError(f'{where} "key" must decode to {KEY_BYTES} bytes, got {len(key)}')
    fingerprint = entry.get("fingerprint")
    if fingerprint is not None and fingerprint != key_fingerprint(key):
        raise KeyFileError(f"{where}: fingerprint does not match its key (the key was altered)")
    return key_id, key


def parse_key_document(content: bytes | str) -> KeyDocument:
    """Parse a single-key file or a key ring file, or raise KeyFileError."""
    try:
        document = json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"key file is not valid JSON: {exc}")
    kind = document.get("type") if isinstance(document, dict) else None
    if kind == KEY_FILE_TYPE:
        if document.get("version") != KEY_FILE_VERSION:
            raise KeyFileError(f"unsupported key file version {document.get('version')!r}")
        key_id, key = _parse_entry(document, "key file")
        return KeyDocument(keys=(RingKey(key_id=key_id, key=key, current=True),))
    if kind == KEY_RING_TYPE:
        if document.get("version") != KEY_RING_VERSION:
            raise KeyFileError(f"unsupported key ring version {document.get('version')!r}")
        entries = document.get("keys")
        if not isinstance(entries, list) or not entries:
            raise KeyFileError("key ring has no keys")
        keys = []
        for index, entry in enumerate(entries):
            key_id, key = _parse_entry(entry, f"key ring entry {index}")
            keys.append(
                RingKey(
                    key_id=key_id,
                    key=key,
                    current=entry.get("current") is True,
                    created_at=entry.get("created_at") if isinstance(entry.get("created_at"), str) else None,
                )
            )
        if len({k.key_id for k in keys}) != len(keys):
            raise KeyFileError("key ring lists a key_id twice")
        if sum(k.current for k in keys) > 1:
            raise KeyFileError("key ring marks more than one key current")
        tenant = document.get("tenant")
        return KeyDocument(keys=tuple(keys), tenant=tenant if isinstance(tenant, str) and tenant else None)
    raise KeyFileError(f'not a backup key file (expected "type": "{KEY_FILE_TYPE}" or "{KEY_RING_TYPE}")')


def parse_key_file(content: bytes | str) -> tuple[str, bytes]:
    """Parse a single-key file; return ``(key_id, data_key)`` or raise KeyFileError."""
    document = parse_key_document(content)
    if len(document.keys) != 1 or document.tenant is not None:
        raise KeyFileError("this is a key ring file: more than one key (use parse_key_document)")
    return document.keys[0].key_id, document.keys[0].key


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {os.fspath(path)!r}: {exc.strerror or exc}")


def load_key_file(path: str | os.PathLike[str]) -> tuple[str, bytes]:
    """Read an exported single-key file; return ``(key_id, data_key)`` or raise KeyFileError."""
    return parse_key_file(read_key_file(path))


def load_key_document(path: str | os.PathLike[str]) -> KeyDocument:
    """Read a single-key or key ring file, or raise KeyFileError."""
    return parse_key_document(read_key_file(path))
