"""The metadata tables (schema version 2): one spec per table gives both the DuckDB
DDL of the migration and the Arrow schema the writers build batches with, so the two
never drift apart. Documented column by column in docs/catalog.md.

Every table is keyed by the content's BLAKE3, so a copy or a moved file shares its
row and is never extracted twice. This spec is frozen as version 2; a later version
changes tables through new migrations, never by editing it.
"""

from __future__ import annotations

import pyarrow as pa

_ARROW = {
    "VARCHAR": pa.string(), "INTEGER": pa.int32(), "BIGINT": pa.int64(), "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(), "TIMESTAMP": pa.timestamp("us"), "VARCHAR[]": pa.list_(pa.string()), "BLOB": pa.binary(),
    "UBIGINT": pa.uint64(), "UINTEGER": pa.uint32(), "UTINYINT": pa.uint8(), "UUID": pa.string(),
}

TABLES: dict[str, list[tuple[str, str]]] = {
    "media": [
        ("blake3", "VARCHAR NOT NULL"), ("kind", "VARCHAR NOT NULL"), ("status", "VARCHAR NOT NULL"),
        ("format", "VARCHAR"), ("width", "INTEGER"), ("height", "INTEGER"), ("duration", "DOUBLE"),
        ("bitrate", "BIGINT"), ("video_codec", "VARCHAR"), ("audio_codec", "VARCHAR"), ("fps", "DOUBLE"),
        ("rotation", "INTEGER"), ("hdr", "BOOLEAN"), ("bit_depth", "INTEGER"), ("channels", "INTEGER"),
        ("sample_rate", "INTEGER"), ("stream_count", "INTEGER"), ("chapters", "INTEGER"), ("mode", "VARCHAR"),
        ("frames", "INTEGER"), ("created_at", "TIMESTAMP"), ("taken_at", "TIMESTAMP"), ("thumb", "VARCHAR"),
        ("thumb_width", "INTEGER"), ("thumb_height", "INTEGER"), ("extracted_at", "TIMESTAMP NOT NULL"),
    ],
    "streams": [
        ("blake3", "VARCHAR NOT NULL"), ("stream_index", "INTEGER NOT NULL"), ("type", "VARCHAR NOT NULL"),
        ("codec", "VARCHAR"), ("profile", "VARCHAR"), ("bitrate", "BIGINT"), ("duration", "DOUBLE"),
        ("language", "VARCHAR"), ("width", "INTEGER"), ("height", "INTEGER"), ("display_aspect", "VARCHAR"),
        ("rotation", "INTEGER"), ("fps", "DOUBLE"), ("pix_fmt", "VARCHAR"), ("bit_depth", "INTEGER"),
        ("color_transfer", "VARCHAR"), ("color_primaries", "VARCHAR"), ("hdr", "BOOLEAN"), ("is_cover", "BOOLEAN"),
        ("channels", "INTEGER"), ("channel_layout", "VARCHAR"), ("sample_rate", "INTEGER"),
    ],
    "tags_audio": [
        ("blake3", "VARCHAR NOT NULL"), ("title", "VARCHAR"), ("artist", "VARCHAR"), ("album", "VARCHAR"),
        ("album_artist", "VARCHAR"), ("track", "INTEGER"), ("track_total", "INTEGER"), ("disc", "INTEGER"),
        ("disc_total", "INTEGER"), ("date", "VARCHAR"), ("year", "INTEGER"), ("genre", "VARCHAR"),
        ("composer", "VARCHAR"), ("mb_track_id", "VARCHAR"), ("mb_album_id", "VARCHAR"), ("mb_artist_id", "VARCHAR"),
        ("mb_recording_id", "VARCHAR"), ("rg_track_gain", "DOUBLE"), ("rg_album_gain", "DOUBLE"),
        ("rg_track_peak", "DOUBLE"), ("rg_album_peak", "DOUBLE"), ("has_cover", "BOOLEAN"), ("lossless", "BOOLEAN"),
    ],
    "exif": [
        ("blake3", "VARCHAR NOT NULL"), ("make", "VARCHAR"), ("model", "VARCHAR"), ("lens", "VARCHAR"),
        ("software", "VARCHAR"), ("taken_at", "TIMESTAMP"), ("taken_offset", "VARCHAR"),
        ("exposure_time", "DOUBLE"), ("f_number", "DOUBLE"), ("iso", "INTEGER"), ("focal_length", "DOUBLE"),
        ("focal_length_35mm", "INTEGER"), ("orientation", "INTEGER"), ("gps_lat", "DOUBLE"), ("gps_lon", "DOUBLE"),
        ("gps_alt", "DOUBLE"),
    ],
    "sidecars": [
        ("blake3", "VARCHAR NOT NULL"), ("format", "VARCHAR NOT NULL"), ("taken_at", "TIMESTAMP"),
        ("taken_offset", "VARCHAR"), ("rating", "INTEGER"), ("title", "VARCHAR"), ("description", "VARCHAR"),
        ("keywords", "VARCHAR[]"), ("hierarchical_keywords", "VARCHAR[]"), ("gps_lat", "DOUBLE"),
        ("gps_lon", "DOUBLE"),
    ],
    "meta_errors": [
        ("blake3", "VARCHAR NOT NULL"), ("path", "VARCHAR NOT NULL"), ("path_bytes", "BLOB NOT NULL"),
        ("stage", "VARCHAR NOT NULL"), ("message", "VARCHAR NOT NULL"), ("logged_at", "TIMESTAMP NOT NULL"),
    ],
}

