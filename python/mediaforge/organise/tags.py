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
# Characters that draw nothing (Unicode's default-ignorable code points: zero-width
# space, soft hyphen, direction marks, word joiners, BOM, Hangul fillers, interlinear
# annotation marks...): a name holding one looks like the name without it, and would be a
# second tag. Some of them are how text is written, and pass only where they do that
# work (`_CONTEXT`).
_INVISIBLE = re.compile("[\u00ad\u061c\u115f\u1160\u17b4\u17b5\u200b\u200e\u200f\u202a-\u202e\u2060-\u206f\u3164"
                        "\ufeff\uffa0\ufff0-\ufffb\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e001f"
                        "\U000e0080-\U000e00ff\U000e01f0-\U000e0fff]")
# A subdivision flag: a black flag, a region code in tag letters (`gbsct`), a cancel tag.
_FLAG_TAGS = re.compile("\U0001f3f4[\U000e0061-\U000e007a]{2}[\U000e0061-\U000e007a\U000e0030-\U000e0039]{1,3}"
                        "\U000e007f")
_TAG_CHAR = re.compile("[\U000e0020-\U000e007f]")
# Spaces of other widths (no-break, ideographic, thin, em...): `New York` written with a
# no-break space looks like the one written with a plain one, so names hold the plain one.
_SPACES = "\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"
_SPACE = re.compile(f"[{_SPACES}]")
# The same in DuckDB's (RE2) syntax, to find names stored before they were folded.
_SPACE_SQL = "[" + "".join("-" if c == "-" else f"\\x{{{ord(c):x}}}" for c in _SPACES) + "]"
# The braille blank draws an empty cell: alone (no other braille pattern in the name, which
# would make it a braille text's space) it is a space that `strip` keeps.
_BRAILLE = re.compile("[\u2801-\u28ff]")


def fold_spaces(name: str) -> str:
    """Every space character as the plain space (U+0020)."""
    return _SPACE.sub(" ", name)


def folded_sql(expr: str) -> str:
    """SQL: the text `expr` composed (NFC) with its spaces folded, as `fold_spaces` does."""
    return f"regexp_replace(nfc_normalize({expr}), '{_SPACE_SQL}', ' ', 'g')"
# Scripts whose letters join, or whose clusters a joiner or non-joiner shapes.
_JOINING = ("ARABIC", "SYRIAC", "NKO", "MANDAIC", "MONGOLIAN", "DEVANAGARI", "BENGALI", "GURMUKHI", "GUJARATI",
            "ORIYA", "TAMIL", "TELUGU", "KANNADA", "MALAYALAM", "SINHALA", "MYANMAR", "KHMER", "TIBETAN", "LIMBU",
            "TAI THAM", "BALINESE", "JAVANESE", "HANIFI ROHINGYA", "ADLAM", "KAITHI", "SYLOTI NAGRI", "NEWA",
            "SHARADA", "GRANTHA", "TIRHUTA", "SIDDHAM", "MODI", "TAKRI", "CHAKMA")
_EMOJI_RANGES = ((0x1F000, 0x1FAFF), (0x2600, 0x27BF), (0x2300, 0x23FF), (0x2B00, 0x2BFF), (0x2190, 0x21FF),
                 (0x25A0, 0x25FF), (0x2900, 0x297F))
_EMOJI_SINGLES = frozenset(map(chr, (0xA9, 0xAE, 0x203C, 0x2049, 0x2122, 0x2139, 0x24C2, 0x3030, 0x303D, 0x3297,
                                     0x3299)))


def _name(c: str) -> str:
    return unicodedata.name(c, "") if c else ""


def _joins(c: str) -> bool:
    return _name(c).startswith(_JOINING)


def _emoji(c: str) -> bool:
    return bool(c) and (c in _EMOJI_SINGLES or any(lo <= ord(c) <= hi for lo, hi in _EMOJI_RANGES))


def _virama(c: str) -> bool:
    n = _name(c)
    return "VIRAMA" in n or n.endswith(("SIGN ASAT", "SIGN COENG"))


