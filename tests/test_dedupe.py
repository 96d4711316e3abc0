"""Dedupe on real files: a dry run changes nothing; --apply links or moves only verified
copies, never the kept one, skips files changed since the scan, and --undo restores."""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import shutil
import stat
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import Unprivileged, assert_one_line_error, cli_env, loop_disk, rows, run_cli


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


@pytest.mark.parametrize("action", ["hardlink", "symlink"])
def test_a_copy_whose_permissions_or_owner_differ_is_not_linked(lib, action: str) -> None:
    """A hard link gives the copy the kept file's inode, so its mode and owner, and a
    symbolic link is read with its target's: a copy kept private (0600) became readable
    by all, one readable by all (another user's) private. Such a copy is skipped, saying
    why; a copy alike is linked."""
    root, catalog = lib
    os.chmod(root / "b" / "photo copy.jpg", 0o600)
    os.chown(root / "b" / "song.mp3", 65534, 65534)
    before = _state(root)
    # The dry run already tells: those two are shown as skipped, and neither counted nor reclaimed.
    plan = json.loads(run_cli("dedupe", "--action", action, "--json", catalog=catalog).out)
    assert [os.path.basename(s[action]) for s in plan["steps"]] == ["photo (2).jpg"] and plan["reclaimable"] == 40_000
    assert sorted(os.path.basename(s["path"]) for s in plan["skipped"]) == ["photo copy.jpg", "song.mp3"]
    text = run_cli("dedupe", "--action", action, catalog=catalog).out
    assert f"skip {root / 'b' / 'photo copy.jpg'}: its permissions or owner" in text
    assert "1 file would be" in text and "2 would be skipped (see above)" in text, text
    res = run_cli("dedupe", "--action", action, "--apply", "--json", catalog=catalog)
    assert res.rc == 8, res.err  # done in part: the skipped files are listed
    out = json.loads(res.out)
    assert out["done"] == 1, out
    skipped = {os.path.basename(r["path"]): r["why"] for r in out["skipped"]}
    assert sorted(skipped) == ["photo copy.jpg", "song.mp3"], skipped
    assert "rw------- 0:0" in skipped["photo copy.jpg"] and "rw-r--r-- 0:0" in skipped["photo copy.jpg"]
    link = {"hardlink": "hard link", "symlink": "symbolic link"}[action]
    assert "65534:65534" in skipped["song.mp3"] and f"{link} would give it the kept file's" in skipped["song.mp3"]
    after = _state(root)
    if action == "hardlink":
        assert after["b/photo (2).jpg"][0] == after["a/photo.jpg"][0]
    else:
        assert os.readlink(root / "b" / "photo (2).jpg") == os.fspath(root / "a" / "photo.jpg")
    for name in ("b/photo copy.jpg", "b/song.mp3"):
        assert after[name] == before[name], name
    assert stat.S_IMODE((root / "b" / "photo copy.jpg").stat().st_mode) == 0o600
    assert (root / "b" / "song.mp3").stat().st_uid == 65534


def test_a_copy_whose_extended_attributes_differ_is_not_hard_linked(lib) -> None:
    """Extended attributes (ACLs, a file manager's tags) live in the inode too: a copy
    tagged otherwise than the kept file is skipped, saying why; copies tagged alike are
    linked, and the undo gives each its own copy of the tags again."""
    root, catalog = lib
    os.setxattr(root / "b" / "photo copy.jpg", "user.xdg.tags", b"holiday")
    for name in ("a/song.mp3", "b/song.mp3"):
        os.setxattr(root / name, "user.xdg.tags", b"music")
    out = _apply(catalog)
    assert out["done"] == 2, out
    assert [(os.path.basename(r["path"]), "extended attributes differ" in r["why"]) for r in out["skipped"]] == \
        [("photo copy.jpg", True)]
    assert os.getxattr(root / "b" / "photo copy.jpg", "user.xdg.tags") == b"holiday"
    assert os.stat(root / "b" / "song.mp3").st_ino == os.stat(root / "a" / "song.mp3").st_ino
    assert _undo(catalog, out["journal"])["done"] == 2
    assert os.stat(root / "b" / "song.mp3").st_ino != os.stat(root / "a" / "song.mp3").st_ino
    assert os.getxattr(root / "b" / "song.mp3", "user.xdg.tags") == b"music"
    assert "user.xdg.tags" not in os.listxattr(root / "b" / "photo (2).jpg")


@pytest.mark.parametrize("where", ["symlink", "trash-elsewhere"])
def test_undo_gives_back_the_owner_and_extended_attributes(lib, tmp_path: Path, where: str) -> None:
    """A copy replaced by a symlink, or moved to a trash on another file system (where it
    is copied), comes back with its owner, extended attributes, mode and times, and the
    moved copy has them in the trash too."""
    root, catalog = lib
    copy = root / "b" / "photo copy.jpg"
    # A symlink is made only where the kept file's are alike (it is read with them).
    alike = [root / "a" / "photo.jpg", root / "b" / "photo (2).jpg"] if where == "symlink" else []
    for p in (copy, *alike):
        os.chown(p, 65534, 65533)
        os.chmod(p, 0o640)
        os.setxattr(p, "user.xdg.comment", b"\xffgrandma's birthday")
        os.setxattr(p, "user.empty", b"")
    before = os.stat(copy)
    args = ["--action", "symlink"]
    other = _elsewhere(tmp_path, "mf-trash-") if where == "trash-elsewhere" else None
    try:
        if other is not None:
            args = ["--action", "move-to", "--to", str(other)]
        out = _apply(catalog, *args)
        assert out["done"] == 3, out
        if other is not None:
            there = Path(os.path.join(other, str(copy).lstrip("/")))
            st = os.stat(there)
            assert (st.st_dev != before.st_dev, st.st_uid, st.st_gid, st.st_mtime_ns) == \
                (True, 65534, 65533, before.st_mtime_ns)
            assert os.getxattr(there, "user.xdg.comment") == b"\xffgrandma's birthday"
        undone = _undo(catalog, out["journal"])
        assert undone["done"] == 3 and undone["skipped"] == [], undone
    finally:
        if other is not None:
            shutil.rmtree(other)
    now = os.lstat(copy)
    assert stat.S_ISREG(now.st_mode)
    assert (now.st_uid, now.st_gid, stat.S_IMODE(now.st_mode), now.st_mtime_ns) == \
        (65534, 65533, 0o640, before.st_mtime_ns)
    assert sorted(os.listxattr(copy)) == ["user.empty", "user.xdg.comment"]
    assert os.getxattr(copy, "user.xdg.comment") == b"\xffgrandma's birthday"


def _without_chown() -> None:  # runs in the child, between fork and exec
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(24, 0, 0, 0, 0) != 0:  # PR_CAPBSET_DROP, CAP_CHOWN: as a user, who may not give files away
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.mark.parametrize("action", ["hardlink", "symlink"])
def test_a_link_that_this_user_could_not_undo_is_not_made(lib, action: str) -> None:
    """An undo makes a linked copy a file of its own again, owned by whoever runs it: a
    run that may not give a file away (not root) does not link another user's copy, which
    only root could then restore as it was. Its own copies are linked."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root, to make a file of another user's")
    from conftest import cli_cmd, cli_env

    root, catalog = lib
    for name in ("a/song.mp3", "b/song.mp3"):
        os.chown(root / name, 65534, 65534)
    p = subprocess.run(cli_cmd("dedupe", "--apply", "--action", action, "--json"), capture_output=True, text=True,
                       env=cli_env(catalog), timeout=120, preexec_fn=_without_chown)
    assert p.returncode == 8, p.stderr
    out = json.loads(p.stdout)
    assert out["done"] == 2 and [(os.path.basename(s["path"]), s["why"]) for s in out["skipped"]] == [
        ("song.mp3", "owned by 65534:65534: an undo by this user could not give it that owner back (run as root, "
                     "or as its owner)")], out
    assert not (root / "b" / "song.mp3").is_symlink() and os.stat(root / "b" / "song.mp3").st_nlink == 1


def _acl(*entries: tuple[int, int, int]) -> bytes:
    """A POSIX ACL as Linux stores it in `system.posix_acl_*`: (tag, permissions, id)."""
    import struct

    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


# A folder's default ACL: files made in it get `rwx` for user 65534 (mask r-x).
_ANY = 0xFFFFFFFF
_DEFAULT_ACL = _acl((1, 6, _ANY), (2, 7, 65534), (4, 4, _ANY), (0x10, 5, _ANY), (0x20, 4, _ANY))


def test_a_restored_copy_does_not_take_its_folders_default_acl(lib) -> None:
    """A file made in a folder with a default ACL takes it: the copy an undo restored could
    be read by a user who could not read the original. It gets exactly the extended
    attributes the original had, and its mode."""
    root, catalog = lib
    copy = root / "b" / "photo copy.jpg"
    for p in (copy, root / "a" / "photo.jpg", root / "b" / "photo (2).jpg"):  # alike, for the symlink
        os.chmod(p, 0o640)
    os.setxattr(root / "b", "system.posix_acl_default", _DEFAULT_ACL)
    out = _apply(catalog, "--action", "symlink")
    assert out["done"] == 3, out
    assert _undo(catalog, out["journal"])["done"] == 3
    assert os.listxattr(copy) == [] and stat.S_IMODE(os.stat(copy).st_mode) == 0o640


def test_an_undo_that_may_not_give_back_the_owner_leaves_the_link_and_says_so(lib) -> None:
    """Only root gives a file away: an undo run without that right, of a copy that was
    another user's, keeps the symlink (the bytes are safe in the kept file) and says why;
    the same undo run with it then restores the copy, that user's again."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root, to make a file of another user's")
    from conftest import cli_env

    root, catalog = lib
    copy = root / "b" / "song.mp3"
    for p in (copy, root / "a" / "song.mp3"):  # alike, for the symlink
        os.chown(p, 65534, 65534)
    out = _apply(catalog, "--action", "symlink")
    p = subprocess.run([shutil.which("mediaforge") or "mediaforge", "dedupe", "--undo", out["journal"], "--json"],
                       capture_output=True, text=True, env=cli_env(catalog), timeout=120, preexec_fn=_without_chown)
    assert p.returncode == 8, p.stderr  # done in part
    undone = json.loads(p.stdout)
    assert undone["done"] == 2 and [(os.path.basename(s["path"]), s["why"]) for s in undone["skipped"]] == \
        [("song.mp3", "could not restore it: cannot give it its owner 65534:65534 back: Operation not permitted "
                      "(only root gives a file away)")], undone
    assert copy.is_symlink() and not list(root.rglob(".mediaforge-*.tmp"))
    again = _undo(catalog, out["journal"])
    assert (again["done"], again["already_restored"]) == (1, 2), again
    assert not copy.is_symlink() and os.stat(copy).st_uid == 65534


@pytest.mark.parametrize(("action", "keep"), [("hardlink", "oldest"), ("symlink", "oldest"), ("trash", "oldest"),
                                            ("symlink", "prefix:c"), ("trash", "prefix:d")])
def test_the_dry_run_promises_what_apply_does_in_a_catalog_made_with_links_followed(tmp_path: Path, action: str,
                                                                                   keep: str) -> None:
    """With `-L`, a link and a folder reached through one are catalogued with the inode of
    what they lead to, beside the real names; a hard link of the kept file is the kept
    file again. The dry run lists only what apply then does, with nothing skipped: a link
    is never acted on, a file reached through a link is acted on where it lies, once, and a
    kept link keeps the file it leads to."""
    root = tmp_path / "lib"
    for d in ("a", "b", "e"):
        (root / d).mkdir(parents=True)
    data = os.urandom(30_000)
    (root / "a" / "x.jpg").write_bytes(data)
    (root / "b" / "x copy.jpg").write_bytes(data)
    (root / "e" / "y.jpg").write_bytes(data)
    os.link(root / "a" / "x.jpg", root / "b" / "x link.jpg")
    (root / "c").mkdir()
    (root / "c" / "x.jpg").symlink_to("../a/x.jpg")
    (root / "d").symlink_to("e")  # d/y.jpg is e/y.jpg
    for n, p in enumerate(["a/x.jpg", "e/y.jpg", "b/x copy.jpg"]):  # oldest first
        os.utime(root / p, ns=(10**18 + n, 10**18 + n))
    catalog = tmp_path / "cat.duckdb"
    assert run_cli("scan", "-L", "--no-meta", root, catalog=catalog).rc == 0
    if keep.startswith("prefix:"):
        keep = f"prefix:{root / keep[7:]}"
    res = run_cli("dedupe", "--action", action, "--keep", keep, "--json", catalog=catalog)
    assert res.rc == 0, res.err
    plan = json.loads(res.out)
    promised = sorted((os.path.relpath(s["keep"], root), os.path.relpath(s[action], root)) for s in plan["steps"])
    kept = "e/y.jpg" if keep.endswith("/d") else "a/x.jpg"
    # Both names of a/x.jpg go when it is not kept; each inode's bytes count once.
    others = {"a/x.jpg", "e/y.jpg", "b/x copy.jpg"} - {kept} | ({"b/x link.jpg"} if kept != "a/x.jpg" else set())
    assert promised == sorted((kept, o) for o in others), promised
    assert plan["reclaimable"] == 2 * len(data)
    out = _apply(catalog, "--action", action, "--keep", keep)
    assert (out["done"], out["skipped"]) == (len(others), []), out
    assert (root / "c" / "x.jpg").is_symlink() and (root / "d").is_symlink()
    # A link, and a hard link, still lead to the bytes unless what they name was moved away.
    moved = others if action == "trash" else set()
    aliases = {"c/x.jpg": "a/x.jpg", "d/y.jpg": "e/y.jpg", "b/x link.jpg": "a/x.jpg"}
    assert {p: (root / p).exists() for p in aliases} == {p: t not in moved for p, t in aliases.items()}
    assert all((root / p).read_bytes() == data for p in [kept, *(p for p, t in aliases.items() if t not in moved)])


@pytest.mark.parametrize("action", ["trash", "hardlink", "symlink"])
def test_a_link_out_of_the_library_is_neither_kept_nor_acted_on(tmp_path: Path, action: str) -> None:
    """With `-L`, a link in the library to a file outside it (another disk) is catalogued
    with that file's bytes. That file is not the library's: it is never acted on (a
    `trash` moved it away from its own disk), nor kept in place of the library's own copy
    (which `--keep shortest-path` then removed: unplug the disk and it is gone)."""
    root, outside = tmp_path / "lib", tmp_path / "usb"
    (root / "photos").mkdir(parents=True)
    outside.mkdir()
    data = os.urandom(30_000)
    (root / "photos" / "IMG_0001.jpg").write_bytes(data)
    (outside / "IMG_0001.jpg").write_bytes(data)
    (root / "x.jpg").symlink_to(outside / "IMG_0001.jpg")  # the shortest path, and the oldest
    os.utime(outside / "IMG_0001.jpg", ns=(10**18, 10**18))
    catalog = tmp_path / "cat.duckdb"
    assert run_cli("scan", "-L", "--no-meta", root, catalog=catalog).rc == 0
    for keep in ("shortest-path", "oldest", "newest"):
        res = run_cli("dedupe", "--action", action, "--keep", keep, "--json", catalog=catalog)
        assert res.rc == 0, res.err
        assert json.loads(res.out)["steps"] == [], (keep, res.out)
        out = _apply(catalog, "--action", action, "--keep", keep)
        assert (out["done"], out["skipped"]) == (0, []), out
    assert (root / "photos" / "IMG_0001.jpg").read_bytes() == data and not (root / "photos" / "IMG_0001.jpg").is_symlink()
    assert (outside / "IMG_0001.jpg").read_bytes() == data and os.stat(outside / "IMG_0001.jpg").st_nlink == 1
    assert (root / "x.jpg").is_symlink()


@pytest.mark.parametrize("action", ["symlink", "hardlink", "trash"])
def test_hard_linked_copies_count_their_bytes_once_and_undo_links_them_again(tmp_path: Path, action: str) -> None:
    """Copies that are hard links of one another hold their bytes once: the plan and the
    summary count them once, a hard link of the kept file is no copy (no step, whatever the
    action), a copy whose inode keeps a name outside the library frees nothing; --undo
    gives names that shared an inode one inode again."""
    root, outside = tmp_path / "lib", tmp_path / "outside"
    for d in (root / "a", root / "b", outside):
        d.mkdir(parents=True)
    data, other = os.urandom(30_000), os.urandom(7_000)
    (root / "a" / "keep.jpg").write_bytes(data)
    (root / "b" / "copy.jpg").write_bytes(data)
    os.link(root / "b" / "copy.jpg", root / "b" / "copy link.jpg")  # one inode, two victims
    os.link(root / "a" / "keep.jpg", root / "b" / "keep link.jpg")  # a name of the kept inode
    (root / "a" / "song.mp3").write_bytes(other)
    (root / "b" / "song.mp3").write_bytes(other)
    os.link(root / "b" / "song.mp3", outside / "song.mp3")  # a name the library does not hold
    catalog = tmp_path / "state" / "cat.duckdb"
    assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
    before = {p: os.lstat(root / p) for p in ("b/copy.jpg", "b/copy link.jpg", "b/keep link.jpg")}
    trash = ("--to", str(tmp_path / "trash")) if action == "trash" else ()
    act = ("--action", "move-to" if action == "trash" else action, *trash)
    res = run_cli("dedupe", "--json", *act, catalog=catalog)
    assert res.rc == 0, res.err
    plan = json.loads(res.out)
    want = 30_000  # the song's inode keeps its name outside: moved or linked, it frees nothing
    assert len(plan["steps"]) == 3  # the kept inode's own name is no step at all
    assert plan["reclaimable"] == want
    out = _apply(catalog, *act)
    assert out["bytes"] == want
    assert (out["done"], out["skipped"]) == (3, [])
    undone = _undo(catalog, out["journal"])
    assert undone["done"] == out["done"] and undone["skipped"] == []
    now = {p: os.lstat(root / p) for p in before}
    assert all(os.path.isfile(root / p) and not os.path.islink(root / p) for p in now)
    assert now["b/copy.jpg"].st_ino == now["b/copy link.jpg"].st_ino
    assert now["b/copy.jpg"].st_nlink == 2
    assert now["b/keep link.jpg"].st_ino == os.lstat(root / "a" / "keep.jpg").st_ino
    assert (root / "b" / "copy link.jpg").read_bytes() == data


def _done(res) -> dict:  # noqa: ANN001
    """The JSON report of an --apply or --undo, whose exit code says whether it skipped
    anything: 8 (done in part) then, else 0."""
    out = json.loads(res.out)
    assert res.rc == (8 if out["skipped"] else 0), (res.rc, res.err, out)
    return out


def _apply(catalog: Path, *args: str) -> dict:
    return _done(run_cli("dedupe", "--apply", "--json", *args, catalog=catalog))


def _undo(catalog: Path, journal: str) -> dict:
    return _done(run_cli("dedupe", "--undo", journal, "--json", catalog=catalog))


@pytest.mark.parametrize("action", ["hardlink", "symlink"])
def test_undo_leaves_alone_a_file_saved_at_the_path_since(lib, action: str) -> None:
    root, catalog = lib
    out = _apply(catalog, "--action", action)
    assert out["done"] == 3
    replaced = root / "b" / "photo copy.jpg"
    replaced.unlink()
    replaced.write_bytes(b"a new file the user saved here")
    undone = _undo(catalog, out["journal"])
    assert replaced.read_bytes() == b"a new file the user saved here"
    assert undone["done"] == 2 and [Path(s["path"]).name for s in undone["skipped"]] == ["photo copy.jpg"]
    assert "another file" in undone["skipped"][0]["why"]
    # Undoing again changes nothing that is not the dedupe's.
    again = _undo(catalog, out["journal"])
    assert again["done"] == 0 and replaced.read_bytes() == b"a new file the user saved here"


def test_undo_after_the_kept_file_was_replaced_restores_the_original_bytes(lib) -> None:
    root, catalog = lib
    original = (root / "a" / "photo.jpg").read_bytes()
    out = _apply(catalog)  # hard links: the bytes live on in the copies' shared inode
    kept = root / "a" / "photo.jpg"
    kept.unlink()
    kept.write_bytes(b"edited, saved by rename")
    undone = _undo(catalog, out["journal"])
    assert undone["done"] == 3 and undone["skipped"] == []
    assert (root / "b" / "photo copy.jpg").read_bytes() == original
    assert (root / "b" / "photo (2).jpg").read_bytes() == original
    assert kept.read_bytes() == b"edited, saved by rename"


def test_undo_of_a_symlink_whose_kept_file_changed_keeps_the_link_and_says_so(lib) -> None:
    root, catalog = lib
    out = _apply(catalog, "--action", "symlink")
    kept = root / "a" / "song.mp3"
    kept.unlink()
    kept.write_bytes(b"another song")
    undone = _undo(catalog, out["journal"])
    assert undone["done"] == 2
    assert [(Path(s["path"]).name, "original bytes are gone" in s["why"]) for s in undone["skipped"]] == \
        [("song.mp3", True)]
    assert (root / "b" / "song.mp3").is_symlink()
    assert not list(root.rglob(".mediaforge-*.tmp"))


def test_names_like_temporaries_and_very_long_names_are_safe(lib) -> None:
    root, catalog = lib
    mine = root / "b" / "photo copy.jpg.mediaforge-tmp"
    mine.write_bytes(b"my own file, not a temporary")
    long_name = root / "b" / ("x" * 251 + ".jpg")  # 255 bytes: no room for a suffix
    shutil.copy2(root / "a" / "photo.jpg", long_name)
    assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
    out = _apply(catalog)
    assert out["done"] == 4 and out["skipped"] == []
    assert mine.read_bytes() == b"my own file, not a temporary"
    assert long_name.stat().st_ino == (root / "a" / "photo.jpg").stat().st_ino
    assert _undo(catalog, out["journal"])["done"] == 4
    assert mine.read_bytes() == b"my own file, not a temporary"
    assert not list(root.rglob(".mediaforge-*.tmp"))


def _without_cap_fowner() -> None:  # in the child, between fork and exec
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(24, 3, 0, 0, 0) != 0:  # PR_CAPBSET_DROP, CAP_FOWNER
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to hand the copies to other users")
def test_another_user_s_copy_in_a_sticky_folder_is_refused_in_the_dry_run_too(lib) -> None:
    """A QA finding: in a sticky folder (as /tmp is), a copy of another user's was shown
    by the dry run as one to trash, and `--apply` then skipped it with "Operation not
    permitted": `os.access` leaves the sticky bit out. Both say why now. The run is
    root's without CAP_FOWNER, which binds the sticky bit as for any user."""
    from conftest import cli_env

    root, catalog = lib
    os.chown(root / "b", 65534, 65534)
    os.chmod(root / "b", 0o1777)
    for name in os.listdir(root / "b"):
        os.chown(root / "b" / name, 65533, 65533)
    before = _state(root)
    mf = shutil.which("mediaforge") or "mediaforge"
    runs = [subprocess.run([mf, "dedupe", "--action", "trash", "--json", *apply], capture_output=True, text=True,
                           env=cli_env(catalog), timeout=120, preexec_fn=_without_cap_fowner)
            for apply in ([], ["--apply"])]
    for p, rc in zip(runs, (0, 8), strict=True):
        assert p.returncode == rc, p.stderr
        out = json.loads(p.stdout)
        assert out["steps"] == [] and len(out["skipped"]) == 3, out
        assert all("its folder is sticky" in s["why"] and "65533:65533" in s["why"] for s in out["skipped"]), out
    assert _state(root) == before


def test_refused_destinations_and_journals_change_nothing(lib, tmp_path: Path, unprivileged: Unprivileged) -> None:
    root, catalog = lib
    before = _state(root)
    a_file = tmp_path / "not-a-folder"
    a_file.write_bytes(b"x")
    res = run_cli("dedupe", "--action", "move-to", "--to", a_file, "--apply", catalog=catalog)
    assert res.rc == 2 and "not a folder" in res.err and res.err.count("\n") == 1
    # A --to that is, or lies below, a link to nothing (a disk not mounted): nothing made
    # behind it, dry run included.
    (tmp_path / "usb").symlink_to(tmp_path / "mnt" / "usb")
    for to in (tmp_path / "usb", tmp_path / "usb" / "dupes"):
        for apply in ([], ["--apply"]):
            res = run_cli("dedupe", "--action", "move-to", "--to", to, *apply, catalog=catalog)
            assert res.rc == 3, res.err
            assert_one_line_error(res.err, "a link to", "mnt/usb, which is not there")
    assert not (tmp_path / "mnt").exists()
    res = run_cli("dedupe", "--to", tmp_path / "d", catalog=catalog)  # --to without move-to
    assert res.rc == 2 and "--to" in res.err
    # A --to the journal cannot record as text: refused before a folder or journal is made.
    res = run_cli("dedupe", "--action", "move-to", "--to", os.fsencode(tmp_path) + b"/to\xff", "--apply",
                  catalog=catalog)
    assert res.rc == 2 and "not valid UTF-8" in res.err and res.err.count("\n") == 1, res.err
    assert not os.path.lexists(os.fsencode(tmp_path) + b"/to\xff") and not (catalog.parent / "journal").exists()
    # A catalog folder where the journal cannot be written: nothing is done.
    unprivileged.share(catalog.parent, root)
    os.chmod(catalog.parent, 0o555)
    try:
        from conftest import cli_env

        p = subprocess.run([shutil.which("mediaforge") or "mediaforge", "dedupe", "--apply"], capture_output=True,
                           text=True, env=cli_env(catalog), timeout=120, **unprivileged.popen)
        (tmp_path / "away").mkdir()
        unprivileged.share(tmp_path / "away")
        moved = subprocess.run([shutil.which("mediaforge") or "mediaforge", "dedupe", "--apply", "--action", "move-to",
                                "--to", str(tmp_path / "away" / "new" / "to")], capture_output=True, text=True,
                               env=cli_env(catalog), timeout=120, **unprivileged.popen)
    finally:
        os.chmod(catalog.parent, 0o755)
    for p in (p, moved):
        assert p.returncode in (3, 7), p.stderr
        assert "Traceback" not in p.stderr and p.stderr.count("\n") == 1
    assert "journal" in moved.stderr and os.listdir(tmp_path / "away") == []  # the --to it made is gone again
    # An existing --to it may not write into: refused before any file (not a skip each),
    # and the folder it made below it for that is gone again.
    (tmp_path / "away" / "ro").mkdir()
    os.chmod(tmp_path / "away" / "ro", 0o555)
    res = subprocess.run([shutil.which("mediaforge") or "mediaforge", "dedupe", "--apply", "--action", "move-to",
                          "--to", str(tmp_path / "away" / "ro")], capture_output=True, text=True,
                         env=cli_env(catalog), timeout=120, **unprivileged.popen)
    assert res.returncode == 3, res.stderr
    assert_one_line_error(res.stderr, "cannot write into", "away/ro", "nothing was changed")
    assert not (catalog.parent / "journal").exists() and os.listdir(tmp_path / "away" / "ro") == []
    # Below a folder this user may not look into: a plain dry run, and a clear refusal to
    # apply (not a PermissionError as an internal error).
    (tmp_path / "locked").mkdir(mode=0o700)
    os.chown(tmp_path / "locked", 54321, 54321)
    for apply in ([], ["--apply"]):
        res = subprocess.run([shutil.which("mediaforge") or "mediaforge", "dedupe", "--action", "move-to", "--to",
                              str(tmp_path / "locked" / "sub"), *apply], capture_output=True, text=True,
                             env=cli_env(catalog), timeout=120, **unprivileged.popen)
        assert res.returncode == (3 if apply else 0), res.stderr
        assert "internal error" not in res.stderr and "Traceback" not in res.stderr
    assert _state(root) == before


