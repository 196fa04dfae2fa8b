"""Running a documented example: the table row, the real objects its ids stand for, the
request as written, and the comparison of the answer with what the document shows.

A document's test module holds one table: ``{example key: Row(...)}``. A new example in a
document needs one row there (the test of a document fails while one of its examples has
none, naming it). A row says the status the example answers with (where the document does
not name it), which real object each id of the example stands for (most come from the
document's defaults), and, each with its reason, what the example is exempt from.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from .docs import Example

# Which document each example test runs, by ("module::test function", example key), for the
# summary line (conftest.py).
EXAMPLE_DOCUMENTS: dict[tuple[str, str], str] = {}


@dataclass
class Row:
    """How one documented example is run and judged."""

    status: int | None = None  # None: the document's own :statuscode:, else 200
    ids: dict[str, str] = field(default_factory=dict)  # placeholder / field name -> kind of object
    needs: tuple[str, ...] = ()  # objects that must exist first (a list to show, an event to find)
    vary: dict[str, str] = field(default_factory=dict)  # documented constant -> why ours differs
    absent: dict[str, str] = field(default_factory=dict)  # documented key ("a.b") -> why we have none
    nullable: dict[str, str] = field(default_factory=dict)  # documented key that may be null -> why
    retyped: dict[str, str] = field(default_factory=dict)  # documented key present with another JSON type -> why
    replace: dict[str, tuple[Any, str]] = field(default_factory=dict)  # request body key -> (our value, why)
    skip: str = ""  # why this example is not run (a route still to come, an upstream we do not have)
    future_dates: str = ""  # why the body's dates are moved to next year (a date the document wrote has passed)
    auth: str = "admin"  # "admin", "api_key", "none"
    shape: str = ""  # a shape the document shows under its own heading, for an example that shows none
    files: dict[str, str] = field(default_factory=dict)  # multipart file field -> kind of object (its bytes)
    setup: Callable[[Any], None] | None = None  # extra preparation, given the world
    then: Callable[[Any, Any], None] | None = None  # extra check, given the world and the response


UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# Keys whose documented values are constants of a write's answer ("success": true,
# "status": "created"), compared for equality; everything else is compared by JSON type.
CONSTANT_KEYS = ("success", "status", "token_type")


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def shape_problems(documented: Any, ours: Any, where: str, row: Row) -> list[str]:
    """Every documented key present in ``ours`` with the documented JSON type (recursively)."""
    if where in row.absent:
        return []
    if where in row.retyped:
        return [] if ours is not None or where in row.nullable else [f"{where}: null"]
    if documented is None:
        return []
    if ours is None:
        if where in row.nullable:
            return []
        return [f"{where or 'body'}: null, documented {json_type(documented)} {json.dumps(documented)[:60]}"]
    if json_type(documented) != json_type(ours):
        return [
            f"{where or 'body'}: {json_type(ours)} {json.dumps(ours)[:60]}, "
            f"documented {json_type(documented)} {json.dumps(documented)[:60]}"
        ]
    problems: list[str] = []
    if isinstance(documented, dict) and documented and all(UUID.match(str(k)) for k in documented):
        # A map keyed by ids (acronis "workload_data"): each of our entries as the documented one.
        template = next(iter(documented.values()))
        if not ours:
            problems.append(f"{where or 'body'}: empty, the document shows entries")
        for value in ours.values():
            problems += shape_problems(template, value, f"{where}.{{id}}", row)
        return problems
    if isinstance(documented, dict):
        for key, value in documented.items():
            path = f"{where}.{key}" if where else key
            if path in row.absent:
                continue
            if key not in ours:
                problems.append(f"{path}: missing")
                continue
            problems += shape_problems(value, ours[key], path, row)
    elif isinstance(documented, list) and documented:
        item_path = f"{where}[]"
        if not ours:
            if item_path not in row.absent:
                problems.append(f"{where or 'body'}: empty, the document shows items")
            return problems
        for index, item in enumerate(ours):
            # An item must match one of the documented items (lists may mix shapes).
            attempts = [shape_problems(doc_item, item, item_path, row) for doc_item in documented]
            best = min(attempts, key=len)
            problems += [p.replace(f"{item_path}", f"{where}[{index}]", 1) for p in best]
    return problems


def constant_problems(documented: Any, ours: Any, row: Row, *, write: bool) -> list[str]:
    problems = []
    for scope, doc_scope, our_scope in (
        ("", documented, ours),
        (
            "data.",
            (documented or {}).get("data") if isinstance(documented, dict) else None,
            (ours or {}).get("data") if isinstance(ours, dict) else None,
        ),
    ):
        if not isinstance(doc_scope, dict) or not isinstance(our_scope, dict):
            continue
        for key in CONSTANT_KEYS:
            if key not in doc_scope or key not in our_scope or f"{scope}{key}" in row.vary:
                continue
            if key != "success" and not write:
                continue  # a read shows data: its "status" is whatever the object's is
            if doc_scope[key] != our_scope[key]:
                problems.append(f"{scope}{key}: {our_scope[key]!r}, documented {doc_scope[key]!r}")
    return problems


# --- substituting ids -------------------------------------------------------------------------

PLACEHOLDER = re.compile(r"^(\{[^}]+\}|:[A-Za-z]+)$")


def _render(value: Any, documented: Any) -> Any:
    """``value`` (a real id) written the way the document writes this id."""
    if isinstance(documented, int) and not isinstance(documented, bool):
        return int(value) if str(value).isdigit() else value
    if isinstance(documented, str) and isinstance(value, int):
        return re.sub(r"\d+", str(value), documented) if re.search(r"\d", documented) else str(value)
    return value


def path_with_ids(example: Example, ids: dict[str, str], world: Any, id_form: Callable[[str, Any], Any]) -> str:
    segments = example.url_path.split("/")
    for index, segment in enumerate(segments):
        if not (PLACEHOLDER.match(segment) or segment.isdigit() or UUID.match(segment)):
            continue
        name = segment.strip("{}:")
        key = name if name in ids else segments[index - 1]
        if key not in ids:
            raise AssertionError(f"{example.key}: which object is {segment!r}? give it a kind in the table")
        segments[index] = str(id_form(ids[key], world.id(ids[key])))
    path = "/".join(segments)
    if example.query:
        pairs = [
            (k, str(_render(world.id(ids[k]), v))) if k in ids else (k, v)
            for k, v in parse_qsl(example.query, keep_blank_values=True)
        ]
        path += "?" + urlencode(pairs)
    return path


def body_with_ids(body: Any, ids: dict[str, str], world: Any) -> Any:
    if isinstance(body, dict):
        return {
            k: (
                _render(world.id(ids[k]), v)
                if k in ids and v is not None and not isinstance(v, dict | list)
                else body_with_ids(v, ids, world)
            )
            for k, v in body.items()
        }
    if isinstance(body, list):
        return [body_with_ids(v, ids, world) for v in body]
    return body


def headers_for(example: Example, row: Row, world: Any) -> dict[str, str]:
    """The documented headers, with the world's real credentials for the placeholders; an
    example that shows none is sent with the admin's token (every route needs one here)."""
    headers = {}
    for name, value in example.headers.items():
        if name.lower() == "authorization":
            continue
        if name.lower() == "x-api-key":
            continue
        headers[name] = value
    if row.auth == "api_key" or "X-API-Key" in example.headers:
        headers["X-API-Key"] = world.api_key
    elif row.auth == "admin":
        headers["Authorization"] = f"Bearer {world.token}"
    return headers


