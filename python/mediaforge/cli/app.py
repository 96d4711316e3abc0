"""Commands of the `mediaforge` CLI."""

from __future__ import annotations

import contextlib
import enum
import functools
import io
import os
import re
import stat
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO, Optional

import typer

# The catalog, meta and scan packages load DuckDB, pyarrow and Pillow on first use, so a
# command is running (a scan is walking) before they are loaded.
from .. import __version__, _ctrlc, catalog, meta
from ..config import (JOURNAL_DIR, MAX_THREADS, TRASH_DIR, catalog_path, check_thumb_size, check_timeout,
                      default_catalog_path,
                      thumbs_dir)
from ..errors import (CatalogBusyError, CatalogMissingError, CatalogWriteError, ExitCode, IndexBusyError, InternalError, Interrupted,
                      InvalidInputError, MediaForgeError, PathIOError, PathNotFoundError, first_line, is_text,
                      path_text, printable, shell_word)
from ..fsops import absolute, from_cwd, real
from ..scan.launch import ScanConfig, claim_walk
from . import render

if TYPE_CHECKING:
    from ..catalog import Catalog
    from ..meta import ExtractProgress, ExtractSummary
    from ..scan import ScanSummary

app = typer.Typer(
    add_completion=False,
    # Help texts are plain text: a "[default: ...]" in them is not rich markup to swallow.
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Catalog, analyse and deduplicate huge media libraries. Docs: docs/cli.md",
)


