"""Terminal output: the scan progress bar, tables, and machine formats."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import decimal
import errno
import json
import math
import os
import signal
import struct
import sys
import time
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import IO, TYPE_CHECKING, Any, Protocol

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, Task, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from ..errors import path_text, printable

if TYPE_CHECKING:
    import pyarrow as pa

    from ..scan import ScanProgress

class _Console(Console):
    def on_broken_pipe(self) -> None:
        """The reader of our output left (`| head`): rich would exit 1 on the spot; this
        lets the command line end with 0, as for any other output."""
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, "the reader of the output left")


err_console = _Console(stderr=True)
out_console = _Console()
# A progress bar on fewer columns would wrap, and each frame left its wrapped rows behind.
BARS_FIT = err_console.width >= 20
for _c in (err_console, out_console):
    if _c.width < 20:  # COLUMNS=0 or 5: rich would print empty boxes, or nothing
        _c.width = 80


def shown(value: Any) -> Text:
    """A value for a table cell or header: plain text, never rich markup (a file named
    `[red]x.jpg` is shown as named), with control characters escaped (`\\x1b`, `\\n`) so a
    name cannot move the cursor, clear the screen or split its row."""
    return Text(printable(value if isinstance(value, str) else str(value)))


def counted(n: int, noun: str) -> str:
    """`1 file`, `2 files`, `1,000 files`: a count with its noun in the right number."""
    return f"{n:,} {noun if n == 1 else noun + 's'}"


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


class _Rates(ProgressColumn):
    def render(self, task: Task) -> Text:
        f = task.fields
        secs = max(f.get("elapsed", 0.0), 1e-6)
        return Text(f"{f.get('files', 0):,} files  {f.get('files', 0) / secs:,.0f} files/s  "
                    f"{f.get('bytes', 0) / secs / 1e6:,.1f} MB/s", style="progress.data.speed")


class _Bar:
    """A rich progress bar on stderr, as a context. A Ctrl-C that lands while the bar
    starts (rich has hidden the cursor and started its drawing thread) stops it before
    going on: the terminal gets its cursor back, and no frame is drawn after the error."""

    progress: Progress

    def __enter__(self) -> Any:
        # Ctrl-C is held back while rich starts (a KeyboardInterrupt inside it left its
        # drawing thread running and the cursor hidden), and taken once it has.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            self.progress.__enter__()
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
            return self
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
            self.progress.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)


class ScanProgressBar(_Bar):
    """A rich progress bar fed by `ScanProgress` snapshots (drawn on stderr)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled = enabled and BARS_FIT
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<9}"),
            BarColumn(bar_width=24),
            _Rates(),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
            disable=not enabled,
        )
        self.task = self.progress.add_task("walk", total=None, files=0, bytes=0, elapsed=0.0)
        self.walk_ended = 0.0  # elapsed s at the last update before the hash phase

    def update(self, p: ScanProgress) -> None:
        if p.phase in ("hash", "write", "done") and p.hash_phase_bytes:
            # During the hash phase the bar is its bytes hashed of its bytes to hash, so the
            # ETA is real. What was hashed during the walk (files under 1 MiB: see
            # `INLINE_MAX` in rust/core/src/scan.rs) is done by then and counted out.
            files = max(0, p.hash_files_done - (p.hash_files_total - p.hash_phase_files))
            done = max(0, p.hash_bytes_done - (p.hash_bytes_total - p.hash_phase_bytes))
            self.progress.update(self.task, description=p.phase, total=p.hash_phase_bytes, completed=done,
                                 files=files, bytes=done, elapsed=p.elapsed - self.walk_ended)
        else:
            # The walk hashes small files as it lists them.
            self.walk_ended = p.elapsed
            what = "walk+hash" if p.phase == "walk" and p.hash_files_done else p.phase
            self.progress.update(self.task, description=what, total=None, completed=0,
                                 files=p.files, bytes=p.bytes, elapsed=p.elapsed)