ISO_DATE_TIME = re.compile(r"^(\d{4})(-\d\d-\d\dT.*)$")


def next_year(body: Any) -> Any:
    """``body`` with each ISO date-time moved to the same day of next year."""
    from django.utils import timezone

    if isinstance(body, dict):
        return {k: next_year(v) for k, v in body.items()}
    if isinstance(body, list):
        return [next_year(v) for v in body]
    if isinstance(body, str) and (match := ISO_DATE_TIME.match(body)):
        return f"{timezone.now().year + 1}{match.group(2)}"
    return body


def request_of(
    example: Example,
    row: Row,
    world: Any,
    defaults: dict[str, str],
    id_form: Callable[[str, Any], Any] = lambda kind, value: value,
) -> tuple[str, dict, Any]:
    ids = {**defaults, **row.ids}
    path = path_with_ids(example, ids, world, id_form)
    body = body_with_ids(example.body, ids, world) if example.body is not None else None
    for key, (value, _why) in row.replace.items():
        assert isinstance(body, dict) and key in body, f"{example.key}: the body has no {key!r} to replace"
        body[key] = value
    if row.future_dates:
        body = next_year(body)
    return path, headers_for(example, row, world), body


MULTIPART_FILE = re.compile(r'name="([^"]+)"; filename="([^"]+)"\s*\nContent-Type: ([^\n]+)')
MULTIPART_FIELD = re.compile(r'--form-data; name="([^"]+)"\s*\n\s*\n([^\n]*)')


