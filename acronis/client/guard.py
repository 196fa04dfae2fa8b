"""State about one upstream that every worker process shares through the cache.

Two mechanisms, both keyed by the client's cache prefix (one tenant) and its data
center and API client:

* **Circuit breaker** for an unreachable Acronis. Each exchange that got no answer at
  all (connection refused or reset, connect or read timeout) increments a counter; any
  answer resets it. At ``threshold`` consecutive failures the breaker opens: for
  ``cooldown`` seconds every call fails at once with the error that opened it, without
  touching the network. Then it is half-open: one caller (a ``cache.add`` lock) may try;
  an answer closes the breaker, another failure opens it again.
* **Rate-limit backoff** (section 10). When Acronis answers 429 (or 503 with
  ``Retry-After``), the retry policy publishes how long to wait and the backoff level it
  reached. Until then, every other caller of the tenant gets ``AcronisRateLimited`` at
  once, with ``retry_after``; the level makes the next wait longer (exponential), and a
  successful answer resets it.

Counters are read-modify-write through the cache, so two processes failing at the very
same moment may each see the breaker open a little later than exactly ``threshold``;
that is harmless, and it keeps the state in the one shared cache the platform has.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from acronis.errors import (
    AcronisConnectionError,
    AcronisError,
    AcronisNetworkError,
    AcronisRateLimited,
    AcronisTimeoutError,
)

# An unused counter is forgotten after this long: failures minutes apart are not
# "consecutive" for the breaker.
FAILURES_TTL = 300
# The open/half-open state lives until an answer closes it (or an hour without calls).
OPEN_TTL = 3600
# A level of backoff is forgotten this long after its wait ended without further limits.
BACKOFF_DECAY = 300

_UNREACHABLE_CLASSES: dict[str, type[AcronisError]] = {
    cls.code: cls for cls in (AcronisConnectionError, AcronisTimeoutError, AcronisNetworkError)
}


@dataclass
class Ticket:
    """What :meth:`UpstreamGuard.admit` saw, so the outcome hooks skip needless writes."""

    call_id: str
    had_failures: bool = False
    had_breaker: bool = False
    had_backoff: bool = False


class UpstreamGuard:
    """Circuit breaker and rate-limit backoff for one upstream, shared through ``cache``."""

    def __init__(self, cache: Any, key: str, *, threshold: int, cooldown: float) -> None:
        self.cache = cache
        self.threshold = max(1, int(threshold))
        self.cooldown = float(cooldown)
        self._failures_key = f"{key}:failures"
        self._open_key = f"{key}:open"
        self._probe_key = f"{key}:probe"
        self._backoff_key = f"{key}:backoff"

    # -- before an exchange -------------------------------------------------------------

    def admit(self, call_id: str) -> Ticket:
        """Let an exchange go ahead, or raise at once (breaker open, tenant backing off)."""
        now = time.time()
        state = self.cache.get_many([self._failures_key, self._open_key, self._backoff_key])
        ticket = Ticket(
            call_id,
            had_failures=bool(state.get(self._failures_key)),
            had_breaker=isinstance(state.get(self._open_key), dict),
            had_backoff=isinstance(state.get(self._backoff_key), dict),
        )
        if ticket.had_breaker:
            self._admit_breaker(state[self._open_key], call_id, now)
        backoff = state.get(self._backoff_key)
        if ticket.had_backoff and backoff.get("owner") != call_id and backoff["until"] > now:
            # The call that hit the limit retries itself; everyone else waits for it.
            raise AcronisRateLimited(
                technical="not tried: the tenant is backing off after Acronis rate-limited it",
                retry_after=backoff["until"] - now,
                retryable=False,  # waiting is the backoff owner's job, not this call's
            )
        return ticket

    def _admit_breaker(self, opened: dict, call_id: str, now: float) -> None:
        if opened["until"] <= now:
            # Half-open: the one caller that wins the probe lock may try.
            probe_ttl = max(1, round(self.cooldown))
            if self.cache.add(self._probe_key, call_id, probe_ttl):
                return
            if self.cache.get(self._probe_key) == call_id:
                return
        cls = _UNREACHABLE_CLASSES.get(opened.get("code"), AcronisConnectionError)
        wait = max(0.0, opened["until"] - now)
        raise cls(
            technical=(
                f"not tried: {opened.get('failures')} consecutive calls got no answer "
                f"(last: {opened.get('technical')}); next try in {wait:.0f}s"
            ),
            retryable=False,
        )

    # -- after an exchange --------------------------------------------------------------

    def answered(self, ticket: Ticket, *, rate_limited: bool) -> None:
        """Acronis answered (any status): the breaker closes; a normal answer ends backoff."""
        if ticket.had_failures or ticket.had_breaker:
            self.cache.delete(self._failures_key)
            self.cache.delete(self._open_key)
            self.cache.delete(self._probe_key)
        if ticket.had_backoff and not rate_limited:
            self.cache.delete(self._backoff_key)

    def unreachable(self, ticket: Ticket, error: AcronisError) -> None:
        """No answer at all: count it; open the breaker at the threshold or after a probe."""
        self.cache.add(self._failures_key, 0, FAILURES_TTL)
        try:
            failures = int(self.cache.incr(self._failures_key))
        except ValueError:  # expired between add and incr
            self.cache.set(self._failures_key, 1, FAILURES_TTL)
            failures = 1
        if failures < self.threshold and not ticket.had_breaker:
            return
        opened = {
            "until": time.time() + self.cooldown,
            "code": error.code,
            "technical": error.technical,
            "failures": failures,
        }
        self.cache.set(self._open_key, opened, OPEN_TTL)
        self.cache.delete(self._probe_key)

    # -- rate limiting --------------------------------------------------------------------

    def backoff_level(self) -> int:
        backoff = self.cache.get(self._backoff_key)
        return int(backoff.get("level", 0)) if isinstance(backoff, dict) else 0

    def back_off(self, wait: float, *, call_id: str, level: int) -> None:
        """Publish that the tenant waits ``wait`` seconds (this call may retry after it)."""
        value = {"until": time.time() + wait, "level": level, "owner": call_id}
        self.cache.set(self._backoff_key, value, max(1, round(wait + BACKOFF_DECAY)))

    # -- reporting ------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """``circuit_breaker`` and ``rate_limit`` as ``GET /api/acronis/health`` shows them."""
        now = time.time()
        state = self.cache.get_many([self._failures_key, self._open_key, self._backoff_key])
        opened = state.get(self._open_key)
        failures = int(state.get(self._failures_key) or 0)
        breaker: dict[str, Any] = {"state": "closed", "consecutive_failures": failures, "retry_in": None}
        if isinstance(opened, dict):
            wait = opened["until"] - now
            breaker["state"] = "open" if wait > 0 else "half_open"
            breaker["retry_in"] = max(0, round(wait + 0.5))
            breaker["consecutive_failures"] = max(failures, int(opened.get("failures") or 0))
        backoff = state.get(self._backoff_key)
        wait = backoff["until"] - now if isinstance(backoff, dict) else 0
        rate_limit = {"backing_off": wait > 0, "retry_after": round(wait + 0.5) if wait > 0 else None}
        return {"circuit_breaker": breaker, "rate_limit": rate_limit}
