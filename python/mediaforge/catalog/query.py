"""Reading the catalog: user SQL, Parquet export and the `stats` summary."""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .. import _dbload  # noqa: F401 - before duckdb: holds Ctrl-C back while it loads

import duckdb
import pyarrow as pa

from ..errors import InvalidInputError, PathIOError, PathNotFoundError, QueryError, first_line, is_text, quoted, sql_error_text
from ..fsops import new_tmp, replace_all, stand_in, xattrs
from .media_tables import taken_sql
from .meta_writes import LACKS_FINGERPRINT
from .schema import ALL_TABLES
from .store import Catalog, damaged, is_corruption, is_interrupt, streamed, tells_of_corruption


# PRAGMAs that only describe the catalog. Others change settings or run scripts
# (IMPORT DATABASE is parsed as PRAGMA import_database).
READ_PRAGMAS = frozenset({
    "table_info", "show", "show_tables", "show_tables_expanded", "show_databases", "database_list",
    "database_size", "storage_info", "version", "platform", "functions", "metadata_info", "collations",
    "user_agent", "table_storage_info",
})


def _words(sql: str) -> list[tuple[int, str]]:
    """The statement's tokens, comments left out, as (offset, text), by DuckDB's own
    tokenizer: it knows nested comments, `--` comments ended by a carriage return and
    dollar-quoted strings, which a pattern over the text would not."""
    toks = duckdb.tokenize(sql)
    ends = [pos for pos, _ in toks[1:]] + [len(sql)]
    return [(pos, sql[pos:end].strip()) for (pos, kind), end in zip(toks, ends)
            if kind != duckdb.token_type.comment]


def _reading(sql: str, kind: duckdb.StatementType) -> bool:  # noqa: C901 - one rule per statement kind
    """Whether one parsed statement only reads: a SELECT, an EXPLAIN of one, or a PRAGMA
    that describes the catalog."""
    words = _words(sql)
    if _writes_inside(words):  # WITH d AS (DELETE ... RETURNING *) SELECT ...: a SELECT that writes
        return False
    if kind == duckdb.StatementType.SELECT:
        return True
    explained = bool(words) and words[0][1].upper() == "EXPLAIN"
    if kind == duckdb.StatementType.MULTI and not explained:
        # A PIVOT without its IN list: DuckDB first reads the column's distinct values,
        # then selects (two statements inside one); a WITH may come before it.
        main = _main_word(words)
        return main is not None and words[main][1].upper() in ("PIVOT", "PIVOT_WIDER")
    if kind in (duckdb.StatementType.EXPLAIN, duckdb.StatementType.MULTI):  # EXPLAIN of such a PIVOT is MULTI too
        # EXPLAIN [ANALYZE | (options)] SELECT ...: ANALYZE runs what it explains.
        if len(words) < 2:
            return False
        rest = 1
        if words[1][1].upper() in ("ANALYZE", "ANALYSE"):
            rest = 2
        elif words[1][1] == "(":
            close = next((k for k in range(2, len(words)) if words[k][1] == ")"), None)
            if close is None:
                return False
            rest = close + 1
        if rest >= len(words):
            return False
        try:
            inner = duckdb.extract_statements(sql[words[rest][0]:])
            inner_kind = inner[0].type if len(inner) == 1 else None
        except (duckdb.Error, ValueError):  # ValueError: a kind this duckdb package has no name for
            return False
        # What it explains, by the same rules: EXPLAIN PIVOT, never EXPLAIN ANALYZE of a write.
        return inner_kind is not None and _reading(sql[words[rest][0]:], inner_kind)
    if kind == duckdb.StatementType.PRAGMA:
        return len(words) >= 2 and words[0][1].upper() == "PRAGMA" and words[1][1].lower() in READ_PRAGMAS
    return False


def _main_word(words: list[tuple[int, str]]) -> int | None:
    """The position of the word that says what a statement is: its first, or the first
    after its WITH clause (the first word outside parentheses that follows a closing one
    and is neither `,` nor part of a CTE's head: `AS`, `USING KEY`)."""
    if not words or words[0][1].upper() != "WITH":
        return 0 if words else None
    depth, closed = 0, False
    for k, (_, w) in enumerate(words):
        if w == "(":
            depth += 1
        elif w == ")":
            depth -= 1
            closed = depth == 0
            continue
        elif depth == 0 and closed and w.upper() not in (",", "AS", "USING"):
            return k
        closed = False
    return None


