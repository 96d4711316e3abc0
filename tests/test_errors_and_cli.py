"""The command line end to end: per-path problems become scan_errors rows (never an
abort), bad input becomes one line on stderr with a documented exit code, and the
query/export/stats outputs are what other tools can read."""

from __future__ import annotations

import base64
import csv
import errno
import io
import json
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from conftest import (
    MediaTree,
    Unprivileged,
    assert_one_line_error,
    cli_cmd,
    cli_env,
    do_scan,
    files_by_path,
    rows,
    run_cli,
)

from mediaforge.catalog.schema import SCHEMA_VERSION
from mediaforge.errors import ExitCode

# --------------------------------------------------------------------------------------
# Folders that cannot be read.
# --------------------------------------------------------------------------------------


def _scan_unprivileged(unprivileged: Unprivileged, catalog: Path, root: Path,
                       *args: str) -> subprocess.CompletedProcess:
    unprivileged.share(catalog.parent)
    return subprocess.run(cli_cmd("scan", root, "--json", *args), env=cli_env(catalog), capture_output=True,
                          timeout=120, **unprivileged.popen)


def _scan_unprivileged_json(unprivileged: Unprivileged, catalog: Path, root: Path, *args: str) -> dict:
    """An unprivileged scan that must end well: its JSON summary."""
    p = _scan_unprivileged(unprivileged, catalog, root, *args)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.fixture
def locked_library(catalog_path: Path, media_tree: MediaTree):  # noqa: ANN201
    """The media tree, cataloged once with full rights, plus a `Private` folder of photos."""
    private = media_tree.root / "Private"
    (private / "Album").mkdir(parents=True)
    (private / "a.jpg").write_bytes(b"\xff\xd8\xff" + b"a" * 100)
    (private / "Album" / "b.jpg").write_bytes(b"\xff\xd8\xff" + b"b" * 100)
    do_scan(catalog_path, media_tree.root)
    yield media_tree, private
    for d in (private, private / "Album"):
        if d.exists():
            os.chmod(d, 0o755)


@pytest.mark.parametrize(
    "mode",
    [0o000, 0o300, 0o644],
    ids=["no-access", "cannot-list", "can-list-cannot-enter"],
)
def test_unreadable_folder_is_an_error_row_and_its_files_stay_present(
    locked_library, catalog_path: Path, unprivileged: Unprivileged, mode: int,
) -> None:
    media_tree, private = locked_library
    private_files = {os.fsencode(private / "a.jpg"), os.fsencode(private / "Album" / "b.jpg")}
    os.chmod(private, mode)
    p = _scan_unprivileged(unprivileged, catalog_path, media_tree.root)
    os.chmod(private, 0o755)
    assert p.returncode == 0, p.stderr
    assert p.stderr.decode().strip() == ""
    summary = json.loads(p.stdout)
    assert summary["errors"] >= 1
    assert summary["missing"] == 0, "files below an unreadable folder were marked missing"

    got = files_by_path(catalog_path)
    for f in private_files:
        assert got[f]["status"] == "present" and got[f]["missing_since"] is None, f
    others = set(got) - private_files
    assert all(got[f]["status"] == "present" for f in others)
    # Seen by the first scan only: the second could not look (last_seen, last_scan_id stay).
    assert all(got[f]["last_scan_id"] == 1 for f in private_files)
    assert all(got[f]["last_scan_id"] == 2 for f in others)

    errs = rows(catalog_path, "SELECT * FROM scan_errors WHERE scan_id = 2")
    assert errs, "no scan_errors row for the unreadable folder"
    assert all(e["errno"] == errno.EACCES and "ermission denied" in e["message"] for e in errs)
    under = [bytes(e["path_bytes"]) for e in errs]
    assert all(b == os.fsencode(private) or b.startswith(os.fsencode(private) + b"/") for b in under)
    scan = rows(catalog_path, "SELECT status, errors FROM scans WHERE scan_id = 2")[0]
    assert scan == {"status": "completed", "errors": len(errs)}


def test_unreadable_file_keeps_its_row_without_a_digest(tmp_path: Path, catalog_path: Path,
                                                        unprivileged: Unprivileged) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "ok.jpg").write_bytes(b"\xff\xd8\xff ok")
    secret = lib / "secret.jpg"
    secret.write_bytes(b"\xff\xd8\xff secret")
    os.chmod(secret, 0o000)
    p = _scan_unprivileged(unprivileged, catalog_path, lib)
    assert p.returncode == 0, p.stderr
    row = files_by_path(catalog_path)[os.fsencode(secret)]
    assert row["status"] == "present" and row["blake3"] is None
    errs = rows(catalog_path, "SELECT stage, errno, path FROM scan_errors")
    assert errs == [{"stage": "hash", "errno": errno.EACCES, "path": str(secret)}]


def test_a_scan_that_could_not_read_a_folder_prunes_nothing(tmp_path: Path, catalog_path: Path,
                                                            unprivileged: Unprivileged) -> None:
    """A QA finding: `--prune` deleted a missing row below a folder the scan could not read,
    and, a scan later, the row (and tag) of a file moved into it. Such a scan prunes
    nothing, as one that left paths out, and says why; once the folder reads again, the
    moved file keeps its id and tag, and a prune takes what is really gone."""
    lib = tmp_path / "lib"
    (lib / "d").mkdir(parents=True)
    (lib / "d" / "a.jpg").write_bytes(b"\xff\xd8\xff a")
    (lib / "x.jpg").write_bytes(b"\xff\xd8\xff x")
    do_scan(catalog_path, lib)
    (lib / "d" / "a.jpg").unlink()
    do_scan(catalog_path, lib)
    assert run_cli("tag", "add", "keep", lib / "x.jpg", catalog=catalog_path).rc == 0
    ids = {r["name"]: r["media_id"] for r in rows(catalog_path, "SELECT name, media_id::VARCHAR AS media_id FROM files")}
    os.rename(lib / "x.jpg", lib / "d" / "x.jpg")
    os.chmod(lib / "d", 0o000)
    try:
        unprivileged.share(catalog_path.parent)
        for _ in range(2):
            p = subprocess.run(cli_cmd("scan", lib, "--prune", "--json"), env=cli_env(catalog_path),
                               capture_output=True, timeout=120, **unprivileged.popen)
            assert p.returncode == 0, p.stderr
            got = json.loads(p.stdout)
            assert (got["pruned"], got["prune_skipped"], got["prune_skipped_why"]) == (0, True, "unread"), got
        p = subprocess.run(cli_cmd("scan", lib, "--prune"), env=cli_env(catalog_path), capture_output=True,
                           timeout=120, **unprivileged.popen)
        assert "--prune did nothing: this scan could not read a folder" in p.stdout.decode(), p.stdout
        assert {r["name"] for r in rows(catalog_path, "SELECT name FROM files")} == {"a.jpg", "x.jpg"}
    finally:
        os.chmod(lib / "d", 0o755)
    got = json.loads(run_cli("scan", lib, "--prune", "--json", catalog=catalog_path).out)
    assert (got["pruned"], got["prune_skipped"], got["prune_skipped_why"]) == (1, False, ""), got
    (row,) = rows(catalog_path, "SELECT path, status, media_id::VARCHAR AS media_id FROM files")
    assert row == {"path": str(lib / "d" / "x.jpg"), "status": "present", "media_id": ids["x.jpg"]}
    assert [r["tag"] for r in rows(catalog_path, "SELECT tag FROM tags")] == ["keep"]



def test_a_folder_no_scan_could_read_holds_back_only_what_may_have_moved_in(tmp_path: Path, catalog_path: Path,
                                                                            unprivileged: Unprivileged) -> None:
    """A folder no scan could ever read (`lost+found`, root's alone at the top of every ext4
    disk) must not hold back every prune: a row last seen after its last change is pruned.
    A file moved into such a folder since it was last seen changed the folder's times: its
    row and tag wait."""
    lib = tmp_path / "lib"
    (lib / "lost+found").mkdir(parents=True)
    os.chmod(lib / "lost+found", 0o000)
    old = time.time() - 86_400
    os.utime(lib / "lost+found", (old, old))
    for name in ("gone.jpg", "kept.jpg"):
        (lib / name).write_bytes(b"\xff\xd8\xff " + name.encode())
    unprivileged.share(catalog_path.parent)

    def scan(*args: str) -> dict:
        return _scan_unprivileged_json(unprivileged, catalog_path, lib, *args)

    try:
        assert scan()["errors"] == 1
        assert run_cli("tag", "add", "keep", lib / "kept.jpg", catalog=catalog_path).rc == 0
        os.unlink(lib / "gone.jpg")
        assert scan()["missing"] == 1
        got = scan("--prune")
        assert (got["pruned"], got["prune_skipped"], got["prune_kept"]) == (1, False, 0), got
        # Moved into a folder no scan can read: it changes that folder's times.
        (lib / "private").mkdir()
        os.rename(lib / "kept.jpg", lib / "private" / "kept.jpg")
        os.chmod(lib / "private", 0o000)
        for _ in range(2):
            got = scan("--prune")
            assert (got["pruned"], got["missing"] + got["errors"] > 0) == (0, True), got
            # Held back, and said so: the whole prune, or the one row.
            assert got["prune_skipped"] or got["prune_kept"] == 1, got
        assert [r["tag"] for r in rows(catalog_path, "SELECT tag FROM tags")] == ["keep"]
    finally:
        os.chmod(lib / "lost+found", 0o755)
        if (lib / "private").exists():
            os.chmod(lib / "private", 0o755)
    got = json.loads(run_cli("scan", lib, "--prune", "--json", catalog=catalog_path).out)
    assert got["pruned"] == 0, got
    assert rows(catalog_path, "SELECT f.path, f.status, t.tag FROM files f JOIN tags t USING (media_id)") == [
        {"path": str(lib / "private" / "kept.jpg"), "status": "present", "tag": "keep"}]


# --------------------------------------------------------------------------------------
# Exit codes and one-line errors.
# --------------------------------------------------------------------------------------


def test_missing_path_exits_3_with_one_line(tmp_path: Path, catalog_path: Path) -> None:
    res = run_cli("scan", tmp_path / "no such folder", catalog=catalog_path)
    assert res.rc == ExitCode.PATH == 3
    assert_one_line_error(res.err, "no such folder")
    assert res.out == ""
    # The roots are checked before the catalog is opened: a mistyped path leaves no new,
    # empty catalog behind.
    assert not catalog_path.exists()
    # A file named with a slash at its end is no folder, as for `ls`.
    (tmp_path / "a.txt").write_text("a")
    res = run_cli("scan", f"{tmp_path / 'a.txt'}/", catalog=catalog_path)
    assert res.rc == ExitCode.PATH
    assert_one_line_error(res.err, "a.txt/: not a directory")
    assert not catalog_path.exists()


def test_the_cli_walks_before_it_loads_duckdb() -> None:
    """`scan` starts the walk before DuckDB and pyarrow load (about 0.4 s of a first scan):
    the command module and what a scan needs to start walking must import without them."""
    code = ("import sys; import mediaforge.cli.app; from mediaforge.scan import ScanConfig, Walk; "
            "print(sorted(m for m in ('duckdb', 'pyarrow', 'numpy', 'PIL', 'av') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_catalog_made_while_an_early_walk_ran_gets_no_duplicate_rows(media_tree: MediaTree,
                                                                        tmp_path: Path) -> None:
    """A walk that took a catalog for new (no file yet) starts again if another scan made
    and filled it before this one opened it: nothing is taken for new twice."""
    from mediaforge import open_catalog, scan
    from mediaforge.scan import ScanConfig, Walk

    path = tmp_path / "made-meanwhile.duckdb"
    config = ScanConfig(roots=(media_tree.root,), threads=2)
    walk = Walk(config, path)
    assert walk.fresh
    first = do_scan(path, media_tree.root)
    with open_catalog(path) as cat:
        second = scan(cat, config, walk=walk)
    assert first.new == first.files_seen > 0
    assert (second.new, second.unchanged, second.files_seen) == (0, first.files_seen, first.files_seen)
    assert len(rows(path, "SELECT * FROM files")) == first.files_seen


