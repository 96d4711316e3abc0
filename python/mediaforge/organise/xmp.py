"""Tags and collections to and from XMP sidecars, the way digiKam, Lightroom and
darktable keep keywords: `dc:subject` (flat leaf names), `lr:hierarchicalSubject`
(`places|france|paris`) and `digiKam:TagsList` (`places/france/paris`). Collections
travel as hierarchical keywords under `MediaForge Collections|<name>`.

Import reads what the scan already parsed (the `sidecars` table through the
`sidecar_links` view), so it costs no file reads; it runs after every scan, for the
sidecar contents it has not imported before, or that a sidecar was put back at
(`xmp_imports`). Export writes `<file>.xmp` beside each file, or merges into the sidecar
the file already has, replaced atomically; every other element is kept. Keywords removed
here are taken out only of a sidecar whose content MediaForge imported or wrote, and only
those it could store.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import io
import os
import re
import stat
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from xml.etree import ElementTree as ET

import pyarrow as pa

from ..catalog import Catalog
from ..catalog.media_tables import links_sql
from ..errors import InvalidInputError, first_line, path_text
from ..fsops import Replacements
from ..meta.sidecar import MAX_SIDECAR_BYTES, _NS, declares_entities
from .tags import COLLECTIONS_ROOT, add_tag_pairs, normalize_tag
RDF = "{" + _NS["rdf"] + "}"

for _prefix, _uri in _NS.items():
    ET.register_namespace(_prefix, _uri)

EMPTY = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""/>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>
"""


@dataclass(frozen=True)
class Imported:
    """What an XMP import did: tags added, and the files whose sidecars it read."""

    tags: int
    media_ids: list[str]
    # Tags and collection places taken off because another program took their keywords
    # out of the sidecar.
    removed: int = 0
    # Manual collection places added (`MediaForge Collections|NAME` keywords).
    placed: int = 0


# `sidecar_links` of XMP sidecars alone: linked here rather than through the view, which
# links every sidecar of the library (Takeout JSON included) before any join could leave
# them out, a third of a second per million files after every scan, XMP or none.
_XMP_LINKS = links_sql(
    "SELECT media_id, path, blake3, dir, name, path_raw FROM files WHERE kind = 'sidecar' AND status = 'present' "
    "AND blake3 IN (SELECT blake3 FROM sidecars WHERE format = 'xmp')")


# Which of the links of `links` (sidecar_id, media_id and kind) a sidecar's keywords are
# its file's: a sidecar of one media file; one shared by stem (IMG_1.xmp beside IMG_1.CR2
# and IMG_1.JPG, Lightroom's for a RAW+JPEG pair) is the RAW's. Export writes the others a
# sidecar of their own (IMG_1.JPG.xmp). On import (`importing`) a file with a sidecar of
# its own takes its keywords from that alone, so a catalog made again from the sidecars
# never gives the JPEG of a pair the RAW's keywords beside its own; a file with none of
# its own takes the RAW's (the pair is one photo to Lightroom). A sidecar that several
# files share with no one RAW among them is every one's on import (another program's:
# nothing tells whose), none's on export.
def _own_links(links: str, importing: bool) -> str:
    also = """ OR s.raws <> 1 OR NOT EXISTS (
                   SELECT 1 FROM links o JOIN shares x USING (sidecar_id) WHERE o.media_id = l.media_id AND x.n = 1)"""
    return f"""
        WITH links AS ({links}),
        shares AS (SELECT sidecar_id, count(DISTINCT media_id) AS n,
                          count(DISTINCT media_id) FILTER (WHERE kind = 'raw') AS raws
                   FROM links GROUP BY sidecar_id)
        SELECT l.* FROM links l JOIN shares s USING (sidecar_id)
        WHERE s.n = 1 OR (s.raws = 1 AND l.kind = 'raw'){also if importing else ''}"""


# The last content recorded for each file and sidecar (`xmp_imports.sidecar_id`): several
# rows of a pair when one `_mark_imported` recorded them together. `{files}`: a condition
# on `media_id` that narrows it to some files (the window is each file's own).
_LATEST_OF_SIDECAR = """
    SELECT media_id, sidecar_id, sidecar_blake3, scan_id FROM xmp_imports WHERE sidecar_id IS NOT NULL AND {files}
    QUALIFY imported_at = max(imported_at) OVER (PARTITION BY media_id, sidecar_id)"""


