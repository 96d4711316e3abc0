"""Headers that claim what their files do not hold: lengths, frame and channel counts,
GPS parts, orientations and names past what can be true. Each ends in NULL (or the count
the file really holds), never in a wrong value stored as a fact. Files are made with real
encoders (PyAV, Pillow, pillow-heif), then one header field is patched."""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from fractions import Fraction
from pathlib import Path

import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from conftest import rows, run_cli


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("claims") / "lib"


def _scanned(root: Path, tmp_path: Path) -> tuple[Path, dict]:
    catalog = tmp_path / "c.duckdb"
    res = run_cli("scan", root, "--json", "--no-fingerprints", catalog=catalog)
    assert res.rc == 0 and "Traceback" not in res.err, res.err
    return catalog, json.loads(res.out)


def _row(catalog: Path, table: str, path: Path) -> dict:
    found = rows(catalog, f"SELECT t.* FROM files f JOIN {table} t USING (blake3) WHERE f.path_bytes = ?",
                 [os.fsencode(path)])
    assert len(found) == 1, (table, path, found)
    return found[0]


def _streams(catalog: Path, path: Path) -> list[dict]:
    return rows(catalog, "SELECT s.* FROM files f JOIN streams s USING (blake3) WHERE f.path_bytes = ? "
                "ORDER BY stream_index", [os.fsencode(path)])


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    return crc


def _opus_claiming_ages(path: Path) -> None:
    """3 s of Opus whose last Ogg page claims a granule position of 2^62 samples."""
    import av
    import numpy as np

    with av.open(str(path), "w", format="ogg") as c:
        s = c.add_stream("libopus", rate=48000, layout="stereo")
        for i in range(0, 144000, 960):
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1920), np.float32), format="flt", layout="stereo")
            f.rate, f.pts, f.time_base = 48000, i, Fraction(1, 48000)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    data = bytearray(path.read_bytes())
    at = data.rfind(b"OggS")
    struct.pack_into("<q", data, at + 6, 2**62)
    struct.pack_into("<I", data, at + 22, 0)
    n = data[at + 26]
    end = at + 27 + n + sum(data[at + 27:at + 27 + n])
    struct.pack_into("<I", data, at + 22, _ogg_crc(bytes(data[at:end])))
    path.write_bytes(bytes(data))


def _video(path: Path, fmt: str, seconds: int = 2) -> None:
    import av
    import numpy as np

    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(25 * seconds):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 4 % 256, np.uint8), format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)


def _wav(path: Path, channels_claimed: int) -> None:
    import av
    import numpy as np

    with av.open(str(path), "w", format="wav") as c:
        s = c.add_stream("pcm_s16le", rate=44100, layout="stereo")
        f = av.AudioFrame.from_ndarray(np.zeros((1, 2 * 3 * 44100), np.int16), format="s16", layout="stereo")
        f.rate = 44100
        for p in s.encode(f):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    data = bytearray(path.read_bytes())
    struct.pack_into("<H", data, data.find(b"fmt ") + 10, channels_claimed)
    path.write_bytes(bytes(data))


def test_lengths_a_header_claims_past_what_the_file_holds_are_not_stored(tmp_path: Path) -> None:
    """A QA finding: the stream lengths of an Ogg page's granule (2^62 samples), a
    Matroska track's DURATION tag (9999999999 hours) were stored as they were claimed
    (3e13 s), though the file's own length was known, or none could be."""
    root = tmp_path / "lib"
    root.mkdir()
    _opus_claiming_ages(root / "ages.opus")
    _video(root / "tagged.mkv", "matroska")
    data = (root / "tagged.mkv").read_bytes()
    tag = b"00:00:02.000000000"
    assert tag in data
    (root / "tagged.mkv").write_bytes(data.replace(tag, b"9999999999:00:00.0"))
    catalog, _ = _scanned(root, tmp_path)
    for name in ("ages.opus", "tagged.mkv"):
        media = _row(catalog, "media", root / name)
        assert media["duration"] is None or media["duration"] < 10, (name, media)
        assert all(s["duration"] is None or s["duration"] < 10 for s in _streams(catalog, root / name)), name
    assert _row(catalog, "media", root / "tagged.mkv")["duration"] == pytest.approx(2.0, abs=0.1)


