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
