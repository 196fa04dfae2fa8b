#!/usr/bin/env python3
"""Offline decryptor of backup artifacts (BPAF versions 1 and 2): one standalone file.

Copy this file anywhere; it needs Python 3.9+ and the ``cryptography`` package, plus
``zstandard`` for zstd artifacts (``pip install cryptography zstandard``). It imports
nothing else from the platform, so it restores backups on a machine that has never seen
the platform, with the tenant's exported key file (docs/artifact-format.md).

    python3 decrypt_cli.py --key-file KEYS.json --check ARTIFACT
    python3 decrypt_cli.py --key-file KEYS.json --decompress ARTIFACT OUTPUT
    python3 decrypt_cli.py --key-file KEYS.json --unpack FOLDER ARTIFACT   (application bundles)

``--check`` reads and authenticates the whole artifact (and decompresses it) and writes
nothing: run it before a restore, so a damaged artifact never reaches ``pg_restore``.
Without ``--check``, ARTIFACT and OUTPUT may be ``-`` (stdin / stdout). OUTPUT is the
*compressed* stream unless ``--decompress`` is given. A file OUTPUT is written next to its
final name and renamed only after the last chunk authenticated; on stdout, bytes already
written came from authenticated chunks but the stream is complete only if the exit status
is 0 (so pipe into a restore that can roll back: see the README).

``--unpack FOLDER`` (application bundles, payload ``bp-bundle``) writes one file per
member plus ``manifest.json`` into a new FOLDER, members stored in parts joined, each
checked against its SHA-256 and the manifest; FOLDER appears only when all is well.

``--key-file`` may be given several times, and each file may be one key or a tenant's key
ring: the key is chosen by the ``key_id`` in the artifact's header and must match it.

Exit status: 0 ok; 1 the artifact is damaged, tampered, truncated, reordered, or no key
given matches it; 2 usage, key file or I/O error. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import os
import shutil
import struct
import sys
import tarfile
import tempfile
import zlib

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

EXIT_OK = 0
EXIT_ARTIFACT = 1
EXIT_USAGE = 2

MAGIC = b"BPAF"
READABLE_VERSIONS = (1, 2)
CIPHER_AES_256_GCM = 1
COMPRESSIONS = {0: "none", 1: "gzip", 2: "zstd"}
PAYLOADS = {0: "unspecified", 1: "pg_dump-custom", 2: "sql", 3: "tar", 4: "bp-bundle", 5: "json"}
RESTORE_HINTS = {
    "pg_dump-custom": "pg_restore --single-transaction --no-owner -d DATABASE",
    "sql": "mysql DATABASE (or psql -1 -v ON_ERROR_STOP=1 DATABASE for PostgreSQL SQL)",
    "tar": "tar -x -C /restore/into",
    "bp-bundle": "decrypt_cli.py --unpack FOLDER, or tar -x and cat NAME.* > NAME for a member "
    "stored in parts (one member per source plus manifest.json; see docs/artifact-format.md)",
    "json": "a JSON document",
}
FIXED = struct.Struct(">4sBBBBI16s4s16sH")  # 50 bytes, then key_id
FRAME = struct.Struct(">BI")
COUNTER = struct.Struct(">Q")
FLAG_FINAL = 0x01
TAG_BYTES = 16
MAX_CHUNK_SIZE = 64 << 20
HKDF_INFO = b"BPAF v1 artifact key"
FINGERPRINT_PREFIX = b"BPAF key fingerprint v1"
OUTPUT_PIECE = 1 << 20
READ_SIZE = 1 << 20


class DecryptError(Exception):
    """A failure reported as one line and an exit status."""

    status = EXIT_USAGE


class ArtifactDamaged(DecryptError):
    status = EXIT_ARTIFACT


class KeyMismatch(DecryptError):
    status = EXIT_ARTIFACT


class ZstandardMissing(DecryptError):
    """zstd artifacts need the ``zstandard`` package to be decompressed here."""


# --------------------------------------------------------------------------- key files


def fingerprint(key: bytes) -> str:
    """First 32 hex characters of SHA-256("BPAF key fingerprint v1" || raw key bytes)."""
    return hashlib.sha256(FINGERPRINT_PREFIX + key).hexdigest()[:32]


def _key_entry(entry: object, where: str) -> tuple[str, bytes]:
    if not isinstance(entry, dict):
        raise DecryptError(f"{where} is not a JSON object")
    key_id = entry.get("key_id")
    if not isinstance(key_id, str) or not key_id:
        raise DecryptError(f"{where} has no key_id")
    try:
        key = base64.b64decode(str(entry.get("key", "")), validate=True)
    except (binascii.Error, ValueError):
        raise DecryptError(f'{where}: "key" is not valid base64') from None
    if len(key) != 32:
        raise DecryptError(f'{where}: "key" must decode to 32 bytes, got {len(key)}')
    if entry.get("fingerprint") is not None and entry["fingerprint"] != fingerprint(key):
        raise DecryptError(f"{where}: fingerprint does not match its key (the key was altered)")
    return key_id, key


def load_keys(paths: list[str]) -> dict[str, bytes]:
    """``{key_id: key}`` of every key in the files (single keys or key rings)."""
    keys: dict[str, bytes] = {}
    for path in paths:
        try:
            with open(path, "rb") as handle:
                document = json.loads(handle.read())
        except OSError as exc:
            raise DecryptError(f"cannot read key file {path!r}: {exc.strerror or exc}") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise DecryptError(f"key file {path!r} is not valid JSON: {exc}") from None
        kind = document.get("type") if isinstance(document, dict) else None
        if kind == "bpaf-data-key" and document.get("version") == 1:
            entries = [(_key_entry(document, f"key file {path!r}"))]
        elif kind == "bpaf-key-ring" and document.get("version") == 1:
            listed = document.get("keys")
            if not isinstance(listed, list) or not listed:
                raise DecryptError(f"key ring {path!r} has no keys")
            entries = [_key_entry(e, f"key ring {path!r} entry {i}") for i, e in enumerate(listed)]
        else:
            raise DecryptError(f"{path!r} is not a backup key file of a version this tool reads")
        for key_id, key in entries:
            if keys.get(key_id, key) != key:
                raise DecryptError(f"key files disagree about key {key_id!r}")
            keys[key_id] = key
    return keys


# --------------------------------------------------------------------------- the artifact


class Header:
    def __init__(self, raw: bytes, fields: tuple) -> None:
        (
            _magic,
            self.version,
            _cipher,
            compression,
            byte7,
            self.chunk_size,
            self.salt,
            self.nonce_prefix,
            self.key_check,
            _key_id_len,
        ) = fields
        self.raw = raw
        self.compression = COMPRESSIONS[compression]
        self.payload_id = byte7 if self.version >= 2 else 0
        self.payload = PAYLOADS.get(self.payload_id, f"unknown ({self.payload_id})")
        self.key_id = raw[FIXED.size :].decode("utf-8")


class Reader:
    """Reads one artifact: header, key choice, then chunks, each authenticated before use."""

    def __init__(self, source, keys: dict[str, bytes]) -> None:
        self.source = source
        self.sha256 = hashlib.sha256()
        self.stored_bytes = 0
        self.chunks = 0
        self.header = self._read_header()
        self.aead = AESGCM(self._chunk_key(keys))

    def _read(self, size: int) -> bytes:
        parts, got = [], 0
        while got < size:
            part = self.source.read(size - got)
            if not part:
                break
            parts.append(part)
            got += len(part)
        data = b"".join(parts)
        self.sha256.update(data)
        self.stored_bytes += len(data)
        return data

    def _read_header(self) -> Header:
        fixed = self._read(FIXED.size)
        if not fixed:
            raise ArtifactDamaged("the artifact is empty")
        if not MAGIC.startswith(fixed[:4]):
            raise ArtifactDamaged("not a BPAF backup artifact (bad magic bytes)")
        if len(fixed) < FIXED.size:
            raise ArtifactDamaged("the artifact is truncated inside its header")
        fields = FIXED.unpack(fixed)
        version, cipher, compression, byte7, chunk_size = fields[1:6]
        if version not in READABLE_VERSIONS:
            raise ArtifactDamaged(f"artifact format version {version} is not supported by this tool")
        if cipher != CIPHER_AES_256_GCM:
            raise ArtifactDamaged(f"unknown cipher id {cipher} in the artifact header")
        if compression not in COMPRESSIONS:
            raise ArtifactDamaged(f"unknown compression id {compression} in the artifact header")
        if version == 1 and byte7 != 0:
            raise ArtifactDamaged(f"artifact header has unknown flags 0x{byte7:02x}")
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise ArtifactDamaged(f"artifact header declares an invalid chunk size {chunk_size}")
        key_id = self._read(fields[-1])
        if len(key_id) < fields[-1]:
            raise ArtifactDamaged("the artifact is truncated inside its header")
        try:
            return Header(fixed + key_id, fields)
        except UnicodeDecodeError:
            raise ArtifactDamaged("the artifact header's key id is not valid UTF-8") from None

    def _chunk_key(self, keys: dict[str, bytes]) -> bytes:
        # The key id in the header is authenticated (every chunk's associated data holds the
        # header), so choosing by it is safe; a key under the same id that is not the right
        # key is still caught by key_check before any decryption.
        key = keys.get(self.header.key_id)
        if key is None:
            held = ", ".join(repr(k) for k in sorted(keys)) or "none"
            raise KeyMismatch(
                f"wrong key: this artifact was encrypted with key {self.header.key_id!r}, which is not in the "
                f"key file(s) given (they hold {held}); export the tenant's key ring again or "
                "pass the file that holds it"
            )
        okm = HKDF(algorithm=hashes.SHA256(), length=48, salt=self.header.salt, info=HKDF_INFO).derive(key)
        if not hmac.compare_digest(okm[32:], self.header.key_check):
            raise KeyMismatch(
                f"wrong key: the key file's key {self.header.key_id!r} (fingerprint "
                f"{fingerprint(key)}) does not match this artifact, or its header is damaged"
            )
        return okm[:32]

    def compressed(self):
        """Yield the decrypted (still compressed) stream, one authenticated chunk at a time."""
        max_length = self.header.chunk_size + TAG_BYTES
        while True:
            index = self.chunks
            frame = self._read(FRAME.size)
            if not frame:
                raise ArtifactDamaged(
                    f"the artifact is truncated: it ends after {index} chunk(s) without the chunk marked final"
                )
            if len(frame) < FRAME.size:
                raise ArtifactDamaged(f"the artifact is truncated inside the frame of chunk {index}")
            flags, length = FRAME.unpack(frame)
            if flags & ~FLAG_FINAL:
                raise ArtifactDamaged(f"chunk {index} has unknown flags 0x{flags:02x}")
            if not TAG_BYTES <= length <= max_length:
                raise ArtifactDamaged(
                    f"chunk {index} declares {length} bytes, outside 16..{max_length}: the artifact is damaged"
                )
            sealed = self._read(length)
            if len(sealed) < length:
                raise ArtifactDamaged(f"the artifact is truncated inside chunk {index}")
            nonce = self.header.nonce_prefix + COUNTER.pack(index)
            try:
                plaintext = self.aead.decrypt(nonce, sealed, self.header.raw + bytes((flags,)))
            except InvalidTag:
                raise ArtifactDamaged(
                    f"chunk {index} failed authentication: the artifact was modified, reordered or truncated"
                ) from None
            self.chunks += 1
            if flags & FLAG_FINAL:
                if self._read(1):
                    raise ArtifactDamaged("the artifact has unexpected data after its final chunk")
                if plaintext:
                    yield plaintext
                return
            if plaintext:
                yield plaintext

    def plaintext(self):
        """Yield the original bytes (decrypted and decompressed), in bounded pieces."""
        if self.header.compression == "gzip":
            return gunzip(self.compressed())
        if self.header.compression == "zstd":
            return unzstd(self.compressed())
        return self.compressed()


def gunzip(pieces):
    """gzip, including several concatenated members (RFC 1952 allows it; gunzip reads them all)."""
    decoder, started = zlib.decompressobj(31), False
    try:
        for piece in pieces:
            data = piece
            while data:
                started = True
                out = decoder.decompress(data, OUTPUT_PIECE)
                if out:
                    yield out
                if decoder.eof:
                    data, decoder, started = decoder.unused_data, zlib.decompressobj(31), False
                else:
                    data = decoder.unconsumed_tail
        if started:
            tail = decoder.flush()
            if tail:
                yield tail
            if not decoder.eof:
                raise ArtifactDamaged("the gzip stream ends before its trailer")
    except zlib.error as exc:
        raise ArtifactDamaged(f"the gzip stream is invalid: {exc}") from None


class _Pieces:
    """``read(n)`` over an iterator of byte strings, for zstandard's stream reader."""

    def __init__(self, pieces) -> None:
        self.pieces, self.current = iter(pieces), b""

    def read(self, size: int = -1) -> bytes:
        while not self.current:
            self.current = next(self.pieces, None)
            if self.current is None:
                self.current = b""
                return b""
        if size < 0 or size >= len(self.current):
            out, self.current = self.current, b""
        else:
            out, self.current = self.current[:size], self.current[size:]
        return out