# A sidecar describes the media file in its folder whose name it extends
# (IMG_1.JPG.xmp, IMG_1.JPG.json, IMG_1.JPG.supplemental-metadata.json) or whose stem
# it shares (IMG_1.xmp next to IMG_1.CR2). Computed from names, so it follows renames.


def _names_match(m_name: str, s_name: str) -> str:
    return (f"(lower({m_name}) = lower(regexp_replace({s_name}, '(\\.supplemental-metadata)?\\.[^.]*$', ''))"
            f" OR lower(regexp_replace({m_name}, '\\.[^.]*$', '')) = lower(regexp_replace({s_name}, '\\.[^.]*$', '')))")


def _raw_folder(t: str) -> str:
    return f"regexp_replace({t}.path_raw::VARCHAR, '/[^/]*$', '')"


def _raw_name(t: str) -> str:
    return f"regexp_extract({t}.path_raw::VARCHAR, '[^/]*$')"


_PRESENT_MEDIA = "m.dir = s.dir AND m.status = 'present' AND m.kind IN ('image', 'raw', 'video', 'audio')"
# Version 11's join condition: media row `m` (present media in the folder `s.dir`) that the sidecar
# named `s.name` describes.
# `dir` and `name` show a byte that is not UTF-8 as U+FFFD, so two such names can look
# alike: where a path has such bytes (`path_raw`), both paths must, and their folders and
# names are compared in the raw bytes' escaped text (a BLOB cast writes every byte outside
# printable ASCII, and the backslash, as `\xNN`: one text per byte string).
_SIDECAR_MATCH_V11 = f"""{_PRESENT_MEDIA}
 AND ((m.path_raw IS NULL AND s.path_raw IS NULL AND {_names_match('m.name', 's.name')})
      OR (m.path_raw IS NOT NULL AND s.path_raw IS NOT NULL AND {_raw_folder('m')} = {_raw_folder('s')}
          AND {_names_match(_raw_name('m'), _raw_name('s'))}))"""
_SIDECAR_LINKS = """VIEW sidecar_links AS
SELECT s.media_id AS sidecar_id, s.path AS sidecar_path, s.blake3 AS sidecar_blake3,
       m.media_id, m.path, m.blake3
FROM files s
JOIN files m
  ON m.media_id <> s.media_id AND {match}
WHERE s.kind = 'sidecar' AND s.status = 'present'
"""
# As version 2 made it (display names only; replaced by version 11).
SIDECAR_LINKS_VIEW_V2 = "CREATE " + _SIDECAR_LINKS.format(match=f"{_PRESENT_MEDIA} AND {_names_match('m.name', 's.name')}")
# As version 11 made it (a join on each folder's every sidecar and media pair, slow in
# folders of thousands; replaced by version 13).
SIDECAR_LINKS_VIEW_V11 = "CREATE OR REPLACE " + _SIDECAR_LINKS.format(match=_SIDECAR_MATCH_V11)

