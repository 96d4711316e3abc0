"""The catalog's schema: a public interface, documented column by column in
docs/catalog.md. Each change is a numbered migration; a catalog records the version it
is at in `meta`, and a catalog newer than this code is refused rather than guessed at.
"""

from __future__ import annotations

import re

from .media_tables import (LIBRARY_VIEW_V13, LIBRARY_VIEW_V14, LIBRARY_VIEW_V28, MIGRATION_14_MEDIA, MIGRATION_2, MIGRATION_3,
                           MIGRATION_4, MIGRATION_5, MIGRATION_6, MIGRATION_21_XMP, MIGRATION_23, MIGRATION_27_FINE,
                           MIGRATION_28_VIDEO,
                           SIDECAR_LINKS_VIEW,
                           SIDECAR_LINKS_VIEW_V11, TABLES, TABLES_V3, TABLES_V4, TABLES_V5, TABLES_V6)

SCHEMA_VERSION = 31
APPLICATION = "mediaforge"
# The `meta` key recording the last scan the search index is in step with.
SEARCH_SYNCED = "search_synced_scan"
# The values of files.kind.
KINDS = ("image", "raw", "video", "audio", "sidecar", "other")

# MIGRATIONS[n] brings a catalog from version n-1 to n. Never edit a published entry:
# add a new one.
MIGRATIONS: dict[int, list[str]] = {
    1: [
        """
        CREATE TABLE IF NOT EXISTS meta (
            key   VARCHAR PRIMARY KEY,
            value VARCHAR NOT NULL
        )
        """,
        """
        CREATE TABLE files (
            media_id      UUID      NOT NULL,
            path          VARCHAR   NOT NULL,
            path_bytes    BLOB      NOT NULL,
            dir           VARCHAR   NOT NULL,
            name          VARCHAR   NOT NULL,
            ext           VARCHAR   NOT NULL,
            size          UBIGINT   NOT NULL,
            mtime_ns      BIGINT    NOT NULL,
            ctime_ns      BIGINT    NOT NULL,
            dev           UBIGINT   NOT NULL,
            inode         UBIGINT   NOT NULL,
            nlink         UBIGINT   NOT NULL,
            kind          VARCHAR   NOT NULL,
            mime          VARCHAR   NOT NULL,
            blake3        VARCHAR,
            status        VARCHAR   NOT NULL,
            first_seen    TIMESTAMP NOT NULL,
            last_seen     TIMESTAMP NOT NULL,
            missing_since TIMESTAMP,
            first_scan_id BIGINT    NOT NULL,
            last_scan_id  BIGINT    NOT NULL
        )
        """,
        """
        CREATE TABLE scans (
            scan_id         BIGINT    NOT NULL,
            started_at      TIMESTAMP NOT NULL,
            finished_at     TIMESTAMP,
            status          VARCHAR   NOT NULL,
            roots           VARCHAR[] NOT NULL,
            hashed          BOOLEAN   NOT NULL,
            files_seen      BIGINT,
            bytes_seen      UBIGINT,
            new_files       BIGINT,
            changed_files   BIGINT,
            moved_files     BIGINT,
            missing_files   BIGINT,
            revived_files   BIGINT,
            unchanged_files BIGINT,
            hashed_files    BIGINT,
            hashed_bytes    UBIGINT,
            pruned_files    BIGINT,
            errors          BIGINT,
            seconds         DOUBLE
        )
        """,
        """
        CREATE TABLE scan_errors (
            scan_id    BIGINT    NOT NULL,
            logged_at  TIMESTAMP NOT NULL,
            path       VARCHAR   NOT NULL,
            path_bytes BLOB      NOT NULL,
            stage      VARCHAR   NOT NULL,
            message    VARCHAR   NOT NULL,
            errno      INTEGER
        )
        """,
    ],
}

MIGRATIONS[2] = MIGRATION_2
MIGRATIONS[3] = MIGRATION_3
MIGRATIONS[4] = MIGRATION_4
MIGRATIONS[5] = MIGRATION_5
MIGRATIONS[6] = MIGRATION_6

# Version 7 stores a path's raw bytes only where they differ from its UTF-8 display form
# (`path_raw`, NULL otherwise) and computes `path_bytes` from the two on read: the same
# column, same values and same place for readers, and the scan no longer writes every path
# twice. DuckDB cannot turn a column into a computed one, so the table is rebuilt.
FILES_V7 = """
CREATE TABLE files_v7 (
    media_id      UUID      NOT NULL,
    path          VARCHAR   NOT NULL,
    path_bytes    BLOB      GENERATED ALWAYS AS (coalesce(path_raw, encode(path))) VIRTUAL,
    dir           VARCHAR   NOT NULL,
    name          VARCHAR   NOT NULL,
    ext           VARCHAR   NOT NULL,
    size          UBIGINT   NOT NULL,
    mtime_ns      BIGINT    NOT NULL,
    ctime_ns      BIGINT    NOT NULL,
    dev           UBIGINT   NOT NULL,
    inode         UBIGINT   NOT NULL,
    nlink         UBIGINT   NOT NULL,
    kind          VARCHAR   NOT NULL,
    mime          VARCHAR   NOT NULL,
    blake3        VARCHAR,
    status        VARCHAR   NOT NULL,
    first_seen    TIMESTAMP NOT NULL,
    last_seen     TIMESTAMP NOT NULL,
    missing_since TIMESTAMP,
    first_scan_id BIGINT    NOT NULL,
    last_scan_id  BIGINT    NOT NULL,
    path_raw      BLOB
)
"""
# The stored columns of `files`, in table order (what an INSERT lists).
FILES_STORED = ("media_id, path, dir, name, ext, size, mtime_ns, ctime_ns, dev, inode, nlink, kind, mime, blake3, "
                "status, first_seen, last_seen, missing_since, first_scan_id, last_scan_id, path_raw")
