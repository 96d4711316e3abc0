"""A file written to while it is being hashed is never stored with a digest."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import blake3

from conftest import do_scan, files_by_path, rows

MIB = 1024 * 1024


def _keep_writing(path: Path, stop: threading.Event) -> None:
    """Overwrite the first bytes again and again: the size stays, the mtime moves."""
    with open(path, "r+b", buffering=0) as f:
        n = 0
        while not stop.is_set():
            f.seek(0)
            f.write(n.to_bytes(8, "little"))
            n += 1
            time.sleep(0.0005)


def test_file_changing_during_hashing_is_unstable_then_hashed_later(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    busy = root / "recording.mov"
    with open(busy, "wb") as f:
        chunk = os.urandom(MIB)
        for _ in range(256):
            f.write(chunk)
    quiet = root / "still.jpg"
    quiet.write_bytes(b"\xff\xd8\xff" + os.urandom(5000))
    catalog = tmp_path / "catalog.duckdb"

    stop = threading.Event()
    writer = threading.Thread(target=_keep_writing, args=(busy, stop), daemon=True)
    writer.start()
    try:
        time.sleep(0.05)
        s = do_scan(catalog, root)
    finally:
        stop.set()
        writer.join()

    assert s.unstable == 1
    got = files_by_path(catalog)
    assert got[bytes(busy)]["blake3"] is None
    assert got[bytes(busy)]["status"] == "present"
    assert got[bytes(quiet)]["blake3"] == blake3.blake3(quiet.read_bytes()).hexdigest()
    errs = rows(catalog, "SELECT path, stage FROM scan_errors")
    assert {(e["path"], e["stage"]) for e in errs} == {(str(busy), "unstable")}

    # Once the writing stops, the next scan hashes it (it was never given a digest).
    s2 = do_scan(catalog, root)
    assert s2.unstable == 0
    assert files_by_path(catalog)[bytes(busy)]["blake3"] == blake3.blake3(busy.read_bytes()).hexdigest()
