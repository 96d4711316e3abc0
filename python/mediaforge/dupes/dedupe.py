"""Acting on exact duplicate groups, safely: plan, verify, act, journal, undo.

A plan keeps one file of each group (by a keep rule) and names an action for the others.
Nothing happens without `apply`. When applying, each file is checked again right before
its action: it must still be the file the catalog knows (same size, mtime and inode), and
its bytes must equal the kept file's, read in full; otherwise it is skipped. The kept file
is never touched, so the last copy of anything always remains. Every action is written to
a journal (one JSON line, flushed to disk, before and after it), and `undo` reverses a
journal's completed actions, newest first, on each path that still holds what the dedupe
left there (same inode, same link target, same content hash); anything saved there since
is left alone. Temporary names are fresh and created exclusively, so no file of the user's
is ever overwritten or removed by one.

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

import base64
import binascii
import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import stat
import struct
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import _dbload  # noqa: F401 - before duckdb: holds Ctrl-C back while it loads

import duckdb

from ..catalog import Catalog
from ..errors import InvalidInputError, PathIOError, PathNotFoundError, first_line, path_text, shell_word
from ..fsops import (CAP_FOWNER, absolute, alive, exchange, give_back, has_capability, may_give, new_tmp, rename_new,
                     sweep_stale, sync_folder, time_ns, xattrs)
from ..stop import Stop
from .find import BEST_ORDER, NOT_BY_DEFAULT, RATE, copies_sql, numbered_groups_sql

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
    "highest-bitrate": f"{RATE} DESC NULLS LAST, f.size DESC",
    "oldest-taken": "coalesce(m.taken_at, m.created_at) NULLS LAST, f.mtime_ns",
    "biggest": "f.size DESC",
    "best": BEST_ORDER,  # the default with --similar
}
RULES = tuple(RULE_ORDERS)
# The keep rule when none is given: near-duplicates differ, and the best one stays.
DEFAULT_KEEP = {False: "oldest", True: "best"}
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
    # The content the victim must still have: checked by hashing for near-duplicates,
    # journaled for every action so `undo` can tell the bytes are still the same.
    blake3: str | None = None
    # Stable ids of both files, so tags and collections can follow the kept one.
    keep_id: str | None = None
    victim_id: str | None = None
    # The kept file as the catalog knows it (size, mtime, inode, content): near-duplicates
    # check it before acting, since no byte comparison with the victim can vouch for it.
    keep_size: int = -1
    keep_mtime_ns: int = -1
    keep_inode: int = -1
    keep_blake3: str | None = None
    keep_dev: int = -1
    # The victim's hard link count as the last scan saw it: its bytes are freed only when
    # every name of its inode goes.
    nlink: int = 1
    # Gone from its path, moved away by an earlier dedupe (`_moves_before`).
    moved_before: bool = False
    # The (device, inode) an earlier reflink dedupe's clone took at its path (`_moves_before`).
    cloned_as: tuple[int, int] | None = None
    # The symbolic links earlier symlink dedupes made to this copy, which a move would
    # leave leading nowhere (`_links_to`).
    linked_from: tuple[bytes, ...] = ()


@dataclass
class Plan:
    action: str
    target: Path | None
    steps: list[Step] = field(default_factory=list)
    similar: bool = False
    # Near-duplicate groups left out: the file each was formed around (its leader) is gone
    # since `dupes --similar` ran, and its members need be near that one alone.
    stale: int = 0
    # For `move-to`: every path the catalog knows (present or gone) of each victim's inode.
    names: dict[tuple[int, int], list[bytes]] = field(default_factory=dict)
    # Near-duplicate pictures the keep rule would have kept whose JPEG data proved damaged
    # (`_damaged_kept`): content -> (a path of it, why); each group keeps a whole copy.
    damaged: dict[str, tuple[bytes, str]] = field(default_factory=dict)

    @property
    def reclaimable(self) -> int:
        """The bytes the plan frees, counted once an inode: a copy whose inode keeps a name
        the plan leaves (another link, maybe outside the library) frees nothing, whatever
        the action: a moved copy's bytes stay on their disk while another name holds them,
        and a trashed one's once the trash is emptied."""
        names: dict[tuple[int, int], list[Step]] = {}
        for s in self.steps:  # (never a name of the kept file: see `_steps`)
            names.setdefault((s.dev, s.inode), []).append(s)
        return sum(ss[0].size for ss in names.values() if len(ss) >= ss[0].nlink)


def _order(rule: str) -> str:
    """The ORDER BY of a keep rule; `sql:EXPR` is the user's own, over f.* and m.*."""
    if rule.startswith("prefix:"):
        # On the exact bytes (a folder name that is not UTF-8 too): a BLOB starts with
        # "<dir>/" when it sorts from "<dir>/" up to, not including, "<dir>0".
        # The folder as given or with its links resolved: the catalog holds the paths
        # the scans were given, through a link or not.
        order = ("CASE WHEN f.path_bytes >= $prefix AND f.path_bytes < $prefix_end OR f.path_bytes >= $real_prefix "
                 "AND f.path_bytes < $real_prefix_end THEN 0 ELSE 1 END, f.mtime_ns")
    elif rule.startswith("sql:"):
        order = rule[4:].strip()
        if not order or ";" in order:
            raise InvalidInputError(f"--keep {rule!r}: give one ORDER BY expression list, e.g. sql:m.bitrate DESC")
        bare = re.sub(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"", "''", order)  # what lies outside quotes
        if "--" in bare or "/*" in re.sub(r"/\*.*?\*/", "", bare, flags=re.S):  # a closed /* */ is harmless
            # Else it reads as cut short where the comment starts, and DuckDB's error
            # names a word of the statement around it.
            raise InvalidInputError(f"--keep {rule!r}: a comment (--, or /* left open) is not taken in a keep rule; "
                                    "leave it out")
    elif rule in RULE_ORDERS:
        order = RULE_ORDERS[rule]
    else:
        raise InvalidInputError(f"unknown keep rule {rule!r}: one of {', '.join(RULES)}, prefix:PATH or sql:ORDER BY")
    return f"{order}, length(f.path), f.path_bytes"


def _check_keep_sql(cat: Catalog, keep: str) -> None:
    """A `sql:` keep rule is an ORDER BY over the group's files and their metadata, as
    DuckDB's parser reads it: no subquery (which could read any table, or a file through a
    table function), as a `--where` condition has none."""
    from ..organise.predicate import parse_tree, walk

    tree = parse_tree(cat, f"SELECT 1 FROM files f, media m ORDER BY {_order(keep)}\n",
                      f"--keep {keep!r}: nested too deeply")
    statements = tree.get("statements") or []
    node = statements[0].get("node", {}) if len(statements) == 1 and not tree.get("error") else {}
    modifiers = node.get("modifiers") or []
    if (node.get("type") != "SELECT_NODE" or len(modifiers) != 1 or modifiers[0].get("type") != "ORDER_MODIFIER"
            or node.get("where_clause") is not None):
        raise InvalidInputError(f"--keep {keep!r}: give one ORDER BY expression list, e.g. sql:m.bitrate DESC")
    if any(n.get("class") == "SUBQUERY" or n.get("type") == "SUBQUERY" for n in walk(modifiers)):
        raise InvalidInputError(f"--keep {keep!r}: subqueries are not allowed in a keep rule")


def _check_action(action: str, target: Path | None, allowed: tuple[str, ...]) -> None:
    if action not in allowed:
        raise InvalidInputError(f"action {action!r} does not apply here: one of {', '.join(allowed)}")
    if action == "move-to" and target is None:
        raise InvalidInputError("--action move-to needs a folder: --to DIR")


def _library(cat: Catalog, resolved: bool = True) -> list[bytes]:
    """The folders the catalog's scans looked at, links resolved (else as given)."""
    from ..catalog.writes import roots_bytes

    roots = {r for text, raw in cat.con.execute("SELECT roots, roots_raw FROM scans").fetchall()
             for r in roots_bytes(text, raw)}
    return sorted(os.path.realpath(r) if resolved else r for r in roots)


def _inside(path: bytes, library: list[bytes]) -> bytes | None:
    """The folder of `library` that holds `path`, or None."""
    from ..catalog.writes import below

    return next((r for r in library if below(path, [r])), None)


def _check_outside_library(cat: Catalog, target: Path | None) -> None:
    """A `--to` folder inside a folder the catalog scans is refused: the next scan would
    catalog the moved files again, as duplicates of the kept ones, and the next dedupe
    would move them again, nested deeper; nothing would be reclaimed."""
    if target is None:
        return
    from ..catalog.writes import below

    library = _library(cat)
    root = _inside(os.path.realpath(os.fsencode(target)), library) or _mounted_inside(target, library)
    if root is not None:
        raise InvalidInputError(f"--to {path_text(os.fsencode(target))} is inside {path_text(root)}, which the catalog "
                                "scans: the moved files would be catalogued as duplicates again; choose a folder "
                                "outside it")
    # Outside, yet where the moves put files may lie inside: a copy's whole path goes
    # again below --to, so with --to /mnt/backup the files of /mnt/backup/mnt land in
    # /mnt/backup/mnt/backup/mnt.
    for r in {*library, *_library(cat, resolved=False)}:
        landing = os.path.realpath(moved_path(r, target))
        root = _inside(landing, library) or next((lib for lib in library if below(lib, [landing])), None)
        if root is not None:
            raise InvalidInputError(f"--to {path_text(os.fsencode(target))} would put the copies found in "
                                    f"{path_text(r)} in {path_text(landing)}, inside {path_text(root)}, which the "
                                    "catalog scans: they would be catalogued as duplicates again; choose another "
                                    "folder")


def _mounted_inside(target: Path, library: list[bytes]) -> bytes | None:
    """The folder of `library` that `target` lies in by another way to it than its path:
    a bind mount of it, of a folder in it, or of a folder above it. Each is placed on its
    file system (`_place`: the mount's device, and the path within that file system, as
    /proc/self/mountinfo tells), which is one place whichever mount it is reached by."""
    from ..catalog.writes import below

    mounts = _mounts()
    if not mounts:  # (no mount table to read) one folder, one device and inode number
        roots: dict[tuple[int, int], bytes] = {}
        for r in library:
            with contextlib.suppress(OSError):
                roots.setdefault(_inode(os.stat(r)), r)
        at = os.path.realpath(os.fsencode(target))
        while True:
            with contextlib.suppress(OSError):
                found = roots.get(_inode(os.stat(at)))
                if found is not None:
                    return found
            up = os.path.dirname(at)
            if up == at:
                return None
            at = up
    place = _place(os.fsencode(target), mounts)
    if place is None:
        return None
    for r in library:
        there = _place(r, mounts)
        if there is not None and there[0] == place[0] and below(place[1], [there[1]]):
            return r
    return None


@dataclass(frozen=True)
class _Mount:
    dev: tuple[int, int]  # major, minor: one file system, whichever mount shows it
    root: bytes  # the folder of that file system mounted here
    point: bytes  # where
    fstype: str


def _mounts() -> list[_Mount]:
    """/proc/self/mountinfo, in mount order (a later mount at the same point is on top);
    empty where it cannot be read."""
    out: list[_Mount] = []
    unescape = lambda b: re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), b)  # noqa: E731
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            for line in f:
                fields = line.split()
                if b"-" not in fields or len(fields) < 5:
                    continue
                sep = fields.index(b"-")
                major, _, minor = fields[2].partition(b":")
                with contextlib.suppress(ValueError):
                    out.append(_Mount((int(major), int(minor)), unescape(fields[3]), unescape(fields[4]),
                                      fields[sep + 1].decode("ascii", "replace") if sep + 1 < len(fields) else ""))
    except OSError:
        return []
    return out


def _place(path: bytes, mounts: list[_Mount]) -> tuple[tuple[int, int], bytes] | None:
    """Where `path` (links resolved; a part that does not exist yet kept as it is) lies:
    its file system's device, and its path within that file system."""
    from ..catalog.writes import below

    real = os.path.realpath(path)
    best = None
    for i, m in enumerate(mounts):
        # A mount made later at it or at a folder above it hides it.
        if below(real, [m.point]) and not below(m.point, [later.point for later in mounts[i + 1:]]):
            if best is None or len(m.point) >= len(best.point):
                best = m
    if best is None:
        return None
    rest = real[len(best.point.rstrip(b"/")):]
    return best.dev, os.path.normpath(best.root.rstrip(b"/") + rest) if rest else best.root


def _ranked(cat: Catalog, keep: str, source: str, params: dict[str, Any], links: Any = None,
            worse: Sequence[str] | None = None) -> list[tuple[Any, ...]]:
    """Rows (group, keep path, victim path, size, mtime, dev, inode, keep dev, keep inode,
    victim blake3, keep id, victim id, keep size, keep mtime, keep blake3, victim nlink) for
    `source`, a query of (grp, f.*) rows, ranked by the keep rule. A path that leads through
    a link (see `links_of`; `links`: that table for `source`'s paths, if made already) is
    given as where it leads, and one that leads out of the library is left out. With
    `worse` (near-duplicate groups), whatever the rule, a whole file comes before one whose
    data did not all decode (a `decode` note) or whose content is in `worse`."""
    links = links_of(cat, source, params) if links is None else links
    first = ""
    if worse is not None:
        params = {**params, "worse": list(worse)}
        first = ("(EXISTS (SELECT 1 FROM meta_errors e WHERE e.blake3 = f.blake3 AND e.stage = 'decode') "
                 "OR list_contains($worse, f.blake3)), ")
    if keep.startswith("sql:"):
        _check_keep_sql(cat, keep)
    if keep.startswith("prefix:"):
        # A folder, matched whole: prefix:/photos/b keeps /photos/b/x, never /photos/bb/x.
        given = keep.split(":", 1)[1]
        if not given:
            raise InvalidInputError("--keep prefix: give the folder whose copies to keep (prefix:FOLDER)")
        if os.path.exists(os.fsencode(given)) and not os.path.isdir(os.fsencode(given)):
            raise InvalidInputError(f"--keep prefix:{given}: that is a file, not a folder; give the folder whose "
                                    "copies to keep")
        if not os.path.isdir(os.fsencode(given)):  # a typo must not quietly keep by age
            raise PathNotFoundError(f"--keep prefix:{given}: no such folder")
        folder = absolute(os.fsencode(given)).rstrip(b"/")
        real = os.path.realpath(folder).rstrip(b"/")
        params["prefix"], params["prefix_end"] = folder + b"/", folder + b"0"
        params["real_prefix"], params["real_prefix_end"] = real + b"/", real + b"0"
    aside = _put_aside(cat, params)
    sql = f"""
        WITH src AS ({source}), ranked AS (
            SELECT s.grp, f.blake3, coalesce(l.real, f.path_bytes) AS path_bytes, f.size, f.mtime_ns, f.dev, f.inode,
                   f.nlink, f.media_id::VARCHAR AS mid,
                   row_number() OVER (PARTITION BY s.grp ORDER BY {first}{_order(keep)}) AS rank
            FROM src s JOIN files f ON f.path_bytes = s.path_bytes AND f.status = 'present'
            LEFT JOIN media m ON m.blake3 = f.blake3
            LEFT JOIN mf_links l ON l.path_bytes = f.path_bytes
            WHERE NOT coalesce(l.outside, false) AND NOT ({aside})
        )
        SELECT v.grp, k.path_bytes, v.path_bytes, v.size, v.mtime_ns, v.dev, v.inode, k.dev, k.inode, v.blake3,
               k.mid, v.mid, k.size, k.mtime_ns, k.blake3, v.nlink
        FROM ranked v JOIN ranked k ON k.grp = v.grp AND k.rank = 1
        WHERE v.rank > 1 ORDER BY v.grp, v.path_bytes
        """
    try:
        with cat.registered("mf_links", links):
            return cat.con.sql(sql, params=params).fetchall()
    except duckdb.Error as e:
        if keep.startswith("sql:"):
            raise InvalidInputError(f"--keep {keep!r} is not a valid ORDER BY over files f and media m: "
                                    f"{first_line(e)}") from None
        raise


def _put_aside(cat: Catalog, params: dict[str, Any]) -> str:
    """SQL: `f` lies in the journal or trash folder beside the catalog (by the path the
    catalog was given, or its real one), or the folders of another catalog the scans
    found (its journal, trash, thumbnails and search index), with their bounds added to
    `params`. A file
    there is neither kept nor acted on: a folder of the user's by either name becomes
    dedupe's at its first `--apply`, which the next scan leaves out, so a copy kept there
    would be the one the library loses sight of (and the space comes back, the report
    says, once the trash folder is deleted)."""
    from ..config import JOURNAL_DIR, TRASH_DIR

    from ..organise.search import OWNER

    given = absolute(os.fsencode(cat.path))
    folders = {os.path.join(os.path.dirname(p), name) for p in (given, os.path.realpath(given))
               for name in (os.fsencode(JOURNAL_DIR), os.fsencode(TRASH_DIR))}
    # Another catalog's too, where this one's scans found it (a catalog kept in the
    # library, scanned by a second one), by its dedupe journals or its search index's id:
    # a copy kept in its trash would go with that trash when its report's advice is taken
    # (a QA finding), one acted on there would be lost to its undo, and its index's and
    # thumbnails' files are no copies of the user's.
    for path, name in cat.con.execute(
            "SELECT path_bytes, name FROM files WHERE status = 'present' "
            "AND (name LIKE 'dedupe-%.jsonl' OR name = $owner)", {"owner": OWNER}).fetchall():
        folder = os.path.dirname(bytes(path))
        if name == OWNER and folder.endswith((b".search", b".search-index")):
            folders.add(folder)
        elif not (os.path.basename(folder) == os.fsencode(JOURNAL_DIR) and _OWN_JOURNAL_NAME.fullmatch(name)):
            continue
        beside = os.path.dirname(folder)
        folders.update(os.path.join(beside, n) for n in (os.fsencode(JOURNAL_DIR), os.fsencode(TRASH_DIR), b"thumbs"))
    terms = []
    for i, folder in enumerate(sorted(folders)):
        params[f"aside{i}"], params[f"aside{i}_end"] = folder + b"/", folder + b"0"
        terms.append(f"(f.path_bytes >= $aside{i} AND f.path_bytes < $aside{i}_end)")
    return " OR ".join(terms) or "false"


