"""What a tag or collection command acts on: paths (files, folders, globs), a `--where`
condition, or the members of a collection; always resolved to stable media_ids."""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..catalog import Catalog
from ..errors import InvalidInputError
from .predicate import matching

GLOB_CHARS = set("*?[")


def _absolute(arg: str | bytes) -> tuple[bytes, bool]:
    """The absolute path (symlinks resolved when it exists) and whether it is a glob."""
    raw = os.fsencode(arg)
    if any(c in os.fsdecode(raw) for c in GLOB_CHARS):
        return os.path.abspath(raw), True
    return (os.path.realpath(raw) if os.path.lexists(raw) else os.path.abspath(raw)), False


def resolve_targets(cat: Catalog, paths: Sequence[str | bytes] = (), where: str | None = None,
                    collection: str | None = None) -> list[str]:
    """Media ids of present files named by `paths` (a file, everything under a folder, or
    a glob matched against catalog paths), matching `where`, or in `collection`; their
    union, in path order. A path the catalog does not know is an error, so a typo never
    silently tags nothing."""
    if not paths and where is None and collection is None:
        raise InvalidInputError("say what to act on: PATH..., --where CONDITION or --collection NAME")
    ids: dict[str, None] = {}
    for arg in paths:
        p, glob = _absolute(arg)
        text = os.fsdecode(p)
        if glob:
            rows = cat.con.sql("SELECT media_id FROM files WHERE status = 'present' AND path GLOB $g ORDER BY path",
                               params={"g": text}).fetchall()
        else:
            rows = _under(cat, p)
        if not rows:
            missing = not glob and cat.con.execute(
                "SELECT 1 FROM files WHERE path_bytes = ? AND status = 'missing'", [p]).fetchall()
            if missing:
                raise InvalidInputError(f"{text} is missing since the last scan: the catalog has it, but not on disk")
            raise InvalidInputError(f"not in the catalog: {text} (scan it first)")
        ids.update((str(r[0]), None) for r in rows)
    if where is not None:
        ids.update((m, None) for m in matching(cat, where))
    if collection is not None:
        from .collection import members

        ids.update((m, None) for m in members(cat, collection))
    return list(ids)


def _under(cat: Catalog, p: bytes) -> list[tuple[str]]:
    """The file at `p` (matched on its exact bytes, so names that are not UTF-8 work), or
    every present file below the folder `p`."""
    prefix = p.rstrip(b"/").decode("utf-8", "replace") + "/"
    return cat.con.sql(
        """SELECT media_id FROM files WHERE status = 'present'
           AND (path_bytes = $p OR starts_with(path, $prefix)) ORDER BY path""",
        params={"p": p, "prefix": prefix},
    ).fetchall()
