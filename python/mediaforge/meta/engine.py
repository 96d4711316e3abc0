"""Run metadata extraction, thumbnailing and near-duplicate fingerprinting over the
catalog: pick the contents that need it, feed them to the worker pool, and write the
results back in batches.

Fingerprints are their own stage. An extraction makes them by default, in the same
decode; with `fingerprints=False` it reads metadata only (several times faster on
photos) and marks the catalog, and `fingerprint` fills the gaps later: `meta` always
does at its end, `scan` when the catalog is marked, and `dupes --similar` for its kind
before it compares.
"""

from __future__ import annotations

import dataclasses
import errno
import itertools
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ..catalog import Catalog
from ..catalog.meta_writes import (FINGERPRINTED_KINDS, fingerprints_pending, nothing_to_extract_after,
                                   other_copies, pending_extraction, pending_fingerprints, set_extracted_through,
                                   set_fingerprints_pending, thumb_candidates, write_fingerprints, write_results,
                                   write_thumbs)
from ..config import (DEFAULT_THUMB_SIZE, check_thumb_size, check_timeout, min_free_bytes, sweep_thumb_temporaries,
                      thumbs_dir, worker_count, worker_memory)
from ..errors import InvalidInputError, PathIOError
from ..fsops import file_in_the_way, leads_nowhere, link_to_nothing
from .readers import CRASHED, ERROR, OK, PARTIAL, TIMEOUT, UNSUPPORTED, Task
from .pool import WorkerPool


@dataclass(frozen=True)
class ExtractConfig:
    """What to extract and how. `workers` defaults to all cores; `timeout` is per file."""

    meta: bool = True
    thumbs: bool = True
    fingerprints: bool = True
    # None: the size most of the catalog's thumbnails have (DEFAULT_THUMB_SIZE for a catalog with
    # none), so thumbnails made later match those made before at another size.
    thumb_size: int | None = None
    workers: int | None = None
    timeout: float = 30.0
    retry_failed: bool = False
    flush_rows: int = 2000
    flush_seconds: float = 2.0

    def __post_init__(self) -> None:
        check_thumb_size(self.thumb_size)
        check_timeout(self.timeout)
        worker_memory()  # a bad MEDIAFORGE_WORKER_MEMORY is a usage error before any work
        if self.thumbs:
            min_free_bytes()  # a bad MEDIAFORGE_MIN_FREE is a usage error before any work


@dataclass(frozen=True)
class ExtractProgress:
    done: int
    total: int
    errors: int
    elapsed: float


@dataclass(frozen=True)
class ExtractSummary:
    """The outcome of one extraction (or thumbnail) run."""

    files: int
    ok: int
    partial: int
    unsupported: int
    failed: int
    thumbs: int
    errors: int
    workers_replaced: int
    seconds: float
    fingerprinted: int = 0  # contents the catch-up after the extraction fingerprinted
    changed: int = 0  # left alone: the file changed since the scan (the next scan sees to it)
    fingerprint_failed: int = 0  # contents the catch-up could not fingerprint (see meta_errors)
    # Thumbnails not written because their disk had under `min_free` bytes free.
    thumbs_low_space: int = 0
    # Thumbnails not written because their folder refused them (read-only, not this user's).
    thumbs_refused: int = 0
    min_free: int = 0
    thumb_size: int = 0  # the long side thumbnails were made at (0: none made)

    def __add__(self, other: ExtractSummary) -> ExtractSummary:
        """This run, then a fingerprint catch-up (`other`): the fingerprints it made count
        as fingerprinted, the ones it could not as fingerprint_failed (not as files of
        this run that failed), its errors add up."""
        return ExtractSummary(
            files=self.files, ok=self.ok, partial=self.partial, unsupported=self.unsupported,
            failed=self.failed, thumbs=self.thumbs, errors=self.errors + other.errors,
            workers_replaced=self.workers_replaced + other.workers_replaced, seconds=self.seconds + other.seconds,
            fingerprinted=self.fingerprinted + other.ok, changed=self.changed + other.changed,
            fingerprint_failed=self.fingerprint_failed + other.failed,
            thumbs_low_space=self.thumbs_low_space + other.thumbs_low_space,
            thumbs_refused=self.thumbs_refused + other.thumbs_refused, min_free=self.min_free,
            thumb_size=self.thumb_size)

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


ProgressFn = Callable[[ExtractProgress], None]
# How many copies of one content a run reads, at most, before it leaves the content to the
# next scan: the first one the catalog lists, then others when each in turn turns out to
# be changed, gone or replaced since the scan.
COPIES_TRIED = 16
# Writes a batch of results; returns how many read `ok` the catalog keeps `partial` (for
# what an earlier extraction found that this one did not look at), or None.
_Writer = Callable[[Catalog, list[dict[str, Any]], dict[str, bytes]], int | None]


