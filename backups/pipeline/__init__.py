"""Streaming backup pipeline core: compress -> encrypt (AES-256-GCM chunks) -> sha256 -> sink.

Pure Python, no Django: the offline decrypt command (``decrypt_cli``) must work
with nothing but this package and an exported key file. The artifact format is
described in docs/artifact-format.md.
"""

from __future__ import annotations

from .errors import (
    ArtifactCorrupt,
    ArtifactError,
    KeyFileError,
    KeyUnwrapError,
    PipelineCancelled,
    PipelineError,
    UnsupportedArtifact,
    WrongKey,
)
from .format import DEFAULT_CHUNK_SIZE, ArtifactHeader, Compression, Payload
from .keys import (
    KeyDocument,
    RingKey,
    export_key_file,
    export_key_ring,
    generate_data_key,
    key_fingerprint,
    load_key_document,
    load_key_file,
    master_key_fingerprint,
    parse_key_document,
    parse_key_file,
    unwrap_key,
    wrap_key,
)
from .stream import (
    ArtifactReader,
    PipelineResult,
    VerifyResult,
    backup_stream,
    decrypt_stream,
    open_artifact,
    restore_stream,
    verify_stream,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "ArtifactCorrupt",
    "ArtifactError",
    "ArtifactHeader",
    "ArtifactReader",
    "Compression",
    "KeyDocument",
    "KeyFileError",
    "KeyUnwrapError",
    "Payload",
    "PipelineCancelled",
    "PipelineError",
    "PipelineResult",
    "RingKey",
    "UnsupportedArtifact",
    "VerifyResult",
    "WrongKey",
    "backup_stream",
    "decrypt_stream",
    "export_key_file",
    "export_key_ring",
    "generate_data_key",
    "key_fingerprint",
    "load_key_document",
    "load_key_file",
    "master_key_fingerprint",
    "open_artifact",
    "parse_key_document",
    "parse_key_file",
    "restore_stream",
    "unwrap_key",
    "verify_stream",
    "wrap_key",
]
