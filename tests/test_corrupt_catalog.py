"""A catalog file damaged on disk: one line, exit 5, for reads and scans alike."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conftest import MediaTree, assert_one_line_error, do_scan, run_cli
from mediaforge.catalog.schema import SCHEMA_VERSION
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


@pytest.mark.parametrize("version", ["seven", "-1", "0", " 1", "\u0661\u0662"])
def test_a_schema_version_that_is_not_a_number_gives_exit_5(media_tree: MediaTree, tmp_path: Path,
                                                           version: str) -> None:
    """And one below 1 (a QA finding: "internal error: KeyError: 0", exit 1, from every
    command; 0 was a doubled line from a read, and exit 7 from a scan), or not in ASCII
    digits alone (a review finding: Arabic-Indic "12" ran the migrations from 12 again)."""
    import duckdb

    cat = tmp_path / "cat.duckdb"
    do_scan(cat, media_tree.root)
    with duckdb.connect(str(cat)) as con:
        con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [version]).fetchall()
    for command in (("stats",), ("query", "SELECT 1"), ("scan", str(media_tree.root))):
        res = run_cli(*command, catalog=cat)
        assert res.rc == ExitCode.CATALOG_INVALID, res
        assert_one_line_error(res.err)
        assert "schema_version" in res.err and str(cat) in res.err, res.err


@pytest.mark.parametrize(("command", "column"), [
    (("query", "SELECT * FROM files"), "size"), (("export", "OUT"), "size"), (("scan", "ROOT"), "size"),
    # A condition that reads the block was called a bad condition (exit 2).
    (("tag", "add", "x", "--where", "size > 0"), "size"),
    (("collection", "create", "big", "--smart", "size > 0"), "size"), (("stats",), "size")])
def test_one_damaged_block_of_files_gives_exit_5_for_every_command(media_tree: MediaTree, tmp_path: Path,
                                                                 command: tuple[str, ...], column: str) -> None:
    """One bad block in the `files` table's data: the catalog opens and answers until a
    query reads that block. Then it is "damaged", exit 5, whatever the command (it was a
    SQL error for `query`, an export error, a write error for `scan`). The line names the
    catalog (a QA finding: `stats` did not)."""
    import duckdb

    good = tmp_path / "good.duckdb"
    do_scan(good, media_tree.root)
    with duckdb.connect(str(good), read_only=True) as con:
        (block,) = con.execute("SELECT min(block_id) FROM pragma_storage_info('files') "
                               "WHERE block_id >= 0 AND column_name = ?", [column]).fetchone()
    bad = tmp_path / "bad.duckdb"
    shutil.copyfile(good, bad)
    with open(bad, "r+b") as f:
        # Three 4 KiB file headers, then 256 KiB blocks, each with its checksum first.
        f.seek(3 * 4096 + block * 256 * 1024 + 8)
        f.write(os.urandom(4096))
    args = [os.fsdecode(media_tree.root) if a == "ROOT" else str(tmp_path / "out") if a == "OUT" else a
            for a in command]
    res = run_cli(*args, catalog=bad)
    assert res.rc == ExitCode.CATALOG_INVALID, res
    assert_one_line_error(res.err, "damaged", str(bad))


def test_a_damaged_block_met_while_the_scan_streams_the_catalog_gives_exit_5(tmp_path: Path) -> None:
    """Past the first batches, the rows a rescan compares against stream into the core
    while it walks; a bad block there came back as the core's own error, exit 1."""
    import duckdb

    root = tmp_path / "many"
    for d in range(20):
        (root / f"d{d:02d}").mkdir(parents=True)
        for i in range(1500):
            os.mknod(root / f"d{d:02d}" / f"IMG_{i:05d}.jpg")
    good = tmp_path / "good.duckdb"
    assert run_cli("scan", root, "--no-meta", "--no-index", catalog=good).rc == 0
    with duckdb.connect(str(good), read_only=True) as con:
        blocks = [b for (b,) in con.execute("SELECT DISTINCT block_id FROM pragma_storage_info('files') "
                                            "WHERE block_id >= 0 AND column_name = 'media_id' ORDER BY 1").fetchall()]
    assert len(blocks) >= 2
    bad = tmp_path / "bad.duckdb"
    shutil.copyfile(good, bad)
    with open(bad, "r+b") as f:
        f.seek(3 * 4096 + blocks[-1] * 256 * 1024 + 8)
        f.write(os.urandom(4096))
    res = run_cli("scan", root, "--no-meta", "--no-index", catalog=bad)
    assert res.rc == ExitCode.CATALOG_INVALID, res
    assert_one_line_error(res.err, "damaged", str(bad))


