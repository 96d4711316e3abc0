"""Near-duplicate sound: songs made at test time and encoded with real encoders (FLAC,
MP3, AAC, Opus); re-encodes of one recording group together, a different song, a cut
version (duration guard) and silence do not."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import rows, run_cli
from mediaforge.synth import song_pcm, write_audio

RATE = 44100


@pytest.fixture(scope="module")
def music(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    import numpy as np

    root = tmp_path_factory.mktemp("music")
    song = song_pcm(1, 20.0, RATE)
    write_audio(root / "song.flac", song, RATE, "flac", "flac")
    write_audio(root / "song.mp3", song, RATE, "libmp3lame", "mp3", 96_000)
    # A download that stopped a third of the way: its header still claims the whole song.
    whole = (root / "song.mp3").read_bytes()
    (root / "song part.mp3").write_bytes(whole[: len(whole) // 3])
    write_audio(root / "song.m4a", song, RATE, "aac", "ipod", 64_000)
    write_audio(root / "song.opus", song, RATE, "libopus", "ogg", 48_000, out_rate=48_000)
    write_audio(root / "other.flac", song_pcm(2, 20.0, RATE), RATE, "flac", "flac")
    write_audio(root / "song cut.flac", song[: int(14 * RATE)], RATE, "flac", "flac")
    write_audio(root / "silence.flac", np.zeros(20 * RATE, np.float32), RATE, "flac", "flac")
    catalog = tmp_path_factory.mktemp("state") / "cat.duckdb"
    res = run_cli("scan", root, "--no-thumbs", catalog=catalog)
    assert res.rc == 0, res.err
    return root, catalog


def test_reencodes_group_and_nothing_else(music) -> None:
    _root, catalog = music
    res = run_cli("dupes", "--similar", "--kind", "audio", "--format", "json", catalog=catalog)
    assert res.rc == 0, res.err
    found = json.loads(res.out)
    assert {r["group"] for r in found} == {1}
    assert sorted(os.path.basename(r["path"]) for r in found) == ["song.flac", "song.m4a", "song.mp3", "song.opus"]
    assert all(r["distance"] <= 20 for r in found)
    assert rows(catalog, "SELECT count(*) AS n FROM similar_groups WHERE method = 'audio'")[0]["n"] == 4


def test_fingerprints_stored_and_silence_has_none(music) -> None:
    _root, catalog = music
    got = {os.path.basename(r["path"]): r for r in rows(catalog, """
        SELECT f.path, a.frames, a.seconds, octet_length(a.fingerprint) AS nbytes
        FROM files f JOIN audio_hashes a USING (blake3)""")}
    assert len(got) == 8
    assert got["silence.flac"]["frames"] == 0
    assert 200 <= got["song.flac"]["frames"] <= 215 and got["song.flac"]["nbytes"] == 4 * got["song.flac"]["frames"]
    assert abs(got["song cut.flac"]["seconds"] - 14.0) < 0.2


def test_a_song_cut_short_is_partial_and_no_copy_of_the_whole(music) -> None:
    """The part of a song whose header claims the whole length: recorded `partial`, its
    duration how far it plays (the claim in the message), and kept out of the whole
    song's group (the reencodes test): a dedupe keeping the oldest could otherwise trash
    the only complete copy for it."""
    _root, catalog = music
    (part,) = rows(catalog, """
        SELECT m.status, m.duration, a.seconds, e.stage, e.message FROM files f JOIN media m USING (blake3)
        JOIN audio_hashes a USING (blake3) JOIN meta_errors e USING (blake3) WHERE f.name = 'song part.mp3'""")
    assert part["status"] == "partial" and part["stage"] == "decode" and 5.0 < part["duration"] < 8.0
    assert abs(part["seconds"] - part["duration"]) < 0.1 and "of the 20.0 s the file claims: cut short?" in \
        part["message"], part
    assert rows(catalog, "SELECT m.status FROM files f JOIN media m USING (blake3) WHERE f.name = 'song.mp3'") == [
        {"status": "ok"}]


def test_strict_threshold_and_keep_highest_bitrate(music) -> None:
    root, catalog = music
    assert json.loads(run_cli("dupes", "--similar", "--kind", "audio", "--threshold", "1", "--format", "json",
                              catalog=catalog).out) == []
    assert run_cli("dupes", "--similar", "--kind", "audio", "--threshold", "60", catalog=catalog).rc == 2
    assert run_cli("dupes", "--similar", "--kind", "audio", catalog=catalog).rc == 0
    plan = json.loads(run_cli("dedupe", "--similar", "--kind", "audio", "--keep", "highest-bitrate", "--action",
                              "trash", "--json", catalog=catalog).out)
    assert {os.path.basename(s["keep"]) for s in plan["steps"]} == {"song.flac"}
    assert sorted(os.path.basename(s["trash"]) for s in plan["steps"]) == ["song.m4a", "song.mp3", "song.opus"]
    assert all(os.path.exists(s["trash"]) for s in plan["steps"])  # a dry run


def _changed_copy(catalog: Path, tmp_path: Path, sql: str) -> Path:
    """A copy of the module's catalog with `sql` run on it."""
    import shutil

    import duckdb

    copy = tmp_path / "copy.duckdb"
    shutil.copy(catalog, copy)
    with duckdb.connect(str(copy)) as con:
        con.execute(sql)
    return copy


def test_catalogs_from_before_fingerprints_catch_up(music, tmp_path: Path) -> None:
    old = _changed_copy(music[1], tmp_path, "DELETE FROM audio_hashes")
    res = run_cli("meta", "--json", catalog=old)
    assert res.rc == 0, res.err
    out = json.loads(res.out)
    # All eight a fresh scan makes: the download cut short too (its note that the sound
    # ends early kept it from the catch-up).
    assert (out["files"], out["fingerprinted"]) == (0, 8)
    assert rows(old, "SELECT count(*) AS n FROM audio_hashes")[0]["n"] == 8
    out = json.loads(run_cli("meta", "--json", catalog=old).out)
    assert (out["files"], out["fingerprinted"]) == (0, 0)


def test_a_file_gone_from_the_library_is_in_no_group(music, tmp_path: Path) -> None:
    gone = _changed_copy(music[1], tmp_path, "UPDATE files SET status = 'missing' WHERE name = 'song.m4a'")
    found = json.loads(run_cli("dupes", "--similar", "--kind", "audio", "--format", "json", catalog=gone).out)
    assert sorted(os.path.basename(r["path"]) for r in found) == ["song.flac", "song.mp3", "song.opus"]
    # Nor is it grouped out of sight: the stored groups hold the three present contents.
    assert rows(gone, "SELECT count(*) AS n FROM similar_groups WHERE method = 'audio'")[0]["n"] == 3
