"""Metadata reads and writes: which contents still need extracting, and the Arrow batch
writes of extraction results (one transaction per flush, keyed by BLAKE3)."""

from __future__ import annotations

from collections.abc import Container
from typing import Any

import pyarrow as pa

from .media_tables import arrow_schema, columns
from .store import Catalog
from ..meta.readers import COVER_UNDECODED, CUT_SHORT, FINGERPRINT_NOTES, NO_FINGERPRINT, WEBP_UNDECODED
from .writes import utcnow

EXTRACTABLE = ("image", "raw", "video", "audio", "sidecar")
# The columns a task needs of the copy of a content that extraction reads (files `f`,
# grouped by content): its smallest path (so runs are repeatable) and that file's kind,
# size and times.
_FIRST_COPY = ("min(f.path_bytes) AS path_bytes, arg_min(f.kind, f.path_bytes) AS kind, "
               "arg_min(f.size, f.path_bytes) AS size, arg_min(f.mtime_ns, f.path_bytes) AS mtime_ns, "
               "arg_min(f.ctime_ns, f.path_bytes) AS ctime_ns")
# Whether a content's near-duplicate fingerprint is there already.
_FINGERPRINTED = ("blake3 IN (SELECT blake3 FROM image_hashes UNION ALL SELECT blake3 FROM video_hashes "
                  "UNION ALL SELECT blake3 FROM audio_hashes) AS fingerprinted")


def pending_extraction(cat: Catalog, retry_failed: bool = False) -> pa.Table:
    """One row per present content with no `media` row yet: blake3, a path that has it
    (the smallest, so runs are repeatable), and its kind; `fingerprinted`: whether its
    near-duplicate fingerprint is there already (a content a migration has extracted
    again, as version 20 does untitled MP3s: a fingerprint depends on the bytes alone, and
    an audio or video one costs a decode of its own). `retry_failed`: also those whose
    extraction did not read them whole (any status but `ok`)."""
    retry = "OR m.status <> 'ok'" if retry_failed else ""
    return cat.con.sql(
        f"""
        SELECT *, {_FINGERPRINTED}
        FROM (SELECT f.blake3, {_FIRST_COPY}
              FROM files f LEFT JOIN media m ON m.blake3 = f.blake3
              WHERE f.status = 'present' AND f.blake3 IS NOT NULL
                AND f.kind IN {EXTRACTABLE}
                AND (m.blake3 IS NULL {retry})
              GROUP BY f.blake3)
        ORDER BY path_bytes
        """
    ).to_arrow_table()


# The `meta` key holding the id of the last scan whose extraction left no content to
# extract (see `nothing_to_extract_after`). Migrations drop it.
EXTRACTED_THROUGH = "extracted_through_scan"


def set_extracted_through(cat: Catalog, scan_id: int) -> None:
    with cat.transaction() as con:
        con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [EXTRACTED_THROUGH, str(scan_id)])


def nothing_to_extract_after(cat: Catalog, scan_id: int) -> bool:
    """Whether no content can be waiting for extraction after scan `scan_id`, which wrote
    no content (no file new, changed, moved, back, or read for the first time): the scan
    before it left none, by its extraction run whole. Then `pending_extraction`, a join
    of every file with every content (a third of a second per million files), is not
    needed. The one other command that adds contents, `dupes` (digests of files a scan
    could not read, found duplicates since), drops the record; `meta`, `dedupe` and the
    rest only take some away."""
    got = cat.con.execute(
        "SELECT (SELECT value FROM meta WHERE key = ?) = (SELECT max(scan_id) FROM scans WHERE scan_id < ?)::VARCHAR",
        [EXTRACTED_THROUGH, scan_id]).fetchall()
    return bool(got[0][0])


# The `meta` key present while an extraction made without fingerprints may have left
# contents without one: a scan then looks for them (a query that costs about a second
# per million contents, so not on every rescan).
FINGERPRINTS_PENDING = "fingerprints_pending"


def set_fingerprints_pending(cat: Catalog, pending: bool) -> None:
    with cat.transaction() as con:
        if pending:
            con.execute("INSERT OR REPLACE INTO meta VALUES (?, '1')", [FINGERPRINTS_PENDING])
        else:
            con.execute("DELETE FROM meta WHERE key = ?", [FINGERPRINTS_PENDING])


