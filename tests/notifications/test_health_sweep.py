"""The periodic health sweep probes servers concurrently on a bounded pool."""

from __future__ import annotations

import socket
import threading

import pytest

from backups.models import Server
from backups.services.servers import server_check_all_health

pytestmark = pytest.mark.django_db(transaction=True)


class SilentListener:
    """Accepts TCP connections and never says a word (an SSH server that hangs), counting how
    many are open at once."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.open = self.peak = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.open += 1
                self.peak = max(self.peak, self.open)
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        with conn:
            while conn.recv(1024):
                pass
        with self.lock:
            self.open -= 1

    def close(self) -> None:
        self.sock.close()


def test_a_hundred_hanging_servers_are_probed_at_once_and_reported(tenant_a, settings):
    settings.SERVER_CONNECT_TIMEOUT = 1.0
    settings.HEALTH_CHECK_CONCURRENCY = 100
    listener = SilentListener()
    Server.objects.bulk_create(
        [
            Server(
                tenant=tenant_a,
                name=f"s{i:03d}",
                type="ssh",
                host="127.0.0.1",
                port=listener.port,
                credentials={"username": "u", "password": "p"},
            )
            for i in range(100)
        ]
    )
    try:
        result = server_check_all_health()
    finally:
        listener.close()
    assert result == {"checked": 100, "changed": 100}
    # Every probe was waiting for its banner at the same time: one timeout for all of them.
    assert listener.peak == 100
    assert set(Server.objects.values_list("health_status", flat=True)) == {"unhealthy"}
    assert all("Timed out" in m for m in Server.objects.values_list("health_message", flat=True))


def test_the_pool_is_bounded(tenant_a, settings):
    settings.SERVER_CONNECT_TIMEOUT = 0.5
    settings.HEALTH_CHECK_CONCURRENCY = 7
    listener = SilentListener()
    Server.objects.bulk_create(
        [
            Server(
                tenant=tenant_a,
                name=f"s{i:03d}",
                type="ssh",
                host="127.0.0.1",
                port=listener.port,
                credentials={"username": "u", "password": "p"},
            )
            for i in range(20)
        ]
    )
    try:
        assert server_check_all_health()["checked"] == 20
    finally:
        listener.close()
    # The listener notices a probe's close a moment after the pool starts the next one, so it
    # may count a few more under load; never all twenty.
    assert 7 <= listener.peak <= 13
