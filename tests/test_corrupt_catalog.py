"""A catalog file damaged on disk: one line, exit 5, for reads and scans alike."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conftest import MediaTree, assert_one_line_error, do_scan, run_cli
from mediaforge.errors import ExitCode


@pytest.mark.parametrize("command", [("stats",), ("query", "SELECT count(*) FROM files"), ("scan", "ROOT")])
def test_damaged_blocks_give_exit_5(media_tree: MediaTree, tmp_path: Path, command: tuple[str, ...]) -> None:
    good = tmp_path / "good.duckdb"
    do_scan(good, media_tree.root)
    bad = tmp_path / "bad.duckdb"
    shutil.copyfile(good, bad)
    size = bad.stat().st_size
    with open(bad, "r+b") as f:
        # Keep DuckDB's three 4 KiB headers, garble every block after them: the file opens,
        # and the first read of a block fails its checksum.
        f.seek(3 * 4096)
        f.write(os.urandom(size - 3 * 4096))
    args = [os.fsdecode(media_tree.root) if a == "ROOT" else a for a in command]
    res = run_cli(*args, catalog=bad)
    assert res.rc == ExitCode.CATALOG_INVALID, res
    assert_one_line_error(res.err)
    assert "damaged" in res.err or "not a readable" in res.err, res.err


@pytest.mark.parametrize("command", [("stats",), ("scan", "ROOT")])
def test_a_truncated_catalog_gives_exit_5(media_tree: MediaTree, tmp_path: Path, command: tuple[str, ...]) -> None:
    good = tmp_path / "good.duckdb"
    do_scan(good, media_tree.root)
    bad = tmp_path / "bad.duckdb"
    with open(good, "rb") as src, open(bad, "wb") as dst:
        dst.write(src.read(good.stat().st_size // 2))  # a copy cut short: a full disk, a killed cp
    before = bad.read_bytes()
    args = [os.fsdecode(media_tree.root) if a == "ROOT" else a for a in command]
    res = run_cli(*args, catalog=bad)
    assert res.rc == ExitCode.CATALOG_INVALID, res
    assert_one_line_error(res.err)
    assert "damaged" in res.err or "not a readable" in res.err, res.err
    assert bad.read_bytes() == before  # left as it was, for recovery


def test_a_schema_version_that_is_not_a_number_gives_exit_5(media_tree: MediaTree, tmp_path: Path) -> None:
    import duckdb

    cat = tmp_path / "cat.duckdb"
    do_scan(cat, media_tree.root)
    with duckdb.connect(str(cat)) as con:
        con.execute("UPDATE meta SET value = 'seven' WHERE key = 'schema_version'").fetchall()
    res = run_cli("stats", catalog=cat)
    assert res.rc == ExitCode.CATALOG_INVALID, res
    assert_one_line_error(res.err)
    assert "schema_version" in res.err
