"""A full disk under the catalog: a clear one-line error (exit 7) and nothing lost."""

from __future__ import annotations

import json
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


def _leave_free(disk: Path, filler: Path, leave: int) -> int:
    """Write `filler` so that about `leave` bytes stay free on `disk`; return what is free."""
    st = os.statvfs(disk)
    filler.write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))
    st = os.statvfs(disk)
    return st.f_bavail * st.f_frsize


def _scan_bare(catalog: Path, lib: Path) -> None:
    """Scan `lib` into `catalog` without metadata or search index, which must succeed."""
    r = _cli("-q", "--catalog", str(catalog), "scan", "--no-meta", "--no-index", str(lib))
    assert r.returncode == 0, r.stderr


def _scanned_fakes(tmp_path: Path, stem: str, n: int) -> Path:
    """A catalog (tmp_path/cat.duckdb, its search index beside it) of `n` small files
    named like photos (STEM_0001.jpg ...) in tmp_path/lib, scanned without metadata."""
    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(n):
        (lib / f"{stem}_{i:04d}.jpg").write_bytes(b"\xff\xd8\xff" + i.to_bytes(2, "big") * 50)
    catalog = tmp_path / "cat.duckdb"
    assert _cli("-q", "--catalog", str(catalog), "scan", "--no-meta", str(lib)).returncode == 0
    return catalog


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mediaforge", *args], capture_output=True, text=True,
                          env={**os.environ, "MEDIAFORGE_DEBUG": ""})


@pytest.mark.parametrize("threads", ["2", "16"])  # 16: the batch is written by another connection
def test_full_disk_keeps_committed_rows(tmp_path: Path, threads: str) -> None:
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
        full = _cli("-q", "--catalog", str(catalog), "scan", "--no-hash", "--threads", threads, str(big))
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


@pytest.mark.parametrize("fmt", ["csv", "table", "json"])
def test_a_result_cut_short_by_a_full_disk_is_an_error_when_python_is_unbuffered(tmp_path: Path, fmt: str) -> None:
    """Under PYTHONUNBUFFERED=1 (set by many containers and service units) the standard
    output wrote straight to the file, and Python drops what a short write leaves over: a
    1 MB result on a disk with 64 KiB free was cut to 64 KiB with exit code 0 and no word."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a.txt").write_bytes(b"a")
    catalog = tmp_path / "c.duckdb"
    _scan_bare(catalog, lib)
    disk = tmp_path / "disk"
    _mount_tiny(disk, "64k")
    try:
        with open(disk / "out", "wb") as out:
            r = subprocess.run([sys.executable, "-m", "mediaforge", "-c", str(catalog), "query",
                                "SELECT repeat('x', 1000) AS r, * FROM range(1000)", "-f", fmt],
                               stdout=out, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "MEDIAFORGE_DEBUG": "", "PYTHONUNBUFFERED": "1"})
        assert r.returncode == 3, r.stderr
        assert r.stderr == "mediaforge: error: cannot write the standard output: No space left on device\n"
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_dedupe_to_a_full_trash_leaves_no_half_copy_and_undoes_whole(tmp_path: Path) -> None:
    """The trash beside the catalog on a nearly full disk, the files on another: moving a
    file there is a copy, which ran out of space. The half copies stayed in the trash and
    the journal's own failure was reported as "cannot write the standard output"."""
    lib = tmp_path / "lib"
    for d in ("a", "b", "c"):
        (lib / d).mkdir(parents=True)
    big = os.urandom(700_000)
    for d in ("a", "b", "c"):
        (lib / d / "big.bin").write_bytes(big)
    for i in range(40):
        for d in ("a", "b"):
            (lib / d / f"s{i}.txt").write_text(f"content {i}\n")
    disk = tmp_path / "disk"
    _mount_tiny(disk, "5m")
    try:
        catalog = disk / "c.duckdb"
        _scan_bare(catalog, lib)
        _leave_free(disk, disk / "fill", 1_000_000)
        res = _cli("--catalog", str(catalog), "dedupe", "--action", "trash", "--apply")
        lines = res.stderr.strip().splitlines()
        assert "Traceback" not in res.stderr and "standard output" not in res.stderr, res.stderr
        originals = {p.relative_to(lib): p.read_bytes() for p in lib.rglob("*") if p.is_file()}
        trash = disk / "trash"
        in_trash = [p for p in trash.rglob("*") if p.is_file()] if trash.exists() else []
        for p in in_trash:  # each whole: a file moved, never a part of one
            name = p.name
            assert p.read_bytes() in (big, *(f"content {i}\n".encode() for i in range(40))), name
        assert len(originals) + len(in_trash) == 3 + 80
        if res.returncode not in (0, 8):  # 8: done in part, the files that did not fit skipped
            assert res.returncode == 3 and len(lines) == 1 and lines[0].startswith("mediaforge: error:"), res.stderr
        (disk / "fill").unlink()
        journals = sorted((disk / "journal").glob("*.jsonl"))
        for j in journals:
            undo = _cli("--catalog", str(catalog), "dedupe", "--undo", str(j))
            assert undo.returncode == 0, undo.stderr
        assert sum(1 for p in lib.rglob("*") if p.is_file()) == 3 + 80
        assert (lib / "c" / "big.bin").read_bytes() == big and (lib / "a" / "big.bin").read_bytes() == big
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_read_only_search_index_after_a_dedupe_that_carried_tags_is_exit_3(tmp_path: Path) -> None:
    """A review finding: once tag commands learnt to report first, `dedupe --apply` and its
    undo, which carry tags to the kept file, stopped saying the index could not follow
    (exit 0). Each reports what it did, then the error (exit 3)."""
    import json
    import shutil

    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a.jpg").write_bytes(b"\xff\xd8\xff one picture" * 100)
    shutil.copy2(lib / "a.jpg", lib / "b.jpg")
    os.utime(lib / "a.jpg", (1_500_000_000, 1_500_000_000))  # the older: kept
    catalog = tmp_path / "cat.duckdb"
    assert _cli("-q", "--catalog", str(catalog), "scan", "--no-meta", str(lib)).returncode == 0
    assert _cli("-q", "--catalog", str(catalog), "tag", "add", "onB", str(lib / "b.jpg")).returncode == 0
    index = tmp_path / "cat.search"
    r = subprocess.run(["mount", "--bind", "-o", "ro", str(index), str(index)], capture_output=True, text=True)
    assert r.returncode == 0, f"a read-only bind mount needs root: {r.stderr}"
    try:
        out = _cli("-q", "--catalog", str(catalog), "dedupe", "--apply", "--action", "trash", "--json")
        assert out.returncode == 3, (out.stdout, out.stderr)
        assert json.loads(out.stdout)["tags_carried"] == 1 and "change is saved" in out.stderr, out.stderr
        back = _cli("-q", "--catalog", str(catalog), "dedupe", "--undo", json.loads(out.stdout)["journal"], "--json")
        assert back.returncode == 3, (back.stdout, back.stderr)
        assert json.loads(back.stdout)["done"] == 1 and "change is saved" in back.stderr, back.stderr
    finally:
        subprocess.run(["umount", str(index)], check=False)
    assert (lib / "b.jpg").read_bytes() == (lib / "a.jpg").read_bytes()


