"""Terminal output: the machine formats (JSON, CSV) and plain text; the progress bars and
tables, drawn with rich, are in `richout`, loaded only when one is shown."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
import struct
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any, Protocol

from ..errors import printable, raw_b64

if TYPE_CHECKING:
    import pyarrow as pa


def counted(n: int, noun: str) -> str:
    """`1 file`, `2 files`, `1,000 files`: a count with its noun in the right number."""
    return f"{n:,} {noun if n == 1 else noun + 's'}"


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


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


def decimal_text(v: decimal.Decimal) -> str:
    """A DECIMAL as CSV and tables show it: the value JSON gets (`_decimal`), in digits
    (0.00001, where a float is written 1e-05)."""
    got = _decimal(v)
    if isinstance(got, float):
        return format(decimal.Decimal(repr(got)), "f")
    return format(v, "f") if isinstance(got, str) and v.is_finite() else str(got)


def _values(col: pa.Array) -> list[Any]:
    """A column's Python values. DuckDB's infinite dates and timestamps (and others past
    year 9999) have no Python form: they become text, `infinity` or the ISO value."""
    import pyarrow as pa  # noqa: PLC0415 - loaded already by whoever made the column

    try:
        if pa.types.is_float32(col.type):  # 0.1 as 0.1, not its double 0.10000000149011612
            return [None if v is None else _shortest_float32(v) for v in col.to_pylist()]
        if isinstance(col.type, pa.JsonType):  # a UHUGEINT in a list or struct, as its digits: the exact integer
            return [None if v is None else json.loads(v) for v in col.storage.to_pylist()]
        if pa.types.is_nested(col.type) and ("float" in str(col.type) or "arrow.json" in str(col.type)):
            # FLOATs or such numbers inside: built from its children
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
        try:
            got = struct.pack("<f", short)
        except OverflowError:
            # Just past the largest FLOAT (3.4028235e38 for 3.4028234663852886e38): it
            # rounds to it, unless a half step or more beyond it.
            got = struct.pack("<f", math.copysign(_FLT_MAX, short)) if abs(short) < _FLT_ROUNDS_UP else b""
        if got == want:
            return short
    return v


_FLT_MAX = 3.4028234663852886e38
_FLT_ROUNDS_UP = 3.4028235677973366e38  # FLT_MAX and half a step: from here on, infinity


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
    """ISO 8601 text of a date or timestamp outside Python's years 1..9999 (DuckDB reaches
    year 294247, and 290309 BC), in the proleptic Gregorian calendar with a year 0 (1 BC,
    so 44 BC is -0043), the year at least four digits after its sign; a time as
    `datetime.isoformat` writes one (no fraction when it is zero)."""
    import pyarrow as pa  # noqa: PLC0415

    unit = "D" if pa.types.is_date32(typ) else "ms" if pa.types.is_date64(typ) else typ.unit
    zone = ""
    if getattr(typ, "tz", None):  # a TIMESTAMPTZ: in the session's zone, as nearer ones show
        offset = _far_offset(typ.tz, n // (_PER_DAY[unit] // 86_400))
        n += offset * (_PER_DAY[unit] // 86_400)
        zone = f"{'-' if offset < 0 else '+'}{abs(offset) // 3600:02d}:{abs(offset) // 60 % 60:02d}" + (
            f":{abs(offset) % 60:02d}" if offset % 60 else "")  # as `isoformat` writes an offset
    days, rest = divmod(n, _PER_DAY[unit])
    y, m, d = _civil(days)
    text = f"{'-' if y < 0 else ''}{abs(y):04d}-{m:02d}-{d:02d}"
    if unit == "D":
        return text
    digits = _DIGITS[unit]
    secs, frac = divmod(rest, 10**digits)
    text += f"T{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"
    if frac and digits < 6:  # milliseconds as microseconds, as a datetime shows them
        frac, digits = frac * 10 ** (6 - digits), 6
    return text + (f".{frac:0{digits}d}" if frac else "") + zone


def _far_offset(tz: str, seconds: int) -> int:
    """The UTC offset, in seconds, of the zone `tz` (a name or `+05:30`) at an instant
    (seconds since the epoch, UTC) that Python's datetime cannot show in that zone: taken
    at the same time of a year it can, with the same calendar (the Gregorian calendar
    repeats every 400 years, so rules such as "the second Sunday of March" fall alike):
    years 2400-2799 for later ones, as the zone's rules carry on, years 400-799 for earlier
    ones, before any zone kept its offsets (its local mean time). 0 when the zone is not
    known here."""
    from datetime import datetime, timedelta, timezone  # noqa: PLC0415

    days, secs = divmod(seconds, 86_400)
    y, m, d = _civil(days)
    alike = 2400 + y % 400 if y >= 2400 else 400 + y % 400 if y < 400 else y
    try:
        from zoneinfo import ZoneInfo  # noqa: PLC0415

        zone = ZoneInfo(tz) if tz[:1] not in "+-" else datetime.strptime(tz.replace(":", ""), "%z").tzinfo
        got = (datetime(alike, m, d, tzinfo=timezone.utc) + timedelta(seconds=secs)).astimezone(zone).utcoffset()
    except (ValueError, OverflowError, KeyError, OSError, ImportError):
        return 0
    return int(got.total_seconds()) if got is not None else 0


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
        return stamps.to_pylist()
    return [None if v is None else plain(v) for v in _values(col)]


def _iso_stamps(col: pa.Array) -> pa.Array | None:
    """A TIMESTAMP column (microseconds, no zone) or a DATE column as `isoformat` writes
    each value, made by Arrow rather than one datetime at a time (a string array); None
    for other columns, and for years outside 1000..9999, which `_values` handles."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.compute as pc  # noqa: PLC0415

    t = col.type
    day = pa.types.is_date32(t)
    if not (day or (pa.types.is_timestamp(t) and t.unit == "us" and t.tz is None)):
        return None
    if col.null_count < len(col):
        lo, hi = pc.min_max(col).values()
        try:
            if lo.as_py().year < 1000 or hi.as_py().year > 9999:
                return None
        except (OverflowError, ValueError):  # past what Python's datetime holds (infinity)
            return None
    if day:  # (1000-01-01 to 9999-12-31: four digits of year, as isoformat writes them)
        return col.cast(pa.string())
    # Arrow's text of a timestamp has its microseconds, after a space: isoformat puts a T
    # there, and leaves them out when they are all zero. (A cast: strftime took 30 times
    # as long.)
    text = pc.replace_substring(col.cast(pa.string()), " ", "T", max_replacements=1)
    return pc.replace_substring_regex(text, r"\.000000$", "")