def import_xmp(cat: Catalog, everything: bool = False) -> Imported:
    """Tags (source 'xmp') and manual collection memberships from the keywords of linked
    XMP sidecars: only a sidecar content not imported before for that file (`xmp_imports`),
    or one the sidecar held before and was put back at (a scan since the last content
    recorded for that sidecar found another), so a tag the user removed stays removed
    until the sidecar itself changes; `everything` imports every linked sidecar again.
    Nothing doubles."""
    repaired = _untwin(cat)
    linked = f"SELECT l.*, m.kind FROM ({_XMP_LINKS}) l JOIN files m USING (media_id)"
    cat.con.execute(f"CREATE OR REPLACE TEMP TABLE mf_xmp_links AS {_own_links(linked, importing=True)}")
    try:
        _adopt(cat)
        pending = "" if everything else """
            AND (NOT EXISTS (SELECT 1 FROM xmp_imports x
                             WHERE x.media_id = l.media_id AND x.sidecar_blake3 = l.sidecar_blake3)
                 -- Found by a scan after the sidecar's last recorded content: the catalog's
                 -- row of a sidecar an export has written since is not what it holds.
                 OR (EXISTS (SELECT 1 FROM latest x JOIN files sf ON sf.media_id = x.sidecar_id
                             WHERE x.media_id = l.media_id AND x.sidecar_id = l.sidecar_id
                               AND sf.last_scan_id > coalesce(x.scan_id, 0))
                     AND NOT EXISTS (SELECT 1 FROM latest x WHERE x.media_id = l.media_id
                                     AND x.sidecar_id = l.sidecar_id AND x.sidecar_blake3 = l.sidecar_blake3)))"""
        # `everything`: each sidecar as it is now, which is what an export wrote into it
        # where no scan has read it since (the scan's row still holds the content before:
        # a tag the export took out would come back).
        now = "l.sidecar_blake3" if not everything else """coalesce((
            SELECT max(x.sidecar_blake3) FROM latest x JOIN files sf ON sf.media_id = x.sidecar_id
            WHERE x.media_id = l.media_id AND x.sidecar_id = l.sidecar_id AND sf.last_scan_id <= x.scan_id
              AND EXISTS (SELECT 1 FROM sidecars w WHERE w.blake3 = x.sidecar_blake3)), l.sidecar_blake3)"""
        # In path order: a collection place a sidecar gives is taken in that order (XMP
        # keeps no order of a collection: one made again from sidecars is in path order).
        pairs = cat.con.sql(f"""
            WITH latest AS ({_LATEST_OF_SIDECAR.format(files="TRUE")}),
            now AS (SELECT l.*, {now} AS content FROM mf_xmp_links l)
            SELECT DISTINCT l.media_id::VARCHAR AS media_id, l.sidecar_id::VARCHAR AS sidecar_id,
                   l.content AS sidecar_blake3, s.keywords, s.hierarchical_keywords, l.path
            FROM now l JOIN sidecars s ON s.blake3 = l.content
            WHERE s.format = 'xmp' {pending} ORDER BY l.path, sidecar_id""").to_arrow_table()
        if not pairs.num_rows:
            return Imported(0, sorted(repaired), sum(repaired.values()))
        removed = (0 if everything else _take_off_removed(cat, pairs)) + sum(repaired.values())
    finally:
        cat.con.execute("DROP TABLE IF EXISTS mf_xmp_links")
    by_tag: dict[str, dict[str, None]] = {}
    by_coll: dict[str, dict[str, None]] = {}
    rows = zip(*(pairs.column(c).to_pylist() for c in ("media_id", "keywords", "hierarchical_keywords")))
    for media_id, flat, tree in rows:
        for t in _keywords(flat or [], tree or []):
            coll = _collection_of(t)
            if coll is not None:
                if coll:
                    by_coll.setdefault(coll, {})[media_id] = None
                continue
            try:
                by_tag.setdefault(normalize_tag(t), {})[media_id] = None
            except InvalidInputError:
                continue  # a keyword we cannot store as a tag (control characters): left alone
    # One transaction for them all: a sidecar may hold thousands of keywords.
    added = add_tag_pairs(cat, [(m, tag) for tag, ids in by_tag.items() for m in ids], source="xmp")
    placed = 0
    if by_coll:
        from . import collection

        for name, ids in by_coll.items():
            try:
                collection.create(cat, name)
            except InvalidInputError:
                pass  # already there (or a name we refuse)
            try:
                placed += collection.add(cat, name, list(ids))
            except InvalidInputError:
                continue
    _mark_imported(cat, pairs.select(["media_id", "sidecar_id", "sidecar_blake3"]))
    return Imported(added, sorted(set(pairs.column("media_id").to_pylist()) | set(repaired)), removed, placed)


def _adopt(cat: Catalog) -> None:
    """Rows for the linked sidecars (`mf_xmp_links`) with none of their own for a file.
    A sidecar that came back as a new file where a missing one was (deleted, then put back
    from a backup) takes that one's rows. Else, once a scan has read it since the file's
    last recorded content (rows recorded before schema 21, or by an export of a sidecar no
    scan had catalogued, or copied from another sidecar), a sidecar whose content is
    recorded for that file takes that content as the last it held: from then on it is put
    back at an older content only by an edit."""
    with cat.transaction() as con:
        con.execute("""
            UPDATE xmp_imports SET sidecar_id = o.sidecar_id
            FROM (SELECT l.media_id, l.sidecar_id, gone.media_id AS old_id
                  FROM mf_xmp_links l JOIN files n ON n.media_id = l.sidecar_id
                  JOIN (SELECT media_id, path_bytes FROM files WHERE status = 'missing'
                        QUALIFY row_number() OVER (PARTITION BY path_bytes ORDER BY last_seen DESC) = 1) gone
                    ON gone.path_bytes = n.path_bytes AND gone.media_id <> n.media_id
                  WHERE NOT EXISTS (SELECT 1 FROM xmp_imports y
                                    WHERE y.media_id = l.media_id AND y.sidecar_id = l.sidecar_id)) o
            WHERE xmp_imports.media_id = o.media_id AND xmp_imports.sidecar_id = o.old_id""")
        con.execute("""
            INSERT INTO xmp_imports (media_id, sidecar_blake3, imported_at, sidecar_id, scan_id)
            SELECT l.media_id, l.sidecar_blake3, max(x.imported_at), l.sidecar_id, max(x.scan_id)
            FROM mf_xmp_links l JOIN xmp_imports x ON x.media_id = l.media_id AND x.sidecar_blake3 = l.sidecar_blake3
            JOIN files sf ON sf.media_id = l.sidecar_id
            WHERE NOT EXISTS (SELECT 1 FROM xmp_imports y WHERE y.media_id = l.media_id AND y.sidecar_id = l.sidecar_id)
              AND sf.last_scan_id > (SELECT coalesce(max(y.scan_id), 0) FROM xmp_imports y
                                     WHERE y.media_id = l.media_id)
            GROUP BY l.media_id, l.sidecar_blake3, l.sidecar_id""")


# `meta` key set by the upgrade to schema 16 (see `schema.MIGRATIONS[16]`): imports made
# before may have given a file its twin's keywords.
UNTWIN = "xmp_twins_repair"


