"""Acting on exact duplicate groups, safely: plan, verify, act, journal, undo.

A plan keeps one file of each group (by a keep rule) and names an action for the others.
Nothing happens without `apply`. When applying, each file is checked again right before
its action: it must still be the file the catalog knows (same size, mtime and inode), and
its bytes must equal the kept file's, read in full; otherwise it is skipped. The kept file
is never touched, so the last copy of anything always remains. Every action is written to
a journal (one JSON line, flushed to disk, before and after it), and `undo` reverses a
journal's completed actions, newest first.

Actions: `hardlink` and `symlink` replace the copy with a link to the kept file, and
`reflink` with a copy-on-write clone of it (Btrfs, XFS, bcachefs; other file systems
refuse and the file is skipped), each through a temporary name and an atomic rename;
`move-to DIR` and `trash` move the copy away (to DIR, or to `trash/<journal id>/` beside
the catalog), keeping its path below the folder.

Near-duplicates (`plan_similar`: the groups of the last `dupes --similar` run) differ in
their bytes by definition, so only `move-to` and `trash` apply to them, and instead of
comparing bytes each file is hashed again and must still have the content that was
compared.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from ..catalog import Catalog
from ..errors import InvalidInputError, PathIOError, first_line

ACTIONS = ("hardlink", "symlink", "reflink", "move-to", "trash")
SIMILAR_ACTIONS = ("move-to", "trash")
# Keep rules: the ORDER BY that puts the file to keep first, over `files f` and
# `media m`; ties go to the shortest path, then the path's bytes.
RULE_ORDERS = {
    "oldest": "f.mtime_ns",
    "newest": "f.mtime_ns DESC",
    "shortest-path": "length(f.path)",
    "longest-path": "length(f.path) DESC",
    "largest-resolution": "m.width::BIGINT * m.height DESC NULLS LAST, f.size DESC",
    "highest-bitrate": "m.bitrate DESC NULLS LAST, f.size DESC",
    "oldest-taken": "coalesce(m.taken_at, m.created_at) NULLS LAST, f.mtime_ns",
    "biggest": "f.size DESC",
}
RULES = tuple(RULE_ORDERS)
FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)
CHUNK = 1 << 20


@dataclass(frozen=True)
class Step:
    """One planned action: `victim` gets `action`, `keep` stays."""

    group: int
    keep: bytes
    victim: bytes
    size: int
    mtime_ns: int
    dev: int
    inode: int
    # For near-duplicates: the content the victim must still have (checked by hashing).
    blake3: str | None = None
    # Stable ids of both files, so tags and collections can follow the kept one.
    keep_id: str | None = None
    victim_id: str | None = None


@dataclass
class Plan:
    action: str
    target: Path | None
    steps: list[Step] = field(default_factory=list)
    similar: bool = False

    @property
    def reclaimable(self) -> int:
        seen: set[tuple[int, int]] = set()
        total = 0
        for s in self.steps:
            if self.action in ("hardlink", "reflink") and (s.dev, s.inode) in seen:
                continue
            seen.add((s.dev, s.inode))
            total += s.size
        return total


def _order(rule: str) -> str:
    """The ORDER BY of a keep rule; `sql:EXPR` is the user's own, over f.* and m.*."""
    if rule.startswith("prefix:"):
        order = "CASE WHEN starts_with(f.path, $prefix) THEN 0 ELSE 1 END, f.mtime_ns"
    elif rule.startswith("sql:"):
        order = rule[4:].strip()
        if not order or ";" in order:
            raise InvalidInputError(f"--keep {rule!r}: give one ORDER BY expression list, e.g. sql:m.bitrate DESC")
    elif rule in RULE_ORDERS:
        order = RULE_ORDERS[rule]
    else:
        raise InvalidInputError(f"unknown keep rule {rule!r}: one of {', '.join(RULES)}, prefix:PATH or sql:ORDER BY")
    return f"{order}, length(f.path), f.path_bytes"


def _check_action(action: str, target: Path | None, allowed: tuple[str, ...]) -> None:
    if action not in allowed:
        raise InvalidInputError(f"action {action!r} does not apply here: one of {', '.join(allowed)}")
    if action == "move-to" and target is None:
        raise InvalidInputError("--action move-to needs a folder: --to DIR")


