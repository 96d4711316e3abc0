"""Search benchmark: MediaForge's tantivy index against DuckDB ILIKE over the same text,
on a catalog of synthetic rows.

    python benches/bench_search.py [--rows 1000000] [--changed 1000] [--repeat 5]
                                   [--data-dir bench-data] [--doc docs/benchmarks.md]

A real MediaForge catalog is filled with `--rows` files whose names, folders, tags,
collections and metadata (camera, lens, codec, artist, album, year) come from realistic
vocabularies, then:
1. index build: `mediaforge search --reindex`'s work (documents assembled in SQL, indexed
   in the Rust core), timed;
2. 20 typical queries, each run `--repeat` times: the index search (what `mediaforge
   search` asks the Rust core) against DuckDB `ILIKE '%word%'` over the same columns (a
   table of the same documents, every word required in some column, same filters);
   p50 and p99 latency of each side;
3. incremental update: `--changed` files get a new tag, then the index catches up on
   exactly those (what `mediaforge tag add` does), timed; and a full digest comparison
   of the whole catalog (what `mediaforge meta` does, and a scan after one that left the
   index behind; other scans compare only the files they changed), timed.
Writes its section of docs/benchmarks.md between `<!-- bench:search:start -->` and
`<!-- bench:search:end -->`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_meta import write_doc  # noqa: E402
from bench_scan import CpuWatch, git_state, hardware, load  # noqa: E402

START, END = "<!-- bench:search:start -->", "<!-- bench:search:end -->"

CITIES = [("paris", "france"), ("london", "uk"), ("berlin", "germany"), ("rome", "italy"), ("madrid", "spain"),
          ("lisbon", "portugal"), ("vienna", "austria"), ("prague", "czechia"), ("amsterdam", "netherlands"),
          ("brussels", "belgium"), ("new york", "usa"), ("tokyo", "japan"), ("kyoto", "japan"),
          ("sydney", "australia"), ("cape town", "south africa"), ("reykjavik", "iceland"), ("oslo", "norway"),
          ("stockholm", "sweden"), ("venice", "italy"), ("florence", "italy"), ("barcelona", "spain"),
          ("marseille", "france"), ("lyon", "france"), ("nice", "france"), ("dublin", "ireland"),
          ("edinburgh", "uk"), ("zurich", "switzerland"), ("geneva", "switzerland"), ("munich", "germany"),
          ("hamburg", "germany")]
PLACES = [c for c, _ in CITIES]
EVENTS = ["holiday", "birthday", "wedding", "christmas", "graduation", "concert", "hiking", "beach", "skiing",
          "camping", "road trip", "school", "garden", "party", "museum", "zoo", "festival", "picnic"]
PEOPLE = ["alice", "bob", "carol", "dave", "emma", "frank", "grace", "henry", "isabel", "jack", "kate", "leo",
          "mia", "noah", "olivia", "paul", "quinn", "rosa", "sam", "tina"]
CAMERAS = [("Canon", "Canon EOS 5D Mark IV"), ("Canon", "Canon EOS R6"), ("NIKON CORPORATION", "NIKON D750"),
           ("NIKON CORPORATION", "NIKON Z 6"), ("SONY", "ILCE-7M3"), ("SONY", "ILCE-6400"), ("FUJIFILM", "X-T3"),
           ("Apple", "iPhone 11"), ("Apple", "iPhone 13 Pro"), ("samsung", "SM-G991B"), ("Google", "Pixel 6"),
           ("OLYMPUS", "E-M10 Mark III"), ("Panasonic", "DC-GH5"), ("GoPro", "HERO9 Black")]
LENSES = ["EF24-105mm f/4L IS USM", "RF50mm F1.8 STM", "NIKKOR Z 24-70mm f/4 S", "FE 85mm F1.8", "XF35mmF2 R WR",
          "iPhone 13 Pro back triple camera 5.7mm f/1.5", None, None]
CODECS = ["h264", "hevc", "av1", "vp9", "mpeg4"]
ARTISTS = ["The Beatles", "Miles Davis", "Daft Punk", "Radiohead", "Nina Simone", "Bach", "Massive Attack",
           "Björk", "Sigur Rós", "Air", "Portishead", "Aphex Twin", "Queen", "ABBA", "Kraftwerk"]
ALBUMS = ["Kind of Blue", "Discovery", "OK Computer", "Homogenic", "Mezzanine", "Moon Safari", "Dummy",
          "Abbey Road", "Arrival", "Autobahn", "Goldberg Variations", "Ágætis byrjun"]
GENRES = ["Jazz", "Electronic", "Rock", "Classical", "Trip Hop", "Pop", "Ambient"]
WORDS = ["sunset", "dinner", "family", "kids", "dog", "cat", "mountain", "lake", "river", "city", "street",
         "night", "snow", "forest", "boat", "train", "bridge", "castle", "market", "portrait"]

QUERIES = ["paris", "paris 2019 canon", "beach 2021", "kind:video year:2019 wedding", "holday", "ipho",
           "tag:people/alice", "wedding nikon", "tokyo kind:image", "daft punk", "miles davis kind:audio",
           "sunset jazz", "christmas 2015", "ext:mp4 hevc", "year:2018..2020 skiing", "reykjavik",
           "barcleona", "img 1234", "concert kind:video", "tag:places/italy venice"]


def fill_catalog(path: Path, rows: int, seed: int = 3) -> None:
    """A real MediaForge catalog with `rows` synthetic files and their metadata."""
    import numpy as np
    import pyarrow as pa

    from mediaforge import open_catalog

    rng = np.random.default_rng(seed)
    path.unlink(missing_ok=True)
    n = rows
    kind = rng.choice(["image", "video", "audio"], size=n, p=[0.75, 0.15, 0.10])
    year = rng.integers(2003, 2026, size=n)
    place = rng.integers(0, len(PLACES), size=n)
    event = rng.integers(0, len(EVENTS), size=n)
    cam = rng.integers(0, len(CAMERAS), size=n)
    num = rng.integers(0, 10000, size=n)
    ids = [str(uuid.UUID(int=int(x))) for x in rng.integers(1, 2**62, size=n)]
    names, dirs, exts, blakes = [], [], [], []
    for i in range(n):
        k = kind[i]
        if k == "image":
            ext = "jpg" if num[i] % 5 else "heic"
            name = f"IMG_{num[i]:04d}.{ext}" if cam[i] < 11 else f"DSC{num[i]:05d}.{ext}"
        elif k == "video":
            ext = "mp4" if num[i] % 3 else "mov"
            name = f"VID_{year[i]}{num[i]:04d}.{ext}"
        else:
            ext = "flac" if num[i] % 2 else "mp3"
            name = f"{num[i] % 20 + 1:02d} {WORDS[num[i] % len(WORDS)].title()} {ALBUMS[num[i] % len(ALBUMS)]}.{ext}"
        names.append(name)
        exts.append(ext)
        if k == "audio":
            dirs.append(f"/home/me/Music/{ARTISTS[num[i] % len(ARTISTS)]}/{ALBUMS[num[i] % len(ALBUMS)]}")
        else:
            dirs.append(f"/home/me/Pictures/{year[i]}/{year[i]}-{1 + i % 12:02d} {PLACES[place[i]].title()} "
                        f"{EVENTS[event[i]]}")
        blakes.append(f"{i:064x}")
    mtime = ((year - 1970) * 365.25 * 86400 * 1e9).astype("int64")
    files = pa.table({
        "media_id": ids, "dir": dirs, "name": names, "ext": exts, "size": rng.integers(1000, 10**8, size=n).astype("uint64"),
        "mtime_ns": mtime, "kind": kind, "blake3": blakes,
    })
    media = pa.table({"blake3": blakes, "kind": kind,
                      "video_codec": [CODECS[x % len(CODECS)] if k == "video" else None for x, k in zip(num, kind,
                                                                                                       strict=True)],
                      "audio_codec": [("flac" if e == "flac" else "mp3") if k == "audio" else None
                                      for k, e in zip(kind, exts, strict=True)],
                      "taken": mtime // 1000})
    exif = pa.table({"blake3": [b for b, k in zip(blakes, kind, strict=True) if k == "image"],
                     "make": [CAMERAS[c][0] for c, k in zip(cam, kind, strict=True) if k == "image"],
                     "model": [CAMERAS[c][1] for c, k in zip(cam, kind, strict=True) if k == "image"],
                     "lens": [LENSES[c % len(LENSES)] for c, k in zip(cam, kind, strict=True) if k == "image"]})
    audio = pa.table({"blake3": [b for b, k in zip(blakes, kind, strict=True) if k == "audio"],
                      "title": [f"{WORDS[x % len(WORDS)].title()} Song" for x, k in zip(num, kind, strict=True)
                                if k == "audio"],
                      "artist": [ARTISTS[x % len(ARTISTS)] for x, k in zip(num, kind, strict=True) if k == "audio"],
                      "album": [ALBUMS[x % len(ALBUMS)] for x, k in zip(num, kind, strict=True) if k == "audio"],
                      "genre": [GENRES[x % len(GENRES)] for x, k in zip(num, kind, strict=True) if k == "audio"]})
    tag_m, tag_t = [], []
    for i in range(n):
        if kind[i] == "audio":
            continue
        tag_m.append(ids[i])
        tag_t.append(f"places/{CITIES[place[i]][1]}/{PLACES[place[i]]}")
        if num[i] % 3 == 0:
            tag_m.append(ids[i])
            tag_t.append(f"people/{PEOPLE[num[i] % len(PEOPLE)]}")
        if num[i] % 4 == 0:
            tag_m.append(ids[i])
            tag_t.append(f"events/{EVENTS[event[i]]}")
    tags = pa.table({"media_id": tag_m, "tag": tag_t})
    with open_catalog(path) as cat, cat.transaction() as con:
        for name, t in (("b_files", files), ("b_media", media), ("b_exif", exif), ("b_audio", audio),
                        ("b_tags", tags)):
            con.register(name, t)
        con.execute("""
            INSERT INTO files (media_id, dir, name, ext, size, mtime_ns, ctime_ns, dev, inode, nlink, kind, mime,
                               blake3, status, first_seen, last_seen, missing_since, first_scan_id, last_scan_id)
            SELECT media_id::UUID, dir, name, ext, size, mtime_ns, mtime_ns,
                   1, row_number() OVER (), 1, kind, 'application/octet-stream', blake3, 'present',
                   now()::TIMESTAMP, now()::TIMESTAMP, NULL, 1, 1 FROM b_files""")
        con.execute("""
            INSERT INTO media (blake3, kind, status, video_codec, audio_codec, taken_at, extracted_at)
            SELECT blake3, kind, 'ok', video_codec, audio_codec, make_timestamp(taken), now()::TIMESTAMP
            FROM b_media""")
        con.execute("INSERT INTO exif (blake3, make, model, lens) SELECT * FROM b_exif")
        con.execute("INSERT INTO tags_audio (blake3, title, artist, album, genre) SELECT * FROM b_audio")
        con.execute("INSERT INTO tags SELECT media_id::UUID, tag, 'user', 'bench', now()::TIMESTAMP FROM b_tags")
        con.execute("INSERT INTO collections VALUES (1, 'Best of Paris', 'manual', NULL, 'bench', now()::TIMESTAMP)")
        con.execute("""INSERT INTO collection_items SELECT 1, media_id, row_number() OVER (), 'bench', now()::TIMESTAMP
                       FROM tags WHERE tag = 'places/france/paris' USING SAMPLE 20 PERCENT (reservoir, 1)""")


def ilike_sql(query: str, ranked: bool = True) -> tuple[str, list]:
    """The same query as DuckDB ILIKE over the documents: every word in some column.
    Ranked (like the index): files whose name holds the words come first, so every match
    is looked at; unranked: the first 20 matches found, in no order."""
    where, params, rank, rank_params = [], [], [], []
    for word in query.split():
        if ":" in word:
            key, value = word.split(":", 1)
            if key == "year" and ".." in value:
                a, b = value.split("..")
                where.append("year BETWEEN ? AND ?")
                params += [int(a), int(b)]
            elif key == "year":
                where.append("year = ?")
                params.append(int(value))
            elif key == "tag":
                where.append("(lower(tags) LIKE ? OR lower(tags) LIKE ?)")
                params += [f"%{value}%", f"%{value}/%"]
            else:
                where.append(f"{key} = ?")
                params.append(value)
            continue
        where.append("(name ILIKE ? OR path ILIKE ? OR tags ILIKE ? OR collections ILIKE ? OR meta ILIKE ?)")
        params += [f"%{word}%"] * 5
        rank.append("(name ILIKE ?)::INT * 3 + (tags ILIKE ?)::INT * 2 + (meta ILIKE ?)::INT")
        rank_params += [f"%{word}%"] * 3
    order = f"ORDER BY {' + '.join(rank)} DESC, name " if ranked and rank else "ORDER BY name " if ranked else ""
    return (f"SELECT media_id FROM docs WHERE {' AND '.join(where)} {order}LIMIT 20",
            params + (rank_params if ranked and rank else []))


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--changed", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--data-dir", type=Path, default=REPO / "bench-data")
    ap.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    ap.add_argument("--no-doc", action="store_true")
    args = ap.parse_args()
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    import pyarrow as pa

    from mediaforge import _core, open_catalog
    from mediaforge.organise.search import docs_sql, index_dir, refresh, search
    from mediaforge.organise.tags import add_tags

    work = args.data_dir.resolve() / "search"
    work.mkdir(parents=True, exist_ok=True)
    cat_path = work / f"catalog-{args.rows}.duckdb"
    watch, load_start, t_start = CpuWatch(), load(), time.monotonic()
    t = time.perf_counter()
    fill_catalog(cat_path, args.rows)
    t_fill = time.perf_counter() - t
    log(f"  filled {args.rows:,} rows in {t_fill:.1f} s")
    with open_catalog(cat_path) as cat:
        t = time.perf_counter()
        built = refresh(cat, cat_path, rebuild=True)
        t_build = time.perf_counter() - t
        log(f"  index build: {t_build:.1f} s for {built.total:,} documents")
        # The ILIKE side: the very same documents, as a table.
        t = time.perf_counter()
        cat.con.execute(f"CREATE OR REPLACE TEMP TABLE docs AS {docs_sql()}")
        t_docs = time.perf_counter() - t
        index = _core.SearchIndex(index_dir(cat_path))
        lat_mf: dict[str, list[float]] = {q: [] for q in QUERIES}
        lat_db: dict[str, list[float]] = {q: [] for q in QUERIES}
        lat_first: list[float] = []
        hits: dict[str, tuple[int, int]] = {}
        for q in QUERIES:  # warm both once
            a = pa.record_batch(index.search(q, 20)).num_rows
            sql, params = ilike_sql(q)
            b = len(cat.con.execute(sql, params).fetchall())
            hits[q] = (a, b)
        for _ in range(args.repeat):
            for q in QUERIES:
                t = time.perf_counter()
                index.search(q, 20)
                lat_mf[q].append((time.perf_counter() - t) * 1000)
                sql, params = ilike_sql(q)
                t = time.perf_counter()
                cat.con.execute(sql, params).fetchall()
                lat_db[q].append((time.perf_counter() - t) * 1000)
                sql, params = ilike_sql(q, ranked=False)
                t = time.perf_counter()
                cat.con.execute(sql, params).fetchall()
                lat_first.append((time.perf_counter() - t) * 1000)
        # End to end, as `mediaforge search` runs once the catalog is open: the index
        # search plus the catalog join that turns hits into paths, kinds, years and tags.
        lat_e2e: list[float] = []
        for _ in range(args.repeat):
            for q in QUERIES:
                t = time.perf_counter()
                search(cat, cat_path, q, 20)
                lat_e2e.append((time.perf_counter() - t) * 1000)
        all_mf = [x for v in lat_mf.values() for x in v]
        all_db = [x for v in lat_db.values() for x in v]
        # Incremental: tag `--changed` files, then let the index catch up on exactly those.
        ids = [str(r[0]) for r in cat.con.sql(
            f"SELECT media_id FROM files USING SAMPLE {args.changed} ROWS (reservoir, 9)").fetchall()]
        add_tags(cat, ids, ["bench/changed"])
        t = time.perf_counter()
        upd = refresh(cat, cat_path, only=ids)
        t_upd = time.perf_counter() - t
        # A fresh handle, as the next `mediaforge search` opens one.
        found = pa.record_batch(_core.SearchIndex(index_dir(cat_path)).search("tag:bench/changed",
                                                                             args.changed + 10)).num_rows
        t = time.perf_counter()
        full = refresh(cat, cat_path)
        t_full = time.perf_counter() - t
        log(f"  update: {upd.indexed} docs in {t_upd:.2f} s (search finds {found}); full compare {t_full:.2f} s")
    size = sum(p.stat().st_size for p in index_dir(cat_path).rglob("*") if p.is_file())
    p99_mf, p99_db = pct(all_mf, 99), pct(all_db, 99)
    p50_mf, p50_db = pct(all_mf, 50), pct(all_db, 50)
    hw = hardware()
    lines = [
        "## Search: tantivy index vs DuckDB ILIKE",
        "",
        f"Generated by `python benches/bench_search.py --rows {args.rows} --changed {args.changed} "
        f"--repeat {args.repeat}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
        f"- **Hardware**: {hw['cpu']}, {hw['nproc']} CPUs, {hw['mem']} RAM; kernel {hw['kernel']}; {hw['os']}",
        f"- **Tools**: mediaforge{git_state()}",
        f"- **Noise**: load {load_start} at start; {watch.report()}.",
        "",
        f"A real catalog of {args.rows:,} synthetic files (names like IMG_1234.jpg, folders by year, place and event, "
        "tags places/country/city, people/..., events/..., cameras, lenses, codecs, artists, albums, genres) "
        f"filled in {t_fill:.0f} s. The index: {built.total:,} documents, built in {t_build:.1f} s "
        f"(documents assembled in SQL and indexed in the Rust core), {size / 2**20:,.0f} MiB on disk. DuckDB's "
        f"side: the same documents as a table ({t_docs:.1f} s to make), each word `ILIKE '%word%'` over name, "
        "folders, tags, collections and metadata, filters as SQL, the top 20 by a simple relevance order (words in "
        "the name, then in tags, then in metadata), which like the index's ranking has to look at every match. "
        "Without any order (`LIMIT 20` stops at the first 20 matches found, unranked) ILIKE's latency is "
        f"{pct(lat_first, 50):.1f} ms at p50 and {pct(lat_first, 99):.1f} ms at p99.",
        "",
        f"Latency over {len(QUERIES)} queries x {args.repeat} runs (top 20):",
        "",
        "| query | MediaForge p50, ms | DuckDB ILIKE p50, ms | ratio | hits (MF / ILIKE) |",
        "|---|---:|---:|---:|---:|",
    ]
    for q in QUERIES:
        a, b = statistics.median(lat_mf[q]), statistics.median(lat_db[q])
        lines.append(f"| `{q}` | {a:.2f} | {b:.1f} | {b / a:,.0f}x | {hits[q][0]} / {hits[q][1]} |")
    lines += [
        "",
        "Typos (`holday`, `barcleona`) find nothing with ILIKE; the index finds them.",
        "",
        "| check | value | target | result |",
        "|---|---:|---:|---|",
        f"| p99 latency, MediaForge, ms | {p99_mf:.1f} | < 50 | {'pass' if p99_mf < 50 else '**MISSED**'} |",
        f"| p50 / p99 latency end to end (`search()`: the index, then the catalog for the hits' paths "
        f"and tags; ILIKE's side has no such step), ms | {pct(lat_e2e, 50):.1f} / {pct(lat_e2e, 99):.1f} | — | info |",
        f"| p50 latency, MediaForge / DuckDB ILIKE, ms | {p50_mf:.2f} / {p50_db:.1f} | — | info |",
        f"| p99 latency, DuckDB ILIKE, ms | {p99_db:.1f} | — | info |",
        f"| speed-up at p50 (ILIKE / MediaForge) | {p50_db / p50_mf:,.0f}x | >= 20x | "
        f"{'pass' if p50_db / p50_mf >= 20 else '**MISSED**'} |",
        f"| speed-up at p99 (ILIKE / MediaForge) | {p99_db / p99_mf:,.0f}x | >= 20x | "
        f"{'pass' if p99_db / p99_mf >= 20 else '**MISSED**'} |",
        f"| incremental update, {args.changed:,} changed files, s | {t_upd:.2f} | < 1 | "
        f"{'pass' if t_upd < 1 else '**MISSED**'} |",
        f"| changed files found by `tag:bench/changed` after the update | {found:,} | {args.changed:,} | "
        f"{'pass' if found == args.changed else '**MISSED**'} |",
        f"| full digest comparison of {args.rows:,} files (`meta`, or a scan after a `--no-index` one), s | "
        f"{t_full:.2f} | — | info |",
        "",
        f"Whole run: {time.monotonic() - t_start:.0f} s.",
    ]
    body = "\n".join(lines) + "\n"
    print(body)
    if not args.no_doc:
        write_doc(args.doc, body, START, END)
        log(f"bench: wrote {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
