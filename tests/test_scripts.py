"""The README's first command, as a user types it: from their own folder, with a relative
path, and with no folder at all (the sample library)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from media_corpus import picture

REPO = Path(__file__).resolve().parent.parent


def _run_sh(cwd: Path, home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MEDIAFORGE_", "XDG_"))}
    # The toolchain stays the real one: a rebuild by setup.sh must still find rustup's.
    real = Path.home()
    clean.setdefault("RUSTUP_HOME", str(real / ".rustup"))
    clean.setdefault("CARGO_HOME", str(real / ".cargo"))
    clean.update(HOME=str(home), XDG_DATA_HOME=str(home / "data"), **env)
    return subprocess.run(["bash", str(REPO / "scripts" / "run.sh"), *args], cwd=cwd, env=clean,
                          capture_output=True, text=True, timeout=900)


def test_run_sh_scans_a_folder_given_relative_to_where_it_is_run(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    picture(64, 48, 1).save(tmp_path / "photos" / "a.jpg")
    res = _run_sh(tmp_path, tmp_path / "home", "photos")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "scanned 1 file" in res.stdout
    assert (tmp_path / "home" / "data" / "mediaforge" / "catalog.duckdb").is_file()


def test_run_sh_without_a_folder_scans_a_sample_library(tmp_path: Path) -> None:
    res = _run_sh(tmp_path, tmp_path / "home", MEDIAFORGE_SAMPLE_DIR=str(tmp_path / "sample"))
    assert res.returncode == 0, res.stderr[-2000:]
    made = sorted(p.suffix for p in (tmp_path / "sample").rglob("*") if p.is_file())
    assert {".jpg", ".png", ".mp4", ".mp3", ".flac"} <= set(made), made
    assert f"scanned {len(made)} files" in res.stdout


def test_the_benches_build_their_corpora(tmp_path: Path) -> None:
    """The benches are run by hand, not by CI, and import the sample's encoders: when those
    came to encode in memory (hand back bytes), `bench_meta.py` failed before measuring
    anything. Each corpus builder is run here at a tiny size."""
    import sys

    code = """
import sys
from pathlib import Path
sys.path.insert(0, "benches")
import bench_dupes, bench_meta
out = Path(sys.argv[1])
bench_meta.build_corpus(out / "meta", 2, 1, 2, 0.3)
bench_dupes.build_accuracy_set(out / "acc", 1, 1)
bench_dupes.build_screens_set(out / "screens", 4)
"""
    root = Path(__file__).resolve().parent.parent
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=root, capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr.decode()
    names = sorted(str(f.relative_to(tmp_path)) for f in tmp_path.rglob("*") if f.is_file() and f.name != ".complete")
    assert names == ["acc/00000_bright10.jpg", "acc/00000_crop5.jpg", "acc/00000_exifrot.jpg", "acc/00000_half.jpg",
                     "acc/00000_orig.jpg", "acc/00000_png.png", "acc/00000_q60.jpg", "acc/100000_orig.jpg",
                     "meta/music/00 Song.mp3", "meta/music/01 Song.flac", "meta/photos/IMG_00000.jpg",
                     "meta/photos/IMG_00001.jpg", "meta/videos/clip_000.mp4",
                     "screens/00000_copy.jpg", "screens/00000_orig.png", "screens/00001_orig.png",
                     "screens/00002_orig.png", "screens/00003_orig.png"], names
    import mutagen

    assert str(mutagen.File(tmp_path / "meta/music/01 Song.flac")["title"][0]) == "Song 1"
