"""Read the documented examples out of the five API documents (``shared/spec/seeds/``).

Each document writes its examples its own way; ``examples(name)`` turns them into one shape,
``Example``: the request as written (method, path with its query, headers, body) and what the
document shows of the answer (a JSON body, headers, status codes). The tests send the request
as written, replacing only ids, and hold the answer to what the document shows.

- ``db-backup-platform.md``: an ``http`` block (``METHOD /path``, headers, a JSON body), then
  ``**Response:**`` and a ``json`` block; paths are relative to ``/api/v1``.
- ``workspace-backup-api.md``: an ``http`` block with the request line, then
  ``**Request Body:**`` and ``**Response:**`` blocks (JSON, or headers for a download).
- ``api-layer.md``: ``curl`` commands in ``bash`` blocks.
- ``acronis-integration.md``: ``### METHOD /path`` headings with ``**Request Body:**`` and
  ``**Response:**`` (or "Same as POST"), and the ``curl`` commands of "Testing the API".
- ``system-backup-recovery.rst``: ``.. http:get:: /path`` directives with ``:statuscode:``
  fields and ``**Request:**``/``**Response:**`` followed by ``.. sourcecode:: json``;
  ``.. websocket:: /path`` directives are examples of kind ``WS``.
"""

from __future__ import annotations

import json
import re
import shlex
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
SEED_CANDIDATES = [ROOT.parent / "shared" / "spec" / "seeds", ROOT / "shared" / "spec" / "seeds"]
SEEDS = next((p for p in SEED_CANDIDATES if p.exists()), SEED_CANDIDATES[0])

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass
class Example:
    """One documented request and what the document shows of its answer."""

    document: str
    title: str
    line: int
    method: str
    path: str  # as written, with its query string; "/api/v1" prefix added where the document omits it
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # parsed JSON, or None
    raw_body: str | None = None  # the body as written when it is not JSON (multipart)
    response: Any = None  # parsed JSON of the documented answer, or None
    response_headers: dict[str, str] = field(default_factory=dict)
    statuses: list[int] = field(default_factory=list)  # where the document names them
    host: str | None = None  # "localhost:5000" where a curl command names one
    key: str = ""  # "METHOD path", with " [2]" for the second example of the same request

    @property
    def url_path(self) -> str:
        return urlsplit(self.path).path

    @property
    def query(self) -> str:
        return urlsplit(self.path).query


# --- JSON as the documents write it ---------------------------------------------------------


def _strip_comments(text: str) -> str:
    """Remove ``// ...`` comments outside strings (the workspace document annotates a body)."""
    out, in_string, escaped, i = [], False, False, 0
    while i < len(text):
        ch = text[i]
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif text.startswith("//", i):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def loose_json(text: str) -> Any:
    """JSON as documents write it: ``// comments``, and ``{...}``/``[...]`` for "anything"."""
    text = _strip_comments(text)
    text = re.sub(r"\{\s*\.\.\.\s*\}", "{}", text)
    text = re.sub(r"\[\s*\.\.\.\s*\]", "[]", text)
    return json.loads(text)


def _json_or_none(text: str) -> Any:
    try:
        return loose_json(text)
    except ValueError:
        return None


def _fenced_blocks(lines: list[str]) -> list[tuple[int, int, str, str]]:
    """``(start line, end line, language, text)`` of each fenced block of a Markdown file."""
    blocks, i = [], 0
    while i < len(lines):
        match = re.match(r"^```(\w*)\s*$", lines[i])
        if match:
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            blocks.append((i, j, match.group(1), "\n".join(lines[i + 1 : j])))
            i = j + 1
        else:
            i += 1
    return blocks


