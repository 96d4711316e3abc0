"""Metadata and thumbnail benchmarks: MediaForge side by side with exiftool, ffprobe and
plain Pillow, in one run, on one generated corpus.

    python benches/bench_meta.py [--photos 300] [--videos 24] [--songs 24] [--megapixels 12]
                                 [--runs 3] [--data-dir bench-data] [--doc docs/benchmarks.md]

Cases, each run interleaved with its peers, best wall time of `--runs` kept:
  m. metadata of every file: `mediaforge meta --no-thumbs --no-fingerprints` (extraction
     alone, on a copy of a catalog scanned with --no-meta: what exiftool and ffprobe
     read) vs `exiftool -fast -json -r` and vs one `ffprobe -show_streams -show_format`
     per file (2 at a time); and, for information, `mediaforge meta --no-thumbs`, which
     also makes the near-duplicate fingerprints (pHash, video frames, audio);
  t. 256 px WebP thumbnails of the photos with 2 processes: MediaForge's code (reduced
     DCT decode) on pillow-simd, the same code on stock Pillow, and a plain Pillow
     script (full decode, no draft) on stock Pillow; plus `mediaforge thumbs` end to end.
Writes its section of docs/benchmarks.md between `<!-- bench:meta:start -->` and
`<!-- bench:meta:end -->`.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from multiprocessing import Pool
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_scan import NPROC, Case, Cmd, CpuWatch, git_state, hardware, load, run_case, sh  # noqa: E402

START, END = "<!-- bench:meta:start -->", "<!-- bench:meta:end -->"
CAMERAS = [("Canon", "Canon EOS 5D Mark IV"), ("NIKON CORPORATION", "NIKON D750"), ("Apple", "iPhone 12"),
           ("SONY", "ILCE-7M3"), ("FUJIFILM", "X-T3"), ("samsung", "SM-G991B")]


# ---------------------------------------------------------------- the corpus

def scene(seed: int, w: int, h: int):  # noqa: ANN201
    """A photo-like picture: smooth gradients and shapes, upscaled, with mild sensor noise
    (pure noise would measure only the entropy decoder)."""
    from PIL import Image, ImageChops, ImageDraw, ImageFilter

    rnd = random.Random(seed)
    small = (w // 8, h // 8)
    grad = Image.linear_gradient("L").resize(small)
    base = Image.merge("RGB", (grad.rotate(rnd.randrange(360)).resize(small), grad.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                               Image.radial_gradient("L").resize(small)))
    d = ImageDraw.Draw(base)
    for _ in range(12):
        x, y, r = rnd.randrange(small[0]), rnd.randrange(small[1]), rnd.randrange(10, small[1] // 3)
        d.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rnd.randrange(256) for _ in range(3)))
    img = base.filter(ImageFilter.GaussianBlur(2)).resize((w, h), Image.Resampling.BICUBIC)
    noise = Image.effect_noise((w, h), 6)
    return ImageChops.add(img, Image.merge("RGB", (noise, noise, noise)), scale=1.0, offset=-128)


def _photo(job: tuple[str, int, int, int]) -> None:
    """A photo-like JPEG with camera EXIF (every 5th turned by EXIF orientation)."""
    from PIL import Image

    path, seed, w, h = job
    img = scene(seed, w, h)
    make, model = CAMERAS[seed % len(CAMERAS)]
    ex = Image.Exif()
    ex[0x010F], ex[0x0110], ex[0x0112] = make, model, 6 if seed % 5 == 0 else 1
    taken = datetime(2012 + seed % 12, 1 + seed % 12, 1 + seed % 28, seed % 24, seed % 60, 0)
    sub = ex.get_ifd(0x8769)
    sub[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")
    sub[0x829A], sub[0x829D], sub[0x8827] = 1 / 125, 4.0, 100 * (1 + seed % 16)
    if seed % 2:
        g = ex.get_ifd(0x8825)
        g[1], g[2], g[3], g[4] = "N", (48.0, 51.0, 29.0), "E", (2.0, 17.0, 40.0)
    img.save(path, "JPEG", quality=90, exif=ex)


def build_corpus(root: Path, photos: int, videos: int, songs: int, megapixels: float) -> Path:
    done = root / ".complete"
    if done.exists():
        return root
    if root.exists():
        shutil.rmtree(root)
    from mediaforge.sample import _audio, _tag_flac, _tag_mp3, _video

    w = int((megapixels * 1e6 * 4 / 3) ** 0.5) // 16 * 16
    h = w * 3 // 4
    (root / "photos").mkdir(parents=True)
    jobs = [(str(root / "photos" / f"IMG_{i:05d}.jpg"), i, w, h) for i in range(photos)]
    with Pool(NPROC) as pool:
        for _ in pool.imap_unordered(_photo, jobs):
            pass
    (root / "videos").mkdir()
    for i in range(videos):
        # (The sample's encoders work in memory and hand back the file's bytes.)
        (root / "videos" / f"clip_{i:03d}.mp4").write_bytes(_video(seconds=2.0 + i / 8))  # distinct lengths
    (root / "music").mkdir()
    for i in range(songs):
        tags = (f"Song {i}", f"Artist {i % 5}", f"Album {i % 3}", i)
        if i % 2:
            sound = _audio("flac", "flac", seconds=5.0, freq=220.0 + i * 10)
            (root / "music" / f"{i:02d} Song.flac").write_bytes(_tag_flac(sound, *tags))
        else:
            sound = _audio("libmp3lame", "mp3", seconds=5.0, freq=220.0 + i * 10)
            (root / "music" / f"{i:02d} Song.mp3").write_bytes(_tag_mp3(sound, *tags))
    done.touch()
    return root


# ---------------------------------------------------------------- peers

BENCH_VENV = REPO / ".cache" / "bench-pillow"


def bench_venv(*modules: str) -> Path:
    """A virtualenv with stock Pillow (and `modules`, e.g. imagehash) for the baselines;
    returns its python. Packages are installed only when an import fails."""
    py = BENCH_VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
    needed = ("PIL", *modules)
    if subprocess.run([str(py), "-c", "import " + ", ".join(needed)], capture_output=True).returncode:
        packages = ["pillow" if m == "PIL" else m for m in needed]
        subprocess.run([str(py), "-m", "pip", "install", "-q", *packages], check=True)
    return py


def ensure_peers() -> Path:
    """exiftool and ffprobe from Debian; the stock-Pillow venv for the baseline."""
    if not (shutil.which("exiftool") and shutil.which("ffprobe")):
        subprocess.run(["bash", str(HERE / "install_peers.sh"), "meta"], check=True)
    return bench_venv()


# ---------------------------------------------------------------- report

def write_doc(doc: Path, body: str, start: str = START, end: str = END) -> None:
    """Replace the section between the `start` and `end` markers of `doc` (or append it)."""
    text = doc.read_text() if doc.exists() else (
        "# Benchmarks\n\nEvery section below is regenerated by a script in `benches/`; do not edit them by hand.\n")
    section = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    doc.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=300)
    ap.add_argument("--videos", type=int, default=24)
    ap.add_argument("--songs", type=int, default=24)
    ap.add_argument("--megapixels", type=float, default=12.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--data-dir", type=Path, default=REPO / "bench-data")
    ap.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    ap.add_argument("--no-doc", action="store_true")
    args = ap.parse_args()
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731

    data = args.data_dir.resolve()
    bench_py = ensure_peers()
    corpus = build_corpus(data / f"meta-{args.photos}-{args.videos}-{args.songs}-{args.megapixels:g}mp",
                          args.photos, args.videos, args.songs, args.megapixels)
    files = sorted(str(p) for p in corpus.rglob("*") if p.is_file() and not p.name.startswith("."))
    photos = [f for f in files if f.endswith(".jpg")]
    n, n_photos = len(files), len(photos)
    size = sum(os.path.getsize(f) for f in files)
    work = data / "meta-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    lists = work / "photos.txt"
    lists.write_text("\n".join(photos) + "\n")
    listing = work / "all.txt"
    listing.write_text("\0".join(files) + "\0")
    mf = str(Path(sys.executable).parent / "mediaforge")

    # A catalog that knows every file but has no metadata yet: each metadata run starts
    # from a copy of it.
    # The same on one photo: wall(N) - wall(1) is the marginal time per file with start-up
    # (interpreter, imports, worker boot, catalog open) taken out, for both tools. Linked
    # before the scans: a new link moves the photo's change time, and `meta` leaves a file
    # changed since its scan alone.
    one_dir = work / "one-photo"
    one_dir.mkdir()
    os.link(photos[0], one_dir / Path(photos[0]).name)
    base = work / "base" / "catalog.duckdb"
    subprocess.run([mf, "-q", "-c", str(base), "scan", str(corpus), "--no-meta", "--no-index", "--json"], check=True,
                   stdout=subprocess.DEVNULL)
    run_dir = work / "run"
    base1 = work / "base1" / "catalog.duckdb"
    subprocess.run([mf, "-q", "-c", str(base1), "scan", str(one_dir), "--no-meta", "--no-index", "--json"], check=True,
                   stdout=subprocess.DEVNULL)
    run1 = work / "run1"

    def fresh_copy1() -> None:
        shutil.rmtree(run1, ignore_errors=True)
        run1.mkdir()
        shutil.copy(base1, run1 / "catalog.duckdb")

    def fresh_copy() -> None:
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir()
        shutil.copy(base, run_dir / "catalog.duckdb")

    def drop_thumbs() -> None:
        shutil.rmtree(run_dir / "thumbs", ignore_errors=True)

    def out_dir(name: str) -> str:
        d = work / name
        shutil.rmtree(d, ignore_errors=True)
        return str(d)

    def check_all(s: dict) -> None:
        if s["files"] != n or s["failed"]:
            raise SystemExit(f"bench: mediaforge extracted {s['files']} of {n} files, {s['failed']} failed")

    warm = f"xargs -0 cat < {listing} > /dev/null"
    meta = Case("m", "metadata", [
        Cmd("mf", "`mediaforge meta --no-thumbs --no-fingerprints` (metadata alone)",
            [mf, "-q", "-c", str(run_dir / "catalog.duckdb"), "meta", "--no-thumbs", "--no-fingerprints", "--json",
             "-j", str(NPROC)],
            setup=fresh_copy, mediaforge=True, check=check_all),
        Cmd("exif", "`exiftool -fast -json -r`", f"exiftool -fast -json -r -q {corpus} > /dev/null"),
        Cmd("mf1", "`mediaforge meta --no-thumbs --no-fingerprints`, one photo",
            [mf, "-q", "-c", str(run1 / "catalog.duckdb"), "meta", "--no-thumbs", "--no-fingerprints", "--json",
             "-j", str(NPROC)],
            setup=fresh_copy1, mediaforge=True),
        Cmd("exif1", "`exiftool -fast -json -r`, one photo", f"exiftool -fast -json -r -q {one_dir} > /dev/null"),
        Cmd("exif2", f"`xargs -P{NPROC} exiftool -fast -json` (100 files per call)",
            f"xargs -0 -P{NPROC} -n 100 exiftool -fast -json -q < {listing} > /dev/null"),
        Cmd("ffprobe", f"one `ffprobe -show_streams -show_format` per file, {NPROC} at a time",
            f"xargs -0 -P{NPROC} -n 1 ffprobe -v error -show_streams -show_format -of json < {listing} > /dev/null"),
        Cmd("mffp", "`mediaforge meta --no-thumbs` (metadata and near-duplicate fingerprints: pHash, video, audio)",
            [mf, "-q", "-c", str(run_dir / "catalog.duckdb"), "meta", "--no-thumbs", "--json", "-j", str(NPROC)],
            setup=fresh_copy, mediaforge=True, check=check_all),
    ], warm=warm)
    tw = str(HERE / "thumb_worker.py")

    def thumbs_cmd(py: str, mode: str, name: str) -> list[str]:
        return [py, tw, "--mode", mode, "--list", str(lists), "--out", out_dir(name), "--procs", str(NPROC)]

    thumbs = Case("t", "thumbnails", [
        Cmd("simd", "MediaForge thumbnails, pillow-simd (draft decode)", thumbs_cmd(sys.executable, "mediaforge", "t1"),
            timed_inside=True, setup=lambda: shutil.rmtree(work / "t1", ignore_errors=True)),
        Cmd("mfstock", "MediaForge thumbnails, stock Pillow (draft decode)", thumbs_cmd(str(bench_py), "mediaforge", "t2"),
            timed_inside=True, setup=lambda: shutil.rmtree(work / "t2", ignore_errors=True)),
        Cmd("plain", "plain Pillow script (full decode), stock Pillow", thumbs_cmd(str(bench_py), "plain", "t3"),
            timed_inside=True, setup=lambda: shutil.rmtree(work / "t3", ignore_errors=True)),
        Cmd("cli", "`mediaforge thumbs` (all kinds, end to end)",
            [mf, "-q", "-c", str(run_dir / "catalog.duckdb"), "thumbs", "--json", "-j", str(NPROC)],
            setup=drop_thumbs, mediaforge=True),
    ], warm=warm)
    load_start = load()
    watch = CpuWatch()
    t0 = time.monotonic()
    log(f"bench: {n} files ({n_photos} photos of {args.megapixels:g} MP), {size / 1e6:.0f} MB")
    run_case(meta, args.runs, log)
    # Thumbnails need a catalog with metadata: the last metadata run left one.
    subprocess.run([mf, "-q", "-c", str(run_dir / "catalog.duckdb"), "meta", "--json"], check=True,
                   stdout=subprocess.DEVNULL)
    run_case(thumbs, args.runs, log)
    elapsed = time.monotonic() - t0
    c = {x.key: x for x in meta.cmds + thumbs.cmds}

    def rate(key: str, count: int) -> float:
        return count / c[key].best

    def tps(key: str) -> float:  # photos/s measured inside the pool (imports excluded for all three)
        return n_photos / (c[key].engine_s or c[key].best)

    def marginal(key: str) -> float:
        """Files/s once started: N - 1 files in wall(N) - wall(1), the median over rounds of
        the difference within each round (differences of best times are too noisy)."""
        diffs = sorted(a - b for a, b in zip(c[key].walls, c[key + "1"].walls))
        return (n - 1) / max(diffs[len(diffs) // 2], 1e-9)

    ratios = [
        ("m. files/s, mediaforge / exiftool -fast", rate("mf", n) / rate("exif", n), 5.0),
        ("m. marginal files/s (start-up taken out of both; median of per-round differences), "
         "mediaforge / exiftool -fast",
         marginal("mf") / marginal("exif"), 5.0),
        (f"m. files/s, mediaforge / exiftool -fast x{NPROC}", rate("mf", n) / rate("exif2", n), None),
        ("m. files/s, mediaforge / ffprobe per file", rate("mf", n) / rate("ffprobe", n), 5.0),
        ("m. files/s, mediaforge with fingerprints / exiftool -fast", rate("mffp", n) / rate("exif", n), None),
        ("m. files/s, mediaforge with fingerprints / ffprobe per file", rate("mffp", n) / rate("ffprobe", n), None),
        ("t. photos/s, mediaforge (pillow-simd) / plain Pillow", tps("simd") / tps("plain"), 3.0),
        ("t. photos/s, mediaforge on stock Pillow / plain Pillow (the draft decode alone)",
         tps("mfstock") / tps("plain"), None),
        ("t. photos/s, pillow-simd / stock Pillow (same MediaForge code)", tps("simd") / tps("mfstock"), None),
    ]
    hw = hardware()
    pil_simd = sh([sys.executable, "-c", "import PIL; print(PIL.__version__)"])
    pil_stock = sh([str(bench_py), "-c", "import PIL; print(PIL.__version__)"])
    cmdline = "python benches/bench_meta.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in (("photos", args.photos), ("videos", args.videos),
                                                    ("songs", args.songs), ("megapixels", f"{args.megapixels:g}"),
                                                    ("runs", args.runs)))
    lines = [
        "## Metadata and thumbnails",
        "",
        f"Generated by `{cmdline}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
        f"- **Hardware**: {hw['cpu']}, {hw['nproc']} CPUs, {hw['mem']} RAM; kernel {hw['kernel']}; {hw['os']}",
        f"- **Tools**: mediaforge{git_state()} with pillow-simd {pil_simd}; stock Pillow {pil_stock}; "
        f"exiftool {sh(['exiftool', '-ver'])}; {sh(['ffprobe', '-version']).split(' Copyright')[0]}",
        f"- **Corpus**: {n} files, {size / 1e6:.0f} MB: {n_photos} photo-like JPEGs of {args.megapixels:g} MP "
        f"(gradients, shapes, mild noise, camera EXIF, every 5th rotated by EXIF orientation), "
        f"{args.videos} H.264 MP4 clips (320x240, 2 s and up), {args.songs} tagged MP3/FLAC songs (5 s).",
        f"- **Cache**: warm (every file read untimed right before each case). Noise: load {load_start} at start; "
        f"{watch.report()}.",
        f"- **Method**: {args.runs} interleaved round(s) per case, best wall time kept. mediaforge runs with "
        f"`-j {NPROC}`; its wall time includes Python start-up and imports, worker start-up and the catalog "
        f"open, write and close (together {c['mf1'].best:.3f} s: the one-photo row); *inner s* is its own "
        "`seconds` (catalog query to last write, workers already booting since the CLI started). "
        "Thumbnail rows: the three Python runs time themselves from pool start to the last file written "
        f"({NPROC} processes each, 256 px WebP, quality 80); `mediaforge thumbs` is wall time.",
        "",
        "| case | command | best wall s | inner s | files/s | peak RSS MiB |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for case, count in ((meta, n), (thumbs, n_photos)):
        for x in case.cmds:
            inner = x.engine_s
            per = (1 if x.key.endswith("1") else count) / (inner if x.timed_inside and inner else x.best)
            lines.append(f"| {case.key}. {case.title} | {x.label} | {x.best:.3f} | "
                         f"{'—' if inner is None else f'{inner:.3f}'} | {per:,.0f} | {x.rss_kib / 1024:.0f} |")
    lines += ["", "| ratio | value | target | result |", "|---|---:|---:|---|"]
    for name, value, target in ratios:
        verdict = "info" if target is None else ("pass" if value >= target else "**MISSED**")
        lines.append(f"| {name} | {value:.2f} | {'—' if target is None else f'>= {target:g}'} | {verdict} |")
    # The command's fixed cost (interpreter, imports, workers starting, catalog open, write and
    # close) is the one-photo run; a wall-time target below it is out of reach at this size.
    allowed, floor_s = c["exif"].best / 5.0, c["mf1"].best
    lines.append("")
    lines.append(f"- Start-up floor: 5x exiftool's files/s leaves mediaforge {allowed:.3f} s for the {n} files; "
                 f"its fixed cost alone, the one-photo run, is {floor_s:.3f} s"
                 + (", so the wall-time target is out of reach at this corpus size; the marginal ratio compares "
                    "the per-file rates once both have started." if floor_s > allowed else "."))
    lines.append(f"\nWhole run: {elapsed:.0f} s.")
    body = "\n".join(lines) + "\n"
    print(body)
    if not args.no_doc:
        write_doc(args.doc, body)
        log(f"bench: wrote {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
