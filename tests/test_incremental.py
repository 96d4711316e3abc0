"""Rescans: what changed on disk is what changes in the catalog, identities survive
renames and moves, nothing is deleted without --prune, and an unchanged library is not
read again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import blake3
import pytest

from conftest import (
    MediaTree,
    assert_one_line_error,
    do_scan,
    files_by_path,
    reference_walk,
    rows,
    run_cli,
    write_bytes_path,
)


def digest(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def scanned(catalog: Path, *args: object, ok: tuple[int, ...] = (0,)) -> dict:
    """The summary of `mediaforge scan --no-meta ARGS --json` into `catalog`."""
    res = run_cli("scan", "--no-meta", *args, "--json", catalog=catalog)
    assert res.rc in ok, res.err
    return json.loads(res.out)


def test_first_scan_catalogs_every_file_with_its_digest(media_tree: MediaTree, catalog_path: Path) -> None:
    s = do_scan(catalog_path, media_tree.root)
    n = len(media_tree.files)
    assert (s.files_seen, s.new, s.changed, s.moved, s.missing, s.errors) == (n, n, 0, 0, 0, 0)
    assert s.bytes_seen == sum(len(d) for d in media_tree.content.values())
    got = files_by_path(catalog_path)
    assert set(got) == set(media_tree.content) == set(reference_walk(media_tree.root_b))
    for p, data in media_tree.content.items():
        r = got[p]
        assert r["blake3"] == digest(data), p
        assert r["size"] == len(data)
        assert r["status"] == "present" and r["missing_since"] is None
        st = os.lstat(p)
        assert (r["inode"], r["dev"], r["mtime_ns"]) == (st.st_ino, st.st_dev, st.st_mtime_ns)
        assert r["path"] == p.decode("utf-8", "replace")
    assert len({r["media_id"] for r in got.values()}) == n


def test_unchanged_rescan_reads_nothing_and_changes_nothing(media_tree: MediaTree, catalog_path: Path) -> None:
    do_scan(catalog_path, media_tree.root)
    before = files_by_path(catalog_path)
    s = do_scan(catalog_path, media_tree.root)
    n = len(media_tree.files)
    assert s.unchanged == n
    assert (s.new, s.changed, s.moved, s.missing, s.revived, s.errors) == (0, 0, 0, 0, 0, 0)
    assert (s.hashed_files, s.hashed_bytes) == (0, 0)
    after = files_by_path(catalog_path)
    assert set(after) == set(before)
    stable = ("media_id", "blake3", "size", "mtime_ns", "inode", "kind", "mime", "status", "first_seen",
              "first_scan_id")
    for p in before:
        assert {k: after[p][k] for k in stable} == {k: before[p][k] for k in stable}
        assert after[p]["last_scan_id"] == s.scan_id  # it was seen by this scan
    assert rows(catalog_path, "SELECT count(*) AS n FROM scan_errors")[0]["n"] == 0
    scan_rows = rows(catalog_path, "SELECT scan_id, status, unchanged_files, hashed_files FROM scans ORDER BY scan_id")
    assert [(r["status"], r["unchanged_files"], r["hashed_files"]) for r in scan_rows] == [
        ("completed", 0, n), ("completed", n, 0)]


def test_modified_file_is_rehashed_and_keeps_its_id(media_tree: MediaTree, catalog_path: Path) -> None:
    do_scan(catalog_path, media_tree.root)
    p = media_tree.files["mp3"]
    old = files_by_path(catalog_path)[p]
    new_data = media_tree.content[p] + b"appended tag bytes"
    write_bytes_path(p, new_data)
    s = do_scan(catalog_path, media_tree.root)
    assert (s.changed, s.new, s.missing, s.hashed_files) == (1, 0, 0, 1)
    r = files_by_path(catalog_path)[p]
    assert r["blake3"] == digest(new_data) != old["blake3"]
    assert r["size"] == len(new_data)
    assert r["media_id"] == old["media_id"]
    assert r["first_seen"] == old["first_seen"]


def test_replaced_file_with_same_size_and_mtime_is_caught(tmp_path: Path, catalog_path: Path) -> None:
    """Editors save by writing a temporary file and renaming it over the original: a new
    inode, even when size and mtime happen to be identical."""
    lib = tmp_path / "lib"
    lib.mkdir()
    f = lib / "photo.jpg"
    f.write_bytes(b"A" * 5000)
    do_scan(catalog_path, lib)
    st = f.stat()
    tmp = lib / ".photo.jpg.tmp"
    tmp.write_bytes(b"B" * 5000)
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, f)
    s = do_scan(catalog_path, lib)
    assert s.changed == 1
    assert files_by_path(catalog_path)[os.fsencode(f)]["blake3"] == digest(b"B" * 5000)


def test_deleted_file_is_marked_missing_not_deleted(media_tree: MediaTree, catalog_path: Path) -> None:
    do_scan(catalog_path, media_tree.root)
    gone = media_tree.files["flac"]
    before = files_by_path(catalog_path)[gone]
    os.unlink(gone)
    s = do_scan(catalog_path, media_tree.root)
    assert (s.missing, s.new, s.changed, s.pruned) == (1, 0, 0, 0)
    r = files_by_path(catalog_path)[gone]
    assert r["status"] == "missing"
    assert r["missing_since"] is not None and r["missing_since"] >= before["last_seen"]
    assert (r["media_id"], r["blake3"]) == (before["media_id"], before["blake3"])
    # Still missing (not re-counted) on the next scan.
    s = do_scan(catalog_path, media_tree.root)
    assert s.missing == 0
    assert files_by_path(catalog_path)[gone]["missing_since"] == r["missing_since"]
    st = rows(catalog_path, "SELECT missing_files FROM scans ORDER BY scan_id")
    assert [x["missing_files"] for x in st] == [0, 1, 0]


def test_prune_deletes_missing_rows(media_tree: MediaTree, catalog_path: Path) -> None:
    do_scan(catalog_path, media_tree.root)
    gone = [media_tree.files["flac"], media_tree.files["non_utf8"]]
    for p in gone:
        os.unlink(p)
    do_scan(catalog_path, media_tree.root)
    assert len(files_by_path(catalog_path)) == len(media_tree.files)
    s = do_scan(catalog_path, media_tree.root, prune=True)
    assert s.pruned == 2
    left = files_by_path(catalog_path)
    assert set(left) == set(media_tree.content) - set(gone)
    assert all(r["status"] == "present" for r in left.values())


def test_prune_from_the_cli(media_tree: MediaTree, catalog_path: Path) -> None:
    assert run_cli("scan", media_tree.root, catalog=catalog_path).rc == 0
    os.unlink(media_tree.files["png"])
    res = run_cli("scan", media_tree.root, "--prune", "--json", catalog=catalog_path)
    assert res.rc == 0, res.err
    summary = json.loads(res.out)
    assert (summary["missing"], summary["pruned"]) == (1, 1)
    assert media_tree.files["png"] not in files_by_path(catalog_path)


def test_a_tagged_row_a_scan_found_gone_waits_for_a_second_scan_to_be_pruned(tmp_path: Path) -> None:
    """A QA finding: a file moved as a scan ran, from a folder the walk had not listed yet
    into one it had, is not seen by that scan: `scan --prune` deleted its row, and its
    tags with it, though the file was there all along. A row with tags or collection
    places that this scan found gone waits for a second scan to find it gone; one without
    goes at once. (A move out of the library and back stands in for the race here.)"""
    lib, aside = tmp_path / "lib", tmp_path / "aside"
    (lib / "a").mkdir(parents=True)
    (lib / "b").mkdir()
    aside.mkdir()
    for name in ("kept.jpg", "plain.jpg", "gone.jpg"):
        (lib / "a" / name).write_bytes(name.encode() * 50)
    catalog = tmp_path / "cat.duckdb"
    scanned(catalog, lib)
    for name in ("kept.jpg", "gone.jpg"):
        assert run_cli("tag", "add", "mine", lib / "a" / name, catalog=catalog).rc == 0
    (lib / "a" / "kept.jpg").rename(aside / "kept.jpg")  # not seen by the next scan
    (lib / "a" / "plain.jpg").unlink()
    (lib / "a" / "gone.jpg").unlink()
    got = scanned(catalog, lib, "--prune")
    assert (got["missing"], got["pruned"]) == (3, 1), got
    (aside / "kept.jpg").rename(lib / "b" / "kept.jpg")
    got = scanned(catalog, lib, "--prune")
    assert (got["moved"], got["new"], got["pruned"]) == (1, 0, 1), got  # kept.jpg back; gone.jpg gone twice
    assert rows(catalog, "SELECT f.name, f.status FROM tags t JOIN files f USING (media_id)") == [
        {"name": "kept.jpg", "status": "present"}]
    assert rows(catalog, "SELECT name FROM files ORDER BY name") == [{"name": "kept.jpg"}]


def test_a_file_back_at_a_name_another_file_took_since_gets_one_row(tmp_path: Path) -> None:
    """A review finding: a file moved out, another saved under its name, then that one
    moved away and the first put back (a restore from the desktop trash). The walk gave
    the path's present row the file; the step that sees rows at their paths once the
    walk is done also brought back the first file's missing row there: two present rows
    of one path and inode, for good. A path the walk settled keeps one row."""
    lib, aside = tmp_path / "lib", tmp_path / "aside"
    lib.mkdir()
    aside.mkdir()
    (lib / "p.jpg").write_bytes(b"first" * 100)
    (lib / "q.jpg").write_bytes(b"q" * 100)
    catalog = tmp_path / "cat.duckdb"
    scanned(catalog, lib)
    (lib / "p.jpg").rename(aside / "p.jpg")
    assert scanned(catalog, lib)["missing"] == 1
    (lib / "p.jpg").write_bytes(b"second" * 100)
    assert scanned(catalog, lib)["new"] == 1
    (lib / "p.jpg").rename(aside / "second.jpg")
    (aside / "p.jpg").rename(lib / "p.jpg")
    for _ in range(2):
        got = scanned(catalog, lib)
        assert got["files_seen"] == 2, got
        assert rows(catalog, "SELECT status, count(*) AS n FROM files WHERE name = 'p.jpg' GROUP BY ALL ORDER BY 1") \
            == [{"status": "missing", "n": 1}, {"status": "present", "n": 1}]


def test_a_row_a_scan_glimpsed_in_motion_is_held_from_the_next_prune_of_its_root(tmp_path: Path) -> None:
    """A QA finding: a file renamed to and fro without pause can be missed whole by one
    scan, right after the scan that glimpsed it in motion (its inode listed under a name it
    had left) found its row gone: `--prune` took the row and its tag. The rows a scan
    glimpsed (`glimpsed:<scan_id>` in `meta`, as the core reports them) are held from the
    prune of the next scan of their root, however many scans of other roots come between;
    a scan that leaves paths out keeps them held; a value that does not read as ids holds
    nothing."""
    from mediaforge import open_catalog

    lib, other, aside = tmp_path / "lib", tmp_path / "other", tmp_path / "aside"
    for d in (lib, other, aside):
        d.mkdir()
    (lib / "x.jpg").write_bytes(b"x" * 100)
    (lib / "z.jpg").write_bytes(b"z" * 100)  # a root left empty prunes nothing
    (other / "y.jpg").write_bytes(b"y" * 100)
    catalog = tmp_path / "cat.duckdb"
    scanned(catalog, lib)
    scanned(catalog, other)
    assert run_cli("tag", "add", "mine", lib / "x.jpg", catalog=catalog).rc == 0
    (lib / "x.jpg").rename(aside / "x.jpg")
    first = scanned(catalog, lib, "--prune")
    assert (first["missing"], first["pruned"]) == (1, 0), first  # gone this scan: held
    (x_id,) = rows(catalog, "SELECT media_id::VARCHAR AS id FROM files WHERE name = 'x.jpg'")[0].values()

    def glimpsed(value: str) -> None:  # as the core's report of a file glimpsed in motion
        with open_catalog(catalog) as cat:
            cat.con.execute("DELETE FROM meta WHERE starts_with(key, 'glimpsed:')")
            cat.con.execute("INSERT INTO meta VALUES ('glimpsed:' || (SELECT max(scan_id) FROM scans), ?)", [value])

    glimpsed(json.dumps([x_id]))
    assert scanned(catalog, other, "--prune")["pruned"] == 0
    scanned(catalog, lib, "--prune", "-e", "z.jpg")  # left a path out: its roots not looked at whole
    assert scanned(catalog, lib, "--prune")["pruned"] == 0  # held: glimpsed before, root not scanned since
    assert rows(catalog, "SELECT count(*) AS n FROM meta WHERE starts_with(key, 'glimpsed:')") == [{"n": 0}]
    assert scanned(catalog, lib, "--prune")["pruned"] == 1  # nothing of it two scans in a row
    assert rows(catalog, "SELECT count(*) AS n FROM tags") == [{"n": 0}]
    for junk in ("[[[[" * 400 + "]]]]" * 400, '{"a": 1}', "not json", '["not-an-id"]'):
        (aside / "x.jpg").rename(lib / "x.jpg")
        scanned(catalog, lib)
        assert run_cli("tag", "add", "mine", lib / "x.jpg", catalog=catalog).rc == 0
        (lib / "x.jpg").rename(aside / "x.jpg")
        assert scanned(catalog, lib, "--prune")["pruned"] == 0
        glimpsed(junk)
        assert scanned(catalog, lib, "--prune")["pruned"] == 1, junk


def test_a_tagged_hard_link_gone_is_pruned_by_the_second_scan_though_its_twin_stays(tmp_path: Path) -> None:
    """A review finding: a row whose inode, size and mtime a present row has was held from
    `--prune` for good when the two were hard links of one file (one name deleted, the
    other kept): only a row made since it was last seen stands for its file."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "x.jpg").write_bytes(b"linked" * 10)
    os.link(lib / "x.jpg", lib / "y.jpg")
    catalog = tmp_path / "cat.duckdb"
    scanned(catalog, lib)
    assert run_cli("tag", "add", "T", lib / "y.jpg", catalog=catalog).rc == 0
    (lib / "y.jpg").unlink()
    got = [scanned(catalog, lib, "--prune") for _ in range(3)]
    assert [(g["missing"], g["pruned"]) for g in got] == [(1, 0), (0, 1), (0, 0)], got
    assert rows(catalog, "SELECT name FROM files") == [{"name": "x.jpg"}]


def test_a_move_paired_with_a_row_the_scan_left_out_takes_nothing_from_unchanged(tmp_path: Path) -> None:
    """A QA finding: a row an earlier scan added for a moved file (its old row left out
    then) takes the old row's id once a scan finds the old path gone. The summary took
    that row back out of `unchanged` as if this scan had walked it, though its options
    left it out: `unchanged 0` where a.jpg was walked and unchanged."""
    lib = tmp_path / "L"
    (lib / "cache").mkdir(parents=True)
    (lib / "cache" / "b.jpg").write_bytes(b"two")
    (lib / "a.jpg").write_bytes(b"one")
    catalog = tmp_path / "cat.duckdb"
    scanned(catalog, lib)
    (lib / "cache" / "b.jpg").rename(lib / "b.jpg")
    scanned(catalog, lib, "-e", "cache/")
    got = scanned(catalog, lib, "-e", "b.jpg")
    assert (got["files_seen"], got["moved"], got["unchanged"], got["new"]) == (1, 1, 1, 0), got
    assert rows(catalog, "SELECT unchanged_files FROM scans ORDER BY scan_id DESC LIMIT 1") == [{"unchanged_files": 1}]


def test_prune_only_touches_the_scanned_root(tmp_path: Path, catalog_path: Path) -> None:
    lib = tmp_path / "lib"
    for d in ("a", "b"):
        (lib / d).mkdir(parents=True)
        (lib / d / "x.jpg").write_bytes(d.encode() * 10)
    do_scan(catalog_path, lib / "a")
    do_scan(catalog_path, lib / "b")
    (lib / "b" / "x.jpg").unlink()
    do_scan(catalog_path, lib / "b")  # marks b/x.jpg missing
    s = do_scan(catalog_path, lib / "a", prune=True)
    assert s.pruned == 0
    assert files_by_path(catalog_path)[os.fsencode(lib / "b" / "x.jpg")]["status"] == "missing"


def test_prune_only_touches_the_scanned_root_with_undecodable_names(tmp_path: Path, catalog_path: Path) -> None:
    """Two folders whose names differ only in bytes that are not UTF-8 look alike in the
    display form (both `caf\ufffd`); pruning one must not delete rows of the other."""
    lib = os.fsencode(tmp_path / "lib")
    a, b = os.path.join(lib, b"caf\xe9"), os.path.join(lib, b"caf\xe8")
    for d in (a, b):
        os.makedirs(d)
        write_bytes_path(os.path.join(d, b"song.flac"), d)
    do_scan(catalog_path, a)
    do_scan(catalog_path, b)
    os.unlink(os.path.join(b, b"song.flac"))
    assert do_scan(catalog_path, b).missing == 1
    s = do_scan(catalog_path, a, prune=True)
    assert s.pruned == 0
    kept = files_by_path(catalog_path)
    assert kept[os.path.join(b, b"song.flac")]["status"] == "missing"
    assert kept[os.path.join(a, b"song.flac")]["status"] == "present"


def test_scanning_another_folder_leaves_the_first_alone(tmp_path: Path, catalog_path: Path) -> None:
    for d in ("photos", "music"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "f.bin").write_bytes(d.encode())
    do_scan(catalog_path, tmp_path / "photos")
    s = do_scan(catalog_path, tmp_path / "music")
    assert (s.new, s.missing) == (1, 0)
    st = {os.path.basename(os.path.dirname(p)): r["status"] for p, r in files_by_path(catalog_path).items()}
    assert st == {b"photos": "present", b"music": "present"}


def test_rename_in_place_keeps_media_id(media_tree: MediaTree, catalog_path: Path) -> None:
    do_scan(catalog_path, media_tree.root)
    old = media_tree.files["jpeg"]
    before = files_by_path(catalog_path)[old]
    new = os.path.join(os.path.dirname(old), b"Eiffel Tower \xe2\x80\x94 sunset.jpg")
    os.rename(old, new)
    s = do_scan(catalog_path, media_tree.root)
    assert (s.moved, s.new, s.missing, s.hashed_files) == (1, 0, 0, 0)
    after = files_by_path(catalog_path)
    assert old not in after  # one row per file: the old path is taken over, not left missing
    r = after[new]
    assert (r["media_id"], r["blake3"], r["first_seen"], r["first_scan_id"]) == (
        before["media_id"], before["blake3"], before["first_seen"], before["first_scan_id"])
    assert r["status"] == "present" and r["name"] == "Eiffel Tower \u2014 sunset.jpg"


def test_move_across_folders_keeps_media_id(media_tree: MediaTree, catalog_path: Path) -> None:
    do_scan(catalog_path, media_tree.root)
    ids = {p: r["media_id"] for p, r in files_by_path(catalog_path).items()}
    dest = os.path.join(media_tree.root_b, b"Archive", b"2024")
    os.makedirs(dest)
    moves = {}
    for label in ("mp4", "non_utf8", "newline"):
        src = media_tree.files[label]
        moves[src] = os.path.join(dest, os.path.basename(src))
        os.rename(src, moves[src])
    s = do_scan(catalog_path, media_tree.root)
    assert (s.moved, s.new, s.missing) == (3, 0, 0)
    after = files_by_path(catalog_path)
    for src, dst in moves.items():
        assert src not in after
        assert after[dst]["media_id"] == ids[src]
        assert after[dst]["blake3"] == digest(media_tree.content[src])
    assert len(after) == len(media_tree.files)