def _tasks(rows: pa.Table, config: ExtractConfig, root: str, min_free: int,
           paths: dict[str, bytes]) -> Iterator[Task]:
    """One task a row, made as the workers need them; each one's path goes in `paths`
    (content -> path, for the error rows) until its result is written."""
    made = "fingerprinted" in rows.column_names  # contents whose fingerprint is there already
    for batch in rows.to_batches(max_chunksize=10_000):
        columns = ("blake3", "path_bytes", "kind", "size", "mtime_ns", "ctime_ns")
        done = batch.column("fingerprinted").to_pylist() if made else itertools.repeat(False)
        for (h, p, k, size, mtime, ctime), fingerprinted in zip(zip(*(batch.column(c).to_pylist() for c in columns)),
                                                                 done):
            paths[h] = p
            yield Task(h, p, k, meta=config.meta, thumbs=config.thumbs,
                       fingerprints=config.fingerprints and not fingerprinted,
                       thumb_size=config.thumb_size, thumbs_root=root, size=size, mtime_ns=mtime, ctime_ns=ctime,
                       min_free=min_free)


def _status(result: dict[str, Any], config: ExtractConfig) -> str:
    """How one file went: the extraction's status; for a thumbnail-only run, whether the
    thumbnail was made; for a fingerprint-only run, whether a fingerprint was made
    (a flat picture's thumbnail is made, though its fingerprint is not)."""
    if result["media"] is not None:
        return result["media"]["status"]
    if config.thumbs:
        if result["thumb"] is None:  # held back for want of room, or refused by its folder, is not a failure
            return PARTIAL if result.get("low_space") or result.get("thumb_refused") else ERROR
        return OK
    made = result["hashes"] or result["video_hashes"] or result["audio_hash"]
    return OK if made else ERROR


def _written(cat: Catalog, write: _Writer, pending: list[dict[str, Any]],
             paths: dict[str, bytes], counts: dict[str, int]) -> int:
    """Write `pending`, counting as `partial` the results read `ok` that the catalog keeps
    so. Returns the error entries the write added (values that did not fit a column)."""
    before = sum(len(r["errors"]) for r in pending)
    kept_partial = write(cat, pending, paths) or 0
    for r in pending:
        paths.pop(r["blake3"], None)
    counts[OK] -= kept_partial
    counts[PARTIAL] += kept_partial
    return sum(len(r["errors"]) for r in pending) - before


def _run(cat: Catalog, select: Callable[[], pa.Table], config: ExtractConfig, write: _Writer,
         on_progress: ProgressFn | None, prestart: bool = True) -> ExtractSummary:
    """`prestart`: start the workers (a fresh interpreter each) while the catalog is
    queried; otherwise query first, and start no worker when nothing is selected."""
    started = time.monotonic()
    counts = {OK: 0, PARTIAL: 0, UNSUPPORTED: 0, ERROR: 0, TIMEOUT: 0, CRASHED: 0}
    done = thumbs = errors = total = skipped = low_space = refused = 0
    min_free = min_free_bytes() if config.thumbs else 0
    pending: list[dict[str, Any]] = []
    paths: dict[str, bytes] = {}
    last_flush = last_report = time.monotonic()
    rows = None if prestart else select()
    if rows is not None and rows.num_rows == 0:
        # Nothing to extract (a rescan): the floor as for any run; the thumbnail size only
        # when one was asked for (settling it would query the catalog for nothing).
        return ExtractSummary(0, 0, 0, 0, 0, 0, 0, 0, time.monotonic() - started, min_free=min_free,
                              thumb_size=config.thumb_size or 0 if config.thumbs else 0)
    config = sized(cat, config)

    pool = WorkerPool(worker_count(config.workers), config.timeout)
    try:
        with pool:
            pool.start()
            if rows is None:
                rows = select()
            total = rows.num_rows
            fingerprinted = "fingerprinted" in rows.column_names
            # Contents whose path was changed, gone or replaced since the scan -> the paths
            # tried: another present copy of the same bytes is read in the next round.
            tried: dict[str, set[bytes]] = {}
            for _ in range(COPIES_TRIED):  # each round reads another copy of each content left
                if not rows.num_rows:
                    break
                stale: set[str] = set()
                for result in pool.map(_tasks(rows, config, str(thumbs_dir(cat.path)), min_free, paths),
                                       rows.num_rows):
                    if result.get("stale"):
                        h = result["blake3"]
                        tried.setdefault(h, set()).add(paths.pop(h, b""))
                        stale.add(h)
                        continue
                    pending.append(result)
                    done += 1
                    errors += len(result["errors"])
                    thumbs += result["thumb"] is not None
                    low_space += bool(result.get("low_space"))
                    refused += bool(result.get("thumb_refused"))
                    status = _status(result, config)
                    counts[status] = counts.get(status, 0) + 1
                    now = time.monotonic()
                    if len(pending) >= config.flush_rows or now - last_flush >= config.flush_seconds:
                        errors += _written(cat, write, pending, paths, counts)
                        pending, last_flush = [], now
                    if on_progress is not None and now - last_report >= 0.1:
                        on_progress(ExtractProgress(done, total - skipped, errors, now - started))
                        last_report = now
                again = {h: tried[h] for h in stale if len(tried[h]) < COPIES_TRIED}
                rows = other_copies(cat, again, fingerprinted) if again else pa.table({})
                # One with no copy left to read: the next scan sees to it.
                skipped += len(stale) - rows.num_rows
    finally:
        # Whatever stopped the run (Ctrl-C, a full disk), keep every finished result.
        if pending:
            errors += _written(cat, write, pending, paths, counts)
    if on_progress is not None:
        on_progress(ExtractProgress(done, total - skipped, errors, time.monotonic() - started))
    return ExtractSummary(
        files=done, ok=counts[OK], partial=counts[PARTIAL], unsupported=counts[UNSUPPORTED],
        failed=counts[ERROR] + counts[TIMEOUT] + counts[CRASHED], thumbs=thumbs, errors=errors,
        workers_replaced=pool.replaced, seconds=time.monotonic() - started, changed=skipped,
        thumbs_low_space=low_space, thumbs_refused=refused, min_free=min_free,
        thumb_size=config.thumb_size if config.thumbs else 0,
    )