# Version 13: the names a sidecar can describe, and those a media file goes by, as keys
# joined on equality (a hash join, fast in folders of any size). Names compare lower-case
# and composed (NFC: macOS writes `café` decomposed); where a path holds bytes that are not
# UTF-8, the folder and name are the raw bytes' escaped text (a BLOB cast writes every
# byte outside printable ASCII, and the backslash, as `\xNN`: one text per byte string).
# A media file goes by its name, its stem (`IMG_1` of `IMG_1.CR2`), the first 46
# characters of `<name>.supplemental-metadata` (Google Takeout cuts its JSON names to 51
# characters, `.json` included) and, as the original's edit, by its name without
# `-edited` (Takeout's `photo-edited.jpg` shares `photo.jpg.json`, and the JSON cut to 51
# characters of a long name's original; JSON sidecars only).
_SUPPLEMENTAL = "\\.s" + "".join(f"(?:{c}" for c in "upplemental-metadata") + ")?" * len("upplemental-metadata")
_EDITED = "-(?:edited|bearbeitet|modifié|editado|modificato|bewerkt|redigerad|muokattu)"


def _folder(t: str) -> str:
    return f"CASE WHEN {t}.path_raw IS NULL THEN {t}.dir ELSE 'raw:' || {_raw_folder(t)} END"


def _key_name(t: str) -> str:
    return f"lower(nfc_normalize({_exact_name(t)}))"


def _exact_name(t: str) -> str:
    return f"CASE WHEN {t}.path_raw IS NULL THEN {t}.name ELSE {_raw_name(t)} END"


def _dup_moved(x: str) -> str:
    """Takeout's copy number moved back before the extension: `photo.jpg(1)` -> `photo(1).jpg`."""
    return f"regexp_replace({x}, '^(.+)(\\.[^.]+)\\((\\d+)\\)$', '\\1(\\3)\\2')"


def _sidecar_keys(n: str) -> str:
    """The names (lower-case) of the media files the sidecar named `n` can describe: its
    name without its extension (`IMG_1.JPG.xmp`, and for a stem `IMG_1.xmp`), without
    Takeout's `.supplemental-metadata` (cut short to any length, a copy number after it),
    with a copy number moved back (`photo.jpg(1).json` is `photo(1).jpg`'s); JSON ones
    also as an edit's original (`e:`)."""
    bare = f"regexp_replace({n}, '\\.[^.]*$', '')"
    supp = f"regexp_replace({n}, '{_SUPPLEMENTAL}(\\(\\d+\\))?\\.json$', '\\1')"
    return (f"list_distinct([{bare}, {supp}, {_dup_moved(bare)}, {_dup_moved(supp)}, "
            f"CASE WHEN {n} LIKE '%.json' THEN 'e:' || {_dup_moved(supp)} END, "
            f"CASE WHEN {n} LIKE '%.json' THEN 'e:' || {_dup_moved(bare)} END])")


def _media_keys(n: str) -> str:
    """The names (lower-case) a media file named `n` goes by, for `_sidecar_keys`."""
    return (f"[{n}, regexp_replace({n}, '\\.[^.]*$', ''), {_cut_key(n)}, "
            f"CASE WHEN {_unedited(n)} <> {n} THEN 'e:' || {_unedited(n)} END, "
            f"CASE WHEN {_unedited(n)} <> {n} THEN 'e:' || {_cut_key(_unedited(n))} END]")


def _unedited(n: str) -> str:
    return f"regexp_replace({n}, '{_EDITED}(\\.[^.]*)$', '\\1')"


# A copy number Takeout gave a photo, right before its extension: `(1)` of `photo(1).jpg`.
# One after a space (`photo (1).jpg`, a browser's download of a second copy) is the name's
# own, uploaded so: Takeout cuts its JSON name as any other.
_NUMBERED = "^(.*[^ ])(\\(\\d+\\))(\\.[^.]*)$"


def _cut_key(n: str) -> str:
    """The name Takeout cuts to 46 characters for the JSON of the media file named `n`
    (NULL when it is shorter): `<name>.supplemental-metadata` cut there. A copy number
    Takeout gave is never cut: it follows the cut of the name without it, as in
    `<46 characters>(1).json`."""
    long = f"{n} || '.supplemental-metadata'"
    number = f"regexp_extract({n}, '{_NUMBERED}', 2)"
    unnumbered = f"regexp_replace({n}, '{_NUMBERED}', '\\1\\3') || '.supplemental-metadata'"
    return (f"CASE WHEN {number} <> '' THEN CASE WHEN length({unnumbered}) > 46 "
            f"THEN left({unnumbered}, 46) || {number} END WHEN length({long}) > 46 THEN left({long}, 46) END")