class ExtractProgressBar(_Bar):
    """Files done of files to extract, with files/s and an ETA (drawn on stderr)."""

    def __init__(self, enabled: bool, label: str, what: str = "errors") -> None:
        enabled = enabled and BARS_FIT
        self.progress = Progress(
            SpinnerColumn(), TextColumn(f"{label:<8}"), BarColumn(bar_width=24),
            # The count as text: the total is unknown (None) until the files to do are
            # listed, and a format spec on None fails as the bar draws.
            TextColumn("{task.fields[count]}  {task.fields[rate]:,.0f} files/s  {task.fields[errors]:,} " + what,
                       style="progress.data.speed"),
            TimeRemainingColumn(), console=err_console, transient=True, disable=not enabled,
        )
        self.task = self.progress.add_task(label, total=None, rate=0.0, errors=0, count="0 files")
        self.started = time.monotonic()

    def step(self, done: int, total: int, errors: int) -> None:
        """`update` from a count: for the steps of a dedupe or its undo."""
        self.update(SimpleNamespace(done=done, total=total, errors=errors, elapsed=time.monotonic() - self.started))

    def update(self, p: Any) -> None:
        count = f"{p.done:,} files" if p.total is None else f"{p.done:,}/{p.total:,} files"
        self.progress.update(self.task, total=p.total, completed=p.done, errors=p.errors, count=count,
                             rate=p.done / p.elapsed if p.elapsed > 0 else 0.0)


def print_info(info: dict[str, Any]) -> None:
    """`mediaforge info`: one section per table, empty fields left out."""
    def section(title: str, row: dict[str, Any] | None) -> None:
        if not row:
            return
        t = Table(title=shown(title), show_header=False, title_justify="left", box=None, padding=(0, 2))
        t.add_column(style="bold")
        t.add_column(overflow="fold")
        for k, v in row.items():
            if v is None or v == [] or k == "path_bytes":
                continue
            exact = row.get("path_bytes")
            if k in ("path", "dir", "name") and isinstance(exact, bytes):
                # The exact bytes: U+FFFD would hide which.
                v = path_text({"path": exact, "dir": os.path.dirname(exact), "name": os.path.basename(exact)}[k])
            t.add_row(shown(k), shown(human_bytes(v) if k == "size" else plain(v)))
        out_console.print(t)
        out_console.print()

    section("File", info["file"])
    section("Media", info["media"])
    for s in info["streams"]:
        section(f"Stream {s['stream_index']} ({s['type']})", s)
    section("Audio tags", info["audio_tags"])
    section("EXIF", info["exif"])
    if info.get("tags"):
        section("Tags", {t["tag"]: t["source"] for t in info["tags"]})
    if info.get("collections"):
        section("Collections", {c["name"]: c["kind"] for c in info["collections"]})
    for s in info["sidecars"]:
        section("Sidecar", s)
    section("Sidecar contents", info.get("sidecar"))
    if info.get("describes"):
        section("Describes", {str(i + 1): p for i, p in enumerate(info["describes"])})
    if info.get("thumbnail_file"):
        missing = " (missing: `mediaforge thumbs --missing-only` makes it again)" if info.get("thumbnail_missing") else ""
        section("Thumbnail", {"file": info["thumbnail_file"] + missing})
    if info["copies"]:
        section("Other copies", {str(i + 1): path_text(b) for i, b in enumerate(info["copies_bytes"])})
    for e in info["errors"]:
        section("Error", e)


def plain(v: Any) -> Any:
    """A JSON-friendly form of a value from the catalog. BLOBs become base64 text."""
    if isinstance(v, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(v)).decode("ascii")
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        return v.total_seconds()
    if isinstance(v, decimal.Decimal):
        return _decimal(v)
    # pyarrow loads on first use (a scan walks before it is loaded); no value is one of
    # its types before it is.
    pa = sys.modules.get("pyarrow")
    if pa is not None and isinstance(v, pa.MonthDayNano):  # an INTERVAL, as ISO 8601: P1M3DT0.5S
        secs = (decimal.Decimal(v.nanoseconds) / 10**9).normalize()
        return f"P{v.months}M{v.days}DT{secs:f}S"
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else "Infinity" if v > 0 else "-Infinity"
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v