def plan_exact(cat: Catalog, keep: str, action: str, target: Path | None = None, kind: str | None = None) -> Plan:
    """The plan for every exact duplicate group: keep one file by `keep`, act on the rest."""
    _check_action(action, target, ACTIONS)
    _check_outside_library(cat, target)
    params: dict[str, Any] = {}
    where, of_file = NOT_BY_DEFAULT, NOT_BY_DEFAULT.replace("kind", "f.kind")
    if kind is not None:
        (where, of_file), params["kind"] = ("AND kind = $kind", "AND f.kind = $kind"), kind
    # The groups as `dupes` numbers them: without the paths that lead out of the library.
    links = links_of(cat, copies_sql(where), params)
    rows = _ranked(cat, keep, f"""
        SELECT g.grp, f.path_bytes FROM ({numbered_groups_sql(where, "mf_links")}) g
        JOIN files f ON f.blake3 = g.blake3 AND f.status = 'present' {of_file}""", params, links)
    steps = _moves_before(cat, _steps(rows), reflink=action == "reflink")
    if action in SIMILAR_ACTIONS:
        steps = _links_to(cat, steps)
    return Plan(action, target, steps, names=_inode_names(cat, steps) if action == "move-to" else {})


def _moves_before(cat: Catalog, steps: list[Step], moved: _Moved | None = None, reflink: bool = False) -> list[Step]:
    """The steps, those whose copy is gone from its path marked `moved_before` where a
    dedupe journal beside the catalog, never undone, moved it away: a run stopped part
    way (Ctrl-C, a kill) and run again before a scan counts them as done before it, as
    it counts the copies it linked, neither done again nor skipped. For a `reflink` run,
    the clones such a run made are marked so (`cloned_as`): a clone is a new inode, which
    the catalog's row does not know."""
    gone = {s.victim for s in steps if not os.path.lexists(s.victim)}
    if not gone and not reflink:
        return steps
    moved = moved if moved is not None else _moved_by_dedupe(cat)
    steps = [replace(s, moved_before=True) if s.victim in gone and s.blake3 is not None
             and moved.by_path.get(s.victim, ("",))[0] == s.blake3 else s for s in steps]
    if reflink and moved.cloned:
        steps = [replace(s, cloned_as=moved.cloned[s.victim][:2])
                 if s.victim in moved.cloned and moved.cloned[s.victim][2] == s.blake3 else s for s in steps]
    return steps


def _inode_names(cat: Catalog, steps: list[Step]) -> dict[tuple[int, int], list[bytes]]:
    """Every path the catalog knows, present or gone, of each victim's inode: where a move
    to --to puts them, for `_move` to find a name an earlier run that stopped moved there
    (it is gone from the library, a `missing` row after a rescan) and link to it."""
    if not steps:
        return {}
    import pyarrow as pa

    keys = pa.table({"dev": [s.dev for s in steps], "inode": [s.inode for s in steps]})
    names: dict[tuple[int, int], list[bytes]] = {}
    with cat.registered("mf_victims", keys):
        for dev, ino, path in cat.con.sql("""
                SELECT DISTINCT f.dev, f.inode, f.path_bytes FROM files f
                JOIN mf_victims v ON f.dev = v.dev AND f.inode = v.inode ORDER BY ALL""").fetchall():
            names.setdefault((int(dev), int(ino)), []).append(bytes(path))
    return {k: v for k, v in names.items() if len(v) > 1}


def links_of(cat: Catalog, source: str, params: dict[str, Any] | list[Any]) -> Any:
    """A path a scan with `-L` found (or one from before scans recorded that) may be a
    symbolic link, or lie below one, and carries the inode of the file it leads to: it
    stands for that file. For such paths of `source`: (path_bytes, real: where it leads,
    links resolved; outside: whether that lies out of the folders the catalog scans). A
    link is then never replaced or moved itself; a file it leads to in the library is
    acted on, or kept, where it lies; one out of the library is neither kept nor acted on
    (it is not the library's: kept, the library's own copy could go)."""
    import pyarrow as pa

    rows = cat.con.sql(f"""
        WITH src AS ({source})
        SELECT DISTINCT f.path_bytes, f.dev, f.inode FROM src s
        JOIN files f ON f.path_bytes = s.path_bytes AND f.status = 'present'
        JOIN scans sc ON sc.scan_id = f.last_scan_id
        WHERE sc.follow_links IS NOT false""", params=params).fetchall()
    library = _library(cat) if rows else []
    found: dict[str, list[Any]] = {"path_bytes": [], "real": [], "outside": []}
    for path, dev, ino in rows:
        real = _resolved(bytes(path), int(dev), int(ino))
        if real != bytes(path):
            found["path_bytes"].append(bytes(path))
            found["real"].append(real)
            found["outside"].append(_inside(real, library) is None)
    return pa.table({"path_bytes": pa.array(found["path_bytes"], pa.binary()),
                     "real": pa.array(found["real"], pa.binary()), "outside": pa.array(found["outside"], pa.bool_())})


def _steps(rows: list[tuple[Any, ...]]) -> list[Step]:
    """The steps of ranked rows (`_ranked`), only those `apply` can take. A victim that is
    the kept file under another name (a hard link of it, or a link to it in a catalog
    made with `-L`) is left out: nothing would be freed. So is a second path to a victim
    (`-L`): a file is acted on once."""
    steps, seen = [], set()
    for row in rows:
        g, kp, vp, size, mt, dev, ino, kdev, kino, h, kid, vid, ksize, kmt, kh, nlink = row
        keep, victim = bytes(kp), bytes(vp)
        if (dev, ino) == (kdev, kino) or victim == keep or (g, victim) in seen:
            continue
        seen.add((g, victim))
        steps.append(Step(int(g), keep, victim, int(size), int(mt), int(dev), int(ino), blake3=h, keep_id=kid,
                          victim_id=vid, keep_size=int(ksize), keep_mtime_ns=int(kmt), keep_inode=int(kino),
                          keep_blake3=kh, keep_dev=int(kdev), nlink=int(nlink or 1)))
    return steps


def _resolved(path: bytes, dev: int, ino: int) -> bytes:
    """The path, free of symbolic links, of the regular file with this device and inode
    that `path` leads to; `path` itself if it leads to no such file (apply then says why)."""
    with contextlib.suppress(OSError, ValueError):
        real = os.path.realpath(path)
        st = os.lstat(real)
        if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) == (dev, ino):
            return real
    return path


def plan_similar(cat: Catalog, keep: str, action: str, target: Path | None = None, method: str = "phash") -> Plan:
    """The plan for the near-duplicate groups of the last `dupes --similar` run of this
    method ('phash' pictures, 'video', 'audio'): keep one file of each group by `keep`
    (say largest-resolution or highest-bitrate), move the others away."""
    _check_action(action, target, SIMILAR_ACTIONS)
    _check_outside_library(cat, target)
    source = """
        SELECT g.group_id AS grp, f.path_bytes FROM similar_groups g
        JOIN files f ON f.blake3 = g.blake3 AND f.status = 'present'
        WHERE g.method = $method"""
    links = links_of(cat, source, {"method": method})  # (once: each ranking below reads it)
    damaged = _damaged_kept(cat, keep, source, method, links) if method == "phash" else {}
    rows = _ranked(cat, keep, source, {"method": method}, links, worse=list(damaged))
    steps = _steps(rows)
    # A group whose leader is gone (from the catalog, or from its disk since the last
    # scan) is left out: its members were near the leader, not always near each other.
    # Unless an earlier run of this plan moved the leader away itself.
    gone = _leaders_gone(cat, method, {s.group for s in steps})
    moved = _moved_by_dedupe(cat, method) if gone else None
    if moved is not None:
        gone -= _resumed(cat, method, steps, gone, moved)
    steps = _links_to(cat, _moves_before(cat, [s for s in steps if s.group not in gone], moved))
    return Plan(action, target, steps, similar=True, stale=len(gone),
                names=_inode_names(cat, steps) if action == "move-to" else {}, damaged=damaged)


def _damaged_kept(cat: Catalog, keep: str, source: str, method: str, links: Any) -> dict[str, tuple[bytes, str]]:
    """The JPEGs the keep rule would keep of near-duplicate groups whose compressed data is
    damaged (`_core.jpeg_damage`: a run of bytes zeroed or flipped in the middle, which
    libjpeg decodes without an error, grey or smeared past it, so it has no `decode` note):
    content -> (its path, why). A QA finding: `--keep best` kept such a copy, the larger,
    over the whole one it trashed. Each one found, the groups are ranked again without it,
    and the file kept next is checked in turn; only the files that would be kept are read
    (about 20 ms for a 12-megapixel photo; a file found whole is read again by the next run,
    a damaged one is noted and not)."""
    from .. import _core

    damaged: dict[str, tuple[bytes, str]] = {}
    checked: set[str] = set()
    while True:
        kept = {r[14]: r[1] for r in _ranked(cat, keep, source, {"method": method}, links, worse=list(damaged))}
        todo = [b for b in kept if b not in checked]
        checked.update(todo)
        jpegs = [r[0] for r in cat.con.execute(
            "SELECT blake3 FROM media m WHERE list_contains($todo, m.blake3) AND m.format IN ('jpeg', 'mpo') "
            "AND NOT EXISTS "
            "(SELECT 1 FROM meta_errors e WHERE e.blake3 = m.blake3 AND e.stage = 'decode')",
            {"todo": todo}).fetchall()] if todo else []
        if not jpegs:
            return damaged
        found = {b: (kept[b], why) for b, why in zip(jpegs, _core.jpeg_damage([kept[b] for b in jpegs]), strict=True)
                 if why}
        if not found:
            return damaged
        damaged.update(found)


DAMAGED = "its JPEG data is damaged ({why}): a viewer shows the picture grey or smeared past that point"


def note_damaged(cat: Catalog, damaged: dict[str, tuple[bytes, str]]) -> None:
    """Record what `_damaged_kept` found, as extraction records a picture whose data did
    not all decode: a `decode` note, and the content `partial`, so `info`, `stats` and
    every later keep rule know it without reading it again."""
    from ..catalog.writes import utcnow

    now = utcnow()
    with cat.transaction() as con:
        for blake3, (path, why) in damaged.items():
            con.execute("""INSERT INTO meta_errors (blake3, path, path_bytes, stage, message, logged_at)
                           SELECT $b, f.path, f.path_bytes, 'decode', $msg, $now FROM files f
                           WHERE f.blake3 = $b ORDER BY f.path_bytes = $p DESC, f.status = 'present' DESC LIMIT 1""",
                        {"b": blake3, "p": path, "msg": DAMAGED.format(why=why), "now": now})
            con.execute("UPDATE media SET status = 'partial' WHERE blake3 = $b AND status = 'ok'", {"b": blake3})


def _links_to(cat: Catalog, steps: list[Step]) -> list[Step]:
    """The steps, each copy marked with the symbolic links that symlink dedupes beside
    the catalog, never undone, made to it (`linked_from`): the catalog's scans skip
    links, so only their journals know them."""
    from ..config import JOURNAL_DIR

    given = absolute(os.fsencode(cat.path))
    folders = {Path(os.fsdecode(os.path.dirname(p))) / JOURNAL_DIR for p in (given, os.path.realpath(given))}
    links: dict[bytes, list[bytes]] = {}
    for path in sorted({j for folder in folders for j in _journals(folder)}):
        if _journal_action(path) != "symlink":  # (its first line: no other journal is read)
            continue
        try:
            records = _records(path)[1]
        except (InvalidInputError, PathIOError):
            continue
        # Every link it made that no undo took back (an undo stopped part way, or one that
        # skipped files, leaves the others): `_look` asks each whether it still leads there.
        for r in records:
            if r.certain and r.undone is None and r.target:
                links.setdefault(os.path.realpath(r.target), []).append(r.victim)
    if not links:
        return steps
    return [replace(s, linked_from=tuple(links[real])) if (real := os.path.realpath(s.victim)) in links else s
            for s in steps]


@dataclass
class _Moved:
    """What the dedupe journals beside a catalog moved away (to the trash, `--to`): by
    the path each was moved from, its content and the kept file's, by BLAKE3."""

    by_path: dict[bytes, tuple[str | None, str | None]] = field(default_factory=dict)
    # The clones reflink runs made: by path, the (device, inode) each took and its BLAKE3.
    cloned: dict[bytes, tuple[int, int, str]] = field(default_factory=dict)


def _resumed(cat: Catalog, method: str, steps: Sequence[Step], gone: set[int], moved: _Moved) -> set[int]:
    """Of the groups whose leader is gone, those an earlier `dedupe --similar --apply`
    stopped part way (Ctrl-C, a kill, a skip) was acting on: a journal of it beside the
    catalog (`_moved_by_dedupe`) has the leader, at a path the catalog has it at, moved
    away as a copy of the very file this plan keeps in its group. Run again, it goes on
    with that run's plan."""
    if not gone or not moved.by_path:
        return set()
    leaders = dict(cat.con.execute("""
        SELECT DISTINCT group_id, leader FROM similar_groups
        WHERE method = ? AND group_id IN (SELECT unnest(?::BIGINT[]))""", [method, sorted(gone)]).fetchall())
    paths: dict[str, list[bytes]] = {}
    for digest, path in cat.con.execute(
            "SELECT blake3, path_bytes FROM files WHERE blake3 IN (SELECT unnest(?::VARCHAR[]))",
            [sorted(set(leaders.values()))]).fetchall():
        paths.setdefault(digest, []).append(bytes(path))
    kept = {s.group: s.keep_blake3 for s in steps}
    return {g for g in gone if kept.get(g) and leaders.get(g)
            and any(moved.by_path.get(p) == (leaders[g], kept[g]) for p in paths.get(leaders[g], []))}


def _moved_by_dedupe(cat: Catalog, method: str | None = None) -> _Moved:
    """What the dedupe journals beside the catalog moved away, of those begun since the
    catalog's last scan began (and, for near-duplicates of `method`, since the groups
    were made): a run stopped since, whose moves the catalog has not seen. A journal
    undone, in part or whole, or one that cannot be read, counts for nothing."""
    from ..config import JOURNAL_DIR

    ((since,),) = cat.con.execute("SELECT max(started_at) FROM scans").fetchall()
    made = similar_made(cat, method) if method is not None else None
    if made is not None and (since is None or made[1] > since):
        since = made[1]
    given = absolute(os.fsencode(cat.path))
    folders = {Path(os.fsdecode(os.path.dirname(p))) / JOURNAL_DIR for p in (given, os.path.realpath(given))}
    moved = _Moved()
    for path in sorted({j for folder in folders for j in _journals(folder)}):
        begun = _journal_begun(path)
        entries = _standing(path) if begun is not None and (since is None or begun >= since) else None
        reflinked = bool(entries) and entries[0].get("action") == "reflink"  # type: ignore[index]
        for e in _done_or_moved(entries or []):
            if reflinked and e.get("done") and type(e.get("dev")) is int and type(e.get("ino")) is int \
                    and isinstance(e.get("blake3"), str):
                with contextlib.suppress(TypeError, ValueError, binascii.Error):
                    moved.cloned[_unb64(e["victim"])] = (e["dev"], e["ino"], e["blake3"])
            if not e.get("moved_to"):
                continue
            victim, kept = e.get("blake3"), e.get("keep_blake3")
            with contextlib.suppress(TypeError, ValueError, binascii.Error):
                moved.by_path[_unb64(e["victim"])] = (victim if isinstance(victim, str) else None,
                                                      kept if isinstance(kept, str) else None)
    return moved


def _standing(path: Path) -> list[dict[str, Any]] | None:
    """A journal's lines; None for one that cannot be read, or that an undo worked on."""
    try:
        entries = list(_entries(path))
    except (InvalidInputError, PathIOError):
        return None
    return None if any(e["kind"] in UNDO_LINES for e in entries) else entries


def _journal_begun(path: Path) -> datetime | None:
    """When the dedupe of a journal began, in UTC (naive, as the catalog keeps times), by
    its name; None for a name not as `apply` gives it."""
    m = re.fullmatch(r"dedupe-(\d{8}T\d{12})Z\.jsonl", path.name)
    if m is None:
        return None
    try:
        return datetime.strptime(m.group(1), "%Y%m%dT%H%M%S%f")
    except ValueError:
        return None


def _journals(folder: Path) -> list[Path]:
    """The dedupe journals in this folder, oldest first (none when it cannot be read)."""
    try:
        return sorted(p for p in folder.glob("dedupe-*.jsonl") if p.is_file())
    except OSError:
        return []


def _leaders_gone(cat: Catalog, method: str, groups: set[int]) -> set[int]:
    """Of these groups of the method, those whose leader has no path on its disk as the
    catalog knows it (a regular file of its size and mtime)."""
    if not groups:
        return set()
    there: dict[int, bool] = {}
    for g, path, size, mtime in cat.con.execute("""
            SELECT DISTINCT g.group_id, f.path_bytes, f.size, f.mtime_ns FROM similar_groups g
            JOIN files f ON f.blake3 = g.leader AND f.status = 'present'
            WHERE g.method = ? AND g.group_id IN (SELECT unnest(?::BIGINT[]))""",
                                                [method, sorted(groups)]).fetchall():
        if there.get(g):
            continue
        try:
            st = os.stat(bytes(path))
        except (OSError, ValueError):
            there[g] = False
            continue
        there[g] = stat.S_ISREG(st.st_mode) and (st.st_size, st.st_mtime_ns) == (size, mtime)
    return {g for g in groups if not there.get(g)}


