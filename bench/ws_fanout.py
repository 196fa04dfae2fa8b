"""Benchmark (not a test): how fast a published event reaches 500 WebSocket clients, through
the platform's consumer (``/ws``: authentication, tenant scoping, type filter) against bare
channel-layer consumers, on the same Redis channel layer.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bp_ws_bench REDIS_URL=redis://127.0.0.1:6379/7 \
      .venv/bin/python bench/ws_fanout.py [--clients 500] [--events 20] [--rounds 5] [--gap 0.25]

Two uvicorn servers (one worker each) start: the platform (``backupplatform.asgi``) and a
bare Channels application (``bench/ws_bare.py``: a consumer that joins one group and sends
what it receives). ``--clients`` sockets connect to each (the platform's with an API key).
Each round, alternating which goes first, the bench sends ``--events`` events, ``--gap``
seconds apart (0.25: 4 events a second, 2,000 messages a second at 500 sockets), to each
set's group with the same ``group_send`` and measures, per delivered message, the time from
the send to its arrival at the client. Printed per round: the p95 of both and
their ratio; then min and median of the per-round p95s and ratios, the machine's load, and
the peak RSS of each server's process tree. A second measure times the platform's own
publish path (``audit.services.publish`` from synchronous code, as services call it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backupplatform.settings.local")
BARE_GROUP = "bench-bare"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
    except psutil.Error:
        return 0


def start_server(app: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "DEBUG": "0", "ALLOWED_HOSTS": "127.0.0.1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--port",
            str(port),
            "--lifespan",
            "off",
            "--log-level",
            "warning",
            "--ws-max-queue",
            "1024",
        ],
        cwd=ROOT,
        env=env,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{app} did not start")


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def connect_all(url: str, count: int) -> list:
    import websockets

    sockets = []
    for start in range(0, count, 50):
        batch = await asyncio.gather(
            *(websockets.connect(url, max_queue=None, ping_interval=None) for _ in range(min(50, count - start)))
        )
        sockets.extend(batch)
    return sockets


async def collect(sockets: list, latencies: list[float], stop: asyncio.Event) -> None:
    async def reader(ws):
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            event = json.loads(raw)
            if event.get("type") == "bench":
                latencies.append(time.time() - event["sent"])

    await asyncio.gather(*(reader(ws) for ws in sockets))


async def measure(layer, group: str, message: dict, sockets: list, events: int, gap: float) -> list[float]:
    latencies: list[float] = []
    stop = asyncio.Event()
    readers = asyncio.create_task(collect(sockets, latencies, stop))
    await asyncio.sleep(0.2)
    for n in range(events):
        event = {"type": "bench", "sent": time.time(), "seq": n}
        await layer.group_send(group, {**message, "event": event})
        await asyncio.sleep(gap)
    deadline = time.monotonic() + 10
    while len(latencies) < events * len(sockets) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    stop.set()
    await readers
    return latencies


def publish_path_cost(tenant_id: int, events: int) -> float:
    """Median seconds of ``audit.services.publish`` from sync code (outside a transaction the
    send runs at once), as a service calls it."""
    from audit.services import publish

    took = []
    for n in range(events):
        started = time.perf_counter()
        publish(tenant_id=tenant_id, event={"type": "bench-publish", "seq": n})
        took.append(time.perf_counter() - started)
    return statistics.median(took)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--gap", type=float, default=0.25, help="seconds between two events")
    args = parser.parse_args()
    import django

    sys.path.insert(0, str(ROOT / "bench"))
    from lists import _ensure_database

    _ensure_database(os.environ["DATABASE_URL"])
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from channels.layers import get_channel_layer

    from audit.services import tenant_group
    from tenants import services
    from tenants.models import Role, Tenant

    tenant = Tenant.objects.filter(slug="bench-ws").first() or Tenant.objects.create(slug="bench-ws", name="ws")
    _, key = services.api_key_create(tenant=tenant, name=f"ws-{int(time.time())}", role=Role.VIEWER)
    from django.db import connections

    connections.close_all()

    platform_port, bare_port = free_port(), free_port()
    servers = {
        "platform": start_server("backupplatform.asgi:application", platform_port),
        "bare": start_server("bench.ws_bare:application", bare_port),
    }
    peak = {name: 0 for name in servers}
    done = threading.Event()

    def watch():
        while not done.is_set():
            for name, proc in servers.items():
                peak[name] = max(peak[name], tree_rss(proc.pid))
            time.sleep(0.2)

    threading.Thread(target=watch, daemon=True).start()
    targets = {
        "platform": (
            f"ws://127.0.0.1:{platform_port}/ws?api_key={key}",
            tenant_group(tenant.pk),
            {"type": "event.forward", "tenant_id": tenant.pk},
        ),
        "bare": (f"ws://127.0.0.1:{bare_port}/ws", BARE_GROUP, {"type": "event.forward"}),
    }

    async def run() -> dict:
        layer = get_channel_layer()
        sockets = {name: await connect_all(url, args.clients) for name, (url, _, _) in targets.items()}
        results: dict[str, list[float]] = {"platform": [], "bare": []}
        ratios = []
        loads = []
        for n in range(args.rounds):
            order = ["platform", "bare"] if n % 2 == 0 else ["bare", "platform"]
            p95 = {}
            for name in order:
                _, group, message = targets[name]
                latencies = await measure(layer, group, message, sockets[name], args.events, args.gap)
                expected = args.events * args.clients
                if len(latencies) < expected:
                    print(f"  {name}: {expected - len(latencies)} of {expected} messages not delivered")
                p95[name] = percentile(latencies, 0.95)
                results[name].append(p95[name])
            ratios.append(p95["platform"] / p95["bare"])
            loads.append(os.getloadavg()[0])
            print(
                f"round {n + 1}: p95 platform {p95['platform'] * 1000:.0f} ms, bare {p95['bare'] * 1000:.0f} ms, "
                f"ratio {ratios[-1]:.2f}, load {loads[-1]:.2f}",
                flush=True,
            )
        for group in sockets.values():
            await asyncio.gather(*(ws.close() for ws in group))
        return {"results": results, "ratios": ratios, "loads": loads}

    try:
        out = asyncio.run(run())
        publish_cost = publish_path_cost(tenant.pk, 50)
    finally:
        done.set()
        for proc in servers.values():
            proc.terminate()
            proc.wait(10)
    res = out["results"]
    print(
        json.dumps(
            {
                "clients": args.clients,
                "events_per_round": args.events,
                "seconds_between_events": args.gap,
                "rounds": args.rounds,
                "platform_p95_ms_min_median": [
                    round(min(res["platform"]) * 1000),
                    round(statistics.median(res["platform"]) * 1000),
                ],
                "bare_p95_ms_min_median": [
                    round(min(res["bare"]) * 1000),
                    round(statistics.median(res["bare"]) * 1000),
                ],
                "ratio_min_median": [round(min(out["ratios"]), 2), round(statistics.median(out["ratios"]), 2)],
                "publish_from_sync_code_median_ms": round(publish_cost * 1000, 2),
                "load_min_max": [round(min(out["loads"]), 2), round(max(out["loads"]), 2)],
                "peak_rss_mb": {name: round(v / 2**20) for name, v in peak.items()},
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