def test_a_wav_claiming_65535_channels_has_no_channel_count(tmp_path: Path) -> None:
    """A QA finding: 65535 channels in a WAV's header were stored as 0 channels, and a
    bit rate multiplied out of them (46 Gb/s)."""
    root = tmp_path / "lib"
    root.mkdir()
    _wav(root / "many.wav", 65535)
    catalog, _ = _scanned(root, tmp_path)
    media = _row(catalog, "media", root / "many.wav")
    assert media["channels"] is None and (media["bitrate"] or 0) < 10_000_000, media  # not 0, not 46 Gb/s
    assert all(s["channels"] is None and (s["bitrate"] or 0) < 10_000_000
               for s in _streams(catalog, root / "many.wav"))
    # Its fingerprint's decode: libav will not open a decoder on such a header, and says so
    # in its own words (`'avcodec_open2("pcm_s16le", {})' returned 22`), given here in ours.
    res = run_cli("meta", "--json", catalog=catalog)
    assert res.rc == 0 and "Traceback" not in res.err, res.err
    messages = [r["message"] for r in rows(catalog, "SELECT message FROM meta_errors WHERE stage = 'fingerprint'")]
    assert messages == ["the pcm_s16le decoder refuses the stream's parameters (invalid argument): its header is "
                        "damaged or hostile"], messages


def _apng_claiming(path: Path, claimed: int) -> None:
    frames = [Image.new("RGB", (64, 48), (i * 60, 0, 0)) for i in range(3)]
    out = io.BytesIO()
    frames[0].save(out, "PNG", save_all=True, append_images=frames[1:])
    data = bytearray(out.getvalue())
    at = data.find(b"acTL")
    struct.pack_into(">I", data, at + 4, claimed)
    struct.pack_into(">I", data, at + 12, zlib.crc32(bytes(data[at:at + 12])))
    path.write_bytes(bytes(data))


def test_an_animated_png_claiming_a_million_frames_has_the_frames_it_holds(tmp_path: Path) -> None:
    """A QA finding: an APNG's frame count was its `acTL` chunk's claim (1,000,000), with
    the status `ok`: the file holds 3 frames, and the claim is said."""
    root = tmp_path / "lib"
    root.mkdir()
    _apng_claiming(root / "claims.png", 1_000_000)
    _apng_claiming(root / "honest.png", 3)
    catalog, _ = _scanned(root, tmp_path)
    claims, honest = (_row(catalog, "media", root / n) for n in ("claims.png", "honest.png"))
    assert (claims["frames"], claims["status"]) == (3, "partial"), claims
    assert (honest["frames"], honest["status"]) == (3, "ok"), honest


def _jpeg_with_gps(path: Path, gps: dict) -> None:
    ex = Image.Exif()
    ex[0x010F] = "Canon"
    ex[0x8825] = gps
    sub = {0xA405: 65535}  # FocalLengthIn35mmFilm: a SHORT's all-ones placeholder
    ex[0x8769] = sub
    Image.new("RGB", (64, 48)).save(path, exif=ex.tobytes())


