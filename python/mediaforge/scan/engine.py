"""Run a scan: the Rust core walks and hashes, this module feeds its Arrow batches into
the catalog one transaction at a time and reports progress through a callback."""

from __future__ import annotations

import contextlib
import os
import queue
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa

from .. import _core, _ctrlc
from ..catalog import Catalog
from ..catalog.media_tables import twins_sql
from ..catalog.store import damaged, is_corruption, is_interrupt, tells_of_corruption
from ..catalog.writes import (begin_scan, count_files, end_scan, finish_scan, gone_with_digests, previous_state,
                              below, write_errors, write_files)
from ..config import thread_count
from ..errors import raw_b64
from ..stop import Stop
from .launch import ScanConfig, Walk, display


@dataclass(frozen=True)
class ScanProgress:
    """A snapshot for progress displays. `phase` is walk, plan, hash, write or done."""

    phase: str
    files: int
    bytes: int
    errors: int
    hash_files_done: int
    hash_files_total: int
    hash_bytes_done: int
    hash_bytes_total: int
    elapsed: float
    # Of the totals, what is hashed after the walk (files under 1 MiB are hashed as they are
    # listed); 0 until the hash phase starts.
    hash_phase_files: int = 0
    hash_phase_bytes: int = 0


@dataclass(frozen=True)
class ScanSummary:
    """The outcome of one completed scan."""

    scan_id: int
    roots: tuple[str, ...]
    files_seen: int
    bytes_seen: int
    new: int
    changed: int
    moved: int
    missing: int
    revived: int
    unchanged: int
    hashed_files: int
    hashed_bytes: int
    unstable: int
    errors: int
    pruned: int
    seconds: float
    catalog: str = field(default="")
    # --prune was asked for but this scan excluded paths, could not read a folder under its
    # roots, or found a root an empty folder, so nothing was pruned.
    prune_skipped: bool = False
    # Why, where paths were left out or a folder could not be read: "excluded" or "unread".
    prune_skipped_why: str = ""
    # Of the rows missing under the roots, those a prune that ran kept: they may have moved
    # into a folder no scan could read, or hold tags or collection places that no present
    # copy holds and this scan found gone (a second scan prunes them).
    prune_kept: int = 0
    # The roots that were empty folders (nothing at all in them): a disk not mounted there?
    # Its files are only `missing`, and with --prune nothing is pruned.
    empty_roots: tuple[str, ...] = ()
    # Roots given that are the catalog's own files or folders (a glob over the folder
    # holding it): not scanned.
    left_out_roots: tuple[str, ...] = ()
    # The exact bytes of each of `roots`, `empty_roots` and `left_out_roots` whose text
    # cannot hold them (not UTF-8), base64; else None.
    roots_raw: tuple[str | None, ...] = ()
    empty_roots_raw: tuple[str | None, ...] = ()
    left_out_roots_raw: tuple[str | None, ...] = ()
    # The media ids of catalog rows this scan rewrote or found gone (string arrays), for the
    # search index to update just those; rows it added have first_scan_id = scan_id.
    touched: tuple[pa.Array, ...] = field(default=(), repr=False, compare=False)

    def as_dict(self) -> dict[str, object]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items() if k != "touched"}


ProgressFn = Callable[[ScanProgress], None]


def _snapshot(scanner: _core.Scanner, started: float, phase: str | None = None) -> ScanProgress:
    p = scanner.progress()
    return ScanProgress(
        phase=phase or p.get("phase", "done"),
        files=p.get("files", 0),
        bytes=p.get("bytes", 0),
        errors=p.get("errors", 0),
        hash_files_done=p.get("hash_files_done", 0),
        hash_files_total=p.get("hash_files_total", 0),
        hash_bytes_done=p.get("hash_bytes_done", 0),
        hash_bytes_total=p.get("hash_bytes_total", 0),
        elapsed=time.monotonic() - started,
        hash_phase_files=p.get("hash_phase_files", 0),
        hash_phase_bytes=p.get("hash_phase_bytes", 0),
    )