def similar_made(cat: Catalog, method: str) -> tuple[int, datetime] | None:
    """The threshold and time of the `dupes --similar` run whose groups of this method a
    plan acts on, or None when there are none."""
    row = cat.con.execute("SELECT max(radius), max(created_at) FROM similar_groups WHERE method = ?",
                          [method]).fetchall()[0]
    return None if row[1] is None else (int(row[0]), row[1])


def media_notes(cat: Catalog, steps: Sequence[Step]) -> dict[str, str]:
    """A few words on each content of a near-duplicate plan, by BLAKE3, for the user to
    see why one stays: pixels, the camera its EXIF names, length, bitrate, lossless
    sound."""
    digests = sorted({d for s in steps for d in (s.blake3, s.keep_blake3) if d})
    notes: dict[str, str] = {}
    for digest, kind, w, h, secs, rate, lossless, camera in cat.con.execute(f"""
            SELECT m.blake3, m.kind, m.width, m.height, m.duration, {RATE}, a.lossless,
                   (SELECT coalesce(e.model, e.make) FROM exif e WHERE e.blake3 = m.blake3)
            FROM media m LEFT JOIN tags_audio a USING (blake3)
            WHERE m.blake3 IN (SELECT unnest(?::VARCHAR[]))""", [digests]).fetchall():
        words = [f"{w}x{h}"] if w and h and kind in ("image", "raw", "video") else []
        if kind in ("image", "raw"):  # (a copy that lost its camera's EXIF is a copy)
            words.append(camera or ("RAW" if kind == "raw" else "no camera EXIF"))
        if secs and kind in ("video", "audio"):
            words.append(f"{int(secs // 60)}:{secs % 60:04.1f}")
        if lossless:
            words.append("lossless")
        elif rate and kind in ("video", "audio"):
            words.append(f"{round(rate / 1000)} kb/s")
        notes[digest] = ", ".join(words)
    return notes


def phash_apart(cat: Catalog, steps: Sequence[Step]) -> dict[tuple[str, str], int]:
    """How many of the 64 pHash bits differ between each picture a near-duplicate plan
    acts on and the one it keeps, by (kept BLAKE3, other BLAKE3): a group's distances are
    to its leader, and two shots of a burst a few bits apart are worth a look."""
    pairs = sorted({(s.keep_blake3, s.blake3) for s in steps if s.keep_blake3 and s.blake3})
    if not pairs:
        return {}
    return {(k, v): int(bits) for k, v, bits in cat.con.execute("""
            SELECT p.k, p.v, bit_count(xor(a.phash, b.phash)) FROM (
                SELECT unnest(?::VARCHAR[]) AS k, unnest(?::VARCHAR[]) AS v) p
            JOIN image_hashes a ON a.blake3 = p.k JOIN image_hashes b ON b.blake3 = p.v""",
            [[k for k, _ in pairs], [v for _, v in pairs]]).fetchall()}


def same_bytes(a: bytes, b: bytes, stop: Stop | None = None) -> bool:
    """Byte-for-byte equality, read in full (never trust a hash alone before deleting).
    False as well when `stop` is requested part-way: nothing may act on half a comparison."""
    with open(a, "rb") as fa, open(b, "rb") as fb:
        if os.fstat(fa.fileno()).st_size != os.fstat(fb.fileno()).st_size:
            return False
        while True:
            if stop is not None and stop.requested:
                return False
            x, y = fa.read(CHUNK), fb.read(CHUNK)
            if x != y:
                return False
            if not x:
                return True


# The lines an undo writes: its start (`undoing`, with its pid) and each file it put
# back (`undone`). A journal with either is one an undo has worked on.
UNDO_LINES = ("undoing", "undone")


class JournalError(PathIOError):
    """The journal could not be written: nothing more may be done, for it could not be
    undone. `reason`: the system's words for why."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


def undo_command(journal: Path, catalog: Path | None) -> str:
    """The command that undoes the run of `journal`, to paste into a shell: naming the
    catalog the run used (`catalog`, where known), which need not be the default one."""
    named = f"-c {shell_word(os.fsencode(catalog))} " if catalog is not None else ""
    return f"mediaforge {named}dedupe --undo {shell_word(os.fsencode(journal))}"


class Journal:
    """Append-only JSON lines, each written whole and fsynced before the next step. A line
    that could not be written whole (a full disk) is cut away again, and a journal opened
    to add to it first loses a last line a crash cut short, so every line it holds but
    the last is whole."""

    def __init__(self, path: Path, appending: bool = False, catalog: Path | None = None) -> None:
        """`appending`: the journal of a run, opened again to add to it: a failed write
        then never removes it (only a journal with nothing in it is removed). `catalog`:
        the one the run uses, for the undo command an error gives."""
        self.path = path
        self.catalog = catalog
        self.lines = 1 if appending else 0
        self.failed = False
        # Where the line being written, or the last one written, starts (-1: none yet): a
        # line cut off by Ctrl-C in its fsync is taken back from there too (`cut`).
        self.started = -1
        # Steps begun and not yet ended by a skip that left the copy untouched, and
        # whether a line says a file was acted on: with neither, nothing to undo.
        self.open_steps = 0
        self.acted = appending
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Read too: `_end_whole` looks at the end it adds to.
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o666)
        except OSError as e:
            raise PathIOError(f"cannot write the dedupe journal in {path.parent}: {e.strerror}; "
                              "nothing was changed") from None
        if appending:
            with contextlib.suppress(OSError):  # left as it is: the next line is refused then
                self._end_whole()

    def _end_whole(self) -> None:
        """Cut off a last line without its end (a crash as it was written): the undo reads
        such a line as never written, and a line added after it would make it invalid."""
        size = os.fstat(self.fd).st_size
        if not size or os.pread(self.fd, 1, size - 1) == b"\n":
            return
        start = max(0, size - 65536)
        while True:
            tail = os.pread(self.fd, size - start, start)
            end = tail.rfind(b"\n")
            if end >= 0 or start == 0:
                os.ftruncate(self.fd, start + end + 1)
                os.fsync(self.fd)
                return
            start = max(0, start - 65536)

    def write(self, **entry: Any) -> int:
        """Append one line; returns where it starts, for `cut`."""
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        start = -1
        try:
            start = self.started = os.fstat(self.fd).st_size
            view = memoryview(line)
            while view:
                view = view[os.write(self.fd, view):]
            os.fsync(self.fd)
        except OSError as e:  # a full disk: stop before the next step, which it could not record
            self.failed = True
            if start >= 0:
                with contextlib.suppress(OSError):
                    self.cut(start)
            if not self.lines:  # not even the first line: nothing was done, leave nothing behind
                self.close()
                with contextlib.suppress(OSError):
                    self.path.unlink()
                raise JournalError(f"cannot write the dedupe journal {self.path}: {e.strerror}; "
                                   "nothing was changed", str(e.strerror)) from None
            raise JournalError(f"cannot write the dedupe journal {self.path}: {e.strerror}; stopped there: what "
                               f"was done is in it, undo with `{undo_command(self.path, self.catalog)}`",
                               str(e.strerror)) from None
        self.lines += 1
        kind = entry.get("kind")
        if kind == "intent":
            self.open_steps += 1
        elif kind == "skipped" and entry.get("untouched"):
            self.open_steps -= 1
        elif kind not in ("start", "end"):
            self.acted = True
        return start

    @property
    def needed(self) -> bool:
        """Whether the journal records anything to undo or to look at: a file acted on,
        a step that ended otherwise than untouched, or one a failure cut short."""
        return self.acted or self.open_steps != 0

    def cut(self, start: int) -> None:
        """Take back the lines from byte `start` on (what they say did not happen)."""
        os.ftruncate(self.fd, start)
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # nothing is buffered: every line was written and fsynced
            self.fd = -1


def _b64(p: bytes) -> str:
    return base64.b64encode(p).decode("ascii")


def _unb64(s: Any) -> bytes:
    if not isinstance(s, str):
        raise TypeError("a path is not a string")
    try:
        return base64.b64decode(s, validate=True)
    except binascii.Error:
        raise ValueError(f"a path or value that is not base64 ({s[:40]!r})") from None


def _whole(entry: dict[str, Any], key: str) -> int:
    """A journal line's number `key`, as the dedupe wrote it: a whole number, not "5" or 1.5."""
    value = entry[key]
    if type(value) is not int:
        raise TypeError(f"its {key} is not a whole number")
    return value


def _file_path(entry: dict[str, Any], key: str) -> bytes:
    """A journal line's file path `key`: absolute, as the dedupe wrote it."""
    path = _unb64(entry[key])
    if not path.startswith(b"/") or b"\0" in path:
        raise ValueError(f"its {key} is not an absolute path")
    return path


@dataclass
class Outcome:
    done: int = 0
    skipped: list[tuple[bytes, str]] = field(default_factory=list)  # (path, why)
    bytes_freed: int = 0
    journal: Path | None = None
    done_steps: list[Step] = field(default_factory=list)
    catalog: Path | None = None  # the catalog of the run, for its undo command
    tags_carried: int = 0
    collections_carried: int = 0
    interrupted: bool = False
    # Files an earlier undo of the journal restored (an undo run again after it stopped);
    # for an apply, copies already linked to their kept file (see `ALREADY_LINKED`).
    already: int = 0
    # Of those, the ones an earlier run of a move moved away (`MOVED_BEFORE`).
    already_moved: int = 0
    # What this undo restored, in order.
    restored: list[bytes] = field(default_factory=list)
    # Why the run stopped early because its journal could not be written (then nothing
    # more was done, not even the tags' carry-over), else None.
    journal_failed: str | None = None
    # The inodes moved away so far: hard links moved together leave the library once.
    # By inode: the names moved, and the names it had before the first one moved.
    moved_inodes: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)
    # The name each inode with several names got on another file system (see `_move`).
    moved_names: dict[tuple[int, int], bytes] = field(default_factory=dict)
    # Where `move-to` and `trash` put the files (the trash's dated folder), else None.
    dest: Path | None = None
    # For a move to --to, where each name of an inode with several goes (see `_move`).
    destinations: dict[tuple[int, int], list[bytes]] = field(default_factory=dict)


def _freed(action: str, st: os.stat_result, moved: dict[tuple[int, int], tuple[int, int]]) -> int:
    """The bytes one done step freed, `st` being the victim as it was just before: a link
    or clone frees its old inode only when that was the inode's last name; a move frees
    it (on this disk for a move to another, once the trash is emptied for a trash) with
    the last of the names it had (a rename leaves the count of names as it was, a move to
    another disk takes one away each time: the count before the first is the one)."""
    if action in ("move-to", "trash"):
        key = (st.st_dev, st.st_ino)
        count, names = moved.get(key, (0, st.st_nlink))
        moved[key] = (count + 1, names)
        return st.st_size if count + 1 == names else 0
    return st.st_size if st.st_nlink == 1 else 0


def moved_path(victim: bytes, dest_root: Path) -> bytes:
    """Where a move puts a file: its whole absolute path again, under the destination."""
    return os.path.join(os.fsencode(dest_root), victim.lstrip(b"/"))


def _destination(plan: Plan, trash_root: Path, stamp: str) -> tuple[Path | None, list[bytes]]:
    """Where moved files go, created up front: a bad --to fails before anything moves;
    and the folders made for it, deepest first (an undo takes them away again, empty)."""
    if plan.action not in ("move-to", "trash"):
        return None, []
    dest = plan.target if plan.action == "move-to" else trash_root / stamp
    assert dest is not None
    if os.path.lexists(dest) and not os.path.isdir(dest):
        raise InvalidInputError(f"--to {path_text(os.fsencode(dest))}: not a folder")
    made = _missing_folders(os.fsencode(dest)) if plan.steps else []
    if plan.steps:
        try:
            os.makedirs(dest, exist_ok=True)
        except OSError as e:
            raise PathIOError(f"cannot create {path_text(os.fsencode(dest))}: {e.strerror}; nothing was changed"
                              ) from None
        try:  # a folder it may not write into (read-only, immutable, another user's): before any file
            tempfile.TemporaryFile(dir=dest).close()
        except OSError as e:
            for folder in made:
                with contextlib.suppress(OSError):
                    os.rmdir(folder)
            raise PathIOError(f"cannot write into {path_text(os.fsencode(dest))}: {e.strerror}; nothing was changed"
                              ) from None
    return dest, made


# Told after each file: (files looked at, files in all, files skipped), for a progress bar.
StepFn = Callable[[int, int, int], None]


# What dedupe itself puts in the journal and trash folders beside the catalog: a run's
# journal, the dated folder of a run's trash, and temporaries a killed writer left.
# And what file browsers and NAS indexers leave in any folder they show (Finder's
# `.DS_Store` and `._` files, Windows' `Thumbs.db` and `desktop.ini`, KDE's `.directory`,
# Synology's `@eaDir`): none of it a file of the user's.
_CLUTTER = r"|\.DS_Store|\._.*|Thumbs\.db|desktop\.ini|\.directory|@eaDir"
_OWN_JOURNAL_NAME = re.compile(r"dedupe-\d{8}T\d{12}Z\.jsonl|\.mediaforge-[0-9a-f]+\.tmp" + _CLUTTER)
_OWN_TRASH_NAME = re.compile(r"\d{8}T\d{12}Z|\.mediaforge-[0-9a-f]+\.tmp" + _CLUTTER)


def _foreign(folder: Path, own: re.Pattern[str]) -> str | None:
    """The first name (sorted) in `folder` that dedupe did not put there; None when it
    holds only dedupe's, is empty or is not there."""
    try:
        names = sorted(os.listdir(os.fsencode(folder)))
    except OSError:
        return None
    return next((os.fsdecode(n) for n in names if not own.fullmatch(os.fsdecode(n))), None)


def check_own_folders(journal_dir: Path, trash_root: Path) -> None:
    """Refuse to take over a journal or trash folder beside the catalog that holds files
    of the user's, whatever the action: dedupe writes into them, and once its first
    journal is there scans leave both out, so a photo of the user's in a `trash/` of
    theirs would drop out of the library (and the report's advice, to delete the trash's
    dated folders, is for dedupe's own)."""
    for folder, own in ((journal_dir, _OWN_JOURNAL_NAME), (trash_root, _OWN_TRASH_NAME)):
        name = _foreign(folder, own)
        if name is not None:
            where = path_text(os.fsencode(folder))
            raise InvalidInputError(
                f"{where} beside the catalog holds {path_text(os.fsencode(name))}, which dedupe did not put there: "
                f"dedupe keeps its {'journals' if own is _OWN_JOURNAL_NAME else 'trash'} in that folder, and scans "
                f"leave it out; move what is yours out of it, or keep the catalog elsewhere; nothing was changed")


def apply(plan: Plan, journal_dir: Path, trash_root: Path, on_step: StepFn | None = None,
          catalog: Path | None = None) -> Outcome:
    """Carry out the plan, checking each file first; see the module docstring. `catalog`:
    the one the plan came from, named in the undo command the outcome gives."""
    check_own_folders(journal_dir, trash_root)
    sweep_killed_runs(journal_dir)
    journal_existed = journal_dir.is_dir()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    dest, made = _destination(plan, trash_root, stamp)
    try:
        journal = Journal(journal_dir / f"dedupe-{stamp}.jsonl", catalog=catalog)
        # (The pid names this run's temporaries: an undo removes those a kill left at once.)
        journal.write(kind="start", action=plan.action, dest=str(dest) if dest is not None else None,
                      pid=os.getpid(), **({"made": [_b64(m) for m in made]} if made else {}))
    except PathIOError:  # nothing was done: the folders made for it go again
        for folder in made:
            with contextlib.suppress(OSError):
                os.rmdir(folder)
        raise
    out = Outcome(journal=journal.path, dest=dest, catalog=catalog)
    if dest is not None:
        out.destinations = {k: [moved_path(p, dest) for p in ps] for k, ps in plan.names.items()}
    # One Stop over the steps and the journal's end: a Ctrl-C as the `end` line is
    # written or the journal closed still leaves `out` to report (what was done, the
    # journal, the undo command).
    with Stop() as stop:
        try:
            for s in plan.steps:
                if stop.requested:
                    break
                # (A move its destination's path refuses: said before any byte is compared.)
                why = dest is not None and _past_path_limit(s.victim, dest, dest.parent if plan.action == "trash"
                                                            else dest)
                seen = None
                if not why:
                    checked = _check(s, plan.similar, plan.action, stop)
                    why, seen = (checked, None) if isinstance(checked, str) else (None, checked)
                if stop.requested:
                    break
                if why in LINKED_BEFORE:
                    out.already += 1
                    out.already_moved += why == MOVED_BEFORE
                    why = None
                elif seen is not None:
                    why = _act(plan.action, s, dest, journal, out, seen)
                if why:
                    out.skipped.append((s.victim, why))
                if on_step is not None:
                    on_step(out.done + out.already + len(out.skipped), len(plan.steps), len(out.skipped))
        except JournalError as e:  # a full disk: not one more step that could not be undone
            out.journal_failed = str(e)
            if not journal.needed:  # (its lines say nothing was done: it goes, below)
                out.journal_failed = f"cannot write the dedupe journal {journal.path}: {e.reason}; nothing was changed"
        finally:
            if not journal.needed:
                # Not one file acted on (each linked before this run, refused by its check, or
                # left untouched by a failed step, or the journal full before the first): no
                # journal, and no undo command, for nothing.
                journal.close()
                with contextlib.suppress(OSError):
                    journal.path.unlink()
                    out.journal = None
                    if not journal_existed:  # the folder made for it, empty: gone too
                        journal_dir.rmdir()
            else:
                with contextlib.suppress(JournalError):
                    journal.write(kind="end")
                journal.close()
            # Folders made for the moves that none came into (every file skipped): gone again,
            # as the undo would take them. One that holds a move is not empty, and stays.
            for folder in made:
                with contextlib.suppress(OSError):
                    os.rmdir(folder)
        out.interrupted = stop.requested
    return out