def test_gps_parts_past_their_range_and_unknown_references_are_no_place(tmp_path: Path) -> None:
    """A QA finding: 600 minutes, 7200 seconds, a reference `X`: stored as a real place
    (20.0 N, 7.0 E). Also a 35 mm focal length of 65535 (a placeholder) was stored."""
    r = IFDRational
    root = tmp_path / "lib"
    root.mkdir()
    _jpeg_with_gps(root / "minutes.jpg", {1: "N", 2: (r(10, 1), r(600, 1), r(0, 1)),
                                          3: "E", 4: (r(5, 1), r(0, 1), r(7200, 1))})
    _jpeg_with_gps(root / "ref.jpg", {1: "X", 2: (r(10, 1), r(30, 1), r(0, 1)),
                                      3: "E", 4: (r(5, 1), r(0, 1), r(0, 1))})
    _jpeg_with_gps(root / "both.jpg", {1: "NS", 2: (r(10, 1), r(30, 1), r(0, 1)),
                                       3: "EW", 4: (r(5, 1), r(0, 1), r(0, 1))})
    _jpeg_with_gps(root / "good.jpg", {1: "S", 2: (r(10, 1), r(30, 1), r(0, 1)),
                                       3: "W", 4: (r(5, 1), r(15, 1), r(0, 1))})
    # One number each, negative beside N and E references (a QA finding: stored as a
    # southern and western place).
    ex = Image.Exif()
    ex[0x010F] = "Canon"
    ex[0x8825] = {1: "N", 2: r(335, 10), 3: "E", 4: r(15121, 100)}
    data = bytearray(ex.tobytes())  # b"Exif\0\0", then big-endian TIFF ("MM"): made SRATIONAL, negative
    for tag in (2, 4):
        at = data.find(struct.pack(">HHI", tag, 5, 1))
        value = 6 + struct.unpack_from(">I", data, at + 8)[0]
        struct.pack_into(">H", data, at + 2, 10)
        struct.pack_into(">i", data, value, -struct.unpack_from(">i", data, value)[0])
    Image.new("RGB", (64, 48)).save(root / "lone.jpg", exif=bytes(data))
    catalog, _ = _scanned(root, tmp_path)
    for name in ("minutes.jpg", "ref.jpg", "both.jpg", "lone.jpg"):
        exif = _row(catalog, "exif", root / name)
        assert (exif["gps_lat"], exif["gps_lon"]) == (None, None), (name, exif)
    good = _row(catalog, "exif", root / "good.jpg")
    assert (good["gps_lat"], good["gps_lon"]) == (-10.5, -5.25)
    assert good["focal_length_35mm"] is None


def test_a_heic_with_a_broken_orientation_has_none(tmp_path: Path) -> None:
    """A QA finding: a HEIC's EXIF orientation 9 was stored as 1, the value pillow-heif
    puts in its place; a JPEG's is NULL."""
    from pillow_heif import register_heif_opener

    register_heif_opener()
    root = tmp_path / "lib"
    root.mkdir()
    for name, orientation in (("broken.heic", 9), ("turned.heic", 6)):
        ex = Image.Exif()
        ex[0x010F], ex[0x0112] = "Apple", orientation
        Image.new("RGB", (64, 48)).save(root / name, "HEIF", exif=ex.tobytes(), quality=60)
    catalog, _ = _scanned(root, tmp_path)
    assert _row(catalog, "exif", root / "broken.heic")["orientation"] is None
    assert _row(catalog, "exif", root / "turned.heic")["orientation"] == 6


def test_one_name_that_is_no_text_keeps_the_other_people_of_a_takeout_sidecar(tmp_path: Path) -> None:
    """A QA finding: a Google Takeout sidecar whose `people` held one lone surrogate
    (`\\ud83d`, a broken emoji) lost every name (and the tags they give): only that one
    is repaired, as a title is."""
    root = tmp_path / "lib"
    root.mkdir()
    Image.new("RGB", (64, 48), (200, 10, 10)).save(root / "p.jpg")
    (root / "p.jpg.json").write_text('{"photoTakenTime": {"timestamp": "1500000000"}, "people": '
                                     '[{"name": "Alice"}, {"name": "\\ud83d"}, {"name": "Bob"}]}')
    catalog, _ = _scanned(root, tmp_path)
    keywords = _row(catalog, "sidecars", root / "p.jpg.json")["keywords"]
    assert keywords[0] == "Alice" and keywords[2] == "Bob" and len(keywords) == 3, keywords