def test_a_full_disk_under_the_search_index_keeps_the_tags_and_says_so(tmp_path: Path) -> None:
    """The tags were committed, the index could not follow: the error said "invalid
    input" (exit 2), and no later search or scan brought the index up to date."""
    import shutil

    catalog = _scanned_fakes(tmp_path, "IMG", 300)
    disk = tmp_path / "disk"
    _mount_tiny(disk, "2m")
    try:
        index = tmp_path / "cat.search"
        shutil.copytree(index, disk / "cat.search")
        shutil.rmtree(index)
        index.symlink_to(disk / "cat.search")  # the index alone on the small disk
        filler = disk / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass  # full
        finally:
            os.close(fd)
        full = _cli("-q", "--catalog", str(catalog), "tag", "add", "x/y", "--where", "true")
        assert full.returncode == 3, full.stderr
        lines = full.stderr.strip().splitlines()
        assert len(lines) == 1 and "change is saved" in lines[0], lines
        assert "No space left on device" in lines[0] or "disk full" in lines[0], lines
        assert "IoError {" not in lines[0] and "invalid input" not in lines[0]
        # The index named, and its disk (a QA finding: a search said the standard output
        # could not be written, a tag change gave a bare "[Errno 28]").
        assert str(index) in lines[0] and "[Errno" not in lines[0], lines
        found = _cli("-q", "--catalog", str(catalog), "search", "x")
        assert found.returncode == 3 and str(index) in found.stderr, found.stderr
        # (Which of the index's threads meets the full disk first decides the words.)
        assert any(w in found.stderr for w in ("No space left", "disk is full", "is the disk full")), found.stderr
        assert "standard output" not in found.stderr, found.stderr
        assert full.stdout.startswith("tagged 300 files with x/y"), full.stdout  # what it did, first
        # With --json, the summary (a script learns what was done) with the index's error.
        import json

        assert _cli("-q", "--catalog", str(catalog), "collection", "create", "all").returncode == 0  # no index work
        for args in (("tag", "add", "x/z", "--where", "true"), ("collection", "add", "all", "--where", "true")):
            full = _cli("-q", "--catalog", str(catalog), *args, "--json")
            assert full.returncode == 3, (args, full.stderr)
            out = json.loads(full.stdout)
            assert "change is saved" in out["index"]["error"] and "change is saved" in full.stderr, (args, out)
            assert out["added"] == 300, (args, out)
        assert json.loads(_cli("-q", "--catalog", str(catalog), "tag", "add", "x/z", "--where", "true",
                               "--json").stdout)["added"] == 0  # it was saved
        filler.unlink()
        # A failed commit leaves the index as it was, and its token with the catalog's: the
        # next search compares documents, it does not rebuild the index.
        with duckdb.connect(str(catalog), read_only=True) as con:
            token = con.execute("SELECT value FROM meta WHERE key = 'search_token'").fetchall()
        assert token and token[0][0] == (disk / "cat.search" / "token").read_text().strip()
        found = _cli("--catalog", str(catalog), "search", "tag:x/y", "-n", "1000", "-f", "json")
        assert found.returncode == 0, found.stderr
        assert len(json.loads(found.stdout)) == 300
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_search_index_rebuilt_on_a_full_disk_is_named_not_the_standard_output(tmp_path: Path) -> None:
    """A QA finding: a search whose index, rebuilt on a disk of a few kilobytes, could not
    be written said "cannot write the standard output" (a file on a disk with room); a tag
    change said a bare "[Errno 28] No space left on device". Both name the index now."""
    import shutil

    catalog = _scanned_fakes(tmp_path, "walrus", 30)
    index = tmp_path / "cat.search"
    shutil.rmtree(index)
    _mount_tiny(index, "12k")
    try:
        out = tmp_path / "out.txt"
        with open(out, "w") as f:
            found = subprocess.run([sys.executable, "-m", "mediaforge", "-q", "--catalog", str(catalog), "search",
                                    "walrus"], stdout=f, stderr=subprocess.PIPE, text=True, timeout=120)
        assert found.returncode == 3, found.stderr
        assert str(index) in found.stderr and "standard output" not in found.stderr, found.stderr
        assert any(w in found.stderr for w in ("No space left", "disk is full", "is the disk full")), found.stderr
        tagged = _cli("-q", "--catalog", str(catalog), "tag", "add", "x", "--where", "true")
        assert tagged.returncode == 3 and "[Errno" not in tagged.stderr and str(index) in tagged.stderr, tagged.stderr
    finally:
        subprocess.run(["umount", str(index)], check=False)


