"""The catalog write's floor for the scan benchmark: the `files` rows of a finished scan,
held in memory as Arrow (untimed), inserted into a fresh catalog in one transaction and
the catalog closed (its checkpoint compresses and writes every column). A scan does this
work and more (in batches, beside the walk), so its CPU time is a floor for the scan's
catalog write.

    python benches/write_floor.py SOURCE_CATALOG NEW_CATALOG

Prints "wall_s cpu_s" of the timed part; cpu_s counts every thread of the process.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

from mediaforge._arrowload import install

install()

import duckdb  # noqa: E402

from mediaforge.catalog.schema import FILES_STORED  # noqa: E402
from mediaforge.catalog.store import Catalog  # noqa: E402


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    source, target = sys.argv[1], Path(sys.argv[2])
    for p in (target, Path(f"{target}.wal")):
        p.unlink(missing_ok=True)
    src = duckdb.connect(source, read_only=True)
    # Media ids as 16-byte UUIDs, not text: a scan's rows get theirs from gen_random_uuid(),
    # and parsing a million UUID strings (0.1 CPU-s) is no part of its write.
    src.execute("SET arrow_lossless_conversion = true")
    rows = src.sql(f"SELECT {FILES_STORED} FROM files").to_arrow_table()
    src.close()
    cat = Catalog.open(target)  # schema made before the clock starts
    wall0, cpu0 = time.perf_counter(), cpu_s()
    with cat.registered("floor_rows", rows), cat.transaction() as con:
        con.execute(f"INSERT INTO files ({FILES_STORED}) SELECT * FROM floor_rows")
    cat.close()
    print(f"{time.perf_counter() - wall0:.4f} {cpu_s() - cpu0:.4f}")
    for p in (target, Path(f"{target}.wal")):
        p.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
