"""The docs' examples run as written: every SQL statement in a ```sql block of the docs,
on a catalog of the sample library (scanned, extracted, tagged), through `query`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import run_cli

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _statements() -> list[tuple[str, str]]:
    out = []
    for doc in sorted(DOCS.glob("*.md")):
        for block in re.findall(r"```sql\n(.*?)```", doc.read_text(encoding="utf-8"), re.S):
            code = "\n".join(line for line in block.splitlines() if not line.lstrip().startswith("--"))
            out += [(doc.name, s.strip()) for s in code.split(";") if s.strip()]
    return out


STATEMENTS = _statements()


@pytest.fixture(scope="module")
def sample_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("docs")
    assert run_cli("sample", base / "lib").rc == 0
    catalog = base / "cat.duckdb"
    res = run_cli("scan", base / "lib", catalog=catalog)
    assert res.rc == 0, res.err
    res = run_cli("tag", "add", "places/france/paris", "--where", "kind = 'image'", catalog=catalog)
    assert res.rc == 0, res.err
    return catalog


def test_the_docs_hold_sql_examples() -> None:
    assert len(STATEMENTS) >= 9, STATEMENTS


@pytest.mark.parametrize("doc,sql", STATEMENTS, ids=[f"{d}:{i}" for i, (d, _) in enumerate(STATEMENTS)])
def test_a_docs_sql_example_runs(sample_catalog: Path, doc: str, sql: str) -> None:
    res = run_cli("query", sql, "--format", "json", catalog=sample_catalog)
    assert res.rc == 0, f"{doc}: {sql}\n{res.err}"
    if "places/france" in sql:
        assert res.out.count("path") >= 1, res.out  # the tagged sample pictures are found


def test_an_old_style_lambda_is_answered_with_the_way_to_write_it(sample_catalog: Path) -> None:
    res = run_cli("query", "SELECT list_filter([1, 2], x -> x > 1)", catalog=sample_catalog)
    assert res.rc == 6 and "write it `lambda x: ...`" in res.err, res.err
    assert "SET lambda_syntax" not in res.err and "For more information" not in res.err, res.err


def test_catalog_md_lists_each_tables_columns_in_the_catalogs_order(tmp_path: Path) -> None:
    """The schema is a public interface: docs/catalog.md lists every column of every table
    and view, with its type, in the order `SELECT *`, CSV and Parquet give them (a QA
    finding: four tables listed some in another order)."""
    from mediaforge.catalog import open_catalog
    from mediaforge.catalog.schema import ALL_TABLES

    text = (DOCS / "catalog.md").read_text(encoding="utf-8")
    sections = re.split(r"^#{2,3} ", text, flags=re.M)
    with open_catalog(tmp_path / "c.duckdb") as cat:
        for table in (*ALL_TABLES, "library", "sidecar_links"):
            if table == "meta":  # (keys and values: its rows are documented, not its two columns)
                continue
            (section,) = [s for s in sections if s.startswith(f"`{table}`")]
            documented: list[tuple[str, str]] = []
            for row in re.findall(r"^\| (`[^|]+`) \| ([^|]+) \|", section, flags=re.M):
                names = re.findall(r"`([^`]+)`", row[0])
                types = [t.strip() for t in row[1].split(",")]
                documented += [(n, types[min(k, len(types) - 1)]) for k, n in enumerate(names)]
            real = [(name, kind) for name, kind, *_ in cat.con.execute(f"DESCRIBE {table}").fetchall()]
            if documented:
                assert [n for n, _ in documented] == [n for n, _ in real], table
                assert [t for _, t in documented] == [t for _, t in real], table
                continue
            # Told in prose (the views, `search_docs`): each column named, in order.
            words = iter(re.findall(r"`([^`]+)`", section.split("Columns:", 1)[-1]))
            assert all(any(w == name for w in words) for name, _ in real), (table, [n for n, _ in real])
