"""The retry policy of one logical call (section 10), built on tenacity.

* Only errors marked ``retryable`` are retried (429/503 rate limits, other 5xx,
  timeouts, connection errors); at most ``max_attempts`` attempts in all (Acronis
  advises retrying 5xx twice).
* Waits are exponential with jitter (``backoff_initial`` doubling, at most
  ``backoff_max``); the server's ``Retry-After`` is the floor of a wait, never the wait
  itself. After a rate limit, the exponent continues from the tenant's shared backoff
  level (:class:`acronis.client.guard.UpstreamGuard`), so a limit that persists across
  calls is probed less and less often.
* A rate-limit wait is published to the tenant's shared state before this call sleeps
  (or gives up), so concurrent callers and the poller wait with it.
* A call never sleeps past ``deadline``, and never longer than ``max_wait`` at a time:
  then it ends with its last error; for a rate limit that is ``AcronisRateLimited`` with
  ``retry_after`` set to the published wait, for the caller to retry later.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import tenacity

from acronis.client.guard import UpstreamGuard
from acronis.client.transport import MIN_ATTEMPT_SECONDS
from acronis.errors import AcronisError, AcronisRateLimited

logger = logging.getLogger(__name__)


@dataclass
class Call:
    """One logical call: its deadline, and its id (the owner of a backoff it publishes)."""

    deadline_at: float
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    auth_retried: bool = False  # section 1: one fresh token per call, not more


@dataclass(frozen=True)
class _Attempt:
    """What tenacity's wait strategies read of a ``RetryCallState``: the attempt number."""

    attempt_number: int


class RetryPolicy:
    """Builds a ``tenacity.Retrying`` for each call; the callbacks below are its parts."""

    def __init__(
        self,
        guard: UpstreamGuard,
        *,
        max_attempts: int,
        deadline: float,
        backoff_initial: float,
        backoff_max: float,
        max_wait: float,
    ) -> None:
        self.guard = guard
        self.max_attempts = max(1, int(max_attempts))
        self.deadline = float(deadline)
        self.max_wait = float(max_wait)
        self._exponential = tenacity.wait_exponential_jitter(
            multiplier=backoff_initial, max=backoff_max, jitter=backoff_initial / 2
        )

    def call(self, method: str, path: str, fn: Callable[[Call], Any]) -> Any:
        """Run ``fn(call)`` under the policy; re-raise its last error."""
        call = Call(deadline_at=time.monotonic() + self.deadline)
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda exc: isinstance(exc, AcronisError) and exc.retryable),
            wait=lambda state: self._wait(state, call.id),
            stop=tenacity.stop_any(tenacity.stop_after_attempt(self.max_attempts), self._stop_at(call.deadline_at)),
            before_sleep=self._log_retry(method, path),
            reraise=True,
        )
        return retrying(fn, call)

    def _wait(self, retry_state: tenacity.RetryCallState, call_id: str) -> float:
        """Exponential backoff with jitter, floored by ``Retry-After``.

        tenacity asks for the wait before it asks whether to stop, so a rate limit is
        published here even when this call gives up next: the others must wait anyway.
        """
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        attempt = retry_state.attempt_number
        if not isinstance(exc, AcronisRateLimited):
            floor = exc.retry_after if isinstance(exc, AcronisError) else None
            return max(floor or 0.0, self._exponential(retry_state))
        level = max(attempt, self.guard.backoff_level() + 1)
        wait = max(exc.retry_after or 0.0, self._exponential(_Attempt(level)))  # type: ignore[arg-type]
        self.guard.back_off(wait, call_id=call_id, level=level)
        exc.retry_after = wait  # what the caller is told if this call stops now
        return wait

    def _stop_at(self, deadline_at: float) -> Callable[[tenacity.RetryCallState], bool]:
        def stop(retry_state: tenacity.RetryCallState) -> bool:
            # Runs after _wait: a wait too long for this call ends it instead.
            wait = retry_state.upcoming_sleep or 0.0
            after_sleep = time.monotonic() + wait
            return wait > self.max_wait or after_sleep + MIN_ATTEMPT_SECONDS > deadline_at

        return stop

    @staticmethod
    def _log_retry(method: str, path: str) -> Callable[[tenacity.RetryCallState], None]:
        def before_sleep(retry_state: tenacity.RetryCallState) -> None:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            logger.info(
                "Acronis %s %s failed (%s, attempt %d); retrying in %.2fs",
                method,
                path,
                getattr(exc, "code", type(exc).__name__),
                retry_state.attempt_number,
                retry_state.upcoming_sleep,
            )

        return before_sleep