class _Writing(Exception):
    """A program has the copy open for writing."""


WRITING = ("open for writing by a program: left alone (what it writes after the copy is replaced or moved to "
           "another disk would go to a file no name leads to)")
WROTE = "a program opened it for writing as it was {done}"


# File systems whose leases say nothing of writers: the NFS and SMB clients refuse one
# (EAGAIN) whenever the server gave no read delegation or oplock, writer or not.
_NO_LEASES = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "afs", "fuse")


@contextlib.contextmanager
def _lease(path: bytes, expected: int | None = None) -> Iterator[tuple[Callable[[], bool], os.stat_result]]:
    """A read lease on the copy for the time of its step (`fcntl(F_SETLEASE, F_RDLCK)`):
    `_Writing` when a program has it open for writing now, whose later writes would go to
    an inode no name leads to once the copy is replaced by a link, or moved to another disk
    (copied, then unlinked). While it is held, a program that opens the copy for writing
    waits, and the lease shows broken: yields whether it is, with the `fstat` of the file
    held open (which keeps its inode number from going to another file meanwhile). Where
    no lease is given (a file of another owner without CAP_LEASE, a network file system),
    nothing can be told: the check yielded always says no."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as e:
        raise _Writing(f"cannot open it to act on it: {e.strerror or first_line(e)}") from None
    try:
        st = os.fstat(fd)
        # By inode number, as `_look` compares (a disk mounted again may show another
        # device number than the scan saw).
        if expected is not None and st.st_ino != expected:
            raise _Writing("another file is at its path now (replaced as it was looked at): left alone")
        _sigio_handled()
        try:
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
        except OSError as e:
            if e.errno == errno.EAGAIN and not _mount_types().get(st.st_dev, "").startswith(_NO_LEASES):
                raise _Writing(WRITING) from None
            yield (lambda: False), st
            return
        try:
            yield (lambda: fcntl.fcntl(fd, fcntl.F_GETLEASE) != fcntl.F_RDLCK), st
        finally:
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    finally:
        os.close(fd)


def _sigio_handled() -> None:
    """The kernel tells a lease's holder that a writer waits with SIGIO, whose default
    action ends the process: where it has that default, a handler that does nothing."""
    import signal

    if signal.getsignal(signal.SIGIO) == signal.SIG_DFL:
        signal.signal(signal.SIGIO, lambda *_: None)


REPLACED = ("replaced by another program as it was acted on (saved through a new file, as editors do): left as "
            "that program left it")


KEPT_WRITING = ("the kept file {keep} is open for writing by a program: left alone (linked to it, the copy's "
                "bytes would change with what that program writes)")


@contextlib.contextmanager
def _pinned(keep: bytes, linking: bool = False) -> Iterator[tuple[int, os.stat_result]]:
    """The kept file held open for the time of a step, and its `fstat`: while it is, its
    inode number cannot go to another file, so a name found to lead to that number leads
    to the file that was compared. `linking` (a hard or symbolic link to it is to take the
    copy's place): a read lease on it too, as on the copy (`_lease`), refused while a
    program has it open for writing, whose writes would then change the copy's bytes, the
    only others like them gone (a QA finding): such a step is skipped."""
    try:
        fd = os.open(keep, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as e:
        raise _Writing(f"cannot read the kept file {path_text(keep)}: {e.strerror or first_line(e)}") from None
    leased = False
    try:
        st = os.fstat(fd)
        if linking:
            _sigio_handled()
            try:
                fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
                leased = True
            except OSError as e:
                if e.errno == errno.EAGAIN and not _mount_types().get(st.st_dev, "").startswith(_NO_LEASES):
                    raise _Writing(KEPT_WRITING.format(keep=path_text(keep))) from None
        yield fd, st
    finally:
        if leased:
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        os.close(fd)


def _act(action: str, s: Step, dest: Path | None, journal: Journal, out: Outcome,
         seen: tuple[os.stat_result, os.stat_result]) -> str | None:
    """Do one checked step, journaled before and after; the reason when it could not be
    done. `seen`: the kept file's and the copy's `lstat` as they were compared. Both are
    held open through the step, and every name acted on is checked to lead to them: a file
    saved over either since (a new file renamed into its place) is never taken for it."""
    try:
        with _lease(s.victim, s.inode) as (written, held), \
                _pinned(s.keep, linking=action in ("hardlink", "symlink")) as (kfd, kheld):
            if _written_since(seen[1], held):
                return "changed since it was compared (rescan first)"
            if _written_since(seen[0], kheld):
                return f"the kept file {path_text(s.keep)} changed since it was compared (rescan first)"
            return _act_leased(action, s, dest, journal, out, written, _inode(held), kfd)
    except _Writing as e:
        return str(e)
    except JournalError:
        raise
    except OSError as e:  # (an fstat of a held file failing: an I/O error)
        return f"cannot act on it: {e.strerror or first_line(e)}"


def _act_leased(action: str, s: Step, dest: Path | None, journal: Journal, out: Outcome,
                written: Callable[[], bool], pinned: tuple[int, int], kfd: int) -> str | None:
    try:
        # What a killed run left beside it first (a second name of its inode would make
        # its link count, and so the bytes it frees, look otherwise).
        sweep_stale(os.path.dirname(s.victim))
        st = os.lstat(s.victim)
        kst = os.lstat(s.keep)
        if _inode(st) != pinned:
            return REPLACED
        if _inode(kst) != _inode(os.fstat(kfd)):
            return f"the kept file {path_text(s.keep)} was replaced since it was compared (rescan first)"
        entry: dict[str, Any] = {"victim": _b64(s.victim), "keep": _b64(s.keep), "mode": st.st_mode,
                                 "mtime_ns": st.st_mtime_ns, "atime_ns": st.st_atime_ns, "blake3": s.blake3,
                                 "was_dev": st.st_dev, "was_ino": st.st_ino, "nlink": st.st_nlink,
                                 "uid": st.st_uid, "gid": st.st_gid,
                                 # For the tags' carry-over, replayed if the run is killed first.
                                 "victim_id": s.victim_id, "keep_id": s.keep_id, "keep_blake3": s.keep_blake3}
        # What undo gives a copy of its own again, and nothing else (none: none).
        entry["xattrs"] = [[_b64(k), _b64(v)] for k, v in xattrs(s.victim).items()]
        if action == "symlink":
            entry["target"] = _b64(os.fsencode(os.path.abspath(s.keep)))
        elif action in ("move-to", "trash"):
            assert dest is not None
            too_long = _past_path_limit(s.victim, dest, dest.parent if action == "trash" else dest)
            if too_long:
                return too_long  # (nothing done, nothing journalled)
            entry["moved_to"] = _b64(moved_path(s.victim, dest))
            # The folders the move makes, journalled before it makes them: what the undo
            # takes away again once empty, whatever became of the move (a kill -9 in it).
            made = _missing_folders(os.path.dirname(moved_path(s.victim, dest)))
            if made:
                entry["made"] = [_b64(m) for m in made]
        journal.write(kind="intent", **entry)

        def skipped(why: str) -> str:
            """The skip journalled, marked `untouched` where the copy's path holds the very
            file it did (a journal of such skips alone has nothing to undo: it goes)."""
            try:
                now = os.lstat(s.victim)
                same = (_inode(now), now.st_size, now.st_mtime_ns) == (_inode(st), st.st_size, st.st_mtime_ns)
            except OSError:
                same = False
            journal.write(kind="skipped", victim=entry["victim"], why=why, **({"untouched": True} if same else {}))
            return why

        if action in ("hardlink", "symlink", "reflink"):
            made: list[tuple[int, int]] = []
            why = _link(action, s, st, kst, written, pinned, kfd, made)
            if why:
                return skipped(why)
            entry["dev"], entry["ino"] = made[-1]  # what undo must find there: what the swap put there
        else:
            target = _unb64(entry["moved_to"])
            if os.path.lexists(target):  # never written over, whatever it holds
                return skipped(f"{path_text(target)} is already there (left as it is)")
            probe = _probe(s)
            if probe is not None:
                return skipped(probe)
            try:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                _move(s.victim, target, out.moved_names, out.destinations.get((s.dev, s.inode), ()), written,
                      pinned)
            except OSError as e:
                for folder in made:  # made for this file alone, deepest first: they go again
                    with contextlib.suppress(OSError):
                        os.rmdir(folder)
                return skipped(f"could not move it: {e.strerror or first_line(e)}")
            with contextlib.suppress(OSError):  # where it is now: its names moved back link to it
                entry["dev"], entry["ino"] = _inode(os.lstat(target))
            if not _kept_whole(s, kst, action):
                why = _NOT_WHOLE.format(kept=path_text(s.keep), done="moved")
                try:
                    if os.path.lexists(s.victim):
                        raise FileExistsError(errno.EEXIST, "a file is there again", os.fsdecode(s.victim))
                    _move(target, s.victim, {})
                except OSError as e:  # left where it went, journalled as done: an undo can bring it back
                    why += (f"; it could not be moved back ({e.strerror or first_line(e)}): it is at "
                            f"{path_text(target)}, and the undo of this run's journal puts it back once its path is free")
                    journal.write(kind="done", **entry)
                    return why
                else:
                    for folder in made:
                        with contextlib.suppress(OSError):
                            os.rmdir(folder)
                    return skipped(why + "; it was moved back")
    except JournalError:
        raise
    except OSError as e:
        return f"cannot act on it: {e.strerror or first_line(e)}"
    # Counted before its 'done' line: if that line cannot be written, the step was done
    # all the same (its 'intent' line lets undo find it).
    out.done_steps.append(s)
    out.done += 1
    out.bytes_freed += _freed(action, st, out.moved_inodes)
    journal.write(kind="done", **entry)
    return None


class _Refused(Exception):
    """The file system cannot do what was asked (a reflink on ext4)."""


def _link(action: str, s: Step, st: os.stat_result, kst: os.stat_result,
          written: Callable[[], bool], pinned: tuple[int, int], kfd: int, made: list[tuple[int, int]]) -> str | None:
    """Replace the victim (the file `pinned`) by a link to (or clone of) the kept file
    (held open as `kfd`) through a temporary name swapped into its place, so its path
    always holds the bytes; the reason when the file system refuses (the victim is then
    left exactly as it was), or when another file took its path. Until the kept file is
    seen whole after it (`_kept_whole`), a hard link keeps the victim's bytes at a second,
    hidden name, to put them back if it is not. `made` gets the inode put at the path."""
    try:
        if action == "hardlink":
            tmp = new_tmp(s.victim, lambda t: os.link(s.keep, t))
        elif action == "symlink":
            target = os.path.abspath(s.keep)
            tmp = new_tmp(s.victim, lambda t: os.symlink(target, t))
        else:
            tmp = new_tmp(s.victim, lambda t: _reflink(kfd, t, s.victim, st))
    except _Refused as e:
        return str(e)
    except OSError as e:
        return f"{action} failed: {e.strerror or first_line(e)}"
    aside: bytes | None = None
    try:
        ours = _inode(os.lstat(tmp))
        if action == "hardlink" and ours != _inode(kst):  # (the name `keep` led to another file a moment)
            why: str | None = f"the kept file {path_text(s.keep)} was replaced as it was linked: left alone (rescan first)"
        else:
            aside, why = _second_name(s)
            if why is None and aside is not None and _inode(os.lstat(aside)) != pinned:
                why = REPLACED
        if why is None and written():  # a writer came meanwhile (see `_lease`)
            why = WROTE.format(done="about to be replaced") + "; left alone"
        if why is None:
            # What the swap takes out of the copy's path lands at a name a killed run's
            # sweep never removes while it is a file's only name (`new_tmp`'s `hold`).
            link = tmp
            tmp = new_tmp(s.victim, lambda h: rename_new(link, h), hold=True)
            why = _swap_in(tmp, s.victim, pinned, ours)
            tmp = None  # (its name is the swap's to take away, whatever came of it)
            made.append(ours)
    except OSError as e:
        why = f"{action} failed: {e.strerror or first_line(e)}"
    if why is not None:
        for made in (tmp, aside):  # made above by this run
            if made is not None:
                with contextlib.suppress(OSError):
                    os.unlink(made)
        return why
    if aside is None:
        return None
    # A program that opened the copy for writing meanwhile waits on its lease, and would
    # write to the replaced inode: that is put back (see `_lease`).
    wrote = written()
    if wrote or not _kept_whole(s, kst, action):
        why = WROTE.format(done="replaced") if wrote else REPLACED if _kept_whole(s, kst, "") and not _leads(
            s.victim, ours) else _NOT_WHOLE.format(kept=path_text(s.keep), done="replaced")
        try:
            back = _swap_in(aside, s.victim, ours, pinned)  # the copy's own bytes again
        except OSError as e:
            return f"{why}; its bytes are at {path_text(_in_sight(aside, s.victim))} (could not put them back: " \
                   f"{e.strerror})"
        return why + ("; it was put back" if back is None else "" if back == why else f"; then {back}")
    with contextlib.suppress(OSError):
        os.unlink(aside)
    return None


def _leads(path: bytes, inode: tuple[int, int]) -> bool:
    """Whether `path` is the file `inode` (itself, not what a link there leads to)."""
    try:
        return _inode(os.lstat(path)) == inode
    except OSError:
        return False


def _swap_in(new: bytes, path: bytes, expect: tuple[int, int], made: tuple[int, int]) -> str | None:
    """Put the file at `new` (whose inode is `made`) at `path` in place of the file
    `expect` there, and take `new`'s name away: None. When another file took `path`
    since (a program saved over it through a new file), that file is left there, or put
    back, and `new` goes: `REPLACED`. Names are swapped in one step where the file system
    can, so what the swap took out is looked at before anything is removed; elsewhere a
    look right before a plain rename leaves that instant open. Raises only when nothing
    was done, `new` then still there."""
    if exchange(new, path):
        try:
            out = _inode(os.lstat(new))
        except OSError:
            out = None
        if out == expect:
            with contextlib.suppress(OSError):  # a name of the file replaced (as a rename takes it away)
                os.unlink(new)
            return None
        try:
            exchange(new, path)  # the other program's file back at its path
            ok = _inode(os.lstat(new)) == made
        except OSError:
            ok = False
        if not ok:  # (a second save meanwhile, or no way back): no file is removed
            return f"{REPLACED}; another of its files is at {path_text(_in_sight(new, path))}"
        with contextlib.suppress(OSError):
            os.unlink(new)
        return REPLACED
    if _inode(os.lstat(path)) != expect:
        os.unlink(new)
        return REPLACED
    os.replace(new, path)
    return None


def _in_sight(aside: bytes, victim: bytes) -> bytes:
    """The copy's bytes, left at their hidden name when they could not be put back, given
    a name of their own beside it (`<name>.mediaforge-copy`, or a short one where that is
    too long): a later run's sweep of killed writers' temporaries would take the hidden
    one. That name, or the hidden one where none can be given. (Renamed where no hard link
    can be made: a file system without them, another user's file under
    `fs.protected_hardlinks`.)"""
    for name in (victim + b".mediaforge-copy", os.path.join(os.path.dirname(victim),
                                                             b"mediaforge-copy-" + os.urandom(4).hex().encode())):
        try:
            os.link(aside, name)
        except FileExistsError:
            continue
        except OSError:
            try:
                rename_new(aside, name)
            except OSError:
                continue
            return name
        with contextlib.suppress(OSError):
            os.unlink(aside)
        return name
    return aside


REFLINK_NONE = "reflink not supported here (needs Btrfs, XFS or bcachefs, both files on one file system)"
# File systems that clone no file's blocks, by the type /proc/self/mountinfo names: a
# dry run of `reflink` says so of each copy on one, as `--apply` would.
NO_REFLINK = frozenset({"ext2", "ext3", "ext4", "tmpfs", "ramfs", "vfat", "msdos", "exfat", "ntfs", "ntfs3",
                        "fuseblk", "hfsplus", "f2fs", "jfs", "reiserfs", "squashfs", "iso9660", "udf", "nilfs2"})


def _mount_types() -> dict[int, str]:
    """The file system type of each mounted device, by its number (`st_dev`)."""
    out: dict[int, str] = {}
    for m in _mounts():
        out.setdefault(os.makedev(*m.dev), m.fstype)
    return out


def _reflink(keep: int, tmp: bytes, victim_path: bytes, victim: os.stat_result) -> None:
    """Clone the kept file (open as `keep`) to the new name `tmp` sharing its blocks, with
    the victim's owner, extended attributes, mode and times; _Refused when the file system
    cannot, or this process may not give the clone the victim's owner (a file of another
    user, not root)."""
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.ioctl(fd, FICLONE, keep)
    except OSError as e:
        os.close(fd)
        os.unlink(tmp)
        if e.errno in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.EXDEV, errno.ENOSYS):
            raise _Refused(REFLINK_NONE) from None
        raise _Refused(f"reflink failed: {e.strerror}") from None
    try:
        give_back(tmp, (victim.st_uid, victim.st_gid), xattrs(victim_path), victim.st_mode)
        os.utime(tmp, ns=(victim.st_atime_ns, victim.st_mtime_ns))
        os.fsync(fd)  # its blocks and all it was given, before the rename
    except OSError as e:
        os.unlink(tmp)
        raise _Refused(f"reflink refused: {e.strerror or first_line(e)}") from None
    finally:
        os.close(fd)


def has_carry(cat: Catalog, out: Outcome) -> bool:
    """Whether any file acted on has tags or collection places for `carry_over` to give
    its kept copy (so the search index is touched only when one does)."""
    victims = [s.victim_id for s in out.done_steps if s.victim_id and s.keep_id]
    if not victims:
        return False
    return bool(cat.con.execute(
        "SELECT 1 FROM tags WHERE media_id IN (SELECT unnest(?::UUID[])) UNION ALL "
        "SELECT 1 FROM collection_items WHERE media_id IN (SELECT unnest(?::UUID[])) LIMIT 1",
        [victims, victims]).fetchall())


def carry_over(cat: Catalog, out: Outcome) -> None:
    """Give each kept file the tags and collection places of the files acted on (tags
    added this way have source 'dedupe'), and journal what was added so `undo` can take
    it back."""
    pairs = [(s.victim_id, s.keep_id) for s in out.done_steps if s.victim_id and s.keep_id]
    if not pairs or out.journal is None or out.journal_failed:
        return
    import pyarrow as pa

    from ..organise.tags import who

    moves = pa.table({"victim": pa.array([v for v, _ in pairs], pa.string()),
                      "keep": pa.array([k for _, k in pairs], pa.string())})
    journal: Journal | None = None
    tags: list[Any] = []
    items: list[Any] = []
    try:
        with cat.registered("mf_moves", moves), cat.transaction() as con:
            # Each with the copies it came from: undo takes it back only once they all hold it again.
            tags = con.execute("""
                SELECT m.keep, t.tag, list(DISTINCT m.victim ORDER BY m.victim) FROM mf_moves m
                JOIN tags t ON t.media_id = m.victim::UUID
                WHERE NOT EXISTS (SELECT 1 FROM tags k WHERE k.media_id = m.keep::UUID AND k.tag = t.tag)
                GROUP BY ALL ORDER BY ALL""").fetchall()
            # What the copies had that an earlier dedupe already gave the kept file: the undo
            # of that one leaves it where this one relies on it (`_other_carries`). (Before
            # this one's own rows go in.)
            relied = con.execute("""
                SELECT DISTINCT m.keep, t.tag FROM mf_moves m JOIN tags t ON t.media_id = m.victim::UUID
                JOIN tags k ON k.media_id = m.keep::UUID AND k.tag = t.tag AND k.source = 'dedupe'
                ORDER BY ALL""").fetchall()
            relied_items = con.execute("""
                SELECT DISTINCT m.keep, i.collection_id FROM mf_moves m
                JOIN collection_items i ON i.media_id = m.victim::UUID
                JOIN collection_items k ON k.media_id = m.keep::UUID AND k.collection_id = i.collection_id
                ORDER BY ALL""").fetchall()
            if tags:
                con.execute("INSERT INTO tags SELECT k::UUID, t, 'dedupe', ?, (now() AT TIME ZONE 'UTC') FROM "
                            "(SELECT unnest(?::VARCHAR[]) AS k, unnest(?::VARCHAR[]) AS t)",
                            [who(), [k for k, _, _ in tags], [t for _, t, _ in tags]])
            items = con.execute("""
                SELECT m.keep, i.collection_id, list(DISTINCT m.victim ORDER BY m.victim) FROM mf_moves m
                JOIN collection_items i ON i.media_id = m.victim::UUID
                WHERE NOT EXISTS (SELECT 1 FROM collection_items k WHERE k.media_id = m.keep::UUID
                                  AND k.collection_id = i.collection_id)
                GROUP BY ALL ORDER BY ALL""").fetchall()
            if items:  # one insert: each collection's new members go after its current last one
                con.execute("""
                    WITH x AS (SELECT unnest(?::VARCHAR[]) AS keep, unnest(?::BIGINT[]) AS cid)
                    INSERT INTO collection_items
                    SELECT x.cid, x.keep::UUID,
                           (SELECT coalesce(max(position), 0) FROM collection_items c WHERE c.collection_id = x.cid)
                               + row_number() OVER (PARTITION BY x.cid ORDER BY x.keep),
                           ?, (now() AT TIME ZONE 'UTC')
                    FROM x""", [[k for k, _, _ in items], [int(c) for _, c, _ in items], who()])
            # Journalled before the commit: what undo cannot find in the journal is not added.
            # The kept files' paths too: a later scan can hand a kept row an older id (a file it
            # took for moved), and undo then finds the row by its path. A `committed` line
            # follows the commit: a run killed between the two (the line says what the
            # catalog never got) is told by its absence, and carried again.
            kept_at = {s.keep_id: [_b64(s.keep), s.keep_blake3 or s.blake3 or ""] for s in out.done_steps if s.keep_id}
            journal = Journal(out.journal, appending=True, catalog=out.catalog)
            journal.write(kind="carried", tags=[[k, t] for k, t, _ in tags],
                          collections=[[k, int(c)] for k, c, _ in items],
                          tags_from=[list(v) for _, _, v in tags],
                          collections_from=[list(v) for _, _, v in items],
                          kept_at={k: kept_at[k] for k in {k for k, _, _ in tags} | {k for k, _, _ in items}
                                   if k in kept_at},
                          **({"tags_relied": [[k, t] for k, t in relied]} if relied else {}),
                          **({"collections_relied": [[k, int(c)] for k, c in relied_items]} if relied_items else {}),
                          **({"commit": "follows"} if tags or items else {}))
        if tags or items:
            with contextlib.suppress(JournalError):  # missing, it is written by the next scan's look
                journal.write(kind="committed")
    except BaseException as e:
        # Not carried after all (the commit failed: a full disk under the catalog; Ctrl-C):
        # the line goes, so the next scan carries them (`carry_unfinished`) before a prune
        # loses them. Unless the catalog has them (a commit that held, with an error after).
        # (Held, its `committed` line may be missing: the next scan's look adds it.)
        if journal is not None and journal.started >= 0 and not _carried(cat, e, tags, items):
            with contextlib.suppress(OSError):
                journal.cut(journal.started)
        raise
    finally:
        if journal is not None:
            journal.close()
    out.tags_carried = len(tags)
    out.collections_carried = len(items)


def _carried(cat: Catalog, e: BaseException, tags: list[Any], items: list[Any]) -> bool:
    """Whether a carry-over that ended in `e` is in the catalog all the same: its commit
    held (DuckDB's "COMMIT succeeded and is durable" with a checkpoint that failed after
    it; Ctrl-C just after). Told by one of the rows it added: none was there before it."""
    if any("succeeded and is durable" in str(x) for x in (e, e.__cause__, e.__context__) if x is not None):
        return True
    try:
        return _holds(cat, [(k, t) for k, t, _ in tags], [(k, c) for k, c, _ in items])
    except Exception:  # noqa: BLE001 - a catalog that cannot be read now: not known to hold them
        return False


# How many of a carry-over's rows `_holds` looks for, at most: one would tell (a commit
# is whole), but a user may have removed some since.
_HELD_LOOKS = 1000


def _holds(cat: Catalog, tags: Sequence[Any], items: Sequence[Any], ids: dict[str, list[str]] | None = None) -> bool:
    """Whether the catalog holds any of these carried tags (`source` 'dedupe') or
    collection places, as (kept id, value) pairs, on the kept files' rows (`ids`: each
    kept id's rows now, see `_current_ids`). None of them was there before the carry-over
    that added them."""
    ids = ids or {}
    for what, pairs, sql in (
            ("tags", tags, "SELECT 1 FROM tags WHERE media_id = ?::UUID AND tag = ? AND source = 'dedupe'"),
            ("collections", items, "SELECT 1 FROM collection_items WHERE media_id = ?::UUID AND collection_id = ?")):
        for keep, value in list(pairs)[:_HELD_LOOKS]:
            value = int(value) if what == "collections" else str(value)
            if any(cat.con.execute(sql, [mid, value]).fetchall() for mid in ids.get(keep, [keep])):
                return True
    return False


def carry_unfinished(cat: Catalog, journal_dir: Path) -> list[str]:
    """The carry-over of dedupes stopped before it (`kill -9`, a power cut, a full disk
    under the catalog: it comes once the files are done, and a journal without its
    `carried` line never got it; the files' `end` line comes before it): given now,
    from each such journal's `done` lines, so the tags and collection places of the
    copies it removed are not left on rows a `scan --prune` would delete. A journal an
    undo has worked on is left alone. Returns the kept files' media ids that got some."""
    touched: list[str] = []
    for path in _journals(journal_dir):
        entries = _standing(path) if _unfinished(path) else None
        if entries is None:
            continue
        out = Outcome(journal=path)
        for e in _done_or_moved(entries):
            if e.get("victim_id") and e.get("keep_id"):
                with contextlib.suppress(TypeError, ValueError, binascii.Error):
                    out.done_steps.append(Step(0, _unb64(e["keep"]), _unb64(e["victim"]), 0, 0, 0, 0,
                                               blake3=e.get("blake3"), keep_id=e["keep_id"],
                                               victim_id=e["victim_id"], keep_blake3=e.get("keep_blake3")))
        ids = [i for s in out.done_steps for i in (s.victim_id, s.keep_id)]
        if ids and not cat.con.execute("SELECT count(*) FROM files WHERE media_id IN (SELECT unnest(?::UUID[]))",
                                       [ids]).fetchall()[0][0]:
            # Another catalog's, beside this one in the same folder: its own scan carries
            # it, and its `carried` line is never judged by this catalog's rows.
            continue
        if _carry_done(cat, path, entries):
            continue
        if not out.done_steps:  # nothing to carry (every step skipped, or a journal from before ids were kept)
            with contextlib.suppress(PathIOError):  # marked so, not read whole at every scan again
                journal = Journal(path, appending=True)
                try:
                    journal.write(kind="carried", tags=[], collections=[])
                finally:
                    journal.close()
            continue
        try:
            carry_over(cat, out)
        except JournalError:
            continue  # its journal cannot take the line: tried again next time
        if out.tags_carried or out.collections_carried:
            touched += [s.keep_id for s in out.done_steps if s.keep_id]
    return touched


def _done_or_moved(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A killed journal's steps that were done: its `done` lines, and the `intent` lines
    without one whose move did happen (killed between the move and its `done` line): the
    copy gone from its path and at its destination (the trash, `--to`)."""
    steps: dict[str, dict[str, Any]] = {}
    for e in entries:
        victim = e.get("victim")
        if e["kind"] == "intent" and isinstance(victim, str):
            steps[victim] = e
        elif e["kind"] == "done" and isinstance(victim, str):
            steps[victim] = dict(e, done=True)
        elif e["kind"] == "skipped" and isinstance(victim, str):
            steps.pop(victim, None)
    out = []
    for e in steps.values():
        if e.get("done"):
            out.append(e)
            continue
        with contextlib.suppress(TypeError, ValueError, binascii.Error):
            if e.get("moved_to") and not os.path.lexists(_unb64(e["victim"])) and os.path.lexists(
                    _unb64(e["moved_to"])):
                out.append(e)
    return out


def _carry_done(cat: Catalog, path: Path, entries: list[dict[str, Any]]) -> bool:
    """Whether a journal's carry-over is done, or an undo has worked on it. A `carried`
    line whose commit was to follow without its `committed` line (a kill between the
    two) is looked for in the catalog: there, the line that says so is added; not there,
    the line is cut away (it says what never happened) and False returned, for
    `carry_unfinished` to carry them again."""
    if any(e["kind"] in (*UNDO_LINES, "committed") for e in entries):
        return True
    carried = [e for e in entries if e["kind"] == "carried"]
    if not carried:
        return False
    if any(e.get("commit") != "follows" for e in carried):
        return True  # (a journal from before `committed` lines, or with nothing to commit)
    try:
        held = _line_held(cat, carried[-1])
    except (TypeError, ValueError, IndexError, duckdb.Error):
        return True  # a line that cannot be checked: left as it is
    try:
        journal = Journal(path, appending=True)
    except PathIOError:
        return True
    try:
        if held:
            journal.write(kind="committed")
            return True
        data = path.read_bytes()
        at = data.rfind(b'\n{"kind": "carried"')
        if at < 0:
            return True
        journal.cut(at + 1)
        return False
    except (JournalError, OSError):
        return True  # tried again next time
    finally:
        journal.close()


def _line_held(cat: Catalog, line: dict[str, Any]) -> bool:
    """Whether the catalog holds any tag or collection place a `carried` line lists, on
    the kept files' rows as they are now (`_current_ids`)."""
    tags, items = line.get("tags", []), line.get("collections", [])
    if not tags and not items:
        return True
    return _holds(cat, [tuple(p) for p in tags], [tuple(p) for p in items], _current_ids(cat.con, line))


def carried_anything(path: Path) -> bool:
    """Whether a journal's dedupe carried tags or collection places over to kept files
    (its `carried` lines name some)."""
    try:
        return any(e["kind"] == "carried" and (e.get("tags") or e.get("collections")) for e in _entries(path))
    except (InvalidInputError, PathIOError):
        return False


def holds_kept_files(cat: Catalog, path: Path) -> bool:
    """Whether the catalog holds any of the files a journal's dedupe kept (their rows, by
    id): a journal of another catalog's names none of this one's."""
    try:
        kept = sorted({e["keep_id"] for e in _entries(path) if e.get("kind") == "done" and isinstance(
            e.get("keep_id"), str)})
    except (InvalidInputError, PathIOError):
        return False
    return bool(kept) and bool(cat.con.execute(
        "SELECT 1 FROM files WHERE media_id::VARCHAR IN (SELECT unnest(?::VARCHAR[])) LIMIT 1", [kept]).fetchall())


# The line `sweep_killed_runs` adds to a killed run's journal once it swept what that run left.
SWEPT = "swept"


def sweep_killed_runs(journal_dir: Path) -> None:
    """Remove the temporaries that dedupes killed outright (kill -9, a power cut) left
    beside the files they worked on, a whole hidden copy maybe, as an undo of their
    journal would: their writers are known, so at once, not ten minutes after, and a rerun
    that finds those files already done (it writes no temporary there) sweeps them too.
    Journals whose run ended (told from their last bytes) are passed over."""
    for path in _journals(journal_dir):
        tail = _journal_tail(path)
        if tail is None or any(f'"kind": "{k}"'.encode() in tail for k in ("end", SWEPT, *UNDO_LINES)):
            continue
        try:
            known = _writers(path)
            records = _records(path)[1]
        except (InvalidInputError, PathIOError):
            continue
        for folder in sorted({os.path.dirname(p) for r in records for p in (r.victim, r.moved_to) if p}):
            sweep_stale(folder, known=known)
        if known and not any(alive(pid) for pid in known):
            # Its writers are all gone, and what they left with them: marked so, not read
            # whole at every --apply again. (A run still going is left unmarked.)
            with contextlib.suppress(PathIOError, JournalError, OSError):
                _end_last_line(path)  # (a line the kill cut short goes first)
                journal = Journal(path, appending=True)
                try:
                    journal.write(kind=SWEPT)
                finally:
                    journal.close()


def _journal_action(path: Path) -> str | None:
    """The action a journal's first line names (None: none, or unreadable)."""
    try:
        with open(path, "rb") as f:
            first = json.loads(f.readline(1 << 16).decode("utf-8"))
    except (OSError, ValueError):
        return None
    return first.get("action") if isinstance(first, dict) and first.get("kind") == "start" else None


def _journal_tail(path: Path) -> bytes | None:
    """A journal's last 64 KiB, where a run's closing lines are (None: unreadable)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 65536))
            return f.read()
    except OSError:
        return None


def _unfinished(path: Path) -> bool:
    """Whether a journal may lack its carry-over (its run stopped first), told cheaply
    from its end: neither a whole `carried` (one without a commit to follow, or with its
    `committed` line) nor an undo's `undone` there. (`carry_unfinished` reads it whole
    to be sure.)"""
    tail = _journal_tail(path)
    if tail is None:
        return False
    if any(f'"kind": "{k}"'.encode() in tail for k in ("committed", *UNDO_LINES)):
        return False
    return b'"kind": "carried"' not in tail or b'"commit": "follows"' in tail


def uncarry(cat: Catalog, path: Path, out: Outcome | None = None) -> list[str]:
    """Take back the tags and collection places a journal's dedupe carried over; returns
    the media ids that lost one (their search documents change). `out` counts them, in
    its `tags_carried` and `collections_carried`. One is taken back only once every copy
    it came from is restored (an undo stopped part way leaves the kept file standing for
    the others) and still has its row in the catalog: a copy whose row a `scan --prune`
    deleted lost its tags with it, and the kept file keeps the only ones left. One a
    later dedupe, never undone, relies on stays (`_other_carries`); and one this journal
    relied on, which an earlier journal's undo left for it, goes once this one is undone
    whole and no other stands on it."""
    touched: set[str] = set()
    taken = {"tags": 0, "collections": 0}
    entries = list(_entries(path))
    others = _other_carries(path)
    undone = {e["victim"] for e in entries if e.get("kind") == "undone"}
    restored = {e.get("victim_id") for e in entries if e.get("kind") in ("intent", "done") and e.get("victim") in undone}
    kept_rows: dict[str, bool] = {}

    def row_kept(con: Any, victim: str) -> bool:
        if victim not in kept_rows:
            kept_rows[victim] = bool(con.execute("SELECT 1 FROM files WHERE media_id = ?::UUID", [victim]).fetchall())
        return kept_rows[victim]

    all_back = {e["victim"] for e in entries if e.get("kind") == "done"} <= undone
    with cat.transaction() as con:
        for e in entries:
            if e.get("kind") != "carried":
                continue
            ids = _current_ids(con, e)
            for what, sql in (("tags", "DELETE FROM tags WHERE media_id = ?::UUID AND tag = ? AND source = 'dedupe'"),
                              ("collections", "DELETE FROM collection_items WHERE media_id = ?::UUID "
                                              "AND collection_id = ?")):

                def take(keep: str, value: Any, what: str = what, sql: str = sql, ids: dict = ids) -> None:
                    for mid in ids.get(keep, [keep]):
                        gone = con.execute(sql, [mid, value]).fetchall()[0][0]
                        if gone:
                            touched.add(mid)
                            taken[what] += gone

                froms = e.get(f"{what}_from")  # (journals from before it was recorded: none)
                for n, (keep, value) in enumerate(e.get(what, [])):
                    if froms is not None and not all(v in restored and row_kept(con, v) for v in froms[n]):
                        continue
                    if (what, keep, value) not in others.relied:
                        take(keep, value)
                for keep, value in _pairs(e.get(f"{what}_relied")) if all_back else ():
                    pair = (what, keep, value)  # (copies still away: what they relied on stays for them)
                    if pair in others.undone and pair not in others.relied and pair not in others.standing:
                        take(keep, value)
    if out is not None:
        out.tags_carried, out.collections_carried = taken["tags"], taken["collections"]
    return sorted(touched)


@dataclass
class _Carries:
    """What the other dedupe journals beside one carried over, as ("tags" or
    "collections", kept id, value): those never undone (`standing`), what they found on
    a kept file already and did not carry again for their own copies (`relied`), and
    what the undone ones had carried (`undone`)."""

    standing: set[tuple[str, str, Any]] = field(default_factory=set)
    relied: set[tuple[str, str, Any]] = field(default_factory=set)
    undone: set[tuple[str, str, Any]] = field(default_factory=set)


def _other_carries(path: Path) -> _Carries:
    """`_Carries` of the journals beside the one at `path`. The undo of an earlier one
    leaves what a later one relies on while any of its copies is away, or those copies'
    would be lost."""
    out = _Carries()
    for other in _journals(path.parent):
        if other.name == path.name:
            continue
        try:
            entries = list(_entries(other))
        except (InvalidInputError, PathIOError):
            continue
        was_undone = any(e["kind"] in UNDO_LINES for e in entries)
        # Copies of its still away (never undone, or an undo stopped part way): what they
        # relied on stays for them.
        away = not was_undone or not ({e.get("victim") for e in entries if e["kind"] == "done"}
                                      <= {e.get("victim") for e in entries if e["kind"] == "undone"})
        for e in entries:
            if e["kind"] != "carried":
                continue
            for what in ("tags", "collections"):
                (out.undone if was_undone else out.standing).update((what, k, v) for k, v in _pairs(e.get(what)))
                if away:
                    out.relied.update((what, k, v) for k, v in _pairs(e.get(f"{what}_relied")))
    return out


def _pairs(value: Any) -> list[tuple[str, Any]]:
    """A journal line's list of (kept id, tag or collection id) pairs, those well formed."""
    if not isinstance(value, list):
        return []
    return [(p[0], p[1]) for p in value if isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)
            and isinstance(p[1], (str, int))]