def test_moved_file_keeps_its_id_when_a_new_file_takes_its_old_name(tmp_path: Path, catalog_path: Path) -> None:
    """Sorting an import into a dated folder, then importing a new card whose counter
    restarted: the old photo (same inode) keeps its id and first_seen; the new file at
    the old name is a new file. Otherwise tags follow the name onto an unrelated photo."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "IMG_0001.jpg").write_bytes(b"\xff\xd8\xff old photo")
    do_scan(catalog_path, lib)
    old = files_by_path(catalog_path)[os.fsencode(lib / "IMG_0001.jpg")]
    (lib / "2019").mkdir()
    os.rename(lib / "IMG_0001.jpg", lib / "2019" / "IMG_0001.jpg")
    (lib / "IMG_0001.jpg").write_bytes(b"\xff\xd8\xff a brand new photo")
    do_scan(catalog_path, lib)
    got = files_by_path(catalog_path)
    moved, fresh = got[os.fsencode(lib / "2019" / "IMG_0001.jpg")], got[os.fsencode(lib / "IMG_0001.jpg")]
    assert moved["blake3"] == old["blake3"]
    assert fresh["blake3"] == digest(b"\xff\xd8\xff a brand new photo")
    assert moved["media_id"] == old["media_id"], "the moved photo lost its media_id"
    assert fresh["media_id"] != old["media_id"], "the new photo took over the old photo's media_id"
    assert moved["first_seen"] == old["first_seen"]


def test_file_moved_onto_another_files_name_takes_its_id_and_tags_along(tmp_path: Path, catalog_path: Path) -> None:
    """`mv b.jpg a.jpg` over an older a.jpg: the photo now at a.jpg is b's, so it keeps b's
    id and tags; a's old photo is gone, so its row is missing (with its own tags), and a
    rescan of the unchanged library changes nothing."""
    lib = tmp_path / "lib"
    lib.mkdir()
    a, b = lib / "a.jpg", lib / "b.jpg"
    a.write_bytes(b"\xff\xd8\xff old photo a")
    b.write_bytes(b"\xff\xd8\xff photo b, the keeper")
    do_scan(catalog_path, lib)
    before = files_by_path(catalog_path)
    assert run_cli("tag", "add", "keep", b, catalog=catalog_path).rc == 0
    assert run_cli("tag", "add", "old", a, catalog=catalog_path).rc == 0
    os.rename(b, a)
    s = do_scan(catalog_path, lib)
    assert (s.moved, s.new, s.changed, s.missing) == (1, 0, 0, 1)
    at_a = rows(catalog_path, "SELECT media_id, status, blake3 FROM files WHERE path_bytes = ? ORDER BY status DESC",
                [os.fsencode(a)])
    assert [r["status"] for r in at_a] == ["present", "missing"]
    assert at_a[0]["media_id"] == before[os.fsencode(b)]["media_id"]
    assert at_a[0]["blake3"] == digest(b"\xff\xd8\xff photo b, the keeper")
    assert at_a[1]["media_id"] == before[os.fsencode(a)]["media_id"]
    assert os.fsencode(b) not in files_by_path(catalog_path)
    tags = rows(catalog_path, "SELECT t.tag, f.status FROM tags t JOIN files f USING (media_id) ORDER BY t.tag")
    assert [(r["tag"], r["status"]) for r in tags] == [("keep", "present"), ("old", "missing")]
    info = json.loads(run_cli("info", a, "--json", catalog=catalog_path).out)
    assert info["file"]["status"] == "present" and info["file"]["media_id"] == str(at_a[0]["media_id"])
    s = do_scan(catalog_path, lib)
    assert (s.moved, s.new, s.changed, s.missing, s.unchanged) == (0, 0, 0, 0, 1)
    # A new file saved over it later replaces the present row's content, not the missing one's.
    a.write_bytes(b"\xff\xd8\xff edited again, longer")
    s = do_scan(catalog_path, lib)
    assert (s.changed, s.new, s.missing) == (1, 0, 0)
    at_a2 = rows(catalog_path, "SELECT media_id, status FROM files WHERE path_bytes = ? ORDER BY status DESC",
                 [os.fsencode(a)])
    assert [(r["media_id"], r["status"]) for r in at_a2] == [(at_a[0]["media_id"], "present"),
                                                             (at_a[1]["media_id"], "missing")]


def test_two_files_swapping_names_each_keep_their_own_id(tmp_path: Path, catalog_path: Path) -> None:
    """a.jpg and b.jpg swap names (through a temporary name): each photo keeps its id, so
    tags follow the pictures, not the names; nothing is new or missing."""
    lib = tmp_path / "lib"
    lib.mkdir()
    a, b = lib / "a.jpg", lib / "b.jpg"
    a.write_bytes(b"\xff\xd8\xff picture one")
    b.write_bytes(b"\xff\xd8\xff picture two!")
    do_scan(catalog_path, lib, hash=False)
    before = files_by_path(catalog_path)
    os.rename(a, lib / "tmp")
    os.rename(b, a)
    os.rename(lib / "tmp", b)
    for hashed in (False, True):
        s = do_scan(catalog_path, lib, hash=hashed)
        after = files_by_path(catalog_path)
        if not hashed:
            assert (s.moved, s.new, s.changed, s.missing) == (2, 0, 0, 0)
        assert after[os.fsencode(a)]["media_id"] == before[os.fsencode(b)]["media_id"]
        assert after[os.fsencode(b)]["media_id"] == before[os.fsencode(a)]["media_id"]
        assert len(after) == 2 and {r["status"] for r in after.values()} == {"present"}
    assert after[os.fsencode(a)]["blake3"] == digest(b"\xff\xd8\xff picture two!")


def test_a_scan_killed_half_way_through_a_swap_is_settled_by_the_next(tmp_path: Path, catalog_path: Path) -> None:
    """The rows of a swap (or of a file moved onto another's name) are written in separate
    batches: a kill -9 between them leaves two present rows on one path. The next scan
    settles it, whichever of the two rows it meets first."""
    from mediaforge import open_catalog

    for swapped in (True, False):
        for first in ("moved", "stale"):
            lib = tmp_path / f"lib-{swapped}-{first}"
            lib.mkdir()
            cat = tmp_path / f"cat-{swapped}-{first}.duckdb"
            a, b = lib / "a.jpg", lib / "b.jpg"
            a.write_bytes(b"\xff\xd8\xff picture A")
            b.write_bytes(b"\xff\xd8\xff picture B, longer")
            do_scan(cat, lib)
            ids = {p.name: r["media_id"] for p, r in ((Path(os.fsdecode(k)), v) for k, v in files_by_path(cat).items())}
            if swapped:
                os.rename(a, lib / "tmp")
                os.rename(b, a)
                os.rename(lib / "tmp", b)
            else:
                os.rename(b, a)
            # What the killed scan committed: only b's row, now at a.jpg. Row order decides
            # which of the two the next scan meets first.
            with open_catalog(cat) as c:
                c.con.execute("UPDATE files SET name = 'a.jpg' WHERE media_id = ?", [ids["b.jpg"]])
                if first == "moved":
                    c.con.execute("CREATE OR REPLACE TABLE files_tmp AS SELECT * EXCLUDE (path, path_bytes) FROM files "
                                  "ORDER BY media_id = ? DESC", [ids["b.jpg"]])
                    c.con.execute("DELETE FROM files")
                    c.con.execute("INSERT INTO files BY NAME SELECT * FROM files_tmp")
                    c.con.execute("DROP TABLE files_tmp")
            do_scan(cat, lib)
            got = rows(cat, "SELECT name, media_id, status FROM files ORDER BY status DESC, name")
            if swapped:
                assert [(r["name"], r["media_id"], r["status"]) for r in got] == [
                    ("a.jpg", ids["b.jpg"], "present"), ("b.jpg", ids["a.jpg"], "present")], (swapped, first)
            else:
                assert [(r["name"], r["media_id"], r["status"]) for r in got] == [
                    ("a.jpg", ids["b.jpg"], "present"), ("a.jpg", ids["a.jpg"], "missing")], (swapped, first)
            s = do_scan(cat, lib)
            assert (s.new, s.changed, s.moved, s.missing) == (0, 0, 0, 0)


def test_copied_then_deleted_file_counts_as_a_move(tmp_path: Path, catalog_path: Path) -> None:
    """A move across file systems is a copy plus a delete: matched by content."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    src = tmp_path / "a" / "clip.mp4"
    src.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 20)
    do_scan(catalog_path, tmp_path / "a", tmp_path / "b")
    mid = files_by_path(catalog_path)[os.fsencode(src)]["media_id"]
    shutil.copyfile(src, tmp_path / "b" / "clip.mp4")
    src.unlink()
    s = do_scan(catalog_path, tmp_path / "a", tmp_path / "b")
    assert (s.moved, s.new, s.missing) == (1, 0, 0)
    assert files_by_path(catalog_path)[os.fsencode(tmp_path / "b" / "clip.mp4")]["media_id"] == mid


def test_identical_copies_moved_together_each_keep_their_own_id(tmp_path: Path, catalog_path: Path) -> None:
    """Two copies of one content, copied elsewhere and deleted (a move across file
    systems): each pairs with the new file of its own name, none is left missing."""
    lib = tmp_path / "lib"
    (lib / "d").mkdir(parents=True)
    data = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 30
    for name in ("a.jpg", "b.jpg"):
        (lib / "d" / name).write_bytes(data)
    do_scan(catalog_path, lib)
    before = files_by_path(catalog_path)
    shutil.copytree(lib / "d", lib / "e")
    shutil.rmtree(lib / "d")
    s = do_scan(catalog_path, lib)
    assert (s.moved, s.new, s.missing) == (2, 0, 0)
    after = files_by_path(catalog_path)
    for name in ("a.jpg", "b.jpg"):
        old, new = os.fsencode(lib / "d" / name), os.fsencode(lib / "e" / name)
        assert after[new]["media_id"] == before[old]["media_id"] and old not in after


