"""Full-text search: a tantivy index in the Rust core, stored beside the catalog
(`<catalog>.search/`), kept in step with the catalog by content digests.

Each present file is one document: its name, the folders of its path, its tags, the
names of its collections (manual, and smart ones it matches), and its metadata text
(title, artist, album, camera, lens, codec, format, year). `search_docs` records the digest of what the index holds for each
media_id; `refresh` indexes only documents whose digest changed (or are new) and removes
those whose file is gone, then records the new digests, after the index committed: a
crash in between only means the next refresh redoes those documents.

Queries: words (every one must match, by exact word, prefix, or one or two typos), and
filters `kind:`, `ext:`, `year:2019` or `year:2018..2020`, `tag:` (a whole subtree) and
`collection:` (manual or smart), ranked by BM25 with exact file-name matches first.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import _dbload  # noqa: F401 - before duckdb: holds Ctrl-C back while it loads

import duckdb
import pyarrow as pa

from .. import _core
from ..catalog import Catalog
from ..catalog.media_tables import library_within, links_sql, twins_sql, year_sql
from ..catalog.schema import KINDS, SEARCH_SYNCED
from ..catalog.store import streamed
from ..config import old_search_dir, search_dir
from ..errors import InvalidInputError, MediaForgeError, PathIOError, first_line, quoted
from ..fsops import leads_nowhere, link_to_nothing, rename_new, replace_atomically

# A file's year, as the `library` view has it (`year_sql`; `sd`: its linked sidecars'
# date, `a`: its sound's tags).
YEAR = f"({year_sql('m', 'sd', 'a')})::INTEGER"
# The date taken its linked sidecars give each file (for `YEAR`).
SIDECAR_DATES = """(SELECT l.media_id, min(s.taken_at) AS taken_at FROM sidecar_links l
                   JOIN sidecars s ON s.blake3 = l.sidecar_blake3 WHERE TRUE {only} GROUP BY l.media_id) sd"""

# A group's distinct values of `{col}`, sorted, a line each: what `string_agg(DISTINCT
# col, '\n' ORDER BY col)` gives (so the digests are those of earlier versions), in less
# time: its sort of each group cost the most (700,000 files with 2.8 million tags and 2.1
# million collection items: collections 0.9 s, not 2.2 s; tags 1.8 s, not 2.1 s).
LINES = "array_to_string(list_sort(list_distinct(list({col}))), '\n')"

# {only} narrows the documents to some media ids (a SQL condition on `{col}`, or nothing);
# the tag and collection aggregates are narrowed the same way, so updating a thousand
# documents never aggregates a million files' tags.
DOCS = """
WITH tg AS (SELECT media_id, """ + LINES.format(col="tag") + """ AS tags FROM tags
            WHERE TRUE {only_tg} GROUP BY media_id),
co AS (SELECT media_id, """ + LINES.format(col="name") + """ AS collections FROM (
           SELECT i.media_id, c.name FROM collection_items i JOIN collections c USING (collection_id)
           WHERE TRUE {only_co}{smart}
       ) GROUP BY media_id),
d AS (
    SELECT f.media_id, f.name, f.dir AS path, tg.tags, co.collections,
           """ + YEAR + """ AS year,
           concat_ws(' ', a.title, a.artist, a.album, a.album_artist, a.genre, a.composer, e.make, e.model, e.lens,
                     m.video_codec, m.audio_codec, m.format) AS meta_text,
           f.kind, lower(f.ext) AS ext
    FROM files f
    LEFT JOIN media m ON m.blake3 = f.blake3
    LEFT JOIN exif e ON e.blake3 = f.blake3
    LEFT JOIN tags_audio a ON a.blake3 = f.blake3
    LEFT JOIN tg ON tg.media_id = f.media_id
    LEFT JOIN co ON co.media_id = f.media_id
    LEFT JOIN {sidecar_dates} ON sd.media_id = f.media_id
    WHERE f.status = 'present' {only}
),
-- The year joins the metadata text a level up: inside `d` a bare `year` would bind to
-- tags_audio.year rather than to the computed column.
docs AS (SELECT *, concat_ws(' ', meta_text, year::VARCHAR) AS meta FROM d)
SELECT media_id::VARCHAR AS media_id, name, path, tags, collections, meta, kind, ext, year,
       hash(name, path, tags, collections, meta, kind, ext, year) AS digest