def command(name: str, group: typer.Typer | None = None, stopped: str | None = None):  # noqa: ANN201
    """Register a command (on `group`, else the app) whose Ctrl-C ends in our exit code
    130, not click's "Aborted!". `stopped`: what its Ctrl-C message says instead of the
    general one ("what was already done is kept; run the command again"), for a command
    that changes nothing, where that would mislead."""

    def deco(fn):  # noqa: ANN001, ANN202
        @functools.wraps(fn)
        def run(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            from .._entry import begin

            begin()
            try:
                return fn(*args, **kwargs)
            except KeyboardInterrupt:
                from . import INTERRUPTED

                raise Interrupted(stopped or INTERRUPTED) from None
            except BrokenPipeError:
                # Typer would turn this into a bare exit 1; the CLI's entry makes it exit 0.
                from . import OutputClosed

                raise OutputClosed from None
            except Exception as e:
                # DuckDB's own word for a query a Ctrl-C stopped (only after one: its text
                # alone could be a file's name).
                if stopped and not isinstance(e, MediaForgeError) and "duckdb" in sys.modules and _ctrlc.signalled():
                    from ..catalog.store import is_interrupt

                    if is_interrupt(e):
                        raise Interrupted(stopped) from None
                raise

        return (group or app).command(name)(run)

    return deco


@dataclass(frozen=True)
class Globals:
    catalog: Path
    quiet: bool


# The catalog as `--catalog` gave it to this run, where that is neither MEDIAFORGE_CATALOG's
# nor the default: a command a message gives to run next must name it (`_next`).
_named_catalog: list[str] = []


def _next(command: str) -> str:
    """`mediaforge COMMAND`, as a message gives it to paste into a shell: with `-c PATH`
    where this run's catalog was given so, or the command would read another catalog."""
    if _named_catalog:
        return f"mediaforge -c {shell_word(os.fsencode(_named_catalog[-1]))} {command}"
    return f"mediaforge {command}"


def _version(value: bool) -> None:
    if value:
        print(f"mediaforge {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    ctx: typer.Context,
    # Text as typed: a Path would drop a trailing slash, which names a folder.
    catalog: Annotated[Optional[str], typer.Option(
        "--catalog", "-c", envvar="MEDIAFORGE_CATALOG", metavar="<path>",  # DuckDB says why it cannot, exit 5
        help="Catalog file [default: $XDG_DATA_HOME/mediaforge/catalog.duckdb, else "
             "~/.local/share/mediaforge/catalog.duckdb].")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    if catalog and catalog != os.environ.get("MEDIAFORGE_CATALOG"):
        _named_catalog[:] = [catalog]
    ctx.obj = Globals(catalog=catalog_path(catalog) if catalog else default_catalog_path(), quiet=quiet)


def open_catalog(path: Path, *, read_only: bool = False, threads: int | None = None, create: bool = False,
                 wait: float = 0.0) -> Catalog:
    """`catalog.open_catalog`, with DuckDB loaded on this first use. Only `create` (the
    scan) makes a catalog that is not there: any other command at a mistyped path would
    leave an empty catalog behind and report on nothing. `wait`: seconds to go on trying
    while another process holds the catalog (a search that another one's catch-up of the
    index holds for a moment), before the busy error."""
    import time

    from ..errors import CatalogBusyError

    if not read_only and not create:
        if not os.path.lexists(path):
            raise CatalogMissingError(f"no catalog at {path}: run `mediaforge scan PATH` first")
        with contextlib.suppress(OSError):  # (one that cannot be looked at: opening it says why)
            from ..catalog.store import empty_catalog

            # An empty file counts as none: only a scan makes one in it. (A FIFO or a device
            # is no catalog at all: opening it says so.)
            if stat.S_ISREG(os.stat(path).st_mode) and (empty := empty_catalog(path)):
                raise CatalogMissingError(f"the catalog at {path} is empty ({empty}): run `mediaforge scan PATH` "
                                          "first")
    until = time.monotonic() + wait
    while True:
        try:
            return catalog.open_catalog(path, read_only=read_only, threads=threads, create=create)
        except CatalogBusyError:
            if time.monotonic() >= until:
                raise
            time.sleep(0.1)


def _globals(ctx: typer.Context) -> Globals:
    return ctx.obj if isinstance(ctx.obj, Globals) else Globals(default_catalog_path(), False)


def shows_bars(g: Globals, as_json: bool = False) -> bool:
    """Progress bars are drawn on a terminal, not with -q, nor for a command's `--json`
    (`as_json`) summary."""
    return not g.quiet and not as_json and sys.stderr.isatty()


# `scan` and `meta`: metadata without the decodes that only near-duplicate search needs.
NoFingerprints = Annotated[bool, typer.Option(
    "--no-fingerprints", help="Metadata only: no near-duplicate fingerprints (made later by `meta` or "
                              "`dupes --similar`).")]
ThumbSize = Annotated[Optional[int], typer.Option(
    "--thumb-size", help="Thumbnail long side in px, 16 to 2048 [default: the size most of the catalog's "
                         "thumbnails have, else 256].", show_default=False)]


def _root_text(texts: Sequence[str], raws: Sequence[str | None]) -> str:
    """The first of a summary's roots as a message shows a path: from its exact bytes
    (`*_raw`, base64, where the text could not hold them), so `\\xNN` for a byte that is
    not UTF-8, never U+FFFD."""
    if raws and raws[0] is not None:
        import base64

        return path_text(base64.b64decode(raws[0]))
    return printable(texts[0])


@command("scan")
def scan_cmd(
    ctx: typer.Context,
    # Text as typed (a Path would drop a trailing slash, which a file does not take).
    paths: Annotated[list[str], typer.Argument(help="Folders (or files) to scan.", show_default=False)],
    no_hash: Annotated[bool, typer.Option("--no-hash", help="Walk and stat only; no BLAKE3.")] = False,
    threads: Annotated[Optional[int], typer.Option(
        "--threads", "-j", envvar="MEDIAFORGE_THREADS", min=1, max=MAX_THREADS, help="Worker threads (walk, hashing) and extraction processes [default: all cores this process may use].")] = None,
    exclude: Annotated[Optional[list[str]], typer.Option(
        "--exclude", "-e", help="Gitignore-style pattern to skip; repeatable.")] = None,
    follow_symlinks: Annotated[bool, typer.Option("--follow-symlinks", "-L",
                                                  help="Follow symbolic links (loops are detected).")] = False,
    one_file_system: Annotated[bool, typer.Option("--one-file-system", "-x",
                                                  help="Stay on each root's file system.")] = False,
    no_ignore: Annotated[bool, typer.Option("--no-ignore", help="Do not read .mediaforgeignore files.")] = False,
    prune: Annotated[bool, typer.Option("--prune", help="Delete catalog rows of files now missing.")] = False,
    no_meta: Annotated[bool, typer.Option("--no-meta", help="Skip metadata extraction (and thumbnails).")] = False,
    no_thumbs: Annotated[bool, typer.Option("--no-thumbs", help="Extract metadata but make no thumbnails.")] = False,
    no_fingerprints: NoFingerprints = False,
    thumb_size: ThumbSize = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds allowed per file for extraction.")] = 30.0,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Extract again files whose extraction "
                                               "failed, was partial, timed out, crashed or was unsupported.")] = False,
    no_index: Annotated[bool, typer.Option("--no-index", help="Leave the search index as it is.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Scan folders into the catalog: new, changed, moved and missing files, then their
    metadata and thumbnails, XMP keywords as tags, and the search index."""
    g = _globals(ctx)
    config = ScanConfig(
        roots=tuple(paths), hash=not no_hash, threads=threads, excludes=tuple(exclude or ()),
        ignore_files=not no_ignore, follow_symlinks=follow_symlinks,
        one_file_system=one_file_system, prune=prune,
    )
    check_timeout(timeout)  # usage errors with --no-meta too
    check_thumb_size(thumb_size)
    # Metadata is keyed by content hash: a --no-hash scan has nothing to key it by yet.
    xconfig = None if no_meta or no_hash else meta.ExtractConfig(
        thumbs=not no_thumbs, fingerprints=not no_fingerprints, thumb_size=thumb_size, workers=threads,
        timeout=timeout, retry_failed=retry_failed)
    show = shows_bars(g, as_json)
    xsummary = None
    # The walk starts before DuckDB and pyarrow load and the catalog opens. `scan` closes
    # it; so does the `finally` if anything (a Ctrl-C in an import, a busy catalog) comes
    # first.
    walk = claim_walk(config, g.catalog)
    try:
        from ..scan import scan

        with open_catalog(g.catalog, threads=threads, create=True) as cat:
            # Before this scan can prune their rows: the tags of copies a killed dedupe removed.
            carried = _carry_unfinished(cat, g.catalog)
            with render.ScanProgressBar(show) as bar:
                summary = scan(cat, config, on_progress=bar.update, walk=walk)
            index_error: MediaForgeError | None = None
            extract_error: MediaForgeError | None = None
            indexed = None
            if xconfig is not None:
                try:
                    with render.ExtractProgressBar(show, "extract") as xbar:
                        wrote = any((summary.new, summary.changed, summary.moved, summary.revived,
                                     summary.hashed_files))
                        xsummary = meta.extract(cat, xconfig, on_progress=xbar.update, prestart=False,
                                                after_scan=(summary.scan_id, wrote))
                except (CatalogWriteError, InternalError) as e:
                    # A full disk, or workers that cannot start: the scan is committed, its
                    # summary still printed.
                    extract_error = e
            try:
                indexed = _organise_after_scan(cat, g.catalog, xsummary is not None, not no_index, summary, carried,
                                               show)
            except IndexBehind as e:  # the scan is committed: its summary is still printed
                index_error = e
            except CatalogWriteError as e:  # (a full disk, as the extraction may have met)
                extract_error = extract_error or e
    finally:
        walk.close()
    if as_json:
        render.dump_json(dict(summary.as_dict(),
                              extract=xsummary.as_dict() if xsummary else
                              ({"error": str(extract_error)} if extract_error else None),
                              index=indexed.__dict__ if indexed else
                              ({"error": str(index_error)} if index_error else None)))
        if extract_error or index_error:
            raise extract_error or index_error
        return
    s = summary
    rate = s.files_seen / s.seconds if s.seconds else 0.0
    print(f"scanned {render.counted(s.files_seen, 'file')} ({render.human_bytes(s.bytes_seen)}) in {s.seconds:.2f} s "
          f"({rate:,.0f} files/s) into {path_text(os.fsencode(s.catalog))}")
    print(f"  new {s.new:,}  changed {s.changed:,}  moved {s.moved:,}  missing {s.missing:,}  "
          f"revived {s.revived:,}  unchanged {s.unchanged:,}")
    print(f"  hashed {render.counted(s.hashed_files, 'file')} ({render.human_bytes(s.hashed_bytes)})  "
          f"errors {s.errors:,}  unstable {s.unstable:,}" + (f"  pruned {s.pruned:,}" if prune else ""))
    if s.left_out_roots:
        print(f"  left out {_root_text(s.left_out_roots, s.left_out_roots_raw)}" + (f" and {len(s.left_out_roots) - 1:,} more" if
                                                     len(s.left_out_roots) > 1 else "")
              + ": the catalog's own (its file, thumbnails, search index or dedupe folders), not media")
    if prune and s.empty_roots:
        print(f"  --prune did nothing: {_root_text(s.empty_roots, s.empty_roots_raw)} is an empty folder (a disk not mounted there?), and a prune "
              "would drop every row the catalog has below it, with its tags; prune with a scan that finds the files, "
              "or, once that disk is gone for good, remove the empty folder and prune again")
    elif s.empty_roots:
        print(f"  {_root_text(s.empty_roots, s.empty_roots_raw)} is an empty folder (a disk not mounted there?)"
              + (": the files missing keep their rows and tags" if s.missing else ""))
    elif prune and s.prune_skipped_why == "unread":
        print("  --prune did nothing: this scan could not read a folder under its roots (see errors), and a missing "
              "file may have moved there; prune with a scan that reads every folder")
    elif prune and s.prune_skipped:
        print("  --prune did nothing: this scan's options excluded paths (--exclude, -x), and a missing "
              "file may have moved there; prune with a scan without them")
    elif prune and s.prune_kept:
        print(f"  --prune kept {render.counted(s.prune_kept, 'missing row')}: a file may be where this scan did not "
              "look (behind a link it did not follow, in a folder no scan could read), or a row found gone just now "
              "holds tags or collection places no present copy holds (a second scan prunes that); see docs/cli.md")
    if s.errors:
        print("  see errors: " + _next(f'query "SELECT * FROM scan_errors WHERE scan_id = {s.scan_id}"'))
    if xsummary is not None:
        _print_extract(xsummary, "metadata")
    if indexed is not None:
        print(f"  search index: {render.counted(indexed.indexed, 'file')} indexed, {indexed.removed:,} removed in "
              f"{indexed.seconds:.2f} s ({indexed.total:,} in the index)")
    if extract_error or index_error:
        raise extract_error or index_error


class IndexBehind(PathIOError):
    """The search index could not be brought up to date after work that is committed."""

    @classmethod
    def after(cls, e: BaseException, saved: str) -> IndexBehind:
        """Why the index is behind (`e`, the error its update met), then that `saved` (the
        scan, the change) is in the catalog: with the exit code of a busy index where
        another process held it, else that of a path that cannot be written."""
        why = first_line(e) if isinstance(e, MediaForgeError) else str(e)
        behind = cls(f"{why}; {saved} is saved in the catalog, and the next search or scan brings the search "
                     "index up to date")
        if isinstance(e, IndexBusyError):
            behind.exit_code = e.exit_code
        return behind


def _carry_unfinished(cat: Catalog, catalog_path: Path) -> list[str]:
    """`dedupe.carry_unfinished` for the dedupe journals beside the catalog, if any."""
    journals = Path(catalog_path).resolve().parent / JOURNAL_DIR
    if not journals.is_dir():
        return []
    from ..dupes.dedupe import carry_unfinished

    return carry_unfinished(cat, journals)


def _organise_after_scan(cat: Catalog, catalog_path: Path, extracted: bool, index: bool,  # noqa: ANN202
                         summary: ScanSummary | None = None, more: Sequence[str] = (), show: bool = False):
    """After new metadata: XMP keywords become tags; then the search index catches up
    (after a scan, on just the files it can have changed, and `more`), with a progress
    bar when `show`."""
    tagged: list[str] = list(more)
    if extracted:
        from ..organise.search import hold_step

        if summary is None:
            # `meta`: no new scan row marks the index behind; tags may change here, so
            # until the refresh below has run the index is marked behind (a kill between
            # leaves it to the next search or scan).
            hold_step(cat, catalog_path)
        # A library with no XMP sidecar (most) skips loading the XMP reader.
        if cat.con.execute("SELECT 1 FROM sidecars WHERE format = 'xmp' LIMIT 1").fetchall():
            from ..organise.xmp import import_xmp

            tagged += import_xmp(cat).media_ids
    if not index:
        return None
    from ..organise.search import refresh, refresh_after_scan

    try:
        with render.IndexProgressBar(show) as bar:
            if summary is None:
                return refresh(cat, catalog_path, on_progress=bar.update)
            return refresh_after_scan(cat, catalog_path, summary.scan_id, summary.touched, tagged,
                                      on_progress=bar.update)
    except (PathIOError, IndexBusyError, OSError) as e:  # a read-only or full disk where the index lives
        raise IndexBehind.after(e, f"the {'scan' if summary else 'metadata'}") from None


def _print_extract(x: ExtractSummary, what: str, remake: bool = False) -> None:
    """`remake`: a `thumbs` run over every content (what to run again is that, not a
    `--missing-only` one: the old thumbnails it was to replace are still there)."""
    from ..meta.space import binary_size

    print(f"  {what}: {render.counted(x.files, 'file')} in {x.seconds:.2f} s  ok {x.ok:,}  partial {x.partial:,}  "
          f"unsupported {x.unsupported:,}  failed {x.failed:,}  thumbnails {x.thumbs:,}"
          + (f"  fingerprinted later {x.fingerprinted:,}" if x.fingerprinted else "")
          + (f"  fingerprints failed {x.fingerprint_failed:,}" if x.fingerprint_failed else "")
          + (f"  left alone {x.changed:,} (changed, gone or now a link since the scan: scan again, with -L to follow links)" if x.changed else ""))
    if x.thumbs_low_space:
        room = f"has under {binary_size(x.min_free)} free (MEDIAFORGE_MIN_FREE)" if x.min_free else "is full"
        print(f"  {render.counted(x.thumbs_low_space, 'thumbnail')} not written: their disk {room}"
              f"{'; the ones they had are kept' if remake else ''}; free some space, then run "
              f"{_next(f'thumbs --size {x.thumb_size}' + ('' if remake else ' --missing-only'))}")
    if x.thumbs_refused:
        print(f"  {render.counted(x.thumbs_refused, 'thumbnail')} not written: their folder refused them (see "
              "meta_errors: read-only, another user's, a file or folder in its place?); once it can be written, run "
              f"{_next(f'thumbs --size {x.thumb_size}' + ('' if remake else ' --missing-only'))}")
    if x.errors:
        print("  see errors: " + _next('query "SELECT * FROM meta_errors ORDER BY logged_at DESC"'))


@command("meta")
def meta_cmd(
    ctx: typer.Context,
    no_thumbs: Annotated[bool, typer.Option("--no-thumbs", help="Extract metadata but make no thumbnails.")] = False,
    no_fingerprints: NoFingerprints = False,
    thumb_size: ThumbSize = None,
    threads: Annotated[Optional[int], typer.Option(
        "--threads", "-j", envvar="MEDIAFORGE_THREADS", min=1, max=MAX_THREADS, help="Worker processes [default: all cores this process may use].")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds allowed per file.")] = 30.0,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Extract again files whose extraction "
                                               "failed, was partial, timed out, crashed or was unsupported.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Extract metadata for catalogued files that have none yet (what `scan` does after
    walking; useful after `scan --no-meta` or installing pillow-heif or rawpy), then make
    the near-duplicate fingerprints that earlier `--no-fingerprints` runs left out."""
    config = meta.ExtractConfig(thumbs=not no_thumbs, fingerprints=not no_fingerprints, thumb_size=thumb_size,
                                workers=threads, timeout=timeout, retry_failed=retry_failed)
    _run_extraction(ctx, "extract", "metadata",
                    lambda cat, progress: meta.extract(cat, config, on_progress=progress, catch_up=True),
                    threads, as_json, metadata=True)


def _run_extraction(ctx: typer.Context, label: str, what: str,
                    run: Callable[[Catalog, Callable[[ExtractProgress], None]], ExtractSummary],
                    threads: int | None, as_json: bool, metadata: bool = False, remake: bool = False) -> None:
    """Open the catalog for writing, run one extraction with a progress bar, print its
    summary. After new `metadata`, XMP keywords become tags and an existing search index
    catches up, as after a scan."""
    g = _globals(ctx)
    show = shows_bars(g, as_json)
    with open_catalog(g.catalog, threads=threads) as cat:
        with render.ExtractProgressBar(show, label) as bar:
            summary = run(cat, bar.update)
        index_error = None
        if metadata:
            from ..organise.search import index_dir

            try:
                _organise_after_scan(cat, g.catalog, True, index_dir(g.catalog).exists(), show=show)
            except IndexBehind as e:  # the metadata is committed: its summary is still printed
                index_error = e
    if as_json:
        render.dump_json(dict(summary.as_dict(), **({"index": {"error": str(index_error)}} if index_error else {})))
    else:
        _print_extract(summary, what, remake)
    if index_error:
        raise index_error


@command("thumbs")
def thumbs_cmd(
    ctx: typer.Context,
    missing_only: Annotated[bool, typer.Option("--missing-only",
                                               help="Only contents with no thumbnail file yet.")] = False,
    size: Annotated[Optional[int], typer.Option(
        "--size", help="Thumbnail long side in px, 16 to 2048 [default: the size most of the catalog's "
                       "thumbnails have, else 256].", show_default=False)] = None,
    threads: Annotated[Optional[int], typer.Option(
        "--threads", "-j", envvar="MEDIAFORGE_THREADS", min=1, max=MAX_THREADS, help="Worker processes [default: all cores this process may use].")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds allowed per file.")] = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Make thumbnails again (all of them, or only the missing ones)."""
    config = meta.ExtractConfig(workers=threads, timeout=timeout, thumb_size=size)
    _run_extraction(ctx, "thumbs", "thumbnails",
                    lambda cat, progress: meta.make_thumbs(cat, config, missing_only=missing_only,
                                                           on_progress=progress),
                    threads, as_json, remake=not missing_only)


@command("info", stopped="interrupted: `info` only reads the catalog; run it again")
def info_cmd(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="A file in the catalog.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Everything the catalog knows about one file."""
    from ..organise.targets import as_catalogued

    given = os.path.expanduser(path)

    def not_a_folder() -> PathNotFoundError:
        # `photo.jpg/` (or `photo.jpg/.`) names a folder that is not there, as `ls` says,
        # not the file: whether the file is there or only in the catalog.
        whole = os.fsencode(from_cwd(given))
        if not whole.endswith((b"/", b"/.")):  # `photo.jpg/x`: a file where a folder on its way goes
            from ..fsops import file_in_the_way

            blocker = file_in_the_way(os.path.dirname(whole)) or os.path.dirname(whole)
            return PathNotFoundError(f"no such file: {path_text(whole)} ({path_text(blocker)} is a file, not a "
                                     "folder)")
        return PathNotFoundError(f"not a folder: {path_text(whole)} (a file's name ends without a /)")

    try:
        os.stat(given)
    except NotADirectoryError:
        raise not_a_folder() from None
    except (OSError, ValueError):
        pass  # gone, or never there: the catalog is asked below
    g = _globals(ctx)
    with open_catalog(g.catalog, read_only=True) as cat:
        tried = as_catalogued(path)  # the link's own path first (a scan with -L), then the resolved one
        for raw in tried:
            info = catalog.file_info(cat, raw)
            if info is not None:
                break
    if info is not None and (given.endswith(os.sep) or given.endswith(os.sep + ".")):
        raise not_a_folder()
    if info is None:
        if os.path.isdir(raw):
            raise InvalidInputError(f"{path_text(raw)} is a folder: info shows one file (for a folder, try "
                                    "mediaforge search or query)")
        # Named as given (made absolute), not as a link resolves: a broken link names nowhere.
        try:
            os.lstat(tried[0])
        except (FileNotFoundError, NotADirectoryError):  # a typo: scanning would not help
            raise PathNotFoundError(f"no such file: {path_text(tried[0])} (nor in the catalog)") from None
        except OSError as e:  # a path over PATH_MAX, a folder on the way not to be entered
            raise PathNotFoundError(f"not in the catalog: {path_text(tried[0])} (the system cannot look at it: "
                                    f"{e.strerror})") from None
        try:
            st = os.stat(tried[0])
        except OSError as e:  # a link to nothing, a link loop: no file a scan would catalogue
            raise PathNotFoundError(f"not in the catalog: {path_text(tried[0])} (a link that leads to no file: "
                                    f"{e.strerror})") from None
        if not stat.S_ISREG(st.st_mode):  # a FIFO, a device, a socket: scans catalogue files only
            raise PathNotFoundError(f"not in the catalog: {path_text(tried[0])} (not a regular file: scans "
                                    "catalogue files only)")
        raise PathNotFoundError(f"not in the catalog: {path_text(tried[0])} (scan its folder first)")
    if info["media"] and info["media"].get("thumb"):
        thumb = thumbs_dir(g.catalog) / info["media"]["thumb"]
        info["thumbnail_file"] = str(thumb)
        # The catalog names it; the file may be gone (the folder cleared, the catalog copied)
        # or damaged (cut short by a copy or a sync).
        from ..config import thumb_whole

        info["thumbnail_missing"] = not thumb_whole(thumb, info["media"].get("thumb_bytes"))
    if as_json:
        # Every key in every answer: null where the file has no thumbnail.
        info.setdefault("thumbnail_file", None)
        info.setdefault("thumbnail_missing", None)
        for key in ("copies", "describes"):
            info[f"{key}_raw"] = [render.path_fields("p", b)["p_raw"] for b in info.pop(f"{key}_bytes")]
        for sc in info["sidecars"]:
            sc["path_raw"] = render.path_fields("p", sc.pop("path_bytes"))["p_raw"]
        render.dump_json(info)
    else:
        render.print_info(info)


# What `stats --json` gives a script exactly, that the table shows rounded.
_EXACT_ONLY = ("started_at", "finished_at", "seconds")


@command("stats", stopped="interrupted: `stats` only reads the catalog; run it again")
def stats_cmd(
    ctx: typer.Context,
    top: Annotated[int, typer.Option("--top", min=1, max=100_000, help="How many rows the folder, codec and camera tables list.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Counts and bytes by kind, the largest folders, the last scans; files by codec, resolution,
    camera and year taken; extraction statuses and errors."""
    with open_catalog(_globals(ctx).catalog, read_only=True) as cat:
        st = catalog.stats(cat, top=top)
    if as_json:
        render.dump_json(st.__dict__)
        return
    t = st.totals
    print(f"{render.counted(t['files'], 'file')}, {render.human_bytes(t['bytes'])}; {t['missing']:,} missing; "
          f"{t['unhashed']:,} not hashed; {t['distinct_contents']:,} distinct contents")
    render.print_records(st.by_kind, "By kind")
    # A folder that is not UTF-8 by its exact bytes (as `info` shows paths): shown with
    # U+FFFD, two such folders would look alike.
    render.print_records([{**{k: v for k, v in r.items() if k != "dir_raw"},
                           "dir": r["dir"] if r["dir_raw"] is None else bytes(r["dir_raw"])}
                          for r in st.largest_dirs], "Largest folders")
    render.print_records([{("started (UTC)" if k == "started" else k): v for k, v in r.items() if k not in _EXACT_ONLY}
                          for r in st.last_scans], "Last scans", byte_cols=())
    render.print_records(st.by_codec, "By codec")
    render.print_records(st.by_resolution, "By resolution")
    render.print_records(st.by_camera, "By camera")
    render.print_records(st.by_year, "By year taken")
    render.print_records(st.extraction, "Metadata extraction", byte_cols=())
    render.print_records(st.error_stages, "Errors by stage", byte_cols=())


class Format(str, enum.Enum):
    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


def _output_path(text: str) -> Path:
    """An --output as typed: one that ends in `/` (or `/.`) names a folder, and a typo for
    another name; `Path` would drop the slash and write a file there, over one so named."""
    if text.endswith(("/", "/.", "/..")) or text in (".", ".."):
        end = "/" if text.endswith("/") else repr(text.rsplit("/", 1)[-1])
        raise typer.BadParameter(f"{path_text(os.fsencode(text))} names a folder (it ends with {end}): give the path "
                                 "of a file")
    return Path(text)


# The options of every command that writes a result.
FormatOption = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
OutputOption = Annotated[Optional[Path], typer.Option("--output", "-o", help="Write to this file.",
                                                      metavar="<path>", parser=_output_path)]


@command("query")
def query_cmd(
    ctx: typer.Context,
    sql: Annotated[str, typer.Argument(help="One SQL statement over the catalog (read-only).")],
    fmt: FormatOption = Format.table,
    output: OutputOption = None,
) -> None:
    """Run SQL over the catalog: its tables (files, media, exif, tags, ...) and views
    (library, sidecar_links), documented in docs/catalog.md."""
    g = _globals(ctx)
    check_output_args(fmt, output, g.catalog)
    if not sql.strip():
        raise InvalidInputError('empty SQL statement: give one, e.g. "SELECT kind, count(*) FROM files GROUP BY kind"')
    before = _output_before(output)
    try:
        with open_catalog(g.catalog, read_only=True) as cat:
            # Streams from the catalog: written out while it is open. Parquet stores UUIDs as such.
            rows = catalog.run_query(cat, sql, for_parquet=_written_as(fmt, output) is Format.parquet)
            if fmt is Format.table and output is None:
                render.print_table(rows)
                return
            _write_out(rows, fmt, output, g.catalog)
    except KeyboardInterrupt:  # a reading command: the catalog is as it was
        raise Interrupted("interrupted: the query was stopped; the catalog is unchanged, and "
                          f"{_left_output(output, before)}") from None


def _output_before(output: Optional[Path]) -> os.stat_result | None:
    """What is at an --output path before a command writes it (for `_left_output`)."""
    try:
        return os.stat(output) if output is not None else None
    except (OSError, ValueError):
        return None


def _left_output(output: Optional[Path], before: os.stat_result | None) -> str:
    """What a Ctrl-C left of an output, `before` being `_output_before` it."""
    if output is None:
        return "any rows printed are only a part of the result"
    if _descriptor(output) is not None or (before is not None and not stat.S_ISREG(before.st_mode)):
        # Written in place (a descriptor, a FIFO, a device): rows went out as they came.
        return f"what was written into {output} is only a part of the result"
    now = _output_before(output)
    if now is not None and (before is None or (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino)):
        return f"{output} was written whole before it stopped"  # (the stop came as it was renamed into place)
    return f"{output} was not written" + (" (what it held is kept)" if before is not None else "")


def _check_output(output: Path, catalog: Path, what: str = "--output") -> None:
    """Refuse an --output that would overwrite the catalog, its write-ahead log, its search
    index or its thumbnails: a typo there must not destroy the user's tags. Compared as
    files too, so a hard link or another name for the catalog is refused as well."""
    from ..config import catalog_files

    out, cat = real(output), real(catalog)
    # Its thumbnails, search index (named after the catalog as given), and dedupe's journal
    # and trash folders beside it, whether or not a dedupe has written there yet: a journal
    # overwritten cannot be undone, and a file of another's there holds up every
    # `dedupe --apply` (it refuses a journal folder holding what it did not put there).
    folders = [os.path.realpath(os.fsdecode(p)) for p in catalog_files(catalog)[2:]]
    folders += [os.path.realpath(os.path.join(os.path.dirname(c), d)) for c in (os.fspath(absolute(catalog)), cat)
                for d in (JOURNAL_DIR, TRASH_DIR)]
    if (out in (cat, cat + ".wal") or any(out == d or out.startswith(d + os.sep) for d in folders)
            or any(_same_file(out, p) for p in (cat, cat + ".wal"))):
        raise InvalidInputError(f"{what} {output} would overwrite the catalog or its files: choose another path")


def _check_no_dangling_link(to: Path) -> None:
    """Refuse a --to that is, or lies below, a link to nothing (a disk not mounted, say):
    a folder made behind it would fill the disk the link is on."""
    from ..fsops import leads_nowhere, link_to_nothing

    p = os.fsencode(absolute(to))
    q = link_to_nothing(p)
    if q is not None:
        what = " is" if q == p else f": its folder {path_text(q)} is"
        raise PathNotFoundError(f"--to {path_text(os.fsencode(to))}{what} {leads_nowhere(q)}; nothing was done")


def _check_move_to(to: Path, target: Path, catalog: Path) -> None:
    """Refuse a --to among the catalog's own folders (its thumbnails, search index, and
    dedupe's journals and trash beside it): a search index made again, or thumbnails
    made anew, would delete the copies moved there."""
    from ..config import catalog_files

    beside = Path(real(catalog)).parent
    own = {os.path.realpath(os.fsdecode(p)) for p in catalog_files(catalog)[2:]}
    own |= {os.path.realpath(beside / JOURNAL_DIR), os.path.realpath(beside / TRASH_DIR)}
    if any(str(target) == d or str(target).startswith(d + os.sep) for d in own):
        raise InvalidInputError(f"--to {path_text(os.fsencode(to))} is inside the catalog's own folders (thumbnails, "
                                "search index, journals, trash), which MediaForge rewrites: choose a folder outside "
                                "them")


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # either is missing or cannot be looked at
        return False


def check_output_args(fmt: Format, output: Optional[Path], catalog: Path) -> None:
    """Refuse a --format and --output that will not do, before any work is done."""
    if output is not None:
        _check_output(output, catalog)
        folder = os.path.dirname(absolute(output))
        if not os.path.isdir(folder):
            # The nearest part of the way that is there: a file where a folder goes is named.
            above = folder
            while above != os.path.dirname(above) and not os.path.lexists(above):
                above = os.path.dirname(above)
            if os.path.islink(above) and not os.path.exists(above):
                raise PathNotFoundError(f"--output {output}: {above} is a link to {os.readlink(above)}, which is not "
                                        "there (a disk not mounted?)")
            if os.path.lexists(above) and not os.path.isdir(above):
                raise PathNotFoundError(f"--output {output}: {above} is a file, not a folder")
            raise PathNotFoundError(f"--output {output}: no such folder {folder}")
        into = os.path.dirname(real(output))  # a link to a file to be made: its folder must be there
        if os.path.islink(absolute(output)) and not os.path.isdir(into):
            raise PathNotFoundError(f"--output {output}: it is a link to {os.readlink(absolute(output))}, whose "
                                    f"folder {into} is not there")
    if fmt is Format.parquet and output is None:
        raise InvalidInputError("--format parquet needs --output FILE")


def _written_as(fmt: Format, output: Optional[Path]) -> Format:
    """The format a result is written in: no table is drawn into a file, which gets what its
    name says (`x.parquet`, `x.json`, `x.json.gz`), else CSV."""
    if fmt is not Format.table or output is None:
        return fmt
    named = Path(output).with_suffix("") if Path(output).suffix.lower() == ".gz" else Path(output)
    return {".parquet": Format.parquet, ".json": Format.json}.get(named.suffix.lower(), Format.csv)


def _write_table(table, fmt: Format, output: Optional[Path], catalog: Path) -> None:  # noqa: ANN001
    """`_write_out`, where a Ctrl-C says what it left of the output."""
    before = _output_before(output)
    try:
        _write_out(table, fmt, output, catalog)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: {_left_output(output, before)}") from None


def _write_out(table, fmt: Format, output: Optional[Path], catalog: Path) -> None:  # noqa: ANN001
    """A result (an Arrow table or `render.Rows`) as csv or json (stdout or a file), or
    parquet into a file. A file is written beside its target under a temporary name and
    renamed over it once whole: a failed write leaves what was there before."""
    check_output_args(fmt, output, catalog)
    if output is None:
        (render.write_json if fmt is Format.json else render.write_csv)(table, sys.stdout)
        return
    # `x.csv.gz`, `x.json.gz`: the text gzip-compressed (Parquet compresses itself).
    gz = Path(output).suffix.lower() == ".gz"
    fmt = _written_as(fmt, output)
    if gz and fmt is Format.parquet:
        raise InvalidInputError(f"--output {output}: Parquet is compressed inside (zstd), not gzipped as the "
                                "name says; name it .parquet")

    def write(f: BinaryIO) -> None:
        if gz and fmt is not Format.parquet:
            import gzip

            with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, compresslevel=6) as z:
                _write_into(table, fmt, z)  # type: ignore[arg-type]
        else:
            _write_into(table, fmt, f)

    fd = _descriptor(output)
    target = os.fsencode(real(output))
    try:
        if fd is not None:  # /dev/stdout, /dev/fd/N: the open file itself, as the shell set it up (>> appends)
            sys.stdout.flush()
            with os.fdopen(os.dup(fd), "wb") as f:
                write(f)
        elif not os.path.exists(target) or stat.S_ISREG(os.stat(target).st_mode):
            from ..fsops import replace_with

            replace_with(target, write)
        else:  # a device, a FIFO: written in place, never replaced or removed
            with open(target, "wb") as f:
                write(f)
    except BrokenPipeError:
        raise  # the reader left (a FIFO, a pipe): as for `| head`, not an error
    except OSError as e:
        why = e.strerror or first_line(e)
        if e.filename is not None and os.fsencode(e.filename) != target and e.filename2 is None:
            # The temporary file it is written to first (then renamed over it) could not be
            # made beside it: /proc/version is there, yet "No such file" of the temporary.
            why = f"cannot make a new file beside it ({why})"
        raise PathIOError(f"cannot write {path_text(os.fsencode(output))}: {why}") from None


_FD_PATH = re.compile(r"/dev/(?:std(?P<std>in|out|err)|fd/(?P<fd>\d+))|/proc/(?P<pid>self|thread-self|\d+)/fd/(?P<pfd>\d+)")


def _descriptor(output: Path) -> int | None:
    """The descriptor an --output path names (/dev/stdout, /dev/fd/3, /proc/self/fd/1),
    if open in this process: written through as it is, never replaced by a new file."""
    m = _FD_PATH.fullmatch(absolute(output))
    if m is None or (m["pid"] not in (None, "self", "thread-self") and int(m["pid"]) != os.getpid()):
        return None
    fd = {"in": 0, "out": 1, "err": 2}[m["std"]] if m["std"] else int(m["fd"] or m["pfd"])
    try:
        os.fstat(fd)
    except OSError:
        return None
    return fd


def _holds_decimal(t) -> bool:  # noqa: ANN001 - a pyarrow DataType
    """Whether a column's type is a DECIMAL or holds one (in a list, struct or map)."""
    import pyarrow as pa

    if pa.types.is_decimal(t):
        return True
    return any(_holds_decimal(t.field(k).type) for k in range(t.num_fields))


def _media_ids_as_uuids(table):  # noqa: ANN001, ANN202 - a pyarrow Table
    """`table` (a command's result) with its text `media_id` column as UUIDs, when every
    value reads as one."""
    import uuid

    import pyarrow as pa

    k = table.schema.get_field_index("media_id")
    if k < 0 or not pa.types.is_string(table.schema.field(k).type):
        return table
    try:
        raw = [None if v is None else uuid.UUID(v).bytes for v in table.column(k).to_pylist()]
    except ValueError:
        return table
    return table.set_column(k, table.schema.field(k).with_type(pa.uuid()),
                            pa.ExtensionArray.from_storage(pa.uuid(), pa.array(raw, pa.binary(16))))


def _parquet_cannot_hold(e: Exception) -> InvalidInputError:
    """A value the Parquet writer refuses (a type, a number out of its range): exit 2."""
    return InvalidInputError(f"--format parquet cannot hold this result ({first_line(e)}); "
                             "cast such columns to text in the SQL, or use --format csv or json")


def _write_into(table, fmt: Format, f: BinaryIO) -> None:  # noqa: ANN001
    """Write `table` as `fmt` into the open binary file `f`."""
    if fmt is Format.parquet:
        import pyarrow as pa
        import pyarrow.parquet as pq

        # UUIDs are stored as UUIDs, as `export` stores them: a query's sent as their bytes
        # (`QueryResult.uuids`), the `media_id` text of the other commands' results read back.
        uuids = getattr(table, "uuids", None)
        if uuids is None:
            table, uuids = _media_ids_as_uuids(table), ()
        rows = render.batches_of(table)
        # Names given twice are told apart as in JSON (`a`, `a_2`): readers refuse a
        # Parquet file whose columns share a name.
        schema = pa.schema([(fld.with_type(pa.uuid()) if k in uuids else fld).with_name(n)
                            for k, (fld, n) in enumerate(zip(rows.schema, render.unique_names(rows.schema.names)))])
        try:
            writer = pq.ParquetWriter(f, schema, compression="zstd")  # a file object: pyarrow removes no path
        except pa.ArrowException as e:
            if isinstance(e, OSError):  # a full disk
                raise
            raise _parquet_cannot_hold(e) from None
        # DuckDB hands HUGEINT over as a 38-digit DECIMAL, which its largest values (39
        # digits) overflow: Parquet readers refuse such a file, so it is never written.
        decimals = [k for k, fld in enumerate(schema) if _holds_decimal(fld.type)]
        with writer:
            for batch in rows:
                columns = [pa.ExtensionArray.from_storage(pa.uuid(), c.cast(pa.binary(16))) if k in uuids else c
                           for k, c in enumerate(batch.columns)]
                out = pa.RecordBatch.from_arrays(columns, schema=schema)
                try:
                    for k in decimals:
                        out.column(k).validate(full=True)
                    writer.write_batch(out)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
                    raise _parquet_cannot_hold(e) from None
        return
    text = io.TextIOWrapper(f, encoding="utf-8", newline="")
    (render.write_json if fmt is Format.json else render.write_csv)(table, text)
    text.flush()
    text.detach()  # `f` stays open for its owner


@command("export", stopped="interrupted: an export's files take their names all at once, so the folder "
                           "holds this export whole or what it held before; run it again")
def export_cmd(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Argument(help="Folder to write <table>.parquet files into.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the written files as JSON.")] = False,
) -> None:
    """Export every catalog table as Parquet (zstd)."""
    _check_output(out_dir, _globals(ctx).catalog, "export into")
    with open_catalog(_globals(ctx).catalog, read_only=True) as cat:
        written = catalog.export_parquet(cat, out_dir)
    if as_json:
        render.dump_json([str(p) for p in written])
    else:
        for p in written:
            print(path_text(os.fsencode(p)))


SIMILAR_KINDS = {"image": "phash", "video": "video", "audio": "audio"}
SIMILAR_NAMES = {"phash": "pictures", "video": "videos", "audio": "recordings"}
DONE = {"hardlink": "hard-linked", "symlink": "symlinked", "reflink": "reflinked", "move-to": "moved",
        "trash": "trashed"}


def _fingerprint_missing(cat: Catalog, kind: str, quiet: bool) -> None:
    """Before `dupes --similar`: fingerprint the contents of this kind that were
    extracted without (`--no-fingerprints`), with a progress bar."""
    with render.ExtractProgressBar(not quiet and sys.stderr.isatty(), "fingerprint") as bar:
        got = meta.fingerprint(cat, meta.ExtractConfig(thumbs=False), kinds=(kind,), on_progress=bar.update)
    if got.files and not quiet:
        print(f"fingerprinted {got.ok:,} distinct {kind} files extracted without fingerprints in "
              f"{got.seconds:.2f} s"
              + (f"; {got.failed:,} could not be (see meta_errors)" if got.failed else ""), file=sys.stderr)
    # Files no extraction has read (`scan --no-meta`), or not hashed (`--no-hash`): not
    # compared, which an empty result would not say.
    kinds = ("image", "raw") if kind == "image" else (kind,)
    ((unhashed, unread),) = cat.con.execute(f"""
        SELECT count(*) FILTER (WHERE f.blake3 IS NULL),
               count(*) FILTER (WHERE f.blake3 IS NOT NULL AND m.blake3 IS NULL)
        FROM files f LEFT JOIN media m USING (blake3)
        WHERE f.status = 'present' AND f.kind IN ({", ".join("?" * len(kinds))})""", list(kinds)).fetchall()
    if (unhashed or unread) and not quiet:
        what = " and ".join(x for x in (
            f"{unread:,} {'has' if unread == 1 else 'have'} no metadata yet (`{_next('meta')}` reads them)" if unread else "",
            f"{unhashed:,} {'is' if unhashed == 1 else 'are'} not hashed (a `--no-hash` scan: scan again without it)"
            if unhashed else "") if x)
        print(f"mediaforge: note: of the {kind} files, {what}: they are not compared", file=sys.stderr)


def _hash_candidates(catalog: Path, kind: str | None, quiet: bool) -> None:
    """Run the exact-duplicate funnel over files a `scan --no-hash` left unhashed."""
    from ..dupes import hash_candidates, unhashed

    with open_catalog(catalog, read_only=True) as cat:
        todo = unhashed(cat, kind)
    if not todo:
        return
    with open_catalog(catalog) as cat:
        got = hash_candidates(cat, kind)
    if not quiet:
        print(f"{todo:,} unhashed files share a size with another: {got['hashed_in_full']:,} hashed in full, "
              f"{render.human_bytes(got['bytes_read'])} read" + (
                  f"; {got['changed']:,} changed since the scan (rescan)" if got["changed"] else "") + (
                  f"; {got['failed']:,} unreadable" if got["failed"] else ""), file=sys.stderr)


@command("dupes")
def dupes_cmd(
    ctx: typer.Context,
    similar: Annotated[bool, typer.Option("--similar",
                                          help="Near-duplicates (pictures, videos or sound) instead of exact copies.")]
    = False,
    exact: Annotated[bool, typer.Option("--exact", help="Exact copies by BLAKE3 (the default).")] = False,
    kind: Annotated[Optional[str], typer.Option("--kind", help="Only this kind (image, video, audio, ...).")] = None,
    threshold: Annotated[Optional[int], typer.Option(
        "--threshold", help="For --similar: most differing pHash bits, 0 to 32 (pictures, videos; default 8), or "
                            "percent of differing fingerprint bits, 0 to 50 (audio; default 25).")] = None,
    fmt: FormatOption = Format.table,
    output: OutputOption = None,
) -> None:
    """Duplicate groups: exact copies by BLAKE3, or with --similar near-duplicates."""
    from ..dupes import (DEFAULT_RADIUS, drop_colourless_pairs, exact_groups, similar_audio, similar_groups,
                         similar_videos, still_videos)
    from ..dupes.find import AUDIO_MAX_BER, LOOSE_BER, LOOSE_PICTURE_RADIUS, LOOSE_RADIUS, check_threshold
    from . import _to_stderr

    g = _globals(ctx)
    if similar and exact:  # else the last of the two would win, and the user never learns which ran
        raise InvalidInputError("--exact and --similar ask for different groups: give one of them")
    check_output_args(fmt, output, g.catalog)
    if threshold is not None and not similar:  # else a user who left out --similar thinks near copies were sought
        raise InvalidInputError("--threshold is for --similar: exact copies have no threshold")
    others = 0  # with --similar and no --kind: the videos and sound not compared, for a hint
    if similar:
        defaulted, kind = kind is None, kind or "image"
        if kind not in SIMILAR_KINDS:
            raise InvalidInputError("--similar compares pictures (--kind image, the default, RAW files included), "
                                    "videos (--kind video) or sound (--kind audio)")
        loose = {"audio": LOOSE_BER, "image": LOOSE_PICTURE_RADIUS}.get(kind, LOOSE_RADIUS)
        if threshold is not None:
            check_threshold(kind, threshold)
        if threshold is not None and threshold > loose:  # checked before the (long) fingerprinting
            what = {"audio": "recordings", "image": "pictures (pages of one layout, screenshots of one app)"}
            _to_stderr(f"mediaforge: warning: --threshold {threshold} is loose (over {loose}"
                       f"{' percent' if kind == 'audio' else ' bits'}): groups may join unrelated "
                       f"{what.get(kind, 'videos')}; check them before `dedupe --similar --apply`")
        # Writes the groups to the catalog's similar_groups table, so it needs the write lock.
        with open_catalog(g.catalog) as cat:
            _fingerprint_missing(cat, kind, g.quiet)
            radius = DEFAULT_RADIUS if threshold is None else threshold
            if kind == "video" and (old := drop_colourless_pairs(cat, radius)):
                if not g.quiet:  # (fingerprinted before schema 28: their colours are measured now)
                    print(f"{render.counted(old, 'video')} fingerprinted by an older MediaForge, without colours, "
                          "pair with another: fingerprinting them again", file=sys.stderr)
                _fingerprint_missing(cat, kind, g.quiet)
            if kind == "audio":
                table = similar_audio(cat, AUDIO_MAX_BER if threshold is None else threshold)
            else:
                find = similar_videos if kind == "video" else similar_groups
                table = find(cat, radius)
                if kind == "image":
                    _pictures_compared_less(cat)
                    if defaulted and not table.num_rows:
                        others = cat.con.execute("SELECT count(*) FROM files WHERE status = 'present' "
                                                 "AND kind IN ('video', 'audio')").fetchall()[0][0]
                elif still := still_videos(cat, radius):
                    _to_stderr(f"mediaforge: note: {render.counted(still, 'video')} whose frames barely change (a "
                               "still with sound, a static shot) left out: their fingerprint cannot tell a copy from "
                               "another stretch or recording of the same scene (exact copies are found without "
                               "--similar)")
    else:
        _hash_candidates(g.catalog, kind, g.quiet)
        with open_catalog(g.catalog, read_only=True) as cat:
            table = exact_groups(cat, kind)
    if fmt is Format.table and output is None:
        groups = len(set(table.column("group").to_pylist()))
        if table.num_rows:  # (none: the count line alone says so, with no empty table above it)
            render.print_table(table, hide=("dev", "inode", "blake3", "path_raw"), exact=("path",))
        saved = sum({r["group"]: r["reclaimable"] for r in table.select(["group", "reclaimable"]).to_pylist()}.values()) \
            if "reclaimable" in table.column_names else None
        print(f"{render.counted(groups, 'group')}" + (f", {render.human_bytes(saved)} reclaimable" if saved is not None else ""))
        if others:
            _to_stderr(f"mediaforge: note: --similar compares pictures unless told otherwise; the catalog's "
                       f"videos and sound ({render.counted(others, 'file')}) are compared with --kind video or "
                       "--kind audio")
        return
    _write_table(table, fmt, output, g.catalog)


def _pictures_compared_less(cat) -> None:  # noqa: ANN001 - a Catalog
    """Notes on stderr when pictures of the groups just made were hashed without their
    colours being measured (by a version before schema 23's, or one that measured none
    under --no-thumbs): those were grouped by pHash alone, and `--keep best` tells their
    grey by their mode; and when some have no finer pHash (hashed before schema 27):
    their pairs were not checked by it."""
    from . import _to_stderr

    ((n, coarse),) = cat.con.execute("""
        SELECT count(DISTINCT g.blake3) FILTER (WHERE h.chroma IS NULL AND h.grey IS NOT TRUE),
               count(DISTINCT g.blake3) FILTER (WHERE h.phash256 IS NULL)
        FROM similar_groups g JOIN image_hashes h USING (blake3) WHERE g.method = 'phash'""").fetchall()
    if n:
        _to_stderr(f"mediaforge: note: {render.counted(n, 'picture')} of these groups "
                   f"{'was' if n == 1 else 'were'} fingerprinted without measuring colour (by an older version of "
                   "MediaForge, or a JPEG whose colour libjpeg reads only whole): grouped by pHash alone; `" + _next("thumbs") + "` measures them, "
                   "then run this again")
    if coarse:
        _to_stderr(f"mediaforge: note: {render.counted(coarse, 'picture')} of these groups "
                   f"{'was' if coarse == 1 else 'were'} fingerprinted by a MediaForge older than schema 27, with no "
                   "finer pHash to check its pairs: pages of one layout or screenshots of one app may be grouped; "
                   "`" + _next("thumbs") + "` fingerprints them again, then run this again")


@command("dedupe")
def dedupe_cmd(
    ctx: typer.Context,
    keep: Annotated[Optional[str], typer.Option("--keep", help="Which file stays: oldest (the default for exact "
                                                                "copies), best (the default with --similar: most "
                                                                "pixels, lossless, bitrate, length), newest, "
                                                                "shortest-path, longest-path, largest-resolution, "
                                                                "highest-bitrate, oldest-taken, biggest, prefix:PATH "
                                                                "or sql:ORDER BY over f.* and m.*.")] = None,
    action: Annotated[Optional[str], typer.Option("--action", help="hardlink (default), symlink, reflink, move-to "
                                                                   "(with --to) or trash; near-duplicates: move-to or "
                                                                   "trash (default).")] = None,
    to: Annotated[Optional[Path], typer.Option("--to", help="Folder for --action move-to.")] = None,
    kind: Annotated[Optional[str], typer.Option("--kind", help="Only this kind; with --similar: image, video or "
                                                               "audio.")] = None,
    similar: Annotated[bool, typer.Option("--similar", help="Act on the groups of the last `dupes --similar` of "
                                                            "this kind instead of exact copies.")] = False,
    do_apply: Annotated[bool, typer.Option("--apply", help="Do it (the default only shows the plan).")] = False,
    undo_journal: Annotated[Optional[Path], typer.Option("--undo", help="Reverse the actions of this journal.")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Remove duplicates: a dry run by default; --apply verifies every file first (bytes
    for exact copies, content hash for near-duplicates), never touches the kept file, and
    writes a journal that --undo reverses."""
    from ..dupes import DEFAULT_RADIUS
    from ..dupes.dedupe import (DAMAGED, DEFAULT_KEEP, LINKED_BEFORE, MOVED_BEFORE, JournalError, apply, carry_over,
                                check_own_folders, has_carry, media_notes, note_damaged, phash_apart, plan_exact,
                                plan_similar, preview, similar_made)
    from ..dupes.find import AUDIO_MAX_BER
    from . import _to_stderr
    from ..stop import Stop

    g = _globals(ctx)
    if undo_journal is not None:  # what the journal did is undone; nothing else is chosen here
        given = [o for o, v in (("--keep", keep), ("--action", action), ("--to", to), ("--kind", kind),
                                ("--similar", similar), ("--apply", do_apply)) if v]
        if given:
            raise InvalidInputError(f"--undo reverses what its journal did, and takes no {', '.join(given)}")
    keep = keep or DEFAULT_KEEP[similar]
    action = action or ("trash" if similar else "hardlink")
    if to is not None and action != "move-to":
        raise InvalidInputError(f"--to is for --action move-to, not {action}")
    if to is not None:
        _check_no_dangling_link(to)
    if to is not None and os.path.lexists(to) and not os.path.isdir(to):  # the dry run says so too
        raise InvalidInputError(f"--to {path_text(os.fsencode(to))}: not a folder")
    if to is not None and not is_text(str(to)):  # before a folder or journal is made
        raise InvalidInputError(f"--to {path_text(os.fsencode(to))}: the journal records this folder as text, and its "
                                "path is not valid UTF-8; choose another folder")
    if undo_journal is not None:
        _undo(undo_journal, g.catalog, as_json, shows_bars(g, as_json))
        return
    target = Path(real(to)) if to is not None else None
    if target is not None and target == Path("/"):  # a file's place below / is where it is
        raise InvalidInputError("--to /: each file would be moved onto itself; choose a folder outside the library")
    if target is not None:
        _check_move_to(to, target, g.catalog)
    apart: dict[tuple[str, str], int] = {}
    if similar:
        method = SIMILAR_KINDS.get(kind or "image")
        if method is None:
            raise InvalidInputError("--similar acts on pictures (--kind image, the default, RAW files included), "
                                    "videos or audio")
        with open_catalog(g.catalog, read_only=True) as cat:
            plan = plan_similar(cat, keep, action, target, method)
            made = similar_made(cat, method)
            notes = media_notes(cat, plan.steps) if not do_apply and not as_json else {}
            apart = phash_apart(cat, plan.steps) if method == "phash" else {}
        if plan.damaged:
            # Recorded where the catalog can be written now (else found again next time).
            # (A catalog busy, read-only, another user's or on a full disk: not now. The
            # plan stands either way.)
            with contextlib.suppress(MediaForgeError, OSError), open_catalog(g.catalog) as cat:
                note_damaged(cat, plan.damaged)
            if not as_json:
                for path, why in plan.damaged.values():
                    _to_stderr(f"mediaforge: warning: {path_text(path)}: {DAMAGED.format(why=why)}; its group keeps "
                               "a whole copy before it")
        if made is None and not as_json:  # not "no duplicates": none found, or none looked for yet
            print(f"nothing to do: no near-duplicate groups of {SIMILAR_NAMES[method]}; "
                  "`" + _next(f"dupes --similar --kind {kind or 'image'}") + "` finds them")
            return
        if made is not None:
            radius, made_at = made
            default = AUDIO_MAX_BER if method == "audio" else DEFAULT_RADIUS
            if not as_json and not do_apply:
                print(f"the groups of `dupes --similar --kind {kind or 'image'} --threshold {radius}`, "
                      f"made {made_at:%Y-%m-%d %H:%M} UTC; keep {keep}")
            if radius > default:
                _to_stderr(f"mediaforge: warning: these groups were found with --threshold {radius}, looser than "
                           f"the default {default}: they may hold different pictures or recordings; check them "
                           "before --apply")
        if plan.stale:
            _to_stderr(f"mediaforge: warning: {render.counted(plan.stale, 'group')} left out: the file each was found "
                       "around is gone or changed since (moved, deleted, edited, or acted on by an earlier dedupe); `" + _next("scan") + "` of its "
                       "folder, then "
                       "`" + _next(f"dupes --similar --kind {kind or 'image'}") + "`, groups the rest again")
    else:
        _hash_candidates(g.catalog, kind, g.quiet or as_json)
        with open_catalog(g.catalog, read_only=True) as cat:
            plan = plan_exact(cat, keep, action, target, kind)
    if not do_apply:
        # What a look at the files already tells apply would skip: shown as such, and
        # neither counted nor reclaimed.
        beside = Path(g.catalog).resolve().parent
        blocked = preview(plan, beside / TRASH_DIR)
        if plan.steps:
            try:  # what --apply would refuse to start over: said now
                check_own_folders(beside / JOURNAL_DIR, beside / TRASH_DIR)
            except InvalidInputError as e:
                _to_stderr(f"mediaforge: note: --apply will refuse to start: {first_line(e).removesuffix('; nothing was changed')}")
        # Copies already what the action makes of them (an --apply stopped part way): not
        # skips, and nothing to reclaim.
        linked = {v: why for v, why in blocked.items() if why in LINKED_BEFORE}
        moved_before = sum(why == MOVED_BEFORE for why in linked.values())
        blocked = {v: why for v, why in blocked.items() if v not in linked}
        doable = replace(plan, steps=[s for s in plan.steps if s.victim not in blocked and s.victim not in linked])
        steps = _step_rows(doable.steps, action, target)
        if apart:  # pictures: how far each is from the kept one, in pHash bits
            for row, s in zip(steps, doable.steps, strict=True):
                row["phash_bits"] = apart.get((s.keep_blake3 or "", s.blake3 or ""))
        if as_json:
            render.dump_json({"dry_run": True, "action": action, "reclaimable": doable.reclaimable, "steps": steps,
                              "already_linked": len(linked),
                              **({"groups_left_out": plan.stale, "damaged": [
                                  {**render.path_fields("path", p), "why": why} for p, why in plan.damaged.values()]}
                                 if plan.similar else {}),
                              "skipped": [{**render.path_fields("path", v), "why": why} for v, why in blocked.items()]})
            return
        if not plan.steps:
            print(f"nothing to do: no duplicates to {action}")
            return
        # A group's paths as `ls -b` shows them; two that would look alike (é composed, or
        # e and an accent) spelled out.
        shown_as = _paths_shown(plan.steps)
        heading = None
        for s in plan.steps:
            keep, victim = shown_as[s.keep], shown_as[s.victim]
            about_kept = ""
            if plan.similar:  # what differs between the copies: why this one stays
                kept = notes.get(s.keep_blake3 or "", "")
                about_kept = f" ({kept + ', ' if kept else ''}{render.human_bytes(s.keep_size)})"
            if s.victim in blocked:
                line = f"skip {victim}: {blocked[s.victim]}"
            elif s.victim in linked:
                line = f"done {victim}: " + (MOVED_BEFORE if linked[s.victim] == MOVED_BEFORE else "already linked to it")
            elif plan.similar:
                gone = notes.get(s.blake3 or "", "")
                bits = apart.get((s.keep_blake3 or "", s.blake3 or ""))
                if bits is not None:
                    gone += (", " if gone else "") + ("same pHash as the kept" if bits == 0 else
                                                      f"pHash {render.counted(bits, 'bit')} from the kept")
                line = f"{action} {victim} ({gone + ', ' if gone else ''}{render.human_bytes(s.size)})"
            else:
                line = f"{action} {victim}"
            if heading != (s.group, s.keep):  # the kept file once, then each other copy under it
                heading = (s.group, s.keep)
                print(f"[{s.group}] keep {keep}{about_kept}")
            print(f"      {line}")
        # Moved files free their space only where they go: the trash once emptied, or
        # another disk.
        where = {"trash": " once the trash folder is emptied",
                 "move-to": f" from this disk if {path_text(os.fsencode(to)) if to else 'the --to folder'} is on another"}
        print(f"dry run: {render.counted(len(steps), 'file')} would be {DONE.get(action, action)}, "
              f"{render.human_bytes(doable.reclaimable)} reclaimed{where.get(action, '')}"
              + (f"; {len(linked) - moved_before:,} already linked" if len(linked) > moved_before else "")
              + (f"; {moved_before:,} already moved" if moved_before else "")
              + (f"; {len(blocked):,} would be skipped (see above)" if blocked else "") + "; add --apply to do it")
        return
    left_out = {"groups_left_out": plan.stale, "damaged": [
        {**render.path_fields("path", p), "why": why} for p, why in plan.damaged.values()]} if plan.similar else {}
    if not plan.steps:  # no journal, no trash folder, no undo command for nothing
        if as_json:
            render.dump_json({"done": 0, "already_linked": 0, "bytes": 0, "journal": None, "tags_carried": 0,
                              "collections_carried": 0, "skipped": [], "steps": [], **left_out})
        else:
            print(f"nothing to do: no duplicates to {action}")
        return
    root = Path(g.catalog).resolve().parent
    # Hold the catalog's write lock while acting, so the tags can follow at once.
    out = None
    # An error once the files were acted on (the catalog or the search index could not
    # be written: a full disk): raised once the report of the files is out.
    later_error: MediaForgeError | None = None
    try:
        with open_catalog(g.catalog) as cat:
            replayed = _carry_unfinished(cat, g.catalog)  # an earlier dedupe killed before its carry-over
            with render.ExtractProgressBar(shows_bars(g, as_json), "dedupe", "skipped") as bar:
                out = apply(plan, root / JOURNAL_DIR, root / TRASH_DIR, bar.step, catalog=g.catalog)
            from .organise import IndexFollows

            try:
                follow = IndexFollows(cat, g.catalog, shows_bars(g, as_json)) if has_carry(cat, out) or replayed else None
                try:
                    carry_over(cat, out)
                except JournalError as e:  # tags left where they were; the files' report still follows
                    out.journal_failed = str(e)
                if follow is not None:  # the kept files' documents, when tags or collections came over
                    carried = out.tags_carried or out.collections_carried
                    follow.done(([s.keep_id for s in out.done_steps if s.keep_id] if carried else []) + replayed)
            except MediaForgeError as e:
                later_error = e
    except KeyboardInterrupt:
        if out is None:
            raise
        # The files were acted on (and journalled) before this Ctrl-C: what was done, the
        # journal and the undo command are printed all the same.
        out.interrupted = True
    except MediaForgeError as e:  # closing the catalog, after the files were acted on
        if out is None:
            raise
        later_error = later_error or e
    with Stop():  # a second Ctrl-C (`timeout` signals the command, then its group) waits for the report
        _print_outcome(out, DONE[action], as_json, action, apart, left_out)
    if out.journal_failed:  # after the report of what was done: exit 3 with the reason
        raise PathIOError(out.journal_failed)
    if later_error is not None:
        raise later_error
    _done_in_part(out)


def _done_in_part(out) -> None:  # noqa: ANN001
    """Exit 8 after the report of an --apply or --undo that skipped files (each listed
    with its reason): a script can tell it from one that did everything."""
    if out.skipped and not out.interrupted:
        raise typer.Exit(ExitCode.PARTIAL)


def _undo(journal: Path, catalog_path: Path, as_json: bool, show_bar: bool = False) -> None:
    """Restore a dedupe's files, then take back the tags it carried. A busy catalog is
    refused before any file is touched (run again later); a catalog that cannot be
    opened otherwise (damaged) does not keep the files from coming back: they are
    restored, and the error says the tags were not taken back."""
    from ..catalog import Catalog
    from ..dupes.dedupe import carried_anything, check_journal, holds_kept_files, uncarry, undo
    from ..errors import CatalogBusyError, CatalogError, CatalogMissingError
    from ..stop import Stop

    check_journal(journal)  # a file that is no journal: refused before anything is opened
    cat: Catalog | None = None
    problem: MediaForgeError | None = None
    tags_back = False
    try:
        cat = open_catalog(catalog_path)
    except CatalogBusyError:
        raise
    except CatalogMissingError as e:
        # No catalog there: the files come back all the same; tags the dedupe carried
        # over (into another catalog, then) are not taken back, and that is said.
        if carried_anything(journal):
            problem = e
    except CatalogError as e:
        problem = e
    # A journal from beside another catalog, none of whose kept files this one holds: its
    # files come back all the same, and the tags are said to stay (a QA finding: it said
    # nothing, exit 0).
    elsewhere = cat is not None and carried_anything(journal) and (
        Path(os.path.realpath(journal)).parent != Path(os.path.realpath(catalog_path)).parent / JOURNAL_DIR
    ) and not holds_kept_files(cat, journal)
    try:
        with render.ExtractProgressBar(show_bar, "undo", "skipped") as bar:
            out = undo(journal, bar.step)
        if cat is not None:
            from .organise import IndexFollows

            try:
                with IndexFollows(cat, catalog_path, show_bar) as follow:
                    taken = uncarry(cat, journal, out)
                    tags_back = True  # committed: what may fail next is the search index alone
                    follow.done(taken)
                if elsewhere:
                    tags_back = False
                    problem = PathIOError(
                        f"the journal {path_text(os.fsencode(journal))} is not beside the catalog "
                        f"{path_text(os.fsencode(catalog_path))} (in its {JOURNAL_DIR}/ folder), which holds none of "
                        "the files it carried tags to: the files are restored, but the tags the dedupe carried over "
                        "were not taken back: run the undo again with -c naming the catalog the dedupe used")
            except KeyboardInterrupt:  # the files are back: say so (the next undo takes the tags back)
                out.interrupted = True
            except MediaForgeError as e:  # a full disk under the catalog: the report first
                problem = e
    finally:
        if cat is not None:
            try:
                cat.close()
            except MediaForgeError as e:
                problem = problem or e
    with Stop():
        _print_outcome(out, "restored", as_json)
    if out.journal_failed:  # after the report of what was restored: exit 3 with the reason
        raise PathIOError(out.journal_failed)
    if problem is not None:
        if not tags_back and isinstance(problem, CatalogMissingError):
            problem.args = (f"no catalog at {path_text(os.fsencode(catalog_path))}: the files are restored, but the "
                            "tags the dedupe carried over were not taken back: run the undo again with -c naming "
                            "the catalog the dedupe used",)
        elif not tags_back and "were not taken back" not in str(problem):
            problem.args = (f"{first_line(problem)}; the files are restored, but the tags the dedupe carried over "
                            "were not taken back: run the undo again once that is fixed",)
        raise problem
    _done_in_part(out)


def _paths_shown(steps) -> dict[bytes, str]:  # noqa: ANN001
    """Each path of a plan's groups as a report shows it: `path_text`, and where two of a
    group would look alike though their bytes differ (names that differ only in how
    Unicode composes them), spelled out (`paths_apart`)."""
    from ..errors import paths_apart

    groups: dict[int, list[bytes]] = {}
    for s in steps:
        for p in (s.keep, s.victim):
            if p not in groups.setdefault(s.group, []):
                groups[s.group].append(p)
    return {p: t for paths in groups.values() for p, t in zip(paths, paths_apart(paths))}


def _step_rows(steps, action: str, dest: Path | None = None) -> list[dict]:  # noqa: ANN001
    """Dedupe steps for --json: group, the kept file, the one acted on (under the action's
    name), with their exact bytes where not UTF-8, the size, and for a move where the file
    goes (`to`; known once `dest` is: a trash folder is dated when the apply starts)."""
    from ..dupes.dedupe import moved_path

    return [{"group": s.group, **render.path_fields("keep", s.keep), **render.path_fields(action, s.victim),
             **(render.path_fields("to", moved_path(s.victim, dest)) if dest is not None else {}),
             "size": s.size} for s in steps]


def _print_outcome(out, verb: str, as_json: bool, action: str | None = None,  # noqa: ANN001
                   apart: dict[tuple[str, str], int] | None = None, left_out: dict[str, int] | None = None) -> None:
    """The report of an --apply or --undo. Output that cannot be written (a full disk, a
    reader gone) still leaves, on stderr, what was done and the journal to undo it. With
    the reader gone, the command goes on to its own exit code (8 for skipped files, 3 for
    a journal that could not be finished), as it would have with the report read. `apart`
    and `left_out`: a near-duplicate plan's pHash bits by pair and its groups left out,
    for `--json`, as the dry run gives them."""
    from ..dupes.dedupe import undo_command

    try:
        _write_outcome(out, verb, as_json, action, apart or {}, left_out or {})
        sys.stdout.flush()
    except OSError as e:
        from . import _to_stderr

        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - what is buffered cannot be written
        line = (f"{render.counted(out.done, 'file')} {verb}" + (f"; journal {_journal_text(out.journal)}" + (
            f"; undo with: {undo_command(out.journal, out.catalog)}" if verb != "restored" else "")
            if out.journal is not None else ""))
        if out.skipped:  # their reasons were in the report
            line += f"; {render.counted(len(out.skipped), 'file')} skipped"
        if out.journal_failed:  # why it stopped there
            line += f"; {out.journal_failed}"
        if isinstance(e, BrokenPipeError) or out.interrupted:
            why = "the reader of the report left" if isinstance(e, BrokenPipeError) else \
                f"cannot write the standard output: {e.strerror or first_line(e)}"
            if out.interrupted:  # a Ctrl-C's exit code all the same
                _to_stderr(f"mediaforge: {why}: {line}")
                raise KeyboardInterrupt from None
            if out.journal_failed:  # exit 3, the line saying why
                raise PathIOError(f"{why}: {line}") from None
            _to_stderr(f"mediaforge: {why}: {line}")
            return  # on to the exit code the command would have had (8 after skips)
        raise PathIOError(f"cannot write the standard output: {e.strerror or first_line(e)}; {line}") from None
    if out.interrupted:
        raise KeyboardInterrupt


def _journal_text(journal: os.PathLike[str] | str) -> str:
    """A journal's path on one line of a report (see `path_text`)."""
    return path_text(os.fsencode(journal))


def _before(out, verb: str) -> str:  # noqa: ANN001
    """What the files an earlier run did already were: restored, moved or linked (a run
    of a link action finds the copies an earlier move took away too)."""
    if verb == "restored":
        return f"{out.already} restored by an earlier undo"
    linked, moved = out.already - out.already_moved, out.already_moved
    return "; ".join(part for n, part in ((linked, f"{linked} linked before this run"),
                                          (moved, f"{moved} moved before this run")) if n)


def _write_outcome(out, verb: str, as_json: bool, action: str | None,  # noqa: ANN001
                   apart: dict[tuple[str, str], int], left_out: dict[str, int]) -> None:
    from ..dupes.dedupe import undo_command

    if as_json:
        # What was done, file by file: the steps of an --apply, the paths an undo restored.
        done = {"restored": [render.path_fields("path", p) for p in out.restored]} if verb == "restored" \
            else {"steps": _step_rows(out.done_steps, action or verb, out.dest)}
        if apart:  # pictures: how far each is from the kept one, as in the dry run
            for row, s in zip(done["steps"], out.done_steps, strict=True):
                row["phash_bits"] = apart.get((s.keep_blake3 or "", s.blake3 or ""))
        render.dump_json({**left_out, "done": out.done, ("already_restored" if verb == "restored" else "already_linked"): out.already,
                          "bytes": out.bytes_freed, "journal": None if out.journal is None else str(out.journal),
                          "tags_carried": out.tags_carried,
                          "collections_carried": out.collections_carried,
                          "skipped": [{**render.path_fields("path", p), "why": w} for p, w in out.skipped], **done})
        return
    for p, why in out.skipped:
        print(f"skipped {path_text(p)}: {why}")
    print(f"{render.counted(out.done, 'file')} {verb}" + (f", {render.human_bytes(out.bytes_freed)}" if out.bytes_freed else "")
          + (f" ({_before(out, verb)})" if out.already else "") + (f"; journal {_journal_text(out.journal)}" if out.journal is not None else ""))
    if verb == "trashed" and out.done and out.dest is not None:  # (none moved: no trash folder to speak of)
        print(f"the space comes back once you delete {path_text(os.fsencode(out.dest))} (this run's trash): it is "
              "not your desktop's Trash, and nothing empties it for you")
    if verb != "restored" and out.journal is not None:
        print(f"undo with: {undo_command(out.journal, out.catalog)}; rescan to update the catalog")


@command("sample")
def sample_cmd(
    dest: Annotated[Path, typer.Argument(help="Folder to create the sample library in.")],
) -> None:
    """Make a small sample library with real encoders (photos, a video, songs)."""
    from ..sample import SampleConflict, make_sample_library

    others: list[Path] = []
    try:
        made = make_sample_library(Path(from_cwd(dest)))
    except SampleConflict as e:
        made, others = e.made, e.others
    except OSError as e:  # a file where a folder goes, a folder that cannot be written, a full disk
        where = path_text(os.fsencode(e.filename)) if e.filename is not None else path_text(os.fsencode(dest))
        raise PathIOError(f"cannot make the sample library in {path_text(os.fsencode(dest))}: {where}: "
                          f"{e.strerror or first_line(e)}") from None
    for p in made:
        print(path_text(os.fsencode(p)))
    for p in others:
        print(f"mediaforge: {path_text(os.fsencode(p))} is there already and is not the sample's file: "
              "left as it is (move it away to have the sample's)", file=sys.stderr)
    if others:
        raise typer.Exit(ExitCode.PARTIAL)


from . import organise  # noqa: E402,F401 - registers tag, collection, xmp and search