def test_identical_copies_moved_under_new_names_each_keep_an_id(tmp_path: Path, catalog_path: Path) -> None:
    """Three copies of one content copied to three new names and deleted: each old row
    pairs with its own new file (they all once paired with the first new name, leaving
    two copies' ids, and their tags, behind as missing)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    data = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 30
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (lib / name).write_bytes(data)
    do_scan(catalog_path, lib)
    before = {os.path.basename(os.fsdecode(p)): r["media_id"] for p, r in files_by_path(catalog_path).items()}
    for old, new in (("a.jpg", "x.jpg"), ("b.jpg", "y.jpg"), ("c.jpg", "z.jpg")):
        shutil.copyfile(lib / old, lib / new)
        (lib / old).unlink()
    s = do_scan(catalog_path, lib)
    assert (s.moved, s.new, s.missing) == (3, 0, 0)
    after = {os.path.basename(os.fsdecode(p)): r["media_id"] for p, r in files_by_path(catalog_path).items()}
    assert sorted(after) == ["x.jpg", "y.jpg", "z.jpg"]
    assert sorted(after.values()) == sorted(before.values())


def test_moves_a_cut_short_scan_left_unpaired_are_not_counted_new(tmp_path: Path, catalog_path: Path) -> None:
    """A scan cut short after writing the new rows of files that were copied and deleted
    (before it could pair them with their old rows): the next scan pairs them and counts
    them moved, not new and unchanged too (`new` came out negative)."""
    from mediaforge import ScanConfig, open_catalog, scan

    lib = tmp_path / "lib"
    (lib / "a").mkdir(parents=True)
    for i in range(20):
        (lib / "a" / f"f{i}.jpg").write_bytes(b"\xff\xd8\xff" + bytes([i]) * 3000)
    (lib / "keep.jpg").write_bytes(b"\xff\xd8\xff" + b"k" * 3000)
    do_scan(catalog_path, lib)
    ids = {os.path.basename(os.fsdecode(p)): r["media_id"] for p, r in files_by_path(catalog_path).items()}
    shutil.copytree(lib / "a", lib / "b")
    shutil.rmtree(lib / "a")

    def cut_short(p) -> None:  # noqa: ANN001 - as the rows are written, before the moves are paired
        if p.phase == "write":
            raise KeyboardInterrupt

    with open_catalog(catalog_path) as cat, pytest.raises(KeyboardInterrupt):
        scan(cat, ScanConfig(roots=(str(lib),), threads=2), on_progress=cut_short)
    s = do_scan(catalog_path, lib)
    assert (s.new, s.moved, s.missing, s.unchanged) == (0, 20, 0, 1)
    row = rows(catalog_path, "SELECT new_files, moved_files, unchanged_files FROM scans ORDER BY scan_id DESC LIMIT 1")
    assert row == [{"new_files": 0, "moved_files": 20, "unchanged_files": 1}]
    after = {os.path.basename(os.fsdecode(p)): r["media_id"] for p, r in files_by_path(catalog_path).items()}
    assert after == ids


def test_hard_links_moved_together_each_keep_their_own_id(tmp_path: Path, catalog_path: Path) -> None:
    """Three names of one inode, their folder renamed: three moves, each name keeping the
    id (and so the tags) it had; then one link deleted and another moved: the moved one
    keeps its own id, the deleted one is missing."""
    lib = tmp_path / "lib"
    (lib / "d").mkdir(parents=True)
    (lib / "d" / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 30)
    for name in ("b.jpg", "c.jpg"):
        os.link(lib / "d" / "a.jpg", lib / "d" / name)
    do_scan(catalog_path, lib)
    ids = {os.fsdecode(os.path.basename(p)): r["media_id"] for p, r in files_by_path(catalog_path).items()}
    assert len(set(ids.values())) == 3
    os.rename(lib / "d", lib / "e")
    s = do_scan(catalog_path, lib)
    assert (s.moved, s.new, s.missing) == (3, 0, 0)
    after = files_by_path(catalog_path)
    assert {n: after[os.fsencode(lib / "e" / n)]["media_id"] for n in ids} == ids
    os.unlink(lib / "e" / "a.jpg")
    (lib / "sub").mkdir()
    os.rename(lib / "e" / "b.jpg", lib / "sub" / "b.jpg")
    s = do_scan(catalog_path, lib)
    assert (s.moved, s.new, s.missing) == (1, 0, 1)
    after = files_by_path(catalog_path)
    assert after[os.fsencode(lib / "sub" / "b.jpg")]["media_id"] == ids["b.jpg"]
    assert after[os.fsencode(lib / "e" / "a.jpg")]["status"] == "missing"


def test_link_count_and_change_time_are_refreshed_without_rereading(tmp_path: Path, catalog_path: Path) -> None:
    """A hard link added and a chmod change no content: the rows' nlink and ctime_ns
    follow the disk, and what the first scan learned from the bytes (a JPEG named .png is
    image/jpeg; the digest) stands. The new link is not read again; the chmod'ed file is
    (a change time that moved alone may be a write that put the mtime back), and it hashes
    the same."""
    lib = tmp_path / "lib"
    lib.mkdir()
    photo, song = lib / "misnamed.png", lib / "song.flac"
    photo.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 8)
    song.write_bytes(b"fLaC" + bytes(300))
    do_scan(catalog_path, lib)
    before = files_by_path(catalog_path)
    assert before[os.fsencode(photo)]["mime"] == "image/jpeg"
    os.link(photo, tmp_path / "outside.png")
    os.chmod(song, 0o600)
    s = do_scan(catalog_path, lib)
    assert (s.new, s.changed, s.moved, s.unchanged, s.hashed_files) == (0, 0, 0, 2, 1)
    after = files_by_path(catalog_path)
    for p in (photo, song):
        st, old, new = p.stat(), before[os.fsencode(p)], after[os.fsencode(p)]
        assert (new["nlink"], new["ctime_ns"]) == (st.st_nlink, st.st_ctime_ns)
        changed = {k for k in old if old[k] != new[k]}
        assert changed <= {"nlink", "ctime_ns", "last_seen", "last_scan_id"}, changed
    assert after[os.fsencode(photo)]["nlink"] == 2
    s = do_scan(catalog_path, lib)
    assert s.unchanged == 2 and rows(catalog_path, "SELECT count(*) AS n FROM files")[0]["n"] == 2


def test_touch_rehashes_with_the_same_digest_and_id(media_tree: MediaTree, catalog_path: Path) -> None:
    do_scan(catalog_path, media_tree.root)
    p = media_tree.files["flac"]
    before = files_by_path(catalog_path)[p]
    st = os.stat(p)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    s = do_scan(catalog_path, media_tree.root)
    assert (s.changed, s.hashed_files, s.new, s.moved, s.missing) == (1, 1, 0, 0, 0)
    r = files_by_path(catalog_path)[p]
    assert r["blake3"] == before["blake3"] == digest(media_tree.content[p])
    assert r["media_id"] == before["media_id"]
    assert r["mtime_ns"] == st.st_mtime_ns + 5_000_000_000


def test_file_moved_away_and_back_is_revived(media_tree: MediaTree, catalog_path: Path, tmp_path: Path) -> None:
    """Like a file sent to the trash and restored: same inode, same mtime."""
    do_scan(catalog_path, media_tree.root)
    p = media_tree.files["emoji"]
    before = files_by_path(catalog_path)[p]
    aside = tmp_path / "trash.bin"
    os.rename(p, aside)
    assert do_scan(catalog_path, media_tree.root).missing == 1
    os.rename(aside, p)
    s = do_scan(catalog_path, media_tree.root)
    # Read again if the renames moved its change time (ext4 and most others), as a
    # present file's would be: rewritten while away with its mtime put back, it would say
    # so. Its bytes are the same: the same digest.
    moved_ctime = os.stat(p).st_ctime_ns != before["ctime_ns"]
    assert (s.revived, s.new, s.missing, s.hashed_files) == (1, 0, 0, int(moved_ctime))
    r = files_by_path(catalog_path)[p]
    assert r["status"] == "present" and r["missing_since"] is None
    assert (r["media_id"], r["blake3"]) == (before["media_id"], before["blake3"])


def test_file_restored_from_a_copy_is_revived(media_tree: MediaTree, catalog_path: Path) -> None:
    """Restoring a deleted file from a backup puts it back at the same path (new inode):
    docs/catalog.md counts that as revived ("missing and back at the same path")."""
    do_scan(catalog_path, media_tree.root)
    p = media_tree.files["png"]
    before = files_by_path(catalog_path)[p]
    os.unlink(p)
    assert do_scan(catalog_path, media_tree.root).missing == 1
    write_bytes_path(p, media_tree.content[p])
    s = do_scan(catalog_path, media_tree.root)
    r = files_by_path(catalog_path)[p]
    assert r["status"] == "present" and r["missing_since"] is None
    assert (r["media_id"], r["blake3"]) == (before["media_id"], before["blake3"])
    assert (s.new, s.missing) == (0, 0)
    assert s.revived == 1, f"restored file counted as revived={s.revived}, changed={s.changed}"


def test_no_hash_then_hash_fills_digests(media_tree: MediaTree, catalog_path: Path) -> None:
    s = do_scan(catalog_path, media_tree.root, hash=False)
    n = len(media_tree.files)
    assert (s.new, s.hashed_files) == (n, 0)
    assert all(r["blake3"] is None for r in files_by_path(catalog_path).values())
    ids = {p: r["media_id"] for p, r in files_by_path(catalog_path).items()}
    s = do_scan(catalog_path, media_tree.root)
    assert s.hashed_files == n
    assert (s.new, s.changed, s.missing) == (0, 0, 0)
    got = files_by_path(catalog_path)
    for p, data in media_tree.content.items():
        assert got[p]["blake3"] == digest(data)
        assert got[p]["media_id"] == ids[p]
    # And once filled, nothing is read again.
    assert do_scan(catalog_path, media_tree.root).hashed_files == 0
    hashed = [r["hashed"] for r in rows(catalog_path, "SELECT hashed FROM scans ORDER BY scan_id")]
    assert hashed == [False, True, True]


def test_no_hash_scan_of_a_changed_file_leaves_no_stale_digest(media_tree: MediaTree, catalog_path: Path) -> None:
    do_scan(catalog_path, media_tree.root)
    p = media_tree.files["m4a"]
    write_bytes_path(p, media_tree.content[p][:-100])
    s = do_scan(catalog_path, media_tree.root, hash=False)
    assert s.changed == 1
    r = files_by_path(catalog_path)[p]
    assert r["blake3"] is None
    assert r["size"] == len(media_tree.content[p]) - 100


def test_rescan_through_a_symlinked_root_is_the_same_library(media_tree: MediaTree, catalog_path: Path,
                                                            tmp_path: Path) -> None:
    link = tmp_path / "lib-link"
    link.symlink_to(media_tree.root, target_is_directory=True)
    do_scan(catalog_path, media_tree.root)
    s = do_scan(catalog_path, link)
    assert (s.unchanged, s.new, s.missing) == (len(media_tree.files), 0, 0)
    assert s.roots == (str(media_tree.root),)


def test_a_version_6_catalog_upgrades_in_place_keeping_ids_tags_and_exact_paths(media_tree: MediaTree,
                                                                                 catalog_path: Path) -> None:
    """Version 7 rebuilt `files` (raw bytes kept only where a path is not UTF-8): a catalog
    written by version 6 keeps every row, id, tag and exact path, and its next scan finds
    nothing changed."""
    import uuid

    import duckdb

    from mediaforge.catalog.schema import MIGRATIONS, SCHEMA_VERSION

    catalog_path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(catalog_path))
    for v in range(1, 7):
        for stmt in MIGRATIONS[v]:
            con.execute(stmt)
    con.execute("INSERT INTO meta VALUES ('application', 'mediaforge'), ('schema_version', '6')")
    ids = {}
    for p, data in media_tree.content.items():
        st = os.lstat(p)
        ids[p] = str(uuid.uuid4())
        d, n = os.path.split(p)
        ext = n.rsplit(b".", 1)[1].decode("utf-8", "replace").lower() if b"." in n[1:] else ""
        con.execute(
            "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'other', 'application/octet-stream', ?, "
            "'present', now()::TIMESTAMP, now()::TIMESTAMP, NULL, 1, 1)",
            [ids[p], p.decode("utf-8", "replace"), p, d.decode("utf-8", "replace"), n.decode("utf-8", "replace"), ext,
             st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_dev, st.st_ino, st.st_nlink, digest(data)])
    odd = media_tree.files["non_utf8"]
    con.execute("INSERT INTO tags VALUES (?, 'keep me', 'user', 'test', now()::TIMESTAMP)", [ids[odd]])
    con.close()

    s = do_scan(catalog_path, media_tree.root)
    n = len(media_tree.content)
    assert (s.new, s.changed, s.moved, s.missing, s.unchanged, s.hashed_files) == (0, 0, 0, 0, n, 0)
    got = files_by_path(catalog_path)
    assert set(got) == set(media_tree.content)
    assert {p: str(r["media_id"]) for p, r in got.items()} == ids
    for p, r in got.items():
        assert r["path_raw"] == (None if p.decode("utf-8", "ignore").encode() == p else p), p
        assert r["path"] == p.decode("utf-8", "replace"), p
    assert rows(catalog_path, "SELECT tag FROM tags t JOIN files f USING (media_id) WHERE f.path_bytes = ?",
                [odd]) == [{"tag": "keep me"}]
    assert rows(catalog_path, "SELECT value FROM meta WHERE key = 'schema_version'") == [{"value": str(SCHEMA_VERSION)}]
    # Version 9: digests are stored as they are, not run through DuckDB's string compression.
    assert rows(catalog_path, "SELECT DISTINCT compression FROM pragma_storage_info('files') "
                "WHERE column_name = 'blake3' AND segment_type = 'VARCHAR'") == [{"compression": "Uncompressed"}]
    # Version 18: names are compressed with zstd (FSST's training cost more than it saved).
    assert rows(catalog_path, "SELECT DISTINCT compression FROM pragma_storage_info('files') "
                "WHERE column_name = 'name' AND segment_type = 'VARCHAR'") == [{"compression": "ZSTD"}]


def test_path_is_computed_from_folder_and_name(catalog_path: Path) -> None:
    """Schema 8 stores a path as its folder and name: `path` and `path_bytes` join them back,
    in the root folder too, and an undecodable name keeps its exact bytes."""
    from mediaforge.catalog import open_catalog

    raw = b"/x/caf\xe9.jpg"
    with open_catalog(catalog_path) as c:
        for d, n, r in (("/home/me", "a.jpg", None), ("/", "top.jpg", None), ("", "loose.jpg", None),
                        ("/x", raw[3:].decode("utf-8", "replace"), raw)):
            c.con.execute(
                "INSERT INTO files (media_id, dir, name, ext, size, mtime_ns, ctime_ns, dev, inode, nlink, kind, mime, "
                "status, first_seen, last_seen, first_scan_id, last_scan_id, path_raw) VALUES (gen_random_uuid(), "
                "?, ?, 'jpg', 1, 1, 1, 1, 1, 1, 'image', 'image/jpeg', 'present', now()::TIMESTAMP, "
                "now()::TIMESTAMP, 1, 1, ?)", [d, n, r])
    got = {r["name"]: (r["path"], bytes(r["path_bytes"])) for r in rows(catalog_path, "SELECT * FROM files")}
    assert got == {
        "a.jpg": ("/home/me/a.jpg", b"/home/me/a.jpg"),
        "top.jpg": ("/top.jpg", b"/top.jpg"),
        "loose.jpg": ("loose.jpg", b"loose.jpg"),
        "caf\ufffd.jpg": ("/x/caf\ufffd.jpg", raw),
    }


def test_under_roots_matches_exact_bytes_on_folder_and_name_rows(catalog_path: Path) -> None:
    """The scan's "at or below a root" test reads the stored folder (and the raw path where
    one is stored): it picks exactly the rows whose path bytes are the root or lie below it,
    for folder and file roots, the root folder, look-alike names and undecodable bytes."""
    from mediaforge.catalog import open_catalog
    from mediaforge.catalog.writes import under_roots_sql

    paths = [b"/top.jpg", b"/a/b", b"/a/b/c.jpg", b"/a/b/d/e.jpg", b"/a/b0/f.jpg", b"/a/bc.jpg", b"/a/b.jpg",
             b"/a/\xff/g.jpg", b"/a/\xfe/g.jpg", b"/a/\xff", b"/a/caf\xc3\xa9/h.jpg", b"/z/i.jpg"]
    with open_catalog(catalog_path) as c:
        for p in paths:
            k = p.rfind(b"/")
            d, n = (p[:k] or b"/"), p[k + 1:]
            exact = p.decode("utf-8", "strict") if p.decode("utf-8", "replace").encode() == p else None
            c.con.execute(
                "INSERT INTO files (media_id, dir, name, ext, size, mtime_ns, ctime_ns, dev, inode, nlink, kind, mime, "
                "status, first_seen, last_seen, first_scan_id, last_scan_id, path_raw) VALUES (gen_random_uuid(), "
                "?, ?, '', 1, 1, 1, 1, 1, 1, 'other', 'x', 'present', now()::TIMESTAMP, now()::TIMESTAMP, 1, 1, ?)",
                [d.decode("utf-8", "replace"), n.decode("utf-8", "replace"), None if exact is not None else p])
        for root in (b"/", b"/a", b"/a/", b"/a/b", b"/a/b.jpg", b"/a/\xff", b"/a/\xfe", b"/a/caf\xc3\xa9", b"/top.jpg",
                     b"/nowhere"):
            under, params = under_roots_sql([root])
            got = {bytes(r[0]) for r in c.con.execute(f"SELECT path_bytes FROM files WHERE {under}", params).fetchall()}
            base = root.rstrip(b"/")
            want = {p for p in paths if p == (base or b"/") or p.startswith(base + b"/")}
            assert got == want, root
        under, params = under_roots_sql([b"/a/b", b"/z"])
        got = {bytes(r[0]) for r in c.con.execute(f"SELECT path_bytes FROM files WHERE {under}", params).fetchall()}
        assert got == {b"/a/b", b"/a/b/c.jpg", b"/a/b/d/e.jpg", b"/z/i.jpg"}


def test_a_copy_found_earlier_keeps_its_tags_when_it_takes_over_a_gone_rows_id(tmp_path: Path) -> None:
    """A copy an earlier scan found (while the original's folder was left out) pairs with
    the original once that is gone, and takes over its id: the tags and collection place
    the copy had on its own id were left behind on an id no file has."""
    root = tmp_path / "lib"
    (root / "a").mkdir(parents=True)
    (root / "x").mkdir()
    (root / "a" / "1.jpg").write_bytes(b"\xff\xd8\xff\xe0 same picture" * 50)
    catalog = tmp_path / "cat.duckdb"
    assert run_cli("scan", "--no-meta", root / "a", catalog=catalog).rc == 0
    shutil.copy(root / "a" / "1.jpg", root / "x" / "1.jpg")
    assert run_cli("scan", "--no-meta", "-e", "a/", root, catalog=catalog).rc == 0
    for args in (("tag", "add", "mine", root / "x" / "1.jpg"), ("tag", "add", "old", root / "a" / "1.jpg"),
                 ("collection", "create", "C"), ("collection", "add", "C", root / "x" / "1.jpg")):
        assert run_cli(*args, catalog=catalog).rc == 0
    (root / "a" / "1.jpg").unlink()
    res = run_cli("scan", "--no-meta", root, "--json", catalog=catalog)
    assert res.rc == 0 and json.loads(res.out)["moved"] == 1, res.out
    [row] = rows(catalog, "SELECT media_id FROM files")
    assert sorted((r["media_id"], r["tag"]) for r in rows(catalog, "SELECT media_id, tag FROM tags")) == [
        (row["media_id"], "mine"), (row["media_id"], "old")]
    assert [r["media_id"] for r in rows(catalog, "SELECT media_id FROM collection_items")] == [row["media_id"]]
    assert [r["media_id"] for r in rows(catalog, "SELECT media_id FROM search_docs")] == [row["media_id"]]


def test_a_copy_found_by_an_earlier_scan_does_not_strand_the_move_of_another(tmp_path: Path) -> None:
    """Pairing the k-th old copy with the k-th new one by rank let an older copy (found by
    a scan of one folder) take the rank of the real move's new file, fail the "found
    after" check, and leave the moved file with a fresh id and no tags."""
    root = tmp_path / "lib"
    for d in "abcz":
        (root / d).mkdir(parents=True)
    (root / "a" / "p.jpg").write_bytes(b"\xff\xd8\xff\xe0 the picture" * 40)
    (root / "z" / "other.jpg").write_bytes(b"\xff\xd8\xff\xe0 another" * 40)
    catalog = tmp_path / "cat.duckdb"
    assert run_cli("scan", "--no-meta", root, catalog=catalog).rc == 0
    assert run_cli("tag", "add", "mine", root / "a" / "p.jpg", catalog=catalog).rc == 0
    shutil.copy(root / "a" / "p.jpg", root / "b" / "p.jpg")
    assert run_cli("scan", "--no-meta", root / "b", catalog=catalog).rc == 0
    assert run_cli("scan", "--no-meta", root / "a", catalog=catalog).rc == 0
    shutil.copy(root / "a" / "p.jpg", root / "c" / "p.jpg")
    (root / "a" / "p.jpg").unlink()
    (root / "z" / "other.jpg").unlink()
    assert run_cli("scan", "--no-meta", root, catalog=catalog).rc == 0
    got = {Path(r["path"]).parent.name: r["tags"] for r in rows(catalog, "SELECT path, tags FROM library")}
    assert got == {"b": [], "c": ["mine"]}


def test_an_unrelated_empty_file_does_not_take_a_deleted_empty_files_tags(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "a" / "e.txt").write_bytes(b"")
    catalog = tmp_path / "cat.duckdb"
    assert run_cli("scan", "--no-meta", root, catalog=catalog).rc == 0
    assert run_cli("tag", "add", "secret", root / "a" / "e.txt", catalog=catalog).rc == 0
    (root / "a" / "e.txt").unlink()
    (root / "b" / "new.log").write_bytes(b"")
    assert run_cli("scan", "--no-meta", root, catalog=catalog).rc == 0
    assert [r["tags"] for r in rows(catalog, "SELECT tags FROM library")] == [[]]
    moved = rows(catalog, "SELECT path, status FROM files ORDER BY path")
    assert [(Path(r["path"]).name, r["status"]) for r in moved] == [("e.txt", "missing"), ("new.log", "present")]


def _rewritten_with_its_mtime_put_back(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(library, photo, catalog): a photo scanned, then rewritten in place at the same
    size with its mtime put back, as `exiftool -P` leaves it."""
    root = tmp_path / "lib"
    root.mkdir()
    photo = root / "p.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0" + b"A" * 4000)
    catalog = tmp_path / "cat.duckdb"
    assert run_cli("scan", "--no-meta", root, catalog=catalog).rc == 0
    st = photo.stat()
    with open(photo, "r+b") as f:
        f.seek(100)
        f.write(b"B" * 50)  # same size
    os.utime(photo, ns=(st.st_atime_ns, st.st_mtime_ns))
    return root, photo, catalog


def test_a_rewrite_that_puts_the_mtime_back_is_hashed_again(tmp_path: Path) -> None:
    """`exiftool -P` writes a photo and puts its mtime back: same size, same mtime, only
    the change time tells. The old digest stayed for good; now a hashing scan reads such a
    file again and counts it changed (a chmod, which also moves only the change time, costs
    one read and counts as unchanged)."""
    root, photo, catalog = _rewritten_with_its_mtime_put_back(tmp_path)
    res = run_cli("scan", "--no-meta", root, "--json", catalog=catalog)
    s = json.loads(res.out)
    assert res.rc == 0 and (s["hashed_files"], s["changed"], s["unchanged"]) == (1, 1, 0), res.out
    assert files_by_path(catalog)[bytes(photo)]["blake3"] == digest(photo.read_bytes())
    last = "SELECT changed_files, unchanged_files FROM scans ORDER BY scan_id DESC LIMIT 1"
    assert rows(catalog, last) == [{"changed_files": 1, "unchanged_files": 0}]
    os.chmod(photo, 0o600)
    res = run_cli("scan", "--no-meta", root, "--json", catalog=catalog)
    s = json.loads(res.out)
    assert (s["hashed_files"], s["changed"], s["unchanged"]) == (1, 0, 1)  # read again, same bytes
    assert rows(catalog, last) == [{"changed_files": 0, "unchanged_files": 1}]
    assert files_by_path(catalog)[bytes(photo)]["blake3"] == digest(photo.read_bytes())
    res = run_cli("scan", "--no-meta", root, "--json", catalog=catalog)
    assert json.loads(res.out)["hashed_files"] == 0  # nothing moved: not read again


def test_a_scan_without_hashing_does_not_swallow_the_change_time_signal(tmp_path: Path) -> None:
    root, photo, catalog = _rewritten_with_its_mtime_put_back(tmp_path)
    assert run_cli("scan", "--no-meta", "--no-hash", root, catalog=catalog).rc == 0
    assert files_by_path(catalog)[bytes(photo)]["blake3"] is None  # dropped, not kept stale
    res = run_cli("scan", "--no-meta", root, "--json", catalog=catalog)
    assert json.loads(res.out)["hashed_files"] == 1
    assert files_by_path(catalog)[bytes(photo)]["blake3"] == digest(photo.read_bytes())
    counts = rows(catalog, "SELECT unchanged_files FROM scans ORDER BY scan_id DESC LIMIT 1")[0]
    assert counts["unchanged_files"] == json.loads(res.out)["unchanged"] == 1  # the CLI and the table agree


@pytest.mark.parametrize("hashing", [True, False])
def test_a_rewrite_that_puts_the_mtime_back_then_its_folder_renamed_is_read_again(tmp_path: Path,
                                                                                   hashing: bool) -> None:
    """A QA finding: a photo rewritten with its mtime put back, then its folder renamed,
    was found moved and kept its old digest for good (its row took the new change time).
    A folder renamed changes no file in it: such a change time is a write, so the file is
    read again (a scan without hashing drops the digest). Files moved one by one, and
    folders moved whole, are still not read again."""
    root = tmp_path / "lib"
    (root / "album").mkdir(parents=True)
    moved = root / "album" / "p.jpg"
    moved.write_bytes(b"\xff\xd8\xff\xe0" + b"A" * 4000)
    (root / "album" / "chmod.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"C" * 2000)
    (root / "still.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"S" * 3000)
    catalog = tmp_path / "cat.duckdb"
    scanned(catalog, root)
    ids = {p: r["media_id"] for p, r in files_by_path(catalog).items()}
    time.sleep(0.05)
    st = moved.stat()
    with open(moved, "r+b") as f:
        f.write(b"\xff\xd8\xff\xe0 rewritten")
    os.utime(moved, ns=(st.st_atime_ns, st.st_mtime_ns))
    (root / "album" / "chmod.jpg").chmod(0o600)  # its change time moves, its bytes stand
    (root / "album").rename(root / "album2")
    s = scanned(catalog, root, *(() if hashing else ("--no-hash",)))
    # Read again, the rewritten file counts as changed (and keeps its id); the other, the
    # same bytes, as moved.
    assert (s["moved"], s["changed"], s["hashed_files"]) == ((1, 1, 2) if hashing else (2, 0, 0)), s
    after = files_by_path(catalog)
    for name in (b"p.jpg", b"chmod.jpg"):
        assert after[os.fsencode(root / "album2") + b"/" + name]["media_id"] == ids[os.fsencode(root / "album") + b"/" + name]
    now = root / "album2" / "p.jpg"
    assert files_by_path(catalog)[bytes(now)]["blake3"] == (digest(now.read_bytes()) if hashing else None)
    if not hashing:
        assert scanned(catalog, root)["hashed_files"] == 2
        assert files_by_path(catalog)[bytes(now)]["blake3"] == digest(now.read_bytes())
    time.sleep(0.05)
    (root / "album2").rename(root / "album3")
    (root / "still.jpg").rename(root / "album3" / "still.jpg")
    s = scanned(catalog, root)
    assert (s["moved"], s["hashed_files"]) == (3, 0), s  # moves alone: nothing read again



def test_a_row_catalogued_through_a_link_survives_its_target_saved_anew(tmp_path: Path) -> None:
    """An -L scan catalogued a file through a link, and it was tagged. Its target is then
    saved atomically (a new inode). A scan without -L leaves links alone: even --prune
    keeps the row, and its tag."""
    root, outside = tmp_path / "lib", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "own.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"o" * 3000)
    (outside / "far.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"f" * 3000)
    (root / "far.jpg").symlink_to(outside / "far.jpg")
    catalog = tmp_path / "cat.duckdb"
    assert run_cli("scan", "--no-meta", "-L", root, catalog=catalog).rc == 0
    assert run_cli("tag", "add", "fav", root / "far.jpg", catalog=catalog).rc == 0
    (outside / "far.tmp").write_bytes(b"\xff\xd8\xff\xe0" + b"g" * 3000)
    os.replace(outside / "far.tmp", outside / "far.jpg")
    res = run_cli("scan", "--no-meta", "--prune", root, "--json", catalog=catalog)
    assert res.rc == 0 and (json.loads(res.out)["missing"], json.loads(res.out)["pruned"]) == (0, 0), res.out
    assert rows(catalog, "SELECT t.tag, f.status FROM tags t JOIN files f USING (media_id)") == [
        {"tag": "fav", "status": "present"}]


def test_a_file_replaced_by_a_link_goes_missing_and_a_linked_dedupe_leaves_no_group(tmp_path: Path) -> None:
    """A file a scan without -L found, replaced since by a symbolic link (to a copy, as
    `dedupe --action symlink` leaves it; or a folder moved away and linked back), is no
    longer a file there: the next scan without -L marks it missing, and `dupes` no longer
    lists the copy. A later -L scan finds it at the same path again and revives its row."""
    root = tmp_path / "lib"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    data = os.urandom(40_000)
    (root / "a" / "keep.jpg").write_bytes(data)
    (root / "b" / "copy.jpg").write_bytes(data)
    (root / "b" / "other.jpg").write_bytes(os.urandom(3_000))
    catalog = tmp_path / "cat.duckdb"
    assert run_cli("scan", "--no-meta", root, catalog=catalog).rc == 0
    (before,) = rows(catalog, "SELECT media_id FROM files WHERE name = 'copy.jpg'")
    assert run_cli("tag", "add", "fav", root / "b" / "copy.jpg", catalog=catalog).rc == 0
    res = run_cli("dedupe", "--action", "symlink", "--apply", "--json", catalog=catalog)
    assert res.rc == 0 and json.loads(res.out)["done"] == 1, res.err
    assert os.path.islink(root / "b" / "copy.jpg")
    res = run_cli("scan", "--no-meta", root, "--json", catalog=catalog)
    assert res.rc == 0 and json.loads(res.out)["missing"] == 1, res.out
    assert rows(catalog, "SELECT name, status FROM files ORDER BY name") == [
        {"name": "copy.jpg", "status": "missing"}, {"name": "keep.jpg", "status": "present"},
        {"name": "other.jpg", "status": "present"}]
    assert json.loads(run_cli("dupes", "--format", "json", catalog=catalog).out) == []
    # Scans without -L that skip the link again leave the missing row as it is.
    res = run_cli("scan", "--no-meta", root, "--json", catalog=catalog)
    assert res.rc == 0 and json.loads(res.out)["missing"] == 0
    # An -L scan finds the path again, through the link: the same row comes back, and its
    # tag with it; a scan without -L then keeps it, as it keeps every row found through a link.
    assert run_cli("scan", "--no-meta", "-L", root, catalog=catalog).rc == 0
    assert rows(catalog, "SELECT media_id, status FROM files WHERE name = 'copy.jpg'") == [
        {"media_id": before["media_id"], "status": "present"}]
    res = run_cli("scan", "--no-meta", "--prune", root, "--json", catalog=catalog)
    assert res.rc == 0 and (json.loads(res.out)["missing"], json.loads(res.out)["pruned"]) == (0, 0)
    # (dedupe carried the tag over to the kept file too)
    assert rows(catalog, "SELECT f.name FROM tags t JOIN files f USING (media_id) WHERE t.tag = 'fav' "
                         "ORDER BY f.name") == [{"name": "copy.jpg"}, {"name": "keep.jpg"}]


def test_a_moved_hard_link_keeps_its_present_rows_id_over_a_missing_row_at_its_new_path(tmp_path: Path) -> None:
    """x.jpg and y.jpg are one inode; x.jpg is deleted (its row goes missing) and y.jpg,
    tagged, is renamed to x.jpg. The file that moved is the one the last scan saw: it keeps
    y.jpg's id and tag; the old row of x.jpg stays missing."""
    root = tmp_path / "lib"
    root.mkdir()
    (root / "x.jpg").write_bytes(os.urandom(5_000))
    os.link(root / "x.jpg", root / "y.jpg")
    catalog = tmp_path / "cat.duckdb"
    assert run_cli("scan", "--no-meta", root, catalog=catalog).rc == 0
    os.unlink(root / "x.jpg")
    assert run_cli("scan", "--no-meta", root, catalog=catalog).rc == 0
    assert run_cli("tag", "add", "keep", root / "y.jpg", catalog=catalog).rc == 0
    (y_id,) = rows(catalog, "SELECT media_id FROM files WHERE name = 'y.jpg'")
    os.rename(root / "y.jpg", root / "x.jpg")
    assert run_cli("scan", "--no-meta", root, catalog=catalog).rc == 0
    assert rows(catalog, "SELECT media_id FROM files WHERE status = 'present'") == [y_id]
    assert rows(catalog, "SELECT f.name, f.status FROM tags t JOIN files f USING (media_id)") == [
        {"name": "x.jpg", "status": "present"}]


def test_a_hard_link_at_a_missing_rows_path_falls_back_to_its_inodes_row_when_that_path_row_moves(
        tmp_path: Path) -> None:
    """k.jpg (also linked outside the library) is deleted: its row goes missing. Then a.jpg
    is renamed to b.jpg and k.jpg's inode is linked back in as a.jpg. a.jpg's row moves
    with its file to b.jpg, so the new a.jpg takes k.jpg's row, not a fresh id, whatever
    the names' order."""
    for moved_to in ("b.jpg", "0.jpg"):
        base = tmp_path / moved_to
        root, out = base / "lib", base / "out"
        root.mkdir(parents=True)
        out.mkdir()
        (root / "a.jpg").write_bytes(os.urandom(5_000))
        (root / "k.jpg").write_bytes(os.urandom(6_000))
        os.link(root / "k.jpg", out / "k.jpg")
        catalog = base / "cat.duckdb"
        assert run_cli("scan", "--no-meta", root, catalog=catalog).rc == 0
        ids = {r["name"]: r["media_id"] for r in rows(catalog, "SELECT name, media_id FROM files")}
        os.unlink(root / "k.jpg")
        assert run_cli("scan", "--no-meta", root, catalog=catalog).rc == 0
        os.rename(root / "a.jpg", root / moved_to)
        os.link(out / "k.jpg", root / "a.jpg")
        res = run_cli("scan", "--no-meta", root, "--json", catalog=catalog)
        assert res.rc == 0 and (json.loads(res.out)["new"], json.loads(res.out)["moved"]) == (0, 2), res.out
        got = {r["name"]: r["media_id"] for r in rows(catalog, "SELECT name, media_id FROM files")}
        assert got == {moved_to: ids["a.jpg"], "a.jpg": ids["k.jpg"]}


def test_prune_keeps_rows_behind_a_link_and_an_excluded_link_blocks_pruning(tmp_path: Path) -> None:
    """A folder moved to another disk and linked back: a scan without -L marks its rows
    missing, but no --prune removes them (their files are behind the link), and an -L
    scan brings the same rows back with their tags. A link the user excluded by a
    pattern is excluded like a folder: nothing pruned, nothing marked missing."""
    root, disk2 = tmp_path / "lib", tmp_path / "disk2"
    (root / "photos").mkdir(parents=True)
    (root / "other").mkdir()
    disk2.mkdir()
    (root / "photos" / "a.jpg").write_bytes(os.urandom(5_000))
    (root / "other" / "o.jpg").write_bytes(os.urandom(5_000))
    catalog = tmp_path / "cat.duckdb"

    def scan(*extra: object) -> dict:
        return scanned(catalog, *extra, root)

    scan()
    ids = {r["name"]: r["media_id"] for r in rows(catalog, "SELECT name, media_id FROM files")}
    assert run_cli("tag", "add", "fav", root / "photos" / "a.jpg", catalog=catalog).rc == 0
    shutil.move(root / "photos", disk2 / "photos")
    (root / "photos").symlink_to(disk2 / "photos")
    got = scan("--exclude", "photos", "--prune")  # excluded: left alone, and nothing pruned
    assert (got["missing"], got["pruned"]) == (0, 0)
    got = scan("--prune")
    assert (got["missing"], got["pruned"]) == (1, 0)
    assert scan("--prune")["pruned"] == 0
    scan("-L")
    assert rows(catalog, "SELECT f.media_id, f.status FROM tags t JOIN files f USING (media_id)") == [
        {"media_id": ids["a.jpg"], "status": "present"}]


def test_a_file_moved_out_of_a_folder_also_reached_through_a_link_keeps_its_own_row(tmp_path: Path) -> None:
    """An -L scan found real/x.jpg twice: at its path and through alias -> real. The file
    then moves to other/x.jpg. A scan without -L does not look behind the link, so the
    alias row is not a candidate for the move: the moved file keeps its own id and tag."""
    root = tmp_path / "lib"
    (root / "real").mkdir(parents=True)
    (root / "other").mkdir()
    (root / "real" / "x.jpg").write_bytes(os.urandom(5_000))
    (root / "alias").symlink_to("real")
    catalog = tmp_path / "cat.duckdb"
    assert run_cli("scan", "--no-meta", "-L", root, catalog=catalog).rc == 0
    assert run_cli("tag", "add", "K", root / "real" / "x.jpg", catalog=catalog).rc == 0
    (real_id,) = rows(catalog, "SELECT media_id FROM files WHERE dir LIKE '%/real'")
    os.rename(root / "real" / "x.jpg", root / "other" / "x.jpg")
    res = run_cli("scan", "--no-meta", "--prune", root, "--json", catalog=catalog)
    assert res.rc == 0 and json.loads(res.out)["pruned"] == 0, res.out
    assert rows(catalog, "SELECT media_id FROM files WHERE dir LIKE '%/other'") == [real_id]
    assert rows(catalog, "SELECT f.dir LIKE '%/other' AS moved FROM tags t JOIN files f USING (media_id)") == [
        {"moved": True}]


def test_a_link_whose_target_is_gone_holds_its_rows_and_a_copy_does_not_take_a_linked_rows_id(
        tmp_path: Path) -> None:
    """-L: a linked folder whose disk is not mounted now (a broken link) is not looked
    behind, as a folder that cannot be read: its rows stay, even with --prune, and the
    walk error says why. Without -L: a row replaced by a link goes missing, but a copy of
    its file found elsewhere is a new file, not the row moved (an -L scan brings the row
    back at its path, with its tags)."""
    root, disk = tmp_path / "lib", tmp_path / "disk"
    (root / "other").mkdir(parents=True)
    (disk / "photos").mkdir(parents=True)
    data = os.urandom(5_000)
    (disk / "photos" / "a.jpg").write_bytes(data)
    (root / "photos").symlink_to(disk / "photos")
    (root / "other" / "o.jpg").write_bytes(os.urandom(4_000))
    catalog = tmp_path / "cat.duckdb"

    def scan(*extra: object) -> dict:
        return scanned(catalog, *extra, root, ok=(0, 8))  # 8: finished, with path errors

    scan("-L")
    (a_id,) = rows(catalog, "SELECT media_id FROM files WHERE name = 'a.jpg'")
    assert run_cli("tag", "add", "fav", root / "photos" / "a.jpg", catalog=catalog).rc == 0
    os.rename(disk, tmp_path / "disk.off")  # unmounted
    got = scan("-L", "--prune")
    assert (got["missing"], got["pruned"]) == (0, 0)
    assert rows(catalog, "SELECT message FROM scan_errors WHERE path LIKE '%/photos'") == [
        {"message": "broken symbolic link"}]
    os.rename(tmp_path / "disk.off", disk)
    # A plain scan: the folder moved back into the library by hand, the link kept aside.
    os.unlink(root / "photos")
    shutil.move(disk / "photos", root / "photos")
    scan()
    # Now the folder goes to the disk again, linked back; a copy of a.jpg lands elsewhere.
    shutil.move(root / "photos", disk / "photos")
    (root / "photos").symlink_to(disk / "photos")
    (root / "other" / "copy.jpg").write_bytes(data)
    got = scan()
    assert (got["missing"], got["moved"], got["new"]) == (1, 0, 1), got
    assert rows(catalog, "SELECT media_id FROM files WHERE name = 'copy.jpg'") != [a_id]
    scan("-L")
    assert rows(catalog, "SELECT f.name, f.media_id, f.status FROM tags t JOIN files f USING (media_id)") == [
        {"name": "a.jpg", "media_id": a_id["media_id"], "status": "present"}]


def test_a_second_name_of_a_file_found_by_another_scan_is_a_new_row_and_nothing_flips(tmp_path: Path) -> None:
    """A file scanned under one root and found again, by a scan of another root, through
    a linked folder (-L) or as a hard link, is still at its first path: the second name
    gets a row of its own and keeps it, scan after scan, whichever root comes first. The
    first row keeps its path and tag. (The second scan once took it as a move, and the
    two scans moved the row back and forth.)"""
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "photos").mkdir(parents=True)
    b.mkdir()
    (a / "photos" / "x.jpg").write_bytes(os.urandom(5_000))
    (a / "photos" / "y.jpg").write_bytes(os.urandom(6_000))
    (b / "linked").symlink_to(a / "photos")
    os.link(a / "photos" / "y.jpg", b / "y-link.jpg")
    catalog = tmp_path / "cat.duckdb"

    def scan(*args: object) -> dict:
        return scanned(catalog, *args)

    scan(a)
    assert run_cli("tag", "add", "K", a / "photos" / "x.jpg", a / "photos" / "y.jpg", catalog=catalog).rc == 0
    first = {r["path"]: r["media_id"] for r in rows(catalog, "SELECT path, media_id FROM files")}
    want = None
    for _ in range(2):
        got = scan("-L", b)
        assert (got["moved"], got["missing"]) == (0, 0), got
        got = scan(a)
        assert (got["moved"], got["missing"], got["new"]) == (0, 0, 0), got
        now = {r["path"]: (r["media_id"], r["status"])
               for r in rows(catalog, "SELECT path, media_id, status FROM files")}
        assert len(now) == 5 and {s for _, s in now.values()} == {"present"}, now
        assert {p: now[p][0] for p in first} == first
        assert want in (None, now)
        want = now
    assert sorted(r["path"] for r in rows(catalog, "SELECT f.path FROM tags t JOIN files f USING (media_id)")) == [
        str(a / "photos" / "x.jpg"), str(a / "photos" / "y.jpg")]


def test_a_rename_under_one_root_keeps_its_row_when_another_root_reaches_the_file_through_a_link(
        tmp_path: Path) -> None:
    """Root b reaches a's folder through a link (-L), so the file has two rows. Renamed
    in a, the file keeps a's row and tag (not b's alias row), with separate scans or one
    scan of both; and in one root reaching a folder two ways, each name keeps its row."""
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "photos").mkdir(parents=True)
    b.mkdir()
    (a / "photos" / "x.jpg").write_bytes(os.urandom(3_000))
    (b / "linked").symlink_to(a / "photos")
    catalog = tmp_path / "cat.duckdb"

    def scan(*args: object) -> dict:
        return scanned(catalog, *args)

    def ids() -> dict[str, str]:
        return {os.path.relpath(r["path"], tmp_path): r["media_id"]
                for r in rows(catalog, "SELECT path, media_id FROM files WHERE status = 'present'")}

    scan("-L", b)
    scan(a)
    assert run_cli("tag", "add", "K", a / "photos" / "x.jpg", catalog=catalog).rc == 0
    before = ids()
    os.rename(a / "photos" / "x.jpg", a / "photos" / "z.jpg")
    got = scan(a)
    assert (got["moved"], got["missing"], got["new"]) == (1, 0, 0), got
    assert ids()["a/photos/z.jpg"] == before["a/photos/x.jpg"]
    got = scan("-L", b)
    assert (got["moved"], got["missing"]) == (1, 0), got
    assert ids() == {"a/photos/z.jpg": before["a/photos/x.jpg"], "b/linked/z.jpg": before["b/linked/x.jpg"]}
    os.rename(a / "photos" / "z.jpg", a / "photos" / "w.jpg")
    got = scan("-L", a, b)
    assert (got["moved"], got["missing"]) == (2, 0), got
    assert ids() == {"a/photos/w.jpg": before["a/photos/x.jpg"], "b/linked/w.jpg": before["b/linked/x.jpg"]}
    assert rows(catalog, "SELECT f.name FROM tags t JOIN files f USING (media_id)") == [{"name": "w.jpg"}]