def _writes_inside(words: list[tuple[int, str]]) -> bool:
    """Whether the tokens hold a writing clause anywhere (DELETE FROM, INSERT INTO, UPDATE
    table SET, MERGE INTO, UPDATE EXTENSIONS, COPY, TRUNCATE), as a data-modifying CTE
    does (a `COPY ... TO` there writes a file, past the catalog's read-only opening)."""
    up = [w.upper() for _, w in words]
    for k, w in enumerate(up):
        # A clause starts the statement, or a CTE's body (`AS (`, or after the body's own
        # WITH list: `)`); elsewhere the word is a name: `SELECT 1 AS delete`, `t.delete`,
        # `SELECT delete FROM (SELECT 1 AS "delete")`, `SELECT insert OR false FROM ...`.
        if k and up[k - 1] not in ("(", ")"):
            continue
        after = up[k + 1:k + 6]
        if ((w == "DELETE" and after[:1] == ["FROM"]) or (w == "INSERT" and after[:1] in (["INTO"], ["OR"]))
                or (w == "MERGE" and after[:1] == ["INTO"])
                or (w in ("COPY", "TRUNCATE") and bool(after) and (_name(after[0]) or after[0] == "("))
                or (w == "UPDATE" and (after[:1] == ["EXTENSIONS"] or _sets(up[k + 1:k + 12])))):
            return True
    return False


def _name(w: str) -> bool:
    """Whether a token can name a table or an alias (a word or a quoted name, not `,` or `(`)."""
    return bool(w) and (w[0].isalnum() or w[0] in '_"')


def _sets(after: list[str]) -> bool:
    """Whether the tokens after an UPDATE are those of an UPDATE statement: a table (its
    name qualified or not, an alias with or without AS), then SET; not a column named
    `update` beside one named `set` (`SELECT update, set FROM ...`)."""
    k = 0
    if not (k < len(after) and _name(after[k])):
        return False
    k += 1
    while k + 1 < len(after) and after[k] == "." and _name(after[k + 1]):
        k += 2
    rest = after[k:]
    return (rest[:1] == ["SET"] or (len(rest) > 1 and _name(rest[0]) and rest[1] == "SET")
            or (rest[:1] == ["AS"] and len(rest) > 2 and _name(rest[1]) and rest[2] == "SET"))


class QueryResult:
    """A statement's rows as Arrow record batches, read from DuckDB as they are consumed:
    a result of millions of rows is written out without being held in memory. Iterate it
    once, while the catalog is still open; DuckDB's errors met on the way (a failing
    cast, Ctrl-C, a damaged block) come as MediaForge's."""

    def __init__(self, reader: pa.RecordBatchReader, path: Path, wrapped: bool = False,
                 uuids: tuple[int, ...] = (), retyped: dict[int, pa.DataType] | None = None) -> None:
        # Columns cast on the way (`retyped`: by position), as `_numbers_marked` says.
        self._retyped = retyped or {}
        schema = reader.schema
        for k, t in self._retyped.items():
            schema = schema.set(k, schema.field(k).with_type(t))
        self.schema: pa.Schema = schema
        self._reader, self._path = reader, path
        # Positions of the UUID columns sent as their 16 bytes (`run_query(for_parquet=True)`).
        self.uuids = uuids
        # Read through a projection of the statement (`_as_text_where_arrow_cannot`): an
        # error's line and column would be the projection's, so none is given.
        self._wrapped = wrapped

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        try:
            for batch in streamed(self._reader):
                if self._retyped:
                    batch = pa.RecordBatch.from_arrays(
                        [c.cast(self._retyped[k]) if k in self._retyped else c for k, c in enumerate(batch.columns)],
                        schema=self.schema)
                yield batch
        except duckdb.Error as e:
            raise _failure(e, self._path, self._wrapped) from None


def _failure(e: BaseException, path: Path, wrapped: bool = False) -> BaseException:
    """What a DuckDB error while running a user's statement becomes."""
    if is_interrupt(e):
        return KeyboardInterrupt()
    if tells_of_corruption(e):
        return damaged(e, path)
    return QueryError(f"SQL error: {sql_error_text(e, where=not wrapped)}")


# DuckDB types Arrow carries wrongly: BIGNUM and BIT as opaque bytes, TIMETZ without its
# offset. Columns of these types are sent as DuckDB's own text for them.
# UHUGEINT past 2^127 comes as a negative decimal, TIME 24:00:00 as 00:00:00.
_TEXT_TYPES = frozenset({"BIGNUM", "VARINT", "BIT", "TIME WITH TIME ZONE", "UHUGEINT", "TIME", "TIME_NS"})


# VARIANT comes through Arrow as its binary encoding (metadata and value bytes): a column
# holding one, alone or nested, is sent as JSON text, which keeps `1` and `"1"` apart.
_VARIANT = re.compile(r"\bVARIANT\b")