def test_an_empty_catalog_file_is_made_a_catalog_and_other_files_are_named(media_tree: MediaTree,
                                                                           tmp_path: Path) -> None:
    """A 0-byte catalog (a first scan killed as it made the file, `--catalog $(mktemp)`)
    holds nothing: readers say it is empty (exit 3), a scan makes the catalog in it. An
    SQLite file and a folder where the write-ahead log goes are named as what they are."""
    import sqlite3

    empty = tmp_path / "empty.duckdb"
    empty.touch()
    # Readers, and commands that write but make no catalog (they made one in it, and
    # said nothing).
    for args in (("stats",), ("collection", "create", "Z"), ("tag", "add", "x", "--where", "true"), ("xmp", "import"),
                 ("meta",)):
        res = run_cli(*args, catalog=empty)
        assert res.rc == ExitCode.PATH, (args, res)
        assert_one_line_error(res.err, "empty (0 bytes)", "mediaforge scan")
        assert empty.stat().st_size == 0
    assert run_cli("scan", media_tree.root, "--no-meta", catalog=empty).rc == 0
    assert run_cli("stats", catalog=empty).rc == 0
    lite = tmp_path / "photos.sqlite"
    with sqlite3.connect(lite) as con:
        con.execute("CREATE TABLE t (x)")
    res = run_cli("stats", catalog=lite)
    assert res.rc == ExitCode.CATALOG_INVALID
    assert_one_line_error(res.err, "is an SQLite database, not a DuckDB catalog")
    (tmp_path / "w.duckdb.wal").mkdir()
    res = run_cli("scan", media_tree.root, "--no-meta", catalog=tmp_path / "w.duckdb")
    assert res.rc == ExitCode.CATALOG_INVALID
    assert_one_line_error(res.err, "w.duckdb.wal is a folder")
    # A file whose size says 0 but which holds text (procfs) is no empty catalog: it is
    # named as no catalog, and neither read as empty nor removed by a scan.
    for args in (("stats",), ("scan", media_tree.root, "--no-meta")):
        res = run_cli(*args, catalog="/proc/self/status")
        assert res.rc == ExitCode.CATALOG_INVALID, (args, res)
        assert_one_line_error(res.err, "not a readable DuckDB catalog")


@pytest.mark.parametrize("name", ["rows.csv", "rows.parquet", "rows.json"])
def test_a_data_file_given_as_the_catalog_is_named_not_a_duckdb_file(media_tree: MediaTree, tmp_path: Path,
                                                                     name: str) -> None:
    """A QA finding: DuckDB opens a CSV, Parquet or JSON file given as its database as an
    in-memory one with views over it, so a reading command said "Cannot launch in-memory
    database in read-only mode" and a scan "a DuckDB database but not a MediaForge
    catalog". The file is left as it was."""
    import duckdb

    data = tmp_path / name
    fmt = {"csv": "(FORMAT csv)", "parquet": "(FORMAT parquet)", "json": "(FORMAT json)"}[name.split(".")[1]]
    duckdb.sql(f"COPY (SELECT 1 AS a, 'x' AS b) TO '{data}' {fmt}")
    before = data.read_bytes()
    for args in (("stats",), ("query", "SELECT 1"), ("scan", media_tree.root, "--no-meta")):
        res = run_cli(*args, catalog=data)
        assert res.rc == ExitCode.CATALOG_INVALID, (args, res)
        assert_one_line_error(res.err, "not a readable DuckDB catalog: it is not a DuckDB file")
    assert data.read_bytes() == before


@pytest.mark.parametrize("cut", [8192, 4096, 0])
def test_a_catalog_cut_short_after_it_held_data_is_damaged_not_made_anew(media_tree: MediaTree, tmp_path: Path,
                                                                        cut: int) -> None:
    """A QA finding: a catalog cut to under three header blocks (8 KiB), or emptied with
    its log of changes beside it, was taken for one whose making stopped: removed and made
    anew by the next scan, its tags gone without a word. Its header counts checkpoints, and
    a log holds changes: it held data, and it is left as it is for the user to restore.
    A later one: cut to its first header block (4 KiB), where no checkpoint is counted,
    its search index beside it tells it held data."""
    catalog = tmp_path / "c.duckdb"
    assert run_cli("scan", media_tree.root, "--no-meta", catalog=catalog).rc == 0
    assert run_cli("tag", "add", "keep", "--where", "true", catalog=catalog).rc == 0
    if cut == 0:
        # Changes committed to the log, not yet folded into the file, then the file emptied.
        import duckdb

        with duckdb.connect(str(catalog)) as con:
            con.execute("SET checkpoint_threshold = '1GB'")
            con.execute("PRAGMA disable_checkpoint_on_shutdown")
            con.execute("UPDATE tags SET tag = 'kept'")
        assert (tmp_path / "c.duckdb.wal").stat().st_size > 0
    with open(catalog, "r+b") as f:
        f.truncate(cut)
    for args in (("scan", media_tree.root, "--no-meta"), ("stats",), ("tag", "list")):
        res = run_cli(*args, catalog=catalog)
        assert res.rc == ExitCode.CATALOG_INVALID, (args, res)
        assert_one_line_error(res.err, str(catalog), "restore it from a backup")
        assert catalog.stat().st_size == cut