def _ranked(cat: Catalog, keep: str, source: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Rows (group, keep path, victim path, size, mtime, dev, inode, keep dev, keep inode,
    victim blake3) for `source`, a query of (grp, f.*) rows, ranked by the keep rule."""
    if keep.startswith("prefix:"):
        # A folder, matched whole: prefix:/photos/b keeps /photos/b/x, never /photos/bb/x.
        params["prefix"] = os.path.abspath(keep.split(":", 1)[1]).rstrip("/") + "/"
    sql = f"""
        WITH src AS ({source}), ranked AS (
            SELECT s.grp, f.blake3, f.path_bytes, f.size, f.mtime_ns, f.dev, f.inode, f.media_id::VARCHAR AS mid,
                   row_number() OVER (PARTITION BY s.grp ORDER BY {_order(keep)}) AS rank
            FROM src s JOIN files f ON f.path_bytes = s.path_bytes AND f.status = 'present'
            LEFT JOIN media m ON m.blake3 = f.blake3
        )
        SELECT v.grp, k.path_bytes, v.path_bytes, v.size, v.mtime_ns, v.dev, v.inode, k.dev, k.inode, v.blake3,
               k.mid, v.mid
        FROM ranked v JOIN ranked k ON k.grp = v.grp AND k.rank = 1
        WHERE v.rank > 1 ORDER BY v.grp, v.path_bytes
        """
    try:
        return cat.con.sql(sql, params=params).fetchall()
    except duckdb.Error as e:
        if keep.startswith("sql:"):
            raise InvalidInputError(f"--keep {keep!r} is not a valid ORDER BY over files f and media m: "
                                    f"{first_line(e)}") from None
        raise


def plan_exact(cat: Catalog, keep: str, action: str, target: Path | None = None, kind: str | None = None) -> Plan:
    """The plan for every exact duplicate group: keep one file by `keep`, act on the rest."""
    _check_action(action, target, ACTIONS)
    params: dict[str, Any] = {}
    where = ""
    if kind is not None:
        where, params["kind"] = "AND kind = $kind", kind
    rows = _ranked(cat, keep, f"""
        SELECT dense_rank() OVER (ORDER BY blake3) AS grp, path_bytes FROM files
        WHERE status = 'present' AND blake3 IS NOT NULL {where}
          AND blake3 IN (SELECT blake3 FROM files WHERE status = 'present' AND blake3 IS NOT NULL
                         GROUP BY blake3 HAVING count(*) > 1)""", params)
    steps = [
        Step(int(g), bytes(kp), bytes(vp), int(size), int(mt), int(dev), int(ino), keep_id=kid, victim_id=vid)
        for g, kp, vp, size, mt, dev, ino, kdev, kino, _h, kid, vid in rows
        # Already a hard link to the kept file: nothing to link or clone.
        if not (action in ("hardlink", "reflink") and (dev, ino) == (kdev, kino))
    ]
    return Plan(action, target, steps)


def plan_similar(cat: Catalog, keep: str, action: str, target: Path | None = None, method: str = "phash") -> Plan:
    """The plan for the near-duplicate groups of the last `dupes --similar` run of this
    method ('phash' pictures, 'video', 'audio'): keep one file of each group by `keep`
    (say largest-resolution or highest-bitrate), move the others away."""
    _check_action(action, target, SIMILAR_ACTIONS)
    rows = _ranked(cat, keep, """
        SELECT g.group_id AS grp, f.path_bytes FROM similar_groups g
        JOIN files f ON f.blake3 = g.blake3 AND f.status = 'present'
        WHERE g.method = $method""", {"method": method})
    steps = [Step(int(g), bytes(kp), bytes(vp), int(size), int(mt), int(dev), int(ino), blake3=h, keep_id=kid,
                  victim_id=vid)
             for g, kp, vp, size, mt, dev, ino, _kd, _ki, h, kid, vid in rows]
    return Plan(action, target, steps, similar=True)


def same_bytes(a: bytes, b: bytes) -> bool:
    """Byte-for-byte equality, read in full (never trust a hash alone before deleting)."""
    with open(a, "rb") as fa, open(b, "rb") as fb:
        if os.fstat(fa.fileno()).st_size != os.fstat(fb.fileno()).st_size:
            return False
        while True:
            x, y = fa.read(CHUNK), fb.read(CHUNK)
            if x != y:
                return False
            if not x:
                return True


class Journal:
    """Append-only JSON lines, each flushed and fsynced before the next step."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(path, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, **entry: Any) -> None:
        self.f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self) -> None:
        self.f.close()


def _b64(p: bytes) -> str:
    import base64

    return base64.b64encode(p).decode("ascii")


def _unb64(s: str) -> bytes:
    import base64

    return base64.b64decode(s)


@dataclass
class Outcome:
    done: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    bytes_freed: int = 0
    journal: Path | None = None
    done_steps: list[Step] = field(default_factory=list)
    tags_carried: int = 0
    collections_carried: int = 0


def _moved_path(victim: bytes, dest_root: Path) -> bytes:
    return os.path.join(os.fsencode(dest_root), victim.lstrip(b"/"))