def fingerprints_pending(cat: Catalog) -> bool:
    return bool(cat.con.execute("SELECT 1 FROM meta WHERE key = ?", [FINGERPRINTS_PENDING]).fetchall())


# A `media` row `m` of each fingerprinted kind that has no fingerprint yet.
LACKS_FINGERPRINT = {
    "image": "m.kind = 'image' AND m.blake3 NOT IN (SELECT blake3 FROM image_hashes)",
    "video": "m.kind = 'video' AND m.video_codec IS NOT NULL AND m.blake3 NOT IN (SELECT blake3 FROM video_hashes)",
    "audio": "m.audio_codec IS NOT NULL AND m.video_codec IS NULL "
             "AND m.blake3 NOT IN (SELECT blake3 FROM audio_hashes)",
}


FINGERPRINTED_KINDS = tuple(LACKS_FINGERPRINT)


def other_copies(cat: Catalog, tried: dict[str, set[bytes]], fingerprinted: bool) -> pa.Table:
    """For each content in `tried` (content -> the paths read for it, each found changed,
    gone or replaced since the scan), the next present copy the catalog lists, the
    smallest path not tried yet, in the columns of `pending_extraction` (`fingerprinted`
    only when asked). A content with no copy left has no row."""
    pairs = pa.table({"blake3": pa.array([h for h, ps in tried.items() for _ in ps], pa.string()),
                      "path_bytes": pa.array([p for ps in tried.values() for p in ps], pa.binary())})
    made = f", {_FINGERPRINTED}" if fingerprinted else ""
    cat.con.register("mf_tried_paths", pairs)
    try:
        return cat.con.sql(
            f"""
            SELECT *{made}
            FROM (SELECT f.blake3, {_FIRST_COPY}
                  FROM files f SEMI JOIN mf_tried_paths t ON t.blake3 = f.blake3
                  WHERE f.status = 'present' AND f.kind IN {EXTRACTABLE}
                    AND NOT EXISTS (SELECT 1 FROM mf_tried_paths t
                                    WHERE t.blake3 = f.blake3 AND t.path_bytes = f.path_bytes)
                  GROUP BY f.blake3)
            ORDER BY path_bytes
            """
        ).to_arrow_table()
    finally:
        cat.con.unregister("mf_tried_paths")


def pending_fingerprints(cat: Catalog, kinds: tuple[str, ...] = FINGERPRINTED_KINDS,
                         retry_failed: bool = False) -> pa.Table:
    """Extracted contents (status ok or partial, with a present path) that lack their
    near-duplicate fingerprint, of these kinds: pictures with no `image_hashes` row,
    videos with no `video_hashes` rows, sound alone with no `audio_hashes` row. A content
    whose fingerprint (or picture decode) failed before is left out unless
    `retry_failed`. Same columns as `pending_extraction`."""
    want = [LACKS_FINGERPRINT[k] for k in kinds if k in LACKS_FINGERPRINT]
    if not want:
        raise ValueError(f"no fingerprinted kind among {kinds}")
    # A failed fingerprint, or pixels that did not decode; a note that the file's end is
    # missing (what is there decodes) does not keep it from a fingerprint.
    failed = "" if retry_failed else ("AND NOT EXISTS (SELECT 1 FROM meta_errors e WHERE e.blake3 = m.blake3 "
                                      "AND (e.stage = 'fingerprint' OR e.stage = 'decode' "
                                      f"AND NOT ends_with(e.message, '{CUT_SHORT}')))")
    return cat.con.sql(
        f"""
        SELECT m.blake3, {_FIRST_COPY}
        FROM media m JOIN files f ON f.blake3 = m.blake3 AND f.status = 'present'
        WHERE m.status IN ('ok', 'partial') {failed} AND ({' OR '.join(f'({w})' for w in want)})
        GROUP BY m.blake3 ORDER BY path_bytes
        """
    ).to_arrow_table()


