"""What `query` and the other commands write: table cells, Parquet, CSV and JSON values,
which statements run, and paths given relative to a current folder that is gone."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from conftest import assert_one_line_error, cli_cmd, cli_env, make_jpeg, run_cli, write_bytes_path

# Two copies whose names are not UTF-8 (shown alike as U+FFFD were it not for their
# exact bytes), and a file of its own.
ODD = (b"copy \xff.jpg", b"copy \xfe.jpg")


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lib = tmp_path_factory.mktemp("lib")
    for name in ODD:
        write_bytes_path(os.fsencode(lib) + b"/" + name, make_jpeg(1))
    (lib / "plain.jpg").write_bytes(make_jpeg(2))
    cat = lib.parent / f"{lib.name}.duckdb"
    assert run_cli("scan", "--no-meta", lib, catalog=cat).rc == 0
    return cat


def test_doubles_are_written_as_python_writes_them(catalog: Path) -> None:
    """DOUBLE columns are made into text by Arrow where its text is Python's (a million
    values one at a time took 1.8 s), one value at a time elsewhere: each is `repr` of
    the float in CSV and JSON, whatever its size (Arrow writes `1e+15`, `1.5e-7`, `1`)."""
    values = [0.1, 1.0, -1.0, 100.0, 1e-05, 0.0001, 9.999999999999999e-05, 1e15, 1e16, 9999999999999998.0,
              1.5e-07, 12345.678, 15525413849.897978, -0.0, 0.0, 5e-324, 1.7976931348623157e308, 1 / 3]
    sql = "SELECT unnest([" + ", ".join(repr(v) + "::DOUBLE" for v in values) + ", 'nan', NULL]) AS x"
    res = run_cli("query", sql, "-f", "csv", catalog=catalog)
    assert res.rc == 0, res.err
    assert res.out.splitlines() == ["x", *map(repr, values), "NaN", '""']  # (NULL in a one-column result)
    res = run_cli("query", sql, "-f", "json", catalog=catalog)
    assert res.rc == 0, res.err
    assert [line.strip().rstrip(",") for line in res.out.splitlines()[1:-1]] == [
        *(f'{{"x": {v!r}}}' for v in values), '{"x": "NaN"}', '{"x": null}']


def test_query_table_shows_each_column_as_itself(catalog: Path) -> None:
    """A user's column `x_raw` is a column like any other: the table never shows it in
    place of `x` (its base64 decoded), as CSV and JSON never do."""
    wide = cli_env(catalog, COLUMNS="400")
    res = run_cli("query", "SELECT 'hello' AS note, 'abcd' AS note_raw", env=wide)
    assert res.rc == 0, res.err
    assert "hello" in res.out and "abcd" in res.out
    assert "\\x" not in res.out
    # A join's path beside another file's exact bytes: each cell is its own.
    res = run_cli("query", "SELECT a.path, b.path_raw FROM files a, files b "
                           "WHERE a.name = 'plain.jpg' AND b.path_raw IS NOT NULL LIMIT 1", env=wide)
    assert res.rc == 0, res.err
    path_cell = res.out.splitlines()[3].split("│")[1]
    assert path_cell.strip().endswith("/plain.jpg"), res.out
    # Booleans and DECIMALs as CSV has them (and DuckDB shows them): not Python's True, nor 1e-05.
    res = run_cli("query", "SELECT true AS yes, false AS no, 0.00001::DECIMAL(10,5) AS d", env=wide)
    assert res.rc == 0, res.err
    assert [c.strip() for c in res.out.splitlines()[3].split("│")[1:4]] == ["true", "false", "0.00001"], res.out


def test_command_tables_still_show_paths_by_their_exact_bytes(catalog: Path, tmp_path: Path) -> None:
    """`dupes`, `search`, `tag list` and `collection show` pair `path` with `path_raw`
    themselves: two names that differ only in bytes that are not UTF-8 never look alike."""
    lib = catalog.parent / catalog.stem
    work = tmp_path / "cat.duckdb"
    work.write_bytes(catalog.read_bytes())
    odd = [os.fsencode(lib) + b"/" + n for n in ODD]
    assert run_cli("tag", "add", "twin", *odd, catalog=work).rc == 0
    assert run_cli("collection", "create", "twins", catalog=work).rc == 0
    assert run_cli("collection", "add", "twins", *odd, catalog=work).rc == 0
    for args in (("dupes",), ("search", "copy"), ("tag", "list", *odd), ("collection", "show", "twins")):
        res = run_cli(*args, env=cli_env(work, COLUMNS="400"))
        assert res.rc == 0, (args, res.err)
        assert "copy \\xff.jpg" in res.out and "copy \\xfe.jpg" in res.out, (args, res.out)


def test_parquet_holds_infinite_timestamps_in_seconds(catalog: Path, tmp_path: Path) -> None:
    """Parquet has no timestamps in seconds: a TIMESTAMP_S is written in milliseconds,
    its infinities as a TIMESTAMP_MS's are (never an internal error), and read back."""
    import pyarrow.parquet as pq

    sql = ("SELECT TIMESTAMP_S 'infinity' a, TIMESTAMP_S '-infinity' b, "
           "[TIMESTAMP_S 'infinity', TIMESTAMP_S '2020-01-02 03:04:05'] c, {'s': TIMESTAMP_S '-infinity'} d")
    out, ms = tmp_path / "s.parquet", tmp_path / "ms.parquet"
    res = run_cli("query", sql, "-o", out, catalog=catalog)
    assert res.rc == 0, res.err
    assert run_cli("query", sql.replace("TIMESTAMP_S", "TIMESTAMP_MS"), "-o", ms, catalog=catalog).rc == 0
    assert pq.read_table(out).equals(pq.read_table(ms))
    res = run_cli("query", f"SELECT * FROM '{out}'", "-f", "json", catalog=catalog)
    assert res.rc == 0, res.err
    assert json.loads(res.out) == [{"a": "infinity", "b": "-infinity", "c": ["infinity", "2020-01-02T03:04:05"],
                                    "d": {"s": "-infinity"}}]


