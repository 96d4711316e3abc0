"""Collections: named, ordered sets of media (manual), or saved SQL conditions over the
`library` view evaluated live (smart). Both are keyed by media_id, so members survive
renames and moves; a smart collection is checked when saved and again when run."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import pyarrow as pa

from ..catalog import Catalog
from ..catalog.media_tables import arrow_schema, columns
from ..catalog.writes import utcnow
from ..errors import InvalidInputError, first_line, is_text, quoted
from .predicate import check_predicate, count_predicate, predicate_ids, refuse_volatile, run_predicate
from .tags import BAD_NAME_CHARS, fold_spaces, folded_sql, has_invisible, who

MAX_NAME = 200


def _check_name(name: str) -> str:
    """The name as stored: trimmed. Refused: empty, too long, control characters and
    others XML cannot carry, and '|' or '/' (XMP keeps a collection as the keyword
    "MediaForge Collections|NAME": the name would split there, and not come back whole)."""
    n = fold_spaces(unicodedata.normalize("NFC", (name or "").strip()))
    # (Looked for in the name as given: one at either end would be trimmed as a space.)
    if not n or len(n) > MAX_NAME or not is_text(n) or BAD_NAME_CHARS.search(name or "") or has_invisible(n):
        raise InvalidInputError(f"bad collection name {quoted(name)}: 1 to {MAX_NAME} printable characters of UTF-8 text, "
                                "not starting with a combining mark")
    if "|" in n or "/" in n:
        raise InvalidInputError(f"bad collection name {quoted(name)}: '|' and '/' separate keyword levels in XMP "
                                "sidecars")
    return n


def stored_name(name: str) -> str:
    """The name a collection given as `name` is stored under (checked, trimmed)."""
    return _check_name(name)


def _get(cat: Catalog, name: str, any_case: bool = False) -> tuple[int, str, str | None]:
    # Looked up as given (trimmed), not checked: a name made before a rule was added
    # (one with '/') can still be shown, changed and deleted.
    if not is_text(name or ""):
        raise InvalidInputError(f"no collection named {quoted(name)} (see `mediaforge collection list`)")
    # In either Unicode form (names made before they were stored composed, NFC), the name
    # exactly as typed first. `any_case` (a search's filter, which ignores case as its
    # words do): else the one name that differs from it in letter case alone.
    typed = (name or "").strip()
    params = {"n": fold_spaces(unicodedata.normalize("NFC", typed)), "typed": typed}
    rows = cat.con.sql(f"SELECT collection_id, kind, predicate FROM collections WHERE {folded_sql('name')} = $n "
                       "ORDER BY name = $typed DESC, name = $n DESC LIMIT 1", params=params).fetchall()
    if not rows and any_case:
        # Letter case as the search's words compare it (Python's case folding, not SQL's
        # lower(): a Greek final sigma is a sigma, `ß` is `ss`, Turkish `İ` is `i`).
        want = _case_folded(params["n"])
        rows = [r for r in cat.con.sql(f"SELECT collection_id, kind, predicate, {folded_sql('name')} AS n "
                                       "FROM collections ORDER BY name").fetchall() if _case_folded(r[3]) == want]
        if len(rows) > 1:
            names = ", ".join(quoted(r[3]) for r in rows)
            raise InvalidInputError(f"{quoted(name)} names {len(rows)} collections that differ in letter case "
                                    f"({names}): give one exactly as it is written")
        rows = [r[:3] for r in rows]
    if not rows:
        raise InvalidInputError(f"no collection named {quoted(name)} (see `mediaforge collection list`)")
    cid, kind, pred = rows[0]
    return int(cid), kind, pred


def _case_folded(name: str) -> str:
    return unicodedata.normalize("NFC", name.replace("\u0130", "i").casefold())


def create(cat: Catalog, name: str, smart: str | None = None) -> tuple[int, list[str]]:
    """The new collection's id, and the media_ids of its members now (a smart one's
    condition runs once, over today's files: one that fails on them is refused)."""
    name = _check_name(name)
    pred = check_predicate(cat, smart) if smart is not None else None
    if pred is not None:
        refuse_volatile(cat, pred)
    ids = run_predicate(cat, pred, "the condition") if pred is not None else []
    with cat.transaction() as con:
        if con.execute(f"SELECT 1 FROM collections WHERE {folded_sql('name')} = ?", [name]).fetchall():
            raise InvalidInputError(f"a collection named {quoted(name)} already exists")
        (cid,) = con.execute("SELECT coalesce(max(collection_id), 0) + 1 FROM collections").fetchall()[0]
        con.execute(f"INSERT INTO collections ({', '.join(columns('collections'))}) VALUES (?, ?, ?, ?, ?, ?)",
                    [cid, name, "smart" if pred else "manual", pred, who(), utcnow()])
    return int(cid), ids


def delete(cat: Catalog, name: str) -> None:
    cid, _kind, _pred = _get(cat, name)
    with cat.transaction() as con:
        con.execute("DELETE FROM collection_items WHERE collection_id = ?", [cid])
        con.execute("DELETE FROM collections WHERE collection_id = ?", [cid])


def name_of(cat: Catalog, cid: int) -> str:
    """The name collection `cid` is stored under."""
    return str(cat.con.execute("SELECT name FROM collections WHERE collection_id = ?", [cid]).fetchall()[0][0])


def manual(cat: Catalog, name: str, adding: bool = True) -> int:
    """The id of the manual collection `name`; refused when there is none or it is smart
    (callers check this before resolving a million paths)."""
    cid, kind, _pred = _get(cat, name)
    if kind == "smart":
        why = ("its members are whatever its condition matches" if adding else
               "its members are whatever its condition matches (delete it and create it again with another)")
        raise InvalidInputError(f"{quoted(name)} is a smart collection: {why}")
    return cid