def _current_ids(con: Any, entry: dict[str, Any]) -> dict[str, list[str]]:
    """The id each of a journal's kept files has now: the journalled one while a row has
    it; once a scan retired it (it took the kept file for a moved one and handed its row
    that one's id), the id of the row at the kept path, if that row still holds the kept
    content. Never another file's: one moved onto the kept path since is left alone."""
    out: dict[str, list[str]] = {}
    for keep, where in (entry.get("kept_at") or {}).items():
        try:
            raw, digest = _unb64(where[0]), where[1]
        except (ValueError, TypeError, IndexError):
            continue
        if con.execute("SELECT 1 FROM files WHERE media_id = ?::UUID", [keep]).fetchall():
            continue  # still the kept file's id
        now = con.execute("SELECT media_id::VARCHAR FROM files WHERE path_bytes = ? AND status = 'present' "
                          "AND blake3 = ?", [raw, digest]).fetchall()
        out[keep] = [keep, *(r[0] for r in now)]
    return out




# Linux's flags (`chattr`) that keep a file from being renamed over, moved or removed, or
# a folder from having a name in it changed: FS_IOC_GETFLAGS, FS_IMMUTABLE_FL, FS_APPEND_FL.
_GETFLAGS, _IMMUTABLE, _APPEND_ONLY = 0x80086601, 0x10, 0x20
_PATH_MAX = 4096  # bytes of a path the kernel takes, its closing NUL counted
_STAMP_LENGTH = len("20261206T130102951059Z")  # a trash folder's name, as `apply` dates it