def test_thumbnails_stop_short_of_a_full_disk_and_the_metadata_is_kept(tmp_path: Path) -> None:
    """Thumbnails beside the catalog on a nearly full disk were written until no byte was
    left, so the catalog's own next write could fail. They now stop while the disk still
    has MEDIAFORGE_MIN_FREE free: every file's metadata is written, no write meets a full
    disk, and once there is room `thumbs --missing-only` makes the rest."""
    import json

    from PIL import Image

    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(80):
        # Noise: thumbnails of some 20 KB each, 1.6 MB in all, more than the disk has free.
        Image.effect_noise((384, 256), 60 + i).convert("RGB").save(lib / f"n{i:02d}.png")
    disk = tmp_path / "disk"
    _mount_tiny(disk, "8m")
    try:
        catalog = disk / "cat.duckdb"
        _scan_bare(catalog, lib)
        filler = disk / "filler"
        left = _leave_free(disk, filler, 1280 << 10)  # 1.25 MiB
        env = {**os.environ, "MEDIAFORGE_DEBUG": "", "MEDIAFORGE_MIN_FREE": "1M"}
        res = subprocess.run([sys.executable, "-m", "mediaforge", "-q", "--catalog", str(catalog), "meta", "--json"],
                             capture_output=True, text=True, env=env)
        assert res.returncode == 0, res.stderr
        x = json.loads(res.stdout)
        assert x["files"] == 80 and x["thumbs"] > 0 and x["thumbs_low_space"] > 0, x
        assert x["thumbs"] + x["thumbs_low_space"] == 80, x
        # The thumbnails took what was free above the floor, and no more than the ones
        # already being written when it was reached (two workers); the floor is left to
        # the catalog's own writes (its checkpoint here).
        sizes = [p.stat().st_size for p in (disk / "thumbs").rglob("*.webp")]
        assert len(sizes) == x["thumbs"]
        assert sum(sizes) <= left - (1 << 20) + 2 * max(sizes), (sum(sizes), left)
        con = duckdb.connect(str(catalog), read_only=True)
        assert con.execute("SELECT count(*) FROM media WHERE width = 384 AND height = 256").fetchone() == (80,)
        messages = [r[0] for r in con.execute("SELECT message FROM meta_errors").fetchall()]
        con.close()
        assert len(messages) == x["thumbs_low_space"], messages
        assert all("kept free (MEDIAFORGE_MIN_FREE)" in m for m in messages), messages
        filler.unlink()
        again = subprocess.run([sys.executable, "-m", "mediaforge", "-q", "--catalog", str(catalog), "thumbs",
                                "--missing-only", "--json"], capture_output=True, text=True, env=env)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["thumbs"] == x["thumbs_low_space"]
        assert len(list((disk / "thumbs").rglob("*.webp"))) == 80
        # A remake at another size on a nearly full disk again: what it holds back is
        # partial, not failed, and what to run again is that remake.
        _leave_free(disk, filler, 1280 << 10)
        remake = subprocess.run([sys.executable, "-m", "mediaforge", "--catalog", str(catalog), "thumbs",
                                 "--size", "128"], capture_output=True, text=True, env=env)
        assert remake.returncode == 0, remake.stderr
        made = len(list((disk / "thumbs" / "128").rglob("*.webp")))
        assert 0 < made < 80
        assert (f"ok {made}  partial {80 - made}  unsupported 0  failed 0  thumbnails {made}\n  {80 - made} "
                "thumbnails not written: their disk has under 1.0 MiB free (MEDIAFORGE_MIN_FREE); the ones they "
                f"had are kept; free some space, then run mediaforge -c {catalog} thumbs --size 128\n"  # (-c: as given)
                ) in remake.stdout, remake.stdout
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_thumbnails_that_meet_a_full_disk_with_the_floor_off_are_held_back_and_said_so(tmp_path: Path) -> None:
    """MEDIAFORGE_MIN_FREE=0 turns the floor off: a remake on a full disk then met
    ENOSPC for each file, counted "failed", with no word of the disk, and exit 0 as
    if it were the files' fault. They are held back for want of room, as under the
    floor: partial, said so after the summary, with what to run once there is room."""
    import json

    from PIL import Image

    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(6):
        Image.effect_noise((384, 256), 60 + i).convert("RGB").save(lib / f"n{i}.png")
    catalog = tmp_path / "state" / "cat.duckdb"
    env = {**os.environ, "MEDIAFORGE_DEBUG": "", "MEDIAFORGE_MIN_FREE": "0"}
    ok = subprocess.run([sys.executable, "-m", "mediaforge", "-q", "-c", str(catalog), "scan", str(lib)],
                        capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    disk = catalog.parent / "thumbs"  # a full disk there, the catalog's own beside it
    disk.rename(tmp_path / "thumbs before")
    _mount_tiny(disk, "64k")
    try:
        _leave_free(disk, disk / "filler", 0)
        args = [sys.executable, "-m", "mediaforge", "-q", "-c", str(catalog), "thumbs", "--size", "128"]
        res = subprocess.run([*args, "--json"], capture_output=True, text=True, env=env)
        assert res.returncode == 0, res.stderr
        x = json.loads(res.stdout)
        assert (x["files"], x["thumbs"], x["thumbs_low_space"], x["failed"], x["partial"]) == (6, 0, 6, 0, 6), x
        res = subprocess.run(args, capture_output=True, text=True, env=env)
        assert ("6 thumbnails not written: their disk is full; the ones they had are kept; free some space, "
                f"then run mediaforge -c {catalog} thumbs --size 128" in res.stdout), res.stdout
        con = duckdb.connect(str(catalog), read_only=True)
        messages = {r[0] for r in con.execute("SELECT message FROM meta_errors WHERE stage = 'thumb'").fetchall()}
        thumbs = con.execute("SELECT count(*) FROM media WHERE thumb LIKE '256/%'").fetchone()
        con.close()
        assert messages == {"thumbnail not written: its disk is full (No space left on device)"}, messages
        assert thumbs == (6,)  # the thumbnails there before stay
        # Nor do they leave empty shard folders behind.
        assert sorted(p.name for p in disk.rglob("*") if p.is_dir()) == [], list(disk.rglob("*"))
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_catalog_on_a_read_only_disk_is_read_and_writers_say_why(tmp_path: Path) -> None:
    """A catalog on a read-only medium (a backup disk mounted read-only): commands that
    read it work (an `xmp export --dry-run` too, which writes nothing); one that writes it
    (a scan, a tag, the first search, which builds the index) says the file system is
    read-only, exit 3, not "cannot open catalog" (exit 5, which reads as a damaged
    catalog). A search whose index is in step says to copy the catalog and its index
    somewhere writable: even reading the index takes tantivy's lock file in its folder (a
    QA finding: it said only "...: Read-only file system (os error 30)")."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a.jpg").write_bytes(b"\xff\xd8\xff" + b"a" * 100)
    disk = tmp_path / "disk"
    _mount_tiny(disk, "8m")
    try:
        catalog, indexed = disk / "cat.duckdb", disk / "indexed.duckdb"
        assert _cli("-q", "--catalog", str(catalog), "scan", "--no-meta", "--no-index", str(lib)).returncode == 0
        assert _cli("-q", "--catalog", str(indexed), "scan", "--no-meta", str(lib)).returncode == 0
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        r = _cli("--catalog", str(indexed), "search", "a")
        assert r.returncode == 3, r.stderr
        [line] = r.stderr.strip().splitlines()
        assert str(disk / "indexed.search") in line and "copy the catalog and its indexed.search folder somewhere" in line
        for args in (("stats",), ("query", "SELECT count(*) FROM files"), ("xmp", "export", "--all", "--dry-run")):
            r = _cli("--catalog", str(catalog), *args)
            assert r.returncode == 0, r.stderr
        for args in (("scan", str(lib)), ("tag", "add", "x", str(lib / "a.jpg")), ("search", "a")):
            r = _cli("--catalog", str(catalog), *args)
            assert r.returncode == 3, (args, r.stderr)
            lines = r.stderr.strip().splitlines()
            assert lines == [f"mediaforge: error: cannot write the catalog {catalog}: it is on a read-only file "
                             "system (commands that only read it, such as query and stats, work)"], lines
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_moves_that_fail_leave_no_folders_behind(tmp_path: Path) -> None:
    """`move-to` a full disk: each move fails, and the folders made for it (the file's
    path below --to) went with it. They stayed, a tree of empty folders under --to. The
    --to folder the run made goes too, as nothing came into it; and with every copy
    left as it was, no journal is written."""
    lib = tmp_path / "lib"
    for d in ("a", "b"):
        (lib / d).mkdir(parents=True)
        (lib / d / "big.bin").write_bytes(b"\x01" * 600_000)
    catalog = tmp_path / "c.duckdb"
    _scan_bare(catalog, lib)
    disk = tmp_path / "disk"
    _mount_tiny(disk, "1m")
    try:
        _leave_free(disk, disk / "fill", 100_000)
        to = disk / "away"
        res = _cli("--catalog", str(catalog), "dedupe", "--action", "move-to", "--to", str(to), "--apply", "--json")
        assert res.returncode == 8, res.stderr  # nothing done: the file skipped, saying why
        import json

        out = json.loads(res.stdout)
        assert out["done"] == 0 and [("could not move it" in s["why"]) for s in out["skipped"]] == [True], out
        assert not to.exists()
        assert out["journal"] is None and not list((catalog.parent / "journal").glob("*")), out
        assert (lib / "b" / "big.bin").read_bytes() == b"\x01" * 600_000
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_move_whose_original_cannot_go_leaves_no_second_copy(tmp_path: Path) -> None:
    """A move to another file system copies, then removes the original: when that cannot
    be removed (an immutable file; a read-only disk), the copy made went again, and the
    step is skipped. Each run left one more whole copy at the destination. (The file, not
    its folder, is immutable: a folder that may not be written is seen before any copy.)"""
    import json
    import shutil

    if shutil.which("chattr") is None:
        pytest.skip("needs chattr (e2fsprogs)")
    lib = tmp_path / "lib"
    for d in ("a", "b"):
        (lib / d).mkdir(parents=True)
        (lib / d / "x.bin").write_bytes(b"\x02" * 50_000)
    os.utime(lib / "a" / "x.bin", (1e9, 1e9))  # the oldest: kept
    catalog = tmp_path / "c.duckdb"
    _scan_bare(catalog, lib)
    disk = tmp_path / "disk"
    _mount_tiny(disk, "2m")
    locked = subprocess.run(["chattr", "+i", str(lib / "b" / "x.bin")], capture_output=True)
    if locked.returncode != 0:
        subprocess.run(["umount", str(disk)], check=False)
        pytest.skip("this file system has no immutable flag")
    try:
        for _ in range(2):
            res = _cli("--catalog", str(catalog), "dedupe", "--action", "move-to", "--to", str(disk / "o"),
                       "--apply", "--json")
            out = json.loads(res.stdout)
            assert res.returncode == 8 and out["done"] == 0, (res.stderr, out)
            assert [s["why"] for s in out["skipped"]] == [
                "it is immutable (chattr +i): it cannot be replaced, moved or removed"], out
            assert [f for _, _, fs in os.walk(disk / "o") for f in fs] == []
        assert (lib / "b" / "x.bin").read_bytes() == b"\x02" * 50_000
    finally:
        subprocess.run(["chattr", "-i", str(lib / "b" / "x.bin")], check=False)
        subprocess.run(["umount", str(disk)], check=False)
    # The library on a disk mounted read-only: the dry run already says so.
    ro = tmp_path / "ro"
    _mount_tiny(ro, "2m")
    try:
        shutil.copytree(lib, ro / "lib")
        cat2 = tmp_path / "c2.duckdb"
        _scan_bare(cat2, ro / "lib")
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        res = _cli("--catalog", str(cat2), "dedupe", "--action", "trash", "--json")
        plan = json.loads(res.stdout)
        assert plan["steps"] == [] and [s["why"] for s in plan["skipped"]] == [
            "on a read-only file system: it cannot be replaced or moved"], plan
    finally:
        subprocess.run(["umount", str(ro)], check=False)


@pytest.mark.parametrize("leave", [4096, 8192])
def test_a_first_scan_on_a_nearly_full_disk_leaves_no_catalog_that_blocks_the_next(tmp_path: Path,
                                                                                   leave: int) -> None:
    """A QA finding: with a few KiB free, a first scan wrote part of the catalog's header
    blocks and stopped with a generic open error (exit 5); every later command then called
    the stub "not a readable DuckDB catalog", even once space was freed, until it was
    deleted by hand. Now the disk full is exit 7, and the stub, which holds nothing, is
    made a catalog by the next scan and counts as no catalog for readers."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a.jpg").write_bytes(b"\xff\xd8\xff" + b"a" * 3000)
    disk = tmp_path / "disk"
    _mount_tiny(disk, "1m")
    try:
        catalog = disk / "catalog.duckdb"
        _leave_free(disk, disk / "filler", leave)
        full = _cli("-q", "--catalog", str(catalog), "scan", "--no-meta", "--no-index", str(lib))
        lines = full.stderr.strip().splitlines()
        assert full.returncode == 7 and len(lines) == 1, full.stderr
        assert "disk is full" in lines[0] and "free some space" in lines[0], lines
        assert not catalog.exists() or catalog.stat().st_size < 12288  # a stub, or nothing
        if catalog.exists():
            reader = _cli("--catalog", str(catalog), "stats")
            assert reader.returncode == 3 and "is empty" in reader.stderr, reader.stderr
        (disk / "filler").unlink()
        _scan_bare(catalog, lib)
        con = duckdb.connect(str(catalog), read_only=True)
        assert con.execute("SELECT count(*) FROM files").fetchone()[0] == 1
        con.close()
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_scan_committed_before_its_extraction_met_a_full_disk_still_prints_its_summary(tmp_path: Path) -> None:
    """A QA finding: a scan whose files were all committed, and whose metadata extraction
    then met a full disk, exited 7 with its one error line and printed no summary: a
    `--json` consumer learned nothing of the scan it had. The summary now comes first,
    with the extraction's error in it. (Disk sizes are tried from small to larger until
    one holds the scan but not the extraction.)"""
    many = tmp_path / "many"
    many.mkdir()
    for i in range(6000):
        (many / f"f{i:05d}.jpg").write_bytes(b"\xff\xd8\xff" + os.urandom(200))
    cut_in_extraction = 0
    for n, size in enumerate(("2m", "3m", "4m")):
        disk = tmp_path / f"disk{n}"
        _mount_tiny(disk, size)
        try:
            r = subprocess.run([sys.executable, "-m", "mediaforge", "--catalog", str(disk / "c.duckdb"), "scan",
                                str(many), "--json", "--no-fingerprints"], capture_output=True, text=True,
                               env={**os.environ, "MEDIAFORGE_DEBUG": "", "MEDIAFORGE_MIN_FREE": "0"})
            assert "Traceback" not in r.stderr, r.stderr
            if r.returncode != 7:
                continue
            con = duckdb.connect(str(disk / "c.duckdb"), read_only=True)
            committed = con.execute("SELECT count(*) FROM scans WHERE status = 'completed'").fetchone()[0]
            con.close()
            if committed:  # the scan's part is in: its summary must be out
                summary = json.loads(r.stdout)
                assert summary["new"] == 6000 and "No space left" in summary["extract"]["error"], summary
                assert len(r.stderr.strip().splitlines()) == 1, r.stderr
                cut_in_extraction += 1
        finally:
            subprocess.run(["umount", str(disk)], check=False)
    assert cut_in_extraction, "no disk size held the scan but not its extraction"