def test_a_link_to_a_single_file_and_a_file_moved_leaving_a_link_behind(tmp_path: Path) -> None:
    """A file reached through a link to it (an -L scan of b) is still there for a scan of
    a that finds the file itself: that is a new row, b's row and tag stay. A file moved
    within a root with a link to it left at its old name has moved: its row and tag go
    with it."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x.jpg").write_bytes(os.urandom(3_000))
    (b / "f.jpg").symlink_to(a / "x.jpg")
    catalog = tmp_path / "cat.duckdb"

    def scan(*args: object) -> dict:
        return scanned(catalog, *args)

    scan("-L", b)
    assert run_cli("tag", "add", "KB", b / "f.jpg", catalog=catalog).rc == 0
    (b_id,) = rows(catalog, "SELECT media_id FROM files")
    got = scan(a)
    assert (got["moved"], got["new"]) == (0, 1), got
    got = scan("-L", b)
    assert (got["moved"], got["new"], got["missing"]) == (0, 0, 0), got
    assert rows(catalog, "SELECT f.path, f.media_id FROM tags t JOIN files f USING (media_id)") == [
        {"path": str(b / "f.jpg"), "media_id": b_id["media_id"]}]
    # In a alone: x.jpg becomes y.jpg, and x.jpg a link to it.
    assert run_cli("tag", "add", "KA", a / "x.jpg", catalog=catalog).rc == 0
    (a_id,) = rows(catalog, "SELECT media_id FROM files WHERE path = ?", [str(a / "x.jpg")])
    os.rename(a / "x.jpg", a / "y.jpg")
    (a / "x.jpg").symlink_to("y.jpg")
    got = scan(a)
    assert (got["moved"], got["new"], got["missing"]) == (1, 0, 0), got
    assert rows(catalog, "SELECT f.path, f.media_id FROM tags t JOIN files f USING (media_id) WHERE t.tag = 'KA'") \
        == [{"path": str(a / "y.jpg"), "media_id": a_id["media_id"]}]


def test_a_folder_moved_with_a_link_left_at_its_old_path_keeps_its_rows(tmp_path: Path) -> None:
    """A folder moved elsewhere in the library (or to another root) with a link to it left
    at its old path: its files moved, and their rows and tags go with them."""
    lib = tmp_path / "lib"
    (lib / "photos").mkdir(parents=True)
    (lib / "archive").mkdir()
    (lib / "photos" / "x.jpg").write_bytes(os.urandom(4_000))
    catalog = tmp_path / "cat.duckdb"

    def scan(*args: object) -> dict:
        return scanned(catalog, *args)

    scan(lib)
    assert run_cli("tag", "add", "K", lib / "photos" / "x.jpg", catalog=catalog).rc == 0
    (x_id,) = rows(catalog, "SELECT media_id FROM files")
    os.rename(lib / "photos", lib / "archive" / "photos")
    (lib / "photos").symlink_to("archive/photos")
    got = scan("--prune", lib)
    assert (got["moved"], got["new"], got["missing"], got["pruned"]) == (1, 0, 0, 0), got
    assert rows(catalog, "SELECT f.path, f.media_id, f.status FROM tags t JOIN files f USING (media_id)") == [
        {"path": str(lib / "archive" / "photos" / "x.jpg"), "media_id": x_id["media_id"], "status": "present"}]


def test_deleting_one_name_of_a_file_two_roots_hold_is_no_move(tmp_path: Path) -> None:
    """A file in a with a hard link in b, each catalogued (and tagged) by a scan of its own
    root. Deleting a's name is a file gone from a (missing), whichever root was scanned
    last: b's row is not taken for a's file moved, and the tags stay apart. A file moved
    out of both roots takes a's own row (a real path), not b's alias row through a link."""
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for d in (a / "photos", b, c):
        d.mkdir(parents=True)
    (a / "x.jpg").write_bytes(os.urandom(4_000))
    os.link(a / "x.jpg", b / "h.jpg")
    (a / "photos" / "y.jpg").write_bytes(os.urandom(5_000))
    (b / "linked").symlink_to(a / "photos")
    catalog = tmp_path / "cat.duckdb"

    def scan(*args: object) -> dict:
        return scanned(catalog, *args)

    scan("-L", b)
    scan(a)
    for tag, path in (("K", a / "x.jpg"), ("KB", b / "h.jpg"), ("Y", a / "photos" / "y.jpg")):
        assert run_cli("tag", "add", tag, path, catalog=catalog).rc == 0
    (a / "x.jpg").unlink()
    got = scan(a)
    assert (got["moved"], got["missing"]) == (0, 1), got
    tagged = rows(catalog, "SELECT t.tag, f.name, f.status FROM tags t JOIN files f USING (media_id) ORDER BY t.tag")
    assert tagged == [{"tag": "K", "name": "x.jpg", "status": "missing"},
                      {"tag": "KB", "name": "h.jpg", "status": "present"},
                      {"tag": "Y", "name": "y.jpg", "status": "present"}]
    os.rename(a / "photos" / "y.jpg", c / "y.jpg")
    got = scan(c)
    assert got["moved"] == 1, got
    assert rows(catalog, "SELECT f.path FROM tags t JOIN files f USING (media_id) WHERE t.tag = 'Y'") == [
        {"path": str(c / "y.jpg")}]


@pytest.mark.parametrize("last", ["both roots in one scan", "b rescanned, then a", "b's scan cut short",
                                  "a and b not UTF-8, shown alike"])
def test_deleting_a_name_of_a_file_whose_hard_link_a_scan_found_is_no_move(tmp_path: Path, last: str) -> None:
    """a/x.jpg catalogued, then a hard link of it in b found by a scan of b; a's name
    deleted. Whether the next scan covers both roots, or b is scanned again first (its row
    now the inode's one link), or the scan that found b's name was cut short after
    writing it, or the two folders' names differ in bytes that are not UTF-8 (both shown
    as `p\ufffd`): b's row is a name of its own, not a's file moved, and the tags stay
    apart."""
    import duckdb

    a, b = tmp_path / "a", tmp_path / "b"
    if last.startswith("a and b not UTF-8"):
        a, b = tmp_path / os.fsdecode(b"p\xfe"), tmp_path / os.fsdecode(b"p\xff")
    a.mkdir()
    b.mkdir()
    (a / "x.jpg").write_bytes(os.urandom(5_000))
    catalog = tmp_path / "cat.duckdb"
    scanned(catalog, a)
    os.link(a / "x.jpg", b / "y.jpg")
    scanned(catalog, b)
    if last == "b's scan cut short":  # its rows written, then stopped: the row of b's name is as it left it
        with duckdb.connect(str(catalog)) as con:
            con.execute("UPDATE scans SET status = 'interrupted' WHERE scan_id = 2")
    for tag, path in (("A", a / "x.jpg"), ("B", b / "y.jpg")):
        assert run_cli("tag", "add", tag, path, catalog=catalog).rc == 0
    (a / "x.jpg").unlink()
    if last != "b rescanned, then a":
        got = scanned(catalog, a, b)
    else:
        scanned(catalog, b)
        got = scanned(catalog, a)
    assert (got["moved"], got["missing"]) == (0, 1), got
    assert rows(catalog, "SELECT t.tag, f.name, f.status FROM tags t JOIN files f USING (media_id) ORDER BY t.tag") \
        == [{"tag": "A", "name": "x.jpg", "status": "missing"}, {"tag": "B", "name": "y.jpg", "status": "present"}]


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_file_moved_onto_the_link_an_l_scan_reached_it_through_has_moved(tmp_path: Path, what: str) -> None:
    """c's link to a's file (or folder), found by an -L scan of c: the same file reached
    two ways, not two hard links. The link removed and the file moved to where it was,
    the one name left takes a's row and tag over."""
    a, c = tmp_path / "a", tmp_path / "c"
    (a / "p").mkdir(parents=True)
    c.mkdir()
    (a / "p" / "y.jpg").write_bytes(os.urandom(3_000))
    catalog = tmp_path / "cat.duckdb"
    scanned(catalog, a)
    assert run_cli("tag", "add", "K", a / "p" / "y.jpg", catalog=catalog).rc == 0
    source, target = (a / "p" / "y.jpg", c / "y.jpg") if what == "file" else (a / "p", c / "p")
    target.symlink_to(source)
    scanned(catalog, "-L", c)
    target.unlink()
    os.rename(source, target)
    got = scanned(catalog, a, c)
    assert (got["moved"], got["missing"]) == (1, 0), got
    assert rows(catalog, "SELECT f.path, f.status FROM tags t JOIN files f USING (media_id)") == [
        {"path": str(c / ("y.jpg" if what == "file" else "p/y.jpg")), "status": "present"}]


@pytest.mark.parametrize("hashed", [True, False])
def test_a_hard_link_found_later_is_no_move_but_a_folder_moved_behind_a_link_is(tmp_path: Path, hashed: bool) -> None:
    """a/x.jpg, then a hard link of it in b, each root scanned in turn: deleting a's name
    leaves b's row alone (by identity or by content: the two rows are names of one file).
    A folder an -L scan found, moved to b with a link left at its old place, then the
    link removed: b's row, found while the link still reached it, is the file's sole name
    now, and takes over the row and its tag."""
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "p").mkdir(parents=True)
    b.mkdir()
    (a / "x.jpg").write_bytes(os.urandom(5_000))
    (a / "p" / "y.jpg").write_bytes(os.urandom(6_000))
    catalog = tmp_path / "cat.duckdb"
    opts = () if hashed else ("--no-hash",)

    def scan(*args: object) -> dict:
        return scanned(catalog, *opts, *args)

    scan("-L", a)
    os.link(a / "x.jpg", b / "h.jpg")
    scan(b)
    for tag, path in (("K", a / "x.jpg"), ("KB", b / "h.jpg"), ("Y", a / "p" / "y.jpg")):
        assert run_cli("tag", "add", tag, path, catalog=catalog).rc == 0
    (a / "x.jpg").unlink()
    got = scan("-L", a)
    assert (got["moved"], got["missing"]) == (0, 1), got
    os.rename(a / "p", b / "p")
    (a / "p").symlink_to("../b/p")
    scan(b)
    (a / "p").unlink()
    got = scan(a)
    assert (got["moved"], got["missing"]) == (1, 0), got
    assert rows(catalog, "SELECT t.tag, f.path, f.status FROM tags t JOIN files f USING (media_id) ORDER BY t.tag") == [
        {"tag": "K", "path": str(a / "x.jpg"), "status": "missing"},
        {"tag": "KB", "path": str(b / "h.jpg"), "status": "present"},
        {"tag": "Y", "path": str(b / "p" / "y.jpg"), "status": "present"}]


def test_a_file_made_after_a_row_was_last_seen_is_another_file_whatever_its_inode(tmp_path: Path) -> None:
    """ext4 gives a deleted file's inode number to the next file made, and `cp -p` or `tar
    x` can give it the same size and mtime: (device, inode, size, mtime) then says
    "unchanged" or "moved", and the old digest, id and tags went to another file. Its
    birth time tells: made after the row was last seen, it is read and is a new file."""
    import duckdb

    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a.jpg").write_bytes(b"A" * 4000)
    (lib / "keep.jpg").write_bytes(b"A" * 4000)
    (lib / "b.jpg").write_bytes(b"B" * 4000)
    for n in ("a.jpg", "b.jpg"):
        os.utime(lib / n, (1_577_836_800, 1_577_836_800))
    catalog = tmp_path / "cat.duckdb"
    scanned(catalog, lib)
    assert run_cli("tag", "add", "T", lib / "a.jpg", catalog=catalog).rc == 0
    real = {r["name"]: r["blake3"] for r in rows(catalog, "SELECT name, blake3 FROM files")}
    # As if both rows described files born and last seen before their files were made:
    # a's row with another file's digest (the file that had its inode number), b's too.
    with duckdb.connect(str(catalog)) as con:
        con.execute("UPDATE files SET last_seen = TIMESTAMP '2001-01-01', btime_ns = epoch_ns(TIMESTAMP '2001-01-01'), "
                    "blake3 = ? WHERE name IN ('a.jpg', 'b.jpg')",
                    ["0" * 64])
    os.rename(lib / "a.jpg", lib / "c.jpg")  # c.jpg: a's inode, size and mtime at a new path
    got = scanned(catalog, lib)
    assert (got["new"], got["moved"], got["missing"], got["changed"]) == (1, 0, 1, 1), got
    now = {r["name"]: (r["status"], r["blake3"]) for r in rows(catalog, "SELECT name, status, blake3 FROM files")}
    assert now["c.jpg"] == ("present", real["a.jpg"]) and now["b.jpg"] == ("present", real["b.jpg"])
    assert now["a.jpg"][0] == "missing"
    assert rows(catalog, "SELECT f.name FROM tags t JOIN files f USING (media_id)") == [{"name": "a.jpg"}]
    # A real move keeps its row without a read.
    os.rename(lib / "b.jpg", lib / "d.jpg")
    got = scanned(catalog, lib)
    assert (got["moved"], got["hashed_files"]) == (1, 0), got
    # And a freed inode number really reused, as ext4 does: the new file is read.
    time.sleep(1.2)
    (lib / "d.jpg").unlink()
    (lib / "e.jpg").write_bytes(b"E" * 4000)
    os.utime(lib / "e.jpg", (1_577_836_800, 1_577_836_800))
    got = scanned(catalog, lib)
    assert (got["new"], got["moved"], got["missing"]) == (1, 0, 1), got
    assert rows(catalog, "SELECT count(*) AS n FROM files WHERE status = 'present' AND blake3 = ?",
                [real["b.jpg"]]) == [{"n": 0}]


