"""Hierarchical tags (`places/france/paris`) on the stable media_id, so they survive
renames, moves and rescans. Each row says where it came from (`user`, `xmp`, `dedupe`),
who added it and when. A tag names its whole subtree when filtering: `places/france`
covers `places/france/paris`.
"""

from __future__ import annotations

import getpass
import re
import unicodedata
from collections.abc import Iterable, Sequence

import pyarrow as pa

from ..catalog import Catalog
from ..catalog.media_tables import arrow_schema, columns
from ..catalog.writes import utcnow
from ..errors import InvalidInputError, quoted

MAX_TAG = 512
# Characters no name here may hold: controls (C0, DEL, C1), line and paragraph
# separators, surrogates (bytes that are not UTF-8) and noncharacters (U+FFFE, U+FFFF and
# their kin), which XML cannot carry: an XMP sidecar holding one is unreadable.
BAD_NAME_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff"
                            + "".join(f"{chr(p + 0xFFFE)}{chr(p + 0xFFFF)}" for p in range(0x10000, 0x110000, 0x10000))
                            + "]")
_BAD = re.compile(BAD_NAME_CHARS.pattern[:-1] + "|]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Invisible format characters (zero-width space, soft hyphen, direction
# marks, word joiners, BOM): two names that look the same would be two tags. Zero-width
# joiners and non-joiners are left alone: emoji sequences and several scripts need them.
INVISIBLE_CHARS = re.compile("[\u00ad\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
# The top keyword collections travel under in XMP sidecars: not a tag of its own.
COLLECTIONS_ROOT = "MediaForge Collections"


def normalize_tag(tag: str) -> str:
    """`places / France/ Paris` -> `places/France/Paris`: segments trimmed, empty ones
    dropped, in Unicode's composed form (NFC: `café` typed or written decomposed is one
    tag); control characters, format characters and `|` (XMP's separator) refused."""
    parts = [p.strip() for p in unicodedata.normalize("NFC", tag or "").split("/")]
    parts = [p for p in parts if p]
    out = "/".join(parts)
    if not out:
        raise InvalidInputError(f"empty tag {quoted(tag)}")
    if _BAD.search(out) or INVISIBLE_CHARS.search(out) or len(out) > MAX_TAG:
        raise InvalidInputError(f"bad tag {quoted(tag)}: UTF-8 text without control characters or '|', at most {MAX_TAG} characters")
    if parts[0].casefold() == COLLECTIONS_ROOT.casefold():
        raise InvalidInputError(f"bad tag {quoted(tag)}: {COLLECTIONS_ROOT!r} holds collections in XMP sidecars; "
                                "use `mediaforge collection`")
    return out


def tag_name(tag: str) -> str:
    """A tag to look up (to remove, or rename from): trimmed and composed as
    `normalize_tag` does, but not held to its rules, so a tag stored before a rule was
    added can still be removed (`matches_sql` finds one stored decomposed)."""
    out = "/".join(p for p in (p.strip() for p in unicodedata.normalize("NFC", tag or "").split("/")) if p)
    if not out:
        raise InvalidInputError(f"empty tag {quoted(tag)}")
    if _SURROGATE.search(out):  # bytes that are not UTF-8: no stored tag holds them
        raise InvalidInputError(f"bad tag {quoted(tag)}: not UTF-8 text")
    return out


def matches_sql(param: str) -> str:
    """SQL: the `tags` row's tag is the tag named by `param` (a `tag_name`) or lies below
    it, whichever Unicode form it was stored in (tags stored before names were composed)."""
    return f"(nfc_normalize(tag) = {param} OR starts_with(nfc_normalize(tag), {param} || '/'))"


def who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def add_tags(cat: Catalog, media_ids: Sequence[str], tags: Iterable[str], source: str = "user",
             by: str | None = None) -> int:
    """Attach every tag to every media id (once: existing pairs are kept as they were).
    Returns the rows added."""
    names = [normalize_tag(t) for t in tags]
    return add_tag_pairs(cat, [(m, t) for m in media_ids for t in names], source, by)


def add_tag_pairs(cat: Catalog, pairs: Sequence[tuple[str, str]], source: str = "user", by: str | None = None) -> int:
    """Attach each (media id, normalized tag) pair, all in one transaction (once: existing
    pairs are kept as they were). Returns the rows added."""
    if not pairs:
        return 0
    now, by = utcnow(), by or who()
    rows = pa.Table.from_pylist(
        [{"media_id": m, "tag": t, "source": source, "added_by": by, "added_at": now} for m, t in pairs],
        schema=arrow_schema("tags"),
    )
    with cat.registered("mf_tags", rows), cat.transaction() as con:
        before = con.execute("SELECT count(*) FROM tags").fetchall()[0][0]
        con.execute(f"""
            INSERT INTO tags SELECT DISTINCT {', '.join(f'n.{c}' for c in columns('tags'))} FROM mf_tags n
            WHERE NOT EXISTS (SELECT 1 FROM tags t WHERE t.media_id = n.media_id::UUID AND t.tag = n.tag)""")
        after = con.execute("SELECT count(*) FROM tags").fetchall()[0][0]
    return int(after - before)


def remove_tags(cat: Catalog, media_ids: Sequence[str], tags: Iterable[str]) -> int:
    """Detach the tags (and their subtrees) from the media ids; returns rows removed."""
    names = [tag_name(t) for t in tags]
    ids = pa.table({"media_id": pa.array(list(media_ids), pa.string())})
    removed = 0
    with cat.registered("mf_ids", ids), cat.transaction() as con:
        for t in names:
            removed += con.execute(
                f"DELETE FROM tags WHERE media_id IN (SELECT media_id::UUID FROM mf_ids) AND {matches_sql('$t')}",
                {"t": t}).fetchall()[0][0]
    return int(removed)


def rename_tag(cat: Catalog, old: str, new: str) -> int:
    """Rename a tag and its subtree (`places/paris` -> `places/france/paris`) on every file;
    where a file already has a new name, the two become one row. Returns the tag rows
    renamed (merged ones included)."""
    old, new = tag_name(old), normalize_tag(new)
    if old == new:
        return 0
    subtree = matches_sql("$old")
    cols = ", ".join(columns("tags"))
    with cat.transaction() as con:
        # Every row of the subtree is taken out first and put back under its new name, so a
        # new name inside the old subtree (a -> a/b) or already present never costs a row.
        moved = con.sql(f"""
            SELECT media_id, $new || substr(nfc_normalize(tag), length($old) + 1) AS tag, source, added_by, added_at
            FROM tags WHERE {subtree}""", params={"old": old, "new": new}).to_arrow_table()
        if moved.num_rows == 0:
            return 0
        con.execute(f"DELETE FROM tags WHERE {subtree}", {"old": old}).fetchall()
        with cat.registered("mf_renamed", moved):
            con.execute(f"""
                INSERT INTO tags SELECT {cols} FROM (
                    SELECT *, row_number() OVER (PARTITION BY media_id, tag ORDER BY added_at) AS k FROM mf_renamed) m
                WHERE k = 1 AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.media_id = m.media_id AND t.tag = m.tag)
                """).fetchall()
    return moved.num_rows


def tag_counts(cat: Catalog) -> pa.Table:
    """Every tag with the present files carrying it (directly) and its whole subtree."""
    # A file counts in the subtree of every level of each of its tags ('a/b/c': 'a', 'a/b',
    # 'a/b/c'): one pass over the tags, not one per tag.
    return cat.con.sql("""
        WITH t AS (SELECT DISTINCT t.tag, t.media_id FROM tags t JOIN files f ON f.media_id = t.media_id
                   AND f.status = 'present'),
        up AS (SELECT media_id, unnest(list_transform(generate_series(1, len(p)),
                                                      lambda i: array_to_string(p[1:i], '/'))) AS tag
               FROM (SELECT media_id, string_split(tag, '/') AS p FROM t)),
        sub AS (SELECT tag, count(DISTINCT media_id) AS with_subtree FROM up GROUP BY tag)
        SELECT a.tag, count(*) AS files, any_value(sub.with_subtree) AS with_subtree
        FROM t a JOIN sub USING (tag) GROUP BY a.tag ORDER BY a.tag""").to_arrow_table()


def tags_of(cat: Catalog, media_ids: Sequence[str]) -> pa.Table:
    ids = pa.table({"media_id": pa.array(list(media_ids), pa.string())})
    with cat.registered("mf_ids", ids):
        return cat.con.sql("""
            SELECT f.path, t.tag, t.source, t.added_by, t.added_at, f.path_raw FROM tags t
            JOIN files f ON f.media_id = t.media_id AND f.status = 'present'
            WHERE t.media_id IN (SELECT media_id::UUID FROM mf_ids) ORDER BY f.path, t.tag""").to_arrow_table()
