"""Terminal output drawn with rich: progress bars and tables.

Loaded only by output meant for a person (a bar on a terminal, a table): rich takes
about 0.04 s of CPU to import, which `--json`, `-q` and the machine formats skip.
`render` hands these out.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import os
import sys
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, Task, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from ..errors import path_text, paths_apart, printable
from ..stop import Stop
from .render import _MIN_CELL, Rows, _dicts, _print_expanded, _table_cell, batches_of, human_bytes, plain

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


# The widest a table printed into a file or a pipe may grow: every line whole for `grep`,
# short of a width whose layout costs more than the rows (rich lays out each line).
_PIPED_MAX = 4000


def _piped() -> bool:
    """Output into a file or a pipe, with no width asked for (`COLUMNS`): lines are not
    folded at the 80 columns rich assumes, so a path or a digest stays whole on its line."""
    return not out_console.is_terminal and not os.environ.get("COLUMNS")


def _print_wide(renderable: Any) -> None:
    """Print at the terminal's width; into a file or a pipe, as wide as `renderable`
    needs (see `_piped`)."""
    if not _piped():
        out_console.print(renderable)
        return
    need = out_console.measure(renderable, options=out_console.options.update(max_width=_PIPED_MAX)).maximum
    saved = out_console.width
    out_console.width = max(saved, min(need, _PIPED_MAX))
    try:
        out_console.print(renderable)
    finally:
        out_console.width = saved


def shown(value: Any) -> Text:
    """A value for a table cell or header: plain text, never rich markup (a file named
    `[red]x.jpg` is shown as named), with control characters escaped (`\\x1b`, `\\n`) so a
    name cannot move the cursor, clear the screen or split its row."""
    return Text(_held(printable(value if isinstance(value, str) else str(value))))


def _held(text: str) -> str:
    """`text` as the standard output's encoding holds it: where that is not UTF (ASCII,
    Latin-1), what it cannot hold escaped before the table is measured, as the output
    would escape it (`\\u00fc`, see `cli._escape_what_stdout_cannot_hold`), so the
    columns line up."""
    enc = getattr(sys.stdout, "encoding", None) or "utf-8"
    if enc.lower().replace("-", "").startswith("utf") or text.isascii():
        return text
    try:
        text.encode(enc)
        return text
    except (UnicodeEncodeError, LookupError):
        pass
    for handler in ("mediaforge-u-escape", "backslashreplace"):
        with contextlib.suppress(LookupError, UnicodeError):
            return text.encode(enc, handler).decode(enc)
    return text



class _Rates(ProgressColumn):
    def render(self, task: Task) -> Text:
        f = task.fields
        secs = max(f.get("elapsed", 0.0), 1e-6)
        return Text(f"{f.get('files', 0):,} files  {f.get('files', 0) / secs:,.0f} files/s  "
                    f"{f.get('bytes', 0) / secs / 1e6:,.1f} MB/s", style="progress.data.speed")


class _Bar:
    """A rich progress bar on stderr, as a context. A Ctrl-C that lands while the bar
    starts (rich has hidden the cursor and started its drawing thread) or stops stops it
    before going on: the terminal gets its cursor back, and no frame is drawn after the
    error."""

    progress: Progress

    def __enter__(self) -> Any:
        # Ctrl-C is held back while rich starts (a KeyboardInterrupt inside it left its
        # drawing thread running and the cursor hidden), and taken once it has. Held back
        # by the handler, not by blocking the signal: the process's other threads (the
        # walk's, the Ctrl-C watcher) take it then, and Python runs its handler in this
        # thread all the same.
        with Stop() as stop:
            self.progress.__enter__()
        if stop.requested:
            self.__exit__()
            raise KeyboardInterrupt
        return self

    def __exit__(self, *exc: object) -> None:
        # And while it stops: a Ctrl-C inside rich's stop left the cursor hidden. One
        # that came meanwhile is taken once the terminal is back as it was, unless the
        # bar is stopping for an error (or that Ctrl-C) already.
        with Stop() as stop:
            self.progress.__exit__(None, None, None)
        if stop.requested and (not exc or exc[0] is None):
            raise KeyboardInterrupt


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



class IndexProgressBar(_Bar):
    """A search index update: documents staged (of those to stage, when known), then
    the commit (drawn on stderr)."""

    def __init__(self, enabled: bool) -> None:
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description:<8}"), BarColumn(bar_width=24),
            TextColumn("{task.fields[count]}  {task.fields[rate]:,.0f} files/s", style="progress.data.speed"),
            TimeRemainingColumn(), console=err_console, transient=True, disable=not (enabled and BARS_FIT),
        )
        self.task = self.progress.add_task("index", total=None, rate=0.0, count="0 files")

    def update(self, p: Any) -> None:
        """From a `search.IndexProgress`."""
        count = f"{p.done:,} files" if p.total is None else f"{p.done:,}/{p.total:,} files"
        rate = p.done / p.elapsed if p.elapsed > 0 else 0.0
        if p.phase == "commit":
            # No count of its own: its bar pulses (no total) until it ends. Reset, for a
            # bar that reached its total is drawn finished (no spinner) from then on.
            self.progress.reset(self.task, total=None, completed=0, description=p.phase, count=count, rate=rate)
        else:
            self.progress.update(self.task, description=p.phase, total=p.total, completed=p.done, count=count,
                                 rate=rate)


def print_info(info: dict[str, Any]) -> None:
    """`mediaforge info`: one section per table, empty fields left out."""
    def section(title: str, row: dict[str, Any] | None, shown_already: bool = False) -> None:
        """`shown_already`: the row's values are paths made text by `path_text` already."""
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
            elif k == "size":
                v = human_bytes(v)
            elif not shown_already:
                # A text as a name is shown (a backslash doubled): a tag's `C:\new` and
                # one holding a line break (`\n`) never look alike.
                v = cell_text(plain(v)) if isinstance(plain(v), str) else plain(v)
            t.add_row(shown(k), shown(v))
        _print_wide(t)
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
        s = dict(s)
        s["path"] = path_bytes = s.pop("path_bytes")
        s["path_bytes"] = path_bytes  # shown from its exact bytes, as a file's path is
        section("Sidecar", s)
    section("Sidecar contents", info.get("sidecar"))
    if info.get("describes"):
        section("Describes", {str(i + 1): path_text(b) for i, b in enumerate(info["describes_bytes"])}, True)
    if info.get("thumbnail_file"):
        missing = " (missing: `mediaforge thumbs --missing-only` makes it again)" if info.get("thumbnail_missing") else ""
        section("Thumbnail", {"file": info["thumbnail_file"] + missing}, True)
    if info["copies"]:
        section("Other copies", {str(i + 1): path_text(b) for i, b in enumerate(info["copies_bytes"])}, True)
    for e in info["errors"]:
        section("Error", e)