def test_an_error_line_that_cannot_be_written_keeps_the_commands_exit_code(media_tree: MediaTree,
                                                                          tmp_path: Path) -> None:
    """stderr on a full disk (a cron job's log): the error is lost, its exit code is not
    (it was 1, an internal error)."""
    import subprocess

    from conftest import cli_cmd, cli_env

    catalog = tmp_path / "c.duckdb"
    assert run_cli("scan", media_tree.root, "--no-meta", catalog=catalog).rc == 0
    with open("/dev/full", "w") as full:
        p = subprocess.run([*cli_cmd(), "--catalog", str(catalog), "info", str(tmp_path / "nope.jpg")],
                           stderr=full, stdout=subprocess.PIPE, env=cli_env(), timeout=120)
        assert p.returncode == ExitCode.PATH
        p = subprocess.run([*cli_cmd(), "--catalog", str(catalog), "stats"], stdout=full, stderr=full,
                           env=cli_env(), timeout=120)
        assert p.returncode == ExitCode.PATH


@pytest.mark.parametrize("command", [("scan", "--no-meta", "{lib}"), ("meta",), ("thumbs",), ("stats",),
                                     ("collection", "create", "Best"), ("tag", "add", "x", "{lib}/a.jpg")])
def test_a_catalog_path_that_links_to_nothing_makes_no_catalog_behind_it(tmp_path: Path, command: tuple) -> None:
    """The catalog's path a link to a disk not mounted: writers made a new, empty catalog
    at the link's target (and reported success on it); now every command exits 3."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a.jpg").write_bytes(b"x" * 100)
    link = tmp_path / "catalog.duckdb"
    link.symlink_to(tmp_path / "disk" / "catalog.duckdb")
    (tmp_path / "disk").mkdir()
    r = run_cli(*(c.format(lib=lib) for c in command), catalog=link)
    assert r.rc == ExitCode.PATH, r.err
    assert_one_line_error(r.err, "is a link to", "which is not there")
    assert list((tmp_path / "disk").iterdir()) == []


def test_a_catalog_folder_that_links_to_nothing_makes_no_catalog(tmp_path: Path) -> None:
    """The catalog's folder a link to a disk not mounted: scan said "cannot create the
    catalog's folder ...: File exists" with exit 5."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a.jpg").write_bytes(b"x" * 100)
    (tmp_path / "state").symlink_to(tmp_path / "disk" / "mediaforge")
    r = run_cli("scan", "--no-meta", lib, catalog=tmp_path / "state" / "catalog.duckdb")
    assert r.rc == ExitCode.PATH, r.err
    assert_one_line_error(r.err, "is a link to", "which is not there")
    assert not (tmp_path / "disk").exists()


def _commit_left_in_the_log(catalog: Path) -> None:
    """One more commit that only the write-ahead log holds, as a crash before the
    checkpoint leaves it."""
    import duckdb

    con = duckdb.connect(str(catalog))
    con.execute("PRAGMA disable_checkpoint_on_shutdown")
    con.execute("SET checkpoint_threshold = '10GB'")
    con.execute("INSERT INTO meta VALUES ('left-in-the-log', 'x')")
    con.close()
    assert Path(f"{catalog}.wal").stat().st_size > 0