_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode


def write_json(data: pa.Table | Rows, out: IO[str]) -> None:
    """A JSON array of row objects, written batch by batch as they come; a name the result
    gives twice is made unique (see `unique_names`). Each batch is made in Arrow, column
    by column, as `json.dumps` writes each value (a million rows one at a time took 18 s)."""
    import pyarrow.compute as pc  # noqa: PLC0415

    out.write("[")
    first = True
    keys: list[str] | None = None

    def objects(batch: pa.RecordBatch) -> str:
        if not keys:  # no column: an empty object a row
            return ",\n  ".join(["{}"] * batch.num_rows)
        pairs = [pc.binary_join_element_wise(k, _json_cells(c), "") for k, c in zip(keys, batch.columns)]
        fields = pc.binary_join_element_wise(*pairs, ", ") if len(pairs) > 1 else pairs[0]
        return _joined(pc.binary_join_element_wise("{", fields, "}", ""), ",\n  ")

    for batch in batches_of(data):
        if keys is None:
            keys = [_JSON(n) + ": " for n in unique_names(batch.schema.names)]
        for text in _in_parts(batch, objects):
            out.write(("\n  " if first else ",\n  ") + text)
            first = False
    out.write("\n]\n" if not first else "]\n")


def _joined(texts: pa.Array, separator: str) -> str:
    """The texts of an Arrow string array (no NULL) joined by `separator`, built in Arrow:
    each with the separator after it, then the buffer read whole, less the last one."""
    import pyarrow.compute as pc  # noqa: PLC0415

    ended = pc.binary_join_element_wise(texts, "", separator)
    _, offsets, data = ended.buffers()
    at = memoryview(offsets).cast("i")
    first, last = at[ended.offset], at[ended.offset + len(ended)]
    return memoryview(data)[first:last].tobytes().decode("utf-8")[:-len(separator)]


