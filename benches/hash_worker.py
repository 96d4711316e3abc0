"""Perceptual hashes of a list of images, for bench_dupes.py, in one Python environment.

    python hash_worker.py --mode mediaforge|mediaforge-thumb|imagehash --list FILES.txt --procs 2 [--out H.json]

`mediaforge`: MediaForge's hash-only path, as `scan --no-thumbs` runs it (grey, reduced-scale
JPEG decode, at 1/8 from the DC coefficients in the Rust core when libjpeg would decode at
that scale; EXIF orientation; pHash in the Rust core); `mediaforge-thumb`: the same hash
from the colour decode that also feeds the thumbnail (a plain scan). Both run in the
project's venv. `imagehash`: `imagehash.phash` and `imagehash.dhash`
on the image Pillow opens, as its README shows (MediaForge makes both hashes too);
`imagehash-phash`: `imagehash.phash` alone; both run in the bench venv. Prints the
seconds from pool start to the last hash; `--out` writes {path: [phash, dhash]}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from multiprocessing import Pool
from pathlib import Path

_mode = ""


def _init(mode: str) -> None:
    global _mode
    _mode = mode


def _one(path: str) -> tuple[str, int, int]:
    from PIL import Image

    if _mode.startswith("imagehash"):
        import imagehash

        with Image.open(path) as im:
            p = int(str(imagehash.phash(im)), 16)
            return path, p, (int(str(imagehash.dhash(im)), 16) if _mode == "imagehash" else 0)
    from mediaforge import _core
    from mediaforge.meta.readers import colour_of
    from mediaforge.meta.thumbs import reduce_for_hash, reduce_image

    with Image.open(path) as im:
        if _mode == "mediaforge":  # as a scan without thumbnails: grey, and the colour measured beside it
            grey, colour = reduce_for_hash(im, 256)
        else:
            colour = reduce_image(im, 256)
            grey = colour.convert("L")
    if colour is not None:
        colour_of(colour)
    pixels = grey.tobytes()
    p, d = _core.image_hashes(pixels, grey.width, grey.height)
    _core.fine_hash(pixels, grey.width, grey.height)  # (stored beside them since schema 27)
    return path, p, d


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("mediaforge", "mediaforge-thumb", "imagehash", "imagehash-phash"),
                    required=True)
    ap.add_argument("--list", required=True)
    ap.add_argument("--procs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out")
    args = ap.parse_args()
    files = Path(args.list).read_text().splitlines()
    t0 = time.perf_counter()
    with Pool(args.procs, initializer=_init, initargs=(args.mode,)) as pool:
        got = list(pool.imap_unordered(_one, files, chunksize=4))
    seconds = time.perf_counter() - t0
    if args.out:
        Path(args.out).write_text(json.dumps({p: [a, b] for p, a, b in got}))
    print(f"{seconds:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
