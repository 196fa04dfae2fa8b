"""Test-restore verification: scratch restore, row counts, read-only assertions."""

from __future__ import annotations

import pytest

from backups.engines import database_exists
from backups.engines.base import EngineError
from backups.engines.mysql import mysqldump_source
from backups.engines.postgres import pg_dump_source
from backups.engines.testrestore import run_assertions, run_test_restore, table_row_counts


def _dump(source) -> bytes:  # type: ignore[no-untyped-def]
    with source:
        data = b"".join(iter(lambda: source.read(1 << 16), b""))
        source.finish()
    return data


def test_postgres_test_restore(pg_source, pg_params):
    counts = table_row_counts(pg_source)
    assert counts == {"public.Contacts": 2, "public.customers": 50, "public.invoices": 20}
    report = run_test_restore(
        pg_params,
        _dump(pg_dump_source(pg_source)),
        assertions=[
            {"sql": "SELECT count(*) FROM customers", "expect": 50},
            {"sql": "select count(*) from customers;", "expect": 49},
            {"sql": "SELECT max(email) FROM customers WHERE id = 1", "expect": "user1@example.com"},
            {"sql": "SELECT count(*) FROM no_such_table", "expect": 0},
        ],
    )
    assert report["row_counts"] == counts and report["total_rows"] == 72
    assert [a["passed"] for a in report["assertions"]] == [True, False, True, False]
    assert report["assertions"][1]["actual"] == 50
    assert "no_such_table" in report["assertions"][3]["error"]
    assert report["passed"] is False
    assert report["duration_seconds"] >= report["restore_seconds"] > 0
    assert not database_exists(pg_params, report["database"])


def test_mysql_test_restore(my_source, my_params):
    report = run_test_restore(
        my_params,
        _dump(mysqldump_source(my_source)),
        assertions=[{"sql": "SELECT COUNT(*) FROM customers", "expect": 40}],
    )
    name = report["database"]
    assert report["row_counts"] == {f"{name}.audit_log": 40, f"{name}.customers": 40}
    assert report["passed"] is True
    assert not database_exists(my_params, name)


@pytest.mark.parametrize(
    "sql",
    [
        "DROP TABLE customers",
        "SELECT 1; DROP TABLE customers",
        "DELETE FROM customers",
        "-- hidden\nDROP TABLE customers",
        "SELECT * FROM customers FOR UPDATE",
        "",
    ],
)
def test_non_select_is_refused(pg_source, my_source, sql):
    for params in (pg_source, my_source):
        with pytest.raises(EngineError) as info:
            run_assertions(params, [{"sql": "SELECT 1", "expect": 1}, {"sql": sql, "expect": 1}])
        assert info.value.code == "invalid_assertion"
    assert table_row_counts(pg_source)["public.customers"] == 50


def test_writing_cte_is_stopped_by_the_read_only_transaction(pg_source):
    [result] = run_assertions(
        pg_source,
        [
            {
                "sql": "WITH d AS (DELETE FROM customers RETURNING 1) SELECT count(*) FROM d",
                "expect": 50,
            }
        ],
    )
    assert result["passed"] is False and "read-only" in result["error"]
    assert table_row_counts(pg_source)["public.customers"] == 50