def _untwin(cat: Catalog) -> dict[str, int]:
    """Once, after the upgrade to schema 16: before it, a sidecar matching a file exactly
    (`Pic.jpg.xmp`) also described the file's twins, files whose names differ from it only
    in case or Unicode form (`pic.jpg`), and its keywords were imported onto them. Each
    such import no longer linked, whose sidecar now describes a twin of the file, is taken
    back: the tags (source 'xmp') and collection places its keywords gave the file, but
    those its own sidecars give it too. Returns the files changed, with how many each lost."""
    if not cat.con.execute("SELECT 1 FROM meta WHERE key = ?", [UNTWIN]).fetchall():
        return {}
    from . import collection
    from .tags import folded_sql

    crossed = cat.con.sql(f"""
        WITH links AS ({_XMP_LINKS})
        SELECT x.media_id::VARCHAR, x.sidecar_blake3, s.keywords, s.hierarchical_keywords
        FROM xmp_imports x JOIN sidecars s ON s.blake3 = x.sidecar_blake3
        JOIN files f ON f.media_id = x.media_id AND f.status = 'present'
        WHERE NOT EXISTS (SELECT 1 FROM links l WHERE l.media_id = x.media_id AND l.sidecar_blake3 = x.sidecar_blake3)
          AND EXISTS (SELECT 1 FROM links l JOIN files t ON t.media_id = l.media_id
                      WHERE l.sidecar_blake3 = x.sidecar_blake3 AND t.dir = f.dir AND t.media_id <> f.media_id
                        AND lower(nfc_normalize(t.name)) = lower(nfc_normalize(f.name)))""").fetchall()
    # What each such file's own sidecars give it, all in one pass over the links.
    ids = pa.table({"media_id": pa.array(sorted({r[0] for r in crossed}), pa.string())})
    kept: dict[str, set[str]] = {}
    with cat.registered("mf_crossed", ids):
        for media_id, f, t in cat.con.sql(f"""
                WITH links AS ({_XMP_LINKS})
                SELECT l.media_id::VARCHAR, s.keywords, s.hierarchical_keywords FROM links l
                JOIN sidecars s ON s.blake3 = l.sidecar_blake3
                WHERE l.media_id IN (SELECT media_id::UUID FROM mf_crossed)""").fetchall():
            kept.setdefault(media_id, set()).update(_storable_keywords((f or [], t or [])))
    changed: dict[str, int] = {}
    places: list[tuple[str, str]] = []
    with cat.transaction() as con:
        for media_id, digest, flat, tree in crossed:
            for k in _storable_keywords((flat or [], tree or [])):
                place = _collection_of(k)
                if k in kept.get(media_id, ()) or place == "":
                    continue
                if place is not None:
                    places.append((media_id, place))
                    continue
                n = con.execute(f"DELETE FROM tags WHERE media_id = ?::UUID AND source = 'xmp' AND "
                                f"{folded_sql('tag')} = ?", [media_id, normalize_tag(k)]).fetchall()[0][0]
                if n:
                    changed[media_id] = changed.get(media_id, 0) + n
            con.execute("DELETE FROM xmp_imports WHERE media_id = ?::UUID AND sidecar_blake3 = ?", [media_id, digest])
    for media_id, place in places:
        with contextlib.suppress(InvalidInputError):  # gone since, or a smart one of that name
            if collection.remove(cat, place, [media_id]):
                changed[media_id] = changed.get(media_id, 0) + 1
    with cat.transaction() as con:
        con.execute("DELETE FROM meta WHERE key = ?", [UNTWIN])
    return changed


def _take_off_removed(cat: Catalog, pairs: pa.Table) -> int:
    """Keywords another program took out of a sidecar come off here too: for each file
    whose XMP sidecar has a new content, the tags and collection places the content last
    recorded for that sidecar held (for a file with one sidecar and none recorded for it,
    the last recorded for the file), and the new one does not, unless another sidecar of
    the file holds them now. Returns the tags and places taken off. Reads `mf_xmp_links`."""
    from . import collection
    from .tags import folded_sql

    ids = pa.table({"media_id": pa.array(sorted(set(pairs.column("media_id").to_pylist())), pa.string())})
    with cat.registered("mf_ids", ids):
        held: dict[str, dict[str, set[str]]] = {}  # media id -> sidecar id -> its keywords now
        for media_id, sidecar_id, flat, tree in cat.con.sql("""
                SELECT l.media_id::VARCHAR, l.sidecar_id::VARCHAR, s.keywords, s.hierarchical_keywords
                FROM mf_xmp_links l JOIN sidecars s ON s.blake3 = l.sidecar_blake3
                WHERE s.format = 'xmp' AND l.media_id IN (SELECT media_id::UUID FROM mf_ids)""").fetchall():
            held.setdefault(media_id, {}).setdefault(sidecar_id, set()).update(
                _storable_keywords((flat or [], tree or [])))
    gone_tags: list[tuple[str, str]] = []
    gone_places: list[tuple[str, str]] = []
    rows = zip(*(pairs.column(c).to_pylist() for c in ("media_id", "sidecar_id", "keywords", "hierarchical_keywords")))
    for media_id, sidecar_id, flat, tree in rows:
        others = {k for sid, kws in held.get(media_id, {}).items() if sid != sidecar_id for k in kws}
        before = _last_known(cat, media_id, sidecar_id, whole_file=len(held.get(media_id, {})) <= 1)
        if before is None:
            continue
        now = set(_storable_keywords((flat or [], tree or []))) | others
        for k in _storable_keywords(before):
            if k in now:
                continue
            coll = _collection_of(k)
            if coll is None:
                gone_tags.append((media_id, normalize_tag(k)))
            elif coll:
                gone_places.append((media_id, coll))
    n = 0
    if gone_tags:
        with cat.transaction() as con:
            for media_id, tag in gone_tags:
                n += con.execute(f"DELETE FROM tags WHERE media_id = ?::UUID AND {folded_sql('tag')} = ?",
                                 [media_id, tag]).fetchall()[0][0]
    for media_id, name in gone_places:
        with contextlib.suppress(InvalidInputError):  # gone since, or a smart one of that name
            n += collection.remove(cat, name, [media_id])
    return int(n)


def _last_known(cat: Catalog, media_id: str, sidecar_id: str | None,
                whole_file: bool = True) -> tuple[list[str], list[str]] | None:
    """(flat, hierarchical) keywords of the content last recorded for a file's sidecar
    (`xmp_imports`), else, with `whole_file` (a file with that one sidecar), the content
    last recorded for the file naming no sidecar (from before schema 21, or an export's
    new sidecar); None when there is none, or its parsed row is gone (what it held is not
    known). Another sidecar's rows are never taken: it may be one deleted since."""
    rows = cat.con.execute("""
        SELECT s.blake3, s.keywords, s.hierarchical_keywords FROM xmp_imports x
        LEFT JOIN sidecars s ON s.blake3 = x.sidecar_blake3
        WHERE x.media_id = $m AND (x.sidecar_id = $sid OR $whole AND x.sidecar_id IS NULL)
        ORDER BY x.sidecar_id IS NULL, x.imported_at DESC LIMIT 1""",
                           {"m": media_id, "sid": sidecar_id, "whole": whole_file}).fetchall()
    if not rows or rows[0][0] is None:
        return None
    return rows[0][1] or [], rows[0][2] or []


@dataclass
class ExportResult:
    # Sidecars written, and those that failed with why: exact path bytes.
    written: list[bytes] = field(default_factory=list)
    unchanged: int = 0
    failed: list[tuple[bytes, str]] = field(default_factory=list)
    # Tagged files that are sidecars themselves: the keywords of a sidecar's photo go in
    # that sidecar, a sidecar gets no sidecar of its own.
    sidecars_skipped: int = 0
    # A dry run's sidecars (in `written`, none written): the keywords each would gain and lose.
    changes: dict[bytes, tuple[list[str], list[str]]] = field(default_factory=dict)