# Characters `json.dumps` writes escaped, besides the quote and the backslash: the C0
# controls (as \n, \t..., else \u00XX).
_JSON_CONTROLS = "[\x00-\x1f]"


def _json_cells(col: pa.Array) -> pa.Array:
    """Each value of a column as JSON text, as `json.dumps` writes it inside an object
    (`null` for NULL): integers, booleans and text in Arrow, other values one at a time."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.compute as pc  # noqa: PLC0415

    t = col.type
    if pa.types.is_integer(t):
        cells = col.cast(pa.string())
    elif pa.types.is_boolean(t):
        cells = pc.if_else(col, "true", "false")
    elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        text = col.cast(pa.string())
        escaped = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '\\"')
        cells = pc.binary_join_element_wise('"', escaped, '"', "")
        controls = pc.fill_null(pc.match_substring_regex(text, _JSON_CONTROLS), False)
        if pc.any(controls).as_py():  # (rare: a line break in a name) these as json.dumps writes them
            odd = pc.filter(text, controls).to_pylist()
            cells = pc.replace_with_mask(cells, controls, pa.array([_JSON(v) for v in odd], pa.string()))
    elif (stamps := _iso_stamps(col)) is not None:  # (digits, dashes, colons, a T and a dot: nothing to escape)
        cells = pc.binary_join_element_wise('"', stamps, '"', "")
    elif pa.types.is_float64(t):
        cells = _doubles(col, lambda v: _JSON(plain(v)))
    else:
        cells = pa.array(["null" if v is None else _JSON(v) for v in _plain_column(col)], pa.string())
    return cells.fill_null("null")


def _doubles(col: pa.Array, other: Callable[[float], str]) -> pa.Array:
    """A DOUBLE column as text, each finite value as Python's `repr` writes it (as CSV and
    JSON have it), `other(v)` for NaN and the infinities; NULL stays NULL. Arrow writes
    the same shortest digits, but turns to an exponent elsewhere (`1e+15`, `1.5e-7`) and
    leaves `.0` off: its text is taken where it has a point and no exponent and `repr`
    would write none either (1e-4 <= |v| < 1e16), the rest one value at a time (a
    million values one at a time took 1.8 s)."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.compute as pc  # noqa: PLC0415

    text = col.cast(pa.string())
    size = pc.abs(col)
    arrows = pc.and_(pc.and_(pc.greater_equal(size, 1e-4), pc.less(size, 1e16)),
                     pc.and_(pc.match_substring(text, "."), pc.invert(pc.match_substring(text, "e"))))
    redo = pc.invert(pc.fill_null(arrows, True))  # (NULL: left as it is)
    if not pc.any(redo).as_py():
        return text
    values = pc.filter(col, redo).to_pylist()
    return pc.replace_with_mask(text, redo, pa.array([repr(v) if math.isfinite(v) else other(v) for v in values],
                                                     pa.string()))


def _cell(v: Any) -> Any:
    """A CSV cell: lists and structs as JSON text, everything else as it is."""
    return json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v


def path_fields(key: str, raw: bytes) -> dict[str, Any]:
    """`key`: a path as text (U+FFFD for bytes that are not UTF-8), and `key_raw`: its
    exact bytes, base64 as `plain` gives BLOBs, when the text cannot hold them (else null),
    as `query` rows carry `path` and `path_raw`."""
    return {key: raw.decode("utf-8", "replace"), f"{key}_raw": raw_b64(raw)}