def _in_place(c: str, before: str, after: str, base: str) -> bool:
    """Whether the contextual character `c` does its work between `before` and `after`
    (`base`: the last character before it that is no emoji selector)."""
    o = ord(c)
    if c == "\u200d":  # emoji sequences, Indic and Arabic shaping (a letter's joining form
        # before a dot, as Persian abbreviations write it), a half form at a word's end
        return (_emoji(base) and _emoji(after)) or _joins(before) or _virama(before)
    if c == "\u200c":  # Persian and Indic: keeps two letters from joining
        return (_joins(before) and _joins(after)) or _virama(before)
    if o in (0xFE0E, 0xFE0F):  # text or emoji style of an emoji, or a keycap's digit
        return _emoji(before) or (before in "0123456789#*" and bool(before) and after == "\u20e3")
    if 0xFE00 <= o <= 0xFE0D:  # standardized variants: maths symbols, a slashed zero, some scripts
        return bool(before) and (unicodedata.category(before) in ("Sm", "So") or (before == "0" and o == 0xFE00)
                                 or _name(before).startswith(("MYANMAR", "CJK", "PHAGS-PA", "MANICHAEAN")))
    if 0xE0100 <= o <= 0xE01EF:  # ideographic variants (Japanese names)
        return _name(before).startswith("CJK")
    if c == "\u180e":  # Mongolian vowel separator: shapes the letter after it
        return _name(before).startswith("MONGOLIAN") and _name(after).startswith("MONGOLIAN")
    if 0x180B <= o <= 0x180F:  # Mongolian free variation selectors
        return _name(before).startswith("MONGOLIAN")
    if c == "\u034f":  # combining grapheme joiner: orders the marks of a letter (Hebrew points)
        return bool(before) and unicodedata.category(before).startswith("M")
    return True


_CONTEXT = re.compile("[\u034f\u180b-\u180f\u200c\u200d\ufe00-\ufe0f\U000e0100-\U000e01ef]")


def has_invisible(name: str) -> bool:
    """Whether `name` (a tag level, or a collection's name) holds a character that draws
    nothing where it stands, so that it would look like another name. Known to pass:
    a joiner between two emoji that form no sequence, a flag of a region code that is
    none; both draw as what they hold, without the joiner or tags. A name that starts
    with a combining mark (an accent with no letter under it) counts too: the mark lands
    on whatever is shown before the name, a quote or the tag level above."""
    if name and unicodedata.category(name[0]).startswith("M"):
        return True
    if _INVISIBLE.search(name) or _TAG_CHAR.search(_FLAG_TAGS.sub("", name)):
        return True
    if "\u2800" in name and not _BRAILLE.search(name):
        return True
    for m in _CONTEXT.finditer(name):
        i = m.start()
        before, after = name[i - 1:i], name[i + 1:i + 2]
        base = name[:i].rstrip("\ufe0e\ufe0f")[-1:]
        if not _in_place(m.group(), before, after, base):
            return True
    return False


# The top keyword collections travel under in XMP sidecars: not a tag of its own.
COLLECTIONS_ROOT = "MediaForge Collections"


def normalize_tag(tag: str) -> str:
    """`places / France/ Paris` -> `places/France/Paris`: segments trimmed, empty ones
    dropped, in Unicode's composed form (NFC: `café` typed or written decomposed is one
    tag), every space the plain one (`fold_spaces`); control characters, invisible ones
    (`has_invisible`) and `|` (XMP's separator) refused."""
    parts = [p.strip() for p in fold_spaces(unicodedata.normalize("NFC", tag or "")).split("/")]
    parts = [p for p in parts if p]
    out = "/".join(parts)
    # (Control characters and line separators looked for in the tag as given: at either
    # end `strip` would trim them as spaces.)
    if _BAD.search(tag or "") or any(has_invisible(p) for p in parts) or len(out) > MAX_TAG:
        raise InvalidInputError(f"bad tag {quoted(tag)}: UTF-8 text without control characters, characters that draw "
                                f"nothing, a level that starts with a combining mark, or '|', at most {MAX_TAG} characters")
    if not out:
        raise InvalidInputError(f"empty tag {quoted(tag)}")
    if parts[0].casefold() == COLLECTIONS_ROOT.casefold():
        raise InvalidInputError(f"bad tag {quoted(tag)}: {COLLECTIONS_ROOT!r} holds collections in XMP sidecars; "
                                "use `mediaforge collection`")
    return out


def tag_name(tag: str) -> str:
    """A tag to look up (to remove, or rename from): trimmed and composed as
    `normalize_tag` does, but not held to its rules, so a tag stored before a rule was
    added can still be removed (`matches_sql` finds one stored decomposed)."""
    out = "/".join(p for p in (p.strip() for p in fold_spaces(unicodedata.normalize("NFC", tag or "")).split("/")) if p)
    if not out:
        raise InvalidInputError(f"empty tag {quoted(tag)}")
    if _SURROGATE.search(out):  # bytes that are not UTF-8: no stored tag holds them
        raise InvalidInputError(f"bad tag {quoted(tag)}: not UTF-8 text")
    return out


def matches_sql(param: str) -> str:
    """SQL: the `tags` row's tag is the tag named by `param` (a `tag_name`) or lies below
    it, whichever Unicode form and spaces it was stored with (tags stored before names
    were composed and their spaces folded)."""
    return f"({folded_sql('tag')} = {param} OR starts_with({folded_sql('tag')}, {param} || '/'))"


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
    ids = list(media_ids)
    return _add_rows(cat, [m for _ in names for m in ids], [t for t in names for _ in ids], source, by)