def multipart_of(example: Example, row: Row, world: Any) -> dict[str, Any] | None:
    """The form of a documented ``multipart/form-data`` request: its fields as written, each file
    field (name, filename and type as written) holding the bytes of a real object of ``row.files``."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    if not example.headers.get("Content-Type", "").startswith("multipart/form-data") or not example.raw_body:
        return None
    form: dict[str, Any] = {name: value.strip() for name, value in MULTIPART_FIELD.findall(example.raw_body)}
    for name, filename, content_type in MULTIPART_FILE.findall(example.raw_body):
        if name not in row.files:
            raise AssertionError(f"{example.key}: which file is {filename!r}? give its kind in the row's files")
        form[name] = SimpleUploadedFile(filename, world.get(row.files[name]), content_type=content_type.strip())
    return form


def send(client, method: str, path: str, headers: dict[str, str], body: Any, **extra: Any):
    meta = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items() if k.lower() != "content-type"}
    content_type = headers.get("Content-Type", "application/json")
    data = json.dumps(body) if body is not None else ""
    return client.generic(method, path, data=data, content_type=content_type, **meta, **extra)


HEADER_MATCHES = {
    "Content-Type": lambda ours, documented: ours.split(";")[0] == documented.split(";")[0],
    "Content-Disposition": lambda ours, documented: ours.startswith("attachment; filename="),
}


def check(example: Example, row: Row, response, *, expected_status: int, documented: Any = None) -> None:
    """The documented status, the documented shape and constants, the documented headers."""
    body = None
    if response.get("Content-Type", "").startswith("application/json"):
        body = response.json()
    assert response.status_code == expected_status, (
        f"{example.key} (line {example.line}): {response.status_code}, documented {expected_status}\n"
        f"{json.dumps(body, indent=1)[:1500] if body is not None else response.content[:300]}"
    )
    problems: list[str] = []
    documented = example.response if example.response is not None else documented
    if documented is not None and expected_status < 400:
        problems += shape_problems(documented, body, "", row)
        problems += constant_problems(documented, body, row, write=example.method != "GET")
    for name, value in example.response_headers.items():
        if name in row.absent:
            continue
        ours = response.get(name)
        if ours is None:
            problems.append(f"header {name}: missing (documented {value!r})")
        elif not HEADER_MATCHES.get(name, lambda ours, documented: True)(ours, value):
            problems.append(f"header {name}: {ours!r}, documented {value!r}")
    assert not problems, f"{example.key} (line {example.line}):\n  " + "\n  ".join(problems)


def table_problems(document: str, found: list[Example], table: dict[str, Row]) -> list[str]:
    keys = [e.key for e in found]
    missing = [k for k in keys if k not in table]
    stale = [k for k in table if k not in keys]
    return [f"example without a row in the table: {k!r}" for k in missing] + [
        f"row for an example {document} no longer has: {k!r}" for k in stale
    ]


def parametrize(test: str, document: str, found: list[Example], table: dict[str, Row], *, http: bool) -> list:
    """``pytest.param``s of a document's HTTP examples (or its WebSocket ones) for the test
    ``test`` ("test_module::test_function"); a row's ``skip`` is shown with its reason."""
    import pytest

    params = []
    for example in found:
        if (example.method == "WS") == http:
            continue
        EXAMPLE_DOCUMENTS[(test, example.key)] = document
        row = table.get(example.key)
        marks = [pytest.mark.skip(reason=row.skip)] if row is not None and row.skip else []
        params.append(pytest.param(example, id=example.key, marks=marks))
    return params


def run_http(
    example: Example,
    table: dict[str, Row],
    world: Any,
    client: Any,
    *,
    defaults: dict[str, str],
    id_form: Callable[[str, Any], Any] = lambda kind, value: value,
    shapes: dict | None = None,
    **extra: Any,
):
    """Send ``example`` as written (ids replaced) and check the answer; returns the response."""
    row = table.get(example.key)
    assert row is not None, f"add a row for {example.key!r} to the table"
    for kind in row.needs:
        world.get(kind)
    if row.setup is not None:
        row.setup(world)
    path, headers, body = request_of(example, row, world, defaults, id_form)
    form = multipart_of(example, row, world)
    if form is not None:
        meta = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items() if k.lower() != "content-type"}
        response = client.generic(example.method, path, **_encoded(form), **meta, **extra)
    else:
        response = send(client, example.method, path, headers, body, **extra)
    expected = row.status or (example.statuses[0] if example.statuses else 200)
    check(example, row, response, expected_status=expected, documented=(shapes or {}).get(row.shape))
    if row.then is not None:
        row.then(world, response)
    return response


def _encoded(form: dict[str, Any]) -> dict[str, Any]:
    from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

    return {"data": encode_multipart(BOUNDARY, form), "content_type": MULTIPART_CONTENT}


def new_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"
