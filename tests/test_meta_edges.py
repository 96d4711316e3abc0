"""Real files at the edges of what their formats allow, each read as the format means it:
a slideshow's last picture held for seconds, EXIF blocks that claim far more than they
hold or point past their end, dates written in the tagger's own form, lengths a header
leaves out. Files are made with real encoders (PyAV, Pillow, mutagen), then one field
is set or patched."""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import rows, run_cli


def _scanned(root: Path, tmp_path: Path, *flags: str) -> Path:
    catalog = tmp_path / "c.duckdb"
    res = run_cli("scan", root, "--json", *flags, catalog=catalog)
    assert res.rc == 0 and "Traceback" not in res.err, res.err
    return catalog


def _media(catalog: Path) -> dict[str, dict]:
    """Each file's `media` row by name, with the stages of its `meta_errors` rows."""
    got = rows(catalog, "SELECT f.name, m.* FROM files f JOIN media m USING (blake3)")
    errors = rows(catalog, "SELECT blake3, stage, message FROM meta_errors")
    for r in got:
        r["errors"] = sorted((e["stage"], e["message"]) for e in errors if e["blake3"] == r["blake3"])
    return {r["name"]: r for r in got}


def _slideshow(path: Path, codec: str, seconds_each: int = 5, pictures: int = 4) -> None:
    """A video of `pictures` frames, each shown `seconds_each` seconds (a slideshow, a
    time-lapse): its last frame starts well before the end and is held to it."""
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=Fraction(1, seconds_each))
        s.width, s.height, s.pix_fmt = 160, 120, "yuv420p"
        s.time_base = Fraction(1, 1000)
        for i in range(pictures):
            a = (np.random.default_rng(i).random((120, 160, 3)) * 255).astype(np.uint8)
            f = av.VideoFrame.from_ndarray(a, format="rgb24")
            f.pts, f.time_base = i * seconds_each * 1000, s.time_base
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.mark.parametrize("name, codec", [("slides.mp4", "libx264"), ("slides.mkv", "libx264"),
                                         ("slides.webm", "libvpx-vp9")])
def test_a_slideshow_whose_last_picture_is_held_is_whole(tmp_path: Path, name: str, codec: str) -> None:
    """Four pictures five seconds apart, 20 s in all: the last starts at 15 s and stays
    on screen to the end. It was taken for a file cut short ("the pictures end at 15.0 s
    of the 20.0 s the file claims"); a frame counts for as long as it is shown."""
    lib = tmp_path / "lib"
    lib.mkdir()
    _slideshow(lib / name, codec)
    catalog = _scanned(lib, tmp_path)
    got = _media(catalog)[name]
    assert (got["status"], got["duration"], got["errors"]) == ("ok", 20.0, []), got
    # Its fingerprint has the positions past 15 s too: the held picture is at each.
    positions = [r["position"] for r in rows(catalog, "SELECT position FROM video_hashes ORDER BY k")]
    assert positions and max(positions) == 15.0, positions