def _texts(t: pa.DataType) -> bool:
    """Whether a column's values are text (also an ENUM's, a dictionary of text)."""
    import pyarrow as pa  # noqa: PLC0415

    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def write_csv(data: pa.Table | Rows, out: IO[str]) -> None:
    """A header line, then a line per row, written batch by batch as they come. NULL is
    an empty cell (in a one-column result `""`: no line is blank), an empty text or BLOB
    `""`; booleans `true` and `false`, as in JSON. A cell holding a comma, a quote or a
    line break is quoted, its quotes doubled (as Python's csv module writes it). Each
    batch is made in Arrow, column by column: a million rows took 15 s one row at a time."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.compute as pc  # noqa: PLC0415

    rows = batches_of(data)
    names = rows.schema.names
    out.write(",".join(_csv_cells(pa.array(names, pa.string())).to_pylist()) + "\n")
    if not names:  # no column: a line per row, as the csv module writes none
        for batch in rows:
            out.write("\n" * batch.num_rows)
        return
    null = '""' if len(names) == 1 else ""  # (a blank line would be a lost row to many readers)

    def lines(batch: pa.RecordBatch) -> str:
        cells = [_csv_cells(c).fill_null(null) for c in batch.columns]
        return _joined(pc.binary_join_element_wise(*cells, ",") if len(cells) > 1 else cells[0], "\n") + "\n"

    for batch in rows:
        for text in _in_parts(batch, lines):
            out.write(text)


# The most bytes of values one text is built from, unless they are one row's: its text
# (a BLOB's escapes take four characters a byte) and the Python objects made on the way
# stay a few hundred megabytes, where a batch of 20,000 big cells (files read whole by
# `read_blob`) is gigabytes.
_PART_BYTES = 32 << 20


def _in_parts(batch: pa.RecordBatch, build: Callable[[pa.RecordBatch], str]) -> Iterator[str]:
    """`build` of a batch with rows, or of its halves (and theirs) where it holds more
    than `_PART_BYTES`, or where one text would pass the 2 GiB an Arrow string array
    holds (cells of tens of megabytes)."""
    import pyarrow as pa  # noqa: PLC0415

    if not batch.num_rows:
        return
    halves = batch.num_rows > 1 and batch.nbytes > _PART_BYTES
    if not halves:
        try:
            text = build(batch)
        except (pa.ArrowCapacityError, pa.ArrowInvalid):
            if batch.num_rows < 2:
                raise
            halves = True
    if halves:
        half = batch.num_rows // 2
        yield from _in_parts(batch.slice(0, half), build)
        yield from _in_parts(batch.slice(half), build)
        return
    yield text


# A cell the csv module quotes: one holding the delimiter, the quote or a line break.
_CSV_QUOTED = '[,"\r\n]'


def _csv_cells(col: pa.Array) -> pa.Array:
    """A column's CSV cells as text, quoted where they must be, NULL where the value is."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.compute as pc  # noqa: PLC0415

    t = col.type
    if pa.types.is_boolean(t):
        return pc.if_else(col, "true", "false")
    if pa.types.is_integer(t):
        return col.cast(pa.string())
    if _texts(t) or pa.types.is_string_view(t):
        text = col.cast(pa.string())
    elif pa.types.is_decimal(t):
        text = pa.array([None if v is None else decimal_text(v) for v in col.to_pylist()], pa.string())
    elif pa.types.is_float64(t):
        text = _doubles(col, plain)
    else:
        stamps = _iso_stamps(col)
        if stamps is not None:
            return stamps
        values = [_cell(v) for v in _plain_column(col)] if _may_nest(t) else _plain_column(col)
        text = pa.array([v if v is None or isinstance(v, str) else "true" if v is True else "false" if v is False
                         else str(v) for v in values], pa.string())
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
    text = pc.if_else(pc.match_substring_regex(text, _CSV_QUOTED), quoted, text)
    return pc.if_else(pc.equal(text, ""), '""', text)  # an empty text apart from NULL