def unzstd(pieces):
    """zstd, one or more frames (``zstd -d`` reads concatenated frames too)."""
    try:
        import zstandard
    except ImportError:
        raise ZstandardMissing(
            "this artifact is zstd-compressed: pip install zstandard (or decrypt without --decompress and run zstd -d)"
        ) from None
    reader = zstandard.ZstdDecompressor().stream_reader(
        _Pieces(pieces), read_size=OUTPUT_PIECE, read_across_frames=True
    )
    try:
        while out := reader.read(OUTPUT_PIECE):
            yield out
    except zstandard.ZstdError as exc:
        raise ArtifactDamaged(f"the zstd stream is invalid: {exc}") from None


# --------------------------------------------------------------------------- command


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="decrypt_cli.py", description="Check or decrypt a backup artifact (BPAF) with exported key files."
    )
    parser.add_argument(
        "--key-file",
        action="append",
        required=True,
        metavar="FILE",
        help="exported key file or key ring (JSON); repeat for several",
    )
    parser.add_argument(
        "--check", action="store_true", help="read, authenticate and decompress the whole artifact; write nothing"
    )
    parser.add_argument(
        "--decompress", action="store_true", help="write the original bytes instead of the compressed stream"
    )
    parser.add_argument(
        "--unpack",
        metavar="FOLDER",
        help="application bundles: write each member, whole and checked, into a new FOLDER",
    )
    parser.add_argument("--force", action="store_true", help="overwrite OUTPUT if it exists")
    parser.add_argument("--quiet", "-q", action="store_true", help="no summary line on success")
    parser.add_argument("input", metavar="ARTIFACT", help="artifact file, or - for stdin")
    parser.add_argument("output", metavar="OUTPUT", nargs="?", help="output file, or - for stdout")
    return parser