FROM docs
"""


def docs_sql(within: str = "", smart: Sequence[tuple[str, str]] = (), library: str = "library") -> str:
    """The documents query; `within` is a condition on `{col}` (empty: every file).
    `smart`: (name, checked predicate) of smart collections, whose names join the
    collection names of the files they match, evaluated now over `library` (the view, or
    a table of its rows for the files of `within`: see `_stage_changed`)."""
    library = f"{library} library" if library != "library" else "library"
    members = "".join(
        "\n           UNION ALL SELECT media_id, '" + name.replace("'", "''") + f"' FROM {library} WHERE ("
        + pred + "\n)" for name, pred in smart)
    return DOCS.format(only=within.format(col="f.media_id"), only_tg=within.format(col="media_id"),
                       only_co=within.format(col="i.media_id"), smart=members,
                       sidecar_dates=SIDECAR_DATES.format(only=within.format(col="l.media_id")))


def smart_collections(cat: Catalog, refused: list[str] | None = None,
                      clock: bool = False) -> list[tuple[str, str]]:
    """(name, predicate) of every smart collection whose name is a search word for the
    files it matches: its predicate still passes its checks, and does not read the clock.
    (The files "taken in the last 30 days" change by the day, with no document touched:
    their names would hold on to files that left. `collection:NAME` runs them live.)
    `refused`, where given, gets the names of those whose predicate no longer passes.
    `clock`: those that read the clock too, for a caller that runs them now (`info`)."""
    from .predicate import check_predicate, reads_clock

    out = []
    for name, pred in cat.con.sql("SELECT name, predicate FROM collections WHERE kind = 'smart' ORDER BY name").fetchall():
        try:
            checked = check_predicate(cat, pred)
        except InvalidInputError:
            # `collection show` says what is wrong with it; the index goes on without it.
            if refused is not None:
                refused.append(name)
            continue
        if clock or not reads_clock(cat, checked):
            out.append((name, checked))
    return out


def _working(cat: Catalog, smart: list[tuple[str, str]], within: str) -> list[tuple[str, str]]:
    """The smart collections whose condition runs on the documents in scope: one that
    fails on the data (a CAST of a name that is not a number) leaves the others indexed."""
    ok = []
    for name, pred in smart:
        try:
            library = f"{library_within(within)} library" if within else "library"
            cat.con.sql(f"SELECT count(*) FROM {library} WHERE ({pred}\n)").fetchall()
        except duckdb.Error:
            continue
        ok.append((name, pred))
    return ok


def index_dir(catalog_path: Path) -> Path:
    """Where the index of a catalog lives: beside it (see `config.search_dir`)."""
    return search_dir(catalog_path)


def _take_over_old_folder(cat: Catalog, catalog_path: Path, folder: Path) -> None:
    """The index an older version kept at `<stem>.search` for a catalog not named
    `.duckdb` (where another catalog of that stem might share it), renamed to this one's
    place when it holds this catalog's index (its id), so it is not built again."""
    old = old_search_dir(catalog_path)
    if old is None or os.path.lexists(folder) or not old.is_dir():
        return
    got = cat.con.execute("SELECT value FROM meta WHERE key = ?", [CATALOG_ID]).fetchall()
    try:
        ours = bool(got) and (old / OWNER).read_text().split()[:1] == [got[0][0]]
    except (OSError, UnicodeDecodeError):
        return
    if ours:
        with contextlib.suppress(OSError):  # (taken meanwhile, or not ours to rename: built anew)
            rename_new(old, folder)


@dataclass
class RefreshResult:
    indexed: int
    removed: int
    total: int
    seconds: float


@dataclass(frozen=True)
class IndexProgress:
    """Where an index update stands, for a progress bar: `phase` "index" while documents
    are made and handed to the index (`done` of `total`: the present files, those named
    for an update of some, of which the unchanged are passed over, so `done` may end
    short of it; None when every document is compared, few of which are expected to
    change), then "commit" while the index writes them."""

    phase: str
    done: int
    total: int | None
    elapsed: float


OnProgress = Callable[[IndexProgress], None] | None


