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