def _decimal(v: decimal.Decimal) -> int | float | str:
    """A DECIMAL or HUGEINT exactly: an int when whole, a float when that is exact, else text."""
    if not v.is_finite():
        return str(v)
    if v == v.to_integral_value():
        return int(v)
    f = float(v)
    return f if decimal.Decimal(repr(f)) == v else str(v)


def _values(col: pa.Array) -> list[Any]:
    """A column's Python values. DuckDB's infinite dates and timestamps (and others past
    year 9999) have no Python form: they become text, `infinity` or the ISO value."""
    import pyarrow as pa  # noqa: PLC0415 - loaded already by whoever made the column

    try:
        if pa.types.is_float32(col.type):  # 0.1 as 0.1, not its double 0.10000000149011612
            return [None if v is None else _shortest_float32(v) for v in col.to_pylist()]
        if pa.types.is_nested(col.type) and "float" in str(col.type):  # FLOATs inside: built from its children
            return _nested_values(pa.concat_arrays([col]))
        return col.to_pylist()
    except (OverflowError, ValueError):
        if pa.types.is_nested(col.type):  # such a date inside a list, struct or map
            return _nested_values(pa.concat_arrays([col]))  # a copy from offset 0: children line up
        if not (pa.types.is_timestamp(col.type) or pa.types.is_date(col.type)):
            raise
    ints = col.cast(pa.int32() if pa.types.is_date32(col.type) else pa.int64()).to_pylist()
    top = 2**31 - 1 if pa.types.is_date32(col.type) else 2**63 - 1
    out: list[Any] = []
    for k, n in enumerate(ints):
        try:
            out.append(col[k].as_py())
        except (OverflowError, ValueError):
            out.append("infinity" if n >= top else "-infinity" if n <= -top else _far_iso(n, col.type))
    return out


def _shortest_float32(v: float) -> float:
    """The shortest decimal that reads back as the same 32-bit float (as DuckDB prints a
    FLOAT), as a Python float."""
    if not math.isfinite(v):
        return v
    want = struct.pack("<f", v)
    for digits in range(1, 10):
        short = float(f"{v:.{digits}g}")
        if struct.pack("<f", short) == want:
            return short
    return v


def _nested_values(col: pa.Array) -> list[Any]:
    """`_values` of a list, struct, map or union column, built from its children's."""
    import pyarrow as pa  # noqa: PLC0415

    t = col.type
    if pa.types.is_union(t):  # each row holds one member's value: the child its type code names
        child = {code: i for i, code in enumerate(t.type_codes)}
        kids = [_values(col.field(i)) for i in range(t.num_fields)]
        codes = col.type_codes.to_pylist()
        rows = range(len(col)) if t.mode == "sparse" else col.offsets.to_pylist()
        return [kids[child[c]][k] for c, k in zip(codes, rows)]
    valid = col.is_valid().to_pylist()
    if pa.types.is_struct(t):
        fields = [(t.field(i).name, _values(col.field(i))) for i in range(t.num_fields)]
        return [{name: vals[k] for name, vals in fields} if ok else None for k, ok in enumerate(valid)]
    if pa.types.is_fixed_size_list(t):
        n, vals = t.list_size, _values(col.values)
        return [vals[k * n:(k + 1) * n] if ok else None for k, ok in enumerate(valid)]
    offsets = col.offsets.to_pylist()
    if pa.types.is_map(t):
        keys, items = _values(col.keys), _values(col.items)
        return [list(zip(keys[a:b], items[a:b])) if ok else None for ok, a, b in zip(valid, offsets, offsets[1:])]
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        vals = _values(col.values)
        return [vals[a:b] if ok else None for ok, a, b in zip(valid, offsets, offsets[1:])]
    raise ValueError(f"no Python form for a column of type {t}")