MIGRATIONS[7] = [
    FILES_V7,
    f"""
    INSERT INTO files_v7 ({FILES_STORED})
    SELECT {FILES_STORED.replace("path_raw", "CASE WHEN path_bytes IS DISTINCT FROM encode(path) THEN path_bytes END")}
    FROM files
    """,
    "DROP TABLE files",
    "ALTER TABLE files_v7 RENAME TO files",
]


def _derived(base: str, since: int, version: int, *changes: tuple[str, str]) -> str:
    """Version `since`'s `files` table statement as version `version`'s: its table named
    for the new version, each (old, new) text of `changes` replaced. Raises when the old
    text is not there (the base was edited: a published statement must not be)."""
    if any(old not in base for old, _new in changes):
        raise RuntimeError(f"schema {version} is derived from schema {since}'s text, which no longer reads as expected")
    table = base.replace(f"files_v{since}", f"files_v{version}")
    for old, new in changes:
        table = table.replace(old, new)
    return table


def _rebuilt(table: str, version: int, stored: str) -> list[str]:
    """The statements that move `files` into `table` (made by `_derived` for `version`),
    copying the stored columns `stored`, and give it the name `files`. DuckDB changes no
    column's compression or computation in place, and cannot replay an ALTER TABLE of a
    table with computed columns from its write-ahead log: the table is rebuilt."""
    return [
        table,
        f"INSERT INTO files_v{version} ({stored}) SELECT {stored} FROM files",
        "DROP TABLE files",
        f"ALTER TABLE files_v{version} RENAME TO files",
    ]


# Version 8 stores each path once more: as its folder and name, with `path` computed from the
# two. A first scan writes a million paths about 0.7 CPU-seconds faster and the table is
# about 40% smaller; readers see the same columns and values. The folder and name were
# always the parts of the path on either side of its last '/', each decoded on its own,
# which equals decoding the whole (an undecodable byte sequence never spans a '/').
PATH_EXPR = "CASE WHEN dir = '' THEN name WHEN dir = '/' THEN '/' || name ELSE dir || '/' || name END"
# Version 7's table, with `path` computed (and `path_bytes` from the same expression: DuckDB
# computes no column from another computed one).
FILES_V8 = _derived(FILES_V7, 7, 8,
                    ("    path          VARCHAR   NOT NULL,\n",
                     f"    path          VARCHAR   GENERATED ALWAYS AS ({PATH_EXPR}) VIRTUAL,\n"),
                    ("coalesce(path_raw, encode(path))", f"coalesce(path_raw, encode({PATH_EXPR}))"))
FILES_STORED_V7 = FILES_STORED
# The stored columns of `files` since version 8, in table order (what an INSERT lists).
FILES_STORED = FILES_STORED_V7.replace("media_id, path, ", "media_id, ")
MIGRATIONS[8] = _rebuilt(FILES_V8, 8, FILES_STORED)

# Version 9 stores `blake3` uncompressed: a digest is random, so DuckDB's string compression
# (dictionary, FSST) saved about a third of its hex text and cost about a third of a first
# scan's inserts (0.5 CPU-seconds per million hashed rows). Same column, type and values;
# DuckDB cannot change a column's compression in place, so the table is rebuilt.
FILES_V9 = _derived(FILES_V8, 8, 9, ("    blake3        VARCHAR,\n",
                                      "    blake3        VARCHAR   USING COMPRESSION uncompressed,\n"))
MIGRATIONS[9] = _rebuilt(FILES_V9, 9, FILES_STORED)

# Version 10 drops the picture fingerprints made before pictures deeper than 8 bits were
# scaled (a 16-bit scan was clipped to white, so unrelated scans hashed alike) and before
# flat pictures were left unfingerprinted (one colour hashes to 0, a few pixels to
# near-alike values): all such pictures were one another's near-duplicates. The next
# `dupes --similar` fingerprints them again, and near-duplicate groups holding one are
# dropped so that no `dedupe --similar` acts on them.
_SUSPECT_PICTURES = """
    SELECT blake3 FROM image_hashes WHERE phash = 0
    UNION SELECT blake3 FROM media
    WHERE mode IN ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I', 'F') OR width::BIGINT * height < 64
"""
MIGRATIONS[10] = [
    f"""DELETE FROM similar_groups WHERE method = 'phash' AND group_id IN (
        SELECT group_id FROM similar_groups WHERE method = 'phash' AND blake3 IN ({_SUSPECT_PICTURES}))""",
    f"DELETE FROM image_hashes WHERE blake3 IN ({_SUSPECT_PICTURES})",
]

# Version 11 links sidecars to media by their raw bytes where a path is not UTF-8: names
# that differ only in such bytes look alike in `dir` and `name`, and version 2's view
# linked a sidecar to each of them (its keywords became tags of files it does not describe).
MIGRATIONS[11] = [SIDECAR_LINKS_VIEW_V11]

# Version 12 records whether a scan followed symbolic links: a row whose last scan did not,
# and whose path a later scan finds to be a link (or below one), was replaced by the link
# (`dedupe --action symlink` leaves its copies so) and is marked missing; a row an `-L`
# scan found through a link is left alone by scans that skip links. NULL: scans before 12.
MIGRATIONS[12] = ["ALTER TABLE scans ADD COLUMN IF NOT EXISTS follow_links BOOLEAN"]

# Version 13 keeps a scan's roots as their exact bytes too: two roots whose names differ
# only in bytes that are not UTF-8 look alike in `roots`, and telling whether a path lay
# below a scan's roots (a hard link's second name, see `writes._pair_moves`) took one
# for the other. NULL: scans before 13, judged by `roots`.
# It also links sidecars by names as keys (a hash join: version 11's view compared every
# sidecar with every media file of its folder, minutes in folders of many thousands), and
# links Google Takeout's own names: a copy's `photo.jpg(1).json`, JSON names cut to 51
# characters, `.supplemental-metadata` cut short, an edit's `photo-edited.jpg`; names
# compare composed (NFC). And the `library` view takes the date taken, the place and the
# rating from linked sidecars where the file itself has none.
MIGRATIONS[13] = ["ALTER TABLE scans ADD COLUMN IF NOT EXISTS roots_raw BLOB[]", SIDECAR_LINKS_VIEW,
                  LIBRARY_VIEW_V13]