def writer_count(threads: int) -> int:
    """Connections writing batches of new rows at once, for a scan with `threads` threads.

    One transaction writes one batch; DuckDB turns a batch into compressed row groups
    much on one core, so on a machine of many cores one writer leaves the walk waiting
    (measured on 16 cores: the write was most of a first scan's time). A second writer
    only pays on a machine with cores to spare: on 2 it takes them from the walk.
    """
    return max(1, min(4, threads // 4))


class _Writers:
    """Batches that only add rows (a first scan's, or new files'), each in a transaction
    of its own, on `n` connections at once; with `n` = 1 none is taken and every batch is
    written in turn on the scan's own connection, as any batch that updates known rows
    is. At most `n` are held in memory: `add` waits for the oldest beyond that."""

    def __init__(self, cat: Catalog, n: int) -> None:
        self.n = n
        self.pool = ThreadPoolExecutor(n, thread_name_prefix="mediaforge-write") if n > 1 else None
        self.pending: deque[Future[None]] = deque()
        # Their connections, made here (not in the writer threads, while this thread runs
        # statements on the scan's own), each lent to one write at a time; watched, so a
        # Ctrl-C interrupts their statements as it does the scan's (a write interrupted is
        # rolled back whole).
        self.views: list[Catalog] = [cat.on_own_connection() for _ in range(n)] if n > 1 else []
        self.idle: queue.SimpleQueue[Catalog] = queue.SimpleQueue()
        for view in self.views:
            _ctrlc.watch(view)
            self.idle.put(view)

    def takes(self, batch: pa.RecordBatch) -> bool:
        return self.pool is not None and batch.column("prev_media_id").null_count == batch.num_rows

    def add(self, batch: pa.RecordBatch, scan_id: int) -> None:
        while self.pending and (len(self.pending) >= self.n or self.pending[0].done()):
            self.pending.popleft().result()  # a failed write raises its error here
        assert self.pool is not None
        self.pending.append(self.pool.submit(self._write, batch, scan_id))

    def _write(self, batch: pa.RecordBatch, scan_id: int) -> None:
        view = self.idle.get()
        try:
            write_files(view, batch, scan_id)
        finally:
            self.idle.put(view)

    def drain(self) -> None:
        """Wait until every batch handed over is committed; raise the first failure."""
        while self.pending:
            self.pending.popleft().result()

    def close(self) -> None:
        """Wait for writes under way (each one is committed whole or not at all), keep
        none of their errors (the scan is already ending on one), and let go."""
        if self.pool is None:
            return
        for f in self.pending:
            f.exception()
        self.pending.clear()
        self.pool.shutdown(wait=True)
        for view in self.views:
            view.close()  # unwatched as it closes


def scan(cat: Catalog, config: ScanConfig, on_progress: ProgressFn | None = None,
         walk: Walk | None = None) -> ScanSummary:
    """Scan `config.roots` into the catalog and return what changed.

    `walk`: one started with `Walk(config, catalog_path)` before the catalog was opened,
    so the disk is being listed (and, for a catalog not made yet, hashed) while DuckDB
    loads; without it the walk starts here. Either way the scan closes it.

    Raises `PathNotFoundError` for a missing root before anything is written.
    Ctrl-C stops the workers within a second, keeps every batch already committed,
    marks the scan interrupted and re-raises `KeyboardInterrupt`.
    """
    if walk is None:
        # Into a catalog with no rows, the core decides from the start: every file is new.
        # The catalog's own files (it may lie below a root) are left out, as the CLI's are.
        walk = Walk(config, cat.path, empty=count_files(cat) == 0)
    elif walk.config != config:
        walk.close()
        raise ValueError("scan: the walk was started with another configuration")
    try:
        if walk.fresh and count_files(cat):
            # The catalog was made and filled by another scan after this walk began: the
            # walk took it for empty, so it starts again, against the real rows.
            walk.close()
            walk = Walk(config, cat.path)
        if not walk.fresh:
            known = count_files(cat)
            with previous_state(cat) as rows:
                walk.scanner.set_previous(rows, expected_rows=known)
    except BaseException as e:
        walk.close()
        # A damaged block met while the rows stream into the core arrives as the core's
        # error, with DuckDB's text inside.
        if isinstance(e, Exception) and not is_corruption(e) and tells_of_corruption(e):
            raise damaged(e, cat.path) from None
        raise
    started, roots_b, roots, scanner = walk.started, walk.roots_b, walk.roots, walk.scanner
    scan_id: int | None = None
    vanished: list[pa.RecordBatch] = []
    kept: list[pa.RecordBatch] = []  # not seen, not gone: unreadable or left out by the options
    linked: list[pa.RecordBatch] = []  # not seen, at or below a link not followed: see finish_scan
    glimpsed: list[pa.RecordBatch] = []  # not seen, their inode found renamed again as the scan ran
    touched: list[pa.Array] = []
    first_hashed: list[pa.Array] = []  # known rows read for the first time: see finish_scan
    totals: dict[str, int] | None = None
    last_report = 0.0
    writers = _Writers(cat, writer_count(thread_count(config.threads)))
    try:
        scan_id = begin_scan(cat, roots, config.hash, config.follow_symlinks, roots_b)
        gone_before = gone_with_digests(cat)
        while totals is None:
            try:
                ev = scanner.poll(0.1)
            except StopIteration:
                break
            now = time.monotonic()
            if on_progress is not None and now - last_report >= 0.1:
                on_progress(_snapshot(scanner, started))
                last_report = now
            if ev is None:
                continue
            kind, payload = ev
            if kind == "files":
                batch = pa.record_batch(payload)
                if writers.takes(batch):
                    writers.add(batch, scan_id)
                    continue
                writers.drain()  # only appends run side by side: a batch that updates rows waits its turn
                written = write_files(cat, batch, scan_id, first_hashed=gone_before)
                if written.described:
                    touched.append(pa.array(written.described, pa.string()))
                if written.first_hashed is not None:
                    first_hashed.extend(written.first_hashed.chunks)
                known = batch.column("prev_media_id")
                if known.null_count < len(known):
                    # Rows whose link count or change time alone moved need no reindexing.
                    import pyarrow.compute as pc  # noqa: PLC0415 - 0.05 s, only for rescans that write

                    rewritten = pc.not_equal(batch.column("change"), "touched")
                    touched.append(known.filter(rewritten).drop_null())
            elif kind == "errors":
                write_errors(cat, pa.record_batch(payload), scan_id)
            elif kind == "vanished":
                vanished.append(pa.record_batch(payload))
            elif kind == "kept":
                kept.append(pa.record_batch(payload))
            elif kind in ("linked", "link_held"):  # present ones first, then those already missing
                linked.append(pa.record_batch(payload))
            elif kind == "glimpsed":
                glimpsed.append(pa.record_batch(payload))
            elif kind == "done":
                totals = payload
        if totals is None:
            raise RuntimeError("the scan ended without reporting its totals")
        writers.drain()
        if on_progress is not None:
            on_progress(_snapshot(scanner, started, phase="write"))
        gone = pa.Table.from_batches(vanished) if vanished else None
        if gone is not None and gone.num_rows:
            # Their twins where they were, before their rows move or go missing (see
            # `twins_sql`): the search documents of those take a sidecar back.
            with cat.registered("mf_gone_ids", gone.select(["media_id"])):
                touched.append(cat.con.sql(twins_sql("SELECT media_id::UUID FROM mf_gone_ids")).to_arrow_table()
                               .column(0).combine_chunks().cast(pa.string()))
        held = pa.Table.from_batches(kept) if kept else None
        empty = _empty_folders(roots_b)
        empty += [f for f in _unmounted(cat, gone, totals.get("gone_devs", []), roots_b) if f not in empty]
        counts = finish_scan(cat, scan_id, roots_b, gone, totals, time.monotonic() - started,
                             config.prune and not empty, kept=held, looked_whole=not empty,
                             linked=pa.Table.from_batches(linked) if linked else None,
                             first_hashed=pa.chunked_array(first_hashed, pa.string()) if first_hashed else None,
                             glimpsed=pa.Table.from_batches(glimpsed) if glimpsed else None)
    except BaseException as e:
        scanner.close()
        # DuckDB reports a Ctrl-C during a query as its own error: treat it as one.
        interrupted = isinstance(e, KeyboardInterrupt) or is_interrupt(e)
        with Stop():  # a second Ctrl-C must not leave the scan unrecorded
            writers.close()
            end_scan(cat, scan_id, "interrupted" if interrupted else "failed", time.monotonic() - started)
        if interrupted and not isinstance(e, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        raise
    writers.close()
    if on_progress is not None:
        on_progress(_snapshot(scanner, started, phase="done"))
    scanner.close()
    return ScanSummary(
        scan_id=scan_id,
        roots=roots,
        files_seen=totals["files_seen"],
        bytes_seen=totals["bytes_seen"],
        new=totals["new"] - (counts.moved - counts.moved_earlier),
        changed=totals["changed"] + counts.edited,
        moved=counts.moved - counts.edited - counts.back + totals["moved"],
        missing=counts.missing,
        revived=totals["revived"] + counts.back,
        unchanged=max(0, totals["unchanged"] + totals["hashed"] - counts.moved_earlier_walked),
        hashed_files=totals["hashed_files"],
        hashed_bytes=totals["hashed_bytes"],
        unstable=totals["unstable"],
        errors=totals["errors"],
        pruned=counts.pruned,
        # Only what the options left out (`--exclude`, `-x`) holds a prune: what ignore files
        # leave out is outside the library for every scan (see `finish_scan`).
        prune_skipped=bool(config.prune and (totals["excluded_by_options"] or empty or counts.prune_held)),
        prune_skipped_why="excluded" if config.prune and totals["excluded_by_options"] else
        "unread" if counts.prune_held else "",
        prune_kept=counts.prune_kept,
        empty_roots=tuple(display(r) for r in empty),  # as `roots` gives them
        left_out_roots=tuple(display(r) for r in walk.left_out),
        roots_raw=tuple(raw_b64(r) for r in roots_b),
        empty_roots_raw=tuple(raw_b64(r) for r in empty),
        left_out_roots_raw=tuple(raw_b64(r) for r in walk.left_out),
        seconds=time.monotonic() - started,
        catalog=os.path.abspath(cat.path),  # as typed it may be relative: the summary names it whole
        touched=tuple(touched) + tuple(b.column("media_id") for b in vanished)
        + (pa.array(list(counts.retired + counts.taken), pa.string()),),
    )


def _unmounted(cat: Catalog, gone: pa.Table | None, gone_devs: list[int], roots: list[bytes]) -> list[bytes]:
    """Empty folders below the roots where a disk's files were (`files.dev`) and that
    disk is not now: its mount point, the disk not mounted. A prune would take its files
    for deleted, as for an empty root. Found where this scan found rows gone on a device
    it saw no present row of (`gone_devs`: a disk gone whole, not one renumbered as a USB
    disk or NFS share mounted again is): the nearest folder that still exists above the
    first and last such row of each. Each is recorded (`meta` key `unmounted_folders`), so
    the scans after it, which find those rows missing already, hold their prune too, until
    the folder holds files again, is on that disk again, or is gone."""
    import base64
    import binascii
    import json

    held: dict[bytes, int] = {}
    with contextlib.suppress(ValueError, TypeError, binascii.Error):
        for path, dev in json.loads(cat.meta_value("unmounted_folders") or "[]"):
            held[base64.b64decode(path)] = int(dev)
    found: dict[bytes, int] = {f: dev for f, dev in held.items()
                               if _empty_elsewhere(f, dev) and below(f, roots)}
    found.update({f: dev for f, dev in held.items() if not below(f, roots)})  # not looked at
    if gone is not None and gone.num_rows and gone_devs:
        with cat.registered("mf_gone", gone):
            rows = cat.con.execute("""
                SELECT f.dev, min(f.path_bytes), max(f.path_bytes) FROM files f
                WHERE f.media_id IN (SELECT media_id::UUID FROM mf_gone) AND f.dev IN (SELECT unnest(?::UBIGINT[]))
                GROUP BY f.dev""", [gone_devs]).fetchall()
        for dev, *paths in rows:
            for path in paths:
                folder = _existing_above(bytes(path))
                if folder is not None and folder not in found and _empty_elsewhere(folder, dev):
                    found[folder] = dev
    if found != held:
        value = json.dumps([[base64.b64encode(f).decode("ascii"), dev] for f, dev in sorted(found.items())])
        with cat.transaction() as con:
            if found:
                con.execute("INSERT OR REPLACE INTO meta VALUES ('unmounted_folders', ?)", [value])
            else:
                con.execute("DELETE FROM meta WHERE key = 'unmounted_folders'")
    return [f for f in found if below(f, roots)]


def _existing_above(path: bytes) -> bytes | None:
    """The nearest folder above `path` that exists."""
    folder = os.path.dirname(path)
    while not os.path.isdir(folder):
        up = os.path.dirname(folder)
        if up == folder:
            return None
        folder = up
    return folder


def _empty_elsewhere(folder: bytes, dev: int) -> bool:
    """Whether `folder` is an empty folder on another device than `dev`."""
    try:
        if os.stat(folder).st_dev == dev:
            return False
        with os.scandir(folder) as it:
            return next(it, None) is None
    except OSError:
        return False


def _empty_folders(roots: list[bytes]) -> list[bytes]:
    """The roots that are folders holding nothing at all, as the mount point of a disk
    that is not mounted is: a prune there would take them for a library deleted whole."""
    empty = []
    for r in roots:
        try:
            with os.scandir(r) as it:
                if next(it, None) is None:
                    empty.append(r)
        except OSError:  # a file, or not readable: the walk has its own word on it
            continue
    return empty


__all__ = ["ScanConfig", "ScanProgress", "ScanSummary", "Walk", "scan"]
