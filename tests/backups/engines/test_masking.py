"""Masking on a restored copy: exactly the named columns change; the source never does."""

from __future__ import annotations

import hashlib

import pytest

from backups.engines.base import EngineError
from backups.engines.masking import apply_masking, parse_rules
from backups.engines.mysql import connect as my_connect
from backups.engines.mysql import mysql_restore_sink, mysqldump_source
from backups.engines.postgres import connect as pg_connect
from backups.engines.postgres import pg_dump_source, pg_restore_sink

from .helpers import mysql_plain_dump, pg_plain_dump, transfer

COLUMNS = "id, name, email, phone, balance, created, doc, avatar, note"


def _pg_rows(params, table="customers", columns=COLUMNS):  # type: ignore[no-untyped-def]
    with pg_connect(params) as conn:
        return {r[0]: r for r in conn.execute(f"SELECT {columns} FROM {table} ORDER BY id").fetchall()}


def _shape(value: str) -> str:
    return "".join("9" if c.isdigit() else "a" if c.isalpha() else c for c in value)


def _check_masked(before, after, *, email_len):  # type: ignore[no-untyped-def]
    assert before.keys() == after.keys()
    changed_phones = 0
    for key, old in before.items():
        new = after[key]
        _id, name, email, phone, balance, created, doc, avatar, note = new
        assert email == hashlib.sha256(old[2].encode()).hexdigest()[:email_len]
        assert len(phone) == len(old[3]) and phone.isdigit()
        changed_phones += phone != old[3]
        assert name == "REDACTED"
        assert note is None
        assert balance is not None and len(str(int(balance))) == len(str(int(old[4])))
        assert (_id, created, doc, avatar) == (old[0], old[5], old[6], old[7])  # untouched
    assert changed_phones >= len(before) - 1


RULES = {
    "EMAIL": "hash",
    "phone": "randomize",
    "note": "null",
    "name": {"type": "fixed", "value": "REDACTED"},
    "balance": "randomize",
    "id": "null",  # NOT NULL: reported, left as is
    "created": "hash",  # not text: reported, left as is
}


def test_postgres_masking(pg_source, pg_db):
    copy = pg_db()
    transfer(pg_dump_source(pg_source), pg_restore_sink(copy))
    source_dump = pg_plain_dump(pg_source)
    before = _pg_rows(copy)
    contacts_before = _pg_rows(copy, '"Contacts"', 'id, "EMAIL", kind')
    result = apply_masking(copy, RULES)

    _check_masked(before, _pg_rows(copy), email_len=40)
    contacts = _pg_rows(copy, '"Contacts"', 'id, "EMAIL", kind')
    assert contacts[1][1] == hashlib.sha256(b"a@x.org").hexdigest()  # text: not truncated
    assert contacts[2][1] is None  # NULL stays NULL
    assert [r[2] for r in contacts.values()] == [r[2] for r in contacts_before.values()]
    assert result["tables"]["public.customers"]["rows"] == 50
    assert sorted(result["tables"]["public.customers"]["columns"]) == [
        "balance",
        "email",
        "name",
        "note",
        "phone",
    ]
    assert result["tables"]["public.Contacts"]["columns"] == ["EMAIL"]
    skipped = {(s["table"], s["column"]) for s in result["skipped"]}
    assert ("public.customers", "id") in skipped and ("public.customers", "created") in skipped
    assert ("public.invoices", "id") in skipped
    assert result["errors"] == []
    assert pg_plain_dump(pg_source) == source_dump  # the source is never touched


def test_mysql_masking(my_source, my_db):
    copy = my_db()
    transfer(mysqldump_source(my_source), mysql_restore_sink(copy))
    source_dump = mysql_plain_dump(my_source)

    def rows(params):  # type: ignore[no-untyped-def]
        conn = my_connect(params)
        with conn.cursor() as cur:
            cur.execute(f"SELECT {COLUMNS} FROM customers ORDER BY id")
            out = {r[0]: r for r in cur.fetchall()}
        conn.close()
        return out

    before = rows(copy)
    result = apply_masking(copy, RULES)
    _check_masked(before, rows(copy), email_len=40)
    table = f"{copy.database}.customers"
    assert result["tables"][table]["rows"] == 40
    assert (table, "id") in {(s["table"], s["column"]) for s in result["skipped"]}
    assert mysql_plain_dump(my_source) == source_dump


def test_fixed_shorthand_and_invalid_rules():
    assert parse_rules({"Email": "fixed:x@y"})["email"].value == "x@y"
    with pytest.raises(EngineError, match="Unknown masking rule"):
        parse_rules({"email": "scramble"})
    with pytest.raises(EngineError, match="fixed needs a value"):
        parse_rules({"email": {"type": "fixed"}})