# Version 14 keeps each file's birth time (`btime_ns`, NULL where the file system keeps
# none, and for rows not rewritten since 13). A file made after a vanished row was last
# seen is not that row's file moved, though it may have the row's freed inode number and
# even its size and mtime (`cp -p`, `tar x`): the walk told them apart by the birth time,
# but the pairing after it (of a row gone from one root with a file a scan of another root
# found) had no birth time to look at, and a stranger took the gone file's id and tags
# where the scan did not hash (or both were empty).
# It also dates a video by a linked sidecar (a Takeout JSON, an XMP) before its container's
# creation time, which a re-encode or an export sets to when it ran: the `library` view,
# and the search index, whose next update compares every document again.
# The table is rebuilt, not altered: DuckDB (2.0) cannot replay an ALTER TABLE of a table
# with computed columns from its write-ahead log (it binds `encode` before its functions are
# loaded), so a crash before the next checkpoint left a catalog that would not open.
FILES_V14 = _derived(FILES_V9, 9, 14,
                     ("    path_raw      BLOB\n)", "    path_raw      BLOB,\n    btime_ns      BIGINT\n)"))
FILES_STORED_V8 = FILES_STORED
MIGRATIONS[14] = [
    *_rebuilt(FILES_V14, 14, FILES_STORED_V8),
    LIBRARY_VIEW_V14,
    f"DELETE FROM meta WHERE key = '{SEARCH_SYNCED}'",
    MIGRATION_14_MEDIA,
]
# The stored columns of `files` since version 14, in table order (what an INSERT lists).
FILES_STORED = FILES_STORED_V8 + ", btime_ns"

# Version 15 drops the video fingerprints of HDR videos (PQ, HLG), made before their frames
# were mapped to SDR light as the thumbnails are: they were hashes of the signal read as if
# it were SDR, further from an SDR copy's than the frames' look is, and some were found all
# flat. So it does those of videos of 6 to 9 s, whose first 3 s were left out past 6 s
# and not at all up to it (a 6.0 s clip and its 6.02 s copy compared other frames); now
# what is left out grows with the length. Their `fingerprint` notes and errors go with
# them, and near-duplicate groups holding one (no `dedupe --similar` acts on them); the
# next scan, `meta` or `dupes --similar` fingerprints them again (`fingerprints_pending`).
_REFINGERPRINT = "SELECT blake3 FROM media WHERE kind = 'video' AND (hdr OR duration > 5.9 AND duration < 9.1)"


def _fingerprints_again(picked: str, table: str = "video_hashes", method: str = "video") -> list[str]:
    """Statements that drop the fingerprints (rows of `table`) of the contents `picked`
    (SQL giving their `blake3`), with their `fingerprint` notes and the near-duplicate
    groups (of `method`) holding one, and mark fingerprints pending: the next scan, `meta`
    or `dupes --similar` makes them again. The fingerprints go last: `picked` may read them."""
    return [
        f"INSERT OR REPLACE INTO meta SELECT 'fingerprints_pending', '1' WHERE EXISTS ({picked})",
        f"""DELETE FROM similar_groups WHERE method = '{method}' AND group_id IN (
        SELECT group_id FROM similar_groups WHERE method = '{method}' AND blake3 IN ({picked}))""",
        f"DELETE FROM meta_errors WHERE stage = 'fingerprint' AND blake3 IN ({picked})",
        f"DELETE FROM {table} WHERE blake3 IN ({picked})",
    ]


MIGRATIONS[15] = _fingerprints_again(_REFINGERPRINT)

# Version 16: a sidecar whose name matches a file's exactly describes only the files it
# matches so. Names compare whatever their case and Unicode form, and `Pic.jpg.xmp` beside
# `pic.jpg.xmp` (two photos whose names differ in case, or `café` composed and
# decomposed) described both photos: each got the other's keywords, which `xmp export`
# then wrote into its sidecar. (Version 13 makes the view as it is now; this brings the
# catalogs made before.) The next XMP import takes back what was imported so
# (`xmp._untwin`, told by this `meta` key).
MIGRATIONS[16] = [SIDECAR_LINKS_VIEW,
                  "INSERT OR REPLACE INTO meta SELECT 'xmp_twins_repair', '1' WHERE EXISTS (SELECT 1 FROM xmp_imports)"]

# Version 17: sound alone in ASF named `.wma` was filed as a video, and in Matroska or
# WebM named `.mka`/`.weba` by versions before those were told apart; a file is judged
# again only when it changes, so the rows a scan made so say `audio` now, in `files` and
# in `media`. The search index, which filters by kind, compares every document at its
# next update (its in-step mark goes) where any row changed.
_SOUND_NAMED = """(lower(ext) = 'wma' AND mime = 'video/x-ms-wmv' OR lower(ext) = 'mka' AND mime = 'video/x-matroska'
                   OR lower(ext) = 'weba' AND mime = 'video/webm')"""
MIGRATIONS[17] = [
    f"DELETE FROM meta WHERE key = '{SEARCH_SYNCED}' AND EXISTS (SELECT 1 FROM files WHERE {_SOUND_NAMED})",
    f"UPDATE media SET kind = 'audio' WHERE kind = 'video' AND blake3 IN (SELECT blake3 FROM files WHERE {_SOUND_NAMED})",
    f"""UPDATE files SET kind = 'audio', mime = CASE lower(ext) WHEN 'wma' THEN 'audio/x-ms-wma'
        WHEN 'mka' THEN 'audio/x-matroska' ELSE 'audio/webm' END WHERE {_SOUND_NAMED}""",
]