@pytest.mark.parametrize("args", [
    ("info", "x.jpg"), ("query", "SELECT 1", "-o", "out.csv"), ("export", "e"), ("scan", "x"),
    ("tag", "add", "t", "x.jpg"), ("tag", "add", "t", "x*.jpg"), ("dupes", "-o", "d.csv"),
    ("dedupe", "--action", "move-to", "--to", "aside"), ("-c", "cat.duckdb", "stats"), ("sample", "lib"),
], ids=lambda a: " ".join(a))
def test_relative_paths_in_a_deleted_current_folder_exit_3(catalog: Path, tmp_path: Path, args: tuple) -> None:
    """A path given relative to a current folder that was deleted (a shell left in it) is
    exit 3, with one line that says what happened, never an internal error."""
    gone = tmp_path / "gone"
    gone.mkdir()
    shell = 'cd "$1" && rmdir "$1" && shift && exec "$@"'
    p = subprocess.run(["sh", "-c", shell, "sh", gone, *cli_cmd(*args)], capture_output=True, text=True,
                       env=cli_env(catalog), timeout=120)
    assert p.returncode == 3, p.stderr
    assert_one_line_error(p.stderr, "the current folder no longer exists")


@pytest.mark.parametrize("sql", [
    "EXPLAIN PIVOT files ON kind USING count(*)",
    "EXPLAIN ANALYZE PIVOT files ON kind USING count(*)",
    "EXPLAIN (FORMAT json) PIVOT files ON kind USING count(*)",
    "WITH d AS (SELECT 1) PIVOT files ON kind USING count(*)",
    "WITH d(x) AS MATERIALIZED (SELECT 1), e AS (SELECT 2) PIVOT files ON kind USING count(*)",
    "EXPLAIN WITH d AS (SELECT 1) PIVOT files ON kind USING count(*)",
    "SELECT update, set FROM (SELECT 1 AS update, 2 AS set)",
    "SELECT (update) AS u, set FROM (SELECT 1 AS update, 2 AS set)",
    'SELECT delete FROM (SELECT 1 AS "delete")',
    'SELECT insert or false FROM (SELECT true AS "insert")',
    'SELECT 1 AS a, merge FROM (SELECT 2 AS "merge") WHERE merge IN (SELECT 2)',
    'SELECT (copy), truncate FROM (SELECT 1 AS "copy", 2 AS "truncate")',
])
def test_reading_statements_run(catalog: Path, sql: str) -> None:
    """What docs/cli.md lets `query` run: an EXPLAIN of a PIVOT, a PIVOT after a WITH,
    columns named `update` and `set`; and (a QA finding, refused as writes) named `delete`
    or `insert` before `FROM` or `OR`."""
    res = run_cli("query", sql, "-f", "json", catalog=catalog)
    assert res.rc == 0, res.err
    assert json.loads(res.out)


