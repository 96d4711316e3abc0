"""What a tag or collection command acts on: paths (files, folders, globs), a `--where`
condition, or the members of a collection; always resolved to stable media_ids."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from ..catalog import Catalog
from ..catalog.writes import stored_dir_name, under_roots_sql
from ..errors import InvalidInputError, is_text, path_text
from ..fsops import absolute, from_cwd, real
from .predicate import matching

GLOB_CHARS = set("*?[")


def as_catalogued(arg: str | bytes | os.PathLike) -> list[bytes]:
    """The absolute paths an existing path may be catalogued under, in order: as given
    (a file reached through a link the scan followed, `-L`, is catalogued at the link's
    path), then with its links resolved (a root scanned by its real path)."""
    raw = os.path.expanduser(os.fsencode(arg))
    given, resolved = absolute(raw), real(raw)
    return [given] if given == resolved else [given, resolved]


def _absolute(arg: str | bytes) -> tuple[bytes, bool]:
    """The absolute path (`~` expanded, symlinks resolved when it exists) and whether it
    is a glob. A path that exists is taken as it is, so a folder named `Photos [2019]` is
    that folder, not a pattern."""
    raw = os.path.expanduser(os.fsencode(arg))
    if os.path.lexists(raw):
        return real(raw), False
    return absolute(raw), any(c in os.fsdecode(raw) for c in GLOB_CHARS)


def _class_items(body: str) -> str:
    """A glob's character set (`[...]`, its `!` taken off) as a regular expression's:
    its characters and `lo-hi` ranges as fnmatch reads them (a `-` first or last is
    itself), every end escaped, so no `[`, `&&`, `~~` or leading `^` reads as a nested
    set or a set operation, to RE2 or Python alike. A range that runs backwards holds
    nothing, as for fnmatch."""
    def esc(ch: str) -> str:
        return "\\" + ch if ch in "[]\\&~|^-" else ch

    out, k = [], 0
    while k < len(body):
        if k + 2 < len(body) and body[k + 1] == "-":
            if body[k] <= body[k + 2]:
                out.append(f"{esc(body[k])}-{esc(body[k + 2])}")
            k += 3
        else:
            out.append(esc(body[k]))
            k += 1
    return "".join(out)


def glob_regex(pattern: str) -> str:
    """A shell glob as a regular expression over whole paths: `*` and `?` stay within one
    folder, `[...]` is a character class (`[!...]` negated), `**` spans folders, a name
    holding a line break among them (`(?s)`: RE2's `.`, as Python's, stops at one)."""
    out, i, n = ["(?s)"], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i + 1
            if j < n and pattern[j] in "!^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:  # no closing bracket: a literal '['
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:j]
                negated = body[:1] in ("!", "^")
                items = _class_items(body[1:] if negated else body)
                if negated:
                    out.append("[^/" + items + "]")
                else:
                    out.append("[" + items + "]" if items else "[^\\s\\S]")  # a set of nothing matches nothing
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _matches_on_disk(pattern: bytes) -> bool:
    """Whether a file or folder on disk matches the glob as the catalog's paths are
    matched (`glob_regex`: `**`, `[!...]` and `[^...]`, hidden names), looking no deeper
    than the pattern reaches."""
    rx = re.compile(glob_regex(os.fsdecode(pattern)), re.S)
    top = _glob_folder(pattern)
    depth = None if b"**" in pattern else pattern[len(top):].strip(b"/").count(b"/") + 1
    for folder, dirs, files in os.walk(top):
        if any(rx.fullmatch(os.fsdecode(os.path.join(folder, name))) for name in (*files, *dirs)):
            return True
        if depth is not None and folder[len(top):].count(b"/") + 1 >= depth:
            dirs.clear()  # what lies below cannot match
    return False


# The kinds whose files have sidecars (`sidecars_below`).
MEDIA_KINDS = frozenset({"image", "raw", "video", "audio"})


def resolve_targets(cat: Catalog, paths: Sequence[str | bytes] = (), where: Sequence[str] | str | None = None,
                    collection: Sequence[str] | str | None = None, missing_too: bool = False,
                    sidecars_below: bool = True) -> list[str]:
    """Media ids of present files named by `paths` (a file, everything under a folder, or
    a glob matched against catalog paths), matching a `where` condition, or in a
    `collection` (one, or several); their union, in path order. A path the catalog does
    not know is an error, so a typo never silently tags nothing. `missing_too`: a path
    where the catalog has only files missing since the last scan names those rows (to
    list or take off their tags, or their collection places, before a prune); else it is
    refused as missing. Without `sidecars_below`, a folder or a glob that holds media
    files names them and the other files, not the sidecars (`tag add` on a folder tags
    its photos, not the `.xmp` beside each); one that holds no media file names all it
    holds; a sidecar named itself is named."""
    wheres = [where] if isinstance(where, str) else list(where or [])
    collections = [collection] if isinstance(collection, str) else list(collection or [])
    if not paths and not wheres and not collections:
        raise InvalidInputError("say what to act on: PATH..., --where CONDITION or --collection NAME")
    ids: dict[str, None] = {}
    # Many files named one by one (`find ... | xargs mediaforge tag add T`): each looked up
    # alone read the files table once (1,000 paths took a minute on 700,000 files); those
    # catalogued at exactly their path are found together first.
    exact = _exact_files(cat, [q for arg in paths for q in as_catalogued(arg)]) if len(paths) > 4 else {}
    for arg in paths:
        raw = os.fsencode(arg)
        if raw.endswith(b"/") or raw.endswith(b"/."):
            try:
                os.stat(raw)
            except NotADirectoryError:  # `photo.jpg/` names a folder that is not there, as `ls` says
                raise InvalidInputError(f"not a folder: {path_text(from_cwd(raw))} (a file's name ends without a /)") from None
            except (OSError, ValueError):
                pass
        p, glob = _absolute(arg)
        if glob and _catalogued_at(cat, p):
            # Gone from disk, but the catalog has a file (or a folder's files) at exactly
            # that path: that is what `l/[ab].jpg` names, not `l/a.jpg` and `l/b.jpg`.
            glob = False
        text = path_text(p)
        if glob:
            if not is_text(os.fsdecode(p)):
                raise InvalidInputError(f"a pattern must be UTF-8 text: {text} (give the file or folder itself)")
            patterns = _globs_catalogued(p)  # as given, then through its folder's links resolved
            for pattern in patterns:
                rows = _matching(cat, pattern, "present")
                if rows:
                    break
        else:
            tried = []
            for p in as_catalogued(arg):  # the link's path first, then the resolved one
                tried.append(p)
                rows = [exact[p]] if p in exact else _under(cat, p)
                if rows:
                    break
            text = path_text(p)
        if not rows:
            # Files the catalog has there, all missing since the last scan (a folder moved
            # away, files deleted): named all the same where their rows may be acted on.
            missing = next(filter(None, (_matching(cat, q, "missing") for q in patterns)), []) if glob else \
                next(filter(None, (_under(cat, q, "missing") for q in tried)), [])
            if missing and missing_too:
                ids.update((r[0], None) for r in missing)
                continue
            if missing and not glob and _is_row(cat, tried):
                raise InvalidInputError(f"{text} is missing since the last scan: the catalog has it, but not on disk "
                                        "(its tags can be listed and taken off; `scan --prune` drops its row)")
            if missing:
                one = len(missing) == 1
                raise InvalidInputError(
                    f"the catalog's {len(missing):,} file{'' if one else 's'} {'matching' if glob else 'below'} {text} "
                    f"{'is' if one else 'are all'} missing since the last scan: not on disk ("
                    + ("its tags can be listed and taken off; `scan --prune` drops its row)" if one else
                       "their tags can be listed and taken off; `scan --prune` drops their rows)"))
            if not glob and not os.path.lexists(p):  # a typo: scanning would not help
                raise InvalidInputError(f"no such file or folder: {text} (nor in the catalog)")
            if glob and not os.path.isdir(_glob_folder(p)):
                raise InvalidInputError(f"no such folder: {path_text(_glob_folder(p))}, for {text} (nor in the "
                                        "catalog)")
            if glob and not _matches_on_disk(p):  # scanning would not help either
                raise InvalidInputError(f"no file matches {text}, on disk or in the catalog")
            raise InvalidInputError(f"not in the catalog: {text} (scan it first)")
        if not sidecars_below and any(r[1] in MEDIA_KINDS for r in rows):
            # (A folder of subtitles and a README: all of it, as it holds no media file.)
            rows = [r for r in rows if r[1] != "sidecar" or r[2] == p]
        ids.update((r[0], None) for r in rows)
    for condition in wheres:
        ids.update((m, None) for m in matching(cat, condition))
    if collections:
        from .collection import members

        for name in collections:
            ids.update((m, None) for m in members(cat, name))
    return list(ids)


def _matching(cat: Catalog, pattern: bytes, status: str) -> list[tuple[str, str, bytes]]:
    """The files of this status whose paths a glob matches, in path order: media id, kind
    and path."""
    return cat.con.sql(f"SELECT media_id::VARCHAR, kind, path_bytes FROM files WHERE status = '{status}' AND "
                       "regexp_full_match(path, $re) ORDER BY path",
                       params={"re": glob_regex(os.fsdecode(pattern))}).fetchall()


def _exact_files(cat: Catalog, paths: list[bytes]) -> dict[bytes, tuple[str, str, bytes]]:
    """The present files catalogued at exactly these paths (those of UTF-8 text), by path:
    media id, kind and path, in one pass over the files table."""
    import pyarrow as pa

    dirs, names = [], []
    for p in paths:
        try:
            folder, name = stored_dir_name(p.decode("utf-8"))
        except UnicodeDecodeError:
            continue  # (looked up alone, by its raw bytes)
        dirs.append(folder)
        names.append(name)
    if not dirs:
        return {}
    with cat.registered("mf_exact", pa.table({"dir": pa.array(dirs, pa.string()), "name": pa.array(names, pa.string())})):
        rows = cat.con.execute("SELECT f.media_id::VARCHAR, f.kind, f.path_bytes FROM files f "
                               "JOIN (SELECT DISTINCT dir, name FROM mf_exact) e ON f.dir = e.dir AND f.name = e.name "
                               "WHERE f.status = 'present' AND f.path_raw IS NULL").fetchall()
    return {r[2]: r for r in rows}


def _is_row(cat: Catalog, paths: list[bytes]) -> bool:
    """Whether the catalog has a file at exactly one of `paths` (not only files below it)."""
    return bool(cat.con.execute("SELECT 1 FROM files WHERE path_bytes IN (SELECT unnest(?::BLOB[])) LIMIT 1",
                                [paths]).fetchall())


def _catalogued_at(cat: Catalog, p: bytes) -> bool:
    """Whether the catalog has a row, present or missing, at `p` or below it (on the
    stored folder, as `under_roots_sql` compares: no path is built for each row)."""
    under, params = under_roots_sql([p])
    return bool(cat.con.execute(f"SELECT 1 FROM files WHERE {under} LIMIT 1", params).fetchall())


def _globs_catalogued(pattern: bytes) -> list[bytes]:
    """A glob as given, then with the folder it starts from (its part before the first
    component with a wildcard) resolved, when that folder is reached through a link: a
    scan catalogues its files by their real path."""
    folder = _glob_folder(pattern)
    real = os.path.realpath(folder)
    if real == os.path.normpath(folder) or not os.path.isdir(real):
        return [pattern]
    return [pattern, real.rstrip(b"/") + pattern[len(folder.rstrip(b"/")):]]


def _glob_folder(pattern: bytes) -> bytes:
    """The folder a glob starts from: its part before the first component with a wildcard."""
    parts = pattern.split(b"/")
    fixed = next((i for i, part in enumerate(parts) if any(c in os.fsdecode(part) for c in GLOB_CHARS)), len(parts))
    return b"/".join(parts[:fixed]) or b"/"


def _under(cat: Catalog, p: bytes, status: str = "present") -> list[tuple[str, str, bytes]]:
    """The file at `p`, or every file below the folder `p`, of this status, matched on
    exact bytes (so two folders whose names differ only in bytes that are not UTF-8 stay
    apart): media id, kind and path."""
    under, params = under_roots_sql([p])
    return cat.con.execute(f"SELECT media_id::VARCHAR, kind, path_bytes FROM files WHERE status = '{status}' AND {under} "
                           "ORDER BY path",
                           params).fetchall()
