"""Offline decrypt of a backup artifact: needs only the exported key file and this package.

    python -m backups.pipeline.decrypt_cli --key-file KEY.json INPUT OUTPUT

INPUT and OUTPUT may be ``-`` (stdin / stdout). OUTPUT is the *compressed* stream
(``zstd -d`` or ``gunzip`` it, then ``pg_restore``/``psql``/``tar``); with
``--decompress`` it is the original bytes. A file OUTPUT is written next to its
final name and renamed only after the last chunk authenticated, so a damaged
artifact never leaves a plausible-looking output file behind.

Exit status: 0 ok; 1 the artifact is damaged, tampered, truncated or the key is
wrong; 2 usage, key file or I/O error. Errors are one line on stderr.

Deliberately imports nothing from Django: see docs/artifact-format.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from .errors import ArtifactError, KeyFileError
from .keys import load_key_file
from .stream import open_artifact

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_ARTIFACT = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m backups.pipeline.decrypt_cli",
        description=(
            "Decrypt a backup artifact (BPAF) with an exported key file. Writes the "
            "compressed stream unless --decompress is given."
        ),
    )
    parser.add_argument(
        "--key-file", required=True, help="JSON key file exported from the platform"
    )
    parser.add_argument(
        "--decompress", action="store_true", help="also decompress (write the original bytes)"
    )
    parser.add_argument("--force", action="store_true", help="overwrite OUTPUT if it exists")
    parser.add_argument("--quiet", "-q", action="store_true", help="no summary line on success")
    parser.add_argument("input", metavar="INPUT", help="artifact file, or - for stdin")
    parser.add_argument("output", metavar="OUTPUT", help="output file, or - for stdout")
    return parser


def _fail(code: int, message: str) -> int:
    print(f"decrypt failed: {message}", file=sys.stderr)
    return code


def _copy(source: BinaryIO, target: BinaryIO, key: bytes, decompress: bool) -> str:
    reader = open_artifact(source, key)
    pieces = reader.iter_plaintext() if decompress else reader.iter_compressed()
    for piece in pieces:
        target.write(piece)
    compression = reader.header.compression
    hint = ""
    if not decompress and compression.suffix:
        hint = f"; decompress it with {'zstd -d' if compression.suffix == '.zst' else 'gunzip'}"
    return (
        f"ok: {reader.chunks} chunk(s), {reader.stored_bytes} stored bytes, key "
        f"{reader.header.key_id!r}, compression {compression.label}{hint}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        _key_id, key = load_key_file(args.key_file)
    except KeyFileError as exc:
        return _fail(EXIT_USAGE, str(exc))

    try:
        source: BinaryIO = sys.stdin.buffer if args.input == "-" else open(args.input, "rb")  # noqa: SIM115
    except OSError as exc:
        return _fail(EXIT_USAGE, f"cannot open {args.input!r}: {exc.strerror or exc}")

    with source:
        if args.output == "-":
            try:
                summary = _copy(source, sys.stdout.buffer, key, args.decompress)
                sys.stdout.buffer.flush()
            except ArtifactError as exc:
                return _fail(EXIT_ARTIFACT, f"{exc} (output written so far is incomplete)")
            except BrokenPipeError:
                # The reader of our stdout went away (e.g. `| head`); not our error.
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                return EXIT_ARTIFACT
            except OSError as exc:
                return _fail(EXIT_USAGE, f"I/O error: {exc.strerror or exc}")
        else:
            output = Path(args.output)
            if output.exists() and not args.force:
                return _fail(EXIT_USAGE, f"{args.output!r} exists (use --force to overwrite)")
            try:
                fd, tmp_name = tempfile.mkstemp(
                    prefix=f".{output.name}.", suffix=".partial", dir=output.parent or "."
                )
            except OSError as exc:
                return _fail(
                    EXIT_USAGE, f"cannot write next to {args.output!r}: {exc.strerror or exc}"
                )
            try:
                with os.fdopen(fd, "wb") as target:
                    summary = _copy(source, target, key, args.decompress)
                os.replace(tmp_name, output)
            except ArtifactError as exc:
                Path(tmp_name).unlink(missing_ok=True)
                return _fail(EXIT_ARTIFACT, f"{exc} (no output written)")
            except OSError as exc:
                Path(tmp_name).unlink(missing_ok=True)
                return _fail(EXIT_USAGE, f"I/O error: {exc.strerror or exc}")
            except BaseException:
                Path(tmp_name).unlink(missing_ok=True)
                raise
    if not args.quiet:
        print(summary, file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