def _as_text_where_arrow_cannot(rel: duckdb.DuckDBPyRelation, uuids: tuple[int, ...] = (),
                                parquet: bool = False) -> tuple[duckdb.DuckDBPyRelation, tuple[int, ...]]:
    """`rel`, with the columns Arrow would carry wrongly as text (or JSON), and its UUID
    columns at the positions `uuids` as their 16 bytes (DuckDB hands a UUID to Arrow as
    text). `parquet`: the rows are for a Parquet file, which has no timestamps in seconds:
    those are cast to milliseconds here, where DuckDB keeps `infinity` infinite (as a
    TIMESTAMP_MS is written); pyarrow's own conversion overflows on it. Also the positions
    of the lists and structs whose UHUGEINTs come as their digits (see `_numbers_marked`)."""
    types = [str(t) for t in rel.types]
    as_json = [bool(_VARIANT.search(t)) for t in types]
    # A list or struct holding a BIGNUM, BIT or TIMETZ is DuckDB's text as a whole; one
    # holding a TIME or UHUGEINT keeps its shape, those values in it as their text.
    garbled = [t in _TEXT_TYPES or bool(_NESTED_TEXT_TYPE.search(t))
               or ("UNION(" in t and bool(_NESTED_LEAF.search(t))) for t in types]
    leaves = [not bad and bool(_NESTED_LEAF.search(t)) for bad, t in zip(garbled, types)]
    as_bytes = [k in uuids for k in range(len(types))]
    as_ms = [parquet and bool(_SECONDS.search(t)) for t in types]
    if not any(garbled) and not any(as_json) and not uuids and not any(as_ms) and not any(leaves):
        return rel, ()
    retyped = [_NESTED_LEAF.sub("VARCHAR", t) if leaf else t for leaf, t in zip(leaves, types)]
    cast = [" AS JSON" if js else " AS VARCHAR" if bad else " AS BLOB" if u else
            f" AS {_SECONDS.sub('TIMESTAMP_MS', t) if ms else t}" if ms or leaf else ""
            for js, bad, u, ms, leaf, t in zip(as_json, garbled, as_bytes, as_ms, leaves, retyped)]
    # By position (#k), for a result may name two columns alike.
    cols = [f"{f'CAST(#{k}{to})' if to else f'#{k}'} AS {_quoted(name)}"
            for k, (name, to) in enumerate(zip(rel.columns, cast), 1)]
    numbers = tuple(k for k, (leaf, t) in enumerate(zip(leaves, types)) if leaf and "UHUGEINT" in t)
    return rel.project(", ".join(cols)), numbers


def _numbers_marked(duck: duckdb.DuckDBPyType, arrow: pa.DataType) -> pa.DataType:
    """`arrow`, the type of a list or struct column as `_as_text_where_arrow_cannot` sends
    it, with the text that was a UHUGEINT in `duck` typed JSON: its digits, which the
    writers take as the exact integer (Arrow's DECIMAL would turn one past 2^127
    negative)."""
    kind = duck.id
    if kind == "uhugeint":
        return pa.json_()
    if kind not in ("struct", "list", "array", "map"):
        return arrow
    kids = [t for _, t in duck.children]
    if kind == "struct":
        return pa.struct([f.with_type(_numbers_marked(d, f.type)) for f, d in zip(arrow, kids)])
    if kind == "map":
        return pa.map_(arrow.key_field.with_type(_numbers_marked(kids[0], arrow.key_type)),
                       arrow.item_field.with_type(_numbers_marked(kids[1], arrow.item_type)))
    value = arrow.value_field.with_type(_numbers_marked(kids[0], arrow.value_type))
    if pa.types.is_fixed_size_list(arrow):
        return pa.list_(value, arrow.list_size)
    return pa.large_list(value) if pa.types.is_large_list(arrow) else pa.list_(value)


def _regular(t: pa.DataType) -> pa.DataType:
    """`t` with Arrow's regular text, BLOB and list types for its large ones (through
    lists, structs and maps; a union, which Arrow cannot cast, as it is)."""
    if pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_large_binary(t):
        return pa.binary()
    if pa.types.is_map(t):
        return pa.map_(t.key_field.with_type(_regular(t.key_type)), t.item_field.with_type(_regular(t.item_type)),
                       t.keys_sorted)
    if pa.types.is_large_list(t) or pa.types.is_list(t):
        return pa.list_(t.value_field.with_type(_regular(t.value_type)))
    if pa.types.is_fixed_size_list(t):
        return pa.list_(t.value_field.with_type(_regular(t.value_type)), t.list_size)
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_regular(f.type)) for f in t])
    if pa.types.is_dictionary(t):
        return pa.dictionary(t.index_type, _regular(t.value_type), t.ordered)
    return t


# The most bytes of values cast back to regular buffers at once (those hold 2 GiB).
_CAST_PART_BYTES = 1 << 30