def apply(plan: Plan, journal_dir: Path, trash_root: Path) -> Outcome:
    """Carry out the plan, checking each file first; see the module docstring."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    journal = Journal(journal_dir / f"dedupe-{stamp}.jsonl")
    dest = plan.target if plan.action == "move-to" else trash_root / stamp
    out = Outcome(journal=journal.path)
    journal.write(kind="start", action=plan.action, dest=str(dest) if plan.action in ("move-to", "trash") else None)
    try:
        for s in plan.steps:
            why = _check(s, plan.similar, plan.action)
            if why:
                out.skipped.append((s.victim.decode("utf-8", "replace"), why))
                continue
            st = os.lstat(s.victim)
            entry = {"victim": _b64(s.victim), "keep": _b64(s.keep), "mode": st.st_mode, "mtime_ns": st.st_mtime_ns,
                     "atime_ns": st.st_atime_ns}
            journal.write(kind="intent", **entry)
            if plan.action in ("hardlink", "symlink", "reflink"):
                why = _link(plan.action, s, st)
                if why:
                    journal.write(kind="skipped", victim=entry["victim"], why=why)
                    out.skipped.append((s.victim.decode("utf-8", "replace"), why))
                    continue
            else:
                assert dest is not None
                target = _moved_path(s.victim, dest)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                if os.path.lexists(target):
                    out.skipped.append((s.victim.decode("utf-8", "replace"), "already present at the destination"))
                    continue
                _move(s.victim, target)
                entry["moved_to"] = _b64(target)
            journal.write(kind="done", **entry)
            out.done_steps.append(s)
            out.done += 1
            out.bytes_freed += s.size
    finally:
        journal.write(kind="end")
        journal.close()
    return out


def _link(action: str, s: Step, st: os.stat_result) -> str | None:
    """Replace the victim by a link to (or clone of) the kept file through a temporary name
    and an atomic rename, so its path always holds the bytes; the reason when the file
    system refuses (the victim is then left exactly as it was)."""
    tmp = s.victim + b".mediaforge-tmp"
    try:
        if action == "hardlink":
            os.link(s.keep, tmp)
        elif action == "symlink":
            os.symlink(os.path.abspath(s.keep), tmp)
        else:
            why = _reflink(s.keep, tmp, st)
            if why:
                return why
        os.replace(tmp, s.victim)
    except OSError as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        return f"{action} failed: {e.strerror}"
    return None


def _reflink(keep: bytes, tmp: bytes, victim: os.stat_result) -> str | None:
    """Clone `keep` to `tmp` sharing its blocks, with the victim's mode and times; the
    reason when the file system cannot."""
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IMODE(victim.st_mode))
    try:
        with open(keep, "rb") as src:
            fcntl.ioctl(fd, FICLONE, src.fileno())
        os.fsync(fd)
    except OSError as e:
        os.close(fd)
        os.unlink(tmp)
        if e.errno in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.EXDEV, errno.ENOSYS):
            return "reflink not supported here (needs Btrfs, XFS or bcachefs, both files on one file system)"
        return f"reflink failed: {e.strerror}"
    os.close(fd)
    os.utime(tmp, ns=(victim.st_atime_ns, victim.st_mtime_ns))
    return None


def carry_over(cat: Catalog, out: Outcome) -> None:
    """Give each kept file the tags and collection places of the files acted on (tags
    added this way have source 'dedupe'), and journal what was added so `undo` can take
    it back."""
    pairs = [(s.victim_id, s.keep_id) for s in out.done_steps if s.victim_id and s.keep_id]
    if not pairs or out.journal is None:
        return
    import pyarrow as pa

    from ..organise.tags import who

    moves = pa.table({"victim": pa.array([v for v, _ in pairs], pa.string()),
                      "keep": pa.array([k for _, k in pairs], pa.string())})
    with cat.registered("mf_moves", moves), cat.transaction() as con:
        tags = con.execute("""
            SELECT DISTINCT m.keep, t.tag FROM mf_moves m JOIN tags t ON t.media_id = m.victim::UUID
            WHERE NOT EXISTS (SELECT 1 FROM tags k WHERE k.media_id = m.keep::UUID AND k.tag = t.tag)""").fetchall()
        if tags:
            con.execute("INSERT INTO tags SELECT k::UUID, t, 'dedupe', ?, now()::TIMESTAMP FROM "
                        "(SELECT unnest(?::VARCHAR[]) AS k, unnest(?::VARCHAR[]) AS t)",
                        [who(), [k for k, _ in tags], [t for _, t in tags]])
        items = con.execute("""
            SELECT DISTINCT m.keep, i.collection_id FROM mf_moves m JOIN collection_items i ON i.media_id = m.victim::UUID
            WHERE NOT EXISTS (SELECT 1 FROM collection_items k WHERE k.media_id = m.keep::UUID
                              AND k.collection_id = i.collection_id)""").fetchall()
        if items:  # one insert: each collection's new members go after its current last one
            con.execute("""
                WITH x AS (SELECT unnest(?::VARCHAR[]) AS keep, unnest(?::BIGINT[]) AS cid)
                INSERT INTO collection_items
                SELECT x.cid, x.keep::UUID,
                       (SELECT coalesce(max(position), 0) FROM collection_items c WHERE c.collection_id = x.cid)
                           + row_number() OVER (PARTITION BY x.cid ORDER BY x.keep),
                       ?, now()::TIMESTAMP
                FROM x""", [[k for k, _ in items], [int(c) for _, c in items], who()])
    journal = Journal(out.journal)
    try:
        journal.write(kind="carried", tags=[[k, t] for k, t in tags], collections=[[k, int(c)] for k, c in items])
    finally:
        journal.close()
    out.tags_carried = len(tags)
    out.collections_carried = len(items)


def uncarry(cat: Catalog, path: Path) -> int:
    """Take back the tags and collection places a journal's dedupe carried over."""
    removed = 0
    with cat.transaction() as con:
        for e in _entries(path):
            if e.get("kind") != "carried":
                continue
            for keep, tag in e.get("tags", []):
                removed += con.execute("DELETE FROM tags WHERE media_id = ?::UUID AND tag = ? AND source = 'dedupe'",
                                       [keep, tag]).fetchall()[0][0]
            for keep, cid in e.get("collections", []):
                con.execute("DELETE FROM collection_items WHERE media_id = ?::UUID AND collection_id = ?", [keep, cid])
    return int(removed)


