"""What the take-over of rows gone in an earlier scan costs each scan, on a large catalog.

No peer does this, so it prints milliseconds, not ratios. A real scan of a small tree makes
a catalog; its rows are then copied, in SQL, to `--rows` rows with distinct inodes, paths
and digests. Each case sets how many rows went missing (found gone by the last completed
scan), whether that scan left a `disks_seen:` record (it saw their disk), and how many files
the next scan finds for the first time holding a missing row's bytes, born inside its
window (moved there). It then times, inside one transaction as a scan's end does, the
check a scan makes at its start (`gone_with_digests`) and the pairing (`_pair_gone_before`),
best of `--runs`. Usage: python benches/takeover_cost.py [--rows 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from mediaforge.catalog import writes
from mediaforge.catalog.schema import FILES_STORED
from mediaforge.catalog.store import Catalog, open_catalog

BASE_FILES = 200


def build(path: Path, tree: Path, rows: int) -> None:
    tree.mkdir()
    for i in range(BASE_FILES):
        (tree / f"f{i}.bin").write_bytes(os.urandom(2048))
    subprocess.run([sys.executable, "-m", "mediaforge", "--catalog", str(path), "scan", str(tree), "--json"],
                   check=True, capture_output=True)
    copies = max(1, rows // BASE_FILES - 1)
    sel = (FILES_STORED.replace("media_id,", "gen_random_uuid(),")
           .replace(" inode,", f" inode * {copies + 1} + r.range + 1,")
           .replace(" blake3,", " md5(inode::VARCHAR || '/' || r.range) || md5(r.range::VARCHAR || '/' || inode),")
           .replace(" path_raw,", " ('/gone/' || r.range || '/' || name)::BLOB,"))
    cat = open_catalog(path)
    try:
        with cat.transaction() as con:
            con.execute(f"INSERT INTO files ({FILES_STORED}) SELECT {sel} FROM files, range({copies}) r")
    finally:
        cat.close()


def set_case(cat: Catalog, missing: int, recorded: bool, moved: int) -> int:
    """Put the catalog in the case's state; returns the next scan's id."""
    con = cat.con
    finished, last = con.execute("SELECT max(finished_at), max(scan_id) FROM scans "
                                 "WHERE status = 'completed'").fetchall()[0]
    with cat.transaction() as c:
        c.execute("DELETE FROM files WHERE first_scan_id > ?", [last])
        c.execute("UPDATE files SET status = 'present', missing_since = NULL")
        c.execute(f"DELETE FROM meta WHERE starts_with(key, '{writes.DISKS_SEEN}')")
        c.execute("UPDATE files SET status = 'missing', missing_since = ? WHERE media_id IN "
                  f"(SELECT media_id FROM files WHERE path_raw IS NOT NULL ORDER BY inode LIMIT {missing})",
                  [finished])
        if moved:
            sel = (FILES_STORED.replace("media_id,", "gen_random_uuid(),")
                   .replace(" inode,", " inode + 1099511627776,").replace(" first_scan_id,", f" {last + 1},")
                   .replace(" status,", " 'present',").replace(" missing_since,", " NULL,")
                   .replace(" path_raw,", " ('/moved/' || inode || '/' || name)::BLOB,")
                   .replace("btime_ns", "epoch_ns(last_seen) + 1"))
            c.execute(f"INSERT INTO files ({FILES_STORED}) SELECT {sel} FROM files WHERE status = 'missing' "
                      f"ORDER BY inode LIMIT {moved}")
        if recorded:
            seen = c.execute("SELECT DISTINCT dev, last_scan_id FROM files ORDER BY ALL").fetchall()
            c.execute("INSERT INTO meta VALUES (?, ?)",
                      [f"{writes.DISKS_SEEN}{last}", json.dumps({"seen": [list(p) for p in seen], "linked": []})])
    return last + 1


def time_case(cat: Catalog, scan_id: int, runs: int) -> tuple[float, float, int]:
    none = pa.table({"media_id": pa.array([], pa.string())})
    gate = pairing = float("inf")
    paired = 0
    for _ in range(runs):
        t = time.perf_counter()
        writes.gone_with_digests(cat)
        gate = min(gate, time.perf_counter() - t)
        with cat.registered("mf_first_hashed", none), cat.transaction() as con:
            con.execute("CREATE OR REPLACE TEMP TABLE mf_moves (old_id UUID, new_id UUID, "
                        "old_first_seen TIMESTAMP, old_first_scan BIGINT)")
            t = time.perf_counter()
            paired = len(writes._pair_gone_before(con, scan_id))
            pairing = min(pairing, time.perf_counter() - t)
            con.execute("DROP TABLE mf_moves")
    return gate, pairing, paired


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    missing = args.rows // 5
    cases = [(0, False, 0), (missing, False, 0), (missing, True, 0), (missing, True, 1000),
             (missing, True, args.rows // 10)]
    with tempfile.TemporaryDirectory(prefix="mf-takeover-") as tmp:
        path = Path(tmp) / "catalog.duckdb"
        build(path, Path(tmp) / "tree", args.rows)
        cat = open_catalog(path)
        try:
            (rows,) = cat.con.execute("SELECT count(*) FROM files").fetchall()[0]
            print(f"catalog of {rows:,} rows; best of {args.runs}\n")
            print("| missing rows | their disk seen | moved files | start check ms | pairing ms | paired |")
            print("|---:|---|---:|---:|---:|---:|")
            for gone, recorded, moved in cases:
                scan_id = set_case(cat, gone, recorded, moved)
                gate, pairing, paired = time_case(cat, scan_id, args.runs)
                print(f"| {gone:,} | {'yes' if recorded else 'no'} | {moved:,} | {gate * 1000:.1f} "
                      f"| {pairing * 1000:.1f} | {paired:,} |")
        finally:
            cat.close()


if __name__ == "__main__":
    main()