def extract(cat: Catalog, config: ExtractConfig, on_progress: ProgressFn | None = None,
            catch_up: bool = False, prestart: bool = True, after_scan: tuple[int, bool] | None = None
            ) -> ExtractSummary:
    """Extract metadata (and thumbnails, and fingerprints) for every present content the
    catalog has no `media` row for yet. A rescan of an unchanged library extracts
    nothing. Then, with fingerprints on, fingerprint the contents extracted earlier
    without them: when an extraction with `fingerprints=False` marked the catalog, or
    always with `catch_up` (`meta`: also contents from before a fingerprint existed).
    `prestart` as for `_run` (a scan: False, for a rescan mostly finds nothing new).
    `after_scan`: (id, wrote contents) of the scan this extraction follows, which then
    looks for nothing when nothing can be waiting (`nothing_to_extract_after`), and is
    recorded as leaving nothing when run whole."""
    if not config.fingerprints:
        set_fingerprints_pending(cat, True)
    # Contents whose fingerprints are there already: their tasks make none, and they stay.
    fingerprinted: set[str] = set()

    def write(cat: Catalog, results: list[dict[str, Any]], paths: dict[str, bytes]) -> int:
        return write_results(cat, results, paths, keep_thumbs=not config.thumbs,
                             keep_fingerprints=fingerprinted if config.fingerprints else True)

    def select() -> pa.Table:
        if after_scan is not None and not after_scan[1] and not config.retry_failed \
                and nothing_to_extract_after(cat, after_scan[0]):
            return pa.table({})
        rows = pending_extraction(cat, config.retry_failed)
        fingerprinted.update(rows.filter(rows.column("fingerprinted")).column("blake3").to_pylist())
        if config.thumbs and (after_scan is None or rows.num_rows):
            # `meta`, or a scan with contents to extract: what killed runs left goes.
            sweep_thumb_temporaries(thumbs_dir(cat.path))
        return rows

    summary = _run(cat, select, config, write, on_progress, prestart=prestart)
    if after_scan is not None and not summary.changed:
        # Every content selected was extracted (or its failure recorded); one changed since
        # the scan is the next scan's to write, and to extract.
        set_extracted_through(cat, after_scan[0])
    if not config.fingerprints or not (catch_up or fingerprints_pending(cat)):
        return summary
    # Not told to retry: with `retry_failed` the extraction just tried, fingerprints and
    # all, every content not read whole; pixels it found not to decode would fail again,
    # under a second error row that says the same.
    return summary + fingerprint(cat, dataclasses.replace(config, retry_failed=False), on_progress=on_progress)