def test_a_carry_over_cut_short_by_a_full_disk_is_given_by_the_next_scan(tmp_path: Path) -> None:
    """A QA finding: the journal's `carried` line, too long for what the disk had left,
    was written in part; the catalog rolled the tags back, but the next scans took the
    part line for a carry-over done, and `scan --prune` then deleted the copies' rows with
    the only rows of their tags. The line is cut away now, and the next scan carries
    them. A journal whose last line a crash cut short is added to after its last whole
    line (an undo's lines went on the end of the part line, which made it invalid)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(10):
        (lib / f"img{i}.jpg").write_bytes(b"\xff\xd8\xff" + bytes([i]) * 3000)
        (lib / f"copy{i}.jpg").write_bytes(b"\xff\xd8\xff" + bytes([i]) * 3000)
        os.utime(lib / f"img{i}.jpg", (1_500_000_000, 1_500_000_000))  # the older: kept
    disk = tmp_path / "disk"
    _mount_tiny(disk, "16m")
    try:
        catalog = disk / "c.duckdb"
        _scan_bare(catalog, lib)
        con = duckdb.connect(str(catalog))  # 300 tags on each copy: a carried line of ~250 KB
        con.execute("INSERT INTO tags SELECT f.media_id, 'a-long-tag-name-to-make-the-carried-line-long/' || t, "
                    "'user', 'me', now()::TIMESTAMP FROM files f, range(300) r(t) WHERE f.name LIKE 'copy%'")
        con.close()
        _leave_free(disk, disk / "fill", 120_000)
        res = _cli("--catalog", str(catalog), "dedupe", "--action", "move-to", "--to", str(tmp_path / "moved"),
                   "--apply")
        assert res.returncode == 3 and "cannot write the dedupe journal" in res.stderr, res.stderr
        assert len(list((tmp_path / "moved").rglob("copy*.jpg"))) == 10
        (journal,) = (disk / "journal").glob("dedupe-*.jsonl")
        text = journal.read_bytes()
        assert text.endswith(b"\n") and b'"carried"' not in text
        (disk / "fill").unlink()
        # And a last line a crash cut short: the scan's carried line goes after the last whole one.
        with open(journal, "ab") as f:
            f.write(b'{"kind": "done", "victim": "cut sh')
        for _ in range(2):
            _scan_bare(catalog, lib)
        assert all(json.loads(line) for line in journal.read_bytes().splitlines())
        assert b"cut sh" not in journal.read_bytes() and b'"carried"' in journal.read_bytes()
        pruned = _cli("-q", "--catalog", str(catalog), "scan", "--no-meta", "--no-index", "--prune", str(lib))
        assert pruned.returncode == 0, pruned.stderr
        con = duckdb.connect(str(catalog))
        got = con.execute("SELECT f.name, count(*) FROM tags t JOIN files f USING (media_id) "
                          "GROUP BY ALL ORDER BY ALL").fetchall()
        con.close()
        assert got == [(f"img{i}.jpg", 300) for i in range(10)], got
        undo = _cli("--catalog", str(catalog), "dedupe", "--undo", str(journal), "--json")
        assert undo.returncode == 0, undo.stderr
        # The copies' rows were pruned: the kept files keep the only tags left.
        assert json.loads(undo.stdout)["done"] == 10 and json.loads(undo.stdout)["tags_carried"] == 0
        assert sorted(p.name for p in lib.iterdir()) == sorted(f"{n}{i}.jpg" for n in ("img", "copy") for i in range(10))
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_sidecars_an_export_wrote_before_the_catalog_disk_filled_are_recorded_by_the_next(tmp_path: Path) -> None:
    """A QA finding: `xmp export` wrote the sidecars, then could not record them (the
    catalog's disk full, exit 7); run again, it found them up to date and recorded
    nothing, so the next scan imported them as another program's edit and brought back a
    tag removed since. The rerun records them now."""
    from PIL import Image

    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(6):
        Image.new("RGB", (16, 16), (i * 40, 0, 0)).save(lib / f"p{i}.jpg")
    disk = tmp_path / "disk"
    _mount_tiny(disk, "16m")
    try:
        catalog = disk / "c.duckdb"
        _scan_bare(catalog, lib)
        for t in ("Places/Paris", "keep"):
            assert _cli("-q", "--catalog", str(catalog), "tag", "add", t, *map(str, lib.glob("*.jpg"))).returncode == 0
        _leave_free(disk, disk / "fill", 0)
        full = _cli("--catalog", str(catalog), "xmp", "export", "--all")
        assert full.returncode == 7 and len(full.stderr.strip().splitlines()) == 1, full.stderr
        assert len(list(lib.glob("*.jpg.xmp"))) == 6
        (disk / "fill").unlink()
        again = _cli("--catalog", str(catalog), "xmp", "export", "--all", "--json")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["unchanged"] == 6, again.stdout
        assert _cli("-q", "--catalog", str(catalog), "tag", "remove", "keep", str(lib / "p0.jpg")).returncode == 0
        assert _cli("-q", "--catalog", str(catalog), "scan", "--no-index", str(lib)).returncode == 0
        con = duckdb.connect(str(catalog))
        got = con.execute("SELECT f.name, list(t.tag ORDER BY t.tag) FROM tags t JOIN files f USING (media_id) "
                          "GROUP BY ALL ORDER BY ALL").fetchall()
        con.close()
        assert got == [("p0.jpg", ["Places/Paris"])] + [(f"p{i}.jpg", ["Places/Paris", "keep"]) for i in range(1, 6)]
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_reindex_the_catalog_cannot_record_keeps_the_index_it_had(tmp_path: Path) -> None:
    """A QA finding: `search --reindex` with a catalog it may not write (its folder
    read-only to the user) deleted the index before it found that out, and every search
    after tried to build it again and failed. It keeps the index now, and search works."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "holiday.jpg").write_bytes(b"\xff\xd8\xff" + b"a" * 100)
    home = tmp_path / "cat"
    home.mkdir()
    catalog = home / "c.duckdb"
    assert _cli("-q", "--catalog", str(catalog), "scan", "--no-meta", str(lib)).returncode == 0
    before = sorted(p.name for p in (home / "c.search").iterdir())
    home.chmod(0o555)
    try:
        # Root without the right to pass permission bits: as a user for whom the folder is read-only.
        as_user = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all",
                   sys.executable, "-m", "mediaforge", "--catalog", str(catalog)]
        env = {**os.environ, "MEDIAFORGE_DEBUG": ""}
        r = subprocess.run([*as_user, "search", "--reindex"], capture_output=True, text=True, env=env)
        assert r.returncode == 5 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert sorted(p.name for p in (home / "c.search").iterdir()) == before
        r = subprocess.run([*as_user, "search", "holiday", "--format", "json"], capture_output=True, text=True, env=env)
        assert r.returncode == 0 and "holiday.jpg" in r.stdout, r.stderr
    finally:
        home.chmod(0o755)


