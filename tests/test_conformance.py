"""Every route of ``shared/spec/endpoints.tsv`` is served (except those still pending)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.urls import Resolver404, resolve

ROOT = Path(__file__).resolve().parent.parent
SPEC_CANDIDATES = [ROOT.parent / "shared" / "spec" / "endpoints.tsv", ROOT / "shared" / "spec" / "endpoints.tsv"]
SPEC = next((p for p in SPEC_CANDIDATES if p.exists()), SPEC_CANDIDATES[0])
PENDING_FILE = ROOT / "tests" / "endpoints_pending.txt"


def load_rows() -> list[tuple[str, str, str]]:
    lines = SPEC.read_text().splitlines()[1:]
    return [tuple(line.split("\t")[:3]) for line in lines if line.strip()]


def load_pending() -> set[tuple[str, str, str]]:
    rows = set()
    for line in PENDING_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            rows.add(tuple(line.split("\t")[:3]))
    return rows


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "123", path)


def http_methods(match) -> set[str]:
    func = match.func
    actions = getattr(func, "actions", None)
    if actions:
        return {m.upper() for m in actions}
    view_class = getattr(func, "view_class", None) or getattr(func, "cls", None)
    if view_class is None:
        return {"GET", "POST", "PUT", "PATCH", "DELETE"}
    return {m.upper() for m in view_class.http_method_names if hasattr(view_class, m)}


def ws_paths() -> set[str]:
    from backupplatform.routing import websocket_urlpatterns

    return {"/" + str(p.pattern) for p in websocket_urlpatterns}


def test_spec_is_readable():
    rows = load_rows()
    assert len(rows) > 100, f"{SPEC} looks truncated"
    pending = load_pending()
    unknown = pending - set(rows)
    assert not unknown, f"pending rows not in endpoints.tsv: {sorted(unknown)}"


@pytest.mark.parametrize("row", [r for r in load_rows() if r not in load_pending()], ids=lambda r: f"{r[1]} {r[2]}")
def test_route_is_served(row):
    facade, method, path = row
    if method == "WS":
        assert path in ws_paths(), f"WebSocket route {path} missing from routing.websocket_urlpatterns"
        return
    try:
        match = resolve(concrete(path))
    except Resolver404:
        pytest.fail(f"{method} {path} is not routed")
    assert method in http_methods(match), f"{method} not allowed on {path} ({match.view_name})"
    view_class = getattr(match.func, "view_class", None) or getattr(match.func, "cls", None)
    facade_obj = getattr(view_class, "facade", None)
    if facade != "docs":
        assert facade_obj is not None and facade_obj.name == facade, (
            f"{path} should be served by the {facade} facade, not {getattr(facade_obj, 'name', None)}"
        )
