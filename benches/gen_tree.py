#!/usr/bin/env python3
"""Generate a deterministic, media-shaped file tree for the scan benchmarks.

    python benches/gen_tree.py --files 1000000 --out bench-data/tree-1000000 [--big-file-gb 2]

Layout under OUT:
    library/<year>/<date event>/<camera folder>/IMG_0001.JPG ...   (--files files, ~100 a folder)
    big/big-<GB>GB.mov                                              (only with --big-file-gb)
    .library.json, .big.json                                        (markers: parameters + stats)

The same parameters always give the same names, sizes and bytes (seeded). Each part is
skipped when its marker already records the same parameters, so benches can call this
every time. Contents come from one seeded random buffer: every file takes a different
slice and starts with its own 8-byte content id, so contents differ (except the
deliberate duplicates, --dup-fraction) without paying for fresh random bytes per file.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

FORMAT_VERSION = 2  # bump when the generated tree changes for the same parameters
POOL_BYTES = 64 << 20
MIN_SIZE, MAX_SMALL = 512, 16 << 10
BIG_MIN, BIG_MAX = 64 << 10, 1 << 20

EVENTS = ["Birthday", "Beach", "Hiking", "Wedding", "Christmas", "Paris trip", "Été à Lyon",
          "School play", "Garden", "Road trip", "Concert", "Family dinner", "Ski week", "Zoo",
          "Graduation", "New Year", "Camping", "Museum", "Football", "Tokyo 東京"]
ARTISTS = ["Nina Simone", "Radiohead", "Daft Punk", "Björk", "Miles Davis", "Air", "Portishead",
           "The Beatles", "Sigur Rós", "Massive Attack"]
TITLES = ["Intro", "Feeling Good", "Teardrop", "Hyperballad", "So What", "La femme d'argent",
          "Glory Box", "Blackbird", "Hoppípolla", "Angel", "Outro", "Interlude"]
STYLES = ["canon", "nikon", "pixel", "iphone", "music", "screens", "mixed"]
CAMERA_DIRS = {"canon": "100CANON", "nikon": "101NIKON", "pixel": "Camera", "iphone": "100APPLE",
               "music": "Album", "screens": "Screenshots", "mixed": "Misc"}


@dataclass(frozen=True)
class TreeParams:
    files: int
    per_dir: int
    seed: int
    dup_fraction: float
    big_fraction: float
    version: int = FORMAT_VERSION


_POOL: memoryview | None = None


def pool(seed: int) -> memoryview:
    """The shared content buffer, made once per process (forked workers inherit it)."""
    global _POOL
    if _POOL is None:
        _POOL = memoryview(random.Random(seed ^ 0x5EED).randbytes(POOL_BYTES))
    return _POOL


def write_content(path: bytes, cid: int, size: int, buf: memoryview) -> None:
    """One file of `size` bytes whose bytes depend only on `cid` (so equal cids are duplicates)."""
    body = size - 8
    off = (cid * 2_654_435_761) % (POOL_BYTES - body)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.writev(fd, [cid.to_bytes(8, "little"), buf[off:off + body]])
    finally:
        os.close(fd)


def leaf_path(root: bytes, leaf: int, fanout: int, style: str) -> bytes:
    a, b, c = leaf // (fanout * fanout), (leaf // fanout) % fanout, leaf % fanout
    year = 2000 + a
    month, day = 1 + b % 12, 1 + (b * 7 + a) % 28
    event = EVENTS[(a * 31 + b) % len(EVENTS)]
    sub = f"{CAMERA_DIRS[style]}_{c:02d}"
    return os.path.join(root, str(year).encode(), f"{year}-{month:02d}-{day:02d} {event}".encode(),
                        sub.encode())


def leaf_names(rng: random.Random, style: str, count: int, leaf: int) -> list[str]:
    """`count` unique, camera-like file names for one folder."""
    names: list[str] = []
    seq = rng.randrange(1, 9000)
    while len(names) < count:
        seq += 1 + (rng.random() < 0.1)
        r = rng.random()
        if style == "canon":
            base = f"IMG_{seq % 10000:04d}"
            ext = ".MOV" if r < 0.04 else ".CR2" if r < 0.2 else ".JPG"
            names.append(base + ext)
            if rng.random() < 0.15:
                names.append(base + ".xmp")
        elif style == "nikon":
            base = f"DSC_{seq % 10000:04d}"
            names.append(base + (".NEF" if r < 0.5 else ".JPG"))
            if r < 0.5 and rng.random() < 0.5:
                names.append(base + ".JPG")
        elif style == "pixel":
            stamp = f"2023{1 + leaf % 12:02d}{1 + seq % 28:02d}_{(seq * 7919) % 235959:06d}{seq % 1000:03d}"
            names.append(f"PXL_{stamp}" + (".mp4" if r < 0.08 else ".jpg"))
        elif style == "iphone":
            base = f"IMG_{seq % 10000:04d}"
            names.append(base + (".MOV" if r < 0.1 else ".HEIC" if r < 0.8 else ".PNG"))
            if rng.random() < 0.05:
                names.append(base + ".AAE")
        elif style == "music":
            n = len(names) + 1
            names.append(f"{n:03d} - {ARTISTS[seq % len(ARTISTS)]} - {TITLES[seq % len(TITLES)]}"
                         + (".flac" if r < 0.4 else ".mp3" if r < 0.9 else ".m4a"))
            if n == 1:
                names.append("cover.jpg")
        elif style == "screens":
            names.append(f"Screenshot 2022-{1 + seq % 12:02d}-{1 + seq % 28:02d} at "
                         f"{seq % 24:02d}.{seq % 60:02d}.{(seq * 13) % 60:02d}.png")
        else:
            ext = rng.choice([".jpg", ".png", ".gif", ".webp", ".mp4", ".mkv", ".avi", ".wav", ".ogg",
                              ".pdf", ".txt", ".tif", ".dng", ".xmp"])
            names.append(f"file_{seq:05d}{ext}")
    names = list(dict.fromkeys(names))[:count]  # mod-10000 wrap can repeat a name
    while len(names) < count:
        names.append(f"extra_{len(names):04d}.jpg")
    return names


def gen_leaf(args: tuple[bytes, TreeParams, int, int, int, int]) -> tuple[int, int]:
    """Write folder number `leaf`; returns (files, bytes)."""
    root, p, leaf, fanout, first_id, count = args
    rng = random.Random(p.seed * 1_000_003 + leaf)
    buf = pool(p.seed)
    style = STYLES[rng.randrange(len(STYLES))]
    d = leaf_path(root, leaf, fanout, style)
    os.makedirs(d, exist_ok=True)
    total = 0
    recent: list[tuple[int, int]] = []
    log_lo, log_hi = math.log(MIN_SIZE), math.log(MAX_SMALL)
    big_lo, big_hi = math.log(BIG_MIN), math.log(BIG_MAX)
    for i, name in enumerate(leaf_names(rng, style, count, leaf)):
        cid = first_id + i
        if recent and rng.random() < p.dup_fraction:
            cid, size = recent[rng.randrange(len(recent))]
        elif rng.random() < p.big_fraction:
            size = int(math.exp(rng.uniform(big_lo, big_hi)))
        else:
            size = int(math.exp(rng.uniform(log_lo, log_hi)))
        recent.append((cid, size))
        write_content(os.path.join(d, name.encode()), cid, size, buf)
        total += size
    return count, total


def read_marker(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def gen_library(out: Path, p: TreeParams, workers: int, log) -> dict:
    marker = out / ".library.json"
    old = read_marker(marker)
    if old and old.get("params") == asdict(p):
        log(f"gen_tree: {out}/library is up to date ({p.files:,} files), skipping")
        return old
    lib = out / "library"
    if lib.exists():
        log(f"gen_tree: removing stale {lib}")
        marker.unlink(missing_ok=True)
        shutil.rmtree(lib)
    leaves = max(1, math.ceil(p.files / p.per_dir))
    fanout = max(2, math.ceil(leaves ** (1 / 3)))
    jobs = []
    for leaf in range(leaves):
        first = leaf * p.per_dir
        jobs.append((os.fsencode(lib), p, leaf, fanout, first, min(p.per_dir, p.files - first)))
    t0 = time.monotonic()
    pool(p.seed)  # once in the parent, so forked workers share it
    files = nbytes = 0
    ctx = mp.get_context("fork")
    with ctx.Pool(workers) as wp:
        for k, (f, b) in enumerate(wp.imap_unordered(gen_leaf, jobs, chunksize=16), 1):
            files += f
            nbytes += b
            if k % 2000 == 0:
                log(f"gen_tree: {files:,}/{p.files:,} files")
    dirs = sum(1 for _ in os.walk(lib))  # cheap next to writing; counts library/ itself too
    os.sync()  # so background writeback does not land inside the timed runs
    info = {"params": asdict(p), "files": files, "bytes": nbytes, "dirs": dirs,
            "seconds": round(time.monotonic() - t0, 1)}
    marker.write_text(json.dumps(info, indent=1) + "\n")
    log(f"gen_tree: wrote {files:,} files, {nbytes / 1e9:.2f} GB, {dirs:,} folders "
        f"in {info['seconds']} s")
    return info


def gen_big(out: Path, gb: float, seed: int, log) -> dict:
    size = int(gb * 1e9)
    params = {"bytes": size, "seed": seed, "version": FORMAT_VERSION}
    marker = out / ".big.json"
    old = read_marker(marker)
    if old and old.get("params") == params and Path(old["path"]).exists():
        log(f"gen_tree: {old['path']} is up to date, skipping")
        return old
    big = out / "big"
    shutil.rmtree(big, ignore_errors=True)
    big.mkdir(parents=True)
    path = big / f"big-{gb:g}GB.mov"
    buf = pool(seed)
    chunk = 16 << 20
    t0 = time.monotonic()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        done, n = 0, 0
        while done < size:
            step = min(chunk, size - done)
            off = (n * 7_777_777) % (POOL_BYTES - chunk)
            hdr = n.to_bytes(8, "little")[: min(8, step)]
            os.writev(fd, [hdr, buf[off:off + step - len(hdr)]])
            done += step
            n += 1
    finally:
        os.close(fd)
    os.sync()
    info = {"params": params, "path": str(path.resolve()), "bytes": size,
            "seconds": round(time.monotonic() - t0, 1)}
    marker.write_text(json.dumps(info, indent=1) + "\n")
    log(f"gen_tree: wrote {path} ({size / 1e9:.2f} GB) in {info['seconds']} s")
    return info


def generate(out: Path, files: int, *, per_dir: int = 100, seed: int = 42, dup_fraction: float = 0.01,
             big_fraction: float = 0.002, big_file_gb: float = 0.0, workers: int | None = None,
             log=lambda m: print(m, file=sys.stderr)) -> dict:
    """Make (or reuse) the tree; returns {"library": marker info, "big": marker info or None}."""
    out.mkdir(parents=True, exist_ok=True)
    p = TreeParams(files=files, per_dir=per_dir, seed=seed, dup_fraction=dup_fraction,
                   big_fraction=big_fraction)
    lib = gen_library(out, p, workers or os.cpu_count() or 1, log)
    big = gen_big(out, big_file_gb, seed, log) if big_file_gb > 0 else None
    return {"library": lib, "big": big}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, required=True, help="number of files in library/")
    ap.add_argument("--out", type=Path, required=True, help="folder to create (library/, big/, markers)")
    ap.add_argument("--per-dir", type=int, default=100, help="files per leaf folder (default 100)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--dup-fraction", type=float, default=0.01,
                    help="share of files that duplicate another file's bytes in the same folder")
    ap.add_argument("--big-fraction", type=float, default=0.002,
                    help="share of files of 64 KiB-1 MiB instead of 0.5-16 KiB")
    ap.add_argument("--big-file-gb", type=float, default=0.0,
                    help="also write one file of this many GB (10^9 bytes) in big/")
    ap.add_argument("--workers", type=int, default=None, help="writer processes (default: all cores)")
    a = ap.parse_args()
    if a.files < 1 or a.per_dir < 1:
        ap.error("--files and --per-dir must be at least 1")
    info = generate(a.out, a.files, per_dir=a.per_dir, seed=a.seed, dup_fraction=a.dup_fraction,
                    big_fraction=a.big_fraction, big_file_gb=a.big_file_gb, workers=a.workers)
    print(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