def _frozen(path: bytes) -> str | None:
    """Why a copy's file or folder forbids the step (its immutable or append-only flag,
    as `chattr +i`, `+a` set it), else None (also where the flags cannot be read)."""
    for what, at, then in (("it is", path, "it cannot be replaced, moved or removed"),
                           ("its folder is", os.path.dirname(path) or b".", "no name in it can be replaced or removed")):
        try:
            fd = os.open(at, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            # (The kernel writes an int, whatever the ioctl's name says: its first 4 bytes.)
            flags = int.from_bytes(fcntl.ioctl(fd, _GETFLAGS, bytes(8))[:4], sys.byteorder)
        except OSError:
            continue
        finally:
            os.close(fd)
        if flags & _IMMUTABLE:
            return f"{what} immutable (chattr +i): {then}"
        if flags & _APPEND_ONLY:
            return f"{what} append-only (chattr +a): {then}"
    return None


def _past_path_limit(victim: bytes, dest: Path, named: Path) -> str | None:
    """Why a copy cannot be moved under `dest` (named as `named`: the trash, not its dated
    folder): its path there would be past the system's limit."""
    length = len(moved_path(victim, dest))
    if length < _PATH_MAX:
        return None
    return (f"its path under {path_text(os.fsencode(named))} would be {length:,} bytes, past the system's limit "
            f"of {_PATH_MAX - 1:,}")


def preview(plan: Plan, trash_root: Path | None = None) -> dict[bytes, str]:
    """The steps of a plan that `apply` would skip for what a look at the two files tells
    (no byte is read): gone or changed since the scan, on two file systems, a link that
    would change who may read the copy, a file or folder whose flags forbid the change, a
    destination path past the system's limit (`trash_root`: where a trash goes). By
    victim path, with the reason."""
    out: dict[bytes, str] = {}
    types = _mount_types() if plan.action == "reflink" else {}
    dest = plan.target if plan.action == "move-to" else \
        trash_root / ("X" * _STAMP_LENGTH) if plan.action == "trash" and trash_root is not None else None
    for s in plan.steps:
        why = _look(s, plan.action, plan.similar)
        if not isinstance(why, str) and plan.action == "move-to" and plan.target is not None \
                and os.path.lexists(moved_path(s.victim, plan.target)):  # never written over
            why = f"{path_text(moved_path(s.victim, plan.target))} is already there (left as it is)"
        if not isinstance(why, str) and dest is not None:
            why = _past_path_limit(s.victim, dest, dest.parent if plan.action == "trash" else dest) or why
        if not isinstance(why, str):
            why = _frozen(s.victim) or why
        if not isinstance(why, str) and plan.action == "reflink":
            fs = types.get(why[1].st_dev)
            if fs in NO_REFLINK:
                why = f"{REFLINK_NONE} (this one is {fs})"
        if isinstance(why, str):
            out[s.victim] = why
    return out


# What `_look` finds of a copy that already is what a link action makes of it: one an
# earlier run stopped by a Ctrl-C linked (the catalog has it as it was until the next
# scan), or another tool did. Neither done nor skipped: counted apart.
ALREADY_LINKED = "already a hard link of the kept file"
ALREADY_SYMLINKED = "already a symbolic link to the kept file"
ALREADY_CLONED = "already a clone of the kept file, made by an earlier run"
MOVED_BEFORE = "already moved away by an earlier run"
LINKED_BEFORE = (ALREADY_LINKED, ALREADY_SYMLINKED, ALREADY_CLONED, MOVED_BEFORE)


def _leads_to(link: bytes, kst: os.stat_result) -> bool:
    """Whether the symbolic link `link` leads to the file of `kst` (a dangling one: no)."""
    try:
        st = os.stat(link)
    except (OSError, ValueError):
        return False
    return (st.st_dev, st.st_ino) == (kst.st_dev, kst.st_ino)


def _look(s: Step, action: str, similar: bool = False) -> str | tuple[os.stat_result, os.stat_result]:
    """Why this step must not run, as the two files' `lstat` and attributes tell; else
    their `lstat`s."""
    kept = path_text(s.keep)
    try:
        try:
            kst = os.lstat(s.keep)
        except FileNotFoundError:
            return f"the kept file {kept} is gone since the scan"
        try:
            vst = os.lstat(s.victim)
        except FileNotFoundError:
            return MOVED_BEFORE if s.moved_before else "gone since the scan"
        if not stat.S_ISREG(kst.st_mode):
            return f"the kept file {kept} is not a regular file"
        if action == "hardlink" and (kst.st_dev, kst.st_ino) == (vst.st_dev, vst.st_ino):
            if os.path.realpath(s.keep) == os.path.realpath(s.victim):  # one name, not two
                return (f"the kept file {kept} is now this very file, by one name (a folder replaced by a link "
                        "since the scan?): left alone (rescan first)")
            return ALREADY_LINKED
        if action == "symlink" and stat.S_ISLNK(vst.st_mode) and _leads_to(s.victim, kst):
            return ALREADY_SYMLINKED
        if not stat.S_ISREG(vst.st_mode):
            return "not a regular file any more"
        leading = [link for link in s.linked_from if _leads_to(link, vst)]
        if leading and action in SIMILAR_ACTIONS:
            more = f" and {len(leading) - 1} more" if len(leading) > 1 else ""
            return (f"the symbolic link {path_text(leading[0])}{more}, made by an earlier dedupe, leads to it: moved, "
                    f"it would leave {'them' if more else 'that link'} leading nowhere (undo that dedupe first, or "
                    "keep this file)")
        if action == "reflink" and s.cloned_as == (vst.st_dev, vst.st_ino) \
                and (vst.st_size, time_ns(vst.st_mtime_ns)) == (s.size, s.mtime_ns):
            return ALREADY_CLONED  # its clone, untouched since (it took the copy's times)
        if (vst.st_size, time_ns(vst.st_mtime_ns), vst.st_ino) != (s.size, s.mtime_ns, s.inode):
            return "changed since the scan (rescan first)"
        # The kept file as the scan saw it: for near-duplicates nothing compares its bytes
        # with the copy's, so it must be exactly the one that was compared; an exact
        # copy's are compared, and a size that changed already tells they differ.
        kept_then = (kst.st_size, time_ns(kst.st_mtime_ns), kst.st_ino) if similar else (kst.st_size,)
        if s.keep_size >= 0 and kept_then != (s.keep_size, s.keep_mtime_ns, s.keep_inode)[:len(kept_then)]:
            return f"the kept file {kept} changed since the scan (rescan first)"
        if (kst.st_dev, kst.st_ino) == (vst.st_dev, vst.st_ino):
            return "already the same file as the kept one"
        if _seen_twice(kst, vst):
            return (f"the kept file {kept} looks like this very file seen through another mount (an overlay, "
                    "a network or FUSE mount of the same disk): same inode number, size and times; left alone")
        if _read_only(s.victim):  # no action can replace or move it
            return "on a read-only file system: it cannot be replaced or moved"
        if not os.access(os.path.dirname(s.victim) or b".", os.W_OK | os.X_OK):
            # (Root passes, as its rename would.) The copy's name lives in its folder.
            return "its folder may not be written here (its permissions, or an immutable flag): the copy cannot be " \
                   "replaced or moved"
        if _sticky_refuses(s.victim, vst):
            return (f"its folder is sticky (as /tmp is) and the copy is another user's ({vst.st_uid}:{vst.st_gid}): "
                    "only its owner, the folder's or root may replace or move it")
        if action in ("hardlink", "reflink") and kst.st_dev != vst.st_dev:
            return f"on another file system than the kept file: a {action} cannot cross it (try --action symlink)"
        link = {"hardlink": "a hard link", "symlink": "a symbolic link"}.get(action)
        if link and (stat.S_IMODE(kst.st_mode), kst.st_uid, kst.st_gid) != (
                stat.S_IMODE(vst.st_mode), vst.st_uid, vst.st_gid):
            # One inode has one mode and owner, and a symbolic link is read with its
            # target's: the copy would take the kept file's, and whoever could read it (or
            # could not) would lose (or gain) that.
            return (f"its permissions or owner ({_mode_owner(vst)}) differ from the kept file's ({_mode_owner(kst)}): "
                    f"{link} would give it the kept file's (make them alike first)")
        if link and xattrs(s.victim) != xattrs(s.keep):  # ACLs, a file manager's tags
            return (f"its extended attributes differ from the kept file's: {link} would give it the kept file's "
                    "(make them alike first)")
        if action in ("hardlink", "symlink") and not may_give((vst.st_uid, vst.st_gid)):
            # An undo makes it a file of its own again: this user could not give it back.
            return (f"owned by {vst.st_uid}:{vst.st_gid}: an undo by this user could not give it that owner back "
                    "(run as root, or as its owner)")
        if action == "reflink" and not may_give((vst.st_uid, vst.st_gid)):  # the clone is made by this user
            return (f"owned by {vst.st_uid}:{vst.st_gid}: this user could not give the clone that owner (run as "
                    "root, or as its owner)")
    except OSError as e:
        return _unreadable(s, e)
    return kst, vst


def _seen_twice(a: os.stat_result, b: os.stat_result) -> bool:
    """Whether two files on two devices are likely one file seen through two mounts (an
    overlay over its lower folder, an NFS export mounted on its own server): the same
    inode number, size and times to the nanosecond, which two copies do not share (a
    copy's change time is when it was made). Removing either would remove both. Times in
    whole seconds (ext3, ext4 with small inodes) tell nothing: the first file made on two
    fresh disks has one inode number on both, made in one second. Those are left to the
    probe (`_moved_with`), right before the act."""
    return a.st_dev != b.st_dev and a.st_ctime_ns % 1_000_000_000 != 0 and (
        a.st_ino, a.st_size, a.st_mtime_ns, a.st_ctime_ns) == (b.st_ino, b.st_size, b.st_mtime_ns, b.st_ctime_ns)


def _kept_whole(s: Step, kst: os.stat_result, action: str) -> bool:
    """After a step: whether the kept file is still the file it was before (and a link
    made in the copy's place leads to it). It is not when the two were one file after
    all, seen through two mounts, or when another dedupe (of another catalog over the
    same folders) removed it meanwhile: then the step is taken back."""
    try:
        now = os.lstat(s.keep)
        if not (stat.S_ISREG(now.st_mode) and _inode(now) == _inode(kst)
                and (now.st_size, now.st_mtime_ns) == (kst.st_size, kst.st_mtime_ns)):
            return False
        if action in ("hardlink", "symlink"):  # the copy's path now leads to the kept file
            return _inode(os.stat(s.victim) if action == "symlink" else os.lstat(s.victim)) == _inode(kst)
    except OSError:
        return False
    return True


_NOT_WHOLE = ("the kept file {kept} changed or went when this copy was {done} (one file seen through two mounts, "
              "or another dedupe at work?)")
_ONE_INODE = ("the kept file {kept} moved with this copy when it was given a second name: it is this very file seen "
              "through another mount (or another program, such as a dedupe of another catalog, is at work on it); "
              "left alone")


def _moved_with(keep: bytes, before: os.stat_result) -> bool:
    """Whether the kept file's link count or change time moved since `before`, just as a
    second name was given to the copy: then they are one inode, seen through two mounts
    that show it under two device and inode numbers (an overlay with `xino`), which the
    numbers alone do not tell, and a mount that caches its names may not tell after the
    copy is replaced either. Its attributes are read from the inode each time."""
    try:
        now = os.lstat(keep)
    except OSError:
        return True  # gone meanwhile: not to be acted on
    return (now.st_nlink, now.st_ctime_ns) != (before.st_nlink, before.st_ctime_ns)


def _second_name(s: Step) -> tuple[bytes | None, str | None]:
    """Give the copy a hidden second name (`_moved_with`): that name, or None on a file
    system without hard links (the checks before it must do then); and the reason to
    leave the copy alone, or None. The name is taken away again when there is a reason."""
    try:
        before = os.lstat(s.keep)
    except OSError as e:
        return None, f"cannot read the kept file {path_text(s.keep)}: {e.strerror}"
    try:
        aside = new_tmp(s.victim, lambda t: os.link(s.victim, t))
    except OSError:
        return None, None
    if not _moved_with(s.keep, before):
        return aside, None
    with contextlib.suppress(OSError):
        os.unlink(aside)
    return None, _ONE_INODE.format(kept=path_text(s.keep))


def _probe(s: Step) -> str | None:
    """Before a move: the copy's second name for a moment (`_second_name`); the reason to
    leave it alone if the kept file felt it."""
    probe, why = _second_name(s)
    if probe is not None:
        with contextlib.suppress(OSError):
            os.unlink(probe)
    return why


def _check(s: Step, similar: bool = False, action: str = "", stop: Stop | None = None
           ) -> str | tuple[os.stat_result, os.stat_result]:
    """Why this step must not run; else the kept file's and the copy's `lstat` as they
    were compared."""
    kept = path_text(s.keep)
    looked = _look(s, action, similar)
    if isinstance(looked, str):
        return looked
    kst, vst = looked
    frozen = _frozen(s.victim)  # before its bytes are read: they would be for nothing
    if frozen is not None:
        return frozen
    try:
        if similar:
            from .. import _core

            if _core.hash_file(s.victim) != s.blake3:
                return "contents changed since they were compared (rescan first)"
            if s.keep_blake3 is None or _core.hash_file(s.keep) != s.keep_blake3:
                return f"the kept file {kept} changed since it was compared (rescan first)"
        elif not same_bytes(s.keep, s.victim, stop):
            if stop is not None and stop.requested:
                return "stopped before it was compared whole"
            from .. import _core

            # Which one changed since the scan hashed them (size and times kept)?
            if s.blake3 is not None and _core.hash_file(s.keep) != s.blake3:
                return f"the kept file {kept} changed since the scan (rescan first)"
            return "contents differ from the kept file (changed since the scan: rescan first)"
        # A save to either file while it was read (a comparison of big videos takes
        # minutes) changes its mtime or ctime: acting now would lose that edit.
        if _written_since(vst, os.lstat(s.victim)):
            return "changed while it was being compared (rescan first)"
        if _written_since(kst, os.lstat(s.keep)):
            return f"the kept file {kept} changed while it was being compared (rescan first)"
    except OSError as e:
        return _unreadable(s, e)
    return kst, vst


def _read_only(path: bytes) -> bool:
    """Whether the folder holding `path` is on a mount that is read-only (by its mount,
    not its device: a read-only bind mount shares its device with a writable one)."""
    try:
        return bool(os.statvfs(os.path.dirname(path) or b".").f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _unreadable(s: Step, e: OSError) -> str:
    """Why a step could not be checked: the file that could not be read, and why."""
    if e.filename is not None and os.fsencode(e.filename) == s.keep:
        return f"cannot read the kept file {path_text(s.keep)}: {e.strerror or first_line(e)}"
    return f"cannot check it: {e.strerror or first_line(e)}"


def _sticky_refuses(path: bytes, st: os.stat_result) -> bool:
    """Whether the folder of `path` is sticky and this process may not rename or remove
    the file of `st` in it: it is neither the file's owner nor the folder's, and lacks
    CAP_FOWNER, which root has (`os.access` leaves the sticky bit out)."""
    euid = os.geteuid()
    if st.st_uid == euid:
        return False
    try:
        folder = os.stat(os.path.dirname(path) or b".")
    except OSError:
        return False
    return bool(folder.st_mode & stat.S_ISVTX) and folder.st_uid != euid and not has_capability(CAP_FOWNER)


def _mode_owner(st: os.stat_result) -> str:
    """A file's permission bits and owner, as `ls -l` shows them: `rw-r--r-- 1000:1000`."""
    return f"{stat.filemode(st.st_mode)[1:]} {st.st_uid}:{st.st_gid}"


def _written_since(before: os.stat_result, now: os.stat_result) -> bool:
    """Whether a file was written, replaced or re-linked between two `lstat`s of it."""
    return ((now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns, now.st_ctime_ns)
            != (before.st_dev, before.st_ino, before.st_size, before.st_mtime_ns, before.st_ctime_ns))


def _move(src: bytes, dst: bytes, twins: dict[tuple[int, int], bytes], earlier: Sequence[bytes] = (),
          written: Callable[[], bool] = lambda: False, pinned: tuple[int, int] | None = None) -> None:
    """Move `src` to the new name `dst` (never over an existing file). Across file systems:
    copied under a hidden temporary name beside `dst`, synced, verified, then given its
    name, and only then is `src` removed: a crash at any moment (kill -9, power) leaves
    `src` whole and, at `dst`, nothing or the whole copy, never a part of it.
    `twins`: the name each inode with other names got on the other file system in this
    run. Another name of one of them becomes a hard link of it there (its bytes compared
    first), not a second copy, so hard links stay hard links. `earlier`: where the
    inode's other names go (the plan's); one already there, moved by an earlier run that
    stopped, is such a twin too. `pinned`: the file (device, inode) to move, held open by
    the caller; another file found at `src` (saved over it since) stays where it is, and
    the move is refused."""
    st = os.lstat(src)
    if pinned is not None and _inode(st) != pinned:
        raise OSError(errno.EAGAIN, REPLACED)
    try:
        rename_new(src, dst)  # a file another program made at `dst` since it was looked at stays
    except OSError as e:
        if e.errno != errno.EXDEV:  # another file system: copy, verify, then remove
            raise
    else:
        if pinned is not None and _inode(os.lstat(dst)) != pinned:  # saved over since the look above
            try:
                rename_new(dst, src)
            except OSError:
                raise OSError(errno.EAGAIN, f"{REPLACED}, but the file it saved was moved to {path_text(dst)} "
                                            "and could not go back") from None
            raise OSError(errno.EAGAIN, REPLACED)
        return
    key = (st.st_dev, st.st_ino)
    # Its last name here moves now: the inode number is free to be reused after it.
    twin = twins.pop(key, None) if st.st_nlink == 1 else twins.get(key)
    if twin is not None and _link_twin(src, twin, dst):
        _let_go(src, dst, written, pinned)
        return
    for there in earlier if twin is None else ():
        if there != dst and os.path.lexists(there) and _link_twin(src, there, dst):
            _let_go(src, dst, written, pinned)
            if st.st_nlink > 1:
                twins[key] = there
            return
    tmp = new_tmp(dst, lambda t: _copy_new(src, t))
    with _removed_on_error(tmp):
        give_back(tmp, (st.st_uid, st.st_gid), xattrs(src), st.st_mode)
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        if not same_bytes(src, tmp):
            raise PathIOError(f"copy to {path_text(dst)} did not verify; the original is kept")
        _name_new(tmp, dst)
        sync_folder(os.path.dirname(dst))  # the new name on disk before the old one goes
    _let_go(src, dst, written, pinned)
    if st.st_nlink > 1:
        twins[key] = dst


def _let_go(src: bytes, dst: bytes, written: Callable[[], bool] = lambda: False,
            pinned: tuple[int, int] | None = None) -> None:
    """Remove `src` once `dst` holds its bytes on the other file system. If `src` cannot
    go (its disk read-only, its folder not ours) and is still there, `dst`, made by this
    move, goes again and the error stands: a move that cannot finish leaves no second
    copy behind. One that went all the same (a network file system's retried unlink
    answering "no such file") leaves `dst`, now the only copy, and the move is done.
    Nor does `src` go when a program opened it for writing meanwhile (`written`, see
    `_lease`): its writes would go to a file no name leads to. With `pinned` (see
    `_move`), `src` is first renamed to a hidden name in one step, and removed there only
    if that is the pinned file: another program's file saved at `src` since goes back."""
    if written():
        with contextlib.suppress(OSError):
            os.unlink(dst)
        raise PathIOError(WROTE.format(done="copied") + "; it is left where it was")
    name = src
    if pinned is not None:
        try:
            src = new_tmp(name, lambda t: rename_new(name, t), hold=True)  # the name taken away in one step
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(dst)
            raise
        try:
            ours = _inode(os.lstat(src)) == pinned
        except OSError:
            ours = False
        if not ours:  # another program saved over it since: its file goes back
            with contextlib.suppress(OSError):
                os.unlink(dst)
            try:
                rename_new(src, name)
            except OSError:
                raise OSError(errno.EAGAIN, f"{REPLACED}; the file it saved is at {path_text(_in_sight(src, name))}"
                              ) from None
            raise OSError(errno.EAGAIN, REPLACED)
    before = os.lstat(src)
    try:
        os.unlink(src)
    except OSError:
        try:
            still = _inode(os.lstat(src)) == _inode(before)
        except OSError:
            still = False
        if not still:
            return
        if src != name:
            try:
                rename_new(src, name)  # its own name again
            except OSError as back:  # both kept: the verified copy, and the file at a name in sight
                raise OSError(back.errno, f"it could not be removed after it was copied, nor given its name back "
                                          f"({back.strerror}): it is at {path_text(_in_sight(src, name))}, and "
                                          f"its copy at {path_text(dst)}") from None
        with contextlib.suppress(OSError):
            os.unlink(dst)
        raise


def _link_twin(src: bytes, twin: bytes, dst: bytes) -> bool:
    """Make `dst` a hard link of `twin` (another name of `src`'s inode, moved to this file
    system earlier in the run) if it still holds `src`'s bytes; False when it cannot."""
    try:
        if not stat.S_ISREG(os.lstat(twin).st_mode) or not same_bytes(src, twin):
            return False
        os.link(twin, dst)  # never over an existing name
    except FileExistsError:
        raise
    except OSError:
        return False  # gone, a file system without hard links, too many links: a copy then
    sync_folder(os.path.dirname(dst))
    return True


def _name_new(tmp: bytes, dst: bytes) -> None:
    """Give the file at `tmp` the name `dst`, failing if `dst` exists (a hard link does
    not replace; a file system without hard links gets a rename that does not either)."""
    try:
        os.link(tmp, dst)
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
        rename_new(tmp, dst)
        return
    os.unlink(tmp)


_NONE = type(None)
# The types of a journal line's fields as the dedupe writes them (bool is not an int
# here): a line holding another (a hand edit, a damaged file) makes the journal
# unreadable, said in one line, never met later as a TypeError.
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(("victim", "keep", "target", "moved_to"), (str,)),
    **dict.fromkeys(("action", "dest", "blake3", "victim_id", "keep_id", "keep_blake3", "why", "commit"),
                    (str, _NONE)),
    **dict.fromkeys(("pid", "mode", "mtime_ns", "atime_ns", "was_dev", "was_ino", "uid", "gid", "dev", "ino",
                     "from_dev", "from_ino"), (int,)),
    **dict.fromkeys(("made", "xattrs", "tags", "collections", "tags_from", "collections_from", "tags_relied",
                     "collections_relied"), (list,)),
    "kept_at": (dict,),
    "untouched": (bool,),
}


def _entries(path: Path) -> Iterator[dict[str, Any]]:
    if path.exists() and not path.is_file():  # a FIFO would block the read for ever
        raise InvalidInputError(f"{path} is not a MediaForge dedupe journal (not a regular file)")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise PathIOError(f"cannot read journal {path}: {e.strerror}") from None
    # Lines end at '\n' only: a path may hold U+2028 or U+0085, which JSON leaves as they
    # are and `splitlines` would break a line at.
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    for n, raw in enumerate(lines, 1):
        try:
            e = json.loads(raw.decode("utf-8"))
        except ValueError as err:  # UnicodeDecodeError too
            if n == len(lines):
                return  # a last line cut short by a crash (in a character, too)
            if isinstance(err, UnicodeDecodeError):  # a photo given by mistake: not a journal
                raise InvalidInputError(f"{path} is not a MediaForge dedupe journal (not UTF-8 text)") from None
            raise InvalidInputError(f"journal {path} line {n} is not valid JSON") from None
        if not isinstance(e, dict) or not isinstance(e.get("kind"), str):
            raise InvalidInputError(f"{path} is not a MediaForge dedupe journal (line {n})")
        for key, value in e.items():
            if type(value) not in _FIELD_TYPES.get(key, (type(value),)):
                raise InvalidInputError(f"{path} is not a valid MediaForge dedupe journal: line {n}'s {key} is a "
                                        f"{type(value).__name__}, not what a dedupe writes there")
        yield e


# The files an undo restored, by what their twins share with them (`_Record.twin_key`):
# (where it is, its device and inode now, its names before the dedupe where known).
Restored = dict[tuple[int, int, int], tuple[bytes, int, int, "int | None"]]


@dataclass
class _Record:
    """One file a journal says was acted on (`certain`), or was about to be when the
    journal stops (a crash between the act and its 'done' line)."""

    victim: bytes
    keep: bytes
    mode: int
    atime_ns: int
    mtime_ns: int
    blake3: str | None
    moved_to: bytes | None
    target: bytes | None
    dev: int | None
    ino: int | None
    certain: bool
    # The victim's inode before the dedupe (journals from earlier versions lack it): names
    # that shared one are restored as hard links of one another again.
    was: tuple[int, int] | None = None
    # The device and inode an earlier undo of this journal left at the path: that undo
    # restored it (then stopped: Ctrl-C, a full disk), so this one leaves it alone.
    undone: tuple[int, int] | None = None
    # For a file moved back: the inode it had in the trash or --to folder.
    undone_from: tuple[int, int] | None = None
    # The victim's owner and extended attributes before the dedupe (journals from earlier
    # versions lack them): a copy of its own gets them back.
    owner: tuple[int, int] | None = None
    xattrs: dict[bytes, bytes] | None = None
    # The victim's names before the dedupe (journals from earlier versions lack it): an
    # inode of one name had no twin, and its number, freed, may be a new file's since.
    nlink: int | None = None

    @property
    def twin_key(self) -> tuple[int, int, int] | None:
        """What a name that shared the victim's inode before the dedupe shares with it:
        that inode, and its mtime then (one inode's names show one mtime; a new file that
        got the number since has its own)."""
        return (*self.was, self.mtime_ns) if self.was is not None else None


def _owner(e: dict[str, Any]) -> tuple[int, int] | None:
    """A journal line's owner of the victim; None in a journal from before it was kept."""
    if e.get("uid") is None and e.get("gid") is None:
        return None
    ids = (e.get("uid"), e.get("gid"))
    if not all(type(v) is int and 0 <= v < 1 << 32 for v in ids):
        raise TypeError("an owner that is not a user and group number")
    return ids  # type: ignore[return-value]


def _xattrs(e: dict[str, Any]) -> dict[bytes, bytes] | None:
    """A journal line's extended attributes of the victim, as [name, value] in base64."""
    pairs = e.get("xattrs")
    if pairs is None:
        return None
    if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
        raise TypeError("extended attributes that are not [name, value] pairs")
    got = {_unb64(k): _unb64(v) for k, v in pairs}
    if not all(0 < len(k) <= 255 and b"\0" not in k and len(v) <= 1 << 16 for k, v in got.items()):
        raise ValueError("an extended attribute that no file system holds")
    return got


def _records(path: Path) -> tuple[str, list[_Record]]:
    """The journal's action and files, checked whole before anything is touched."""
    entries = list(_entries(path))
    if not entries or entries[0]["kind"] != "start" or entries[0].get("action") not in ACTIONS:
        raise InvalidInputError(f"{path} is not a MediaForge dedupe journal")
    action = entries[0]["action"]
    records: dict[str, _Record] = {}
    try:
        for e in entries[1:]:
            kind = e["kind"]
            if kind in ("intent", "done"):
                opt = lambda k: _unb64(e[k]) if e.get(k) is not None else None  # noqa: E731
                num = lambda k: _whole(e, k) if e.get(k) is not None else None  # noqa: E731
                blake3 = e.get("blake3")
                if blake3 is not None and not isinstance(blake3, str):
                    raise TypeError("blake3 is not a string")
                r = _Record(
                    _file_path(e, "victim"), _file_path(e, "keep"), _whole(e, "mode"), _whole(e, "atime_ns"),
                    _whole(e, "mtime_ns"), blake3, opt("moved_to"), opt("target"), num("dev"), num("ino"),
                    kind == "done")
                was_dev, was_ino = e.get("was_dev"), e.get("was_ino")
                if was_dev is not None or was_ino is not None:
                    if not all(type(v) is int for v in (was_dev, was_ino)):  # not 1.7, true or "5"
                        raise TypeError("an inode that is not a whole number")
                    r.was = (was_dev, was_ino)
                r.owner, r.xattrs, r.nlink = _owner(e), _xattrs(e), num("nlink")
                # Times as `os.stat` gave them: past 2262 too (ext4 keeps dates to 2446).
                # A mode is a regular file's, as the dedupe found it: its permission bits
                # go back onto the restored file.
                if not (stat.S_ISREG(r.mode) and r.mode & ~(stat.S_IFMT(r.mode) | 0o7777) == 0
                        and all(-_TIME_T <= t < _TIME_T for t in (r.atime_ns, r.mtime_ns))
                        and all(v is None or 0 <= v < 1 << 64 for v in (r.dev, r.ino, was_dev, was_ino))):
                    raise ValueError("a mode, time, device or inode out of range")
                records[e["victim"]] = r
            elif kind == "skipped":
                records.pop(e["victim"], None)
            elif kind == "undone":
                ids = [e.get("dev"), e.get("ino"), e.get("from_dev", 0), e.get("from_ino", 0)]
                if not isinstance(e.get("victim"), str) or ("from_dev" in e) != ("from_ino" in e):
                    raise TypeError("an 'undone' line without its file")
                if not all(type(v) is int and 0 <= v < 1 << 64 for v in ids):
                    raise TypeError("an undone file's inode is not a whole number")
                _unb64(e["victim"])
                if e["victim"] in records:
                    records[e["victim"]].undone = (ids[0], ids[1])
                    if "from_dev" in e:
                        records[e["victim"]].undone_from = (ids[2], ids[3])
            elif kind == "carried":
                for pair in [*e.get("tags", []), *e.get("collections", [])]:
                    if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], str):
                        raise TypeError("a carried tag or collection is not a pair")
                for what in ("tags", "collections"):
                    froms = e.get(f"{what}_from")
                    if froms is not None and not (isinstance(froms, list) and len(froms) == len(e.get(what, []))
                                                  and all(isinstance(v, list) and all(isinstance(x, str) for x in v)
                                                          for v in froms)):
                        raise TypeError("the copies a carried tag or collection came from are not a list of ids")
                kept_at = e.get("kept_at", {})
                if not isinstance(kept_at, dict) or not all(
                        isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) for x in v)
                        for v in kept_at.values()):
                    raise TypeError("the kept files' paths are not a map of [path, digest]")
    except (KeyError, TypeError, ValueError, OverflowError, binascii.Error) as err:  # OverflowError: int(1e400)
        why = f"a line without its {err.args[0]!r} field" if isinstance(err, KeyError) else first_line(err)
        raise InvalidInputError(f"{path} is not a valid MediaForge dedupe journal: {why}") from None
    return action, list(records.values())