def test_a_value_that_does_not_fit_its_column_is_counted_partial_with_its_error(tmp_path: Path) -> None:
    """A QA finding: a result read `ok` whose value did not fit its column (stored NULL,
    with a `store` error row, and `partial` in the catalog) was counted `ok`, with no
    error, in the run's summary. The write now says how many it demoted, and adds the
    error to the result, which the summary counts."""
    from mediaforge.catalog import open_catalog
    from mediaforge.catalog.meta_writes import write_results
    from mediaforge.meta.engine import _written
    from mediaforge.meta.readers import OK, PARTIAL, Task, failed

    root = tmp_path / "lib"
    root.mkdir()
    Image.new("RGB", (64, 48), (200, 10, 10)).save(root / "p.jpg")
    catalog = tmp_path / "c.duckdb"
    assert run_cli("scan", root, "--no-meta", catalog=catalog).rc == 0
    digest = rows(catalog, "SELECT blake3 FROM files")[0]["blake3"]
    result = failed(Task(digest, os.fsencode(root / "p.jpg"), "image"), OK, "x", "x")
    result["errors"].clear()
    result["media"].update(format="png", width=64, height=48, frames=2**40)  # past INTEGER
    counts = {OK: 1, PARTIAL: 0}
    with open_catalog(catalog) as cat:
        added = _written(cat, lambda c, r, p: write_results(c, r, p), [result], {digest: b""}, counts)
    assert (added, counts) == (1, {OK: 0, PARTIAL: 1})
    media = rows(catalog, "SELECT status, frames FROM media")[0]
    assert media == {"status": "partial", "frames": None}
    assert [r["stage"] for r in rows(catalog, "SELECT stage FROM meta_errors")] == ["store"]


def test_a_negative_replaygain_peak_is_none(tmp_path: Path) -> None:
    """A QA finding: a ReplayGain peak of -0.5 was stored; a peak is an amplitude."""
    from mutagen.flac import FLAC

    import media_corpus

    root = tmp_path / "lib"
    root.mkdir()
    for name, peak in (("negative.flac", "-0.5"), ("loud.flac", "1.02")):
        media_corpus._audio(root / name, "flac", "flac", 0.5)
        f = FLAC(str(root / name))
        f["REPLAYGAIN_TRACK_PEAK"] = peak
        f.save()
    catalog, _ = _scanned(root, tmp_path)
    assert _row(catalog, "tags_audio", root / "negative.flac")["rg_track_peak"] is None
    assert _row(catalog, "tags_audio", root / "loud.flac")["rg_track_peak"] == pytest.approx(1.02)


@pytest.mark.parametrize("boxes", [(b"mvhd", b"mdhd"), (b"mdhd",)])
def test_an_mp4_with_a_time_scale_of_0_has_no_length_or_rate(tmp_path: Path, boxes: tuple[bytes, ...]) -> None:
    """A QA finding: an MP4 whose movie and media headers give a time scale of 0 (libav
    then counts whole seconds) was stored as 2000 s long at 0.002 frames a second."""
    root = tmp_path / "lib"
    root.mkdir()
    _video(root / "zero.mp4", "mp4")
    _video(root / "fine.mp4", "mp4")
    data = bytearray((root / "zero.mp4").read_bytes())
    for box in boxes:
        struct.pack_into(">I", data, data.find(box) + 16, 0)  # version 0: after flags and two times
    (root / "zero.mp4").write_bytes(bytes(data))
    catalog, _ = _scanned(root, tmp_path)
    zero, fine = (_row(catalog, "media", root / n) for n in ("zero.mp4", "fine.mp4"))
    assert (zero["duration"], zero["fps"], zero["status"]) == (None, None, "partial"), zero
    assert all(s["duration"] is None for s in _streams(catalog, root / "zero.mp4"))
    assert (fine["duration"], fine["fps"], fine["status"]) == (pytest.approx(2.0, abs=0.1), 25.0, "ok"), fine