# `meta` key: the last scan after which the index was brought in step with the catalog.
SYNCED = SEARCH_SYNCED
# `meta` key: the catalog's own id, also written into its index folder (`OWNER`): an index
# left by a catalog moved aside, or shared by `lib.duckdb` and `lib.db` (one stem), is
# another catalog's, and is rebuilt rather than searched.
CATALOG_ID = "catalog_id"
OWNER = "catalog-id"
# `meta` key, and the file in the index folder, holding the same random token, made anew
# by each commit to the index: a catalog or an index put back from a backup on its own
# holds another, and the index is rebuilt (`search_docs`, the catalog's record of what
# the index holds, would agree with the catalog, and no comparison would see the change).
TOKEN = "search_token"
TOKEN_FILE = "token"
# What the index's documents are made of, written after the catalog id in `OWNER`: an
# index another version wrote is rebuilt by the next search or scan, as if it were another
# catalog's. (Before 2, words were not Unicode-normalised; before 3, a final sigma, Turkish
# `İ` and the accents of Greek and Cyrillic were not folded, nor ties in a fixed order;
# before 4, long words were cut to 40 bytes before their accents were folded; before 5,
# words run together were not split into their parts, nor `tag:` keys' accents folded;
# before 6, the names of smart collections reading the clock were words of their files.)
INDEX_FORMAT = 6
# What opening an index whose files are not what this version writes says (search.rs).
DAMAGED = "is damaged or from another version"


def _ours(cat: Catalog, folder: Path) -> bool:
    """Whether the index in `folder` is this catalog's (and is there: tantivy's own record
    of it, `meta.json`, lost, an empty index would take its place)."""
    got = cat.con.execute("SELECT value FROM meta WHERE key = ?", [CATALOG_ID]).fetchall()
    token = cat.con.execute("SELECT value FROM meta WHERE key = ?", [TOKEN]).fetchall()
    try:
        if not (got and (folder / OWNER).read_text().split() == [got[0][0], f"format={INDEX_FORMAT}"]
                and (folder / "meta.json").is_file()):
            return False
        try:
            held = (folder / TOKEN_FILE).read_text().strip()
        except FileNotFoundError:
            held = None
    except (OSError, UnicodeDecodeError):
        return False
    # Neither has a token (an index an earlier version built, not committed to since):
    # theirs alike.
    return held == (token[0][0] if token else None)


def _write_token(folder: Path, token: str) -> None:
    """The index's side of the token `_ours` compares with the catalog's."""
    replace_atomically(os.fsencode(folder / TOKEN_FILE), f"{token}\n".encode())


def _check_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise PathIOError(f"the search index's place {folder} is taken by a file: move it away (or rename the "
                          "catalog)")
    dangling = link_to_nothing(str(folder))
    if dangling is not None:
        raise PathIOError(f"the search index's place {folder} is {leads_nowhere(dangling)}")


def refresh(cat: Catalog, catalog_path: Path, rebuild: bool = False,
            only: Sequence[str] | pa.Array | pa.ChunkedArray | None = None,
            on_progress: OnProgress = None) -> RefreshResult:
    """Bring the index in step with the catalog: only changed documents (all of them,
    from an empty index, with `rebuild`). `only`: the media ids a command just changed
    (tags, collections), so the others need not be compared at all. An index that cannot
    be written (its disk full, read-only) is a `PathIOError` naming it. `on_progress`
    gets an `IndexProgress` as documents are staged and as they are committed."""
    folder = index_dir(catalog_path)
    _take_over_old_folder(cat, catalog_path, folder)
    _check_folder(folder)
    try:
        try:
            return _refresh(cat, catalog_path, folder, rebuild, only, on_progress)
        except InvalidInputError as e:
            if rebuild or DAMAGED not in str(e):
                raise
        # Files damaged past what opening it checks, met as it was read or written: built
        # again from the catalog (once this block has let go of the handle that met them).
        return _refresh(cat, catalog_path, folder, True, None, on_progress)
    except InvalidInputError as e:
        if DAMAGED not in str(e):
            raise
        # Built from nothing and still "damaged": its own writes failed, tantivy's threads
        # dying on a full disk (a QA finding: "damaged, run search --reindex", exit 2,
        # which failed the same way).
        from ..meta.space import binary_size, free_bytes

        free = free_bytes(folder)
        room = ("is its disk full?" if free is None else f"{binary_size(free)} free on its disk"
                + (": is it full?" if free < 1 << 30 else ""))
        raise PathIOError(f"cannot write the search index {folder}: building it from the catalog failed "
                          f"({room})") from None
    except MediaForgeError:
        raise
    except OSError as e:  # (from the index's own writes: the catalog's are its own errors)
        full = " (its disk is full)" if e.errno == errno.ENOSPC or "No space left" in str(e) else ""
        raise PathIOError(f"cannot write the search index {folder}{full}: {e.strerror or e}") from None