@pytest.mark.parametrize("sql", [
    "WITH d AS (UPDATE files SET size = 0 RETURNING *) SELECT * FROM d",
    "WITH d AS (UPDATE main.files AS f SET size = 0 RETURNING *) SELECT count(*) FROM d",
    "WITH d AS (UPDATE files f SET size = 0 RETURNING *) SELECT count(*) FROM d",
    'WITH d AS (UPDATE "files" SET size = 0 RETURNING *) SELECT count(*) FROM d',
    "WITH d AS (DELETE FROM files RETURNING *) PIVOT d ON kind USING count(*)",
    "WITH d AS (WITH e AS (SELECT 1) DELETE FROM files RETURNING *) SELECT 1",
    "WITH d AS (INSERT INTO tags SELECT * FROM tags RETURNING *) SELECT 1",
    # (A review finding: a CTE's COPY wrote a file, past the read-only catalog.)
    "WITH d AS (COPY (SELECT path FROM files) TO 'leak.csv') SELECT 1",
    "WITH d AS (COPY files TO 'leak.csv') SELECT 1",
    "WITH d AS (COPY files TO 'leak.parquet' (FORMAT parquet)) FROM files LIMIT 1",
    "EXPLAIN ANALYZE WITH d AS (COPY files TO 'leak.csv') SELECT 1",
    "WITH d AS (TRUNCATE media) SELECT 1",
    "WITH d AS (SELECT 1) UPDATE files SET size = 2",
    "EXPLAIN ANALYZE DELETE FROM files",
    "EXPLAIN ANALYZE UPDATE files SET size = 0",
    "EXPLAIN ANALYZE WITH d AS (DELETE FROM files RETURNING *) PIVOT d ON kind USING count(*)",
    "EXPLAIN (ANALYZE) PIVOT (DELETE FROM files RETURNING *) ON kind USING count(*)",
    "CREATE TABLE x (a INT)", "DROP TABLE files", "COPY files TO 'x.csv'", "ATTACH 'other.duckdb'",
    "SET threads = 1", "PRAGMA threads = 1", "CHECKPOINT",
])
def test_writing_statements_are_refused(catalog: Path, sql: str, tmp_path: Path) -> None:
    """Every statement that writes, however it is dressed, is refused before it runs (and
    writes no file where it runs)."""
    here = tmp_path / "here"
    here.mkdir()
    res = run_cli("query", sql, catalog=catalog, cwd=here)
    assert list(here.iterdir()) == []
    assert res.rc == 6, res.err
    assert_one_line_error(res.err)
    assert "refused" in res.err or "Parser Error" in res.err, res.err


@pytest.mark.parametrize("sql", ["SELECT error('checksum mismatch in my data')",
                                 "SELECT 'Corrupt database file checksum.jpg'::INT"])
def test_a_statement_s_own_error_about_a_checksum_is_no_damaged_catalog(catalog: Path, sql: str) -> None:
    """A review finding: an error was called a damaged catalog (exit 5, "move it aside and
    scan again") by its text alone, a query's own `error()` or a value it quotes (a file
    named `checksum.jpg` a CAST could not read) too. Those are SQL errors, exit 6."""
    res = run_cli("query", sql, catalog=catalog)
    assert res.rc == 6, res.err
    assert_one_line_error(res.err, "SQL error")
    assert "damaged" not in res.err


