"""Duplicate-finding benchmarks: accuracy and speed of MediaForge's perceptual hashing
against imagehash, and its near-duplicate search against a brute-force numpy scan.

    python benches/bench_dupes.py [--families 200] [--singles 200] [--screens 100] [--photos 500]
                                  [--videos 20] [--songs 24] [--tracks 10000]
                                  [--megapixels 12] [--hashes 1000000] [--planted 10000]
                                  [--radius 8] [--data-dir bench-data] [--doc docs/benchmarks.md]

1. Accuracy: `--families` distinct photo-like pictures, each with variants (50% resize,
   JPEG quality 60, 5% crop, brightness +10%, rotated pixels with EXIF orientation 6, PNG),
   plus `--singles` distinct pictures. MediaForge's hashes come from a real `mediaforge
   scan` (the catalog's `image_hashes`); imagehash's from `imagehash.phash`/`dhash` on the
   same files. Precision and recall of "within the radius" against "same picture", for
   several radii, with and without the finer pHash's check `dupes --similar` makes. And
   `--screens` screenshots of one app (same window, other text), a JPEG copy of every
   fourth: the pairs the 64-bit pHash finds among different ones, and those left after
   the check.
   Audio: `--songs` synthesised songs in four encodings (FLAC, MP3, AAC, Opus) plus cut
   versions, grouped by a real `mediaforge dupes --similar --kind audio`; and the audio
   search timed over `--tracks` random fingerprints with planted re-encodes.
2. Hashing speed: `--photos` photo-like JPEGs of `--megapixels`, 2 processes each:
   MediaForge's hash-only path (grey 1/8-scale decode from the DC coefficients and pHash,
   both in Rust, as `scan --no-thumbs`)
   and its thumbnail-decode path vs `imagehash.phash` alone on stock Pillow (the target's
   peer), and vs `imagehash.phash` + `dhash` (both hashes, as MediaForge makes them).
3. Search speed: `--hashes` random 64-bit hashes with `--planted` near copies (1 to
   radius bits apart): MediaForge's index search, every planted pair checked; a numpy
   popcount scan over all pairs of a 20,000-hash subset (the same pairs, compared), and
   its time scaled to the full set by the pair count.
Writes its section of docs/benchmarks.md between `<!-- bench:dupes:start -->` and
`<!-- bench:dupes:end -->`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from itertools import combinations
from multiprocessing import Pool
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_meta import bench_venv, build_corpus, scene, write_doc  # noqa: E402
from bench_scan import NPROC, CpuWatch, git_state, hardware, load, sh  # noqa: E402

START, END = "<!-- bench:dupes:start -->", "<!-- bench:dupes:end -->"
VARIANTS = ("orig", "half", "q60", "crop5", "bright10", "exifrot", "png")
# The 64-bit pHash's pairs confirmed by the finer 256-bit one: what `dupes --similar` groups.
CHECKED = "MediaForge pHash + finer check"


def _family(job: tuple[str, int, bool]) -> list[str]:
    from PIL import Image, ImageEnhance

    folder, seed, single = job
    img = scene(seed, 640, 480)
    out = []

    def save(name: str, im, **kw) -> None:  # noqa: ANN001
        p = os.path.join(folder, name)
        im.save(p, **kw)
        out.append(p)

    save(f"{seed:05d}_orig.jpg", img, quality=90)
    if single:
        return out
    w, h = img.size
    save(f"{seed:05d}_half.jpg", img.resize((w // 2, h // 2), Image.Resampling.LANCZOS), quality=85)
    save(f"{seed:05d}_q60.jpg", img, quality=60)
    dx, dy = int(w * 0.025), int(h * 0.025)  # 5% of each dimension, half from each side
    save(f"{seed:05d}_crop5.jpg", img.crop((dx, dy, w - dx, h - dy)), quality=90)
    save(f"{seed:05d}_bright10.jpg", ImageEnhance.Brightness(img).enhance(1.10), quality=90)
    ex = Image.Exif()
    ex[0x0112] = 6  # stored turned a quarter, EXIF says how to show it upright
    save(f"{seed:05d}_exifrot.jpg", img.transpose(Image.Transpose.ROTATE_90), quality=90, exif=ex)
    save(f"{seed:05d}_png.png", img)
    return out


def build_accuracy_set(root: Path, families: int, singles: int) -> Path:
    done = root / ".complete"
    if done.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    jobs = [(str(root), i, False) for i in range(families)] + [(str(root), 100_000 + i, True) for i in range(singles)]
    with Pool(NPROC) as pool:
        for _ in pool.imap_unordered(_family, jobs):
            pass
    done.touch()
    return root


def _screen(job: tuple[str, int]) -> None:
    """One app's screenshot (`synth.screenshot`) `<seed>_orig.png`, and for every fourth
    seed its JPEG copy `<seed>_copy.jpg`."""
    from mediaforge.synth import screenshot

    folder, seed = job
    im = screenshot(seed)
    im.save(os.path.join(folder, f"{seed:05d}_orig.png"))
    if seed % 4 == 0:
        im.save(os.path.join(folder, f"{seed:05d}_copy.jpg"), quality=70)


def build_screens_set(root: Path, count: int) -> Path:
    done = root / ".complete"
    if done.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    with Pool(NPROC) as pool:
        for _ in pool.imap_unordered(_screen, [(str(root), i) for i in range(count)]):
            pass
    done.touch()
    return root


def _clip(job: tuple[str, list[int], tuple[int, int], str]) -> None:
    """An H.264 clip showing picture `seeds[i]` during its i-th half second."""
    import av

    path, seeds, size, crf = job
    frames = {sd: scene(sd, 640, 480).resize(size) for sd in set(seeds)}
    with av.open(path, "w") as out:
        st = out.add_stream("libx264", rate=12)
        st.width, st.height, st.pix_fmt = size[0], size[1], "yuv420p"
        st.options = {"preset": "ultrafast", "crf": crf}
        for sd in seeds:
            for _ in range(6):
                for p in st.encode(av.VideoFrame.from_image(frames[sd])):
                    out.mux(p)
        for p in st.encode():
            out.mux(p)


def build_video_set(root: Path, count: int) -> Path:
    """`count` 12 s clips, each with a re-encode (smaller, lower bitrate) and a clip that
    shares only its first 3 s."""
    done = root / ".complete"
    if done.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    jobs = []
    for v in range(count):
        seeds = [10_000 + v * 100 + i for i in range(24)]
        jobs.append((str(root / f"v{v:03d}_orig.mp4"), seeds, (320, 240), "20"))
        jobs.append((str(root / f"v{v:03d}_reenc.mp4"), seeds, (192, 144), "34"))
        jobs.append((str(root / f"i{v:03d}_intro.mp4"), seeds[:6] + [50_000 + v * 100 + i for i in range(18)],
                     (320, 240), "20"))
    with Pool(NPROC) as pool:
        for _ in pool.imap_unordered(_clip, jobs):
            pass
    done.touch()
    return root


AUDIO_VERSIONS = (("flac", "flac", "flac", None, None), ("mp3", "libmp3lame", "mp3", 128_000, None),
                  ("m4a", "aac", "ipod", 96_000, None), ("opus", "libopus", "ogg", 64_000, 48_000))


def _song(job: tuple[str, int, float, bool]) -> None:
    from mediaforge.synth import song_pcm, write_audio

    folder, seed, seconds, cut = job
    pcm = song_pcm(seed, seconds)
    if cut:  # the same recording cut short: a different track, the duration guard's case
        write_audio(Path(folder) / f"s{seed:03d}_cut.flac", pcm[: int(len(pcm) * 0.65)], 44100, "flac", "flac")
        return
    for ext, codec, fmt, rate, out_rate in AUDIO_VERSIONS:
        write_audio(Path(folder) / f"s{seed:03d}_{ext}.{ext}", pcm, 44100, codec, fmt, rate, out_rate)


def build_audio_set(root: Path, count: int) -> Path:
    """`count` songs (45 to 90 s; songs 2k and 2k+1 last exactly as long) in four
    versions each (FLAC, MP3 128k, AAC 96k, Opus 64k), plus a 65% cut of every fourth."""
    done = root / ".complete"
    if done.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    jobs = [(str(root), s, 45.0 + (s // 2 * 7) % 46, False) for s in range(count)]
    jobs += [(str(root), s, 45.0 + (s // 2 * 7) % 46, True) for s in range(0, count, 4)]
    with Pool(NPROC) as pool:
        for _ in pool.imap_unordered(_song, jobs):
            pass
    done.touch()
    return root


def fine_apart(x: bytes | None, y: bytes | None) -> int:
    """Bits apart of two finer pHashes (`image_hashes.phash256`); 0 where one is missing."""
    return 0 if x is None or y is None else (int.from_bytes(x) ^ int.from_bytes(y)).bit_count()


def precision_recall(paths: list[str], hashes: list[int], radius: int,
                     fine: list[bytes | None] | None = None) -> tuple[float, float, int]:
    """Pairs within `radius` against pairs of the same family (file name prefix); with
    `fine`, only the pairs the finer pHash confirms, as `dupes --similar` takes them."""
    import numpy as np

    from mediaforge import _core
    from mediaforge.dupes.find import fine_radius
    import pyarrow as pa

    fam = [Path(p).name.split("_")[0] for p in paths]
    pairs = pa.record_batch(_core.near_pairs(np.array(hashes, dtype="<u8").tobytes(), radius))
    a, b = pairs.column("a").to_pylist(), pairs.column("b").to_pylist()
    if fine is not None:
        kept = [(i, j) for i, j in zip(a, b) if fine_apart(fine[i], fine[j]) <= fine_radius(radius)]
        a, b = [i for i, _ in kept], [j for _, j in kept]
    tp = sum(fam[i] == fam[j] for i, j in zip(a, b))
    by: dict[str, int] = {}
    for f in fam:
        by[f] = by.get(f, 0) + 1
    truth = sum(n * (n - 1) // 2 for n in by.values())
    return (tp / len(a) if a else 1.0), (tp / truth if truth else 1.0), len(a)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--families", type=int, default=200)
    ap.add_argument("--singles", type=int, default=200)
    ap.add_argument("--photos", type=int, default=500)
    ap.add_argument("--screens", type=int, default=100, help="screenshots of one app in the screenshot set")
    ap.add_argument("--videos", type=int, default=20, help="clips in the video accuracy set")
    ap.add_argument("--songs", type=int, default=24, help="songs in the audio accuracy set")
    ap.add_argument("--tracks", type=int, default=10_000, help="fingerprints in the audio search timing")
    ap.add_argument("--megapixels", type=float, default=12.0)
    ap.add_argument("--hashes", type=int, default=1_000_000)
    ap.add_argument("--planted", type=int, default=10_000)
    ap.add_argument("--radius", type=int, default=8)
    ap.add_argument("--data-dir", type=Path, default=REPO / "bench-data")
    ap.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    ap.add_argument("--no-doc", action="store_true")
    args = ap.parse_args()
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    import numpy as np
    import pyarrow as pa

    from mediaforge import _core

    data = args.data_dir.resolve()
    py_ih = bench_venv("imagehash")
    watch, load_start, t_start = CpuWatch(), load(), time.monotonic()
    mf = str(Path(sys.executable).parent / "mediaforge")
    work = data / "dupes-work"
    work.mkdir(parents=True, exist_ok=True)

    # 1. Accuracy.
    acc = build_accuracy_set(data / f"dupes-accuracy-{args.families}-{args.singles}", args.families, args.singles)
    files = sorted(str(p) for p in acc.iterdir() if p.suffix in (".jpg", ".png"))
    cat = work / "accuracy.duckdb"
    cat.unlink(missing_ok=True)
    subprocess.run([mf, "-q", "-c", str(cat), "scan", str(acc), "--json"], check=True, stdout=subprocess.DEVNULL)
    import duckdb

    con = duckdb.connect(str(cat), read_only=True)
    mf_hash = dict(con.execute("SELECT f.path, h.phash FROM files f JOIN image_hashes h USING (blake3)").fetchall())
    mf_fine = dict(con.execute("SELECT f.path, h.phash256 FROM files f JOIN image_hashes h USING (blake3)").fetchall())
    con.close()
    # The hash-only path (no thumbnails: grey decode) must agree with it.
    cat2 = work / "accuracy-nothumbs.duckdb"
    cat2.unlink(missing_ok=True)
    subprocess.run([mf, "-q", "-c", str(cat2), "scan", str(acc), "--no-thumbs", "--json"], check=True,
                   stdout=subprocess.DEVNULL)
    con = duckdb.connect(str(cat2), read_only=True)
    mf_grey = dict(con.execute("SELECT f.path, h.phash FROM files f JOIN image_hashes h USING (blake3)").fetchall())
    con.close()
    path_bits = sorted(bin(mf_hash[f] ^ mf_grey[f]).count("1") for f in files if f in mf_grey)
    lst = work / "accuracy.txt"
    lst.write_text("\n".join(files) + "\n")
    ih_json = work / "imagehash.json"
    subprocess.run([str(py_ih), str(HERE / "hash_worker.py"), "--mode", "imagehash", "--list", str(lst),
                    "--procs", str(NPROC), "--out", str(ih_json)], check=True, stdout=subprocess.DEVNULL)
    ih = json.loads(ih_json.read_text())
    missing = [f for f in files if f not in mf_hash]
    if missing:
        raise SystemExit(f"bench: mediaforge has no hash for {len(missing)} files, e.g. {missing[0]}")
    radii = sorted({4, 6, args.radius, 10, 12})
    acc_rows = []
    fines = [mf_fine.get(f) for f in files]
    for name, hs, fine in ((CHECKED, [mf_hash[f] for f in files], fines),
                           ("MediaForge pHash", [mf_hash[f] for f in files], None),
                           ("MediaForge pHash, hash only", [mf_grey[f] for f in files], None),
                           ("imagehash phash", [ih[f][0] for f in files], None),
                           ("imagehash dhash", [ih[f][1] for f in files], None)):
        for r in radii:
            p, rc, n = precision_recall(files, hs, r, fine)
            acc_rows.append((name, r, p, rc, n))
            log(f"  accuracy {name} r={r}: precision {p:.4f} recall {rc:.4f} ({n} pairs)")
    # Recall per variant for the chosen radius: which edits each method survives.
    def per_variant(hs: dict[str, int], fine: dict[str, bytes | None] | None = None) -> dict[str, float]:
        from mediaforge.dupes.find import fine_radius

        out = {}
        for v in VARIANTS[1:]:
            got = total = 0
            for f in files:
                if f.endswith("_orig.jpg"):
                    other = f.replace("_orig.jpg", f"_{v}.png" if v == "png" else f"_{v}.jpg")
                    if other in hs:
                        total += 1
                        got += bin(hs[f] ^ hs[other]).count("1") <= args.radius and (
                            fine is None or fine_apart(fine.get(f), fine.get(other)) <= fine_radius(args.radius))
            out[v] = got / total if total else float("nan")
        return out

    variant = {
        CHECKED: per_variant(mf_hash, mf_fine),
        "MediaForge pHash": per_variant(mf_hash),
        "MediaForge pHash, hash only": per_variant(mf_grey),
        "imagehash phash": per_variant({f: ih[f][0] for f in files}),
        "imagehash dhash": per_variant({f: ih[f][1] for f in files}),
    }

    # 1a. Screenshots of one app: pairs the 64-bit pHash finds among different ones.
    scr = build_screens_set(data / f"dupes-screens-{args.screens}", args.screens)
    scat = work / "screens.duckdb"
    scat.unlink(missing_ok=True)
    subprocess.run([mf, "-q", "-c", str(scat), "scan", str(scr), "--json"], check=True, stdout=subprocess.DEVNULL)
    con = duckdb.connect(str(scat), read_only=True)
    got_s = con.execute("SELECT f.path, h.phash, h.phash256 FROM files f JOIN image_hashes h USING (blake3) "
                        "ORDER BY 1").fetchall()
    con.close()
    s_paths = [r[0] for r in got_s]
    screens = {how: precision_recall(s_paths, [r[1] for r in got_s], args.radius, fine)
               for how, fine in (("MediaForge pHash", None), (CHECKED, [r[2] for r in got_s]))}
    for how, (p, rc, n) in screens.items():
        log(f"  screens {how}: precision {p:.4f} recall {rc:.4f} ({n} pairs)")

    # 1b. Video accuracy: re-encodes must group with their original, intro-sharers must not.
    vids = build_video_set(data / f"dupes-videos-{args.videos}", args.videos)
    vcat = work / "videos.duckdb"
    vcat.unlink(missing_ok=True)
    subprocess.run([mf, "-q", "-c", str(vcat), "scan", str(vids), "--json"], check=True, stdout=subprocess.DEVNULL)
    res = subprocess.run([mf, "-q", "-c", str(vcat), "dupes", "--similar", "--kind", "video", "--threshold",
                          str(args.radius), "--format", "json"], check=True, capture_output=True, text=True)
    vgroups: dict[int, set[str]] = {}
    for r in json.loads(res.stdout):
        vgroups.setdefault(r["group"], set()).add(Path(r["path"]).name)
    v_pairs = {frozenset(p) for g in vgroups.values() for p in combinations(sorted(g), 2)}
    v_truth = {frozenset({f"v{v:03d}_orig.mp4", f"v{v:03d}_reenc.mp4"}) for v in range(args.videos)}
    v_tp = len(v_pairs & v_truth)
    v_intro = sum(any(n.startswith("i") for n in p) for p in v_pairs)
    v_prec = v_tp / len(v_pairs) if v_pairs else 1.0
    v_rec = v_tp / len(v_truth)
    log(f"  videos: {len(v_pairs)} pairs reported, {v_tp} true, {v_intro} intro-only")

    # 1c. Audio accuracy: four encodings of one song group; other songs and cut versions do not.
    songs = build_audio_set(data / f"dupes-audio-{args.songs}", args.songs)
    acat = work / "audio.duckdb"
    acat.unlink(missing_ok=True)
    t = time.perf_counter()
    subprocess.run([mf, "-q", "-c", str(acat), "scan", str(songs), "--no-thumbs", "--json"], check=True,
                   stdout=subprocess.DEVNULL)
    t_ascan = time.perf_counter() - t
    t = time.perf_counter()
    res = subprocess.run([mf, "-q", "-c", str(acat), "dupes", "--similar", "--kind", "audio", "--format", "json"],
                         check=True, capture_output=True, text=True)
    t_adupes = time.perf_counter() - t
    agroups: dict[int, set[str]] = {}
    for r in json.loads(res.stdout):
        agroups.setdefault(r["group"], set()).add(Path(r["path"]).name)
    a_pairs = {frozenset(p) for g in agroups.values() for p in combinations(sorted(g), 2)}
    a_files = sorted(p.name for p in songs.iterdir() if not p.name.startswith("."))
    a_truth = {frozenset(p) for p in combinations(a_files, 2)
               if p[0][:4] == p[1][:4] and "_cut" not in p[0] + p[1]}
    a_tp = len(a_pairs & a_truth)
    a_cut = sum(any("_cut" in n for n in p) for p in a_pairs)
    a_prec = a_tp / len(a_pairs) if a_pairs else 1.0
    a_rec = a_tp / len(a_truth)
    con = duckdb.connect(str(acat), read_only=True)
    fps = con.execute("SELECT f.name, a.fingerprint, m.duration FROM files f JOIN audio_hashes a USING (blake3) "
                      "JOIN media m USING (blake3) ORDER BY f.name").fetchall()
    con.close()
    every = pa.record_batch(_core.audio_matches([f for _, f, _ in fps], [d for _, _, d in fps], 0.5))
    same_ber, diff_ber = [], []
    for a, b, e in zip(every.column("a").to_pylist(), every.column("b").to_pylist(), every.column("ber").to_pylist(),
                       strict=True):
        na, nb = fps[a][0], fps[b][0]
        if "_cut" in na + nb:
            continue
        (same_ber if na[:4] == nb[:4] else diff_ber).append(e)
    log(f"  audio: {len(a_pairs)} pairs, {a_tp}/{len(a_truth)} true, {a_cut} with a cut version; "
        f"BER same <= {max(same_ber):.3f}, other songs >= {min(diff_ber, default=float('nan')):.3f}")
    # Search timing: random fingerprints of two minutes, durations of real songs, with planted
    # re-encodes (10% of bits flipped, shifted by up to 5 frames).
    rng = np.random.default_rng(7)
    words = 1290
    nt = args.tracks
    fp_arr = rng.integers(0, 2**32, size=(nt, words), dtype=np.uint32)
    durs = rng.uniform(120, 420, nt)
    planted_a = []
    for k in range(nt // 100):
        src, dst = k, nt - 1 - k
        flips = (rng.random((words, 32)) < 0.10) @ (1 << np.arange(32, dtype=np.uint64))
        shift = int(rng.integers(0, 6))
        fp_arr[dst] = np.roll(fp_arr[src] ^ flips.astype(np.uint32), shift)
        durs[dst] = durs[src] * (1 + rng.uniform(-0.01, 0.01))
        planted_a.append((src, dst))
    blobs = [fp_arr[i].astype("<u4").tobytes() for i in range(nt)]
    t = time.perf_counter()
    found_a = pa.record_batch(_core.audio_matches(blobs, durs.tolist(), 0.25))
    t_asearch = time.perf_counter() - t
    got_a = set(zip(found_a.column("a").to_pylist(), found_a.column("b").to_pylist()))
    all_found_a = all(p in got_a for p in planted_a)
    log(f"  audio search: {t_asearch:.2f} s for {nt:,} tracks, planted found: {all_found_a}, "
        f"{found_a.num_rows - len(planted_a)} others")

    # 2. Hashing speed.
    corpus = build_corpus(data / f"meta-{args.photos}-0-0-{args.megapixels:g}mp", args.photos, 0, 0, args.megapixels)
    photos = sorted(str(p) for p in (corpus / "photos").iterdir())
    plist = work / "photos.txt"
    plist.write_text("\n".join(photos) + "\n")
    subprocess.run(f"cat {corpus}/photos/* > /dev/null", shell=True, check=True)
    speed = {}
    for _round in range(2):
        for name, py, mode in (("MediaForge, hash only (scan --no-thumbs: DC-only 1/8 luma decode and pHash in Rust)",
                                sys.executable, "mediaforge"),
                               ("imagehash.phash alone (stock Pillow)", str(py_ih), "imagehash-phash"),
                               ("MediaForge, from the thumbnail's colour decode (plain scan)", sys.executable,
                                "mediaforge-thumb"),
                               ("imagehash.phash + imagehash.dhash (both hashes, as MediaForge makes)", str(py_ih),
                                "imagehash")):
            out = subprocess.run([py, str(HERE / "hash_worker.py"), "--mode", mode, "--list", str(plist),
                                  "--procs", str(NPROC)], check=True, capture_output=True, text=True).stdout
            secs = float(out.strip().splitlines()[-1])
            speed[name] = min(speed.get(name, float("inf")), secs)
            log(f"  hashing {name}: {secs:.2f} s")
    names = list(speed)
    hash_ratio = speed[names[1]] / speed[names[0]]
    thumb_ratio = speed[names[1]] / speed[names[2]]
    both_ratio = speed[names[3]] / speed[names[0]]

    # 3. Search speed.
    rng = np.random.default_rng(42)
    n = args.hashes
    hs = rng.integers(0, np.iinfo(np.uint64).max, size=n, dtype=np.uint64, endpoint=True)
    planted = []
    for k in range(args.planted):
        d = 1 + k % args.radius
        mask = np.uint64(0)
        for b in rng.choice(64, size=d, replace=False):
            mask |= np.uint64(1) << np.uint64(int(b))
        j = n - 1 - k
        hs[j] = hs[k] ^ mask
        planted.append((k, j))
    buf = hs.astype("<u8").tobytes()
    t = time.perf_counter()
    found = pa.record_batch(_core.near_pairs(buf, args.radius))
    t_mf = time.perf_counter() - t
    got = set(zip(found.column("a").to_pylist(), found.column("b").to_pylist()))
    all_found = all(p in got for p in planted)
    sub = 20_000
    subset = np.concatenate([hs[: sub // 2], hs[n - sub // 2:]])
    t = time.perf_counter()
    brute = []
    for i in range(sub - 1):
        d = np.bitwise_count(subset[i + 1:] ^ subset[i])
        for j in np.nonzero(d <= args.radius)[0]:
            brute.append((i, i + 1 + int(j)))
    t_np = time.perf_counter() - t
    sub_buf = subset.astype("<u8").tobytes()
    t = time.perf_counter()
    sub_pairs = pa.record_batch(_core.near_pairs(sub_buf, args.radius))
    t_mf_sub = time.perf_counter() - t
    same = sorted(brute) == sorted(zip(sub_pairs.column("a").to_pylist(), sub_pairs.column("b").to_pylist()))
    scale = (n * (n - 1) / 2) / (sub * (sub - 1) / 2)
    log(f"  search: {t_mf:.2f} s for {n:,} (all planted found: {all_found}); numpy {t_np:.2f} s at {sub:,}")

    hw = hardware()
    best = {name: max((r for r in acc_rows if r[0] == name and r[2] >= 0.99), key=lambda r: r[3], default=None)
            for name in variant}
    chosen = {(r[0], r[1]): r for r in acc_rows}
    mf_p, mf_r = chosen[(CHECKED, args.radius)][2:4]
    lines = [
        "## Duplicates: perceptual hashing and near-duplicate search",
        "",
        f"Generated by `python benches/bench_dupes.py --families {args.families} --singles {args.singles} "
        f"--screens {args.screens} "
        f"--videos {args.videos} --songs {args.songs} --tracks {args.tracks} --photos {args.photos} --megapixels {args.megapixels:g} --hashes {args.hashes} --planted {args.planted} "
        f"--radius {args.radius}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
        f"- **Hardware**: {hw['cpu']}, {hw['nproc']} CPUs, {hw['mem']} RAM; kernel {hw['kernel']}; {hw['os']}",
        f"- **Tools**: mediaforge{git_state()}; imagehash "
        f"{sh([str(py_ih), '-c', 'import imagehash; print(imagehash.__version__)'])} on Pillow "
        f"{sh([str(py_ih), '-c', 'import PIL; print(PIL.__version__)'])}; numpy {np.__version__}",
        f"- **Noise**: load {load_start} at start; {watch.report()}.",
        "",
        f"### Accuracy: {args.families} pictures x {len(VARIANTS)} versions + {args.singles} distinct pictures "
        f"({len(files)} files, 640x480 photo-like)",
        "",
        "Versions: " + ", ".join(VARIANTS) + ". A pair counts as a true duplicate when both files come from the same "
        "picture. MediaForge's hashes are the ones a real `mediaforge scan` stored (from the thumbnail's decode), "
        "and, for \"hash only\", a real `mediaforge scan --no-thumbs` (grey decode). \"+ finer check\" keeps the "
        "pairs whose finer 256-bit pHashes (`image_hashes.phash256`) lie within 24 + 4 x radius bits, as "
        "`dupes --similar` does. The two paths differ by "
        f"{path_bits[len(path_bits) // 2]} bits at the median, {path_bits[int(len(path_bits) * 0.99)]} at the 99th "
        f"percentile, {path_bits[-1]} at most.",
        "",
        "| method | radius | precision | recall | pairs reported |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {m} | {r} | {p:.4f} | {rc:.4f} | {k:,} |" for m, r, p, rc, k in acc_rows]
    lines += ["", f"Recall per version at radius {args.radius} (original against the version):", "",
              "| method | " + " | ".join(VARIANTS[1:]) + " |", "|---|" + "---:|" * (len(VARIANTS) - 1)]
    lines += [f"| {m} | " + " | ".join(f"{v[x]:.3f}" for x in VARIANTS[1:]) + " |" for m, v in variant.items()]
    lines += ["", "Best recall with precision >= 0.99: " + "; ".join(
        f"{m}: {'none' if b is None else f'radius {b[1]}, recall {b[3]:.4f}'}" for m, b in best.items()), ""]
    lines += [
        f"### Screenshots of one app: {args.screens} different ones (the same window, other text), with a JPEG copy "
        f"of every fourth",
        "",
        f"Pairs within radius {args.radius} after a real scan. Only the screenshot and its copy are the same picture.",
        "",
        "| method | precision | recall | pairs reported |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {m} | {p:.4f} | {rc:.4f} | {k:,} |" for m, (p, rc, k) in screens.items()]
    lines += [""]
    lines += [
        f"### Video accuracy: {args.videos} clips of 12 s, each with a re-encode (192x144, CRF 34 against 320x240, "
        f"CRF 20) and a clip sharing only its first 3 s",
        "",
        f"`mediaforge dupes --similar --kind video --threshold {args.radius}` after a real scan: "
        f"{len(v_pairs)} pairs reported, {v_tp} of the {len(v_truth)} re-encode pairs, {v_intro} intro-only pairs; "
        f"precision {v_prec:.4f}, recall {v_rec:.4f}.",
        "",
    ]
    lines += [
        f"### Audio accuracy: {args.songs} songs of 45 to 90 s in 4 versions (FLAC, MP3 128k, AAC 96k, Opus 64k), "
        f"plus a 65% cut of every fourth song ({len(a_files)} files)",
        "",
        "Songs are synthesised (chords, melody with harmonics, kick, hats; each seed its own tempo and key) and "
        "encoded with PyAV's real encoders; pairs of songs share exactly the same duration, so the fingerprint, "
        "not the duration guard, must tell them apart.",
        "",
        f"`mediaforge dupes --similar --kind audio` (default threshold, 25% of bits) after a real `scan --no-thumbs` "
        f"({t_ascan:.1f} s for the scan with extraction and fingerprints, {t_adupes:.2f} s for `dupes`): "
        f"{len(a_pairs)} pairs reported, {a_tp} of the {len(a_truth)} same-song pairs, {a_cut} pairs with a cut "
        f"version; precision {a_prec:.4f}, recall {a_rec:.4f}. Bit error rate at the best alignment: same song in "
        f"another encoding at most {max(same_ber):.3f} (mean {sum(same_ber) / len(same_ber):.3f}); different songs "
        f"of agreeing duration at least {min(diff_ber, default=float('nan')):.3f}.",
        "",
        f"Audio search: {nt:,} random two-minute fingerprints with durations of 2 to 7 minutes and {len(planted_a)} "
        f"planted re-encodes (10% of bits flipped, shifted up to 5 frames): {t_asearch:.2f} s, every planted pair "
        f"found: {all_found_a}, {found_a.num_rows - len(planted_a)} other pairs.",
        "",
    ]
    lines += [
        f"### Hashing speed: {len(photos)} photo-like JPEGs of {args.megapixels:g} MP, {NPROC} processes each",
        "",
        "| method | best of 2, s | photos/s |",
        "|---|---:|---:|",
    ]
    lines += [f"| {k} | {v:.2f} | {len(photos) / v:,.1f} |" for k, v in speed.items()]
    lines += [
        "",
        f"### Search: {n:,} random hashes with {args.planted:,} planted near copies (1 to {args.radius} bits), "
        f"radius {args.radius}",
        "",
        "| method | hashes | seconds | pairs |",
        "|---|---:|---:|---:|",
        f"| MediaForge index search | {n:,} | {t_mf:.2f} | {found.num_rows:,} |",
        f"| MediaForge index search | {sub:,} | {t_mf_sub:.3f} | {sub_pairs.num_rows:,} |",
        f"| numpy popcount over all pairs | {sub:,} | {t_np:.2f} | {len(brute):,} |",
        f"| numpy, scaled by pair count | {n:,} | {t_np * scale:,.0f} (est.) | — |",
        "",
        "| check | value | target | result |",
        "|---|---:|---:|---|",
        f"| image precision, MediaForge, radius {args.radius} | {mf_p:.4f} | >= 0.99 | "
        f"{'pass' if mf_p >= 0.99 else '**MISSED**'} |",
        f"| image recall, MediaForge, radius {args.radius} | {mf_r:.4f} | >= 0.95 | "
        f"{'pass' if mf_r >= 0.95 else '**MISSED**'} |",
        f"| screenshots of one app: precision, MediaForge, radius {args.radius} | {screens[CHECKED][0]:.4f} | — | "
        f"info (64-bit pHash alone: {screens['MediaForge pHash'][0]:.4f}) |",
        "| hashing photos/s, MediaForge hash only (pHash + dHash) / imagehash.phash alone | "
        f"{hash_ratio:.2f} | >= 6 | "
        f"{'pass' if hash_ratio >= 6 else '**MISSED**'} |",
        f"| hashing photos/s, MediaForge hash only / imagehash phash + dhash | {both_ratio:.2f} | — | info |",
        f"| hashing photos/s, MediaForge via thumbnail decode / imagehash.phash alone | {thumb_ratio:.2f} | — | info |",
        f"| audio precision / recall (default threshold) | {a_prec:.4f} / {a_rec:.4f} | — | info |",
        f"| audio pairs with a cut version (duration guard) | {a_cut} | 0 | {'pass' if a_cut == 0 else '**MISSED**'} |",
        f"| audio search, every planted pair found | {all_found_a} | True | {'pass' if all_found_a else '**MISSED**'} |",
        f"| search time at {n:,}, s | {t_mf:.2f} | < 5 | {'pass' if t_mf < 5 else '**MISSED**'} |",
        f"| intro-only video pairs reported | {v_intro} | 0 | {'pass' if v_intro == 0 else '**MISSED**'} |",
        f"| video re-encodes found (recall) | {v_rec:.4f} | — | info |",
        f"| every planted pair found | {all_found} | True | {'pass' if all_found else '**MISSED**'} |",
        f"| same pairs as numpy on the subset | {same} | True | {'pass' if same else '**MISSED**'} |",
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