def _keywords_for(cat: Catalog, media_ids: Sequence[str]) -> dict[str, tuple[bytes, list[tuple[bytes, str]], list[str],
                                                                            str]]:
    """media_id -> (path_bytes, its own sidecars' (path_bytes, media_id) (none, or several:
    Lightroom's `IMG_1.xmp` beside darktable's `IMG_1.jpg.xmp`), hierarchical keywords, kind).
    A sidecar other media files share by stem (IMG_1.xmp beside IMG_1.jpg and IMG_1.png)
    is used only by the one RAW among them (Lightroom keeps a RAW's keywords there); the
    others get a sidecar of their own (`IMG_1.jpg.xmp`), never one that would give their
    keywords to a sibling."""
    ids = pa.table({"media_id": pa.array(list(media_ids), pa.string())})
    with cat.registered("mf_ids", ids):
        rows = cat.con.sql(f"""
            WITH want AS (SELECT media_id::UUID AS media_id FROM mf_ids),
            kw AS (
                SELECT t.media_id, t.tag AS kw FROM tags t JOIN want USING (media_id)
                UNION
                SELECT i.media_id, '{COLLECTIONS_ROOT}/' || c.name FROM collection_items i
                JOIN collections c USING (collection_id) JOIN want USING (media_id)
            ),
            own AS ({_own_links("SELECT l.sidecar_id, l.media_id, m.kind FROM sidecar_links l "
                                "JOIN files m USING (media_id)", importing=False)})
            SELECT f.media_id::VARCHAR, any_value(f.path_bytes),
                   (SELECT list({{'p': s.path_bytes, 'id': s.media_id::VARCHAR}} ORDER BY s.path_bytes)
                    FROM own o JOIN files s ON s.media_id = o.sidecar_id
                    WHERE o.media_id = f.media_id AND lower(s.ext) = 'xmp'),
                   list(DISTINCT kw.kw ORDER BY kw.kw), any_value(f.kind)
            FROM files f JOIN want USING (media_id) LEFT JOIN kw ON kw.media_id = f.media_id
            WHERE f.status = 'present' GROUP BY f.media_id""").fetchall()
    return {m: (bytes(p), [(bytes(x["p"]), x["id"]) for x in s or []], [k for k in kws if k is not None], kind)
            for m, p, s, kws, kind in rows}


# XML 1.0 allows these characters only: a keyword with any other (U+FFFF, a C0 control)
# would make the whole sidecar unreadable.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_DECLARED = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
_CONTAINERS = ("Bag", "Seq", "Alt")
# Where keywords go, and each one's form there.
_TARGETS = (("dc:subject", "Bag", lambda k: k.rsplit("/", 1)[-1]),
            ("lr:hierarchicalSubject", "Bag", lambda k: k.replace("/", "|")),
            ("digiKam:TagsList", "Seq", lambda k: k))


def _decode(data: bytes) -> tuple[str, str]:
    """A sidecar's text, and the encoding to write it back in: the one its XML
    declaration names (or its BOM), UTF-8 when it names none."""
    for bom, name in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):  # its byte order kept: the BOM stays the text's first character
            return data.decode(name), name
    m = _DECLARED.match(data)
    encoding = m.group(1).decode("ascii") if m else "utf-8"
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise InvalidInputError(f"unknown encoding {encoding!r} in the XML declaration: left alone") from None
    if m and info.name.startswith(("utf-16", "utf-32")):
        # The declaration was read a byte a character: the file is not in that encoding.
        raise InvalidInputError(f"its XML declaration says {encoding!r}, but the file is written a byte a character: "
                                "the declaration is wrong; left alone")
    try:
        return data.decode(encoding), encoding
    except UnicodeDecodeError as e:
        said = "as its XML declaration says" if m else "as XML that names no encoding must be"
        raise InvalidInputError(f"not {encoding} text, {said} (byte {e.start:,} is not): left alone") from None


def _parse(body: str) -> ET.Element:
    """The packet's elements, its comments and processing instructions kept, with the
    packet's own namespace prefixes registered so they are written back as they were."""
    for _event, (prefix, uri) in ET.iterparse(io.StringIO(body), events=("start-ns",)):
        if prefix and not re.fullmatch(r"ns\d+", prefix):
            with contextlib.suppress(ValueError):
                ET.register_namespace(prefix, uri)
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True, insert_pis=True))
    parser.feed(body)
    return parser.close()


def _indent_unit(root: ET.Element, depth_of: dict[ET.Element, int], el: ET.Element) -> str:
    """The packet's indentation step, read from the whitespace before `el`."""
    parent = next((p for p in root.iter() if any(c is el for c in p)), None)
    if parent is None or depth_of[el] == 0:
        return " "
    k = next(i for i, c in enumerate(parent) if c is el)
    before = (parent.text if k == 0 else parent[k - 1].tail) or ""
    lead = before.rsplit("\n", 1)[-1] if "\n" in before else ""
    step = len(lead) // depth_of[el]
    return lead[:step] if step and lead.strip() == "" and len(lead) % depth_of[el] == 0 else " "


def _append(parent: ET.Element, child: ET.Element, level: int, unit: str | None) -> None:
    """Add `child` as `parent`'s last element, indented like its siblings; `level` is
    the parent's depth. `unit` None: a packet written on one line, kept so."""
    if unit is None:
        parent.append(child)
        return
    inner, outer = "\n" + unit * (level + 1), "\n" + unit * level
    if len(parent):
        last = parent[-1]
        child.tail, last.tail = (last.tail if last.tail and not last.tail.strip() else outer), inner
    else:
        if not (parent.text or "").strip():
            parent.text = inner
        child.tail = outer
    parent.append(child)


