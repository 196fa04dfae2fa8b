"""Throughput and peak memory of the backup pipeline core (not a test).

    .venv/bin/python bench/pipeline_core.py --mib 1024 --compression zstd --compare

Pushes N MiB of semi-compressible, SQL-dump-like data through ``backup_stream``
from a real pipe (a child process writes the data, as ``pg_dump`` would) into a
file, then prints throughput and the process's peak RSS. With ``--compare`` it
also times ``zstd -3`` (or ``gzip -6``) over the same pipe into a file, the
baseline of the performance target (DESIGN.md: at most 1.15x of
``pg_dump | zstd -3 > file``).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backups.pipeline import backup_stream, generate_data_key, verify_stream

logger = logging.getLogger(__name__)

MIB = 1 << 20


def make_block(size: int, seed: int = 7) -> bytes:
    """Text rows with random numbers and some random bytes: compresses ~3-4x with zstd -3."""
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        out += b"%d\t%s\t%d.%02d\t2024-%02d-%02d\t%s\n" % (
            rng.randrange(10**9),
            b"user-%d@example.com" % rng.randrange(10**6),
            rng.randrange(10**5),
            rng.randrange(100),
            rng.randrange(1, 13),
            rng.randrange(1, 29),
            rng.randbytes(12).hex().encode(),
        )
    return bytes(out[:size])


def producer_command(mib: int) -> list[str]:
    """A child process that writes ``mib`` MiB of the block to stdout (stands in for pg_dump)."""
    here = str(Path(__file__).parent)
    code = (
        f"import sys; sys.path.insert(0, {here!r}); from pipeline_core import make_block;"
        f"b = make_block({4 * MIB}); w = sys.stdout.buffer\n"
        f"for _ in range({mib // 4}): w.write(b)"
    )
    return [sys.executable, "-c", code]


def peak_rss_mib() -> float:
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_pipeline(mib: int, compression: str, out_path: Path, zstd_threads: int) -> None:
    key = generate_data_key()
    proc = subprocess.Popen(producer_command(mib), stdout=subprocess.PIPE)
    assert proc.stdout is not None
    started = time.monotonic()
    with open(out_path, "wb") as sink:
        result = backup_stream(
            proc.stdout,
            sink,
            data_key=key,
            key_id="bench",
            compression=compression,
            zstd_threads=zstd_threads,
        )
    wall = time.monotonic() - started
    proc.wait()
    print(
        f"pipeline  {compression:5s} {result.raw_bytes / MIB:8.0f} MiB in {wall:6.2f} s "
        f"= {result.raw_bytes / MIB / wall:7.1f} MiB/s  ratio {result.raw_bytes / max(result.compressed_bytes, 1):4.2f}  "
        f"stored {result.stored_bytes / MIB:.1f} MiB  chunks {result.chunks}  peak RSS {peak_rss_mib():.0f} MiB"
    )
    started = time.monotonic()
    with open(out_path, "rb") as source:
        verified = verify_stream(source, key)
    wall = time.monotonic() - started
    assert verified.sha256 == result.sha256
    print(
        f"verify    {compression:5s} {verified.stored_bytes / MIB:8.1f} MiB stored in {wall:6.2f} s  "
        f"peak RSS {peak_rss_mib():.0f} MiB"
    )


def run_baseline(mib: int, compression: str, out_path: Path) -> None:
    tool = {"zstd": ["zstd", "-3", "-q", "-c"], "gzip": ["gzip", "-6", "-c"]}.get(compression)
    if tool is None:
        return
    started = time.monotonic()
    with open(out_path, "wb") as sink:
        producer = subprocess.Popen(producer_command(mib), stdout=subprocess.PIPE)
        compressor = subprocess.run(tool, stdin=producer.stdout, stdout=sink, check=True)
        producer.wait()
    wall = time.monotonic() - started
    print(
        f"baseline  {' '.join(tool[:2]):9s} {mib:4d} MiB in {wall:6.2f} s = {mib / wall:7.1f} MiB/s "
        f"(exit {compressor.returncode})"
    )


def main() -> None:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=256, help="MiB to push through (multiple of 4)")
    parser.add_argument("--compression", default="zstd", choices=["none", "gzip", "zstd"])
    parser.add_argument("--zstd-threads", type=int, default=1)
    parser.add_argument("--compare", action="store_true", help="also time zstd/gzip CLI on the same pipe")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "artifact"
        if args.compare:
            run_baseline(args.mib, args.compression, out)
        run_pipeline(args.mib, args.compression, out, args.zstd_threads)
        if args.compare:
            run_baseline(args.mib, args.compression, out)
        os.sync()


if __name__ == "__main__":
    main()
