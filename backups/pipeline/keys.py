"""Tenant data keys: generation, wrapping by the platform master key, and key files.

DESIGN.md, "The backup pipeline": one data key per tenant, wrapped by the
platform master key; a tenant admin can export it for offline restores.

Wrapped key layout (61 bytes)::

    0x01 (wrap version) || nonce (12 random bytes) || AES-256-GCM(master, data_key) (32 + 16 tag)

with associated data ``b"BPAF key wrap v1" || context``. ``context`` is optional
(the caller may bind e.g. the tenant id so a wrapped key copied onto another
tenant's row fails to unwrap).

The exported key file is UTF-8 JSON, documented in docs/artifact-format.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
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
        raise KeyUnwrapError(
            f"wrapped key is malformed (expected {WRAPPED_KEY_BYTES} bytes, version {WRAP_VERSION})"
        )
    nonce = wrapped[1 : 1 + _WRAP_NONCE_BYTES]
    try:
        return AESGCM(bytes(master)).decrypt(
            nonce, bytes(wrapped[1 + _WRAP_NONCE_BYTES :]), _WRAP_AAD + context
        )
    except InvalidTag:
        raise KeyUnwrapError(
            "wrapped key failed authentication: wrong master key, wrong context, or damaged key"
        )


def key_fingerprint(data_key: bytes) -> str:
    """Short public fingerprint of a data key (32 hex chars); safe to show and log."""
    _check_key("data key", data_key)
    return hashlib.sha256(b"BPAF key fingerprint v1" + bytes(data_key)).hexdigest()[:32]


def export_key_file(data_key: bytes, key_id: str) -> bytes:
    """Return the JSON key file a tenant admin downloads for offline restores."""
    _check_key("data key", data_key)
    if not key_id or len(key_id.encode("utf-8")) > MAX_KEY_ID_BYTES:
        raise ValueError(f"key id must be 1..{MAX_KEY_ID_BYTES} bytes of UTF-8")
    document = {
        "type": KEY_FILE_TYPE,
        "version": KEY_FILE_VERSION,
        "key_id": key_id,
        "algorithm": "AES-256-GCM",
        "key": base64.b64encode(bytes(data_key)).decode("ascii"),
        "fingerprint": key_fingerprint(data_key),
        "comment": (
            "Secret. Decrypts this tenant's backup artifacts without the platform: "
            "python -m backups.pipeline.decrypt_cli --key-file THIS_FILE INPUT OUTPUT "
            "(format: docs/artifact-format.md)."
        ),
    }
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def parse_key_file(content: bytes | str) -> tuple[str, bytes]:
    """Parse key file content; return ``(key_id, data_key)`` or raise KeyFileError."""
    try:
        document = json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"key file is not valid JSON: {exc}")
    if not isinstance(document, dict) or document.get("type") != KEY_FILE_TYPE:
        raise KeyFileError(f'not a backup key file (expected "type": "{KEY_FILE_TYPE}")')
    if document.get("version") != KEY_FILE_VERSION:
        raise KeyFileError(f"unsupported key file version {document.get('version')!r}")
    key_id = document.get("key_id")
    if not isinstance(key_id, str) or not key_id:
        raise KeyFileError("key file has no key_id")
    try:
        key = base64.b64decode(str(document.get("key", "")), validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError('key file "key" is not valid base64')
    if len(key) != KEY_BYTES:
        raise KeyFileError(f'key file "key" must decode to {KEY_BYTES} bytes, got {len(key)}')
    fingerprint = document.get("fingerprint")
    if fingerprint is not None and fingerprint != key_fingerprint(key):
        raise KeyFileError("key file fingerprint does not match its key (the key was altered)")
    return key_id, key


def load_key_file(path: str | os.PathLike[str]) -> tuple[str, bytes]:
    """Read an exported key file; return ``(key_id, data_key)`` or raise KeyFileError."""
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {os.fspath(path)!r}: {exc.strerror or exc}")
    return parse_key_file(content)
