"""Tags and collections to and from XMP sidecars, the way digiKam, Lightroom and
darktable keep keywords: `dc:subject` (flat leaf names), `lr:hierarchicalSubject`
(`places|france|paris`) and `digiKam:TagsList` (`places/france/paris`). Collections
travel as hierarchical keywords under `MediaForge Collections|<name>`.

Import reads what the scan already parsed (the `sidecars` table through the
`sidecar_links` view), so it costs no file reads; it runs after every scan, for the
sidecar contents it has not imported before (`xmp_imports`). Export writes
`<file>.xmp` beside each file, or merges into the sidecar the file already has: keywords
are only ever added, every other element is kept, and the file is replaced atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from xml.etree import ElementTree as ET

import pyarrow as pa

from ..catalog import Catalog
from ..errors import InvalidInputError, first_line, path_text
from ..fsops import replace_atomically
from ..meta.sidecar import MAX_SIDECAR_BYTES, _NS
from .tags import add_tag_pairs, normalize_tag

COLLECTIONS_ROOT = "MediaForge Collections"
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


def import_xmp(cat: Catalog, everything: bool = False) -> Imported:
    """Tags (source 'xmp') and manual collection memberships from the keywords of linked
    XMP sidecars: only sidecar contents not imported before for that file (`xmp_imports`),
    so a tag the user removed stays removed until the sidecar itself changes; `everything`
    imports every linked sidecar again. Nothing doubles."""
    pending = "" if everything else """
        AND NOT EXISTS (SELECT 1 FROM xmp_imports x
                        WHERE x.media_id = l.media_id AND x.sidecar_blake3 = l.sidecar_blake3)"""
    pairs = cat.con.sql(f"""
        SELECT DISTINCT l.media_id::VARCHAR AS media_id, l.sidecar_blake3, s.keywords, s.hierarchical_keywords
        FROM sidecar_links l JOIN sidecars s ON s.blake3 = l.sidecar_blake3
        WHERE s.format = 'xmp' {pending}""").to_arrow_table()
    if not pairs.num_rows:
        return Imported(0, [])
    by_tag: dict[str, list[str]] = {}
    by_coll: dict[str, list[str]] = {}
    rows = zip(*(pairs.column(c).to_pylist() for c in ("media_id", "keywords", "hierarchical_keywords")))
    for media_id, flat, tree in rows:
        tree = tree or []
        leaves = {t.rsplit("/", 1)[-1] for t in tree}
        for t in tree + [k for k in (flat or []) if k not in leaves]:
            parts = [p.strip() for p in t.split("/") if p.strip()]
            if parts[:1] == [COLLECTIONS_ROOT]:
                if len(parts) > 1:
                    by_coll.setdefault("/".join(parts[1:]), []).append(media_id)
                continue
            try:
                by_tag.setdefault(normalize_tag(t), []).append(media_id)
            except InvalidInputError:
                continue  # a keyword we cannot store as a tag (control characters): left alone
    # One transaction for them all: a sidecar may hold thousands of keywords.
    added = add_tag_pairs(cat, [(m, tag) for tag, ids in by_tag.items() for m in ids], source="xmp")
    if by_coll:
        from . import collection

        for name, ids in by_coll.items():
            try:
                collection.create(cat, name)
            except InvalidInputError:
                pass  # already there (or a name we refuse)
            try:
                collection.add(cat, name, ids)
            except InvalidInputError:
                continue
    done = pairs.select(["media_id", "sidecar_blake3"])
    with cat.registered("mf_xmp_done", done), cat.transaction() as con:
        con.execute("""
            INSERT INTO xmp_imports
            SELECT DISTINCT d.media_id::UUID, d.sidecar_blake3, now()::TIMESTAMP FROM mf_xmp_done d
            WHERE NOT EXISTS (SELECT 1 FROM xmp_imports x
                              WHERE x.media_id = d.media_id::UUID AND x.sidecar_blake3 = d.sidecar_blake3)""")
    return Imported(added, sorted(set(pairs.column("media_id").to_pylist())))


@dataclass
class ExportResult:
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    # Tagged files that are sidecars themselves: the keywords of a sidecar's photo go in
    # that sidecar, a sidecar gets no sidecar of its own.
    sidecars_skipped: int = 0


def _keywords_for(cat: Catalog, media_ids: Sequence[str]) -> dict[str, tuple[bytes, bytes | None, list[str], str]]:
    """media_id -> (path_bytes, linked sidecar path_bytes or None, hierarchical keywords,
    kind)."""
    ids = pa.table({"media_id": pa.array(list(media_ids), pa.string())})
    with cat.registered("mf_ids", ids):
        rows = cat.con.sql(f"""
            WITH want AS (SELECT media_id::UUID AS media_id FROM mf_ids),
            kw AS (
                SELECT t.media_id, t.tag AS kw FROM tags t JOIN want USING (media_id)
                UNION
                SELECT i.media_id, '{COLLECTIONS_ROOT}/' || c.name FROM collection_items i
                JOIN collections c USING (collection_id) JOIN want USING (media_id)
            )
            SELECT f.media_id::VARCHAR, any_value(f.path_bytes),
                   (SELECT min(s.path_bytes) FROM sidecar_links l JOIN files s ON s.media_id = l.sidecar_id
                    WHERE l.media_id = f.media_id AND lower(s.ext) = 'xmp'),
                   list(DISTINCT kw.kw ORDER BY kw.kw), any_value(f.kind)
            FROM files f JOIN kw ON kw.media_id = f.media_id
            WHERE f.status = 'present' GROUP BY f.media_id""").fetchall()
    return {m: (bytes(p), bytes(s) if s else None, list(k), kind) for m, p, s, k, kind in rows}


def _bag(desc: ET.Element, prop: str, container: str) -> ET.Element:
    prefix, local = prop.split(":")
    el = desc.find(f"{{{_NS[prefix]}}}{local}")
    if el is None:
        el = ET.SubElement(desc, f"{{{_NS[prefix]}}}{local}")
    inner = el.find(f"{RDF}{container}")
    if inner is None:
        inner = ET.SubElement(el, f"{RDF}{container}")
    return inner


def merge_keywords(data: bytes | None, keywords: Sequence[str]) -> bytes | None:
    """XMP bytes with `keywords` (hierarchical, `/`-separated) added to dc:subject,
    lr:hierarchicalSubject and digiKam:TagsList; None when nothing would change."""
    if data is not None and (len(data) > MAX_SIDECAR_BYTES or b"<!ENTITY" in data):
        raise InvalidInputError("sidecar too large or with entity declarations: left alone")
    text = data.decode("utf-8") if data else EMPTY
    for open_tag, close_tag in (("<x:xmpmeta", "</x:xmpmeta>"), ("<rdf:RDF", "</rdf:RDF>")):
        a, b = text.find(open_tag), text.rfind(close_tag)
        if a >= 0 and b > a:
            head, body, tail = text[:a], text[a:b + len(close_tag)], text[b + len(close_tag):]
            break
    else:
        raise InvalidInputError("not an XMP packet (no x:xmpmeta or rdf:RDF)")
    root = ET.fromstring(body)
    rdf = root if root.tag == f"{RDF}RDF" else root.find(f"{RDF}RDF")
    if rdf is None:
        raise InvalidInputError("XMP without rdf:RDF")
    desc = rdf.find(f"{RDF}Description")
    if desc is None:
        desc = ET.SubElement(rdf, f"{RDF}Description", {f"{RDF}about": ""})
    changed = False
    targets = (("dc:subject", "Bag", lambda k: k.rsplit("/", 1)[-1]),
               ("lr:hierarchicalSubject", "Bag", lambda k: k.replace("/", "|")),
               ("digiKam:TagsList", "Seq", lambda k: k))
    for prop, container, form in targets:
        bag = _bag(desc, prop, container)
        have = {li.text for li in bag.findall(f"{RDF}li")}
        for k in keywords:
            v = form(k)
            if v not in have:
                ET.SubElement(bag, f"{RDF}li").text = v
                have.add(v)
                changed = True
    if not changed:
        return None
    ET.indent(root, space=" ")
    return (head + ET.tostring(root, encoding="unicode") + tail).encode("utf-8")


def export_xmp(cat: Catalog, media_ids: Sequence[str]) -> ExportResult:
    """Write each file's tags and collections into its XMP sidecar (see the module doc)."""
    out = ExportResult()
    for _m, (path, sidecar, keywords, kind) in _keywords_for(cat, media_ids).items():
        if kind == "sidecar":
            out.sidecars_skipped += 1
            continue
        target = sidecar or path + b".xmp"
        shown = path_text(target)
        try:
            try:
                with open(target, "rb") as f:
                    data: bytes | None = f.read(MAX_SIDECAR_BYTES + 1)
            except FileNotFoundError:
                data = None
            merged = merge_keywords(data, keywords)
            if merged is None:
                out.unchanged += 1
                continue
            replace_atomically(target, merged)
            out.written.append(shown)
        except (OSError, ET.ParseError, UnicodeDecodeError, InvalidInputError) as e:
            out.failed.append((shown, getattr(e, "strerror", None) or first_line(e)))
    return out
