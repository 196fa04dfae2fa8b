"""Which folders of the platform's own machines may be used at all.

A ``local`` storage, a file or SQLite source without a server (or on a ``local`` server), a
restore's target folder and import staging all touch the filesystem of the worker itself.
Only folders under the platform roots are ever accepted: ``BACKUP_LOCAL_ROOT`` plus what the
operator lists in ``LOCAL_PATH_ROOTS``. Each tenant is further confined to its own folders
inside them (``backups.confinement``).

Paths are compared after ``os.path.realpath`` (symlinks and ``..`` resolved), and a folder
is also recognised by its device and inode, so a bind mount or a hard-to-spot alias of a
forbidden folder is caught as well as its usual name.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from django.conf import settings


def platform_roots() -> list[str]:
    """The platform's roots, resolved (``BACKUP_LOCAL_ROOT`` first)."""
    roots = [settings.BACKUP_LOCAL_ROOT, *getattr(settings, "LOCAL_PATH_ROOTS", [])]
    seen: list[str] = []
    for root in roots:
        if root and (real := os.path.realpath(root)) not in seen:
            seen.append(real)
    return seen


def is_clean_absolute(path: object) -> bool:
    return isinstance(path, str) and path.startswith("/") and "\x00" not in path and len(path) <= 4096


def resolve(path: str) -> str:
    return os.path.realpath(path)


def is_within(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or below it (both already resolved)."""
    folder = folder.rstrip("/") or "/"
    return path == folder or path.startswith(folder if folder == "/" else folder + "/")


def overlaps(a: str, b: str) -> bool:
    """One of the two resolved folders contains the other."""
    return is_within(a, b) or is_within(b, a)


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def existing_ancestors(path: str) -> Iterable[str]:
    """``path`` and each of its parents, as far up as ``/``, that exist."""
    current = path
    while True:
        if os.path.exists(current):
            yield current
        parent = os.path.dirname(current)
        if parent == current:
            return
        current = parent


def aliases_any(path: str, folders: Iterable[str]) -> bool:
    """``path`` (resolved) lies inside a folder that is one of ``folders`` under another name
    (a bind mount, for instance): compared by device and inode of every existing ancestor."""
    wanted = {ident for f in folders if (ident := _identity(f)) is not None}
    if not wanted:
        return False
    return any(_identity(a) in wanted for a in existing_ancestors(path))


def contains_alias_of(path: str, folders: Iterable[str]) -> bool:
    """One of ``folders`` lies inside ``path`` under another name (checked by identity of the
    folders' existing ancestors against ``path``)."""
    ident = _identity(path)
    if ident is None:
        return False
    return any(_identity(a) == ident for f in folders for a in existing_ancestors(f))


def tenant_roots(slug: str, configured: list | None) -> list[str]:
    """A tenant's folders, resolved: what a superuser set, else ``<root>/<slug>`` of each
    platform root."""
    chosen = [r for r in (configured or []) if is_clean_absolute(r)]
    return [resolve(r) for r in (chosen or [os.path.join(root, slug) for root in platform_roots()])]


def path_roots_errors(slug: str, roots: object, others: dict[str, list | None]) -> list[str]:
    """Why ``roots`` cannot be the folders of tenant ``slug`` (``others``: the other
    tenants' slugs and configured folders)."""
    if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
        return ["Enter a JSON list of absolute folder paths."]
    errors = [
        f"{r!r} is not an absolute path without '..'."
        for r in roots
        if not is_clean_absolute(r) or ".." in r.split("/")
    ]
    if errors:
        return errors
    mine = tenant_roots(slug, roots)
    if "/" in mine:
        return ["'/' would give this tenant the whole machine."]
    for other_slug, configured in others.items():
        theirs = tenant_roots(other_slug, configured)
        if any(overlaps(a, b) for a in mine for b in theirs):
            errors.append(f"Overlaps the folders of tenant '{other_slug}'.")
    return errors