def thumb_candidates(cat: Catalog, missing_only: bool = False) -> pa.Table:
    """Every extracted content that can have a thumbnail (a picture, a video with pictures,
    sound with a cover), with a present path and its
    current thumbnail (NULL when none was made). Contents extraction could not read at all
    (`error`, `unsupported`, `timeout`, `crashed`) are left out: `meta --retry-failed`
    tries those again, and their thumbnails come with it. `missing_only`: nor those with
    none because their pixels do not decode (a `decode` error that is no note of a missing
    end, a picture's failed fingerprint, a WebP whose data does not decode after its
    header, cover art that is no picture): the same bytes decode the same way, and each
    run failed on them again."""
    undecodable = (f"""AND NOT (m.thumb IS NULL AND m.blake3 IN (SELECT blake3 FROM meta_errors
                       WHERE stage = 'decode' AND NOT ends_with(message, '{CUT_SHORT}')
                          -- a picture's fingerprint fails on the same pixels
                          OR stage = 'fingerprint' AND NOT starts_with(message, '{NO_FINGERPRINT}')
                             AND m.kind IN ('image', 'raw')
                          OR stage = 'image' AND starts_with(message, '{WEBP_UNDECODED}')
                          OR stage = 'thumb' AND starts_with(message, '{COVER_UNDECODED}')))""" if missing_only else "")
    return cat.con.sql(
        f"""
        SELECT m.blake3, {_FIRST_COPY}, any_value(m.thumb) AS thumb,
               any_value(m.thumb_bytes) AS thumb_bytes
        FROM media m JOIN files f ON f.blake3 = m.blake3 AND f.status = 'present'
        WHERE m.status NOT IN ('error', 'unsupported', 'timeout', 'crashed')
          AND (m.kind IN ('image', 'raw') OR m.kind = 'video' AND m.video_codec IS NOT NULL
               -- sound alone (an M4A named .mp4 is a video by its name): a picture only from its cover
               OR m.kind IN ('audio', 'video') AND m.blake3 IN (SELECT blake3 FROM tags_audio WHERE has_cover))
          {undecodable}
        GROUP BY m.blake3 ORDER BY path_bytes
        """
    ).to_arrow_table()


def _batch(table: str, rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=arrow_schema(table))


_RESULT_TABLES = ("media", "streams", "tags_audio", "exif", "sidecars", "image_hashes", "video_hashes", "audio_hashes")
# The tables a result fills with at most one row, and the result's key for that row.
_ONE_ROW = (("tags_audio", "audio"), ("exif", "exif"), ("sidecars", "sidecar"), ("image_hashes", "hashes"),
            ("audio_hashes", "audio_hash"))