def _copy_new(src: bytes, dst: bytes) -> None:
    """Copy `src` to the new name `dst` (never an existing file), synced to disk. A copy
    cut short (a full disk, Ctrl-C) is removed: no half file is left behind."""
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with _removed_on_error(dst), open(fd, "wb") as out, open(src, "rb") as f:
        shutil.copyfileobj(f, out, CHUNK)
        out.flush()
        os.fsync(out.fileno())


def _where(err: OSError) -> str:
    """Where an undo's step failed, as its reason ends: the folder a file was to be
    renamed or made in (immutable or read-only, say), else the file; nothing if unknown."""
    name = err.filename2 if err.filename2 is not None else err.filename
    if name is None:
        return ""
    path = os.fsencode(name)
    if err.filename2 is not None or os.path.basename(path).startswith(b".mediaforge-"):
        return f" (in {path_text(os.path.dirname(path))})"  # (not a name of this run's own)
    return f" ({path_text(path)})"


def _unlink(r: _Record, action: str, restored: Restored) -> str | None:
    """Give a linked, symlinked or cloned path its own copy of the bytes again, if the path
    still holds what the dedupe put there. None when done; else the reason it was left
    alone, or "" for a file the journal only meant to act on and that was never touched.
    `restored`: the inode each victim had before the dedupe, and the path and inode this
    undo gave it back: a victim that shared its inode with one already restored (hard
    links of each other) becomes a link of it again, not a copy."""
    from .. import _core

    lst = os.lstat(r.victim)
    if action == "symlink":
        target = r.target or os.fsencode(os.path.abspath(r.keep))
        if not stat.S_ISLNK(lst.st_mode) or os.readlink(r.victim) != target:
            return _not_ours(r, lst)
        source = r.keep  # the link's bytes live in the kept file
    else:
        regular = stat.S_ISREG(lst.st_mode)
        known = r.dev is not None and r.ino is not None
        ours = regular and known and (lst.st_dev, lst.st_ino) == (r.dev, r.ino)
        if not ours and action == "hardlink":
            # An older journal, one cut short, or the library copied with its links (`cp -a`:
            # new numbers): a name of the kept file.
            ours = regular and _same_file(r.victim, r.keep)
        elif not known:  # a clone not known by inode: its bytes must be the kept file's
            ours = regular and os.path.exists(r.keep) and same_bytes(r.victim, r.keep)
        if not ours:
            return _not_ours(r, lst)
        source = r.victim  # its own inode holds the bytes, whatever became of the kept path
    twin = _twin(r, restored)
    tmp = None
    if twin is not None:
        tmp = new_tmp(r.victim, lambda t: os.link(twin, t))
        with _removed_on_error(tmp):
            if r.blake3 is not None and _core.hash_file(tmp) != r.blake3:  # the twin was edited since
                os.unlink(tmp)
                tmp = twin = None  # a copy of its own, then
    if tmp is None:
        tmp = new_tmp(r.victim, lambda t: _copy_new(source, t))
    with _removed_on_error(tmp):
        if r.blake3 is not None and twin is None and _core.hash_file(tmp) != r.blake3:
            why = ("the kept file changed since the dedupe, so the original bytes are gone; the link is left"
                   if action == "symlink" else "its bytes were edited since the dedupe (the shared file); left as it is")
            os.unlink(tmp)
            return why
        if twin is None:  # a link of a twin already has the inode's owner, mode and times
            give_back(tmp, r.owner, r.xattrs, r.mode)
            os.utime(tmp, ns=(r.atime_ns, r.mtime_ns))
        now = os.lstat(r.victim)
        if (now.st_dev, now.st_ino, now.st_mode) != (lst.st_dev, lst.st_ino, lst.st_mode):
            os.unlink(tmp)
            return "changed while it was being restored; left as it is"
        # Swapped in as a dedupe swaps its links (`_swap_in`): a file another program saved
        # at the path since the look above stays there.
        made = _inode(os.lstat(tmp))
        copy = tmp
        tmp = new_tmp(r.victim, lambda h: rename_new(copy, h), hold=True)
        with _removed_on_error(tmp):  # (`_swap_in` raises only with nothing done)
            why = _swap_in(tmp, r.victim, _inode(lst), made)
        if why is not None:
            return "changed while it was being restored (another program saved it); left as it is"
    if r.twin_key is not None and twin is None:  # the inode its twins link to from now on
        done = os.lstat(r.victim)
        restored[r.twin_key] = (r.victim, done.st_dev, done.st_ino, r.nlink)
    return None