def print_table(data: pa.Table | Rows, title: str | None = None, limit: int = 1000,
                hide: tuple[str, ...] = (), exact: tuple[str, ...] = ()) -> None:
    """A rich table on stdout; long results are cut with a note on stderr (the rows past
    `limit` are counted, never held). `hide`: columns meant for scripts (ids, raw path
    bytes) that the table leaves out where present. `exact`: path columns the command
    itself paired with their exact bytes in `<name>_raw` (`path` and `path_raw`): shown
    from those bytes. Never a user's SQL result, whose `x_raw` may be anything."""
    rows = batches_of(data)
    names = [n for n in rows.schema.names if n not in hide]
    # A path beside its exact bytes is shown as `ls -b` shows it, from those bytes: two
    # names never look alike.
    paths = {n: f"{n}_raw" for n in exact if n in names and f"{n}_raw" in rows.schema.names}
    extra = [r for r in paths.values() if r not in names]
    picked = names + extra
    batches = (b.select(picked) if len(picked) < b.num_columns else b for b in rows)
    width = out_console.width
    shown_rows: list[dict[str, Any]] = []
    raws: dict[str, list[bytes | None]] = {}  # each path column's exact bytes, row by row
    more = 0
    for batch in batches:
        # Rows made into Python values only as far as the table shows them.
        take = min(batch.num_rows, limit - len(shown_rows))
        for row in _dicts(iter([batch.slice(0, take)])) if take else ():
            for n, v in row.items():  # every text shown as `ls -b` shows a name (see `cell_text`)
                if n in paths:
                    raws.setdefault(n, []).append(_path_bytes(v, row[paths[n]]))
                row[n] = _path_cell(v, row[paths[n]]) if n in paths else cell_text(v)
            for r in extra:
                del row[r]
            shown_rows.append(row)
        more += batch.num_rows - take
        if len(shown_rows) >= limit:
            break
    # Two paths that would look alike though their bytes differ (names that differ only in
    # how Unicode composes them) are spelled out.
    for n, column in raws.items():
        for row, raw, text in zip(shown_rows, column, paths_apart([r or b"" for r in column])):
            if raw is not None:
                row[n] = text
    # Printed before the rest is counted: a statement that fails further on has shown
    # its first rows.
    if len(names) * (_MIN_CELL + 3) + 1 > (_PIPED_MAX if _piped() else width):
        _print_expanded(names, shown_rows, title, width)
    else:
        t = Table(title=shown(title) if title else None, show_lines=False, header_style="bold")
        for name in names:
            t.add_column(shown(name), overflow="fold")
        for row in shown_rows:
            t.add_row(*[shown(_table_cell(v)) for v in row.values()])
        _print_wide(t)
    for b in batches:  # the batches after it, counted while someone reads the table
        if _reader_gone():  # `| head` took its lines and left: the count is for no one
            return
        more += b.num_rows
    if more:
        err_console.print(f"[dim]{more:,} more rows not shown; use --format csv or --output[/]")