def _result_rows(r: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """One result's rows, by table."""
    h = r["blake3"]
    rows: dict[str, list[dict[str, Any]]] = {
        "media": [r["media"]],
        "streams": [dict(s, blake3=h) for s in r["streams"]],
        "video_hashes": [dict(v, blake3=h) for v in r["video_hashes"]],
    }
    for table, key in _ONE_ROW:
        rows[table] = [dict(r[key], blake3=h)] if r[key] is not None else []
    return rows


def _repaired(value: Any) -> Any:
    """Text (or a list of texts: keywords, people) with its lone surrogates replaced; None
    for any other value."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, list) and all(v is None or isinstance(v, str) for v in value):
        return [v if v is None else _repaired(v) for v in value]
    return None


def _fit(table: str, rows: list[dict[str, Any]], errors: list[tuple[str, str]]) -> None:
    """Make each value of `rows` fit its column: text with lone surrogates (a hostile
    sidecar's JSON escapes) has them replaced, any other value that does not fit (a frame
    count past INTEGER, a wrong type) becomes NULL, and each change is one `errors` entry."""
    schema = arrow_schema(table)
    for row in rows:
        for name, value in row.items():
            if value is None or schema.get_field_index(name) < 0:
                continue
            typ = schema.field(name).type
            try:
                pa.array([value], typ)
                continue
            except (pa.ArrowException, UnicodeError, OverflowError, TypeError, ValueError):
                pass
            fixed = _repaired(value)
            try:
                pa.array([fixed], typ)
            except (pa.ArrowException, UnicodeError, OverflowError, TypeError, ValueError):
                fixed = None
            row[name] = fixed
            if fixed is None:
                errors.append(("store", f"{table}.{name}: the value {value!r:.80} does not fit {typ}; stored as NULL"))


def _conformed(r: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """`_result_rows` of a result whose rows did not all fit their tables, fitted."""
    rows = _result_rows(r)
    errors = r["errors"]
    before = len(errors)
    for table, table_rows in rows.items():
        _fit(table, table_rows, errors)
    if len(errors) > before and r["media"].get("status") == "ok":  # a value was lost: not whole
        r["media"]["status"] = "partial"
    errors[:] = [(stage, message.encode("utf-8", "replace").decode("utf-8")) for stage, message in errors]
    return rows


def write_results(cat: Catalog, results: list[dict[str, Any]], paths: dict[str, bytes],
                  keep_thumbs: bool = False, keep_fingerprints: bool | Container[str] = False) -> int:
    """Replace the metadata of these contents with `results`, in one transaction. A value
    that does not fit its column is stored as NULL, with an error row, never a failed batch.
    For an extraction that makes no thumbnails or no fingerprints, of contents extracted
    before (`meta --retry-failed --no-thumbs`, `--no-fingerprints`): with `keep_thumbs` a
    content's thumbnail stays where the result has none; with `keep_fingerprints` (True,
    or the contents it holds: those whose tasks made none) its fingerprints stay, with
    what their making found (their errors, and a video's pictures that end early, which
    keeps it `partial`). Returns how many results read `ok` are `partial` in the catalog
    for what it kept, or for a value that did not fit (whose error entry is added to the
    result's `errors`)."""
    if not results:
        return 0
    # A content read before (`ok` or `partial`) whose extraction timed out or crashed its
    # worker this time (a `meta --retry-failed` on a slower disk, a tighter --timeout)
    # keeps what was read: its size, EXIF, streams and fingerprints are no less true. It
    # stays as it was, to be tried again (the run's counts say it timed out).
    lost = [r["blake3"] for r in results if (r["media"] or {}).get("status") in ("timeout", "crashed")]
    if lost:
        read_before = {b for (b,) in cat.con.execute(
            "SELECT blake3 FROM media WHERE status IN ('ok', 'partial') AND blake3 IN (SELECT unnest(?::VARCHAR[]))",
            [lost]).fetchall()}
        results = [r for r in results if r["blake3"] not in read_before]
        if not results:
            return 0
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in _RESULT_TABLES}
    for r in results:
        for table, table_rows in _result_rows(r).items():
            rows[table] += table_rows
    demoted = 0
    try:
        batches = {t: _batch(t, v) for t, v in rows.items()}
        batches["meta_errors"] = _error_rows(results, paths)
    except (pa.ArrowException, UnicodeError, OverflowError, TypeError, ValueError):
        rows = {t: [] for t in _RESULT_TABLES}
        read_ok = [r for r in results if (r["media"] or {}).get("status") == "ok"]
        for r in results:
            for table, table_rows in _conformed(r).items():
                rows[table] += table_rows
        demoted = sum(r["media"]["status"] == "partial" for r in read_ok)  # a value lost (see `_conformed`)
        batches = {t: _batch(t, v) for t, v in rows.items()}
        batches["meta_errors"] = _error_rows(results, paths)
    # Contents whose fingerprints (and what their making found) stay: read again (not timed
    # out, not failed), the result made none.
    def keeps(blake3: str) -> bool:
        return keep_fingerprints if isinstance(keep_fingerprints, bool) else blake3 in keep_fingerprints

    kept = [r["blake3"] for r in results if keeps(r["blake3"]) and _read(r) and not r["hashes"]
            and not r["video_hashes"] and not r["audio_hash"]
            and not any(_found_by_fingerprint(stage, m) for stage, m in r["errors"])]
    thumbed = [r["blake3"] for r in results if keep_thumbs and _read(r) and not r.get("thumb")]
    # With neither, no picture was decoded: what an earlier decode found stays too (pixels
    # that do not decode), unless this reading found something of that stage itself.
    undecoded = [r["blake3"] for r in results if keep_thumbs and keeps(r["blake3"]) and _read(r)
                 and not any(stage == "decode" for stage, _m in r["errors"])]
    with cat.registered("mf_keys", _keys(results)), cat.registered("mf_kept", pa.table({
            "blake3": pa.array(kept, pa.string())})), cat.registered("mf_thumbed", pa.table({
            "blake3": pa.array(thumbed, pa.string())})), cat.registered("mf_undecoded", pa.table({
            "blake3": pa.array(undecoded, pa.string())})), cat.transaction() as con:
        kept_partial = demoted
        if thumbed:
            # With the rotation only a decoded frame may have told (see `write_thumbs`).
            con.execute(f"CREATE OR REPLACE TEMP TABLE mf_old_thumbs AS SELECT blake3, {', '.join(_THUMB_COLUMNS)}, "
                        "rotation FROM media WHERE thumb IS NOT NULL AND blake3 IN (SELECT blake3 FROM mf_thumbed)")
        if kept:
            for table in _FINGERPRINT_TABLES:
                con.execute(f"DELETE FROM {table} WHERE blake3 IN (SELECT blake3 FROM mf_keys) "
                            "AND blake3 NOT IN (SELECT blake3 FROM mf_kept)")
        if kept or undecoded or thumbed:
            # What making the thumbnail found (refused by its folder, held back for want
            # of room) stays with a content this run made none for, as its fingerprints'.
            con.execute(f"DELETE FROM meta_errors WHERE blake3 IN (SELECT blake3 FROM mf_keys) "
                        f"AND NOT (blake3 IN (SELECT blake3 FROM mf_kept) AND ({_FOUND_BY_FP})) "
                        f"AND NOT (blake3 IN (SELECT blake3 FROM mf_undecoded) AND stage = 'decode') "
                        f"AND NOT (blake3 IN (SELECT blake3 FROM mf_thumbed) AND stage = 'thumb')", list(FINGERPRINT_NOTES))
        _replace(con, batches, delete=tuple(t for t in batches if not (
            kept and t in _FINGERPRINT_TABLES or (kept or undecoded or thumbed) and t == "meta_errors")))
        if kept:
            kept_partial += _partial_where_fingerprint_failed(con, "mf_kept")
        if undecoded:
            kept_partial += _changed(con.execute(
                "UPDATE media SET status = 'partial' WHERE status = 'ok' AND blake3 IN (SELECT blake3 FROM "
                "meta_errors WHERE stage = 'decode' AND blake3 IN (SELECT blake3 FROM mf_undecoded))"))
        if thumbed:
            con.execute(f"UPDATE media SET {', '.join(f'{c} = o.{c}' for c in _THUMB_COLUMNS)}, "
                        "rotation = coalesce(media.rotation, o.rotation) FROM mf_old_thumbs o "
                        "WHERE media.blake3 = o.blake3 AND media.thumb IS NULL")
            con.execute(f"UPDATE streams SET rotation = o.rotation FROM mf_old_thumbs o "
                        f"WHERE streams.blake3 = o.blake3 AND streams.rotation IS NULL AND o.rotation IS NOT NULL "
                        f"AND {_VIDEO_STREAM}")
            con.execute("DROP TABLE mf_old_thumbs")
            kept_partial += _changed(con.execute(
                "UPDATE media SET status = 'partial' WHERE status = 'ok' AND blake3 IN (SELECT blake3 FROM "
                "meta_errors WHERE stage = 'thumb' AND blake3 IN (SELECT blake3 FROM mf_thumbed))"))
    return kept_partial