@pytest.mark.parametrize("how", ["damaged", "newer", "head zeroed", "all zeroed", "a checkpoint behind"])
def test_a_log_that_cannot_be_replayed_is_named_not_the_catalog(media_tree: MediaTree, tmp_path: Path,
                                                                 how: str) -> None:
    """A QA finding: a damaged write-ahead log (or one newer than a catalog restored from
    a backup beside it) was reported as the catalog "not a readable DuckDB catalog", with
    the advice to move the catalog aside and scan again, which throws away every tag and
    id of a sound catalog. The log is named, and moving it aside is the advice. Later QA
    findings: a log damaged at its start (zeroed, as a crash leaves it) was skipped by
    DuckDB without a word, its commits lost and the log deleted by the next writer; and a
    log one checkpoint behind the catalog got DuckDB's words, not the log's name."""
    catalog = tmp_path / "cat.duckdb"
    do_scan(catalog, media_tree.root)
    assert run_cli("tag", "add", "keep", "--where", "true", catalog=catalog).rc == 0
    wal = Path(f"{catalog}.wal")
    if how == "damaged":
        _commit_left_in_the_log(catalog)
        with open(wal, "r+b") as f:
            f.seek(wal.stat().st_size // 2)
            f.write(b"\xff\xff\xff\xff")
    elif how in ("head zeroed", "all zeroed"):
        _commit_left_in_the_log(catalog)
        with open(wal, "r+b") as f:
            f.write(bytes(4 if how == "head zeroed" else wal.stat().st_size))
    elif how == "a checkpoint behind":
        _commit_left_in_the_log(catalog)
        wal.rename(tmp_path / "old.wal")
        assert run_cli("tag", "add", "later", "--where", "true", catalog=catalog).rc == 0
        shutil.copyfile(tmp_path / "old.wal", wal)
    else:
        backup = tmp_path / "backup.duckdb"
        shutil.copyfile(catalog, backup)
        assert run_cli("tag", "add", "later", "--where", "true", catalog=catalog).rc == 0
        _commit_left_in_the_log(catalog)
        shutil.copyfile(backup, catalog)  # the backup put back, the newer log left beside it
    for args in (("stats",), ("scan", os.fsdecode(media_tree.root), "--no-meta")):
        res = run_cli(*args, catalog=catalog)
        assert res.rc == ExitCode.CATALOG_INVALID, res
        assert_one_line_error(res.err, f"{wal}", "write-ahead log", "not the catalog")
    wal.rename(tmp_path / "aside.wal")
    res = run_cli("query", "SELECT DISTINCT tag FROM tags", "--format", "csv", catalog=catalog)
    assert res.rc == 0 and "keep" in res.out, res


@pytest.mark.parametrize("cause", [
    "Failed to commit: could not allocate block of size 256.0 KiB (2.0 MiB/2.0 MiB used)",
    'Could not write file "c.duckdb": No space left on device'])
def test_a_log_that_fails_to_replay_for_want_of_room_is_not_called_damaged(tmp_path: Path, cause: str) -> None:
    """A review finding: DuckDB words every failure while it replays a log the same way,
    memory or disk running out included; those were met with the advice to move the log
    aside, which throws away its commits over a condition that passes by itself."""
    from mediaforge.catalog.store import _classify_open_error

    err = _classify_open_error(tmp_path / "c.duckdb",
                               RuntimeError(f'Failure while replaying WAL file "{tmp_path}/c.duckdb.wal": {cause}'))
    assert "aside" not in str(err), err
    damaged_log = _classify_open_error(tmp_path / "c.duckdb", RuntimeError(
        f'Failure while replaying WAL file "{tmp_path}/c.duckdb.wal": Corrupt WAL file: entry at byte position 90'))
    assert "move" in str(damaged_log) and ".wal aside" in str(damaged_log)


def test_an_empty_catalog_a_process_is_making_is_not_removed(tmp_path: Path) -> None:
    """A review finding: an empty catalog file (a stub a first scan stopped making) is
    removed by the next writer, and one that another process is making at that moment (it
    holds the file's lock as it writes the headers) was removed under it: it is busy."""
    import subprocess
    import sys

    stub = tmp_path / "c.duckdb"
    stub.write_bytes(b"\0" * 8 + b"DUCK" + b"\0" * (8192 - 12))
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); fcntl.lockf(fd, fcntl.LOCK_EX); "
        "print('held', flush=True); time.sleep(30)"), str(stub)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        res = run_cli("scan", tmp_path, "--no-meta", catalog=stub)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert res.rc == ExitCode.CATALOG_BUSY, res
    assert_one_line_error(res.err, "busy")
    assert stub.stat().st_size == 8192
    (tmp_path / "empty").mkdir()
    assert run_cli("scan", tmp_path / "empty", "--no-meta", catalog=stub).rc == 0  # not held: made a catalog
    assert stub.stat().st_size >= 12288