def merge_keywords(data: bytes | None, keywords: Sequence[str], drop: Sequence[str] = ()) -> bytes | None:
    """XMP bytes with `keywords` (hierarchical, `/`-separated) in dc:subject,
    lr:hierarchicalSubject and digiKam:TagsList, and the keywords `drop` taken out of
    them; None when nothing would change. Everything else is kept as it was: other
    elements, comments, processing instructions, namespace prefixes, the encoding."""
    if data is not None and (len(data) > MAX_SIDECAR_BYTES or declares_entities(data)):
        raise InvalidInputError("sidecar too large or with entity declarations: left alone")
    text, encoding = _decode(data) if data else (EMPTY, "utf-8")
    for open_tag, close_tag in (("<x:xmpmeta", "</x:xmpmeta>"), ("<rdf:RDF", "</rdf:RDF>")):
        a, b = text.find(open_tag), text.rfind(close_tag)
        if a >= 0 and b > a:
            head, body, tail = text[:a], text[a:b + len(close_tag)], text[b + len(close_tag):]
            break
    else:
        if "<x:xmpmeta" in text or "<rdf:RDF" in text:  # begun, never closed: cut short, say where
            try:
                ET.fromstring(text)  # (not `_parse`: no prefix of it registered)
            except ET.ParseError as e:
                raise InvalidInputError(f"not well-formed XMP: {e}") from None
        raise InvalidInputError("not an XMP packet (no x:xmpmeta or rdf:RDF)")
    saved = dict(ET._namespace_map)  # type: ignore[attr-defined]  # this packet's prefixes, for this packet only
    try:
        return _merge(root_text=(head, body, tail), encoding=encoding, keywords=keywords, drop=drop)
    finally:
        ET._namespace_map.clear()  # type: ignore[attr-defined]
        ET._namespace_map.update(saved)  # type: ignore[attr-defined]


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _parents_to_drop(descs: list[ET.Element], keywords: Sequence[str], drop: Sequence[str]) -> set[str]:
    """The flat keywords (dc:subject) that go with the hierarchical keywords `drop` takes
    out: Lightroom writes each level of `Places|France|Paris` as a flat keyword too
    (`Places`, `France`), which an import reads as levels, not tags. Left behind, they
    would come back as tags of their own. A level still in a hierarchical keyword the
    sidecar keeps (another program's too: `Music|AC/DC`) or that this export writes stays."""
    gone = {_nfc(k) for k in drop} - {_nfc(k) for k in keywords}
    if not gone:
        return set()
    kept = [k.split("/") for k in keywords]
    for prop, sep in (("lr:hierarchicalSubject", "|"), ("digiKam:TagsList", "/")):
        prefix, local = prop.split(":")
        for d in descs:
            for li in d.iterfind(f"{{{_NS[prefix]}}}{local}/*/{RDF}li"):
                text = _nfc((li.text or "").strip())
                if text and text.replace("|", "/") not in gone:
                    kept.append(text.split(sep))
    needed = {_nfc(level) for levels in kept for level in levels}
    return {_nfc(level) for k in gone for level in k.split("/")[:-1]} - needed


def _merge(root_text: tuple[str, str, str], encoding: str, keywords: Sequence[str],
           drop: Sequence[str]) -> bytes | None:
    head, body, tail = root_text
    try:
        root = _parse(body)
    except ET.ParseError as e:  # where in the file, as a scan says: the packet starts after `head`
        line, column = e.position
        before = head.count("\n")
        if line == 1:
            column += len(head) - (head.rfind("\n") + 1)
        err = ET.ParseError(re.sub(r"line \d+, column \d+", f"line {line + before}, column {column}", str(e)))
        err.code, err.position = e.code, (line + before, column)
        raise err from None
    rdf = root if root.tag == f"{RDF}RDF" else root.find(f"{RDF}RDF")
    if rdf is None:
        raise InvalidInputError("XMP without rdf:RDF")
    depth_of = {root: 0}
    for el in root.iter():
        for c in el:
            depth_of[c] = depth_of[el] + 1
    descs = rdf.findall(f"{RDF}Description")
    for prop, _kind, _form in _TARGETS:
        prefix, local = prop.split(":")
        if any(f"{{{_NS[prefix]}}}{local}" in d.attrib for d in descs):
            raise InvalidInputError(f"{prop} written as an attribute, which XMP does not allow for a list: left alone")
    if not descs:
        desc = ET.Element(f"{RDF}Description", {f"{RDF}about": ""})
        _append(rdf, desc, depth_of[rdf], None if "\n" not in body else " ")
        depth_of[desc] = depth_of[rdf] + 1
        descs = [desc]
    unit = None if "\n" not in body else _indent_unit(root, depth_of, descs[0])
    keywords = [k for k in keywords if not _NOT_XML.search(k)]
    parents = _parents_to_drop(descs, keywords, drop)
    changed = False
    for prop, kind, form in _TARGETS:
        prefix, local = prop.split(":")
        qname = f"{{{_NS[prefix]}}}{local}"
        # The property wherever a Description holds it (most often once; a scan reads each
        # one's keywords), in whatever container it has.
        els = [e for d in descs for e in d.findall(qname)]
        if not els:
            el = ET.Element(qname)
            _append(descs[0], el, depth_of[descs[0]], unit)
            depth_of[el] = depth_of[descs[0]] + 1
            els = [el]
        bags = []
        for el in els:
            held = next((c for c in el if c.tag in {f"{RDF}{n}" for n in _CONTAINERS}), None)
            if held is None and (el.text or "").strip():
                raise InvalidInputError(f"{prop} holds text, not a list (rdf:Bag): left alone")
            bags.append(held)
        if bags[0] is None:
            bags[0] = ET.Element(f"{RDF}{kind}")
            _append(els[0], bags[0], depth_of[els[0]], unit)
            depth_of[bags[0]] = depth_of[els[0]] + 1
        bags = [b for b in bags if b is not None]
        bag = bags[0]  # where keywords are added
        # Compared as a scan reads them: trimmed (`<rdf:li> Padded </rdf:li>` is "Padded"),
        # and in one Unicode form, as tags are stored (a keyword a Mac wrote decomposed is
        # the tag, and stays as it was written). A keyword dropped goes from every list.
        want = {_nfc(form(k)) for k in keywords}
        gone = ({_nfc(form(k)) for k in drop} | (parents if prop == "dc:subject" else set())) - want
        for held in bags:
            for li in [li for li in held.findall(f"{RDF}li") if _nfc((li.text or "").strip()) in gone]:
                held.remove(li)
                changed = True
        have = {_nfc((li.text or "").strip()) for held in bags for li in held.findall(f"{RDF}li")}
        for k in keywords:
            v = form(k)
            if _nfc(v) not in have:
                li = ET.Element(f"{RDF}li")
                li.text = v
                _append(bag, li, depth_of[bag], unit)
                have.add(_nfc(v))
                changed = True
        if unit is not None and len(bag) and bag[-1].tail is not None and not bag[-1].tail.strip():
            bag[-1].tail = "\n" + unit * depth_of[bag]  # the closing tag under its opening one
    if not changed:
        return None
    out = head + ET.tostring(root, encoding="unicode") + tail
    if "\r\n" in head + body + tail and "\n" not in (head + body + tail).replace("\r\n", ""):
        out = out.replace("\r\n", "\n").replace("\n", "\r\n")  # a file with CRLF line ends keeps them
    return out.encode(encoding, "xmlcharrefreplace")


