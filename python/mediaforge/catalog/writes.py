"""The scan's writes to the catalog, each one transaction over an Arrow batch.

Order of a scan: `begin_scan` (a `scans` row marked running), any number of
`write_files` / `write_errors`, then `finish_scan`, which settles moves, marks what
vanished as missing, stamps `last_seen` on everything still present and closes the
`scans` row, all in one transaction. A scan that dies before `finish_scan` leaves only
whole batches behind; the next scan completes the work.
"""

from __future__ import annotations

import bisect
import json
import os
import stat
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb
import pyarrow as pa

from .media_tables import links_sql, twins_sql
from .schema import FILES_STORED
from .store import Catalog

# What a scan batch carries, by catalog column (`path_raw`: the raw bytes of a path that is
# not valid UTF-8; `path` is computed from `dir` and `name`, `path_bytes` from those and
# `path_raw`).
_BATCH_COLS = ("dir", "name", "ext", "size", "mtime_ns", "ctime_ns", "dev", "inode", "nlink", "kind", "mime",
               "blake3", "path_raw", "btime_ns")
# A new row's values after its media_id, in `FILES_STORED` order.
_INSERT_VALUES = (", ".join(_BATCH_COLS[:-2]) + ", 'present', $now, $now, NULL, $sid, $sid, path_raw, btime_ns")


# Rows per batch of the previous state's stream. Small: DuckDB grows each batch's Arrow
# buffers with the C library's realloc, and a batch of a row group (122,880 rows, 25 MB)
# came in fresh pages every time (about 50,000 page faults for a million rows, 0.12 CPU-s
# of a 1.3 s rescan). Buffers of 8,192 rows are reused from one batch to the next.
_PREVIOUS_BATCH_ROWS = 8192