@pytest.mark.parametrize("as_json", [False, True])
def test_a_report_that_cannot_be_written_still_names_the_journal(lib, as_json: bool) -> None:
    """The files are acted on before the report: with stdout on a full disk, or its reader
    gone, the one line on stderr says what was done and how to undo it."""
    from conftest import cli_cmd, cli_env

    root, catalog = lib
    json_arg = ["--json"] if as_json else []
    with open("/dev/full", "wb") as full:
        p = subprocess.run(cli_cmd("dedupe", "--apply", *json_arg), env=cli_env(catalog), stdout=full,
                           stderr=subprocess.PIPE, timeout=120)
    journal = next((catalog.parent / "journal").glob("dedupe-*.jsonl"))
    assert p.returncode == 3
    assert_one_line_error(p.stderr.decode(), "cannot write the standard output", "No space left", "3 files hard-linked",
                          f"undo with: mediaforge -c {catalog} dedupe --undo {journal}")
    p = subprocess.Popen(cli_cmd("dedupe", "--undo", journal, *json_arg), env=cli_env(catalog),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # the reader is gone before the first byte
    _out, err = p.communicate(timeout=120)
    assert p.returncode == 0 and err.decode() == f"mediaforge: the reader of the report left: 3 files restored; " \
        f"journal {journal}\n", err
    assert len({p.stat().st_ino for p in root.rglob("*") if p.is_file()}) == 6


def test_a_journal_with_an_odd_path_is_named_on_one_line_and_its_undo_command_pastes(tmp_path: Path) -> None:
    """A QA finding: a catalog folder named with a newline split the report's journal and
    undo lines. The journal line escapes it as every path in a report does; the undo
    command quotes it for the shell."""
    root = tmp_path / "lib"
    root.mkdir()
    (root / "a.bin").write_bytes(os.urandom(9_000))
    shutil.copy2(root / "a.bin", root / "b.bin")
    state = os.fsencode(tmp_path) + "/it's\nodd\t\u00e9".encode()  # a catalog path is UTF-8 text (DuckDB's)
    os.mkdir(state)
    catalog = Path(os.fsdecode(state + b"/cat.duckdb"))
    assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
    res = run_cli("dedupe", "--apply", "--action", "trash", catalog=catalog)
    assert res.rc == 0, res.err
    journal = next(Path(os.fsdecode(state + b"/journal")).glob("dedupe-*.jsonl"))
    lines = res.out.splitlines()
    assert f"journal {tmp_path}/it's\\nodd\\t\u00e9/journal/{journal.name}" in lines[0], lines
    shown = f"delete {tmp_path}/it's\\nodd\\t\u00e9/trash/"
    assert shown in lines[1] and re.match(r"\d{8}T\d{12}Z \(this run's trash\)", lines[1].split(shown)[1]), lines
    command = lines[-1].removeprefix("undo with: ").removesuffix("; rescan to update the catalog")
    assert len(lines) == 3 and command.startswith("mediaforge -c $'") and " dedupe --undo $'" in command, lines
    pasted = subprocess.run(["bash", "-c", f"printf '%s\\0' {command}"], capture_output=True, check=True).stdout
    assert pasted.split(b"\0")[:-1] == [b"mediaforge", b"-c", os.fsencode(catalog), b"dedupe", b"--undo",
                                        os.fsencode(journal)]
    # Pasted as printed, with no MEDIAFORGE_CATALOG to fall back on, it undoes the run in
    # its catalog (the default one is elsewhere).
    from conftest import cli_cmd, cli_env

    env = cli_env(XDG_DATA_HOME=str(tmp_path / "default"))
    runner = " ".join(shlex.quote(w) for w in cli_cmd())
    done = subprocess.run(["bash", "-c", command.replace("mediaforge", runner, 1)], env=env, capture_output=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert (root / "b.bin").read_bytes() == (root / "a.bin").read_bytes()


def test_an_apply_whose_reader_left_still_exits_8_for_its_skips(lib) -> None:
    """`dedupe --apply | head -1`: the reader leaving takes the skipped files' lines with it,
    so the line on stderr counts them, and the exit code is still 8 (done in part), not 0."""
    from conftest import cli_cmd, cli_env

    root, catalog = lib
    (root / "b" / "song.mp3").write_bytes(os.urandom(9_000))  # changed since the scan: skipped
    p = subprocess.Popen(cli_cmd("dedupe", "--apply"), env=cli_env(catalog), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()
    _out, err = p.communicate(timeout=120)
    journal = next((catalog.parent / "journal").glob("dedupe-*.jsonl"))
    assert p.returncode == 8 and err.decode() == f"mediaforge: the reader of the report left: 2 files hard-linked; " \
        f"journal {journal}; undo with: mediaforge -c {catalog} dedupe --undo {journal}; 1 file skipped\n", err


def test_a_malformed_journal_is_refused_in_one_line(lib, tmp_path: Path) -> None:
    _root, catalog = lib
    bad = tmp_path / "bad.jsonl"
    for text in ('{"kind":"start","action":"hardlink","dest":null}\n{"kind":"done","victim":"!!!","keep":null}\n',
                 "[1]\n", '{"kind":"start","action":"nuke"}\n', "\xff\xfe not text",
                 *(f'{{"kind":"start","action":"symlink"}}\n{{"kind":"done","victim":"YQ==","keep":"Yg==","mode":33188,'
                   f'"atime_ns":0,"mtime_ns":0,{extra}}}\n' for extra in
                   ('"uid":-1,"gid":0', '"uid":true,"gid":0', '"xattrs":[["dXNlci5h"]]', '"xattrs":{"a":"b"}',
                    '"xattrs":[["dXNlcgBh","eA=="]]'))):
        bad.write_bytes(text.encode("latin-1"))
        res = run_cli("dedupe", "--undo", bad, catalog=catalog)
        assert res.rc in (2, 3) and res.err.count("\n") == 1 and "journal" in res.err, (text, res.err)


def test_a_journal_cut_short_after_an_act_is_still_undone(lib) -> None:
    root, catalog = lib
    out = _apply(catalog)
    journal = Path(out["journal"])
    lines = journal.read_text().splitlines()
    last_done = max(i for i, line in enumerate(lines) if json.loads(line)["kind"] == "done")
    # A crash right after the last link: its "done" line and the end never reached the disk.
    journal.write_text("\n".join(lines[:last_done]) + "\n" + lines[last_done][:20])
    undone = _undo(catalog, str(journal))
    assert undone["done"] == 3 and undone["skipped"] == []
    inodes = [p.stat().st_ino for p in root.rglob("*") if p.is_file()]
    assert len(set(inodes)) == len(inodes)
    # The undo journaled its work after the line cut short, which it first removed.
    assert json.loads(journal.read_text().splitlines()[-1])["kind"] == "undone"
    again = _undo(catalog, str(journal))
    assert (again["done"], again["already_restored"], again["skipped"]) == (0, 3, [])


def _elsewhere(tmp_path: Path, prefix: str) -> Path:
    """A fresh folder on another file system than `tmp_path` (a tmpfs; remove it after)."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.fail("this test needs /dev/shm on another file system than the temporary folder")
    return Path(tempfile.mkdtemp(dir=shm, prefix=prefix))


def test_hardlinks_across_file_systems_are_skipped_not_fatal(lib, tmp_path: Path) -> None:
    # The kept copy on a tmpfs, its copy on the disk: a hard link cannot cross, so that step
    # is skipped with its reason and the rest of the run goes on.
    root, catalog = lib
    other = _elsewhere(tmp_path, "mf-dedupe-")
    try:
        (other / "clip.mov").write_bytes(os.urandom(30_000))
        shutil.copy2(other / "clip.mov", root / "b" / "clip.mov")
        assert run_cli("scan", root, other, "--no-meta", catalog=catalog).rc == 0
        before = (root / "b" / "clip.mov").read_bytes()
        res = run_cli("dedupe", "--keep", f"prefix:{other}", "--apply", "--json", catalog=catalog)
        assert res.rc == 8, res.err  # done in part
        out = json.loads(res.out)
        skipped = {os.path.basename(s["path"]): s["why"] for s in out["skipped"]}
        assert "another file system" in skipped["clip.mov"]
        assert (root / "b" / "clip.mov").read_bytes() == before
        assert not (root / "b" / "clip.mov.mediaforge-tmp").exists()
        assert (other / "clip.mov").stat().st_nlink == 1
    finally:
        shutil.rmtree(other)


def test_prefix_rule_matches_a_whole_folder(lib) -> None:
    root, catalog = lib
    (root / "bb").mkdir()
    shutil.copy2(root / "a" / "photo.jpg", root / "bb" / "photo.jpg")  # shorter path, same mtime
    assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
    res = run_cli("dedupe", "--keep", f"prefix:{root / 'b'}/", "--json", catalog=catalog)
    assert res.rc == 0, res.err
    keeps = {Path(s["keep"]).parent.name for s in json.loads(res.out)["steps"]}
    assert keeps == {"b"}


def test_prefix_rule_matches_a_folder_whose_name_is_not_utf8(lib) -> None:
    root, catalog = lib
    odd = os.fsencode(root) + b"/caf\xe9"
    for folder in (odd, odd + b"0"):  # "caf\xe90" sorts right after "caf\xe9/": not inside it
        os.mkdir(folder)
        shutil.copy2(root / "a" / "photo.jpg", os.fsdecode(folder + b"/photo.jpg"))
    assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
    res = run_cli("dedupe", "--keep", b"prefix:" + odd, "--json", catalog=catalog)
    assert res.rc == 0, res.err
    plan = json.loads(res.out)
    act = plan["action"]
    steps = [s for s in plan["steps"] if s["keep"].endswith("photo.jpg")]
    # The exact bytes come back beside the text, which can only show U+FFFD.
    assert {base64.b64decode(s["keep_raw"]) for s in steps} == {odd + b"/photo.jpg"}
    assert {s["keep"] for s in steps} == {os.fsdecode(root) + "/caf\ufffd/photo.jpg"}
    victims = {base64.b64decode(s[f"{act}_raw"]) if s[f"{act}_raw"] else os.fsencode(s[act]) for s in steps}
    assert odd + b"0/photo.jpg" in victims and len(victims) == 4


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
    assert res.rc == 8, res.err  # done in part
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
    assert res.rc == 8, res.err  # done in part
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
    # The --json of an --apply says what was done, file by file; that of the undo what it
    # restored, and the undo leaves no empty folders in the trash.
    out = json.loads(res.out)
    assert sorted(os.path.basename(s["trash"]) for s in out["steps"]) == ["photo copy.jpg", "photo.jpg", "song.mp3"]
    assert all(s["keep"].startswith(str(root / "b")) and s["size"] > 0 for s in out["steps"])
    # Each step says where its file went: the whole path again under the dated trash folder.
    assert all(Path(s["to"]).is_file() and s["to"].endswith(s["trash"]) and s["to_raw"] is None
               for s in out["steps"])
    assert {Path(s["to"]).relative_to(catalog.parent / "trash").parts[0] for s in out["steps"]} \
        == {p.name for p in (catalog.parent / "trash").iterdir()}
    undone = _undo(catalog, out["journal"])
    assert sorted(r["path"] for r in undone["restored"]) == sorted(s["trash"] for s in out["steps"])
    assert undone["bytes"] == sum(s["size"] for s in out["steps"])
    assert (root / "a" / "photo.jpg").exists() and not (catalog.parent / "trash").exists()  # made by it: gone
    # To a --to folder: the folders the move made go with the undo; ones there before stay.
    dest = catalog.parent / "moved"
    (dest / str(root / "a").lstrip("/")).mkdir(parents=True)
    assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
    dry = json.loads(run_cli("dedupe", "--action", "move-to", "--to", dest, "--keep", "prefix:" + str(root / "b"),
                             "--json", catalog=catalog).out)
    out = _apply(catalog, "--action", "move-to", "--to", str(dest), "--keep", "prefix:" + str(root / "b"))
    assert out["done"] == 3 and (dest / str(root / "b").lstrip("/")).is_dir()
    assert sorted(s["to"] for s in dry["steps"]) == sorted(s["to"] for s in out["steps"])
    assert all(s["to"] == str(dest) + s["move-to"] and Path(s["to"]).is_file() for s in out["steps"])
    _undo(catalog, out["journal"])
    assert (dest / str(root / "a").lstrip("/")).is_dir() and not (dest / str(root / "b").lstrip("/")).exists()
    # A --to the dedupe made goes too, with the folders it made above it.
    fresh = catalog.parent / "fresh" / "to"
    out = _apply(catalog, "--action", "move-to", "--to", str(fresh))
    assert out["done"] == 3 and fresh.is_dir()
    _undo(catalog, out["journal"])
    assert not (catalog.parent / "fresh").exists()
    bad = run_cli("dedupe", "--action", "shred", catalog=catalog)
    assert bad.rc == 2 and bad.err.count("\n") == 1
    assert run_cli("dedupe", "--action", "move-to", catalog=catalog).rc == 2
    assert run_cli("dedupe", "--keep", "tallest", catalog=catalog).rc == 2


def test_keep_rules_in_sql_are_checked(lib) -> None:
    root, catalog = lib
    res = run_cli("dedupe", "--json", "--keep", "sql:length(f.name) DESC", catalog=catalog)
    assert res.rc == 0, res.err
    keeps = {s["keep"] for s in json.loads(res.out)["steps"]}
    assert str(root / "b" / "photo copy.jpg") in keeps  # the longest name of its group
    for bad in ("sql:no_such_column", "sql:f.size; DROP TABLE files", "sql:"):
        res = run_cli("dedupe", "--keep", bad, catalog=catalog)
        assert res.rc == 2 and res.err.count("\n") == 1 and "--keep" in res.err, res.err
    # A QA finding: a comment was refused with DuckDB's "syntax error at or near FROM".
    for bad in ("sql:f.path DESC --", "sql:f.size DESC /* biggest"):
        res = run_cli("dedupe", "--keep", bad, catalog=catalog)
        assert res.rc == 2, res.err
        assert_one_line_error(res.err, "a comment (--, or /* left open) is not taken in a keep rule")
    assert run_cli("dedupe", "--keep", "sql:f.size /* biggest */ DESC", catalog=catalog).rc == 0
    res = run_cli("dedupe", "--json", "--keep", "sql:f.path LIKE '%--%' DESC, f.size", catalog=catalog)
    assert res.rc == 0, res.err  # within quotes, a string
    assert rows(catalog, "SELECT count(*) AS n FROM files")[0]["n"] == 6
    # A QA finding: a subquery ran, as a `--where` condition's would not (here, reading a
    # file through a table function); and an ORDER BY that is not one.
    for bad, why in (("sql:(SELECT count(*) FROM read_text('/etc/hostname'))", "subqueries are not allowed"),
                     ("sql:f.size IN (SELECT size FROM files)", "subqueries are not allowed"),
                     ("sql:length(f.path) DESC) x", "give one ORDER BY expression list"),
                     ("sql:" + "+".join(["f.size"] * 400), "nested too deeply")):
        res = run_cli("dedupe", "--keep", bad, catalog=catalog)
        assert res.rc == 2, res.err
        assert_one_line_error(res.err, why)


def test_reflink_clones_or_says_why_not(lib) -> None:
    root, catalog = lib
    before = _state(root)
    dry = json.loads(run_cli("dedupe", "--action", "reflink", "--json", catalog=catalog).out)
    res = run_cli("dedupe", "--action", "reflink", "--apply", "--json", catalog=catalog)
    out = json.loads(res.out)
    assert res.rc == (8 if out["skipped"] else 0), res.err  # 8: every file skipped, saying why
    after = _state(root)
    if out["done"] == 0:  # ext4, tmpfs...: nothing may change, and each file says why
        assert after == before
        assert len(out["skipped"]) == 3 and all("reflink not supported" in s["why"] for s in out["skipped"])
        assert not list(root.rglob(".mediaforge-*.tmp"))
        # A QA finding: every step failed, leaving each copy as it was, yet a journal was
        # written and an undo command printed, for nothing.
        assert out["journal"] is None and not list((catalog.parent / "journal").glob("*"))
        # A QA finding: the dry run promised what --apply could not do. It knows the file
        # systems that clone nothing (ext4, tmpfs...), and says so of each copy.
        from mediaforge.dupes.dedupe import NO_REFLINK, _mount_types

        types = _mount_types()
        assert root.stat().st_dev in types, types  # (else the check below would not run)
        if types[root.stat().st_dev] in NO_REFLINK:
            assert dry["steps"] == [] and dry["reclaimable"] == 0, dry
            assert [("reflink not supported" in s["why"]) for s in dry["skipped"]] == [True] * 3, dry
        res = run_cli("dedupe", "--action", "reflink", "--apply", catalog=catalog)
        assert res.rc == 8 and "undo" not in res.out + res.err, res.out
    else:  # Btrfs, XFS: same bytes and times, own inode
        assert out["done"] == 3
        for name, (ino, data, mtime) in before.items():
            assert after[name][1:] == (data, mtime)


@pytest.mark.parametrize("action", ["hardlink", "trash"])
def test_a_copy_open_for_writing_is_left_alone(lib, action: str) -> None:
    """A QA finding: a copy a program held open for writing was replaced by a hard link,
    and what the program wrote after went to an inode no name led to: lost. Such a copy
    is now skipped (a read lease cannot be had on it), and taken once it is closed."""
    root, catalog = lib
    copy = root / "b" / "photo copy.jpg"
    with open(copy, "r+b"):
        res = run_cli("dedupe", "--apply", "--action", action, "--json", catalog=catalog)
        out = json.loads(res.out)
        assert res.rc == 8 and out["done"] == 2, (res.err, out)
        assert [(Path(s["path"]).name, "open for writing" in s["why"]) for s in out["skipped"]] == \
            [("photo copy.jpg", True)]
        assert copy.exists() and copy.stat().st_nlink == 1
    res = run_cli("dedupe", "--apply", "--action", action, "--json", catalog=catalog)
    assert json.loads(res.out)["done"] == 1, res.err  # (the run before trashed the others: gone now)
    assert not copy.exists() if action == "trash" else copy.stat().st_nlink == 3


@pytest.mark.parametrize("action", ["hardlink", "symlink", "trash"])
def test_a_kept_file_open_for_writing_gets_no_link(lib, action: str) -> None:
    """A QA finding: with the kept file open for writing in a program, its copies were
    hard-linked to it, and what the program wrote then changed their bytes too; the undo
    refused (edited since), and the bytes they had were nowhere. A link to a kept file
    open for writing is not made; a trash or move, which leaves no name on its bytes, is."""
    root, catalog = lib
    kept = root / "a" / "photo.jpg"
    data = kept.read_bytes()
    with open(kept, "r+b") as writer:
        res = run_cli("dedupe", "--apply", "--action", action, "--json", catalog=catalog)
        out = json.loads(res.out)
        if action == "trash":
            assert res.rc == 0 and out["done"] == 3, (res.err, out)
        else:
            assert res.rc == 8 and out["done"] == 1, (res.err, out)  # the song's copy only
            assert sorted((Path(s["path"]).name, "the kept file" in s["why"] and "open for writing" in s["why"])
                          for s in out["skipped"]) == [("photo (2).jpg", True), ("photo copy.jpg", True)], out
            for name in ("photo copy.jpg", "photo (2).jpg"):
                copy = root / "b" / name
                assert not copy.is_symlink() and copy.stat().st_nlink == 1 and copy.read_bytes() == data
        writer.write(b"edited")  # the program saves: its copies, if any are left, keep their bytes
    if action != "trash":
        res = run_cli("dedupe", "--apply", "--action", action, "--json", catalog=catalog)
        assert res.rc == 8 and json.loads(res.out)["done"] == 0, res.out  # (edited since the scan now)
        assert (root / "b" / "photo copy.jpg").read_bytes() == data


def test_a_copy_in_the_folder_named_trash_beside_the_catalog_is_never_kept(tmp_path: Path) -> None:
    """A QA finding: with the catalog inside the library beside a folder of the user's
    named `trash`, dedupe kept the copy in it, trashed the other into it, and said the
    space comes back once that folder is deleted: with it went both copies. A file in
    the journal or trash folder beside the catalog is neither kept nor acted on."""
    lib = tmp_path / "lib"
    (lib / "trash").mkdir(parents=True)
    (lib / "photos").mkdir()
    data = os.urandom(4000)
    for where in ("trash", "photos", "journal"):
        (lib / where).mkdir(exist_ok=True)
        (lib / where / "p.bin").write_bytes(data)
    os.utime(lib / "trash" / "p.bin", (1_500_000_000, 1_500_000_000))  # the oldest: kept by default
    (lib / "photos" / "q.bin").write_bytes(data[::-1])
    (lib / "trash" / "q.bin").write_bytes(data[::-1])
    catalog = lib / "c.duckdb"
    assert run_cli("scan", lib, "--no-meta", catalog=catalog).rc == 0
    for action in ("trash", "hardlink"):
        res = run_cli("dedupe", "--action", action, "--apply", "--json", catalog=catalog)
        assert res.rc == 0, res.err
        assert json.loads(res.out)["steps"] == [], res.out
    assert all((lib / w / "p.bin").read_bytes() == data for w in ("trash", "photos", "journal"))
    assert (lib / "photos" / "q.bin").exists() and (lib / "trash" / "q.bin").exists()


def test_unhashed_files_go_through_the_funnel(tmp_path: Path) -> None:
    import blake3

    root = tmp_path / "lib"
    root.mkdir()
    same = os.urandom(300_000)
    (root / "one.mov").write_bytes(same)
    (root / "two.mov").write_bytes(same)
    ends = bytearray(same)
    ends[150_000] ^= 0xFF  # same size and ends, other middle: only a full hash tells
    (root / "three.mov").write_bytes(bytes(ends))
    (root / "lonely.mov").write_bytes(os.urandom(1234))
    (root / "changed.mov").write_bytes(same)
    # Names of one inode (hard-linked trees, as media servers make them): no copies of
    # one another, never read for `dupes`, with or without another file of their size.
    linked = os.urandom(200_000)
    (root / "linked.mov").write_bytes(linked)
    os.link(root / "linked.mov", root / "linked too.mov")
    (root / "other start.mov").write_bytes(bytes([linked[0] ^ 0xFF]) + linked[1:])  # another first byte
    (root / "tiny.mov").write_bytes(b"tiny")
    os.link(root / "tiny.mov", root / "tiny too.mov")
    catalog = tmp_path / "cat.duckdb"
    assert run_cli("scan", root, "--no-hash", catalog=catalog).rc == 0
    (root / "changed.mov").write_bytes(same[::-1])  # rewritten after the scan
    os.utime(root / "changed.mov", ns=(1, 1))
    res = run_cli("dupes", "--exact", catalog=catalog)
    assert res.rc == 0, res.err
    assert "1 changed since the scan" in res.err
    # The tiny pair is no candidate: one inode of its size.
    assert "7 unhashed files share a size with another: 3 hashed in full" in res.err, res.err
    res = run_cli("dupes", "--exact", "--format", "json", catalog=catalog)
    groups = json.loads(res.out)
    assert sorted(os.path.basename(r["path"]) for r in groups) == ["one.mov", "two.mov"]
    got = {os.path.basename(r["path"]): r["blake3"] for r in rows(catalog, "SELECT path, blake3 FROM files")}
    want = blake3.blake3(same).hexdigest()
    assert got["one.mov"] == got["two.mov"] == want
    assert got["three.mov"] == blake3.blake3(bytes(ends)).hexdigest()
    assert got["lonely.mov"] is None and got["changed.mov"] is None  # never read / not trusted
    assert {got[n] for n in ("linked.mov", "linked too.mov", "other start.mov", "tiny.mov", "tiny too.mov")} == {None}


def test_similar_pictures_keep_the_largest(tmp_path: Path) -> None:
    from media_corpus import picture

    root = tmp_path / "lib"
    root.mkdir()
    big = picture(1200, 800, 7)
    big.save(root / "full.jpg", quality=92)
    big.resize((600, 400)).save(root / "small.jpg", quality=70)
    os.utime(root / "small.jpg", (1e9, 1e9))  # the oldest: keeping by age would keep it
    picture(1200, 800, 99).save(root / "other.jpg", quality=92)
    catalog = tmp_path / "state" / "cat.duckdb"
    assert run_cli("scan", root, catalog=catalog).rc == 0
    # No groups looked for yet: said so, not "no duplicates".
    res = run_cli("dedupe", "--similar", catalog=catalog)
    assert res.rc == 0 and "no near-duplicate groups of pictures; `mediaforge dupes --similar --kind image`" in res.out
    assert run_cli("dupes", "--similar", "--format", "json", catalog=catalog).rc == 0
    assert run_cli("dedupe", "--similar", "--action", "hardlink", catalog=catalog).rc == 2  # never link other bytes
    # Without --keep, the best copy stays: the most pixels, whatever its age.
    res = run_cli("dedupe", "--similar", catalog=catalog)
    assert res.rc == 0, res.err
    assert "keep best" in res.out and "full.jpg (1200x800, " in res.out and "small.jpg (600x400, " in res.out
    plan = json.loads(run_cli("dedupe", "--similar", "--json", catalog=catalog).out)
    assert [(os.path.basename(s["keep"]), os.path.basename(s["trash"])) for s in plan["steps"]] == \
        [("full.jpg", "small.jpg")]
    # How far the copy is from the kept picture, in pHash bits (a group's distances are to
    # its leader): for a burst of shots, the thing to look at.
    ph = {os.path.basename(r["path"]): r["phash"]
          for r in rows(catalog, "SELECT f.path, h.phash FROM files f JOIN image_hashes h USING (blake3)")}
    bits = bin(ph["full.jpg"] ^ ph["small.jpg"]).count("1")
    assert plan["steps"][0]["phash_bits"] == bits
    assert ("same pHash as the kept" if bits == 0 else f"pHash {bits} bit{'' if bits == 1 else 's'} from the kept") \
        in res.out.splitlines()[-2], res.out
    # Groups found with a looser threshold than the default are shown with a warning.
    assert run_cli("dupes", "--similar", "--threshold", "20", catalog=catalog).rc == 0
    res = run_cli("dedupe", "--similar", catalog=catalog)
    assert "--threshold 20`" in res.out and "warning: these groups were found with --threshold 20" in res.err
    assert run_cli("dupes", "--similar", catalog=catalog).rc == 0
    plan = json.loads(run_cli("dedupe", "--similar", "--keep", "largest-resolution", "--action", "trash", "--json",
                              catalog=catalog).out)
    assert [(os.path.basename(s["keep"]), os.path.basename(s["trash"])) for s in plan["steps"]] == \
        [("full.jpg", "small.jpg")]
    res = run_cli("dedupe", "--similar", "--keep", "largest-resolution", "--action", "trash", "--apply", "--json",
                  catalog=catalog)
    out = json.loads(res.out)
    assert out["done"] == 1 and not (root / "small.jpg").exists() and (root / "full.jpg").exists()
    # The steps done in the dry run's form (a QA finding: `phash_bits` was missing).
    assert (out["steps"][0]["phash_bits"], out["groups_left_out"]) == (bits, 0), out
    assert run_cli("dedupe", "--undo", out["journal"], catalog=catalog).rc == 0
    assert (root / "small.jpg").exists()
    # Changed in place after the comparison, size and times kept: the hash check catches it.
    st = (root / "small.jpg").stat()
    with open(root / "small.jpg", "r+b") as f:
        f.seek(st.st_size // 2)
        f.write(b"\x00\x01\x02")
    os.utime(root / "small.jpg", ns=(st.st_atime_ns, st.st_mtime_ns))
    res = run_cli("dedupe", "--similar", "--keep", "largest-resolution", "--action", "trash", "--apply", "--json",
                  catalog=catalog)
    out = json.loads(res.out)
    assert out["done"] == 0 and (root / "small.jpg").exists()
    assert [s["why"] for s in out["skipped"]] == ["contents changed since they were compared (rescan first)"]
    # The kept picture replaced by another one (no rescan): the copy may now be the last of
    # its picture, and stays.
    big.resize((600, 400)).save(root / "small.jpg", quality=70)
    assert run_cli("scan", root, catalog=catalog).rc == 0
    assert run_cli("dupes", "--similar", "--format", "json", catalog=catalog).rc == 0
    st = (root / "full.jpg").stat()
    picture(1200, 800, 55).save(root / "full.jpg", quality=92)
    os.utime(root / "full.jpg", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (root / "full.jpg").stat().st_size != st.st_size
    plan = json.loads(run_cli("dedupe", "--similar", "--json", catalog=catalog).out)  # the dry run tells already
    assert plan["steps"] == [] and [s["why"] for s in plan["skipped"]] == [
        f"the kept file {root / 'full.jpg'} changed since the scan (rescan first)"], plan
    res = run_cli("dedupe", "--similar", "--keep", "largest-resolution", "--apply", "--json", catalog=catalog)
    out = json.loads(res.out)
    assert out["done"] == 0 and (root / "small.jpg").exists()
    assert [("kept file" in s["why"] and "changed" in s["why"]) for s in out["skipped"]] == [True]


@pytest.fixture
def xfs(tmp_path: Path):  # noqa: ANN201
    """A small XFS file system (reflink on) mounted from a loop image."""
    yield from loop_disk(tmp_path, "xfs", 320 * 2**20, ["mkfs.xfs", "-q", "-f", "-m", "reflink=1"],
                         "scripts/test.sh installs xfsprogs")


def test_reflink_on_xfs_clones_and_undo_restores(xfs: Path) -> None:
    root = xfs / "lib"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    data = os.urandom(3_000_000)
    (root / "a" / "clip.mov").write_bytes(data)
    shutil.copy2(root / "a" / "clip.mov", root / "b" / "clip copy.mov")
    os.chmod(root / "b" / "clip copy.mov", 0o666)  # not less the umask
    os.chown(root / "b" / "clip copy.mov", 65534, 65533)
    os.setxattr(root / "b" / "clip copy.mov", "user.xdg.tags", b"keep")
    os.setxattr(root / "b", "system.posix_acl_default", _DEFAULT_ACL)  # not for the clone made there
    catalog = xfs / "state" / "cat.duckdb"
    assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
    before = _state(root)
    used = shutil.disk_usage(xfs).used
    res = run_cli("dedupe", "--action", "reflink", "--apply", "--json", catalog=catalog)
    out = json.loads(res.out)
    assert out["done"] == 1 and out["skipped"] == [], res.out
    after = _state(root)
    copy = root / "b" / "clip copy.mov"
    assert after["b/clip copy.mov"][1:] == before["b/clip copy.mov"][1:]  # same bytes, same mtime
    assert after["b/clip copy.mov"][0] != after["a/clip.mov"][0]  # its own inode, unlike a hard link
    assert (oct(copy.stat().st_mode & 0o777), copy.stat().st_uid, copy.stat().st_gid) == ("0o666", 65534, 65533)
    assert os.listxattr(copy) == ["user.xdg.tags"] and os.getxattr(copy, "user.xdg.tags") == b"keep"
    assert shutil.disk_usage(xfs).used < used - 2_000_000  # the copy's blocks are shared now
    assert run_cli("dedupe", "--undo", out["journal"], catalog=catalog).rc == 0
    assert copy.read_bytes() == data
    assert (copy.stat().st_uid, os.getxattr(copy, "user.xdg.tags")) == (65534, b"keep")


def test_a_reflink_run_stopped_part_way_and_run_again_counts_its_clones_as_done(xfs: Path) -> None:
    """A QA finding: a reflink --apply stopped (Ctrl-C, SIGTERM) part way, run again
    before a scan, listed every copy the first run cloned as "changed since the scan
    (rescan first)" and exited 8 (a clone is a new inode). They count as done before it,
    as the copies a hard-link run linked do; a clone edited since is still skipped."""
    root = xfs / "lib"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    for n in range(4):
        data = os.urandom(200_000)
        (root / "a" / f"{n}.mov").write_bytes(data)
        (root / "b" / f"{n}.mov").write_bytes(data)
        os.utime(root / "a" / f"{n}.mov", (1_500_000_000, 1_500_000_000))
    catalog = xfs / "state" / "cat.duckdb"
    assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
    p = _run_driver(_SIGTERM_ON_SECOND_STEP, catalog, "dedupe", "--apply", "--action", "reflink")
    assert p.returncode == 143 and "2 files reflinked" in p.stdout.decode(), (p.stdout, p.stderr)
    first = _journal_done(xfs / "state" / "journal")
    assert len(first) == 2
    edited = root / "b" / first[0]
    st = edited.stat()
    with open(edited, "r+b") as f:  # an edit in place, its times put back: still skipped
        f.write(b"\0" * 16)
    os.utime(edited, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    out = _apply(catalog, "--action", "reflink")
    assert (out["done"], out["already_linked"]) == (2, 1), out
    assert [(Path(s["path"]).name, s["why"]) for s in out["skipped"]] == [
        (first[0], "changed since the scan (rescan first)")], out


def _journal_done(folder: Path) -> list[str]:
    """The names of the copies the one journal in `folder` says were done, in order."""
    (journal,) = folder.glob("dedupe-*.jsonl")
    done = [json.loads(line) for line in journal.read_text().splitlines()]
    return [os.path.basename(base64.b64decode(e["victim"])).decode() for e in done if e["kind"] == "done"]


def test_dry_run_names_stay_distinct_and_one_line_each(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    data = os.urandom(5000)
    names = [b"a.bin", b"bad\xff.bin", b"bad\xfe.bin", b"two\nlines.bin"]
    for i, n in enumerate(names):
        p = os.path.join(os.fsencode(root), n)
        with open(p, "wb") as f:
            f.write(data)
        os.utime(p, ns=(10**18 + i, 10**18 + i))  # a.bin is the oldest: kept
    catalog = tmp_path / "state" / "cat.duckdb"
    assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
    res = run_cli("dedupe", catalog=catalog)
    assert res.rc == 0, res.err
    acted = [line.split(" ", 1)[1] for line in res.out.splitlines() if line.startswith("      hardlink ")]
    assert sorted(os.path.basename(a) for a in acted) == ["bad\\xfe.bin", "bad\\xff.bin", "two\\nlines.bin"]
    # The kept file heads its group once, each other copy under it (a QA finding: the
    # heading was repeated before every copy).
    assert [line for line in res.out.splitlines() if line.startswith("[")] == [f"[1] keep {root}/a.bin"], res.out


# Runs the CLI with a real SIGINT sent to itself as the tags start to follow the kept
# files, once every file has been acted on and journalled, and another as it reports.
_SIGINT_AFTER_THE_FILES = """
import os, signal, sys
import mediaforge.dupes.dedupe as dedupe
from mediaforge._entry import main

real = dedupe.carry_over
def carry_over(cat, out):
    os.kill(os.getpid(), signal.SIGINT)
    return real(cat, out)
dedupe.carry_over = carry_over

# And a second one as the report starts, as `timeout -s INT` sends one to the command and
# one to its process group.
import mediaforge.cli.app as app
real_report = app._print_outcome
def report(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGINT)
    return real_report(*args, **kwargs)
app._print_outcome = report
sys.argv = ["mediaforge", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("as_json", [False, True])
def test_ctrl_c_after_the_files_were_acted_on_still_reports_the_journal(lib, as_json: bool) -> None:
    root, catalog = lib
    assert run_cli("tag", "add", "keepme", root / "b", catalog=catalog).rc == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAFORGE_")}
    env["MEDIAFORGE_CATALOG"] = str(catalog)
    p = subprocess.run([sys.executable, "-c", _SIGINT_AFTER_THE_FILES, "dedupe", "--apply",
                        *(["--json"] if as_json else [])], capture_output=True, env=env, timeout=120)
    out, err = p.stdout.decode(), p.stderr.decode()
    assert p.returncode == 130, err
    assert err.count("\n") == 1 and "interrupted" in err and "Traceback" not in err
    journal = next((catalog.parent / "journal").iterdir())
    if as_json:
        report = json.loads(out)
        assert (report["done"], report["journal"]) == (3, str(journal))
    else:
        assert "3 files hard-linked" in out and str(journal) in out and \
            f"mediaforge -c {catalog} dedupe --undo {journal}" in out
    # The undo it names puts every file back.
    assert run_cli("dedupe", "--undo", journal, catalog=catalog).rc == 0
    assert len({(root / "b" / n).stat().st_ino for n in ("photo copy.jpg", "photo (2).jpg")}
               | {(root / "a" / "photo.jpg").stat().st_ino}) == 3


def _driver(prelude: str) -> str:
    """A command line run in a child process, with `prelude` (fault injection: a real
    signal, a real write to a file) run first."""
    return f"""
import os, signal, sys
import mediaforge.dupes.dedupe as dedupe
from mediaforge._entry import main
{prelude}
sys.argv = ["mediaforge", *sys.argv[1:]]
main()
"""


def _run_driver(prelude: str, catalog: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAFORGE_")}
    env["MEDIAFORGE_CATALOG"] = str(catalog)
    return subprocess.run([sys.executable, "-c", _driver(prelude), *args], capture_output=True, env=env, timeout=120)


# A save to the copy about to be linked, landing after its bytes were compared: the
# comparison said "equal", and acting would lose the edit.
_EDIT_DURING_COMPARE = """
real = dedupe.same_bytes
def same_bytes(a, b, stop=None):
    equal = real(a, b, stop)
    with open(b, "r+b") as f:
        f.write(b"USER EDIT")
    return equal
dedupe.same_bytes = same_bytes
"""


def test_a_file_saved_while_it_is_compared_is_left_alone(lib) -> None:
    root, catalog = lib
    p = _run_driver(_EDIT_DURING_COMPARE, catalog, "dedupe", "--apply", "--json")
    assert p.returncode == 8, p.stderr
    out = json.loads(p.stdout)
    assert out["done"] == 0
    assert {why for why in (s["why"] for s in out["skipped"])} == {"changed while it was being compared (rescan first)"}
    for victim in ("photo copy.jpg", "photo (2).jpg", "song.mp3"):
        data = (root / "b" / victim).read_bytes()
        assert data.startswith(b"USER EDIT") and (root / "b" / victim).stat().st_nlink == 1


_SIGTERM_ON_SECOND_STEP = """
real = dedupe._act
calls = []
def act(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGTERM)
    return real(*args, **kwargs)
dedupe._act = act
"""


@pytest.mark.parametrize("command", ["apply", "undo"])
def test_sigterm_stops_dedupe_and_undo_as_cleanly_as_ctrl_c(lib, command: str) -> None:
    """SIGTERM (a shutdown, `kill`) finishes the file at hand, prints what was done, the
    journal and the undo command, and exits 143; nothing is left half done."""
    root, catalog = lib
    args = ["dedupe", "--apply"]
    if command == "undo":
        assert run_cli("dedupe", "--apply", catalog=catalog).rc == 0
        journal = next((catalog.parent / "journal").iterdir())
        prelude = _SIGTERM_ON_SECOND_STEP.replace("dedupe._act", "dedupe._unlink")
        args = ["dedupe", "--undo", str(journal)]
    else:
        prelude = _SIGTERM_ON_SECOND_STEP
    p = _run_driver(prelude, catalog, *args)
    out, err = p.stdout.decode(), p.stderr.decode()
    assert p.returncode == 143, err
    assert_one_line_error(err, "terminated")
    verb = "restored" if command == "undo" else "hard-linked"
    assert f"2 files {verb}" in out and "journal" in out
    assert not [n for n in os.listdir(root / "b") if n.startswith(".mediaforge-")]
    assert run_cli("dedupe", "--undo", next((catalog.parent / "journal").iterdir()), catalog=catalog).rc == 0


@pytest.mark.parametrize("action", ["hardlink", "symlink"])
def test_an_apply_stopped_by_ctrl_c_and_run_again_finishes_without_skips(lib, action: str) -> None:
    """A QA finding: the rerun an interrupted apply asks for found each copy the first run
    had linked "changed since the scan (rescan first)" (the catalog still has it as the
    scan saw it), and exited 8. It is what the action makes of it: counted apart."""
    root, catalog = lib
    p = _run_driver(_SIGTERM_ON_SECOND_STEP.replace("SIGTERM", "SIGINT"), catalog, "dedupe", "--apply", "--action",
                    action)
    assert p.returncode == 130, p.stderr
    res = run_cli("dedupe", "--apply", "--action", action, "--json", catalog=catalog)
    assert res.rc == 0, res.out
    out = json.loads(res.out)
    assert (out["done"], out["already_linked"], out["skipped"]) == (1, 2, []), out
    kept = {"photo copy.jpg": "a/photo.jpg", "photo (2).jpg": "a/photo.jpg", "song.mp3": "a/song.mp3"}
    for name, keep in kept.items():
        assert os.path.samefile(root / "b" / name, root / keep)
        assert (root / "b" / name).is_symlink() == (action == "symlink")
    # What the dry run says of them, and the text summary.
    dry = run_cli("dedupe", "--action", action, catalog=catalog)
    assert dry.rc == 0 and dry.out.count("already linked to it") == 3 and "skip" not in dry.out, dry.out
    assert "0 files would be" in dry.out and "; 3 already linked;" in dry.out, dry.out
    dry = json.loads(run_cli("dedupe", "--action", action, "--json", catalog=catalog).out)
    assert (dry["already_linked"], dry["steps"], dry["skipped"], dry["reclaimable"]) == (3, [], [], 0), dry
    journals = sorted((catalog.parent / "journal").iterdir())
    again = run_cli("dedupe", "--apply", "--action", action, catalog=catalog)
    assert again.rc == 0 and "0 files " in again.out and "(3 linked before this run)" in again.out, again.out
    # A QA finding: a run that acted on nothing left a journal and an undo command for it.
    assert "journal" not in again.out and "undo" not in again.out, again.out
    assert sorted((catalog.parent / "journal").iterdir()) == journals
    # Each run's journal undoes what that run did, newest first.
    for journal in sorted((catalog.parent / "journal").iterdir(), reverse=True):
        assert run_cli("dedupe", "--undo", journal, catalog=catalog).rc == 0
    assert all(not os.path.samefile(root / "b" / name, root / keep) for name, keep in kept.items())


def _three_linked_copies(tmp_path: Path, *apply_args: str) -> tuple[Path, Path, dict, bytes]:
    """A kept file and three hard links of one copy of it, hard-linked to the kept file
    by a dedupe (or as `apply_args` say): (library, catalog, the dedupe's summary, the
    bytes)."""
    root, catalog, data = _three_linked_copies_scanned(tmp_path)
    out = _apply(catalog, *apply_args)
    assert out["done"] == 3
    return root, catalog, out, data


def _three_linked_copies_scanned(tmp_path: Path) -> tuple[Path, Path, bytes]:
    """A kept file `a/keep.jpg` and three hard links `b/c1..c3.jpg` of one copy of it,
    scanned: (library, catalog, the bytes)."""
    root = tmp_path / "lib"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    data = os.urandom(30_000)
    (root / "a" / "keep.jpg").write_bytes(data)
    (root / "b" / "c1.jpg").write_bytes(data)
    for n in ("c2.jpg", "c3.jpg"):
        os.link(root / "b" / "c1.jpg", root / "b" / n)
    catalog = tmp_path / "state" / "cat.duckdb"
    assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
    return root, catalog, data


def _undo_stopped_after(catalog: Path, journal: str, files: int) -> None:
    """Run the undo and stop it (SIGTERM) while it restores file number `files`."""
    step = _SIGTERM_ON_SECOND_STEP.replace("dedupe._act", "dedupe._unlink").replace("== 2", f"== {files}")
    p = _run_driver(step, catalog, "dedupe", "--undo", journal)
    assert p.returncode == 143 and f"{files} file{'s' if files > 1 else ''} restored" in p.stdout.decode(), p.stderr


def _inodes(root: Path) -> list[int]:
    return [os.stat(root / "b" / n).st_ino for n in ("c1.jpg", "c2.jpg", "c3.jpg")]


def test_an_undo_stopped_part_way_and_run_again_goes_on_where_it_stopped(tmp_path: Path,
                                                                        unprivileged: Unprivileged) -> None:
    """Three hard links of one copy, linked to the kept file by a dedupe; the undo is
    stopped (SIGTERM) after two of them. Run again, it counts those two as restored by
    the earlier undo (not as files saved there since) and links the third to them: the
    three names are one inode again. A journal the undo cannot write to is refused before
    anything is touched."""
    root, catalog, out, data = _three_linked_copies(tmp_path)
    journal = out["journal"]
    _undo_stopped_after(catalog, journal, 2)
    from conftest import cli_env

    unprivileged.share(catalog.parent, root)
    os.chmod(journal, 0o444)
    try:
        res = subprocess.run([shutil.which("mediaforge") or "mediaforge", "dedupe", "--undo", journal],
                             capture_output=True, text=True, env=cli_env(catalog), timeout=120, **unprivileged.popen)
    finally:
        os.chmod(journal, 0o644)
    assert res.returncode == 3 and res.stderr.count("\n") == 1, res.stderr
    assert "cannot write the dedupe journal" in res.stderr and "nothing was changed" in res.stderr
    assert os.stat(root / "b" / "c1.jpg").st_ino == os.stat(root / "a" / "keep.jpg").st_ino
    again = _undo(catalog, journal)
    assert (again["done"], again["already_restored"], again["skipped"]) == (1, 2, []), again
    assert len(set(_inodes(root))) == 1 and os.stat(root / "b" / "c1.jpg").st_nlink == 3
    assert _inodes(root)[0] != os.stat(root / "a" / "keep.jpg").st_ino
    assert (root / "b" / "c1.jpg").read_bytes() == data
    third = _undo(catalog, journal)
    assert (third["done"], third["already_restored"], third["skipped"]) == (0, 3, [])


def test_the_dry_run_names_copies_in_a_folder_this_user_cannot_write(lib, unprivileged: Unprivileged) -> None:
    """A QA note: the dry run listed as "would be hard-linked" copies in a folder the user
    may not write, which `--apply` then failed on, one by one."""
    from conftest import cli_env

    root, catalog = lib
    unprivileged.share(catalog.parent, root)
    os.chmod(root / "b", 0o555)
    try:
        res = subprocess.run([shutil.which("mediaforge") or "mediaforge", "dedupe", "--json"], capture_output=True,
                             text=True, env=cli_env(catalog), timeout=120, **unprivileged.popen)
    finally:
        os.chmod(root / "b", 0o755)
    assert res.returncode == 0, res.stderr
    plan = json.loads(res.stdout)
    assert plan["steps"] == [] and plan["reclaimable"] == 0, plan
    assert sorted((Path(s["path"]).name, "may not be written" in s["why"]) for s in plan["skipped"]) == [
        ("photo (2).jpg", True), ("photo copy.jpg", True), ("song.mp3", True)]


def test_an_undo_whose_journal_lines_were_lost_knows_the_files_it_restored(tmp_path: Path) -> None:
    """The undo restored every file, but its 'undone' lines never reached the disk (a
    crash, a full disk): run again, it finds the original files back (their mode, mtime
    and bytes) and counts them as restored, not as files saved there since."""
    root, catalog, out, _data = _three_linked_copies(tmp_path)
    journal = out["journal"]
    before = Path(journal).read_bytes()
    assert _undo(catalog, journal)["done"] == 3
    Path(journal).write_bytes(before)
    again = _undo(catalog, journal)
    assert (again["done"], again["already_restored"], again["skipped"]) == (0, 3, []), again
    assert len(set(_inodes(root))) == 1


@pytest.mark.parametrize("swapped", ["k", "v"])
def test_a_folder_swapped_for_a_link_to_the_other_is_no_link_made_before(tmp_path: Path, swapped: str) -> None:
    """A QA finding: the kept file's folder replaced by a link to the copy's (or the
    copy's by a link to the kept file's) made both paths one file, one name: "2 linked
    before this run", where nothing was linked. It is said as it is, and skipped."""
    root = tmp_path / "lib"
    for folder in ("k", "v"):
        (root / folder).mkdir(parents=True)
        for name in ("x.jpg", "y.jpg"):
            (root / folder / name).write_bytes(name.encode() * 5000)
    os.utime(root / "k" / "x.jpg", (1, 1))
    os.utime(root / "k" / "y.jpg", (1, 1))
    catalog = tmp_path / "state" / "cat.duckdb"
    assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
    other = "v" if swapped == "k" else "k"
    (root / swapped).rename(root / f"{swapped}.old")
    (root / swapped).symlink_to(other)
    res = run_cli("dedupe", "--apply", "--json", catalog=catalog)
    assert res.rc == 8, res.err
    out = json.loads(res.out)
    assert (out["done"], out["already_linked"], len(out["skipped"])) == (0, 0, 2), out
    assert all("is now this very file, by one name" in s["why"] for s in out["skipped"]), out


@pytest.mark.parametrize("action", ["hardlink", "move-to"])
@pytest.mark.parametrize("order", ["newest first", "oldest first"])
def test_undoing_a_stopped_run_and_its_rerun_makes_the_names_one_inode_again(tmp_path: Path, order: str,
                                                                             action: str) -> None:
    """A QA finding: three hard links of one copy; the dedupe (a move to another disk)
    killed after two, run again for the third; both journals undone: the first two came
    back one inode, the third a copy of its own (the space doubled, the link lost). Each
    undo links to the names the other's restored, as within one journal."""
    root, catalog, data = _three_linked_copies_scanned(tmp_path)
    args = ["--action", action]
    away = _elsewhere(tmp_path, "mf-rerun-") if action == "move-to" else None
    if away is not None:
        args += ["--to", str(away)]
    try:
        p = _run_driver(_KILL_AFTER_TWO_STEPS, catalog, "dedupe", "--apply", *args)
        assert p.returncode == -signal.SIGKILL, p.stderr
        again = _apply(catalog, *args)
        assert (again["done"], again["already_linked"]) == (1, 2), again
        journals = sorted((catalog.parent / "journal").iterdir(), reverse=order == "newest first")
        assert len(journals) == 2
        for journal in journals:
            assert _undo(catalog, str(journal))["skipped"] == []
    finally:
        if away is not None:
            shutil.rmtree(away)
    inodes = _inodes(root)
    assert len(set(inodes)) == 1 and os.stat(root / "b" / "c1.jpg").st_nlink == 3, inodes
    assert inodes[0] != os.stat(root / "a" / "keep.jpg").st_ino
    assert (root / "b" / "c3.jpg").read_bytes() == data


# Killed once the undo's copy of the bytes is whole under its hidden name, before it
# takes the file's.
_KILL_AFTER_THE_UNDO_S_COPY = """
real = dedupe._copy_new
def copy_new(src, dst):
    real(src, dst)
    os.kill(os.getpid(), signal.SIGKILL)
dedupe._copy_new = copy_new
"""


def test_an_undo_killed_in_a_copy_leaves_no_hidden_copy_once_run_again(lib) -> None:
    """A QA finding: kill -9 in the undo of a hard-link dedupe left a hidden 0600 copy of
    the whole file beside it, which the undo run again did not remove (a temporary goes
    only once untouched for ten minutes, its writer unknown). The journal names the runs
    that worked on it: their temporaries go at once."""
    root, catalog = lib
    out = _apply(catalog)
    p = _run_driver(_KILL_AFTER_THE_UNDO_S_COPY, catalog, "dedupe", "--undo", out["journal"])
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert list((root / "b").glob(".mediaforge-*.tmp")), os.listdir(root / "b")
    back = _undo(catalog, out["journal"])
    assert back["skipped"] == [] and back["done"] == 3, back
    assert not list(root.rglob(".mediaforge-*.tmp")), list(root.rglob("*"))
    assert all((root / "b" / n).stat().st_nlink == 1 for n in os.listdir(root / "b"))
    # A journal an undo began is one an undo worked on: no carry-over at the next scan.
    assert '"kind": "undoing"' in Path(out["journal"]).read_text()


# Killed once the first copy is replaced, before its old inode (kept under a hidden name
# until the kept file is seen whole) goes.
_KILL_ONCE_A_COPY_IS_REPLACED = """
dedupe._kept_whole = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("action", ["hardlink", "symlink"])
def test_a_rerun_after_a_kill_sweeps_the_hidden_copy_the_killed_run_left(lib, action: str) -> None:
    """A QA finding: kill -9 of an --apply right after a copy was replaced left its old
    inode under a hidden `.mediaforge-*.tmp` name beside it (a whole copy's bytes); the
    rerun, finding that copy done, wrote no temporary there, so nothing swept it, not
    even ten minutes on. The next --apply removes what killed runs its journals name
    left, as their undo would."""
    root, catalog = lib
    p = _run_driver(_KILL_ONCE_A_COPY_IS_REPLACED, catalog, "dedupe", "--apply", "--action", action)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert list(root.rglob(".mediaforge-*.tmp")), list(root.rglob("*"))
    again = _apply(catalog, "--action", action)
    assert again["skipped"] == [], again
    assert not list(root.rglob(".mediaforge-*.tmp")), list(root.rglob("*"))
    # The killed run's journal is marked swept (not read whole at every --apply again),
    # and its undo still puts every copy back.
    (killed,) = [j for j in (catalog.parent / "journal").glob("*.jsonl") if j.name != Path(again["journal"]).name]
    assert json.loads(killed.read_text().splitlines()[-1]) == {"kind": "swept"}
    assert _undo(catalog, again["journal"])["skipped"] == []
    undone = _undo(catalog, str(killed))
    assert undone["skipped"] == [] and undone["done"] >= 1, undone
    assert sorted(p.name for p in (root / "b").iterdir()) == ["photo (2).jpg", "photo copy.jpg", "song.mp3"]
    assert all((root / "b" / n).stat().st_nlink == 1 for n in os.listdir(root / "b"))
    # Every content is still there, once at least, outside the trash.
    for name, size in (("photo.jpg", 40_000), ("song.mp3", 9_000), ("unique.png", 500)):
        assert (root / "a" / name).stat().st_size == size


def test_an_undo_counts_the_bytes_it_puts_back_once_an_inode(tmp_path: Path) -> None:
    """A QA finding: three names of one copy, restored as one inode again, counted three
    times in the undo's `bytes` (54 KB put back where the dedupe freed 27 KB)."""
    root, catalog, out, data = _three_linked_copies(tmp_path)
    back = _undo(catalog, out["journal"])
    assert (back["done"], back["bytes"]) == (3, len(data)), back
    assert len(set(_inodes(root))) == 1


def test_an_undo_run_again_after_a_restored_twin_was_replaced_or_edited(tmp_path: Path) -> None:
    """The first restored name replaced by a new file before the rerun: the other two come
    back as one inode, and the new file is left alone. A restored name edited in place
    before the rerun: the last one gets a copy of its own with the original bytes."""
    root, catalog, out, data = _three_linked_copies(tmp_path)
    journal = out["journal"]
    _undo_stopped_after(catalog, journal, 1)  # c3 restored
    (root / "b" / "c3.jpg").unlink()
    (root / "b" / "c3.jpg").write_bytes(b"saved since")
    again = _undo(catalog, journal)
    assert (again["done"], again["already_restored"]) == (2, 1), again
    c1, c2, c3 = _inodes(root)
    assert c1 == c2 != c3 and (root / "b" / "c3.jpg").read_bytes() == b"saved since"
    assert (root / "b" / "c1.jpg").read_bytes() == data

    root, catalog, out, data = _three_linked_copies(tmp_path / "second")
    journal = out["journal"]
    _undo_stopped_after(catalog, journal, 2)  # c3 and c2, one inode
    with open(root / "b" / "c3.jpg", "r+b") as f:
        f.write(b"EDITED")
    again = _undo(catalog, journal)
    assert (again["done"], again["skipped"]) == (1, []), again
    c1, c2, c3 = _inodes(root)
    assert c2 == c3 != c1 and (root / "b" / "c1.jpg").read_bytes() == data
    assert c1 != os.stat(root / "a" / "keep.jpg").st_ino


def test_a_journal_without_its_last_newline_keeps_its_last_line(lib) -> None:
    """A journal saved without its final newline (by an editor): its last line is whole,
    and the undo ends it before adding its own lines, so the tags the dedupe carried
    over (the journal's last line) are taken back, by this undo and by any after it."""
    root, catalog = lib
    assert run_cli("tag", "add", "holiday", root / "b" / "photo copy.jpg", catalog=catalog).rc == 0
    out = _apply(catalog)
    assert out["tags_carried"] == 1
    journal = Path(out["journal"])
    journal.write_bytes(journal.read_bytes().rstrip(b"\n"))
    last = journal.read_text().splitlines()[-1]
    undone = _undo(catalog, str(journal))
    assert (undone["done"], undone["tags_carried"]) == (3, 1)  # the carried tag taken back, counted
    assert last in journal.read_text().splitlines()
    assert rows(catalog, "SELECT count(*) AS n FROM tags WHERE source = 'dedupe'") == [{"n": 0}]
    assert _undo(catalog, str(journal))["already_restored"] == 3


# kill -9 half way through copying a file to another file system.
_KILL_DURING_COPY = """
import shutil
def copyfileobj(src, dst, length=0):
    dst.write(src.read(1000))
    dst.flush()
    os.kill(os.getpid(), signal.SIGKILL)
shutil.copyfileobj = copyfileobj
"""


def test_a_crash_while_moving_across_file_systems_leaves_no_partial_file_under_a_real_name(lib,
                                                                                          tmp_path: Path) -> None:
    root, catalog = lib
    dest = _elsewhere(tmp_path, "mf-move-")
    try:
        before = _state(root)
        p = _run_driver(_KILL_DURING_COPY, catalog, "dedupe", "--apply", "--action", "move-to", "--to", str(dest))
        assert p.returncode == -9
        assert _state(root) == before  # every original whole
        names = [os.path.relpath(os.path.join(d, f), dest) for d, _, fs in os.walk(dest) for f in fs]
        assert all(os.path.basename(n).startswith(".mediaforge-") for n in names), names
        # The run again completes, and its undo brings every file back.
        res = run_cli("dedupe", "--apply", "--action", "move-to", "--to", dest, "--json", catalog=catalog)
        assert res.rc == 0 and json.loads(res.out)["done"] == 3, res.err
        journal = json.loads(res.out)["journal"]
        assert run_cli("dedupe", "--undo", journal, catalog=catalog).rc == 0
        assert {k: v[1] for k, v in _state(root).items()} == {k: v[1] for k, v in before.items()}
        # A left-over temporary is not catalogued by a scan.
        s = run_cli("scan", dest, "--no-meta", "--json", catalog=catalog)
        assert json.loads(s.out)["files_seen"] == 0
    finally:
        shutil.rmtree(dest)


_SIGTERM_ON_FIRST_UNMOVE = """
real = dedupe._unmove
def unmove(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    return real(*args, **kwargs)
dedupe._unmove = unmove
"""


def test_hard_links_moved_to_another_file_system_stay_links_there_and_back(tmp_path: Path) -> None:
    """Three names of one copy moved to a folder on another file system: one copy there,
    the other names hard links of it (its bytes are held once, as before); the undo,
    stopped after the first file and run again, brings them back as one inode too."""
    dest = _elsewhere(tmp_path, "mf-move-")
    try:
        root, catalog, out, data = _three_linked_copies(tmp_path, "--action", "move-to", "--to", str(dest))
        assert out["bytes"] == len(data), out
        moved = [os.lstat(os.path.join(dest, str(root / "b" / n).lstrip("/"))) for n in ("c1.jpg", "c2.jpg", "c3.jpg")]
        assert len({st.st_ino for st in moved}) == 1 and moved[0].st_nlink == 3
        p = _run_driver(_SIGTERM_ON_FIRST_UNMOVE, catalog, "dedupe", "--undo", out["journal"])
        assert p.returncode == 143 and "1 file restored" in p.stdout.decode(), (p.stdout, p.stderr)
        again = _undo(catalog, out["journal"])
        assert (again["done"], again["already_restored"], again["skipped"]) == (2, 1, []), again
        assert len(set(_inodes(root))) == 1 and os.stat(root / "b" / "c1.jpg").st_nlink == 3
        assert (root / "b" / "c2.jpg").read_bytes() == data
        assert not [f for _, _, fs in os.walk(dest) for f in fs]
    finally:
        shutil.rmtree(dest)


_SIGTERM_AFTER_FIRST_MOVE = """
real = dedupe._move
def move(*args, **kwargs):
    real(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGTERM)
dedupe._move = move
"""


@pytest.mark.parametrize("rescan", [False, True], ids=["run-again", "rescan-then-run-again"])
def test_a_move_stopped_after_one_name_and_run_again_links_the_other_names_to_it(tmp_path: Path,
                                                                                rescan: bool) -> None:
    """Three names of one copy moved to another file system, the run stopped after the
    first: run again (after a rescan too, when the moved name is a `missing` row and the
    two left have fewer links), the other names become hard links of the copy the first
    run made, not copies of their own."""
    root, catalog, data = _three_linked_copies_scanned(tmp_path)
    dest = _elsewhere(tmp_path, "mf-move-")
    try:
        args = ("dedupe", "--apply", "--action", "move-to", "--to", str(dest))
        p = _run_driver(_SIGTERM_AFTER_FIRST_MOVE, catalog, *args)
        assert p.returncode == 143 and "1 file moved" in p.stdout.decode(), (p.stdout, p.stderr)
        if rescan:
            assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
        out = _apply(catalog, "--action", "move-to", "--to", str(dest))
        assert out["done"] == 2, out
        moved = [os.lstat(os.path.join(dest, str(root / "b" / n).lstrip("/"))) for n in ("c1.jpg", "c2.jpg", "c3.jpg")]
        assert len({st.st_ino for st in moved}) == 1 and moved[0].st_nlink == 3
        assert not (root / "b").exists() or not list((root / "b").iterdir())
        assert (root / "a" / "keep.jpg").read_bytes() == data
    finally:
        shutil.rmtree(dest)


def _tiny_journal_disk(catalog: Path) -> Path:
    """A 4 KiB tmpfs where the catalog's dedupe journals go (unmount it after)."""
    disk = catalog.parent / "journal"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(disk)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
    return disk


def test_a_journal_that_fills_its_disk_stops_the_run_there(lib, tmp_path: Path) -> None:
    """The journal on a full disk: no step past the last one journalled, the report of
    what was done, then one line and exit 3; the undo it names restores everything."""
    root, catalog = lib
    for i in range(40):
        shutil.copy2(root / "a" / "unique.png", root / "b" / f"copy {i:02d}.png")
    assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
    disk = _tiny_journal_disk(catalog)
    try:
        res = run_cli("dedupe", "--apply", catalog=catalog)
        assert res.rc == 3
        assert_one_line_error(res.err, "cannot write the dedupe journal", "No space left")
        done = int(res.out.split(" files hard-linked")[0].split()[-1])
        assert 0 < done < 43
        linked = sum((root / "b" / n).stat().st_nlink > 1 for n in os.listdir(root / "b"))
        assert linked == done  # nothing acted on that the journal does not hold
        journal = next(disk.iterdir())
        copy = tmp_path / "journal copy.jsonl"
        copy.write_bytes(journal.read_bytes())
    finally:
        subprocess.run(["umount", str(disk)], check=False)
    assert run_cli("dedupe", "--undo", copy, catalog=catalog).rc == 0
    assert all((root / "b" / n).stat().st_nlink == 1 for n in os.listdir(root / "b"))


def test_a_journal_full_before_the_first_file_says_nothing_was_changed_and_goes(tmp_path: Path) -> None:
    """A QA finding: with room for the journal's first line alone, the run said "what was
    done is in it, undo with ..." of a journal that held nothing, and kept it. Paths of
    about 2,000 bytes make the first step's line longer than the 4 KiB disk."""
    deep = tmp_path / "lib"
    for i in range(8):
        deep = deep / (f"{i}" * 240)
    (deep / "a").mkdir(parents=True)
    (deep / "b").mkdir()
    data = os.urandom(5_000)
    (deep / "a" / "k.jpg").write_bytes(data)
    (deep / "b" / "v.jpg").write_bytes(data)
    catalog = tmp_path / "state" / "cat.duckdb"
    assert run_cli("scan", tmp_path / "lib", "--no-meta", catalog=catalog).rc == 0
    disk = _tiny_journal_disk(catalog)
    try:
        res = run_cli("dedupe", "--apply", "--keep", f"prefix:{deep / 'a'}", catalog=catalog)
        left = os.listdir(disk)
    finally:
        subprocess.run(["umount", str(disk)], check=False)
    assert res.rc == 3, res.err
    assert_one_line_error(res.err, "cannot write the dedupe journal", "No space left", "nothing was changed")
    assert "undo" not in res.err and "journal" not in res.out, (res.out, res.err)
    assert left == [] and os.stat(deep / "b" / "v.jpg").st_nlink == 1


def test_a_trash_run_that_moved_nothing_points_at_no_trash_folder(lib) -> None:
    """A QA finding: every copy skipped (gone since the scan), the summary still said the
    space comes back once the trash folder, never made, is deleted."""
    root, catalog = lib
    for name in ("photo copy.jpg", "photo (2).jpg", "song.mp3"):
        (root / "b" / name).unlink()
    res = run_cli("dedupe", "--apply", "--action", "trash", catalog=catalog)
    assert res.rc == 8, res.err
    assert "0 files trashed" in res.out and "the space comes back" not in res.out, res.out
    assert not (catalog.parent / "trash").exists()  # the dated folder made for it goes again, empty


def test_an_empty_plan_writes_no_journal_and_a_missing_prefix_folder_is_refused(lib) -> None:
    root, catalog = lib
    res = run_cli("dedupe", "--keep", f"prefix:{root / 'nosuch'}", catalog=catalog)
    assert res.rc == 3
    assert_one_line_error(res.err, "no such folder")
    # A file, or nothing, where the folder goes: a usage error, said as such (QA findings:
    # "no such folder" of a file there, exit 3 for nothing given).
    res = run_cli("dedupe", "--keep", f"prefix:{root / 'a' / 'photo.jpg'}", catalog=catalog)
    assert res.rc == 2
    assert_one_line_error(res.err, "that is a file, not a folder")
    res = run_cli("dedupe", "--keep", "prefix:", catalog=catalog)
    assert res.rc == 2
    assert_one_line_error(res.err, "give the folder whose copies to keep")
    assert run_cli("dedupe", "--apply", catalog=catalog).rc == 0
    journals = set(os.listdir(catalog.parent / "journal"))
    assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
    res = run_cli("dedupe", "--apply", catalog=catalog)  # everything is linked: nothing to do
    assert res.rc == 0 and res.out.strip() == "nothing to do: no duplicates to hardlink"
    assert set(os.listdir(catalog.parent / "journal")) == journals
    res = run_cli("dedupe", catalog=catalog)  # the dry run says so too
    assert res.rc == 0 and res.out.strip() == "nothing to do: no duplicates to hardlink"
    res = run_cli("dedupe", "--apply", "--json", catalog=catalog)  # every documented field, steps too
    assert json.loads(res.out) == {"done": 0, "already_linked": 0, "bytes": 0, "journal": None, "tags_carried": 0,
                                   "collections_carried": 0, "skipped": [], "steps": []}
    # Options an undo cannot take are refused, not ignored; so is a move onto itself.
    res = run_cli("dedupe", "--undo", next((catalog.parent / "journal").iterdir()), "--apply", "--keep", "newest",
                  catalog=catalog)
    assert res.rc == 2
    assert_one_line_error(res.err, "--undo reverses what its journal did, and takes no --keep, --apply")
    res = run_cli("dedupe", "--action", "move-to", "--to", "/", catalog=catalog)
    assert res.rc == 2
    assert_one_line_error(res.err, "--to /: each file would be moved onto itself")


def test_undo_with_the_catalog_busy_touches_no_file(lib) -> None:
    root, catalog = lib
    assert run_cli("dedupe", "--apply", catalog=catalog).rc == 0
    journal = next((catalog.parent / "journal").iterdir())
    linked = _state(root)
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); time.sleep(30)", str(catalog)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"held"
        res = run_cli("dedupe", "--undo", journal, catalog=catalog)
        assert res.rc == 4
        assert_one_line_error(res.err, "busy")
        assert _state(root) == linked
    finally:
        holder.kill()
        holder.communicate()
    assert run_cli("dedupe", "--undo", journal, catalog=catalog).rc == 0


def test_a_journal_missing_a_field_or_with_a_value_not_base64_says_which(lib, tmp_path: Path) -> None:
    """A QA finding: such a journal was refused, but in Python's words ("Only base64 data
    is allowed", "'atime_ns'"). The reason names what is wrong."""
    root, catalog = lib
    assert run_cli("dedupe", "--apply", catalog=catalog).rc == 0
    journal = next((catalog.parent / "journal").iterdir())
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    bad = tmp_path / "bad.jsonl"
    for change, said in ((lambda e: e.update(victim="!!!"), "a path or value that is not base64 ('!!!')"),
                         (lambda e: e.pop("atime_ns"), "a line without its 'atime_ns' field")):
        edited = [dict(e) for e in lines]
        for e in edited:
            if e["kind"] == "done":
                change(e)
        bad.write_text("".join(json.dumps(e) + "\n" for e in edited))
        res = run_cli("dedupe", "--undo", bad, catalog=catalog)
        assert res.rc == 2, res.err
        assert_one_line_error(res.err, f"{bad} is not a valid MediaForge dedupe journal: {said}")


def test_a_journal_with_times_out_of_range_is_refused(lib, tmp_path: Path) -> None:
    root, catalog = lib
    assert run_cli("dedupe", "--apply", catalog=catalog).rc == 0
    journal = next((catalog.parent / "journal").iterdir())
    bad = tmp_path / "bad.jsonl"
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    for e in lines:
        if "mtime_ns" in e:
            e["mtime_ns"] = 10**30
    bad.write_text("".join(json.dumps(e) + "\n" for e in lines))
    res = run_cli("dedupe", "--undo", bad, catalog=catalog)
    assert res.rc == 2
    assert_one_line_error(res.err, "out of range")
    # A mode that is no regular file's (its bits would go onto the restored copy: 0o377 of
    # 99999999, writable by everyone), numbers that are not whole, a path that is none.
    victims = _state(root)
    for field, wrong in (("mode", 99999999), ("mode", 0o40755), ("mode", 0o100644 | 0o1000000), ("mode", "33188"),
                         ("mode", 33188.0), ("atime_ns", "0"), ("victim", ""), ("victim", "YQ=="), ("keep", "")):
        for e in lines:
            if "mtime_ns" in e:
                e["mtime_ns"], e[field] = 0, wrong
        bad.write_text("".join(json.dumps(e) + "\n" for e in lines))
        res = run_cli("dedupe", "--undo", bad, catalog=catalog)
        assert res.rc == 2, (field, wrong, res.err)
        assert_one_line_error(res.err, "not a valid MediaForge dedupe journal")
        lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert _state(root) == victims
    # The inode each copy had before (to link hard links again on undo): whole numbers only.
    for wrong in (1.5, True, "5", 2**64, -1):
        for e in lines:
            if "mtime_ns" in e:
                e["mtime_ns"], e["was_ino"] = 0, wrong
        bad.write_text("".join(json.dumps(e) + "\n" for e in lines))
        res = run_cli("dedupe", "--undo", bad, catalog=catalog)
        assert res.rc == 2, (wrong, res.err)
        assert_one_line_error(res.err, "journal")


def test_a_move_to_folder_inside_the_library_is_refused(lib) -> None:
    """Moved into the library, the copies would be catalogued as duplicates again at the
    next scan, and moved again, nested deeper: refused, dry run included."""
    root, catalog = lib
    before = _state(root)
    for args in (["--action", "move-to", "--to", str(root / "dupes")], ["--action", "move-to", "--to", str(root)],
                 ["--action", "move-to", "--to", str(root / "dupes"), "--apply"]):
        res = run_cli("dedupe", *args, catalog=catalog)
        assert res.rc == 2
        assert_one_line_error(res.err, "inside", "choose a folder outside it")
    assert _state(root) == before and not (root / "dupes").exists()
    # A QA finding: the library reached through a bind mount passed (one folder, one inode).
    view = root.parent / "view"
    view.mkdir()
    r = subprocess.run(["mount", "--bind", str(root), str(view)], capture_output=True, text=True)
    assert r.returncode == 0, f"a bind mount needs root: {r.stderr}"
    # A review finding: nor did a bind mount of a folder inside it (the mount is that
    # folder, not the library's).
    inner = root.parent / "inner view"
    inner.mkdir()
    r = subprocess.run(["mount", "--bind", str(root / "b"), str(inner)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    try:
        for to in (view, view / "dupes", view / "b", inner, inner / "dupes"):
            res = run_cli("dedupe", "--action", "move-to", "--to", to, "--apply", catalog=catalog)
            assert res.rc == 2, (to, res.err)
            assert_one_line_error(res.err, "inside", "choose a folder outside it")
    finally:
        for mounted in (view, inner):
            subprocess.run(["umount", str(mounted)], check=False)
    assert _state(root) == before


def test_a_move_to_folder_among_the_catalogs_own_is_refused(lib) -> None:
    """A QA finding: copies moved into the search index's folder were deleted by the next
    `search --reindex`, and their undo found them gone. The thumbnail folder, the journals
    and the trash beside the catalog are refused too, dry run included, through a link too."""
    from mediaforge.config import search_dir, thumbs_dir

    root, catalog = lib
    assert run_cli("search", "--reindex", "photo", catalog=catalog).rc in (0, 1)
    before = _state(root)
    (catalog.parent / "link").symlink_to(search_dir(catalog))
    for to in (search_dir(catalog), search_dir(catalog) / "x", thumbs_dir(catalog), catalog.parent / "journal",
               catalog.parent / "trash" / "sub", catalog.parent / "link" / "y"):
        for apply in ([], ["--apply"]):
            res = run_cli("dedupe", "--action", "move-to", "--to", to, *apply, catalog=catalog)
            assert res.rc == 2, (to, res.err)
            assert_one_line_error(res.err, "inside the catalog's own folders")
    # trash/ beside the catalog a link to another disk: refused there too.
    (tmp_path := catalog.parent.parent / "big").mkdir()
    (catalog.parent / "trash").symlink_to(tmp_path)
    res = run_cli("dedupe", "--action", "move-to", "--to", catalog.parent / "trash" / "x", catalog=catalog)
    assert res.rc == 2 and "inside the catalog's own folders" in res.err, res.err
    res = run_cli("dedupe", "--action", "move-to", "--to", tmp_path / "y", catalog=catalog)
    assert res.rc == 2 and "inside the catalog's own folders" in res.err, res.err
    assert _state(root) == before
    assert not (catalog.parent / "journal").exists() and not (search_dir(catalog) / "x").exists()


def test_a_full_disk_while_journalling_the_carried_tags_keeps_the_journal(lib, tmp_path: Path) -> None:
    """The files are acted on and journalled, then the line of the tags carried over does
    not fit: the journal stays whole (it once was deleted, with every step in it), the
    tags stay where they were, the report and undo command are printed, and exit 3."""
    root, catalog = lib
    import duckdb

    con = duckdb.connect(str(catalog))  # many tags at once: the carried line outgrows the disk
    (mid,) = con.execute("SELECT media_id FROM files WHERE name = 'song.mp3' AND dir LIKE '%/b'").fetchone()
    con.execute("INSERT INTO tags SELECT ?, 'bulk/' || range, 'user', 'me', now()::TIMESTAMP FROM range(300)", [mid])
    con.close()
    disk = _tiny_journal_disk(catalog)
    try:
        res = run_cli("dedupe", "--apply", catalog=catalog)
        assert res.rc == 3, res.err
        assert_one_line_error(res.err, "cannot write the dedupe journal")
        assert "3 files hard-linked" in res.out and "undo with" in res.out
        journal = next(disk.iterdir())
        copy = tmp_path / "journal copy.jsonl"
        copy.write_bytes(journal.read_bytes())
    finally:
        subprocess.run(["umount", str(disk)], check=False)
    assert rows(catalog, "SELECT count(*) AS n FROM tags WHERE source = 'dedupe'")[0]["n"] == 0
    assert run_cli("dedupe", "--undo", copy, catalog=catalog).rc == 0
    assert all((root / "b" / n).stat().st_nlink == 1 for n in os.listdir(root / "b"))



def test_undo_takes_back_carried_tags_after_a_scan_gave_the_kept_row_an_older_id(tmp_path: Path) -> None:
    """A scan after the dedupe took the kept file for a moved one and handed its row an
    older id: undo looked for the carried tag under the id the journal named, found
    nothing, and left it on the kept file."""
    lib = tmp_path / "lib"
    for d in ("o", "v", "k"):
        (lib / d).mkdir(parents=True)
    data = b"\xff\xd8\xff\xe0" + os.urandom(4000)
    (lib / "o" / "x.jpg").write_bytes(data)
    (lib / "v" / "x.jpg").write_bytes(data)
    catalog = tmp_path / "cat.duckdb"
    assert run_cli("scan", "--no-meta", lib, catalog=catalog).rc == 0
    (lib / "k" / "x.jpg").write_bytes(data)
    assert run_cli("scan", "--no-meta", lib / "k", catalog=catalog).rc == 0
    assert run_cli("tag", "add", "vac", lib / "v" / "x.jpg", catalog=catalog).rc == 0
    res = run_cli("dedupe", "--keep", f"prefix:{lib / 'k'}", "--apply", "--json", catalog=catalog)
    assert res.rc == 0, res.err
    out = json.loads(res.out)
    assert out["tags_carried"] == 1
    (lib / "o" / "x.jpg").unlink()
    res = run_cli("scan", "--no-meta", lib, "--json", catalog=catalog)
    assert res.rc == 0 and json.loads(res.out)["moved"] == 1, res.out
    assert run_cli("dedupe", "--undo", out["journal"], catalog=catalog).rc == 8  # one file skipped
    got = {Path(r["path"]).parent.name: r["tags"] for r in rows(catalog, "SELECT path, tags FROM library")}
    assert got["k"] == [] and got["v"] == ["vac"], got


def test_undo_leaves_a_collection_place_of_another_file_moved_onto_the_kept_path(tmp_path: Path) -> None:
    """Undo looked the kept file up by its path and took the carried place from whatever
    row was there: another file moved onto that path since, put in the collection by the
    user, lost its place."""
    lib = tmp_path / "lib"
    for d in ("k", "sub"):
        (lib / d).mkdir(parents=True)
    data = b"\xff\xd8\xff\xe0" + os.urandom(4000)
    (lib / "k" / "a.jpg").write_bytes(data)
    (lib / "b.jpg").write_bytes(data)
    (lib / "u.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(3000))
    catalog = tmp_path / "cat.duckdb"
    assert run_cli("scan", "--no-meta", lib, catalog=catalog).rc == 0
    for args in (("collection", "create", "C"), ("collection", "add", "C", lib / "b.jpg")):
        assert run_cli(*args, catalog=catalog).rc == 0
    res = run_cli("dedupe", "--keep", f"prefix:{lib / 'k'}", "--action", "move-to", "--to", tmp_path / "moved",
                  "--apply", "--json", catalog=catalog)
    assert res.rc == 0 and json.loads(res.out)["collections_carried"] == 1, res.out + res.err
    journal = json.loads(res.out)["journal"]
    (lib / "k" / "a.jpg").rename(lib / "sub" / "a.jpg")
    (lib / "u.jpg").rename(lib / "k" / "a.jpg")  # another file now at the kept path
    assert run_cli("scan", "--no-meta", lib, catalog=catalog).rc == 0
    assert run_cli("collection", "add", "C", lib / "k" / "a.jpg", catalog=catalog).rc == 0  # the user's own
    assert run_cli("dedupe", "--undo", journal, catalog=catalog).rc == 0
    members = {Path(r["path"]).relative_to(lib).as_posix()
               for r in rows(catalog, "SELECT f.path FROM collection_items i JOIN files f USING (media_id)")}
    # The carried place left the kept file (moved to sub/); the user's own on k/a.jpg stays.
    assert "k/a.jpg" in members and "sub/a.jpg" not in members, members


def test_journal_lines_end_at_newlines_only_and_a_line_cut_in_a_character_is_dropped(lib, tmp_path: Path) -> None:
    """A --to folder named with U+2028 and U+0085 (JSON leaves them as they are, and they
    break lines for `splitlines`): the journal still reads, and the undo brings the files
    back. A last line a crash cut inside a multi-byte character is a line cut short."""
    root, catalog = lib
    before = _state(root)
    dest = tmp_path / "to\u2028x\u0085y"
    out = _apply(catalog, "--action", "move-to", "--to", str(dest))
    assert out["done"] == 3
    journal = Path(out["journal"])
    lines = journal.read_bytes().split(b"\n")
    cut = json.dumps({"kind": "carried", "tags": [["x", "Ürlaub-Ä"]]}, ensure_ascii=False).encode()
    journal.write_bytes(journal.read_bytes() + cut[:cut.index("Ä".encode()) + 1])
    assert len(lines) > 3
    undone = _undo(catalog, str(journal))
    assert (undone["done"], undone["skipped"]) == (3, [])
    assert _state(root).keys() == before.keys()
    assert {k: v[1] for k, v in _state(root).items()} == {k: v[1] for k, v in before.items()}


def test_undo_after_the_library_was_copied_with_its_hard_links(lib, tmp_path: Path) -> None:
    """`cp -a` of the library after a hardlink dedupe keeps the links but gives new inode
    numbers: the victims are still names of the kept files, so the undo restores them
    (their bytes checked), and never counts them as restored already."""
    root, catalog = lib
    out = _apply(catalog)
    assert out["done"] == 3
    copy = tmp_path / "lib-copy"
    subprocess.run(["cp", "-a", str(root), str(copy)], check=True)
    shutil.rmtree(root)
    copy.rename(root)
    assert os.stat(root / "b" / "photo copy.jpg").st_ino == os.stat(root / "a" / "photo.jpg").st_ino
    undone = _undo(catalog, out["journal"])
    assert (undone["done"], undone["already_restored"], undone["skipped"]) == (3, 0, [])
    inodes = [p.stat().st_ino for p in root.rglob("*") if p.is_file()]
    assert len(set(inodes)) == len(inodes)


def test_sidecars_alike_are_each_their_photos_and_no_duplicates_unless_asked_for(tmp_path: Path) -> None:
    """Two photos tagged alike have XMP sidecars with the same bytes: neither `dupes` nor
    `dedupe` offers to link them (each is its own photo's), unless `--kind sidecar` asks."""
    root = tmp_path / "lib"
    root.mkdir()
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:subject><rdf:Bag><rdf:li>paris</rdf:li>'
           b'</rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>')
    for name in ("a", "b"):
        (root / f"{name}.jpg").write_bytes(os.urandom(3_000))
        (root / f"{name}.jpg.xmp").write_bytes(xmp)
    shutil.copy(root / "a.jpg", root / "a copy.jpg")
    catalog = tmp_path / "c.duckdb"
    assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
    listed = json.loads(run_cli("dupes", "--format", "json", catalog=catalog).out)
    assert sorted(os.path.basename(r["path"]) for r in listed) == ["a copy.jpg", "a.jpg"]
    plan = json.loads(run_cli("dedupe", "--json", catalog=catalog).out)
    assert [os.path.basename(s["hardlink"]) for s in plan["steps"]] == ["a copy.jpg"]
    asked = json.loads(run_cli("dedupe", "--kind", "sidecar", "--json", catalog=catalog).out)
    assert [os.path.basename(s["hardlink"]) for s in asked["steps"]] == ["b.jpg.xmp"]
    listed = json.loads(run_cli("dupes", "--kind", "sidecar", "--format", "json", catalog=catalog).out)
    assert sorted(os.path.basename(r["path"]) for r in listed) == ["a.jpg.xmp", "b.jpg.xmp"]


_KILL_AFTER_TWO_STEPS = """
real = dedupe._act
acted = []
def act(*args, **kwargs):
    why = real(*args, **kwargs)
    acted.append(why)
    if len(acted) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return why
dedupe._act = act
"""


def test_carried_tags_and_places_are_dated_in_utc_in_any_time_zone(lib) -> None:
    """`tags.added_at` and `collection_items.added_at` of what a dedupe carries over are
    UTC, as the docs say, on a machine whose clock is set to another zone too."""
    from datetime import datetime, timezone

    from conftest import cli_env

    root, catalog = lib
    copy = root / "b" / "song.mp3"
    assert run_cli("tag", "add", "mix", copy, catalog=catalog).rc == 0
    assert run_cli("collection", "create", "Album", catalog=catalog).rc == 0
    assert run_cli("collection", "add", "Album", copy, catalog=catalog).rc == 0
    res = run_cli("dedupe", "--apply", "--action", "trash", "--keep", "prefix:" + str(root / "a"),
                  env=cli_env(catalog, TZ="Pacific/Kiritimati"))  # UTC+14
    assert res.rc == 0, res.err
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    got = rows(catalog, "SELECT t.added_at FROM tags t JOIN files f USING (media_id) WHERE f.path LIKE '%/a/song.mp3' "
                        "UNION ALL SELECT i.added_at FROM collection_items i JOIN files f USING (media_id) "
                        "WHERE f.path LIKE '%/a/song.mp3'")
    assert len(got) == 2 and all(abs((r["added_at"] - now).total_seconds()) < 600 for r in got), (got, now)


@pytest.mark.parametrize("prune", [False, True])
def test_undo_takes_back_a_carried_tag_only_while_the_copy_still_holds_it(lib, prune: bool) -> None:
    """A tag and a collection place carried to the kept file are taken back by the undo
    while the copy's row is in the catalog (the copy comes back to them; one the user took
    off the copy since is taken back all the same). After a `scan --prune` deleted that
    row, the kept file holds the only ones left: the undo keeps them, as it does a tag
    the user added to the kept file since."""
    root, catalog = lib
    copy = root / "b" / "song.mp3"
    assert run_cli("tag", "add", "mix", copy, catalog=catalog).rc == 0
    assert run_cli("tag", "add", "mine", copy, catalog=catalog).rc == 0
    assert run_cli("tag", "add", "gone", copy, catalog=catalog).rc == 0
    assert run_cli("collection", "create", "Album", catalog=catalog).rc == 0
    assert run_cli("collection", "add", "Album", copy, catalog=catalog).rc == 0
    out = _apply(catalog, "--action", "trash", "--keep", "prefix:" + str(root / "a"))
    assert (out["tags_carried"], out["collections_carried"]) == (3, 1), out
    assert run_cli("tag", "add", "mine", root / "a" / "song.mp3", catalog=catalog).rc == 0  # the user's now
    res = run_cli("tag", "remove", "gone", copy, catalog=catalog)  # (its row: the file is in the trash)
    assert res.rc == 0, res.err
    assert run_cli("scan", root, "--no-meta", *(["--prune"] if prune else []), catalog=catalog).rc == 0
    undone = _undo(catalog, out["journal"])
    assert (undone["tags_carried"], undone["collections_carried"]) == ((0, 0) if prune else (2, 1)), undone
    assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
    tagged = rows(catalog, "SELECT f.name, f.path, t.tag FROM tags t JOIN files f USING (media_id) "
                           "WHERE f.name = 'song.mp3' ORDER BY ALL")
    where = {(Path(r["path"]).parent.name, r["tag"]) for r in tagged}
    assert ("a", "mine") in where and (("a", "mix") in where) == prune and (("b", "mix") in where) != prune
    assert (("a", "gone") in where) == prune and ("b", "gone") not in where
    members = json.loads(run_cli("collection", "show", "Album", "-f", "json", catalog=catalog).out)
    assert [Path(m["path"]).parent.name for m in members] == (["a"] if prune else ["b"]), members


def test_an_undo_stopped_part_way_leaves_the_tags_of_copies_not_restored(tmp_path: Path) -> None:
    """Tags carried from copies an undo did not get to stay on the kept file, which still
    stands for them; the undo run again takes them back."""
    root, catalog, data = _three_linked_copies_scanned(tmp_path)
    for n in ("c1.jpg", "c2.jpg", "c3.jpg"):
        assert run_cli("tag", "add", f"t/{n}", root / "b" / n, catalog=catalog).rc == 0
    out = _apply(catalog, "--action", "symlink")
    assert out["tags_carried"] == 3, out
    _undo_stopped_after(catalog, out["journal"], 1)
    left = {r["tag"] for r in rows(catalog, "SELECT tag FROM tags WHERE source = 'dedupe'")}
    assert len(left) == 2, left
    assert _undo(catalog, out["journal"])["tags_carried"] == 2
    assert not rows(catalog, "SELECT tag FROM tags WHERE source = 'dedupe'")


@pytest.mark.parametrize("then", ["scan --prune", "dedupe again"])
def test_tags_of_copies_a_killed_dedupe_removed_reach_the_kept_files(lib, then: str) -> None:
    """The carry-over of tags and collection places comes once the files are done: a
    dedupe killed before it (kill -9, a power cut) had left them on rows of files gone to
    the trash, and a `scan --prune` deleted them for good. The next scan, or the next
    dedupe, gives them from the journal's `done` lines. An undo then leaves them on the
    kept files: the pruned rows of the copies lost theirs, so those are the only ones left."""
    root, catalog = lib
    for name in ("photo copy.jpg", "photo (2).jpg", "song.mp3"):
        assert run_cli("tag", "add", f"t/{name}", root / "b" / name, catalog=catalog).rc == 0
    assert run_cli("collection", "create", "Best", catalog=catalog).rc == 0
    assert run_cli("collection", "add", "Best", root / "b" / "photo copy.jpg", catalog=catalog).rc == 0
    p = _run_driver(_KILL_AFTER_TWO_STEPS, catalog, "dedupe", "--apply", "--action", "trash",
                    "--keep", "prefix:" + str(root / "a"))
    assert p.returncode == -signal.SIGKILL, (p.stdout, p.stderr)
    (journal,) = (catalog.parent / "journal").glob("dedupe-*.jsonl")
    assert '"kind": "end"' not in journal.read_text()
    gone = sorted(n for n in ("photo copy.jpg", "photo (2).jpg", "song.mp3") if not (root / "b" / n).exists())
    assert len(gone) == 2
    if then == "scan --prune":
        assert run_cli("scan", root, "--no-meta", "--prune", catalog=catalog).rc == 0
    else:
        # The two it moved count as done before this run, not as skips (a QA finding:
        # each was "skipped: gone since the scan", exit 8, after a Ctrl-C whose message
        # says to run the command again to finish).
        res = run_cli("dedupe", "--action", "trash", "--keep", "prefix:" + str(root / "a"), catalog=catalog)
        assert res.rc == 0 and "1 file would be trashed" in res.out and "2 already moved" in res.out, res.out
        assert res.out.count("already moved away by an earlier run") == 2, res.out
        res = run_cli("dedupe", "--apply", "--action", "trash", "--keep", "prefix:" + str(root / "a"), catalog=catalog)
        assert res.rc == 0 and "1 file trashed" in res.out and "(2 moved before this run)" in res.out, res.out
        assert run_cli("scan", root, "--no-meta", "--prune", catalog=catalog).rc == 0
    kept = {r["tag"] for r in rows(catalog, "SELECT t.tag FROM tags t JOIN files f USING (media_id) "
                                            "WHERE f.path_bytes IN (?, ?)",
                                   [os.fsencode(root / "a" / "photo.jpg"), os.fsencode(root / "a" / "song.mp3")])}
    assert {f"t/{n}" for n in gone} <= kept, kept
    assert '"kind": "carried"' in journal.read_text()
    members = run_cli("collection", "show", "Best", "-f", "json", catalog=catalog)
    if "photo copy.jpg" in gone:
        assert str(root / "a" / "photo.jpg") in members.out, members.out
    # The undo of the killed run puts its files back and leaves the carried tags.
    res = run_cli("dedupe", "--undo", str(journal), "--json", catalog=catalog)
    assert res.rc == 0 and json.loads(res.out)["tags_carried"] == 0, res.out
    assert all((root / "b" / n).exists() for n in gone)
    again = {r["tag"] for r in rows(catalog, "SELECT t.tag FROM tags t JOIN files f USING (media_id) "
                                             "WHERE f.path_bytes IN (?, ?)",
                                    [os.fsencode(root / "a" / "photo.jpg"), os.fsencode(root / "a" / "song.mp3")])}
    assert again == kept


def _kill_at_line(kind: str, written: bool = False) -> str:
    """A driver prelude: kill -9 as the journal's first line of `kind` is to be written,
    or (`written`) once it is."""
    return f"""
real = dedupe.Journal.write
def write(self, **entry):
    start = real(self, **entry) if {written} else None
    if entry.get("kind") == "{kind}":
        os.kill(os.getpid(), signal.SIGKILL)
    return start if {written} else real(self, **entry)
dedupe.Journal.write = write
"""


# Killed between a copy's move to the trash and its `done` line.
_KILL_BEFORE_THE_FIRST_DONE_LINE = _kill_at_line("done")


def test_tags_of_a_copy_moved_just_before_the_kill_reach_the_kept_file(lib) -> None:
    """The copy was in the trash but its `done` line never written: its `intent` line's
    move had happened all the same, and its tags were left on a row `--prune` deleted."""
    root, catalog = lib
    names = ("photo copy.jpg", "photo (2).jpg", "song.mp3")
    for name in names:
        assert run_cli("tag", "add", f"t/{name}", root / "b" / name, catalog=catalog).rc == 0
    p = _run_driver(_KILL_BEFORE_THE_FIRST_DONE_LINE, catalog, "dedupe", "--apply", "--action", "trash",
                    "--keep", "prefix:" + str(root / "a"))
    assert p.returncode == -signal.SIGKILL, (p.stdout, p.stderr)
    (journal,) = (catalog.parent / "journal").glob("dedupe-*.jsonl")
    assert '"kind": "done"' not in journal.read_text()
    (moved,) = [n for n in names if not (root / "b" / n).exists()]
    assert run_cli("scan", root, "--no-meta", "--prune", catalog=catalog).rc == 0
    kept = root / "a" / ("song.mp3" if moved == "song.mp3" else "photo.jpg")
    tagged = rows(catalog, "SELECT f.path FROM tags t JOIN files f USING (media_id) WHERE t.tag = ?", [f"t/{moved}"])
    assert tagged == [{"path": str(kept)}]
    assert '"kind": "carried"' in journal.read_text()


def test_a_scan_of_the_folder_holding_the_catalog_leaves_the_trash_and_journals_out(tmp_path: Path) -> None:
    """`scan ~` with the catalog under ~: the duplicates trashed beside the catalog are
    not found again as files (nor moved ones, nor dupes to act on again), nor are the
    journals; a folder of the user's named `trash` beside a catalog that never deduped
    is scanned as any other, and no --apply takes it over while it holds their file."""
    lib = tmp_path / "home"
    for d in ("a", "b", "trash"):
        (lib / d).mkdir(parents=True)
    data = os.urandom(4096)
    (lib / "a" / "x.bin").write_bytes(data)
    (lib / "b" / "x.bin").write_bytes(data)
    (lib / "trash" / "mine.txt").write_text("the user's own")
    catalog = lib / "cat.duckdb"
    assert run_cli("scan", lib, "--no-meta", catalog=catalog).rc == 0
    assert rows(catalog, "SELECT count(*) AS n FROM files WHERE name = 'mine.txt'") == [{"n": 1}]
    apply = ("dedupe", "--action", "trash", "--keep", "prefix:" + str(lib / "a"), "--apply", "--json")
    assert run_cli(*apply, catalog=catalog).rc == 2
    (lib / "trash" / "mine.txt").rename(lib / "mine.txt")
    assert run_cli("scan", lib, "--no-meta", catalog=catalog).rc == 0
    res = run_cli(*apply, catalog=catalog)
    assert res.rc == 0 and json.loads(res.out)["done"] == 1, res.out + res.err
    res = run_cli("scan", lib, "--no-meta", "--json", catalog=catalog)
    got = json.loads(res.out)
    assert got["new"] == 0 and got["moved"] == 0, res.out
    assert rows(catalog, "SELECT count(*) AS n FROM files WHERE status = 'present' AND "
                         f"(starts_with(path, '{lib / 'trash'}/') OR starts_with(path, '{lib / 'journal'}/'))") \
        == [{"n": 0}]  # the folders are dedupe's now (see docs/cli.md)
    assert json.loads(run_cli("dupes", "-f", "json", catalog=catalog).out) == []


def test_a_file_dated_past_2262_is_held_at_the_end_not_wrapped(tmp_path: Path) -> None:
    """A camera clock gone wrong dates a file 2300: its ns time is past what the catalog's
    i64 holds. Stored as the last one, never wrapped round to 1715 (which made it the
    "oldest" copy), and apply and metadata extraction still take it for unchanged."""
    root = tmp_path / "lib"
    root.mkdir()
    for name, when in (("a2020.jpg", 1_577_836_800), ("b2300.jpg", 10_413_792_000)):
        (root / name).write_bytes(b"\xff\xd8\xff" + b"same" * 100)
        os.utime(root / name, (when, when))
    from media_corpus import picture

    picture(64, 48, 3).save(root / "only2300.jpg")
    os.utime(root / "only2300.jpg", (10_413_792_000, 10_413_792_000))
    catalog = tmp_path / "cat.duckdb"
    assert run_cli("scan", root, catalog=catalog).rc == 0
    got = {r["name"]: r["mtime_ns"] for r in rows(catalog, "SELECT name, mtime_ns FROM files")}
    assert got == {"a2020.jpg": 1_577_836_800 * 10**9, "b2300.jpg": 2**63 - 1, "only2300.jpg": 2**63 - 1}
    # Read, not taken for a file changed since the scan.
    assert rows(catalog, "SELECT m.width FROM media m JOIN files f USING (blake3) WHERE f.name = 'only2300.jpg'") == [
        {"width": 64}]
    res = run_cli("dedupe", "--keep", "newest", "--apply", "--json", catalog=catalog)
    out = json.loads(res.out)
    assert (out["done"], out["skipped"]) == (1, []) and out["steps"][0]["keep"].endswith("b2300.jpg")
    assert run_cli("dedupe", "--undo", out["journal"], catalog=catalog).rc == 0
    assert (root / "a2020.jpg").stat().st_mtime_ns == 1_577_836_800 * 10**9
    assert (root / "b2300.jpg").stat().st_mtime_ns == 10_413_792_000 * 10**9
    # The copy dated 2300 removed: its journal holds its time as it is, and the undo
    # gives it back (the journal was refused as "out of range").
    out = _apply(catalog, "--keep", "oldest")
    assert out["done"] == 1 and out["steps"][0]["keep"].endswith("a2020.jpg")
    assert os.stat(root / "b2300.jpg").st_ino == os.stat(root / "a2020.jpg").st_ino
    assert _undo(catalog, out["journal"])["done"] == 1
    assert os.stat(root / "b2300.jpg").st_mtime_ns == 10_413_792_000 * 10**9
    assert os.stat(root / "b2300.jpg").st_ino != os.stat(root / "a2020.jpg").st_ino
    assert _undo(catalog, out["journal"])["already_restored"] == 1


def test_a_skip_names_the_file_that_changed(lib, tmp_path: Path) -> None:
    """Bytes that differ at apply: when the kept file is the one edited since the scan
    (size and times kept), the reason says so, not that the copy differs; a file already
    at a move's destination is named and left as it is."""
    root, catalog = lib
    kept = root / "a" / "song.mp3"
    st, original = kept.stat(), kept.read_bytes()
    with open(kept, "r+b") as f:
        f.seek(st.st_size // 2)
        f.write(b"\x00\x01\x02\x03")
    os.utime(kept, ns=(st.st_atime_ns, st.st_mtime_ns))
    out = _apply(catalog)
    why = {os.path.basename(r["path"]): r["why"] for r in out["skipped"]}
    assert why == {"song.mp3": f"the kept file {kept} changed since the scan (rescan first)"}, why
    assert _undo(catalog, out["journal"])["done"] == out["done"]
    kept.write_bytes(original)
    os.utime(kept, ns=(st.st_atime_ns, st.st_mtime_ns))
    dest = tmp_path / "away"
    there = dest / os.fspath(root / "b" / "song.mp3").lstrip("/")
    there.parent.mkdir(parents=True)
    there.write_bytes(b"someone else's")
    res = run_cli("scan", root, "--no-meta", catalog=catalog)
    assert res.rc == 0, res.err
    res = run_cli("dedupe", "--action", "move-to", "--to", dest, "--kind", "audio", "--apply", "--json",
                  catalog=catalog)
    out = json.loads(res.out)
    assert [r["why"] for r in out["skipped"]] == [f"{there} is already there (left as it is)"], out
    assert there.read_bytes() == b"someone else's"


def test_a_newline_and_a_backslash_n_in_names_never_look_alike(tmp_path: Path) -> None:
    """`x<newline>line.jpg` and `x\\nline.jpg` (a backslash and an n) printed the same, so
    a skip could not tell which file it meant: a backslash is shown doubled."""
    root = tmp_path / "lib"
    root.mkdir()
    data = os.urandom(5_000)
    for name in ("a.jpg", "x\nline.jpg", "x\\nline.jpg"):
        (root / name).write_bytes(data)
    os.utime(root / "a.jpg", (1e9, 1e9))  # the oldest: kept
    catalog = tmp_path / "cat.duckdb"
    assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
    text = run_cli("dedupe", catalog=catalog).out
    assert f"hardlink {root}/x\\nline.jpg\n" in text and f"hardlink {root}/x\\\\nline.jpg\n" in text, text


def test_a_move_whose_original_went_all_the_same_keeps_the_copy(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """A network file system's retried unlink can answer "no such file" after it removed
    the original: the copy at the destination is then the only one, and stays (it was
    removed again, as for an original that could not go, and the file was lost)."""
    from mediaforge.dupes import dedupe

    src = tmp_path / "only.jpg"
    src.write_bytes(os.urandom(20_000))
    data = src.read_bytes()
    other = _elsewhere(tmp_path, "mf-letgo-")
    try:
        dst = other / "only.jpg"
        real = os.unlink

        def unlink_then_fail(path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            real(path, *args, **kwargs)
            if os.fsencode(path) == os.fsencode(src):
                raise FileNotFoundError(2, "No such file or directory", path)

        monkeypatch.setattr(dedupe.os, "unlink", unlink_then_fail)
        dedupe._move(os.fsencode(src), os.fsencode(dst), {})
        assert not src.exists() and dst.read_bytes() == data
    finally:
        shutil.rmtree(other)


@pytest.mark.parametrize("kernel_checks", [True, False])
def test_a_move_never_replaces_a_file_made_at_its_destination(tmp_path: Path, monkeypatch, kernel_checks: bool) -> None:  # noqa: ANN001
    """`dedupe` looks that nothing is at a copy's new place (the trash, `--to`, its old
    path for an undo) before it moves it there; a file another program made there after
    that look was replaced by the rename, and lost. The rename itself now refuses to
    replace (`RENAME_NOREPLACE`); where the kernel cannot, a check just before it."""
    from mediaforge import fsops
    from mediaforge.dupes import dedupe

    if kernel_checks:
        assert fsops._renameat2() is not None  # glibc 2.28 and later
    else:
        monkeypatch.setattr(fsops, "_renameat2", lambda: None)
    src, dst = tmp_path / "copy.jpg", tmp_path / "trash" / "copy.jpg"
    dst.parent.mkdir()
    src.write_bytes(b"the copy")
    dst.write_bytes(b"made there meanwhile")
    with pytest.raises(FileExistsError):
        dedupe._move(os.fsencode(src), os.fsencode(dst), {})
    assert (src.read_bytes(), dst.read_bytes()) == (b"the copy", b"made there meanwhile")
    dst.unlink()
    dst.symlink_to(tmp_path / "nowhere")  # a link that leads nowhere is a name taken too
    with pytest.raises(FileExistsError):
        fsops.rename_new(os.fsencode(src), os.fsencode(dst))
    dst.unlink()
    with pytest.raises(ValueError):  # a NUL would end the name early: another file's
        fsops.rename_new(os.fsencode(src), os.fsencode(dst) + b"\0more")
    dedupe._move(os.fsencode(src), os.fsencode(dst), {})
    assert not src.exists() and dst.read_bytes() == b"the copy"


@pytest.mark.parametrize("action", ["symlink", "trash"])
def test_one_file_seen_through_two_mounts_is_never_its_own_duplicate(tmp_path: Path, action: str) -> None:
    """An overlay over a folder shows its files on another device with the same inode
    numbers: the two paths are one file. Kept through the overlay, the "copy" below it was
    replaced by a link to itself (its bytes gone for good), or trashed with the kept one."""
    lib, merged = tmp_path / "lib", tmp_path / "merged"
    (lib / "k").mkdir(parents=True)
    data = os.urandom(30_000)
    (lib / "k" / "x.jpg").write_bytes(data)
    for d in ("up", "wk"):
        (tmp_path / d).mkdir()
    merged.mkdir()
    r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={lib},upperdir={tmp_path / 'up'},workdir={tmp_path / 'wk'}", str(merged)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount an overlay here (needs root): {r.stderr.strip()}")
    catalog = tmp_path / "state" / "c.duckdb"
    try:
        assert run_cli("scan", lib, merged, "--no-meta", catalog=catalog).rc == 0
        out = _done(run_cli("dedupe", "--keep", f"prefix:{merged}", "--action", action, "--apply", "--json",
                            catalog=catalog))
        assert out["done"] == 0, out
        [(why,)] = [(s["why"],) for s in out["skipped"]]
        assert "seen through another mount" in why, why
    finally:
        subprocess.run(["umount", str(merged)], check=False)
    assert (lib / "k" / "x.jpg").read_bytes() == data and not (lib / "k" / "x.jpg").is_symlink()


# Another dedupe (of another catalog over the same folders, keeping the other copy)
# acting on the kept file while this one acts on its copy.
_KEPT_TRASHED_MEANWHILE = """
real = dedupe._move
def _move(src, dst, *args, **kwargs):
    real(src, dst, *args, **kwargs)
    if b"/trash/" in dst:
        os.rename(os.environ["KEPT"], os.environ["KEPT"] + ".in-the-other-trash")
dedupe._move = _move
"""

_KEPT_LINKED_MEANWHILE = """
real = dedupe._kept_whole
def _kept_whole(s, kst, action):
    os.replace(os.environ["KEPT"], os.environ["KEPT"] + ".gone")
    os.symlink(s.victim, os.environ["KEPT"])
    return real(s, kst, action)
dedupe._kept_whole = _kept_whole
"""


@pytest.mark.parametrize(("action", "prelude"), [("trash", _KEPT_TRASHED_MEANWHILE),
                                                 ("symlink", _KEPT_LINKED_MEANWHILE),
                                                 ("hardlink", _KEPT_LINKED_MEANWHILE)])
def test_a_kept_file_taken_while_its_copy_is_acted_on_gets_the_copy_back(lib, action: str, prelude: str) -> None:
    """Two dedupes at once (two catalogs over one library, one keeping each copy): each
    checked its kept file, then both acted, and neither copy was left in the library (27
    of 60 pairs), or each became a link to the other. The kept file is now looked at
    again after the act, and the copy put back when it is not what it was."""
    root, catalog = lib
    for name in ("photo copy.jpg", "photo (2).jpg", "song.mp3"):
        (root / "b" / name).unlink()
    before = (root / "a" / "song.mp3").read_bytes()
    shutil.copy2(root / "a" / "song.mp3", root / "b" / "song.mp3")
    assert run_cli("scan", root, "--no-meta", "--prune", catalog=catalog).rc == 0
    os.environ["KEPT"] = str(root / "a" / "song.mp3")
    try:
        p = _run_driver(prelude, catalog, "dedupe", "--action", action, "--apply", "--json")
    finally:
        del os.environ["KEPT"]
    assert p.returncode == 8, p.stderr
    out = json.loads(p.stdout)
    assert out["done"] == 0
    [skip] = out["skipped"]
    assert "changed or went when this copy was" in skip["why"] and skip["why"].endswith(
        ("it was moved back", "it was put back")), skip
    copy = root / "b" / "song.mp3"
    assert not copy.is_symlink() and copy.read_bytes() == before and copy.stat().st_nlink == 1
    assert not [n for n in os.listdir(root / "b") if n.startswith(".mediaforge-")]
    assert out["journal"] is None  # the copy is back as it was: nothing to undo, no journal


# As above, and the copy cannot be put back over its path: its bytes stay at the hidden
# second name, which a later run's sweep of killed writers' temporaries would remove.
_KEPT_LINKED_AND_NO_WAY_BACK = _KEPT_LINKED_MEANWHILE + """
armed = []
real_kept_whole = dedupe._kept_whole
def _kept_whole_armed(s, kst, action):
    whole = real_kept_whole(s, kst, action)
    armed.append(s.victim)
    return whole
dedupe._kept_whole = _kept_whole_armed
real_replace = os.replace
def replace(src, dst, *a, **k):
    if armed and os.fsencode(dst) == armed[-1]:
        raise PermissionError(13, "Permission denied")
    return real_replace(src, dst, *a, **k)
os.replace = replace
real_exchange = dedupe.exchange
def exchange(a, b):
    if armed and os.fsencode(b) == armed[-1]:
        raise PermissionError(13, "Permission denied")
    return real_exchange(a, b)
dedupe.exchange = exchange
"""


def test_a_copy_that_cannot_be_put_back_gets_a_name_in_sight(lib) -> None:
    """The copy's bytes, put aside under a hidden temporary name while it was linked, stay
    there when they cannot be put back; a later run's sweep would remove that name once it
    is ten minutes old. They are given a name of their own beside the copy's, named in
    the skip."""
    root, catalog = lib
    for name in ("photo copy.jpg", "photo (2).jpg", "song.mp3"):
        (root / "b" / name).unlink()
    before = (root / "a" / "song.mp3").read_bytes()
    shutil.copy2(root / "a" / "song.mp3", root / "b" / "song.mp3")
    assert run_cli("scan", root, "--no-meta", "--prune", catalog=catalog).rc == 0
    os.environ["KEPT"] = str(root / "a" / "song.mp3")
    try:
        p = _run_driver(_KEPT_LINKED_AND_NO_WAY_BACK, catalog, "dedupe", "--action", "hardlink", "--apply", "--json")
    finally:
        del os.environ["KEPT"]
    assert p.returncode == 8, p.stderr
    [skip] = json.loads(p.stdout)["skipped"]
    kept = root / "b" / "song.mp3.mediaforge-copy"
    assert f"its bytes are at {kept} (could not put them back: Permission denied)" in skip["why"], skip
    assert kept.read_bytes() == before and kept.stat().st_nlink == 1
    assert not [n for n in os.listdir(root / "b") if n.startswith(".mediaforge-")]


def test_a_prefix_named_through_a_link_keeps_that_folder(lib, tmp_path: Path) -> None:
    """`--keep prefix:alias/b`, where `alias` links to the library: the catalog holds the
    paths as scanned, and no row started with the given spelling, so the rule silently
    kept by age."""
    root, catalog = lib
    alias = tmp_path / "alias"
    alias.symlink_to(root)
    res = run_cli("dedupe", "--keep", f"prefix:{alias / 'b'}", "--json", catalog=catalog)
    assert res.rc == 0, res.err
    assert {Path(s["keep"]).parent.name for s in json.loads(res.out)["steps"]} == {"b"}


def test_undo_leaves_alone_a_file_put_in_the_trash_in_place_of_the_moved_one(lib) -> None:
    """Undo of a trash moved back whatever then sat at the trash path and called it
    restored: here another file written there, which took the copy's name."""
    root, catalog = lib
    out = _apply(catalog, "--action", "trash")
    assert out["done"] == 3
    moved = [Path(s["to"]) for s in out["steps"]]
    moved[0].write_bytes(b"another file")
    back = _undo(catalog, out["journal"])
    assert back["done"] == 2
    [skip] = back["skipped"]
    assert "holds another file since the dedupe" in skip["why"], skip
    assert moved[0].read_bytes() == b"another file"
    assert not os.path.lexists(out["steps"][0]["trash"])  # nothing was put back there


@pytest.mark.parametrize("where", ["below-a-root", "at-the-top"])
def test_a_to_folder_that_would_put_the_copies_back_in_the_library_is_refused(tmp_path: Path, where: str) -> None:
    """--to /x with the library at /x/x: a copy's whole path goes again below --to, so
    /x/x/v/f landed in /x/x/x/v/f, inside the library, and each rescan and dedupe moved
    it again, deeper. So too when another scanned folder lies where the moves land."""
    if where == "at-the-top":
        top = Path(tempfile.mkdtemp(dir="/", prefix="mf-qz-"))
        lib, dest, scanned = top / top.name, top, []
    else:
        top = tmp_path
        lib, dest = tmp_path / "lib", tmp_path / "out"
        scanned = [dest / str(lib).lstrip("/")]  # where lib's copies would land
        scanned[0].mkdir(parents=True)
    try:
        (lib / "k").mkdir(parents=True)
        (lib / "v").mkdir()
        (lib / "k" / "x.jpg").write_bytes(os.urandom(5000))
        shutil.copy2(lib / "k" / "x.jpg", lib / "v" / "x.jpg")
        os.utime(lib / "k" / "x.jpg", (1, 1))
        catalog = tmp_path / "state" / "c.duckdb"
        assert run_cli("scan", lib, *scanned, "--no-meta", catalog=catalog).rc == 0
        res = run_cli("dedupe", "--action", "move-to", "--to", dest, "--apply", catalog=catalog)
        assert res.rc == 2, res.err
        assert_one_line_error(res.err, f"--to {dest} would put the copies found in {lib}", "the catalog scans")
        assert (lib / "v" / "x.jpg").exists() and not (catalog.parent / "journal").exists()
    finally:
        if where == "at-the-top":
            shutil.rmtree(top)


# The catalog's disk fills up just as the tags are to be carried over to the kept files.
_DISK_FULL_AT_CARRY_OVER = """
real = dedupe.has_carry
def has_carry(cat, out):
    fd = os.open(os.path.join(os.environ["DISK"], "filler"), os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\\0" * 65536):
            pass
    except OSError:
        pass
    os.close(fd)
    return real(cat, out)
dedupe.has_carry = has_carry
"""


def test_a_full_disk_as_the_tags_follow_still_reports_the_files_and_the_undo(lib, tmp_path: Path) -> None:
    """The catalog's disk full once the files were acted on, as the tags they had were
    carried over to the kept files: the error came out alone, exit 7, with no word of the
    files linked, the journal or the undo command."""
    root, _ = lib
    disk = tmp_path / "disk"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
    try:
        catalog = disk / "cat.duckdb"
        assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
        assert run_cli("tag", "add", "keepme", root / "b", catalog=catalog).rc == 0
        os.environ["DISK"] = str(disk)
        try:
            p = _run_driver(_DISK_FULL_AT_CARRY_OVER, catalog, "dedupe", "--apply")
        finally:
            del os.environ["DISK"]
        out, err = p.stdout.decode(), p.stderr.decode()
        assert p.returncode == 7, err
        assert err.count("\n") == 1 and "No space left on device" in err and "Traceback" not in err, err
        journal = next((disk / "journal").iterdir())
        assert "3 files hard-linked" in out and f"mediaforge -c {catalog} dedupe --undo {journal}" in out, out
        (disk / "filler").unlink()
        # The rescan it asks for carries the tags over, and the undo puts every file back.
        assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
        carried = rows(catalog, "SELECT f.dir, f.name FROM files f JOIN tags t USING (media_id) "
                                "WHERE t.source = 'dedupe' AND t.tag = 'keepme' ORDER BY 2")
        assert run_cli("dedupe", "--undo", journal, catalog=catalog).rc == 0
    finally:
        subprocess.run(["umount", str(disk)], check=False)
    assert [(Path(r["dir"]).name, r["name"]) for r in carried] == [("a", "photo.jpg"), ("a", "song.mp3")]
    assert all((root / "b" / n).stat().st_nlink == 1 for n in os.listdir(root / "b"))


_KILLED_BEFORE_CARRY_OVER = """
dedupe.carry_over = lambda cat, out: os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_dedupe_killed_after_its_files_gets_its_carry_over_from_the_next_scan(lib) -> None:
    """kill -9 after the files were done (the journal's `end` line written) and before
    the tags went over: the journal was taken for finished, and the tags of the copies
    were lost at the next `scan --prune`."""
    root, catalog = lib
    assert run_cli("tag", "add", "keepme", root / "b", catalog=catalog).rc == 0
    p = _run_driver(_KILLED_BEFORE_CARRY_OVER, catalog, "dedupe", "--apply")
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert run_cli("scan", root, "--no-meta", "--prune", catalog=catalog).rc == 0
    carried = rows(catalog, "SELECT f.dir, f.name FROM files f JOIN tags t USING (media_id) "
                            "WHERE t.source = 'dedupe' ORDER BY 2")
    assert [(Path(r["dir"]).name, r["name"]) for r in carried] == [("a", "photo.jpg"), ("a", "song.mp3")]


_TAGS_OF = "SELECT t.tag FROM tags t JOIN files f USING (media_id) WHERE f.path_bytes = ?"


def _two_dedupes_one_tag(lib: tuple[Path, Path]) -> tuple[Path, Path, dict, dict]:
    """A copy tagged `trip` trashed (its tag carried to the kept file), then a later copy
    with the same tag trashed too: (kept file, later copy, first run, second run)."""
    root, catalog = lib
    kept = root / "a" / "photo.jpg"
    assert run_cli("tag", "add", "trip", root / "b" / "photo copy.jpg", catalog=catalog).rc == 0
    first = _apply(catalog, "--action", "trash", "--keep", f"prefix:{root / 'a'}")
    later = root / "c" / "new copy.jpg"
    later.parent.mkdir()
    shutil.copy2(kept, later)
    assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
    assert run_cli("tag", "add", "trip", later, catalog=catalog).rc == 0
    second = _apply(catalog, "--action", "trash", "--keep", f"prefix:{root / 'a'}")
    return kept, later, first, second


def test_the_undo_of_an_earlier_dedupe_leaves_a_tag_a_later_one_relies_on(lib) -> None:
    """A QA finding: a copy's tag went to the kept file (journal 1); a later copy with the
    same tag was trashed (journal 2), its tag not carried, the kept file having it; the
    undo of journal 1 took the tag off the kept file, and once the later copy's row was
    pruned, its tag was nowhere. Journal 2 records the tags it relied on; the undo of
    journal 1 leaves them while journal 2 stands."""
    root, catalog = lib
    kept, later, first, second = _two_dedupes_one_tag(lib)
    assert first["tags_carried"] == 1, first
    assert (second["done"], second["tags_carried"]) == (1, 0), second
    assert _undo(catalog, first["journal"])["done"] == 3
    assert rows(catalog, _TAGS_OF, [os.fsencode(kept)]) == [{"tag": "trip"}]
    assert run_cli("scan", root, "--no-meta", "--prune", catalog=catalog).rc == 0
    assert not later.exists()
    assert rows(catalog, _TAGS_OF, [os.fsencode(kept)]) == [{"tag": "trip"}]
    # Each line lists what it relied on alone, not what it carried itself (a review finding).
    def carried(out: dict) -> dict:
        (line,) = [json.loads(x) for x in Path(out["journal"]).read_text().splitlines() if '"carried"' in x]
        return line

    assert ([t for _, t in carried(first)["tags"]], carried(first).get("tags_relied")) == (["trip"], None)
    assert (carried(second)["tags"], [t for _, t in carried(second)["tags_relied"]]) == ([], ["trip"])


_CTRL_C_AS_THE_END_LINE_IS_WRITTEN = """
real = dedupe.Journal.write
def write(self, **entry):
    start = real(self, **entry)
    if entry.get("kind") == "end":
        os.kill(os.getpid(), signal.SIGINT)
    return start
dedupe.Journal.write = write
"""


def test_a_ctrl_c_as_the_journal_ends_still_reports_what_was_done(lib) -> None:
    """A QA finding: Ctrl-C as the journal's `end` line was written (every file moved)
    left nothing on stdout: no summary, no journal, no undo command (5 runs in 40)."""
    root, catalog = lib
    p = _run_driver(_CTRL_C_AS_THE_END_LINE_IS_WRITTEN, catalog, "dedupe", "--apply", "--action", "trash",
                    "--keep", "prefix:" + str(root / "a"))
    assert p.returncode == 130, (p.stdout, p.stderr)
    out = p.stdout.decode()
    (journal,) = (catalog.parent / "journal").glob("dedupe-*.jsonl")
    assert "3 files trashed" in out and str(journal) in out and "--undo" in out, (out, p.stderr)


def test_an_old_journal_is_no_run_to_go_on_with(lib) -> None:
    """A review finding: any journal never undone, of any age, made a copy gone from its
    path "moved before this run". Only a run begun since the last scan is one whose
    moves the catalog has not seen: a copy trashed long ago, put back by hand, scanned,
    then deleted again is gone since the scan."""
    root, catalog = lib
    copy = root / "b" / "photo copy.jpg"
    data = copy.read_bytes()
    first = _apply(catalog, "--action", "trash", "--keep", f"prefix:{root / 'a'}")
    assert first["done"] == 3
    copy.write_bytes(data)  # put back by hand, scanned, then deleted again
    assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
    copy.unlink()
    res = run_cli("dedupe", "--action", "trash", "--json", "--keep", f"prefix:{root / 'a'}", catalog=catalog)
    assert res.rc == 0, res.err
    out = json.loads(res.out)
    assert (out["already_linked"], [s["why"] for s in out["skipped"]]) == (0, ["gone since the scan"]), out


def test_a_later_dedupe_undone_in_part_still_holds_the_tag_it_relied_on(lib) -> None:
    """The last note's "left" list: a journal an undo had worked on counted for nothing,
    so with its undo stopped part way, the earlier journal's undo took off the kept file
    a tag the copies still away relied on."""
    root, catalog = lib
    kept = root / "a" / "photo.jpg"
    assert run_cli("tag", "add", "trip", root / "b" / "photo copy.jpg", catalog=catalog).rc == 0
    first = _apply(catalog, "--action", "trash", "--keep", f"prefix:{root / 'a'}")
    later = [root / "c" / f"copy {i}.jpg" for i in range(3)]
    later[0].parent.mkdir()
    for p in later:
        shutil.copy2(kept, p)
    assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
    assert run_cli("tag", "add", "trip", root / "c", catalog=catalog).rc == 0
    second = _apply(catalog, "--action", "trash", "--keep", f"prefix:{root / 'a'}")
    assert (second["done"], second["tags_carried"]) == (3, 0), second
    step = _SIGTERM_ON_SECOND_STEP.replace("dedupe._act", "dedupe._unmove")
    p = _run_driver(step, catalog, "dedupe", "--undo", second["journal"])
    assert p.returncode == 143 and b"2 files restored" in p.stdout, (p.stdout, p.stderr)
    assert _undo(catalog, first["journal"])["done"] == 3
    assert rows(catalog, _TAGS_OF, [os.fsencode(kept)]) == [{"tag": "trip"}]  # one copy of journal 2 still away
    assert _undo(catalog, second["journal"])["done"] == 1
    assert rows(catalog, _TAGS_OF, [os.fsencode(kept)]) == []
    assert all(rows(catalog, _TAGS_OF, [os.fsencode(p)]) == [{"tag": "trip"}] for p in later)


def test_undoing_both_journals_oldest_first_leaves_no_carried_tag(lib) -> None:
    """A review finding: journal 1 carried a tag to the kept file, journal 2 relied on it;
    undone oldest first, journal 1's undo left the tag for journal 2, whose own undo did
    not take it (it never carried it): the kept file kept a `dedupe` tag for good."""
    root, catalog = lib
    kept, later, first, second = _two_dedupes_one_tag(lib)
    assert _undo(catalog, first["journal"])["done"] == 3
    assert rows(catalog, _TAGS_OF, [os.fsencode(kept)]) == [{"tag": "trip"}]  # journal 2 stands on it
    assert _undo(catalog, second["journal"])["done"] == 1
    assert rows(catalog, _TAGS_OF, [os.fsencode(kept)]) == []
    assert rows(catalog, _TAGS_OF, [os.fsencode(later)]) == [{"tag": "trip"}]


# Killed once the `carried` line is in the journal, before the catalog's commit; or
# after the commit, before the `committed` line.
_KILLED_BEFORE_THE_CARRY_COMMIT = _kill_at_line("carried", written=True)
_KILLED_AFTER_THE_CARRY_COMMIT = _kill_at_line("committed")


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_kill_around_the_carry_over_commit_loses_no_tag(lib, when: str) -> None:
    """A QA finding: the `carried` line is journalled before the catalog commits, and a
    kill -9 between the two left a journal that said the tags went over where the
    catalog never got them: no scan carried them again, and `scan --prune` deleted them
    with the copies' rows (3 kills in 6). A `committed` line now follows the commit; a
    journal without it is looked at by the next scan, which carries them again, or,
    the commit having held, adds the line."""
    root, catalog = lib
    assert run_cli("tag", "add", "keepme", root / "b", catalog=catalog).rc == 0
    prelude = _KILLED_BEFORE_THE_CARRY_COMMIT if when == "before" else _KILLED_AFTER_THE_CARRY_COMMIT
    p = _run_driver(prelude, catalog, "dedupe", "--apply", "--action", "trash", "--keep", "prefix:" + str(root / "a"))
    assert p.returncode == -signal.SIGKILL, p.stderr
    (journal,) = (catalog.parent / "journal").glob("dedupe-*.jsonl")
    assert '"commit": "follows"' in journal.read_text() and '"committed"' not in journal.read_text()
    carried_sql = ("SELECT f.dir, f.name FROM files f JOIN tags t USING (media_id) WHERE t.source = 'dedupe' "
                   "AND f.status = 'present' ORDER BY 2")
    assert (rows(catalog, carried_sql) == []) == (when == "before")
    # Another catalog in the same folder shares `journal/`: its scan leaves this journal
    # alone (a review finding: it judged the line by its own rows, and cut it).
    (root.parent / "other").mkdir()
    (root.parent / "other" / "x.bin").write_bytes(b"x" * 100)
    before = journal.read_bytes()
    assert run_cli("scan", root.parent / "other", "--no-meta", catalog=catalog.parent / "b.duckdb").rc == 0
    assert journal.read_bytes() == before
    assert run_cli("scan", root, "--no-meta", "--prune", catalog=catalog).rc == 0
    carried = rows(catalog, carried_sql)
    assert [(Path(r["dir"]).name, r["name"]) for r in carried] == [("a", "photo.jpg"), ("a", "song.mp3")]
    lines = [json.loads(x) for x in journal.read_text().splitlines()]
    assert [x["kind"] for x in lines if x["kind"] in ("carried", "committed")] == ["carried", "committed"], lines
    # Looked at once: the next scan leaves it as it is.
    before = journal.read_bytes()
    assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
    assert journal.read_bytes() == before
    # The undo takes them back, as for a run never killed (the copies' rows went with
    # the prune: their tags are on the kept files alone, and stay).
    res = run_cli("dedupe", "--undo", str(journal), "--json", catalog=catalog)
    assert res.rc == 0, res.err
    assert all((root / "b" / n).exists() for n in ("photo copy.jpg", "photo (2).jpg", "song.mp3"))


# Ctrl-C while the `carried` line is synced to disk (its bytes written, the catalog's
# transaction not yet committed).
_CTRL_C_IN_THE_CARRIED_LINE_S_FSYNC = """
real_write, real_fsync = dedupe.Journal.write, os.fsync
now = {}
def write(self, **entry):
    now["carried"] = entry.get("kind") == "carried"
    return real_write(self, **entry)
def fsync(fd):
    if now.pop("carried", False):
        raise KeyboardInterrupt
    return real_fsync(fd)
dedupe.Journal.write = write
os.fsync = fsync
"""


def test_a_ctrl_c_in_the_carried_line_s_fsync_takes_the_line_back(lib) -> None:
    """The last session's note listed this path as untested: Ctrl-C as the `carried` line
    is synced. The files are done and reported (exit 130); the catalog's transaction
    rolls back, so the line, which says what it never got, is taken back; the next scan
    carries the tags over."""
    root, catalog = lib
    assert run_cli("tag", "add", "keepme", root / "b", catalog=catalog).rc == 0
    p = _run_driver(_CTRL_C_IN_THE_CARRIED_LINE_S_FSYNC, catalog, "dedupe", "--apply", "--action", "trash",
                    "--keep", "prefix:" + str(root / "a"))
    assert p.returncode == 130, (p.stdout, p.stderr)
    assert b"3 files trashed" in p.stdout and b"Traceback" not in p.stderr, (p.stdout, p.stderr)
    (journal,) = (catalog.parent / "journal").glob("dedupe-*.jsonl")
    assert '"carried"' not in journal.read_text() and journal.read_text().endswith("\n")
    carried_sql = "SELECT f.name FROM files f JOIN tags t USING (media_id) WHERE t.source = 'dedupe' ORDER BY 1"
    assert rows(catalog, carried_sql) == []
    assert run_cli("scan", root, "--no-meta", "--prune", catalog=catalog).rc == 0
    assert rows(catalog, carried_sql) == [{"name": "photo.jpg"}, {"name": "song.mp3"}]
    assert [json.loads(x)["kind"] for x in journal.read_text().splitlines()][-2:] == ["carried", "committed"]


def test_undo_brings_back_a_move_whose_destination_keeps_times_more_coarsely(lib) -> None:
    """A move to a disk with coarser times (FAT's 2 s, ext4's whole second with small
    inodes) keeps the mtime only so far: undo took the file there for another one and
    left it alone. It is known by its bytes."""
    root, catalog = lib
    out = _apply(catalog, "--action", "trash")
    for step in out["steps"]:
        moved = Path(step["to"])
        st = moved.stat()
        os.utime(moved, ns=(st.st_atime_ns, st.st_mtime_ns // 2_000_000_000 * 2_000_000_000))
    back = _undo(catalog, out["journal"])
    assert back["done"] == 3 and not back["skipped"], back
    assert all((root / "b" / n).exists() for n in ("photo copy.jpg", "photo (2).jpg", "song.mp3"))


def test_one_file_under_two_inode_numbers_is_found_by_its_link_count(tmp_path: Path) -> None:
    """An overlay with `xino` shows its lower files under inode numbers of its own, so
    the numbers do not tell that the two paths are one file, and after the copy was
    replaced the overlay still showed the kept file from its cache: the bytes were gone
    at the next mount. A second name given to the copy for a moment moves the kept
    file's link count: then it is left alone."""
    lib, merged, upper = tmp_path / "lib", tmp_path / "merged", tmp_path / "upper"
    (lib / "k").mkdir(parents=True)
    data = os.urandom(30_000)
    (lib / "k" / "x.jpg").write_bytes(data)
    merged.mkdir()
    upper.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(upper)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
    try:
        (upper / "up").mkdir()
        (upper / "wk").mkdir()
        r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                            f"lowerdir={lib},upperdir={upper / 'up'},workdir={upper / 'wk'},xino=on", str(merged)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount an overlay with xino here: {r.stderr.strip()}")
        try:
            a, b = os.stat(lib / "k" / "x.jpg"), os.stat(merged / "k" / "x.jpg")
            assert (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino)
            catalog = tmp_path / "state" / "c.duckdb"
            assert run_cli("scan", lib, merged, "--no-meta", catalog=catalog).rc == 0
            for action in ("symlink", "trash"):
                out = _done(run_cli("dedupe", "--keep", f"prefix:{merged}", "--action", action, "--apply", "--json",
                                    catalog=catalog))
                assert out["done"] == 0, out
                [skip] = out["skipped"]
                assert "seen through another mount" in skip["why"], skip
            assert not [n for n in os.listdir(lib / "k") if n.startswith(".mediaforge-")]
        finally:
            subprocess.run(["umount", str(merged)], check=False)
    finally:
        subprocess.run(["umount", str(upper)], check=False)
    assert (lib / "k" / "x.jpg").read_bytes() == data and not (lib / "k" / "x.jpg").is_symlink()


_KEPT_GONE_AND_COPY_PATH_TAKEN = """
real = dedupe._kept_whole
def _kept_whole(s, kst, action):
    with open(s.victim, "xb") as f:
        f.write(b"a new file saved at the copy's old path")
    return False
dedupe._kept_whole = _kept_whole
"""


def test_a_copy_that_cannot_be_moved_back_is_counted_once_and_undone_later(lib) -> None:
    """The kept file went while its copy was moved, and the copy's old path was taken
    meanwhile: it could not be moved back. It was counted both done (bytes freed, tags
    carried to the kept file that went) and skipped. It is now skipped only, saying
    where it is, and journalled as done, so the undo brings it back once its path is free."""
    root, catalog = lib
    for name in ("photo copy.jpg", "photo (2).jpg"):
        (root / "b" / name).unlink()
    assert run_cli("scan", root, "--no-meta", "--prune", catalog=catalog).rc == 0
    p = _run_driver(_KEPT_GONE_AND_COPY_PATH_TAKEN, catalog, "dedupe", "--action", "trash", "--apply", "--json")
    assert p.returncode == 8, p.stderr
    out = json.loads(p.stdout)
    assert (out["done"], out["bytes"], out["tags_carried"]) == (0, 0, 0), out
    [skip] = out["skipped"]
    assert "could not be moved back" in skip["why"] and "puts it back once its path is free" in skip["why"], skip
    (root / "b" / "song.mp3").unlink()  # the new file goes: the path is free again
    back = _undo(catalog, out["journal"])
    assert back["done"] == 1, back
    assert (root / "b" / "song.mp3").read_bytes() == (root / "a" / "song.mp3").read_bytes()


def test_a_journal_of_another_catalog_in_the_same_folder_is_left_to_its_own(lib, tmp_path: Path) -> None:
    """Two catalogs in one folder share `journal/`: a scan into the second read the
    first's journal of a run killed before its carry-over, found none of its files, and
    marked it carried, so the first catalog's own scan never carried its tags."""
    root, catalog = lib
    assert run_cli("tag", "add", "keepme", root / "b", catalog=catalog).rc == 0
    p = _run_driver(_KILLED_BEFORE_CARRY_OVER, catalog, "dedupe", "--apply")
    assert p.returncode == -signal.SIGKILL, p.stderr
    other = catalog.parent / "other.duckdb"
    assert run_cli("scan", root / "a", "--no-meta", catalog=other).rc == 0
    (journal,) = (catalog.parent / "journal").glob("dedupe-*.jsonl")
    assert '"kind": "carried"' not in journal.read_text()
    assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
    assert '"kind": "carried"' in journal.read_text()
    assert len(rows(catalog, "SELECT 1 FROM tags WHERE source = 'dedupe'")) == 2


def test_an_undo_run_again_after_a_move_back_across_disks_was_killed_finishes_it(lib, tmp_path: Path) -> None:
    """An undo killed after its copy back across disks was made and before the moved
    copy went: the next undo found both, said "a file is back at the original path" for
    ever (exit 8), and left a whole copy in --to. The copy goes once it is known to hold
    the bytes the original path holds again, and the file counts as restored."""
    root, catalog = lib
    dest = _elsewhere(tmp_path, "to-")
    try:
        out = _apply(catalog, "--action", "move-to", "--to", str(dest))
        assert out["done"] == 3
        moved = Path(out["steps"][0]["to"])
        shutil.copy2(moved, out["steps"][0]["move-to"])  # what the killed undo had done
        back = _undo(catalog, out["journal"])
        assert (back["done"], back["already_restored"], back["skipped"]) == (2, 1, []), back
        assert not moved.exists()
        assert not [p for p in dest.rglob("*") if p.is_file()]
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def test_copies_on_two_disks_with_times_in_whole_seconds_are_not_taken_for_one_file(tmp_path: Path) -> None:
    """On two fresh ext4 disks with small inodes (times in whole seconds), the first file
    made on each gets inode 12, in the same second: the copies looked like one file seen
    through two mounts, and were never deduped. The probe tells them apart."""
    if shutil.which("mkfs.ext4") is None or os.geteuid() != 0:
        pytest.skip("needs root and mkfs.ext4")
    lib = tmp_path / "lib"
    disks = [lib / "m1", lib / "m2"]
    try:
        for i, mnt in enumerate(disks):
            img = tmp_path / f"d{i}.img"
            with open(img, "wb") as f:
                f.truncate(8 << 20)
            subprocess.run(["mkfs.ext4", "-q", "-I", "128", str(img)], check=True)
            mnt.mkdir(parents=True)
            r = subprocess.run(["mount", "-o", "loop", str(img), str(mnt)], capture_output=True, text=True)
            if r.returncode != 0:
                pytest.skip(f"cannot mount a loop device here: {r.stderr.strip()}")
        data = os.urandom(500)
        for mnt in disks:
            (mnt / "photo.jpg").write_bytes(data)
            os.utime(mnt / "photo.jpg", (1e9, 1e9))
        a, b = (os.stat(mnt / "photo.jpg") for mnt in disks)
        if (a.st_ino, a.st_ctime_ns) != (b.st_ino, b.st_ctime_ns):
            pytest.skip("the two disks did not give their first files one inode number in one second")
        # Read once their times' two-second tick is past: a scan keeps no digest read within
        # it (a write just after the read would leave the times as they are).
        time.sleep(max(0.0, a.st_ctime_ns / 1e9 - a.st_ctime_ns / 1e9 % 2 + 2.05 - time.time()))
        catalog = tmp_path / "state" / "c.duckdb"
        assert run_cli("scan", lib, "--no-meta", catalog=catalog).rc == 0
        out = _apply(catalog, "--action", "trash")
        assert out["done"] == 1 and not out["skipped"], out
    finally:
        for mnt in disks:
            subprocess.run(["umount", str(mnt)], capture_output=True, check=False)


def test_a_trash_or_journal_folder_of_the_user_s_beside_the_catalog_is_never_taken_over(tmp_path: Path) -> None:
    """A QA finding: a `trash/` of the user's beside the catalog, holding a photo of
    theirs, became dedupe's at its first --apply (of any action: the journal it wrote
    makes scans leave `trash/` out), and the report said to delete `trash/` for the
    space: with it went the photo. An --apply refuses, naming the file, until the folder
    holds only dedupe's own; then the report names only the run's dated folder."""
    lib = tmp_path / "lib"
    (lib / "photos").mkdir(parents=True)
    data = os.urandom(4000)
    (lib / "photos" / "a.bin").write_bytes(data)
    (lib / "photos" / "b.bin").write_bytes(data)
    os.utime(lib / "photos" / "a.bin", (1_500_000_000, 1_500_000_000))
    catalog = lib / "c.duckdb"
    for folder in ("trash", "journal"):
        (lib / folder).mkdir()
        (lib / folder / "mine.jpg").write_bytes(os.urandom(500))
        (lib / folder / ".DS_Store").write_bytes(b"Bud1")  # what Finder leaves: no file of the user's
        assert run_cli("scan", lib, "--no-meta", catalog=catalog).rc == 0
        dry = run_cli("dedupe", catalog=catalog)  # the dry run says it already
        assert dry.rc == 0 and dry.err.startswith(f"mediaforge: note: --apply will refuse to start: {lib / folder} "
                                                  "beside the catalog holds mine.jpg"), dry.err
        for action in ("trash", "hardlink"):
            res = run_cli("dedupe", "--action", action, "--apply", catalog=catalog)
            assert res.rc == 2, (folder, action, res.out, res.err)
            assert_one_line_error(res.err, f"{lib / folder} beside the catalog holds mine.jpg, which dedupe did "
                                           "not put there", "nothing was changed")
            assert sorted(os.listdir(lib / folder)) == [".DS_Store", "mine.jpg"]
            assert not (lib / "journal").exists() or sorted(os.listdir(lib / "journal")) == [".DS_Store", "mine.jpg"]
            assert (lib / "photos" / "b.bin").stat().st_nlink == 1
        (lib / folder / "mine.jpg").rename(lib / "photos" / f"mine-{folder}.jpg")
    res = run_cli("dedupe", "--action", "trash", "--apply", catalog=catalog)
    assert res.rc == 0, res.err
    (dated,) = set(os.listdir(lib / "trash")) - {".DS_Store"}
    assert f"the space comes back once you delete {lib / 'trash' / dated} (this run's trash)" in res.out, res.out
    (trashed,) = (lib / "trash" / dated).rglob("b.bin")
    assert trashed.read_bytes() == data and (lib / "photos" / "a.bin").read_bytes() == data


@pytest.mark.parametrize("action", ["hardlink", "trash"])
def test_an_apply_that_acts_on_nothing_leaves_no_empty_folders_beside_the_catalog(lib, action: str) -> None:
    """A QA finding: an --apply whose every copy was skipped (here, changed since the
    scan) left an empty `journal/` folder beside the catalog (the journal itself, of
    nothing, went)."""
    root, catalog = lib
    for copy in ("photo copy.jpg", "photo (2).jpg", "song.mp3"):
        with open(root / "b" / copy, "ab") as f:
            f.write(b"saved since")
    res = run_cli("dedupe", "--apply", "--action", action, "--json", catalog=catalog)
    out = json.loads(res.out)
    assert res.rc == 8 and out["done"] == 0 and len(out["skipped"]) == 3, res.out
    assert sorted(os.listdir(catalog.parent)) == ["cat.duckdb", "cat.search"], os.listdir(catalog.parent)


def test_an_undo_given_no_catalog_restores_the_files_and_says_the_tags_stay(lib, tmp_path: Path) -> None:
    """A QA finding: `dedupe --undo J -c` naming no catalog restored the files and exited
    0, silent on the tags the dedupe had carried over to the kept file. It says so (exit
    3); the undo run again with the right catalog takes them back."""
    root, catalog = lib
    assert run_cli("tag", "add", "trip", root / "b" / "song.mp3", catalog=catalog).rc == 0
    out = _apply(catalog, "--action", "trash")
    tagged = "SELECT f.path, t.tag FROM tags t JOIN files f USING (media_id) WHERE f.status = 'present'"
    assert {(r["path"], r["tag"]) for r in rows(catalog, tagged)} == {(str(root / w / "song.mp3"), "trip")
                                                                      for w in "ab"}  # carried to the kept file
    elsewhere = tmp_path / "nowhere" / "cat.duckdb"
    res = run_cli("dedupe", "--undo", out["journal"], catalog=elsewhere)
    assert res.rc == 3 and (root / "b" / "song.mp3").exists(), res.err
    assert_one_line_error(res.err, f"no catalog at {elsewhere}: the files are restored, but the tags the dedupe "
                                   "carried over were not taken back")
    assert not elsewhere.parent.exists()
    again = _undo(catalog, out["journal"])
    assert again["already_restored"] == 3 and again["tags_carried"] == 1, again
    assert rows(catalog, tagged) == [{"path": str(root / "b" / "song.mp3"), "tag": "trip"}]


def test_an_undo_s_skip_says_what_is_in_the_way_or_gone(lib) -> None:
    """A QA finding: an undo of a trash run with a folder made at a copy's path said "a
    file is back at the original path"; one of a symlink run whose kept file was deleted
    said the copy was "gone since the dedupe", though its link is there and the file it
    would be restored from is what went."""
    root, catalog = lib
    out = _apply(catalog, "--action", "trash", "--keep", "prefix:" + str(root / "a"))
    (root / "b" / "song.mp3").mkdir()
    back = _undo(catalog, out["journal"])
    assert {Path(s["path"]).name: s["why"] for s in back["skipped"]} == {
        "song.mp3": "a folder is back at the original path"}, back
    (root / "b" / "song.mp3").rmdir()
    assert _undo(catalog, out["journal"])["done"] == 1
    assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
    out = _apply(catalog, "--action", "symlink", "--keep", "prefix:" + str(root / "a"))
    (root / "a" / "song.mp3").unlink()
    back = _undo(catalog, out["journal"])
    assert {Path(s["path"]).name: s["why"] for s in back["skipped"]} == {
        "song.mp3": f"{root / 'a' / 'song.mp3'}, which it is restored from, is gone since the dedupe"}, back
    assert os.path.islink(root / "b" / "song.mp3")  # left as it was


@pytest.mark.parametrize("action", ["trash", "move-to"])
def test_a_copy_an_earlier_symlink_dedupe_links_to_is_not_moved(lib, tmp_path: Path, action: str) -> None:
    """A QA finding: after a symlink dedupe (copy -> kept file) and a rescan that found an
    older copy, a trash or move-to run kept the older one and moved the file the links
    led to: they led nowhere, and the plan said nothing. It is skipped, saying why, in
    the dry run and the apply; once that dedupe is undone it goes as any copy."""
    root, catalog = lib
    linked = _apply(catalog, "--action", "symlink", "--keep", "prefix:" + str(root / "a"))
    assert os.path.islink(root / "b" / "song.mp3")
    older = root / "old.mp3"
    shutil.copy2(root / "a" / "song.mp3", older)
    os.utime(older, (1_000_000_000, 1_000_000_000))
    assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
    extra = ("--to", str(tmp_path / "moved")) if action == "move-to" else ()
    why = (f"the symbolic link {root / 'b' / 'song.mp3'}, made by an earlier dedupe, leads to it: moved, it would "
           "leave that link leading nowhere (undo that dedupe first, or keep this file)")
    plan = json.loads(run_cli("dedupe", "--action", action, *extra, "--json", catalog=catalog).out)
    assert {Path(s["path"]).name: s["why"] for s in plan["skipped"]} == {"song.mp3": why}, plan
    # An undo of that dedupe begun and stopped before it restored anything (its first
    # line written, as a Ctrl-C then leaves it): the links it did not take back still count.
    with open(linked["journal"], "a") as f:
        f.write(json.dumps({"kind": "undoing", "pid": 1}) + "\n")
    out = _apply(catalog, "--action", action, *extra)
    assert (root / "a" / "song.mp3").exists() and (root / "b" / "song.mp3").read_bytes() == older.read_bytes()
    assert [s["why"] for s in out["skipped"]] == [why], out
    assert _undo(catalog, linked["journal"])["done"] == 3
    assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
    plan = json.loads(run_cli("dedupe", "--action", action, *extra, "--json", catalog=catalog).out)
    assert plan["skipped"] == [] and any(Path(s["keep"]) == older for s in plan["steps"]), plan


def test_names_that_differ_only_in_how_unicode_composes_them_do_not_look_alike(tmp_path: Path) -> None:
    """A QA finding: `café.jpg` with é as one character and as e and a combining accent
    showed alike in the plan ("keep .../café.jpg", "hardlink .../café.jpg", as if on the
    kept file itself) and in `dupes`. Such a pair is spelled out; other names are not."""
    lib = tmp_path / "lib"
    lib.mkdir()
    data, other = os.urandom(999), os.urandom(500)
    for name, content in (("caf\u00e9.jpg", data), ("cafe\u0301.jpg", data), ("r\u00e9sum\u00e9.txt", other),
                          ("r\u00e9sum\u00e9 copy.txt", other)):
        (lib / name).write_bytes(content)
    os.utime(lib / "caf\u00e9.jpg", (1_500_000_000, 1_500_000_000))
    os.utime(lib / "r\u00e9sum\u00e9.txt", (1_500_000_000, 1_500_000_000))
    catalog = tmp_path / "c.duckdb"
    assert run_cli("scan", lib, "--no-meta", catalog=catalog).rc == 0
    plan = run_cli("dedupe", catalog=catalog).out.splitlines()
    assert f"keep {lib}/caf\\u00e9.jpg" in plan[0] and plan[1].strip() == f"hardlink {lib}/cafe\\u0301.jpg", plan
    assert f"keep {lib}/r\u00e9sum\u00e9.txt" in plan[2] and f"hardlink {lib}/r\u00e9sum\u00e9 copy.txt" in plan[3]
    table = run_cli("dupes", catalog=catalog, env=cli_env(catalog, COLUMNS="400")).out
    assert "caf\\u00e9.jpg" in table and "cafe\\u0301.jpg" in table and "r\u00e9sum\u00e9 copy.txt" in table, table


@pytest.mark.parametrize("flag, where, said", [
    ("+i", "file", "it is immutable (chattr +i): it cannot be replaced, moved or removed"),
    ("+a", "folder", "its folder is append-only (chattr +a): no name in it can be replaced or removed")])
@pytest.mark.parametrize("action", ["hardlink", "trash"])
def test_a_copy_whose_flags_forbid_the_step_is_a_skip_in_the_dry_run_too(tmp_path: Path, flag: str, where: str,
                                                                         said: str, action: str) -> None:
    """A QA finding: an immutable copy (or one in an append-only folder) passed the dry
    run, and the apply then skipped it with "hardlink failed: Operation not permitted",
    exit 8, leaving a temporary in the append-only folder. Both say why, alike, and the
    apply reads no byte of it and leaves nothing behind."""
    if shutil.which("chattr") is None:
        pytest.skip("needs chattr (e2fsprogs)")
    lib = tmp_path / "lib"
    (lib / "b").mkdir(parents=True)
    data = os.urandom(3000)
    (lib / "keep.bin").write_bytes(data)
    (lib / "b" / "copy.bin").write_bytes(data)
    os.utime(lib / "keep.bin", (1_500_000_000, 1_500_000_000))
    catalog = tmp_path / "state" / "c.duckdb"
    assert run_cli("scan", lib, "--no-meta", catalog=catalog).rc == 0
    target = lib / "b" / "copy.bin" if where == "file" else lib / "b"
    if subprocess.run(["chattr", flag, str(target)], capture_output=True).returncode != 0:
        pytest.skip("this file system has no such flag")
    try:
        plan = json.loads(run_cli("dedupe", "--action", action, "--json", catalog=catalog).out)
        assert (plan["steps"], [s["why"] for s in plan["skipped"]]) == ([], [said]), plan
        res = run_cli("dedupe", "--action", action, "--apply", "--json", catalog=catalog)
        out = json.loads(res.out)
        assert res.rc == 8 and out["done"] == 0 and [s["why"] for s in out["skipped"]] == [said], res.out
        assert sorted(os.listdir(lib / "b")) == ["copy.bin"]
    finally:
        subprocess.run(["chattr", "-" + flag[1:], str(target)], check=False)


def test_a_copy_whose_path_in_the_trash_would_be_too_long_is_a_skip_in_the_dry_run_too(tmp_path: Path) -> None:
    """A QA finding: a copy whose path under the trash would pass PATH_MAX passed the dry
    run; the apply skipped it with "File name too long". Both give the length and the
    limit, and the apply leaves no empty trash or journal folder."""
    lib = tmp_path / "lib"
    deep = str(lib)
    while len(deep) < 4000:
        deep += "/" + "d" * 200
    deep = deep[:4080].rstrip("/")
    os.makedirs(deep)
    data = os.urandom(100)
    (lib / "keep.bin").write_bytes(data)
    with open(os.path.join(deep, "c"), "wb") as f:
        f.write(data)
    os.utime(lib / "keep.bin", (1_500_000_000, 1_500_000_000))
    catalog = tmp_path / "state" / "c.duckdb"
    assert run_cli("scan", lib, "--no-meta", catalog=catalog).rc == 0
    length = len(str(tmp_path / "state" / "trash")) + 1 + len("20261206T130102951059Z") + len(deep) + len("/c")
    said = (f"its path under {tmp_path / 'state' / 'trash'} would be {length:,} bytes, past the system's limit "
            "of 4,095")
    plan = json.loads(run_cli("dedupe", "--action", "trash", "--json", catalog=catalog).out)
    assert [s["why"] for s in plan["skipped"]] == [said], plan
    res = run_cli("dedupe", "--action", "trash", "--apply", "--json", catalog=catalog)
    assert res.rc == 8 and [s["why"] for s in json.loads(res.out)["skipped"]] == [said], res.out
    assert sorted(os.listdir(catalog.parent)) == ["c.duckdb", "c.search"]


# Another program saves a copy the way editors and sync tools do, a new file renamed over
# it, at a chosen moment of its step (`SAVE_AT`: after which function of the dedupe).
_SAVED_OVER_AT = """
import itertools
saved = []
def save_over(path):
    path = os.fsencode(path)
    new = path + b".swp"
    with open(new, "wb") as f:
        f.write(b"SAVED " + path)
    os.rename(new, path)
    saved.append(path)
victim = os.fsencode(os.environ["VICTIM"])
name = os.environ["SAVE_AT"]
real = getattr(dedupe, name)
def hooked(*a, **k):
    got = real(*a, **k)
    if not saved and os.path.lexists(victim):
        save_over(victim)
    return got
setattr(dedupe, name, hooked)
"""


@pytest.mark.parametrize(("action", "at"), [
    ("hardlink", "sweep_stale"),  # as its step begins
    ("hardlink", "_second_name"),  # right before the link is swapped in
    ("symlink", "_second_name"),
    ("hardlink", "no-exchange"),  # as _second_name, where names cannot be swapped in one step
    ("hardlink", "_swap_in"),  # right after the link went in: the copy's own bytes are not put back over it
    ("symlink", "_swap_in"),
    ("trash", "_probe"),  # right before the move
    ("trash", "_inode"),  # between the move's last look and its rename (the first `_inode` after the probe)
    ("move-to", "_name_new"),  # across file systems: copied, then saved over before the original goes
])
def test_a_copy_saved_over_through_a_new_file_as_it_is_acted_on_is_kept(lib, tmp_path: Path, action: str,
                                                                           at: str) -> None:
    """A QA finding: a copy saved by writing a new file and renaming it over the old one,
    just after dedupe compared it, was replaced by a link (or moved away) all the same:
    every step after the check worked on the path, not on the file it compared, and the
    new save was lost. The compared file is now held open through the step, every name
    acted on is checked to lead to it, and names are swapped in one step, so what a swap
    took out is looked at before anything goes."""
    root, catalog = lib
    for name in ("photo copy.jpg", "photo (2).jpg"):
        (root / "b" / name).unlink()
    assert run_cli("scan", root, "--no-meta", "--prune", catalog=catalog).rc == 0
    copy = root / "b" / "song.mp3"
    args = ["--action", action]
    other = None
    if action == "move-to":
        other = _elsewhere(tmp_path, "mf-saved-")
        args += ["--to", str(other / "moved")]
    os.environ["VICTIM"], os.environ["SAVE_AT"] = str(copy), "_second_name" if at == "no-exchange" else at
    try:
        prelude = _SAVED_OVER_AT + ("dedupe.exchange = lambda a, b: False\n" if at == "no-exchange" else "")
        if at == "_inode":  # armed by the probe: the next look at an inode is the move's
            prelude = prelude.replace("real = getattr(dedupe, name)", "real = getattr(dedupe, name)\narmed = []") \
                .replace("    got = real(*a, **k)\n    if not saved", "    got = real(*a, **k)\n    if armed and not saved") \
                + "\nreal_probe = dedupe._probe\ndef probe(s):\n    got = real_probe(s)\n    armed.append(1)\n" \
                  "    return got\ndedupe._probe = probe\n"
        p = _run_driver(prelude, catalog, "dedupe", *args, "--apply", "--json")
    finally:
        del os.environ["VICTIM"], os.environ["SAVE_AT"]
    try:
        assert p.returncode == 8, p.stderr
        out = json.loads(p.stdout)
        assert out["done"] == 0, out
        [skip] = out["skipped"]
        assert "replaced by another program as it was acted on" in skip["why"], skip
        # The save is at the copy's path, whole, and nothing of the run is left about.
        assert not copy.is_symlink() and copy.read_bytes() == b"SAVED " + os.fsencode(copy)
        assert not [n for n in os.listdir(root / "b") if n.startswith(".mediaforge-")]
        assert (root / "a" / "song.mp3").stat().st_nlink == 1
        if other is not None:
            assert not [f for f in other.rglob("*") if f.is_file()]
        trash = [f for f in (catalog.parent).rglob("*") if f.is_file() and "trash" in str(f)]
        assert not [f for f in trash if f.name == "song.mp3"]
    finally:
        if other is not None:
            shutil.rmtree(other, ignore_errors=True)


# The kept file saved over (same size and time, other bytes) once the copy was compared
# with it: `SAVE_AT` as above, for the kept file.
_KEPT_SAVED_OVER_AT = """
saved = []
kept = os.fsencode(os.environ["KEPT"])
name = os.environ["SAVE_AT"]
real = getattr(dedupe, name)
def hooked(*a, **k):
    got = real(*a, **k)
    if not saved:
        st = os.stat(kept)
        new = kept + b".swp"
        with open(new, "wb") as f:
            f.write(bytes(b ^ 0xFF for b in open(kept, "rb").read()))
        os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.rename(new, kept)
        saved.append(kept)
    return got
setattr(dedupe, name, hooked)
"""


@pytest.mark.parametrize(("action", "at"), [("hardlink", "_check"), ("hardlink", "sweep_stale"),
                                            ("symlink", "_check"), ("trash", "_check")])
def test_a_kept_file_saved_over_after_the_comparison_is_not_linked_to(lib, action: str, at: str) -> None:
    """A QA finding: the kept file saved over through a new file after the comparison,
    with the same size and modification time (a program that keeps them), was taken for
    the compared one: the copy became a link to bytes it never held. The kept file is
    held open from the step's start, and must be the very file compared (its change time
    too)."""
    root, catalog = lib
    for name in ("photo copy.jpg", "photo (2).jpg"):
        (root / "b" / name).unlink()
    assert run_cli("scan", root, "--no-meta", "--prune", catalog=catalog).rc == 0
    copy, kept = root / "b" / "song.mp3", root / "a" / "song.mp3"
    before = copy.read_bytes()
    os.environ["KEPT"], os.environ["SAVE_AT"] = str(kept), at
    try:
        p = _run_driver(_KEPT_SAVED_OVER_AT, catalog, "dedupe", "--action", action, "--apply", "--json")
    finally:
        del os.environ["KEPT"], os.environ["SAVE_AT"]
    assert p.returncode == 8, p.stderr
    out = json.loads(p.stdout)
    assert out["done"] == 0, out
    [skip] = out["skipped"]
    assert f"the kept file {kept}" in skip["why"] and "since it was compared" in skip["why"], skip
    assert not copy.is_symlink() and copy.read_bytes() == before and copy.stat().st_nlink == 1
    assert kept.read_bytes() == bytes(b ^ 0xFF for b in before)
    assert not [n for n in os.listdir(root / "b") if n.startswith(".mediaforge-")]


def test_a_journal_with_a_field_of_another_type_is_refused_in_one_line(lib, tmp_path: Path) -> None:
    """A QA finding: `"dest": 5` in a start line, `"pid": []` or `"victim_id": {}` ended an
    undo in "internal error: TypeError" (exit 1). Every field's type is checked as the
    journal is read: exit 2, naming the line and field."""
    root, catalog = lib
    assert run_cli("dedupe", "--action", "trash", "--apply", catalog=catalog).rc == 0
    journal = next((catalog.parent / "journal").iterdir())
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    bad = tmp_path / "bad.jsonl"
    for kind, field, wrong in (("start", "dest", 5), ("start", "pid", []), ("intent", "victim_id", {}),
                               ("done", "victim_id", []), ("done", "moved_to", None), ("start", "pid", True)):
        edited = [dict(e) for e in lines]
        at = next(n for n, e in enumerate(edited, 1) if e["kind"] == kind)
        edited[at - 1][field] = wrong
        bad.write_text("".join(json.dumps(e) + "\n" for e in edited))
        res = run_cli("dedupe", "--undo", bad, catalog=catalog)
        assert res.rc == 2, (field, wrong, res.err)
        assert_one_line_error(res.err, f"{bad} is not a valid MediaForge dedupe journal: line {at}'s {field} is a")
    assert run_cli("dedupe", "--undo", journal, catalog=catalog).rc == 0  # the journal itself still undoes
    assert (root / "b" / "song.mp3").exists()


def test_a_link_run_after_a_trash_run_says_the_copies_were_moved(lib) -> None:
    """A QA finding: a hardlink run after a trash run (the catalog not scanned since) said
    the trashed copies were "linked before this run"."""
    root, catalog = lib
    assert run_cli("dedupe", "--action", "trash", "--apply", catalog=catalog).rc == 0
    res = run_cli("dedupe", "--action", "hardlink", "--apply", catalog=catalog)
    assert res.rc == 0, res.err
    assert "(3 moved before this run)" in res.out and "linked before" not in res.out, res.out


@pytest.mark.parametrize("action", ["hardlink", "trash"])
def test_an_undo_its_folder_refuses_says_what_and_where(lib, action: str) -> None:
    """A QA finding: an undo into a folder made immutable since said only "Operation not
    permitted". It says that it could not restore the file, why, and where."""
    if shutil.which("chattr") is None:
        pytest.skip("needs chattr (e2fsprogs)")
    root, catalog = lib
    out = _apply(catalog, "--action", action)
    assert out["done"] == 3
    folder = root / "b"
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("this file system has no such flag")
    try:
        res = run_cli("dedupe", "--undo", out["journal"], "--json", catalog=catalog)
        assert res.rc == 8, res.err
        whys = [s["why"] for s in json.loads(res.out)["skipped"]]
        assert whys == [f"could not restore it: Operation not permitted (in {folder})"] * 3, whys
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=False)
    again = _undo(catalog, out["journal"])
    assert again["done"] == 3, again


# A save landing at the copy's path right before the link is swapped in, and the run
# killed (kill -9) with the saved file at the name the swap put it at.
_SAVED_THEN_KILLED = """
victim = os.fsencode(os.environ["VICTIM"])
real = dedupe.exchange
def exchange(a, b):
    if b == victim:
        new = victim + b".swp"
        with open(new, "wb") as f:
            f.write(b"SAVED AT THE LAST MOMENT")
        os.rename(new, victim)
        real(a, b)
        os.kill(os.getpid(), signal.SIGKILL)
    return real(a, b)
dedupe.exchange = exchange
"""


def test_a_save_a_killed_swap_took_out_is_given_a_name_in_sight_not_swept(lib) -> None:
    """A review finding: the file a swap took out of the copy's path sat at a hidden name
    a later run's sweep of killed runs' temporaries removes: a kill -9 right after a save
    landed there lost the save. That name is one the sweep never removes while it is a
    file's only name: it is given a name in sight, `mediaforge-recovered-...`."""
    root, catalog = lib
    for name in ("photo copy.jpg", "photo (2).jpg"):
        (root / "b" / name).unlink()
    assert run_cli("scan", root, "--no-meta", "--prune", catalog=catalog).rc == 0
    os.environ["VICTIM"] = str(root / "b" / "song.mp3")
    try:
        p = _run_driver(_SAVED_THEN_KILLED, catalog, "dedupe", "--action", "hardlink", "--apply")
    finally:
        del os.environ["VICTIM"]
    assert p.returncode == -signal.SIGKILL, p.stderr
    [journal] = (catalog.parent / "journal").iterdir()
    assert run_cli("dedupe", "--undo", journal, catalog=catalog).rc in (0, 8)  # sweeps the killed run's names at once
    names = sorted(os.listdir(root / "b"))
    saved = [n for n in names if (root / "b" / n).read_bytes() == b"SAVED AT THE LAST MOMENT"]
    assert len(saved) == 1 and saved[0].startswith("mediaforge-recovered-"), names
    assert not [n for n in names if n.startswith(".mediaforge-")], names


def test_a_killed_runs_hold_names_are_swept_into_sight_or_away(tmp_path: Path) -> None:
    """A hold name (`.mediaforge-hold-<pid>...`) a killed run left: the only name of a file
    is renamed into sight; one whose file has another name, or a link, goes."""
    from mediaforge.fsops import sweep_stale

    p = subprocess.Popen(["true"])
    p.wait()
    dead = p.pid
    folder = tmp_path / "f"
    folder.mkdir()

    def hold(n: int) -> Path:
        return folder / f".mediaforge-hold-{dead:08x}{n:08x}.tmp"

    hold(1).write_bytes(b"only name")
    (folder / "kept").write_bytes(b"two names")
    os.link(folder / "kept", hold(2))
    os.symlink(folder / "kept", hold(3))
    sweep_stale(os.fsencode(folder), known=frozenset({dead}))
    names = sorted(os.listdir(folder))
    assert len(names) == 2 and names[0] == "kept" and names[1].startswith("mediaforge-recovered-"), names
    assert (folder / names[1]).read_bytes() == b"only name"
    assert (folder / "kept").stat().st_nlink == 1


@pytest.mark.parametrize("action", ["hardlink", "symlink"])
def test_an_undo_leaves_a_file_saved_over_the_link_as_it_is_restored(lib, action: str) -> None:
    """A review finding: an undo looked at the link, then renamed the restored copy over
    it: a file another program saved there in between was lost. The copy is swapped in
    as a dedupe's links are, and that file stays."""
    root, catalog = lib
    out = _apply(catalog, "--action", action)
    assert out["done"] == 3
    song = root / "b" / "song.mp3"
    os.environ["VICTIM"], os.environ["SAVE_AT"] = str(song), "_removed_on_error"
    try:
        prelude = _SAVED_OVER_AT.replace("if not saved and os.path.lexists(victim):",
                                         "if not saved and os.path.lexists(victim) and a and a[0].startswith(victim "
                                         "[:victim.rfind(b'/') + 1] + b'.mediaforge-hold-'):")
        p = _run_driver(prelude, catalog, "dedupe", "--undo", out["journal"], "--json")
    finally:
        del os.environ["VICTIM"], os.environ["SAVE_AT"]
    assert p.returncode == 8, p.stderr
    undone = json.loads(p.stdout)
    assert undone["done"] == 2 and [os.path.basename(s["path"]) for s in undone["skipped"]] == ["song.mp3"], undone
    assert "another program saved it" in undone["skipped"][0]["why"]
    assert not song.is_symlink() and song.read_bytes() == b"SAVED " + os.fsencode(song)
    assert not [n for n in os.listdir(root / "b") if n.startswith(".mediaforge-")]


def test_an_undo_while_the_librarys_disk_is_not_mounted_puts_nothing_under_its_mount_point(tmp_path: Path) -> None:
    """A QA finding: an undo run while the library's disk was unplugged made its folders
    anew inside the empty mount point and put the trashed copy there, said "1 file
    restored" and emptied the trash; mounted again, the disk hid it. Now a file whose
    folder is gone, with the folder above it on another disk than the file was, stays
    where it is, and the undo says why; once the disk is back, it is restored."""
    disk = tmp_path / "disk"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
    catalog = tmp_path / "cat" / "c.duckdb"
    try:
        (disk / "photos").mkdir()
        data = os.urandom(4000)
        (disk / "photos" / "a.jpg").write_bytes(data)
        os.utime(disk / "photos" / "a.jpg", (1_500_000_000, 1_500_000_000))
        (disk / "photos" / "b.jpg").write_bytes(data)
        assert run_cli("scan", disk, "--no-meta", catalog=catalog).rc == 0
        assert run_cli("dedupe", "--action", "trash", "--apply", catalog=catalog).rc == 0
        journal = next((catalog.parent / "journal").iterdir())
        held = subprocess.run(["tar", "-C", str(disk), "-cf", str(tmp_path / "disk.tar"), "."], check=True)
        assert held.returncode == 0
    finally:
        subprocess.run(["umount", str(disk)], check=False)
    res = run_cli("dedupe", "--undo", journal, catalog=catalog)  # the disk unplugged
    assert res.rc == 8 and "is its disk not mounted?" in res.out, (res.rc, res.out, res.err)  # done in part
    assert list(disk.iterdir()) == []  # nothing made under the mount point
    assert len([p for p in (catalog.parent / "trash").rglob("*") if p.is_file()]) == 1
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], check=True)
    try:
        subprocess.run(["tar", "-C", str(disk), "-xf", str(tmp_path / "disk.tar")], check=True)
        res = run_cli("dedupe", "--undo", journal, catalog=catalog)
        assert res.rc == 0, res.err
        assert (disk / "photos" / "b.jpg").read_bytes() == data
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_another_catalogs_trash_in_the_library_is_never_kept_nor_acted_on(tmp_path: Path) -> None:
    """A QA finding: a catalog kept in the library trashed a copy into its `trash/`; a
    second catalog scanning the library then kept that trashed copy (`--keep
    longest-path`) and trashed, or linked, the library's own; deleting the first's trash,
    as its report advises, lost the photo; and files of the first's search index that
    were alike were trashed. Files in the journal, trash, thumbnail and index folders of
    a catalog the scans found are neither kept nor acted on."""
    lib = tmp_path / "lib"
    (lib / "photos").mkdir(parents=True)
    data = os.urandom(3000)
    (lib / "photos" / "a.jpg").write_bytes(data)
    os.utime(lib / "photos" / "a.jpg", (1_500_000_000, 1_500_000_000))
    (lib / "photos" / "b.jpg").write_bytes(data)
    inner, outer = lib / ".mf" / "c1.duckdb", tmp_path / "c2.duckdb"
    assert run_cli("scan", lib, "--no-meta", catalog=inner).rc == 0
    assert run_cli("dedupe", "--action", "trash", "--apply", catalog=inner).rc == 0
    assert run_cli("scan", lib, "--no-meta", catalog=outer).rc == 0
    for action in ("trash", "symlink"):
        res = run_cli("dedupe", "--keep", "longest-path", "--action", action, "--apply", catalog=outer)
        assert res.rc == 0 and "nothing to do" in res.out, (action, res.out, res.err)
    shutil.rmtree(lib / ".mf" / "trash")
    assert (lib / "photos" / "a.jpg").read_bytes() == data and not (lib / "photos" / "a.jpg").is_symlink()


def test_an_undo_given_another_catalog_restores_the_files_and_says_the_tags_stay(lib, tmp_path: Path) -> None:
    """A QA finding: `dedupe --undo JOURNAL -c OTHER` (a journal from beside another
    catalog) restored the files and said nothing, exit 0, while the tag the dedupe had
    carried over stayed on the kept file in the catalog it came from. Now it says the
    tags were not taken back (exit 3); the undo run again with the right catalog does it."""
    root, catalog = lib
    assert run_cli("tag", "add", "keepme", root / "b" / "song.mp3", catalog=catalog).rc == 0
    assert run_cli("dedupe", "--action", "trash", "--apply", catalog=catalog).rc == 0
    journal = next((catalog.parent / "journal").iterdir())
    other = tmp_path / "other" / "c2.duckdb"
    assert run_cli("scan", root, "--no-meta", catalog=other).rc == 0
    res = run_cli("dedupe", "--undo", journal, catalog=other)
    assert res.rc == 3 and "were not taken back" in res.err and "is not beside the catalog" in res.err, res.err
    assert (root / "b" / "song.mp3").exists()
    carried = "SELECT count(*) AS n FROM tags WHERE source = 'dedupe'"
    assert rows(catalog, carried) == [{"n": 1}]
    res = run_cli("dedupe", "--undo", journal, catalog=catalog)
    assert res.rc == 0, res.err
    assert rows(catalog, carried) == [{"n": 0}]


def _blurred_shapes(seed: int) -> "Image.Image":
    import random

    from PIL import Image, ImageDraw, ImageFilter

    r = random.Random(seed)
    im = Image.new("RGB", (1200, 900), (r.randrange(256), r.randrange(256), r.randrange(256)))
    d = ImageDraw.Draw(im)
    for _ in range(60):
        x, y, s = r.randrange(1200), r.randrange(900), r.randrange(20, 300)
        d.ellipse((x, y, x + s, y + s), fill=(r.randrange(256), r.randrange(256), r.randrange(256)))
    return im.filter(ImageFilter.GaussianBlur(3))


def test_similar_keeps_a_whole_copy_over_a_larger_one_whose_jpeg_data_is_damaged(tmp_path: Path) -> None:
    """A QA finding: a photo saved at quality 97 with bytes zeroed (or flipped) in the
    middle of its data decodes without an error, grey or smeared past that point, so it
    had no `decode` note; near its whole quality-80 copy, `--keep best` kept it (more bytes)
    and trashed the whole one. The file a rule would keep is read through first: damaged,
    it is noted (`decode`, `partial`), said, and a whole copy is kept, whatever the rule."""
    import io

    lib = tmp_path / "lib"
    lib.mkdir()
    for seed, at, how in ((4, 0.85, "flip"), (5, 0.95, "zero")):
        im = _blurred_shapes(seed)
        im.save(lib / f"p{seed}_whole.jpg", quality=80)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=97)
        data = bytearray(buf.getvalue())
        n = int(len(data) * at)
        if how == "zero":
            data[n:n + 4000] = bytes(4000)
        else:
            for i in range(n, n + 60, 3):
                data[i] ^= 0x55
        (lib / f"p{seed}_damaged.jpg").write_bytes(bytes(data))
    catalog = tmp_path / "c.duckdb"
    assert run_cli("scan", lib, "--no-thumbs", catalog=catalog).rc == 0
    assert rows(catalog, "SELECT count(*) AS n FROM meta_errors WHERE stage = 'decode'") == [{"n": 0}]
    assert run_cli("dupes", "--similar", catalog=catalog).rc == 0
    damaged = sorted(str(lib / f"p{s}_damaged.jpg") for s in (4, 5))

    def plan(*args: str) -> dict:
        res = run_cli("dedupe", "--similar", "--json", *args, catalog=catalog)
        assert res.rc == 0, res.err
        return json.loads(res.out)

    first = plan()
    assert sorted((Path(s["keep"]).name, Path(s["trash"]).name) for s in first["steps"]) == [
        ("p4_whole.jpg", "p4_damaged.jpg"), ("p5_whole.jpg", "p5_damaged.jpg")], first
    assert sorted(d["path"] for d in first["damaged"]) == damaged, first
    assert all(d["why"] in ("a code no Huffman table holds", "a restart marker out of its order",
                            "its codes run out before the picture's last block",
                            "bytes of data left over after the picture's last block") for d in first["damaged"]), first
    noted = rows(catalog, """SELECT f.path, m.status, e.message FROM meta_errors e JOIN files f USING (blake3)
                             JOIN media m USING (blake3) WHERE e.stage = 'decode' ORDER BY 1""")
    assert [(r["path"], r["status"]) for r in noted] == [(p, "partial") for p in damaged], noted
    assert all(r["message"].startswith("its JPEG data is damaged (") for r in noted), noted
    # Noted once: not read again, and a whole copy is kept by any rule.
    for args in ((), ("--keep", "biggest"), ("--keep", "newest")):
        again = plan(*args)
        assert again["damaged"] == [] and {Path(s["keep"]).name for s in again["steps"]} == {
            "p4_whole.jpg", "p5_whole.jpg"}, (args, again)
    res = run_cli("dedupe", "--similar", catalog=catalog)
    assert res.rc == 0 and f"keep {lib / 'p4_whole.jpg'}" in res.out and f"keep {lib / 'p5_whole.jpg'}" in res.out


def test_an_undo_never_links_a_file_to_one_whose_freed_inode_number_it_got(tmp_path: Path) -> None:
    """A QA finding: an undo links each restored name to the ones that shared its inode
    before the dedupe, which it knew by that inode's number, from its own journal and the
    others beside it. A file made after an earlier dedupe freed that number (ext4 hands
    freed numbers out again) and deduped later was restored as a hard link of the earlier
    dedupe's file: an edit of one changed both. Twins share their inode's mtime too, and
    two names each their inode's only one as they were deduped were never twins; such a
    file gets a copy of its own."""
    lib = tmp_path / "lib"
    (lib / "a").mkdir(parents=True)
    (lib / "b").mkdir()
    data = os.urandom(20_000)
    (lib / "a" / "k.bin").write_bytes(data)
    (lib / "b" / "x.bin").write_bytes(data)
    os.utime(lib / "b" / "x.bin", ns=(1_577_836_800 * 10**9, 1_577_836_800 * 10**9))
    catalog = tmp_path / "c.duckdb"
    assert run_cli("scan", lib, "--no-meta", catalog=catalog).rc == 0
    first = json.loads(run_cli("dedupe", "--keep", f"prefix:{lib / 'a'}", "--apply", "--json", catalog=catalog).out)
    assert first["done"] == 1
    assert run_cli("dedupe", "--undo", first["journal"], catalog=catalog).rc == 0
    lines = [json.loads(line) for line in Path(first["journal"]).read_text().splitlines()]
    was = next((e["was_dev"], e["was_ino"]) for e in lines if e.get("kind") == "done")
    (lib / "a" / "y.bin").write_bytes(data)  # a new copy, with a time of its own
    assert run_cli("scan", lib, "--no-meta", catalog=catalog).rc == 0
    second = json.loads(run_cli("dedupe", "--keep", f"prefix:{lib / 'b'}", "--apply", "--json",
                                catalog=catalog).out)
    assert second["done"] == 2 and os.stat(lib / "a" / "y.bin").st_ino == os.stat(lib / "b" / "x.bin").st_ino
    # As if y had been given x's freed number: its journal says so.
    path = Path(second["journal"])
    y = base64.b64encode(os.fsencode(lib / "a" / "y.bin")).decode()
    edited = []
    for line in path.read_text().splitlines():
        e = json.loads(line)
        if e.get("victim") == y and e.get("was_ino") is not None:
            e["was_dev"], e["was_ino"] = was
        edited.append(json.dumps(e))
    path.write_text("\n".join(edited) + "\n")
    y_mtime = next(e["mtime_ns"] for e in map(json.loads, edited) if e.get("victim") == y and "mtime_ns" in e)
    res = run_cli("dedupe", "--undo", str(path), "--json", catalog=catalog)
    assert res.rc == 0, res.err
    x, yst = os.stat(lib / "b" / "x.bin"), os.stat(lib / "a" / "y.bin")
    assert x.st_ino != yst.st_ino and x.st_nlink == yst.st_nlink == 1, (x, yst)
    assert yst.st_mtime_ns == y_mtime and (lib / "a" / "y.bin").read_bytes() == data