def _refresh(cat: Catalog, catalog_path: Path, folder: Path, rebuild: bool,
             only: Sequence[str] | pa.Array | pa.ChunkedArray | None, on_progress: OnProgress) -> RefreshResult:
    t0 = time.perf_counter()
    fresh = rebuild or not _ours(cat, folder)
    if fresh:  # rebuilt, deleted, or another catalog's: start from nothing
        # The catalog first: one that cannot be written (read-only, a full disk) leaves the
        # index as it was, still there to search, rather than deleted and never rebuilt.
        # A token the old index does not hold: cut short anywhere from here (kill -9, in the
        # middle of deleting the old index too), the next scan or search finds the index
        # not this catalog's and builds it again; this one ends with the token on both sides.
        fresh_token = os.urandom(12).hex()
        with cat.transaction() as con:
            # Not in step until this rebuild ends.
            con.execute("DELETE FROM meta WHERE key = ?", [SYNCED])
            con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [TOKEN, fresh_token])
            con.execute("DELETE FROM search_docs")
            con.execute("INSERT INTO meta SELECT ?, uuid()::VARCHAR WHERE NOT EXISTS "
                        "(SELECT 1 FROM meta WHERE key = ?)", [CATALOG_ID, CATALOG_ID])
        shutil.rmtree(folder, ignore_errors=True)
        only = None
    try:
        index = _core.SearchIndex(folder)
    except InvalidInputError as e:
        if fresh or DAMAGED not in str(e):
            raise
        # Its files are not what this version writes (a crash in the middle of a write, a
        # hand edit): built again from the catalog, as a missing index is.
        return refresh(cat, catalog_path, rebuild=True, on_progress=on_progress)
    if fresh:
        ((owner,),) = cat.con.execute("SELECT value FROM meta WHERE key = ?", [CATALOG_ID]).fetchall()
        (folder / OWNER).write_text(f"{owner} format={INDEX_FORMAT}\n")
        _write_token(folder, fresh_token)
    ids = only if isinstance(only, (pa.Array, pa.ChunkedArray)) else pa.array(list(only or []), pa.string())
    if only is not None and len(ids) == 0:
        # Nothing named (a rescan that changed nothing): nothing to compare, and comparing
        # it would still build every document of the library first.
        index.discard_staged()
        return RefreshResult(0, 0, int(index.num_docs()), time.perf_counter() - t0)
    scope = pa.table({"media_id": ids})
    within = "AND {col} IN (SELECT media_id::UUID FROM mf_only)" if only is not None else ""
    with cat.registered("mf_only", scope):
        # The bar's total: the documents there can be (present files; of those named, for
        # an update of some), of which those unchanged are passed over. None when every
        # document is compared and few are expected to have changed.
        total = None if only is None and not fresh else int(cat.con.execute(
            f"SELECT count(*) FROM files WHERE status = 'present' {within.format(col='media_id')}").fetchall()[0][0])
        staging = _Staging(on_progress, total, t0)
        refused: list[str] = []  # smart collections whose condition no longer passes its checks
        smart = smart_collections(cat, refused)
        gone = [str(r[0]) for r in cat.con.sql(f"""
            SELECT s.media_id FROM search_docs s
            WHERE NOT EXISTS (SELECT 1 FROM files f WHERE f.media_id = s.media_id AND f.status = 'present')
            {within.format(col='s.media_id')}
        """).fetchall()]
        # Smart collections whose condition failed on the data, or its checks (a column a
        # later version's `library` view no longer has): names no document holds.
        left_out: list[str] = sorted(refused)
        try:
            state = _stage_changed(cat, index, within, smart, gone, staging)
        except duckdb.Error:
            index.discard_staged()
            if not smart:
                raise
            working = _working(cat, smart, within)
            left_out = sorted({*refused, *(name for name, _ in smart if name not in {n for n, _ in working})})
            try:
                state = _stage_changed(cat, index, within, working, gone, staging)
            except BaseException:
                index.discard_staged()
                raise
        except BaseException:
            index.discard_staged()
            raise
        if only is not None and left_out != _left_out(cat):
            # A smart collection's condition began or stopped failing on the data, as this
            # update's documents show: whether it does is a matter of every file (a name
            # its CAST cannot read came or went), so it is asked of every file.
            every = _working(cat, smart, "") if smart else []
            left_out = sorted({*refused, *(name for name, _ in smart if name not in {n for n, _ in every})})
            index.discard_staged()
            state = None
            if left_out == _left_out(cat):
                try:  # as it was: these documents staged with the collections that work on every file
                    state = _stage_changed(cat, index, within, every, gone, staging)
                except BaseException:
                    index.discard_staged()
                    raise
    if state is None:
        # Every document holds its name or not, not only those this update looked at:
        # every document is compared (which marks the index in step by itself).
        whole = refresh(cat, catalog_path, on_progress=on_progress)
        return RefreshResult(whole.indexed, whole.removed, whole.total, time.perf_counter() - t0)
    if state.num_rows or gone:
        try:
            staging.committing()
        except BaseException:  # (a Ctrl-C as the bar draws): nothing changed yet
            index.discard_staged()
            raise
        # The token goes first: a crash before the new one is recorded on both sides
        # leaves them apart, and the index is rebuilt. A commit that fails (a full disk,
        # Ctrl-C) leaves the index as it was, and the token is put back.
        old_token = cat.con.execute("SELECT value FROM meta WHERE key = ?", [TOKEN]).fetchall()
        with cat.transaction() as con:
            con.execute("DELETE FROM meta WHERE key = ?", [TOKEN])
        try:
            index.commit_staged()
        except BaseException:
            if old_token:
                with contextlib.suppress(Exception), cat.transaction() as con:
                    con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [TOKEN, old_token[0][0]])
            raise
        token = os.urandom(12).hex()
        _write_token(folder, token)
        gone_t = pa.table({"media_id": pa.array(gone, pa.string())})
        with cat.registered("mf_state", state), cat.registered("mf_gone", gone_t), cat.transaction() as con:
            con.execute("DELETE FROM search_docs WHERE media_id IN (SELECT media_id::UUID FROM mf_state) "
                        "OR media_id IN (SELECT media_id::UUID FROM mf_gone)")
            con.execute("INSERT INTO search_docs SELECT media_id::UUID, digest FROM mf_state")
            con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [TOKEN, token])
    else:
        index.discard_staged()  # empty batches alone: nothing to commit
    if only is None:  # every document compared: in step as of the latest scan
        _mark_synced(cat, cat.con.execute("SELECT max(scan_id) FROM scans").fetchall()[0][0])
        if left_out != _left_out(cat):
            with cat.transaction() as con:
                con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [LEFT_OUT, json.dumps(left_out)])
    return RefreshResult(state.num_rows, len(gone), int(index.num_docs()), time.perf_counter() - t0)