def _stranger_on_its_inode(path: Path, data: bytes, scratch: Path) -> Path:
    """Delete `path` and make, in its folder, a file of `data` that gets its inode number
    (ext4 gives a freed one to one of the next files made) and its times; the files made
    on the way go to `scratch`. Returns the new file."""
    st = path.stat()
    path.unlink()
    for i in range(200):
        made = path.parent / f"{i}.tmp"
        made.write_bytes(data)
        if made.stat().st_ino == st.st_ino:
            os.utime(made, ns=(st.st_atime_ns, st.st_mtime_ns))
            return made
        made.rename(scratch / made.name)
    pytest.fail("the file system never gave the freed inode number again")


@pytest.mark.parametrize("flags", [(), ("--no-hash",)])
def test_a_file_made_right_after_a_scan_on_a_deleted_files_inode_is_another_file(tmp_path: Path,
                                                                                 flags: tuple[str, ...]) -> None:
    """A QA finding: a file deleted just after a scan, and another made in its place that
    got its inode number (ext4 hands a freed one to the next file made), given its size
    and mtime and moved elsewhere in the library, took over the deleted file's row: its
    id, its tags and its digest, which is not the new file's. A file counted as made
    since only a second after the scan that last saw the row ended (so did one made
    while a long scan ran); the row's own birth time tells now."""
    lib, scratch = tmp_path / "lib", tmp_path / "scratch"
    (lib / "a").mkdir(parents=True)
    (lib / "b").mkdir()
    scratch.mkdir()
    (lib / "a" / "A.jpg").write_bytes(b"AAAA1111")
    catalog = tmp_path / "cat.duckdb"
    scanned(catalog, lib, *flags)
    assert run_cli("tag", "add", "precious", lib / "a" / "A.jpg", catalog=catalog).rc == 0
    scanned(catalog, lib, *flags)
    _stranger_on_its_inode(lib / "a" / "A.jpg", b"BBBB2222", scratch).rename(lib / "b" / "B.jpg")
    got = scanned(catalog, lib, *flags)
    assert (got["new"], got["moved"], got["missing"]) == (1, 0, 1), got
    digest = (lambda b: None) if flags else (lambda b: blake3.blake3(b).hexdigest())
    assert rows(catalog, "SELECT name, status, blake3 FROM files ORDER BY name") == [
        {"name": "A.jpg", "status": "missing", "blake3": digest(b"AAAA1111")},
        {"name": "B.jpg", "status": "present", "blake3": digest(b"BBBB2222")}]
    assert rows(catalog, "SELECT f.name FROM tags t JOIN files f USING (media_id)") == [{"name": "A.jpg"}]


def test_without_birth_times_a_moved_file_is_read_again_and_a_stranger_on_its_inode_is_another_file(
        tmp_path: Path) -> None:
    """A QA finding, on ext2 (no birth times): a file made on a deleted file's inode number
    with its size and mtime, and moved, took the deleted file's id, tags and digest (its
    change time no later than its folder's told no write). Where no birth time tells them
    apart (here rows from before the catalog kept them), a moved file is read again: the
    same bytes, a move; other bytes, another file, and the row goes missing with its tags."""
    import duckdb

    lib, scratch = tmp_path / "lib", tmp_path / "scratch"
    (lib / "a").mkdir(parents=True)
    (lib / "b").mkdir()
    scratch.mkdir()
    (lib / "a" / "A.jpg").write_bytes(b"AAAA1111")
    (lib / "a" / "M.jpg").write_bytes(b"MMMM")
    catalog = tmp_path / "cat.duckdb"
    scanned(catalog, lib)
    for name in ("A.jpg", "M.jpg"):
        assert run_cli("tag", "add", name, lib / "a" / name, catalog=catalog).rc == 0
    with duckdb.connect(str(catalog)) as con:
        con.execute("UPDATE files SET btime_ns = NULL")
    (lib / "a" / "M.jpg").rename(lib / "b" / "M2.jpg")  # a real move
    _stranger_on_its_inode(lib / "a" / "A.jpg", b"BBBB2222", scratch).rename(lib / "b" / "B.jpg")
    got = scanned(catalog, lib)
    assert (got["new"], got["moved"], got["missing"], got["changed"]) == (1, 1, 1, 0), got
    assert rows(catalog, "SELECT name, status, blake3 FROM files ORDER BY name") == [
        {"name": "A.jpg", "status": "missing", "blake3": blake3.blake3(b"AAAA1111").hexdigest()},
        {"name": "B.jpg", "status": "present", "blake3": blake3.blake3(b"BBBB2222").hexdigest()},
        {"name": "M2.jpg", "status": "present", "blake3": blake3.blake3(b"MMMM").hexdigest()}]
    assert rows(catalog, "SELECT t.tag, f.name FROM tags t JOIN files f USING (media_id) ORDER BY 1") == [
        {"tag": "A.jpg", "name": "A.jpg"}, {"tag": "M.jpg", "name": "M2.jpg"}]
    # The next scan settles: nothing moves again.
    again = scanned(catalog, lib)
    assert (again["new"], again["moved"], again["missing"], again["changed"]) == (0, 0, 0, 0), again
    # A scan that does not hash cannot tell: a move keeps its digest, as a rename's (a
    # review finding: every such move lost its digest).
    with duckdb.connect(str(catalog)) as con:
        con.execute("UPDATE files SET btime_ns = NULL")
    (lib / "b" / "M2.jpg").rename(lib / "a" / "M3.jpg")
    got = scanned(catalog, lib, "--no-hash")
    assert got["moved"] == 1, got
    assert rows(catalog, "SELECT blake3 FROM files WHERE name = 'M3.jpg'") == [
        {"blake3": blake3.blake3(b"MMMM").hexdigest()}]


@pytest.mark.parametrize("hashed", [False, True])
def test_a_new_file_takes_over_a_gone_row_only_if_made_before_it_was_last_seen(tmp_path: Path, hashed: bool) -> None:
    """A file deleted and another made in the library that got its inode number (ext4
    hands it to the next file made) with its size and mtime (`cp -p`, `tar x`; or both
    empty). The walk saw the stranger was born after the gone file's row was last seen and
    made it a new row; the pairing after the walk then matched the gone row with it by
    (device, inode, size, mtime): the gone file's id and tags moved to the stranger,
    where the scan did not hash or both were empty. The catalog keeps birth times now and
    the pairing applies the walk's rule. A real move still keeps its id and tags."""
    import duckdb

    lib = tmp_path / "lib"
    (lib / "sub").mkdir(parents=True)
    catalog = tmp_path / "cat.duckdb"
    data = b"" if hashed else b"X" * 4000
    for name in ("gone.jpg", "moved.jpg"):
        (lib / name).write_bytes(data)
        os.utime(lib / name, (1_577_836_800, 1_577_836_800))
    do_scan(catalog, lib, hash=hashed)
    for name in ("gone.jpg", "moved.jpg"):
        assert run_cli("tag", "add", name, lib / name, catalog=catalog).rc == 0
    ids = {r["name"]: r["media_id"] for r in rows(catalog, "SELECT name, media_id FROM files")}
    assert all(r["btime_ns"] for r in rows(catalog, "SELECT btime_ns FROM files"))  # ext4 keeps birth times
    # gone.jpg's row as if its file was born and last seen long ago: the file renamed to
    # stranger.jpg, though its inode, size and mtime are the row's, was born at another
    # time, so it is another file (what a freed inode number reused looks like, without
    # waiting on the clock).
    with duckdb.connect(str(catalog)) as con:
        con.execute("UPDATE files SET last_seen = TIMESTAMP '2001-01-01', btime_ns = epoch_ns(TIMESTAMP '2001-01-01') "
                    "WHERE name = 'gone.jpg'")
    os.rename(lib / "gone.jpg", lib / "sub" / "stranger.jpg")
    os.rename(lib / "moved.jpg", lib / "sub" / "moved.jpg")
    s = do_scan(catalog, lib, hash=hashed)
    assert (s.new, s.moved, s.missing) == (1, 1, 1), s
    got = {r["name"]: r for r in rows(catalog, "SELECT name, media_id, status, tags FROM files LEFT JOIN "
                                               "(SELECT media_id, list(tag) AS tags FROM tags GROUP BY ALL) "
                                               "USING (media_id)")}
    assert got["gone.jpg"]["status"] == "missing" and got["gone.jpg"]["tags"] == ["gone.jpg"]
    assert got["gone.jpg"]["media_id"] == ids["gone.jpg"]
    assert got["stranger.jpg"]["status"] == "present" and got["stranger.jpg"]["tags"] is None
    assert got["stranger.jpg"]["media_id"] != ids["gone.jpg"]
    assert "moved.jpg" in got and got["moved.jpg"]["status"] == "present"
    assert (got["moved.jpg"]["media_id"], got["moved.jpg"]["tags"]) == (ids["moved.jpg"], ["moved.jpg"])
    assert len(got) == 3


def test_schema_14_adds_birth_times_and_older_rows_read_as_unknown(tmp_path: Path) -> None:
    """A catalog at schema 13 gains `files.btime_ns`, NULL for its rows (unknown: they pair
    as before) until a scan rewrites them; new rows get theirs."""
    import duckdb

    from mediaforge.catalog.schema import MIGRATIONS, SCHEMA_VERSION

    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "old.jpg").write_bytes(b"O" * 100)
    catalog = tmp_path / "cat.duckdb"
    do_scan(catalog, lib)
    with duckdb.connect(str(catalog)) as con:  # back to 13: what MIGRATIONS[14] added, gone
        assert "btime_ns      BIGINT" in MIGRATIONS[14][0]
        con.execute("ALTER TABLE files DROP COLUMN btime_ns")
        con.execute("UPDATE meta SET value = '13' WHERE key = 'schema_version'")
    (lib / "new.jpg").write_bytes(b"N" * 100)
    s = do_scan(catalog, lib)
    assert (s.new, s.unchanged) == (1, 1), s
    got = {r["name"]: r["btime_ns"] for r in rows(catalog, "SELECT name, btime_ns FROM files")}
    assert got["old.jpg"] is None and time.time_ns() - 60_000_000_000 < got["new.jpg"] <= time.time_ns()
    assert rows(catalog, "SELECT value FROM meta WHERE key = 'schema_version'") == [{"value": str(SCHEMA_VERSION)}]
    # A file given as its root (rewritten in place: the same inode) has the same birth time.
    born = got["new.jpg"]
    (lib / "new.jpg").write_bytes(b"M" * 150)
    s = do_scan(catalog, lib / "new.jpg")
    assert s.changed == 1, s
    assert rows(catalog, "SELECT btime_ns FROM files WHERE name = 'new.jpg'") == [{"btime_ns": born}]


@pytest.mark.parametrize("hashed", [True, False])
def test_another_file_saved_under_a_gone_files_name_is_a_new_file(tmp_path: Path, hashed: bool) -> None:
    """A camera's counter starting over: IMG_0001.jpg deleted (a scan marks it missing),
    then another photo imported under the same name. It took the gone photo's id and tags
    ("people/alice" on a stranger). Now it is a new file; the gone one keeps its row and
    tags. (A copy of the gone photo put back, new inode and same bytes, still revives it:
    `test_file_restored_from_a_copy_is_revived`.)"""
    from conftest import make_jpeg

    root = tmp_path / "lib"
    root.mkdir()
    photo = root / "IMG_0001.jpg"
    first, other = make_jpeg(seed=1), make_jpeg(seed=2, size=(120, 90))
    photo.write_bytes(first)
    catalog = tmp_path / "cat.duckdb"
    do_scan(catalog, root, hash=hashed)
    assert run_cli("tag", "add", "people/alice", photo, catalog=catalog).rc == 0
    (gone,) = rows(catalog, "SELECT media_id FROM files")
    # Made while the photo still holds its inode, so the stranger has another one (a test
    # cannot wait for birth times to tell a reused inode apart, as they do between imports).
    incoming = tmp_path / "card.jpg"
    incoming.write_bytes(other)
    photo.unlink()
    assert do_scan(catalog, root, hash=hashed).missing == 1
    incoming.rename(photo)
    s = do_scan(catalog, root, hash=hashed)
    assert (s.new, s.revived, s.changed, s.missing) == (1, 0, 0, 0)
    got = rows(catalog, "SELECT media_id, status, size, tags FROM files LEFT JOIN "
                        "(SELECT media_id, list(tag) AS tags FROM tags GROUP BY ALL) USING (media_id) ORDER BY status")
    assert [(r["status"], r["size"], r["tags"]) for r in got] == [("missing", len(first), ["people/alice"]),
                                                                  ("present", len(other), None)]
    assert got[0]["media_id"] == gone["media_id"] != got[1]["media_id"]


def test_a_subfolder_scan_follows_the_ignore_file_above_it(tmp_path: Path) -> None:
    """`scan LIB/sub` catalogued (and hashed) what LIB's .mediaforgeignore leaves out, and a
    later `scan LIB`, which does not look there, left that row present for good."""
    root = tmp_path / "lib"
    (root / "sub").mkdir(parents=True)
    (root / ".mediaforgeignore").write_text("*.tmp\n")
    (root / "sub" / "a.jpg").write_bytes(b"\xff\xd8\xff" + b"a" * 100)
    (root / "sub" / "x.tmp").write_bytes(b"scratch")
    catalog = tmp_path / "cat.duckdb"
    assert scanned(catalog, root / "sub")["files_seen"] == 1  # a.jpg
    assert [r["name"] for r in rows(catalog, "SELECT name FROM files")] == ["a.jpg"]
    assert scanned(catalog, root)["files_seen"] == 2  # and the ignore file itself
    assert scanned(catalog, root / "sub", "--no-ignore")["files_seen"] == 2
    assert sorted(r["name"] for r in rows(catalog, "SELECT name FROM files")) == [".mediaforgeignore", "a.jpg",
                                                                                "x.tmp"]


def test_prune_over_an_empty_mount_point_prunes_nothing(tmp_path: Path) -> None:
    """A disk not mounted leaves an empty folder where the library was: `scan --prune`
    there deleted every row below it, and their tags with them."""
    root = tmp_path / "disk"
    root.mkdir()
    for i in range(3):
        (root / f"p{i}.jpg").write_bytes(b"\xff\xd8\xff" + bytes([i]) * 50)
    catalog = tmp_path / "cat.duckdb"
    scanned(catalog, root)
    assert run_cli("tag", "add", "family", root / "p0.jpg", catalog=catalog).rc == 0
    hidden = tmp_path / "unmounted"
    root.rename(hidden)
    root.mkdir()  # the bare mount point
    res = run_cli("scan", "--no-meta", "--prune", root, catalog=catalog)
    assert res.rc == 0 and "--prune did nothing" in res.out and "empty folder" in res.out, res.out
    assert "once that disk is gone for good, remove the empty folder and prune again" in res.out, res.out
    s = scanned(catalog, root, "--prune")
    assert (s["missing"], s["pruned"], s["prune_skipped"]) == (0, 0, True)
    assert s["empty_roots"] == [str(root)]
    assert rows(catalog, "SELECT count(*) AS n, count(*) FILTER (status = 'missing') AS gone FROM files") == [
        {"n": 3, "gone": 3}]
    assert rows(catalog, "SELECT tag FROM tags") == [{"tag": "family"}]
    root.rmdir()
    hidden.rename(root)  # mounted again: everything is back, ids and tags too
    s = scanned(catalog, root, "--prune")
    assert (s["revived"], s["pruned"], s["prune_skipped"]) == (3, 0, False)
    assert rows(catalog, "SELECT tag FROM tags t JOIN files f USING (media_id) WHERE f.status = 'present'") == [
        {"tag": "family"}]


def test_prune_holds_for_a_disk_not_mounted_below_a_root(tmp_path: Path) -> None:
    """A QA finding: the guard above looked only at the roots. A disk mounted on a folder
    inside the library, then not mounted, left its files missing, and the second
    `scan --prune` dropped their rows and tags. Its empty mount point holds the prune too."""
    lib = tmp_path / "lib"
    disk = lib / "disk"
    disk.mkdir(parents=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True, text=True)
    assert r.returncode == 0, f"a tmpfs mount needs root: {r.stderr}"
    try:
        (disk / "sub").mkdir()
        (disk / "sub" / "m.jpg").write_bytes(b"\xff\xd8\xff" + b"m" * 50)
        (lib / "a.jpg").write_bytes(b"\xff\xd8\xff" + b"a" * 50)
        catalog = tmp_path / "cat.duckdb"
        scanned(catalog, lib)
        assert run_cli("tag", "add", "far", disk / "sub" / "m.jpg", catalog=catalog).rc == 0
    finally:
        subprocess.run(["umount", str(disk)], check=False)
    s = scanned(catalog, lib)
    assert (s["missing"], s["empty_roots"]) == (1, [str(disk)]), s
    for _ in range(2):
        s = scanned(catalog, lib, "--prune")
        assert (s["pruned"], s["prune_skipped"], s["empty_roots"]) == (0, True, [str(disk)]), s
    assert rows(catalog, "SELECT tag FROM tags") == [{"tag": "far"}]
    # A folder of the same disk emptied is no mount point: its files go, and are pruned.
    (lib / "plain").mkdir()
    (lib / "plain" / "p.jpg").write_bytes(b"\xff\xd8\xff" + b"p" * 50)
    scanned(catalog, lib)
    (lib / "plain" / "p.jpg").unlink()
    disk.rmdir()  # the mount point taken away: that disk's files are gone for good
    s = scanned(catalog, lib, "--prune")
    assert (s["pruned"], s["prune_skipped"], s["empty_roots"]) == (2, False, []), s
    # A review finding: a disk mounted again gets another device number. Its files seen
    # under the new one, a folder emptied on it is a folder emptied, not a mount point.
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    try:
        for name in ("album", "other"):
            (disk / name).mkdir()
            (disk / name / "f.jpg").write_bytes(b"\xff\xd8\xff" + name.encode() * 20)
        saved = tmp_path / "saved"
        shutil.copytree(disk, saved)
        scanned(catalog, lib)
        before = disk.stat().st_dev
        # Mounted over the first (which keeps its number): the same disk, mounted again.
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], check=True)
        assert disk.stat().st_dev != before
        shutil.copytree(saved, disk, dirs_exist_ok=True)
        (disk / "album" / "f.jpg").unlink()
        s = scanned(catalog, lib, "--prune")
        assert (s["pruned"], s["prune_skipped"], s["empty_roots"]) == (1, False, []), s
    finally:
        for _ in range(2):
            subprocess.run(["umount", str(disk)], check=False)


def test_an_empty_root_is_named_without_prune_too(tmp_path: Path) -> None:
    """A disk not mounted: its files go missing, and the scan says the folder was empty
    (not only when --prune was asked for)."""
    root = tmp_path / "disk"
    root.mkdir()
    (root / "p.jpg").write_bytes(b"\xff\xd8\xff" + b"x" * 50)
    catalog = tmp_path / "cat.duckdb"
    scanned(catalog, root)
    (root / "p.jpg").unlink()
    res = run_cli("scan", "--no-meta", root, catalog=catalog)
    assert res.rc == 0 and f"{root} is an empty folder (a disk not mounted there?): the files missing keep their " \
        "rows and tags" in res.out, res.out
    s = scanned(catalog, root)
    assert (s["missing"], s["empty_roots"], s["prune_skipped"]) == (0, [str(root)], False)
    # A QA finding: a folder whose name is not UTF-8 was named with U+FFFD, not `\xNN`.
    odd = tmp_path / os.fsdecode(b"disk\xfe")
    odd.mkdir()
    res = run_cli("scan", "--no-meta", odd, catalog=catalog)
    assert res.rc == 0 and f"{tmp_path}/disk\\xfe is an empty folder" in res.out, res.out
    # And a thumbnail size out of range is a usage error with --no-meta too.
    res = run_cli("scan", "--no-meta", root, "--thumb-size", "5", catalog=catalog)
    assert res.rc == 2 and "16 to 2048" in res.err, res.err


def test_the_catalogs_own_files_named_as_roots_are_left_out(tmp_path: Path) -> None:
    """`scan ~/Media/*` with the catalog in ~/Media names the catalog, its thumbnails and
    its search index as roots: they are left out, as a scan of ~/Media leaves them, and
    never become rows (a dedupe would link the index's files)."""
    lib = tmp_path / "Media"
    (lib / "Photos").mkdir(parents=True)
    (lib / "Photos" / "a.jpg").write_bytes(b"\xff\xd8\xff" + b"a" * 50)
    (lib / "notes.txt").write_text("x")
    catalog = lib / "catalog.duckdb"
    assert run_cli("scan", lib, catalog=catalog).rc == 0  # makes the search index beside it
    assert (lib / "catalog.search").is_dir()
    everything = sorted(lib.iterdir())
    res = run_cli("scan", *everything, "--json", catalog=catalog)
    assert res.rc == 0, res.err
    s = json.loads(res.out)
    assert sorted(s["left_out_roots"]) == sorted(str(p) for p in everything if p.name.startswith("catalog."))
    assert (s["new"], s["missing"]) == (0, 0)
    res = run_cli("scan", *everything, catalog=catalog)
    assert "left out " in res.out and "the catalog's own" in res.out, res.out
    assert sorted(r["path"] for r in rows(catalog, "SELECT path FROM files")) == [
        str(lib / "Photos" / "a.jpg"), str(lib / "notes.txt")]
    for own in (catalog, lib / "catalog.search" / "meta.json"):  # nothing else to scan: refused
        res = run_cli("scan", own, catalog=catalog)
        assert res.rc == 2
        assert_one_line_error(res.err, "is the catalog's own")