def _inode(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _same_file(a: bytes, b: bytes) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


@contextlib.contextmanager
def _removed_on_error(tmp: bytes) -> Iterator[None]:
    """Remove the temporary `tmp` if the block fails (Ctrl-C included)."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# What `_unlink` and `_unmove` return for a file an earlier undo of the journal restored
# though its 'undone' line never reached the disk (a full disk, a crash right after).
ALREADY = "restored by an earlier undo"


def _not_ours(r: _Record, lst: os.stat_result) -> str:
    """Why a path that no longer holds what the dedupe left there is left alone: ALREADY
    when it holds the original file again (a regular file of the mode, mtime and bytes
    the journal recorded: what an undo leaves), else the reason, or "" for a file the
    dedupe never acted on."""
    if not r.certain:
        return ""
    if _is_original(r, r.victim, lst):
        return ALREADY
    return "holds another file since the dedupe; left as it is"


# The times `os.utime` can set, in ns: what a 64-bit time_t holds.
_TIME_T = (1 << 63) * 10**9


def _is_original(r: _Record, path: bytes, lst: os.stat_result) -> bool:
    from .. import _core

    if not (stat.S_ISREG(lst.st_mode) and r.blake3 is not None and lst.st_mtime_ns == r.mtime_ns  # as journalled
            and stat.S_IMODE(lst.st_mode) == stat.S_IMODE(r.mode)) or _same_file(path, r.keep):
        return False  # (a name of the kept file is no copy of its own)
    try:
        return _core.hash_file(path) == r.blake3
    except (OSError, ValueError):
        return False


def _twin(r: _Record, restored: Restored) -> bytes | None:
    """A path holding, now, the inode the victim shared before the dedupe with another
    victim this undo restored. (Never the kept file: a copy that was a hard link of it is
    not acted on, and an inode number seen there now may be a new file's.) Not when each
    name was its inode's only one as it was deduped: that number, freed by the first
    dedupe, went to a new file that a later dedupe met (a QA finding: an undo made that
    file a hard link of another)."""
    got = restored.get(r.twin_key) if r.twin_key is not None else None
    if got is None or got[3] is not None and r.nlink is not None and max(got[3], r.nlink) < 2:
        return None  # (the last of several names to go shows one name left: the other's count tells)
    with contextlib.suppress(OSError):
        st = os.lstat(got[0])
        if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) == got[1:3]:
            return got[0]
    return None


def _moved_there(r: _Record, lst: os.stat_result) -> bool:
    """Whether the trash or --to path holds the file the dedupe moved there: the inode the
    journal recorded with its mode and mtime, else (a copy made by an earlier undo's
    move, a journal cut short) a regular file of the recorded mode, mtime and content."""
    from .. import _core

    assert r.moved_to is not None
    if not stat.S_ISREG(lst.st_mode):
        return False
    if (r.dev, r.ino) == _inode(lst) and lst.st_mtime_ns == r.mtime_ns:
        return True
    # Else by its bytes alone: a disk with coarser times (FAT's 2 s, exFAT's 10 ms, ext4's
    # second with small inodes) keeps the mtime the move copied only so far.
    try:
        return r.blake3 is not None and _core.hash_file(r.moved_to) == r.blake3
    except (OSError, ValueError):
        return False


def _back_there(path: bytes) -> str:
    """What stands at a path an undo would restore a file to, in words."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return "something is back at the original path"
    what = ("a folder" if stat.S_ISDIR(mode) else "a symbolic link" if stat.S_ISLNK(mode)
            else "a file" if stat.S_ISREG(mode) else "something that is no file")
    return f"{what} is back at the original path"


def _unmove(r: _Record, twins: dict[tuple[int, int], bytes]) -> str | None:
    """Move a file back from the trash or the --to folder (None, a reason or "", as for
    `_unlink`); `twins` as for `_move`."""
    if r.moved_to is None:
        return "the journal does not say where it went" if r.certain else ""
    if os.path.lexists(r.victim):
        if not _is_original(r, r.victim, os.lstat(r.victim)):
            return _back_there(r.victim) if r.certain else ""
        if os.path.lexists(r.moved_to) and _moved_there(r, os.lstat(r.moved_to)):
            # Both whole: a move across disks (the dedupe's, or this undo's) killed after
            # its copy was made and before the original went. The copy goes, once known
            # to hold the very bytes the original path holds again.
            os.unlink(r.moved_to)
        elif os.path.lexists(r.moved_to):
            return _back_there(r.victim) if r.certain else ""
        return ALREADY if r.certain else ""
    if not os.path.lexists(r.moved_to):
        return f"not found at {path_text(r.moved_to)} any more" if r.certain else ""
    if not _moved_there(r, os.lstat(r.moved_to)):
        return f"{path_text(r.moved_to)} holds another file since the dedupe; left as it is" if r.certain else ""
    # (`was`: the device the file had in the library; journals from before it was kept lack it.)
    unmounted = (_folder_on_another_disk(os.path.dirname(r.victim), r.was[0], r.keep) if r.was is not None
                 else None)
    if unmounted is not None:
        return unmounted if r.certain else ""
    os.makedirs(os.path.dirname(r.victim), exist_ok=True)
    _move(r.moved_to, r.victim, twins)
    return None


def _folder_on_another_disk(folder: bytes, dev: int, keep: bytes) -> str | None:
    """Why a file that was on device `dev` is not put back into `folder`: its disk looks
    unmounted. The folder, or the nearest one above it that is there, is an empty folder
    on another device than the file was, and the kept file is not on that device either
    (a disk mounted again under a new device number holds its kept copies, in a dedupe
    within one disk): files put there would land in the empty mount point, hidden once
    the disk is mounted. None otherwise (a folder the user removed once the dedupe had
    emptied it is made again)."""
    missing = _missing_folders(folder)
    here = os.path.dirname(missing[-1]) if missing else folder
    try:
        st = os.stat(here)
        if st.st_dev == dev or os.listdir(here):
            return None
    except OSError:
        return None
    with contextlib.suppress(OSError):
        if os.stat(keep).st_dev == st.st_dev:
            return None
    return (f"its folder {path_text(folder)} is {'missing' if missing else 'empty'}, and {path_text(here)} is an empty "
            "folder on another disk than the file was: is its disk not mounted? Left where it is; mount it and undo "
            "again")


def _end_last_line(path: Path) -> None:
    """Before lines are added after the last one, where reading would no longer take it as
    a last line a crash cut short: end a whole last line (a journal saved by an editor
    without its final newline) with one, and remove one cut short (reading skips it)."""
    try:
        with open(path, "rb") as f:  # read only: a journal that may only be appended to stays usable
            size = f.seek(0, os.SEEK_END)
            start = size
            while start > 0:  # back to the start of the last line
                f.seek(max(0, start - CHUNK))
                block = f.read(start - max(0, start - CHUNK))
                if start == size and block.endswith(b"\n"):
                    return
                cut = block.rfind(b"\n")
                start = max(0, start - CHUNK)
                if cut >= 0:
                    start += cut + 1
                    break
            f.seek(start)
            last = f.read()
        if not last:
            return
        try:
            whole = isinstance(json.loads(last), dict)
        except ValueError:
            whole = False
        if whole:
            with open(path, "ab") as f:
                f.write(b"\n")
                f.flush()
                os.fsync(f.fileno())
        else:
            try:
                with open(path, "r+b") as f:
                    f.truncate(start)
                    os.fsync(f.fileno())
            except OSError as e:
                raise PathIOError(f"cannot remove the last line of the dedupe journal {path}, cut short by a crash: "
                                  f"{e.strerror}; nothing was changed") from None
    except OSError as e:
        raise PathIOError(f"cannot write the dedupe journal {path}: {e.strerror}; nothing was changed") from None


def _writers(path: Path) -> frozenset[int]:
    """The pids of the runs a journal names (the dedupe's, its undos'), this one's aside."""
    pids = {e.get("pid") for e in _entries(path) if e["kind"] in ("start", "undoing")}
    return frozenset(p for p in pids if type(p) is int and 0 < p < 1 << 31 and p != os.getpid())


def _restored_before(records: list[_Record], restored: Restored, moved_back: dict[tuple[int, int], bytes]) -> None:
    """Add to `restored` (by the inode each had before its dedupe) and `moved_back` (by
    the inode it was moved back from) the files of `records` an undo restored that are
    still where it put them."""
    for r in records:
        with contextlib.suppress(OSError):
            if r.undone is None or _inode(os.lstat(r.victim)) != r.undone:
                continue
            if r.twin_key is not None:
                restored.setdefault(r.twin_key, (r.victim, *r.undone, r.nlink))
            if r.undone_from is not None:
                moved_back.setdefault(r.undone_from, r.victim)


def check_journal(path: Path) -> None:
    """Refuse (exit code 2 or 3) a file that is not a whole, valid dedupe journal."""
    _records(path)


def undo(path: Path, on_step: StepFn | None = None) -> Outcome:
    """Reverse every completed action of a journal, newest first; each path must still
    hold what the dedupe left there, or it is left alone with the reason. Each file
    restored is journaled ('undone', with the inode it has again), so an undo stopped
    part way (Ctrl-C, a full disk) and run again goes on where it stopped: what the first
    run restored is counted as such, not taken for a file saved there since, and hard
    links it restored are linked to again. A journal that cannot be written to is
    refused before anything is touched."""
    action, records = _records(path)
    out = Outcome(journal=path)
    restored: Restored = {}
    moved_back: dict[tuple[int, int], bytes] = {}  # see `_move`
    # What an earlier undo restored, where it still is, for twins to link to: of this
    # journal, then of the others beside it (a run stopped part way and run again left
    # two journals over one inode's names: undone one after the other, the names are one
    # inode again). A twin is linked to only while it holds the bytes (`_twin`, `_move`).
    _restored_before(records, restored, moved_back)
    for other in _journals(path.parent):
        if other.name != path.name:
            with contextlib.suppress(InvalidInputError, PathIOError):
                _restored_before(_records(other)[1], restored, moved_back)
    _end_last_line(path)
    journal = Journal(path, appending=True)
    put_back: set[tuple[int, int]] = set()
    try:
        # The temporaries an earlier run of this journal, or an undo of it, left when
        # killed (a whole hidden copy, maybe) go now, not ten minutes after: their writers
        # are known. This run says who it is first, for the next to do the same.
        known = _writers(path)
        journal.write(kind="undoing", pid=os.getpid())
        for folder in sorted({os.path.dirname(p) for r in records for p in (r.victim, r.moved_to) if p}):
            sweep_stale(folder, known=known)
        with Stop() as stop:
            for n, r in enumerate(reversed(records)):
                if on_step is not None:
                    on_step(n, len(records), len(out.skipped))
                if stop.requested:
                    out.interrupted = True
                    break
                if r.undone is not None:
                    out.already += 1
                    continue
                came_from: dict[str, int] = {}
                try:
                    if action in ("move-to", "trash"):
                        with contextlib.suppress(OSError, TypeError):
                            was = os.lstat(r.moved_to)  # type: ignore[arg-type]
                            came_from = {"from_dev": was.st_dev, "from_ino": was.st_ino}
                        why = _unmove(r, moved_back)
                    else:
                        why = _unlink(r, action, restored)
                except FileNotFoundError as err:
                    # The file the undo reads from (the kept one a link or clone shares) gone,
                    # rather than the copy's own path.
                    gone = os.fsencode(err.filename) if err.filename is not None else r.victim
                    why = ("" if not r.certain else "gone since the dedupe" if gone == r.victim
                           else f"{path_text(gone)}, which it is restored from, is gone since the dedupe")
                except OSError as err:
                    why = f"could not restore it: {err.strerror or first_line(err)}{_where(err)}"
                if why is None or why == ALREADY:
                    st = os.lstat(r.victim)
                    if why is None:
                        out.done += 1
                        if _inode(st) not in put_back:  # for an undo: the bytes it put back, once an inode
                            put_back.add(_inode(st))
                            out.bytes_freed += st.st_size
                        out.restored.append(r.victim)
                    else:
                        out.already += 1
                        if r.twin_key is not None:
                            restored.setdefault(r.twin_key, (r.victim, st.st_dev, st.st_ino, r.nlink))
                        if r.dev is not None and r.ino is not None and action in ("move-to", "trash"):
                            moved_back.setdefault((r.dev, r.ino), r.victim)
                    journal.write(kind="undone", victim=_b64(r.victim), dev=st.st_dev, ino=st.st_ino, **came_from)
                elif why:  # "": a file the journal only meant to act on, untouched
                    out.skipped.append((r.victim, why))
    except JournalError as e:  # a full disk: what is restored stays so; the rest waits for a rerun
        out.journal_failed = str(e)
    finally:
        with contextlib.suppress(JournalError):
            journal.close()
    if action in ("move-to", "trash"):
        _prune_emptied(path, action)
    return out


def _missing_folders(folder: bytes) -> list[bytes]:
    """The folders `os.makedirs(folder)` is about to create, deepest first."""
    made = []
    while folder and not os.path.lexists(folder):
        made.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return made


def _prune_emptied(path: Path, action: str) -> None:
    """Remove the folders the dedupe made for moved files (its `made` lines) that the undo
    left empty, deepest first, and the trash folder of this journal, all its own; never
    a folder that was there before, nor one holding anything."""
    entries = list(_entries(path))
    made: set[bytes] = set()
    done = {e.get("victim") for e in entries if e.get("kind") == "done"}
    for e in entries:
        if e.get("kind") == "intent" and e.get("victim") not in done and isinstance(e.get("moved_to"), str):
            # A move killed part way may have left its hidden temporary copy: one that
            # nothing has touched for ten minutes, of a process gone, goes.
            with contextlib.suppress(TypeError, ValueError, OSError):
                sweep_stale(os.path.dirname(_unb64(e["moved_to"])))
        if e.get("kind") in ("start", "intent", "done") and isinstance(e.get("made"), list):
            for m in e["made"]:
                with contextlib.suppress(TypeError, ValueError):  # a line edited by hand: that folder stays
                    made.add(_unb64(m))
    dest = entries[0].get("dest") if entries else None
    if action == "trash" and dest:
        made.add(os.fsencode(dest))
    for folder in sorted(made, key=len, reverse=True):
        with contextlib.suppress(OSError):  # not empty, or gone: it stays as it is
            os.rmdir(folder)
