"""Guards a review found missing: the read-only check of `query` against comments that
hide a writing statement, output files that are never lost or aimed at the catalog, a
closed stdout or stderr, and extraction results whose values do not fit their columns."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import shlex
import re
import struct
import shutil
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

from conftest import assert_one_line_error, cli_cmd, cli_env, on_a_terminal, rows, run_cli


@pytest.fixture
def small_catalog(tmp_path: Path) -> Path:
    root = tmp_path / "lib"
    root.mkdir()
    Image.new("RGB", (16, 16), (200, 0, 0)).save(root / "IMG_1.jpg")
    catalog = tmp_path / "c.duckdb"
    res = run_cli("scan", root, catalog=catalog)
    assert res.rc == 0, res.err
    return catalog


def _script_folder(tmp_path: Path, written: Path) -> Path:
    """A folder that `PRAGMA import_database` would run: it writes `written`."""
    folder = tmp_path / "imp"
    folder.mkdir()
    (folder / "schema.sql").write_text(f"COPY (SELECT 'pwned' AS x) TO '{written}';\n")
    (folder / "load.sql").write_text("")
    return folder


def test_comments_cannot_hide_a_writing_statement_from_query(tmp_path: Path, small_catalog: Path) -> None:
    """DuckDB nests block comments and ends `--` comments at a carriage return; each of
    these once passed the check and wrote a file."""
    written = tmp_path / "pwned.csv"
    imp = _script_folder(tmp_path, written)
    for sql in (f"/* /* */ PRAGMA version */ PRAGMA import_database('{imp}')",
                f"--\rPRAGMA import_database('{imp}') /*\nPRAGMA version */",
                f"/* /* */ EXPLAIN SELECT '*/ EXPLAIN ANALYZE COPY (SELECT 42 AS v) TO $${written}$$ --'"):
        res = run_cli("query", "--", sql, catalog=small_catalog)
        assert res.rc == 6, (sql, res.err)
        assert_one_line_error(res.err, "refused")
        assert not written.exists()
    # The reading forms still run.
    for sql in ("PRAGMA table_info('files')", "/* a */ -- b\nPRAGMA version", "EXPLAIN SELECT 1",
                "EXPLAIN ANALYZE SELECT 1", "EXPLAIN (FORMAT json) SELECT 1"):
        res = run_cli("query", sql, "--format", "csv", catalog=small_catalog)
        assert res.rc == 0, (sql, res.err)


def test_a_failed_output_write_leaves_the_file_that_was_there(tmp_path: Path, small_catalog: Path) -> None:
    """pyarrow removes the path it was writing on failure: an existing file, or as root a
    device node such as /dev/full. The result now goes to a temporary file first."""
    target = tmp_path / "precious.parquet"
    target.write_text("my precious data")
    os.chmod(target, 0o640)
    res = run_cli("query", "SELECT INTERVAL '1 day' AS c", "-f", "parquet", "-o", target, catalog=small_catalog)
    assert res.rc == 2
    assert_one_line_error(res.err, "parquet cannot hold", "cast")
    assert target.read_text() == "my precious data"
    res = run_cli("query", "SELECT 1 AS a", "-f", "parquet", "-o", target, catalog=small_catalog)
    assert res.rc == 0, res.err
    assert target.read_bytes()[:4] == b"PAR1" and oct(target.stat().st_mode & 0o777) == oct(0o640)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".mediaforge-")) == []
    if os.path.exists("/dev/full"):
        for fmt in ("parquet", "csv"):
            res = run_cli("query", "SELECT 1 AS a", "-f", fmt, "-o", "/dev/full", catalog=small_catalog)
            assert res.rc == 3
            assert_one_line_error(res.err, "/dev/full", "no space")
            assert os.path.exists("/dev/full")


def test_output_and_export_never_overwrite_the_catalog_under_another_name(tmp_path: Path,
                                                                          small_catalog: Path) -> None:
    alias = tmp_path / "alias.db"
    os.link(small_catalog, alias)
    res = run_cli("query", "SELECT 1 AS a", "-f", "csv", "-o", alias, catalog=small_catalog)
    assert res.rc == 2
    assert_one_line_error(res.err, "would overwrite the catalog")
    out = tmp_path / "out"
    out.mkdir()
    os.link(small_catalog, out / "scans.parquet")
    res = run_cli("export", out, catalog=small_catalog)
    assert res.rc == 2
    assert_one_line_error(res.err, "scans.parquet", "catalog itself")
    res = run_cli("query", "SELECT count(*) AS n FROM files", "-f", "csv", catalog=small_catalog)
    assert res.rc == 0 and res.out.split() == ["n", "1"]


def test_a_closed_stdout_or_stderr_is_one_clear_failure(small_catalog: Path) -> None:
    for args in (["stats"], ["--version"], ["query", "SELECT 1 AS a"]):
        p = subprocess.run(cli_cmd(*args), env=cli_env(small_catalog), stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, pass_fds=(), preexec_fn=lambda: os.close(1))
        assert p.returncode == 3, (args, p.stderr)
        assert_one_line_error(p.stderr.decode(), "standard output is closed")
    # With stderr closed, the error line must not land in the data on stdout.
    p = subprocess.run(cli_cmd("query", "SELECT 1; SELECT 2"), env=cli_env(small_catalog), stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, preexec_fn=lambda: os.close(2))
    assert p.returncode == 6
    assert p.stdout == b""


def _apng_claiming_frames(path: Path, frames: int) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
                     + chunk(b"acTL", struct.pack(">II", frames, 0))
                     + chunk(b"fcTL", struct.pack(">IIIIIHHBB", 0, 4, 4, 0, 0, 1, 10, 0, 0))
                     + chunk(b"IDAT", zlib.compress((b"\0" + b"\x10\x80\xf0" * 4) * 4)) + chunk(b"IEND", b""))


def test_values_that_do_not_fit_their_column_never_block_extraction(tmp_path: Path) -> None:
    """A Takeout title with a lone surrogate escape and an APNG claiming 2^31 frames each
    failed the whole batch write, on every later scan: no file got metadata. (The APNG now
    has the one frame it holds, and a note of its claim; a value that does not fit its
    column is stored NULL with a `store` row: see test_meta_claims.)"""
    root = tmp_path / "lib"
    root.mkdir()
    Image.new("RGB", (16, 16), (0, 200, 0)).save(root / "IMG_2.jpg")
    Image.new("RGB", (16, 16), (200, 0, 0)).save(root / "IMG_1.jpg")
    (root / "IMG_1.jpg.json").write_text('{"title": "x\\ud800y", "photoTakenTime": {"timestamp": "1563091200"}}')
    _apng_claiming_frames(root / "a.png", 0x80000000)
    catalog = tmp_path / "c.duckdb"
    res = run_cli("scan", root, catalog=catalog)
    assert res.rc == 0, res.err
    media = {r["name"]: r for r in rows(catalog, "SELECT f.name, m.status, m.frames FROM files f "
                                                 "JOIN media m USING (blake3)")}
    assert set(media) == {"IMG_1.jpg", "IMG_2.jpg", "IMG_1.jpg.json", "a.png"}
    assert media["a.png"]["status"] == "partial" and media["a.png"]["frames"] == 1
    assert media["IMG_2.jpg"]["status"] == "ok"
    errors = rows(catalog, "SELECT stage, message FROM meta_errors WHERE stage <> 'fingerprint'")
    assert [(e["stage"], "claims 2147483648 frames and holds 1" in e["message"]) for e in errors] == [
        ("decode", True)]
    (side,) = rows(catalog, "SELECT title, taken_at FROM sidecars")
    assert side["title"] == "x?y" and side["taken_at"].year == 2019


def test_scan_with_stderr_closed_still_scans(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    (root / "a.txt").write_text("a")
    p = subprocess.run(cli_cmd("scan", root), env=cli_env(tmp_path / "c.duckdb"), stdout=subprocess.PIPE,
                       preexec_fn=lambda: os.close(2))
    assert p.returncode == 0
    assert b"scanned 1 file" in p.stdout


def test_a_catalog_path_the_system_refuses_is_exit_5(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    res = run_cli("--catalog", tmp_path / ("c" * 256), "scan", root)
    assert res.rc == 5
    assert_one_line_error(res.err, "cannot open catalog", "file name too long")


def test_a_scan_of_the_folder_holding_the_catalog_leaves_the_catalog_files_out(tmp_path: Path) -> None:
    """`mediaforge scan ~` with the default catalog under ~/.local/share: the catalog, its
    write-ahead log, its search index and its thumbnails were catalogued too, and every
    rescan made thumbnails of the thumbnails."""
    home = tmp_path / "home"
    (home / "Pictures").mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (64, 48), (i * 60, 0, 0)).save(home / "Pictures" / f"p{i}.jpg")
    env = cli_env(HOME=str(home))
    env.pop("XDG_DATA_HOME", None)
    for _ in range(3):
        p = subprocess.run(cli_cmd("scan", home, "--json"), env=env, capture_output=True)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["files_seen"] == 3
    thumbs = home / ".local" / "share" / "mediaforge" / "thumbs"
    assert len([t for t in thumbs.rglob("*") if t.is_file()]) == 3


def test_a_relative_xdg_data_home_is_ignored(tmp_path: Path) -> None:
    """A relative XDG_DATA_HOME (invalid, says the XDG spec) put the catalog below
    whatever folder the command was run from: each folder got a catalog of its own. (A
    leading `~`, as a systemd unit's Environment= line leaves it, is the home folder.)"""
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    (home / "lib").mkdir(parents=True)
    elsewhere.mkdir()
    (home / "lib" / "a.txt").write_bytes(b"a")
    env = cli_env(HOME=str(home), XDG_DATA_HOME="rel")
    env.pop("MEDIAFORGE_CATALOG", None)
    p = subprocess.run(cli_cmd("scan", home / "lib", "--no-meta"), env=env, capture_output=True, cwd=elsewhere)
    assert p.returncode == 0, p.stderr
    assert (home / ".local" / "share" / "mediaforge" / "catalog.duckdb").is_file()
    assert not (elsewhere / "rel").exists()
    env["XDG_DATA_HOME"] = "~/xdg"
    p = subprocess.run(cli_cmd("scan", home / "lib", "--no-meta"), env=env, capture_output=True, cwd=elsewhere)
    assert p.returncode == 0, p.stderr
    assert (home / "xdg" / "mediaforge" / "catalog.duckdb").is_file()


def test_an_empty_home_is_the_users_home_not_the_root_folder() -> None:
    """A QA finding: `HOME=` (set, empty) made `~` the root folder: the catalog went to
    `/.local/share/mediaforge/`. The user's entry in the password database says where."""
    import pwd

    env = cli_env(HOME="")
    for key in ("MEDIAFORGE_CATALOG", "XDG_DATA_HOME"):
        env.pop(key, None)
    code = ("from mediaforge.config import catalog_path, default_catalog_path; "
            "print(default_catalog_path()); print(catalog_path('~/c.duckdb'))")
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    assert p.stdout.split() == [str(home / ".local" / "share" / "mediaforge" / "catalog.duckdb"),
                                str(home / "c.duckdb")]


@pytest.mark.parametrize("in_the_way", ["thumbs", "thumbs/256"])
def test_thumbs_without_a_thumbnail_folder_fails_once_and_keeps_every_reference(tmp_path: Path, small_catalog: Path,
                                                                                in_the_way: str) -> None:
    """`thumbs` when its folder cannot be made reported every file failed, exit 0, and
    cleared every content's thumbnail reference. A file where the folder (or its folder
    of one size) goes is named, not taken for a folder that refuses writes."""
    import shutil

    assert rows(small_catalog, "SELECT count(thumb) AS n FROM media") == [{"n": 1}]
    shutil.rmtree(small_catalog.parent / "thumbs")
    blocker = small_catalog.parent / in_the_way
    blocker.parent.mkdir(exist_ok=True)
    blocker.write_text("a file where the folder goes")
    res = run_cli("thumbs", catalog=small_catalog)
    assert res.rc == 3
    assert_one_line_error(res.err, "the thumbnail folder", f"{blocker} is a file, not a folder; move it away")
    assert rows(small_catalog, "SELECT count(thumb) AS n FROM media") == [{"n": 1}]
    # A scan goes on without them, each error naming the file in the way.
    other = tmp_path / "other.duckdb"
    res = run_cli("scan", "--json", tmp_path / "lib", catalog=other)
    assert res.rc == 0, res.err
    assert rows(other, "SELECT stage, message FROM meta_errors WHERE stage = 'thumb'") == [
        {"stage": "thumb", "message": f"thumbnail not written: {blocker} is a file, not a folder; move it away"}]


def test_a_thumbnail_folder_linked_to_a_disk_not_mounted_is_named_so(tmp_path: Path, small_catalog: Path) -> None:
    """A QA finding: `thumbs/` a link to nothing (a disk not mounted) said "File exists",
    in `thumbs` and in every file's error row of a scan; now it names the link."""
    import shutil

    shutil.rmtree(small_catalog.parent / "thumbs")
    (small_catalog.parent / "thumbs").symlink_to(tmp_path / "usb" / "thumbs")
    res = run_cli("thumbs", catalog=small_catalog)
    assert res.rc == 3
    assert_one_line_error(res.err, "the thumbnail folder", "is a link to", "usb/thumbs, which is not there")
    assert not (tmp_path / "usb").exists()
    other = small_catalog.parent / "other.duckdb"  # its thumbnails go in the same folder
    assert run_cli("scan", tmp_path / "lib", catalog=other).rc == 0
    (got,) = rows(other, "SELECT message FROM meta_errors WHERE stage = 'thumb'")
    link = small_catalog.parent / "thumbs"
    assert got["message"] == f"thumbnail not written: {link} is a link to {tmp_path / 'usb' / 'thumbs'}, " \
                             "which is not there (a disk not mounted?)"
    assert not (tmp_path / "usb").exists()


def test_a_search_index_left_by_another_catalog_is_rebuilt_not_searched(tmp_path: Path) -> None:
    """The index lives at `<stem>.search` beside the catalog: a catalog moved aside (as
    the docs advise for a damaged one) left it to the next catalog of that name, whose
    searches then lost results to the old catalog's documents."""
    root = tmp_path / "lib"
    root.mkdir()
    for i in range(3):
        Image.new("RGB", (32, 24), (i * 70, 10, 10)).save(root / f"img{i}.jpg")
    catalog = tmp_path / "c.duckdb"
    for generation in range(2):
        res = run_cli("scan", root, "--json", catalog=catalog)
        assert res.rc == 0, res.err
        if generation == 0:
            catalog.rename(tmp_path / "old.duckdb")
    assert json.loads(res.out)["index"]["total"] == 3
    res = run_cli("search", "img", "--format", "csv", catalog=catalog)
    assert res.rc == 0, res.err
    assert len(res.out.splitlines()) == 1 + 3
    # The index's place taken by a file: one clear line.
    other = tmp_path / "d.duckdb"
    (tmp_path / "d.search").write_text("not an index")
    res = run_cli("scan", root, catalog=other)
    assert res.rc == 3
    assert_one_line_error(res.err, "d.search", "taken by a file")


@pytest.mark.parametrize("args", [("dupes", "--similar"), ("meta",), ("thumbs",), ("tag", "add", "x", "y"),
                                  ("collection", "create", "trips")])
def test_commands_other_than_scan_make_no_catalog_at_a_mistyped_path(tmp_path: Path, args: tuple[str, ...]) -> None:
    catalog = tmp_path / "typo" / "catalgo.duckdb"
    res = run_cli(*args, catalog=catalog)
    assert res.rc == 3, res
    assert_one_line_error(res.err, "no catalog at", "mediaforge scan")
    assert not catalog.parent.exists()


def test_a_table_too_wide_for_the_screen_is_printed_one_record_at_a_time(small_catalog: Path) -> None:
    """Rich squeezed 27 columns into 80 characters as empty boxes (and COLUMNS=0 printed
    nothing at all), exit 0: the data silently gone."""
    sql = "SELECT " + ", ".join(f"{i} AS a{i}" for i in range(1, 28))
    res = run_cli("query", sql, catalog=small_catalog, env=cli_env(small_catalog, COLUMNS="80"))
    assert res.rc == 0, res.err
    assert "-[ RECORD 1 ]" in res.out and "a27 | 27" in res.out and "a1  | 1" in res.out
    res = run_cli("query", "SELECT 1 AS a, 'hello' AS b", catalog=small_catalog,
                  env=cli_env(small_catalog, COLUMNS="0"))
    assert res.rc == 0 and "hello" in res.out


def test_infinite_dates_inside_lists_structs_and_maps_in_every_format(small_catalog: Path) -> None:
    sql = ("SELECT ['infinity'::DATE, '2020-01-02'::DATE, NULL] AS c, {'y': 'infinity'::DATE, 'n': 3} AS s, "
           "MAP {'infinity'::DATE: 1} AS m, [['-infinity'::TIMESTAMP]] AS ll UNION ALL SELECT NULL, NULL, NULL, NULL")
    res = run_cli("query", sql, "-f", "json", catalog=small_catalog)
    assert res.rc == 0, res.err
    assert json.loads(res.out) == [
        {"c": ["infinity", "2020-01-02", None], "s": {"y": "infinity", "n": 3}, "m": [["infinity", 1]],
         "ll": [["-infinity"]]},
        {"c": None, "s": None, "m": None, "ll": None}]
    for fmt in ("csv", "table"):
        res = run_cli("query", sql, "-f", fmt, catalog=small_catalog)
        assert res.rc == 0 and "infinity" in res.out, res.err


def test_a_path_with_a_newline_or_escape_codes_is_named_whole_and_harmless(tmp_path: Path) -> None:
    for name, shown_as in (("no\nsuch", "no\\nsuch"), ("no\x1b[31mred", "no\\x1b[31mred")):
        res = run_cli("scan", tmp_path / name, catalog=tmp_path / "c.duckdb")
        assert res.rc == 3
        assert_one_line_error(res.err, "no such file or directory", shown_as)
        assert "\x1b" not in res.err


@pytest.mark.parametrize("args, shown_as", [
    ((b"export", b"/tmp/ex\xff"), "'/tmp/ex\\xff'"),
    ((b"collection", b"create", b"n\xff"), "'n\\xff'"),
    ((b"collection", b"create", b"x", b"/tmp/\xfe"), "/tmp/\\xfe"),
    ((b"tag", b"add", b"\x01\xff", b"/tmp"), "'\\x01\\xff'"),
    ((b"--catalog", b"/tmp/\xff.duckdb", b"stats"), "'/tmp/\\xff.duckdb'"),
])
def test_bytes_that_are_not_utf8_are_named_as_bytes(small_catalog: Path, args: tuple[bytes, ...],
                                                     shown_as: str) -> None:
    """An argument holding bytes that are not UTF-8 is named in the message as \\xNN, the
    way paths are, never as Python's internal \\udcNN."""
    res = run_cli(*args, catalog=small_catalog)
    assert res.rc in (2, 3), res.err
    assert_one_line_error(res.err, shown_as)
    assert "udc" not in res.err


def test_an_empty_option_value_and_a_file_as_the_move_folder_are_usage_errors(tmp_path: Path,
                                                                             small_catalog: Path) -> None:
    res = run_cli("query", "SELECT 1", "-f", "csv", "-o", "", catalog=small_catalog)
    assert res.rc == 2
    assert_one_line_error(res.err, "empty argument")
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("x")
    res = run_cli("dedupe", "--action", "move-to", "--to", not_a_folder, catalog=small_catalog)
    assert res.rc == 2
    assert_one_line_error(res.err, "not a folder")


def test_a_command_group_without_a_command_prints_its_help(tmp_path: Path) -> None:
    for args in ((), ("tag",)):
        res = run_cli(*args, catalog=tmp_path / "c.duckdb")
        assert res.rc == 2
        assert "Usage: mediaforge" in res.err and "Commands:" in res.err and "Traceback" not in res.err


def test_output_to_dev_stdout_writes_through_the_shells_file(small_catalog: Path, tmp_path: Path) -> None:
    """`-o /dev/stdout >> log` appends (the file was once replaced, its lines lost), and
    into a pipe it writes (it once failed on the pipe's /proc name)."""
    log = tmp_path / "log.txt"
    log.write_text("line 1\nline 2\n")
    with open(log, "ab") as out:
        p = subprocess.run(cli_cmd("query", "SELECT 42 AS answer", "-f", "csv", "-o", "/dev/stdout"),
                           env=cli_env(small_catalog), stdout=out, stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, p.stderr
    assert log.read_text() == "line 1\nline 2\nanswer\n42\n"
    p = subprocess.run(cli_cmd("query", "SELECT 42 AS answer", "-f", "json", "-o", "/dev/stdout"),
                       env=cli_env(small_catalog), capture_output=True, timeout=60)
    assert p.returncode == 0 and json.loads(p.stdout) == [{"answer": 42}], p.stderr


@pytest.mark.parametrize("sql, want", [
    ("SELECT 340282366920938463463374607431768211455::UHUGEINT AS v", "340282366920938463463374607431768211455"),
    ("SELECT TIME '24:00:00' AS v", "24:00:00"),
    ("SELECT [TIME '24:00:00'] AS v", ["24:00:00"]),  # in a list: JSON, its TIME as text
])
def test_values_arrow_would_change_come_as_duckdb_writes_them(small_catalog: Path, sql: str, want: object) -> None:
    res = run_cli("query", sql, "-f", "json", catalog=small_catalog)
    assert res.rc == 0, res.err
    assert json.loads(res.out) == [{"v": want}]


@pytest.mark.parametrize("sql, words", [
    ("WITH d AS (DELETE FROM files RETURNING *) SELECT count(*) FROM d", ["refused"]),
    ("UPDATE EXTENSIONS", ["refused"]),
    ("FROM sqlite_scan('/tmp/none.db', 't')", ["sqlite_scanner"]),
    ("SELECT " + "[" * 64 + "1" + "]" * 64 + " AS deep", ["cannot be read out"]),
    ("SELECT 'x'::INT AS a, '0101'::BIT AS b", ["Could not convert"]),
])
def test_hostile_or_odd_statements_end_in_one_line(small_catalog: Path, sql: str, words: list[str]) -> None:
    """A writing CTE and UPDATE EXTENSIONS are refused before they run; no extension is
    fetched or loaded; a result Arrow cannot carry is one line; an error in a statement
    read through MediaForge's own projection gives no (wrong) line number."""
    res = run_cli("query", sql, catalog=small_catalog)
    assert res.rc == 6
    assert_one_line_error(res.err, *words)
    assert "line 3" not in res.err
    assert not (Path.home() / ".duckdb" / "extensions").exists() or not any(
        "sqlite" in str(p) for p in (Path.home() / ".duckdb" / "extensions").rglob("*"))


def test_a_column_named_as_a_writing_word_is_read(small_catalog: Path) -> None:
    """A QA finding: `SELECT 1 AS delete FROM range(1)` was refused as a DELETE."""
    res = run_cli("query", "SELECT 1 AS delete, 2 AS insert, 3 AS update FROM range(1) AS t", "-f", "json",
                  catalog=small_catalog)
    assert res.rc == 0, res.err
    assert json.loads(res.out) == [{"delete": 1, "insert": 2, "update": 3}]


def test_an_output_link_to_a_file_in_no_folder_names_it(small_catalog: Path, tmp_path: Path) -> None:
    """A QA finding: `-o d.csv`, a link to `nowhere/x.csv`, said it could not make a new file
    beside it: the link and the missing folder are named."""
    os.symlink("nowhere/x.csv", tmp_path / "d.csv")
    res = run_cli("query", "SELECT 1", "-o", tmp_path / "d.csv", catalog=small_catalog)
    assert res.rc == 3
    assert_one_line_error(res.err, "is a link to nowhere/x.csv", f"folder {tmp_path}/nowhere is not there")


def test_big_cells_stream_out_in_parts(small_catalog: Path, tmp_path: Path) -> None:
    """A QA finding: 800 files of 3 MB read whole (`read_blob`, sorted) passed the 2 GiB an
    Arrow batch's regular text buffer holds (exit 6), and, below that, CSV built one text of
    a whole batch's escapes (killed for memory). Smaller here: 40 cells of 1 MB, more
    than one part holds."""
    for i in range(40):
        (tmp_path / f"b{i:02}.bin").write_bytes(bytes([i]) * (1 << 20))
    sql = f"SELECT filename, content FROM read_blob('{tmp_path}/b*.bin') ORDER BY filename"
    res = run_cli("query", sql, "-f", "csv", catalog=small_catalog)
    assert res.rc == 0, res.err
    csv.field_size_limit(sys.maxsize)
    rows = list(csv.reader(io.StringIO(res.out)))[1:]
    assert [r[0] for r in rows] == [f"{tmp_path}/b{i:02}.bin" for i in range(40)]
    assert all(base64.b64decode(r[1]) == bytes([i]) * (1 << 20) for i, r in enumerate(rows))


def test_an_output_path_with_a_newline_is_named_whole(small_catalog: Path, tmp_path: Path) -> None:
    res = run_cli("query", "SELECT 1", "-f", "csv", "-o", tmp_path / "no\nsuch" / "x.csv", catalog=small_catalog)
    assert res.rc == 3
    assert_one_line_error(res.err, "no\\nsuch/x.csv", "no such folder")


def test_an_output_below_a_file_or_a_link_to_nothing_names_it(small_catalog: Path, tmp_path: Path) -> None:
    """A QA finding: `-o existing.csv/x.csv` said "no such folder .../existing.csv",
    though the file is there: what stands in the way is named."""
    (tmp_path / "e.csv").write_text("x\n")
    os.symlink(tmp_path / "nowhere", tmp_path / "gone")
    for out, words in ((tmp_path / "e.csv" / "x.csv", (f"{tmp_path}/e.csv is a file, not a folder",)),
                       (tmp_path / "e.csv" / "a" / "x.csv", (f"{tmp_path}/e.csv is a file, not a folder",)),
                       (tmp_path / "gone" / "x.csv", (f"{tmp_path}/gone is a link to", "which is not there")),
                       (tmp_path / "no" / "x.csv", (f"no such folder {tmp_path}/no",))):
        res = run_cli("query", "SELECT 1", "-o", out, catalog=small_catalog)
        assert res.rc == 3, (out, res)
        assert_one_line_error(res.err, *words)
    assert (tmp_path / "e.csv").read_text() == "x\n"


def test_a_long_query_run_from_python_c_prints_no_progress_bar_into_its_results(small_catalog: Path) -> None:
    """A QA finding: run from `python -c` (as a program embedding the CLI runs it), DuckDB
    took the process for an interactive shell and drew its progress bar into stdout, into
    the JSON, once a statement ran past 2 seconds."""
    code = "import sys; sys.argv[0] = 'mediaforge'; from mediaforge._entry import main; sys.exit(main())"
    p = subprocess.run([sys.executable, "-c", code, "-q", "query", "-f", "json",
                        "SELECT count(*) AS n FROM range(700000000) t(x) WHERE x % 7 = 3"],
                       env=cli_env(small_catalog), capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == [{"n": 100000000}], p.stdout[:200]


def test_a_closed_or_read_only_stdout_and_a_fifo_reader_that_leaves(small_catalog: Path, tmp_path: Path) -> None:
    with open(os.devnull, "rb") as ro:
        p = subprocess.run(cli_cmd("query", "SELECT 1", "-f", "csv"), env=cli_env(small_catalog), stdout=ro,
                           stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 3
    assert_one_line_error(p.stderr.decode(), "cannot write the standard output", "Bad file descriptor")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["head", "-c", "3", str(fifo)], stdout=subprocess.DEVNULL)
    res = run_cli("query", "SELECT * FROM range(1000000) t(i)", "-f", "csv", "-o", fifo, catalog=small_catalog)
    reader.wait(timeout=60)
    assert (res.rc, res.err) == (0, "")


def test_help_and_version_whose_reader_left_exit_0(tmp_path: Path) -> None:
    """A QA finding: `mediaforge --version | true` and `scan --help | true` exited 1 (click
    ends its own output's EPIPE so), where every command's output exits 0."""
    for args in (("--version",), ("--help",), ("scan", "--help")):
        with subprocess.Popen(cli_cmd(*args), env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE) as p:
            assert p.stdout is not None and p.stderr is not None
            p.stdout.close()  # the reader leaves before anything is printed
            err = p.stderr.read()
            assert (p.wait(timeout=60), err) == (0, b""), args


def test_hints_name_the_catalog_given_and_its_path_is_escaped(tmp_path: Path) -> None:
    """QA findings: a "see errors" line gave `mediaforge query ...` with no `-c`, which read
    the default catalog; the summary printed a catalog path with a newline on two lines;
    a non-UTF-8 `--exclude` was not named in its error."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut")
    catalog = tmp_path / "a\nb.duckdb"
    res = run_cli("-c", catalog, "scan", lib, env=cli_env())
    assert res.rc == 0, res.err
    hint = next(ln for ln in res.out.splitlines() if "see errors" in ln)
    command = hint.split("see errors: ", 1)[1]
    p = subprocess.run(["bash", "-c", command.replace("mediaforge", shlex.join(cli_cmd()), 1) + " -f json"],
                       capture_output=True, env=cli_env(), timeout=60)
    assert p.returncode == 0 and json.loads(p.stdout)[0]["path"] == str(lib / "bad.jpg"), (command, p.stderr)
    assert res.out.splitlines()[0].endswith(f"into {tmp_path}/a\\nb.duckdb"), res.out
    res = run_cli("-c", catalog, "scan", lib, "-e", b"x\xff", env=cli_env())
    assert res.rc == 2
    assert_one_line_error(res.err, "the argument 'x\\xff' (after -e) holds bytes that are not valid UTF-8")


def test_info_names_copies_whose_names_differ_only_in_undecodable_bytes_apart(tmp_path: Path) -> None:
    import base64

    lib = tmp_path / "lib"
    lib.mkdir()
    Image.new("RGB", (16, 16), (0, 0, 200)).save(lib / "a.jpg")
    data = (lib / "a.jpg").read_bytes()
    for raw in (b"b\xff.jpg", b"b\xfe.jpg"):
        with open(os.path.join(os.fsencode(lib), raw), "wb") as f:
            f.write(data)
    catalog = tmp_path / "c.duckdb"
    assert run_cli("scan", lib, "--no-meta", catalog=catalog).rc == 0
    res = run_cli("info", lib / "a.jpg", env=cli_env(catalog, COLUMNS="400"))
    assert res.rc == 0 and "b\\xfe.jpg" in res.out and "b\\xff.jpg" in res.out
    info = json.loads(run_cli("info", lib / "a.jpg", "--json", catalog=catalog).out)
    assert sorted(base64.b64decode(r) for r in info["copies_raw"]) == [
        os.path.join(os.fsencode(lib), b"b\xfe.jpg"), os.path.join(os.fsencode(lib), b"b\xff.jpg")]
    # The copy's own page: its name line and its folder's show the bytes too.
    raw = os.path.join(os.fsencode(lib), b"sub\xfe")
    os.mkdir(raw)
    os.rename(os.path.join(os.fsencode(lib), b"b\xfe.jpg"), os.path.join(raw, b"c\xfd.jpg"))
    assert run_cli("scan", lib, "--no-meta", catalog=catalog).rc == 0
    res = run_cli("info", os.path.join(raw, b"c\xfd.jpg"), env=cli_env(catalog, COLUMNS="400"))
    fields = {ln.split()[0]: ln.split(None, 1)[1].strip() for ln in res.out.splitlines() if len(ln.split()) > 1}
    assert res.rc == 0 and (fields["dir"], fields["name"]) == (f"{lib}/sub\\xfe", "c\\xfd.jpg"), res.out


def test_info_lists_no_copies_of_an_empty_file(tmp_path: Path) -> None:
    """A QA finding: every empty file shares the empty contents' digest, so `info` of an
    empty `.mp4` listed an empty `.xmp` and `.jpg` beside it as its copies."""
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in ("a.jpg.xmp", "b.mp4", "c.jpg"):
        (lib / name).write_bytes(b"")
    Image.new("RGB", (16, 16), (0, 0, 200)).save(lib / "d.jpg")
    shutil.copy(lib / "d.jpg", lib / "e.jpg")
    catalog = tmp_path / "c.duckdb"
    assert run_cli("scan", lib, catalog=catalog).rc == 0
    info = json.loads(run_cli("info", lib / "b.mp4", "--json", catalog=catalog).out)
    assert (info["file"]["kind"], info["copies"]) == ("video", []), info
    info = json.loads(run_cli("info", lib / "d.jpg", "--json", catalog=catalog).out)
    assert info["copies"] == [str(lib / "e.jpg")], info


def test_info_gives_the_exact_bytes_of_sidecars_and_of_what_a_sidecar_describes(tmp_path: Path) -> None:
    """`info --json` named a photo's sidecars, and the photo a sidecar describes, by their
    display text alone: in a folder whose name is not UTF-8 a script could not open them,
    and two such folders' sidecars looked alike. Each now has its exact bytes too."""
    import base64

    lib = tmp_path / "lib"
    folder = os.path.join(os.fsencode(lib), b"trip\xff")
    os.makedirs(folder)
    photo, xmp = os.path.join(folder, b"caf\xe9.jpg"), os.path.join(folder, b"caf\xe9.jpg.xmp")
    Image.new("RGB", (16, 16), (0, 0, 200)).save(os.fsdecode(photo), "JPEG")
    with open(xmp, "wb") as f:
        f.write(b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
                b'<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="4"/></rdf:RDF></x:xmpmeta>')
    catalog = tmp_path / "c.duckdb"
    assert run_cli("scan", lib, "--no-thumbs", catalog=catalog).rc == 0
    info = json.loads(run_cli("info", photo, "--json", catalog=catalog).out)
    [sc] = info["sidecars"]
    assert (base64.b64decode(sc["path_raw"]), sc["rating"]) == (xmp, 4) and "\ufffd" in sc["path"]
    info = json.loads(run_cli("info", xmp, "--json", catalog=catalog).out)
    assert [base64.b64decode(r) for r in info["describes_raw"]] == [photo] and len(info["describes"]) == 1
    text = run_cli("info", xmp, env=cli_env(catalog, COLUMNS="400")).out
    assert "trip\\xff/caf\\xe9.jpg" in text
    text = run_cli("info", photo, env=cli_env(catalog, COLUMNS="400")).out
    assert "trip\\xff/caf\\xe9.jpg.xmp" in text


def test_floats_far_zoned_times_and_sql_opening_with_a_comment(small_catalog: Path) -> None:
    """A FLOAT prints as DuckDB prints it (0.1, not 0.10000000149011612), inside lists
    too; a TIMESTAMPTZ past year 9999 keeps its offset like a near one; SQL that opens
    with a `--` comment is SQL, not an option, with options before or after it."""
    sql = ("-- a note first\nSELECT 0.1::FLOAT AS f, [0.3::FLOAT, NULL] AS l, 1e38::FLOAT AS g, "
           "'294247-01-10 04:00:54.775806+00'::TIMESTAMPTZ AS far, '2020-01-01 10:00+00'::TIMESTAMPTZ AS near")
    for args in (("query", sql, "-f", "json"), ("query", "-f", "json", sql)):
        res = run_cli(*args, catalog=small_catalog)
        assert res.rc == 0, res.err
        assert json.loads(res.out) == [{"f": 0.1, "l": [0.3, None], "g": 1e38,
                                        "far": "294247-01-10T04:00:54.775806+00:00",
                                        "near": "2020-01-01T10:00:00+00:00"}]
    # In another zone a far one is in it too, as the near ones are (it was always UTC), by
    # the zone's rules at year 9999 (or 1, where a zone's local mean time shows).
    sql = ("SELECT '2020-06-01 12:00+00'::TIMESTAMPTZ AS near, '12020-06-01 12:00+00'::TIMESTAMPTZ AS far, "
           "['12021-01-01 02:00+00'::TIMESTAMPTZ] AS l, '0100-06-01 12:00+00'::TIMESTAMPTZ AS old, "
           "make_timestamptz(-43, 6, 1, 12, 0, 0, 'UTC') AS bc")
    res = run_cli("query", sql, "-f", "json", catalog=small_catalog,
                  env=dict(cli_env(small_catalog), TZ="America/New_York"))
    assert res.rc == 0, res.err
    assert json.loads(res.out) == [{"near": "2020-06-01T08:00:00-04:00", "far": "12020-06-01T08:00:00-04:00",
                                    "l": ["12020-12-31T21:00:00-05:00"], "old": "0100-06-01T07:03:58-04:56:02",
                                    "bc": "-0042-06-01T07:03:58-04:56:02"}]
    # By the rules of that year's calendar (summer time began on 12020-03-08, a Sunday),
    # and at the edges, where only the zone's time passes year 9999 or year 1 (as DuckDB
    # shows them).
    for zone, sql, want in (
            ("America/New_York", "SELECT make_timestamptz(12020, 3, 8, 7, 30, 0, 'UTC') AS t",
             "12020-03-08T03:30:00-04:00"),
            ("America/New_York", "SELECT '0001-01-01 02:00+00'::TIMESTAMPTZ AS t", "0000-12-31T21:03:58-04:56:02"),
            ("Asia/Tokyo", "SELECT '9999-12-31 23:00+00'::TIMESTAMPTZ AS t", "10000-01-01T08:00:00+09:00"),
            ("Asia/Tokyo", "SELECT '12020-12-31 20:00+00'::TIMESTAMPTZ AS t", "12021-01-01T05:00:00+09:00")):
        res = run_cli("query", sql, "-f", "json", catalog=small_catalog, env=dict(cli_env(small_catalog), TZ=zone))
        assert res.rc == 0 and json.loads(res.out) == [{"t": want}], (zone, sql, res.out, res.err)


@pytest.mark.parametrize("args, want", [
    (["scan", "query", "--exclude=my dir"], ["scan", "query", "--exclude=my dir"]),  # a folder named query
    (["-c", "x.db", "query", "-- c\nSELECT 1", "-f", "csv"], ["-c", "x.db", "query", "-f", "csv", "--", "-- c\nSELECT 1"]),
    (["query", "SELECT 1", "--output=my file.csv"], ["query", "SELECT 1", "--output=my file.csv"]),
    (["-q", "query", "-f", "json", "-- a\nSELECT 2"], ["-q", "query", "-f", "json", "--", "-- a\nSELECT 2"]),
    (["query", "--", "-- a\nSELECT 2"], ["query", "--", "-- a\nSELECT 2"]),
])
def test_only_querys_sql_opening_with_a_comment_is_moved_after_the_options(args: list[str], want: list[str]) -> None:
    from mediaforge.cli import _sql_after_options

    assert _sql_after_options(args) == want



def test_stats_on_a_narrow_terminal_never_breaks_a_number_nor_drops_a_column(tmp_path: Path) -> None:
    """A QA finding: on an 80-column terminal `stats` folded the last scans' file count
    `12,000` as `12,00` over `0` (two numbers, to a reader), and `completed` and dates
    likewise; at 40 columns the `errors` column shrank to nothing, blank on every row.
    A table too wide is shown one record at a time, as `query` shows one."""
    lib = tmp_path / "lib" / "d"
    lib.mkdir(parents=True)
    for i in range(12_000):
        (lib / f"f{i}").write_bytes(b"%d" % i)
    (lib.parent / ".mediaforgeignore").write_bytes(b"bad\xffpattern\n")  # one error each scan
    catalog = tmp_path / "c.duckdb"
    assert run_cli("scan", lib.parent, "--no-meta", catalog=catalog).rc == 0
    for columns in (80, 40):
        rc, out = on_a_terminal("stats", catalog=catalog, columns=columns)
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
        assert rc == 0 and "12,001" in text and "completed" in text, text
        assert re.search(r"errors +\| 1\r?$", text, re.M) or re.search(r"│ +1 │\r?$", text, re.M), text
        # Tables fit; a record's long value (a folder) runs on as the terminal wraps it.
        assert max(len(line.rstrip()) for line in text.splitlines() if set(line) & set("│┃━─")) <= columns, text


def test_the_sample_scans_clean_and_shows_its_copies_and_json_draws_no_bar(tmp_path: Path) -> None:
    """The sample library, as the README's first command makes it: no error (a QA finding:
    its flat map had no fingerprint, the one error a newcomer saw), an exact copy for
    `dupes` and a smaller copy for `dupes --similar`. And `dedupe --apply --json` and
    `--undo --json` on a terminal print their JSON alone (a review finding: their
    progress bars drew, unlike every other command's with --json)."""
    lib, catalog = tmp_path / "lib", tmp_path / "c.duckdb"
    assert run_cli("sample", lib, catalog=catalog).rc == 0
    assert run_cli("scan", lib, catalog=catalog).rc == 0
    assert rows(catalog, "SELECT count(*) AS n FROM meta_errors") == [{"n": 0}]
    assert rows(catalog, "SELECT count(*) AS n FROM scan_errors") == [{"n": 0}]

    def grouped(*args: str) -> list[list[str]]:
        res = run_cli("dupes", *args, "-f", "json", catalog=catalog)
        assert res.rc == 0, res.err
        groups: dict[int, list[str]] = {}
        for r in json.loads(res.out):
            groups.setdefault(r["group"], []).append(os.path.relpath(r["path"], lib))
        return sorted(sorted(g) for g in groups.values())

    assert grouped() == [["Backup/IMG_0002.jpg", "Photos/2019 Paris/IMG_0002.jpg"]]
    assert grouped("--similar") == [["Photos/2019 Paris/IMG_0001 (small).jpg", "Photos/2019 Paris/IMG_0001.jpg"]]
    rc, out = on_a_terminal("dedupe", "--apply", "--json", catalog=catalog)
    assert rc == 0 and "\x1b" not in out and json.loads(out)["done"] == 1, out
    rc, out = on_a_terminal("dedupe", "--undo", json.loads(out)["journal"], "--json", catalog=catalog)
    assert rc == 0 and "\x1b" not in out and json.loads(out)["done"] == 1, out


def test_every_long_command_draws_its_progress_on_a_terminal(tmp_path: Path) -> None:
    """Run as a person runs them, on a terminal, where the progress bars draw: the
    extraction bar's count failed to format before its total was known, and every scan
    with metadata ended in an internal error after the walk (pipes never showed it)."""
    lib, catalog = tmp_path / "lib", tmp_path / "c.duckdb"
    assert run_cli("sample", lib, catalog=catalog).rc == 0
    shutil.copy2(next(lib.rglob("*.jpg")), lib / "a copy.jpg")  # (beside the copy the sample holds)
    for args in (("scan", lib), ("meta", "--retry-failed"), ("thumbs",), ("dupes", "--similar"),
                 ("dupes", "--similar", "--kind", "video"), ("dupes", "--similar", "--kind", "audio"), ("dupes",),
                 ("dedupe",), ("dedupe", "--apply"), ("search", "--reindex"), ("tag", "add", "trip", lib),
                 ("scan", lib), ("xmp", "export", "--all")):  # (after a rescan: dedupe put links in place)
        rc, out = on_a_terminal(*args, catalog=catalog)
        assert rc == 0 and "mediaforge: error" not in out and "Traceback" not in out, (args, out[-2000:])
        if args == ("dedupe", "--apply"):  # its bar (steps done) cleared, then the report
            assert "2 files hard-linked" in out and out.rfind("\x1b[?25h") > out.rfind("\x1b[?25l"), out[-2000:]
        if args[0] in ("search", "tag"):  # the search index's update: its count, then its commit (the last frame)
            text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
            files = rows(catalog, "SELECT count(*) AS n FROM files WHERE status = 'present'")[0]["n"]
            assert f"{files}/{files} files" in text and "commit" in text, text[-2000:]
        if args[0] == "xmp":  # a sidecar for each file tagged: its bar's last frame
            text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
            assert re.search(r"export +\S* *(\d+)/\1 files .* 0 failed", text), text[-2000:]
    assert rows(catalog, "SELECT count(*) AS n FROM media")[0]["n"] > 0
    journal = next((catalog.parent / "journal").iterdir())
    rc, out = on_a_terminal("dedupe", "--undo", journal, catalog=catalog)
    assert rc == 0 and "2 files restored" in out and "\x1b[?25h" in out, out[-2000:]


def test_ctrl_c_as_the_progress_bar_starts_gives_the_cursor_back(tmp_path: Path) -> None:
    """Ctrl-C in the moment the bar starts (rich has hidden the cursor and is starting its
    drawing thread): the command ends 130 with its one line, and the terminal gets its
    cursor back; the bar was left drawing under the message, the cursor hidden."""
    lib, catalog = tmp_path / "lib", tmp_path / "c.duckdb"
    lib.mkdir()
    for i in range(3000):
        (lib / f"f{i:04d}.bin").write_bytes(b"x" * (i % 7 + 1))
    rc, out = on_a_terminal("scan", lib, "--no-meta", catalog=catalog, ctrl_c_at=b"\x1b[?25l")
    assert rc == 130 and "Traceback" not in out, out[-2000:]
    assert out.rfind("\x1b[?25h") > out.rfind("\x1b[?25l"), out[-2000:]


def test_sample_into_a_path_it_cannot_write_is_one_line_not_an_internal_error(tmp_path: Path) -> None:
    """`sample` below a file, or where nothing can be made, said "internal error" (exit 1,
    a bug) with the OSError's class; it is a path error (exit 3) that says where."""
    (tmp_path / "a file").write_bytes(b"x")
    for dest, why in ((tmp_path / "a file" / "lib", "Not a directory"), (Path("/proc/no such"), "No such file")):
        res = run_cli("sample", dest)
        assert res.rc == 3 and res.out == "", (res.rc, res.err)
        assert_one_line_error(res.err, f"cannot make the sample library in {dest}", why)


def test_sample_stopped_or_met_by_files_of_its_names_leaves_none_cut_short_and_says_so(tmp_path: Path) -> None:
    """`sample` wrote each file at its name and skipped any name taken: a Ctrl-C or a full
    disk left a song cut short (no tags) that the next run kept and listed as made; a
    junk file, a folder, or a link leading out of the folder (written through) were
    listed as made too. Each file now takes its name whole, what holds a name already is
    left as it is unless it is the sample's file, and the paths printed are escaped."""
    lib = tmp_path / "lib"
    songs = lib / "Music" / "Sample Artist"
    songs.mkdir(parents=True)
    (songs / "01 Sine Song.mp3").write_bytes(b"ID3 cut short")
    (lib / "Video").mkdir()
    os.symlink(tmp_path / "outside.mp4", lib / "Video" / "clip.mp4")
    (lib / "Photos" / "2019 Paris" / "IMG_0002.jpg").mkdir(parents=True)
    res = run_cli("sample", lib)
    assert res.rc == 8, (res.rc, res.err)
    assert not (tmp_path / "outside.mp4").exists()
    assert (songs / "01 Sine Song.mp3").read_bytes() == b"ID3 cut short"
    taken = sorted(line.split(" is there already")[0].removeprefix("mediaforge: ") for line in res.err.splitlines())
    assert taken == sorted(str(p) for p in (songs / "01 Sine Song.mp3", lib / "Video" / "clip.mp4",
                                            lib / "Photos" / "2019 Paris" / "IMG_0002.jpg")), res.err
    assert sorted(res.out.splitlines()) == sorted(str(p) for p in (
        lib / "Photos" / "2019 Paris" / "IMG_0001.jpg", lib / "Photos" / "2019 Paris" / "IMG_0003.jpg",
        lib / "Photos" / "2019 Paris" / "IMG_0001 (small).jpg", lib / "Backup" / "IMG_0002.jpg",
        lib / "Photos" / "2019 Paris" / "map.png", songs / "02 Second Song.flac")), res.out
    assert not [p for p in lib.rglob(".mediaforge-*")]
    # What an earlier run made is the sample's: kept, listed, exit 0 once the names are free.
    (songs / "01 Sine Song.mp3").unlink()
    (lib / "Video" / "clip.mp4").unlink()
    (lib / "Photos" / "2019 Paris" / "IMG_0002.jpg").rmdir()
    first = (songs / "02 Second Song.flac").stat()
    res = run_cli("sample", lib)
    assert res.rc == 0 and res.err == "" and len(res.out.splitlines()) == 9, (res.rc, res.err)
    assert (songs / "02 Second Song.flac").stat().st_ino == first.st_ino
    import mutagen

    assert mutagen.File(songs / "01 Sine Song.mp3")["TIT2"].text == ["Sine Song"]
    # A Ctrl-C midway leaves no file cut short and no temporary; the next run makes the rest.
    odd = tmp_path / "e\x1b[31m\nnl"
    p = subprocess.Popen(cli_cmd("sample", odd), env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not list(odd.rglob("*.mp4")) and not list(odd.rglob(".mediaforge-*")) and time.monotonic() < deadline:
        time.sleep(0.005)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode in (0, 130) and b"Traceback" not in err, err
    assert not [q for q in odd.rglob(".mediaforge-*")]
    res = run_cli("sample", odd)
    assert res.rc == 0, res.err
    assert "\\x1b" in res.out and "\x1b" not in res.out and len(res.out.splitlines()) == 9, res.out
    for q in odd.rglob("*.*"):
        assert q.read_bytes() == (lib / q.relative_to(odd)).read_bytes(), q


def test_output_never_overwrites_dedupes_journals_or_trash(tmp_path: Path) -> None:
    """`query -o` could overwrite a dedupe journal beside the catalog (its `--undo` then
    failed: "not valid JSON"), and `export` write into the journal or trash folder. They
    are refused as the catalog's own files are (exit 2), and the journal is kept whole."""
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (lib / name).write_bytes(b"\xff\xd8\xff\xe0 same" * 100)
    catalog = tmp_path / "c.duckdb"
    assert run_cli("scan", lib, "--no-meta", catalog=catalog).rc == 0
    assert run_cli("dedupe", "--action", "trash", "--apply", catalog=catalog).rc == 0
    (journal,) = (tmp_path / "journal").glob("dedupe-*.jsonl")
    before = journal.read_bytes()
    for args in (("query", "SELECT 1", "-f", "csv", "-o", journal),
                 ("query", "SELECT 1", "-o", tmp_path / "trash" / "x.csv"),
                 ("export", tmp_path / "journal"), ("export", tmp_path / "trash" / "t")):
        res = run_cli(*args, catalog=catalog)
        assert res.rc == 2, (args, res.rc, res.err)
        assert_one_line_error(res.err, "would overwrite the catalog or its files")
    assert journal.read_bytes() == before and sorted(p.name for p in (tmp_path / "journal").iterdir()) == [journal.name]
    assert run_cli("dedupe", "--undo", journal, catalog=catalog).rc == 0
    # Before any dedupe too (a QA finding): an export into `journal/` made every later
    # `dedupe --apply` refuse to start, the folder holding files dedupe did not put there.
    fresh = tmp_path / "fresh" / "c.duckdb"
    assert run_cli("scan", lib, "--no-meta", catalog=fresh).rc == 0
    for args in (("export", fresh.parent / "journal"), ("query", "SELECT 1", "-o", fresh.parent / "trash" / "x.csv")):
        res = run_cli(*args, catalog=fresh)
        assert res.rc == 2, (args, res.rc, res.err)
        assert_one_line_error(res.err, "would overwrite the catalog or its files")
    assert sorted(p.name for p in fresh.parent.iterdir()) == ["c.duckdb", "c.search"]


def test_catalogs_of_one_stem_in_one_folder_have_their_own_search_indexes(tmp_path: Path) -> None:
    """A QA finding: `x.duckdb` and `x.db` side by side shared `x.search/`: each command
    rebuilt it for its own catalog, and two at once failed with "damaged", "another
    catalog's" or "being written by another process". A catalog not named `.duckdb` has
    `<name>.search-index/`; one an older version indexed at `<stem>.search/` has that
    folder moved to its place, not built again."""
    libs = {}
    for name in ("walrus", "narwhal"):
        libs[name] = tmp_path / name
        libs[name].mkdir()
        (libs[name] / f"{name}.jpg").write_bytes(b"\xff\xd8\xff\xe0 " + name.encode() * 50)
    duck, db = tmp_path / "x.duckdb", tmp_path / "x.db"
    assert run_cli("scan", libs["walrus"], "--no-meta", catalog=duck).rc == 0
    assert run_cli("scan", libs["narwhal"], "--no-meta", catalog=db).rc == 0
    assert (tmp_path / "x.search").is_dir() and (tmp_path / "x.db.search-index").is_dir()
    for catalog, word in ((duck, "walrus"), (db, "narwhal"), (duck, "walrus")):
        res = run_cli("scan", libs[word], "--no-meta", "--json", catalog=catalog)
        assert res.rc == 0 and json.loads(res.out)["index"]["indexed"] == 0, res.out  # in step: none rebuilt
        res = run_cli("search", word, "-f", "json", catalog=catalog)
        assert res.rc == 0 and [Path(r["path"]).name for r in json.loads(res.out)] == [f"{word}.jpg"], res.out
    # The layout an older version left: `x.db`'s index at `x.search` (the other one gone).
    shutil.rmtree(tmp_path / "x.search")
    duck.unlink()
    (tmp_path / "x.db.search-index").rename(tmp_path / "x.search")
    # A scan of the folder that holds them all (a review finding: the old folder's files
    # were catalogued as the library's, and went missing at the next scan).
    res = run_cli("scan", tmp_path, "--no-meta", "--json", catalog=db)
    assert res.rc == 0 and json.loads(res.out)["index"]["indexed"] == 1, res.out  # walrus.jpg: taken over, not rebuilt
    assert (tmp_path / "x.db.search-index").is_dir() and not (tmp_path / "x.search").exists()
    assert sorted(Path(r["path"]).name for r in rows(db, "SELECT path FROM files")) == ["narwhal.jpg", "walrus.jpg"]


def test_a_catalog_reached_by_a_link_has_one_search_index(tmp_path: Path) -> None:
    """A catalog reached through a link by another name got a second index, named after
    the link (`link.search/`), that tag commands given the other name never updated: a
    search by one name missed the tags added by the other. One index, named after the
    catalog file, serves both names; `-o` into it is refused by either."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0 one" * 100)
    (lib / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 two" * 100)
    catalog, link = tmp_path / "c.duckdb", tmp_path / "link.duckdb"
    assert run_cli("scan", lib, "--no-meta", catalog=catalog).rc == 0
    link.symlink_to(catalog.name)
    assert run_cli("tag", "add", "holiday", lib / "a.jpg", catalog=link).rc == 0
    assert run_cli("tag", "add", "beach", lib / "b.jpg", catalog=catalog).rc == 0
    for name in (catalog, link):
        for tag, file in (("holiday", "a.jpg"), ("beach", "b.jpg")):
            res = run_cli("search", f"tag:{tag}", "--format", "json", catalog=name)
            assert res.rc == 0 and [Path(r["path"]).name for r in json.loads(res.out)] == [file], (name, res.out)
    assert (tmp_path / "c.search").is_dir() and not (tmp_path / "link.search").exists()
    for name in (catalog, link):
        for folder in ("c.search", "thumbs"):
            res = run_cli("query", "SELECT 1", "-f", "csv", "-o", tmp_path / folder / "x.csv", catalog=name)
            assert res.rc == 2, (name, folder, res.err)
            assert_one_line_error(res.err, "would overwrite the catalog or its files")
    # A hard link has no other name to follow: its tag commands find no index beside it,
    # and the index beside the first name compares every document at its next search (a
    # QA finding: it stayed marked in step, and never found the tag).
    hard = tmp_path / "hard.duckdb"
    os.link(catalog, hard)
    assert run_cli("tag", "add", "viahard", lib / "b.jpg", catalog=hard).rc == 0
    res = run_cli("search", "tag:viahard", "--format", "json", catalog=catalog)
    assert res.rc == 0 and [Path(r["path"]).name for r in json.loads(res.out)] == ["b.jpg"], res.out + res.err


def _two_file_catalog(tmp_path: Path, *names: str) -> tuple[Path, Path]:
    """A library of two one-byte files with these names, scanned without metadata: its
    folder and its catalog."""
    lib = tmp_path / "lib"
    lib.mkdir()
    for name, data in zip(names, (b"x", b"y"), strict=True):
        (lib / name).write_bytes(data)
    catalog = tmp_path / "c.duckdb"
    assert run_cli("scan", lib, "--no-meta", catalog=catalog).rc == 0
    return lib, catalog


def test_a_carriage_return_in_a_name_is_quoted_in_csv(tmp_path: Path) -> None:
    """The csv module quotes only what is in its line ending ("\\n"): a name holding a
    bare "\\r" was written unquoted, and csv readers (Python's, DuckDB's) split its row."""
    _, catalog = _two_file_catalog(tmp_path, "a\rb.txt", "plain.txt")
    res = run_cli("query", "SELECT name AS \"n\rm\", size, '' AS e FROM files ORDER BY name", "-f", "csv",
                  catalog=catalog)
    assert res.rc == 0, res.err
    import csv  # noqa: PLC0415
    import io  # noqa: PLC0415

    assert list(csv.reader(io.StringIO(res.out, newline=""))) == [
        ["n\rm", "size", "e"], ["a\rb.txt", "1", ""], ["plain.txt", "1", ""]]
    out = tmp_path / "r.csv"
    res = run_cli("query", "SELECT name, size, '' AS e FROM files ORDER BY name", "-f", "csv", "-o", out,
                  catalog=catalog)
    assert res.rc == 0, res.err
    import duckdb  # noqa: PLC0415

    assert duckdb.sql(f"SELECT * FROM read_csv('{out}')").fetchall() == [("a\rb.txt", 1, None), ("plain.txt", 1, None)]
    # Text that looks like the marks used on the way keeps its bytes; a union's text is
    # quoted too.
    res = run_cli("query", "SELECT chr(57344) || 'mediaforge:cr' || chr(57344) || chr(10) || 't' AS v, "
                  "union_value(t := 'a' || chr(13) || 'b') AS u", "-f", "csv", catalog=catalog)
    assert list(csv.reader(io.StringIO(res.out, newline=""))) == [["v", "u"], ["\ue000mediaforge:cr\ue000\nt", "a\rb"]]


def test_info_of_a_file_whose_path_is_over_path_max_says_so_not_that_it_is_missing(tmp_path: Path,
                                                                                      small_catalog: Path) -> None:
    """A QA finding: `info` of a file that is there, at a path longer than the system
    takes (4,096 bytes), said "no such file ... a typo"."""
    fd = os.open(tmp_path, os.O_RDONLY)
    depth = 0
    try:
        while depth * 201 < 4_300:
            name = f"{depth:03d}" + "d" * 197
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd, depth = inner, depth + 1
        os.close(os.open("deep.jpg", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)
    deep = os.path.join(str(tmp_path), *(f"{k:03d}" + "d" * 197 for k in range(depth)), "deep.jpg")
    assert len(os.fsencode(deep)) > 4_096
    res = run_cli("info", deep, catalog=small_catalog)
    assert res.rc == 3, res
    assert_one_line_error(res.err, "not in the catalog", "File name too long")
    assert "no such file" not in res.err


def test_info_of_a_file_name_with_a_trailing_slash_is_no_such_folder(small_catalog: Path) -> None:
    """`info photo.jpg/` showed the file, where `ls photo.jpg/` says "Not a directory"."""
    photo = small_catalog.parent / "lib" / "IMG_1.jpg"
    for given in (f"{photo}/", f"{photo}/."):
        res = run_cli("info", given, catalog=small_catalog)
        assert res.rc == 3, res.err
        assert_one_line_error(res.err, f"not a folder: {given}")
    assert run_cli("info", photo, catalog=small_catalog).rc == 0
    res = run_cli("info", f"{photo.parent}/", catalog=small_catalog)  # a folder, with or without its /
    assert res.rc == 2 and "is a folder" in res.err, res.err
    # A name below the file: no trailing / to blame (a QA finding), the file in the way named.
    res = run_cli("info", f"{photo}/x", catalog=small_catalog)
    assert res.rc == 3, res.err
    assert_one_line_error(res.err, f"no such file: {photo}/x ({photo} is a file, not a folder)")
    # Deleted since its scan, the file is in the catalog alone: still no folder.
    photo.unlink()
    for given in (f"{photo}/", f"{photo}/."):
        res = run_cli("info", given, catalog=small_catalog)
        assert res.rc == 3, res.err
        assert_one_line_error(res.err, f"not a folder: {given}")
    assert run_cli("info", photo, catalog=small_catalog).rc == 0


def test_an_output_encoding_that_cannot_hold_a_name_escapes_it(tmp_path: Path) -> None:
    """PYTHONIOENCODING=ascii (or latin-1) and a name with an é, or bytes that are not
    UTF-8: an internal error. Such characters are now escaped as \\uXXXX, which keeps
    --json output valid JSON with the same text."""
    lib, catalog = _two_file_catalog(tmp_path, "café.txt", "smile 😀.txt")
    for encoding in ("ascii", "latin-1"):
        env = cli_env(catalog, PYTHONIOENCODING=encoding)
        p = subprocess.run(cli_cmd("query", "SELECT name FROM files ORDER BY name", "-f", "json"), env=env,
                           capture_output=True)
        assert p.returncode == 0, p.stderr
        assert [r["name"] for r in json.loads(p.stdout.decode(encoding))] == ["café.txt", "smile 😀.txt"]
        for args in (["info", str(lib / "café.txt")], ["search", "smile"], ["stats"]):
            p = subprocess.run(cli_cmd(*args), env=env, capture_output=True)
            assert p.returncode == 0, (args, p.stderr)


def test_tables_show_paths_as_ls_b_so_two_names_never_look_alike(tmp_path: Path) -> None:
    """A QA finding: a name with a newline and one with a backslash and an n showed alike
    in tables (`search`, `tag list`, `query`), and bytes that are not UTF-8 showed as
    U+FFFD; messages already wrote them as `ls -b` does."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "new\nline.jpg").write_bytes(b"x")
    (lib / "new\\nline.jpg").write_bytes(b"y")
    with open(os.fsencode(lib) + b"/bad\xffline.jpg", "wb") as f:
        f.write(b"z")
    catalog = tmp_path / "c.duckdb"
    assert run_cli("scan", lib, "--no-meta", catalog=catalog).rc == 0
    assert run_cli("tag", "add", "t", "--where", "true", catalog=catalog).rc == 0
    want = {"new\\nline.jpg", "new\\\\nline.jpg", "bad\\xffline.jpg"}
    env = cli_env(catalog, COLUMNS="300")
    for args in (["search", "line"], ["tag", "list", *(str(p) for p in lib.iterdir())],
                 ["query", "SELECT path_bytes FROM files"]):  # a query's table shows each column as itself
        p = subprocess.run(cli_cmd(*args), env=env, capture_output=True)
        assert p.returncode == 0, (args, p.stderr)
        shown = {w.rsplit("/", 1)[-1] for w in p.stdout.decode().split() if w.startswith(str(lib))}
        assert shown == want, (args, p.stdout.decode())


def test_every_table_cell_is_shown_as_ls_b(tmp_path: Path) -> None:
    """A QA finding: a text cell with no `_raw` beside it (`query "SELECT name ..."`, and
    `stats`' largest folders) kept a backslash single, so a name holding an ESC byte and
    one spelling `\\x1b` out, or a folder `dir` + byte 0xff and one named `dir\\xff` in
    backslash characters, showed alike."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "\x1bred.jpg").write_bytes(b"x")
    (lib / "\\x1bred.jpg").write_bytes(b"y")
    os.mkdir(os.fsencode(lib) + b"/dir\xff")
    (lib / "dir\\xff").mkdir()
    with open(os.fsencode(lib) + b"/dir\xff/a.jpg", "wb") as f:
        f.write(b"z")
    (lib / "dir\\xff" / "b.jpg").write_bytes(b"zz")
    catalog = tmp_path / "c.duckdb"
    assert run_cli("scan", lib, "--no-meta", catalog=catalog).rc == 0
    env = cli_env(catalog, COLUMNS="300")
    p = subprocess.run(cli_cmd("query", "SELECT name FROM files WHERE name LIKE '%red.jpg'"), env=env,
                       capture_output=True)
    assert p.returncode == 0, p.stderr
    assert {w for w in p.stdout.decode().split() if w.endswith("red.jpg")} == {"\\x1bred.jpg", "\\\\x1bred.jpg"}, \
        p.stdout.decode()
    p = subprocess.run(cli_cmd("stats", "--top", "10"), env=env, capture_output=True)
    assert p.returncode == 0, p.stderr
    shown = {w.rsplit("/", 1)[-1] for w in p.stdout.decode().split() if w.startswith(str(lib) + "/dir")}
    assert shown == {"dir\\xff", "dir\\\\xff"}, p.stdout.decode()


def test_a_to_folder_that_is_not_utf8_is_named_as_ls_b_names_it(tmp_path: Path) -> None:
    """A QA finding: the refusal of a `--to` folder whose name is not UTF-8 showed it as
    Python bytes (`b'/x/mv\\xff'`), where every other message shows a path as `ls -b` does."""
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (lib / name).write_bytes(b"same bytes")
    catalog = tmp_path / "c.duckdb"
    assert run_cli("scan", lib, "--no-meta", catalog=catalog).rc == 0
    to = os.fsencode(tmp_path) + b"/mv\xff"
    res = run_cli("dedupe", "--action", "move-to", "--to", to, catalog=catalog)
    assert res.rc == 2, res
    assert_one_line_error(res.err, f"--to {tmp_path}/mv\\xff: the journal records this folder as text")
    assert "b'" not in res.err


def test_a_catalog_path_ending_with_a_slash_is_refused(tmp_path: Path, small_catalog: Path) -> None:
    """A QA finding: `-c cat.duckdb/` opened cat.duckdb, as if the slash were not there
    (`info photo.jpg/` is refused); it names a folder, or is a typo for another path."""
    for args, env in ((["-c", f"{small_catalog}/", "stats"], {}), (["stats"], {"MEDIAFORGE_CATALOG": f"{small_catalog}/"}),
                      (["-c", f"{small_catalog}/", "scan", str(tmp_path)], {}), (["-c", "/", "stats"], {}),
                      (["-c", f"{tmp_path}/.", "scan", str(tmp_path)], {})):
        res = subprocess.run(cli_cmd(*args), capture_output=True, text=True, env={**cli_env(small_catalog), **env})
        assert res.returncode == 2, (args, res.stderr)
        assert_one_line_error(res.stderr, "names a folder")


def test_a_duckdb_file_without_tables_is_no_catalog_but_to_scan(tmp_path: Path) -> None:
    """A QA finding: `tag add` on a DuckDB database holding no tables made the whole
    catalog in it, where with no file at all it says there is no catalog (exit 3): only a
    scan makes a catalog."""
    import duckdb

    db = tmp_path / "empty.duckdb"
    duckdb.connect(str(db)).close()
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a.txt").write_text("a")
    for args in (("tag", "add", "x", lib / "a.txt"), ("collection", "create", "c"), ("stats",)):
        res = run_cli(*args, catalog=db)
        assert res.rc == 3, (args, res.err)
        assert_one_line_error(res.err, "run `mediaforge scan PATH` first")
    with duckdb.connect(str(db)) as con:
        assert con.execute("SHOW TABLES").fetchall() == []
    assert run_cli("scan", lib, catalog=db).rc == 0


def test_text_into_a_pipe_keeps_each_path_and_digest_on_its_line(tmp_path: Path) -> None:
    """QA: into a pipe or a file, `info` and `dupes` folded at the 80 columns rich assumes:
    `info F | grep blake3` got 59 of the 64 digits, and a saved `dupes` report cut each
    path into pieces. Piped output is as wide as it needs; a width asked for (`COLUMNS`)
    still holds."""
    deep = tmp_path / ("a long folder name " * 4).strip() / "and another one below it"
    deep.mkdir(parents=True)
    for name in ("first copy of the picture.jpg", "second copy of the picture.jpg"):
        Image.new("RGB", (16, 16), (0, 90, 200)).save(deep / name)
    catalog = tmp_path / "c.duckdb"
    assert run_cli("scan", deep, "--no-meta", catalog=catalog).rc == 0
    env = {k: v for k, v in cli_env(catalog).items() if k != "COLUMNS"}
    info = run_cli("info", deep / "first copy of the picture.jpg", env=env).out
    digest = next(ln.split()[1] for ln in info.splitlines() if ln.split()[:1] == ["blake3"])
    assert len(digest) == 64, info
    report = run_cli("dupes", env=env).out
    for name in ("first copy of the picture.jpg", "second copy of the picture.jpg"):
        assert str(deep / name) in report, report
    narrow = run_cli("info", deep / "first copy of the picture.jpg", env=dict(env, COLUMNS="60")).out
    assert max(map(len, narrow.splitlines())) <= 60 and digest not in narrow