def _check(s: Step, similar: bool = False, action: str = "") -> str | None:
    """Why this step must not run, or None."""
    try:
        kst, vst = os.lstat(s.keep), os.lstat(s.victim)
    except FileNotFoundError as e:
        return f"gone since the scan: {os.fsdecode(e.filename or b'')}"
    if not stat.S_ISREG(kst.st_mode) or not stat.S_ISREG(vst.st_mode):
        return "not a regular file any more"
    if (vst.st_size, vst.st_mtime_ns, vst.st_ino) != (s.size, s.mtime_ns, s.inode):
        return "changed since the scan (rescan first)"
    if (kst.st_dev, kst.st_ino) == (vst.st_dev, vst.st_ino):
        return "already the same file as the kept one"
    if action in ("hardlink", "reflink") and kst.st_dev != vst.st_dev:
        return f"on another file system than the kept file: a {action} cannot cross it (try --action symlink)"
    if similar:
        from .. import _core

        if _core.hash_file(s.victim) != s.blake3:
            return "contents changed since they were compared (rescan first)"
        return None
    if not same_bytes(s.keep, s.victim):
        return "contents differ from the kept file"
    return None


def _move(src: bytes, dst: bytes) -> None:
    try:
        os.rename(src, dst)
    except OSError as e:
        if e.errno != 18:  # EXDEV: another file system
            raise
        shutil.copy2(src, dst)
        with open(dst, "rb") as f:
            os.fsync(f.fileno())
        if not same_bytes(src, dst):
            os.unlink(dst)
            raise PathIOError(f"copy to {os.fsdecode(dst)} did not verify; the original is kept") from None
        os.unlink(src)


def _entries(path: Path) -> Iterator[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise PathIOError(f"cannot read journal {path}: {e.strerror}") from None
    for n, line in enumerate(lines, 1):
        try:
            yield json.loads(line)
        except ValueError:
            if n == len(lines):
                return  # a last line cut short by a crash
            raise InvalidInputError(f"journal {path} line {n} is not valid JSON") from None


def undo(path: Path) -> Outcome:
    """Reverse every completed action of a journal, newest first."""
    entries = list(_entries(path))
    if not entries or entries[0].get("kind") != "start":
        raise InvalidInputError(f"{path} is not a MediaForge dedupe journal")
    action = entries[0]["action"]
    out = Outcome(journal=path)
    for e in reversed([e for e in entries if e.get("kind") == "done"]):
        victim, keep = _unb64(e["victim"]), _unb64(e["keep"])
        try:
            if action in ("hardlink", "symlink", "reflink"):
                # Give the path its own copy of the bytes again.
                tmp = victim + b".mediaforge-tmp"
                shutil.copyfile(keep, tmp)
                os.chmod(tmp, stat.S_IMODE(e["mode"]))
                os.utime(tmp, ns=(e["atime_ns"], e["mtime_ns"]))
                os.replace(tmp, victim)
            else:
                moved = _unb64(e["moved_to"])
                if os.path.lexists(victim):
                    out.skipped.append((victim.decode("utf-8", "replace"), "a file is back at the original path"))
                    continue
                os.makedirs(os.path.dirname(victim), exist_ok=True)
                _move(moved, victim)
            out.done += 1
        except OSError as err:
            out.skipped.append((victim.decode("utf-8", "replace"), err.strerror or str(err)))
    return out
