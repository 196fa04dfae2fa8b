"""50 concurrent ``GET /api/acronis/agents`` for one tenant, and what reached Acronis (not a test).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bp_acronis REDIS_URL=redis://127.0.0.1:6379/10 \
      CACHE_KEY_PREFIX=acronis-bench .venv/bin/python bench/acronis_agents.py [--requests 50] [--delay 0.2]

Runs the real stack in-process: Django's test client in threads (each with its own database
connection), the Redis cache of ``REDIS_URL``, and the loopback fake Acronis over real HTTP.
``--delay`` makes the fake answer the agents list slowly, so that every request arrives while
the first load is still in flight (the worst case for a stampede).

Three rounds, with the fake's upstream counters after each:
1. cold cache: 50 concurrent requests -> expected 1 token request and 1 agents fetch;
2. warm cache: 50 concurrent requests -> expected 0 upstream calls;
3. next cache period (the tenant's cache generation is replaced, as when the 5 minutes
   pass): 50 concurrent requests -> expected 1 agents fetch and 0 token requests (the token
   lives 2 hours);
4. rate limited: the next cache period again, with Acronis answering every agents call
   429 ``Retry-After: 1`` -> expected 3 agents fetches (one try, two retries) and 50
   answers 429 ``ACRONIS_RATE_LIMITED``; then 50 more requests at once while the tenant
   backs off -> expected 0 upstream calls.
A temporary tenant, user and config are created and deleted again.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backupplatform.settings.test")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from rest_framework_simplejwt.tokens import AccessToken  # noqa: E402

from acronis import cache as acronis_cache  # noqa: E402
from acronis import services  # noqa: E402
from tenants import services as tenant_services  # noqa: E402
from tenants.models import Plan, Role, Tenant  # noqa: E402
from tests.support.acronis_fake import FakeAcronis  # noqa: E402

AGENTS = "/api/agent_manager/v2/agents"
TOKEN = "/api/2/idp/token"


def fire(n: int, auth: str) -> tuple[list[int], list[float], list[bool]]:
    statuses: list[int] = []
    latencies: list[float] = []
    cached: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(n)

    def worker() -> None:
        client = Client(HTTP_AUTHORIZATION=auth)
        barrier.wait()
        started = time.perf_counter()
        response = client.get("/api/acronis/agents")
        elapsed = time.perf_counter() - started
        with lock:
            statuses.append(response.status_code)
            latencies.append(elapsed)
            cached.append(bool(response.json().get("cache_info", {}).get("cached")))
        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return statuses, latencies, cached


def report(name: str, fake: FakeAcronis, statuses, latencies, cached) -> None:
    ok = sum(1 for s in statuses if s == 200)
    limited = sum(1 for s in statuses if s == 429)
    lat = sorted(latencies)
    p95 = lat[max(0, int(len(lat) * 0.95) - 1)]
    print(
        f"{name}: {ok}/{len(statuses)} ok, {limited} rate limited, served from cache {sum(cached)}, "
        f"upstream token requests {fake.calls[TOKEN]}, agents fetches {fake.calls[AGENTS]}, "
        f"latency median {statistics.median(lat) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
        f"max {lat[-1] * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--delay", type=float, default=0.2, help="seconds the fake takes for the agents list")
    args = parser.parse_args()

    logging.getLogger("httpx").setLevel(logging.WARNING)
    setup_test_environment()
    call_command("migrate", verbosity=0)
    slug = f"bench-{uuid.uuid4().hex[:8]}"
    tenant = Tenant.objects.create(slug=slug, name="Acronis bench", plan=Plan.DEDICATED)
    user = tenant_services.user_create(
        tenant=tenant, username=slug, role=Role.VIEWER, password=uuid.uuid4().hex, email=f"{slug}@example.com"
    ).user
    auth = f"Bearer {AccessToken.for_user(user)}"
    try:
        with FakeAcronis("bench-client", "bench-secret-value") as fake:
            services.config_save(
                tenant=tenant,
                base_url=fake.base_url,
                client_id="bench-client",
                client_secret="bench-secret-value",
                create=True,
            )
            print(
                f"{args.requests} concurrent GET /api/acronis/agents, one tenant, fake agents list delay {args.delay}s"
            )
            fake.inject(AGENTS, None, times=1, delay=args.delay)
            report("round 1 (cold cache)", fake, *fire(args.requests, auth))
            fake.reset_counters()
            report("round 2 (warm cache)", fake, *fire(args.requests, auth))
            fake.reset_counters()
            acronis_cache.invalidate_tenant(tenant.pk)  # the next cache period
            fake.inject(AGENTS, None, times=1, delay=args.delay)
            report("round 3 (next period)", fake, *fire(args.requests, auth))
            fake.reset_counters()
            acronis_cache.invalidate_tenant(tenant.pk)
            fake.inject(AGENTS, 429, times=None, retry_after=1)
            report("round 4 (rate limited)", fake, *fire(args.requests, auth))
            fake.reset_counters()
            report("round 4b (backing off)", fake, *fire(args.requests, auth))
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
        # One process (the fake runs in threads of it), so its peak is the tree's peak.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"load average (1, 5, 15 min): {load}; peak RSS {peak:.0f} MiB")
    finally:
        services.config_delete(tenant=tenant)
        user.delete()
        tenant.delete()


if __name__ == "__main__":
    main()