def _read_sidecar(target: bytes) -> bytes | None:
    """The bytes of the sidecar at `target`, None when there is none. One that is a
    symbolic link, not a regular file (a FIFO would block) or read-only is refused with
    the reason: export never replaces a link with a file, nor rewrites what the user
    made read-only."""
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise InvalidInputError("a symbolic link: left alone (export into the file it points to by hand)")
    if not stat.S_ISREG(st.st_mode):
        raise InvalidInputError("not a regular file: left alone")
    if not st.st_mode & 0o222:
        raise InvalidInputError("read-only: left alone")
    fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(fd, "rb") as f:
        return f.read(MAX_SIDECAR_BYTES + 1)


def export_xmp(cat: Catalog, media_ids: Sequence[str], dry_run: bool = False,
               on_progress: Callable[[int, int, int], object] | None = None) -> ExportResult:
    """Write each file's tags and collections into its XMP sidecar (see the module doc).
    `on_progress(done, total, failed)` is told of each file as it is done.
    Keywords taken off in MediaForge are taken out of the sidecar too: those of the
    sidecar's content when it is the one MediaForge last wrote or imported from it, else
    (edited elsewhere since, or put back at an older content) those of that last one. What it writes counts as imported,
    for every file the sidecar's name links it to, so no sibling takes its keywords."""
    from .. import _core

    out = ExportResult()
    wanted = _keywords_for(cat, media_ids)
    # What the catalog knows of each file and of its imports, read once for them all (a
    # query a file took 4 ms: 2,000 sidecars already in step took 9 s to export again).
    catalogued = _catalogued_as(cat, list(wanted))
    imports = _Imports(cat, list(wanted))
    written: list[tuple[bytes, str, str | None]] = []
    # Sidecars found as this export would write them, not recorded: (media_id, sidecar_id,
    # content), for that file alone.
    found: list[tuple[str, str | None, str]] = []
    contents: dict[str, bytes] = {}
    # The sidecars written but not yet synced and renamed into place, all together (one
    # sync for many: see `Replacements`): what each one's landing records.
    batch = Replacements()
    putting: dict[bytes, tuple[str | None, bytes, bool]] = {}

    def ready(target: bytes) -> None:
        """Before a sidecar is read: its new content, if one is waiting, written first."""
        if batch.holds(target):
            flush()

    def put(target: bytes, sidecar_id: str | None, merged: bytes, known: bool) -> None:
        try:
            batch.put(target, lambda f: f.write(merged))
        except OSError as e:
            if e.errno not in (errno.EMFILE, errno.ENFILE) or not len(batch):
                raise
            flush()  # out of file descriptors (a low `ulimit -n`): those waiting written first
            batch.put(target, lambda f: f.write(merged))
        putting[target] = (sidecar_id, merged, known)

    def landed(target: bytes, error: OSError | None) -> None:
        sidecar_id, merged, known = putting.pop(target)
        if error is not None:
            out.failed.append((target, error.strerror or first_line(error)))
            return
        out.written.append(target)
        if known:  # a sidecar edited elsewhere since stays to be imported by the next scan
            digest = _core.hash_bytes(merged)
            written.append((target, digest, sidecar_id))
            contents[digest] = merged

    def flush() -> None:
        if len(batch):
            batch.commit(landed)

    def record() -> None:
        try:
            flush()
        finally:  # what a Ctrl-C let land before it stopped the batch is recorded too
            record_written()

    def record_written() -> None:
        # What MediaForge wrote counts as imported: the next scan reads the new sidecar
        # but brings back nothing (a removed tag stays removed), to no file it links.
        if (written or found) and not dry_run:
            rows = _linked_media(cat, written) if written else None
            if found:
                own = pa.table({"media_id": pa.array([m for m, _, _ in found], pa.string()),
                                "sidecar_id": pa.array([i for _, i, _ in found], pa.string()),
                                "sidecar_blake3": pa.array([h for _, _, h in found], pa.string())})
                rows = own if rows is None else pa.concat_tables([rows, own.cast(rows.schema)])
            _mark_imported(cat, rows)
            imports.load(rows.column("media_id").to_pylist())
            _remember_contents(cat, contents)
        written.clear()
        found.clear()
        contents.clear()

    # Recorded as it goes, and on the way out of a stop (Ctrl-C, a sidecar's error): a
    # sidecar written but not recorded would be imported as another program's edit, and
    # bring back a tag removed before the next scan. (Where the catalog's own disk is
    # full, those since the last record are recorded by the next export, which finds them
    # as it would write them.)
    try:
        for done, (m, (path, sidecars, keywords, kind)) in enumerate(wanted.items()):
            if on_progress is not None:
                on_progress(done, len(wanted), len(out.failed))
            if kind == "sidecar":  # counted when tagged (one a --where picked with no tag, silently)
                out.sidecars_skipped += bool(keywords)
                continue
            why = _not_as_catalogued(catalogued.get(m), path)
            if why is not None:
                out.failed.append((path, why))
                continue
            if not sidecars:
                new, why = _new_sidecar(path)
                if new is None:
                    out.failed.append((path, why))
                    continue
                sidecars = [(new, None)]
            for target, sidecar_id in sidecars:  # every sidecar of its own: none is left stale
                _export_one(cat, imports, out, (ready, put, found), m, (target, sidecar_id), keywords,
                            contents, dry_run)
            if len(batch) >= batch.full:
                flush()
            if len(written) + len(found) >= _RECORD_EVERY:
                record()
        record()
        if on_progress is not None:
            on_progress(len(wanted), len(wanted), len(out.failed))
    except BaseException:
        batch.discard()  # not written: the stop came first
        putting.clear()
        with contextlib.suppress(Exception):
            record()
        raise
    return out


# Sidecars an export writes between two records of what it wrote.
_RECORD_EVERY = 500


_NAME_MAX = 255  # bytes in one name, on Linux's file systems


def _new_sidecar(path: bytes) -> tuple[bytes | None, str]:
    """The sidecar to make for a file that has none: `NAME.EXT.xmp`; for a name too long
    for that (over 251 bytes), `NAME.xmp`, which a scan links to the file as well, unless
    another file in its folder goes by `NAME.` too (a RAW and JPEG pair), which it would
    describe as well. (None, why) when neither will do."""
    folder, name = os.path.split(path)
    if len(name) + 4 <= _NAME_MAX:
        return path + b".xmp", ""
    stem = name.rsplit(b".", 1)[0] if b"." in name.lstrip(b".") else name
    if len(stem) + 4 > _NAME_MAX:
        return None, "its sidecar's name would be over 255 bytes: left alone"
    try:
        others = [n for n in os.listdir(folder or b".") if n.startswith(stem + b".") and n not in (name, stem + b".xmp")]
    except OSError as e:
        return None, f"cannot list its folder: {e.strerror}"
    if others:
        return None, (f"its name is too long for a sidecar `NAME.EXT.xmp`, and `NAME.xmp` would describe "
                      f"{path_text(others[0])} too: left alone")
    return os.path.join(folder, stem + b".xmp"), ""