def test_mediaforge_scan_is_callable_whatever_was_imported_first(tmp_path: Path) -> None:
    """`from mediaforge import scan` is the scan function, also after something (the CLI)
    imported the package `mediaforge.scan`, which then takes that name."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "a.jpg").write_bytes(b"\xff\xd8\xff" + b"a" * 64)
    code = ("import sys; import mediaforge.scan.launch; from mediaforge import ScanConfig, open_catalog, scan; "
            "cat = open_catalog(sys.argv[1]); print(scan(cat, ScanConfig(roots=(sys.argv[2],))).new); cat.close()")
    out = subprocess.run([sys.executable, "-c", code, tmp_path / "c.duckdb", tmp_path / "lib"], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "1"


@pytest.mark.parametrize("fresh", [False, True])
def test_a_walk_started_early_scans_like_a_plain_scan(media_tree: MediaTree, tmp_path: Path, fresh: bool) -> None:
    """Started early, a walk waits for the catalog's rows; for a catalog not made yet it
    needs none and hashes at once."""
    from mediaforge import open_catalog, scan
    from mediaforge.scan import ScanConfig, Walk

    plain, early = tmp_path / "plain.duckdb", tmp_path / "early.duckdb"
    config = ScanConfig(roots=(media_tree.root,), threads=2)
    do_scan(plain, media_tree.root)
    walk = Walk(config, early if fresh else None)
    assert walk.fresh is fresh
    time.sleep(0.3)  # the walk lists everything while the catalog is not yet open
    with open_catalog(early) as cat:
        summary = scan(cat, config, walk=walk)
    assert summary.new == summary.files_seen == len(files_by_path(plain)) > 0
    keep = ("size", "mtime_ns", "inode", "kind", "mime", "blake3", "status")
    assert ({p: [r[k] for k in keep] for p, r in files_by_path(early).items()}
            == {p: [r[k] for k in keep] for p, r in files_by_path(plain).items()})
    # A walk belongs to the configuration it was started with.
    other = Walk(config)
    with open_catalog(early) as cat, pytest.raises(ValueError, match="another configuration"):
        scan(cat, ScanConfig(roots=(media_tree.root,), threads=2, hash=False), walk=other)


def test_missing_path_writes_nothing_even_beside_a_good_one(media_tree: MediaTree, catalog_path: Path,
                                                            tmp_path: Path) -> None:
    assert run_cli("scan", media_tree.root, catalog=catalog_path).rc == 0
    res = run_cli("scan", media_tree.root, tmp_path / "gone", catalog=catalog_path)
    assert res.rc == 3
    assert_one_line_error(res.err, "gone")
    assert len(rows(catalog_path, "SELECT * FROM scans")) == 1
    assert all(r["status"] == "present" for r in files_by_path(catalog_path).values())


@pytest.mark.parametrize("what", ["folder", "file"])
def test_unreadable_root_exits_3_with_one_line(tmp_path: Path, catalog_path: Path, unprivileged: Unprivileged,
                                               what: str) -> None:
    """docs/cli.md: exit 3 when "a path given does not exist or cannot be read"."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a.jpg").write_bytes(b"\xff\xd8\xff")
    do_scan(catalog_path, lib)
    root = lib if what == "folder" else lib / "a.jpg"
    os.chmod(root, 0o000)
    try:
        p = _scan_unprivileged(unprivileged, catalog_path, root)
    finally:
        os.chmod(root, 0o755 if what == "folder" else 0o644)
    assert p.returncode == ExitCode.PATH == 3, p.stderr.decode()
    assert_one_line_error(p.stderr.decode(), str(root))
    assert files_by_path(catalog_path)[os.fsencode(lib / "a.jpg")]["status"] == "present"


def test_read_command_without_a_catalog_exits_3(tmp_path: Path) -> None:
    cat = tmp_path / "never-made.duckdb"
    for args in (["stats"], ["query", "SELECT 1"], ["export", str(tmp_path / "out")]):
        res = run_cli(*args, catalog=cat)
        assert res.rc == 3, (args, res.err)
        assert_one_line_error(res.err, "no catalog")
    assert not cat.exists()


def test_file_that_is_not_duckdb_exits_5_and_is_left_untouched(media_tree: MediaTree, tmp_path: Path) -> None:
    cat = tmp_path / "notes.txt"
    original = b"my precious notes, definitely not a database\n" * 200
    cat.write_bytes(original)
    for args in (["scan", str(media_tree.root)], ["stats"], ["query", "SELECT 1"]):
        res = run_cli(*args, catalog=cat)
        assert res.rc == ExitCode.CATALOG_INVALID == 5, (args, res.err)
        assert_one_line_error(res.err)
    assert cat.read_bytes() == original


def test_duckdb_file_that_is_not_a_catalog_exits_5_and_is_left_untouched(media_tree: MediaTree,
                                                                         tmp_path: Path) -> None:
    cat = tmp_path / "other.duckdb"
    con = duckdb.connect(str(cat))
    con.execute("CREATE TABLE invoices (id INTEGER, amount DOUBLE)")
    con.execute("INSERT INTO invoices VALUES (1, 9.5)")
    con.close()
    for args in (["scan", str(media_tree.root)], ["stats"]):
        res = run_cli(*args, catalog=cat)
        assert res.rc == 5, (args, res.err)
        assert_one_line_error(res.err, "not a MediaForge catalog")
    con = duckdb.connect(str(cat), read_only=True)
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert tables == {"invoices"}
    assert con.execute("SELECT * FROM invoices").fetchall() == [(1, 9.5)]
    con.close()


def test_catalog_from_a_newer_version_exits_5(media_tree: MediaTree, catalog_path: Path) -> None:
    assert run_cli("scan", media_tree.root, catalog=catalog_path).rc == 0
    con = duckdb.connect(str(catalog_path))
    con.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    con.close()
    for args in (["scan", str(media_tree.root)], ["stats"], ["query", "SELECT 1"]):
        res = run_cli(*args, catalog=catalog_path)
        assert res.rc == 5, (args, res.err)
        assert_one_line_error(res.err, "999", "upgrade")
    con = duckdb.connect(str(catalog_path), read_only=True)
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("999",)
    assert con.execute("SELECT count(*) FROM scans").fetchone() == (1,)
    con.close()


def test_a_reading_command_upgrades_an_older_catalog_unless_another_process_has_it(tmp_path: Path) -> None:
    """A catalog an older MediaForge wrote is upgraded by the first command, reading ones
    included; while another process holds it, a reader says so (exit 5) and changes nothing."""
    from mediaforge.catalog.schema import MIGRATIONS

    catalog = tmp_path / "old.duckdb"
    con = duckdb.connect(str(catalog))
    for v in range(1, SCHEMA_VERSION):
        for stmt in MIGRATIONS[v]:
            con.execute(stmt)
    con.execute("INSERT INTO meta VALUES ('application', 'mediaforge'), ('schema_version', ?)",
                [str(SCHEMA_VERSION - 1)])
    con.close()
    holder = duckdb.connect(str(catalog), read_only=True)  # another reader
    res = run_cli("stats", catalog=catalog)
    assert res.rc == 5
    assert_one_line_error(res.err, f"schema version {SCHEMA_VERSION - 1}", "another MediaForge process", "upgrade")
    holder.close()
    res = run_cli("query", "SELECT value FROM meta WHERE key = 'schema_version'", "-f", "json", catalog=catalog)
    assert res.rc == 0 and json.loads(res.out) == [{"value": str(SCHEMA_VERSION)}], res.err
    assert run_cli("stats", catalog=catalog).rc == 0


def test_catalog_path_that_is_a_folder_exits_5(media_tree: MediaTree, tmp_path: Path) -> None:
    res = run_cli("scan", media_tree.root, catalog=tmp_path)
    assert res.rc == 5
    assert_one_line_error(res.err, "folder")


@pytest.mark.parametrize("which", ["catalog", "wal"])
@pytest.mark.parametrize("command", [["scan", "{root}", "--no-meta"], ["stats"], ["query", "SELECT 1"],
                                     ["tag", "add", "x", "--where", "true"], ["meta"]])
def test_catalog_or_wal_that_is_a_fifo_exits_5_at_once(media_tree: MediaTree, tmp_path: Path, which: str,
                                                       command: list[str]) -> None:
    """DuckDB would wait for ever for a writer on the FIFO's other end. (Writers other
    than `scan` took a FIFO, whose size is 0, for an empty catalog file: exit 3.)"""
    catalog = tmp_path / "cat.duckdb"
    if which == "wal":
        do_scan(catalog, media_tree.root)
    os.mkfifo(catalog if which == "catalog" else tmp_path / "cat.duckdb.wal")
    res = run_cli(*[a.format(root=media_tree.root) for a in command], catalog=catalog, timeout=60)
    assert res.rc == 5, res.err
    assert_one_line_error(res.err, "not a regular file")