# Version 18 stores `files.name` compressed with zstd. DuckDB's default for text (a
# dictionary, else FSST) finds no repeats in file names and then trains FSST's symbol table
# on them: 0.22 CPU-seconds per million new rows, a sixth of a first scan's catalog write.
# zstd takes 0.10 and stores them in about as much room (10 MiB against 9 per million
# names), and reads back as fast. Same column, type and values; DuckDB cannot change a
# column's compression in place, so the table is rebuilt, as for version 14.
FILES_V18 = _derived(FILES_V14, 14, 18, ("    name          VARCHAR   NOT NULL,\n",
                                         "    name          VARCHAR   NOT NULL USING COMPRESSION zstd,\n"))
MIGRATIONS[18] = _rebuilt(FILES_V18, 18, FILES_STORED)

# Version 19: WMA (ASF) tags were looked up by Vorbis comment names and came back empty,
# a WMA cut short read as whole (libav measures an ASF file by what it holds), and the GPS
# coordinates of XMP sidecars were not read. Their `media` rows go, so the next scan (whose
# look for contents to extract runs after any migration) or `meta` extracts them again;
# the search index takes what extractions write, as always.
MIGRATIONS[19] = [
    "DELETE FROM media WHERE format = 'asf' OR blake3 IN (SELECT blake3 FROM sidecars WHERE format = 'xmp')",
]

# Version 20: an MP3's APEv2 tag (mp3gain's ReplayGain, foobar2000's tags) was read only
# for its gains, and only beside an ID3 tag: an MP3 with no ID3 tag lost them, and one
# whose ID3 tag holds no title (ffmpeg's, of one `TSSE` frame) the tags APEv2 held. The
# `media` rows of MP3 contents with no title go, to be extracted again as for version 19;
# a titled one's ID3 tag was read, and its gains taken from APEv2 where it had none.
# It also makes `sidecar_links` anew: a photo with a copy number Takeout gave it after
# cutting its long name (`<cut>(1).jpg`) goes by the JSON name `<46 characters>(1).json`,
# not by its original's, whose JSON described both while its own described neither.
MIGRATIONS[20] = [
    "DELETE FROM media WHERE format = 'mp3' AND blake3 NOT IN (SELECT blake3 FROM tags_audio WHERE title IS NOT NULL)",
    SIDECAR_LINKS_VIEW,
    # The search index compares every document again at its next update (a relinked
    # photo's year may come from another JSON now), where the catalog holds any JSON.
    f"DELETE FROM meta WHERE key = '{SEARCH_SYNCED}' AND EXISTS (SELECT 1 FROM files WHERE kind = 'sidecar' "
    "AND lower(ext) = 'json')",
]

# Version 21: `xmp_imports.sidecar_id`, the sidecar file a recorded content was, and
# `xmp_imports.scan_id`. Rows from before name no sidecar; a scan's import gives a sidecar
# with no rows of its own the ones of its current content (see `organise.xmp._adopt`).
MIGRATIONS[21] = MIGRATION_21_XMP

# Version 22: `media.bit_depth` and `streams.bit_depth` hold the bits per sample of sound
# (of the sound alone for `media`: a video's is its picture's), for PCM and lossless
# codecs. PCM states them in its codec's name, so its rows take them here; a lossless
# codec's header holds them, so the `media` rows of sound-alone FLAC, ALAC, WavPack... go,
# to be extracted again as for version 19.
_PCM_BITS = ("CASE WHEN regexp_full_match({c}, 'pcm_[suf](8|16|24|32|64)(le|be|_planar|le_planar|be_planar)?') "
             "AND {c} NOT IN ('pcm_mulaw', 'pcm_alaw', 'pcm_vidc') "
             "THEN regexp_extract({c}, 'pcm_[suf]([0-9]+)', 1)::INTEGER END")
MIGRATIONS[22] = [
    "UPDATE streams SET bit_depth = " + _PCM_BITS.format(c="codec") + " WHERE type = 'audio' AND bit_depth IS NULL",
    "UPDATE media SET bit_depth = " + _PCM_BITS.format(c="audio_codec")
    + " WHERE video_codec IS NULL AND bit_depth IS NULL AND audio_codec LIKE 'pcm%'",
    "DELETE FROM media WHERE video_codec IS NULL AND bit_depth IS NULL AND audio_codec IN "
    "('flac', 'alac', 'wavpack', 'ape', 'tta', 'mlp', 'truehd', 'shorten', 'tak')",
]

# Version 23: `image_hashes.grey`, whether a picture has no colour, by its pixels, and
# `image_hashes.chroma`, its colour layout (see `media_tables.IMAGE_HASHES_V23`).
# Pictures hashed before keep NULL: the mode tells, and no colours are compared.
MIGRATIONS[23] = MIGRATION_23

# Version 24 (a QA pass): a video named as another format's sound (an MP4 named `.flac`, a
# Matroska file `.mp3`) was filed as `audio`, with no thumbnail nor fingerprint: a
# container is sound by its own names alone now (`.m4a`, `.mka`, `.weba`, `.wma`). Its rows
# say `video` (an MP4's where its `media` row shows pictures, whatever its name: its
# brands are not in the catalog), and its `media` rows go, to be extracted again as for version 19, thumbnail and
# fingerprint included; the search index compares every document again. The `media` rows
# of FLAC and ALAC sound with no bit depth (in Matroska, which the tag reader does not
# read) go too, as do those of MP3s called cut short for holding more than their first
# part's Xing frame states (MP3s joined end to end).
_MISNAMED_VIDEO = """(kind = 'audio' AND (
    mime IN ('audio/x-matroska', 'audio/webm') AND lower(ext) NOT IN ('mka', 'weba')
    OR mime = 'audio/x-ms-wma' AND lower(ext) <> 'wma'
    OR mime = 'audio/mp4' AND blake3 IN (SELECT blake3 FROM media WHERE video_codec IS NOT NULL)))"""