def links_sql(sidecars: str) -> str:
    """SQL: (sidecar_id, sidecar_path, sidecar_blake3, media_id, path, blake3), a row for
    each present media file each sidecar of `sidecars` (a query with media_id, path,
    blake3, dir, name and path_raw) describes. Names match whatever their case and Unicode
    form, except that a sidecar matching a file's name exactly does not describe that
    file's twins, files whose names differ from it only in case or Unicode form:
    `Pic.jpg.xmp` beside `pic.jpg.xmp` is `Pic.jpg`'s, not `pic.jpg`'s too."""
    return f"""
WITH sc AS ({sidecars}),
sn AS (
    SELECT *, {_key_name('sc')} AS n, {_exact_name('sc')} AS x, {_folder('sc')} AS folder, row_number() OVER () AS sid
    FROM sc
),
mn AS (
    SELECT *, {_key_name('f')} AS n, {_exact_name('f')} AS x, {_folder('f')} AS folder FROM files f
    WHERE f.status = 'present' AND f.kind IN ('image', 'raw', 'video', 'audio') AND f.dir IN (SELECT dir FROM sc)
),
sk AS (SELECT DISTINCT sid, media_id, path, blake3, folder, unnest({_sidecar_keys('n')}) AS k FROM sn),
mk AS (SELECT media_id, path, blake3, folder, n, unnest({_media_keys('n')}) AS k FROM mn),
exact AS (
    SELECT DISTINCT s.sid, m.media_id FROM
    (SELECT sid, folder, unnest({_sidecar_keys('x')}) AS k FROM sn) s
    JOIN (SELECT media_id, folder, unnest({_media_keys('x')}) AS k FROM mn) m ON m.folder = s.folder AND m.k = s.k
),
twins AS (SELECT DISTINCT e.sid, m.folder, m.n FROM exact e JOIN mn m USING (media_id))
SELECT DISTINCT s.media_id AS sidecar_id, s.path AS sidecar_path, s.blake3 AS sidecar_blake3,
       m.media_id, m.path, m.blake3
FROM sk s JOIN mk m ON m.folder = s.folder AND m.k = s.k
WHERE (s.sid, m.folder, m.n) NOT IN (SELECT (sid, folder, n) FROM twins)
   OR (s.sid, m.media_id) IN (SELECT (sid, media_id) FROM exact)"""


def twins_sql(of: str) -> str:
    """SQL: the media_id (as text) of each present media file whose name differs only in
    case or Unicode form from that of a file of `of` (a query of media_ids) in its folder:
    its twins, which a sidecar matching that file's name exactly stops describing when
    the file comes, and describes again when it goes (see `links_sql`)."""
    # (The files of `of` keyed first, then only the files of their folders.)
    return f"""
SELECT media_id FROM (
    WITH o AS MATERIALIZED (
        SELECT f.media_id, f.dir, {_folder('f')} AS folder, {_key_name('f')} AS n FROM files f
        WHERE f.media_id IN ({of})
    ),
    t AS (
        SELECT f.media_id, {_folder('f')} AS folder, {_key_name('f')} AS n FROM files f
        WHERE f.status = 'present' AND f.kind IN ('image', 'raw', 'video', 'audio') AND f.dir IN (SELECT dir FROM o)
    )
    SELECT DISTINCT t.media_id::VARCHAR AS media_id FROM t JOIN o
        ON t.folder = o.folder AND t.n = o.n AND t.media_id <> o.media_id
)"""


SIDECAR_LINKS_VIEW = "CREATE OR REPLACE VIEW sidecar_links AS " + links_sql(
    "SELECT media_id, path, blake3, dir, name, path_raw FROM files WHERE kind = 'sidecar' AND status = 'present'")