def _changed(cursor: Any) -> int:
    """The number of rows an UPDATE changed."""
    got = cursor.fetchone()
    return int(got[0]) if got else 0


def _read(result: dict[str, Any]) -> bool:
    """Whether an extraction result read its file (`ok` or `partial`)."""
    return result["media"] is not None and result["media"].get("status") in ("ok", "partial")


def _partial_where_fingerprint_failed(con: Any, keys: str) -> int:
    """Contents (of the registered table `keys`) `ok` whose fingerprint failed (a note that
    there is none, a flat picture's, is no failure) or whose video pictures end early: they
    are `partial`, as a full extraction makes them. Returns how many became so."""
    return _changed(con.execute(f"""
        UPDATE media SET status = 'partial' WHERE status = 'ok' AND blake3 IN (
            SELECT blake3 FROM meta_errors WHERE blake3 IN (SELECT blake3 FROM {keys})
              AND (stage = 'fingerprint' AND NOT starts_with(message, ${len(FINGERPRINT_NOTES) + 1})
                   OR stage = 'decode' AND ({_NOTED_BY_FP})))""",
        [*FINGERPRINT_NOTES, NO_FINGERPRINT]))


_THUMB_COLUMNS = ("thumb", "thumb_width", "thumb_height", "thumb_bytes")
_VIDEO_STREAM = "streams.type = 'video' AND NOT coalesce(streams.is_cover, FALSE)"
_FINGERPRINT_TABLES = ("image_hashes", "video_hashes", "audio_hashes")
# The `meta_errors` rows that making a fingerprint writes: its own, and a video's pictures
# found to end early or not to decode, or sound that stops decoding (`$1`, `$2`...:
# `FINGERPRINT_NOTES`, the query's first parameters).
_NOTED_BY_FP = " OR ".join(f"starts_with(message, ${i + 1})" for i in range(len(FINGERPRINT_NOTES)))
_FOUND_BY_FP = f"stage = 'fingerprint' OR stage = 'decode' AND ({_NOTED_BY_FP})"