def _summary(reader: Reader, *, what: str, decompressed: bool) -> str:
    header = reader.header
    hint = RESTORE_HINTS.get(header.payload, "")
    if not decompressed and header.compression != "none":
        hint = f"decompress with {'zstd -d' if header.compression == 'zstd' else 'gunzip'}, then {hint}"
    return (
        f"ok: {what}: {reader.chunks} chunk(s), {reader.stored_bytes} stored bytes, sha256 "
        f"{reader.sha256.hexdigest()}, key {header.key_id!r}, compression {header.compression}, "
        f"payload {header.payload}" + (f" (restore with: {hint})" if hint else "")
    )


def _check(source, keys: dict[str, bytes]) -> str:
    reader = Reader(source, keys)
    decompressed = True
    try:
        for _ in reader.plaintext():
            pass
    except ZstandardMissing:
        decompressed = False  # raised before any chunk was read: authenticate only
        for _ in reader.compressed():
            pass
    what = "the artifact is complete and authentic" + (
        "" if decompressed else " (its zstd stream was not decompressed: zstandard is not installed)"
    )
    return _summary(reader, what=what, decompressed=True)


def _copy(source, target, keys: dict[str, bytes], decompress: bool) -> str:
    reader = Reader(source, keys)
    for piece in reader.plaintext() if decompress else reader.compressed():
        target.write(piece)
    return _summary(reader, what="decrypted", decompressed=decompress)