def test_dedupe_undo_of_a_fifo_exits_2_at_once(cataloged_tmp: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "journal.jsonl"
    os.mkfifo(fifo)
    res = run_cli("dedupe", "--undo", fifo, catalog=cataloged_tmp, timeout=60)
    assert res.rc == 2, res.err
    assert_one_line_error(res.err, "not a regular file")


@pytest.fixture
def cataloged_tmp(media_tree: MediaTree, tmp_path: Path) -> Path:
    catalog = tmp_path / "state" / "cat.duckdb"
    do_scan(catalog, media_tree.root)
    return catalog


@pytest.mark.parametrize(
    "sql",
    ["SELEC * FROM files", "SELECT no_such_column FROM files", "SELECT * FROM no_such_table",
     "DELETE FROM files", "DROP TABLE files",
     # The catalog opened again for writing behind the read-only connection's back.
     "ATTACH ':memory:' AS m (READ_WRITE); USE m; DETACH {alias}; ATTACH '{catalog}' AS w (READ_WRITE); "
     "DROP TABLE w.tags; SELECT 'dropped'",
     "ATTACH '{catalog}' AS w (READ_WRITE)", "COPY (SELECT 1) TO '{victim}'", "EXPORT DATABASE '{victim}'",
     "SELECT 1; SELECT 2",
     # Reading statements that run a writer: EXPLAIN ANALYZE runs what it explains,
     # IMPORT DATABASE (a PRAGMA to the parser) runs the folder's schema.sql.
     "EXPLAIN ANALYZE COPY (SELECT 'gone' AS x) TO '{victim}' (FORMAT csv, HEADER false)",
     "/* hi */ explain analyze DELETE FROM files", "IMPORT DATABASE '{importdir}'",
     "PRAGMA import_database('{importdir}')", "PRAGMA threads = 1"],
)
def test_bad_sql_exits_6(media_tree: MediaTree, catalog_path: Path, sql: str, tmp_path: Path) -> None:
    do_scan(catalog_path, media_tree.root)
    victim = tmp_path / "a users file.csv"
    victim.write_bytes(b"keep me")
    sql = sql.replace("{catalog}", str(catalog_path)).replace("{victim}", str(victim))
    sql = sql.replace("{alias}", catalog_path.stem)
    importdir = tmp_path / "import"
    importdir.mkdir()
    (importdir / "schema.sql").write_text(f"COPY (SELECT 'pwned') TO '{victim}';\n", encoding="utf-8")
    (importdir / "load.sql").write_text("", encoding="utf-8")
    sql = sql.replace("{importdir}", str(importdir))
    res = run_cli("query", sql, catalog=catalog_path)
    assert res.rc == ExitCode.SQL == 6
    assert_one_line_error(res.err)
    assert res.out == ""
    assert len(files_by_path(catalog_path)) == len(media_tree.files)  # the read-only catalog is intact
    assert run_cli("stats", catalog=catalog_path).rc == 0 and victim.read_bytes() == b"keep me"


def test_query_json_and_csv_are_valid_and_exact_for_odd_values(media_tree: MediaTree, catalog_path: Path) -> None:
    """Values JSON has no literal for (NaN, infinite dates), numbers past a float's
    precision (HUGEINT, DECIMAL) and intervals come out valid and exact, never exit 1."""
    import csv
    import io

    do_scan(catalog_path, media_tree.root)
    sql = ("SELECT 'nan'::DOUBLE AS a, '-inf'::DOUBLE AS b, 'infinity'::TIMESTAMP AS t, '-infinity'::DATE AS d, "
           "'294247-01-01'::TIMESTAMP AS far, '12345-06-07'::DATE AS fd, '0044-03-15 (BC)'::DATE AS bc, 170141183460469231731687303715884105727::HUGEINT AS h, "
           "123456789012345678.123::DECIMAL(38,3) AS dd, 1.5::DECIMAL(4,1) AS small, 0.00001::DECIMAL(10,5) AS cent, "
           "INTERVAL 3 DAY + INTERVAL 1500 MILLISECOND AS i, ['x,y', 'z'] AS l, NULL::TIMESTAMP AS nt, "
           "make_timestamp(-43, 3, 15, 0, 0, 1.5) AS bct, '0001-01-01 (BC)'::DATE AS y0, "
           "make_timestamp(-43, 3, 15, 0, 0, 2.25)::TIMESTAMP_MS AS bms, "
           "make_timestamp(43, 3, 15, 0, 0, 2.25)::TIMESTAMP_MS AS ms")
    want = {"a": "NaN", "b": "-Infinity", "t": "infinity", "d": "-infinity", "far": "294247-01-01T00:00:00",
            "fd": "12345-06-07", "bc": "-0043-03-15",
            "h": 170141183460469231731687303715884105727, "dd": "123456789012345678.123", "small": 1.5, "cent": 1e-05,
            "i": "P0M3DT1.5S", "l": ["x,y", "z"], "nt": None,
            # Years before 1 AD counted with a year 0 (1 BC), four digits after the sign; a
            # fraction as a datetime shows one (none when zero, milliseconds as microseconds).
            "bct": "-0043-03-15T00:00:01.500000", "y0": "0000-01-01", "bms": "-0043-03-15T00:00:02.250000",
            "ms": "0043-03-15T00:00:02.250000"}
    res = run_cli("query", sql, "--format", "json", catalog=catalog_path)
    assert res.rc == 0, res.err
    assert json.loads(res.out, parse_constant=lambda c: pytest.fail(f"not JSON: {c}")) == [want]
    res = run_cli("query", sql, "--format", "csv", catalog=catalog_path)
    assert res.rc == 0, res.err
    (row,) = csv.DictReader(io.StringIO(res.out))
    assert json.loads(row["l"]) == ["x,y", "z"] and row["h"] == str(want["h"]) and row["t"] == "infinity"
    # A DECIMAL in digits, as DuckDB shows it (a float's 1e-05 read as text by a person).
    assert (row["cent"], row["small"], row["dd"]) == ("0.00001", "1.5", "123456789012345678.123")
    assert run_cli("query", sql, catalog=catalog_path).rc == 0


def test_query_timestamps_come_as_isoformat_writes_them(media_tree: MediaTree, catalog_path: Path) -> None:
    """TIMESTAMP columns are formatted by Arrow, a column at a time: the text must be what
    `datetime.isoformat` gives each value (no fraction when it is zero)."""
    do_scan(catalog_path, media_tree.root)
    sql = ("SELECT TIMESTAMP '2021-02-03 04:05:06' + to_microseconds(i * 250000) AS t, "
           "CASE WHEN i = 1 THEN NULL ELSE TIMESTAMP '1999-12-31 23:59:59.000001' END AS u FROM range(3) r(i)")
    want = [("2021-02-03T04:05:06", "1999-12-31T23:59:59.000001"), ("2021-02-03T04:05:06.250000", None),
            ("2021-02-03T04:05:06.500000", "1999-12-31T23:59:59.000001")]
    res = run_cli("query", sql, "-f", "json", catalog=catalog_path)
    assert [(r["t"], r["u"]) for r in json.loads(res.out)] == want
    res = run_cli("query", sql, "-f", "csv", catalog=catalog_path)
    assert res.out.splitlines()[1:] == [f"{t},{u or ''}" for t, u in want]


def test_a_union_holding_a_value_python_cannot_hold_is_written(media_tree: MediaTree, catalog_path: Path) -> None:
    do_scan(catalog_path, media_tree.root)
    u = "UNION(t TIMESTAMP, i INT)"
    sql = (f"SELECT u FROM (VALUES (union_value(t := 'infinity'::TIMESTAMP)::{u}), (union_value(i := 5)::{u}), "
           f"(NULL::{u})) v(u)")
    res = run_cli("query", sql, "-f", "json", catalog=catalog_path)
    assert res.rc == 0 and json.loads(res.out) == [{"u": "infinity"}, {"u": 5}, {"u": None}], res.err
    res = run_cli("query", sql, "-f", "csv", catalog=catalog_path)
    assert res.out.splitlines() == ["u", "infinity", "5", '""']  # a lone empty cell, quoted so the line is not blank


def test_query_values_arrow_would_garble_and_names_given_twice(media_tree: MediaTree, catalog_path: Path,
                                                               tmp_path: Path) -> None:
    """BIGNUM and BIT (opaque bytes in Arrow) and TIMETZ (its offset dropped) come as
    DuckDB writes them; a column name given twice keeps both columns."""
    do_scan(catalog_path, media_tree.root)
    sql = ("SELECT '-123456789012345678901234567890123'::BIGNUM AS v, '0101'::BIT AS b, "
           "'12:30:00+05:30'::TIMETZ AS t, 1 AS k, 2 AS k, 3 AS k_2")
    res = run_cli("query", sql, "--format", "json", catalog=catalog_path)
    assert res.rc == 0, res.err
    assert json.loads(res.out) == [{"v": "-123456789012345678901234567890123", "b": "0101",
                                    "t": "12:30:00+05:30", "k": 1, "k_3": 2, "k_2": 3}]
    res = run_cli("query", sql, "--format", "csv", catalog=catalog_path)
    assert res.out.splitlines() == ["v,b,t,k,k,k_2", "-123456789012345678901234567890123,0101,12:30:00+05:30,1,2,3"]
    out = tmp_path / "q.parquet"
    assert run_cli("query", sql, "-f", "parquet", "-o", out, catalog=catalog_path).rc == 0
    t = pq.read_table(out)
    assert t.column_names == ["v", "b", "t", "k", "k_3", "k_2"] and t.column("t").to_pylist() == ["12:30:00+05:30"]
    # VARIANT (its binary encoding in Arrow), alone or nested, comes as JSON text.
    sql = ("SELECT 1::VARIANT AS n, 'x'::VARIANT AS s, [2::VARIANT, 'y'::VARIANT] AS l, "
           "{'a': [1, 2]}::VARIANT AS o, NULL::VARIANT AS z")
    res = run_cli("query", sql, "--format", "json", catalog=catalog_path)
    assert res.rc == 0, res.err
    assert json.loads(res.out) == [{"n": "1", "s": '"x"', "l": '[2,"y"]', "o": '{"a":[1,2]}', "z": None}]
    res = run_cli("query", sql, "--format", "csv", catalog=catalog_path)
    assert res.out.splitlines() == ["n,s,l,o,z", '1,"""x""","[2,""y""]","{""a"":[1,2]}",']


def test_query_parquet_stores_uuids_as_export_does(media_tree: MediaTree, catalog_path: Path, tmp_path: Path) -> None:
    """`query -f parquet` wrote `media_id` as text, where `export` stores a UUID: a join of
    the two in DuckDB compared a UUID with a VARCHAR. Now both are UUIDs (NULL kept, a
    name given twice too); a list of UUIDs holds their text; JSON and CSV give the text."""
    do_scan(catalog_path, media_tree.root)
    sql = "SELECT media_id, NULL::UUID AS u, [media_id] AS l, media_id AS media_id FROM files ORDER BY path"
    out, ex = tmp_path / "q.parquet", tmp_path / "ex"
    assert run_cli("query", sql, "-o", out, catalog=catalog_path).rc == 0
    assert run_cli("export", ex, catalog=catalog_path).rc == 0
    t = pq.read_table(out)
    assert [str(f.type) for f in t.schema] == ["extension<arrow.uuid>"] * 2 + ["list<element: string>",
                                                                            "extension<arrow.uuid>"]
    assert t.column_names == ["media_id", "u", "l", "media_id_2"]
    ids = json.loads(run_cli("query", sql, "-f", "json", catalog=catalog_path).out)
    assert [str(v) for v in t.column("media_id").to_pylist()] == [r["media_id"] for r in ids] == [
        r["l"][0] for r in ids]
    assert t.column("u").to_pylist() == [None] * len(ids) and len(ids) == len(media_tree.files)
    import duckdb

    con = duckdb.connect()
    assert con.execute(f"SELECT count(*) FROM '{out}' q JOIN '{ex / 'files.parquet'}' f USING (media_id)").fetchall() == [
        (len(ids),)]
    assert con.execute(f"SELECT DISTINCT typeof(media_id) FROM '{out}'").fetchall() == [("UUID",)]
    # So do the other commands' results that carry media_id.
    assert run_cli("collection", "create", "all", "--smart", "true", catalog=catalog_path).rc == 0
    for args in (("search", "kind:image"), ("collection", "show", "all")):
        res = run_cli(*args, "-o", tmp_path / "r.parquet", catalog=catalog_path)
        assert res.rc == 0, res.err
        got = pq.read_table(tmp_path / "r.parquet")
        assert str(got.schema.field("media_id").type) == "extension<arrow.uuid>", args
        shown = json.loads(run_cli(*args, "-f", "json", catalog=catalog_path).out)
        assert [str(v) for v in got.column("media_id").to_pylist()] == [r["media_id"] for r in shown] != []


@pytest.mark.parametrize("sql", ["EXPLAIN ANALYZE SELECT count(*) FROM files", "/* plan */ EXPLAIN SELECT 1",
                                 "EXPLAIN (FORMAT json) SELECT 1", "PRAGMA table_info('files')", "pragma show_tables",
                                 "SUMMARIZE files", "SELECT count(*) AS n FROM read_csv('{mine}')"])
def test_reading_statements_run(media_tree: MediaTree, catalog_path: Path, sql: str, tmp_path: Path) -> None:
    do_scan(catalog_path, media_tree.root)
    mine = tmp_path / "mine.csv"
    mine.write_text("a,b\n1,2\n", encoding="utf-8")
    res = run_cli("query", sql.replace("{mine}", str(mine)), "--format", "json", catalog=catalog_path)
    assert res.rc == 0, res.err
    assert json.loads(res.out)


@pytest.mark.parametrize(
    "args",
    [["scan", "--threads", "0", "{root}"], ["query", "SELECT 1", "--format", "parquet"],
     ["query", "SELECT 1", "--format", "xml"], ["scan", "--no-such-option", "{root}"], ["no-such-command"],
     ["scan", "--threads", "100000", "{root}"], ["scan", "{fifo}"], ["scan", ""], ["export", ""], ["info", ""],
     ["stats", "--top", "-1"], ["search", "--limit", "99999999999999999999", "song"],
     ["tag", "add", "caf\udce9", "{root}"], ["collection", "create", "caf\udce9"], ["search", "caf\udce9"],
     ["scan", "--exclude", "caf\udce9", "{root}"],
     ["--catalog", "{tmp}/caf\udce9.duckdb", "stats"], ["export", "{tmp}/caf\udce9"], ["info", "{root}"],
     ["collection", "create", "trips|2019"], ["query", "SELECT 'caf\udce9'"],
     ["tag", "add", "t", "--where", "name = 'caf\udce9'"], ["collection", "create", "c", "--smart", "name = '\udcff'"],
     ["meta", "--timeout", "nan"], ["thumbs", "--timeout", "inf"], ["export", "{index}"],
     ["export", "{catalog_dir}/thumbs/256"], ["scan", "--no-meta", "--timeout", "-1", "{root}"],
     ["scan", "--exclude", "[z-a]", "{root}"]],
    ids=["zero-threads", "parquet-without-output", "unknown-format", "unknown-option", "unknown-command",
         "absurd-threads", "fifo", "empty-scan-path", "empty-export-dir", "empty-info-path", "negative-top",
         "huge-limit", "non-utf8-tag", "non-utf8-collection", "non-utf8-search", "non-utf8-exclude",
         "non-utf8-catalog", "non-utf8-export-dir", "info-of-a-folder", "collection-name-with-xmp-separator",
         "non-utf8-sql", "non-utf8-where", "non-utf8-smart", "nan-timeout", "infinite-timeout", "export-into-the-index",
         "export-into-the-thumbnails", "bad-timeout-without-meta", "bad-exclude-pattern"],
)
def test_usage_errors_exit_2_with_one_line(media_tree: MediaTree, catalog_path: Path, args: list[str],
                                           tmp_path: Path) -> None:
    do_scan(catalog_path, media_tree.root)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    fifo = scratch / "a fifo"
    os.mkfifo(fifo)
    res = run_cli(*[a.format(root=media_tree.root, fifo=fifo, tmp=scratch, catalog_dir=catalog_path.parent,
                             index=catalog_path.with_suffix(".search")) for a in args], catalog=catalog_path, timeout=60)
    assert res.rc == ExitCode.USAGE == 2, res.err
    assert_one_line_error(res.err)
    assert sorted(p.name for p in scratch.iterdir()) == ["a fifo"]  # nothing written on the way
    assert [r["status"] for r in rows(catalog_path, "SELECT status FROM scans")] == ["completed"]  # no failed scan


# --------------------------------------------------------------------------------------
# Outputs.
# --------------------------------------------------------------------------------------


@pytest.fixture
def cataloged(media_tree: MediaTree, catalog_path: Path) -> MediaTree:
    res = run_cli("scan", media_tree.root, catalog=catalog_path)
    assert res.rc == 0, res.err
    assert res.err == ""
    return media_tree


def test_scan_json_summary(media_tree: MediaTree, catalog_path: Path) -> None:
    res = run_cli("scan", media_tree.root, "--json", catalog=catalog_path)
    assert res.rc == 0, res.err
    s = json.loads(res.out)
    n = len(media_tree.files)
    assert (s["files_seen"], s["new"], s["hashed_files"], s["errors"]) == (n, n, n, 0)
    assert s["roots"] == [str(media_tree.root)]
    assert s["catalog"] == str(catalog_path)
    # A catalog given relative to the working folder is named whole in the summary.
    res = run_cli("--catalog", catalog_path.name, "scan", media_tree.root, "--json", cwd=catalog_path.parent)
    assert res.rc == 0, res.err
    assert json.loads(res.out)["catalog"] == str(catalog_path)


def test_scan_text_summary_and_catalog_from_the_environment(media_tree: MediaTree, catalog_path: Path) -> None:
    res = run_cli("scan", media_tree.root, catalog=catalog_path)  # MEDIAFORGE_CATALOG, no --catalog
    assert res.rc == 0
    n = len(media_tree.files)
    assert f"scanned {n} files" in res.out
    assert f"new {n}" in res.out
    assert catalog_path.exists()
    # --catalog wins over the environment.
    other = catalog_path.with_name("other.duckdb")
    res = run_cli("--catalog", other, "query", "SELECT count(*) AS n FROM files", "--format", "json",
                  catalog=catalog_path)
    assert res.rc == 3  # no catalog there yet: the flag was used
    res = run_cli("--catalog", catalog_path, "query", "SELECT count(*) AS n FROM files", "--format", "json",
                  env=cli_env(other))
    assert json.loads(res.out) == [{"n": n}]


def test_query_json_is_an_array_of_objects(cataloged: MediaTree, catalog_path: Path) -> None:
    res = run_cli("query", "SELECT path, path_bytes, size, blake3, media_id, first_seen FROM files ORDER BY path",
                  "--format", "json", catalog=catalog_path)
    assert res.rc == 0, res.err
    data = json.loads(res.out)
    assert isinstance(data, list) and len(data) == len(cataloged.files)
    assert all(set(r) == {"path", "path_bytes", "size", "blake3", "media_id", "first_seen"} for r in data)
    raw = {base64.b64decode(r["path_bytes"]): r for r in data}
    assert set(raw) == set(cataloged.content)
    for p, data_ in cataloged.content.items():
        assert raw[p]["size"] == len(data_)
        assert raw[p]["path"] == p.decode("utf-8", "replace")


def test_query_json_of_no_rows_is_an_empty_array(cataloged: MediaTree, catalog_path: Path) -> None:
    res = run_cli("query", "SELECT * FROM files WHERE size > 1e15", "--format", "json", catalog=catalog_path)
    assert res.rc == 0
    assert json.loads(res.out) == []


def test_query_csv_round_trips_hostile_names(cataloged: MediaTree, catalog_path: Path, tmp_path: Path) -> None:
    res = run_cli("query", "SELECT name, path_bytes, size, kind FROM files", "--format", "csv", catalog=catalog_path)
    assert res.rc == 0, res.err
    table = list(csv.reader(io.StringIO(res.out, newline="")))
    assert table[0] == ["name", "path_bytes", "size", "kind"]
    body = table[1:]
    assert len(body) == len(cataloged.files)
    by_path = {base64.b64decode(r[1]): r for r in body}
    assert set(by_path) == set(cataloged.content)
    assert by_path[cataloged.files["newline"]][0] == "line\nbreak.png"
    assert by_path[cataloged.files["spaces"]][0] == "  spaced   out  .mp3"
    # The same through --output.
    out = tmp_path / "files.csv"
    res = run_cli("query", "SELECT name, path_bytes, size, kind FROM files", "--format", "csv", "--output", out,
                  catalog=catalog_path)
    assert res.rc == 0 and res.out == ""
    with open(out, newline="", encoding="utf-8") as f:
        written = list(csv.reader(f))
    assert written[0] == table[0]
    assert sorted(written[1:]) == sorted(body)


def test_query_csv_tells_empty_text_from_null_and_parquet_refuses_a_hugeint_it_cannot_hold(
        cataloged: MediaTree, catalog_path: Path, tmp_path: Path) -> None:
    """CSV wrote an empty text (`files.ext` of a file without one) and NULL alike, so `ext =
    ''` matched nothing once read back; now `""` and an empty cell, as DuckDB writes them,
    and booleans `true`/`false` as in JSON. HUGEINT comes out of DuckDB as a 38-digit
    DECIMAL: its 39-digit values made a Parquet file readers refuse (exit 2 now)."""
    import duckdb

    out = tmp_path / "q.csv"
    sql = "SELECT '' AS empty, NULL::VARCHAR AS nothing, 'a,\"b\"' AS text, true AS yes, NULL::BOOLEAN AS unknown"
    res = run_cli("query", sql, "--format", "csv", "--output", out, catalog=catalog_path)
    assert res.rc == 0, res.err
    assert out.read_text().splitlines() == ["empty,nothing,text,yes,unknown", '"",,"a,""b""",true,']
    back = duckdb.sql(f"SELECT empty = '' AS e, nothing IS NULL AS n, text, yes, unknown IS NULL AS u "
                      f"FROM read_csv('{out}', allow_quoted_nulls = false)").fetchall()
    assert back == [(True, True, 'a,"b"', True, True)]
    # A name ending in .gz: the text gzip-compressed (it was plain CSV under a .gz name).
    import gzip

    for name, fmt in (("q.csv.gz", "csv"), ("q.json.gz", "json")):
        res = run_cli("query", sql, "--output", tmp_path / name, catalog=catalog_path)
        assert res.rc == 0, res.err
        text = gzip.decompress((tmp_path / name).read_bytes()).decode()
        assert text == out.read_text() if fmt == "csv" else json.loads(text)[0]["empty"] == "", text
    res = run_cli("query", sql, "--output", tmp_path / "q.parquet.gz", catalog=catalog_path)
    assert res.rc == 2 and not (tmp_path / "q.parquet.gz").exists()
    assert_one_line_error(res.err, "Parquet is compressed inside", "name it .parquet")
    # One column: NULL is `""` too, so that no line is blank (readers skip blank lines).
    res = run_cli("query", "SELECT * FROM (VALUES (NULL), (''), ('x')) t(v) ORDER BY v NULLS FIRST", "--format",
                  "csv", catalog=catalog_path)
    assert res.rc == 0 and res.out == 'v\n""\n""\nx\n', res.out
    for sql in ("SELECT 170141183460469231731687303715884105727::HUGEINT AS h",
                "SELECT [170141183460469231731687303715884105727::HUGEINT] AS h",
                "SELECT {'a': 170141183460469231731687303715884105727::HUGEINT} AS h"):
        res = run_cli("query", sql, "--format", "parquet", "--output", tmp_path / "h.parquet", catalog=catalog_path)
        assert res.rc == 2 and not (tmp_path / "h.parquet").exists(), (sql, res.err)
        assert_one_line_error(res.err, "parquet cannot hold", "does not fit", "cast")
    res = run_cli("query", "SELECT 99999999999999999999999999999999999999::HUGEINT AS big, sum(size) AS total FROM files", "--format", "parquet",
                  "--output", tmp_path / "ok.parquet", catalog=catalog_path)
    assert res.rc == 0, res.err
    pq.read_table(tmp_path / "ok.parquet").validate(full=True)


def test_query_parquet_output(cataloged: MediaTree, catalog_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "q.parquet"
    res = run_cli("query", "SELECT path_bytes, size, blake3, kind FROM files", "--format", "parquet",
                  "--output", out, catalog=catalog_path)
    assert res.rc == 0, res.err
    t = pq.read_table(out)
    assert t.column_names == ["path_bytes", "size", "blake3", "kind"]
    assert {bytes(b): s for b, s in zip(t["path_bytes"].to_pylist(), t["size"].to_pylist())} == {
        p: len(d) for p, d in cataloged.content.items()}
    # Without --format, a file gets what its name ends with: no CSV in a `.parquet`.
    for name, read in (("n.parquet", lambda p: pq.read_table(p).num_rows), ("n.json", lambda p: len(json.loads(p.read_text()))),
                       ("n.txt", lambda p: len(p.read_text().splitlines()) - 1)):
        res = run_cli("query", "SELECT kind FROM files", "-o", tmp_path / name, catalog=catalog_path)
        assert res.rc == 0, res.err
        assert read(tmp_path / name) == len(cataloged.content), name


def test_query_results_stream_in_batches(cataloged: MediaTree, catalog_path: Path, tmp_path: Path) -> None:
    """A result of many batches comes whole in every format; the table counts the rows it
    leaves out, whichever batch they are in."""
    sql = "SELECT range AS i, 'r' || range AS s FROM range(65537)"
    res = run_cli("query", sql, "--format", "csv", catalog=catalog_path)
    assert res.rc == 0, res.err
    lines = res.out.splitlines()
    assert lines[0] == "i,s" and len(lines) == 65538 and lines[-1] == "65536,r65536"
    res = run_cli("query", sql, "--format", "json", catalog=catalog_path)
    assert [r["i"] for r in json.loads(res.out)] == list(range(65537))
    out = tmp_path / "q.parquet"
    assert run_cli("query", sql, "-f", "parquet", "-o", out, catalog=catalog_path).rc == 0
    assert pq.read_table(out)["s"].to_pylist() == [f"r{i}" for i in range(65537)]
    res = run_cli("query", sql, catalog=catalog_path)
    assert res.rc == 0 and "64,537 more rows not shown" in res.err


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_a_statement_failing_midway_keeps_the_earlier_output_file(cataloged: MediaTree, catalog_path: Path,
                                                                    tmp_path: Path, fmt: str) -> None:
    """DuckDB fails a statement after rows were written out: one line, exit 6, and the
    file at --output is still the one from before."""
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / f"result.{fmt}"
    out.write_bytes(b"the earlier result")
    sql = "SELECT CASE WHEN range > 150000 THEN error('row ' || range || ' is bad') ELSE range END AS i " \
          "FROM range(200000) ORDER BY i"
    res = run_cli("query", sql, "--format", fmt, "--output", out, catalog=catalog_path)
    assert res.rc == ExitCode.SQL
    assert_one_line_error(res.err, "SQL error", "is bad")
    assert out.read_bytes() == b"the earlier result"
    assert os.listdir(out.parent) == [out.name]  # no temporary file left beside it


@pytest.mark.parametrize("sql, words", [
    ("SELECT * FROM filez", ['Did you mean "files"']),
    ("SELECT pathh FROM files", ["Candidate bindings", '"path"']),
    ("SELECT 1,\n  2 +\n  FROM files", ["syntax error", "line 3, column 3"]),
    # Advice `query` would refuse to follow is replaced by what holds here.
    ("SELECT * FROM sqlite_scan('x.db', 't')", ["sqlite_scanner extension", "installs and loads no extension"]),
    ("SELECT " + "(" * 1100 + "1" + ")" * 1100, ["expression depth", "runs no SET"]),
])
def test_sql_errors_keep_duckdbs_hints_on_one_line(cataloged: MediaTree, catalog_path: Path, sql: str,
                                                    words: list[str]) -> None:
    res = run_cli("query", sql, catalog=catalog_path)
    assert res.rc == ExitCode.SQL
    assert_one_line_error(res.err, *words)
    assert "INSTALL" not in res.err and "SET " not in res.err


def test_query_table_output_survives_hostile_names(cataloged: MediaTree, catalog_path: Path) -> None:
    res = run_cli("query", "SELECT name, path FROM files WHERE name LIKE 'caf%' OR name LIKE 'line%'",
                  catalog=catalog_path)
    assert res.rc == 0, res.err
    assert "caf" in res.out and "break.png" in res.out


def test_tables_show_markup_and_control_characters_as_text(tmp_path: Path, catalog_path: Path) -> None:
    """Names, folders, tags and query values are shown as they are: rich markup in them
    is text (it once crashed every table or silently ate parts of names), and control
    characters are escaped (a name cannot clear the screen or split its row)."""
    lib = tmp_path / "lib[" / "in[/b]"
    lib.mkdir(parents=True)
    blob = bytes(range(256)) * 40
    for name in ("[red]copy[red].jpg", "esc\x1b[2Jclear.jpg", "new\nline.jpg"):
        (lib / name).write_bytes(blob)
    env = cli_env(catalog_path, COLUMNS="300")
    assert run_cli("scan", tmp_path / "lib[", "--no-meta", env=env).rc == 0
    outputs = {}
    for args in (["stats"], ["dupes"], ["info", lib / "[red]copy[red].jpg"],
                 ["query", "SELECT name, '[/x]' AS \"[b]v\", '[bold]hi[/bold]' AS h FROM files ORDER BY name"]):
        res = run_cli(*args, env=env)
        assert res.rc == 0 and res.err == "", (args, res.err)
        assert "\x1b" not in res.out and "\r" not in res.out, args
        outputs[args[0]] = res.out
    assert "in[/b]" in outputs["stats"]  # the largest folders
    for name in ("[red]copy[red].jpg", "esc\\x1b[2Jclear.jpg", "new\\nline.jpg"):
        assert name in outputs["dupes"] and name in outputs["query"], name
    assert "lib[/in[/b]/[red]copy[red].jpg" in outputs["info"]
    assert "[/x]" in outputs["query"] and "[b]v" in outputs["query"] and "[bold]hi[/bold]" in outputs["query"]


@pytest.mark.parametrize("args", [
    ["stats"], ["stats", "--json"], ["dupes"], ["query", "SELECT * FROM range(300000)", "--format", "csv"],
    ["query", "SELECT * FROM range(3000)"], ["search", "png"],
])
def test_output_to_a_full_disk_or_a_reader_that_left(cataloged: MediaTree, catalog_path: Path,
                                                      args: list[str]) -> None:
    """stdout on a full disk: one line and exit 3. A reader that left (`| head`): exit 0,
    nothing on stderr (rich and Typer would each have made it a bare exit 1)."""
    with open("/dev/full", "wb") as full:
        p = subprocess.run(cli_cmd(*args), env=cli_env(catalog_path), stdout=full, stderr=subprocess.PIPE,
                           timeout=120)
    assert p.returncode == 3, p.stderr
    assert_one_line_error(p.stderr.decode(), "cannot write the standard output", "No space left")
    p = subprocess.Popen(cli_cmd(*args), env=cli_env(catalog_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # the reader is gone before the first byte
    _out, err = p.communicate(timeout=120)
    assert (p.returncode, err) == (0, b"")


def test_a_table_whose_reader_left_after_its_first_lines_counts_no_further(cataloged: MediaTree,
                                                                            catalog_path: Path) -> None:
    """A QA finding: `query ... | head -1` in the table format went on making every row
    past the table a Python value to count them for its "more rows not shown" note, whose
    reader was gone (31 s for 100 million rows, where CSV stopped at once). The table's
    reader leaving ends the command, exit 0, no note; a reader there gets the count."""
    sql = "SELECT * FROM range(20000000)"
    p = subprocess.Popen(cli_cmd("query", sql), env=cli_env(catalog_path), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    assert p.stdout.readline()  # the table's first line, then the reader leaves
    p.stdout.close()
    _out, err = p.communicate(timeout=60)
    assert (p.returncode, err) == (0, b"")
    res = run_cli("query", "SELECT * FROM range(3000)", catalog=catalog_path)
    assert res.rc == 0 and "2,000 more rows not shown" in res.err, res.err


def test_export_writes_parquet_tables_readable_by_pyarrow(cataloged: MediaTree, catalog_path: Path,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "export"
    res = run_cli("export", out, catalog=catalog_path)
    assert res.rc == 0, res.err
    names = sorted(os.listdir(out))
    assert names == sorted(f"{t}.parquet" for t in ("files", "meta", "scan_errors", "scans", "media", "streams",
                                                     "tags_audio", "exif", "sidecars", "meta_errors",
                                                     "image_hashes", "video_hashes", "similar_groups", "audio_hashes", "tags",
                                                     "collections", "collection_items", "search_docs", "xmp_imports"))
    files = pq.read_table(out / "files.parquet")
    assert files.num_rows == len(cataloged.files)
    assert {bytes(b) for b in files["path_bytes"].to_pylist()} == set(cataloged.content)
    expected_cols = {"media_id", "path", "path_bytes", "dir", "name", "ext", "size", "mtime_ns", "ctime_ns", "dev",
                     "inode", "nlink", "kind", "mime", "blake3", "status", "first_seen", "last_seen", "missing_since",
                     "first_scan_id", "last_scan_id", "path_raw", "btime_ns"}
    assert set(files.column_names) == expected_cols
    # path_raw holds the bytes of exactly the paths that are not valid UTF-8.
    for raw, exact in zip(files["path_raw"].to_pylist(), files["path_bytes"].to_pylist()):
        try:
            exact.decode("utf-8")
            assert raw is None
        except UnicodeDecodeError:
            assert raw == exact
    scans = pq.read_table(out / "scans.parquet").to_pylist()
    assert [(s["scan_id"], s["status"]) for s in scans] == [(1, "completed")]
    meta = dict((r["key"], r["value"]) for r in pq.read_table(out / "meta.parquet").to_pylist())
    assert meta["schema_version"] == str(SCHEMA_VERSION) and meta["application"] == "mediaforge"
    assert pq.read_table(out / "scan_errors.parquet").num_rows == 0
    # Exporting again over the same folder replaces the files.
    assert run_cli("export", out, "--json", catalog=catalog_path).rc == 0
    assert sorted(os.listdir(out)) == names
    # The folder is made, as mkdir makes one; a typo in a folder above it makes nothing.
    res = run_cli("export", tmp_path / "nosuch" / "deeper" / "export", catalog=catalog_path)
    assert res.rc == 3
    assert_one_line_error(res.err, f"no such folder {tmp_path / 'nosuch' / 'deeper'}")
    assert not (tmp_path / "nosuch").exists()


def test_a_failed_export_leaves_the_earlier_one_whole_and_no_litter(cataloged: MediaTree, catalog_path: Path,
                                                                     tmp_path: Path) -> None:
    """Tables are written under fresh hidden names and renamed into place only when all
    are complete: a failure part-way (here a folder named like a later table) is one line,
    exit 3, the earlier export is untouched, nothing temporary stays, and a user's own
    file named like the old temporary names is never touched."""
    out = tmp_path / "export"
    assert run_cli("export", out, catalog=catalog_path).rc == 0
    before = {n: (out / n).read_bytes() for n in os.listdir(out)}
    do_scan(catalog_path, cataloged.root, prune=True)  # a second scans row: the new export would differ
    (out / ".files.parquet.partial").write_bytes(b"mine")
    (out / "tags.parquet").unlink()
    (out / "tags.parquet").mkdir()
    res = run_cli("export", out, catalog=catalog_path)
    assert res.rc == 3, res.err
    assert_one_line_error(res.err, "tags.parquet", "folder")
    after = {n: (out / n).read_bytes() for n in os.listdir(out) if (out / n).is_file()}
    assert after == {**{n: b for n, b in before.items() if n != "tags.parquet"}, ".files.parquet.partial": b"mine"}


def test_an_export_keeps_the_permissions_of_the_files_it_replaces(cataloged: MediaTree, catalog_path: Path,
                                                                   tmp_path: Path) -> None:
    """A QA finding: each export wrote fresh 0644 files over the old ones, so a user's
    `chmod 600` on a dump of every path they own was undone by the next export. A new
    table's file gets the usual 0644 less the umask."""
    out = tmp_path / "export"
    assert run_cli("export", out, catalog=catalog_path).rc == 0
    os.chmod(out / "files.parquet", 0o600)
    os.chmod(out / "scans.parquet", 0o640)
    (out / "tags.parquet").unlink()
    do_scan(catalog_path, cataloged.root)  # a second scans row: the new export differs
    assert run_cli("export", out, catalog=catalog_path).rc == 0
    modes = {n: stat.S_IMODE(os.stat(out / n).st_mode) for n in ("files.parquet", "scans.parquet", "tags.parquet")}
    assert modes == {"files.parquet": 0o600, "scans.parquet": 0o640, "tags.parquet": 0o644 & ~_umask()}, modes
    assert pq.read_table(out / "scans.parquet").num_rows == 2


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _set_immutable(path: Path, on: bool) -> None:
    """`chattr +i` / `-i` (FS_IOC_SETFLAGS): a file no one may change, rename or replace."""
    import array
    import fcntl

    fd = os.open(path, os.O_RDONLY)
    try:
        flags = array.array("l", [0])
        fcntl.ioctl(fd, 0x80086601, flags, True)  # FS_IOC_GETFLAGS
        flags[0] = flags[0] | 0x10 if on else flags[0] & ~0x10  # FS_IMMUTABLE_FL
        fcntl.ioctl(fd, 0x40086602, flags)  # FS_IOC_SETFLAGS
    finally:
        os.close(fd)


def test_an_export_that_cannot_replace_one_file_replaces_none(cataloged: MediaTree, catalog_path: Path,
                                                                tmp_path: Path) -> None:
    """A QA finding: an earlier export's last file could not be replaced (immutable; or
    another user's in a sticky folder), and the files renamed into place before it stayed
    new: a mix of two exports. Now every file is as it was, and nothing is left over."""
    out = tmp_path / "export"
    assert run_cli("export", out, catalog=catalog_path).rc == 0
    before = {n: (out / n).read_bytes() for n in os.listdir(out)}
    do_scan(catalog_path, cataloged.root, prune=True)  # a second scans row: the new export would differ
    _set_immutable(out / "xmp_imports.parquet", True)
    try:
        res = run_cli("export", out, catalog=catalog_path)
    finally:
        _set_immutable(out / "xmp_imports.parquet", False)
    assert res.rc == 3, res.err
    assert_one_line_error(res.err, "xmp_imports.parquet", "the files there are as they were")
    assert {n: (out / n).read_bytes() for n in os.listdir(out)} == before
    assert run_cli("export", out, catalog=catalog_path).rc == 0
    assert {n for n in os.listdir(out)} == set(before) and (out / "scans.parquet").read_bytes() != before["scans.parquet"]


def test_replace_all_puts_back_what_it_renamed_when_a_later_rename_fails(tmp_path: Path) -> None:
    """`fsops.replace_all`: the renames of the first targets are undone when the last one
    fails (its temporary is gone here), a target new to the folder goes again, and the
    hidden copies kept of the old files go too."""
    from mediaforge.fsops import replace_all

    for name, data in (("a", b"old a"), ("b", b"old b")):
        (tmp_path / name).write_bytes(data)
        (tmp_path / f"{name}.new").write_bytes(b"new " + name.encode())
    (tmp_path / "c.new").write_bytes(b"new c")
    pairs = [(os.fsencode(tmp_path / f"{n}.new"), os.fsencode(tmp_path / n)) for n in ("a", "c", "b", "d")]
    with pytest.raises(OSError) as err:
        replace_all(pairs)  # d.new does not exist
    assert err.value.filename == str(tmp_path / "d")
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]  # the temporaries renamed in are gone with their targets
    assert (tmp_path / "a").read_bytes() == b"old a" and (tmp_path / "b").read_bytes() == b"old b"
    (tmp_path / "a.new").write_bytes(b"new a")
    replace_all([(os.fsencode(tmp_path / "a.new"), os.fsencode(tmp_path / "a"))])
    assert sorted(os.listdir(tmp_path)) == ["a", "b"] and (tmp_path / "a").read_bytes() == b"new a"


def test_replace_all_finishes_what_it_began_through_a_ctrl_c(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A QA finding: a Ctrl-C as `export` removed the old files' hidden links, after the
    new files were in place, left those links (whole copies of the old export) behind and
    made the command say it was interrupted. Once the renames begin, a Ctrl-C (a real
    SIGINT here, sent as each link goes) waits for them and the links to be done."""
    import signal

    from mediaforge.fsops import replace_all

    for name in ("a", "b"):
        (tmp_path / name).write_bytes(b"old " + name.encode())
        (tmp_path / f"{name}.new").write_bytes(b"new " + name.encode())
    real = os.unlink
    sent = []

    def unlink(path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if b"/.mediaforge-" in os.fsencode(path):
            sent.append(path)
            os.kill(os.getpid(), signal.SIGINT)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)
    replace_all([(os.fsencode(tmp_path / f"{n}.new"), os.fsencode(tmp_path / n)) for n in ("a", "b")])
    monkeypatch.undo()
    assert len(sent) == 2  # (the links kept of the two old files)
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]
    assert [(tmp_path / n).read_bytes() for n in ("a", "b")] == [b"new a", b"new b"]


def test_replacements_sync_together_and_leave_a_target_changed_meanwhile_alone(tmp_path: Path) -> None:
    """`fsops.Replacements` (many sidecars synced at once): each target put gets its new
    content, keeping its permission bits; one another program wrote between its `put`
    and the `commit` keeps that program's bytes, named with why; no temporary is left."""
    from mediaforge.fsops import Replacements

    for name in ("a", "b", "c"):
        (tmp_path / name).write_bytes(b"old " + name.encode())
    os.chmod(tmp_path / "a", 0o600)
    told = []
    with Replacements() as batch:
        for name in ("a", "b", "c", "new"):
            batch.put(os.fsencode(tmp_path / name), lambda f, n=name: f.write(b"new " + n.encode()))
        assert len(batch) == 4 and len(os.listdir(tmp_path)) == 7  # the temporaries, beside their targets
        (tmp_path / "b").write_bytes(b"edited elsewhere")
        done = batch.commit(lambda target, error: told.append((target, error)))
    assert done == told and [t for t, _ in done] == [os.fsencode(tmp_path / n) for n in ("a", "b", "c", "new")]
    assert [e is None for _, e in done] == [True, False, True, True]
    assert done[1][1].errno == errno.EAGAIN and "changed by another program" in done[1][1].strerror
    assert sorted(os.listdir(tmp_path)) == ["a", "b", "c", "new"]
    assert [(tmp_path / n).read_bytes() for n in ("a", "b", "c", "new")] == [b"new a", b"edited elsewhere", b"new c",
                                                                             b"new new"]
    assert stat.S_IMODE(os.stat(tmp_path / "a").st_mode) == 0o600


def test_replacements_leave_nothing_of_a_failed_fill_or_a_stop_before_the_commit(tmp_path: Path) -> None:
    from mediaforge.fsops import Replacements

    (tmp_path / "a").write_bytes(b"old a")

    def fail(f) -> None:  # noqa: ANN001
        f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(KeyboardInterrupt), Replacements() as batch:
        batch.put(os.fsencode(tmp_path / "b"), lambda f: f.write(b"new b"))
        with pytest.raises(OSError):
            batch.put(os.fsencode(tmp_path / "a"), fail)
        assert len(batch) == 1
        raise KeyboardInterrupt
    assert os.listdir(tmp_path) == ["a"] and (tmp_path / "a").read_bytes() == b"old a"


def test_replacements_finish_their_renames_through_a_ctrl_c(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C (a real SIGINT, sent at the first rename) waits for every rename and its
    report to the caller (an export records what it wrote), then stops."""
    import signal

    from mediaforge.fsops import Replacements

    real, sent, told = os.replace, [], []

    def replace(src, dst, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if not sent:
            sent.append(dst)
            os.kill(os.getpid(), signal.SIGINT)
        return real(src, dst, *args, **kwargs)

    with Replacements() as batch:
        for name in ("a", "b", "c"):
            batch.put(os.fsencode(tmp_path / name), lambda f, n=name: f.write(n.encode()))
        monkeypatch.setattr(os, "replace", replace)
        with pytest.raises(KeyboardInterrupt):
            batch.commit(lambda target, error: told.append((target, error)))
        monkeypatch.undo()
    assert len(sent) == 1 and [e for _, e in told] == [None, None, None]
    assert sorted(os.listdir(tmp_path)) == ["a", "b", "c"]


def test_replacements_know_a_file_they_hold_by_another_path(tmp_path: Path) -> None:
    """A review finding: one file put twice in a batch, by two paths (a link to its
    folder), lost the second content to a false "changed by another program": `holds`
    tells the caller to commit first."""
    from mediaforge.fsops import Replacements

    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "x").write_bytes(b"old")
    os.symlink(tmp_path / "real", tmp_path / "link")
    with Replacements() as batch:
        assert not batch.holds(os.fsencode(tmp_path / "real" / "x"))
        batch.put(os.fsencode(tmp_path / "link" / "x"), lambda f: f.write(b"first"))
        batch.put(os.fsencode(tmp_path / "new"), lambda f: f.write(b"made"))
        assert batch.holds(os.fsencode(tmp_path / "real" / "x")) and batch.holds(os.fsencode(tmp_path / "new"))
        assert not batch.holds(os.fsencode(tmp_path / "other"))
        assert [e for _, e in batch.commit()] == [None, None]
        assert not batch.holds(os.fsencode(tmp_path / "real" / "x"))
        batch.put(os.fsencode(tmp_path / "real" / "x"), lambda f: f.write(b"second"))
        assert [e for _, e in batch.commit()] == [None]
    assert (tmp_path / "real" / "x").read_bytes() == b"second"


def test_query_results_in_large_buffers_come_back_in_regular_ones_in_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Results are read from DuckDB in Arrow's large buffers (a batch of big cells passes
    2 GiB) and handed on in the regular types, a batch split where it holds more than a
    part may (2 GiB at most; 1 MB here)."""
    import pyarrow as pa

    from mediaforge.catalog import query

    monkeypatch.setattr(query, "_CAST_PART_BYTES", 1 << 20)
    cells = [bytes([i]) * 300_000 for i in range(10)]
    big = pa.record_batch({"n": pa.array(range(10)), "b": pa.array(cells, pa.large_binary()),
                           "l": pa.array([["x"]] * 10, pa.large_list(pa.large_string()))})
    out = query._regular_buffers(pa.RecordBatchReader.from_batches(big.schema, [big]))
    assert out.schema.field("b").type == pa.binary() and out.schema.field("l").type == pa.list_(pa.string())
    parts = list(out)
    assert len(parts) > 3 and all(p.nbytes <= 1 << 20 for p in parts)
    assert pa.Table.from_batches(parts).column("b").to_pylist() == cells


def _created_in(folder: Path) -> Callable[[], list[str]]:
    """Watch `folder` (inotify): the returned call lists the names made there since."""
    import ctypes  # noqa: PLC0415
    import struct  # noqa: PLC0415

    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    assert fd >= 0 and libc.inotify_add_watch(fd, os.fsencode(folder), 0x100 | 0x80) >= 0  # IN_CREATE | IN_MOVED_TO

    def names() -> list[str]:
        out: list[str] = []
        try:
            data = os.read(fd, 1 << 20)
        except BlockingIOError:
            data = b""
        finally:
            os.close(fd)
        at = 0
        while at < len(data):
            _wd, _mask, _cookie, size = struct.unpack_from("iIII", data, at)
            out.append(os.fsdecode(data[at + 16: at + 16 + size].rstrip(b"\0")))
            at += 16 + size
        return out
    return names


def test_export_writes_only_temporaries_the_next_command_sweeps(cataloged: MediaTree, catalog_path: Path,
                                                                tmp_path: Path) -> None:
    """DuckDB's COPY wrote each table to `tmp_` + the name given, then renamed it: a kill -9
    while it wrote left a `tmp_.mediaforge-<hex>.tmp` that no later command swept, and that
    the next scan catalogued as a user's file. Every name made is now one of ours."""
    out = tmp_path / "export"
    out.mkdir()
    made = _created_in(out)
    assert run_cli("export", out, catalog=catalog_path).rc == 0
    names = made()
    assert names and all(re.fullmatch(r"\.mediaforge-[0-9a-f]+\.tmp|[a-z_]+\.parquet", n) for n in names), names


def test_a_tilde_means_home_in_a_catalog_path_and_nothing_in_an_export_folder(cataloged: MediaTree,
                                                                              tmp_path: Path) -> None:
    """A catalog path with a leading `~` (unexpanded: quoted, or from an environment file)
    is the home folder's, for DuckDB and for everything beside the catalog alike; an
    export folder is the literal path given, as for any other folder argument, and gets
    the whole tables (DuckDB, which writes them, would have taken `~` for home)."""
    home, work = tmp_path / "home", tmp_path / "work"
    (home / "out").mkdir(parents=True)
    work.mkdir()
    env = cli_env(None, HOME=str(home))
    res = run_cli("-q", "-c", "~/cat.duckdb", "scan", cataloged.root, "--no-meta", "--json", env=env, cwd=work)
    assert res.rc == 0, res.err
    assert (home / "cat.duckdb").is_file() and (home / "cat.search").is_dir() and not (work / "~").exists()
    for how in ({"env": cli_env(None, HOME=str(home), MEDIAFORGE_CATALOG="~/cat.duckdb")},
                {"env": env, "args": ("-c", "~/cat.duckdb")}):
        res = run_cli(*how.get("args", ()), "stats", "--json", env=how["env"], cwd=work)
        assert res.rc == 0, res.err
        assert json.loads(res.out)["totals"]["files"] == len(cataloged.files)
    res = run_cli("-c", "~/cat.duckdb", "export", "~/out", env=env, cwd=work)
    assert res.rc == 3  # a folder `~` in work, which is not there: made by nothing
    assert_one_line_error(res.err, "no such folder ~")
    (work / "~").mkdir()
    res = run_cli("-c", "~/cat.duckdb", "export", "~/out", env=env, cwd=work)
    assert res.rc == 0, res.err
    assert pq.read_table(work / "~" / "out" / "files.parquet").num_rows == len(cataloged.files)
    assert os.listdir(home / "out") == []


def test_stats_json(cataloged: MediaTree, catalog_path: Path) -> None:
    os.unlink(cataloged.files["flac"])
    assert run_cli("scan", cataloged.root, catalog=catalog_path).rc == 0
    res = run_cli("stats", "--json", catalog=catalog_path)
    assert res.rc == 0, res.err
    st = json.loads(res.out)
    present = {p: d for p, d in cataloged.content.items() if p != cataloged.files["flac"]}
    t = st["totals"]
    assert t["files"] == len(present)
    assert t["bytes"] == sum(len(d) for d in present.values())
    assert t["missing"] == 1 and t["unhashed"] == 0
    assert t["distinct_contents"] == len(set(present.values()))
    kinds = {k["kind"]: k["files"] for k in st["by_kind"]}
    assert kinds["audio"] == 3 and kinds["video"] == 2 and kinds["sidecar"] == 3
    assert sum(kinds.values()) == len(present)
    assert [s["status"] for s in st["last_scans"]] == ["completed", "completed"]
    assert st["last_scans"][0]["missing"] == 1
    last = st["last_scans"][0]
    assert last["started_at"].endswith("Z") and last["finished_at"].endswith("Z")
    started, finished = (datetime.fromisoformat(last[k].replace("Z", "+00:00")) for k in ("started_at", "finished_at"))
    assert started.strftime("%Y-%m-%d %H:%M") == last["started"] and started <= finished
    assert started.utcoffset() is not None and started.utcoffset().total_seconds() == 0
    assert last["seconds"] > 0 and round(last["seconds"], 2) == last["secs"]
    # Extraction statuses count the contents present files have: the deleted song's stays
    # in `media` (for a copy that comes back) but not in the table.
    gone = cataloged.content[cataloged.files["flac"]] not in present.values()
    (extracted,) = rows(catalog_path, "SELECT count(*) AS n FROM media")
    assert sum(e["contents"] for e in st["extraction"]) == extracted["n"] - gone


def test_stats_lists_look_alike_folders_apart(tmp_path: Path, catalog_path: Path) -> None:
    """Two folders whose names differ only in bytes that are not UTF-8 show the same text;
    the largest-folders list counts them apart (with their exact bytes in --json), and a
    file with an undecodable name still counts in its plain folder."""
    lib = os.fsencode(tmp_path / "lib")
    for folder, files in ((b"caf\xe9", {b"a.jpg": 10, b"b.jpg": 20}), (b"caf\xe8", {b"c.jpg": 5}),
                          (b"ok", {b"\xff.jpg": 7, b"d.jpg": 1})):
        os.makedirs(os.path.join(lib, folder))
        for name, size in files.items():
            with open(os.path.join(lib, folder, name), "wb") as f:
                f.write(b"x" * size)
    assert run_cli("scan", lib, "--no-meta", catalog=catalog_path).rc == 0
    res = run_cli("stats", "--json", catalog=catalog_path)
    assert res.rc == 0, res.err
    got = [(d["dir"], d["files"], d["bytes"], d["dir_raw"] and base64.b64decode(d["dir_raw"]))
           for d in json.loads(res.out)["largest_dirs"]]
    shown = os.fsdecode(lib)
    assert got == [(f"{shown}/caf\ufffd", 2, 30, os.path.join(lib, b"caf\xe9")),
                   (f"{shown}/ok", 2, 8, None),
                   (f"{shown}/caf\ufffd", 1, 5, os.path.join(lib, b"caf\xe8"))]
    table = run_cli("stats", env=cli_env(catalog_path, COLUMNS="400"))
    assert table.rc == 0 and "dir_raw" not in table.out
    # The table shows the exact bytes as the paths of `info` do, so the two are told apart.
    assert f"{shown}/caf\\xe9 " in table.out and f"{shown}/caf\\xe8 " in table.out and "\ufffd" not in table.out


def test_stats_table(cataloged: MediaTree, catalog_path: Path) -> None:
    res = run_cli("stats", catalog=catalog_path)
    assert res.rc == 0, res.err
    assert res.out.startswith(f"{len(cataloged.files)} files")
    assert "image" in res.out and "audio" in res.out
    # Into a pipe the tables take the width they need: nothing is cut with an ellipsis.
    assert "completed" in res.out and "\u2026" not in res.out
    assert run_cli("stats", "--top", "1", catalog=catalog_path).rc == 0


def test_query_takes_a_pivot_and_refuses_an_empty_statement_as_a_usage_error(cataloged: MediaTree,
                                                                               catalog_path: Path) -> None:
    res = run_cli("query", "PIVOT (SELECT kind FROM files) ON kind USING count(*)", "-f", "json",
                  catalog=catalog_path)
    assert res.rc == 0, res.err
    assert json.loads(res.out)[0]["image"] >= 1
    for blank in ("  ", ";", " ; ;", "-- a comment", "/* a comment */;"):
        res = run_cli("query", blank, catalog=catalog_path)
        assert res.rc == ExitCode.USAGE, (blank, res.err)
        assert_one_line_error(res.err, "empty SQL statement")


def test_an_output_in_a_folder_that_does_not_exist_is_refused_before_the_work(cataloged: MediaTree,
                                                                               catalog_path: Path, tmp_path: Path) -> None:
    for args in (["query", "SELECT 1"], ["dupes"], ["tag", "list"]):
        res = run_cli(*args, "-f", "csv", "-o", tmp_path / "no" / "such" / "x.csv", catalog=catalog_path)
        assert res.rc == ExitCode.PATH, (args, res.err)
        assert_one_line_error(res.err, "no such folder")


def test_an_output_that_ends_in_a_slash_is_refused_not_written_over_the_file_so_named(
        cataloged: MediaTree, catalog_path: Path, tmp_path: Path) -> None:
    """A QA finding: `-o keep.txt/` (or `keep.txt/.`) dropped the slash and wrote over the
    file `keep.txt`, exit 0; `-o new/` made a file named `new`. Each command that takes
    --output refuses it, exit 2, and leaves what is there."""
    keep = tmp_path / "keep.txt"
    keep.write_text("precious\n")
    for args in (["query", "SELECT 42 AS answer"], ["dupes"], ["tag", "list"], ["collection", "show", "x"],
                 ["search", "a"]):
        for given in (f"{keep}/", f"{keep}/.", f"{tmp_path / 'new'}/"):
            res = run_cli(*args, "-o", given, catalog=catalog_path)
            assert res.rc == ExitCode.USAGE, (args, given, res.err)
            assert_one_line_error(res.err, "names a folder")
    assert keep.read_text() == "precious\n" and not (tmp_path / "new").exists()


def test_an_error_duckdb_meets_after_the_first_batch_comes_out_as_duckdbs() -> None:
    """Arrow passes an error met mid-stream on as an OSError: `streamed` gives it back
    as the duckdb.Error it is (what the search index's smart-collection fallback and
    `query` catch), with DuckDB's text."""
    import duckdb

    from mediaforge.catalog.store import streamed

    # One thread reads the rows in order, so the bad one, last, is met after batches came
    # out (with more, on a busy machine, a thread may reach it first).
    con = duckdb.connect(config={"threads": 1})
    con.execute("CREATE TABLE t AS SELECT range::VARCHAR AS s FROM range(300000)")
    con.execute("INSERT INTO t VALUES ('x')")
    got = 0
    with pytest.raises(duckdb.Error, match="Could not convert string 'x'"):
        for batch in streamed(con.sql("SELECT CAST(s AS INTEGER) AS i FROM t").to_arrow_reader(1000)):
            got += batch.num_rows
    assert got > 0  # it failed after batches had come


def test_stats_counts_the_scan_errors_of_the_latest_scan_of_each_path_not_of_every_scan(tmp_path: Path) -> None:
    """One broken link, scanned twice with -L, was two walk errors in `stats`, and still two
    once the link was gone and a scan found no error."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a.jpg").write_bytes(b"x" * 100)
    (lib / "broken.jpg").symlink_to(tmp_path / "nowhere.jpg")
    catalog = tmp_path / "c.duckdb"

    def scan_errors() -> dict:
        got = json.loads(run_cli("stats", "--json", catalog=catalog).out)["error_stages"]
        return {e["stage"]: e["errors"] for e in got if e["step"] == "scan"}

    for _ in range(2):
        assert run_cli("scan", "-L", "--no-meta", lib, catalog=catalog).rc == 0
    assert scan_errors() == {"walk": 1}
    (lib / "broken.jpg").unlink()
    assert run_cli("scan", "-L", "--no-meta", lib, catalog=catalog).rc == 0
    assert scan_errors() == {}
    assert rows(catalog, "SELECT count(*) AS n FROM scan_errors") == [{"n": 2}]  # kept, as documented
    # A QA finding: counted per set of folders scanned, the error of a folder scanned alone
    # and with another counted twice, and the second count stayed once a scan of the
    # folder alone found it fixed.
    other = tmp_path / "other"
    other.mkdir()
    (lib / "broken.jpg").symlink_to(tmp_path / "nowhere.jpg")
    assert run_cli("scan", "-L", "--no-meta", lib, catalog=catalog).rc == 0
    assert run_cli("scan", "-L", "--no-meta", lib, other, catalog=catalog).rc == 0
    assert scan_errors() == {"walk": 1}
    (lib / "broken.jpg").unlink()
    assert run_cli("scan", "-L", "--no-meta", lib, catalog=catalog).rc == 0
    assert scan_errors() == {}


def test_a_rescan_with_nothing_to_extract_reports_the_real_free_space_floor(tmp_path: Path) -> None:
    """`scan --json` gave `min_free: 0` (the check off, as documented) when it found nothing
    to extract; `meta` in the same state gave the floor."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "notes.txt").write_bytes(b"x" * 100)
    catalog = tmp_path / "c.duckdb"
    env = dict(cli_env(catalog), MEDIAFORGE_MIN_FREE="5M")
    for extra in ((), ("--thumb-size", "128")):
        x = json.loads(run_cli("scan", lib, "--json", *extra, catalog=catalog, env=env).out)["extract"]
        assert (x["files"], x["min_free"], x["thumb_size"]) == (0, 5 << 20, 128 if extra else 0)


def test_usage_errors_point_to_the_commands_help_and_global_options_go_first(catalog_path: Path) -> None:
    """A bad option of a command points to that command's help; a global option given
    after the command (`scan -q`) says where it goes."""
    res = run_cli("scan", "-j", "0", "/nowhere", catalog=catalog_path)
    assert res.rc == 2
    assert_one_line_error(res.err, "0 is not in the range", "(see mediaforge scan --help)")
    res = run_cli("scan", "/nowhere", "-q", catalog=catalog_path)
    assert res.rc == 2
    assert_one_line_error(res.err, "No such option: -q (-q is an option of mediaforge itself, given before the "
                                   "command: mediaforge -q scan ...) (see mediaforge scan --help)")
    res = run_cli("stats", "--catalog", "x.duckdb", catalog=catalog_path)
    assert res.rc == 2 and "mediaforge --catalog PATH stats ..." in res.err
    res = run_cli("--bogus", catalog=catalog_path)
    assert res.rc == 2
    assert_one_line_error(res.err, "No such option: --bogus (see mediaforge --help)")
    res = run_cli("search", "x", "--limit", "abc", catalog=catalog_path)  # not click's "valid int range"
    assert res.rc == 2
    assert_one_line_error(res.err, "'abc' is not a whole number. (see mediaforge search --help)")
    res = run_cli("search", "sine", "-song", catalog=catalog_path)  # a word to leave out, taken for an option
    assert res.rc == 2
    assert_one_line_error(res.err, "No such option: -s (a word to leave out, given as an argument of its own, comes "
                                   "after --: mediaforge search paris -- -receipt) (see mediaforge search --help)")
    res = run_cli("dupes", "--similar", "--threshold", "abc", catalog=catalog_path)  # click's plain "valid int"
    assert res.rc == 2
    assert_one_line_error(res.err, "'abc' is not a whole number. (see mediaforge dupes --help)")
    res = run_cli("search", "--limt", "5", "paris", catalog=catalog_path)  # a mistyped option: no hint of words
    assert res.rc == 2
    assert_one_line_error(res.err, "No such option: --limt (Possible options: --limit) (see mediaforge search --help)")
    res = run_cli("meta", "--timeout", "soon", catalog=catalog_path)
    assert res.rc == 2
    assert_one_line_error(res.err, "'soon' is not a number. (see mediaforge meta --help)")


def test_an_ignore_file_this_user_cannot_read_holds_its_folder_with_its_errno(tmp_path: Path, catalog_path: Path,
                                                                               unprivileged: Unprivileged) -> None:
    """Another user's `.mediaforgeignore`, unreadable to the one scanning: what it leaves
    out (`private/`) was catalogued and read. Its folder is left as it was, and its error
    row carries the OS error number (13), as a folder's does."""
    lib = tmp_path / "lib"
    (lib / "sub" / "private").mkdir(parents=True)
    (lib / "sub" / "private" / "secret.jpg").write_bytes(b"\xff\xd8\xff" + b"s" * 100)
    (lib / "a.jpg").write_bytes(b"\xff\xd8\xff" + b"a" * 100)
    (lib / "sub" / ".mediaforgeignore").write_text("private/\n")
    unprivileged.share(lib)
    other = 65534 if unprivileged.uid in (None, 0) else 0  # not the scanning user
    os.chown(lib / "sub" / ".mediaforgeignore", other, other)
    os.chmod(lib / "sub" / ".mediaforgeignore", 0o600)
    p = _scan_unprivileged(unprivileged, catalog_path, lib)
    assert p.returncode == 0, p.stderr.decode()
    assert set(files_by_path(catalog_path)) == {os.fsencode(lib / "a.jpg")}
    [err] = rows(catalog_path, "SELECT path, message, errno FROM scan_errors WHERE stage = 'ignore-file'")
    assert (err["path"], err["errno"]) == (str(lib / "sub" / ".mediaforgeignore"), 13), err
    assert err["message"].endswith("; its folder is left as it was"), err


def test_a_folder_named_like_the_ignore_file_this_user_cannot_open_holds_no_rules(
        tmp_path: Path, catalog_path: Path, unprivileged: Unprivileged) -> None:
    """Review: a folder named .mediaforgeignore holds no rules, but one the scanning user
    may not open failed its open, and its parent was left as it was. A dangling link of
    that name in a folder above the root was taken for no file at all: the root walked
    with none of its rules; it is a rules file that cannot be read, as in the walk."""
    lib = tmp_path / "lib"
    (lib / "sub" / ".mediaforgeignore").mkdir(parents=True)
    (lib / "sub" / "a.jpg").write_bytes(b"\xff\xd8\xff" + b"a" * 100)
    unprivileged.share(lib)
    os.chmod(lib / "sub" / ".mediaforgeignore", 0)
    p = _scan_unprivileged(unprivileged, catalog_path, lib)
    os.chmod(lib / "sub" / ".mediaforgeignore", 0o755)
    assert p.returncode == 0, p.stderr.decode()
    assert set(files_by_path(catalog_path)) == {os.fsencode(lib / "sub" / "a.jpg")}
    assert rows(catalog_path, "SELECT stage FROM scan_errors WHERE stage = 'ignore-file'") == []
    (tmp_path / "above").mkdir()
    (tmp_path / "above" / ".mediaforgeignore").symlink_to(tmp_path / "nowhere")
    (tmp_path / "above" / "root").mkdir()
    (tmp_path / "above" / "root" / "b.jpg").write_bytes(b"\xff\xd8\xff" + b"b" * 100)
    other = tmp_path / "other.duckdb"
    res = run_cli("scan", tmp_path / "above" / "root", "--no-meta", "--json", catalog=other)
    assert res.rc == 0 and json.loads(res.out)["new"] == 0, (res.out, res.err)
    [err] = rows(other, "SELECT path, message FROM scan_errors WHERE stage = 'ignore-file'")
    assert err["path"] == str(tmp_path / "above" / ".mediaforgeignore"), err


def test_a_catalog_folder_this_user_cannot_write_is_exit_5_not_a_failed_write(tmp_path: Path,
                                                                               unprivileged: Unprivileged) -> None:
    """A QA finding: a catalog file the user may write in a folder they may not (so no
    `.wal` can be made) gave exit 7, "writing the catalog failed", as a full disk does;
    it is a catalog that cannot be opened for writing: exit 5, the permission named."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a.jpg").write_bytes(b"\xff\xd8\xff" + b"a" * 100)
    folder = tmp_path / "cat"
    catalog = folder / "c.duckdb"
    do_scan(catalog, lib)
    unprivileged.share(folder, lib)
    os.chmod(catalog, 0o666)
    os.chmod(folder, 0o555)
    try:
        p = subprocess.run(cli_cmd("tag", "add", "k", lib / "a.jpg"), env=cli_env(catalog), capture_output=True,
                           timeout=120, **unprivileged.popen)
    finally:
        os.chmod(folder, 0o755)
    assert p.returncode == ExitCode.CATALOG_INVALID, p
    assert_one_line_error(p.stderr.decode(), "permission denied", str(catalog))
    assert rows(catalog, "SELECT count(*) AS n FROM tags") == [{"n": 0}]


def test_a_thumbnail_folder_that_refuses_writes_is_said_after_the_run(tmp_path: Path,
                                                                     unprivileged: Unprivileged) -> None:
    """A QA finding: a `thumbs/` folder this user cannot write left a scan or `meta` with
    "thumbnails 0" and nothing said, and `meta_errors` rows in Python's words
    (`PermissionError: [Errno 13] ...`). The run now says how many were refused and what to
    run once the folder can be written; each row names the reason and the folder."""
    from PIL import Image

    lib = tmp_path / "lib"
    lib.mkdir()
    Image.new("RGB", (64, 48), (200, 10, 10)).save(lib / "p.jpg")
    folder = tmp_path / "cat"
    catalog = folder / "c.duckdb"
    do_scan(catalog, lib)
    thumbs = folder / "thumbs"
    thumbs.mkdir()
    unprivileged.share(folder, lib)
    os.chmod(thumbs, 0o555)
    try:
        p = subprocess.run(cli_cmd("meta", "--no-fingerprints", "--json"), env=cli_env(catalog), capture_output=True,
                           timeout=120, **unprivileged.popen)
        text = subprocess.run(cli_cmd("meta", "--no-fingerprints", "--retry-failed"), env=cli_env(catalog),
                              capture_output=True, timeout=120, **unprivileged.popen)
        # QA findings: a retry without thumbnails made the content `ok` and dropped what
        # making its thumbnail had found; `thumbs` counted a refused one as failed.
        again = subprocess.run(cli_cmd("meta", "--retry-failed", "--no-thumbs", "--json"), env=cli_env(catalog),
                               capture_output=True, timeout=120, **unprivileged.popen)
        os.chmod(thumbs, 0o755)  # (a `thumbs/` it cannot write stops `thumbs` before it starts)
        (thumbs / "256").mkdir(exist_ok=True)
        os.chmod(thumbs / "256", 0o555)
        only = subprocess.run(cli_cmd("thumbs", "--missing-only", "--json"), env=cli_env(catalog),
                              capture_output=True, timeout=120, **unprivileged.popen)
    finally:
        os.chmod(thumbs, 0o755)
        if (thumbs / "256").exists():
            os.chmod(thumbs / "256", 0o755)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["thumbs_refused"] == 1
    assert "1 thumbnail not written: their folder refused them" in text.stdout.decode(), text.stdout
    messages = [r["message"] for r in rows(catalog, "SELECT message FROM meta_errors WHERE stage = 'thumb'")]
    assert messages and all(m.startswith("thumbnail not written: Permission denied (") and str(thumbs) in m
                            for m in messages), messages
    got = json.loads(again.stdout)
    assert (got["files"], got["ok"], got["partial"]) == (1, 0, 1), got
    assert rows(catalog, "SELECT m.status, count(e.blake3) AS notes FROM media m LEFT JOIN meta_errors e "
                         "ON e.blake3 = m.blake3 AND e.stage = 'thumb' GROUP BY 1") == [{"status": "partial", "notes": 1}]
    got = json.loads(only.stdout or b"null")
    assert got is not None and (got["partial"], got["failed"], got["thumbs_refused"]) == (1, 0, 1), only.stderr


@pytest.mark.parametrize(("args", "code"), [(("scan", "/no/such/folder"), ExitCode.PATH),
                                            (("query", "SELEC 1"), ExitCode.SQL)])
def test_debug_shows_the_traceback_and_keeps_the_exit_code(tmp_path: Path, args: tuple[str, ...],
                                                           code: int) -> None:
    catalog = tmp_path / "c.duckdb"
    if args[0] == "query":
        assert run_cli("scan", tmp_path, "--no-meta", catalog=catalog).rc == 0
    res = run_cli(*args, env=cli_env(catalog, MEDIAFORGE_DEBUG="1"))
    assert res.rc == code, res
    assert "Traceback" in res.err
    assert res.err.rstrip("\n").splitlines()[-1].startswith("mediaforge: error: "), res.err


@pytest.mark.parametrize("shut", ["ignore file", "list only"])
def test_a_file_moved_where_the_scan_cannot_look_keeps_its_tag_through_prunes(
        tmp_path: Path, catalog_path: Path, unprivileged: Unprivileged, shut: str) -> None:
    """A QA finding: a tagged file moved into a folder whose `.mediaforgeignore` cannot be
    read, or into one that may be listed and not entered (its file found, not looked at),
    lost its row and tag to the next prunes, as a move into a folder that cannot be read
    at all did not."""
    lib = tmp_path / "lib"
    (lib / "a").mkdir(parents=True)
    (lib / "q").mkdir()
    (lib / "a" / "t.jpg").write_bytes(b"\xff\xd8\xff t")
    if shut == "ignore file":
        (lib / "q" / ".mediaforgeignore").write_text("*.tmp\n")
    unprivileged.share(catalog_path.parent)

    def scan(*args: str) -> dict:
        return _scan_unprivileged_json(unprivileged, catalog_path, lib, *args)

    scan()
    assert run_cli("tag", "add", "keep", lib / "a" / "t.jpg", catalog=catalog_path).rc == 0
    os.rename(lib / "a" / "t.jpg", lib / "q" / "t.jpg")
    shut_path = lib / "q" / ".mediaforgeignore" if shut == "ignore file" else lib / "q"
    os.chmod(shut_path, 0o000 if shut == "ignore file" else 0o444)
    try:
        for _ in range(3):
            assert scan("--prune")["pruned"] == 0
    finally:
        os.chmod(shut_path, 0o644 if shut == "ignore file" else 0o755)
    assert [r["tag"] for r in rows(catalog_path, "SELECT tag FROM tags")] == ["keep"]