# `meta` key: the smart collections whose condition failed on the data at the index's last
# full update (a JSON list of names), which the documents then left out.
LEFT_OUT = "search_smart_left_out"


def _left_out(cat: Catalog) -> list[str]:
    try:
        got = json.loads(cat.meta_value(LEFT_OUT) or "[]")
    except ValueError:
        return []
    return got if isinstance(got, list) else []


# Documents handed to the index at a time (see `_stage_changed`).
PART = 100_000


class _Staging:
    """The progress of one update, reported to its `on_progress` (if any)."""

    def __init__(self, on_progress: OnProgress, total: int | None, t0: float) -> None:
        self.on_progress, self.total, self.t0, self.done = on_progress, total, t0, 0

    def _say(self, phase: str) -> None:
        if self.on_progress is not None:
            self.on_progress(IndexProgress(phase, self.done, self.total, time.perf_counter() - self.t0))

    def restart(self) -> None:
        """Staging begins (again, after a failed try was discarded)."""
        self.done = 0
        self._say("index")

    def staged(self, n: int) -> None:
        self.done += n
        self._say("index")

    def committing(self) -> None:
        self._say("commit")


def _stage_changed(cat: Catalog, index: _core.SearchIndex, within: str, smart: list[tuple[str, str]],
                   gone: list[str], staging: _Staging) -> pa.Table:
    """Stage the changed documents in the index, as DuckDB streams them, PART at a time,
    and the removal of `gone`: a command that touches a million files never holds all
    their documents at once. Returns (media_id, digest) of what was staged."""
    library = "library"
    if within and smart:
        # The view's rows for these files, made once for every smart collection: the view
        # filtered from outside links every sidecar of the library first (0.8 s a smart
        # collection, for a one-file update of a library of 60,000 sidecars).
        cat.con.execute(f"CREATE OR REPLACE TEMP TABLE mf_library AS SELECT * FROM {library_within(within)} library")
        library = "mf_library"
    cat.con.execute(f"CREATE OR REPLACE TEMP VIEW mf_docs AS {docs_sql(within, smart, library)}")
    try:
        staging.restart()
        reader = cat.con.sql("""
            SELECT d.* FROM mf_docs d
            WHERE NOT EXISTS (SELECT 1 FROM search_docs s WHERE s.media_id = d.media_id::UUID
                              AND s.digest = d.digest)
        """).to_arrow_reader(PART)
        with contextlib.closing(reader):  # closed before the view goes, even when staging failed
            states = [reader.schema.empty_table().select(["media_id", "digest"])]
            if gone:
                index.stage(reader.schema.empty_table().drop_columns(["digest"]), gone)
            for batch in streamed(reader):  # an error on the way is DuckDB's, for the caller's fallback
                part = pa.Table.from_batches([batch])
                index.stage(part.drop_columns(["digest"]))
                states.append(part.select(["media_id", "digest"]))
                staging.staged(part.num_rows)
            return pa.concat_tables(states)
    finally:
        cat.con.execute("DROP VIEW IF EXISTS mf_docs")
        cat.con.execute("DROP TABLE IF EXISTS mf_library")


