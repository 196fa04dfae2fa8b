"""BPAF: the on-disk layout of a backup artifact (version 2 written, versions 1 and 2 read).

Everything here is byte layout and pure functions; docs/artifact-format.md is the
normative description and must change together with this module.

    artifact = header || chunk_0 || chunk_1 || ... || chunk_n      (chunk_n is final)
    chunk_i  = flags (1 byte) || length (u32 BE) || AES-256-GCM(ciphertext || tag)
    nonce_i  = nonce_prefix (4 bytes from the header) || i (u64 BE)
    aad_i    = header bytes || flags byte
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass
from enum import IntEnum

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import ArtifactCorrupt, UnsupportedArtifact

logger = logging.getLogger(__name__)

MAGIC = b"BPAF"
# Version 2 gives header byte 7 a meaning (the payload type); in version 1 it is a reserved
# flags byte that must be 0. Everything else is identical, so readers read both.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
CIPHER_AES_256_GCM = 1

KEY_BYTES = 32
SALT_BYTES = 16
NONCE_PREFIX_BYTES = 4
KEY_CHECK_BYTES = 16
TAG_BYTES = 16
MAX_KEY_ID_BYTES = 255

DEFAULT_CHUNK_SIZE = 1 << 20  # 1 MiB of compressed plaintext per chunk
MIN_CHUNK_SIZE = 1
MAX_CHUNK_SIZE = 64 << 20  # readers refuse larger chunks, so memory stays bounded

HKDF_INFO = b"BPAF v1 artifact key"

FLAG_FINAL = 0x01

BytesLike = bytes | bytearray | memoryview

# magic, version, cipher, compression, payload (v1: flags), chunk_size, salt, nonce_prefix, key_check, key_id_len
_FIXED = struct.Struct(">4sBBBBI16s4s16sH")
HEADER_FIXED_BYTES = _FIXED.size  # 50
FRAME = struct.Struct(">BI")  # chunk flags, ciphertext length (tag included)
FRAME_BYTES = FRAME.size  # 5
_COUNTER = struct.Struct(">Q")


class Compression(IntEnum):
    """Compression id stored in the header; the names are what callers pass as strings."""

    NONE = 0
    GZIP = 1
    ZSTD = 2

    @classmethod
    def parse(cls, value: Compression | str | int) -> Compression:
        """Accept ``Compression.ZSTD``, ``"zstd"`` or ``2``."""
        if isinstance(value, Compression):
            return value
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                raise ValueError(f"unknown compression {value!r}; use none, gzip or zstd")
        return cls(value)

    @property
    def label(self) -> str:
        """Lower-case name (``"zstd"``), as used in settings and the CLI."""
        return self.name.lower()

    @property
    def suffix(self) -> str:
        """File suffix of the decrypted (still compressed) stream."""
        return {Compression.NONE: "", Compression.GZIP: ".gz", Compression.ZSTD: ".zst"}[self]


class Payload(IntEnum):
    """What the decrypted, decompressed stream is (header byte 7 since version 2).

    Informational: a reader that does not know an id still decrypts the artifact, so new
    payload types need no new format version. Version 1 artifacts read as UNSPECIFIED (their
    type is in the platform's manifest and the file name suffix).
    """

    UNSPECIFIED = 0
    PG_DUMP_CUSTOM = 1  # pg_dump -Fc archive: pg_restore
    SQL = 2  # SQL text (mysqldump, pg_dump -Fp): mysql / psql
    TAR = 3  # a tar of files, names relative to /
    BUNDLE = 4  # bp-bundle/1: a tar of one member per source plus manifest.json
    JSON = 5  # a JSON document (the platform configuration export)

    @property
    def label(self) -> str:
        return PAYLOAD_LABELS[self]

    @classmethod
    def parse(cls, value: Payload | str | int | None) -> Payload:
        """Accept ``Payload.SQL``, ``"sql"`` or ``2`` (``None``: unspecified)."""
        if value is None:
            return cls.UNSPECIFIED
        if isinstance(value, Payload):
            return value
        if isinstance(value, str):
            for member, label in PAYLOAD_LABELS.items():
                if value == label:
                    return member
            raise ValueError(f"unknown payload {value!r}; use one of {', '.join(PAYLOAD_LABELS.values())}")
        return cls(value)


PAYLOAD_LABELS = {
    Payload.UNSPECIFIED: "unspecified",
    Payload.PG_DUMP_CUSTOM: "pg_dump-custom",
    Payload.SQL: "sql",
    Payload.TAR: "tar",
    Payload.BUNDLE: "bp-bundle",
    Payload.JSON: "json",
}


def payload_label(payload_id: int) -> str:
    """Label of a payload id, ``"unknown (N)"`` for ids this code does not know."""
    try:
        return Payload(payload_id).label
    except ValueError:
        return f"unknown ({payload_id})"


@dataclass(frozen=True)
class ArtifactHeader:
    """The header of an artifact; ``raw`` is its exact bytes, bound into every chunk's AAD."""

    compression: Compression
    chunk_size: int
    salt: bytes
    nonce_prefix: bytes
    key_check: bytes
    key_id: str
    version: int = FORMAT_VERSION
    cipher: int = CIPHER_AES_256_GCM
    # Raw id (header byte 7 in version 2), kept as read so an unknown id survives re-encoding.
    payload: int = Payload.UNSPECIFIED

    @property
    def payload_label(self) -> str:
        return payload_label(self.payload)

    def encode(self) -> bytes:
        """Serialise the header (the same bytes every time for the same fields)."""
        key_id = self.key_id.encode("utf-8")
        return (
            _FIXED.pack(
                MAGIC,
                self.version,
                self.cipher,
                int(self.compression),
                int(self.payload) if self.version >= 2 else 0,
                self.chunk_size,
                self.salt,
                self.nonce_prefix,
                self.key_check,
                len(key_id),
            )
            + key_id
        )

    @property
    def raw(self) -> bytes:
        """The encoded header, as stored at the start of the artifact."""
        return self.encode()


def derive_artifact_key(data_key: bytes, salt: bytes) -> tuple[bytes, bytes]:
    """Return ``(chunk_key, key_check)`` = HKDF-SHA256(data_key, salt, HKDF_INFO) split 32/16.

    A fresh salt per artifact gives every artifact its own AES key, so the 4-byte
    random nonce prefix never has to be unique across artifacts of one tenant.
    The key check lets a reader tell "wrong key" apart from "damaged artifact".
    """
    if len(data_key) != KEY_BYTES:
        raise ValueError(f"data key must be {KEY_BYTES} bytes, got {len(data_key)}")
    okm = HKDF(
        algorithm=hashes.SHA256(),
        length=KEY_BYTES + KEY_CHECK_BYTES,
        salt=salt,
        info=HKDF_INFO,
    ).derive(data_key)
    return okm[:KEY_BYTES], okm[KEY_BYTES:]


def new_header(
    data_key: bytes,
    *,
    key_id: str,
    compression: Compression,
    chunk_size: int,
    payload: Payload = Payload.UNSPECIFIED,
) -> tuple[ArtifactHeader, bytes]:
    """Build a header with fresh random salt and nonce prefix; return it and the chunk key."""
    validate_chunk_size(chunk_size)
    if len(key_id.encode("utf-8")) > MAX_KEY_ID_BYTES:
        raise ValueError(f"key id longer than {MAX_KEY_ID_BYTES} bytes")
    salt = os.urandom(SALT_BYTES)
    chunk_key, key_check = derive_artifact_key(data_key, salt)
    header = ArtifactHeader(
        compression=compression,
        chunk_size=chunk_size,
        salt=salt,
        nonce_prefix=os.urandom(NONCE_PREFIX_BYTES),
        key_check=key_check,
        key_id=key_id,
        payload=int(payload),
    )
    return header, chunk_key


def validate_chunk_size(chunk_size: int) -> None:
    """Raise ValueError unless MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE."""
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk size must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE} bytes, got {chunk_size}")


