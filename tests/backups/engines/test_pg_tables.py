"""Restoring some tables of a PostgreSQL backup: the tables with their indexes, constraints,
defaults, sequences and triggers, the schema and types they need, and nothing else."""

from __future__ import annotations

import pytest

from backups.engines.base import EngineError
from backups.engines.postgres import connect, pg_database_exists, pg_dump_source, pg_restore_sink

from .helpers import transfer

SHOP = """
CREATE SCHEMA shop;
CREATE TYPE mood AS ENUM ('ok', 'bad');
CREATE TABLE owners (id serial PRIMARY KEY, name text);
CREATE TABLE items (id serial PRIMARY KEY, label text, owner int REFERENCES owners (id), m mood);
CREATE INDEX items_label_idx ON items (label);
COMMENT ON TABLE items IS 'things we sell';
CREATE TABLE shop.orders (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, item int REFERENCES items (id), note text DEFAULT 'x'
);
CREATE INDEX orders_note_idx ON shop.orders (note);
CREATE VIEW item_labels AS SELECT label FROM items;
CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.label := upper(NEW.label); RETURN NEW; END $$;
CREATE TRIGGER items_shout BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION shout();
INSERT INTO owners (name) VALUES ('ann'), ('bob');
INSERT INTO items (label, owner, m) SELECT 'item ' || n, 1 + n % 2, 'ok' FROM generate_series(1, 50) n;
INSERT INTO shop.orders (item) SELECT 1 + n % 50 FROM generate_series(1, 30) n;
"""


@pytest.fixture
def shop_db(pg_db):
    source = pg_db()
    with connect(source.with_database("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{source.database}"')
    with connect(source, autocommit=True) as conn:
        conn.execute(SHOP)
    return source


def one(params, query: str):
    with connect(params) as conn:
        return conn.execute(query).fetchone()[0]


def test_chosen_tables_come_back_with_what_hangs_on_them_and_nothing_else(shop_db, pg_db):
    target = pg_db()
    result = transfer(pg_dump_source(shop_db), pg_restore_sink(target, tables=["items", "shop.orders"]))
    assert result["tables"] == ["items", "shop.orders"]
    assert one(target, "SELECT count(*) FROM items") == 50
    assert one(target, "SELECT count(*) FROM shop.orders") == 30
    assert one(target, "SELECT to_regclass('owners')") is None  # not chosen
    assert one(target, "SELECT to_regclass('item_labels')") is not None  # its one table is here
    assert one(target, "SELECT to_regclass('items_label_idx')") is not None
    assert one(target, "SELECT to_regclass('shop.orders_note_idx')") is not None
    assert one(target, "SELECT obj_description('items'::regclass)") == "things we sell"
    constraints = {
        row[0]
        for row in connect(target).execute("SELECT conname FROM pg_constraint WHERE connamespace <> 11").fetchall()
    }
    assert {"items_pkey", "orders_pkey", "orders_item_fkey"} <= constraints
    assert "items_owner_fkey" not in constraints  # it points at owners, which was left out
    with connect(target, autocommit=True) as conn:  # sequence values, the default and the trigger
        row = conn.execute("INSERT INTO items (label, m) VALUES ('new', 'bad') RETURNING id, label").fetchone()
        assert row == (51, "NEW")
        assert conn.execute("INSERT INTO shop.orders (item) VALUES (51) RETURNING id, note").fetchone() == (31, "x")


def test_a_view_over_a_table_left_out_is_left_out_too(shop_db, pg_db):
    target = pg_db()
    transfer(pg_dump_source(shop_db), pg_restore_sink(target, tables=["owners"]))
    assert one(target, "SELECT count(*) FROM owners") == 2
    assert one(target, "SELECT to_regclass('items')") is None
    assert one(target, "SELECT to_regclass('item_labels')") is None
    assert one(target, "SELECT to_regclass('shop.orders')") is None


def test_a_table_the_backup_does_not_have_is_named_and_nothing_is_left(shop_db, pg_db):
    target = pg_db()
    with pytest.raises(EngineError) as refused:
        transfer(pg_dump_source(shop_db), pg_restore_sink(target, tables=["items", "invoices", "orders"]))
    assert refused.value.code == "tables_not_found"
    named, known = str(refused.value).split("It has")
    assert "invoices" in named and "orders" not in named  # "orders": the one in shop, the only one
    assert "public.items, public.owners, shop.orders" in known
    assert not pg_database_exists(target)


def test_the_backup_records_its_tables_for_choosing(shop_db):
    with pg_dump_source(shop_db) as source:
        assert source.info["tables"] == ["public.items", "public.owners", "shop.orders"]
        source.read(1 << 20)
