"""A scan with threads to spare writes batches of new rows on several connections at
once: the catalog it leaves is the one a single writer leaves, and a rescan, a full disk
or a kill mid-write finds it as sound."""

from __future__ import annotations

import os
from pathlib import Path

import blake3
import pytest

from conftest import do_scan, files_by_path, rows
from mediaforge.scan.engine import writer_count


def test_writers_grow_with_threads_to_spare() -> None:
    # The 2-core machine the benchmarks target keeps one writer: a second takes a core
    # from the walk there.
    assert [writer_count(n) for n in (1, 2, 3, 4, 7, 8, 12, 16, 64)] == [1, 1, 1, 1, 1, 2, 3, 4, 4]


def _tree(root: Path, folders: int, per: int, salt: bytes = b"") -> dict[bytes, str]:
    expected = {}
    for d in range(folders):
        (root / f"d{d:02d}").mkdir(parents=True, exist_ok=True)
        for i in range(per):
            p = root / f"d{d:02d}" / f"IMG_{i:04d}.jpg"
            data = b"\xff\xd8\xff\xe0" + salt + f"{d}/{i}".encode() * (1 + i % 7)
            p.write_bytes(data)
            expected[os.fsencode(p)] = blake3.blake3(data).hexdigest()
    return expected


_COLS = ("size", "mtime_ns", "inode", "kind", "mime", "blake3", "status", "first_scan_id", "last_scan_id")


def test_a_first_scan_written_by_four_connections_equals_one_written_by_one(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    expected = _tree(lib, 12, 150)
    one, four = tmp_path / "one.duckdb", tmp_path / "four.duckdb"
    # batch_rows 40: 45 batches, so the four writers overlap.
    s1 = do_scan(one, lib, threads=1, batch_rows=40)
    s4 = do_scan(four, lib, threads=16, batch_rows=40)
    assert (s4.new, s4.files_seen, s4.errors) == (s1.new, s1.files_seen, s1.errors) == (len(expected), len(expected), 0)
    a, b = files_by_path(one), files_by_path(four)
    assert {p: r["blake3"] for p, r in b.items()} == expected
    assert {p: tuple(r[c] for c in _COLS) for p, r in a.items()} == {p: tuple(r[c] for c in _COLS) for p, r in b.items()}
    assert len({r["media_id"] for r in b.values()}) == len(expected)
    assert rows(four, "SELECT status, files_seen, new_files, errors FROM scans") == [
        {"status": "completed", "files_seen": len(expected), "new_files": len(expected), "errors": 0}]

    # A rescan finds every row; new files beside changed ones (batches that only add
    # rows, written side by side, and batches that update rows, written in turn) land.
    s = do_scan(four, lib, threads=16, batch_rows=40)
    assert (s.unchanged, s.new, s.changed, s.missing) == (len(expected), 0, 0, 0)
    more = _tree(lib / "new", 6, 150, salt=b"new")
    changed = sorted(expected)[::50]
    for p in changed:
        with open(p, "ab") as f:
            f.write(b"more")
        with open(p, "rb") as f:
            expected[p] = blake3.blake3(f.read()).hexdigest()
    expected.update(more)
    before = {p: r["media_id"] for p, r in b.items()}
    s = do_scan(four, lib, threads=16, batch_rows=40)
    assert (s.new, s.changed, s.missing, s.errors) == (len(more), len(changed), 0, 0)
    after = files_by_path(four)
    assert {p: r["blake3"] for p, r in after.items()} == expected
    assert all(after[p]["media_id"] == m for p, m in before.items())
    assert len({r["media_id"] for r in after.values()}) == len(expected)