def fingerprint(cat: Catalog, config: ExtractConfig, kinds: tuple[str, ...] = FINGERPRINTED_KINDS,
                on_progress: ProgressFn | None = None) -> ExtractSummary:
    """Make the near-duplicate fingerprints (`image_hashes`, `video_hashes`,
    `audio_hashes`) that extracted contents of these `kinds` lack, as after an extraction
    with `fingerprints=False`. A content whose fingerprint failed is not tried again
    (its error is in `meta_errors`, stage 'fingerprint' or 'decode') unless
    `config.retry_failed`. Starts no worker when every fingerprint is there."""
    only = ExtractConfig(meta=False, thumbs=False, fingerprints=True, workers=config.workers, timeout=config.timeout,
                         flush_rows=config.flush_rows, flush_seconds=config.flush_seconds)
    summary = _run(cat, lambda: pending_fingerprints(cat, kinds, config.retry_failed), only, write_fingerprints,
                   on_progress, prestart=False)
    if set(kinds) >= set(FINGERPRINTED_KINDS) and not summary.changed:
        # Every kind is done (or its failures recorded): nothing is left for a scan to look
        # for. A file changed or moved since its scan was left alone: the next scan's turn.
        set_fingerprints_pending(cat, False)
    return summary


def catalog_thumb_size(cat: Catalog) -> int | None:
    """The long side most of the catalog's thumbnails have (their folder, `<size>/`), or
    None when it has none."""
    got = cat.con.sql("SELECT split_part(thumb, '/', 1) AS s, count(*) AS n FROM media WHERE thumb IS NOT NULL "
                      "GROUP BY s ORDER BY n DESC, s LIMIT 1").fetchall()
    return int(got[0][0]) if got and got[0][0].isdigit() else None


def sized(cat: Catalog, config: ExtractConfig) -> ExtractConfig:
    """`config` with its thumbnail size settled: as given, else the size most of the
    catalog's thumbnails have, else DEFAULT_THUMB_SIZE."""
    if config.thumb_size is not None:
        return config
    return dataclasses.replace(config, thumb_size=catalog_thumb_size(cat) or DEFAULT_THUMB_SIZE)


def make_thumbs(cat: Catalog, config: ExtractConfig, missing_only: bool = False,
                on_progress: ProgressFn | None = None) -> ExtractSummary:
    """(Re)make thumbnails of extracted contents; with `missing_only`, only those with no
    thumbnail of the size recorded or whose file is gone from the thumbnail folder. With
    no size in `config`, at the size most of the catalog's thumbnails have (so one deleted
    is made again as its neighbours are)."""
    from .space import space_short

    config = sized(cat, config)
    size_dir = f"{config.thumb_size}/"
    root = thumbs_dir(cat.path)
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / str(config.thumb_size)).mkdir(exist_ok=True)
    except OSError as e:  # the whole point of the command: one clear line, nothing touched
        if e.errno in (errno.ENOTDIR, errno.EEXIST) and (dangling := link_to_nothing(e.filename or str(root))):
            raise PathIOError(f"cannot create the thumbnail folder {root}: {dangling} is "
                              f"{leads_nowhere(dangling)}") from None
        if e.errno in (errno.ENOTDIR, errno.EEXIST) and (blocker := file_in_the_way(e.filename or str(root))):
            what = "is" if blocker == e.filename else f"cannot be made: {blocker} is"
            raise PathIOError(f"the thumbnail folder {e.filename} {what} a file, not a folder; move it away") from None
        raise PathIOError(f"cannot create the thumbnail folder {e.filename or root}: {e.strerror}") from None
    sweep_thumb_temporaries(root)  # what killed runs left, in shards no thumbnail is written to again
    short = space_short(root, min_free_bytes())
    if short:  # not one could be written: say so once, and leave the catalog as it is
        raise PathIOError(f"no thumbnail made: {short}; free some space, or lower MEDIAFORGE_MIN_FREE")

    def select() -> pa.Table:
        rows = thumb_candidates(cat, missing_only)
        if missing_only:
            from ..config import thumb_whole

            keep = [t is None or not t.startswith(size_dir) or not thumb_whole(root / t, n)
                    for t, n in zip(rows.column("thumb").to_pylist(), rows.column("thumb_bytes").to_pylist())]
            rows = rows.filter(pa.array(keep, pa.bool_()))
        if rows.num_rows:  # a folder it may not write into (read-only, another user's): not one could be made
            try:
                tempfile.TemporaryFile(dir=root).close()  # O_TMPFILE: nothing is left, even if killed
            except OSError as e:
                raise PathIOError(f"no thumbnail made: cannot write into the thumbnail folder {root}: "
                                  f"{e.strerror}") from None
        return rows

    config = ExtractConfig(meta=False, thumbs=True, fingerprints=False, thumb_size=config.thumb_size,
                           workers=config.workers, timeout=config.timeout, flush_rows=config.flush_rows,
                           flush_seconds=config.flush_seconds)
    return _run(cat, select, config, write_thumbs, on_progress)