def _regular_buffers(reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
    """DuckDB's batches, read in Arrow's large buffers (a batch of big cells passes the
    2 GiB a regular one holds), in the regular types a result had before: the types
    `export` writes, in as many parts as they need. A single value past 2 GiB fails."""
    schema = pa.schema([f.with_type(_regular(f.type)) for f in reader.schema], metadata=reader.schema.metadata)
    if schema == reader.schema:
        return reader

    def cast(batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
        if batch.num_rows > 1 and batch.nbytes > _CAST_PART_BYTES:
            fits = None
        else:
            try:
                fits = batch.cast(schema)
            except (pa.ArrowCapacityError, pa.ArrowInvalid) as e:  # "input array too large"
                if batch.num_rows > 1:
                    fits = None
                elif batch.nbytes >= 2**31 - 1:
                    raise QueryError("SQL error: the result holds a value of 2 GiB or more, which cannot be read "
                                     "out") from None
                else:
                    raise QueryError(f"SQL error: the result cannot be read out ({first_line(e)})") from None
        if fits is not None:
            yield fits
            return
        half = batch.num_rows // 2
        for part in (batch.slice(0, half), batch.slice(half)):
            # Copied out: a cast judges a slice by the whole buffer under it.
            yield from cast(pa.RecordBatch.from_arrays([pa.concat_arrays([c]) for c in part.columns],
                                                       schema=part.schema))

    def batches() -> Iterator[pa.RecordBatch]:
        with contextlib.closing(reader):
            for batch in reader:
                yield from cast(batch)

    return pa.RecordBatchReader.from_batches(schema, batches())


_NESTED_TEXT_TYPE = re.compile(r"\b(BIGNUM|VARINT|BIT|TIME WITH TIME ZONE)\b(?=[\[\],)]|$)")
# Inside a UNION, they are its text as a whole: Arrow casts no union.
_NESTED_LEAF = re.compile(r"\b(UHUGEINT|TIME|TIME_NS)\b(?=[\[\],)]|$)")
_SECONDS = re.compile(r"\bTIMESTAMP_S\b(?=[\[\],)]|$)")


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# Rows per batch read from DuckDB: big enough to keep the per-batch cost small, small
# enough that a wide result holds little memory.
_BATCH_ROWS = 20_000


def run_query(cat: Catalog, sql: str, for_parquet: bool = False) -> QueryResult:
    """Run one reading SQL statement; its rows stream from the returned result. The
    connection's settings are locked afterwards: use it for this one statement.
    `for_parquet`: the rows are for a Parquet file: UUID columns (not those nested in a
    list or struct) come as their 16 bytes, listed in `QueryResult.uuids`, for a writer
    that stores UUIDs as such, and timestamps in seconds as milliseconds."""
    if not sql.strip():
        raise QueryError("empty SQL statement")
    if not is_text(sql):
        raise InvalidInputError("the SQL statement holds bytes that are not valid UTF-8")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as e:
        raise QueryError(f"SQL error: {sql_error_text(e)}") from None
    if not statements:  # only semicolons and comments: as empty as a blank argument
        raise InvalidInputError(f"empty SQL statement: {' '.join(sql.split())[:60]!r} holds none (only "
                                f"semicolons or comments)")
    if len(statements) != 1:
        raise QueryError(f"give one SQL statement, not {len(statements)}")
    try:
        kind = statements[0].type
    except ValueError:  # a statement type this duckdb package has no name for (UPDATE EXTENSIONS)
        kind = None
    if kind is None or not _reading(sql, kind):
        # The catalog is opened read-only, but ATTACH could open it again for writing,
        # COPY or EXPORT write files anywhere, EXPLAIN ANALYZE runs what it explains and
        # IMPORT DATABASE runs a script: only reading statements run here.
        raise QueryError(f"query runs one reading statement (SELECT, WITH, FROM, VALUES, PIVOT, UNPIVOT, DESCRIBE, SHOW, "
                         f"SUMMARIZE, EXPLAIN of one of those, or a PRAGMA that describes the catalog), "
                         f"refused: {' '.join(sql.split())[:60]!r}")
    wrapped = False
    try:
        # Text and blobs in Arrow's large buffers: a batch of big cells (800 files of 3 MB
        # read whole by `read_blob`) passes the 2 GiB that regular ones hold.
        cat.con.execute("SET arrow_large_buffer_size = true")
        cat.con.execute("SET lock_configuration = true")  # no setting changes through a PRAGMA either
        rel = cat.con.sql(sql)
        if rel is None:  # a statement that returns nothing (SET, PRAGMA ...)
            return QueryResult(pa.RecordBatchReader.from_batches(pa.schema([]), []), cat.path)
        uuids = tuple(k for k, t in enumerate(rel.types) if for_parquet and str(t) == "UUID")
        shown, numbers = _as_text_where_arrow_cannot(rel, uuids, for_parquet)
        wrapped = shown is not rel
        reader = _regular_buffers(shown.to_arrow_reader(_BATCH_ROWS))
        marked = {k: _numbers_marked(rel.types[k], reader.schema.field(k).type) for k in numbers}
        return QueryResult(reader, cat.path, wrapped, uuids, marked)
    except (duckdb.Error, RuntimeError) as e:  # RuntimeError: a Ctrl-C, as DuckDB's Arrow reader reports it
        raise _failure(e, cat.path, wrapped) from None
    except pa.ArrowException as e:  # a result Arrow cannot carry (lists nested 64 deep)
        raise QueryError(f"SQL error: the result cannot be read out ({first_line(e)})") from None


def _file_id(path: str | Path) -> tuple[int, int] | None:
    """Device and inode of a file (through symlinks), None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def export_parquet(cat: Catalog, out_dir: Path, tables: tuple[str, ...] = ALL_TABLES) -> list[Path]:
    """Write each catalog table as `<table>.parquet` (zstd) into `out_dir`. Every table is
    written under a fresh hidden name first and the files are renamed into place only once
    all are complete, so a failed or interrupted export leaves an earlier one whole and no
    temporary file behind."""
    if not is_text(str(out_dir)):  # DuckDB's COPY takes text paths only: refuse before making the folder
        raise InvalidInputError(f"cannot export into {quoted(str(out_dir))}: the path is not valid UTF-8")
    made = not os.path.lexists(out_dir)  # made by this export: a failed one takes it away again
    try:  # the folder itself, as mkdir makes it: a typo in a folder above makes nothing
        out_dir.mkdir(exist_ok=True)
    except FileNotFoundError:
        raise PathNotFoundError(f"cannot export into {out_dir}: no such folder {out_dir.parent}") from None
    except FileExistsError:  # a file, or a link to one, or a link to nothing, is there
        if os.path.islink(out_dir) and not os.path.exists(out_dir):
            raise PathNotFoundError(f"cannot export into {out_dir}: it is a link to {os.readlink(out_dir)}, which is "
                                    "not there (a disk not mounted?)") from None
        raise PathIOError(f"cannot export into {out_dir}: it is not a folder") from None
    except OSError as e:
        raise PathIOError(f"cannot create {out_dir}: {e.strerror}") from None
    catalog_files = {_file_id(f"{cat.path}{ext}") for ext in ("", ".wal")} - {None}
    for t in tables:  # each file is renamed over what was there: never over the catalog
        if _file_id(out_dir / f"{t}.parquet") in catalog_files:
            raise InvalidInputError(f"cannot export into {out_dir}: {t}.parquet there is the catalog itself")
    done: list[tuple[Path, Path]] = []
    try:
        for t in tables:
            target = out_dir / f"{t}.parquet"
            if target.is_dir():
                raise PathIOError(f"cannot export {t}: {target} is a folder")
            try:
                tmp = Path(os.fsdecode(new_tmp(os.fsencode(target), _create_empty)))
            except OSError as e:
                raise PathIOError(f"cannot write into {out_dir}: {e.strerror or first_line(e)}") from None
            done.append((tmp, target))
            try:
                # Absolute: DuckDB would take a leading `~` for the home folder. Written in
                # place: DuckDB's own temporary (`tmp_` + the name) is not one that the next
                # command sweeps, or a scan passes by, when a kill -9 leaves it.
                cat.con.execute(f"COPY (SELECT * FROM {t}) TO '{_sql_str(tmp.absolute())}' "
                                "(FORMAT parquet, COMPRESSION zstd, USE_TMP_FILE false)")
            except duckdb.Error as e:
                if is_corruption(e):
                    raise damaged(e, cat.path) from None
                if is_interrupt(e):  # a Ctrl-C mid-COPY: a stop, not a failed write
                    raise
                raise PathIOError(f"export of {t} to {target} failed: {first_line(e)}") from None
            try:  # a file it replaces keeps its permission bits (a user's `chmod 600`), owner and ACL
                old, attrs = os.stat(target), xattrs(os.fsencode(target))
            except FileNotFoundError:
                continue
            except OSError as e:
                raise PathIOError(f"cannot read {target}: {e.strerror}") from None
            fd = os.open(tmp, os.O_RDONLY)
            try:
                stand_in(fd, old, attrs)
            except OSError as e:
                raise PathIOError(f"cannot give {target}'s permissions to its new copy: {e.strerror or e}") from None
            finally:
                os.close(fd)
        try:  # all or none: a rename that fails puts back the files renamed before it
            replace_all([(os.fsencode(tmp), os.fsencode(target)) for tmp, target in done])
        except OSError as e:
            where = os.fsdecode(e.filename) if e.filename else str(out_dir)
            raise PathIOError(f"cannot write {where}: {e.strerror or first_line(e)}; the files there are as they "
                              "were") from None
    except BaseException:
        for tmp, _target in done:
            with contextlib.suppress(OSError):
                tmp.unlink()  # made by this export (the renamed ones are gone already)
        if made:
            with contextlib.suppress(OSError):
                out_dir.rmdir()  # only while empty
        raise
    return [target for _tmp, target in done]


def _create_empty(path: bytes) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))


def _sql_str(p: Path) -> str:
    return str(p).replace("'", "''")


@dataclass(frozen=True)
class Stats:
    """What `mediaforge stats` shows."""

    totals: dict[str, Any]
    by_kind: list[dict[str, Any]]
    largest_dirs: list[dict[str, Any]]
    last_scans: list[dict[str, Any]]
    error_stages: list[dict[str, Any]]
    by_codec: list[dict[str, Any]]
    by_resolution: list[dict[str, Any]]
    by_camera: list[dict[str, Any]]
    by_year: list[dict[str, Any]]
    extraction: list[dict[str, Any]]


def _rows(cat: Catalog, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    cur = cat.con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def stats(cat: Catalog, top: int = 10) -> Stats:
    """Counts and bytes by kind, the largest folders, the last scans."""
    totals = _rows(
        cat,
        """
        SELECT count(*) FILTER (WHERE status = 'present') AS files,
               coalesce(sum(size) FILTER (WHERE status = 'present'), 0) AS bytes,
               count(*) FILTER (WHERE status = 'missing') AS missing,
               count(*) FILTER (WHERE status = 'present' AND blake3 IS NULL) AS unhashed,
               count(DISTINCT blake3) FILTER (WHERE status = 'present') AS distinct_contents
        FROM files
        """,
    )[0]
    by_kind = _rows(
        cat,
        """
        SELECT kind, count(*) AS files, sum(size) AS bytes
        FROM files WHERE status = 'present' GROUP BY kind ORDER BY bytes DESC, kind
        """,
    )
    # Folders by their exact bytes, so two whose names differ only in undecodable bytes
    # (shown alike) stay apart. Rows with a raw path take the bytes before its last '/'
    # (found on the hex form, at a byte boundary); `dir_raw` is those bytes when they are
    # not valid UTF-8, else NULL.
    largest = _rows(
        cat,
        r"""
        SELECT min(dir) AS dir, count(*) AS files, sum(size) AS bytes,
               CASE WHEN key IS DISTINCT FROM encode(min(dir)) THEN key END AS dir_raw
        FROM (SELECT dir, size,
                     CASE WHEN path_raw IS NULL THEN encode(dir)
                          ELSE coalesce(nullif(unhex(regexp_extract(hex(path_raw), '^((?:..)*)2F(?:..)*$', 1)),
                                               ''::BLOB), '/'::BLOB) END AS key
              FROM files WHERE status = 'present')
        GROUP BY key ORDER BY bytes DESC, dir, key LIMIT ?
        """,
        [top],
    )
    scans = _rows(
        cat,
        """
        SELECT scan_id AS id, strftime(started_at, '%Y-%m-%d %H:%M') AS started, status,
               files_seen AS files, new_files AS new, changed_files AS changed,
               moved_files AS moved, missing_files AS missing, errors, round(seconds, 2) AS secs,
               strftime(started_at, '%Y-%m-%dT%H:%M:%S.%fZ') AS started_at,
               strftime(finished_at, '%Y-%m-%dT%H:%M:%S.%fZ') AS finished_at, seconds
        FROM scans ORDER BY scan_id DESC LIMIT 5
        """,
    )
    stages = _rows(
        cat,
        """
        WITH r AS (  -- each folder completed scans looked at, as bytes, with the last of them
            SELECT max(scan_id) AS scan_id, root,
                   CASE WHEN root = '/'::BLOB THEN root ELSE root || '/'::BLOB END AS below,
                   CASE WHEN root = '/'::BLOB THEN '0'::BLOB ELSE root || '0'::BLOB END AS below_end
            FROM (SELECT scan_id, unnest(coalesce(roots_raw, list_transform(roots, lambda x: encode(x)))) AS root
                  FROM scans WHERE status = 'completed')
            GROUP BY root
        )
        -- A scan's errors, but those of a path a later scan looked at again: it found the
        -- problem there again (its own row), or fixed.
        SELECT 'scan' AS step, stage, count(*) AS errors FROM scan_errors e
        WHERE NOT EXISTS (SELECT 1 FROM r WHERE r.scan_id > e.scan_id
                          AND (e.path_bytes = r.root OR e.path_bytes >= r.below AND e.path_bytes < r.below_end))
        GROUP BY stage
        UNION ALL
        SELECT 'extract', stage, count(*) FROM meta_errors
        WHERE blake3 IN (SELECT blake3 FROM files WHERE status = 'present') GROUP BY stage
        ORDER BY errors DESC, step, stage
        """,
    )
    return Stats(totals=totals, by_kind=by_kind, largest_dirs=largest, last_scans=scans, error_stages=stages,
                 **_media_breakdowns(cat, top))


# Present files joined to their content's metadata; each breakdown counts files (copies
# included, since each takes space) and their bytes.
_PRESENT_MEDIA = "files f JOIN media m ON m.blake3 = f.blake3 WHERE f.status = 'present'"


def _media_breakdowns(cat: Catalog, top: int) -> dict[str, list[dict[str, Any]]]:
    return {
        "by_codec": _rows(cat, f"""
            SELECT m.kind, coalesce(m.video_codec, m.audio_codec) AS codec, count(*) AS files, sum(f.size) AS bytes
            FROM {_PRESENT_MEDIA} AND coalesce(m.video_codec, m.audio_codec) IS NOT NULL
            GROUP BY ALL ORDER BY bytes DESC, codec LIMIT ?""", [top]),
        "by_resolution": _rows(cat, f"""
            SELECT m.kind, CASE
                -- A class by its long side (1920x800 scope film is 1080p) or its short
                -- side, its lines (1440x1080 HDV is 1080p, 960x720 DV 720p): the higher.
                WHEN m.kind = 'video' THEN CASE
                    WHEN greatest(m.width, m.height) >= 7680 OR least(m.width, m.height) >= 4320 THEN '8K'
                    WHEN greatest(m.width, m.height) >= 3840 OR least(m.width, m.height) >= 2160 THEN '4K'
                    WHEN greatest(m.width, m.height) >= 2560 OR least(m.width, m.height) >= 1440 THEN '1440p'
                    WHEN greatest(m.width, m.height) >= 1920 OR least(m.width, m.height) >= 1080 THEN '1080p'
                    WHEN greatest(m.width, m.height) >= 1280 OR least(m.width, m.height) >= 720 THEN '720p'
                    ELSE 'SD' END
                ELSE CASE
                    WHEN m.width::BIGINT * m.height >= 32e6 THEN '32+ MP'
                    WHEN m.width::BIGINT * m.height >= 16e6 THEN '16-32 MP'
                    WHEN m.width::BIGINT * m.height >= 8e6 THEN '8-16 MP'
                    WHEN m.width::BIGINT * m.height >= 2e6 THEN '2-8 MP'
                    ELSE 'under 2 MP' END
                END AS resolution, count(*) AS files, sum(f.size) AS bytes
            FROM {_PRESENT_MEDIA} AND m.width IS NOT NULL AND m.kind IN ('video', 'image', 'raw')
            GROUP BY ALL ORDER BY m.kind, bytes DESC"""),
        "by_camera": _rows(cat, """
            SELECT CASE WHEN e.make IS NULL OR starts_with(lower(e.model), lower(e.make)) THEN e.model
                        ELSE e.make || ' ' || e.model END AS camera,
                   count(*) AS files, sum(f.size) AS bytes
            FROM files f JOIN exif e ON e.blake3 = f.blake3
            WHERE f.status = 'present' AND e.model IS NOT NULL
            GROUP BY ALL ORDER BY files DESC, camera LIMIT ?""", [top]),
        # Pictures and videos by the year they were taken, their own date first, else a
        # linked sidecar's (as `library.taken_at`); the sidecars are not counted themselves.
        "by_year": _rows(cat, f"""
            SELECT year({taken_sql('m', 'sd')}) AS year, count(*) AS files, sum(f.size) AS bytes
            FROM files f LEFT JOIN media m ON m.blake3 = f.blake3
            LEFT JOIN (SELECT l.media_id, min(s.taken_at) AS taken_at FROM sidecar_links l
                       JOIN sidecars s ON s.blake3 = l.sidecar_blake3 GROUP BY l.media_id) sd ON sd.media_id = f.media_id
            WHERE f.status = 'present' AND f.kind IN ('image', 'raw', 'video')
              AND {taken_sql('m', 'sd')} IS NOT NULL
            GROUP BY ALL ORDER BY year"""),
        # `without_fingerprint`: extracted with --no-fingerprints and not fingerprinted since,
        # or no fingerprint could be made (a flat picture: see meta_errors).
        "extraction": _rows(cat, f"""
            SELECT kind, status, count(*) AS contents,
                   count(*) FILTER (WHERE status IN ('ok', 'partial')
                                    AND ({' OR '.join(f'({c})' for c in LACKS_FINGERPRINT.values())})
                   ) AS without_fingerprint
            FROM media m WHERE m.blake3 IN (SELECT blake3 FROM files WHERE status = 'present')
            GROUP BY ALL ORDER BY kind, status"""),
    }


def _smart_of(cat: Catalog, media_id: Any) -> list[dict[str, Any]]:
    """The smart collections whose condition the file's `library` row matches now, those
    that read the clock included (one whose condition fails on this catalog is left out,
    as `collection list` shows it)."""
    from ..organise.search import smart_collections

    out = []
    for name, pred in smart_collections(cat, clock=True):
        try:
            if cat.con.execute(f"SELECT 1 FROM library WHERE media_id = ? AND ({pred}\n)", [media_id]).fetchall():
                out.append({"name": name, "kind": "smart"})
        except duckdb.Error:
            continue
    return out


def file_info(cat: Catalog, path_bytes: bytes) -> dict[str, Any] | None:
    """Everything the catalog knows about the file at `path_bytes`, or None. Where a file
    was moved onto the name of one that is gone, the present row is the one shown."""
    found = _rows(cat, "SELECT * FROM files WHERE path_bytes = ? ORDER BY status = 'present' DESC, last_seen DESC",
                  [path_bytes])
    if not found:
        return None
    info: dict[str, Any] = {"file": found[0]}
    h = found[0]["blake3"]
    # (Empty files are no copies of one another: they hold nothing to keep twice.)
    copies = _rows(cat, "SELECT path, path_bytes FROM files WHERE blake3 = ? AND path_bytes <> ? "
                        "AND status = 'present' AND size > 0 ORDER BY path_bytes", [h, path_bytes]) if h else []
    # The paths as text, and their exact bytes where the text cannot hold them (base64 in
    # JSON, as `path_raw` elsewhere; null otherwise): two copies whose names differ only
    # in such bytes stay apart.
    info["copies"] = [r["path"] for r in copies]
    info["copies_bytes"] = [bytes(r["path_bytes"]) for r in copies]
    for key, table in (("media", "media"), ("audio_tags", "tags_audio"), ("exif", "exif")):
        rows = _rows(cat, f"SELECT * EXCLUDE (blake3) FROM {table} WHERE blake3 = ?", [h]) if h else []
        info[key] = rows[0] if rows else None
    info["streams"] = _rows(cat, "SELECT * EXCLUDE (blake3) FROM streams WHERE blake3 = ? ORDER BY stream_index",
                            [h]) if h else []
    # Its sidecars with what they say, or why they could not be read (malformed XML).
    # (`path_bytes`: its exact bytes, as for the copies.)
    info["sidecars"] = _rows(cat, """
        SELECT l.sidecar_path AS path, f.path_bytes, s.* EXCLUDE (blake3),
               (SELECT string_agg(e.message, '; ') FROM meta_errors e WHERE e.blake3 = l.sidecar_blake3) AS error
        FROM sidecar_links l JOIN files f ON f.media_id = l.sidecar_id
        LEFT JOIN sidecars s ON s.blake3 = l.sidecar_blake3 WHERE l.media_id = ? ORDER BY f.path_bytes""",
        [found[0]["media_id"]])
    for sc in info["sidecars"]:
        sc["path_bytes"] = bytes(sc["path_bytes"])
    # A sidecar itself: what it says, and the files it describes.
    parsed = _rows(cat, "SELECT * EXCLUDE (blake3) FROM sidecars WHERE blake3 = ?", [h]) if h else []
    info["sidecar"] = parsed[0] if parsed else None
    described = _rows(cat, "SELECT f.path, f.path_bytes FROM sidecar_links l JOIN files f USING (media_id) "
                           "WHERE l.sidecar_id = ? ORDER BY f.path_bytes", [found[0]["media_id"]])
    info["describes"] = [r["path"] for r in described]
    info["describes_bytes"] = [bytes(r["path_bytes"]) for r in described]
    # What the user attached to it: tags (with where each came from), the manual
    # collections it is in, and the smart ones its row matches now.
    mid = found[0]["media_id"]
    info["tags"] = _rows(cat, "SELECT tag, source, added_at FROM tags WHERE media_id = ? ORDER BY tag", [mid])
    info["collections"] = _rows(cat, """
        SELECT c.name, c.kind FROM collection_items i JOIN collections c USING (collection_id)
        WHERE i.media_id = ? ORDER BY c.name""", [mid]) + _smart_of(cat, mid)
    info["errors"] = _rows(cat, """
        SELECT 'extract' AS step, stage, message, logged_at FROM meta_errors WHERE blake3 = ?
        UNION ALL
        SELECT 'scan', stage, message, logged_at FROM scan_errors WHERE path_bytes = ?
        ORDER BY logged_at""", [h or "", path_bytes])
    return info
