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