def utcnow() -> datetime:
    """Naive UTC timestamp, as the catalog stores them."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


@contextmanager
def previous_state(cat: Catalog) -> Iterator[pa.RecordBatchReader]:
    """The rows the scan compares the disk against (missing ones too, so they can revive),
    as a stream to read inside the `with`: streamed, a million rows never sit in memory
    twice over (DuckDB's result and its Arrow copy) beside the walk that is already
    running. Media ids come as 16-byte UUIDs (DuckDB's lossless Arrow mode), not as text
    to parse. `btime_ns`, else `seen_ns` (when each row was last seen): for the core to
    tell a file made since (a reused inode number) from the one the row describes."""
    # Whether the scan that last found each row may have followed links (its path may run
    # through one): `-L` scans, and those from before schema 12, which did not say (as
    # `finish_scan` takes them). Their ids inline, as ranges (the old scans are one), a
    # function of each row, so the rows come in catalog order as without it (a join would
    # not promise that).
    spans = cat.con.execute("""
        SELECT min(scan_id), max(scan_id) FROM (
            SELECT scan_id, follow_links IS NOT false AS f,
                   row_number() OVER (ORDER BY scan_id) - row_number() OVER (PARTITION BY f ORDER BY scan_id) AS g
            FROM scans)
        WHERE f GROUP BY g ORDER BY 1""").fetchall()
    flag = " OR ".join(f"last_scan_id BETWEEN {int(lo)} AND {int(hi)}" for lo, hi in spans) or "false"
    cat.con.execute("SET arrow_lossless_conversion = true")
    reader = None
    try:
        reader = cat.con.sql(
            "SELECT path_bytes, dev, inode, size, mtime_ns, ctime_ns, nlink, blake3, media_id,"
            f" status = 'present' AS present, ({flag}) AS followed, epoch_ns(last_seen) AS seen_ns, btime_ns"
            " FROM files"
        ).to_arrow_reader(_PREVIOUS_BATCH_ROWS)
        yield reader
    finally:
        # A stream left half read (an error while it was read) would keep the database
        # open past the catalog's close, its log never folded in.
        if reader is not None:
            reader.close()
        try:
            cat.con.execute("RESET arrow_lossless_conversion")
        except duckdb.Error:
            pass  # closed already (a Ctrl-C during the walk): nothing is left to reset


def count_files(cat: Catalog) -> int:
    """The number of file rows, missing ones included (what `previous_state` streams)."""
    return int(cat.con.execute("SELECT count(*) FROM files").fetchone()[0])


def begin_scan(cat: Catalog, roots: Sequence[str], hashed: bool, follow_links: bool = False,
               roots_raw: Sequence[bytes] | None = None) -> int:
    """Record a new scan as running and return its id (`roots_raw`: the roots' exact
    bytes, in the order of `roots`)."""
    with cat.transaction() as con:
        (scan_id,) = con.execute("SELECT coalesce(max(scan_id), 0) + 1 FROM scans").fetchone()
        con.execute(
            "INSERT INTO scans (scan_id, started_at, status, roots, hashed, follow_links, roots_raw) "
            "VALUES (?, ?, 'running', ?, ?, ?, ?)",
            [scan_id, utcnow(), list(roots), hashed, follow_links,
             [bytes(r) for r in roots_raw] if roots_raw is not None else None],
        )
    return int(scan_id)


# The media files that sidecars the batch rewrites or moves describe where they were: their
# search documents took a date from them, and the links are gone once the rows change.
_OLD_LINKS = "SELECT DISTINCT media_id::VARCHAR FROM (" + links_sql(
    "SELECT media_id, path, blake3, dir, name, path_raw FROM files WHERE kind = 'sidecar' AND media_id IN "
    "(SELECT prev_media_id::UUID FROM mf_batch WHERE prev_media_id IS NOT NULL AND change <> 'touched')") + ")"


# The twins of the files the batch moves, at their old places (see `twins_sql`): a sidecar
# there that the moved file matched exactly describes them again.
_OLD_TWINS = twins_sql("SELECT prev_media_id::UUID FROM mf_batch WHERE change = 'moved'")


# Known rows the batch gives their first digest (found by a scan without hashing): for
# the pairing at the scan's end, as good as new (see `_pair_gone_before`).
_FIRST_HASHED = """
    SELECT b.prev_media_id FROM mf_batch b JOIN files f ON f.media_id = b.prev_media_id::UUID
    WHERE b.change = 'hashed' AND b.blake3 IS NOT NULL AND f.blake3 IS NULL
"""


@dataclass(frozen=True)
class Written:
    # The media ids of the media files that the sidecars the batch rewrote or moved
    # described at their old places (see `_OLD_LINKS`), and of the twins of the files it
    # moved there (`_OLD_TWINS`).
    described: list[str]
    # Known rows that got their first digest (see `_FIRST_HASHED`), when asked for.
    first_hashed: pa.ChunkedArray | None = None


def gone_with_digests(cat: Catalog) -> bool:
    """Whether the catalog holds missing rows with a digest that a scan which saw their disk
    found gone: only then can a scan's files take over rows gone before it
    (`_pair_gone_before`). Two lookups, not the pairing's joins: a scan asks at its start."""
    return bool(cat.con.execute(
        f"""SELECT EXISTS (SELECT 1 FROM meta WHERE starts_with(key, '{DISKS_SEEN}'))
              AND EXISTS (SELECT 1 FROM files WHERE status = 'missing' AND blake3 IS NOT NULL)""").fetchall()[0][0])


def write_files(cat: Catalog, batch: pa.RecordBatch, scan_id: int, first_hashed: bool = False) -> Written:
    """Insert new rows and update known ones (matched by `prev_media_id`), atomically.
    `first_hashed`: also tell the known rows the batch gives their first digest."""
    now = utcnow()
    known = batch.num_rows - batch.column("prev_media_id").null_count
    described: list[str] = []
    hashed: pa.ChunkedArray | None = None
    with cat.registered("mf_batch", batch), cat.transaction() as con:
        if known:
            if "sidecar" in batch.column("kind").unique().to_pylist():
                described = [r[0] for r in con.execute(_OLD_LINKS).fetchall()]
            changes = batch.column("change").unique().to_pylist()
            if first_hashed and "hashed" in changes:
                hashed = con.sql(_FIRST_HASHED).to_arrow_table().column(0)
            renamed = [r[0] for r in con.execute(_RENAMED).fetchall()] if "moved" in changes else []
            if "moved" in changes:
                described += [r[0] for r in con.execute(_OLD_TWINS).fetchall()]
            _update_known(con, now, scan_id)
            if renamed:
                _classify_renamed(con, renamed)
        if known < batch.num_rows:
            con.execute(
                f"""
                INSERT INTO files ({FILES_STORED})
                SELECT gen_random_uuid(), {_INSERT_VALUES}
                FROM mf_batch WHERE prev_media_id IS NULL
                """,
                {"now": now, "sid": scan_id},
            )
    return Written(described, hashed if hashed is not None and len(hashed) else None)


# A birth time the walk did not get (a file reached through a link by `-L`, a file given
# as a root) leaves the one known.
_BTIME = "btime_ns = coalesce(b.btime_ns, files.btime_ns)"


# A file moved unread (same inode, size and mtime) keeps the kind and MIME type its bytes
# told when it was read (its digest says it was): the walk judges an unread file by its
# name alone, and `song.mp3` renamed `song.jpg` is no picture.
_KEPT_BY_CONTENT = {c: f"{c} = CASE WHEN b.change = 'moved' AND files.blake3 IS NOT NULL THEN files.{c} ELSE b.{c} END"
                    for c in ("kind", "mime")}


# Files moved unread under another extension: the kind they keep was told by their bytes,
# or by their old name where the bytes said nothing (a text file named .jpg); which one,
# only their bytes tell again.
_RENAMED = """
    SELECT f.media_id FROM mf_batch b JOIN files f ON f.media_id = b.prev_media_id::UUID
    WHERE b.change = 'moved' AND f.blake3 IS NOT NULL AND lower(coalesce(f.ext, '')) <> lower(coalesce(b.ext, ''))"""


def _classify_renamed(con, ids: list) -> None:  # noqa: ANN001
    """Kind and MIME type again, from the first bytes and the new name, as a first scan
    would give them, of files renamed to another extension."""
    from .. import _core

    fixed: dict[str, list] = {"media_id": [], "kind": [], "mime": []}
    for media_id, path, name in con.execute(
            "SELECT media_id::VARCHAR, path_bytes, name FROM files WHERE media_id IN (SELECT unnest(?::UUID[]))",
            [ids]).fetchall():
        # One that cannot be read now is judged by its name, as a first scan would.
        head = _head(bytes(path))
        kind, mime = _core.classify(os.fsencode(name) if isinstance(name, str) else bytes(name), head,
                                    bytes(path) if head is not None else None)
        for column, value in (("media_id", media_id), ("kind", kind), ("mime", mime)):
            fixed[column].append(value)
    if fixed["media_id"]:
        con.register("mf_reclassified", pa.table(fixed))
        try:
            con.execute("UPDATE files SET kind = r.kind, mime = r.mime FROM mf_reclassified r "
                        "WHERE files.media_id = r.media_id::UUID")
        finally:
            con.unregister("mf_reclassified")


def _head(path: bytes) -> bytes | None:
    """The first bytes of the regular file at `path`, or None (gone, unreadable, or no
    longer a regular file: a FIFO put there is not waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, _HEAD_LEN) if stat.S_ISREG(os.fstat(fd).st_mode) else None
    except OSError:
        return None
    finally:
        os.close(fd)


# The first bytes a scan reads to tell a file's kind (the Rust core's HEAD_LEN).
_HEAD_LEN = 512


def _update_known(con, now: datetime, scan_id: int) -> None:  # noqa: ANN001
    sets = ", ".join(_BTIME if c == "btime_ns" else _KEPT_BY_CONTENT.get(c, f"{c} = b.{c}") for c in _BATCH_COLS)
    # 'touched': an unchanged file whose link count or change time moved; the rest of its
    # row (kind from magic bytes, digest) stands.
    for cols, which in ((sets, "<>"), (f"ctime_ns = b.ctime_ns, nlink = b.nlink, {_BTIME}", "=")):
        con.execute(
            f"""
            UPDATE files SET {cols},
                status = 'present', missing_since = NULL, last_seen = $now, last_scan_id = $sid
            FROM (SELECT * FROM mf_batch WHERE prev_media_id IS NOT NULL AND change {which} 'touched') AS b
            WHERE files.media_id = b.prev_media_id::UUID
            """,
            {"now": now, "sid": scan_id},
        )


def write_errors(cat: Catalog, batch: pa.RecordBatch, scan_id: int) -> None:
    """Append per-path errors."""
    with cat.registered("mf_errors", batch), cat.transaction() as con:
        con.execute(
            "INSERT INTO scan_errors SELECT $sid, $now, path, path_bytes, stage, message, errno FROM mf_errors",
            {"sid": scan_id, "now": utcnow()},
        )


@dataclass(frozen=True)
class FinishCounts:
    moved: int
    missing: int
    pruned: int
    # Of `moved`, those whose new row an earlier scan added (one cut short before it could
    # pair them): this scan counted them unchanged, not new.
    moved_earlier: int = 0
    # Of those, the ones whose new row this scan walked, and so counted unchanged (not
    # one the options left out, or outside its roots): what `unchanged` gives back.
    moved_earlier_walked: int = 0
    # The ids those earlier new rows had, now gone (the search index still holds them).
    retired: tuple[str, ...] = ()
    # Ids of rows gone before this scan that a file it found took over (`_pair_gone_before`,
    # `_back_at_their_path`).
    taken: tuple[str, ...] = ()
    # Of `moved`, rows whose bytes came back at their own path (`_back_at_their_path`):
    # revived, not moved.
    back: int = 0
    # --prune was asked for and held back: a folder under the roots could not be read.
    prune_held: bool = False
    # Missing rows under the roots a prune that ran left in place (see `prune_kept` in
    # `ScanSummary`).
    prune_kept: int = 0
    # Of `moved`, files whose bytes are not their row's (written to in place, then moved):
    # counted changed.
    edited: int = 0


def stored_dir_name(text: str) -> tuple[str, str]:
    """The folder and name the scan stores for a path (as text): a file in `/` has
    folder `/`."""
    folder, _, name = text.rpartition("/")
    return ((folder or "/") if text.startswith("/") else folder), name


def under_roots_sql(roots: Sequence[bytes]) -> tuple[str, list[bytes | str]]:
    """A predicate for "path_bytes is a root or below one", comparing raw bytes, so two
    folders whose names differ only in undecodable bytes are never confused.

    A path is stored as its folder and name (`path_bytes` is computed from them), so rows
    whose path is valid UTF-8 are judged on the stored `dir`, which is several times faster
    than building every path: a path lies below `base` exactly when its folder is `base` or
    lies below it (a name holds no '/'). Text compares bytewise, as blobs do. Rows with
    undecodable bytes compare their stored raw path."""
    parts: list[str] = []
    params: list[bytes | str] = []
    for r in roots:
        base = r.rstrip(b"/")
        # Below `base`: [base + '/', base + '0'), since '0' follows '/'.
        raw = "(path_raw = ? OR (path_raw >= ? AND path_raw < ?))"
        raw_params: list[bytes | str] = [base or b"/", base + b"/", base + b"0"]
        try:
            text = base.decode("utf-8")
        except UnicodeDecodeError:
            # Every path at or below an undecodable root is undecodable too.
            parts.append(f"(path_raw IS NOT NULL AND {raw})")
            params += raw_params
            continue
        folder, name = stored_dir_name(text)  # the root itself, as a file
        parts.append(f"(CASE WHEN path_raw IS NULL THEN dir = ? OR (dir >= ? AND dir < ?) OR (dir = ? AND name = ?) "
                     f"ELSE {raw} END)")
        params += [text, text + "/", text + "0", folder, name, *raw_params]
    return "(" + " OR ".join(parts or ["FALSE"]) + ")", params


# Past this many roots (`scan ~/Media/*`), "under a root" is a lookup in tables of the
# folders, files and undecodable paths the catalog holds under them, not an OR of a few
# comparisons per root evaluated on every row (3,000 roots made a rescan ten times slower).
_MANY_ROOTS = 8


def _outermost(roots: Sequence[bytes]) -> list[bytes]:
    """The roots that lie inside no other: what lies under those is under them all."""
    bases = sorted({r.rstrip(b"/") or b"/" for r in roots})
    have = set(bases)
    return [b for b in bases if not _has_ancestor(b, have)]


def _has_ancestor(path: bytes, bases: set[bytes]) -> bool:
    """Whether a folder above `path` (not `path` itself) is in `bases`."""
    cut = path.rfind(b"/")
    while cut > 0:
        path = path[:cut]
        if path in bases:
            return True
        cut = path.rfind(b"/")
    return cut == 0 and b"/" in bases and path != b"/"


def under_roots(con, roots: Sequence[bytes]) -> tuple[str, list[bytes | str]]:  # noqa: ANN001
    """`under_roots_sql` for the connection `con`: for many roots, the same predicate as
    lookups in temporary tables of what the catalog holds under them (made now: call it
    after the scan's rows are written)."""
    roots = _outermost(roots)
    if len(roots) <= _MANY_ROOTS:
        return under_roots_sql(roots)
    bases = set(roots)
    texts = set()
    for b in roots:
        try:
            texts.add(b.decode("utf-8"))
        except UnicodeDecodeError:
            pass
    dirs = [d for (d,) in con.execute("SELECT DISTINCT dir FROM files WHERE path_raw IS NULL").fetchall()
            if d in texts or _has_ancestor(d.encode("utf-8", "surrogatepass"), bases)]
    raws = [bytes(p) for (p,) in con.execute("SELECT DISTINCT path_raw FROM files WHERE path_raw IS NOT NULL")
            .fetchall() if bytes(p) in bases or _has_ancestor(bytes(p), bases)]
    files = sorted(t for t in texts if t != "/")  # any root may be a file: its folder and path
    for name, table in (
            ("mf_under_dirs", pa.table({"dir": pa.array(dirs, pa.string())})),
            ("mf_under_files", pa.table({"dir": pa.array([t.rpartition("/")[0] or "/" for t in files], pa.string()),
                                         "path": pa.array(files, pa.string())})),
            ("mf_under_raw", pa.table({"path_raw": pa.array(raws, pa.binary())}))):
        con.register("mf_under_src", table)
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM mf_under_src")
        finally:
            con.unregister("mf_under_src")
    return ("(CASE WHEN path_raw IS NULL THEN dir IN (SELECT dir FROM mf_under_dirs) "
            "OR (dir IN (SELECT dir FROM mf_under_files) AND path IN (SELECT path FROM mf_under_files)) "
            "ELSE path_raw IN (SELECT path_raw FROM mf_under_raw) END)"), []


# How the core's `ignore-file` error row of a folder it left as it was ends (its ignore
# file could not be read): the folder was not looked at.
IGNORE_FILE_HELD = "; its folder is left as it was"

# scan_errors stages of paths the walk could not look into: what the catalog knows below
# them is left as it was.
_HELD = "('walk', 'stat', 'vanished')"

# Missing rows holding a tag or a collection place that no present file with their content
# holds: what pruning them would lose.
_ONLY_HERE = """
CREATE OR REPLACE TEMP TABLE mf_only_here AS
WITH missing AS (SELECT media_id, blake3 FROM files WHERE status = 'missing'),
held AS (  -- (content, tag or collection) that present files hold
    SELECT DISTINCT f.blake3, 't:' || t.tag AS what FROM files f JOIN tags t USING (media_id)
    WHERE f.status = 'present' AND f.blake3 IS NOT NULL
    UNION SELECT DISTINCT f.blake3, 'c:' || c.collection_id FROM files f JOIN collection_items c USING (media_id)
    WHERE f.status = 'present' AND f.blake3 IS NOT NULL
),
theirs AS (
    SELECT m.media_id, m.blake3, 't:' || t.tag AS what FROM missing m JOIN tags t USING (media_id)
    UNION ALL
    SELECT m.media_id, m.blake3, 'c:' || c.collection_id FROM missing m JOIN collection_items c USING (media_id)
)
SELECT DISTINCT media_id FROM theirs x
WHERE NOT EXISTS (SELECT 1 FROM held h WHERE h.blake3 = x.blake3 AND h.what = x.what)
"""


def _name_key(t: str) -> str:
    """SQL for the file name of table alias `t` as pairing compares it: its exact bytes.
    `name` shows bytes that are not UTF-8 as U+FFFD, so two names that differ only there
    show alike: such a name is keyed by the hex of its bytes (after a `/`, which no name
    holds), cut from the raw path at its last `/` (0x2F, on a byte boundary). A name that
    is UTF-8 keeps its text as key, in whatever folder."""
    raw = f"regexp_extract(hex({t}.path_raw), '^(?:[0-9A-F][0-9A-F])*2F((?:[013-9A-F][0-9A-F]|2[0-9A-E])*)$', 1)"
    return (f"CASE WHEN {t}.path_raw IS NULL OR {raw} = hex(encode({t}.name)) THEN {t}.name "
            f"ELSE '/' || {raw} END")


# A vanished row's candidates: rows that appeared since it was last seen, present now.
_MOVE_OLD = f"""
    SELECT o.media_id AS old_id, o.first_seen AS old_first_seen, o.first_scan_id AS old_first_scan,
           o.last_scan_id, o.dev, o.inode, o.size, o.mtime_ns, o.blake3, {_name_key("o")} AS name_key, o.path,
           o.path_bytes, epoch_ns(o.last_seen) AS seen_ns, o.btime_ns AS old_btime
    FROM files o JOIN mf_gone g ON g.media_id = o.media_id
"""
_MOVE_NEW = f"""
    SELECT n.media_id AS new_id, n.first_scan_id, n.dev, n.inode, n.size, n.mtime_ns, n.blake3,
           {_name_key("n")} AS name_key, n.path, n.path_bytes, n.nlink, n.btime_ns, {{under}} AS inside,
           false AS second_name
    FROM files n
    WHERE n.status = 'present' AND n.media_id NOT IN (SELECT media_id FROM mf_gone)
      AND n.first_scan_id > (SELECT min(last_scan_id) FROM mf_gone_rows)
"""


def _holds(path: bytes, dev: int, ino: int) -> bool:
    """Whether `path` reaches the file (device, inode) now."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def below(path: bytes, roots: Sequence[bytes]) -> bool:
    """Whether `path` is one of `roots` or below one."""
    return any(path == r or path.startswith(r.rstrip(b"/") + b"/") for r in roots)


def roots_bytes(roots: Sequence[str] | None, raw: Sequence[bytes] | None) -> list[bytes]:
    """A scan's roots as bytes: exact where recorded (schema 13), else from the text."""
    return [bytes(r) for r in raw] if raw is not None else [r.encode() for r in roots or ()]


def _pair_earlier(con, key: str, scan_id: int) -> None:  # noqa: ANN001
    """Content pairs of vanished rows with new rows that earlier scans found, by `key`:
    in each group, old rows by when they were last seen, each with the first new row
    found after that. Taking the earliest eligible new row for the earliest seen old one
    makes as many pairs as any matching can."""
    olds = con.execute(f"""
        SELECT {key}, last_scan_id, path_bytes, old_id, old_first_seen, old_first_scan FROM mf_gone_rows o
        WHERE blake3 IS NOT NULL AND size > 0 AND old_id NOT IN (SELECT old_id FROM mf_moves)
          AND old_id IN (SELECT old_id FROM mf_witnessed)
          AND EXISTS (SELECT 1 FROM mf_new_rows n WHERE n.first_scan_id < ? AND n.blake3 = o.blake3)
        ORDER BY ALL""", [scan_id]).fetchall()
    if not olds:
        return
    width = len(key.split(","))
    news: dict[tuple, list[tuple]] = {}
    for row in con.execute(f"""
            SELECT {key}, first_scan_id, path_bytes, new_id FROM mf_new_rows
            WHERE blake3 IS NOT NULL AND size > 0 AND first_scan_id < ? AND new_id NOT IN (SELECT new_id FROM mf_moves)
              AND NOT second_name
            ORDER BY ALL""", [scan_id]).fetchall():
        news.setdefault(tuple(row[:width]), []).append(row[width:])
    pairs, next_of = [], {}
    for row in olds:
        group, (last, _path, old_id, first_seen, first_scan) = tuple(row[:width]), row[width:]
        cands, j = news.get(group, []), next_of.get(group, 0)
        while j < len(cands) and cands[j][0] <= last:
            j += 1
        if j < len(cands):
            pairs.append((old_id, cands[j][2], first_seen, first_scan))
            j += 1
        next_of[group] = j
    if pairs:
        con.executemany("INSERT INTO mf_moves VALUES (?, ?, ?, ?)", pairs)


# Rows that went missing before this scan, and files this scan found (or read) for the
# first time that may have been them, moved (see `_pair_gone_before`): same bytes, made
# (birth time, known) after the row was last seen and by the time a scan found it gone.
# Not one a scan that followed links last saw (its path may have been a link's, the file
# elsewhere). `gone_scan`: the scan that found it gone (it ended when the row was marked
# missing); only a scan that saw some disk whole left a record (`mf_vouching`, the scans
# with a `disks_seen:` key in `meta`; whether it saw this row's disk: `_seen_gone`).
_GONE_BEFORE = """
    SELECT o.media_id::VARCHAR AS media_id, o.blake3, o.size, o.path_bytes, epoch_ns(o.last_seen) AS seen_ns,
           epoch_ns(o.missing_since) AS gone_ns, o.dev, o.last_scan_id, o.first_seen, o.first_scan_id,
           g.scan_id AS gone_scan, o.inode
    FROM files o JOIN scans s ON s.scan_id = o.last_scan_id
    JOIN scans g ON g.finished_at = o.missing_since AND g.status = 'completed'
    WHERE o.status = 'missing' AND o.blake3 IS NOT NULL AND o.size > 0 AND o.missing_since IS NOT NULL
      AND s.follow_links = false AND g.scan_id IN (SELECT scan_id FROM mf_vouching)
"""
# Of those (`mf_gone_before`), the ones with a first sight in their window (`mf_first_sight`)
# that are no second name and have no twin: not a row whose file is still catalogued under
# another name (a hard link: its inode on a present row made before it was last seen), nor
# one whose bytes a file known by then still holds (a twin: a copy made may be the twin's,
# as when `dedupe` removed one of two copies and the kept one is backed up before the next
# scan). Checked last, on the few rows left: each is a join over the whole catalog.
_GONE_BEFORE_LEFT = """
    SELECT o.* EXCLUDE (inode) FROM mf_gone_before o
    WHERE EXISTS (SELECT 1 FROM mf_first_sight n WHERE {in_window})
      AND NOT EXISTS (SELECT 1 FROM files p WHERE p.dev = o.dev AND p.inode = o.inode AND p.status = 'present'
                      AND NOT coalesce(p.btime_ns > o.seen_ns + 1000000000, false))
      AND NOT EXISTS (SELECT 1 FROM files t WHERE t.blake3 = o.blake3 AND t.size = o.size AND t.status = 'present'
                      AND t.first_scan_id <= o.last_scan_id)
"""
# Read for the first time: found since the last scan that completed (by this one, or by
# scans cut short before they could pair), or given its first digest now, found since the
# last scan that hashed (a digest a `--no-hash` scan dropped after a chmod is no first
# reading); by scans that did not follow links; and not another name of a file known
# before (a new hard link).
_FIRST_SIGHT = """
    SELECT n.media_id::VARCHAR AS media_id, n.blake3, n.size, n.path_bytes, n.btime_ns FROM files n
    WHERE n.status = 'present' AND n.blake3 IS NOT NULL AND n.size > 0 AND n.btime_ns IS NOT NULL
      AND (n.first_scan_id > (SELECT coalesce(max(scan_id), 0) FROM scans WHERE status = 'completed'
                              AND scan_id < $sid)
           OR (n.media_id IN (SELECT media_id::UUID FROM mf_first_hashed)
               AND n.first_scan_id > (SELECT coalesce(max(scan_id), 0) FROM scans WHERE hashed AND scan_id < $sid)))
      AND n.media_id NOT IN (SELECT new_id FROM mf_moves) AND n.media_id NOT IN (SELECT media_id FROM mf_gone)
      AND NOT EXISTS (SELECT 1 FROM files x WHERE x.dev = n.dev AND x.inode = n.inode AND x.media_id <> n.media_id
                      AND x.first_scan_id < n.first_scan_id AND x.status = 'present')
      AND NOT EXISTS (SELECT 1 FROM scans WHERE scan_id IN (n.first_scan_id, $sid) AND follow_links IS NOT false)
"""
_IN_WINDOW = ("n.blake3 = o.blake3 AND n.size = o.size "
              "AND n.btime_ns > o.seen_ns AND n.btime_ns <= o.gone_ns + 1000000000")
_GONE_BEFORE_LEFT = _GONE_BEFORE_LEFT.format(in_window=_IN_WINDOW)


DISKS_SEEN = "disks_seen:"  # + scan_id, in `meta`: see `_record_disks_seen`
GLIMPSED = "glimpsed:"  # + scan_id, in `meta`: see `_keep_glimpses`


def _disks_seen(con, under: str, held: str, params: list) -> list[tuple[int, int]]:  # noqa: ANN001
    """Of the rows this scan found gone (not replaced by a link), the (device, last scan)
    pairs it found gone from a disk it saw: it also found, unchanged, a file on that
    device that the scan which last saw them saw too, and no scan has written since (not
    revived, moved, changed, nor given another device or inode). Device numbers are
    handed out again (the first USB disk plugged in is 8:17, whichever it is), so a
    mount point's device proves nothing; a file of the disk's own, seen with the gone
    rows and untouched since, does. A disk that is not mounted, or another disk in its
    place, shows none. Asked before this scan stamps the files it found unchanged: the
    witnesses are those rows, still with their last scan's id (`under` and `held`, the
    stamp's own conditions). Its caller asks only when the scan left nothing out and
    read every folder: a file moved into what it did not look at would be taken for
    gone, and a copy of it could take its id. (A file moved elsewhere on its disk,
    outside the scan's roots, still is: see `files.media_id` in docs/catalog.md.)"""
    return [(int(d), int(s)) for d, s in con.execute(
        f"""
        SELECT DISTINCT g.dev, g.last_scan_id FROM files g JOIN mf_gone m ON m.media_id = g.media_id
        WHERE g.status = 'missing' AND g.media_id NOT IN (SELECT media_id FROM mf_link_gone)
          AND EXISTS (SELECT 1 FROM files WHERE files.dev = g.dev AND files.last_scan_id = g.last_scan_id
                      AND files.status = 'present' AND {under} {held})
        ORDER BY ALL""", params).fetchall()]


def _glimpses_before(con) -> list[str]:  # noqa: ANN001
    """The ids an earlier scan kept in `meta` (`_keep_glimpses`): rows whose file it
    glimpsed in motion and found nowhere, not yet looked at again by a scan of their root.
    A value that does not read as a list of ids holds nothing."""
    ids: list[str] = []
    for (value,) in con.execute(f"SELECT value FROM meta WHERE starts_with(key, '{GLIMPSED}')").fetchall():
        try:
            ids += [str(uuid.UUID(str(i))) for i in json.loads(value)]
        except (ValueError, TypeError, AttributeError, RecursionError):
            continue
    return ids


def _keep_glimpses(con, scan_id: int, before: list[str], under: str, params: list) -> None:  # noqa: ANN001
    """Keep in `meta` the ids of the missing rows whose file this scan glimpsed in motion
    (the core's `glimpsed`, not rows held for a name alone), and those an earlier scan kept
    that are still missing and that this scan did not look at (`under`: its roots, or
    `false` where it did not look at them whole): a file renamed to and fro without
    pause can be missed whole by one scan, so `--prune` drops such a row only once a scan
    of its root after the one that glimpsed it saw nothing of it either."""
    keep = {str(r[0]) for r in con.execute(
        "SELECT media_id FROM files WHERE status = 'missing' "
        "AND media_id IN (SELECT media_id::UUID FROM mf_glimpsed_ids)").fetchall()}
    if before:  # (nor those below a folder this scan could not read: `mf_kept`)
        keep |= {str(r[0]) for r in con.execute(
            f"SELECT media_id FROM files WHERE status = 'missing' AND media_id IN (SELECT unnest(?::UUID[])) "
            f"AND (NOT ({under}) OR media_id IN (SELECT media_id::UUID FROM mf_kept))", [before, *params]).fetchall()}
    con.execute(f"DELETE FROM meta WHERE starts_with(key, '{GLIMPSED}')")
    if keep:
        con.execute("INSERT INTO meta VALUES (?, ?)", [f"{GLIMPSED}{scan_id}", json.dumps(sorted(keep))])


def _record_disks_seen(con, scan_id: int, seen: list[tuple[int, int]]) -> None:  # noqa: ANN001
    """Keep `seen` (`_disks_seen`) in `meta` while rows it vouches for are missing, with
    the ids of the rows on those devices this scan found replaced by a link (their file
    may be behind the link: never taken over). Other scans' keys whose rows are all gone
    from the catalog (taken over, back, pruned) are dropped (this scan's own end time is
    not written yet). Read by `_pair_gone_before`."""
    if seen:
        left = {(int(d), int(s)) for d, s in con.execute(
            "SELECT DISTINCT f.dev, f.last_scan_id FROM files f JOIN mf_gone m ON m.media_id = f.media_id "
            "WHERE f.status = 'missing'").fetchall()}
        seen = [p for p in seen if p in left]
    if seen:
        devices = sorted({d for d, _s in seen})
        linked = [str(r[0]) for r in con.execute(
            f"SELECT f.media_id FROM files f JOIN mf_link_gone l ON l.media_id = f.media_id "
            f"WHERE f.status = 'missing' AND f.dev IN ({', '.join(str(d) for d in devices)}) ORDER BY 1").fetchall()]
        con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                    [f"{DISKS_SEEN}{scan_id}", json.dumps({"seen": [list(p) for p in seen], "linked": linked})])
    if con.execute(f"SELECT count(*) FROM meta WHERE starts_with(key, '{DISKS_SEEN}')").fetchall()[0][0]:
        # Those of scans whose rows are all back, taken over or pruned, and any a scan
        # did not write (`_scan_key`: `02` is no scan's key).
        scan = f"TRY_CAST(substr(key, {len(DISKS_SEEN) + 1}) AS BIGINT)"
        con.execute(f"""
            DELETE FROM meta WHERE starts_with(key, '{DISKS_SEEN}') AND key <> '{DISKS_SEEN}{int(scan_id)}'
              AND coalesce(key <> '{DISKS_SEEN}' || {scan} OR {scan} < 0 OR {scan} NOT IN (
                  SELECT s.scan_id FROM scans s WHERE s.finished_at IN
                  (SELECT DISTINCT missing_since FROM files WHERE status = 'missing')), true)""")


def _scan_key(text: str) -> bool:
    """Whether `text` is a scan id as `_record_disks_seen` writes one in a key: digits, no
    leading zero (`02`, ` 2`, `+2` are hand-made)."""
    return text.isascii() and text.isdigit() and len(text) < 19 and str(int(text)) == text


def _vouched(value: str) -> tuple[set[tuple[int, int]], set[str]]:
    """A `disks_seen:` value read back: (device, last scan) pairs and link ids; nothing
    from one that is not as written (edited by hand, cut short)."""
    try:
        record = json.loads(value)
        return ({(int(d), int(s)) for d, s in record["seen"]}, {str(i) for i in record["linked"]})
    except (ValueError, TypeError, KeyError, AttributeError):
        return set(), set()


def _seen_gone(olds: list[tuple], records: dict[int, str]) -> list[tuple]:
    """The rows of `olds` (`_GONE_BEFORE`) that the scan that found them gone found gone
    from a disk it saw (`_disks_seen`; `records`: the `disks_seen:` values by scan), and
    whose path holds nothing now."""
    seen = {gone_scan: _vouched(records[gone_scan]) for gone_scan in {o[10] for o in olds}}
    out = []
    for o in olds:
        pairs, linked = seen[o[10]]
        if (o[6], o[7]) not in pairs or o[0] in linked:
            continue
        try:
            os.lstat(bytes(o[3]))
            continue  # something is there again: a link, or a file no scan has looked at yet
        except FileNotFoundError:
            out.append(o)
        except (OSError, ValueError):
            continue
    return out


def _match_in_windows(olds: list[tuple], news: list[tuple], key) -> list[tuple[tuple, tuple]]:  # noqa: ANN001
    """Pairs of `olds` (rows gone before) with `news` (files first seen), one to one, in
    groups by `key`: each old row with the first new file (by birth time, then path)
    made inside its window (after it was last seen, by the time it was found gone), the
    rows whose windows close first served first: as many pairs as the group allows."""
    groups: dict[tuple, tuple[list, list]] = {}
    for o in olds:
        groups.setdefault(key(o), ([], []))[0].append(o)
    for n in news:
        group = groups.get(key(n))
        if group is not None:
            group[1].append(n)
    pairs = []
    for group_olds, group_news in groups.values():
        if len(group_olds) == 1 and len(group_news) == 1:  # most groups: one file moved
            o, n = group_olds[0], group_news[0]
            if o[4] < n[4] <= o[5] + 1_000_000_000:
                pairs.append((o, n))
            continue
        group_news.sort(key=lambda n: (n[4], bytes(n[3]), str(n[0])))
        births = [n[4] for n in group_news]
        for o in sorted(group_olds, key=lambda o: (o[5], -o[4], bytes(o[3]), str(o[0]))):
            j = bisect.bisect_right(births, o[4])
            if j < len(births) and births[j] <= o[5] + 1_000_000_000:
                pairs.append((o, group_news.pop(j)))
                births.pop(j)
    return pairs


def _pair_gone_before(con, scan_id: int) -> list[str]:  # noqa: ANN001
    """Pairs, added to `mf_moves`, of rows that went missing in an earlier scan with files
    this scan found (or read) for the first time holding their bytes: a file moved to
    another disk (copied there, then deleted here), this disk scanned first and the other
    after. Held to what tells such a move from a copy:
    - the new file was made (its birth time, which must be known) after the old row was
      last seen and by the time a scan found it gone (with a second's slack): a backup
      made before is a copy beside the original; a copy made later (an export, a copy of
      a duplicate that stayed) is another file;
    - the scan that found the old row gone saw its disk (`_disks_seen`): a disk
      that was not mounted then keeps its rows for when it is back; and the old path
      holds nothing now.
    Empty files never pair (they all share one digest). The same name (its exact bytes)
    first, then any. Returns the old ids taken over (the search index has documents of
    them, as missing files)."""
    records: dict[int, str] = {}
    for key, value in con.execute(f"SELECT key, value FROM meta WHERE starts_with(key, '{DISKS_SEEN}')").fetchall():
        scan = key[len(DISKS_SEEN):]
        if _scan_key(scan):  # else not a key a scan wrote (the next scan drops it)
            records[int(scan)] = value
    if not records:
        return []
    con.register("mf_vouching", pa.table({"scan_id": pa.array(sorted(records), pa.int64())}))
    try:
        # Step by step, the narrowest first: few rows gone, few files new, fewer in a window.
        con.execute(f"CREATE OR REPLACE TEMP TABLE mf_gone_before AS {_GONE_BEFORE}")
        if not con.execute("SELECT count(*) FROM mf_gone_before").fetchall()[0][0]:
            return []
        con.execute(f"""CREATE OR REPLACE TEMP TABLE mf_first_sight AS SELECT * FROM ({_FIRST_SIGHT}) n
                        WHERE EXISTS (SELECT 1 FROM mf_gone_before o WHERE {_IN_WINDOW})""", {"sid": scan_id})
        if not con.execute("SELECT count(*) FROM mf_first_sight").fetchall()[0][0]:
            return []
        olds = _seen_gone(con.execute(_GONE_BEFORE_LEFT).fetchall(), records)
        if not olds:
            return []
        news = con.execute("SELECT * FROM mf_first_sight").fetchall()
    finally:
        try:
            con.unregister("mf_vouching")
            con.execute("DROP TABLE IF EXISTS mf_gone_before")
            con.execute("DROP TABLE IF EXISTS mf_first_sight")
        except duckdb.Error:
            pass  # the transaction failed (and its rollback drops them): keep the original error
    pairs: list[tuple[tuple, tuple]] = []
    for key in (lambda r: (r[1], r[2], bytes(r[3]).rsplit(b"/", 1)[-1]), lambda r: (r[1], r[2])):
        taken_old, taken_new = {p[0][0] for p in pairs}, {p[1][0] for p in pairs}
        olds, news = [o for o in olds if o[0] not in taken_old], [n for n in news if n[0] not in taken_new]
        if not olds or not news:
            break
        pairs += _match_in_windows(olds, news, key)
    if not pairs:
        return []
    table = pa.table({"old_id": [o[0] for o, _n in pairs], "new_id": [n[0] for _o, n in pairs],
                      "old_first_seen": pa.array([o[8] for o, _n in pairs], pa.timestamp("us")),
                      "old_first_scan": pa.array([o[9] for o, _n in pairs], pa.int64())})
    con.register("mf_late_pairs", table)
    try:
        con.execute("INSERT INTO mf_moves SELECT old_id::UUID, new_id::UUID, old_first_seen, old_first_scan "
                    "FROM mf_late_pairs")
    finally:
        con.unregister("mf_late_pairs")
    return [o[0] for o, _n in pairs]


def _pair_moves(con, scan_id: int, under: str, params: list) -> tuple[list[str], list[str]]:  # noqa: ANN001
    """Fill the temp table `mf_moves` (old_id, new_id, old_first_seen, old_first_scan):
    each vanished row paired with at most one row that appeared since it was last seen,
    and each new row with at most one vanished row: one file that moved, whose new row
    takes over the old media_id (and so its tags). Paired first by identity (device,
    inode, size, mtime, and the same BLAKE3 where both were read: a rename or a move on
    one file system, not another file given the freed inode number, nor one born after
    the old row was last seen), then by content (BLAKE3
    and size: a copy then delete), the same name first. Copies of one content pair off
    one to one in path order, so two copies moved together both keep their ids; pairing
    by rank keeps this a join of equals, never one of every old copy with every new one.
    A new row an earlier scan found outside this scan's roots (`under`) with the inode of
    a vanished row was, for that scan, another name of the file (the old path still held
    the inode, else the row would have been taken over then). It takes the vanished row
    over only when it is the file's sole name now: its path holds the inode, and it was
    the inode's one link when found (the old path reached it through a link, since gone).
    A hard link is not (the old name's going is just that), nor a path through a link to
    the file deleted; such a row pairs with nothing, by identity or content. The same holds
    wherever the new row is now, in or out of this scan's roots, when it and the vanished
    row were both found by scans without -L (real paths), the vanished one outside the
    roots of the scan that found the new one: that scan checked the old path and found
    it still held the file (the engine writes no row of a known inode before that check,
    also in a scan cut short), so the two were hard links at once, and one of them going
    is no move. (Below that scan's roots, the old row may have been left out or
    unreadable to it; then nothing is known of it.) Last, rows gone before this scan, by
    content (`_pair_gone_before`). First of all, rows gone before this scan whose bytes
    are back at their path (`_back_at_their_path`). Returns the old ids those two take."""
    con.execute("CREATE OR REPLACE TEMP TABLE mf_moves (old_id UUID, new_id UUID, old_first_seen TIMESTAMP, "
                "old_first_scan BIGINT)")
    back = _back_at_their_path(con, scan_id)
    con.execute(f"CREATE OR REPLACE TEMP TABLE mf_gone_rows AS {_MOVE_OLD}")
    if con.execute("SELECT count(*) FROM mf_gone_rows").fetchone()[0]:  # else a rescan where nothing went
        _pair_gone_now(con, scan_id, under, params)
    for table in ("mf_gone_rows", "mf_new_rows", "mf_witnessed"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return back, _pair_gone_before(con, scan_id)


def _back_at_their_path(con, scan_id: int) -> list[str]:  # noqa: ANN001
    """Pairs, added to `mf_moves`, of rows gone before this scan with the file now at their
    path that holds their bytes: a copy put back from a backup. The engine checks the bytes
    of one gone row a path has (`recover_or_new`); when several share it (a file deleted,
    another saved under its name and deleted too), the one whose bytes came back may be
    another, and takes its row back here. New rows first found since the last scan that
    completed; the row seen last first. Returns the old ids taken back."""
    if not con.execute("SELECT count(*) FROM (SELECT 1 FROM files WHERE status = 'missing' LIMIT 1)").fetchone()[0]:
        return []
    # This scan's few new rows first (not one it found gone, still `present` until the
    # end), then the gone rows at their paths: compared as stored (folder, name, and the
    # exact bytes where the text cannot hold them), never building every path.
    pairs = con.execute("""
        WITH n AS (
            SELECT media_id, dir, name, path_raw, blake3, size FROM files
            WHERE status = 'present' AND blake3 IS NOT NULL AND size > 0
              AND first_scan_id > (SELECT coalesce(max(scan_id), 0) FROM scans WHERE status = 'completed'
                                   AND scan_id < ?)
              AND media_id NOT IN (SELECT media_id FROM mf_gone)
        )
        SELECT o.media_id, n.media_id, o.first_seen, o.first_scan_id FROM n
        JOIN files o ON o.dir = n.dir AND o.name = n.name AND o.path_raw IS NOT DISTINCT FROM n.path_raw
                    AND o.blake3 = n.blake3 AND o.size = n.size
        WHERE o.status = 'missing' AND o.media_id NOT IN (SELECT media_id FROM mf_gone)
        QUALIFY row_number() OVER (PARTITION BY n.media_id ORDER BY o.last_seen DESC, o.media_id) = 1
        ORDER BY ALL""", [scan_id]).fetchall()
    if pairs:
        con.executemany("INSERT INTO mf_moves VALUES (?, ?, ?, ?)", pairs)
    return [str(p[0]) for p in pairs]


def _pair_gone_now(con, scan_id: int, under: str, params: list) -> None:  # noqa: ANN001
    """`_pair_moves` for the rows this scan found gone (`mf_gone_rows`)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE mf_new_rows AS {_MOVE_NEW.format(under=under)}", params)
    others = con.execute("""
        SELECT n.new_id, n.path_bytes, n.dev, n.inode, n.nlink, n.inside, o.path_bytes,
               n.first_scan_id > o.last_scan_id AND s.follow_links = false AND so.follow_links = false, s.roots,
               s.roots_raw
        FROM mf_new_rows n
        JOIN mf_gone_rows o ON n.dev = o.dev AND n.inode = o.inode
        JOIN scans s ON s.scan_id = n.first_scan_id
        JOIN scans so ON so.scan_id = o.last_scan_id
        WHERE n.first_scan_id <> ?""", [scan_id]).fetchall()
    second = {(nid,) for nid, path, dev, ino, nlink, inside, old_path, real_then, birth_roots, birth_raw in others
              if (real_then and not below(bytes(old_path), roots_bytes(birth_roots, birth_raw)))
              or (not inside and not (nlink == 1 and _holds(path, dev, ino)))}
    if second:
        con.executemany("UPDATE mf_new_rows SET second_name = true WHERE new_id = ?", sorted(second))
    # Identity: hard links can give one old row several new ones; the same name first.
    con.execute(
        """
        INSERT INTO mf_moves
        WITH cand AS (
            SELECT o.old_id, n.new_id, o.old_first_seen, o.old_first_scan,
                   CASE WHEN n.name_key = o.name_key THEN 0 ELSE 1 END AS renamed, n.path_bytes AS new_path,
                   o.path_bytes AS old_path
            FROM mf_gone_rows o JOIN mf_new_rows n
              ON n.dev = o.dev AND n.inode = o.inode
             AND n.first_scan_id > o.last_scan_id AND NOT n.second_name
             AND n.new_id NOT IN (SELECT new_id FROM mf_moves)
             AND (n.size = o.size AND n.mtime_ns = o.mtime_ns
                  -- Read, and found to hold other bytes: another file that got the freed
                  -- inode number (and the size and mtime: `cp -p`, `tar x`), not this one moved.
                  AND (n.blake3 IS NULL OR o.blake3 IS NULL OR n.blake3 = o.blake3)
                  -- Or born at the very instant the old row's file was (both times kept):
                  -- that file, written to (or touched) as well as moved. An empty file,
                  -- which no content pairs, keeps its row and tags so too. Not a time of
                  -- whole milliseconds: FAT and exFAT keep 10 ms or 2 s (and hand inode
                  -- numbers out again at each mount), and copy tools set birth times.
                  OR n.btime_ns = o.old_btime AND n.btime_ns % 1000000 <> 0)
             -- Born at another time than the old row's file, where it was kept, else made
             -- after the old row was last seen (by more than the clock's second of slack),
             -- as the walk judges: another file, whatever its inode, size and mtime.
             AND NOT coalesce(CASE WHEN o.old_btime IS NOT NULL THEN n.btime_ns <> o.old_btime
                                   ELSE n.btime_ns > o.seen_ns + 1000000000 END, false)
        ),
        best_new AS (SELECT *, row_number() OVER (PARTITION BY old_id ORDER BY renamed, new_path) AS r1 FROM cand),
        one_each AS (
            SELECT *, row_number() OVER (PARTITION BY new_id ORDER BY renamed, old_path) AS r2
            FROM best_new WHERE r1 = 1
        )
        SELECT old_id, new_id, old_first_seen, old_first_scan FROM one_each WHERE r2 = 1
        """
    )
    _witnessed(con, under, params)
    # Content, among what is left: the same name first, then any. Empty files never pair
    # by content: every one has the same digest, and an unrelated new empty file would
    # take a deleted one's tags. New rows this scan found can take over any vanished row
    # (each was last seen before now): the k-th old copy, the one seen last first, with
    # the k-th new one by path, a join of equals. New rows an earlier, cut-short scan
    # found can take over only a row last seen before they appeared: those few are
    # matched in order (`_pair_earlier`), so within a pass no pair that could be made
    # is stranded (the same-name pass, first, may take a row a later pass wanted).
    for key in ("blake3, size, name_key", "blake3, size"):
        con.execute(
            f"""
            INSERT INTO mf_moves
            WITH o AS (
                SELECT *, row_number() OVER (PARTITION BY {key} ORDER BY last_scan_id DESC, path_bytes) AS k
                FROM mf_gone_rows
                WHERE blake3 IS NOT NULL AND size > 0 AND old_id NOT IN (SELECT old_id FROM mf_moves)
                  AND old_id IN (SELECT old_id FROM mf_witnessed)
            ),
            n AS (
                SELECT *, row_number() OVER (PARTITION BY {key} ORDER BY path_bytes) AS k FROM mf_new_rows
                WHERE blake3 IS NOT NULL AND size > 0 AND first_scan_id = ?
                  AND new_id NOT IN (SELECT new_id FROM mf_moves)
            )
            SELECT o.old_id, n.new_id, o.old_first_seen, o.old_first_scan
            FROM o JOIN n USING ({key}, k)
            """, [scan_id])
        _pair_earlier(con, key, scan_id)


def _witnessed(con, under: str, params: list) -> None:  # noqa: ANN001
    """Fill `mf_witnessed` with the rows this scan found gone (`mf_gone_rows`) that a copy
    may take over by content: those gone from a disk that is there. It is when the row's
    folder, or the nearest folder above it that is there (a folder moved off whole), is
    on the row's device now; or, failing that (an overlay, whose folders show another
    device than its files), when this scan found there, unchanged, a file that the scan
    which last saw the row saw too (as `_disks_seen` asks; queried before the stamp). A
    disk that is not mounted leaves its mount point on another device and no file, and
    its files' backups are copies, not the files moved. (Another disk mounted in its
    place under its device number is not told apart.) Asked only of rows whose bytes a
    new file holds."""
    rows = con.execute("""
        SELECT DISTINCT o.old_id, o.path_bytes, o.dev FROM mf_gone_rows o
        WHERE o.blake3 IS NOT NULL AND o.size > 0
          AND EXISTS (SELECT 1 FROM mf_new_rows n WHERE n.blake3 = o.blake3 AND n.size = o.size)""").fetchall()
    device: dict[bytes, int | None] = {}

    def device_of(folder: bytes) -> int | None:
        gone = []  # folders not there, below the one that is
        while folder not in device:
            try:
                device[folder] = os.lstat(folder).st_dev
            except FileNotFoundError:
                up = os.path.dirname(folder)
                if up == folder:
                    device[folder] = None
                else:
                    gone.append(folder)
                    folder = up
            except (OSError, ValueError):
                device[folder] = None
        for below in gone:
            device[below] = device[folder]
        return device[folder]

    seen, other = [], []
    for old_id, path, dev in rows:
        (seen if device_of(os.path.dirname(bytes(path)) or b"/") == dev else other).append(str(old_id))
    if other:
        con.register("mf_unseen_ids", pa.table({"old_id": pa.array(other, pa.string())}))
        try:
            seen += [str(r[0]) for r in con.execute(f"""
                SELECT o.old_id FROM mf_gone_rows o
                WHERE o.old_id IN (SELECT old_id::UUID FROM mf_unseen_ids)
                  AND EXISTS (SELECT 1 FROM files w WHERE w.dev = o.dev AND w.last_scan_id = o.last_scan_id
                              AND w.status = 'present' AND w.media_id NOT IN (SELECT media_id FROM mf_gone)
                              AND w.media_id NOT IN (SELECT media_id::UUID FROM mf_kept)
                              AND w.media_id NOT IN (SELECT media_id::UUID FROM mf_linked) AND {under})""",
                params).fetchall()]
        finally:
            con.unregister("mf_unseen_ids")
    con.execute("CREATE OR REPLACE TEMP TABLE mf_witnessed (old_id UUID)")
    if seen:
        con.register("mf_seen_ids", pa.table({"old_id": pa.array(seen, pa.string())}))
        try:
            con.execute("INSERT INTO mf_witnessed SELECT old_id::UUID FROM mf_seen_ids")
        finally:
            con.unregister("mf_seen_ids")


def _carry_over(con) -> None:  # noqa: ANN001
    """A new row that an earlier scan found (one cut short, or one that did not look where
    the old row was) has had an id of its own, which the user may have tagged, put in a
    collection, or imported a sidecar for. All that moves to the id the row takes over;
    what the old id has already is not doubled. (A sidecar's id is also each
    `xmp_imports.sidecar_id` naming it.)"""
    for table, columns, key in (("tags", "tag, source, added_by, added_at", "tag"),
                                ("collection_items", "collection_id, position, added_by, added_at", "collection_id"),
                                ("xmp_imports", "sidecar_blake3, imported_at, sidecar_id, scan_id", "sidecar_blake3")):
        picked = ", ".join(f"t.{c.strip()}" for c in columns.split(","))
        same = " AND x.sidecar_id IS NOT DISTINCT FROM t.sidecar_id" if table == "xmp_imports" else ""
        con.execute(f"""
            INSERT INTO {table} (media_id, {columns})
            SELECT m.old_id, {picked} FROM {table} t JOIN mf_moves m ON t.media_id = m.new_id
            WHERE NOT EXISTS (SELECT 1 FROM {table} x WHERE x.media_id = m.old_id AND x.{key} = t.{key}{same})""")
        con.execute(f"DELETE FROM {table} WHERE media_id IN (SELECT new_id FROM mf_moves)")
    con.execute("UPDATE xmp_imports SET sidecar_id = m.old_id FROM mf_moves m WHERE xmp_imports.sidecar_id = m.new_id")


def finish_scan(
    cat: Catalog,
    scan_id: int,
    roots: Sequence[bytes],
    vanished: pa.Table | None,
    totals: dict[str, int],
    seconds: float,
    prune: bool,
    kept: pa.Table | None = None,
    linked: pa.Table | None = None,
    first_hashed: pa.ChunkedArray | None = None,
    glimpsed: pa.Table | None = None,
    looked_whole: bool = True,
) -> FinishCounts:
    """Settle moves, mark vanished rows missing, stamp last_seen, close the scan row.
    `kept`: media ids of rows the walk did not see but that are not gone (below a folder
    it could not read, or left out by --exclude and the like): left as they were.
    `linked`: rows at or below a symbolic link the walk did not follow. A present one is
    gone when the scan that last found it did not follow links either (a file replaced by
    a link), else (found through the link by an `-L` scan) left as it was. None of them is
    pruned: the file may be behind the link. `first_hashed`: media ids of known rows this
    scan read for the first time (`Written.first_hashed`). `glimpsed`: media ids of rows
    whose file the scan glimpsed in motion (the core's `Event::Glimpsed`): held from
    `--prune` this time and, where still missing, by the next scan (`_keep_glimpses`). `looked_whole`: False where a root was found
    empty (an unmounted disk), which says nothing of the files below it."""
    now = utcnow()
    none = pa.table({"media_id": pa.array([], pa.string())})
    # Rows the walk could not read, or the options left out, under the roots: a file moved
    # there was not seen, so the scan did not look at its disk whole (see `_disks_seen`).
    unlooked = kept is not None and kept.num_rows > 0
    if linked is not None and linked.num_rows:
        kept = pa.concat_tables([kept.select(["media_id"]), linked.select(["media_id"])]) if kept is not None \
            else linked
    with (cat.registered("mf_vanished", vanished if vanished is not None else none),
          cat.registered("mf_kept", kept if kept is not None else none),
          cat.registered("mf_linked", linked if linked is not None else none),
          cat.registered("mf_first_hashed", pa.table({"media_id": first_hashed}) if first_hashed is not None
                         else none),
          cat.registered("mf_glimpsed_ids", glimpsed if glimpsed is not None else none),
          cat.transaction() as con):
        under, params = under_roots(con, roots)
        con.execute("CREATE OR REPLACE TEMP TABLE mf_gone AS SELECT media_id::UUID AS media_id FROM mf_vanished")
        # A file the walk listed but found gone as it looked (a `vanished` error) was, as
        # often as not, renamed or moved as the scan ran: listed in one folder, gone when
        # looked at, and perhaps already passed in the folder it went to, so the walk never
        # saw it. The row at that path is left as it was until the next scan, as
        # documented. Those of that name elsewhere (a move keeps it), last seen by one of
        # the last two scans, are only held from `--prune` (`mf_glimpsed`): a name that
        # vanishes at every scan (a file saved over again and again) holds none for long.
        # So are the rows whose inode, size and mtime the walk found under another name
        # that the file had left by the time it was looked at (`glimpsed`).
        con.execute("CREATE OR REPLACE TEMP TABLE mf_glimpsed AS "
                    "SELECT media_id::UUID AS media_id FROM mf_glimpsed_ids")
        if con.execute("SELECT count(*) FROM scan_errors WHERE scan_id = ? AND stage = 'vanished'",
                       [scan_id]).fetchone()[0]:
            con.execute(
                """DELETE FROM mf_gone WHERE media_id IN (
                    SELECT f.media_id FROM files f JOIN scan_errors e ON f.path_bytes = e.path_bytes
                    WHERE e.scan_id = ? AND e.stage = 'vanished' AND f.status = 'present')""",
                [scan_id])
            # (Two hash joins: an OR in one join would compare every row with every error.)
            con.execute(
                """INSERT INTO mf_glimpsed
                    WITH e AS (SELECT path_bytes, regexp_extract(path, '[^/]*$') AS name FROM scan_errors
                               WHERE scan_id = ? AND stage = 'vanished'),
                    recent AS (SELECT min(scan_id) AS since FROM (
                        SELECT scan_id FROM scans WHERE scan_id < ? AND status = 'completed'
                        ORDER BY scan_id DESC LIMIT 2)),
                    f AS (SELECT media_id, path_bytes, name FROM files
                          WHERE last_scan_id >= coalesce((SELECT since FROM recent), 0))
                    SELECT f.media_id FROM f JOIN e ON f.path_bytes = e.path_bytes
                    UNION SELECT f.media_id FROM f JOIN e ON f.name = e.name""",
                [scan_id, scan_id])
        # Replaced by a link: missing, but never a move's old row (its file may be behind the
        # link, and an -L scan brings the row back there; a copy found elsewhere is new).
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE mf_link_gone AS
            SELECT f.media_id FROM mf_linked l
            JOIN files f ON f.media_id = l.media_id::UUID
            JOIN scans s ON s.scan_id = f.last_scan_id
            WHERE s.follow_links = false AND f.status = 'present' {"" if linked is not None else "AND false"}
            """
        )
        back, taken = _pair_moves(con, scan_id, under, params)
        taken = back + taken
        (moved,) = con.execute("SELECT count(*) FROM mf_moves").fetchone()
        # Of those, files that hold other bytes than their row's (a file written to in place
        # and moved, paired by its birth time): changed, not moved.
        (edited,) = con.execute(
            "SELECT count(*) FROM mf_moves m JOIN files o ON o.media_id = m.old_id JOIN files n ON n.media_id = m.new_id "
            "WHERE o.size <> n.size OR o.blake3 <> n.blake3").fetchone() if moved else (0,)
        # New rows an earlier scan added that take over a vanished row's id: theirs retire.
        retired: tuple[str, ...] = tuple(r[0] for r in con.execute(
            "SELECT m.new_id::VARCHAR FROM mf_moves m JOIN files f ON f.media_id = m.new_id "
            "WHERE f.first_scan_id <> ?", [scan_id]).fetchall()) if moved else ()
        earlier = len(retired)
        walked = con.execute(
            f"SELECT count(*) FROM mf_moves m JOIN files f ON f.media_id = m.new_id WHERE f.first_scan_id <> ? "
            f"AND {under} AND m.new_id NOT IN (SELECT media_id::UUID FROM mf_kept)",
            [scan_id, *params]).fetchone()[0] if retired else 0
        if retired:
            _carry_over(con)
        if moved:
            con.execute("DELETE FROM files WHERE media_id IN (SELECT old_id FROM mf_moves)")
            con.execute(
                """
                UPDATE files SET media_id = m.old_id, first_seen = m.old_first_seen,
                                 first_scan_id = m.old_first_scan
                FROM mf_moves m WHERE files.media_id = m.new_id
                """
            )
        con.execute("INSERT INTO mf_gone SELECT media_id FROM mf_link_gone")
        con.execute(
            """
            UPDATE files SET status = 'missing', missing_since = ?
            WHERE media_id IN (SELECT media_id FROM mf_gone)
              AND media_id NOT IN (SELECT old_id FROM mf_moves)
            """,
            [now],
        )
        (missing,) = con.execute(
            "SELECT count(*) FROM mf_gone WHERE media_id NOT IN (SELECT old_id FROM mf_moves)"
        ).fetchone()
        # Rows the scan did not write were found unchanged, except those it did not see
        # (`kept`: below a folder it could not read, or left out by the options) and files
        # it saw but could not read (an error row at their exact path): not stamped. An
        # exact match, a hash join: 200,000 such errors must not be compared with every row.
        held = ""
        (unread,) = con.execute(f"SELECT count(*) FROM scan_errors WHERE scan_id = ? AND stage IN {_HELD}",
                                [scan_id]).fetchone()
        if unread:
            held = (f"AND NOT EXISTS (SELECT 1 FROM scan_errors e WHERE e.scan_id = {int(scan_id)} "
                    f"AND e.stage IN {_HELD} AND e.path_bytes = files.path_bytes)")
        if kept is not None and kept.num_rows:
            held += " AND media_id NOT IN (SELECT media_id::UUID FROM mf_kept)"
        # A folder left as it was for an ignore file that could not be read was not looked
        # at either, whether or not the catalog knows files there.
        (held_back,) = con.execute(
            "SELECT count(*) FROM scan_errors WHERE scan_id = ? AND stage = 'ignore-file' "
            "AND ends_with(message, ?)", [scan_id, IGNORE_FILE_HELD]).fetchone() if missing else (0,)
        whole = missing and not unread and not unlooked and not held_back and not totals.get("excluded")
        seen = _disks_seen(con, under, held, params) if whole else []
        con.execute(
            f"UPDATE files SET last_seen = ?, last_scan_id = ? "
            f"WHERE status = 'present' AND last_scan_id <> ? AND {under} {held}",
            [now, scan_id, scan_id, *params],
        )
        # Rows an earlier scan glimpsed in motion: held from this scan's prune too.
        before = _glimpses_before(con)
        if before:
            con.execute("INSERT INTO mf_glimpsed SELECT unnest(?::UUID[])", [before])
        pruned = kept = 0
        # A scan whose options excluded paths (`--exclude`, `-x`) prunes nothing: a file
        # gone from its place may have moved into what it did not look at, and its row
        # (media_id, tags) must wait for a scan that looks everywhere. (What ignore files
        # leave out is outside the library for every scan, as what lies outside the roots.)
        # Nor does it prune a row at or below a link it did not follow (marked missing just
        # now, or earlier): the file may be behind the link, and an -L scan finds it there.
        # Nor does one that could not read a folder under its roots (or its ignore file)
        # below which the catalog knows files: they were not looked for, and a file gone
        # from its place anywhere may have moved in there, as for a path left out. One it
        # never could read (`lost+found`) holds back only the rows that could have moved
        # in since they were last seen (`_unread_hold`).
        optioned = totals.get("excluded_by_options", totals.get("excluded"))
        unread = _unread_hold(con, scan_id, unlooked) if prune and not optioned else ""
        prune_held = unread is None
        if prune and not optioned and not prune_held:
            # Nor a row this very scan found gone (or glimpsed gone: see `mf_glimpsed`) that
            # holds a tag or a collection place no present copy of its content holds: a file
            # moved as the scan ran, into a folder the walk had passed, was not seen at all
            # (no error tells), and the next scan gives it its row back. Nor one whose file a
            # present row has (same device, inode, size and mtime), which a scan that could
            # not read it whole did not pair with it. Such a row waits for a second scan to
            # find it gone. (A copy a dedupe removed, its tags carried to the kept file,
            # goes at once.)
            behind = unread + """ AND media_id NOT IN (SELECT media_id::UUID FROM mf_linked)
                        AND NOT ((media_id IN (SELECT media_id FROM mf_gone)
                                  OR media_id IN (SELECT media_id FROM mf_glimpsed)
                                  OR EXISTS (SELECT 1 FROM files n WHERE n.status = 'present' AND n.dev = files.dev
                                             AND n.inode = files.inode AND n.size = files.size
                                             AND n.mtime_ns = files.mtime_ns
                                             AND n.first_scan_id > files.last_scan_id))
                                 AND media_id IN (SELECT media_id FROM mf_only_here))"""
            (missing_here,) = con.execute(
                f"SELECT count(*) FROM files WHERE status = 'missing' AND {under}", params).fetchone()
            con.execute(_ONLY_HERE if missing_here else "CREATE OR REPLACE TEMP TABLE mf_only_here (media_id UUID)")
            (pruned,) = con.execute(
                f"SELECT count(*) FROM files WHERE status = 'missing' AND {under} {behind}", params
            ).fetchone()
            con.execute(f"DELETE FROM files WHERE status = 'missing' AND {under} {behind}", params)
            # What the prune held back: rows whose files may be where no scan looked (behind
            # a link, in a folder none could read), or that hold tags or places only they
            # have and wait for a second scan.
            kept = missing_here - pruned
            # What was attached to the ids pruned (by this prune, or by one before this
            # version) goes with them: no file can take an id a prune dropped.
            for table in ("tags", "collection_items", "xmp_imports"):
                con.execute(f"DELETE FROM {table} t WHERE NOT EXISTS "
                            "(SELECT 1 FROM files f WHERE f.media_id = t.media_id)")
        # A scan that left paths out, or found a root empty, did not look at all of its
        # roots: the rows an earlier scan glimpsed wait for one that does.
        whole = looked_whole and not totals.get("excluded")
        _keep_glimpses(con, scan_id, before, under if whole else "false", params if whole else [])
        _record_disks_seen(con, scan_id, seen)
        con.execute(
            """
            UPDATE scans SET finished_at = ?, status = 'completed', files_seen = ?, bytes_seen = ?,
                new_files = ?, changed_files = ?, moved_files = ?, missing_files = ?,
                revived_files = ?, unchanged_files = ?, hashed_files = ?, hashed_bytes = ?,
                pruned_files = ?, errors = ?, seconds = ?
            WHERE scan_id = ?
            """,
            [
                now, totals["files_seen"], totals["bytes_seen"], totals["new"] - (moved - earlier),
                totals["changed"] + edited, moved - edited - len(back) + totals["moved"], missing,
                totals["revived"] + len(back),
                max(0, totals["unchanged"] + totals["hashed"] - walked), totals["hashed_files"],
                totals["hashed_bytes"], pruned,
                totals["errors"], seconds, scan_id,
            ],
        )
        con.execute("DROP TABLE IF EXISTS mf_moves")
        con.execute("DROP TABLE IF EXISTS mf_gone")
        con.execute("DROP TABLE IF EXISTS mf_link_gone")
    return FinishCounts(moved=int(moved), missing=int(missing), pruned=int(pruned), moved_earlier=int(earlier),
                        moved_earlier_walked=int(walked),
                        retired=retired, taken=tuple(taken), back=len(back), prune_held=prune_held,
                        prune_kept=int(kept), edited=int(edited))


# The most folders a scan could not read that `_unread_hold` looks at one by one; past
# that, --prune holds back.
_UNREAD_LOOKED_AT = 64


def _unread_hold(con: duckdb.DuckDBPyConnection, scan_id: int, unlooked: bool) -> str | None:
    """What the folders this scan could not read (`walk` errors, and ignore files it could
    not read) hold back from `--prune`: None for every row, where the catalog knows files
    below one (they were not looked for, and a file may have moved in beside them), or one
    cannot be looked at itself; else SQL (`AND ...`, "" for none) that holds the missing
    rows last seen by a scan begun before the latest change of such a folder's list of
    names (its mtime: a file moved in sets it), less a minute. So a folder no scan could ever
    read, such as `lost+found`, does not hold back a prune forever. A link the walk could
    not follow (a loop) is no folder. Two cases are beyond this: a file moved straight
    into a folder below such a folder (which changes that folder's times alone, and it
    cannot be looked at), and a folder whose mtime was put back after the move."""
    # A folder it could not list; the folder of an ignore file it could not read; the
    # folder of a file it listed and could not look at (a folder it may list and not
    # enter: the file there may be one that moved).
    folders = sorted({bytes(path) if stage == "walk" else os.path.dirname(bytes(path)) for stage, path in con.execute(
        "SELECT stage, path_bytes FROM scan_errors WHERE scan_id = ? AND path_bytes IS NOT NULL "
        "AND (stage IN ('walk', 'stat') OR stage = 'ignore-file' AND ends_with(message, ?))",
        [scan_id, IGNORE_FILE_HELD]).fetchall()})
    if not folders:
        return ""
    if unlooked or len(folders) > _UNREAD_LOOKED_AT:
        return None
    latest: int | None = None
    for folder in folders:
        try:
            st = os.lstat(folder)
        except FileNotFoundError:
            continue  # gone since: nothing is in it
        except OSError:
            return None
        if not stat.S_ISDIR(st.st_mode):
            continue
        below, params = under_roots_sql([folder])
        if con.execute(f"SELECT count(*) FROM files WHERE {below}", params).fetchone()[0]:
            return None
        latest = max(latest or st.st_mtime_ns, st.st_mtime_ns)
    if latest is None:
        return ""
    return (" AND last_scan_id NOT IN (SELECT scan_id FROM scans WHERE started_at <= "
            f"make_timestamp({latest // 1000}) + INTERVAL 1 MINUTE)")


def end_scan(cat: Catalog, scan_id: int | None, status: str, seconds: float) -> None:
    """Close a scan that did not complete (interrupted or failed), its `errors` the rows
    it wrote to `scan_errors`. With no id (cut short while its row was being written),
    close any row still marked running: this process holds the write lock, so such a row
    is ours or belongs to a dead process."""
    # Never a scan that completed: a Ctrl-C right after its commit must not rewrite it.
    where, params = (("scan_id = ? AND status = 'running'", [scan_id]) if scan_id is not None
                     else ("status = 'running'", []))
    # A Ctrl-C can land between BEGIN and the `try` that would roll it back, leaving a
    # transaction open: roll it back and try once more.
    for _attempt in range(2):
        try:
            with cat.transaction() as con:
                con.execute(
                    f"UPDATE scans SET finished_at = ?, status = ?, seconds = ?, errors = (SELECT count(*) "
                    f"FROM scan_errors e WHERE e.scan_id = scans.scan_id) WHERE {where}",
                    [utcnow(), status, seconds, *params],
                )
            return
        except Exception:  # noqa: BLE001 - best effort while already failing
            try:
                cat.con.execute("ROLLBACK")
            except Exception:  # noqa: BLE001
                pass