def test_an_export_to_a_full_disk_says_why_in_plain_words(tmp_path: Path) -> None:
    """A QA finding: the one line of an export that met a full disk held DuckDB's error
    as JSON (`Async write failed for range [...]: {"exception_type":"IO",...}`)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(300):
        (lib / f"f{i}.txt").write_text(f"file {i}\n")
    catalog = tmp_path / "c.duckdb"
    _scan_bare(catalog, lib)
    disk = tmp_path / "disk"
    _mount_tiny(disk, "64k")
    try:
        r = _cli("--catalog", str(catalog), "export", str(disk / "out"))
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 3 and len(lines) == 1, r.stderr
        assert "No space left on device" in lines[0] and "exception_type" not in lines[0] and "{" not in lines[0]
        assert not (disk / "out").exists()  # a QA finding: the folder it made stayed, empty
    finally:
        subprocess.run(["umount", str(disk)], check=False)


@pytest.mark.parametrize("size", ["60k", "90k", "120k"])
def test_sample_on_a_full_disk_leaves_no_file_cut_short(tmp_path: Path, size: str) -> None:
    """QA: on a disk that filled as a photo was written, Pillow's JPEG encoder (it writes
    to the file's descriptor itself) took the short write for a whole one: `sample` gave
    the cut file its name, and every later run refused it as "not the sample's". Each file
    is now encoded in memory and written by Python, which fails on a short write; the
    files that are there are whole, and a run with room makes the rest."""
    from PIL import Image

    disk = tmp_path / "disk"
    _mount_tiny(disk, size)
    try:
        r = _cli("sample", str(disk / "s"))
        assert r.returncode == 3 and r.stderr.count("\n") == 1 and "No space left" in r.stderr, r.stderr
        made = [p for p in (disk / "s").rglob("*") if p.is_file()]
        for p in made:
            if p.suffix in (".jpg", ".png"):
                with Image.open(p) as im:
                    im.load()  # whole: a cut one raises "image file is truncated"
        subprocess.run(["mount", "-o", "remount,size=4m", str(disk)], check=True)
        r = _cli("sample", str(disk / "s"))
        assert r.returncode == 0, r.stderr
        fresh = tmp_path / "fresh"
        assert _cli("sample", str(fresh)).returncode == 0
        for p in fresh.rglob("*"):
            if p.is_file():
                assert (disk / "s" / p.relative_to(fresh)).read_bytes() == p.read_bytes(), p
        assert not [p for p in (disk / "s").rglob(".mediaforge-*")]
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_search_index_that_a_full_disk_stops_building_is_no_damaged_one(tmp_path: Path) -> None:
    """A QA finding: an index that ran out of room as it was built from nothing (a first
    search, `--reindex`, a scan after the old index was lost) was "damaged or from another
    version; run `mediaforge search --reindex`" (exit 2), and the reindex failed the same
    way. It is a full disk now: exit 3, and a scan still prints its summary."""
    import random
    import shutil

    lib = tmp_path / "lib"
    lib.mkdir()
    r = random.Random(1)
    for i in range(6000):  # long names of many words: an index of about 2 MB
        words = "_".join("".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(8)) for _ in range(6))
        (lib / f"{words}_{i}.txt").write_bytes(b"x")
    catalog = tmp_path / "cat.duckdb"
    _scan_bare(catalog, lib)
    index = tmp_path / "cat.search"
    shutil.rmtree(index, ignore_errors=True)
    _mount_tiny(index, "1m")
    try:
        for args in (("search", "abc"), ("search", "--reindex"), ("scan", "--no-meta", str(lib))):
            res = _cli("-q", "--catalog", str(catalog), *args)
            assert res.returncode == 3, (args, res.stderr)
            err = res.stderr.strip().splitlines()
            assert len(err) == 1 and str(index) in err[-1] and "damaged" not in err[-1], (args, err)
            assert any(w in err[-1] for w in ("is it full", "disk is full", "is the disk full", "No space left")), err
        assert res.stdout.startswith("scanned 6,000 files"), res.stdout  # what it did, first
    finally:
        subprocess.run(["umount", str(index)], check=False)
    found = _cli("-q", "--catalog", str(catalog), "search", "--reindex")
    assert found.returncode == 0, found.stderr
