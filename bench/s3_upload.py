"""S3 upload throughput: the platform's S3 writer against boto3's ``upload_fileobj``.

Both upload the same non-seekable stream (what a backup is: the pipeline's output, size
unknown in advance) to the same moto server, which runs in a separate process so that it
does not share this process's GIL. Rounds alternate which side goes first; each round
gives a ratio (platform time / boto3 time, below 1 is faster); the report shows the min and
median of those ratios, each side's throughput, the machine's load during the run and the
peak RSS of the whole process tree (this process and the moto server), plus the peak RSS of
this process while each side ran.

    .venv/bin/python bench/s3_upload.py --size-mb 256 --rounds 5

Both sides use 8 MiB parts and 4 parts in flight (boto3's ``TransferConfig`` set to match).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
import psutil  # noqa: E402
from boto3.s3.transfer import TransferConfig  # noqa: E402
from botocore.config import Config  # noqa: E402

MiB = 1024 * 1024
BUCKET = "bench"
CREDS = {"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}


class Stream:
    """A non-seekable source of ``size`` bytes (a random 1 MiB block, repeated)."""

    def __init__(self, size: int, block: bytes) -> None:
        self.left, self.block, self.pos = size, block, 0

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        n = self.left if n is None or n < 0 else min(n, self.left)
        out = bytearray()
        while len(out) < n:
            take = min(n - len(out), len(self.block) - self.pos)
            out += self.block[self.pos : self.pos + take]
            self.pos = (self.pos + take) % len(self.block)
        self.left -= n
        return bytes(out)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


class RssWatcher:
    """Samples the RSS of this process and of the whole tree (children included)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.me = psutil.Process()
        self.interval = interval
        self.tree_peak = self.own_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            own = self.me.memory_info().rss
            tree = own
            for child in self.me.children(recursive=True):
                with contextlib.suppress(psutil.Error):  # it may have just exited
                    tree += child.memory_info().rss
            self.own_peak, self.tree_peak = max(self.own_peak, own), max(self.tree_peak, tree)
            time.sleep(self.interval)

    def reset_own(self) -> None:
        self.own_peak = self.me.memory_info().rss

    def start(self) -> RssWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_moto(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto server did not start")


def upload_platform(endpoint: str, key: str, size: int, block: bytes) -> float:
    from backups.storage import open_backend

    backend = open_backend("minio", {"bucket": BUCKET, "endpoint_url": endpoint}, CREDS)
    stream = Stream(size, block)
    started = time.perf_counter()
    with backend.open_writer(key) as writer:
        while chunk := stream.read(MiB):  # the pipeline hands the writer 1 MiB chunks
            writer.write(chunk)
        writer.commit()
    return time.perf_counter() - started


def upload_boto3(client, key: str, size: int, block: bytes) -> float:
    config = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=4)
    started = time.perf_counter()
    client.upload_fileobj(Stream(size, block), BUCKET, key, Config=config)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backupplatform.settings.test")
    import django

    django.setup()

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = start_moto(port)
    watcher = RssWatcher().start()
    try:
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=CREDS["access_key_id"],
            aws_secret_access_key=CREDS["secret_access_key"],
            config=Config(
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                max_pool_connections=10,
                s3={"addressing_style": "path"},
            ),
        )
        client.create_bucket(Bucket=BUCKET)
        size, block = args.size_mb * MiB, os.urandom(MiB)
        load_before = os.getloadavg()
        upload_platform(endpoint, "warmup", 16 * MiB, block)  # imports, connections
        upload_boto3(client, "warmup", 16 * MiB, block)
        client.delete_object(Bucket=BUCKET, Key="warmup")
        idle = psutil.Process().memory_info().rss
        ours: list[float] = []
        theirs: list[float] = []
        own_peak = {"platform": 0, "boto3": 0}
        for round_no in range(args.rounds):
            order = ["platform", "boto3"] if round_no % 2 == 0 else ["boto3", "platform"]
            for side in order:
                key = f"{side}-{round_no}"
                watcher.reset_own()
                if side == "platform":
                    ours.append(upload_platform(endpoint, key, size, block))
                else:
                    theirs.append(upload_boto3(client, key, size, block))
                own_peak[side] = max(own_peak[side], watcher.own_peak)
                assert client.head_object(Bucket=BUCKET, Key=key)["ContentLength"] == size
                client.delete_object(Bucket=BUCKET, Key=key)  # keep moto's memory flat
            print(
                f"round {round_no + 1}: platform {ours[-1]:.2f} s, boto3 {theirs[-1]:.2f} s, "
                f"ratio {ours[-1] / theirs[-1]:.2f}",
                flush=True,
            )
        load_after = os.getloadavg()
    finally:
        watcher.stop()
        moto.terminate()
        moto.wait(10)

    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    mb = args.size_mb * MiB / 1e6
    print()
    print(f"stream {args.size_mb} MiB, {args.rounds} rounds, 8 MiB parts, 4 in flight, moto in its own process")
    print(f"platform S3 writer: best {mb / min(ours):.0f} MB/s, median {mb / statistics.median(ours):.0f} MB/s")
    print(f"boto3 upload_fileobj: best {mb / min(theirs):.0f} MB/s, median {mb / statistics.median(theirs):.0f} MB/s")
    print(f"time ratio platform/boto3 per round: min {min(ratios):.2f}, median {statistics.median(ratios):.2f}")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min), cores {os.cpu_count()}")
    print(
        f"peak RSS of this process while uploading: platform {own_peak['platform'] / MiB:.0f} MiB, "
        f"boto3 {own_peak['boto3'] / MiB:.0f} MiB (idle after warm-up: {idle / MiB:.0f} MiB)"
    )
    print(f"peak RSS of the process tree (bench + moto server): {watcher.tree_peak / MiB:.0f} MiB")


if __name__ == "__main__":
    main()