# Version 3: perceptual hashes, and the near-duplicate groups `mediaforge dupes --similar`
# writes (replaced by each run).
TABLES_V3: dict[str, list[tuple[str, str]]] = {
    "image_hashes": [("blake3", "VARCHAR NOT NULL"), ("phash", "UBIGINT NOT NULL"), ("dhash", "UBIGINT NOT NULL")],
    "video_hashes": [("blake3", "VARCHAR NOT NULL"), ("k", "UTINYINT NOT NULL"), ("position", "DOUBLE NOT NULL"),
                     ("phash", "UBIGINT NOT NULL")],
    "similar_groups": [
        ("group_id", "UINTEGER NOT NULL"), ("blake3", "VARCHAR NOT NULL"), ("leader", "VARCHAR NOT NULL"),
        ("distance", "UTINYINT NOT NULL"), ("method", "VARCHAR NOT NULL"), ("radius", "UTINYINT NOT NULL"),
        ("created_at", "TIMESTAMP NOT NULL"),
    ],
}
# Version 4: audio fingerprints (32-bit words, little-endian, one per 93 ms frame of the
# first two minutes; empty when the audio is too short or mostly silent).
TABLES_V4: dict[str, list[tuple[str, str]]] = {
    "audio_hashes": [("blake3", "VARCHAR NOT NULL"), ("fingerprint", "BLOB NOT NULL"), ("frames", "UINTEGER NOT NULL"),
                     ("seconds", "DOUBLE NOT NULL")],
}
# Version 5: tags and collections on the stable media_id (so they survive renames, moves
# and rescans), and the search index's record of what it holds.
TABLES_V5: dict[str, list[tuple[str, str]]] = {
    "tags": [("media_id", "UUID NOT NULL"), ("tag", "VARCHAR NOT NULL"), ("source", "VARCHAR NOT NULL"),
             ("added_by", "VARCHAR NOT NULL"), ("added_at", "TIMESTAMP NOT NULL")],
    "collections": [("collection_id", "BIGINT NOT NULL"), ("name", "VARCHAR NOT NULL"), ("kind", "VARCHAR NOT NULL"),
                    ("predicate", "VARCHAR"), ("created_by", "VARCHAR NOT NULL"),
                    ("created_at", "TIMESTAMP NOT NULL")],
    "collection_items": [("collection_id", "BIGINT NOT NULL"), ("media_id", "UUID NOT NULL"),
                         ("position", "BIGINT NOT NULL"), ("added_by", "VARCHAR NOT NULL"),
                         ("added_at", "TIMESTAMP NOT NULL")],
    "search_docs": [("media_id", "UUID NOT NULL"), ("digest", "UBIGINT NOT NULL")],
}

# Version 6: which XMP sidecar contents have become tags and collection places, per file.
# A scan imports only pairs not recorded here, so a tag the user removed is not brought
# back by an unchanged sidecar; an edited sidecar (new digest) is imported again.
TABLES_V6: dict[str, list[tuple[str, str]]] = {
    "xmp_imports": [("media_id", "UUID NOT NULL"), ("sidecar_blake3", "VARCHAR NOT NULL"),
                    ("imported_at", "TIMESTAMP NOT NULL")],
}