def parse_header(fixed: bytes, key_id_bytes: bytes) -> ArtifactHeader:
    """Decode a header from its fixed part (HEADER_FIXED_BYTES) and the key id bytes.

    Only structure is checked here; authenticity comes from chunk 0's tag, which
    covers these exact bytes.
    """
    (
        magic,
        version,
        cipher,
        compression,
        payload,
        chunk_size,
        salt,
        nonce_prefix,
        key_check,
        _key_id_len,
    ) = _FIXED.unpack(fixed)
    if magic != MAGIC:
        raise UnsupportedArtifact("not a BPAF backup artifact (bad magic bytes)")
    if version not in READABLE_VERSIONS:
        raise UnsupportedArtifact(
            f"artifact format version {version} is not supported (this tool reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))})"
        )
    if cipher != CIPHER_AES_256_GCM:
        raise UnsupportedArtifact(f"unknown cipher id {cipher} in artifact header")
    try:
        comp = Compression(compression)
    except ValueError:
        raise UnsupportedArtifact(f"unknown compression id {compression} in artifact header")
    if version == 1 and payload != 0:
        raise ArtifactCorrupt(f"artifact header has unknown flags 0x{payload:02x}")
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise ArtifactCorrupt(f"artifact header declares an invalid chunk size {chunk_size}")
    try:
        key_id = key_id_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise ArtifactCorrupt("artifact header key id is not valid UTF-8")
    return ArtifactHeader(
        compression=comp,
        chunk_size=chunk_size,
        salt=salt,
        nonce_prefix=nonce_prefix,
        key_check=key_check,
        key_id=key_id,
        version=version,
        cipher=cipher,
        payload=payload,
    )


def key_id_length(fixed: bytes) -> int:
    """Length of the key id that follows the fixed part of a header."""
    return int(_FIXED.unpack(fixed)[-1])


def chunk_nonce(nonce_prefix: bytes, counter: int) -> bytes:
    """12-byte GCM nonce of chunk ``counter``: prefix || u64 BE counter."""
    return nonce_prefix + _COUNTER.pack(counter)


def chunk_aad(header_raw: bytes, flags: int) -> bytes:
    """Associated data of a chunk: the header bytes, then the chunk's flags byte."""
    return header_raw + bytes((flags,))