def _may_nest(t: pa.DataType) -> bool:
    """Whether a column's values can be lists or dicts (which a CSV cell holds as JSON)."""
    import pyarrow as pa  # noqa: PLC0415

    flat = (pa.types.is_timestamp, pa.types.is_date, pa.types.is_time, pa.types.is_binary, pa.types.is_large_binary,
            pa.types.is_fixed_size_binary, pa.types.is_floating, pa.types.is_decimal, pa.types.is_duration)
    return not (_simple(t) or any(f(t) for f in flat))


# The most characters of one value a table shows: laying out a longer one costs time
# that grows with the square of its length (10 MB: minutes), and no terminal shows it.
_CELL_MAX = 2000


def _table_cell(v: Any) -> str:
    if isinstance(v, bool):  # as CSV and JSON write it (and DuckDB shows it), not Python's True
        return "true" if v else "false"
    text = "" if v is None else decimal_text(v) if isinstance(v, decimal.Decimal) else str(_cell(plain(v)))
    if len(text) <= _CELL_MAX:
        return text
    return f"{text[:_CELL_MAX]}… ({len(text) - _CELL_MAX:,} more characters: use --format csv or json)"


# The narrowest a table cell may get before the table is printed one record at a time
# instead (as `psql -x`): rich would squeeze every column to nothing and print empty boxes.
_MIN_CELL = 6


def _print_expanded(names: list[str], rows: list[dict[str, Any]], title: str | None, width: int) -> None:
    """Each row as `column | value` lines under a `-[ RECORD n ]-` rule."""
    names = [printable(n) for n in names]
    # Every value under the one before it, on a narrow terminal too (its lines wrap);
    # only names of over 40 characters, or a third of a wide terminal, stick out.
    pad = min(max(map(len, names), default=0), max(width // 3, 40))
    lines = [printable(title)] if title else []
    for count, row in enumerate(rows, 1):
        lines.append(f"-[ RECORD {count} ]" + "-" * max(0, min(width, 40) - 13 - len(str(count))))
        for name, v in zip(names, row.values()):
            lines.append(f"{name.ljust(pad)} | {printable(_table_cell(v))}")
    if not rows:
        lines.append(f"(0 rows of {len(names)} columns: {', '.join(names)})")
    sys.stdout.write("\n".join(lines) + ("\n" if lines else ""))


def dump_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(plain(obj), indent=2, ensure_ascii=False) + "\n")


class _NoBar:
    """The progress bar of a run that shows none (`--json`, `-q`, output not a terminal):
    it draws nothing and loads no rich."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, p: Any) -> None:
        pass

    def step(self, done: int, total: int, errors: int) -> None:
        pass


def ScanProgressBar(enabled: bool) -> Any:  # noqa: N802 - used as the class it hands out
    """The scan's progress bar on stderr (see `richout.ScanProgressBar`), or none."""
    if not enabled:
        return _NoBar()
    from .richout import ScanProgressBar as bar

    return bar(enabled)


def ExtractProgressBar(enabled: bool, label: str, what: str = "errors") -> Any:  # noqa: N802
    """Files done of files to extract (see `richout.ExtractProgressBar`), or none."""
    if not enabled:
        return _NoBar()
    from .richout import ExtractProgressBar as bar

    return bar(enabled, label, what)


def IndexProgressBar(enabled: bool) -> Any:  # noqa: N802
    """A search index update's progress (see `richout.IndexProgressBar`), or none."""
    if not enabled:
        return _NoBar()
    from .richout import IndexProgressBar as bar

    return bar(enabled)


def print_info(info: dict[str, Any]) -> None:
    from .richout import print_info as show

    show(info)


def print_table(data: pa.Table | Rows, title: str | None = None, limit: int = 1000,
                hide: tuple[str, ...] = (), exact: tuple[str, ...] = ()) -> None:
    from .richout import print_table as show

    show(data, title, limit, hide, exact)


def print_records(rows: list[dict[str, Any]], title: str, byte_cols: tuple[str, ...] = ("bytes",)) -> None:
    from .richout import print_records as show

    show(rows, title, byte_cols)