def _headers(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        if ":" in line and not line.startswith(("{", "[", '"')):
            name, value = line.split(":", 1)
            out[name.strip()] = value.strip()
    return out


def _keyed(examples: list[Example]) -> list[Example]:
    seen: Counter = Counter()
    for example in examples:
        base = f"{example.method} {example.path}"
        seen[base] += 1
        example.key = base if seen[base] == 1 else f"{base} [{seen[base]}]"
    return examples


# --- curl -------------------------------------------------------------------------------------


def curl_commands(text: str) -> list[tuple[int, str]]:
    """``(line offset, command)`` of each ``curl`` command of a shell block (continuations joined)."""
    commands, current, start = [], "", 0
    for offset, line in enumerate(text.splitlines()):
        if not current:
            if not line.strip().startswith("curl "):
                continue
            start = offset
            current = line.strip()
        else:
            current += "\n" + line
        if current.endswith("\\"):  # a line continuation: the shell joins the lines
            current = current[:-1].rstrip() + " "
            continue
        try:
            shlex.split(current)
        except ValueError:  # a quoted body spans lines
            continue
        commands.append((start, current))
        current = ""
    return commands


@dataclass
class Curl:
    method: str
    url: str
    headers: dict[str, str]
    data: str | None


def parse_curl(command: str) -> Curl:
    words = shlex.split(command)
    assert words[0] == "curl", command
    method, url, headers, data, i = None, None, {}, None, 1
    while i < len(words):
        word = words[i]
        if word in ("-X", "--request"):
            method, i = words[i + 1], i + 2
        elif word in ("-H", "--header"):
            name, value = words[i + 1].split(":", 1)
            headers[name.strip()] = value.strip()
            i += 2
        elif word in ("-d", "--data", "--data-raw"):
            data, i = words[i + 1], i + 2
        elif word.startswith("-"):
            i += 1
        else:
            url, i = word, i + 1
    assert url, command
    return Curl(method or ("POST" if data is not None else "GET"), url, headers, data)


def _curl_example(document: str, title: str, line: int, command: str) -> Example:
    curl = parse_curl(command)
    parts = urlsplit(curl.url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return Example(
        document=document,
        title=title,
        line=line,
        method=curl.method,
        path=path,
        headers=curl.headers,
        body=None if curl.data is None else loose_json(curl.data),
        host=parts.netloc,
    )


# --- per document -----------------------------------------------------------------------------


def _markdown_http(document: str, text: str, prefix: str) -> list[Example]:
    """db-backup-platform.md and workspace-backup-api.md: request blocks and their answers."""
    lines = text.splitlines()
    blocks = _fenced_blocks(lines)
    examples: list[Example] = []
    title = ""
    for index, (start, end, lang, body) in enumerate(blocks):
        first = body.strip().splitlines()[0] if body.strip() else ""
        match = re.match(rf"^({'|'.join(METHODS)})\s+(\S+)$", first)
        if lang != "http" or not match:
            continue
        for k in range(start, -1, -1):
            if lines[k].startswith("#"):
                title = lines[k].lstrip("#").strip()
                break
        rest = body.strip().splitlines()[1:]
        split = next((n for n, line in enumerate(rest) if not line.strip()), len(rest))
        example = Example(
            document=document,
            title=title,
            line=start + 1,
            method=match.group(1),
            path=match.group(2) if match.group(2).startswith(prefix) else prefix + match.group(2),
            headers=_headers(rest[:split]),
        )
        if rest[split + 1 :]:
            example.body = loose_json("\n".join(rest[split + 1 :]))
        # What follows, up to the next request block: "**Request Body:**" / "**Response:**".
        following = [b for b in blocks[index + 1 :]]
        for b_start, b_end, b_lang, b_text in following:
            if b_lang == "http" and re.match(rf"^({'|'.join(METHODS)})\s", b_text.strip()):
                break
            between = "\n".join(lines[end:b_start])
            if "**Request Body:**" in between.split("**Response")[0] and example.body is None:
                example.body = loose_json(b_text)
            elif "**Response" in between:
                parsed = _json_or_none(b_text)
                if parsed is not None:
                    example.response = parsed
                else:
                    example.response_headers = _headers(b_text.splitlines())
                break
            end = b_end
        examples.append(example)
    return examples


def _markdown_websockets(document: str, text: str) -> list[Example]:
    """A ``ws://host/path`` named in a Markdown document, with the JSON messages shown after it
    (up to the next ``##`` section): one example of kind ``WS``."""
    lines = text.splitlines()
    blocks = _fenced_blocks(lines)
    examples = []
    for n, line in enumerate(lines):
        match = re.search(r"ws://([^/\s`]+)(/[^\s`]*)", line)
        if not match:
            continue
        stop = next((k for k in range(n + 1, len(lines)) if lines[k].startswith("## ")), len(lines))
        messages = [
            v
            for b_start, _e, lang, b_text in blocks
            if n < b_start < stop and lang == "json" and isinstance(v := _json_or_none(b_text), dict)
        ]
        title = next(lines[k].lstrip("#").strip() for k in range(n, -1, -1) if lines[k].startswith("#"))
        examples.append(
            Example(
                document=document,
                title=title,
                line=n + 1,
                method="WS",
                path=match.group(2),
                response=messages,
                host=match.group(1),
            )
        )
    return examples


def _api_layer(document: str, text: str) -> list[Example]:
    lines = text.splitlines()
    examples = []
    for start, _end, lang, body in _fenced_blocks(lines):
        if lang != "bash":
            continue
        title = next(lines[k].lstrip("#").strip() for k in range(start, -1, -1) if lines[k].startswith("#"))
        for offset, command in curl_commands(body):
            examples.append(_curl_example(document, title, start + 2 + offset, command))
    return examples


def _acronis(document: str, text: str) -> list[Example]:
    lines = text.splitlines()
    blocks = _fenced_blocks(lines)
    examples: list[Example] = []
    headings = [(n, m) for n, line in enumerate(lines) if (m := re.match(rf"^### ({'|'.join(METHODS)}) (/\S+)$", line))]
    by_method_path: dict[tuple[str, str], Example] = {}
    for h_index, (n, match) in enumerate(headings):
        stop = headings[h_index + 1][0] if h_index + 1 < len(headings) else len(lines)
        section = "\n".join(lines[n:stop])
        example = Example(
            document=document, title=match.group(0)[4:], line=n + 1, method=match.group(1), path=match.group(2)
        )
        section_blocks = [b for b in blocks if n < b[0] < stop]
        for b_start, _b_end, _lang, b_text in section_blocks:
            label = "\n".join(lines[n:b_start]).rsplit("**", 2)[-2] if "**" in "\n".join(lines[n:b_start]) else ""
            if label.startswith("Request Body") and example.body is None:
                example.body = loose_json(b_text)
            elif label.startswith("Response") and example.response is None:
                example.response = _json_or_none(b_text)
        same = re.findall(r"\*\*(Request Body|Response):\*\* Same as (\w+)", section)
        for what, method in same:
            other = by_method_path[(method, example.path)]
            if what == "Request Body":
                example.body = other.body
            else:
                example.response = other.response
        by_method_path[(example.method, example.path)] = example
        examples.append(example)
    # "Testing the API": the curl commands.
    for start, _end, lang, body in blocks:
        if lang == "bash":
            for offset, command in curl_commands(body):
                examples.append(_curl_example(document, "Using curl", start + 2 + offset, command))
    return examples


def _rst_block(lines: list[str], start: int) -> tuple[str, int]:
    """The indented block after a ``.. sourcecode::`` line; ``(text, next line)``."""
    indent = len(lines[start]) - len(lines[start].lstrip())
    out, i = [], start + 1
    while i < len(lines):
        line = lines[i]
        if line.strip() and (len(line) - len(line.lstrip())) <= indent:
            break
        out.append(line)
        i += 1
    return textwrap.dedent("\n".join(out)).strip("\n"), i


def _split_json_values(text: str) -> list[Any]:
    """Several JSON objects written one after another (the WebSocket message examples)."""
    decoder, values, i, text = json.JSONDecoder(), [], 0, text.strip()
    while i < len(text):
        value, i = decoder.raw_decode(text, i)
        values.append(value)
        while i < len(text) and text[i].isspace():
            i += 1
    return values


def _console(document: str, text: str) -> list[Example]:
    lines = text.splitlines()
    examples: list[Example] = []
    directives = [
        (n, m)
        for n, line in enumerate(lines)
        if (m := re.match(r"^\.\. (http:(get|post|put|delete)|websocket):: (\S+)", line))
    ]
    for n, match in directives:
        # The directive's content is indented: the first line back at the margin ends it.
        stop = next((k for k in range(n + 1, len(lines)) if lines[k].strip() and not lines[k][0].isspace()), len(lines))
        title = lines[n - 2].strip() if n >= 2 else ""
        kind, path = match.group(1), match.group(3)
        method = "WS" if kind == "websocket" else match.group(2).upper()
        example = Example(document=document, title=title, line=n + 1, method=method, path=path)
        label = ""
        i = n + 1
        while i < stop:
            line = lines[i].strip()
            if status := re.match(r"^:statuscode (\d{3}):", line):
                example.statuses.append(int(status.group(1)))
            if header := re.match(r"^:(req|res)header ([\w-]+): (.*)$", line):
                if header.group(1) == "res":
                    example.response_headers[header.group(2)] = header.group(3)
                else:
                    example.headers[header.group(2)] = header.group(3)
            if line.startswith("**") and line.endswith(":**"):
                label = line.strip("*:")
            if line.startswith(".. sourcecode::"):
                block, i = _rst_block(lines, i)
                lang = line.split("::", 1)[1].strip()
                if label == "Request":
                    if lang == "json":
                        example.body = loose_json(block)
                    else:
                        example.raw_body = block
                elif label == "Response":
                    example.response = _json_or_none(block) if lang == "json" else None
                elif label == "Example Messages":
                    example.response = _split_json_values(block)
                continue
            i += 1
        examples.append(example)
    return examples


def examples(document: str) -> list[Example]:
    """Every example of ``document`` (a file name in ``shared/spec/seeds/``), in order."""
    text = (SEEDS / document).read_text()
    if document == "db-backup-platform.md":
        found = _markdown_http(document, text, "/api/v1") + _markdown_websockets(document, text)
    elif document == "workspace-backup-api.md":
        found = _markdown_http(document, text, "")
    elif document == "api-layer.md":
        found = _api_layer(document, text)
    elif document == "acronis-integration.md":
        found = _acronis(document, text) + _markdown_websockets(document, text)
    elif document == "system-backup-recovery.rst":
        found = _console(document, text)
    else:
        raise ValueError(document)
    return _keyed(found)


def documented_shapes(document: str) -> dict[str, Any]:
    """JSON blocks a document shows under a heading of their own ("### Paginated Response"):
    the shapes its examples' answers take where an example shows none."""
    lines = (SEEDS / document).read_text().splitlines()
    shapes = {}
    for start, _end, lang, text in _fenced_blocks(lines):
        heading = lines[start - 1] if start else ""
        if lang == "json" and heading.startswith("#") and (value := _json_or_none(text)) is not None:
            shapes[heading.lstrip("#").strip()] = value
    return shapes
