"""Chunk encryption and decryption for BPAF v1 (AES-256-GCM, counter nonces)."""

from __future__ import annotations

import hmac
import logging

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import ArtifactCorrupt, WrongKey
from .format import (
    FLAG_FINAL,
    FRAME,
    TAG_BYTES,
    ArtifactHeader,
    BytesLike,
    chunk_aad,
    chunk_nonce,
    derive_artifact_key,
)

logger = logging.getLogger(__name__)


class ChunkSealer:
    """Encrypts the chunks of one artifact in order; the counter makes each nonce unique."""

    def __init__(self, header: ArtifactHeader, chunk_key: bytes) -> None:
        self._aead = AESGCM(chunk_key)
        self._prefix = header.nonce_prefix
        self._aad = {flags: chunk_aad(header.raw, flags) for flags in (0, FLAG_FINAL)}
        self._chunk_size = header.chunk_size
        self.counter = 0
        self.finished = False

    def seal(self, plaintext: BytesLike, *, final: bool) -> tuple[bytes, bytes]:
        """Encrypt the next chunk; return ``(frame_prefix, ciphertext_with_tag)``."""
        if self.finished:
            raise RuntimeError("artifact already has its final chunk")
        if len(memoryview(plaintext)) > self._chunk_size:
            raise ValueError("chunk plaintext larger than the header's chunk size")
        flags = FLAG_FINAL if final else 0
        ciphertext = self._aead.encrypt(chunk_nonce(self._prefix, self.counter), plaintext, self._aad[flags])
        self.counter += 1
        self.finished = final
        return FRAME.pack(flags, len(ciphertext)), ciphertext


class ChunkOpener:
    """Authenticates and decrypts the chunks of one artifact, in the order they were written."""

    def __init__(self, header: ArtifactHeader, data_key: bytes) -> None:
        chunk_key, key_check = derive_artifact_key(data_key, header.salt)
        if not hmac.compare_digest(key_check, header.key_check):
            raise WrongKey(
                f"wrong key: this artifact was encrypted with key {header.key_id!r} "
                "and the key given does not match it (or the artifact header is damaged)"
            )
        self._aead = AESGCM(chunk_key)
        self._prefix = header.nonce_prefix
        self._header_raw = header.raw
        self.max_ciphertext = header.chunk_size + TAG_BYTES
        self.counter = 0

    def open(self, flags: int, ciphertext: bytes) -> bytes:
        """Decrypt the next chunk or raise ArtifactCorrupt naming its index."""
        index = self.counter
        try:
            plaintext = self._aead.decrypt(
                chunk_nonce(self._prefix, index), ciphertext, chunk_aad(self._header_raw, flags)
            )
        except InvalidTag:
            raise ArtifactCorrupt(
                f"chunk {index} failed authentication: the artifact was modified, reordered or truncated"
            )
        self.counter += 1
        return plaintext