MIGRATIONS[24] = [
    f"DELETE FROM meta WHERE key = '{SEARCH_SYNCED}' AND EXISTS (SELECT 1 FROM files WHERE {_MISNAMED_VIDEO})",
    f"""UPDATE files SET kind = 'video', mime = CASE mime WHEN 'audio/x-matroska' THEN 'video/x-matroska'
        WHEN 'audio/webm' THEN 'video/webm' WHEN 'audio/x-ms-wma' THEN 'video/x-ms-wmv' ELSE 'video/mp4' END
        WHERE {_MISNAMED_VIDEO}""",
    "DELETE FROM media WHERE kind = 'audio' AND blake3 IN (SELECT blake3 FROM files WHERE kind = 'video')",
    "DELETE FROM media WHERE video_codec IS NULL AND bit_depth IS NULL AND audio_codec IN ('flac', 'alac')",
    "DELETE FROM media WHERE format = 'mp3' AND status = 'partial' AND blake3 IN (SELECT blake3 FROM meta_errors "
    "WHERE stage = 'decode' AND message LIKE 'the sound ends at % s the file claims: cut short?')",
]

# Version 25: an ISO, Matroska or WebM file filed as sound by its brands or its name
# (`.m4a`, `.mka`, `.weba`) whose tracks list a video is a video (the scan reads its
# tracks), as is an Ogg file whose first stream is not its video (a Skeleton track, the
# sound first): where its `media` row shows pictures, its rows say `video`, and its
# `media` rows (those of the contents refiled, no others) go, to be extracted again with
# thumbnail and fingerprint. A still read by libav's image reader has the format's own
# name (`png`, `jpeg`), not the reader's (`png_pipe`, `image2`). An edit's copy of a long
# name (`<name>-edited.jpg`) shares its original's JSON when Takeout cut that JSON's
# name, too. The search index compares every document again where any of these changed.
_SOUND_NAMED_VIDEO = """(kind = 'audio' AND mime IN ('audio/x-matroska', 'audio/webm', 'audio/mp4', 'audio/ogg',
                                               'audio/opus')
    AND blake3 IN (SELECT blake3 FROM media WHERE video_codec IS NOT NULL))"""
_READER_NAMED = "(format LIKE '%\\_pipe' ESCAPE '\\' OR format = 'image2' AND kind IN ('image', 'raw'))"
MIGRATIONS[25] = [
    f"CREATE OR REPLACE TEMP TABLE refiled_25 AS SELECT DISTINCT blake3 FROM files WHERE {_SOUND_NAMED_VIDEO}",
    f"""DELETE FROM meta WHERE key = '{SEARCH_SYNCED}' AND (EXISTS (SELECT 1 FROM refiled_25)
        OR EXISTS (SELECT 1 FROM media WHERE {_READER_NAMED})
        OR EXISTS (SELECT 1 FROM files WHERE kind = 'sidecar' AND lower(ext) = 'json'))""",
    f"""UPDATE files SET kind = 'video', mime = CASE mime WHEN 'audio/x-matroska' THEN 'video/x-matroska'
        WHEN 'audio/webm' THEN 'video/webm' WHEN 'audio/ogg' THEN 'video/ogg' WHEN 'audio/opus' THEN 'video/ogg'
        ELSE 'video/mp4' END WHERE {_SOUND_NAMED_VIDEO}""",
    "DELETE FROM media WHERE blake3 IN (SELECT blake3 FROM refiled_25)",
    "DROP TABLE refiled_25",
    f"""UPDATE media SET format = CASE WHEN format = 'image2' THEN CASE video_codec WHEN 'mjpeg' THEN 'jpeg'
        ELSE coalesce(video_codec, format) END ELSE regexp_replace(format, '_pipe$', '') END WHERE {_READER_NAMED}""",
    SIDECAR_LINKS_VIEW,
]

# Version 26 drops the fingerprints of videos shown turned (a display matrix or `rotate`
# tag: a phone's portrait clip, stored on its side), made before frames were turned as
# players show them: a re-encode that turned its pixels upright (as FFmpeg does by
# default) lay about 30 bits from its original. With them go their `fingerprint` notes
# and the near-duplicate groups holding one; the next scan, `meta` or `dupes --similar`
# makes them again (`fingerprints_pending`), as for version 15. A turn not known (NULL:
# Matroska, WebM, AVI extracted without a thumbnail) is none: such a file has no `rotate`
# tag, which the extraction reads, and a display matrix in them is rare; nor is a flip
# with no turn (rotation 0) stored anywhere: those keep their fingerprints.
_TURNED = ("SELECT blake3 FROM media WHERE kind = 'video' AND rotation <> 0 "
           "AND blake3 IN (SELECT blake3 FROM video_hashes)")
MIGRATIONS[26] = _fingerprints_again(_TURNED)

# Version 27 drops the fingerprints of pictures that may be transparent (a mode with
# alpha, or a palette, whose transparent colour the catalog does not keep), made before
# such a picture was hashed as a viewer shows it (over white, or over black where on white
# it would be flat): they were hashed over black where a thumbnail was made and over the
# colours hidden under their transparent pixels where not, so a logo matched neither its
# copy hashed the other way nor one flattened on white. With them go their `fingerprint`
# notes (a picture found flat may not be so now) and near-duplicate groups holding one,
# as for version 15; so do the stills libav decoded (AVIF or HEIC without Pillow's plugin:
# no mode), whose transparency came the same way. A grey or RGB PNG with a transparent
# colour (tRNS) has no alpha mode to tell it by: `mediaforge thumbs` hashes it again.
# It also drops the `media` rows of sound in a bare stream with no stated length (ADTS
# AAC, raw AC-3, E-AC-3, DTS), whose length was libav's guess from the first frames'
# bitrate (a 150 s song with a near-silent start read 168 s; one with a silent start
# 2,657 s), to be extracted again as for version 19: their packets tell now.
_SEE_THROUGH = ("SELECT blake3 FROM media WHERE kind = 'image' AND (mode IN ('RGBA', 'RGBa', 'LA', 'La', 'PA', 'P') "
                "OR mode IS NULL AND video_codec IS NOT NULL)")
MIGRATIONS[27] = [*MIGRATION_27_FINE, *_fingerprints_again(_SEE_THROUGH, "image_hashes", "phash"),
                  "DELETE FROM media WHERE format IN ('aac', 'ac3', 'eac3', 'dts') AND video_codec IS NULL"]

