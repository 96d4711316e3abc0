"""Dedupe on real files: a dry run changes nothing; --apply links or moves only verified
copies, never the kept one, skips files changed since the scan, and --undo restores."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import run_cli


def _state(root: Path) -> dict[str, tuple[int, bytes, int]]:
    return {str(p.relative_to(root)): (p.stat().st_ino, p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def lib(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "lib"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "a" / "photo.jpg").write_bytes(os.urandom(40_000))
    shutil.copy2(root / "a" / "photo.jpg", root / "b" / "photo copy.jpg")
    shutil.copy2(root / "a" / "photo.jpg", root / "b" / "photo (2).jpg")
    (root / "a" / "song.mp3").write_bytes(os.urandom(9_000))
    shutil.copy2(root / "a" / "song.mp3", root / "b" / "song.mp3")
    (root / "a" / "unique.png").write_bytes(os.urandom(500))
    catalog = tmp_path / "state" / "cat.duckdb"
    assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
    return root, catalog


def test_dry_run_changes_nothing(lib) -> None:
    root, catalog = lib
    before = _state(root)
    res = run_cli("dedupe", "--json", catalog=catalog)
    assert res.rc == 0, res.err
    plan = json.loads(res.out)
    assert plan["dry_run"] and len(plan["steps"]) == 3 and plan["reclaimable"] == 2 * 40_000 + 9_000
    assert all(Path(s["keep"]).parent.name == "a" for s in plan["steps"])
    assert _state(root) == before


def test_hardlink_apply_then_undo(lib) -> None:
    root, catalog = lib
    before = _state(root)
    res = run_cli("dedupe", "--apply", "--json", catalog=catalog)
    assert res.rc == 0, res.err
    out = json.loads(res.out)
    assert out["done"] == 3 and out["skipped"] == []
    after = _state(root)
    assert after["b/photo copy.jpg"][0] == after["a/photo.jpg"][0] == after["b/photo (2).jpg"][0]
    assert after["b/song.mp3"][0] == after["a/song.mp3"][0]
    assert {k: v[1] for k, v in after.items()} == {k: v[1] for k, v in before.items()}
    # The kept files are the very same inodes as before.
    assert after["a/photo.jpg"][0] == before["a/photo.jpg"][0]
    res = run_cli("dedupe", "--undo", out["journal"], "--json", catalog=catalog)
    assert res.rc == 0 and json.loads(res.out)["done"] == 3
    restored = _state(root)
    assert len({v[0] for v in restored.values()}) == len(restored)  # independent files again
    assert {k: (v[1], v[2]) for k, v in restored.items()} == {k: (v[1], v[2]) for k, v in before.items()}


def test_files_changed_since_the_scan_are_never_touched(lib) -> None:
    root, catalog = lib
    # Same size and mtime as scanned, different bytes: only the byte comparison can tell.
    sneaky = root / "b" / "photo copy.jpg"
    st = sneaky.stat()
    with open(sneaky, "r+b") as f:
        f.seek(20_000)
        f.write(b"\x00" * 16)
    os.utime(sneaky, ns=(st.st_atime_ns, st.st_mtime_ns))
    # Modified the ordinary way.
    (root / "b" / "song.mp3").write_bytes(os.urandom(9_000))
    res = run_cli("dedupe", "--apply", "--json", catalog=catalog)
    assert res.rc == 0, res.err
    out = json.loads(res.out)
    skipped = {Path(s["path"]).name: s["why"] for s in out["skipped"]}
    assert "differ" in skipped["photo copy.jpg"] and "changed since the scan" in skipped["song.mp3"]
    assert out["done"] == 1  # only "photo (2).jpg"
    assert sneaky.stat().st_ino != (root / "a" / "photo.jpg").stat().st_ino


def test_the_last_copy_is_never_removed(lib, tmp_path: Path) -> None:
    root, catalog = lib
    (root / "a" / "photo.jpg").unlink()  # the copy to keep is gone since the scan
    dest = tmp_path / "moved"
    res = run_cli("dedupe", "--action", "move-to", "--to", dest, "--apply", "--json", catalog=catalog)
    assert res.rc == 0, res.err
    out = json.loads(res.out)
    assert (root / "b" / "photo copy.jpg").exists() and (root / "b" / "photo (2).jpg").exists()
    assert sum("gone since the scan" in s["why"] for s in out["skipped"]) == 2
    assert out["done"] == 1 and not (root / "b" / "song.mp3").exists()
    moved = dest / str(root / "b" / "song.mp3").lstrip("/")
    assert moved.read_bytes() == (root / "a" / "song.mp3").read_bytes()
    assert run_cli("dedupe", "--undo", out["journal"], catalog=catalog).rc == 0
    assert (root / "b" / "song.mp3").exists() and not moved.exists()


def test_trash_and_bad_options(lib) -> None:
    root, catalog = lib
    res = run_cli("dedupe", "--action", "trash", "--keep", "prefix:" + str(root / "b"), "--apply", "--json",
                  catalog=catalog)
    assert res.rc == 0, res.err
    assert json.loads(res.out)["done"] == 3
    # prefix:b keeps a copy under b/, so a/'s copies went to the trash beside the catalog.
    assert not (root / "a" / "photo.jpg").exists() and not (root / "a" / "song.mp3").exists()
    assert list((catalog.parent / "trash").rglob("photo.jpg"))
    bad = run_cli("dedupe", "--action", "shred", catalog=catalog)
    assert bad.rc == 2 and bad.err.count("\n") == 1
    assert run_cli("dedupe", "--action", "move-to", catalog=catalog).rc == 2
    assert run_cli("dedupe", "--keep", "biggest", catalog=catalog).rc == 2