_PER_DAY = {"D": 1, "s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}
_DIGITS = {"s": 0, "ms": 3, "us": 6, "ns": 9}


def _far_iso(n: int, typ: pa.DataType) -> str:
    """ISO 8601 text of a date or timestamp past Python's year 9999 (DuckDB reaches year
    294247), in the proleptic Gregorian calendar, written as numpy writes it."""
    import pyarrow as pa  # noqa: PLC0415

    unit = "D" if pa.types.is_date32(typ) else "ms" if pa.types.is_date64(typ) else typ.unit
    days, rest = divmod(n, _PER_DAY[unit])
    y, m, d = _civil(days)
    text = f"{y:04d}-{m:02d}-{d:02d}"
    if unit == "D":
        return text
    digits = _DIGITS[unit]
    secs, frac = divmod(rest, 10**digits)
    text += f"T{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"
    zone = "+00:00" if getattr(typ, "tz", None) else ""  # a TIMESTAMPTZ is UTC, as nearer ones show
    return text + (f".{frac:0{digits}d}" if digits else "") + zone


def _civil(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a count of days since 1970-01-01, for any year: the
    Gregorian calendar repeats every 400 years (146,097 days), counted from 1 March."""
    era, doe = divmod(days + 719_468, 146_097)
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, doy - (153 * mp + 2) // 5 + 1


class Rows(Protocol):
    """What the writers below read: a schema, then record batches, read once (a
    `catalog.query.QueryResult` streaming from DuckDB, or `batches_of(table)`)."""

    schema: pa.Schema

    def __iter__(self) -> Iterator[pa.RecordBatch]: ...


class _TableRows:
    def __init__(self, table: pa.Table) -> None:
        self.schema, self._table = table.schema, table

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        return iter(self._table.to_batches(max_chunksize=10_000))


def batches_of(data: pa.Table | Rows) -> Rows:
    """`data` as `Rows`: an Arrow table is cut into batches; a stream is itself."""
    return _TableRows(data) if hasattr(data, "to_batches") else data


def _dicts(batches: Iterator[pa.RecordBatch]) -> Iterator[dict[str, Any]]:
    """Each row as a dict of its columns, in order; a name the result gives twice (`SELECT
    1 AS a, 2 AS a`) is `a_2` the second time, so no column is lost."""
    names: list[str] | None = None
    for batch in batches:
        cols = [_values(c) for c in batch.columns]
        if names is None:
            names = unique_names(batch.schema.names)
        for i in range(batch.num_rows):
            yield {name: cols[j][i] for j, name in enumerate(names)}


def unique_names(names: list[str]) -> list[str]:
    """Column names with a name given twice made unique: `a`, then `a_2` (or the next
    `a_N` not already a column's name)."""
    taken = set(names)
    out: list[str] = []
    for n in names:
        if n in out:
            k = 2
            while f"{n}_{k}" in taken:
                k += 1
            n = f"{n}_{k}"
            taken.add(n)
        out.append(n)
    return out


def _simple(t: pa.DataType) -> bool:
    """A type whose Python values `plain` leaves as they are: cells taken whole."""
    import pyarrow as pa  # noqa: PLC0415 - loaded already by whoever made the column

    return (pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_string(t)
            or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def _plain_column(col: pa.Array) -> list[Any]:
    """`plain` of each of a column's values, column by column (a million rows of a dozen
    columns one cell at a time took half a minute)."""
    if _simple(col.type):
        return _values(col)
    stamps = _iso_stamps(col)
    if stamps is not None:
        return stamps
    return [None if v is None else plain(v) for v in _values(col)]


def _iso_stamps(col: pa.Array) -> list[str | None] | None:
    """A TIMESTAMP column (microseconds, no zone) as `datetime.isoformat` writes each
    value, made by Arrow rather than one datetime at a time; None for other columns, and
    for years outside 1000..9999, which `_values` handles."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.compute as pc  # noqa: PLC0415

    t = col.type
    if not (pa.types.is_timestamp(t) and t.unit == "us" and t.tz is None):
        return None
    if col.null_count < len(col):
        lo, hi = pc.min_max(col).values()
        try:
            if lo.as_py().year < 1000 or hi.as_py().year > 9999:
                return None
        except (OverflowError, ValueError):  # past what Python's datetime holds (infinity)
            return None
    # %S has the microseconds here; isoformat leaves them out when they are all zero.
    text = pc.replace_substring_regex(pc.strftime(col, format="%Y-%m-%dT%H:%M:%S"), r"\.000000$", "")
    return text.to_pylist()


_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode


def _json_column(col: pa.Array) -> list[str]:
    """Each value of a column as JSON text, as `json.dumps` writes it inside an object."""
    import pyarrow as pa  # noqa: PLC0415

    if not _simple(col.type):
        return ["null" if v is None else _JSON(v) for v in _plain_column(col)]
    values = _values(col)
    if pa.types.is_integer(col.type):
        return ["null" if v is None else str(v) for v in values]
    if pa.types.is_boolean(col.type):
        return ["null" if v is None else "true" if v else "false" for v in values]
    return ["null" if v is None else _JSON(v) for v in values]  # text


def write_json(data: pa.Table | Rows, out: IO[str]) -> None:
    """A JSON array of row objects, written batch by batch as they come; a name the result
    gives twice is made unique (see `unique_names`)."""
    out.write("[")
    first = True
    keys: list[str] | None = None
    for batch in batches_of(data):
        if keys is None:
            keys = [_JSON(n) + ": " for n in unique_names(batch.schema.names)]
        cols = [_json_column(c) for c in batch.columns]
        for cells in zip(*cols):
            out.write("\n  {" if first else ",\n  {")
            out.write(", ".join(k + v for k, v in zip(keys, cells)))
            out.write("}")
            first = False
    out.write("\n]\n" if not first else "]\n")


def _cell(v: Any) -> Any:
    """A CSV cell: lists and structs as JSON text, everything else as it is."""
    return json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v


def path_fields(key: str, raw: bytes) -> dict[str, Any]:
    """`key`: a path as text (U+FFFD for bytes that are not UTF-8), and `key_raw`: its
    exact bytes, base64 as `plain` gives BLOBs, when the text cannot hold them (else null),
    as `query` rows carry `path` and `path_raw`."""
    try:
        return {key: raw.decode("utf-8"), f"{key}_raw": None}
    except UnicodeDecodeError:
        return {key: raw.decode("utf-8", "replace"), f"{key}_raw": plain(raw)}


def write_csv(data: pa.Table | Rows, out: IO[str]) -> None:
    """A header line, then a line per row, written batch by batch as they come."""
    rows = batches_of(data)
    w = csv.writer(out, lineterminator="\n")  # None is written as an empty cell
    w.writerow(rows.schema.names)
    for batch in rows:
        cols = [[_cell(v) for v in _plain_column(c)] if _may_nest(c.type) else _plain_column(c) for c in batch.columns]
        w.writerows(zip(*cols))


def _may_nest(t: pa.DataType) -> bool:
    """Whether a column's values can be lists or dicts (which a CSV cell holds as JSON)."""
    import pyarrow as pa  # noqa: PLC0415

    flat = (pa.types.is_timestamp, pa.types.is_date, pa.types.is_time, pa.types.is_binary, pa.types.is_large_binary,
            pa.types.is_fixed_size_binary, pa.types.is_floating, pa.types.is_decimal, pa.types.is_duration)
    return not (_simple(t) or any(f(t) for f in flat))


def print_table(data: pa.Table | Rows, title: str | None = None, limit: int = 1000,
                hide: tuple[str, ...] = ()) -> None:
    """A rich table on stdout; long results are cut with a note on stderr (the rows past
    `limit` are counted, never held). `hide`: columns meant for scripts (ids, raw path
    bytes) that the table leaves out where present."""
    rows = batches_of(data)
    names = [n for n in rows.schema.names if n not in hide]
    batches = (b.select(names) if len(names) < b.num_columns else b for b in rows)
    width = out_console.width
    shown_rows: list[dict[str, Any]] = []
    dicts = _dicts(batches)
    for row in dicts:
        shown_rows.append(row)
        if len(shown_rows) >= limit:
            break
    # Printed before the rest is counted: a statement that fails further on has shown
    # its first rows.
    if len(names) * (_MIN_CELL + 3) + 1 > width:
        _print_expanded(names, shown_rows, title, width)
    else:
        t = Table(title=shown(title) if title else None, show_lines=False, header_style="bold")
        for name in names:
            t.add_column(shown(name), overflow="fold")
        for row in shown_rows:
            t.add_row(*[shown(_table_cell(v)) for v in row.values()])
        out_console.print(t)
    more = sum(1 for _ in dicts)  # the rest of the batch it was in
    more += sum(b.num_rows for b in batches)  # and the batches after it
    if more:
        err_console.print(f"[dim]{more:,} more rows not shown; use --format csv or --output[/]")


# The most characters of one value a table shows: laying out a longer one costs time
# that grows with the square of its length (10 MB: minutes), and no terminal shows it.
_CELL_MAX = 2000


def _table_cell(v: Any) -> str:
    text = "" if v is None else str(_cell(plain(v)))
    if len(text) <= _CELL_MAX:
        return text
    return f"{text[:_CELL_MAX]}… ({len(text) - _CELL_MAX:,} more characters: use --format csv or json)"


# The narrowest a table cell may get before the table is printed one record at a time
# instead (as `psql -x`): rich would squeeze every column to nothing and print empty boxes.
_MIN_CELL = 6


def _print_expanded(names: list[str], rows: list[dict[str, Any]], title: str | None, width: int) -> None:
    """Each row as `column | value` lines under a `-[ RECORD n ]-` rule."""
    names = [printable(n) for n in names]
    pad = min(max(map(len, names), default=0), width // 3)
    lines = [printable(title)] if title else []
    for count, row in enumerate(rows, 1):
        lines.append(f"-[ RECORD {count} ]" + "-" * max(0, min(width, 40) - 13 - len(str(count))))
        for name, v in zip(names, row.values()):
            lines.append(f"{name.ljust(pad)} | {printable(_table_cell(v))}")
    if not rows:
        lines.append(f"(0 rows of {len(names)} columns: {', '.join(names)})")
    sys.stdout.write("\n".join(lines) + ("\n" if lines else ""))


_NO_COMMAS = ("year", "id")


def print_records(rows: list[dict[str, Any]], title: str, byte_cols: tuple[str, ...] = ("bytes",)) -> None:
    """A small list of dicts as a table, with byte counts humanised."""
    if not rows:
        return
    t = Table(title=shown(title), header_style="bold", title_justify="left")
    cols = list(rows[0].keys())
    for c in cols:
        # Folded, never cut with an ellipsis, where a terminal is too narrow.
        t.add_column(shown(c), justify="right" if isinstance(rows[0][c], (int, float)) else "left", overflow="fold")
    for r in rows:
        t.add_row(*[shown(human_bytes(r[c]) if c in byte_cols and r[c] is not None else
                          ("" if r[c] is None else f"{r[c]:,}" if isinstance(r[c], int) and c not in _NO_COMMAS
                           else plain(r[c])))
                    for c in cols])
    # Into a file or a pipe the table takes the width it needs (up to 200 columns), not
    # the 80 rich assumes: a saved report keeps every date and status on one line.
    if out_console.is_terminal:
        out_console.print(t)
        return
    width = out_console.width
    out_console.width = max(width, 200)
    try:
        out_console.print(t)
    finally:
        out_console.width = width


def dump_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(plain(obj), indent=2, ensure_ascii=False) + "\n")