# One row per present file with the columns people filter on: what smart collections,
# `--where` and the search index read. A public interface like the tables.
LIBRARY_VIEW = """
CREATE VIEW library AS
SELECT f.media_id, f.path, f.dir, f.name, f.ext, f.size, f.mtime_ns, f.kind, f.mime, f.blake3,
       f.first_seen, f.last_seen,
       m.format, m.width, m.height, m.duration, m.bitrate, m.video_codec, m.audio_codec,
       coalesce(m.video_codec, m.audio_codec) AS codec, m.fps, m.rotation, m.hdr, m.bit_depth,
       m.channels, m.sample_rate, m.frames,
       coalesce(m.taken_at, m.created_at) AS taken_at,
       year(coalesce(m.taken_at, m.created_at, make_timestamp(f.mtime_ns // 1000))) AS year,
       e.make AS camera_make, e.model AS camera_model, e.lens, e.iso, e.f_number, e.exposure_time,
       e.focal_length, e.gps_lat, e.gps_lon,
       a.title, a.artist, a.album, a.album_artist, a.genre, a.track, a.has_cover, a.lossless,
       coalesce((SELECT list(t.tag ORDER BY t.tag) FROM tags t WHERE t.media_id = f.media_id), []) AS tags
FROM files f
LEFT JOIN media m ON m.blake3 = f.blake3
LEFT JOIN exif e ON e.blake3 = f.blake3
LEFT JOIN tags_audio a ON a.blake3 = f.blake3
WHERE f.status = 'present'
"""
# Version 13: what linked sidecars say fills in what the file itself does not: the date
# taken (a Google Takeout photo stripped of its EXIF has only its JSON's, and its mtime is
# the download's), the place, and the rating (new column, the highest of its sidecars').
LIBRARY_VIEW_V13 = """
CREATE OR REPLACE VIEW library AS
SELECT f.media_id, f.path, f.dir, f.name, f.ext, f.size, f.mtime_ns, f.kind, f.mime, f.blake3,
       f.first_seen, f.last_seen,
       m.format, m.width, m.height, m.duration, m.bitrate, m.video_codec, m.audio_codec,
       coalesce(m.video_codec, m.audio_codec) AS codec, m.fps, m.rotation, m.hdr, m.bit_depth,
       m.channels, m.sample_rate, m.frames,
       coalesce(m.taken_at, x.taken_at, m.created_at) AS taken_at,
       year(coalesce(m.taken_at, x.taken_at, m.created_at, make_timestamp(f.mtime_ns // 1000))) AS year,
       e.make AS camera_make, e.model AS camera_model, e.lens, e.iso, e.f_number, e.exposure_time,
       e.focal_length, coalesce(e.gps_lat, x.gps_lat) AS gps_lat,
       CASE WHEN e.gps_lat IS NOT NULL THEN e.gps_lon ELSE x.gps_lon END AS gps_lon,
       a.title, a.artist, a.album, a.album_artist, a.genre, a.track, a.has_cover, a.lossless,
       coalesce((SELECT list(t.tag ORDER BY t.tag) FROM tags t WHERE t.media_id = f.media_id), []) AS tags,
       x.rating
FROM files f
LEFT JOIN media m ON m.blake3 = f.blake3
LEFT JOIN exif e ON e.blake3 = f.blake3
LEFT JOIN tags_audio a ON a.blake3 = f.blake3
LEFT JOIN (
    SELECT l.media_id, min(s.taken_at) AS taken_at, max(s.rating) AS rating,
           arg_min(s.gps_lat, s.gps_lat IS NULL) AS gps_lat, arg_min(s.gps_lon, s.gps_lat IS NULL) AS gps_lon
    FROM sidecar_links l JOIN sidecars s ON s.blake3 = l.sidecar_blake3 GROUP BY l.media_id
) x ON x.media_id = f.media_id
WHERE f.status = 'present'
"""


def taken_sql(media: str, sidecar: str) -> str:
    """A file's date taken, for `library` and the search index: the media's own capture
    time (EXIF for photos; a phone video's QuickTime capture date), else the earliest its
    linked sidecars give (`sidecar`: their date per file), else the container's creation
    time. A video's `media.taken_at` is its `created_at` when it has no capture date of
    its own; that time says when the file was written (a re-encode, an export), so a
    sidecar's date comes before it."""
    m, x = media, sidecar
    return f"coalesce(nullif({m}.taken_at, {m}.created_at), {x}.taken_at, {m}.taken_at, {m}.created_at)"


# Version 14: a video's container time no longer comes before its sidecar's date.
# (Its `year` goes on to the file's mtime: the last argument of the same coalesce.)
_V13_TAKEN = "coalesce(m.taken_at, x.taken_at, m.created_at"
if LIBRARY_VIEW_V13.count(_V13_TAKEN) != 2 or not taken_sql("m", "x").endswith(")"):
    raise RuntimeError("schema 14's view is derived from schema 13's text, which no longer reads as expected")
LIBRARY_VIEW_V14 = LIBRARY_VIEW_V13.replace(_V13_TAKEN, taken_sql("m", "x")[:-1])


def year_sql(media: str, sidecar: str, audio: str) -> str:
    """A file's year, for `library` and the search index: of its date taken (`taken_sql`),
    but for sound, its tags' year (the release's: `tags_audio.year`) before the time its
    container was written (an album of 1999 ripped in 2015 is of 1999); else of its mtime."""
    m, x, a = media, sidecar, audio
    return (f"coalesce(year(nullif({m}.taken_at, {m}.created_at)), year({x}.taken_at), "
            f"CASE WHEN {a}.year BETWEEN 1 AND 9999 THEN {a}.year END, year({m}.taken_at), year({m}.created_at), "
            "year(make_timestamp(f.mtime_ns // 1000)))")