def test_csv_keeps_an_empty_blob_apart_from_null(catalog: Path) -> None:
    """An empty BLOB is `""` in CSV, as an empty text is; NULL is an empty cell; and DuckDB
    reads them back apart."""
    res = run_cli("query", "SELECT ''::BLOB a, NULL::BLOB b, 'x'::BLOB c, '' d, NULL::VARCHAR e", "-f", "csv",
                  catalog=catalog)
    assert res.rc == 0, res.err
    assert res.out == 'a,b,c,d,e\n"",,eA==,"",\n'
    import duckdb

    written = catalog.parent / "blobs.csv"
    written.write_text(res.out)
    back = duckdb.sql(f"SELECT * FROM read_csv('{written}', allow_quoted_nulls = false, all_varchar = true)").fetchall()
    assert back == [("", None, "eA==", "", None)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), st.text(alphabet=st.sampled_from(list('ab ,"\r\né東\t')), max_size=6)),
                          st.one_of(st.none(), st.integers(-2**63, 2**63 - 1)), st.one_of(st.none(), st.booleans())),
                max_size=40),
       st.integers(1, 7))
def test_csv_made_column_by_column_reads_back_as_each_value(rows: list, batch: int) -> None:
    """CSV is made in Arrow a batch at a time (a million rows took 15 s one row at a time):
    each cell reads back as its value with Python's csv module, an empty text is `""` and
    NULL an empty cell (in a one-column result `""` too, so no line is blank), booleans are
    `true` and `false`, a carriage return stays itself inside its quotes."""
    import pyarrow as pa

    from mediaforge.cli.render import write_csv

    table = pa.table({"t": pa.array([r[0] for r in rows], pa.string()), "n": pa.array([r[1] for r in rows], pa.int64()),
                      "b": pa.array([r[2] for r in rows], pa.bool_())})
    for columns in (["t", "n", "b"], ["t"]):
        part = table.select(columns)
        out = io.StringIO()
        write_csv(pa.Table.from_batches(part.to_batches(max_chunksize=batch), part.schema), out)
        # (A blank line would read as [], not as the one-column row [""].)
        back = list(csv.reader(io.StringIO(out.getvalue(), newline=""), lineterminator="\n"))
        assert back[0] == columns
        assert back[1:] == [[("" if v is None else "true" if v is True else "false" if v is False else str(v))
                             for v, c in zip(r, "tnb") if c in columns] for r in rows]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), st.text(alphabet=st.sampled_from(
                              list('ab "\\/\r\n\t\x00\x1f\x7fé東\u2028') + ["\U0001f600"]), max_size=6)),
                          st.one_of(st.none(), st.integers(-2**63, 2**63 - 1)), st.one_of(st.none(), st.booleans())),
                max_size=40),
       st.integers(1, 7))
def test_json_made_column_by_column_is_what_json_dumps_writes(rows: list, batch: int) -> None:
    """JSON is made in Arrow a batch at a time: every value reads back as itself, and each
    object is the text `json.dumps` writes for it (escapes, NULL as null, booleans)."""
    import pyarrow as pa

    from mediaforge.cli.render import write_json

    table = pa.table({"t": pa.array([r[0] for r in rows], pa.string()), "n": pa.array([r[1] for r in rows], pa.int64()),
                      "b": pa.array([r[2] for r in rows], pa.bool_())})
    out = io.StringIO()
    write_json(pa.Table.from_batches(table.to_batches(max_chunksize=batch), table.schema), out)
    want = [{"t": t, "n": n, "b": b} for t, n, b in rows]
    assert json.loads(out.getvalue()) == want
    lines = out.getvalue().split("\n")[1:-2]
    assert [line.strip().rstrip(",") for line in lines] == [json.dumps(w, ensure_ascii=False) for w in want]


def test_a_batch_whose_text_passes_what_arrow_holds_is_written_in_halves() -> None:
    """A review finding: a batch's CSV or JSON is one Arrow string array, which holds up to
    2 GiB; a batch of very large cells is made in halves (and theirs) instead, in order."""
    import pyarrow as pa

    from mediaforge.cli.render import _in_parts

    batch = pa.record_batch({"n": list(range(10))})
    tried: list[int] = []

    def build(part: pa.RecordBatch) -> str:
        tried.append(part.num_rows)
        if part.num_rows > 3:
            raise pa.ArrowCapacityError("array cannot contain more than 2147483646 bytes")
        return "".join(f"{n}," for n in part.column(0).to_pylist())

    assert "".join(_in_parts(batch, build)) == "".join(f"{n}," for n in range(10))
    assert tried == [10, 5, 2, 3, 5, 2, 3]
    with pytest.raises(pa.ArrowCapacityError):
        list(_in_parts(batch.slice(0, 1), lambda part: build(pa.record_batch({"n": list(range(4))}))))


