"""Exceptions raised by the backup pipeline.

One module of them, so callers (the Django services, the offline CLI) can map
each to a user-facing message without importing the modules that raise them.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base class of every error this package raises on purpose."""


class PipelineCancelled(PipelineError):
    """The cancel check returned True; the sink holds partial data the caller must delete."""


class ArtifactError(PipelineError):
    """An artifact could not be read back: wrong key, damaged, or not an artifact at all."""


class ArtifactCorrupt(ArtifactError):
    """The artifact failed authentication or framing checks (tampered, truncated, reordered)."""


class UnsupportedArtifact(ArtifactCorrupt):
    """Not a BPAF artifact, or a format version / algorithm this code does not know."""


class WrongKey(ArtifactError):
    """The key given does not match the key the artifact was encrypted with."""


class KeyFileError(PipelineError):
    """An exported key file is malformed (bad JSON, wrong length, fingerprint mismatch)."""


class KeyUnwrapError(PipelineError):
    """A wrapped data key failed authentication: wrong master key or a damaged wrapped key."""