# Version 28: a song's year is its tags' (see `year_sql`), in the view as in the search
# index: `year:2019 kind:audio` found songs by the day their files were written.
_V14_YEAR = f"year({taken_sql('m', 'x')[:-1]}, make_timestamp(f.mtime_ns // 1000))) AS year"
if LIBRARY_VIEW_V14.count(_V14_YEAR) != 1:
    raise RuntimeError("schema 28's view is derived from schema 14's text, which no longer reads as expected")
LIBRARY_VIEW_V28 = LIBRARY_VIEW_V14.replace(_V14_YEAR, f"{year_sql('m', 'x', 'a')} AS year")

# The view's text as a SELECT, with a place for a condition on its files and one on its
# sidecars' files (see `library_within`).
_LIBRARY_HEAD = "CREATE OR REPLACE VIEW library AS\n"
_LIBRARY_LINKS = "FROM sidecar_links l JOIN sidecars s ON s.blake3 = l.sidecar_blake3 GROUP BY l.media_id"
_LIBRARY_FILES = "WHERE f.status = 'present'\n"
if not (LIBRARY_VIEW_V28.strip().startswith(_LIBRARY_HEAD.strip()) and LIBRARY_VIEW_V28.count(_LIBRARY_LINKS) == 1
        and LIBRARY_VIEW_V28.endswith(_LIBRARY_FILES)):
    raise RuntimeError("the library view's text no longer reads as `library_within` expects")


def library_within(within: str) -> str:
    """The `library` view's rows for some files alone, as a subquery to name `library`:
    `within` is a condition on `{col}` (`AND {col} IN (...)`). The view filtered from
    outside links every sidecar of the library to its files first (`sidecar_links`: 0.8 s
    on a library of 60,000 sidecars, for each smart collection a one-file update looks
    at); this one links only the sidecars in those files' folders, where theirs are."""
    body = LIBRARY_VIEW_V28.strip()[len(_LIBRARY_HEAD.strip()):]
    links = links_sql("SELECT media_id, path, blake3, dir, name, path_raw FROM files WHERE kind = 'sidecar' "
                      "AND status = 'present' AND dir IN (SELECT dir FROM files WHERE TRUE "
                      f"{within.format(col='media_id')})")
    narrowed = _LIBRARY_LINKS.replace("FROM sidecar_links l", f"FROM ({links}\n) l").replace(
        " GROUP BY", f" WHERE TRUE {within.format(col='l.media_id')} GROUP BY")
    body = body.replace(_LIBRARY_LINKS, narrowed)
    return f"({body} {within.format(col='f.media_id')}\n)"


_ALL = {**TABLES, **TABLES_V3, **TABLES_V4, **TABLES_V5, **TABLES_V6}


def ddl(table: str) -> str:
    cols = ",\n    ".join(f"{name} {typ}" for name, typ in _ALL[table])
    return f"CREATE TABLE {table} (\n    {cols}\n)"


def arrow_schema(table: str) -> pa.Schema:
    return pa.schema(
        [pa.field(name, _ARROW[typ.replace(" NOT NULL", "")], nullable="NOT NULL" not in typ)
         for name, typ in _ALL[table]]
    )


def columns(table: str) -> list[str]:
    return [name for name, _ in _ALL[table]]


MIGRATION_2 = [ddl(t) for t in TABLES] + [SIDECAR_LINKS_VIEW_V2]
MIGRATION_3 = [ddl(t) for t in TABLES_V3]
MIGRATION_4 = [ddl(t) for t in TABLES_V4]
MIGRATION_5 = [ddl(t) for t in TABLES_V5] + [LIBRARY_VIEW]
# Catalogs from version 5 imported every linked sidecar on each scan: record them all as
# imported, so upgrading brings back nothing a user has since removed.
MIGRATION_6 = [ddl(t) for t in TABLES_V6] + ["""
    INSERT INTO xmp_imports
    SELECT DISTINCT l.media_id, l.sidecar_blake3, (now() AT TIME ZONE 'UTC')
    FROM sidecar_links l JOIN sidecars s ON s.blake3 = l.sidecar_blake3 WHERE s.format = 'xmp'
    """]