def _write_file(source, keys: dict[str, bytes], output: str, *, decompress: bool, force: bool) -> str:
    if os.path.exists(output) and not force:
        raise DecryptError(f"{output!r} exists (use --force to overwrite)")
    folder = os.path.dirname(os.path.abspath(output))
    try:
        fd, partial = tempfile.mkstemp(prefix=f".{os.path.basename(output)}.", suffix=".partial", dir=folder)
    except OSError as exc:
        raise DecryptError(f"cannot write next to {output!r}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as target:
            summary = _copy(source, target, keys, decompress)
        os.replace(partial, output)
    except ArtifactDamaged as exc:
        raise ArtifactDamaged(f"{exc} (no output written)") from None
    except OSError as exc:
        raise DecryptError(f"I/O error: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return summary


class _PieceReader:
    """``read(n)`` over an iterator of byte strings, for tarfile's stream mode."""

    def __init__(self, pieces) -> None:
        self.pieces, self.current = iter(pieces), memoryview(b"")

    def read(self, size: int = -1) -> bytes:
        out = bytearray()
        while size < 0 or len(out) < size:
            if not self.current:
                piece = next(self.pieces, None)
                if piece is None:
                    break
                self.current = memoryview(piece)
            take = len(self.current) if size < 0 else min(size - len(out), len(self.current))
            out += self.current[:take]
            self.current = self.current[take:]
        return bytes(out)


def _member_path(folder: str, name: str) -> str:
    parts = name.split("/")
    if not name or name.startswith("/") or "\\" in name or ".." in parts:
        raise ArtifactDamaged(f"the bundle has an unsafe member name {name!r}")
    return os.path.join(folder, *parts)


def _unpack_members(reader: Reader, folder: str) -> dict:
    """Write the bundle's members (parts joined) into ``folder``; return {name: (size, sha256)}."""
    written, current, manifest = {}, None, None
    try:
        with tarfile.open(fileobj=_PieceReader(reader.plaintext()), mode="r|") as tar:
            for entry in tar:
                if not entry.isfile():
                    raise ArtifactDamaged(f"unexpected bundle entry {entry.name!r}")
                records = entry.pax_headers
                name = records.get("BP.member", entry.name)
                if current is None or current[0] != name:
                    if current is not None:
                        raise ArtifactDamaged(f"member {current[0]!r} ends without its last part")
                    if name in written:
                        raise ArtifactDamaged(f"member {name!r} appears twice")
                    path = _member_path(folder, name)
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    current = (name, open(path, "wb"), hashlib.sha256(), [0], [0])  # noqa: SIM115
                _, out, digest, size, parts = current
                part = records.get("BP.part")
                if part is not None and (part != str(parts[0]) or entry.name != f"{name}.{parts[0]:08d}"):
                    raise ArtifactDamaged(f"member {name!r}: part {entry.name!r} is out of order")
                handle = tar.extractfile(entry)
                while block := handle.read(READ_SIZE):
                    out.write(block)
                    digest.update(block)
                    size[0] += len(block)
                parts[0] += 1
                if part is None or "BP.sha256" in records:
                    out.close()
                    expected = records.get("BP.sha256")
                    if expected is not None and expected != digest.hexdigest():
                        raise ArtifactDamaged(f"member {name!r} does not match its recorded SHA-256")
                    written[name] = (size[0], digest.hexdigest())
                    current = None
                    if name == "manifest.json":
                        with open(_member_path(folder, name), "rb") as fh:
                            manifest = json.load(fh)
    except tarfile.TarError as exc:
        raise ArtifactDamaged(f"the bundle is not a valid tar stream: {exc}") from None
    except ValueError as exc:
        raise ArtifactDamaged(f"the bundle's manifest.json is not valid JSON: {exc}") from None
    finally:
        if current is not None:
            current[1].close()
    if current is not None or manifest is None:
        raise ArtifactDamaged("the bundle is incomplete (no manifest.json, or a member without its last part)")
    listed = {m["name"]: (m["size"], m["sha256"]) for m in manifest.get("members", [])}
    if listed != {k: v for k, v in written.items() if k != "manifest.json"}:
        raise ArtifactDamaged("the bundle's members do not match its manifest.json")
    return written


def _unpack(source, keys: dict[str, bytes], folder: str) -> str:
    if os.path.lexists(folder):
        raise DecryptError(f"{folder!r} exists: --unpack writes a new folder")
    parent = os.path.dirname(os.path.abspath(folder))
    try:
        partial = tempfile.mkdtemp(prefix=f".{os.path.basename(folder)}.", suffix=".partial", dir=parent)
    except OSError as exc:
        raise DecryptError(f"cannot write next to {folder!r}: {exc.strerror or exc}") from None
    try:
        reader = Reader(source, keys)
        if reader.header.payload != "bp-bundle":
            raise DecryptError(
                f"--unpack is for application bundles; this artifact's payload is "
                f"{reader.header.payload} (use --decompress ARTIFACT OUTPUT)"
            )
        members = _unpack_members(reader, partial)
        os.rename(partial, folder)
    except ArtifactDamaged as exc:
        raise ArtifactDamaged(f"{exc} (no output written)") from None
    except OSError as exc:
        raise DecryptError(f"I/O error: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(partial):
            shutil.rmtree(partial, ignore_errors=True)
    return _summary(reader, what=f"unpacked {len(members)} file(s) into {folder}", decompressed=True)


def main(argv=None) -> int:
    """Run the command; return the exit status."""
    args = _parser().parse_args(argv)
    if args.unpack is not None and (args.check or args.output is not None):
        print("decrypt failed: --unpack FOLDER takes the artifact only", file=sys.stderr)
        return EXIT_USAGE
    if args.unpack is None and args.check == (args.output is not None):
        print("decrypt failed: give OUTPUT, or --check without OUTPUT", file=sys.stderr)
        return EXIT_USAGE
    try:
        keys = load_keys(args.key_file)
        try:
            source = sys.stdin.buffer if args.input == "-" else open(args.input, "rb")  # noqa: SIM115
        except OSError as exc:
            raise DecryptError(f"cannot open {args.input!r}: {exc.strerror or exc}") from None
        with source:
            if args.unpack is not None:
                summary = _unpack(source, keys, args.unpack)
            elif args.check:
                summary = _check(source, keys)
            elif args.output == "-":
                try:
                    summary = _copy(source, sys.stdout.buffer, keys, args.decompress)
                    sys.stdout.buffer.flush()
                except ArtifactDamaged as exc:
                    raise ArtifactDamaged(f"{exc} (the output written so far is incomplete)") from None
                except BrokenPipeError:
                    # The reader of our stdout went away (e.g. `| head`, or pg_restore failed).
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                    print("decrypt failed: the program reading the output stopped early", file=sys.stderr)
                    return EXIT_ARTIFACT
                except OSError as exc:
                    raise DecryptError(f"I/O error: {exc.strerror or exc}") from None
            else:
                summary = _write_file(source, keys, args.output, decompress=args.decompress, force=args.force)
    except DecryptError as exc:
        print(f"decrypt failed: {exc}", file=sys.stderr)
        return exc.status
    if not args.quiet:
        print(summary, file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