def _catalogued_as(cat: Catalog, media_ids: list[str]) -> dict[str, tuple[int, int, int, int]]:
    """The (dev, inode, size, mtime_ns) the catalog holds for each present file of
    `media_ids` (its latest scan's row)."""
    with cat.registered("mf_export_ids", pa.table({"media_id": pa.array(media_ids, pa.string())})):
        rows = cat.con.execute("""
            SELECT media_id::VARCHAR, arg_max(struct_pack(dev, inode, size, mtime_ns), last_scan_id)
            FROM files WHERE status = 'present' AND media_id IN (SELECT media_id::UUID FROM mf_export_ids)
            GROUP BY media_id""").fetchall()
    return {m: (r["dev"], r["inode"], r["size"], r["mtime_ns"]) for m, r in rows}


def _not_as_catalogued(row: tuple[int, int, int, int] | None, path: bytes) -> str | None:
    """Why the file at `path` is not the one the catalog holds for it (`row`: its dev,
    inode, size and mtime_ns; moved, deleted, or another file at its name since the scan:
    its keywords must not land in a sidecar there), else None."""
    from ..fsops import time_ns

    dev, ino, size, mtime = row or (None, None, None, None)
    try:
        st = os.stat(path)
    except OSError:
        return "gone since the scan (moved or deleted): rescan, then export"
    if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (dev, ino):
        return "another file at this name since the scan: rescan, then export"
    if (st.st_size, time_ns(st.st_mtime_ns)) != (size, mtime):
        # The same inode number, other bytes: the file written over, or deleted and a new
        # one given its freed inode number (ext4 hands it to the next file made).
        return "another file at this name, or this one written over, since the scan: rescan, then export"
    return None


def _remember_contents(cat: Catalog, contents: dict[str, bytes]) -> None:
    """`sidecars` rows for the contents export wrote and counts as imported, as a scan
    would parse them: until a scan reads them, they are the last content MediaForge knew
    for their files, and a keyword taken off later must come out of them even if another
    program edits the sidecar first (the scan replaces these rows with its own)."""
    from ..catalog.media_tables import arrow_schema
    from ..meta.sidecar import SidecarError, parse_xmp

    rows = []
    for h, data in contents.items():
        try:
            rows.append(dict(parse_xmp(data), blake3=h))
        except SidecarError:
            continue
    if not rows:
        return
    table = pa.Table.from_pylist(rows, schema=arrow_schema("sidecars"))
    with cat.registered("mf_written_sidecars", table), cat.transaction() as con:
        con.execute("INSERT INTO sidecars SELECT * FROM mf_written_sidecars w "
                    "WHERE NOT EXISTS (SELECT 1 FROM sidecars s WHERE s.blake3 = w.blake3)")


def _export_one(cat: Catalog, imports: _Imports, out: ExportResult,
                done: tuple[Callable[[bytes], None], Callable[[bytes, str | None, bytes, bool], None],
                            list[tuple[str, str | None, str]]],
                m: str, sidecar: tuple[bytes, str | None], keywords: list[str], contents: dict[str, bytes],
                dry_run: bool = False) -> None:
    """Bring one sidecar of the file `m` (its path, and its `media_id` when catalogued) in
    step with its `keywords`. `done`: what readies a sidecar to be read (its new content
    written, if one waits), where it puts a sidecar's new content (to be written with
    others, and recorded for every file linked to it), and the list of those found as it
    would write them (for `m`)."""
    from .. import _core

    target, sidecar_id = sidecar
    ready, put, found = done

    try:
        if not dry_run:
            ready(target)
        data = _read_sidecar(target)
        known = data is None or imports.imported(m, sidecar_id, data)
        if data is None:
            drop: list[str] = []
        elif known:
            drop = _storable_keywords(_parsed_keywords(data))
        else:  # edited elsewhere since: what this file last had from it, not the new keywords
            drop = _storable_keywords(_last_known(cat, m, sidecar_id) or ([], []))
        if not keywords and not drop:
            out.unchanged += 1
            return
        merged = merge_keywords(data, keywords, drop)
        if merged is None:
            if data is not None and not known and not dry_run and _holds_just(data, keywords):
                # As this export would write it, but not recorded: written by one the
                # catalog's full disk stopped before it could record it. Recorded for this
                # file alone: for a sibling its name links it to (a RAW's JPEG), it may be
                # another program's edit, to import.
                digest = _core.hash_bytes(data)
                found.append((m, sidecar_id, digest))
                contents[digest] = data
            out.unchanged += 1
            return
        if len(merged) > MAX_SIDECAR_BYTES:  # a scan would refuse to read it back
            raise InvalidInputError(f"would grow past {MAX_SIDECAR_BYTES // 1_048_576} MiB: left alone")
        if dry_run:
            before = set(_keywords(*_parsed_keywords(data))) if data is not None else set()
            after = set(_keywords(*_parsed_keywords(merged)))
            out.written.append(target)
            out.changes[target] = (sorted(after - before), sorted(before - after))
            return
        put(target, sidecar_id, merged, known)
    except RecursionError:
        out.failed.append((target, "nested too deeply to rewrite: left alone"))
    except (OSError, ET.ParseError, UnicodeError, InvalidInputError) as e:
        out.failed.append((target, getattr(e, "strerror", None) or first_line(e)))


def _is_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _linked_media(cat: Catalog, written: Sequence[tuple[bytes, str, str | None]]) -> pa.Table:
    """(media_id, sidecar_id, sidecar_blake3) for every present file the name of each
    written sidecar (path, content, its own `media_id` when catalogued) links it to (as the
    `sidecar_links` view will once a scan has catalogued it): a RAW's IMG_1.xmp is the
    JPEG's too, IMG_3.jpg.xmp is IMG_3.JPG's too."""
    # As the catalog keeps `dir` and `name`: text, a byte that is not UTF-8 as U+FFFD,
    # with the raw bytes in `path_raw` then.
    names = pa.table({"name": [os.path.basename(t).decode("utf-8", "replace") for t, _, _ in written],
                      "dir": [os.path.dirname(t).decode("utf-8", "replace") for t, _, _ in written],
                      "path_raw": pa.array([None if _is_utf8(t) else t for t, _, _ in written], pa.binary()),
                      "sidecar_blake3": [h for _, h, _ in written],
                      "sidecar_id": pa.array([i for _, _, i in written], pa.string())})
    with cat.registered("mf_written", names):
        links = links_sql("SELECT sidecar_id::UUID AS media_id, NULL::VARCHAR AS path, sidecar_blake3 AS blake3, dir, "
                          "name, path_raw FROM mf_written")
        return cat.con.sql(f"SELECT DISTINCT media_id::VARCHAR AS media_id, sidecar_id::VARCHAR AS sidecar_id, "
                           f"sidecar_blake3 FROM ({links})").to_arrow_table()