def test_an_older_catalog_on_a_read_only_disk_is_read_upgraded_in_memory(media_tree: MediaTree,
                                                                           tmp_path: Path) -> None:
    """A QA finding: a catalog of an older schema kept on a read-only medium (a backup)
    could not be read at all: every command exited 5, with a message saying commands that
    only read it work. Those read it now from a copy upgraded in memory, saying so, and
    the file is left as it was; a command that writes still gets its one-line error."""
    import json
    import subprocess

    import duckdb

    folder = tmp_path / "backup"
    folder.mkdir()
    catalog = folder / "old.duckdb"
    do_scan(catalog, media_tree.root)
    with duckdb.connect(str(catalog)) as con:
        # As schema 21 had it: no bit depth for sound, which migration 22 drops the rows
        # of lossless sound for, to be extracted again.
        con.execute("INSERT INTO media (blake3, kind, status, audio_codec, extracted_at) "
                    "SELECT blake3, 'audio', 'ok', 'flac', now()::TIMESTAMP FROM files WHERE blake3 IS NOT NULL LIMIT 2; "
                    "UPDATE meta SET value = '21' WHERE key = 'schema_version'")
        media_rows = con.execute("SELECT count(*) FROM media").fetchone()[0]
    assert media_rows > 0
    before = catalog.read_bytes()
    r = subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)], capture_output=True, text=True)
    assert r.returncode == 0, f"a read-only bind mount needs root: {r.stderr}"
    try:
        res = run_cli("query", "SELECT count(*) AS n FROM files", "-f", "json", catalog=catalog)
        assert res.rc == 0, res.err
        assert json.loads(res.out) == [{"n": len(media_tree.files)}]
        assert "upgraded in memory" in res.err and len(res.err.strip().splitlines()) == 1, res.err
        res = run_cli("query", "SELECT value FROM meta WHERE key = 'schema_version'", "-f", "json", catalog=catalog)
        assert json.loads(res.out) == [{"value": str(SCHEMA_VERSION)}]
        # A review finding: the copy lost the rows a migration drops for the next scan to
        # extract again, which nothing extracts into a copy. Every row is kept.
        res = run_cli("query", "SELECT count(*) AS n FROM media", "-f", "json", catalog=catalog)
        assert json.loads(res.out) == [{"n": media_rows}], res.out
        assert run_cli("stats", catalog=catalog).rc == 0
        res = run_cli("export", tmp_path / "out", catalog=catalog)  # opens it twice: one copy, one warning
        assert res.rc == 0 and res.err.count("upgraded in memory") == 1, res.err
        res = run_cli("tag", "add", "x", media_tree.root, catalog=catalog)
        assert res.rc != 0 and "Traceback" not in res.err
        assert_one_line_error(res.err)
    finally:
        subprocess.run(["umount", str(folder)], check=False)
    assert catalog.read_bytes() == before


def test_a_database_of_another_program_s_schemas_is_no_catalog_to_write_into(tmp_path: Path) -> None:
    """A QA finding: a DuckDB file whose tables all lie outside `main` was called an empty
    catalog, and a scan wrote MediaForge's tables beside them."""
    import duckdb

    db = tmp_path / "u.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE SCHEMA s; CREATE TABLE s.precious AS SELECT 42 AS a")
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a.txt").write_bytes(b"x")
    for args in (("stats",), ("scan", lib)):
        res = run_cli(*args, catalog=db)
        assert res.rc == ExitCode.CATALOG_INVALID, (args, res)
        assert_one_line_error(res.err, "a DuckDB database but not a MediaForge catalog")
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM information_schema.tables").fetchall() == [(1,)]


def test_a_catalog_removed_while_a_command_wrote_it_is_an_error(tmp_path: Path) -> None:
    """A QA finding: the catalog deleted as a scan ran, the scan reported success (exit 0)
    of what went with the file. A writer that finds another file, or none, at its path as
    it ends says so, exit 7."""
    from mediaforge.catalog import open_catalog
    from mediaforge.errors import CatalogWriteError

    for how in ("removed", "replaced"):
        path = tmp_path / f"{how}.duckdb"
        open_catalog(path).close()
        with pytest.raises(CatalogWriteError, match="was removed or replaced while this command wrote it"):
            with open_catalog(path) as cat:
                cat.con.execute("INSERT INTO meta VALUES ('mine', 'x')")
                path.unlink()
                if how == "replaced":
                    path.write_bytes(b"")
        assert CatalogWriteError.exit_code == ExitCode.CATALOG_WRITE == 7
    with open_catalog(tmp_path / "kept.duckdb") as cat:  # and one left where it is: no error
        cat.con.execute("INSERT INTO meta VALUES ('mine', 'x')")