def test_a_file_written_to_or_touched_then_moved_keeps_its_row_by_its_birth_time(tmp_path: Path) -> None:
    """QA: an empty file touched then renamed lost its media_id and tags (no content pairs
    an empty file, and its mtime had changed); so did any file written to in place and
    then renamed. The same inode born at the same instant is the same file."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "empty.jpg").write_bytes(b"")
    (lib / "edited.jpg").write_bytes(b"\xff\xd8\xff before")
    (lib / "other.jpg").write_bytes(b"\xff\xd8\xff other")
    catalog = tmp_path / "c.duckdb"
    assert run_cli("scan", "--no-meta", lib, catalog=catalog).rc == 0
    if rows(catalog, "SELECT count(*) AS n FROM files WHERE btime_ns IS NULL")[0]["n"]:
        pytest.skip("this file system keeps no birth times")
    before = {r["name"]: r["media_id"] for r in rows(catalog, "SELECT name, media_id::VARCHAR AS media_id FROM files")}
    assert run_cli("tag", "add", "keep", lib / "empty.jpg", lib / "edited.jpg", catalog=catalog).rc == 0
    time.sleep(0.02)
    os.utime(lib / "empty.jpg")
    with open(lib / "edited.jpg", "r+b") as f:  # in place: the same inode
        f.write(b"\xff\xd8\xff after, and longer")
    os.rename(lib / "empty.jpg", lib / "empty2.jpg")
    os.rename(lib / "edited.jpg", lib / "edited2.jpg")
    # A new file on a freed inode number is not the old one, whatever its size and mtime.
    st = (lib / "other.jpg").stat()
    (lib / "other.jpg").unlink()
    (lib / "new.jpg").write_bytes(b"\xff\xd8\xff OTHER")  # `cp -p` of another file: same size and mtime
    os.utime(lib / "new.jpg", ns=(st.st_atime_ns, st.st_mtime_ns))
    res = run_cli("scan", "--no-meta", "--json", lib, catalog=catalog)
    assert res.rc == 0, res.err
    s = json.loads(res.out)
    assert (s["moved"], s["changed"], s["missing"], s["new"]) == (1, 1, 1, 1), s  # edited2.jpg: changed
    got = {r["name"]: r for r in rows(catalog, "SELECT name, media_id::VARCHAR AS media_id, blake3, status FROM files")}
    assert got["empty2.jpg"]["media_id"] == before["empty.jpg"] and got["edited2.jpg"]["media_id"] == before["edited.jpg"]
    assert got["edited2.jpg"]["blake3"] == blake3.blake3(b"\xff\xd8\xff after, and longer").hexdigest()
    assert got["new.jpg"]["media_id"] != before["other.jpg"]
    assert sorted(r["name"] for r in rows(catalog, "SELECT f.name FROM tags JOIN files f USING (media_id)")) == [
        "edited2.jpg", "empty2.jpg"]


def test_a_prune_that_keeps_rows_says_how_many_and_why(tmp_path: Path) -> None:
    """A row whose file was replaced by a link is kept by every prune (an -L scan may find
    it behind the link): `--prune` said nothing of it ("pruned 0")."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a.jpg").write_bytes(b"\xff\xd8\xff a")
    (lib / "b.jpg").write_bytes(b"\xff\xd8\xff b")
    catalog = tmp_path / "c.duckdb"
    assert run_cli("scan", "--no-meta", lib, catalog=catalog).rc == 0
    (lib / "a.jpg").rename(tmp_path / "a.jpg")
    os.symlink(tmp_path / "a.jpg", lib / "a.jpg")
    (lib / "b.jpg").unlink()
    for pruned in (1, 0):
        s = json.loads(run_cli("scan", "--no-meta", "--json", "--prune", lib, catalog=catalog).out)
        assert (s["pruned"], s["prune_kept"], s["prune_skipped"]) == (pruned, 1, False), s
    res = run_cli("scan", "--no-meta", "--prune", lib, catalog=catalog)
    assert "--prune kept 1 missing row: a file may be where this scan did not look (behind a link" in res.out, res.out


def test_the_catalog_under_another_name_is_left_out_and_a_looping_catalog_link_is_named(tmp_path: Path) -> None:
    """QA: a hard link to the catalog in the tree (or a symbolic one, with -L) became a
    row, read on every scan as it changed; a catalog path that is a loop of links was an
    internal error (exit 1), and a link into a loop was said to lead to nothing there."""
    lib = tmp_path / "lib"
    (lib / "photos").mkdir(parents=True)
    (lib / "photos" / "p.jpg").write_bytes(b"\xff\xd8\xff" + b"p" * 50)
    catalog = lib / "cat.duckdb"
    assert run_cli("scan", lib, "--no-meta", catalog=catalog).rc == 0
    os.link(catalog, lib / "photos" / "hard.duckdb")
    os.symlink("../cat.duckdb", lib / "photos" / "soft.duckdb")
    for args in ((), ("-L",)):
        res = run_cli("scan", lib, "--no-meta", "--json", *args, catalog=catalog)
        assert res.rc == 0, res.err
        s = json.loads(res.out)
        assert (s["files_seen"], s["new"], s["unstable"]) == (1, 0, 0), s
    assert [r["name"] for r in rows(catalog, "SELECT name FROM files")] == ["p.jpg"]
    os.symlink("loop-b", tmp_path / "loop-a")
    os.symlink("loop-a", tmp_path / "loop-b")
    for cat, args in ((tmp_path / "loop-a", ("scan", lib)), (tmp_path / "loop-a", ("stats",)),
                      (tmp_path / "loop-a" / "c.duckdb", ("scan", lib))):
        res = run_cli(*args, catalog=cat)
        assert res.rc == 3, (args, res.rc, res.err)
        assert_one_line_error(res.err, f"no catalog at {cat}", "is a link to loop-b, which leads round in a loop")


def test_a_library_scan_leaves_out_the_catalog_below_its_root(tmp_path: Path) -> None:
    """A review finding: `scan()` called without a walk (the library's own use) walked
    without the catalog's path, and catalogued the catalog file and its log as media."""
    lib = tmp_path / "Media"
    lib.mkdir()
    (lib / "a.jpg").write_bytes(b"\xff\xd8\xff" + b"a" * 50)
    catalog = lib / "catalog.duckdb"
    for _ in range(2):  # made by the first, known to the second
        s = do_scan(catalog, lib)
        assert s.files_seen == 1, s
    assert [r["name"] for r in rows(catalog, "SELECT name FROM files")] == ["a.jpg"]


@pytest.mark.parametrize("hashed", [True, False])
def test_a_gone_file_back_under_a_new_name_keeps_its_id_when_a_stranger_took_its_old_one(tmp_path: Path,
                                                                                          hashed: bool) -> None:
    """The gone file came back as q.jpg while another file was saved as p.jpg: both were new,
    and the gone file's tags stayed on a missing row for --prune to delete."""
    root, away = tmp_path / "lib", tmp_path / "away"
    root.mkdir()
    away.mkdir()
    (root / "p.jpg").write_bytes(b"\xff\xd8\xff" + b"X" * 500)
    catalog = tmp_path / "cat.duckdb"
    do_scan(catalog, root, hash=hashed)
    assert run_cli("tag", "add", "keep", root / "p.jpg", catalog=catalog).rc == 0
    (gone,) = rows(catalog, "SELECT media_id FROM files")
    (root / "p.jpg").rename(away / "p.jpg")
    assert do_scan(catalog, root, hash=hashed).missing == 1
    (away / "p.jpg").rename(root / "q.jpg")  # its inode, size and mtime
    (root / "p.jpg").write_bytes(b"\xff\xd8\xff" + b"Y" * 700)  # a stranger under its old name
    s = do_scan(catalog, root, hash=hashed)
    assert (s.moved, s.new, s.revived, s.missing) == (1, 1, 0, 0)
    got = {r["name"]: r for r in rows(catalog, "SELECT name, media_id, status FROM files")}
    assert (got["q.jpg"]["media_id"], got["q.jpg"]["status"]) == (gone["media_id"], "present")
    assert got["p.jpg"]["media_id"] != gone["media_id"] and len(got) == 2
    assert rows(catalog, "SELECT f.name FROM tags t JOIN files f USING (media_id)") == [{"name": "q.jpg"}]


def test_a_copy_put_back_that_was_still_being_written_revives_its_row_once_read_whole(tmp_path: Path) -> None:
    """A backup copy caught mid-copy by a scan (unstable) got a new id for good, and the gone
    row kept the tags for --prune to delete. Now it has no row until a scan reads it whole,
    which finds the gone file's bytes and revives its row."""
    import threading

    from test_unstable import MIB, _keep_writing

    root, backup = tmp_path / "lib", tmp_path / "backup.mov"
    root.mkdir()
    data = os.urandom(MIB) * 256
    video = root / "v.mov"
    video.write_bytes(data)
    catalog = tmp_path / "cat.duckdb"
    do_scan(catalog, root)
    assert run_cli("tag", "add", "keep", video, catalog=catalog).rc == 0
    (gone,) = rows(catalog, "SELECT media_id FROM files")
    backup.write_bytes(data)  # made while the original holds its inode: another one
    video.unlink()
    assert do_scan(catalog, root).missing == 1
    backup.rename(video)  # the same bytes: being written to as the scan reads it
    stop = threading.Event()
    writer = threading.Thread(target=_keep_writing, args=(video, stop))
    writer.start()
    try:
        s = do_scan(catalog, root)
    finally:
        stop.set()
        writer.join()
    assert (s.unstable, s.new, s.revived, s.changed) == (1, 0, 0, 0)
    assert rows(catalog, "SELECT status, media_id FROM files") == [{"status": "missing",
                                                                   "media_id": gone["media_id"]}]
    with open(video, "r+b") as f:  # the copy done: the gone file's bytes
        f.write(data[:8])
    s = do_scan(catalog, root)
    assert (s.revived, s.new) == (1, 0)
    assert rows(catalog, "SELECT f.status, f.media_id, t.tag FROM files f JOIN tags t USING (media_id)") == [
        {"status": "present", "media_id": gone["media_id"], "tag": "keep"}]


def test_identical_copies_named_alike_but_for_undecodable_bytes_keep_their_own_tags(tmp_path: Path) -> None:
    """Three copies of one content whose names differ only in bytes that are not UTF-8 (and
    one real U+FFFD) show alike; copied to another disk (a tmpfs, which lists a folder in
    another order than ext4) and deleted, they were paired by the shown path, in listing
    order, and swapped tags."""
    import subprocess

    disk, usb = tmp_path / "disk", tmp_path / "usb"
    disk.mkdir()
    usb.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(usb)], capture_output=True)
    assert mounted.returncode == 0, f"mounting a tmpfs needs root: {mounted.stderr!r}"
    try:
        names = [b"a\xff.jpg", b"a\xfe.jpg", "a\ufffd.jpg".encode()]
        for n in names:
            write_bytes_path(os.fsencode(disk) + b"/" + n, b"same bytes" * 50)
        catalog = tmp_path / "cat.duckdb"
        scanned(catalog, disk, usb)
        for i, n in enumerate(names):
            assert run_cli("tag", "add", f"t{i}", os.fsencode(disk) + b"/" + n, catalog=catalog).rc == 0
        for n in names:
            shutil.copy(os.fsencode(disk) + b"/" + n, os.fsencode(usb) + b"/" + n)
            os.unlink(os.fsencode(disk) + b"/" + n)
        assert scanned(catalog, disk, usb)["moved"] == 3
        got = {bytes(r["path_bytes"]).rsplit(b"/", 1)[1]: r["tags"] for r in rows(
            catalog, "SELECT path_bytes, (SELECT string_agg(tag, ',') FROM tags t WHERE t.media_id = f.media_id) "
                     "AS tags FROM files f WHERE status = 'present'")}
        assert got == {n: f"t{i}" for i, n in enumerate(names)}
    finally:
        subprocess.run(["umount", str(usb)], check=False)


def test_identical_copies_with_undecodable_names_moved_to_other_folders_keep_their_own_tags(tmp_path: Path) -> None:
    """Two copies of one content whose names differ only in bytes that are not UTF-8 (so
    they show alike), each copied into a folder of its own and deleted: the pass by name
    went by the shown name, so the two paired in path order, which the folders reversed,
    and swapped tags. Also a name that is UTF-8 in a folder that is not, moved to one that
    is, pairs by its name first."""
    lib = tmp_path / "lib"
    lib.mkdir()
    root = os.fsencode(lib)
    names = [b"a\xff.jpg", b"a\xfe.jpg"]
    for n in names:
        write_bytes_path(root + b"/" + n, b"same bytes" * 50)
    os.mkdir(root + b"/\xf0old")
    for n in (b"b.jpg", b"c.jpg"):
        write_bytes_path(root + b"/\xf0old/" + n, b"other bytes" * 50)
    catalog = tmp_path / "cat.duckdb"
    scanned(catalog, lib)
    tagged = [*(root + b"/" + n for n in names), root + b"/\xf0old/b.jpg", root + b"/\xf0old/c.jpg"]
    for i, path in enumerate(tagged):
        assert run_cli("tag", "add", f"t{i}", path, catalog=catalog).rc == 0
    moves = {names[0]: b"y", names[1]: b"z"}
    for n, folder in moves.items():
        os.makedirs(root + b"/" + folder, exist_ok=True)
        shutil.copy(root + b"/" + n, root + b"/" + folder + b"/" + n)
        os.unlink(root + b"/" + n)
    for n, folder in ((b"b.jpg", b"q"), (b"c.jpg", b"p")):  # paired in path order, they would swap
        os.mkdir(root + b"/" + folder)
        shutil.copy(root + b"/\xf0old/" + n, root + b"/" + folder + b"/" + n)
    shutil.rmtree(root + b"/\xf0old")
    assert scanned(catalog, lib)["moved"] == 4
    got = {bytes(r["path_bytes"])[len(root):]: r["tags"] for r in rows(
        catalog, "SELECT path_bytes, (SELECT string_agg(tag, ',') FROM tags t WHERE t.media_id = f.media_id) "
                 "AS tags FROM files f WHERE status = 'present'")}
    assert got == {b"/y/a\xff.jpg": "t0", b"/z/a\xfe.jpg": "t1", b"/q/b.jpg": "t2", b"/p/c.jpg": "t3"}


def _moved_to_another_disk(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """(disk a, disk b, catalog, photo): a tagged photo on disk a, catalogued, in the
    search index and in a collection; then moved to disk b as `mv` does across file
    systems (a copy, then the original deleted), and disk a scanned: its row is missing."""
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "2019").mkdir(parents=True)
    b.mkdir()
    photo = a / "2019" / "p.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0 moved across disks" * 60)
    (a / "2019" / "stays.jpg").write_bytes(b"\xff\xd8\xff\xe0 stays" * 60)
    catalog = tmp_path / "cat.duckdb"
    scanned(catalog, a)
    for args in (("tag", "add", "family", photo), ("collection", "create", "C"), ("collection", "add", "C", photo)):
        assert run_cli(*args, catalog=catalog).rc == 0
    time.sleep(0.01)
    shutil.copy2(photo, b / "p.jpg")
    photo.unlink()
    assert scanned(catalog, a)["missing"] == 1
    return a, b, catalog, photo


def test_a_file_renamed_keeps_the_kind_its_bytes_told(tmp_path: Path) -> None:
    """A scan judges a file it does not read by its name: an MP3 renamed `song.jpg` became
    an image/jpeg (gone from `search kind:audio`, from `dupes --kind audio`), a WebP
    renamed `.mp4` a video. A renamed file keeps what its bytes told when it was read; a
    file never read (a `--no-hash` scan) is judged by its new name."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "song.mp3").write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" * 400)
    (lib / "pic.webp").write_bytes(b"RIFF\x00\x10\x00\x00WEBPVP8 " + b"\x00" * 600)
    (lib / "notes.bin").write_bytes(b"\x00\x01" * 300)
    catalog = tmp_path / "cat.duckdb"
    scanned(catalog, lib)
    kinds = "SELECT name, kind, mime FROM files ORDER BY name"
    before = {r["name"]: (r["kind"], r["mime"]) for r in rows(catalog, kinds)}
    assert before["song.mp3"][0] == "audio" and before["pic.webp"] == ("image", "image/webp"), before
    (lib / "song.mp3").rename(lib / "song.jpg")
    (lib / "pic.webp").rename(lib / "pic.mp4")
    s = scanned(catalog, lib)
    assert (s["moved"], s["new"]) == (2, 0), s
    after = {r["name"]: (r["kind"], r["mime"]) for r in rows(catalog, kinds)}
    assert after == {"song.jpg": before["song.mp3"], "pic.mp4": before["pic.webp"], "notes.bin": before["notes.bin"]}
    unread = tmp_path / "unread.duckdb"
    scanned(unread, lib, "--no-hash")
    (lib / "pic.mp4").rename(lib / "pic.png")
    scanned(unread, lib, "--no-hash")
    assert {r["name"]: r["kind"] for r in rows(unread, kinds)}["pic.png"] == "image"


def test_the_previous_state_stream_closes_quietly_after_its_catalog(tmp_path: Path) -> None:
    """A Ctrl-C during the walk could close the catalog before the stream of known rows
    was let go: its cleanup then met a closed connection, and Python printed "Exception
    ignored in: <generator object previous_state>" with a traceback under the message."""
    from mediaforge import open_catalog
    from mediaforge.catalog.writes import previous_state

    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "a.jpg").write_bytes(b"a" * 10)
    catalog = tmp_path / "cat.duckdb"
    scanned(catalog, tmp_path / "lib")
    cat = open_catalog(catalog)
    with previous_state(cat) as stream:
        assert stream.read_next_batch().num_rows == 1
        cat.close()


def test_a_previous_state_stream_left_half_read_lets_its_connection_go_on(tmp_path: Path) -> None:
    """An error while the known rows streamed in (the core refusing a row, a damaged
    block) left DuckDB's result open: the next statement on the catalog's connection, the
    one recording the scan as failed, met "connection has an open result", and the
    database stayed open past the catalog's close, its log never folded in."""
    from mediaforge import open_catalog
    from mediaforge.catalog.writes import previous_state

    lib = tmp_path / "lib"
    for d in range(9):
        (lib / str(d)).mkdir(parents=True)
        for i in range(1000):
            (lib / str(d) / f"{i}.jpg").write_bytes(b"")
    catalog = tmp_path / "cat.duckdb"
    scanned(catalog, lib, "--no-hash")
    cat = open_catalog(catalog)
    with pytest.raises(RuntimeError), previous_state(cat) as stream:
        assert stream.read_next_batch().num_rows < 9000
        raise RuntimeError("the core refused a row")
    assert cat.con.execute("SELECT count(*) FROM files").fetchone() == (9000,)
    cat.close()


def test_an_error_while_pairing_rows_gone_before_is_the_one_reported(tmp_path: Path) -> None:
    """A DuckDB error inside the pairing (a damaged block: exit 5) aborts the transaction;
    the cleanup after it then failed too, and its "transaction is aborted" was what the
    user saw (exit 7, a failed write). The first error is the one that comes out."""
    import duckdb

    from mediaforge import open_catalog
    from mediaforge.catalog.writes import _pair_gone_before

    _a, _b, catalog, _photo = _moved_to_another_disk(tmp_path)
    with open_catalog(catalog) as cat:
        con = cat.con
        assert con.execute("SELECT count(*) FROM meta WHERE starts_with(key, 'disks_seen:')").fetchall() == [(1,)]
        con.execute("BEGIN")
        con.execute("CREATE TEMP TABLE mf_moves (old_id UUID, new_id UUID, old_first_seen TIMESTAMP, "
                    "old_first_scan BIGINT)")
        # `mf_first_hashed` left unregistered: the first sights' query fails, as a damaged block would.
        with pytest.raises(duckdb.Error) as got:
            _pair_gone_before(con, 99)
        con.execute("ROLLBACK")
    assert "mf_first_hashed" in str(got.value) and not isinstance(got.value, duckdb.TransactionException), got.value


@pytest.mark.parametrize("hash_first", [True, False])
def test_a_file_moved_to_another_disk_scanned_after_keeps_its_id(tmp_path: Path, hash_first: bool) -> None:
    """A copy found after its original went missing (disk a scanned, then disk b; or the
    copy found by a scan without hashing and read later) was a new file, and the tags
    stayed on the missing row for --prune to delete; the reverse order kept them."""
    _a, b, catalog, photo = _moved_to_another_disk(tmp_path)
    (old,) = rows(catalog, "SELECT media_id, first_seen FROM files WHERE status = 'missing'")
    # Disk b another file system where the machine lets a test mount one: as `mv` does.
    disk_b = tmp_path / "disk_b"
    disk_b.mkdir()
    if _mount_tmpfs(disk_b):
        try:
            _moved_to_another_disk_checked(catalog, old, b, disk_b, hash_first)
        finally:
            subprocess.run(["umount", str(disk_b)], check=True)
    else:
        _moved_to_another_disk_checked(catalog, old, b, b, hash_first)


def _moved_to_another_disk_checked(catalog: Path, old: dict, b: Path, disk: Path, hash_first: bool) -> None:
    if disk != b:
        shutil.move(b / "p.jpg", disk / "p.jpg")
        b = disk
    if not hash_first:
        s = scanned(catalog, b, "--no-hash")
        assert (s["new"], s["moved"]) == (1, 0)  # nothing to match it by yet
        assert run_cli("tag", "add", "mine", b / "p.jpg", catalog=catalog).rc == 0
    # Keys no scan wrote, beside the real record (`disks_seen:2`, say): a damaged one that
    # reads as the same scan (`02`) did not override it, and the next scan drops them.
    from mediaforge import open_catalog

    with open_catalog(catalog) as cat:
        ((key,),) = cat.con.execute("SELECT key FROM meta WHERE starts_with(key, 'disks_seen:')").fetchall()
        gone = key.split(":")[1]
        for hand in (f"0{gone}", f" {gone}", f"+{gone}", f"{gone} ", f"{gone}.0"):
            cat.con.execute("INSERT INTO meta VALUES (?, 'oops')", [f"disks_seen:{hand}"])
    s = scanned(catalog, b)
    assert (s["moved"], s["new"], s["missing"]) == (1, 0, 0), s
    got = {r["name"]: r for r in rows(catalog, "SELECT name, media_id, status, first_seen, path FROM files")}
    assert got["p.jpg"]["path"] == str(b / "p.jpg") and got["p.jpg"]["status"] == "present"
    assert (got["p.jpg"]["media_id"], got["p.jpg"]["first_seen"]) == (old["media_id"], old["first_seen"])
    assert len(got) == 2
    tags = sorted(r["tag"] for r in rows(catalog, "SELECT tag FROM tags WHERE media_id = ?", [old["media_id"]]))
    assert tags == (["family"] if hash_first else ["family", "mine"])
    assert rows(catalog, "SELECT media_id FROM collection_items") == [{"media_id": old["media_id"]}]
    assert rows(catalog, "SELECT count(*) AS n FROM tags") == [{"n": len(tags)}]
    for word in ("family", "mine") if not hash_first else ("family",):
        found = json.loads(run_cli("search", word, "-f", "json", catalog=catalog).out)
        assert [(r["path"], r["media_id"]) for r in found] == [(str(b / "p.jpg"), str(old["media_id"]))], word
    # The record of what the scan that found it gone saw is dropped with the last row it vouched for.
    assert rows(catalog, "SELECT key FROM meta WHERE starts_with(key, 'disks_seen:')") == []
    s = scanned(catalog, b)  # and nothing moves again
    assert (s["moved"], s["new"], s["unchanged"]) == (0, 0, 1)