def _found_by_fingerprint(stage: str, message: str) -> bool:
    """`_FOUND_BY_FP` of one error."""
    return stage == "fingerprint" or stage == "decode" and message.startswith(FINGERPRINT_NOTES)


def write_fingerprints(cat: Catalog, results: list[dict[str, Any]], paths: dict[str, bytes]) -> None:
    """Record the fingerprints of a catch-up (and its errors, stage 'fingerprint'),
    replacing any these contents had; their `media` rows stay as they are."""
    if not results:
        return
    batches = {
        "image_hashes": _batch("image_hashes", [dict(r["hashes"], blake3=r["blake3"])
                                                for r in results if r["hashes"]]),
        "video_hashes": _batch("video_hashes", [dict(v, blake3=r["blake3"])
                                                for r in results for v in r["video_hashes"]]),
        "audio_hashes": _batch("audio_hashes", [dict(r["audio_hash"], blake3=r["blake3"])
                                                for r in results if r["audio_hash"]]),
        "meta_errors": _error_rows(results, paths),
    }
    with cat.registered("mf_keys", _keys(results)), cat.transaction() as con:
        con.execute(f"DELETE FROM meta_errors WHERE blake3 IN (SELECT blake3 FROM mf_keys) AND ({_FOUND_BY_FP})",
                    list(FINGERPRINT_NOTES))
        _replace(con, batches, delete=_FINGERPRINT_TABLES)
        # What only these frames or this decode tell (an extraction made without
        # fingerprints: pixels that do not decode, a video whose pictures end early).
        _partial_where_fingerprint_failed(con, "mf_keys")  # (the media rows, not this run's counts)


def _keys(results: list[dict[str, Any]]) -> pa.Table:
    return pa.table({"blake3": pa.array([r["blake3"] for r in results], pa.string())})


def _error_rows(results: list[dict[str, Any]], paths: dict[str, bytes]) -> pa.Table:
    """The `meta_errors` rows of these results, each with the path its content was read at."""
    now = utcnow()
    return _batch("meta_errors", [
        {"blake3": r["blake3"], "path": paths[r["blake3"]].decode("utf-8", "replace"), "path_bytes": paths[r["blake3"]],
         "stage": stage, "message": message, "logged_at": now}
        for r in results for stage, message in r["errors"]
    ])


def _replace(con: Any, batches: dict[str, pa.Table], delete: tuple[str, ...]) -> None:
    """Inside a transaction with the contents' keys registered as `mf_keys`: delete their
    rows from the `delete` tables, then insert every non-empty batch into its table."""
    for table in delete:
        con.execute(f"DELETE FROM {table} WHERE blake3 IN (SELECT blake3 FROM mf_keys)")
    for table, data in batches.items():
        if data.num_rows:
            con.register("mf_rows", data)
            try:
                con.execute(f"INSERT INTO {table} SELECT {', '.join(columns(table))} FROM mf_rows")
            finally:
                con.unregister("mf_rows")


