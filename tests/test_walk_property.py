"""The walker against a reference walk, on trees Hypothesis makes up: odd names (bytes
that are not UTF-8, newlines, 255-byte names), empty and sparse files, deep folders,
pipes, and symbolic links (loops, dangling, to files)."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import do_scan, files_by_path, reference_walk, rows, run_cli, write_bytes_path

INTERESTING_NAMES = [
    b".hidden",
    b"..dots",
    b"caf\xe9",
    b"\xff\xfe\xfd",
    b"\xc3",  # a truncated UTF-8 sequence
    b"line\nbreak",
    b"tab\there",
    b" lead and trail ",
    b"\xf0\x9f\x8e\x89.jpg",
    b"IMG_0001.JPG",
    b"*",
    b"[abc]",
    b"#not a comment",
    b"!negated",
    b"-rf",
    b"back\\slash",
    b"x" * 255,
    b"\x01\x7f",
]

name_st = st.one_of(
    st.sampled_from(INTERESTING_NAMES),
    st.binary(min_size=1, max_size=24).map(lambda b: b.replace(b"/", b"_").replace(b"\x00", b"0")),
).filter(lambda n: n not in (b".", b"..", b".mediaforgeignore"))


def tree_strategy(huge_files: bool) -> st.SearchStrategy[dict]:
    """Folders of files, sparse files, pipes, empty folders and symbolic links. With
    `huge_files`, some sparse files are over 4 GiB (up to 1 TiB): only for walks that do
    not hash."""
    sparse_sizes = [16 * 1024, 4 * 1024 * 1024 + 3, 6 * 1024 * 1024]
    if huge_files:
        sparse_sizes += [2**32 + 7, 2**40 + 1]
    leaf = st.one_of(
        st.tuples(st.just("file"), st.integers(0, 20_000)),
        st.tuples(st.just("sparse"), st.sampled_from(sparse_sizes)),
        st.tuples(st.just("loop"), st.integers(0, 4)),  # a link to an ancestor folder
        st.tuples(st.just("dangling"), st.none()),
        st.tuples(st.just("filelink"), st.none()),
        st.tuples(st.just("fifo"), st.none()),
        st.tuples(st.just("emptydir"), st.none()),
    )
    node = st.recursive(
        leaf,
        lambda kids: st.tuples(st.just("dir"), st.dictionaries(name_st, kids, max_size=4)),
        max_leaves=14,
    )
    return st.dictionaries(name_st, node, min_size=1, max_size=6)


def _content(path: bytes, size: int) -> bytes:
    seed = blake3.blake3(path).digest()
    return (seed * (size // len(seed) + 1))[:size]


def build(root: bytes, tree: dict) -> None:
    """Make the tree on disk. Links to files point at a regular file made for them."""
    def go(d: bytes, entries: dict, depth: int) -> None:
        for name, (kind, arg) in entries.items():
            p = os.path.join(d, name)
            if os.path.lexists(p):  # taken by a link target made for a sibling
                continue
            if kind == "file":
                write_bytes_path(p, _content(p, arg))
            elif kind == "sparse":
                fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)
                os.ftruncate(fd, arg)
                os.pwrite(fd, b"tail", arg - 4)
                os.close(fd)
            elif kind == "loop":
                os.symlink(b"/".join([b".."] * min(arg, depth)) or b".", p)
            elif kind == "dangling":
                os.symlink(b"no such target", p)
            elif kind == "filelink":
                target = p + b".target"
                if os.path.lexists(target) or len(name) > 248:
                    continue
                write_bytes_path(target, b"link target " + p)
                os.symlink(os.path.basename(target), p)
            elif kind == "fifo":
                os.mkfifo(p)
            elif kind == "emptydir":
                os.mkdir(p)
            else:
                os.mkdir(p)
                go(p, arg, depth + 1)

    go(root, tree, 0)
    kinds = set()

    def kinds_of(entries: dict) -> None:
        for kind, arg in entries.values():
            kinds.add(kind)
            if kind == "sparse" and arg > 2**32:
                kinds.add("sparse over 4 GiB")
            if kind == "dir":
                kinds_of(arg)

    kinds_of(tree)
    for k in sorted(kinds):
        event(f"tree has {k}")


def reference_follow(root: bytes) -> tuple[dict[bytes, int], set[bytes], set[bytes]]:
    """Follow every link; a folder already on its own ancestor chain is a loop, not
    entered. Returns (files and sizes, loop paths, broken link paths)."""
    files: dict[bytes, int] = {}
    loops: set[bytes] = set()
    broken: set[bytes] = set()

    def visit(d: bytes, ancestors: frozenset) -> None:
        s = os.stat(d)
        key = (s.st_dev, s.st_ino)
        if key in ancestors:
            loops.add(d)
            return
        for e in os.scandir(d):
            p = e.path
            try:
                s2 = os.stat(p)
            except FileNotFoundError:
                broken.add(p)
                continue
            if stat.S_ISDIR(s2.st_mode):
                visit(p, ancestors | {key})
            elif stat.S_ISREG(s2.st_mode):
                files[p] = s2.st_size

    visit(root, frozenset())
    return files, loops, broken


COMMON = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@contextlib.contextmanager
def built_tree(tree: dict) -> Iterator[tuple[bytes, Path]]:
    """A temporary folder holding `tree` under `lib/`, and a catalog path beside it."""
    with tempfile.TemporaryDirectory(prefix="mf-walk-") as tmp:
        root = os.path.join(os.fsencode(os.path.realpath(tmp)), b"lib")
        os.mkdir(root)
        build(root, tree)
        yield root, Path(tmp) / "catalog.duckdb"


@COMMON
@given(tree=tree_strategy(huge_files=False))
def test_scan_finds_exactly_the_regular_files(tree: dict) -> None:
    with built_tree(tree) as (root, catalog):
        ref = reference_walk(root)

        s = do_scan(catalog, root)
        got = files_by_path(catalog)
        assert set(got) == set(ref)
        assert {p: r["size"] for p, r in got.items()} == ref
        assert (s.files_seen, s.bytes_seen, s.new, s.errors) == (len(ref), sum(ref.values()), len(ref), 0)
        for p, r in got.items():
            with open(p, "rb") as f:
                assert r["blake3"] == blake3.blake3(f.read()).hexdigest(), p
            assert r["path"] == p.decode("utf-8", "replace")
        assert rows(catalog, "SELECT count(*) AS n FROM scan_errors")[0]["n"] == 0

        # Scanning again changes nothing.
        s2 = do_scan(catalog, root)
        assert (s2.unchanged, s2.new, s2.changed, s2.moved, s2.missing, s2.hashed_files) == (len(ref), 0, 0, 0, 0, 0)


@COMMON
@given(tree=tree_strategy(huge_files=True))
def test_following_links_terminates_and_records_loops(tree: dict) -> None:
    with built_tree(tree) as (root, catalog):
        ref, loops, broken = reference_follow(root)

        s = do_scan(catalog, root, follow_symlinks=True, hash=False)
        got = files_by_path(catalog)
        assert {p: r["size"] for p, r in got.items()} == ref
        assert s.bytes_seen == sum(ref.values())
        errors = rows(catalog, "SELECT path_bytes, message, errno FROM scan_errors")
        loop_rows = {bytes(e["path_bytes"]) for e in errors if "loop" in e["message"]}
        broken_rows = {bytes(e["path_bytes"]) for e in errors if "broken" in e["message"]}
        assert loop_rows == loops
        assert broken_rows == broken
        assert s.errors == len(errors) == len(loops) + len(broken)


# --------------------------------------------------------------------------------------
# Walk options, by example.
# --------------------------------------------------------------------------------------


def _tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def _names(catalog: Path, root: Path) -> set[str]:
    return {os.fsdecode(os.path.relpath(p, os.fsencode(root))) for p in files_by_path(catalog)}


def test_ignore_files_and_excludes(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    _tree(root, {
        ".mediaforgeignore": b"*.part\ncache/\n",
        "a/keep.jpg": b"1", "a/skip.part": b"2", "cache/thumb.jpg": b"3",
        "a/cache/thumb.jpg": b"4",
        "b/.mediaforgeignore": b"*.tmp\n!important.tmp\n",
        "b/x.tmp": b"5", "b/important.tmp": b"6", "b/y.jpg": b"7",
        "c/x.tmp": b"8",  # the ignore file in b/ does not reach c/
        ".trash/old.jpg": b"9",
        "raw/IMG.CR2": b"10",
    })
    cat = tmp_path / "c1.duckdb"
    do_scan(cat, root)
    assert _names(cat, root) == {".mediaforgeignore", "a/keep.jpg", "b/.mediaforgeignore", "b/important.tmp",
                                 "b/y.jpg", "c/x.tmp", ".trash/old.jpg", "raw/IMG.CR2"}
    cat = tmp_path / "c2.duckdb"
    do_scan(cat, root, excludes=(".trash/", "*.CR2", "/c"))
    assert _names(cat, root) == {".mediaforgeignore", "a/keep.jpg", "b/.mediaforgeignore", "b/important.tmp",
                                 "b/y.jpg"}
    cat = tmp_path / "c3.duckdb"
    do_scan(cat, root, ignore_files=False)
    everything = {os.fsdecode(os.path.relpath(p, os.fsencode(root))) for p in reference_walk(os.fsencode(root))}
    assert len(everything) == 12
    assert _names(cat, root) == everything


def test_what_a_rescan_leaves_out_is_not_marked_missing_nor_pruned(tmp_path: Path) -> None:
    """Files the options leave out (--exclude, a .mediaforgeignore added since, symbolic
    links no longer followed, other file systems) were not looked at: their rows stay as
    they were, present and not stamped as seen, and --prune keeps them (with their tags).
    A scan that looks again finds what is really gone."""
    root = tmp_path / "lib"
    _tree(root, {"keep/a.jpg": b"a", "cache/c1.jpg": b"c1", "cache/deep/c2.jpg": b"c2", "x.tmp": b"t",
                 "other/o.jpg": b"o", "sub/s.jpg": b"s"})
    (root / "link").symlink_to("sub")
    cat = tmp_path / "c.duckdb"

    def scan(*flags: str) -> dict:
        res = run_cli("scan", root, "--no-meta", "--json", *flags, catalog=cat)
        assert res.rc == 0, res.err
        return json.loads(res.out)

    def status() -> dict[str, tuple[str, int]]:
        return {os.path.relpath(r["path"], root): (r["status"], r["last_scan_id"])
                for r in rows(cat, "SELECT path, status, last_scan_id FROM files")}

    scan("-L")
    assert status() == {n: ("present", 1) for n in ("keep/a.jpg", "cache/c1.jpg", "cache/deep/c2.jpg", "x.tmp",
                                                     "other/o.jpg", "sub/s.jpg", "link/s.jpg")}
    (root / "other" / ".mediaforgeignore").write_bytes(b"*.jpg\n")
    s = scan("--exclude", "cache/", "-e", "*.tmp", "--prune")
    assert (s["missing"], s["pruned"]) == (0, 0)
    left = {"cache/c1.jpg": ("present", 1), "cache/deep/c2.jpg": ("present", 1), "x.tmp": ("present", 1),
            "other/o.jpg": ("present", 1), "link/s.jpg": ("present", 1)}
    assert status() == {"keep/a.jpg": ("present", 2), "sub/s.jpg": ("present", 2),
                        "other/.mediaforgeignore": ("present", 2), **left}
    # Made before any file is deleted, so it cannot reuse a deleted file's inode: a moved
    # file is matched by its identity (device, inode) below.
    (root / "move").mkdir()
    (root / "move" / "m.jpg").write_bytes(b"moving")
    (root / "cache" / "deep" / "c2.jpg").unlink()
    (root / "keep" / "a.jpg").unlink()
    s = scan("--exclude", "cache/", "-e", "*.tmp", "--prune")  # c2 is gone, but was not looked for
    # a.jpg is missing; a scan that excluded paths prunes nothing (a.jpg may have moved
    # into cache/): its row waits for a scan that looks everywhere.
    assert (s["missing"], s["pruned"], s["prune_skipped"]) == (1, 0, True)
    assert status()["keep/a.jpg"][0] == "missing" and status()["cache/deep/c2.jpg"] == ("present", 1)
    s = scan()  # looked at again: c2 is missing; the ignore file still leaves o.jpg alone
    assert s["missing"] == 1
    st = status()
    assert st["cache/deep/c2.jpg"][0] == "missing"
    assert st["cache/c1.jpg"] == st["x.tmp"] == ("present", 4)
    assert st["other/o.jpg"] == st["link/s.jpg"] == ("present", 1)  # still left out
    # A file moved into an excluded folder keeps its id (and tags) through --prune, and
    # is found moved by the scan that looks there again.
    scan()
    before = {os.path.relpath(r["path"], root): r["media_id"] for r in rows(cat, "SELECT path, media_id FROM files")}
    (root / "move" / "m.jpg").rename(root / "cache" / "m.jpg")
    assert scan("-e", "cache/", "--prune")["pruned"] == 0
    assert scan()["moved"] == 1
    after = {os.path.relpath(r["path"], root): r["media_id"] for r in rows(cat, "SELECT path, media_id FROM files")}
    assert after["cache/m.jpg"] == before["move/m.jpg"] and "move/m.jpg" not in after
    (root / "link").unlink()
    assert scan("-L")["missing"] == 1 and status()["link/s.jpg"][0] == "missing"  # followed again: gone


def test_what_an_ignore_file_leaves_out_does_not_hold_a_prune(tmp_path: Path) -> None:
    """QA: any `.mediaforgeignore` that left something out held every `--prune` back for
    good, and the way out (`--no-ignore`) catalogued what it leaves out. Its rules bound
    the library for every scan: a file gone past them has left it, as one moved out of
    the roots has. `--exclude` (a one-off) still holds the prune."""
    root = tmp_path / "lib"
    (root / "cache").mkdir(parents=True)
    (root / "cache" / "c.jpg").write_bytes(b"cache")
    (root / "a.jpg").write_bytes(b"a photo")
    (root / "b.jpg").write_bytes(b"b photo")
    (root / ".mediaforgeignore").write_bytes(b"cache/\n")
    cat = tmp_path / "cat.duckdb"
    assert run_cli("scan", "--no-meta", root, catalog=cat).rc == 0
    assert run_cli("tag", "add", "fav", root / "a.jpg", catalog=cat).rc == 0
    (root / "a.jpg").unlink()
    (root / "b.jpg").rename(root / "cache" / "b.jpg")  # moved past the rules: out of the library
    # --exclude that leaves a file out holds the whole prune; one that leaves out nothing, none.
    (root / "x.png").write_bytes(b"png")
    res = run_cli("scan", "--no-meta", "--json", "--exclude", "*.png", "--prune", root, catalog=cat)
    got = json.loads(res.out)
    assert (got["missing"], got["pruned"], got["prune_skipped"], got["prune_skipped_why"]) == (2, 0, True, "excluded")
    (root / "x.png").unlink()
    res = run_cli("scan", "--no-meta", "--json", "--exclude", "*.gif", "--prune", root, catalog=cat)
    got = json.loads(res.out)
    assert (got["pruned"], got["prune_skipped"], got["prune_kept"]) == (2, False, 0), got
    assert rows(cat, "SELECT name FROM files ORDER BY name") == [{"name": ".mediaforgeignore"}]
    assert rows(cat, "SELECT * FROM tags") == []


def test_an_ignore_file_that_cannot_be_read_leaves_its_folder_as_it_was(tmp_path: Path) -> None:
    """A FIFO named .mediaforgeignore blocked the walk for good, and one linked to
    /dev/zero filled memory; then each was one `ignore-file` error and the folder was
    walked with no rules at all: what it leaves out (a private folder) was catalogued and
    read. Its rules unknown, the folder is now left as it was, as an unreadable folder is:
    what the catalog knows there stays, nothing new is read. A symlink to a real ignore
    file still counts."""
    root = tmp_path / "lib"
    _tree(root, {"fifo/a.jpg": b"1", "zero/b.jpg": b"2", "big/c.jpg": b"3", "linked/d.part": b"4",
                 "linked/keep.jpg": b"5", "rules.txt": b"*.part\n"})
    cat = tmp_path / "c.duckdb"
    assert run_cli("scan", root, "--no-meta", catalog=cat).rc == 0
    for folder in ("fifo", "zero", "big"):
        (root / folder / "private.part").write_bytes(b"secret")
    os.mkfifo(root / "fifo" / ".mediaforgeignore")
    (root / "zero" / ".mediaforgeignore").symlink_to("/dev/zero")
    (root / "big" / ".mediaforgeignore").write_bytes(b"#" * (1 << 20) + b"*.part\n")
    (root / "linked" / ".mediaforgeignore").symlink_to(root / "rules.txt")
    res = run_cli("scan", root, "--no-meta", "--json", catalog=cat, timeout=60)
    assert res.rc == 0, res.err
    assert (json.loads(res.out)["missing"], json.loads(res.out)["new"]) == (0, 0), res.out
    assert {n for n in _names(cat, root) if n.endswith(".part")} == {"linked/d.part"}
    assert {r["name"]: r["status"] for r in rows(cat, "SELECT name, status FROM files WHERE name LIKE '%.jpg'")} == \
        {"a.jpg": "present", "b.jpg": "present", "c.jpg": "present", "keep.jpg": "present"}
    errors = {os.path.relpath(os.fsdecode(r["path"]), root): r["message"]
              for r in rows(cat, "SELECT path, message FROM scan_errors WHERE stage = 'ignore-file'")}
    assert set(errors) == {"fifo/.mediaforgeignore", "zero/.mediaforgeignore", "big/.mediaforgeignore"}
    assert all(m.endswith("; its folder is left as it was") for m in errors.values()), errors
    assert "not a regular file" in errors["fifo/.mediaforgeignore"]
    assert "over the 1048576 bytes" in errors["big/.mediaforgeignore"]


def test_cli_walk_flags(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    _tree(root, {".mediaforgeignore": b"*.part\n", "a.jpg": b"1", "b.part": b"2", "c.tmp": b"3",
                 "sub/d.jpg": b"4"})
    (root / "link-to-sub").symlink_to("sub")
    (root / "link-to-a.jpg").symlink_to("a.jpg")

    def names(*flags: str) -> set[str]:
        cat = tmp_path / f"cat{len(list(tmp_path.glob('cat*')))}.duckdb"
        res = run_cli("scan", root, *flags, catalog=cat)
        assert res.rc == 0, res.err
        return _names(cat, root)

    assert names() == {".mediaforgeignore", "a.jpg", "c.tmp", "sub/d.jpg"}
    assert names("--no-ignore", "--exclude", "*.tmp") == {".mediaforgeignore", "a.jpg", "b.part", "sub/d.jpg"}
    assert names("-e", "*.tmp", "-e", "sub/") == {".mediaforgeignore", "a.jpg"}
    assert names("--follow-symlinks") == {".mediaforgeignore", "a.jpg", "c.tmp", "sub/d.jpg",
                                          "link-to-sub/d.jpg", "link-to-a.jpg"}


def test_single_file_root(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    _tree(root, {"one.jpg": b"one", "two.jpg": b"two"})
    cat = tmp_path / "c.duckdb"
    s = do_scan(cat, root / "one.jpg")
    assert s.files_seen == 1
    assert _names(cat, root) == {"one.jpg"}
    r = files_by_path(cat)[os.fsencode(root / "one.jpg")]
    assert (r["dir"], r["name"], r["blake3"]) == (str(root), "one.jpg", blake3.blake3(b"one").hexdigest())
    do_scan(cat, root)  # the folder above: one more file, nothing missing
    assert _names(cat, root) == {"one.jpg", "two.jpg"}


def test_overlapping_roots_are_walked_once(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    _tree(root, {"a/x.jpg": b"x", "b/y.jpg": b"y"})
    cat = tmp_path / "c.duckdb"
    s = do_scan(cat, root, root / "a", str(root) + "/")
    assert (s.files_seen, s.new) == (2, 2)
    assert len(files_by_path(cat)) == 2


def test_one_file_system_stays_on_the_root_device(tmp_path: Path) -> None:
    other = Path("/dev/shm")
    if not other.is_dir() or os.stat(other).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system to link to")
    with tempfile.TemporaryDirectory(dir=other) as elsewhere:
        Path(elsewhere, "far.jpg").write_bytes(b"far")
        root = tmp_path / "lib"
        _tree(root, {"near.jpg": b"near"})
        (root / "mnt").symlink_to(elsewhere)
        cat = tmp_path / "c1.duckdb"
        do_scan(cat, root, follow_symlinks=True)
        assert _names(cat, root) == {"near.jpg", "mnt/far.jpg"}
        cat = tmp_path / "c2.duckdb"
        do_scan(cat, root, follow_symlinks=True, one_file_system=True)
        assert _names(cat, root) == {"near.jpg"}
        # The other file system left out on a rescan: its rows are kept, not missing.
        cat = tmp_path / "c1.duckdb"
        s = do_scan(cat, root, follow_symlinks=True, one_file_system=True, prune=True)
        assert (s.missing, s.pruned) == (0, 0)
        assert {r["name"]: r["status"] for r in rows(cat, "SELECT name, status FROM files")} == {
            "near.jpg": "present", "far.jpg": "present"}


def test_an_unreadable_ignore_file_above_a_root_leaves_the_root_as_it_was(tmp_path: Path) -> None:
    """A `.mediaforgeignore` above the root that cannot be read (a FIFO here; another
    user's, for an unprivileged scan): the root was walked with none of its rules, and a
    file they leave out was catalogued and read. The root is left as it was, as a folder
    with such a file is, and the error row says so."""
    root = tmp_path / "p"
    _tree(root, {"sub/secret.key": b"s", "sub/a.jpg": b"a"})
    cat = tmp_path / "c.duckdb"
    os.mkfifo(root / ".mediaforgeignore")
    res = run_cli("scan", root / "sub", "--no-meta", "--json", catalog=cat, timeout=60)
    assert res.rc == 0, res.err
    assert json.loads(res.out)["new"] == 0 and _names(cat, root) == set()
    [err] = rows(cat, "SELECT path, message FROM scan_errors WHERE stage = 'ignore-file'")
    assert err["path"] == str(root / ".mediaforgeignore")
    assert err["message"] == "not a regular file (a FIFO, socket or device); its folder is left as it was", err


def test_a_folder_named_like_the_ignore_file_holds_no_rules(tmp_path: Path) -> None:
    """A folder named .mediaforgeignore (or a link to one) left its parent as it was,
    with an error row, as an unreadable rules file does: no one wrote rules in a folder,
    so it holds none, and it is walked as the folder it is."""
    root = tmp_path / "lib"
    _tree(root, {"a/.mediaforgeignore/inside.jpg": b"1", "a/beside.part": b"2", "b/x.jpg": b"3",
                 "c/.mediaforgeignore": b"*.part\n", "c/y.part": b"4"})
    (root / "b" / ".mediaforgeignore").symlink_to(root / "a" / ".mediaforgeignore")
    cat = tmp_path / "c.duckdb"
    for _ in range(2):
        res = run_cli("scan", root, "--no-meta", "--json", catalog=cat)
        assert res.rc == 0 and json.loads(res.out)["errors"] == 0, (res.out, res.err)
        assert _names(cat, root) == {"a/.mediaforgeignore/inside.jpg", "a/beside.part", "b/x.jpg",
                                     "c/.mediaforgeignore"}  # a link is no file unless -L


def test_roots_below_one_unreadable_ignore_file_get_one_error_row(tmp_path: Path) -> None:
    """Two roots (one inside the other, and a third beside them) below one ignore file
    that cannot be read: each is left as it was, and the file is named in one error row,
    not one per root."""
    root = tmp_path / "p"
    _tree(root, {"a/b/x.jpg": b"x", "a/y.jpg": b"y", "c/z.jpg": b"z"})
    cat = tmp_path / "c.duckdb"
    os.mkfifo(root / ".mediaforgeignore")
    res = run_cli("scan", root / "a", root / "a" / "b", root / "c", "--no-meta", "--json", catalog=cat,
                  timeout=60)
    assert res.rc == 0, res.err
    out = json.loads(res.out)
    assert (out["new"], out["errors"]) == (0, 1), out
    [err] = rows(cat, "SELECT path FROM scan_errors WHERE stage = 'ignore-file'")
    assert err["path"] == str(root / ".mediaforgeignore")