def _reader_gone() -> bool:
    """Whether standard output is a pipe whose reader has closed it (a write would fail
    with EPIPE): `poll` says so at once, without writing."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & select.POLLERR for _fd, event in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no descriptor (a test's capture), or closed
        return False


def cell_text(v: Any) -> Any:
    """A text or bytes value of a table cell as `ls -b` shows a name (`path_text`): a
    backslash doubled, so that a name holding an ESC byte (`\x1b`) and one spelling those
    four characters out (`\\x1b`) never look alike. Other values as they are."""
    if isinstance(v, bytes):
        return path_text(v)
    return path_text(v.encode("utf-8", "surrogateescape")) if isinstance(v, str) else v


def _path_bytes(text: Any, raw: Any) -> bytes | None:
    """A path cell's exact bytes (`raw`: bytes, or base64 as JSON gives them; else the
    text's); None for a cell that holds no path."""
    if not isinstance(text, str):
        return None
    if isinstance(raw, str):
        with contextlib.suppress(ValueError):
            raw = base64.b64decode(raw, validate=True)
    return raw if isinstance(raw, bytes) else text.encode("utf-8", "surrogateescape")


def _path_cell(text: Any, raw: Any) -> Any:
    """A path for a table (`path_text`), from its exact bytes where the text cannot hold
    them (`raw`: bytes, or base64 as JSON gives them)."""
    exact = _path_bytes(text, raw)
    return text if exact is None else path_text(exact)


_NO_COMMAS = ("year", "id")


# A text column of `print_records` wider than this may fold onto more lines; narrower
# ones (and numbers, dates) are kept whole.
_FOLDED_OVER = 24


def print_records(rows: list[dict[str, Any]], title: str, byte_cols: tuple[str, ...] = ("bytes",)) -> None:
    """A small list of dicts as a table, with byte counts humanised."""
    if not rows:
        return
    import datetime

    cols = list(rows[0].keys())
    cells = [[human_bytes(r[c]) if c in byte_cols and r[c] is not None else
              ("" if r[c] is None else f"{r[c]:,}" if isinstance(r[c], int) and c not in _NO_COMMAS
               else str(plain(cell_text(r[c])))) for c in cols] for r in rows]
    # Into a file or a pipe the table takes the width it needs (up to 200 columns), not
    # the 80 rich assumes: a saved report keeps every date and status on one line. A
    # width asked for (`COLUMNS`) is kept, as the other tables keep it.
    width = max(out_console.width, 200) if _piped() else out_console.width
    # Numbers, dates and other short values are never broken across lines (`60,00` over
    # `0` reads as two numbers); long text (a folder) folds, never cut with an ellipsis.
    # Measured as shown (escaped for the output's encoding, `\xc9` for an `É` in ASCII).
    natural = [max([shown(c).cell_len] + [shown(row[i]).cell_len for row in cells]) for i, c in enumerate(cols)]
    # Folding: text (a folder, as text or as bytes), never a number, date or byte count.
    folds = [n > _FOLDED_OVER and c not in byte_cols
             and not any(isinstance(r[c], (int, float, datetime.date, datetime.time)) for r in rows)
             for c, n in zip(cols, natural)]
    least = sum(_FOLDED_OVER if f else n for f, n in zip(folds, natural)) + 3 * len(cols) + 1
    if least > width:
        # Too narrow for the table: one record at a time, as `query` does.
        _print_expanded([str(c) for c in cols], [dict(zip(cols, row)) for row in cells], title, width)
        return
    t = Table(title=shown(title), header_style="bold", title_justify="left")
    for c, n, fold in zip(cols, natural, folds):
        # Numbers to the right, judged by the first row that has a value (a scan still
        # running, or killed, has none yet).
        first = next((r[c] for r in rows if r[c] is not None), None)
        t.add_column(shown(c), justify="right" if isinstance(first, (int, float)) else "left",
                     overflow="fold", no_wrap=not fold, min_width=None if fold else n)
    for row in cells:
        t.add_row(*[shown(v) for v in row])
    saved = out_console.width
    out_console.width = width
    try:
        out_console.print(t)
    finally:
        out_console.width = saved