def write_thumbs(cat: Catalog, results: list[dict[str, Any]], paths: dict[str, bytes]) -> None:
    """Record regenerated thumbnails (and their errors) on existing `media` rows; a
    picture's pHash made by the same decode replaces the one it had."""
    if not results:
        return
    thumbs = pa.table({
        "blake3": pa.array([r["blake3"] for r in results], pa.string()),
        "thumb": pa.array([r["thumb"] for r in results], pa.string()),
        "w": pa.array([r["thumb_wh"][0] if r["thumb_wh"] else None for r in results], pa.int32()),
        "h": pa.array([r["thumb_wh"][1] if r["thumb_wh"] else None for r in results], pa.int32()),
        "n": pa.array([r["thumb_wh"][2] if r["thumb_wh"] else None for r in results], pa.int64()),
        "rotation": pa.array([r.get("rotation") for r in results], pa.int32()),
    })
    errors = _error_rows(results, paths)
    hashes = _batch("image_hashes", [dict(r["hashes"], blake3=r["blake3"]) for r in results if r["hashes"]])
    # The thumbnails these replace (another size) stay on disk: another catalog in the
    # same folder shares `thumbs/` and may still show them.
    with cat.registered("mf_thumbs", thumbs), cat.registered("mf_thumb_errors", errors), \
            cat.registered("mf_hashes", hashes):
        _record_thumbs(cat)


def _record_thumbs(cat: Catalog) -> None:
    """`write_thumbs`'s transaction, with its batches registered."""
    with cat.transaction() as con:
        con.execute("DELETE FROM image_hashes WHERE blake3 IN (SELECT blake3 FROM mf_hashes)")
        con.execute(f"INSERT INTO image_hashes SELECT {', '.join(columns('image_hashes'))} FROM mf_hashes")
        con.execute(
            "UPDATE media SET thumb = t.thumb, thumb_width = t.w, thumb_height = t.h, thumb_bytes = t.n "
            # A remake that failed (a full disk, a folder that cannot be written) keeps
            # the thumbnail the content had.
            "FROM mf_thumbs t WHERE media.blake3 = t.blake3 AND t.thumb IS NOT NULL"
        )
        # A rotation that only the decoded frame tells (a video extracted with --no-thumbs
        # whose container has no track header matrix) is known now.
        for table, video in (("media", "TRUE"), ("streams", _VIDEO_STREAM)):
            con.execute(
                f"UPDATE {table} SET rotation = t.rotation FROM mf_thumbs t WHERE {table}.blake3 = t.blake3 "
                f"AND {table}.rotation IS NULL AND t.rotation IS NOT NULL AND {video}"
            )
        # The errors this decode can tell again are replaced, not added to: the thumbnail's
        # own, the reader's (a stage this run reported again; a `decode` row only where it
        # reported the same words) and, where the same decode made a picture's fingerprint,
        # the fingerprint's. A `decode` row it did not report again stays: what only the
        # metadata reading finds (a GIF without its trailer, a TIFF's pixel data past the
        # file's end, an animated PNG short of the frames it claims, a sound or video that
        # ends before its stated length) is not looked for here, and the same bytes decode
        # the same way.
        con.execute(
            "DELETE FROM meta_errors WHERE blake3 IN (SELECT blake3 FROM mf_thumbs) AND ("
            "stage IN ('thumb', 'timeout', 'crash') "
            "OR (stage = 'fingerprint' AND blake3 IN (SELECT blake3 FROM mf_hashes)) "
            "OR EXISTS (SELECT 1 FROM mf_thumb_errors e WHERE e.blake3 = meta_errors.blake3 "
            "AND e.stage = meta_errors.stage AND (e.stage <> 'decode' OR e.message = meta_errors.message)))"
        )
        # A remake that timed out or crashed its worker, of a content that keeps its
        # thumbnail: nothing is wrong with the content, and no later `thumbs --missing-only`
        # or `meta --retry-failed` would take such a row away (the run's counts say it).
        con.execute(f"INSERT INTO meta_errors SELECT {', '.join(columns('meta_errors'))} FROM mf_thumb_errors e "
                    "WHERE NOT (e.stage IN ('timeout', 'crash') AND e.blake3 IN "
                    "(SELECT blake3 FROM media WHERE thumb IS NOT NULL))")
        # 'partial' means some step failed; when the thumbnail was what failed and now
        # succeeded, no failure is left (a flat picture's note that it has no fingerprint
        # is none) and the content is whole again.
        con.execute(
            "UPDATE media SET status = 'ok' WHERE status = 'partial' "
            "AND blake3 IN (SELECT blake3 FROM mf_thumbs WHERE thumb IS NOT NULL) "
            "AND blake3 NOT IN (SELECT blake3 FROM meta_errors "
            "WHERE NOT (stage = 'fingerprint' AND starts_with(message, ?)))", [NO_FINGERPRINT]
        )
