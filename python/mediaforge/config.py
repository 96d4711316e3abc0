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