def in_step(cat: Catalog, catalog_path: Path) -> bool:
    """False when the index is missing, its last full update did not finish (so
    documents may be absent from it), or a scan since left it behind (`scan --no-index`,
    a scan cut short), while the catalog has scans."""
    if not _ours(cat, index_dir(catalog_path)):
        return False
    ((latest,),) = cat.con.execute("SELECT max(scan_id) FROM scans").fetchall()
    if latest is None:
        return True
    return bool(cat.con.execute("SELECT 1 FROM meta WHERE key = ? AND value = ?", [SYNCED, str(latest)]).fetchall())


def _mark_synced(cat: Catalog, scan_id: int | None) -> None:
    if scan_id is not None:
        with cat.transaction() as con:
            con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [SYNCED, str(scan_id)])


def hold_step(cat: Catalog, catalog_path: Path) -> str | None:
    """Before tags or collections change: take the index's in-step mark off (and return
    it, for `refresh_changed` to put back). A command cut short between its change and
    the index's update (kill -9, a full disk) so leaves the index marked behind, and the
    next search or scan compares every document. With no index beside this name of the
    catalog (one reached through a hard link, whose index is beside its other name), the
    mark is taken off for good: that index, which this command cannot update, compares
    every document at its next search."""
    got = cat.con.execute("SELECT value FROM meta WHERE key = ?", [SYNCED]).fetchall()
    if not got:
        return None
    with cat.transaction() as con:
        con.execute("DELETE FROM meta WHERE key = ?", [SYNCED])
    return got[0][0] if index_dir(catalog_path).exists() else None


def refresh_changed(cat: Catalog, catalog_path: Path, ids: Sequence[str] | None, held: str | None,
                    on_progress: OnProgress = None) -> None:
    """After tags or collections changed: the documents of `ids`, then the in-step mark
    `hold_step` took off put back; or, with `ids` None, every document by digest, which
    marks the index in step as of the latest scan by itself."""
    if index_dir(catalog_path).exists():
        refresh(cat, catalog_path, only=ids, on_progress=on_progress)
    if held is not None and ids is not None and cat.meta_value(SYNCED) is None:
        unhold_step(cat, held)  # (a refresh that compared every document marked it in step itself)


def unhold_step(cat: Catalog, held: str) -> None:
    """Put back the in-step mark `hold_step` took off (nothing changed after all)."""
    with cat.transaction() as con:
        con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [SYNCED, held])


