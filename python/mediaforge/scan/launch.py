"""Start a scan's walk before the catalog is open.

Listing a million files takes seconds; loading DuckDB and pyarrow, opening the catalog and
reading its rows take most of a second. So the walk starts first, from this module, which
imports neither: the Rust core lists folders and holds them until `scan` hands it the
catalog's previous state, then decides what is new, changed or gone.
"""

from __future__ import annotations

import atexit
import os
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

from .. import _core
from ..config import catalog_file_ids, catalog_files, thread_count
from ..errors import InvalidInputError, PathIOError, PathNotFoundError, PathPermissionError, path_text
from ..fsops import real as resolved

PathLike = str | bytes | os.PathLike[str] | os.PathLike[bytes]


@dataclass(frozen=True)
class ScanConfig:
    """What to scan and how. Build one from CLI options, then call `scan`."""

    roots: tuple[PathLike, ...]
    hash: bool = True
    threads: int | None = None
    excludes: tuple[str, ...] = ()
    ignore_files: bool = True
    include_hidden: bool = True
    follow_symlinks: bool = False
    one_file_system: bool = False
    prune: bool = False
    batch_rows: int = 245_760
    flush_seconds: float = 2.0


def _once(roots: Iterable[bytes]) -> list[bytes]:
    """The roots in the order given, each once."""
    return list(dict.fromkeys(roots))


def resolve_root(p: PathLike) -> bytes:
    """An absolute, symlink-free path in raw bytes; raises if it does not exist."""
    raw = os.fsencode(p)
    real = resolved(raw)
    try:
        # As typed first: `realpath` drops a trailing slash, which a file does not take
        # (`photo.jpg/` is "Not a directory", as for `ls`).
        os.stat(raw)
        st = os.stat(real)
        if not stat.S_ISDIR(st.st_mode) and not stat.S_ISREG(st.st_mode):
            # A FIFO would block the open below for ever; a device is no media file.
            raise InvalidInputError(f"{path_text(raw)} is neither a folder nor a regular file")
        # Opening proves we may read it (a folder also needs search rights to list files).
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | (os.O_DIRECTORY if stat.S_ISDIR(st.st_mode) else 0))
        os.close(fd)
        if stat.S_ISDIR(st.st_mode) and not os.access(real, os.X_OK, effective_ids=True):
            raise PermissionError
    except FileNotFoundError:
        raise PathNotFoundError(f"no such file or directory: {path_text(raw)}") from None
    except PermissionError:
        raise PathPermissionError(f"permission denied: {path_text(raw)}") from None
    except OSError as e:
        raise PathIOError(f"cannot read {path_text(raw)}: {e.strerror}") from None
    return real


def display(p: bytes) -> str:
    """The catalog's display form of a raw path (undecodable bytes become U+FFFD)."""
    return p.decode("utf-8", "replace")


def _at_or_below(path: bytes, folder: bytes) -> bool:
    return path == folder or path.startswith(folder.rstrip(b"/") + b"/")


class Walk:
    """A scan's walk, started before the catalog is open; `scan(cat, config, walk=...)`
    finishes it. Close it (or use it as a context manager) if the scan never runs: that
    stops the walk's threads.

    `catalog`: the catalog file the scan will write. One that does not exist yet has no
    rows to compare against, so the core decides, and hashes, from the start (`fresh`);
    `scan` checks that the catalog is still empty once it is open. `empty`: the caller
    has the catalog open and knows it holds no rows, which makes the walk fresh too.

    Raises `PathNotFoundError` (and the other path errors) for a bad root before any
    thread starts.
    """

    def __init__(self, config: ScanConfig, catalog: PathLike | None = None, *, empty: bool = False) -> None:
        self.config = config
        self.catalog = None if catalog is None else os.path.abspath(os.fsencode(catalog))
        self.started = time.monotonic()
        # Each root once, however it was spelled (`e`, `e/`, `./e`).
        self.given_b: list[bytes] = _once(resolve_root(r) for r in config.roots)
        skip = [] if catalog is None else catalog_files(catalog)
        # The catalog's own files and folders, named as roots (`scan ~/Media/*` with the
        # catalog in ~/Media): left out, as a scan of the folder holding them leaves them.
        # (A catalog path that is a folder is no catalog: opening it says so.)
        own = [] if catalog is None or os.path.isdir(catalog) else skip
        self.left_out: list[bytes] = [r for r in self.given_b if any(_at_or_below(r, p) for p in own)]
        self.roots_b: list[bytes] = [r for r in self.given_b if r not in self.left_out]
        if not self.roots_b:
            raise InvalidInputError(f"{path_text(self.left_out[0])} is the catalog's own (its file, thumbnails, "
                                    "search index or dedupe folders): there is nothing else to scan")
        self.roots: tuple[str, ...] = tuple(display(r) for r in self.roots_b)
        self.fresh = empty or catalog is not None and not any(
            os.path.lexists(p) for p in (os.fsencode(catalog), os.fsencode(catalog) + b".wal"))
        self.scanner = _core.Scanner(
            list(self.roots_b),
            None,
            hash=config.hash,
            threads=thread_count(config.threads),
            excludes=list(config.excludes),
            ignore_files=config.ignore_files,
            include_hidden=config.include_hidden,
            follow_symlinks=config.follow_symlinks,
            one_file_system=config.one_file_system,
            batch_rows=config.batch_rows,
            flush_seconds=config.flush_seconds,
            previous_later=not self.fresh,
            skip=skip,
            skip_ids=catalog_file_ids(skip),
        )

    def close(self) -> None:
        self.scanner.close()

    def serves(self, config: ScanConfig, catalog: PathLike | None) -> bool:
        """Whether this walk is the one `config` asks for, on `catalog`: the same resolved
        roots and the same options (roots may be spelled differently)."""
        same_catalog = self.catalog == (None if catalog is None else os.path.abspath(os.fsencode(catalog)))
        return (same_catalog and replace(self.config, roots=()) == replace(config, roots=())
                and self.given_b == _once(resolve_root(r) for r in config.roots))

    def __enter__(self) -> Walk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# A walk the CLI started before its own imports, for the scan command to claim.
_early: Walk | None = None


def start_early(config: ScanConfig, catalog: PathLike) -> None:
    """Start the walk a `scan` command is about to ask for, before typer, rich, DuckDB and
    pyarrow load (a tenth of a second or more of a scan's critical path): the CLI reads
    just enough of its arguments to call this. Raises what `Walk` raises."""
    global _early
    walk = Walk(config, catalog)
    atexit.register(walk.close)  # unclaimed (a usage error, a Ctrl-C): its threads stop
    _early = walk


def claim_walk(config: ScanConfig, catalog: PathLike) -> Walk:
    """The walk for `config` on `catalog`: the one started early when it is that walk,
    else a new one (an early walk that is not is closed)."""
    global _early
    early, _early = _early, None
    if early is not None:
        try:
            if early.serves(config, catalog):
                early.config = config  # the same walk, in the caller's spelling
                return early
        except Exception:
            early.close()
            raise
        early.close()
    return Walk(config, catalog)


__all__ = ["ScanConfig", "Walk", "claim_walk", "display", "resolve_root", "start_early"]
