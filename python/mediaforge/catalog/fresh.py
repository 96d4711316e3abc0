"""The catalog's schema at its latest version, as the statements that make a new
catalog in one go: replaying every migration costs a first command about 0.1 s of
DuckDB DDL. Generated from the migrations by `python scripts/fresh_schema.py`, never
edited by hand; tests/test_fresh_schema.py checks that it is in step with them and
that a catalog made from it equals one migrated from empty, object by object."""

VERSION = 31

STATEMENTS = (
    'CREATE TABLE meta("key" VARCHAR PRIMARY KEY, "value" VARCHAR NOT NULL);',
    'CREATE TABLE scans(scan_id BIGINT NOT NULL, started_at TIMESTAMP NOT NULL, finished_at TIMESTAMP'
    ', status VARCHAR NOT NULL, roots VARCHAR[] NOT NULL, hashed BOOLEAN NOT NULL, files_seen BIGINT,'
    ' bytes_seen UBIGINT, new_files BIGINT, changed_files BIGINT, moved_files BIGINT, missing_files B'
    'IGINT, revived_files BIGINT, unchanged_files BIGINT, hashed_files BIGINT, hashed_bytes UBIGINT, '
    'pruned_files BIGINT, errors BIGINT, "seconds" DOUBLE, follow_links BOOLEAN, roots_raw BLOB[]);',
    'CREATE TABLE scan_errors(scan_id BIGINT NOT NULL, logged_at TIMESTAMP NOT NULL, path VARCHAR NOT'
    ' NULL, path_bytes BLOB NOT NULL, stage VARCHAR NOT NULL, message VARCHAR NOT NULL, errno INTEGER'
    ');',
    'CREATE TABLE media(blake3 VARCHAR NOT NULL, kind VARCHAR NOT NULL, status VARCHAR NOT NULL, form'
    'at VARCHAR, width INTEGER, height INTEGER, duration DOUBLE, bitrate BIGINT, video_codec VARCHAR,'
    ' audio_codec VARCHAR, fps DOUBLE, rotation INTEGER, hdr BOOLEAN, bit_depth INTEGER, channels INT'
    'EGER, sample_rate INTEGER, stream_count INTEGER, chapters INTEGER, "mode" VARCHAR, frames INTEGE'
    'R, created_at TIMESTAMP, taken_at TIMESTAMP, thumb VARCHAR, thumb_width INTEGER, thumb_height IN'
    'TEGER, extracted_at TIMESTAMP NOT NULL, thumb_bytes BIGINT);',
    'CREATE TABLE streams(blake3 VARCHAR NOT NULL, stream_index INTEGER NOT NULL, "type" VARCHAR NOT '
    'NULL, codec VARCHAR, profile VARCHAR, bitrate BIGINT, duration DOUBLE, "language" VARCHAR, width'
    ' INTEGER, height INTEGER, display_aspect VARCHAR, rotation INTEGER, fps DOUBLE, pix_fmt VARCHAR,'
    ' bit_depth INTEGER, color_transfer VARCHAR, color_primaries VARCHAR, hdr BOOLEAN, is_cover BOOLE'
    'AN, channels INTEGER, channel_layout VARCHAR, sample_rate INTEGER);',
    'CREATE TABLE tags_audio(blake3 VARCHAR NOT NULL, title VARCHAR, artist VARCHAR, album VARCHAR, a'
    'lbum_artist VARCHAR, track INTEGER, track_total INTEGER, disc INTEGER, disc_total INTEGER, date '
    'VARCHAR, "year" INTEGER, genre VARCHAR, composer VARCHAR, mb_track_id VARCHAR, mb_album_id VARCH'
    'AR, mb_artist_id VARCHAR, mb_recording_id VARCHAR, rg_track_gain DOUBLE, rg_album_gain DOUBLE, r'
    'g_track_peak DOUBLE, rg_album_peak DOUBLE, has_cover BOOLEAN, lossless BOOLEAN);',
    'CREATE TABLE exif(blake3 VARCHAR NOT NULL, make VARCHAR, model VARCHAR, lens VARCHAR, software V'
    'ARCHAR, taken_at TIMESTAMP, taken_offset VARCHAR, exposure_time DOUBLE, f_number DOUBLE, iso INT'
    'EGER, focal_length DOUBLE, focal_length_35mm INTEGER, orientation INTEGER, gps_lat DOUBLE, gps_l'
    'on DOUBLE, gps_alt DOUBLE);',
    'CREATE TABLE sidecars(blake3 VARCHAR NOT NULL, format VARCHAR NOT NULL, taken_at TIMESTAMP, take'
    'n_offset VARCHAR, rating INTEGER, title VARCHAR, description VARCHAR, keywords VARCHAR[], hierar'
    'chical_keywords VARCHAR[], gps_lat DOUBLE, gps_lon DOUBLE);',
    'CREATE TABLE meta_errors(blake3 VARCHAR NOT NULL, path VARCHAR NOT NULL, path_bytes BLOB NOT NUL'
    'L, stage VARCHAR NOT NULL, message VARCHAR NOT NULL, logged_at TIMESTAMP NOT NULL);',
    'CREATE TABLE image_hashes(blake3 VARCHAR NOT NULL, phash UBIGINT NOT NULL, dhash UBIGINT NOT NUL'
    'L, grey BOOLEAN, chroma BLOB, phash256 BLOB);',
    'CREATE TABLE video_hashes(blake3 VARCHAR NOT NULL, k UTINYINT NOT NULL, "position" DOUBLE NOT NU'
    'LL, phash UBIGINT NOT NULL, grey BOOLEAN, chroma BLOB);',
    'CREATE TABLE similar_groups(group_id UINTEGER NOT NULL, blake3 VARCHAR NOT NULL, leader VARCHAR '
    'NOT NULL, "distance" UTINYINT NOT NULL, "method" VARCHAR NOT NULL, radius UTINYINT NOT NULL, cre'
    'ated_at TIMESTAMP NOT NULL);',
    'CREATE TABLE audio_hashes(blake3 VARCHAR NOT NULL, fingerprint BLOB NOT NULL, frames UINTEGER NO'
    'T NULL, "seconds" DOUBLE NOT NULL);',
    'CREATE TABLE tags(media_id UUID NOT NULL, tag VARCHAR NOT NULL, "source" VARCHAR NOT NULL, added'
    '_by VARCHAR NOT NULL, added_at TIMESTAMP NOT NULL);',
    'CREATE TABLE collections(collection_id BIGINT NOT NULL, "name" VARCHAR NOT NULL, kind VARCHAR NO'
    'T NULL, predicate VARCHAR, created_by VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL);',
    'CREATE TABLE collection_items(collection_id BIGINT NOT NULL, media_id UUID NOT NULL, "position" '
    'BIGINT NOT NULL, added_by VARCHAR NOT NULL, added_at TIMESTAMP NOT NULL);',
    'CREATE TABLE search_docs(media_id UUID NOT NULL, digest UBIGINT NOT NULL);',
    'CREATE TABLE xmp_imports(media_id UUID NOT NULL, sidecar_blake3 VARCHAR NOT NULL, imported_at TI'
    'MESTAMP NOT NULL, sidecar_id UUID, scan_id BIGINT);',
    "CREATE TABLE files(media_id UUID NOT NULL, path VARCHAR GENERATED ALWAYS AS(CASE  WHEN ((dir = '"
    '\')) THEN ("name") WHEN ((dir = \'/\')) THEN ((\'/\' || "name")) ELSE ((dir || \'/\') || "name") END), '
    'path_bytes BLOB GENERATED ALWAYS AS(COALESCE(path_raw, encode(CASE  WHEN ((dir = \'\')) THEN ("nam'
    'e") WHEN ((dir = \'/\')) THEN ((\'/\' || "name")) ELSE ((dir || \'/\') || "name") END))), dir VARCHAR '
    'NOT NULL, "name" VARCHAR USING COMPRESSION ZSTD NOT NULL, ext VARCHAR NOT NULL, size UBIGINT NOT'
    ' NULL, mtime_ns BIGINT NOT NULL, ctime_ns BIGINT NOT NULL, dev UBIGINT NOT NULL, inode UBIGINT N'
    'OT NULL, nlink UBIGINT NOT NULL, kind VARCHAR NOT NULL, mime VARCHAR NOT NULL, blake3 VARCHAR US'
    'ING COMPRESSION Uncompressed, status VARCHAR NOT NULL, first_seen TIMESTAMP NOT NULL, last_seen '
    'TIMESTAMP NOT NULL, missing_since TIMESTAMP, first_scan_id BIGINT NOT NULL, last_scan_id BIGINT '
    'NOT NULL, path_raw BLOB, btime_ns BIGINT);',
    'CREATE VIEW sidecar_links AS WITH sc AS (SELECT media_id, path, blake3, dir, "name", path_raw FR'
    "OM files WHERE ((kind = 'sidecar') AND (status = 'present'))), sn AS (SELECT *, lower(nfc_normal"
    'ize(CASE  WHEN ((sc.path_raw IS NULL)) THEN (sc."name") ELSE regexp_extract(CAST(sc.path_raw AS '
    'VARCHAR), \'[^/]*$\') END)) AS n, CASE  WHEN ((sc.path_raw IS NULL)) THEN (sc."name") ELSE regexp_'
    "extract(CAST(sc.path_raw AS VARCHAR), '[^/]*$') END AS x, CASE  WHEN ((sc.path_raw IS NULL)) THE"
    "N (sc.dir) ELSE ('raw:' || regexp_replace(CAST(sc.path_raw AS VARCHAR), '/[^/]*$', '')) END AS f"
    'older, row_number() OVER () AS sid FROM sc), mn AS (SELECT *, lower(nfc_normalize(CASE  WHEN ((f'
    '.path_raw IS NULL)) THEN (f."name") ELSE regexp_extract(CAST(f.path_raw AS VARCHAR), \'[^/]*$\') E'
    'ND)) AS n, CASE  WHEN ((f.path_raw IS NULL)) THEN (f."name") ELSE regexp_extract(CAST(f.path_raw'
    " AS VARCHAR), '[^/]*$') END AS x, CASE  WHEN ((f.path_raw IS NULL)) THEN (f.dir) ELSE ('raw:' ||"
    " regexp_replace(CAST(f.path_raw AS VARCHAR), '/[^/]*$', '')) END AS folder FROM files AS f WHERE"
    " ((f.status = 'present') AND (f.kind IN ('image', 'raw', 'video', 'audio')) AND (f.dir = ANY(SEL"
    'ECT dir FROM sc)))), sk AS (SELECT DISTINCT sid, media_id, path, blake3, folder, unnest(list_dis'
    "tinct(list_value(regexp_replace(n, '\\.[^.]*$', ''), regexp_replace(n, '\\.s(?:u(?:p(?:p(?:l(?:e(?"
    ':m(?:e(?:n(?:t(?:a(?:l(?:-(?:m(?:e(?:t(?:a(?:d(?:a(?:t(?:a)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?'
    ")?(\\(\\d+\\))?\\.json$', '\\1'), regexp_replace(regexp_replace(n, '\\.[^.]*$', ''), '^(.+)(\\.[^.]+)\\("
    "(\\d+)\\)$', '\\1(\\3)\\2'), regexp_replace(regexp_replace(n, '\\.s(?:u(?:p(?:p(?:l(?:e(?:m(?:e(?:n(?:"
    't(?:a(?:l(?:-(?:m(?:e(?:t(?:a(?:d(?:a(?:t(?:a)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?(\\(\\d+\\))?\\'
    ".json$', '\\1'), '^(.+)(\\.[^.]+)\\((\\d+)\\)$', '\\1(\\3)\\2'), CASE  WHEN ((n ~~ '%.json')) THEN (('e:"
    "' || regexp_replace(regexp_replace(n, '\\.s(?:u(?:p(?:p(?:l(?:e(?:m(?:e(?:n(?:t(?:a(?:l(?:-(?:m(?"
    ":e(?:t(?:a(?:d(?:a(?:t(?:a)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?(\\(\\d+\\))?\\.json$', '\\1'), '^("
    ".+)(\\.[^.]+)\\((\\d+)\\)$', '\\1(\\3)\\2'))) ELSE NULL END, CASE  WHEN ((n ~~ '%.json')) THEN (('e:' |"
    "| regexp_replace(regexp_replace(n, '\\.[^.]*$', ''), '^(.+)(\\.[^.]+)\\((\\d+)\\)$', '\\1(\\3)\\2'))) EL"
    'SE NULL END))) AS k FROM sn), mk AS (SELECT media_id, path, blake3, folder, n, unnest(list_value'
    "(n, regexp_replace(n, '\\.[^.]*$', ''), CASE  WHEN ((regexp_extract(n, '^(.*[^ ])(\\(\\d+\\))(\\.[^.]"
    "*)$', 2) != '')) THEN (CASE  WHEN ((length((regexp_replace(n, '^(.*[^ ])(\\(\\d+\\))(\\.[^.]*)$', '\\"
    '1\\3\') || \'.supplemental-metadata\')) > 46)) THEN (("left"((regexp_replace(n, \'^(.*[^ ])(\\(\\d+\\))('
    "\\.[^.]*)$', '\\1\\3') || '.supplemental-metadata'), 46) || regexp_extract(n, '^(.*[^ ])(\\(\\d+\\))(\\"
    '.[^.]*)$\', 2))) ELSE NULL END) WHEN ((length((n || \'.supplemental-metadata\')) > 46)) THEN ("left'
    '"((n || \'.supplemental-metadata\'), 46)) ELSE NULL END, CASE  WHEN ((regexp_replace(n, \'-(?:edite'
    "d|bearbeitet|modifié|editado|modificato|bewerkt|redigerad|muokattu)(\\.[^.]*)$', '\\1') != n)) THE"
    "N (('e:' || regexp_replace(n, '-(?:edited|bearbeitet|modifié|editado|modificato|bewerkt|redigera"
    "d|muokattu)(\\.[^.]*)$', '\\1'))) ELSE NULL END, CASE  WHEN ((regexp_replace(n, '-(?:edited|bearbe"
    "itet|modifié|editado|modificato|bewerkt|redigerad|muokattu)(\\.[^.]*)$', '\\1') != n)) THEN (('e:'"
    " || CASE  WHEN ((regexp_extract(regexp_replace(n, '-(?:edited|bearbeitet|modifié|editado|modific"
    "ato|bewerkt|redigerad|muokattu)(\\.[^.]*)$', '\\1'), '^(.*[^ ])(\\(\\d+\\))(\\.[^.]*)$', 2) != '')) TH"
    "EN (CASE  WHEN ((length((regexp_replace(regexp_replace(n, '-(?:edited|bearbeitet|modifié|editado"
    "|modificato|bewerkt|redigerad|muokattu)(\\.[^.]*)$', '\\1'), '^(.*[^ ])(\\(\\d+\\))(\\.[^.]*)$', '\\1\\3"
    '\') || \'.supplemental-metadata\')) > 46)) THEN (("left"((regexp_replace(regexp_replace(n, \'-(?:edi'
    "ted|bearbeitet|modifié|editado|modificato|bewerkt|redigerad|muokattu)(\\.[^.]*)$', '\\1'), '^(.*[^"
    " ])(\\(\\d+\\))(\\.[^.]*)$', '\\1\\3') || '.supplemental-metadata'), 46) || regexp_extract(regexp_repl"
    "ace(n, '-(?:edited|bearbeitet|modifié|editado|modificato|bewerkt|redigerad|muokattu)(\\.[^.]*)$',"
    " '\\1'), '^(.*[^ ])(\\(\\d+\\))(\\.[^.]*)$', 2))) ELSE NULL END) WHEN ((length((regexp_replace(n, '-("
    "?:edited|bearbeitet|modifié|editado|modificato|bewerkt|redigerad|muokattu)(\\.[^.]*)$', '\\1') || "
    '\'.supplemental-metadata\')) > 46)) THEN ("left"((regexp_replace(n, \'-(?:edited|bearbeitet|modifié'
    "|editado|modificato|bewerkt|redigerad|muokattu)(\\.[^.]*)$', '\\1') || '.supplemental-metadata'), "
    '46)) ELSE NULL END)) ELSE NULL END)) AS k FROM mn), "exact" AS (SELECT DISTINCT s.sid, m.media_i'
    "d FROM ((SELECT sid, folder, unnest(list_distinct(list_value(regexp_replace(x, '\\.[^.]*$', ''), "
    "regexp_replace(x, '\\.s(?:u(?:p(?:p(?:l(?:e(?:m(?:e(?:n(?:t(?:a(?:l(?:-(?:m(?:e(?:t(?:a(?:d(?:a(?"
    ":t(?:a)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?(\\(\\d+\\))?\\.json$', '\\1'), regexp_replace(regexp_r"
    "eplace(x, '\\.[^.]*$', ''), '^(.+)(\\.[^.]+)\\((\\d+)\\)$', '\\1(\\3)\\2'), regexp_replace(regexp_replac"
    "e(x, '\\.s(?:u(?:p(?:p(?:l(?:e(?:m(?:e(?:n(?:t(?:a(?:l(?:-(?:m(?:e(?:t(?:a(?:d(?:a(?:t(?:a)?)?)?)"
    "?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?(\\(\\d+\\))?\\.json$', '\\1'), '^(.+)(\\.[^.]+)\\((\\d+)\\)$', '\\1(\\3)\\"
    "2'), CASE  WHEN ((x ~~ '%.json')) THEN (('e:' || regexp_replace(regexp_replace(x, '\\.s(?:u(?:p(?"
    ':p(?:l(?:e(?:m(?:e(?:n(?:t(?:a(?:l(?:-(?:m(?:e(?:t(?:a(?:d(?:a(?:t(?:a)?)?)?)?)?)?)?)?)?)?)?)?)?'
    ")?)?)?)?)?)?)?(\\(\\d+\\))?\\.json$', '\\1'), '^(.+)(\\.[^.]+)\\((\\d+)\\)$', '\\1(\\3)\\2'))) ELSE NULL END"
    ", CASE  WHEN ((x ~~ '%.json')) THEN (('e:' || regexp_replace(regexp_replace(x, '\\.[^.]*$', ''), "
    "'^(.+)(\\.[^.]+)\\((\\d+)\\)$', '\\1(\\3)\\2'))) ELSE NULL END))) AS k FROM sn) AS s INNER JOIN (SELECT"
    " media_id, folder, unnest(list_value(x, regexp_replace(x, '\\.[^.]*$', ''), CASE  WHEN ((regexp_e"
    "xtract(x, '^(.*[^ ])(\\(\\d+\\))(\\.[^.]*)$', 2) != '')) THEN (CASE  WHEN ((length((regexp_replace(x"
    ', \'^(.*[^ ])(\\(\\d+\\))(\\.[^.]*)$\', \'\\1\\3\') || \'.supplemental-metadata\')) > 46)) THEN (("left"((re'
    "gexp_replace(x, '^(.*[^ ])(\\(\\d+\\))(\\.[^.]*)$', '\\1\\3') || '.supplemental-metadata'), 46) || reg"
    "exp_extract(x, '^(.*[^ ])(\\(\\d+\\))(\\.[^.]*)$', 2))) ELSE NULL END) WHEN ((length((x || '.supplem"
    'ental-metadata\')) > 46)) THEN ("left"((x || \'.supplemental-metadata\'), 46)) ELSE NULL END, CASE '
    " WHEN ((regexp_replace(x, '-(?:edited|bearbeitet|modifié|editado|modificato|bewerkt|redigerad|mu"
    "okattu)(\\.[^.]*)$', '\\1') != x)) THEN (('e:' || regexp_replace(x, '-(?:edited|bearbeitet|modifié"
    "|editado|modificato|bewerkt|redigerad|muokattu)(\\.[^.]*)$', '\\1'))) ELSE NULL END, CASE  WHEN (("
    "regexp_replace(x, '-(?:edited|bearbeitet|modifié|editado|modificato|bewerkt|redigerad|muokattu)("
    "\\.[^.]*)$', '\\1') != x)) THEN (('e:' || CASE  WHEN ((regexp_extract(regexp_replace(x, '-(?:edite"
    "d|bearbeitet|modifié|editado|modificato|bewerkt|redigerad|muokattu)(\\.[^.]*)$', '\\1'), '^(.*[^ ]"
    ")(\\(\\d+\\))(\\.[^.]*)$', 2) != '')) THEN (CASE  WHEN ((length((regexp_replace(regexp_replace(x, '-"
    "(?:edited|bearbeitet|modifié|editado|modificato|bewerkt|redigerad|muokattu)(\\.[^.]*)$', '\\1'), '"
    '^(.*[^ ])(\\(\\d+\\))(\\.[^.]*)$\', \'\\1\\3\') || \'.supplemental-metadata\')) > 46)) THEN (("left"((regex'
    "p_replace(regexp_replace(x, '-(?:edited|bearbeitet|modifié|editado|modificato|bewerkt|redigerad|"
    "muokattu)(\\.[^.]*)$', '\\1'), '^(.*[^ ])(\\(\\d+\\))(\\.[^.]*)$', '\\1\\3') || '.supplemental-metadata'"
    "), 46) || regexp_extract(regexp_replace(x, '-(?:edited|bearbeitet|modifié|editado|modificato|bew"
    "erkt|redigerad|muokattu)(\\.[^.]*)$', '\\1'), '^(.*[^ ])(\\(\\d+\\))(\\.[^.]*)$', 2))) ELSE NULL END) "
    "WHEN ((length((regexp_replace(x, '-(?:edited|bearbeitet|modifié|editado|modificato|bewerkt|redig"
    'erad|muokattu)(\\.[^.]*)$\', \'\\1\') || \'.supplemental-metadata\')) > 46)) THEN ("left"((regexp_repla'
    "ce(x, '-(?:edited|bearbeitet|modifié|editado|modificato|bewerkt|redigerad|muokattu)(\\.[^.]*)$', "
    "'\\1') || '.supplemental-metadata'), 46)) ELSE NULL END)) ELSE NULL END)) AS k FROM mn) AS m ON ("
    '((m.folder = s.folder) AND (m.k = s.k))))), twins AS (SELECT DISTINCT e.sid, m.folder, m.n FROM '
    '("exact" AS e INNER JOIN mn AS m USING (media_id))) SELECT DISTINCT s.media_id AS sidecar_id, s.'
    'path AS sidecar_path, s.blake3 AS sidecar_blake3, m.media_id, m.path, m.blake3 FROM (sk AS s INN'
    'ER JOIN mk AS m ON (((m.folder = s.folder) AND (m.k = s.k)))) WHERE ((NOT ("row"(s.sid, m.folder'
    ', m.n) = ANY(SELECT "row"(sid, folder, n) FROM twins))) OR ("row"(s.sid, m.media_id) = ANY(SELEC'
    'T "row"(sid, media_id) FROM "exact")));',
    'CREATE VIEW library AS SELECT f.media_id, f.path, f.dir, f."name", f.ext, f.size, f.mtime_ns, f.'
    'kind, f.mime, f.blake3, f.first_seen, f.last_seen, m.format, m.width, m.height, m.duration, m.bi'
    'trate, m.video_codec, m.audio_codec, COALESCE(m.video_codec, m.audio_codec) AS codec, m.fps, m.r'
    'otation, m.hdr, m.bit_depth, m.channels, m.sample_rate, m.frames, COALESCE("nullif"(m.taken_at, '
    'm.created_at), x.taken_at, m.taken_at, m.created_at) AS taken_at, COALESCE("year"("nullif"(m.tak'
    'en_at, m.created_at)), "year"(x.taken_at), CASE  WHEN ((a."year" BETWEEN 1 AND 9999)) THEN (a."y'
    'ear") ELSE NULL END, "year"(m.taken_at), "year"(m.created_at), "year"(make_timestamp((f.mtime_ns'
    ' // 1000)))) AS "year", e.make AS camera_make, e.model AS camera_model, e.lens, e.iso, e.f_numbe'
    'r, e.exposure_time, e.focal_length, COALESCE(e.gps_lat, x.gps_lat) AS gps_lat, CASE  WHEN ((e.gp'
    's_lat IS NOT NULL)) THEN (e.gps_lon) ELSE x.gps_lon END AS gps_lon, a.title, a.artist, a.album, '
    'a.album_artist, a.genre, a.track, a.has_cover, a.lossless, COALESCE((SELECT list(t.tag ORDER BY '
    't.tag) FROM tags AS t WHERE (t.media_id = f.media_id)), list_value()) AS tags, x.rating FROM ((('
    '(files AS f LEFT JOIN media AS m ON ((m.blake3 = f.blake3))) LEFT JOIN exif AS e ON ((e.blake3 ='
    ' f.blake3))) LEFT JOIN tags_audio AS a ON ((a.blake3 = f.blake3))) LEFT JOIN (SELECT l.media_id,'
    ' min(s.taken_at) AS taken_at, max(s.rating) AS rating, arg_min(s.gps_lat, (s.gps_lat IS NULL)) A'
    'S gps_lat, arg_min(s.gps_lon, (s.gps_lat IS NULL)) AS gps_lon FROM (sidecar_links AS l INNER JOI'
    'N sidecars AS s ON ((s.blake3 = l.sidecar_blake3))) GROUP BY l.media_id) AS x ON ((x.media_id = '
    "f.media_id))) WHERE (f.status = 'present');",
    "INSERT INTO meta VALUES ('application', 'mediaforge'), ('schema_version', '31')",
)