def add_tag_pairs(cat: Catalog, pairs: Sequence[tuple[str, str]], source: str = "user", by: str | None = None) -> int:
    """Attach each (media id, normalized tag) pair, all in one transaction (once: existing
    pairs are kept as they were, but one a dedupe carried over that the user now adds
    becomes the user's: undoing the dedupe leaves it). Returns the rows added."""
    return _add_rows(cat, [m for m, _ in pairs], [t for _, t in pairs], source, by)


def _add_rows(cat: Catalog, media_ids: list[str], tags: list[str], source: str, by: str | None) -> int:
    """`add_tag_pairs` of (media_ids[i], tags[i]), its rows made a column at a time (as
    rows, 600,000 of them took a second)."""
    if not media_ids:
        return 0
    now, by, n = utcnow(), by or who(), len(media_ids)
    schema = arrow_schema("tags")
    rows = pa.Table.from_arrays([pa.array(media_ids, pa.string()), pa.array(tags, pa.string()),
                                 pa.array([source] * n, pa.string()), pa.array([by] * n, pa.string()),
                                 pa.array([now] * n, schema.field("added_at").type)], schema=schema)
    with cat.registered("mf_tags", rows), cat.transaction() as con:
        before = con.execute("SELECT count(*) FROM tags").fetchall()[0][0]
        con.execute(f"""
            INSERT INTO tags SELECT DISTINCT {', '.join(f'n.{c}' for c in columns('tags'))} FROM mf_tags n
            WHERE NOT EXISTS (SELECT 1 FROM tags t WHERE t.media_id = n.media_id::UUID AND t.tag = n.tag)""")
        after = con.execute("SELECT count(*) FROM tags").fetchall()[0][0]
        if source == "user":
            con.execute("""
                UPDATE tags SET source = 'user', added_by = n.added_by, added_at = n.added_at FROM mf_tags n
                WHERE tags.media_id = n.media_id::UUID AND tags.tag = n.tag AND tags.source = 'dedupe'""")
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


def rename_tag(cat: Catalog, old: str, new: str) -> tuple[int, list[str]]:
    """Rename a tag and its subtree (`places/paris` -> `places/france/paris`) on every file;
    where a file already has a new name, the two become one row. Returns the tag rows
    renamed (merged ones included), and the media ids of the files they are on (whose
    search documents change). A tag no file has (a typo) is refused, as `mv` refuses a
    name that is not there: renaming nothing must not look done."""
    old, new = tag_name(old), normalize_tag(new)
    # On a file the catalog has (present or missing): a tag left on an id that `scan
    # --prune` dropped (by a version that left those) is on no file.
    if not cat.con.execute(f"SELECT 1 FROM tags WHERE {matches_sql('$old')} AND media_id IN (SELECT media_id FROM files) "
                           "LIMIT 1", {"old": old}).fetchall():
        raise InvalidInputError(f"no tag {quoted(old)} on any file: nothing to rename (see `mediaforge tag list`)")
    if old == new:
        return 0, []
    longest = cat.con.execute(f"SELECT max(length({folded_sql('tag')})) FROM tags WHERE {matches_sql('$old')}",
                              {"old": old}).fetchall()
    if longest[0][0] is not None and len(new) - len(old) + longest[0][0] > MAX_TAG:
        raise InvalidInputError(f"renaming {quoted(old)} to {quoted(new)} would make a tag of more than {MAX_TAG} "
                                "characters (one below it is long): choose a shorter name")
    subtree = matches_sql("$old")
    cols = ", ".join(columns("tags"))
    with cat.transaction() as con:
        # Every row of the subtree is taken out first and put back under its new name, so a
        # new name inside the old subtree (a -> a/b) or already present never costs a row.
        moved = con.sql(f"""
            SELECT media_id, $new || substr({folded_sql('tag')}, length($old) + 1) AS tag, source, added_by, added_at
            FROM tags WHERE {subtree}""", params={"old": old, "new": new}).to_arrow_table()
        if moved.num_rows == 0:
            return 0, []
        con.execute(f"DELETE FROM tags WHERE {subtree}", {"old": old}).fetchall()
        with cat.registered("mf_renamed", moved):
            con.execute(f"""
                INSERT INTO tags SELECT {cols} FROM (
                    SELECT *, row_number() OVER (PARTITION BY media_id, tag ORDER BY added_at) AS k FROM mf_renamed) m
                WHERE k = 1 AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.media_id = m.media_id AND t.tag = m.tag)
                """).fetchall()
    import pyarrow.compute as pc

    return moved.num_rows, [str(m) for m in pc.unique(moved.column("media_id")).to_pylist()]


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
            JOIN files f ON f.media_id = t.media_id
            WHERE t.media_id IN (SELECT media_id::UUID FROM mf_ids) ORDER BY f.path, t.tag""").to_arrow_table()