# Version 28 knows more names (see `rust/core/src/kind.rs`): formats that start with no
# signature the scan sniffs were `other` (`application/octet-stream`) and never read:
# raw AC-3, E-AC-3, DTS-HD and TrueHD sound (a film's soundtrack pulled out of it), AMR,
# CAF, TTA, Musepack, Sun audio, Wave64, RealAudio; DV, MPEG-2 elementary streams,
# RealMedia; PPM and its kin, Targa, PCX, QOI, DDS, OpenEXR, JPEG XR; Minolta's RAW.
# (Raw DTS `.dts`, Radiance `.hdr` and float PFM `.pfm` share their names with text and
# other files: they go by their signatures, and a row filed before stays as it is until
# its file changes.)
# Their rows take the kind and MIME type their names give now (the next scan extracts
# them); so do the TIFF-based RAWs of Epson, Kodak, Leaf, Mamiya, Hasselblad and GoPro,
# filed as `image/tiff` until now, whose `media` rows (their first TIFF page's) go, to be
# extracted again as RAWs as for version 19. The search index compares every document
# again where any row changed. (Names of formats the scan tells by their first bytes, an
# `.m4r` or `.f4v` MP4 say, were filed rightly whenever the file was read.)
# It also adds the colours of each video fingerprint frame (`video_hashes.grey`,
# `video_hashes.chroma`, see `media_tables.VIDEO_HASHES_V28`) and drops the fingerprints
# of the videos the last `dupes --similar --kind video` grouped, with those groups, as for
# version 15, so the next scan, `meta` or `dupes --similar` makes them again with their
# colours: clips of one layout in other colours grouped. Others keep theirs (NULL
# colours) until `dupes --similar` finds them in a pair, as making every video's again
# would cost hours on a large library. And a song's `year` in `library` and in the search
# index is its tags' (`media_tables.year_sql`), not the year its file was written. And
# the videos whose fingerprint failed on data libav refused are fingerprinted again.
_NAMED_28 = (
    ("ac3", "audio", "audio/ac3"), ("eac3", "audio", "audio/eac3"), ("ec3", "audio", "audio/eac3"),
    ("dtshd", "audio", "audio/vnd.dts"), ("thd", "audio", "audio/vnd.dolby.mlp"),
    ("mlp", "audio", "audio/vnd.dolby.mlp"), ("amr", "audio", "audio/amr"), ("awb", "audio", "audio/amr-wb"),
    ("caf", "audio", "audio/x-caf"), ("tta", "audio", "audio/x-tta"), ("mpc", "audio", "audio/x-musepack"),
    ("au", "audio", "audio/basic"), ("w64", "audio", "audio/x-w64"), ("ra", "audio", "audio/x-pn-realaudio"),
    ("m4r", "audio", "audio/mp4"), ("spx", "audio", "audio/ogg"),
    ("dv", "video", "video/x-dv"), ("m2v", "video", "video/mpeg"), ("mpe", "video", "video/mpeg"),
    ("rm", "video", "application/vnd.rn-realmedia"), ("rmvb", "video", "application/vnd.rn-realmedia"),
    ("f4v", "video", "video/mp4"), ("insv", "video", "video/mp4"), ("lrv", "video", "video/mp4"),
    ("mk3d", "video", "video/x-matroska"), ("divx", "video", "video/x-msvideo"), ("ogm", "video", "video/ogg"),
    ("apng", "image", "image/apng"), ("heics", "image", "image/heic-sequence"),
    ("heifs", "image", "image/heif-sequence"), ("avifs", "image", "image/avif"), ("tga", "image", "image/x-tga"),
    ("pcx", "image", "image/x-pcx"), ("ppm", "image", "image/x-portable-pixmap"),
    ("pgm", "image", "image/x-portable-graymap"), ("pbm", "image", "image/x-portable-bitmap"),
    ("pnm", "image", "image/x-portable-anymap"),
    ("qoi", "image", "image/qoi"), ("dds", "image", "image/vnd.ms-dds"), ("exr", "image", "image/x-exr"),
    ("jxr", "image", "image/jxr"), ("wdp", "image", "image/jxr"),
    ("hdp", "image", "image/jxr"),
    ("rwl", "raw", "image/x-leica-rwl"), ("mrw", "raw", "image/x-minolta-mrw"), ("erf", "raw", "image/x-epson-erf"),
    ("kdc", "raw", "image/x-kodak-kdc"), ("dcr", "raw", "image/x-kodak-dcr"), ("mos", "raw", "image/x-leaf-mos"),
    ("mef", "raw", "image/x-mamiya-mef"), ("fff", "raw", "image/x-hasselblad-fff"),
    ("gpr", "raw", "image/x-gopro-gpr"),
)
# Which rows of `f` take their name's class: those no signature told (`.dcr` is Kodak's
# RAW only when it is a TIFF: a Shockwave movie shares the name), and TIFF-based RAWs.
_NAMED_WHERE_28 = ("({f}.mime = 'application/octet-stream' AND n.ext <> 'dcr' "
                   "OR n.kind = 'raw' AND {f}.mime = 'image/tiff')")
_REFILED_28 = f"""(SELECT f.blake3, n.kind, n.mime, f.mime AS was FROM files f JOIN named_28 n USING (ext)
    WHERE {_NAMED_WHERE_28.format(f="f")})"""