def test_a_backup_made_before_the_original_was_last_seen_does_not_take_its_id(tmp_path: Path) -> None:
    """A copy that was already there when the original was last seen is a copy beside it
    (a backup), not the original moved: the missing row keeps its id and tags."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "p.jpg").write_bytes(b"\xff\xd8\xff\xe0 backed up" * 60)
    catalog = tmp_path / "cat.duckdb"
    shutil.copy2(a / "p.jpg", b / "p.jpg")
    scanned(catalog, a)
    assert run_cli("tag", "add", "family", a / "p.jpg", catalog=catalog).rc == 0
    (a / "p.jpg").unlink()
    assert scanned(catalog, a)["missing"] == 1
    s = scanned(catalog, b)
    assert (s["moved"], s["new"]) == (0, 1)
    assert _tags_by_status(catalog) == {"missing": ["family"], "present": []}


def _tags_by_status(catalog: Path) -> dict[str, list[str]]:
    return {r["status"]: sorted(r["tags"] or []) for r in rows(
        catalog, "SELECT f.status, list(t.tag) FILTER (t.tag IS NOT NULL) AS tags FROM files f "
                 "LEFT JOIN tags t USING (media_id) GROUP BY f.status")}


def _tagged_then_copied(catalog: Path, photo: Path, tag: str, copy: Path) -> None:
    """Scan `photo`'s folder into `catalog`, tag `photo`, then copy it to `copy` (made
    after the scan saw the photo)."""
    scanned(catalog, photo.parent)
    assert run_cli("tag", "add", tag, photo, catalog=catalog).rc == 0
    time.sleep(0.01)
    shutil.copy2(photo, copy)


def _mount_tmpfs(folder: Path) -> bool:
    """Mount a tmpfs on `folder` (as root, where the machine allows it)."""
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "mf-test", str(folder)],
                          capture_output=True).returncode == 0


def test_a_backup_does_not_take_the_ids_of_a_disk_that_is_not_mounted(tmp_path: Path) -> None:
    """Disk a scanned while not mounted (its rows all missing), then its backup, made
    after a's last scan: the backup's files are copies of a disk that is away, not
    moves; a's rows keep their ids and tags for when it is back."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    mounted = _mount_tmpfs(a)
    try:
        (a / "p.jpg").write_bytes(b"\xff\xd8\xff\xe0 on disk a" * 60)
        catalog = tmp_path / "cat.duckdb"
        _tagged_then_copied(catalog, a / "p.jpg", "family", b / "p.jpg")
    finally:
        if mounted:
            subprocess.run(["umount", str(a)], check=True)
    if not mounted:  # no mount here: the disk's folder put aside, its rows on a device not there
        a.rename(tmp_path / "away")
        a.mkdir()
        from mediaforge import open_catalog

        with open_catalog(catalog) as cat:
            cat.con.execute("UPDATE files SET dev = dev + 7")
    assert scanned(catalog, a)["missing"] == 1  # an empty mount point
    s = scanned(catalog, b)
    assert (s["moved"], s["new"]) == (0, 1)
    assert _tags_by_status(catalog) == {"missing": ["family"], "present": []}


@pytest.mark.parametrize("backup_seen", ["with the disk away", "before the disk went"])
def test_a_backup_seen_with_a_disk_that_is_not_mounted_is_a_copy(tmp_path: Path, backup_seen: str) -> None:
    """A QA finding: the disk's folder and the backup's scanned together, the disk not
    mounted, the backup took the id and tags of the disk's file ("moved 1"), whose row
    went; back, the disk's file was new and untagged. Also when an earlier scan found the
    backup. Content pairs within a scan need the original's disk seen, as later ones do."""
    disk, home = tmp_path / "disk", tmp_path / "home"
    disk.mkdir()
    home.mkdir()
    content = {name: b"\xff\xd8\xff\xe0 " + name.encode() * 300 for name in ("p.jpg", "q.jpg")}
    mounted = _mount_tmpfs(disk)
    catalog = tmp_path / "cat.duckdb"

    def plug() -> None:  # the disk's files as they were (a tmpfs keeps nothing once unmounted)
        if mounted:
            assert _mount_tmpfs(disk)
        for name, data in content.items():
            (disk / name).write_bytes(data)
            os.utime(disk / name, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))

    def unplug() -> None:
        if mounted:
            subprocess.run(["umount", str(disk)], check=True)
            return
        for name in content:  # no mounts here: the files away, their rows on a device not there
            (disk / name).unlink()
        from mediaforge import open_catalog

        with open_catalog(catalog) as cat:
            cat.con.execute("UPDATE files SET dev = dev + 7 WHERE starts_with(path, ?)", [f"{disk}/"])

    if mounted:
        subprocess.run(["umount", str(disk)], check=True)
    try:
        plug()
        assert scanned(catalog, disk, home)["new"] == 2
        assert run_cli("tag", "add", "trip", disk / "p.jpg", catalog=catalog).rc == 0
        time.sleep(0.01)
        shutil.copy2(disk / "p.jpg", home / "p backup.jpg")
        if backup_seen == "before the disk went":
            assert scanned(catalog, home)["new"] == 1
        unplug()
        s = scanned(catalog, disk, home)
        assert (s["moved"], s["missing"]) == (0, 2), s
        assert _tags_by_status(catalog) == {"missing": ["trip"], "present": []}
        if mounted:  # plugged in again: its files come back with their ids and tags
            plug()
            s = scanned(catalog, disk, home)
            assert (s["new"], s["revived"]) == (0, 2), s
            assert rows(catalog, "SELECT f.path FROM files f JOIN tags USING (media_id)") == [
                {"path": str(disk / "p.jpg")}]
            # A file moved to another disk, seen by one scan, keeps its id: its disk was
            # seen (q stayed there).
            shutil.move(disk / "p.jpg", home / "p.jpg")
            s = scanned(catalog, disk, home)
            assert (s["moved"], s["new"], s["missing"]) == (1, 0, 0), s
            assert rows(catalog, "SELECT f.path FROM files f JOIN tags USING (media_id)") == [
                {"path": str(home / "p.jpg")}]
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], capture_output=True)


def test_a_file_moved_off_an_overlay_keeps_its_id(tmp_path: Path) -> None:
    """A review finding: an overlay whose layers are on other file systems (no `xino`)
    shows its folders on one device and its files on another, so the folder's device did
    not vouch for a file moved off it, and the move was a new file. Its other files, seen
    unchanged, do."""
    lower, upper, merged, home = (tmp_path / d for d in ("lower", "upper", "merged", "home"))
    for d in (lower, upper, merged, home):
        d.mkdir()
    for name in ("p.jpg", "q.jpg"):
        (lower / name).write_bytes(b"\xff\xd8\xff\xe0 " + name.encode() * 300)
    r = subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(upper)], capture_output=True, text=True)
    assert r.returncode == 0, f"mounting a tmpfs needs root: {r.stderr}"
    try:
        (upper / "up").mkdir()
        (upper / "wk").mkdir()
        r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                            f"lowerdir={lower},upperdir={upper / 'up'},workdir={upper / 'wk'},xino=off", str(merged)],
                           capture_output=True, text=True)
        assert r.returncode == 0, f"mounting an overlay needs root: {r.stderr}"
        try:
            assert os.stat(merged).st_dev != os.stat(merged / "p.jpg").st_dev  # as described
            catalog = tmp_path / "cat.duckdb"
            assert scanned(catalog, merged, home)["new"] == 2
            assert run_cli("tag", "add", "trip", merged / "p.jpg", catalog=catalog).rc == 0
            shutil.move(merged / "p.jpg", home / "p.jpg")
            s = scanned(catalog, merged, home)
            assert (s["moved"], s["new"], s["missing"]) == (1, 0, 0), s
            assert rows(catalog, "SELECT f.path FROM files f JOIN tags USING (media_id)") == [
                {"path": str(home / "p.jpg")}]
        finally:
            subprocess.run(["umount", str(merged)], capture_output=True)
    finally:
        subprocess.run(["umount", str(upper)], capture_output=True)


