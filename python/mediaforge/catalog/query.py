"""Reading the catalog: user SQL, Parquet export and the `stats` summary."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ..errors import PathIOError, QueryError, first_line
from .schema import CORE_TABLES
from .store import Catalog


def run_query(cat: Catalog, sql: str) -> pa.Table:
    """Run one SQL statement and return its rows as an Arrow table."""
    if not sql.strip():
        raise QueryError("empty SQL statement")
    try:
        rel = cat.con.sql(sql)
        if rel is None:  # a statement that returns nothing (SET, PRAGMA ...)
            return pa.table({})
        return rel.to_arrow_table()
    except duckdb.Error as e:
        raise QueryError(f"SQL error: {first_line(e)}") from None


def export_parquet(cat: Catalog, out_dir: Path, tables: tuple[str, ...] = CORE_TABLES) -> list[Path]:
    """Write each catalog table as `<table>.parquet` (zstd) into `out_dir`."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PathIOError(f"cannot create {out_dir}: {e.strerror}") from None
    written = []
    for t in tables:
        target = out_dir / f"{t}.parquet"
        tmp = out_dir / f".{t}.parquet.partial"
        try:
            cat.con.execute(
                f"COPY (SELECT * FROM {t}) TO '{_sql_str(tmp)}' (FORMAT parquet, COMPRESSION zstd)"
            )
        except duckdb.Error as e:
            raise PathIOError(f"export of {t} to {target} failed: {first_line(e)}") from None
        tmp.replace(target)  # never leave a half-written file under the final name
        written.append(target)
    return written


def _sql_str(p: Path) -> str:
    return str(p).replace("'", "''")


@dataclass(frozen=True)
class Stats:
    """What `mediaforge stats` shows."""

    totals: dict[str, Any]
    by_kind: list[dict[str, Any]]
    largest_dirs: list[dict[str, Any]]
    last_scans: list[dict[str, Any]]
    error_stages: list[dict[str, Any]]


def _rows(cat: Catalog, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    cur = cat.con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def stats(cat: Catalog, top: int = 10) -> Stats:
    """Counts and bytes by kind, the largest folders, the last scans."""
    totals = _rows(
        cat,
        """
        SELECT count(*) FILTER (WHERE status = 'present') AS files,
               coalesce(sum(size) FILTER (WHERE status = 'present'), 0) AS bytes,
               count(*) FILTER (WHERE status = 'missing') AS missing,
               count(*) FILTER (WHERE status = 'present' AND blake3 IS NULL) AS unhashed,
               count(DISTINCT blake3) FILTER (WHERE status = 'present') AS distinct_contents
        FROM files
        """,
    )[0]
    by_kind = _rows(
        cat,
        """
        SELECT kind, count(*) AS files, sum(size) AS bytes
        FROM files WHERE status = 'present' GROUP BY kind ORDER BY bytes DESC, kind
        """,
    )
    largest = _rows(
        cat,
        """
        SELECT dir, count(*) AS files, sum(size) AS bytes
        FROM files WHERE status = 'present' GROUP BY dir ORDER BY bytes DESC, dir LIMIT ?
        """,
        [top],
    )
    scans = _rows(
        cat,
        """
        SELECT scan_id AS id, strftime(started_at, '%Y-%m-%d %H:%M') AS started, status,
               files_seen AS files, new_files AS new, changed_files AS changed,
               moved_files AS moved, missing_files AS missing, errors, round(seconds, 2) AS secs
        FROM scans ORDER BY scan_id DESC LIMIT 5
        """,
    )
    stages = _rows(
        cat,
        "SELECT stage, count(*) AS errors FROM scan_errors GROUP BY stage ORDER BY errors DESC, stage",
    )
    return Stats(totals=totals, by_kind=by_kind, largest_dirs=largest, last_scans=scans, error_stages=stages)
