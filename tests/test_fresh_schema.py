"""A new catalog is made from `catalog/fresh.py` in one go, not by replaying every
migration: that statement must be in step with the migrations, and a catalog made from
it must equal one migrated from empty, object by object."""

from __future__ import annotations

from pathlib import Path

import duckdb

from conftest import do_scan, rows
from mediaforge.catalog import fresh
from mediaforge.catalog.schema import SCHEMA_VERSION, render_fresh, schema_statements
from mediaforge.catalog.store import Catalog

FRESH_PY = Path(fresh.__file__)


def _describe(path: Path) -> dict[str, object]:
    """Everything a user's SQL or MediaForge could tell apart in an empty catalog."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {
            "statements": schema_statements(con),
            "columns": con.execute(
                "SELECT table_name, column_index, column_name, data_type, column_default, is_nullable "
                "FROM duckdb_columns() WHERE schema_name = 'main' ORDER BY ALL").fetchall(),
            "constraints": con.execute(
                "SELECT table_name, constraint_type, constraint_text, constraint_column_names "
                "FROM duckdb_constraints() WHERE schema_name = 'main' ORDER BY ALL").fetchall(),
            "views": con.execute("SELECT view_name, sql FROM duckdb_views() WHERE schema_name = 'main' "
                                 "AND NOT internal ORDER BY ALL").fetchall(),
            "meta": con.execute("SELECT key, value FROM meta ORDER BY ALL").fetchall(),
        }
    finally:
        con.close()


def test_fresh_py_is_in_step_with_the_migrations() -> None:
    assert fresh.VERSION == SCHEMA_VERSION, "a migration was added: run `python scripts/fresh_schema.py`"
    assert FRESH_PY.read_text() == render_fresh(), "the schema moved: run `python scripts/fresh_schema.py`"


def test_a_new_catalog_equals_one_migrated_from_empty(tmp_path: Path) -> None:
    made = tmp_path / "made.duckdb"
    Catalog.open(made).close()
    migrated = tmp_path / "migrated.duckdb"
    con = duckdb.connect(str(migrated))
    try:
        Catalog(migrated, con, read_only=False)._migrate(0)
    finally:
        con.close()
    a, b = _describe(made), _describe(migrated)
    for key in a:
        assert a[key] == b[key], key
    assert ("schema_version", str(SCHEMA_VERSION)) in a["meta"]


def test_a_new_catalog_takes_a_scan_and_reopens(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.txt").write_bytes(b"a")
    (root / "b.xmp").write_bytes(b"<x/>")
    catalog = tmp_path / "c.duckdb"
    do_scan(catalog, root)
    do_scan(catalog, root)
    got = rows(catalog, "SELECT name, status, last_scan_id FROM files ORDER BY name")
    assert [(r["name"], r["status"], r["last_scan_id"]) for r in got] == [("a.txt", "present", 2),
                                                                           ("b.xmp", "present", 2)]
    assert rows(catalog, "SELECT count(*) AS n FROM library")[0]["n"] == 2
    assert rows(catalog, "SELECT count(*) AS n FROM sidecar_links")[0]["n"] == 0
    # Stored as the schema asks (digests as they are, names with zstd), not as DuckDB would pick.
    assert rows(catalog, "SELECT DISTINCT column_name AS c, compression FROM pragma_storage_info('files') "
                "WHERE column_name IN ('name', 'blake3') AND segment_type = 'VARCHAR' ORDER BY 1") == [
        {"c": "blake3", "compression": "Uncompressed"}, {"c": "name", "compression": "ZSTD"}]
