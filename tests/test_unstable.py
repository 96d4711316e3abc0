"""A file written to while it is being hashed is never stored with a digest."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import blake3
import pytest

from conftest import do_scan, files_by_path, loop_disk, rows, run_cli

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


@pytest.mark.parametrize("first", [True, False], ids=["first-scan", "known-catalog"])
def test_a_file_open_for_writing_mid_rewrite_is_not_read_then_hashed_once_closed(tmp_path: Path,
                                                                                 first: bool) -> None:
    """A QA finding: a write sets the file's times as it begins, not as it ends. A file
    read while a rewrite in place was under way showed the same size and times before and
    after the read, so the scan kept a digest of bytes half old, half new, and later scans,
    finding the file unchanged, never replaced it. A file changed seconds before it is read
    is now read only if no program has it open for writing (a read lease), else it is
    stored without a digest, for the next scan. Both ways of listing: a first scan's (its
    files stat-ed as they are opened) and a known catalog's (stat-ed by name first)."""
    root = tmp_path / "lib"
    root.mkdir()
    torn, big, quiet = root / "torn.jpg", root / "big.mov", root / "quiet.jpg"
    sizes = {torn: 40_000, big: 3 * MIB}  # the big one is read in the hash phase
    for p, n in sizes.items():
        p.write_bytes(b"A" * n)
    quiet.write_bytes(b"\xff\xd8\xff" + os.urandom(5000))  # just written too, but closed
    catalog = tmp_path / "catalog.duckdb"
    if not first:
        other = tmp_path / "other"
        other.mkdir()
        (other / "x.txt").write_bytes(b"x")
        do_scan(catalog, other)
    writers = {p: open(p, "r+b", buffering=0) for p in sizes}  # noqa: SIM115 - closed below
    try:
        for p, w in writers.items():
            w.write(b"B" * (sizes[p] // 2))  # half rewritten, the writer still at it
        s = do_scan(catalog, root)
        assert s.unstable == 2, s
        got = files_by_path(catalog)
        assert got[bytes(torn)]["blake3"] is None and got[bytes(big)]["blake3"] is None
        assert got[bytes(torn)]["size"] == sizes[torn] and got[bytes(torn)]["status"] == "present"
        assert got[bytes(quiet)]["blake3"] == blake3.blake3(quiet.read_bytes()).hexdigest()
        errs = rows(catalog, "SELECT path, stage, message, errno FROM scan_errors WHERE scan_id = ?", [s.scan_id])
        assert {(e["path"], e["stage"], e["errno"]) for e in errs} == {(str(torn), "unstable", errno.EAGAIN),
                                                                      (str(big), "unstable", errno.EAGAIN)}
        assert all("open for writing" in e["message"] and "next scan" in e["message"] for e in errs), errs
        for p, w in writers.items():
            w.write(b"B" * (sizes[p] - sizes[p] // 2))
    finally:
        for w in writers.values():
            w.close()
    s = do_scan(catalog, root)
    assert s.unstable == 0 and s.errors == 0, s
    got = files_by_path(catalog)
    for p, n in sizes.items():
        assert got[bytes(p)]["blake3"] == blake3.blake3(b"B" * n).hexdigest(), p


def test_big_file_cut_short_while_mapped_is_unstable_not_a_crash(tmp_path: Path) -> None:
    """Files of 64 MiB and more are memory-mapped: one truncated by another program while
    it is hashed faults (SIGBUS). The scan reports it unstable and goes on; the process,
    with Python's faulthandler installed as pytest does, lives; no digest of the zeros
    read in place of the lost pages is ever stored. (Written just before it is scanned, the
    file is read under a lease: the truncation waits for the hash to let it in at its next
    window. The Rust test `a_mapped_file_cut_short_mid_hash_is_unstable_not_a_crash` cuts a
    file changed long ago, which the guard alone covers.)"""
    root = tmp_path / "lib"
    root.mkdir()
    big = root / "export.mkv"
    block = bytes(range(1, 256)) * 4112  # no zero byte: a digest over zeros cannot pass as one
    size = 3 * 64 * MIB
    with open(big, "wb") as f:
        for _ in range(size // len(block) + 1):
            f.write(block)
    content = big.read_bytes()[:size]
    catalog = tmp_path / "catalog.duckdb"
    outcomes = set()
    # When the hash starts depends on the machine (a catalog to load first, from the second
    # round on): the delays span well past it, and the first round that cuts in ends the loop.
    for delay in [k / 100 for k in range(61)]:  # every 10 ms: the hash of 192 MiB lasts a few dozen
        if "unstable" in outcomes:
            break
        with open(big, "wb") as f:
            f.write(content)
        timer = threading.Timer(delay, os.truncate, args=(big, 4096))
        timer.start()
        try:
            s = do_scan(catalog, root)
        finally:
            timer.join()
        row = files_by_path(catalog)[bytes(big)]
        if s.unstable:
            assert row["blake3"] is None
            outcomes.add("unstable")
        else:
            # The cut came after the last check: the digest is the whole file's, or the
            # cut file's if it came before the listing.
            assert row["blake3"] in {blake3.blake3(content[:n]).hexdigest() for n in (size, 4096)}
            outcomes.add("hashed")
    assert "unstable" in outcomes


_GUARD_SCRIPT = """
import faulthandler, os, signal, sys, threading
from mediaforge import _core
big, what = sys.argv[1].encode(), sys.argv[2]
_core.hash_file(big)  # installs the guard
if what == "late-faulthandler":
    faulthandler.enable()  # a SIGBUS handler installed after the guard's
    data = open(big, "rb").read()
    for _ in range(3):
        open(big, "wb").write(data)
        t = threading.Thread(target=os.truncate, args=(big, 4096)); t.start()
        try:
            _core.hash_file(big)
        except OSError:
            pass  # "changed while it was being hashed"
        t.join()
    print("alive")
else:
    os.kill(os.getpid(), signal.SIGBUS)  # sent, not a fault: must end the process
    print("alive")
"""


def test_the_guard_leaves_other_sigbus_handling_as_it_was(tmp_path: Path) -> None:
    """A SIGBUS another process sends still ends this one; a SIGBUS handler installed
    after the guard's (a late `faulthandler.enable()`) makes big files be read, not mapped,
    so a file cut short while hashed cannot end the process through it."""
    import subprocess
    import sys

    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        for _ in range(96):
            f.write(os.urandom(MIB))
    sent = subprocess.run([sys.executable, "-c", _GUARD_SCRIPT, str(big), "sent"], capture_output=True, timeout=120)
    assert sent.returncode == -7 and b"alive" not in sent.stdout, sent
    late = subprocess.run([sys.executable, "-c", _GUARD_SCRIPT, str(big), "late-faulthandler"], capture_output=True,
                          timeout=300)
    assert late.returncode == 0 and b"alive" in late.stdout, late


def _swap_pairs(a: Path, b: Path, n: int, stop: threading.Event) -> None:
    """Swap the names a/fK.jpg and b/fK.jpg through a third name, pair after pair, until
    told to stop: a file is at one name, then the other, as the walk passes."""
    i = 0
    while not stop.is_set():
        x, y, t = a / f"f{i % n}.jpg", b / f"f{i % n}.jpg", a / f"f{i % n}.t"
        os.rename(x, t)
        os.rename(y, x)
        os.rename(t, y)
        i += 7
        time.sleep(0.0002)


def test_files_swapped_by_name_as_a_scan_runs_keep_their_ids(tmp_path: Path) -> None:
    """A QA finding: two files swapping names while a scan ran could leave a path's row
    tied to the other file's inode (read unstable, or read whole before the next swap), so
    the ids (and tags) of the pair stayed swapped for good. A name whose inode changed
    between the walk and the read, and an inode the walk found at two names though it has
    one link, are left for the next scan: every file keeps its id, whatever the timing."""
    root = tmp_path / "lib"
    n = 1500
    for d in ("X", "Y"):
        (root / d).mkdir(parents=True)
        for i in range(n):
            (root / d / f"f{i}.jpg").write_bytes(os.urandom(2000 + i))
    catalog = tmp_path / "catalog.duckdb"
    ids = "SELECT inode, media_id::VARCHAR AS id FROM files WHERE status = 'present'"
    do_scan(catalog, root)
    before = {r["inode"]: r["id"] for r in rows(catalog, ids)}
    stop = threading.Event()
    swapper = threading.Thread(target=_swap_pairs, args=(root / "X", root / "Y", n, stop), daemon=True)
    swapper.start()
    try:
        do_scan(catalog, root)
    finally:
        stop.set()
        swapper.join()
    do_scan(catalog, root)
    s = do_scan(catalog, root)
    after = {r["inode"]: r["id"] for r in rows(catalog, ids)}
    assert len(after) == 2 * n and s.new == 0
    assert [k for k in before if after.get(k) != before[k]] == []


def test_a_folder_mounted_twice_is_no_race_after_a_move(tmp_path: Path) -> None:
    """A review finding: a file renamed between scans, in a folder also reached through a
    bind mount, was taken for one renamed as the scan ran (its inode, with one link, at
    two names): its second view got no row and a `vanished` error. The same name in one
    folder, reached two ways, is one file: each view gets its row."""
    import subprocess

    root = tmp_path / "lib"
    (root / "d").mkdir(parents=True)
    for i in range(3):
        (root / "d" / f"f{i}.jpg").write_bytes(os.urandom(3000 + i))
    catalog = tmp_path / "catalog.duckdb"
    do_scan(catalog, root)
    (root / "d" / "f1.jpg").rename(root / "d" / "g1.jpg")
    view = tmp_path / "view"
    view.mkdir()
    r = subprocess.run(["mount", "--bind", str(root), str(view)], capture_output=True, text=True)
    assert r.returncode == 0, f"a bind mount needs root: {r.stderr}"
    try:
        s = do_scan(catalog, root, view)
        present = {bytes(p) for p, r in files_by_path(catalog).items() if r["status"] == "present"}
    finally:
        subprocess.run(["umount", str(view)], check=False)
    assert s.errors == 0 and s.moved == 1, s
    names = ("f0.jpg", "g1.jpg", "f2.jpg")
    assert present == {os.fsencode(d / "d" / n) for d in (root, view) for n in names}
    assert s.hashed_files == 0  # the second view's rows take the digests of the inodes' rows


def test_a_file_mounted_over_a_catalogued_file_is_that_file_not_a_race(tmp_path: Path) -> None:
    """A QA finding: a file bind-mounted over another catalogued file (its inode, with one
    link, at two names) was taken for a rename during the scan, on every scan: an error
    each time, and the path kept the digest of the file under the mount. Both names hold
    the inode at once: it is one file reached two ways, and the path takes its bytes."""
    import subprocess

    root = tmp_path / "lib"
    (root / "x").mkdir(parents=True)
    (root / "x" / "f1.jpg").write_bytes(os.urandom(5000))
    (root / "x" / "cover.jpg").write_bytes(b"")
    catalog = tmp_path / "catalog.duckdb"
    do_scan(catalog, root)
    r = subprocess.run(["mount", "--bind", str(root / "x" / "f1.jpg"), str(root / "x" / "cover.jpg")],
                       capture_output=True, text=True)
    assert r.returncode == 0, f"a bind mount needs root: {r.stderr}"
    try:
        s = do_scan(catalog, root)
        cover = files_by_path(catalog)[os.fsencode(root / "x" / "cover.jpg")]
        want = blake3.blake3((root / "x" / "f1.jpg").read_bytes()).hexdigest()
    finally:
        subprocess.run(["umount", str(root / "x" / "cover.jpg")], check=False)
    assert (s.errors, s.changed) == (0, 1), s
    assert (cover["status"], cover["blake3"]) == ("present", want)


def test_a_tagged_file_renamed_to_and_fro_through_pruning_scans_keeps_one_row_and_its_tag(tmp_path: Path) -> None:
    """A QA finding: a file renamed between two folders without pause while `scan --prune`
    ran again and again was now and then in neither folder as the walk listed them. Its
    row went missing, a second such scan pruned it with its tag, and the next found the
    file as new; or it got a second, untagged row beside its own. A row whose path holds
    its file once the walk is done is seen there, one inode at two names of one mount is
    a move caught half-way, and a row whose inode a scan glimpsed on its way (listed, then
    gone when looked at) is not pruned by that scan."""
    root = tmp_path / "lib"
    for d in range(1, 6):
        (root / f"d{d}").mkdir(parents=True)
        for i in range(200):
            (root / f"d{d}" / f"f{i}.jpg").write_bytes(os.urandom(100))
    x = root / "d1" / "x.jpg"
    x.write_bytes(os.urandom(500))
    catalog = tmp_path / "cat.duckdb"
    do_scan(catalog, root)
    assert run_cli("tag", "add", "keep", x, catalog=catalog).rc == 0
    # The renames run in a process of their own: a thread of this one would hold the GIL
    # from the scans' Python between its renames (the test took 5 minutes on a busy machine).
    mover = subprocess.Popen([sys.executable, "-c", "import os, sys\na, b = sys.argv[1:]\nwhile True:\n"
                              "    os.rename(a, b)\n    a, b = b, a\n", str(x), str(root / "d4" / "x.jpg")])
    ids = "SELECT media_id FROM files WHERE name = 'x.jpg'"
    try:
        for _ in range(20):
            do_scan(catalog, root, prune=True)
            assert len(rows(catalog, ids)) == 1  # never a second row, nor none
    finally:
        mover.kill()
        mover.wait()
    do_scan(catalog, root)
    got = rows(catalog, "SELECT f.status, count(t.tag) AS tags FROM files f LEFT JOIN tags t USING (media_id) "
                        "WHERE f.name = 'x.jpg' GROUP BY ALL")
    assert got == [{"status": "present", "tags": 1}]


@pytest.fixture
def whole_second_disk(tmp_path: Path):  # noqa: ANN201
    """An ext4 file system with 128-byte inodes, which keeps file times in whole seconds
    (as FAT, HFS+ and many network file systems do), mounted from a loop image."""
    yield from loop_disk(tmp_path, "disk", 32 << 20, ["mkfs.ext4", "-q", "-I", "128", "-O", "^has_journal"],
                         "e2fsprogs")


def test_a_file_rewritten_in_the_second_it_was_read_is_read_again(whole_second_disk: Path, tmp_path: Path) -> None:
    """A QA finding: on a file system whose times are whole seconds, a file rewritten at
    the same size in the second its scan read it kept the old digest for good: its size
    and times were the ones the scan saw. A digest read in the tick of the file's last
    change is not kept (`unstable`); a scan once the tick is past reads it."""
    lib = whole_second_disk / "lib"
    lib.mkdir()
    photo = lib / "photo.jpg"
    catalog = tmp_path / "c.duckdb"
    for _ in range(20):
        # Written early in a second (by the file's own time, the kernel's coarse clock):
        # most of that second is ahead, for the scan to read it and the rewrite to land in.
        photo.write_bytes(b"\xff\xd8\xff" + b"A" * 1000)
        st = os.stat(photo)
        assert st.st_mtime_ns % 1_000_000_000 == 0 and st.st_ctime_ns % 1_000_000_000 == 0, "times not whole seconds"
        if time.time() < st.st_mtime_ns / 1e9 + 0.1:
            break
        time.sleep(1.02 - time.time() % 1)
    else:
        pytest.fail("could not write the file early in a second")
    do_scan(catalog, lib)
    photo.write_bytes(b"\xff\xd8\xff" + b"B" * 1000)  # the same size
    if (os.stat(photo).st_mtime_ns, os.stat(photo).st_ctime_ns) != (st.st_mtime_ns, st.st_ctime_ns):
        pytest.skip("the scan did not end within the second the file was written in (a slow machine)")
    (row,) = files_by_path(catalog).values()
    assert row["blake3"] is None
    (err,) = rows(catalog, "SELECT stage, message FROM scan_errors")
    assert err["stage"] == "unstable" and "time resolution" in err["message"], err
    time.sleep(max(0.0, st.st_mtime_ns / 1e9 + 2.05 - time.time()))
    do_scan(catalog, lib)
    (row,) = files_by_path(catalog).values()
    assert row["blake3"] == blake3.blake3(photo.read_bytes()).hexdigest()