# Version 14 records each thumbnail's length in bytes (`media.thumb_bytes`): a thumbnail
# cut short (a copy or a sync of `thumbs/` stopped halfway) is told by one stat. Added at
# the end of the table, where the writers' column list (`columns`) puts it; the version-2
# spec above, which built older catalogs, stays as it was.
MEDIA_V14 = ("thumb_bytes", "BIGINT")
MIGRATION_14_MEDIA = f"ALTER TABLE media ADD COLUMN IF NOT EXISTS {MEDIA_V14[0]} {MEDIA_V14[1]}"
_ALL["media"] = [*TABLES["media"], MEDIA_V14]

# Version 21 records which sidecar file each `xmp_imports` content was (`sidecar_id`, the
# sidecar's `files.media_id`; NULL for rows from before, and for an export's new sidecar
# no scan has catalogued yet), and the latest scan when it was recorded (`scan_id`): a
# sidecar put back at a content it held before is told from one left as it was by
# comparing what a later scan found with the last content recorded for that sidecar.
XMP_IMPORTS_V21 = [("sidecar_id", "UUID"), ("scan_id", "BIGINT")]
# Rows from before get the latest scan begun when they were dated.
MIGRATION_21_XMP = [
    *(f"ALTER TABLE xmp_imports ADD COLUMN IF NOT EXISTS {name} {typ}" for name, typ in XMP_IMPORTS_V21),
    "UPDATE xmp_imports SET scan_id = (SELECT max(scan_id) FROM scans WHERE started_at <= xmp_imports.imported_at)"]
_ALL["xmp_imports"] = [*TABLES_V6["xmp_imports"], *XMP_IMPORTS_V21]

# Version 23 records whether a picture has no colour (`image_hashes.grey`), measured on
# its pixels: a black-and-white photo saved in colour (RGB), as editors and phone filters
# save one, has the mode of a colour one, and `dedupe --similar` kept such a copy over
# the colour original it came from. NULL for rows from before, and where the pixels
# decoded held no colour to look at (decoded in grey for the hash alone, with no
# thumbnail made): the mode tells then.
# With it, the picture's colour layout (`image_hashes.chroma`): the mean Cb and Cr of each
# cell of a 3x3 grid. pHash sees brightness alone, so a red and a blue version of one
# layout, or a photo with a shape painted over it, lay a few bits apart: near-duplicate
# groups leave out a picture whose colours lie clearly apart from its leader's.
IMAGE_HASHES_V23 = [("grey", "BOOLEAN"), ("chroma", "BLOB")]
MIGRATION_23 = [f"ALTER TABLE image_hashes ADD COLUMN IF NOT EXISTS {name} {typ}" for name, typ in IMAGE_HASHES_V23]
_ALL["image_hashes"] = [*TABLES_V3["image_hashes"], *IMAGE_HASHES_V23]

# Version 27 adds the picture's finer pHash (`image_hashes.phash256`: the 16x16 lowest
# frequencies of a 64x64 average), which checks each pair the 64-bit one finds: pages of
# one layout (a scanned book, screenshots of one app) lay within a few bits of 64, and
# about 70 of 256 apart here, where a copy recompressed, resized or brightened stays
# within about 30. NULL for rows from before: their pairs are taken on the 64-bit pHash.
IMAGE_HASHES_V27 = [("phash256", "BLOB")]
MIGRATION_27_FINE = [f"ALTER TABLE image_hashes ADD COLUMN IF NOT EXISTS {name} {typ}" for name, typ in IMAGE_HASHES_V27]
_ALL["image_hashes"] = [*_ALL["image_hashes"], *IMAGE_HASHES_V27]

# Version 28 adds each video fingerprint frame's colours, as pictures have them
# (`image_hashes.grey`, `image_hashes.chroma`): pHash sees brightness alone, and clips of
# one layout in other colours (a title style, one app's screen recordings) lay a few bits
# apart. NULL for rows from before: their pairs are taken on the pHash alone.
VIDEO_HASHES_V28 = [("grey", "BOOLEAN"), ("chroma", "BLOB")]
MIGRATION_28_VIDEO = [f"ALTER TABLE video_hashes ADD COLUMN IF NOT EXISTS {name} {typ}" for name, typ in VIDEO_HASHES_V28]
_ALL["video_hashes"] = [*TABLES_V3["video_hashes"], *VIDEO_HASHES_V28]