def add(cat: Catalog, name: str, media_ids: Sequence[str]) -> int:
    """Append media to a manual collection, in the given order, skipping members."""
    cid = manual(cat, name)
    now, by = utcnow(), who()
    n, schema = len(media_ids), arrow_schema("collection_items")
    rows = pa.Table.from_arrays([pa.array([cid] * n, schema.field("collection_id").type),
                                 pa.array(list(media_ids), pa.string()),
                                 pa.array(range(n), schema.field("position").type),
                                 pa.array([by] * n, pa.string()),
                                 pa.array([now] * n, schema.field("added_at").type)], schema=schema)
    with cat.registered("mf_items", rows), cat.transaction() as con:
        (base,) = con.execute("SELECT coalesce(max(position), 0) FROM collection_items WHERE collection_id = ?",
                              [cid]).fetchall()[0]
        n = con.execute(f"""
            INSERT INTO collection_items SELECT collection_id, media_id::UUID, position + 1 + $base, added_by, added_at
            FROM mf_items n WHERE NOT EXISTS (SELECT 1 FROM collection_items c WHERE c.collection_id = $cid
                                              AND c.media_id = n.media_id::UUID)""",
                        {"base": base, "cid": cid}).fetchall()[0][0]
    return int(n)


def remove(cat: Catalog, name: str, media_ids: Sequence[str]) -> int:
    cid = manual(cat, name, adding=False)
    ids = pa.table({"media_id": pa.array(list(media_ids), pa.string())})
    with cat.registered("mf_ids", ids), cat.transaction() as con:
        n = con.execute("DELETE FROM collection_items WHERE collection_id = ? AND media_id IN "
                        "(SELECT media_id::UUID FROM mf_ids)", [cid]).fetchall()[0][0]
    return int(n)


# A manual collection's present members (`{order}`: how they are listed).
_MANUAL = """SELECT c.media_id::VARCHAR FROM collection_items c JOIN files f ON f.media_id = c.media_id
             AND f.status = 'present' WHERE c.collection_id = $cid {order}"""


def members(cat: Catalog, name: str, any_case: bool = False, limit: int | None = None) -> list[str]:
    """Media ids of the present members, in the collection's order (smart: path order),
    the first `limit` of them if given; `any_case` as for `_get`."""
    cid, kind, pred = _get(cat, name, any_case)
    if kind == "smart":
        return run_predicate(cat, _checked(cat, name, pred), f"smart collection {quoted(name)}: its condition", limit)
    cut = f" LIMIT {int(limit)}" if limit is not None else ""
    return [r[0] for r in cat.con.sql(_MANUAL.format(order="ORDER BY c.position" + cut), params={"cid": cid}).fetchall()]


def member_ids(cat: Catalog, name: str, any_case: bool = False) -> pa.ChunkedArray:
    """`members` in no order, as Arrow (a search's restriction)."""
    cid, kind, pred = _get(cat, name, any_case)
    if kind == "smart":
        return predicate_ids(cat, _checked(cat, name, pred), f"smart collection {quoted(name)}: its condition")
    return cat.con.sql(_MANUAL.format(order=""), params={"cid": cid}).to_arrow_table().column(0)


def _checked(cat: Catalog, name: str, pred: str | None) -> str:
    """A smart collection's saved condition, checked again (the `library` view may have
    changed since it was saved): refused naming the collection."""
    try:
        return check_predicate(cat, pred or "")
    except InvalidInputError as e:
        raise InvalidInputError(f"smart collection {quoted(name)}: {first_line(e)}") from None


def _count(cat: Catalog, cid: int, kind: str, pred: str | None, name: str = "") -> int:
    """How many present members, counted in SQL (`members` without the list)."""
    if kind == "smart":
        return count_predicate(cat, _checked(cat, name, pred), f"smart collection {quoted(name)}: its condition")
    return int(cat.con.sql(
        """SELECT count(*) FROM collection_items c JOIN files f ON f.media_id = c.media_id AND f.status = 'present'
           WHERE c.collection_id = $cid""", params={"cid": cid}).fetchall()[0][0])


def show(cat: Catalog, name: str) -> pa.Table:
    """One row per present member: position, path, kind, size, year, tags, media_id,
    path_raw (the exact bytes of a path that is not valid UTF-8, else null)."""
    ids = members(cat, name)
    order = pa.table({"media_id": pa.array(ids, pa.string()), "position": pa.array(range(1, len(ids) + 1), pa.int64())})
    with cat.registered("mf_members", order):
        return cat.con.sql("""
            SELECT o.position, l.path, l.kind, l.size, l.year, l.tags, l.media_id::VARCHAR AS media_id,
                   (SELECT f.path_raw FROM files f WHERE f.media_id = l.media_id AND f.status = 'present') AS path_raw
            FROM mf_members o JOIN library l ON l.media_id = o.media_id::UUID ORDER BY o.position""").to_arrow_table()


def listing(cat: Catalog) -> list[dict]:
    out = []
    for cid, name, kind, pred, by, at in cat.con.sql(
            "SELECT collection_id, name, kind, predicate, created_by, created_at FROM collections ORDER BY name"
    ).fetchall():
        try:
            files: int | None = _count(cat, int(cid), kind, pred, name)
        except InvalidInputError:  # a smart condition the current files make fail: listed, not fatal
            files = None
        out.append({"name": name, "kind": kind, "condition": pred, "files": files,
                    "created_by": by, "created_at": at, "id": int(cid)})
    return out
