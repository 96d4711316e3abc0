"""Where things live and how many threads to use, from options and the environment."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InvalidInputError

CATALOG_ENV = "MEDIAFORGE_CATALOG"
THREADS_ENV = "MEDIAFORGE_THREADS"


def default_catalog_path() -> Path:
    """`$MEDIAFORGE_CATALOG`, else `$XDG_DATA_HOME/mediaforge/catalog.duckdb`, else
    `~/.local/share/mediaforge/catalog.duckdb`."""
    env = os.environ.get(CATALOG_ENV)
    if env:
        return Path(env).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "mediaforge" / "catalog.duckdb"


def thumbs_dir(catalog: os.PathLike[str] | str) -> Path:
    """The thumbnail folder of a catalog: `thumbs/` beside the catalog file. (Also
    `meta.thumbs.thumbs_root`, which says the same: that module loads without the package.)"""
    return Path(catalog).resolve().parent / "thumbs"


def search_dir(catalog: os.PathLike[str] | str) -> Path:
    """Where the search index of a catalog lives: beside it, `<name>.search/`."""
    p = Path(catalog)
    return p.with_name(p.stem + ".search")


def catalog_files(catalog: os.PathLike[str] | str | bytes) -> list[bytes]:
    """The catalog file, its write-ahead log, thumbnail folder and search index, as real
    absolute paths: what a scan of the folder holding them leaves out."""
    path = Path(os.fsdecode(catalog))
    real = Path(os.path.realpath(path))
    return [os.fsencode(p) for p in (real, real.with_name(real.name + ".wal"), thumbs_dir(real),
                                     real.parent / search_dir(path).name)]


MAX_THREADS = 1024  # threads, or worker processes for extraction: more is a typo, not a machine


def thread_count(option: int | None) -> int:
    """Threads for parallel work: the option, else `$MEDIAFORGE_THREADS`, else all cores."""
    if option is not None:
        value = option
    elif os.environ.get(THREADS_ENV):
        raw = os.environ[THREADS_ENV]
        try:
            value = int(raw)
        except ValueError:
            raise InvalidInputError(f"{THREADS_ENV}={raw!r} is not a whole number") from None
    else:
        return os.cpu_count() or 1
    if not 1 <= value <= MAX_THREADS:
        raise InvalidInputError(f"thread count must be 1 to {MAX_THREADS}, got {value}")
    return value
