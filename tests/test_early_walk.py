"""The CLI starts a scan's walk before its own imports; the scan command takes that walk
only when it is the one it would have started, and the result is the same either way."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_cli
from mediaforge.catalog import open_catalog
from mediaforge.cli import _scan_arguments
from mediaforge.config import default_catalog_path
from mediaforge.scan import ScanConfig, scan
from mediaforge.scan import launch
from mediaforge.scan.launch import claim_walk, start_early


def _tree(root: Path, files: int = 30) -> Path:
    for i in range(files):
        d = root / f"d{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.jpg").write_bytes(os.urandom(64 + i))
    return root


@pytest.mark.parametrize(
    ("argv", "expected", "catalog"),
    [
        (["scan", "a"], ScanConfig(roots=("a",)), None),
        (["-q", "--catalog", "/c.duckdb", "scan", "--json", "--no-meta", "-j", "2", "a", "b", "-e", "*.tmp",
          "--exclude=*.bak", "--no-index"],
         ScanConfig(roots=("a", "b"), threads=2, excludes=("*.tmp", "*.bak")), "/c.duckdb"),
        (["--catalog=/c", "scan", "--no-hash", "-L", "-x", "--no-ignore", "--prune", "--", "-odd name"],
         ScanConfig(roots=("-odd name",), hash=False, follow_symlinks=True, one_file_system=True, ignore_files=False,
                    prune=True), "/c"),
        (["scan", "--timeout", "5", "--thumb-size=128", "--no-thumbs", "a"], ScanConfig(roots=("a",)), None),
    ],
)
def test_a_plain_scan_command_line_is_read_for_its_walk(argv: list[str], expected: ScanConfig,
                                                        catalog: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDIAFORGE_THREADS", raising=False)
    got = _scan_arguments(argv)
    assert got is not None
    assert got[0] == expected
    assert str(got[1]) == (catalog if catalog is not None else str(default_catalog_path()))


@pytest.mark.parametrize("argv", [
    ["meta"], ["scan"], ["query", "scan"], ["scan", "--help", "a"], ["scan", "-j2", "a"], ["scan", "--bogus", "a"],
    ["--verbose", "scan", "a"], ["scan", "a", "--threads"],
])
def test_anything_else_starts_no_early_walk(argv: list[str]) -> None:
    assert _scan_arguments(argv) is None


def test_threads_come_from_the_environment_as_typer_reads_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIAFORGE_THREADS", "3")
    got = _scan_arguments(["scan", "a"])
    assert got is not None and got[0].threads == 3
    got = _scan_arguments(["scan", "-j", "1", "a"])
    assert got is not None and got[0].threads == 1


def test_the_scan_claims_only_its_own_walk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = _tree(tmp_path / "lib")
    cat_path = tmp_path / "cat.duckdb"
    config = ScanConfig(roots=(str(lib),), hash=True)

    # Another spelling of the same root and catalog: the early walk is the one.
    start_early(config, cat_path)
    early = launch._early
    monkeypatch.chdir(tmp_path)
    same = ScanConfig(roots=("lib/../lib/",), hash=True)
    walk = claim_walk(same, "cat.duckdb")
    assert walk is early and walk.config == same
    with open_catalog(cat_path) as cat:
        s = scan(cat, same, walk=walk)
    assert (s.new, s.hashed_files) == (30, 30)

    # Other options, or another catalog: a walk of their own, and the early one is stopped.
    for other, cat_other in ((ScanConfig(roots=(str(lib),), hash=True, excludes=("d0",)), cat_path),
                             (config, tmp_path / "other.duckdb")):
        start_early(config, cat_path)
        early = launch._early
        walk = claim_walk(other, cat_other)
        assert walk is not early and walk.config == other
        with pytest.raises(StopIteration):
            early.scanner.poll(0.0)
        with open_catalog(cat_other) as cat:
            s = scan(cat, other, walk=walk)
        assert s.files_seen == (20 if other.excludes else 30)
    assert launch._early is None


def test_a_cli_scan_gives_the_same_catalog_with_options_spelled_any_way(tmp_path: Path) -> None:
    lib = _tree(tmp_path / "lib")
    rows = []
    for i, args in enumerate((["--no-meta", "-e", "d1", str(lib)], [str(lib), "--exclude=d1", "--no-meta"])):
        cat = tmp_path / f"c{i}.duckdb"
        r = run_cli("--catalog", cat, "scan", "--json", *args)
        assert r.rc == 0, r.err
        q = run_cli("--catalog", cat, "query", "SELECT name, blake3 FROM files ORDER BY name", "--format", "csv")
        rows.append(q.out)
    assert rows[0] == rows[1] and rows[0].count("\n") == 21


def test_a_usage_error_after_the_walk_started_ends_at_once(tmp_path: Path) -> None:
    lib = _tree(tmp_path / "lib", files=300)
    started = time.monotonic()
    r = run_cli("--catalog", tmp_path / "c.duckdb", "scan", "--timeout", "soon", lib)
    assert r.rc == 2
    assert_one_line_error(r.err, "timeout")
    assert time.monotonic() - started < 30
    assert not (tmp_path / "c.duckdb").exists()