MIGRATIONS[28] = [
    "CREATE OR REPLACE TEMP TABLE named_28 (ext VARCHAR, kind VARCHAR, mime VARCHAR)",
    "INSERT INTO named_28 VALUES " + ", ".join(str(row) for row in _NAMED_28),
    f"DELETE FROM meta WHERE key = '{SEARCH_SYNCED}' AND EXISTS {_REFILED_28}",
    f"DELETE FROM media WHERE blake3 IN (SELECT blake3 FROM {_REFILED_28} WHERE was = 'image/tiff')",
    "UPDATE files SET kind = n.kind, mime = n.mime FROM named_28 n WHERE files.ext = n.ext AND "
    + _NAMED_WHERE_28.format(f="files"),
    "DROP TABLE named_28",
    *MIGRATION_28_VIDEO,
    # (Kept aside: the groups go before the fingerprints, which `picked` then finds.)
    "CREATE OR REPLACE TEMP TABLE grouped_28 AS SELECT DISTINCT blake3 FROM similar_groups WHERE method = 'video'",
    *_fingerprints_again("SELECT blake3 FROM grouped_28"),
    "DROP TABLE grouped_28",
    LIBRARY_VIEW_V28,
    f"DELETE FROM meta WHERE key = '{SEARCH_SYNCED}' AND EXISTS (SELECT 1 FROM tags_audio WHERE year IS NOT NULL)",
    # Videos whose fingerprint failed on data libav refused (a stretch overwritten): made
    # again, that frame left out (see `probe._frame_after`).
    """CREATE OR REPLACE TEMP TABLE refused_28 AS SELECT DISTINCT blake3 FROM meta_errors
       WHERE stage = 'fingerprint' AND message LIKE 'InvalidDataError:%'
         AND blake3 IN (SELECT blake3 FROM media WHERE kind = 'video')""",
    *_fingerprints_again("SELECT blake3 FROM refused_28"),
    "DROP TABLE refused_28",
]

# Version 29: a sound whose ID3 tag was read with no help from its stream (an MP3 whose
# sound is lost, an ADTS AAC file) took its first text frame's value as its date (its
# title, say "1999 Remix": year 1999; or its length, `TLEN` "215000": year 2150), not its
# `TDRC` frame's. The `media` rows of sound whose date is another of its tags, or is no
# date as ID3 writes one (2019, 2019-05, 2019-05-04, 2019-05-04T10:00), go, to be
# extracted again as for version 19 (the few others this takes read as they did). So do
# those of FLAC contents whose tags could not be read (mutagen refuses a whole file whose
# stream header states a sample rate of 0): their tags and cover are read now from the
# blocks after the header, and their length is what they decode to. And those of XMP
# sidecars, as for version 19: the keywords and dates of documents a packet embeds
# (Photoshop's `xmpMM:Pantry`) were read as the photo's, and darktable's own tags
# (`darktable|format|cr2`) as keywords; the tags those made (`darktable/...`, from XMP)
# go, and the search index compares every document again where any did.
MIGRATIONS[29] = [
    f"""DELETE FROM meta WHERE key = '{SEARCH_SYNCED}' AND EXISTS
        (SELECT 1 FROM tags WHERE source = 'xmp' AND starts_with(tag, 'darktable/'))""",
    "DELETE FROM tags WHERE source = 'xmp' AND starts_with(tag, 'darktable/')",
    "DELETE FROM media WHERE blake3 IN (SELECT blake3 FROM sidecars WHERE format = 'xmp')",
    r"""DELETE FROM media WHERE blake3 IN (SELECT blake3 FROM tags_audio WHERE date IS NOT NULL
       AND (date IN (title, artist, album, album_artist, genre, composer)
            OR NOT regexp_full_match(trim(date), '[0-9]{4}(-[0-9]{2}(-[0-9]{2}([T ][0-9]{2}(:[0-9]{2}){0,2})?)?)?')))""",
    "DELETE FROM media WHERE format = 'flac' AND blake3 IN (SELECT blake3 FROM meta_errors WHERE stage = 'tags')",
]

# Version 30: the `media` rows of videos in Matroska (and WebM) go, to be extracted again
# as for version 19: their `DATE_RECORDED` tag, the day a clip was shot, was not read, and
# a file mkvmerge remuxed took the day of the remux (its creation time) for it. So do
# those of arithmetic-coded JPEGs refused as cut short or failed as "broken data stream"
# (they are read whole now), and of Ogg sound with no cover, whose older `COVERART`
# comment was not read. And of pictures whose EXIF gave no date, which EXIF's
# DateTimeDigitized may give now. (A picture with no EXIF whose own XMP packet gives a date
# keeps no date until its content is extracted again: to look for one, every undated
# picture, screenshots and all, would be read again.)
_ASPECTS_30 = ((1, 1), (5, 4), (4, 3), (3, 2), (8, 5), (16, 9), (37, 20), (2, 1), (64, 27), (7, 3), (12, 5))
_RATIO_30 = "(TRY_CAST(split_part({c}, ':', 1) AS DOUBLE) / TRY_CAST(split_part({c}, ':', 2) AS DOUBLE))"
MIGRATIONS[30] = [
    # A stream's shown shape within 0.5% of a common one, not in small numbers of its own
    # (853:480, mkvmerge's 16:9 for a DVD rip), is that one (see `probe.COMMON_ASPECTS`).
    "CREATE OR REPLACE TEMP TABLE aspects_30 (a INTEGER, b INTEGER)",
    "INSERT INTO aspects_30 VALUES " + ", ".join(f"({a}, {b}), ({b}, {a})" for a, b in _ASPECTS_30 if a != b) + ", (1, 1)",
    f"""UPDATE streams SET display_aspect = (
            SELECT a || ':' || b FROM aspects_30
            WHERE abs({_RATIO_30.format(c="streams.display_aspect")} / (a / b) - 1) < 0.005
            ORDER BY abs({_RATIO_30.format(c="streams.display_aspect")} / (a / b) - 1) LIMIT 1)
        WHERE regexp_full_match(display_aspect, '[0-9]+:[1-9][0-9]*')
          AND greatest(TRY_CAST(split_part(display_aspect, ':', 1) AS DOUBLE),
                       TRY_CAST(split_part(display_aspect, ':', 2) AS DOUBLE)) > 100
          AND EXISTS (SELECT 1 FROM aspects_30
                      WHERE abs({_RATIO_30.format(c="streams.display_aspect")} / (a / b) - 1) < 0.005)""",
    "DROP TABLE aspects_30",
    # A smart collection over `last_seen` is no search word now (every scan moves it on for
    # files it does not index again): the index compares every document again.
    f"""DELETE FROM meta WHERE key = '{SEARCH_SYNCED}' AND EXISTS
        (SELECT 1 FROM collections WHERE kind = 'smart' AND predicate ILIKE '%last_seen%')""",
    "DELETE FROM media WHERE kind = 'image' AND blake3 IN (SELECT blake3 FROM exif WHERE taken_at IS NULL)",
    "DELETE FROM media WHERE kind = 'video' AND format IN ('matroska', 'webm')",
    # Phone videos: their make, model and place make an `exif` row now. Those with a
    # capture time of their phone's own (QuickTime's; it differs from the UTC creation
    # time) are extracted again; other videos have no row until their content is.
    """DELETE FROM media WHERE kind = 'video' AND format IN ('mov', 'mp4') AND taken_at IS DISTINCT FROM created_at
       AND taken_at IS NOT NULL
       AND blake3 NOT IN (SELECT blake3 FROM exif)""",
    """DELETE FROM media WHERE format = 'jpeg' AND status = 'partial' AND blake3 IN
       (SELECT blake3 FROM meta_errors WHERE stage = 'decode'
        AND (message LIKE '%bytes are too few for%' OR message LIKE '%broken data stream%'))""",
    "DELETE FROM media WHERE format = 'ogg' AND blake3 IN (SELECT blake3 FROM tags_audio WHERE NOT has_cover)",
]