# The media files that sidecars the scan added, changed or found gone describe where they
# are now (a sidecar found gone keeps its path): a deleted XMP no longer dates its photo.
# (`write_files` gives those a moved or rewritten sidecar described where it was.)
_TOUCHED_SIDECARS_LINKS = links_sql(
    "SELECT media_id, path, blake3, dir, name, path_raw FROM files WHERE kind = 'sidecar' "
    "AND media_id::VARCHAR IN (SELECT media_id FROM mf_touched)")
# The media files that present sidecars whose metadata was extracted since scan $sid began
# describe (the `sidecar_links` view, filtered, but linking only those sidecars: the view
# links every sidecar of the library first, a second per million files).
_EXTRACTED_SIDECARS_LINKS = links_sql(
    "SELECT media_id, path, blake3, dir, name, path_raw FROM files WHERE kind = 'sidecar' AND status = 'present' "
    "AND blake3 IN (SELECT blake3 FROM media WHERE extracted_at >= (SELECT started_at FROM scans WHERE scan_id = $sid))")


def refresh_after_scan(cat: Catalog, catalog_path: Path, scan_id: int, touched: Sequence[pa.Array] = (),
                       more: Sequence[str] = (), on_progress: OnProgress = None) -> RefreshResult:
    """After scan `scan_id`. When the index was in step right before it (no scan since its
    last update: none ran with --no-index or was cut short), only the documents the scan
    can have changed: files it added, rewrote or found gone (`touched`), files whose
    metadata was extracted since it started, `more` (files whose tags an XMP import
    changed), and the twins of the files added or touched (`twins_sql`: a sidecar may
    have gone from them to the file, or back). Otherwise every document, by digest."""
    synced = cat.con.execute("SELECT value FROM meta WHERE key = ?", [SYNCED]).fetchall()
    ((before,),) = cat.con.execute("SELECT max(scan_id) FROM scans WHERE scan_id < ?", [scan_id]).fetchall()
    if not _ours(cat, index_dir(catalog_path)) or not synced or before is None or synced[0][0] != str(before):
        return refresh(cat, catalog_path, on_progress=on_progress)
    given = pa.table({"media_id": pa.chunked_array([*touched, pa.array(list(more), pa.string())], pa.string())})
    with cat.registered("mf_touched", given):
        ids = cat.con.sql("""
            SELECT media_id FROM mf_touched
            UNION SELECT media_id::VARCHAR FROM files WHERE first_scan_id = $sid
            UNION SELECT f.media_id::VARCHAR FROM files f JOIN media m ON m.blake3 = f.blake3
                  WHERE m.extracted_at >= (SELECT started_at FROM scans WHERE scan_id = $sid)
            UNION SELECT media_id::VARCHAR FROM (""" + _EXTRACTED_SIDECARS_LINKS + """)
            UNION SELECT media_id::VARCHAR FROM (""" + _TOUCHED_SIDECARS_LINKS + """)
            UNION """ + twins_sql("SELECT media_id::UUID FROM mf_touched UNION SELECT media_id FROM files "
                                  "WHERE first_scan_id = $sid") + """
            """, params={"sid": scan_id}).to_arrow_table().column(0)
    result = refresh(cat, catalog_path, only=ids, on_progress=on_progress)
    _mark_synced(cat, scan_id)
    return result