def test_export_onto_a_file_says_it_is_not_a_folder(catalog: Path, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    res = run_cli("export", afile, catalog=catalog)
    assert res.rc == 3
    assert_one_line_error(res.err, f"{afile}: it is not a folder")
    assert afile.read_text() == "mine\n"
    # A QA note: a link to nothing (a disk not mounted) was "not a folder" too.
    (tmp_path / "usb").symlink_to(tmp_path / "mnt" / "usb")
    res = run_cli("export", tmp_path / "usb", catalog=catalog)
    assert res.rc == 3
    assert_one_line_error(res.err, "usb: it is a link to", "which is not there")
    assert not (tmp_path / "mnt").exists()
    # And a file where the catalog's folder goes: it says so, not "File exists".
    (tmp_path / "mnt0").mkdir()
    res = run_cli("scan", tmp_path / "mnt0", catalog=afile / "c.duckdb")
    assert res.rc == 5
    assert_one_line_error(res.err, f"cannot create the catalog's folder {afile}: it, or a folder above it, is a file")


BIG = 340282366920938463463374607431768211455  # UHUGEINT's largest: past 2^127, a DECIMAL in Arrow goes negative
NESTED = (f"SELECT [TIME '24:00:00'] a, [1::UHUGEINT, {BIG}::UHUGEINT, NULL] c, "
          "{'t': TIME_NS '01:02:03.5', 'u': [2::UHUGEINT], 'f': 0.1::FLOAT} s, MAP {3::UHUGEINT: TIME '23:00:00'} m")


def test_lists_and_structs_holding_time_or_uhugeint_are_json(catalog: Path) -> None:
    """In JSON they are arrays and objects, in CSV their JSON text: a TIME as its text
    (24:00:00 whole), a UHUGEINT as the exact integer."""
    res = run_cli("query", NESTED, "-f", "json", catalog=catalog)
    assert res.rc == 0, res.err
    assert json.loads(res.out) == [{"a": ["24:00:00"], "c": [1, BIG, None],
                                    "s": {"t": "01:02:03.5", "u": [2], "f": 0.1}, "m": [[3, "23:00:00"]]}]
    res = run_cli("query", NESTED, "-f", "csv", catalog=catalog)
    assert res.rc == 0, res.err
    cells = next(csv.DictReader(io.StringIO(res.out)))
    assert {k: json.loads(v) for k, v in cells.items()} == json.loads(run_cli(
        "query", NESTED, "-f", "json", catalog=catalog).out)[0]


def test_lists_holding_time_or_uhugeint_go_into_parquet(catalog: Path, tmp_path: Path) -> None:
    out = tmp_path / "n.parquet"
    res = run_cli("query", NESTED, "-o", out, catalog=catalog)
    assert res.rc == 0, res.err
    res = run_cli("query", f"SELECT a, c, s.t AS t FROM '{out}'", "-f", "json", catalog=catalog)
    assert res.rc == 0, res.err
    assert json.loads(res.out) == [{"a": ["24:00:00"], "c": ["1", str(BIG), None], "t": "01:02:03.5"}]


def test_a_name_duckdb_quotes_back_in_an_error_keeps_its_newline_escaped(catalog: Path, tmp_path: Path) -> None:
    """A QA finding: a newline in a name DuckDB's error quotes back read as a space, so
    `new\\nline.txt` looked like a file `new line.txt`; our own messages write it `\\n`."""
    odd = tmp_path / "new\nline.txt"
    odd.write_bytes(b"x")
    res = run_cli("query", f"SELECT * FROM read_parquet('{odd}')", catalog=catalog)
    assert res.rc != 0
    assert_one_line_error(res.err, f"'{tmp_path}/new\\nline.txt' too small")
    # An apostrophe in the name, or a double-quoted name, changes nothing; DuckDB's own
    # line breaks between its sentences stay apart.
    res = run_cli("query", "SELECT \"it's\nodd\" FROM files", catalog=catalog)
    assert res.rc == 6
    assert_one_line_error(res.err, '"it\'s\\nodd" not found', "FROM clause! Candidate bindings: ")
    odd = tmp_path / "it's\nnew.csv"
    res = run_cli("query", "SELECT * FROM read_csv('" + str(odd).replace("'", "''") + "')", catalog=catalog)
    assert res.rc == 6
    assert_one_line_error(res.err, f'"{tmp_path}/it\'s\\nnew.csv"')


@pytest.mark.parametrize("message, want", [
    ('Binder Error: column "it\'s\nodd" not found!\nCandidate bindings: "range"',
     'Binder Error: column "it\'s\\nodd" not found!\nCandidate bindings: "range"'),
    ("IO Error: File '/tmp/new\nline.txt' too small", "IO Error: File '/tmp/new\\nline.txt' too small"),
    ("E: 'a\r\nb' and 'c\nd' then\n'e'", "E: 'a\\r\\nb' and 'c\\nd' then\n'e'"),
    ("Error: '/a/it's\nx' too small\nLINE 1: select 'b'", "Error: '/a/it's\\nx' too small\nLINE 1: select 'b'"),
    # DuckDB's own line breaks between quoted names, a quote left open, a prose apostrophe.
    ('Binder Error: column "x." not found!\nCandidate bindings: "y"', None),
    ("Catalog Error: Table with name 'x' does not exist!\nDid you mean 'y'?", None),
    ("Parser Error: can't parse\nLINE 1: select 'a\n", None),
    ("Invalid Input Error:" + " 'a" * 20000 + "\nmore", None),
])
def test_line_breaks_inside_quoted_names_only_are_escaped(message: str, want: str | None) -> None:
    from mediaforge.errors import _quoted_breaks_escaped

    assert _quoted_breaks_escaped(message) == (message if want is None else want)


def test_the_largest_float_prints_in_every_format(catalog: Path, tmp_path: Path) -> None:
    """A QA finding: a FLOAT at the largest value (a common "no data" mark in Parquet
    files) stopped `query` with an internal error, leaving `[` on stdout."""
    sql = "SELECT 3.4028235e38::FLOAT AS x, -3.4028235e38::FLOAT AS y, [3.4028235e38::FLOAT] AS z, 1.1::FLOAT AS w"
    res = run_cli("query", sql, "-f", "json", catalog=catalog)
    assert res.rc == 0, res.err
    assert json.loads(res.out) == [{"x": 3.4028235e38, "y": -3.4028235e38, "z": [3.4028235e38], "w": 1.1}]
    for fmt in ("csv", "table"):
        res = run_cli("query", sql, "-f", fmt, catalog=catalog)
        assert res.rc == 0 and "3.4028235e+38" in res.out, (fmt, res.err)


def test_a_character_that_does_not_print_never_looks_like_a_byte() -> None:
    """A QA finding: a no-break space (U+00A0) was shown `\\xa0`, as the byte 0xA0 of a
    name that is not UTF-8 is: two folders looked alike. U+0080 to U+00FF show as `\\u00NN`."""
    from mediaforge.errors import path_text, printable

    assert path_text(b"caf\xa0bar") == "caf\\xa0bar"
    assert path_text("caf\u00a0bar".encode()) == "caf\\u00a0bar"
    assert printable("a\x85b\u00adc\nd\x1be\u200bf") == "a\\u0085b\\u00adc\\nd\\x1be\\u200bf"


def test_an_interrupted_query_names_what_it_left(catalog: Path, tmp_path: Path) -> None:
    """A QA finding: a query to a new file, stopped, said "what it held is kept" of a file
    that was never there."""
    import signal
    import time

    out = tmp_path / "new.parquet"
    p = subprocess.Popen(cli_cmd("query", "SELECT range, md5(range::VARCHAR) FROM range(300000000)", "-o", out),
                         env=cli_env(catalog), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(5)  # started, and into its query (300 million rows take minutes)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert f"{out} was not written" in err and "what it held" not in err, err
    assert not out.exists()


def test_a_table_lines_up_where_the_output_holds_ascii_alone(catalog: Path) -> None:
    """A QA finding: under PYTHONIOENCODING=ascii a cell's `ü` became `\\u00fc` after the
    columns were measured, and the borders no longer lined up."""
    res = run_cli("query", "SELECT 'ü' AS a, 'x' AS b UNION ALL SELECT 'plain', 'y'",
                  env=cli_env(catalog, PYTHONIOENCODING="ascii"))
    assert res.rc == 0, res.err
    lines = [line for line in res.out.splitlines() if line.strip()]
    assert "\\u00fc" in res.out and len({len(line) for line in lines}) == 1, res.out


_SIGINT_IN = """
import os, signal, sys
import mediaforge.catalog as catalog
import mediaforge.catalog.query as query
from mediaforge._entry import main

def stopping(real):
    def stop(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        signal.sigtimedwait([], 5)  # the handler raises KeyboardInterrupt here
        return real(*args, **kwargs)
    return stop
# `stats`: as it reads; `export`: once every table is written, as the files would take their names.
catalog.stats = stopping(catalog.stats)
query.replace_all = stopping(query.replace_all)
sys.argv = ["mediaforge", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize(("args", "said"), [
    (("export", "{out}"), "an export's files take their names all at once, so the folder holds this export whole "
                          "or what it held before; run it again"),
    (("stats",), "`stats` only reads the catalog; run it again"),
])
def test_a_ctrl_c_in_a_command_that_only_reads_says_so(catalog: Path, tmp_path: Path, args: tuple[str, ...],
                                                        said: str) -> None:
    """QA: `export`, `stats` and `info`, stopped by a Ctrl-C, said "what was already done
    (and committed) is kept; run the command again to finish", which tells of work half
    done. An export stopped before its files take their names leaves the one before."""
    import shutil
    import sys

    catalog = Path(shutil.copy(catalog, tmp_path / "c.duckdb"))  # (the module's catalog stays as it is)
    out = tmp_path / "exported"
    assert run_cli("export", out, catalog=catalog).rc == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "new.jpg").write_bytes(b"a file the earlier export has not")
    assert run_cli("scan", tmp_path / "lib", "--no-meta", catalog=catalog).rc == 0
    env = {k: v for k, v in cli_env(catalog).items() if not k.startswith("MEDIAFORGE_")}
    env["MEDIAFORGE_CATALOG"] = str(catalog)
    p = subprocess.run([sys.executable, "-c", _SIGINT_IN, *(a.format(out=out) for a in args)], capture_output=True,
                       text=True, env=env, timeout=120)
    assert p.returncode == 130, p.stderr
    assert p.stderr == f"mediaforge: error: interrupted: {said}\n", p.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no temporary left, nothing replaced


def test_dates_read_out_by_arrow_as_one_at_a_time(catalog: Path) -> None:
    """DATE columns of years 1000 to 9999 are made into text by Arrow (a million took 4 s
    one at a time); those outside, NULL and infinity still as before, in both formats."""
    sql = ("SELECT * FROM (VALUES (DATE '2020-02-29', DATE '1000-01-01'), (DATE '9999-12-31', NULL), "
           "(DATE '0999-12-31', DATE '10000-01-01'), ('infinity'::DATE, DATE '1969-07-20')) t(a, b)")
    res = run_cli("query", sql, "-f", "json", catalog=catalog)
    assert res.rc == 0, res.err
    assert json.loads(res.out) == [{"a": "2020-02-29", "b": "1000-01-01"}, {"a": "9999-12-31", "b": None},
                                   {"a": "0999-12-31", "b": "10000-01-01"}, {"a": "infinity", "b": "1969-07-20"}]
    res = run_cli("query", sql, "-f", "csv", catalog=catalog)
    assert res.rc == 0, res.err
    assert res.out.splitlines() == ["a,b", "2020-02-29,1000-01-01", "9999-12-31,", "0999-12-31,10000-01-01",
                                    "infinity,1969-07-20"]