def _two_rows_gone_at_one_path(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(root, backup, catalog): root/a.jpg and root/b.jpg, copied to the backup folder,
    catalogued and tagged `tag-a.jpg` and `tag-b.jpg`; then b renamed to a.jpg, scanned,
    deleted, scanned: two gone rows at root/a.jpg."""
    root, bk = tmp_path / "r", tmp_path / "bk"
    root.mkdir()
    bk.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (root / name).write_bytes(b"\xff\xd8\xff\xe0 " + name.encode() * 300)
        shutil.copy2(root / name, bk / name)
    catalog = tmp_path / "cat.duckdb"
    scanned(catalog, root)
    for name in ("a.jpg", "b.jpg"):
        assert run_cli("tag", "add", f"tag-{name}", root / name, catalog=catalog).rc == 0
    time.sleep(0.01)
    (root / "b.jpg").rename(root / "a.jpg")
    scanned(catalog, root)
    (root / "a.jpg").unlink()
    scanned(catalog, root)
    assert rows(catalog, "SELECT count(*) AS n FROM files WHERE status = 'missing' AND name = 'a.jpg'") == [{"n": 2}]
    return root, bk, catalog


def test_a_copy_put_back_takes_the_row_whose_bytes_it_holds_of_several_gone_at_its_path(tmp_path: Path) -> None:
    """A QA finding: a.jpg deleted, b.jpg renamed to a.jpg and deleted too (two gone rows
    at one path), then b's bytes restored from a backup as a.jpg: a new file, its tags
    stranded, for the engine compared it with a's row alone."""
    root, bk, catalog = _two_rows_gone_at_one_path(tmp_path)
    shutil.copy2(bk / "b.jpg", root / "a.jpg")
    s = scanned(catalog, root)
    assert (s["new"], s["revived"], s["moved"]) == (0, 1, 0), s
    assert rows(catalog, "SELECT f.status, t.tag FROM files f JOIN tags t USING (media_id) ORDER BY t.tag") == [
        {"status": "missing", "tag": "tag-a.jpg"}, {"status": "present", "tag": "tag-b.jpg"}]
    assert rows(catalog, "SELECT revived_files FROM scans ORDER BY scan_id DESC LIMIT 1") == [{"revived_files": 1}]


def test_a_copy_put_back_then_gone_again_before_a_scan_completed_stays_gone(tmp_path: Path) -> None:
    """A review finding: a copy put back at a path two gone rows share, found by a scan cut
    short, then deleted before the next scan: that scan took the gone row back for it
    (revived) and left it present at a path that holds nothing."""
    from mediaforge import open_catalog
    from mediaforge.scan import ScanConfig, scan

    root, bk, catalog = _two_rows_gone_at_one_path(tmp_path)
    shutil.copy2(bk / "b.jpg", root / "a.jpg")

    def cut_short(p) -> None:  # noqa: ANN001 - the copy's row written, nothing paired
        if p.phase == "write":
            raise KeyboardInterrupt

    with open_catalog(catalog) as cat, pytest.raises(KeyboardInterrupt):
        scan(cat, ScanConfig(roots=(str(root),), threads=2), on_progress=cut_short)
    (root / "a.jpg").unlink()
    s = scanned(catalog, root)
    assert (s["revived"], s["moved"]) == (0, 0), s
    assert rows(catalog, "SELECT count(*) AS n FROM files WHERE status = 'present'") == [{"n": 0}]
    assert rows(catalog, "SELECT f.status FROM files f JOIN tags t USING (media_id)") == [{"status": "missing"}] * 2


def test_a_gone_file_back_with_its_change_time_moved_is_read_again(tmp_path: Path) -> None:
    """A file found gone (moved out of the library), rewritten meanwhile with its size and
    mtime put back (`exiftool -P`), then moved back: it came back with its old digest,
    for only a present file's change time was looked at. The same held for a copy put
    back within a second of the gone file's last sighting, on the gone file's reused inode
    number with its size and mtime: it took that row, digest, tags and all."""
    lib, away = tmp_path / "lib", tmp_path / "away"
    lib.mkdir()
    away.mkdir()
    first = b"\xff\xd8\xff\xe0 first " * 200
    (lib / "p.jpg").write_bytes(first)
    catalog = tmp_path / "cat.duckdb"
    scanned(catalog, lib)
    (lib / "p.jpg").rename(away / "p.jpg")
    assert scanned(catalog, lib)["missing"] == 1
    st = (away / "p.jpg").stat()
    second = b"\xff\xd8\xff\xe0 other " * 200
    assert len(second) == len(first)
    (away / "p.jpg").write_bytes(second)
    os.utime(away / "p.jpg", ns=(st.st_atime_ns, st.st_mtime_ns))
    (away / "p.jpg").rename(lib / "p.jpg")
    s = scanned(catalog, lib)
    assert s["revived"] == 1, s
    assert rows(catalog, "SELECT status, blake3 FROM files") == [
        {"status": "present", "blake3": blake3.blake3(second).hexdigest()}]


@pytest.mark.parametrize(("hashing", "body"), [(False, b"\xff\xd8\xff\xe0 second" * 50), (True, b"")])
def test_a_file_back_at_a_name_two_gone_rows_share_keeps_its_row_where_bytes_cannot_tell(
        tmp_path: Path, hashing: bool, body: bytes) -> None:
    """A review finding: where several gone rows share a path, the bytes of a file back
    there decide which row it is; where they cannot (a scan without hashing, an empty
    file), it became a new file, and its own row and tags stayed gone. Its inode decides."""
    lib, away = tmp_path / "lib", tmp_path / "away"
    lib.mkdir()
    away.mkdir()
    flags = () if hashing else ("--no-hash",)
    catalog = tmp_path / "cat.duckdb"
    (lib / "p.jpg").write_bytes(b"\xff\xd8\xff\xe0 first" * 50)
    scanned(catalog, lib, *flags)
    (lib / "p.jpg").rename(away / "first.jpg")
    assert scanned(catalog, lib, *flags)["missing"] == 1
    time.sleep(1.1)  # made well after the first was last seen: another file
    (lib / "p.jpg").write_bytes(body)
    assert scanned(catalog, lib, *flags)["new"] == 1
    assert run_cli("tag", "add", "second", lib / "p.jpg", catalog=catalog).rc == 0
    (lib / "p.jpg").rename(away / "p.jpg")  # renamed away and back: its change time moves
    assert scanned(catalog, lib, *flags)["missing"] == 1
    (away / "p.jpg").rename(lib / "p.jpg")
    s = scanned(catalog, lib, *flags)
    assert (s["new"], s["revived"]) == (0, 1), s
    assert rows(catalog, "SELECT f.status FROM files f JOIN tags t USING (media_id)") == [{"status": "present"}]


def test_a_gone_file_whose_path_now_holds_a_link_is_not_taken_over(tmp_path: Path) -> None:
    """A file replaced by a link to where it went may be behind the link: an -L scan
    finds it there. A copy elsewhere does not take its row."""
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for d in (a, b, c):
        d.mkdir()
    (a / "p.jpg").write_bytes(b"\xff\xd8\xff\xe0 linked" * 60)
    catalog = tmp_path / "cat.duckdb"
    scanned(catalog, a)
    time.sleep(0.01)
    (a / "p.jpg").rename(c / "p.jpg")
    (a / "p.jpg").symlink_to(c / "p.jpg")
    assert scanned(catalog, a)["missing"] == 1
    shutil.copy2(c / "p.jpg", b / "p.jpg")
    s = scanned(catalog, b)
    assert (s["moved"], s["new"]) == (0, 1)


def _second_name_gone(tmp_path: Path, link: bool, copy_before: bool) -> tuple[Path, Path]:
    """(catalog, exports): lib/x.jpg and a second name of it, y.jpg (a copy, or a hard
    link), catalogued, y tagged, then y deleted and found gone; x copied into exports
    before y's deletion or (a second and more) after its scan."""
    lib, out = tmp_path / "lib", tmp_path / "exports"
    lib.mkdir()
    out.mkdir()
    (lib / "x.jpg").write_bytes(b"\xff\xd8\xff\xe0 one picture" * 60)
    (os.link if link else shutil.copy2)(lib / "x.jpg", lib / "y.jpg")
    catalog = tmp_path / "cat.duckdb"
    scanned(catalog, lib)
    assert run_cli("tag", "add", "onY", lib / "y.jpg", catalog=catalog).rc == 0
    time.sleep(0.01)
    if copy_before:
        shutil.copy2(lib / "x.jpg", out / "x-for-print.jpg")
    (lib / "y.jpg").unlink()
    assert scanned(catalog, lib)["missing"] == 1
    if not copy_before:
        time.sleep(1.2)  # past the second of slack on the time the row was found gone
        shutil.copy2(lib / "x.jpg", out / "x-for-print.jpg")
    return catalog, out


@pytest.mark.parametrize(("link", "copy_before"), [(False, False), (True, True)])
def test_a_copy_of_a_file_that_stayed_does_not_take_over_its_gone_twin(tmp_path: Path, link: bool,
                                                                      copy_before: bool) -> None:
    """y, a copy of x (tagged, say, as rejected), deleted and found gone; later x is
    copied for print: the print copy is a new file, not y back. Or y a hard link of x:
    y's name gone is no move, the file is still there as x, and a copy made of it
    meanwhile is a new file. Either way it gets none of y's tags."""
    catalog, out = _second_name_gone(tmp_path, link, copy_before)
    s = scanned(catalog, out)
    assert (s["moved"], s["new"]) == (0, 1)
    assert _tags_by_status(catalog) == {"missing": ["onY"], "present": []}


def test_another_disk_at_the_mount_point_does_not_let_a_backup_take_the_ids(tmp_path: Path) -> None:
    """Disk a (tagged) and its backup b; a unplugged and another disk put at its mount
    point, and scanned: a's rows go missing. The other disk's device number may be a's
    (USB disks get theirs in the order they are plugged in), so its folder being on
    that device proves nothing: a file of a's, still there, would. (The disks are the
    contents of one folder, one after the other: one device number.)"""
    m, b = tmp_path / "m", tmp_path / "b"
    m.mkdir()
    b.mkdir()
    catalog = tmp_path / "cat.duckdb"
    (m / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0 disk a" * 60)
    _tagged_then_copied(catalog, m / "a.jpg", "from-a", b / "a.jpg")  # the backup
    (m / "a.jpg").rename(tmp_path / "a.jpg")  # disk a unplugged
    (m / "other.jpg").write_bytes(b"\xff\xd8\xff\xe0 another disk" * 60)
    s = scanned(catalog, m)
    assert (s["missing"], s["new"]) == (1, 1)
    s = scanned(catalog, b)
    assert (s["moved"], s["new"]) == (0, 1)
    assert _tags_by_status(catalog) == {"missing": ["from-a"], "present": []}


def test_a_copy_turned_down_gets_no_second_chance(tmp_path: Path) -> None:
    """The rule is applied when a file is first read, once: a copy turned down (here:
    something was at the gone file's path) does not take the row over later, when a
    `--no-hash` scan after a chmod dropped its digest, nor through a new hard link."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "r.jpg").write_bytes(b"\xff\xd8\xff\xe0 gone" * 60)
    (a / "w.jpg").write_bytes(b"\xff\xd8\xff\xe0 stays" * 60)
    catalog = tmp_path / "cat.duckdb"
    _tagged_then_copied(catalog, a / "r.jpg", "onR", b / "p.jpg")
    (a / "r.jpg").unlink()
    assert scanned(catalog, a)["missing"] == 1
    (a / "r.jpg").mkdir()  # something at the old path
    assert (scanned(catalog, b)["moved"]) == 0
    (a / "r.jpg").rmdir()
    os.chmod(b / "p.jpg", 0o600)
    scanned(catalog, b, "--no-hash")
    assert scanned(catalog, b)["moved"] == 0
    os.link(b / "p.jpg", b / "zz.jpg")
    assert scanned(catalog, b, "--no-hash")["moved"] == 0
    assert scanned(catalog, b)["moved"] == 0
    assert _tags_by_status(catalog) == {"missing": ["onR"], "present": []}


@pytest.mark.parametrize("revived_first", [False, True])
def test_a_disk_catalogued_before_put_back_in_place_of_another_is_no_witness(tmp_path: Path,
                                                                             revived_first: bool) -> None:
    """Disk y catalogued at m; then disk x at m (y's rows missing), x's photo tagged and
    backed up to b; x unplugged and y put back at m, scanned: y's rows come back and
    x's photo goes missing. y may have x's device number (USB disks get theirs in the
    order they are plugged in), and its file, found before x's photo was last seen and
    still there, looks like one of x's: but the scan that found the photo gone brought
    y's rows back, so the disk it looked at was not x. The backup is a new file. So too
    when y's file was brought back first by a scan of it alone: it was not seen with x's
    photo. (The disks are the contents of one folder, put aside in turn: one device
    number.)"""
    m, b, aside = tmp_path / "m", tmp_path / "b", tmp_path / "aside"
    for d in (m, b, aside):
        d.mkdir()
    catalog = tmp_path / "cat.duckdb"

    def swap(out: str, back: str | None) -> None:
        (aside / out).mkdir()
        for f in m.iterdir():
            f.rename(aside / out / f.name)
        for f in (aside / back).iterdir() if back else ():
            f.rename(m / f.name)

    (m / "y.jpg").write_bytes(b"\xff\xd8\xff\xe0 disk y" * 60)
    scanned(catalog, m)
    swap("y", None)
    (m / "p.jpg").write_bytes(b"\xff\xd8\xff\xe0 disk x" * 60)
    _tagged_then_copied(catalog, m / "p.jpg", "fromX", b / "p.jpg")
    swap("x", "y")
    if revived_first:
        assert scanned(catalog, m / "y.jpg")["revived"] == 1
    s = scanned(catalog, m)
    assert (s["missing"], s["revived"]) == (1, 0 if revived_first else 1), s
    s = scanned(catalog, b)
    assert (s["moved"], s["new"]) == (0, 1)
    assert _tags_by_status(catalog) == {"missing": ["fromX"], "present": []}


def test_a_move_to_another_disk_whose_scan_was_cut_short_is_paired_by_the_next(tmp_path: Path) -> None:
    """The scan of the disk the file went to was cut short after writing its row, before
    the pairing: the next scan (of any folder) pairs it, once."""
    from mediaforge import ScanConfig, open_catalog, scan

    _a, b, catalog, _photo = _moved_to_another_disk(tmp_path)
    (old,) = rows(catalog, "SELECT media_id FROM files WHERE status = 'missing'")

    def cut_short(p) -> None:  # noqa: ANN001 - as the rows are written, before the moves are paired
        if p.phase == "write":
            raise KeyboardInterrupt

    with open_catalog(catalog) as cat, pytest.raises(KeyboardInterrupt):
        scan(cat, ScanConfig(roots=(str(b),), threads=2), on_progress=cut_short)
    other = tmp_path / "other"
    other.mkdir()
    s = scanned(catalog, other)
    assert s["moved"] == 1
    got = rows(catalog, "SELECT path, media_id FROM files WHERE name = 'p.jpg'")
    assert got == [{"path": str(b / "p.jpg"), "media_id": old["media_id"]}]
    assert sorted(r["tag"] for r in rows(catalog, "SELECT tag FROM tags")) == ["family"]
    assert scanned(catalog, b)["moved"] == 0


def test_a_backup_of_the_copy_dedupe_kept_does_not_take_the_removed_copys_row(tmp_path: Path) -> None:
    """`dedupe` removed one of two copies (to the trash) and the kept one was backed up
    before the next scan: the backup is made inside the removed copy's window, but it
    is a copy of the twin that stayed, not the removed copy moved. It stays a new file,
    and the removed copy's row keeps its id for `dedupe --undo`."""
    r, t = tmp_path / "r", tmp_path / "t"
    r.mkdir()
    t.mkdir()
    (r / "keep.jpg").write_bytes(b"\xff\xd8\xff\xe0 twins" * 60)
    shutil.copy2(r / "keep.jpg", r / "victim.jpg")
    catalog = tmp_path / "cat.duckdb"
    scanned(catalog, r)
    assert run_cli("tag", "add", "fromvictim", r / "victim.jpg", catalog=catalog).rc == 0
    (victim,) = rows(catalog, "SELECT media_id FROM files WHERE name = 'victim.jpg'")
    res = run_cli("dedupe", "--action", "trash", "--apply", "--json", catalog=catalog)
    assert res.rc == 0 and json.loads(res.out)["done"] == 1, res.out + res.err
    assert not (r / "victim.jpg").exists()
    shutil.copy2(r / "keep.jpg", t / "keep-backup.jpg")
    assert scanned(catalog, r)["missing"] == 1
    s = scanned(catalog, t)
    assert (s["moved"], s["new"]) == (0, 1)
    got = {r_["name"]: (r_["media_id"], r_["status"])
           for r_ in rows(catalog, "SELECT name, media_id, status FROM files")}
    assert got["victim.jpg"] == (victim["media_id"], "missing") and got["keep-backup.jpg"][0] != victim["media_id"]


def test_a_completed_scan_is_never_rewritten_as_interrupted(tmp_path: Path) -> None:
    """A Ctrl-C that lands right after a scan's last commit, before the scan returns, has
    the scan closed as interrupted: that must not rewrite a scan that completed (its end
    time dates the rows it found gone)."""
    from mediaforge import open_catalog
    from mediaforge.catalog.writes import end_scan

    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0" * 10)
    catalog = tmp_path / "cat.duckdb"
    scanned(catalog, tmp_path / "lib")
    before = rows(catalog, "SELECT scan_id, status, finished_at FROM scans")
    with open_catalog(catalog) as cat:
        end_scan(cat, before[0]["scan_id"], "interrupted", 9.0)
    assert rows(catalog, "SELECT scan_id, status, finished_at FROM scans") == before


def test_the_disk_a_file_left_may_be_unplugged_when_the_disk_it_went_to_is_scanned(tmp_path: Path) -> None:
    """The disk the photo left was scanned while plugged in (the scan saw its other files
    and found the photo gone), then unplugged; the disk the photo went to is scanned
    after: the photo keeps its id and tags."""
    a, b, catalog, _photo = _moved_to_another_disk(tmp_path)
    a.rename(tmp_path / "drawer")
    s = scanned(catalog, b)
    assert (s["moved"], s["new"]) == (1, 0)
    assert rows(catalog, "SELECT f.name FROM tags t JOIN files f USING (media_id)") == [{"name": "p.jpg"}]


def test_a_file_given_another_device_number_is_no_witness_and_a_damaged_record_is_none(tmp_path: Path) -> None:
    """Disk A unplugged while disk B, which had another device number, now has A's: B's
    file, at its known path, comes with another device (rewritten by the scan) and
    does not vouch for A's rows; the backup of A's photo is a new file. And a record of
    what a scan saw, damaged by hand, is read as nothing seen: no scan fails on it."""
    m, c = tmp_path / "m", tmp_path / "c"
    (m / "A").mkdir(parents=True)
    (m / "B").mkdir()
    c.mkdir()
    (m / "B" / "y.jpg").write_bytes(b"\xff\xd8\xff\xe0 disk b" * 60)
    (m / "A" / "x.jpg").write_bytes(b"\xff\xd8\xff\xe0 disk a" * 60)
    catalog = tmp_path / "cat.duckdb"
    _tagged_then_copied(catalog, m / "A" / "x.jpg", "keep", c / "x.jpg")
    scanned(catalog, m)
    from mediaforge import open_catalog

    with open_catalog(catalog) as cat:  # B was found on another device number
        cat.con.execute("UPDATE files SET dev = dev + 1 WHERE name = 'y.jpg'")
    shutil.rmtree(m / "A")
    s = scanned(catalog, m)
    assert (s["missing"], s["changed"]) == (1, 1), s
    assert rows(catalog, "SELECT key FROM meta WHERE starts_with(key, 'disks_seen:')") == []
    s = scanned(catalog, c)
    assert (s["moved"], s["new"]) == (0, 1)
    assert _tags_by_status(catalog) == {"missing": ["keep"], "present": []}
    # A damaged record (edited by hand) reads as nothing seen, never as an error.
    from mediaforge.catalog.writes import _vouched

    for value in ("oops", "null", "[]", '{"seen": null}', '{"seen": [[1]], "linked": []}', '{"seen": [[1, 2]]}'):
        assert _vouched(value) == (set(), set()), value
    assert _vouched('{"seen": [[5, 2]], "linked": ["x"]}') == ({(5, 2)}, {"x"})
    # So do keys no scan wrote; the next scan drops them.
    with open_catalog(catalog) as cat:  # (`0<G>`: G found a row gone that is missing still)
        ((gone,),) = cat.con.execute("SELECT s.scan_id FROM scans s JOIN files f ON f.missing_since = s.finished_at "
                                     "WHERE f.status = 'missing'").fetchall()
        for key in ("disks_seen:\u00b2", "disks_seen:99999999999999999999", "disks_seen:x", "disks_seen:",
                    f"disks_seen:0{gone}", f"disks_seen:{gone} ", f"disks_seen:-{gone}"):
            cat.con.execute("INSERT INTO meta VALUES (?, 'oops')", [key])
    (c / "z.jpg").write_bytes(b"\xff\xd8\xff\xe0 another" * 60)
    assert scanned(catalog, c)["new"] == 1
    assert rows(catalog, "SELECT key FROM meta WHERE starts_with(key, 'disks_seen:')") == []


def test_a_scan_that_left_something_out_vouches_for_no_disk(tmp_path: Path) -> None:
    """The photo moved into a folder the scan that found it gone left out (`--exclude`),
    and a copy made: the scan did not look everywhere, so the photo is not known to be
    gone, and the copy is a new file (the photo, found later, keeps its id)."""
    d, backup = tmp_path / "d", tmp_path / "backup"
    (d / "p" / "ex").mkdir(parents=True)
    backup.mkdir()
    (d / "p" / "x.jpg").write_bytes(b"\xff\xd8\xff\xe0 unique" * 60)
    (d / "p" / "w.jpg").write_bytes(b"\xff\xd8\xff\xe0 witness" * 60)
    catalog = tmp_path / "cat.duckdb"
    scanned(catalog, d)
    assert run_cli("tag", "add", "keep", d / "p" / "x.jpg", catalog=catalog).rc == 0
    (x,) = rows(catalog, "SELECT media_id FROM files WHERE name = 'x.jpg'")
    time.sleep(0.01)
    (d / "p" / "x.jpg").rename(d / "p" / "ex" / "x.jpg")
    shutil.copy2(d / "p" / "ex" / "x.jpg", backup / "x.jpg")
    assert scanned(catalog, d, "--exclude", "ex")["missing"] == 1
    s = scanned(catalog, backup)
    assert (s["moved"], s["new"]) == (0, 1)
    s = scanned(catalog, d)
    assert s["revived"] + s["moved"] == 1
    assert rows(catalog, "SELECT f.path FROM tags t JOIN files f USING (media_id)") == [
        {"path": str(d / "p" / "ex" / "x.jpg")}]
    assert rows(catalog, "SELECT media_id FROM files WHERE path = ?", [str(d / "p" / "ex" / "x.jpg")]) == [x]


def test_scan_json_gives_the_exact_bytes_of_roots_that_are_not_utf8(tmp_path: Path) -> None:
    """A root whose name is not UTF-8 (an empty one here: a disk not mounted) shows U+FFFD
    in `roots` and `empty_roots`; the `*_raw` lists give its bytes back."""
    import base64

    odd, plain = os.path.join(os.fsencode(tmp_path), b"disk\xff"), tmp_path / "ok"
    os.mkdir(odd)
    plain.mkdir()
    (plain / "a.jpg").write_bytes(b"\xff\xd8\xff" + b"a" * 50)
    s = scanned(tmp_path / "cat.duckdb", os.fsdecode(odd), plain)
    assert s["roots"] == [f"{tmp_path}/disk\ufffd", str(plain)] and s["empty_roots"] == [f"{tmp_path}/disk\ufffd"]
    assert [r and base64.b64decode(r) for r in s["roots_raw"]] == [odd, None]
    assert [base64.b64decode(r) for r in s["empty_roots_raw"]] == [odd] and s["left_out_roots_raw"] == []


def test_a_root_inside_another_keeps_its_own_excludes_and_ignore_files(tmp_path: Path, catalog_path: Path) -> None:
    """`scan a a/b -e b/`: the inner root was dropped for lying inside the outer one, whose
    excludes (and ignore files) then left it out: none of its files were catalogued. Each
    root is walked with its own (a root named is never left out itself), each file once;
    a file named as a root inside a folder root is kept whatever the patterns say."""
    a = tmp_path / "a"
    (a / "b").mkdir(parents=True)
    (a / "c").mkdir()
    for name in ("x.jpg", "b/y.jpg", "c/z.jpg", "c/w.png"):
        (a / name).write_bytes(name.encode())
    (a / ".mediaforgeignore").write_text("c/\n")
    out = scanned(catalog_path, a, a / "b", a / "c" / "z.jpg", "-e", "b/", "-e", "*.png")
    assert (out["new"], out["errors"]) == (4, 0), out
    present = sorted(r["path"] for r in rows(catalog_path, "SELECT path FROM files WHERE status = 'present'"))
    assert present == [str(a / n) for n in (".mediaforgeignore", "b/y.jpg", "c/z.jpg", "x.jpg")], present
    # A file gone from the inner root is missing; the outer root alone leaves b/ out and
    # keeps what it holds as it was.
    (a / "b" / "y.jpg").unlink()
    assert scanned(catalog_path, a, a / "b", "-e", "b/")["missing"] == 1
    (a / "b" / "v.jpg").write_bytes(b"v")
    assert scanned(catalog_path, a, "-e", "b/")["new"] == 0


def test_a_file_given_as_its_root_is_judged_by_its_birth_time_too(tmp_path: Path) -> None:
    """A file named as a root got no birth time: a stranger that took a gone file's inode
    number, size and mtime took its row too (`moved`, not read): the gone file's digest
    and tags, for good. It is judged as a folder's files are."""
    import duckdb

    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "gone.jpg").write_bytes(b"G" * 4000)
    os.utime(lib / "gone.jpg", (1_577_836_800, 1_577_836_800))
    catalog = tmp_path / "cat.duckdb"
    scanned(catalog, lib)
    assert run_cli("tag", "add", "T", lib / "gone.jpg", catalog=catalog).rc == 0
    # As if the row described a file born and last seen before the file at that inode was
    # made (what a freed inode number reused looks like, without waiting on the clock).
    with duckdb.connect(str(catalog)) as con:
        con.execute("UPDATE files SET last_seen = TIMESTAMP '2001-01-01', btime_ns = epoch_ns(TIMESTAMP '2001-01-01'), "
                    "blake3 = ?", ["0" * 64])
    os.rename(lib / "gone.jpg", lib / "stranger.jpg")
    got = scanned(catalog, lib / "stranger.jpg")
    assert (got["new"], got["moved"], got["hashed_files"]) == (1, 0, 1), got
    now = {r["name"]: r for r in rows(catalog, "SELECT name, blake3, btime_ns, (SELECT count(*) FROM tags t "
                                               "WHERE t.media_id = f.media_id) AS tags FROM files f")}
    assert now["stranger.jpg"]["blake3"] == digest(b"G" * 4000) and now["stranger.jpg"]["tags"] == 0, now
    assert now["stranger.jpg"]["btime_ns"], now


def test_a_file_renamed_to_another_extension_gets_the_kind_a_first_scan_gives(tmp_path: Path) -> None:
    """A hashed file moved unread kept the kind and MIME type of its row, though what
    told them may have been its old name (a text file named .jpg is a picture by name):
    `photo.jpg` of text renamed `photo.txt` stayed image/jpeg, `note.txt` renamed
    `note.jpg` stayed text. Renamed to another extension, it is classified again from its
    first bytes and new name, as a fresh catalog has it; a rename within one extension
    keeps what its bytes told."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "photo.jpg").write_bytes(b"garbage\n")
    (lib / "note.txt").write_bytes(b"text\n")
    (lib / "DSC_1.NEF").write_bytes(b"MM\0*\0\0\0\x08r")
    (lib / "clip.mp4").write_bytes(b"\0\0\0\x18ftypisom\0\0\0\0isommp41")
    (lib / "song.mp3").write_bytes(b"fLaC" + bytes(60))  # FLAC bytes under an MP3 name
    catalog = tmp_path / "cat.duckdb"
    scanned(catalog, lib)
    for old, new in (("photo.jpg", "photo.txt"), ("note.txt", "note.jpg"), ("DSC_1.NEF", "DSC_1.tif"),
                     ("clip.mp4", "clip.m4a"), ("song.mp3", "renamed.MP3")):
        (lib / old).rename(lib / new)
    got = scanned(catalog, lib)
    assert (got["moved"], got["hashed_files"]) == (5, 0), got
    query = "SELECT name, kind, mime FROM files WHERE status = 'present' ORDER BY name"
    fresh = tmp_path / "fresh.duckdb"
    scanned(fresh, lib)
    assert rows(catalog, query) == rows(fresh, query)
    assert {r["name"]: r["mime"] for r in rows(catalog, query)} == {
        "DSC_1.tif": "image/tiff", "clip.m4a": "audio/mp4", "note.jpg": "image/jpeg", "photo.txt": "text/plain",
        "renamed.MP3": "audio/flac"}


def test_many_roots_mark_gone_what_is_under_them_and_nothing_else(tmp_path: Path) -> None:
    """`scan lib/*` with a dozen roots and more (folders, a file, a folder whose name is
    not UTF-8): what lies under them is judged by lookups in what the catalog holds, not
    by a few comparisons a root on every row (3,000 roots made a rescan ten times slower).
    A file gone under any of them is missing; one gone outside them is not looked at."""
    lib = tmp_path / "lib"
    raw = os.fsencode(lib)
    files = [b"/r%02d/%s.jpg" % (i, n) for i in range(12) for n in (b"a", b"b")]
    files += [b"/r\xff/x.jpg", b"/r\xff/y.jpg", b"/solo.jpg", b"/other/o.jpg"]
    for f in files:
        os.makedirs(os.path.dirname(raw + f), exist_ok=True)
        write_bytes_path(raw + f, f)
    catalog = tmp_path / "cat.duckdb"
    assert scanned(catalog, lib)["new"] == 28
    for gone in (b"/r03/a.jpg", b"/r\xff/x.jpg", b"/other/o.jpg"):
        os.unlink(raw + gone)
    roots = [os.fsdecode(raw + b"/r%02d" % i) for i in range(12)] + [os.fsdecode(raw + b"/r\xff"),
                                                                      os.fsdecode(raw + b"/solo.jpg")]
    got = scanned(catalog, *roots)
    assert (got["missing"], got["unchanged"]) == (2, 25), got
    status = {bytes(r["path_bytes"])[len(raw):]: (r["status"], r["last_scan_id"])
              for r in rows(catalog, "SELECT path_bytes, status, last_scan_id FROM files")}
    assert [p for p, (s, _) in sorted(status.items()) if s == "missing"] == [b"/r03/a.jpg", b"/r\xff/x.jpg"]
    assert status[b"/solo.jpg"] == ("present", 2) and status[b"/r\xff/y.jpg"] == ("present", 2)
    assert status[b"/other/o.jpg"] == ("present", 1)  # not under this scan's roots: not looked at


def test_a_root_below_what_the_outer_root_leaves_out_still_finds_its_files_gone(tmp_path: Path) -> None:
    """`scan -e x/ a a/x/y`: the outer root's walk leaves `a/x` out, and every row below
    it was kept as it was, those under the root `a/x/y` too, which was walked whole: a
    file deleted there stayed present for good, and one moved out of it became a second
    present row of its inode. What lies under a root is judged by that root's walk."""
    a = tmp_path / "a"
    (a / "x" / "y").mkdir(parents=True)
    (a / "x" / "y" / "t.jpg").write_bytes(b"t")
    (a / "x" / "y" / "u.jpg").write_bytes(b"u")
    (a / "x" / "hidden.jpg").write_bytes(b"h")
    catalog = tmp_path / "cat.duckdb"
    assert scanned(catalog, a)["new"] == 3
    (a / "x" / "y" / "t.jpg").unlink()
    (a / "x" / "hidden.jpg").unlink()  # under what the outer walk left out: kept as it was
    got = scanned(catalog, "-e", "x/", a, a / "x" / "y")
    assert got["missing"] == 1, got
    (a / "x" / "y" / "u.jpg").rename(a / "u.jpg")
    got = scanned(catalog, "-e", "x/", a, a / "x" / "y")
    assert (got["moved"], got["new"], got["missing"]) == (1, 0, 0), got
    status = {r["name"]: r["status"] for r in rows(catalog, "SELECT name, status FROM files")}
    assert status == {"t.jpg": "missing", "u.jpg": "present", "hidden.jpg": "present"}, status


def test_a_root_given_twice_in_other_spellings_is_one_root(tmp_path: Path) -> None:
    """`scan e e/ ./e`: one root, listed once in `roots` and `empty_roots` (it was three
    times), and in the scan's row."""
    (tmp_path / "e").mkdir()
    res = run_cli("scan", "--no-meta", "--json", "e", "e/", "./e", catalog=tmp_path / "cat.duckdb", cwd=tmp_path)
    assert res.rc == 0, res.err
    out = json.loads(res.out)
    assert out["roots"] == out["empty_roots"] == [str(tmp_path / "e")], out
    assert rows(tmp_path / "cat.duckdb", "SELECT roots FROM scans") == [{"roots": [str(tmp_path / "e")]}]


def test_a_hard_link_renamed_in_its_folder_keeps_its_row_when_another_link_is_made(tmp_path: Path) -> None:
    """A QA finding: of two hard links, one deleted (its row missing, tag `tx`), the other
    renamed in its folder while a new link was made in the deleted one's folder: the
    renamed file got the deleted name's row and tag, and the new link the renamed one's.
    A rename in its own folder takes that folder's present row first."""
    lib = tmp_path / "lib"
    (lib / "a").mkdir(parents=True)
    (lib / "b").mkdir()
    (lib / "a" / "x.jpg").write_bytes(b"\xff\xd8\xff data")
    os.link(lib / "a" / "x.jpg", lib / "b" / "y.jpg")
    catalog = tmp_path / "c.duckdb"
    assert run_cli("scan", lib, "--no-meta", catalog=catalog).rc == 0
    for tag, name in (("tx", "a/x.jpg"), ("ty", "b/y.jpg")):
        assert run_cli("tag", "add", tag, lib / name, catalog=catalog).rc == 0
    os.unlink(lib / "a" / "x.jpg")
    assert run_cli("scan", lib, "--no-meta", catalog=catalog).rc == 0
    os.rename(lib / "b" / "y.jpg", lib / "b" / "z.jpg")
    os.link(lib / "b" / "z.jpg", lib / "a" / "w.jpg")
    assert run_cli("scan", lib, "--no-meta", catalog=catalog).rc == 0
    got = {(r["path"][len(str(lib)) + 1:], r["status"]): r["tag"] for r in rows(
        catalog, "SELECT f.path, f.status, t.tag FROM files f LEFT JOIN tags t USING (media_id)")}
    assert got == {("b/z.jpg", "present"): "ty", ("a/w.jpg", "present"): "tx"}, got
