"""A full disk under the catalog: a clear one-line error (exit 7) and nothing lost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest


def _mount_tiny(where: Path, size: str) -> None:
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mediaforge", *args], capture_output=True, text=True,
                          env={**os.environ, "MEDIAFORGE_DEBUG": ""})


def test_full_disk_keeps_committed_rows(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    for i in range(5):
        (small / f"IMG_{i}.jpg").write_bytes(b"\xff\xd8\xff" + bytes([i]) * 1000)
    big = tmp_path / "big"
    for d in range(20):
        (big / f"d{d}").mkdir(parents=True)
        for i in range(1000):
            (big / f"d{d}" / f"a-rather-long-file-name-to-fill-the-catalog-{i:05d}.jpg").write_bytes(b"x")
    disk = tmp_path / "disk"
    _mount_tiny(disk, "1500k")
    try:
        catalog = disk / "catalog.duckdb"
        ok = _cli("-q", "--catalog", str(catalog), "scan", str(small))
        assert ok.returncode == 0, ok.stderr
        full = _cli("-q", "--catalog", str(catalog), "scan", "--no-hash", str(big))
        assert full.returncode == 7, full.stderr
        lines = full.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mediaforge: error:"), full.stderr
        assert "No space left on device" in lines[0]
        assert "Traceback" not in full.stderr
        # The catalog still opens and still holds the first scan's files.
        copy = tmp_path / "copy.duckdb"
        for f in disk.iterdir():
            if not f.is_file():
                continue  # the search index folder
            (tmp_path / f.name.replace("catalog", "copy")).write_bytes(f.read_bytes())
        con = duckdb.connect(str(copy))
        paths = {r[0] for r in con.execute("SELECT path FROM files WHERE status = 'present'").fetchall()}
        con.close()
        assert {str(small / f"IMG_{i}.jpg") for i in range(5)} <= paths
    finally:
        subprocess.run(["umount", str(disk)], check=False)