def search(cat: Catalog, catalog_path: Path, query: str, limit: int = 20) -> pa.Table:
    """Ranked results: score, path, kind, year, tags, media_id, path_raw (the exact bytes
    of a path that is not valid UTF-8, else null)."""
    from .collection import member_ids, members

    if not (query or "").strip():
        raise InvalidInputError("empty search: give words and/or filters, e.g. \"paris 2019 kind:image\"")
    if limit < 1:
        raise InvalidInputError("--limit must be at least 1")
    words = _core.search_words(query)  # (as typed, value, key, excluding): the index's own reading
    for _, value, key, _excluding in words:
        if key in ("kind", "collection", "tag") and not value:
            raise InvalidInputError(f"filter {key}: needs a value")
        if key == "tag" and not value.replace("/", "").strip():  # `tag:/` names no tag: it would match nothing
            raise InvalidInputError(f"filter tag: {quoted(value)} names no tag (a tag's parts are separated by /)")
        if key == "kind" and value.lower() not in KINDS:
            raise InvalidInputError(f"unknown kind {quoted(value)} in the search: one of {', '.join(KINDS)}")
        if key is None and not any(c.isalnum() for c in value):
            # Words are runs of letters and digits: `...`, `*` or an emoji matches none, and
            # the search found nothing (or, beside a filter, was left out unsaid).
            raise InvalidInputError(f"{quoted(value)} holds no letter or digit to search for (words are runs of "
                                    "letters and digits; punctuation, symbols and emoji are left out)")
    folder = index_dir(catalog_path)
    if not folder.exists():
        raise InvalidInputError(f"no search index at {folder}: run `mediaforge search --reindex` (or a scan) first")
    if not _ours(cat, folder):
        raise InvalidInputError(f"the search index at {folder} is another catalog's or another version's: run "
                                "`mediaforge search --reindex`")
    # Several collections are alternatives, as several values of any filter are: their
    # members together. The rest goes to the index as typed (quotes and escapes for its
    # own lexer).
    # (An excluded collection goes to the index, which says it cannot exclude one.)
    named = list(dict.fromkeys(value for _, value, key, excluding in words
                               if key == "collection" and not excluding))  # each once
    text = " ".join(raw for raw, _, key, excluding in words if key != "collection" or excluding)
    if not text:
        # Collections alone: their members, each collection's in its order, the first's
        # first, with their years from the catalog. The first `limit` of each are enough:
        # those of the ones before it stand for at most as many of its own.
        ids = list(dict.fromkeys(m for name in named for m in members(cat, name, any_case=True, limit=limit)))[:limit]
        hits = pa.record_batch({"media_id": pa.array(ids, pa.string()),
                                "score": pa.array([1.0] * len(ids), pa.float32()),
                                "year": pa.array([None] * len(ids), pa.int32())})
    else:
        # Ranked by the index among the members, which it takes as a set.
        restrict = pa.table({"media_id": pa.chunked_array(
            [c for name in named for c in member_ids(cat, name, any_case=True).cast(pa.string()).chunks],
            pa.string())}) if named else None
        try:
            hits = pa.record_batch(_core.SearchIndex(folder).search(text, limit, restrict))
        except PathIOError as e:
            if not any(f"os error {n})" in str(e) for n in (errno.EROFS, errno.EACCES, errno.EPERM)):
                raise
            # Even reading takes tantivy's lock file in the folder.
            raise PathIOError(f"{first_line(e)}: the search index cannot be read where it cannot be written (its "
                              f"lock file); copy the catalog and its {folder.name} folder somewhere writable to "
                              "search them") from None
    ranked = pa.table({"rank": pa.array(range(1, hits.num_rows + 1), pa.int32()),
                       "media_id": hits.column("media_id"), "score": hits.column("score"),
                       "year": hits.column("year")})
    # Only the hits' rows: joining the whole `library` view would aggregate every file's
    # tags and metadata to keep twenty of them. The index knows each hit's year, so the
    # metadata tables are read only for a collection listed without words.
    year, media = ("h.year", "") if text else (
        YEAR, "LEFT JOIN media m ON m.blake3 = f.blake3 LEFT JOIN tags_audio a ON a.blake3 = f.blake3 LEFT JOIN "
        + SIDECAR_DATES.format(only="AND l.media_id IN (SELECT media_id FROM h)") + " ON sd.media_id = f.media_id")
    with cat.registered("mf_hits", ranked):
        return cat.con.sql(f"""
            WITH h AS (SELECT rank, score, year, media_id::UUID AS media_id FROM mf_hits),
            f AS (SELECT * FROM files WHERE status = 'present' AND media_id IN (SELECT media_id FROM h)),
            tg AS (SELECT media_id, list(tag ORDER BY tag) AS tags FROM tags
                   WHERE media_id IN (SELECT media_id FROM h) GROUP BY media_id)
            SELECT h.score, f.path, f.kind, {year} AS year, coalesce(tg.tags, []) AS tags,
                   f.media_id::VARCHAR AS media_id, f.path_raw
            FROM h JOIN f USING (media_id) LEFT JOIN tg USING (media_id) {media}
            ORDER BY h.rank""").to_arrow_table()
