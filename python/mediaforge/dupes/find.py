"""Finding duplicate groups in the catalog.

Exact: present files sharing a BLAKE3 digest, from the catalog alone (nothing is read
again). Hard links to one inode are one copy on disk, so they count once towards the
bytes a dedupe could reclaim.

Similar: one pHash per image content (`image_hashes`, made by the decode that makes the
thumbnail); the Rust core finds every pair within the radius without comparing all pairs
and forms groups in which every member is within the radius of its group's leader. The
groups are written to `similar_groups` (replacing the previous run's) so they can be
queried with SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .. import _core
from ..catalog import Catalog
from ..catalog.media_tables import arrow_schema, columns
from ..catalog.meta_writes import EXTRACTED_THROUGH
from ..catalog.schema import KINDS
from ..catalog.writes import utcnow
from ..errors import InvalidInputError
from ..meta import AUDIO_FINGERPRINT_SECONDS
from ..meta.readers import GREY_MODES

# Bytes of the finer pHash (`image_hashes.phash256`).
FINE_BYTES = 32

DEFAULT_RADIUS = 8


def fine_radius(radius: int) -> int:
    """How many of the 256 bits of the finer pHash (`image_hashes.phash256`) two pictures
    within `radius` bits of the 64-bit one may differ in and still be a pair: 56 at the
    default 8. A copy recompressed, resized, brightened or darkened by a third stays
    within about 30, one cropped by 2% a side within about 50; pages of one layout and
    screenshots of one app, a few bits apart in 64, lie about 70 apart here, unrelated
    pictures about 128. It grows with `radius`, so a loose threshold stays loose."""
    return 24 + 4 * radius


# Sidecars are left out unless asked for by kind: two photos tagged alike get sidecars
# with the same bytes, each its own photo's, never copies to link together (an editor
# saving one in place would change the other photo's).
NOT_BY_DEFAULT = "AND kind <> 'sidecar'"


def _kind_filter(kind: str | None) -> tuple[str, list[Any]]:
    if kind is None:
        return NOT_BY_DEFAULT, []
    if kind not in KINDS:
        raise InvalidInputError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
    return "AND kind = ?", [kind]


def _funnel_candidates(columns: str, kind: str | None) -> tuple[str, list[Any]]:
    """SQL over present files sharing a size with another present file (another inode:
    the names of one file are no copies, and hard-linked trees, as media servers make
    them, would be read whole for nothing), where at least one of that size has no digest
    yet: what the exact funnel looks at."""
    where, params = _kind_filter(kind)
    return f"""
        SELECT {columns} FROM files
        WHERE status = 'present' {where} AND size > 0 AND size IN (
            SELECT size FROM files WHERE status = 'present' {where} GROUP BY size
            HAVING count(DISTINCT (dev, inode)) > 1 AND count(*) FILTER (WHERE blake3 IS NULL) > 0)
        """, params + params


def unhashed(cat: Catalog, kind: str | None = None) -> int:
    """Present files without a digest (a `scan --no-hash`) that share a size with
    another present file: the ones `hash_candidates` would hash."""
    sql, params = _funnel_candidates("count(*) FILTER (WHERE blake3 IS NULL)", kind)
    return cat.con.sql(sql, params=params).fetchall()[0][0]


def hash_candidates(cat: Catalog, kind: str | None = None) -> dict[str, Any]:
    """Give a digest to every unhashed file that may have a copy, reading as little as
    possible (the Rust core's size, prefix, suffix, full-hash funnel) and store it in
    `files.blake3`; files proven unique stay unhashed. Returns the funnel's counts plus
    `stored` (digests written) and `changed`/`failed` (files to rescan or that could not
    be read)."""
    sql, params = _funnel_candidates("path_bytes, size, mtime_ns, dev, inode, blake3", kind)
    files = cat.con.sql(sql + " ORDER BY path_bytes", params=params).to_arrow_table()
    out, counts = _core.exact_funnel(files)
    verdicts = pa.record_batch(out)
    fresh = pc.and_(pc.equal(verdicts.column("verdict"), "digest"), files.column("blake3").is_null())
    found = pa.table({
        "path_bytes": files.column("path_bytes").filter(fresh),
        "size": files.column("size").filter(fresh),
        "mtime_ns": files.column("mtime_ns").filter(fresh),
        "blake3": verdicts.column("blake3").filter(fresh),
    })
    if found.num_rows:
        with cat.registered("mf_funnel", found), cat.transaction() as con:
            con.execute(
                "UPDATE files SET blake3 = d.blake3 FROM mf_funnel d "
                "WHERE files.path_bytes = d.path_bytes AND files.status = 'present' AND files.blake3 IS NULL "
                "AND files.size = d.size AND files.mtime_ns = d.mtime_ns"
            )
            # Contents a scan has not seen: the next scan looks for contents to extract.
            con.execute("DELETE FROM meta WHERE key = ?", [EXTRACTED_THROUGH])
    tally = pc.value_counts(verdicts.column("verdict")).to_pylist()
    by = {t["values"]: t["counts"] for t in tally}
    return dict(counts, candidates=files.num_rows, stored=found.num_rows, changed=by.get("changed", 0),
                failed=by.get("failed", 0))


def copies_sql(where: str = "") -> str:
    """SQL: the paths (`path_bytes`) of present files whose content another present file
    holds too (`where`: more of the condition on `files`, given twice): the files whose
    links `numbered_groups_sql` may need resolved, a few among a million."""
    present = f"status = 'present' AND blake3 IS NOT NULL AND size > 0 {where}"
    return (f"SELECT path_bytes FROM files WHERE {present} AND blake3 IN "
            f"(SELECT blake3 FROM files WHERE {present} GROUP BY blake3 HAVING count(*) > 1)")


def numbered_groups_sql(where: str = "", links: str | None = None) -> str:
    """SQL: every content present more than once (`where`: more of the condition on
    `files`), with its copies, reclaimable bytes and its group number, biggest savings
    first: the numbers `dupes` and `dedupe` both show. Reclaimable is what `dedupe` with
    its default keep rule (the oldest copy) frees, as it counts it: each inode once, never
    the kept file's, and one that keeps a name outside the catalog (a hard link elsewhere)
    not at all. Empty files are none: they hold nothing to save, and are often
    placeholders (a `.nomedia`, a lock) whose names matter, of any kind. `links`: the
    name of a registered table of the paths that lead through a symbolic link
    (`dedupe.links_of`): one that leads out of the library is no copy of the library's,
    as `dedupe` neither keeps nor acts on it. No kind: copies of one content may be of
    several (a `.txt` holding a `.jpg`'s bytes); each file's row has its own."""
    outside = f"AND path_bytes NOT IN (SELECT path_bytes FROM {links} WHERE outside)" if links else ""
    return f"""
        WITH d AS (
            SELECT blake3, kind, size, dev, inode, nlink, mtime_ns, path, path_bytes FROM files
            WHERE status = 'present' AND blake3 IS NOT NULL AND size > 0 {where} {outside}
        ),
        named AS (
            SELECT *, row_number() OVER (PARTITION BY blake3 ORDER BY mtime_ns, length(path), path_bytes) = 1 AS kept
            FROM d WHERE blake3 IN (SELECT blake3 FROM d GROUP BY blake3 HAVING count(*) > 1)
        ),
        inodes AS (
            SELECT blake3, any_value(size) AS size, count(*) AS names,
                   coalesce(any_value(nlink), 1) AS nlink, bool_or(kept) AS kept
            FROM named GROUP BY blake3, dev, inode
        )
        SELECT *, row_number() OVER (ORDER BY reclaimable DESC, blake3) AS grp FROM (
            SELECT blake3, any_value(size) AS size, sum(names)::BIGINT AS copies,
                   coalesce(sum(size) FILTER (NOT kept AND names >= nlink), 0)::UBIGINT AS reclaimable
            FROM inodes GROUP BY blake3)"""


def exact_groups(cat: Catalog, kind: str | None = None) -> pa.Table:
    """One row per copy of every content present more than once, biggest savings first:
    group, blake3, kind, size, copies, reclaimable, width, height, path, path_raw (the exact
    bytes of a path that is not valid UTF-8, else null), dev, inode."""
    from .dedupe import links_of

    where, params = _kind_filter(kind)
    links = links_of(cat, copies_sql(where), params + params)
    # Each copy's row with its own kind, and only the copies of the kind asked for (or no
    # sidecar), as the groups count them: a `.txt` holding a `.jpg`'s bytes is no row of
    # `--kind image`, as `dedupe --kind image` never acts on it.
    with cat.registered("mf_links", links):
        return cat.con.sql(
            f"""
            WITH numbered AS ({numbered_groups_sql(where, "mf_links")})
            SELECT n.grp AS "group", n.blake3, f.kind, n.size, n.copies, n.reclaimable, m.width, m.height,
                   f.path, f.path_raw, f.dev, f.inode
            FROM numbered n JOIN files f ON f.blake3 = n.blake3 AND f.status = 'present' {where.replace("kind", "f.kind")}
            LEFT JOIN media m ON m.blake3 = n.blake3
            WHERE f.path_bytes NOT IN (SELECT path_bytes FROM mf_links WHERE outside)
            ORDER BY n.grp, f.path
            """,
            params=params + params,
        ).to_arrow_table()


# Two videos are near-duplicates when their durations agree (`video_lengths_agree`) and
# most fingerprint frames at the same fractions are within the radius.
VIDEO_MIN_MATCH = 0.7
# How far the pictures' lengths of two copies of one video may lie apart: a quarter of a
# second (a few frames: a remux, a frame-rate change, a re-encode's first or last frame),
# or a thousandth of the longer (2 hours: 7 s), whichever is more. Frames are taken at
# fractions of the length, so in footage that changes little (a talking head, a slide, a
# static shot) a copy cut a second shorter, or another stretch of one length, shows the
# same frames: under 2% (at least 1 s, the rule for sound) a clip cut by a second grouped
# with its whole original, and `dedupe --similar` would have kept the cut one for its
# bitrate. (A header's length that is an estimate, off by more, misses its copies.)
VIDEO_SLACK_S = 0.25
VIDEO_SLACK_SHARE = 0.001


# Videos whose fingerprint frames all lie within the threshold of one another: a still
# with sound (a song's cover, a podcast), a static shot (a security camera, a talking head,
# a slide). Their fingerprint is one picture, which says nothing of which stretch of the
# footage, or which recording of that scene, each holds: two minutes of one camera's
# empty hallway, or two songs over one cover, grouped, and `dedupe --similar` would have
# trashed all but one. They are left out of the near-duplicate search (their exact copies
# are found by content as any file's); `dupes` counts them on stderr.
_STILL_VIDEOS = """
    SELECT a.blake3 FROM video_hashes a JOIN video_hashes b ON a.blake3 = b.blake3 AND a.k < b.k
    GROUP BY a.blake3 HAVING count(*) >= 3 AND max(bit_count(xor(a.phash, b.phash))) <= $r"""


def still_videos(cat: Catalog, radius: int = DEFAULT_RADIUS) -> int:
    """How many present videos `similar_videos` leaves out as stills (`_STILL_VIDEOS`)."""
    return cat.con.execute(f"""SELECT count(*) FROM ({_STILL_VIDEOS}) s WHERE EXISTS (
        SELECT 1 FROM files f WHERE f.blake3 = s.blake3 AND f.status = 'present')""", {"r": radius}).fetchall()[0][0]


def video_lengths_agree(a: float, b: float) -> bool:
    """Whether two videos' lengths (seconds) agree as copies' do (`VIDEO_SLACK_S`)."""
    return abs(a - b) <= max(VIDEO_SLACK_S, VIDEO_SLACK_SHARE * max(a, b))


def similar_videos(cat: Catalog, radius: int = DEFAULT_RADIUS) -> pa.Table:
    """Near-duplicate video groups (re-encodes, resized copies); clips that share only an
    intro are not grouped, since fingerprints skip the first seconds and durations must
    agree. Writes `similar_groups` rows with method 'video' (distance: the median frame
    distance to the leader) and returns one row per present file of each group."""
    check_threshold("image", radius)
    pairs = _video_pairs(cat, radius)
    same_colours = _colours_of_frames(cat, pairs)
    pairs = [p for p in pairs if same_colours(p[0], p[1])]
    # Lengths and colours agree between every two members, not only each one and the
    # leader: a clip 0.4 s shorter than another and one 0.4 s longer, each within reach of
    # it, stay apart; so do a red and a blue clip of one layout around their grey copy.
    durations = {h: float(s) for row in pairs for h, s in ((row[0], row[5]), (row[1], row[6]))}
    return _store_and_show(cat, _leader_rows(
        [(a, b, d) for a, b, _close, _n, d, _sa, _sb in pairs], "video", radius,
        lambda m, x: video_lengths_agree(durations[m], durations[x]) and same_colours(m, x)), "video")


def _video_pairs(cat: Catalog, radius: int) -> list[tuple]:
    """The pairs of present videos (not stills) whose lengths agree and whose fingerprint
    frames match: (a, b, close frames, frames compared, median distance, a's length,
    b's length)."""
    return cat.con.sql(
        f"""
        WITH pictures AS (  -- the picture's length, where its stream gives one (the sound may run on)
            SELECT blake3, max(duration) AS duration FROM streams
            WHERE type = 'video' AND NOT coalesce(is_cover, false) AND duration > 0 GROUP BY blake3
        ),
        v AS (
            SELECT h.blake3, h.k, h.phash, coalesce(p.duration, m.duration) AS duration
            FROM video_hashes h JOIN media m USING (blake3) LEFT JOIN pictures p USING (blake3)
            WHERE EXISTS (SELECT 1 FROM files f WHERE f.blake3 = h.blake3 AND f.status = 'present')
              AND h.blake3 NOT IN ({_STILL_VIDEOS})
        )
        SELECT a.blake3 AS a, b.blake3 AS b,
               count(*) FILTER (WHERE bit_count(xor(a.phash, b.phash)) <= $r) AS close,
               count(*) AS compared,
               median(bit_count(xor(a.phash, b.phash)))::INTEGER AS distance,
               any_value(a.duration) AS a_secs, any_value(b.duration) AS b_secs
        FROM v a JOIN v b ON a.k = b.k AND a.blake3 < b.blake3
             -- (a range that holds every pair of lengths that agree, which the join can use)
             AND b.duration BETWEEN (a.duration - $slack) * (1 - $share) AND (a.duration + $slack) / (1 - $share)
             AND abs(a.duration - b.duration) <= greatest($slack, $share * greatest(a.duration, b.duration))
        GROUP BY ALL
        HAVING count(*) >= 3 AND close >= $min_match * count(*)
        """,
        params={"r": radius, "min_match": VIDEO_MIN_MATCH, "slack": VIDEO_SLACK_S, "share": VIDEO_SLACK_SHARE},
    ).fetchall()


def drop_colourless_pairs(cat: Catalog, radius: int = DEFAULT_RADIUS) -> int:
    """Drop the fingerprints of the videos fingerprinted before schema 28 (no colours)
    that pair with another (`_video_pairs`), with their `fingerprint` notes, so that the
    caller makes them again with their colours before `similar_videos` compares them; how
    many. Only those: making every old video's again would cost hours on a large library.
    (The pair search runs only where some fingerprint has no colours.)"""
    from ..catalog.meta_writes import FINGERPRINTS_PENDING

    if not cat.con.execute("SELECT EXISTS (SELECT 1 FROM video_hashes WHERE grey IS NULL)").fetchall()[0][0]:
        return 0
    ids = pa.table({"blake3": pa.array(sorted({h for p in _video_pairs(cat, radius) for h in p[:2]}), pa.string())})
    with cat.registered("mf_pair_ids", ids), cat.transaction() as con:
        con.execute("""CREATE OR REPLACE TEMP TABLE mf_colourless AS SELECT DISTINCT blake3 FROM video_hashes
                       JOIN mf_pair_ids USING (blake3) WHERE grey IS NULL""")
        try:
            con.execute("DELETE FROM meta_errors WHERE stage = 'fingerprint' AND blake3 IN (SELECT blake3 FROM mf_colourless)")
            con.execute("DELETE FROM video_hashes WHERE blake3 IN (SELECT blake3 FROM mf_colourless)")
            dropped = con.execute("SELECT count(*) FROM mf_colourless").fetchall()[0][0]
            if dropped:  # (the next scan makes them, should this run stop before it does)
                con.execute("INSERT OR REPLACE INTO meta VALUES (?, '1')", [FINGERPRINTS_PENDING])
            return dropped
        finally:
            con.execute("DROP TABLE mf_colourless")


def _colours_of_frames(cat: Catalog, pairs: list[tuple]) -> Callable[[str, str], bool]:
    """Whether two of the videos of `pairs` (a, b, ...) agree in colours: at the fractions
    where both fingerprint frames have colour (`video_hashes.chroma`, not grey), no more
    of them lie apart (`colours_agree`) than agree. pHash sees brightness alone: two clips
    of one layout in other colours lay a few bits apart. A grey copy of a colour clip, and
    frames fingerprinted before schema 28 (no colours), say nothing."""
    ids = pa.table({"blake3": pa.array(sorted({h for p in pairs for h in p[:2]}), pa.string())})
    with cat.registered("mf_pair_ids", ids):
        frames = cat.con.execute("""SELECT blake3, k, chroma FROM video_hashes JOIN mf_pair_ids USING (blake3)
                                    WHERE chroma IS NOT NULL AND NOT grey""").fetchall()
    colours: dict[str, dict[int, bytes]] = {}
    for h, k, chroma in frames:
        colours.setdefault(h, {})[k] = chroma

    def agree(x: str, y: str) -> bool:
        a, b = colours.get(x, {}), colours.get(y, {})
        both = [k for k in a if k in b]
        return 2 * sum(not colours_agree(a[k], b[k]) for k in both) <= len(both)

    return agree


def colours_agree(x: bytes | None, y: bytes | None) -> bool:
    """Whether two colour layouts (`chroma`: mean Cb and Cr of a 3x3 grid) agree, as
    copies' do (`CHROMA_APART`); a layout not measured agrees with any."""
    return x is None or y is None or len(x) != len(y) or \
        max(abs(p - q) for p, q in zip(x, y, strict=True)) <= CHROMA_APART


def _leader_rows(pairs: list[tuple[str, str, int]], method: str, radius: int,
                 fits: Callable[[str, str], bool] | None = None) -> pa.Table:
    """Leader grouping, as for pictures: every member matches its group's leader (no
    chaining); the busiest content leads first, and of those as busy, the one nearest its
    neighbours (a copy cut at its start, 21% from each whole copy, led them into a group
    of its own before a whole one, within 1% of the others). With `fits`, every two members of a group
    fit each other too (their lengths agree, say), not only each one the leader: a 2 s
    cut and the 4 s clip it came from, each within a second of a 3 s one, are not one
    group. Members closest to the leader join first. `similar_groups` rows."""
    neighbours: dict[str, dict[str, int]] = {}
    for a, b, d in pairs:
        neighbours.setdefault(a, {})[b] = d
        neighbours.setdefault(b, {})[a] = d
    group_of: dict[str, tuple[int, str, int]] = {}
    groups = 0
    for lead in sorted(neighbours, key=lambda x: (-len(neighbours[x]), sum(neighbours[x].values()), x)):
        if lead in group_of:
            continue
        members: list[tuple[str, int]] = []
        for m, d in sorted(neighbours[lead].items(), key=lambda p: (p[1], p[0])):
            if m in group_of:
                continue
            if fits is not None and not all(fits(m, x) for x, _ in members):
                continue
            members.append((m, d))
        if not members:
            continue
        groups += 1
        group_of[lead] = (groups, lead, 0)
        for m, d in members:
            group_of[m] = (groups, lead, d)
    now = utcnow()
    return pa.Table.from_pylist(
        [{"group_id": g, "blake3": h, "leader": lead, "distance": d, "method": method, "radius": radius,
          "created_at": now} for h, (g, lead, d) in group_of.items()],
        schema=arrow_schema("similar_groups"),
    )


# Two recordings are the same when their durations agree and at most this share of
# fingerprint bits differ at the best alignment: re-encodes measure 0.08-0.14, unrelated
# music 0.48-0.50 (see docs/benchmarks.md).
AUDIO_MAX_BER = 25

# Thresholds past which a group may well join unrelated files, and `dupes` says so: two
# unrelated pictures' 64-bit pHashes differ in about 32 bits, and past 16 the chance
# ones within reach grow fast; past 11, the finer pHash's check (`fine_radius`: 72 bits
# at 12) lets through pages of one layout and screenshots of one app, about 70 apart;
# unrelated music differs in about half its fingerprint bits.
LOOSE_RADIUS = 16
LOOSE_PICTURE_RADIUS = 11
LOOSE_BER = 35


def check_threshold(kind: str, threshold: int) -> None:
    """Refuses a `--threshold` out of its range: bits of a 64-bit hash for pictures and
    video (past 32, unrelated ones are nearer than that), percent of differing bits for
    sound (past 50, further than chance)."""
    if kind == "audio":
        if not 0 <= threshold <= 50:
            raise InvalidInputError(f"--threshold for audio is a percentage of differing bits, 0 to 50; got {threshold}")
    elif not 0 <= threshold <= 32:
        raise InvalidInputError(f"--threshold must be 0 to 32 bits, got {threshold}")


def similar_audio(cat: Catalog, max_ber_percent: int = AUDIO_MAX_BER) -> pa.Table:
    """Near-duplicate sound (re-encodes, other bitrates or formats of one recording):
    audio fingerprints compared in the Rust core within the duration guard. Writes
    `similar_groups` rows with method 'audio' (distance: percent of bits differing from
    the leader) and returns one row per present file of each group."""
    check_threshold("audio", max_ber_percent)
    # The duration guard takes the length the fingerprint decoded when that was the whole
    # sound (under its two minutes): a file cut short claims the full song's length in its
    # header, and its fingerprint, the song's start, matches the song's.
    fps = cat.con.sql(
        f"""
        SELECT x.blake3, x.fingerprint, x.duration FROM (
            SELECT a.blake3, a.fingerprint, a.frames,
                   CASE WHEN a.seconds < {AUDIO_FINGERPRINT_SECONDS} - 1 THEN a.seconds ELSE m.duration END AS duration
            FROM audio_hashes a JOIN media m USING (blake3)) x
        WHERE x.frames > 0 AND x.duration > 0
          AND EXISTS (SELECT 1 FROM files f WHERE f.blake3 = x.blake3 AND f.status = 'present')
        ORDER BY x.blake3
        """
    ).fetchall()
    found = pa.record_batch(_core.audio_matches([f for _, f, _ in fps], [d for _, _, d in fps],
                                                max_ber_percent / 100))
    ids = [h for h, _, _ in fps]
    pairs = [(ids[a], ids[b], round(ber * 100)) for a, b, ber in zip(
        found.column("a").to_pylist(), found.column("b").to_pylist(), found.column("ber").to_pylist(), strict=True)]
    lengths = {h: float(d) for h, _, d in fps}
    return _store_and_show(cat, _leader_rows(pairs, "audio", max_ber_percent,
                                             lambda m, x: _core.durations_agree(lengths[m], lengths[x])), "audio")


# Which copy of a near-duplicate group is best kept (`dedupe --similar`'s default keep
# rule, and what `reclaimable` assumes stays), as an ORDER BY over files f and media m: a
# whole file before one whose data did not all decode (a `decode` note: damaged frames,
# a file cut short), then the one with the most in it, first by pixels (pictures and video; an audio file's cover art
# does not count), then colour over grey (pHash sees brightness alone, so a grey copy
# ties with the colour one it came from; a picture is grey by its pixels, which the
# hash's decode measured, else by its mode: a black-and-white photo saved as RGB is grey;
# a RAW not measured counts as colour; a video is grey when every fingerprint frame is,
# and counts as colour when fingerprinted before schema 28), then a picture as its camera wrote it over one
# not (`CAMERA`: of two with the same pixels, the one that lost its EXIF is the copy), then a lossless sound
# over a lossy one, then bitrate,
# then length (a version cut shorter loses to the whole one), then size (the less
# compressed of two equal pictures), then age, then the shortest path. For exact copies
# every media column ties, and it keeps the oldest.
_GREY_MODES = "(" + ", ".join(f"'{mode}'" for mode in sorted(GREY_MODES)) + ")"
# A content's bitrate as a keep rule compares it, over media m: for sound, its sound
# stream's (the file's own counts its cover art: a 128 kb/s MP3 holding a 3.5 MB cover
# read as 595 kb/s, over a 320 kb/s copy); where its stream states none, the file's, if it
# holds no cover (else none: a 64 kb/s Opus with a cover is not 1,336 kb/s); else the
# file's as a whole.
RATE = ("CASE WHEN m.kind = 'audio' THEN coalesce((SELECT max(s.bitrate) FROM streams s WHERE s.blake3 = m.blake3 "
        "AND s.type = 'audio' AND s.bitrate > 0), CASE WHEN NOT coalesce((SELECT a.has_cover FROM tags_audio a "
        "WHERE a.blake3 = m.blake3), false) THEN m.bitrate END) ELSE m.bitrate END")
# Whether a picture is as its camera wrote it: a RAW (whose EXIF the catalog holds for
# TIFF-based ones alone: a CR3 or RAF has none there), or one whose EXIF names the camera
# (a make or a model; not a date, which an editor's re-save writes too). A copy of the
# same pixels without (a PNG export, a re-save at a higher quality, a filtered copy) came
# from it and lost it.
CAMERA = ("(f.kind = 'raw' OR EXISTS (SELECT 1 FROM exif e WHERE e.blake3 = f.blake3 "
          "AND (e.make IS NOT NULL OR e.model IS NOT NULL)))")
BEST_ORDER = ("EXISTS (SELECT 1 FROM meta_errors e WHERE e.blake3 = f.blake3 AND e.stage = 'decode'), "
              "CASE WHEN f.kind IN ('image', 'raw', 'video') THEN m.width::BIGINT * m.height END DESC NULLS LAST, "
              "CASE WHEN f.kind IN ('image', 'raw') THEN coalesce((SELECT h.grey FROM image_hashes h "
              f"WHERE h.blake3 = f.blake3), m.mode IN {_GREY_MODES}, false) "
              "WHEN f.kind = 'video' THEN coalesce((SELECT bool_and(h.grey) FROM video_hashes h "
              "WHERE h.blake3 = f.blake3), false) END NULLS LAST, "
              f"CASE WHEN f.kind IN ('image', 'raw') THEN {CAMERA} END DESC NULLS LAST, "
              "(SELECT a.lossless FROM tags_audio a WHERE a.blake3 = f.blake3) DESC NULLS LAST, "
              f"{RATE} DESC NULLS LAST, m.duration DESC NULLS LAST, f.size DESC, f.mtime_ns")


def _members_sql(groups: str) -> str:
    """SQL: the CTEs `member` (each present file of the groups in table `groups` of
    `$method`, the one `dedupe --similar` keeps by default marked `kept`) and `freed` (per
    group, the bytes keeping only that file frees, as dedupe counts it: each inode once,
    never the kept file's, and one that keeps a name the group leaves, a hard link
    elsewhere, not at all)."""
    return f"""
        member AS (
            SELECT g.group_id AS "group", g.blake3, g.distance, g.blake3 = g.leader AS leader,
                   m.width, m.height, m.duration, f.size, f.path, f.path_raw, f.dev, f.inode, f.nlink,
                   row_number() OVER (PARTITION BY g.group_id
                                      ORDER BY {BEST_ORDER}, length(f.path), f.path_bytes) = 1 AS kept
            FROM {groups} g
            JOIN files f ON f.blake3 = g.blake3 AND f.status = 'present'
            LEFT JOIN media m ON m.blake3 = g.blake3
            WHERE g.method = $method
        ),
        inode AS (
            SELECT "group", dev, inode, any_value(size) AS size, count(*) AS names, any_value(nlink) AS nlink,
                   bool_or(kept) AS kept
            FROM member GROUP BY ALL
        ),
        freed AS (
            SELECT "group", sum(size) FILTER (NOT kept AND names >= nlink) AS bytes FROM inode GROUP BY ALL
        )"""


def _store_and_show(cat: Catalog, rows: pa.Table, method: str) -> pa.Table:
    """Store the groups, numbered biggest savings first (as `dupes` lists exact groups;
    ties in the order found), and return their rows."""
    with cat.registered("mf_similar", rows):
        order = cat.con.sql(
            f"""
            WITH {_members_sql("mf_similar")}
            SELECT g.group_id FROM (SELECT DISTINCT group_id FROM mf_similar) g
            LEFT JOIN freed f ON f."group" = g.group_id
            ORDER BY coalesce(f.bytes, 0) DESC, g.group_id
            """,
            params={"method": method},
        ).to_arrow_table().column(0)
    if len(order):
        numbered = pc.add(pc.index_in(rows.column("group_id"), value_set=order), 1).cast(pa.uint32())
        rows = rows.set_column(rows.schema.get_field_index("group_id"), "group_id", numbered)
    with cat.registered("mf_similar", rows), cat.transaction() as con:
        con.execute("DELETE FROM similar_groups WHERE method = ?", [method])
        con.execute(f"INSERT INTO similar_groups SELECT {', '.join(columns('similar_groups'))} FROM mf_similar")
    return cat.con.sql(
        f"""
        WITH {_members_sql("similar_groups")}
        SELECT m.* EXCLUDE (kept, dev, inode, nlink), coalesce(f.bytes, 0)::UBIGINT AS reclaimable
        FROM member m JOIN freed f USING ("group")
        ORDER BY "group", distance, path
        """,
        params={"method": method},
    ).to_arrow_table()


def similar_groups(cat: Catalog, radius: int = DEFAULT_RADIUS) -> pa.Table:
    """Near-duplicate image groups within `radius` bits of pHash; writes them to
    `similar_groups` and returns one row per present file of each group: group, blake3,
    distance (to the group's leader), leader, width, height, size, path, path_raw."""
    check_threshold("image", radius)
    hashes = cat.con.sql(
        """
        SELECT h.blake3, h.phash, h.grey, h.chroma, h.phash256 FROM image_hashes h LEFT JOIN media m USING (blake3)
        WHERE EXISTS (SELECT 1 FROM files f WHERE f.blake3 = h.blake3 AND f.status = 'present')
          -- An animation's pHash is its first frame's (a multi-page TIFF's, its first page's):
          -- a still of that frame is no copy of it. A JPEG's second frame is a preview or a
          -- gain map (MPO, Ultra HDR) of the one picture.
          AND (coalesce(m.frames, 1) <= 1 OR m.format IN ('mpo', 'jpeg'))
          -- A picture of a few pixels holds too little to tell it from another one; nor
          -- does a strip a few pixels across (a rule, a spacer): its hash's 8x8 lowest
          -- frequencies want 8 a side, and below twice that they are mostly its noise.
          AND coalesce(m.width::BIGINT * m.height, 1024) >= 1024
          AND coalesce(least(m.width, m.height), 16) >= 16
        ORDER BY h.blake3
        """
    ).to_arrow_table()
    m = _colour_groups(hashes, radius)
    ids = hashes.column("blake3")
    rows = pa.table({
        "group_id": pc.add(m.column("group"), 1).cast(pa.uint32()),
        "blake3": ids.take(m.column("index")),
        "leader": ids.take(m.column("leader")),
        "distance": m.column("distance"),
        "method": pa.array(["phash"] * m.num_rows, pa.string()),
        "radius": pa.array([radius] * m.num_rows, pa.uint8()),
        "created_at": pa.array([utcnow()] * m.num_rows, pa.timestamp("us")),
    }).cast(arrow_schema("similar_groups"))
    return _store_and_show(cat, rows, "phash")


# How far (0-255) the mean Cb or Cr of one cell of two pictures' 3x3 colour layouts
# (`image_hashes.chroma`) may lie apart in copies of one picture: recompressed, resized,
# cropped by a tenth, brightened, saturated or darkened by a third stay within about 20;
# a red and a blue gradient lie 90 apart, a photo with a shape painted over a third of
# its middle 35 and more.
CHROMA_APART = 28
# The most colour pictures of one group whose set is found around the one that agrees with
# the most others (`_by_colour`), a count that takes pairs of them all.
_MOST_WEIGHED = 256


def _colour_groups(hashes: pa.Table, radius: int) -> pa.RecordBatch:
    """The members (index, group, leader, distance: indexes into `hashes`) of the pHash
    groups (`_core.similar_groups`, in one pass), each split by colour (`_by_colour`)."""
    fine, known, filled = _fine_bytes(hashes.column("phash256"))
    members, _pairs = _core.similar_groups(_u64_bytes(hashes.column("phash")), radius, fine, known,
                                           fine_radius(radius))
    m = pa.record_batch(members)
    index = m.column("index")
    rows = _by_colour(m.column("group").to_pylist(), index.to_pylist(), m.column("leader").to_pylist(),
                      hashes.column("phash").take(index).to_pylist(), hashes.column("grey").take(index).to_pylist(),
                      hashes.column("chroma").take(index).to_pylist(), radius,
                      filled.take(index).to_pylist())
    return pa.record_batch({"index": pa.array([r[0] for r in rows], pa.uint32()),
                            "group": pa.array([r[1] for r in rows], pa.uint32()),
                            "leader": pa.array([r[2] for r in rows], pa.uint32()),
                            "distance": pa.array([r[3] for r in rows], pa.uint8())})


def _by_colour(group: list[int], index: list[int], leader: list[int], phash: list[int],
               grey: list[bool | None], chroma: list[bytes | None], radius: int,
               fine: list[bytes | None]) -> list[tuple[int, int, int, int]]:
    """(index, group, leader, distance) of each member that stays, the groups numbered
    from 0. A group's colour members (not grey, colours measured) are split into sets
    that agree (`CHROMA_APART`): each set around the colour member that agrees with the
    most of those left (in a tie the leader, then the nearest to it). The grey and unmeasured members (the grey copy of a colour picture) stay
    with the first set. A set that is not the leader's is led by its own first picture,
    and keeps only members within `radius` of it (and within `fine_radius` of its finer
    pHash, where both have one: `fine`); a set of one file is no group."""
    by_group: dict[int, list[int]] = {}
    for k, g in enumerate(group):
        by_group.setdefault(g, []).append(k)

    def bits(a: int, b: int) -> int:
        return (phash[a] ^ phash[b]).bit_count()

    most = fine_radius(radius)

    def near(a: int, b: int) -> bool:
        x, y = fine[a], fine[b]
        return bits(a, b) <= radius and (x is None or y is None
                                         or (int.from_bytes(x) ^ int.from_bytes(y)).bit_count() <= most)

    def agree(a: int, b: int) -> bool:
        return colours_agree(chroma[a], chroma[b])

    out: list[tuple[int, int, int, int]] = []
    number = 0
    for g in sorted(by_group):
        ks = by_group[g]
        lead = next(k for k in ks if index[k] == leader[k])
        # The leader first, then by distance to it, then by index: a fixed order.
        ks = sorted(ks, key=lambda k: (k != lead, bits(k, lead), index[k]))
        colour = [k for k in ks if not grey[k] and chroma[k] is not None]
        sets: list[list[int]] = []
        while colour:
            # Around the picture that agrees with the most of those left (the first in the
            # order above, of those that tie): the original among its edits, which agree
            # with it though opposite ones (a third brighter, a third darker) may not agree
            # with each other; a group of thousands goes around its first, in linear time.
            ref = colour[0] if len(colour) > _MOST_WEIGHED else max(
                colour, key=lambda r: sum(agree(k, r) for k in colour))
            sets.append([k for k in colour if agree(k, ref)])
            colour = [k for k in colour if k not in sets[-1]]
        rest = [k for k in ks if grey[k] or chroma[k] is None]
        if sets:
            sets[0] += rest
        else:
            sets = [rest]
        for n, members in enumerate(sets):
            head = lead if lead in members else members[0]
            kept = [k for k in members if k == head or near(k, head)] if n or head != lead else members
            if len(kept) < 2:
                continue
            out += [(index[k], number, index[head], bits(k, head)) for k in sorted(kept, key=lambda k: index[k])]
            number += 1
    return out


def _fine_bytes(column: pa.ChunkedArray) -> tuple[bytes, bytes, pa.Array]:
    """The finer pHashes of an `image_hashes.phash256` column as the Rust core takes them:
    32 bytes each (zeros where there is none), a byte each saying where there is one, and
    the column as fixed-size binary with NULL where there is none. Arrow's buffers, with
    no Python object per row (a million pictures)."""
    col = column.combine_chunks() if column.num_chunks else pa.array([], pa.binary())
    if len(col) == 0:
        return b"", b"", pa.array([], pa.binary(FINE_BYTES))
    ok = pc.fill_null(pc.equal(pc.binary_length(col), FINE_BYTES), False)  # (NULL before schema 27)
    zeros = pc.if_else(ok, col, pa.scalar(bytes(FINE_BYTES), pa.binary())).cast(pa.binary(FINE_BYTES))
    start = zeros.offset * FINE_BYTES
    fine = zeros.buffers()[1][start:start + len(zeros) * FINE_BYTES].to_pybytes()
    known = pc.cast(ok, pa.uint8())
    flags = known.buffers()[1][known.offset:known.offset + len(known)].to_pybytes()
    return fine, flags, pc.if_else(ok, zeros, None)


def _u64_bytes(column: pa.ChunkedArray) -> bytes:
    """The values of a UBIGINT column without nulls as packed little-endian u64s: Arrow's
    own data buffer (Arrow is little-endian on every platform MediaForge builds for), with
    no trip through numpy, which the command line's pyarrow runs without."""
    values = column.combine_chunks()
    if len(values) == 0:
        return b""
    start = values.offset * 8
    return values.buffers()[1][start:start + len(values) * 8].to_pybytes()
