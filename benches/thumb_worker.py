"""Thumbnail throughput of one Python environment, for bench_meta.py.

Runs with whatever Pillow the interpreter has (pillow-simd in the project's venv, stock
Pillow in the bench's), so the same code can be timed on both. Loads MediaForge's
`thumbs.py` (and the `exif.py` beside it) straight from the source tree: they need only
Pillow.

    python thumb_worker.py --mode mediaforge|plain --list FILES.txt --out DIR --procs 2
Prints the seconds from pool start to the last file written.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
import types
from multiprocessing import Pool
from pathlib import Path

META = Path(__file__).resolve().parent.parent / "python" / "mediaforge" / "meta"
_mod = None
_args: argparse.Namespace | None = None


def _load():  # noqa: ANN202
    # A package of the source tree's `meta` folder alone, so that `thumbs.py`'s relative
    # import of `exif` resolves there without importing the rest of MediaForge.
    package = types.ModuleType("mf_meta")
    package.__path__ = [str(META)]
    sys.modules["mf_meta"] = package
    spec = importlib.util.spec_from_file_location("mf_meta.thumbs", META / "thumbs.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["mf_meta.thumbs"] = mod
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def _init(args: argparse.Namespace) -> None:
    global _mod, _args
    _mod, _args = _load(), args


def _one(path: str) -> None:
    assert _mod is not None and _args is not None
    out = os.path.join(_args.out, os.path.basename(path) + ".webp")
    if _args.mode == "plain":
        _mod.plain_pillow_thumb(path, _args.size, out)
    else:
        from PIL import Image

        with Image.open(path) as im:
            _mod.reduce_image(im, _args.size).save(out, "WEBP", quality=_mod.WEBP_QUALITY, method=4)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("mediaforge", "plain"), required=True)
    ap.add_argument("--list", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--procs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    files = Path(args.list).read_text().splitlines()
    os.makedirs(args.out, exist_ok=True)
    import PIL

    t0 = time.perf_counter()
    with Pool(args.procs, initializer=_init, initargs=(args,)) as pool:
        for _ in pool.imap_unordered(_one, files, chunksize=4):
            pass
    seconds = time.perf_counter() - t0
    print(f"{seconds:.6f}")
    print(f"thumb_worker: {len(files)} files, Pillow {PIL.__version__}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