class _Imports:
    """The `xmp_imports` records of the files an export writes, read for them all at once
    and again for those an export records (`load`)."""

    def __init__(self, cat: Catalog, media_ids: list[str]) -> None:
        self.cat = cat
        self.latest: dict[tuple[str, str], set[str]] = {}  # the last contents of each file's sidecar
        self.any: dict[str, set[str]] = {}  # every content recorded for each file
        self.load(media_ids)

    def load(self, media_ids: list[str]) -> None:
        ids = set(media_ids)
        self.latest = {k: v for k, v in self.latest.items() if k[0] not in ids}
        for m in ids:
            self.any.pop(m, None)
        with self.cat.registered("mf_import_ids", pa.table({"media_id": pa.array(sorted(ids), pa.string())})):
            wanted = "media_id IN (SELECT media_id::UUID FROM mf_import_ids)"
            for m, i, h in self.cat.con.execute(f"""
                    SELECT media_id::VARCHAR, sidecar_id::VARCHAR, sidecar_blake3
                    FROM ({_LATEST_OF_SIDECAR.format(files=wanted)})""").fetchall():
                self.latest.setdefault((m, i), set()).add(h)
            for m, h in self.cat.con.execute(
                    f"SELECT DISTINCT media_id::VARCHAR, sidecar_blake3 FROM xmp_imports WHERE {wanted}").fetchall():
                self.any.setdefault(m, set()).add(h)

    def imported(self, media_id: str, sidecar_id: str | None, data: bytes) -> bool:
        """Whether this sidecar content is the one MediaForge last imported or wrote for
        this file from this sidecar (`sidecar_id`, its `files.media_id`), or, for a sidecar
        with none recorded, one it imported or wrote for the file: not a content the
        sidecar held before and was put back at since, which the next scan imports."""
        from .. import _core

        digest = _core.hash_bytes(data)
        if sidecar_id is not None and (media_id, sidecar_id) in self.latest:
            return digest in self.latest[media_id, sidecar_id]
        return digest in self.any.get(media_id, ())


def _holds_just(data: bytes, keywords: list[str]) -> bool:
    """Whether sidecar bytes hold, of the keywords an import stores, these and no other."""
    return {_nfc(k) for k in _storable_keywords(_parsed_keywords(data))} == {_nfc(k) for k in keywords}


def _parsed_keywords(data: bytes) -> tuple[list[str], list[str]]:
    """(flat, hierarchical) keywords of sidecar bytes, as a scan reads them."""
    from ..meta.sidecar import SidecarError, parse_xmp

    try:
        parsed = parse_xmp(data)
    except SidecarError:
        return [], []
    return parsed["keywords"] or [], parsed["hierarchical_keywords"] or []


def _storable_keywords(keywords: tuple[list[str], list[str]]) -> list[str]:
    """Of (flat, hierarchical) keywords, those an import stores as tags or manual
    collection places: those a tag or collection taken off here may take out of a
    sidecar. Keywords an import leaves alone (ones no tag can hold) are never taken out."""
    from .collection import stored_name

    out = []
    for k in _keywords(*keywords):
        coll = _collection_of(k)
        try:
            if coll is None:
                normalize_tag(k)
            else:
                stored_name(coll)
        except InvalidInputError:
            continue
        out.append(k)
    return out


def _keywords(flat: list[str], tree: list[str]) -> list[str]:
    """A sidecar's keywords as an import reads them: the hierarchical ones (`a/b/c`), and
    the flat ones that are no level of one of those: not its leaf, nor a parent, which
    Lightroom also writes as a flat keyword by default (`Places`, `France` beside
    `Places|France|Paris`). A flat keyword holding `/` (`AC/DC`, `1/2 marathon`) is one
    name, which no tag can hold (`/` parts a tag's levels): it is left out, and so never
    imported, exported in pieces or taken out."""
    levels = {level for t in tree for level in t.split("/")}
    return tree + [k for k in flat if k not in levels and "/" not in k]


def _collection_of(keyword: str) -> str | None:
    """The collection a `MediaForge Collections/NAME` keyword names ("" for the root
    alone), None for any other keyword."""
    parts = [p.strip() for p in keyword.split("/") if p.strip()]
    return "/".join(parts[1:]) if parts[:1] == [COLLECTIONS_ROOT] else None


def _mark_imported(cat: Catalog, done: pa.Table) -> None:
    """Record (media_id, sidecar_id, sidecar_blake3) rows: that content of that sidecar
    brings nothing back to that file again. A row recorded before is dated anew, after
    every other row of the file (whatever the clock says): the latest row of a sidecar is
    the content MediaForge last knew it to hold (an export that wrote the same bytes as
    two exports ago), which an edit by another program is compared with."""
    with cat.registered("mf_xmp_done", done), cat.transaction() as con:
        con.execute("""
            CREATE OR REPLACE TEMP TABLE mf_xmp_marks AS
            SELECT DISTINCT media_id::UUID AS media_id, sidecar_id::UUID AS sidecar_id, sidecar_blake3
            FROM mf_xmp_done""")
        con.execute("""
            DELETE FROM xmp_imports x USING mf_xmp_marks d
            WHERE x.media_id = d.media_id AND x.sidecar_id IS NOT DISTINCT FROM d.sidecar_id
              AND x.sidecar_blake3 = d.sidecar_blake3""")
        con.execute("""
            INSERT INTO xmp_imports (media_id, sidecar_blake3, imported_at, sidecar_id, scan_id)
            SELECT d.media_id, d.sidecar_blake3,
                   greatest(now() AT TIME ZONE 'UTC', coalesce(max(x.imported_at) + INTERVAL 1 MICROSECOND,
                                                              now() AT TIME ZONE 'UTC')),
                   d.sidecar_id, (SELECT max(scan_id) FROM scans)
            FROM mf_xmp_marks d LEFT JOIN xmp_imports x ON x.media_id = d.media_id
            GROUP BY d.media_id, d.sidecar_id, d.sidecar_blake3""")
        con.execute("DROP TABLE mf_xmp_marks")