# Version 31: an Android phone's video that gives its place is dated on the clock of that
# place (see `probe.android_local_time`), where its creation time, UTC, stood for its
# capture time. The `media` rows of MP4 and MOV videos with a place and no capture time of
# their own go, to be extracted again as for version 19 (those of other devices come out
# as they were).
MIGRATIONS[31] = [
    """DELETE FROM media WHERE kind = 'video' AND format IN ('mov', 'mp4') AND taken_at = created_at
       AND blake3 IN (SELECT blake3 FROM exif WHERE gps_lat IS NOT NULL AND taken_at IS NULL)""",
]

# Tables every version-1+ catalog has; used to tell a MediaForge catalog from another
# DuckDB file.
CORE_TABLES = ("meta", "files", "scans", "scan_errors")
# Tables a catalog at the current version has (and `export` writes).
ALL_TABLES = (CORE_TABLES + tuple(TABLES) + tuple(TABLES_V3) + tuple(TABLES_V4) + tuple(TABLES_V5)
              + tuple(TABLES_V6))


def schema_statements(con) -> list[str]:  # noqa: ANN001 - a DuckDB connection
    """The statements that make, in one go, the empty catalog `con` holds: its tables in
    the order they were made (as DuckDB states them now, every migration's change folded
    in), then its views, then its `meta` rows. What `fresh.py` holds for the current
    version, made from a catalog migrated from empty."""
    tables = con.execute("SELECT table_name, sql FROM duckdb_tables() WHERE schema_name = 'main' "
                         "AND NOT temporary ORDER BY table_oid").fetchall()
    for name, _sql in tables:
        if name != "meta" and con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]:
            raise ValueError(f"table {name} is not empty: only an empty catalog's schema can be stated")
    out = [sql for _name, sql in tables]
    views = con.execute("SELECT view_name, sql FROM duckdb_views() WHERE schema_name = 'main' "
                        "AND NOT internal AND NOT temporary ORDER BY view_oid").fetchall()
    # A view replaced by a later migration is younger than the views that read it: each
    # goes after those it names.
    placed: list[str] = []
    while views:
        ready = [v for v in views if not any(re.search(rf'\b"?{re.escape(other)}"?\b', v[1])
                                             for other, _ in views if other != v[0])]
        if not ready:
            raise ValueError("the catalog's views name each other in a circle")
        placed += [sql for _name, sql in ready]
        views = [v for v in views if v not in ready]
    out += placed
    for kind, where in (("index", "duckdb_indexes()"), ("sequence", "duckdb_sequences()"),
                        ("macro", "duckdb_functions() WHERE NOT internal")):
        if con.execute(f"SELECT count(*) FROM {where}").fetchone()[0]:
            raise ValueError(f"the catalog holds a {kind}: schema_statements does not state those yet")
    rows = con.execute("SELECT key, value FROM meta ORDER BY key").fetchall()
    if rows:
        values = ", ".join("({}, {})".format(*(_sql_text(v) for v in row)) for row in rows)
        out.append(f"INSERT INTO meta VALUES {values}")
    return out


def _literal(text: str, width: int = 96) -> str:
    """`text` as a Python string literal in a tuple, cut into lines of `width` characters."""
    parts = [repr(text[i:i + width]) for i in range(0, len(text), width)] or ["''"]
    return "    " + "\n    ".join(parts) + ",\n"


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def render_fresh() -> str:
    """The text of `fresh.py` for the current version: the migrations replayed into an
    in-memory database, then stated (`schema_statements`)."""
    import duckdb  # noqa: PLC0415 - only when generating

    con = duckdb.connect()
    try:
        for version in range(1, SCHEMA_VERSION + 1):
            for stmt in MIGRATIONS[version]:
                con.execute(stmt)
            con.execute("INSERT OR REPLACE INTO meta VALUES ('application', ?), ('schema_version', ?)",
                        [APPLICATION, str(version)])
        statements = schema_statements(con)
    finally:
        con.close()
    body = "".join(_literal(s) for s in statements)
    return (
        '"""The catalog\'s schema at its latest version, as the statements that make a new\n'
        "catalog in one go: replaying every migration costs a first command about 0.1 s of\n"
        "DuckDB DDL. Generated from the migrations by `python scripts/fresh_schema.py`, never\n"
        "edited by hand; tests/test_fresh_schema.py checks that it is in step with them and\n"
        'that a catalog made from it equals one migrated from empty, object by object."""\n'
        "\n"
        f"VERSION = {SCHEMA_VERSION}\n"
        "\n"
        "STATEMENTS = (\n"
        f"{body}"
        ")\n"
    )
