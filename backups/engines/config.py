"""Platform configuration: the tenant's configuration as one JSON document.

The service layer builds the dict (never with secrets in it); this module only
serialises it (sorted keys, UTF-8, so the same configuration gives the same
bytes) and parses it back.
"""

from __future__ import annotations

import io
import json
from typing import Any

from .base import READ_SIZE, EngineError, SinkBase, StreamBase, as_readable

MAX_CONFIG_BYTES = 64 << 20


class BytesSource(StreamBase):
    """A source over bytes already in memory (small payloads such as a config JSON)."""

    def __init__(self, data: bytes, info: dict[str, Any]) -> None:
        self._buffer = io.BytesIO(data)
        self._size = len(data)
        self.info = info

    def read(self, size: int = READ_SIZE, /) -> bytes:
        return self._buffer.read(size if size is not None and size >= 0 else -1)

    def finish(self) -> dict[str, Any]:
        self._done = True
        return {"bytes": self._size}

    def kill(self) -> None:
        self._done = True
        self._buffer.close()


def config_bytes(data: dict[str, Any]) -> bytes:
    try:
        return json.dumps(data, sort_keys=True, ensure_ascii=False, indent=2, default=str).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise EngineError(f"Configuration is not JSON-serialisable: {exc}", code="invalid_params") from None


def config_source(data: dict[str, Any]) -> BytesSource:
    """A source of ``data`` as JSON bytes; ``info``: engine "config", format "json"."""
    payload = config_bytes(data)
    return BytesSource(payload, {"engine": "config", "tool": "json", "format": "json", "bytes": len(payload)})


def _parse(payload: bytes) -> dict[str, Any]:
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise EngineError(f"Configuration backup is not valid JSON: {exc}", code="restore_failed") from None
    if not isinstance(data, dict):
        raise EngineError("Configuration backup is not a JSON object", code="restore_failed")
    return data


def config_restore(stream: Any) -> dict[str, Any]:
    """Parse a configuration backup (a readable, an iterable of bytes, or bytes) back to a dict."""
    reader = as_readable(stream)
    buffer = bytearray()
    while block := reader.read(READ_SIZE):
        buffer += block
        if len(buffer) > MAX_CONFIG_BYTES:
            raise EngineError("Configuration backup is too large", code="restore_failed")
    return _parse(bytes(buffer))


class ConfigRestoreSink(SinkBase):
    """Collects the JSON; ``finish()`` returns ``{"engine": "config", "config": {...}}``."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def write(self, data: bytes, /) -> int:
        self._buffer += data
        if len(self._buffer) > MAX_CONFIG_BYTES:
            raise EngineError("Configuration backup is too large", code="restore_failed")
        return len(data)

    def finish(self) -> dict[str, Any]:
        self._done = True
        return {"engine": "config", "config": _parse(bytes(self._buffer))}

    def abort(self) -> None:
        self._done = True
        self._buffer.clear()


def config_restore_sink() -> ConfigRestoreSink:
    return ConfigRestoreSink()
