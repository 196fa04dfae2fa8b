"""The Redis broker transport the platform uses: kombu's, made to survive a broker restart.

With the pinned celery 5.7 / kombu 5.7, a worker that loses its Redis connection while it
holds an unacknowledged message (every running task: ``acks_late``) died with
``Unrecoverable error: AttributeError("'NoneType' object has no attribute 'hostname'")``:

1. the consumer's recovery (``Consumer.on_connection_error_after_connected``) first calls
   ``connection.collect()``, which closes the channels (closing the default channel fails
   half-way with a connection error while Redis is down, so it stays open) and then
   detaches the transport from its connection (``transport.client = None``);
2. it then calls ``connection.close()``, which closes that default channel again; now the
   channel tries to put the unacknowledged message back (``restore_unacked``), needs a
   Redis connection pool, and builds its parameters from ``transport.client``: ``None``;
3. ``AttributeError`` is not one of the connection errors the recovery ignores, so it
   escapes and the worker stops. An idle worker survives (nothing to restore).

The later acknowledgement of the task that was running takes the same path. Here a
channel whose transport was detached reports a *connection* error instead, which both
places already handle: the close is ignored and the worker reconnects; the ack is logged
("Couldn't ack") and the message is redelivered after the visibility timeout, where the
task's idempotent claim makes it a no-op (the operation is no longer ``pending``).

Selected with ``CELERY_BROKER_TRANSPORT`` (settings) for ``redis://`` and ``rediss://``
broker URLs; kombu's transport is otherwise unchanged.
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis


class BrokerConnectionClosed(redis.exceptions.ConnectionError):
    """The channel belongs to a broker connection that was already torn down."""


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            raise BrokerConnectionClosed("the broker connection of this channel was closed")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel
