"""Who is acting right now: set by the audit middleware, the API facades and commands.

Services call ``emit()`` without passing a request; the actor and IP come from here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class ActorContext:
    user: Any = None
    ip: str | None = None
    auth_method: str = ""
    source: str = "system"
    api_key: Any = None  # the tenants.ApiKey a request authenticated with (no user then)


_current: ContextVar[ActorContext] = ContextVar("audit_actor", default=ActorContext())  # noqa: B039 - frozen


def current() -> ActorContext:
    return _current.get()


def set_context(**changes: Any) -> None:
    _current.set(replace(_current.get(), **changes))


@contextlib.contextmanager
def acting(**values: Any) -> Iterator[ActorContext]:
    """Run a block as a given actor (management commands, tasks, tests)."""
    token = _current.set(replace(_current.get(), **values))
    try:
        yield _current.get()
    finally:
        _current.reset(token)
