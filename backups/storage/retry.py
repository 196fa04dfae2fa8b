"""Retrying transient storage failures: one policy for every backend.

Only :class:`~backups.storage.errors.StorageUnavailable` is retried (connection
refused or dropped, timeout, 5xx, SSH disconnect); every other error needs a
human and is raised at once. Waits grow exponentially with full jitter
(``wait_random_exponential``: a random wait between 0 and ``initial * 2**n``,
capped at ``maximum``), so many writers hitting the same outage do not come back
in lock step. The policy is applied per request (one S3 part, one Azure block,
one GCS chunk, one SFTP reconnect), so an outage only costs the request it hit;
a storage that stays down past the policy makes the request fail with the last
error, and the Celery task decides whether the whole backup is tried again.

The defaults come from settings (``STORAGE_RETRY_ATTEMPTS``, ``STORAGE_RETRY_INITIAL``,
``STORAGE_RETRY_MAX``, ``STORAGE_RETRY_DEADLINE``) when Django is configured.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from .errors import StorageUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently one storage request is retried.

    ``attempts`` counts the first try; ``deadline`` (seconds) bounds the whole
    series including waits, whichever comes first.
    """

    attempts: int = 6
    initial: float = 1.0
    maximum: float = 30.0
    deadline: float = 300.0

    def call(self, func: Callable[..., T], *args: Any, what: str = "", **kwargs: Any) -> T:
        """Run ``func(*args, **kwargs)``, retrying ``StorageUnavailable`` per this policy."""
        if self.attempts <= 1:
            return func(*args, **kwargs)

        def log(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            logger.info(
                "storage request %s failed (attempt %d of %d): %s; retrying in %.2fs",
                what or getattr(func, "__name__", "call"),
                state.attempt_number,
                self.attempts,
                exc,
                state.next_action.sleep if state.next_action else 0.0,
            )

        retrying = Retrying(
            retry=retry_if_exception_type(StorageUnavailable),
            stop=stop_after_attempt(self.attempts) | stop_after_delay(self.deadline),
            wait=wait_random_exponential(multiplier=self.initial, max=self.maximum),
            before_sleep=log,
            reraise=True,
        )
        return retrying(func, *args, **kwargs)

    def quick(self) -> RetryPolicy:
        """A short version for calls someone waits for (a probe, a delete, a listing) or that
        run in a time-limited task (the reaper): at most two tries within 10 s."""
        return replace(
            self,
            attempts=min(self.attempts, 2),
            initial=min(self.initial, 0.2),
            maximum=min(self.maximum, 1.0),
            deadline=min(self.deadline, 10.0),
        )


#: Never retry (for tests that want to see the first failure).
NO_RETRY = RetryPolicy(attempts=1)


def default_policy() -> RetryPolicy:
    """The policy from settings, or the built-in defaults outside Django."""
    try:
        from django.conf import settings

        if not settings.configured:
            return RetryPolicy()
        base = RetryPolicy()
        return RetryPolicy(
            attempts=int(getattr(settings, "STORAGE_RETRY_ATTEMPTS", base.attempts)),
            initial=float(getattr(settings, "STORAGE_RETRY_INITIAL", base.initial)),
            maximum=float(getattr(settings, "STORAGE_RETRY_MAX", base.maximum)),
            deadline=float(getattr(settings, "STORAGE_RETRY_DEADLINE", base.deadline)),
        )
    except ImportError:  # pragma: no cover - the storage package used without Django
        return RetryPolicy()
