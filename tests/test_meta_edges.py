"""Real files at the edges of what their formats allow, each read as the format means it:
a slideshow's last picture held for seconds, EXIF blocks that claim far more than they
hold or point past their end, dates written in the tagger's own form, lengths a header
leaves out. Files are made with real encoders (PyAV, Pillow, mutagen), then one field
is set or patched."""

from __future__ import annotations

import io
import json
import os
import re
import struct
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

import media_corpus
from conftest import _encode_audio, cli_env, rows, run_cli


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


def _exif_block(main: list[tuple], sub: list[tuple] = (), gps: list[tuple] = (), *, big: bool = False) -> bytes:
    """A TIFF-structured EXIF block: directories of (tag, type, count, value bytes), or
    (tag, type, count, offset) for an entry whose value lies where `offset` says (past
    the end, say). Values over 4 bytes are laid out after the directories."""
    end = ">" if big else "<"
    pack = lambda fmt, *v: struct.pack(end + fmt, *v)  # noqa: E731
    dirs = [list(main), list(sub), list(gps)]
    if sub:
        dirs[0].append((0x8769, 4, 1, None))
    if gps:
        dirs[0].append((0x8825, 4, 1, None))
    sizes = [2 + 12 * len(d) + 4 for d in dirs]
    at = [8, 8 + sizes[0], 8 + sizes[0] + sizes[1]]
    data_at = 8 + sum(sizes)
    data = b""
    out = b""
    for k, d in enumerate(dirs):
        table = pack("H", len(d))
        for tag, typ, count, value in sorted(d, key=lambda e: e[0]):
            if value is None:  # the pointer to the Exif or GPS directory
                value = pack("L", at[1] if tag == 0x8769 else at[2])
            if isinstance(value, int):
                table += pack("HHLL", tag, typ, count, value)
            elif len(value) <= 4:
                table += pack("HHL", tag, typ, count) + value.ljust(4, b"\0")
            else:
                table += pack("HHLL", tag, typ, count, data_at + len(data))
                data += value + b"\0" * (len(value) % 2)
        out += table + pack("L", 0)
    return (b"MM\0*" if big else b"II*\0") + pack("L", 8) + out + data


def _ascii(text: str) -> tuple[int, int, bytes]:
    raw = text.encode() + b"\0"
    return 2, len(raw), raw


def _rational(*pairs: tuple[int, int], signed: bool = False, big: bool = False) -> tuple[int, int, bytes]:
    fmt = (">" if big else "<") + ("l" if signed else "L") * 2
    return 10 if signed else 5, len(pairs), b"".join(struct.pack(fmt, *p) for p in pairs)


def _short(v: int, big: bool = False) -> tuple[int, int, bytes]:
    return 3, 1, struct.pack((">" if big else "<") + "H", v)


def _long(v: int, big: bool = False) -> tuple[int, int, bytes]:
    return 4, 1, struct.pack((">" if big else "<") + "L", v)


def _picture(w: int = 64, h: int = 48) -> Image.Image:
    return Image.linear_gradient("L").resize((w, h)).convert("RGB")


def _exif_rows(catalog: Path) -> dict[str, dict]:
    return {r["name"]: r for r in rows(catalog, "SELECT f.name, e.* FROM files f JOIN exif e USING (blake3)")}


def test_entries_that_claim_one_megabyte_each_of_the_same_bytes_are_not_copied(tmp_path: Path) -> None:
    """4,000 EXIF entries that all point at one 1 MiB run of bytes: Pillow's reader copied
    each entry's value, 4 GB from a 1 MB PNG, and the worker ran out of memory (or the
    machine did). The PNG's picture and its one real tag are read in a worker held to
    1 GiB; a TIFF whose own first directory is built so is refused in one line, never
    handed to libav (which copies each entry too)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    n, blob = 4000, 1 << 20
    # Orientation 6, then the entries that all point at the run of bytes after the directory.
    table = struct.pack("<HHLHH", 0x0112, 3, 1, 6, 0) + b"".join(
        struct.pack("<HHLL", 0xC000 + i, 7, blob, 8 + 2 + 12 * (n + 1) + 4) for i in range(n))
    block = b"II*\0" + struct.pack("<LH", 8, n + 1) + table + b"\0" * 4 + b"\xab" * blob
    _picture().save(lib / "bomb.png", exif=b"Exif\0\0" + block)
    tiff = io.BytesIO()
    _picture().save(tiff, "TIFF")
    d = bytearray(tiff.getvalue())
    first = struct.unpack("<L", d[4:8])[0]
    count = struct.unpack("<H", d[first:first + 2])[0]
    own = [bytes(d[first + 2 + 12 * k:first + 14 + 12 * k]) for k in range(count)]
    at = len(d)
    d += b"\xcd" * blob
    many = own + [struct.pack("<HHLL", 0xC000 + i, 7, blob, at) for i in range(n)]
    d[4:8] = struct.pack("<L", len(d))
    d += struct.pack("<H", len(many)) + b"".join(sorted(many, key=lambda e: e[:2][::-1])) + b"\0" * 4
    (lib / "bomb.tif").write_bytes(bytes(d))
    catalog = tmp_path / "c.duckdb"
    res = run_cli("scan", lib, "--json", catalog=catalog, env=cli_env(catalog, MEDIAFORGE_WORKER_MEMORY="1G"))
    assert res.rc == 0 and "Traceback" not in res.err, res.err
    got = _media(catalog)
    png, tif = got["bomb.png"], got["bomb.tif"]
    assert (png["status"], png["width"], png["height"], png["errors"]) == ("ok", 64, 48, []), png
    assert _exif_rows(catalog)["bomb.png"]["orientation"] == 6
    assert tif["status"] == "error" and [s for s, _ in tif["errors"]] == ["decode"], tif
    claimed = re.fullmatch(r"its first TIFF directory claims ([\d,]+) bytes of values in a file of ([\d,]+) bytes "
                           r"\(entries pointing at the same bytes over and over\): not read", tif["errors"][0][1])
    assert claimed is not None, tif["errors"]
    assert n * blob < int(claimed.group(1).replace(",", "")) < n * blob + 1000
    assert claimed.group(2) == f"{len(d):,}"


@pytest.mark.parametrize("big", [False, True], ids=["little-endian", "big-endian"])
def test_an_entry_pointing_past_the_end_loses_only_itself(tmp_path: Path, big: bool) -> None:
    """A Make whose value lies past the end of the block, and a MakerNote so (common in
    edited photos): Pillow gave up the rest of the directory, so the first lost the
    orientation (the thumbnail came out unturned), the date, ISO and lens, the second
    the sub-second, lens and 35 mm focal length. Each loses only itself. With them: an
    ISO past 65535 given in ISOSpeed (ISOSpeedRatings holding its 65535 placeholder), a
    sub-second of ten digits, a GPS altitude reference written as the text "1", and a
    latitude of four numbers (exiftool's reading: the first three)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    far = 0x7FFF0000
    block = _exif_block(
        [(0x010F, 2, 40, far), (0x0110, *_ascii("Cam X")), (0x0112, *_short(6, big))],
        [(0x8827, *_short(65535, big)), (0x8833, *_long(102400, big)), (0x9003, *_ascii("2021:06:07 08:09:10")),
         (0x9291, *_ascii("1234567890")), (0x927C, 7, 300, far), (0xA405, *_short(35, big)),
         (0xA434, *_ascii("XF23mm"))],
        [(1, *_ascii("S")), (2, *_rational((33, 1), (51, 1), (36, 1), (7, 1), big=big)), (3, *_ascii("E")),
         (4, *_rational((151, 1), (12, 1), (0, 1), big=big)), (5, *_ascii("1")), (6, *_rational((100, 1), big=big))],
        big=big)
    _picture(96, 64).save(lib / "edited.jpg", exif=b"Exif\0\0" + block)
    catalog = _scanned(lib, tmp_path)
    got = _exif_rows(catalog)["edited.jpg"]
    assert (got["make"], got["model"], got["orientation"], got["lens"], got["focal_length_35mm"], got["iso"]) == \
        (None, "Cam X", 6, "XF23mm", 35, 102400), got
    assert got["taken_at"] == datetime(2021, 6, 7, 8, 9, 10, 123456), got
    assert (got["gps_lat"], got["gps_lon"], got["gps_alt"]) == (-33.86, 151.2, -100.0), got
    media = _media(catalog)["edited.jpg"]
    with Image.open(catalog.parent / "thumbs" / media["thumb"]) as thumb:
        assert thumb.size == (64, 96)  # turned upright, as orientation 6 says


def test_a_rational_written_with_two_values_is_read_as_its_first(tmp_path: Path) -> None:
    """A QA finding: an exposure, aperture, focal length or altitude written as two
    rationals (or integers) was read as one fraction, the first over the second (1/250
    and 1/125 became an exposure of 0.5 s). Its first value is read, as exiftool reads it."""
    lib = tmp_path / "lib"
    lib.mkdir()
    block = _exif_block(
        [(0x010F, *_ascii("X"))],
        [(0x829A, *_rational((1, 250), (1, 125))), (0x829D, *_rational((56, 10), (28, 10))),
         (0x920A, 3, 2, struct.pack("<HH", 50, 25))],  # (as two integers: the first too)
        [(1, *_ascii("N")), (2, *_rational((10, 1), (30, 1), (0, 1))), (3, *_ascii("E")),
         (4, *_rational((20, 1), (0, 1), (0, 1))), (6, *_rational((100, 1), (50, 1)))])
    _picture().save(lib / "two.jpg", exif=b"Exif\0\0" + block)
    got = _exif_rows(_scanned(lib, tmp_path))["two.jpg"]
    assert (got["exposure_time"], got["f_number"], got["focal_length"], got["gps_alt"]) == (
        pytest.approx(0.004), pytest.approx(5.6), pytest.approx(50.0), pytest.approx(100.0)), got
    assert (got["gps_lat"], got["gps_lon"]) == (pytest.approx(10.5), pytest.approx(20.0)), got


def test_a_frame_rate_that_rounds_to_nothing_is_none(tmp_path: Path) -> None:
    """A QA finding: an MP4 whose first frame lasts 2^31 ticks (a broken `stts` table)
    was stored with a frame rate of 0.0, as if that meant something. A rate that rounds
    to 0 is NULL, as one past 10,000 is."""
    lib = tmp_path / "lib"
    lib.mkdir()
    media_corpus._video(lib / "src.mp4", "libx264", "mp4", (64, 48), 48)
    data = bytearray((lib / "src.mp4").read_bytes())
    at = data.find(b"stts")
    assert at > 0 and struct.unpack(">L", data[at + 8:at + 12])[0] >= 1  # (version and flags, then the count)
    struct.pack_into(">L", data, at + 16, 0x7FFFFFFF)  # the first entry's delta
    (lib / "src.mp4").unlink()
    (lib / "long_first_frame.mp4").write_bytes(bytes(data))
    catalog = _scanned(lib, tmp_path)
    got = _media(catalog)["long_first_frame.mp4"]
    assert got["fps"] is None, got
    assert [r["fps"] for r in rows(catalog, "SELECT fps FROM streams WHERE type = 'video'")] == [None]


def test_a_gps_altitude_written_negative_is_below_sea_level(tmp_path: Path) -> None:
    """An altitude written as a negative SRATIONAL with no reference (the Dead Sea's
    shore) was dropped; 0 stays 0 (not -0.0) and one past any mine's floor is none."""
    lib = tmp_path / "lib"
    lib.mkdir()
    for name, alt in (("shore.jpg", (-430, 1)), ("sea.jpg", (0, 1)), ("deep.jpg", (-50_000, 1))):
        gps = [(2, *_rational((31, 1), (30, 1), (0, 1))), (4, *_rational((35, 1), (30, 1), (0, 1))),
               (6, *_rational(alt, signed=True))]
        _picture().save(lib / name, exif=b"Exif\0\0" + _exif_block([(0x0110, *_ascii("Cam"))], [], gps))
    got = _exif_rows(_scanned(lib, tmp_path))
    assert {k: (v["gps_lat"], v["gps_alt"]) for k, v in got.items()} == {
        "shore.jpg": (31.5, -430.0), "sea.jpg": (31.5, 0.0), "deep.jpg": (31.5, None)}
    assert str(got["sea.jpg"]["gps_alt"]) == "0.0"


def _syncsafe(n: int) -> bytes:
    return bytes([(n >> 21) & 127, (n >> 14) & 127, (n >> 7) & 127, n & 127])


@pytest.mark.parametrize("written, year", [("05/01/2024", 2024), ("99", None), ("May 1st, 2024", 2024), ("0", None),
                                           ("1e9", None), ("2024-05-01", 2024), ("2024", 2024)])
def test_an_id3_date_is_kept_as_written(tmp_path: Path, written: str, year: int | None) -> None:
    """An ID3v2.4 TDRC frame's text as the tagger wrote it (exiftool and ffprobe show it
    so): mutagen reads it as a timestamp and gave back what it made of it, `05/01/2024`
    as `0005-01-2024` (year 5), `99` as `0099`, `0` as `0000`, and no date at all for
    `May 1st, 2024`. An ID3v2.3 tag's year, day and time (TYER, TDAT, TIME) are still
    put together as one date."""
    from mutagen import id3

    lib = tmp_path / "lib"
    lib.mkdir()
    song = lib / "song.mp3"
    _encode_audio(song, "libmp3lame", "mp3")
    frames = b""
    for fid, text in ((b"TIT2", b"\x03Song"), (b"TDRC", b"\x00" + written.encode("latin-1"))):
        frames += fid + _syncsafe(len(text)) + b"\0\0" + text
    song.write_bytes(b"ID3\x04\0\0" + _syncsafe(len(frames)) + frames + song.read_bytes())
    older = lib / "older.mp3"
    _encode_audio(older, "libmp3lame", "mp3")
    tags = id3.ID3()
    for frame in (id3.TYER(encoding=0, text="2024"), id3.TDAT(encoding=0, text="0105"),
                  id3.TIME(encoding=0, text="1030")):
        tags.add(frame)
    tags.save(str(older), v2_version=3)
    got = {r["name"]: r for r in rows(_scanned(lib, tmp_path, "--no-fingerprints"),
                                      "SELECT f.name, t.* FROM files f JOIN tags_audio t USING (blake3)")}
    assert (got["song.mp3"]["title"], got["song.mp3"]["date"], got["song.mp3"]["year"]) == ("Song", written, year)
    assert (got["older.mp3"]["date"], got["older.mp3"]["year"]) == ("2024-05-01T10:30:00", 2024)


class _Pipe:
    """A file that can only be written on, as a pipe is: a muxer cannot go back to put
    the length in the header (`ffmpeg ... -f webm pipe:1`, a browser's MediaRecorder)."""

    def __init__(self, f: io.BufferedWriter) -> None:
        self.f = f

    def write(self, b: bytes) -> int:
        return self.f.write(b)


def test_a_length_no_header_gives_is_what_the_packets_span(tmp_path: Path) -> None:
    """A WebM recorded to a pipe (3 s of video and sound) and a FLAC whose STREAMINFO
    sample count is 0 ("unknown", as streaming encoders write it) had no duration and no
    bit rate: a `duration > x` filter passed them by. Their packets tell both."""
    lib = tmp_path / "lib"
    lib.mkdir()
    with open(lib / "recording.webm", "wb") as raw, av.open(_Pipe(raw), "w", format="webm") as c:
        v = c.add_stream("libvpx-vp9", rate=25)
        v.width, v.height, v.pix_fmt = 160, 120, "yuv420p"
        a = c.add_stream("libopus", rate=48000)
        a.layout = "mono"
        for i in range(75):
            f = av.VideoFrame.from_ndarray((np.random.default_rng(i).random((120, 160, 3)) * 255).astype(np.uint8),
                                           format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 25)
            for p in v.encode(f):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        media_corpus._silence(c, a, 3.0, "mono")
    _encode_audio(lib / "streamed.flac", "flac", "flac", seconds=6.0)
    b = bytearray((lib / "streamed.flac").read_bytes())
    b[21] &= 0xF0  # the 36-bit sample count, after the rate, channels and bits per sample
    b[22:26] = bytes(4)
    (lib / "streamed.flac").write_bytes(bytes(b))
    for name in ("recording.webm", "streamed.flac"):
        with av.open(str(lib / name)) as c:  # libav itself gives no length for either
            assert c.duration is None and all(s.duration is None for s in c.streams), name
    catalog = _scanned(lib, tmp_path)
    got = _media(catalog)
    webm, flac = got["recording.webm"], got["streamed.flac"]
    assert (webm["status"], flac["status"], webm["errors"], flac["errors"]) == ("ok", "ok", [], [])
    assert 3.0 <= webm["duration"] <= 3.03, webm
    assert flac["duration"] == round(230 * 1152 / 44100, 3)  # the encoder's 230 frames of 1,152 samples
    for name, row in (("recording.webm", webm), ("streamed.flac", flac)):
        assert row["bitrate"] == pytest.approx((lib / name).stat().st_size * 8 / row["duration"], rel=1e-3), row
    streams = rows(catalog, "SELECT f.name, s.type, s.duration FROM files f JOIN streams s USING (blake3) "
                            "ORDER BY f.name, s.stream_index")
    assert [(r["name"], r["type"], r["duration"] is not None) for r in streams] == [
        ("recording.webm", "video", True), ("recording.webm", "audio", True), ("streamed.flac", "audio", True)]


def test_an_mp4_text_atom_in_windows_code_page_is_read(tmp_path: Path) -> None:
    """A `©nam` atom holding `Café Tac` in Windows' code page (the é one byte, 0xE9):
    mutagen sets such an atom aside, and the title was lost (exiftool and ffprobe show
    it). It is read as an ID3 frame of such bytes is; the atoms beside it as before."""
    from mutagen.mp4 import MP4

    lib = tmp_path / "lib"
    lib.mkdir()
    song = lib / "song.m4a"
    _encode_audio(song, "aac", "ipod")
    tags = MP4(str(song))
    tags["\xa9nam"], tags["\xa9ART"], tags["trkn"] = ["Caf\u00e9 Tac"], ["Artist"], [(3, 9)]
    tags.save()
    data = song.read_bytes()
    utf8, cp = "Caf\u00e9 Tac".encode(), "Caf\u00e9 Tac".encode("cp1252")
    assert data.count(utf8) == 1
    at = data.index(utf8)
    song.write_bytes(data[:at] + cp + b" " + data[at + len(utf8):])  # the same length: a space pads it
    assert "\xa9nam" not in (MP4(str(song)).tags or {})  # mutagen itself gives no title
    got = rows(_scanned(lib, tmp_path, "--no-fingerprints"),
               "SELECT t.title, t.artist, t.track, t.track_total FROM files f JOIN tags_audio t USING (blake3)")
    assert got == [{"title": "Caf\u00e9 Tac", "artist": "Artist", "track": 3, "track_total": 9}]


@pytest.mark.parametrize("date, created", [("1969-07-20T20:17:00+00:00", datetime(1969, 7, 20, 20, 17)),
                                           ("1970-01-01T00:00:00Z", None), ("1969-12-31T19:00:00-05:00", None),
                                           ("1969-12-31T22:00:00+01:00", (datetime(1969, 12, 31, 21, 0),
                                                                          datetime(1969, 12, 31, 22, 0))),
                                           ("1969-12-31T19:00:00", None), ("1969-12-31T09:00:00", datetime(1969, 12, 31, 9)),
                                           ("1888-10-14", datetime(1888, 10, 14)), ("1700-01-01", None)])
def test_a_matroska_date_before_1971_is_kept_unless_it_is_a_placeholder(tmp_path: Path, date: str, created: Any) -> None:
    """A QA finding: every date before 1971 was dropped as "not set", so a film digitised
    with the day it was shot (1969-07-20) had none. Only the placeholders are: the epoch
    (as a zone west of UTC shows it too), 1904-01-01, and years before any camera."""
    lib = tmp_path / "lib"
    lib.mkdir()
    media_corpus._video(lib / "film.mkv", "libx264", None, (64, 48), 10, rate=10, metadata={"DATE": date})
    got = _media(_scanned(lib, tmp_path, "--no-fingerprints"))["film.mkv"]
    # (`created_at` in UTC; `taken_at` on the clock it was written with, its offset dropped.)
    assert (got["created_at"], got["taken_at"]) == (created if isinstance(created, tuple) else (created, created)), got


def test_an_id3_picture_that_is_a_link_is_no_cover(tmp_path: Path) -> None:
    """A QA finding: an APIC frame whose MIME type is `-->` (its data a URL, as ID3 allows)
    was taken for cover art: `has_cover` true, and the file `partial` for a thumbnail that
    would not decode. A real front cover beside it is still the one used."""
    from mutagen import id3

    lib = tmp_path / "lib"
    lib.mkdir()
    jpeg = io.BytesIO()
    _picture(32, 32).save(jpeg, "JPEG")
    for name, frames in (("linked.mp3", [("-->", b"http://example.com/cover.jpg", 3)]),
                         ("both.mp3", [("-->", b"http://example.com/cover.jpg", 3), ("image/jpeg", jpeg.getvalue(), 3)])):
        _encode_audio(lib / name, "libmp3lame", "mp3")
        tags = id3.ID3()
        tags.add(id3.TIT2(encoding=3, text=name))
        for k, (mime, data, kind) in enumerate(frames):
            tags.add(id3.APIC(encoding=3, mime=mime, type=kind, desc=f"d{k}", data=data))
        tags.save(str(lib / name))
    catalog = _scanned(lib, tmp_path, "--no-fingerprints")
    got = _media(catalog)
    covers = {r["name"]: r["has_cover"] for r in rows(catalog, "SELECT f.name, t.has_cover FROM files f "
                                                               "JOIN tags_audio t USING (blake3)")}
    assert covers == {"linked.mp3": False, "both.mp3": True}
    assert (got["linked.mp3"]["status"], got["linked.mp3"]["errors"], got["linked.mp3"]["thumb"]) == ("ok", [], None)
    assert (got["both.mp3"]["status"], got["both.mp3"]["errors"]) == ("ok", []) and got["both.mp3"]["thumb"]


def test_an_id3_tag_with_no_sound_after_it_is_read(tmp_path: Path) -> None:
    """A QA finding: an MP3 that is only its ID3 tag (the sound lost, or never written)
    was `error` and its title lost, though exiftool reads it: mutagen's MP3 reader wants
    a frame to sync to. Its tag is read (`partial`); libav's note drops its error number."""
    from mutagen import id3

    lib = tmp_path / "lib"
    lib.mkdir()
    tags = id3.ID3()
    tags.add(id3.TIT2(encoding=3, text="Only a tag"))
    tags.add(id3.TPE1(encoding=3, text="Someone"))
    (lib / "tag.mp3").write_bytes(b"")
    tags.save(str(lib / "tag.mp3"))
    catalog = _scanned(lib, tmp_path)
    got = _media(catalog)["tag.mp3"]
    assert got["status"] == "partial", got
    assert got["errors"] == [("probe", f"InvalidDataError: Invalid data found when processing input: "
                                       f"'{lib / 'tag.mp3'}'")]
    assert rows(catalog, "SELECT title, artist FROM tags_audio") == [{"title": "Only a tag", "artist": "Someone"}]


def test_the_date_of_an_id3_tag_with_no_sound_is_its_tdrc_frame_not_its_title(tmp_path: Path) -> None:
    """A QA finding: an ID3 tag read without its stream's help (an MP3 whose sound is
    lost) took its first text frame's value as its date: a title of "1999 Remix" gave the
    song the date "1999 Remix" and the year 1999, though its TDRC frame says 2015. And a
    catalog of schema 28 that stored such a date extracts the song again; a song read
    right keeps its row."""
    import duckdb
    from mutagen import id3

    lib = tmp_path / "lib"
    lib.mkdir()
    tags = id3.ID3()
    tags.add(id3.TIT2(encoding=3, text="1999 Remix"))
    tags.add(id3.TPE1(encoding=3, text="Some Artist"))
    tags.add(id3.TDRC(encoding=3, text="2015"))
    (lib / "lost.mp3").write_bytes(bytes(4096))
    tags.save(str(lib / "lost.mp3"))
    _encode_audio(lib / "song.mp3", "libmp3lame", "mp3", seconds=1.0)
    catalog = _scanned(lib, tmp_path)
    assert _media(catalog)["lost.mp3"]["status"] == "partial"
    dated = "SELECT f.name, t.date, t.year FROM files f JOIN tags_audio t USING (blake3) ORDER BY f.name"
    assert rows(catalog, dated)[0] == {"name": "lost.mp3", "date": "2015", "year": 2015}
    assert rows(catalog, "SELECT year FROM library WHERE name = 'lost.mp3'") == [{"year": 2015}]

    # The date as versions before stored it, in a catalog of schema 28.
    before = {r["name"]: r["extracted_at"] for r in rows(catalog, "SELECT f.name, m.extracted_at FROM files f "
                                                                  "JOIN media m USING (blake3)")}
    with duckdb.connect(str(catalog)) as con:
        con.execute("UPDATE tags_audio SET date = title, year = 1999 WHERE title = '1999 Remix'")
        con.execute("UPDATE meta SET value = '28' WHERE key = 'schema_version'")
    res = run_cli("scan", lib, "--json", catalog=catalog)
    assert res.rc == 0 and json.loads(res.out)["extract"]["files"] == 1, (res.out, res.err)
    assert rows(catalog, dated)[0] == {"name": "lost.mp3", "date": "2015", "year": 2015}
    after = {r["name"]: r["extracted_at"] for r in rows(catalog, "SELECT f.name, m.extracted_at FROM files f "
                                                                 "JOIN media m USING (blake3)")}
    assert after["song.mp3"] == before["song.mp3"] and after["lost.mp3"] != before["lost.mp3"]


def _picture_claims_too_much(flac: bytes) -> bytes:
    """The FLAC file `flac` with its picture block's MIME type claiming 4 GiB."""
    at = 4
    while True:
        kind, size = flac[at] & 0x7F, int.from_bytes(flac[at + 1:at + 4], "big")
        if kind == 6:  # PICTURE: its type (4 bytes), then the MIME type's length
            return flac[:at + 8] + (0xFFFFFFF0).to_bytes(4, "big") + flac[at + 12:]
        assert not flac[at] & 0x80, "no picture block"
        at += 4 + size


def test_a_flac_whose_header_states_no_sample_rate_keeps_its_tags_cover_and_length(tmp_path: Path) -> None:
    """A QA finding: a FLAC whose stream header states a sample rate of 0 (damaged) lost
    its tags and cover, for mutagen refuses the whole file, and its length was stored as
    1.56 s of its 3 s (libav's timestamps then run at a rate of their own). Its tags and
    cover are read from the blocks after the header, with a note, and its length is what
    it decodes to."""
    from mutagen.flac import FLAC, Picture

    lib = tmp_path / "lib"
    lib.mkdir()
    whole = lib / "whole.flac"
    _encode_audio(whole, "flac", "flac", seconds=3.0)
    f = FLAC(whole)
    f["TITLE"], f["ARTIST"], f["DATE"] = "My Song", "Me", "2001"
    cover = Picture()
    cover.type, cover.mime, cover.data = 3, "image/jpeg", media_corpus.cover_jpeg()
    f.add_picture(cover)
    f.save()
    data = bytearray(whole.read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO first: its rate, 20 bits at byte 18
    (lib / "badpicture.flac").write_bytes(_picture_claims_too_much(bytes(data)))
    data[18], data[19], data[20] = 0, 0, data[20] & 0x0F
    (lib / "rate0.flac").write_bytes(bytes(data))
    catalog = _scanned(lib, tmp_path)
    media = _media(catalog)
    # A picture block that claims more than the file holds loses the picture alone.
    bad = media.pop("badpicture.flac")
    assert bad["status"] == "partial" and abs(bad["duration"] - 3.0) < 0.05, bad
    assert [(stage, re.sub("read [0-9]+ bytes", "read N bytes", m)) for stage, m in bad["errors"]] == [
        ("tags", "file said 4294967280 bytes, read N bytes: the tags were read from the blocks that are whole")]
    assert rows(catalog, "SELECT title, has_cover FROM tags_audio WHERE blake3 = ?", [bad["blake3"]]) == \
        [{"title": "My Song", "has_cover": False}]
    assert media["whole.flac"]["status"] == "ok" and media["whole.flac"]["errors"] == []
    got = media["rate0.flac"]
    assert got["status"] == "partial", got
    assert got["errors"] == [("tags", "A sample rate value of 0 is invalid: the tags were read from the blocks "
                                      "that are whole")], got["errors"]
    assert abs(got["duration"] - 3.0) < 0.05 and got["thumb"], got
    tags = rows(catalog, "SELECT f.name, t.title, t.artist, t.date, t.has_cover FROM files f JOIN tags_audio t "
                         "USING (blake3) WHERE f.name <> 'badpicture.flac' ORDER BY f.name")
    assert [{k: v for k, v in t.items() if k != "name"} for t in tags] == \
        [{"title": "My Song", "artist": "Me", "date": "2001", "has_cover": True}] * 2, tags

    # As versions before read it, in a catalog of schema 28: the next scan reads it again
    # (and the other FLAC whose tags have a note).
    import duckdb

    with duckdb.connect(str(catalog)) as con:
        (damaged,) = con.execute("SELECT blake3 FROM files WHERE name = 'rate0.flac'").fetchone()
        con.execute("DELETE FROM tags_audio WHERE blake3 = ?", [damaged])
        con.execute("UPDATE media SET duration = 1.561 WHERE blake3 = ?", [damaged])
        con.execute("UPDATE meta_errors SET message = 'A sample rate value of 0 is invalid' WHERE blake3 = ?",
                    [damaged])
        con.execute("UPDATE meta SET value = '28' WHERE key = 'schema_version'")
    res = run_cli("scan", lib, "--json", catalog=catalog)
    assert res.rc == 0 and json.loads(res.out)["extract"]["files"] == 2, (res.out, res.err)
    assert _media(catalog)["rate0.flac"]["duration"] == got["duration"]
    assert rows(catalog, "SELECT title FROM tags_audio WHERE blake3 = ?", [damaged]) == [{"title": "My Song"}]


def test_info_shows_a_backslash_and_a_line_break_apart(tmp_path: Path) -> None:
    """A QA finding: `info` showed a tag holding `C:\\new` (a backslash and an n) and one
    holding a line break alike, `C:\\new`; `query` doubles the backslash, as `ls -b`
    shows names. `info` does too."""
    from mutagen.flac import FLAC

    lib = tmp_path / "lib"
    lib.mkdir()
    _encode_audio(lib / "a.flac", "flac", "flac")
    tags = FLAC(str(lib / "a.flac"))
    tags["ALBUM"], tags["TITLE"] = "C:\\new\\file", "line\nbreak"
    tags.save()
    catalog = _scanned(lib, tmp_path, "--no-fingerprints")
    out = run_cli("info", lib / "a.flac", env=cli_env(catalog, COLUMNS="200")).out
    lines = {ln.split(None, 1)[0]: ln.split(None, 1)[1].strip() for ln in out.splitlines() if ln.strip()
             and ln.split(None, 1)[0] in ("album", "title")}
    assert lines == {"album": "C:\\\\new\\\\file", "title": "line\\nbreak"}, out


def _tiff_with_exif(path: Path, *, big: bool = False) -> None:
    """A 64x32 TIFF whose first directory holds a make, orientation 6 and a date."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0112], exif[0x0132] = "Maker", 6, "2022:03:04 05:06:07"
    _picture(64, 32).save(path, "TIFF", exif=exif, **({"big_tiff": True} if big else {}))


def _patch_count(path: Path, tag: int, count: int) -> None:
    """Set the value count of `tag` in a little-endian TIFF's first directory to `count`,
    its offset as it was."""
    d = bytearray(path.read_bytes())
    at = struct.unpack("<L", d[4:8])[0]
    n = struct.unpack("<H", d[at:at + 2])[0]
    e = next(at + 2 + 12 * k for k in range(n) if struct.unpack("<H", d[at + 2 + 12 * k:at + 4 + 12 * k])[0] == tag)
    struct.pack_into("<L", d, e + 4, count)
    path.write_bytes(bytes(d))


def test_a_tiff_with_one_count_past_its_end_is_read_as_far_as_it_goes(tmp_path: Path) -> None:
    """A review finding: the guard against overlapping claims summed every entry's whole
    claim, so one corrupt count (a DateTime of 2,000,000 bytes) or a MakerNote an editor
    moved past the end made a TIFF "hostile": `error`, nothing read. A value past the end
    is copied by no reader: the first stays `partial` (the directory runs past the file's
    end), the second `ok` with its thumbnail, and the other tags are read."""
    lib = tmp_path / "lib"
    lib.mkdir()
    _tiff_with_exif(lib / "count.tif")
    _patch_count(lib / "count.tif", 0x0132, 2_000_000)
    # An Exif directory (Pillow's TIFF writer makes none) whose MakerNote's 2,000,000
    # bytes are said to lie past the end, before the lens model.
    _tiff_with_exif(lib / "maker.tif")
    d = bytearray((lib / "maker.tif").read_bytes())
    first = struct.unpack("<L", d[4:8])[0]
    n = struct.unpack("<H", d[first:first + 2])[0]
    own = [bytes(d[first + 2 + 12 * k:first + 14 + 12 * k]) for k in range(n)]
    date, lens = b"2022:03:04 05:06:07\0", b"XF23mm\0\0"
    values = len(d)
    d += date + lens
    sub = len(d)
    d += struct.pack("<H", 3) + struct.pack("<HHLL", 0x9003, 2, len(date), values) \
        + struct.pack("<HHLL", 0x927C, 7, 2_000_000, 0x7FFF0000) \
        + struct.pack("<HHLL", 0xA434, 2, len(lens), values + len(date)) + bytes(4)
    main = sorted(own + [struct.pack("<HHLL", 0x8769, 4, 1, sub)], key=lambda e: struct.unpack("<H", e[:2])[0])
    d[4:8] = struct.pack("<L", len(d))
    d += struct.pack("<H", len(main)) + b"".join(main) + bytes(4)
    (lib / "maker.tif").write_bytes(bytes(d))
    catalog = _scanned(lib, tmp_path)
    got = _media(catalog)
    assert got["count.tif"]["status"] == "partial" and got["count.tif"]["thumb"], got["count.tif"]
    assert [s for s, _ in got["count.tif"]["errors"]] == ["decode"], got["count.tif"]
    assert (got["maker.tif"]["status"], got["maker.tif"]["errors"]) == ("ok", []) and got["maker.tif"]["thumb"]
    exif_rows = _exif_rows(catalog)
    assert (exif_rows["maker.tif"]["make"], exif_rows["maker.tif"]["orientation"], exif_rows["maker.tif"]["lens"],
            exif_rows["maker.tif"]["taken_at"]) == ("Maker", 6, "XF23mm", datetime(2022, 3, 4, 5, 6, 7))
    assert (exif_rows["count.tif"]["make"], exif_rows["count.tif"]["orientation"]) == ("Maker", 6)


def test_a_bigtiff_s_exif_is_read(tmp_path: Path) -> None:
    """A review finding: the tag reader knew classic TIFF only, so a BigTIFF lost its EXIF
    row, and with its orientation 6 its width and height came out swapped."""
    lib = tmp_path / "lib"
    lib.mkdir()
    _tiff_with_exif(lib / "big.tif", big=True)
    assert (lib / "big.tif").read_bytes()[:4] == b"II+\0"
    catalog = _scanned(lib, tmp_path)
    row = _exif_rows(catalog)["big.tif"]
    assert (row["make"], row["orientation"], row["taken_at"]) == ("Maker", 6, datetime(2022, 3, 4, 5, 6, 7)), row
    media = _media(catalog)["big.tif"]
    assert (media["status"], media["width"], media["height"]) == ("ok", 64, 32), media


def test_an_orientation_only_the_xmp_packet_gives_is_in_the_exif_row(tmp_path: Path) -> None:
    """A review finding: Pillow's reader took `tiff:Orientation` from the XMP packet where
    the EXIF block has none, and the row had it; the bounded reader lost it (the thumbnail
    kept it). It is read so again, for a JPEG with no EXIF at all too. A QA finding: only
    its first digit was read, so "60" turned the picture as 6 does; a value out of 1-8,
    as an attribute or an element, is none."""
    lib = tmp_path / "lib"
    lib.mkdir()
    said = {"attr6": ' tiff:Orientation="6"/>', "attr60": ' tiff:Orientation="60"/>',
            "elem8": '><tiff:Orientation> 8 </tiff:Orientation></rdf:Description>',
            "elem12": '><tiff:Orientation>12</tiff:Orientation></rdf:Description>'}
    for name, text in said.items():
        xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
               '<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/"' + text + '</rdf:RDF></x:xmpmeta>')
        _picture(96, 64).save(lib / f"{name}.jpg", "JPEG", xmp=xmp.encode())
    catalog = _scanned(lib, tmp_path)
    exif = _exif_rows(catalog)  # (a picture with nothing to say has no row)
    got = {name: exif.get(f"{name}.jpg", {}).get("orientation") for name in said}
    assert got == {"attr6": 6, "attr60": None, "elem8": 8, "elem12": None}, got
    media = _media(catalog)
    for name, size in (("attr6", (64, 96)), ("attr60", (96, 64)), ("elem8", (64, 96)), ("elem12", (96, 64))):
        with Image.open(catalog.parent / "thumbs" / media[f"{name}.jpg"]["thumb"]) as thumb:
            assert thumb.size == size, name


def test_a_retry_that_times_out_keeps_what_was_read_and_a_thumbnail_s_place_held_by_a_folder_is_refused(
        tmp_path: Path) -> None:
    """QA findings: a `meta --retry-failed` of `partial` contents (their thumbnails held
    back for want of room) that timed out deleted their size, EXIF and fingerprints; a
    `thumbs` run that timed out left `timeout` rows on contents that keep a good
    thumbnail, which no later run takes away; and a folder where a thumbnail file goes
    failed with Python's words ("IsADirectoryError: ...") and counted as `failed`."""
    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(2):
        exif = Image.Exif()
        exif[0x0110] = f"cam{i}"
        _picture(1600, 1200).rotate(i * 90).save(lib / f"p{i}.jpg", quality=85, exif=exif)
    media_corpus.slow_jpeg(lib / "slow.jpg", repeats=6_000)  # a second or more to decode: past 0.3 s
    catalog = tmp_path / "c.duckdb"
    res = run_cli("scan", lib, "--json", catalog=catalog, env=cli_env(catalog, MEDIAFORGE_MIN_FREE="1000T"))
    assert res.rc == 0, res.err
    query = ("SELECT f.name, m.status, m.width, e.model, (SELECT count(*) FROM image_hashes h WHERE h.blake3 = m.blake3) "
             "AS hashes FROM files f JOIN media m USING (blake3) LEFT JOIN exif e USING (blake3) ORDER BY 1")
    before = rows(catalog, query)
    assert [r["status"] for r in before] == ["partial"] * 3, before
    assert [(r["width"], r["hashes"]) for r in before] == [(1600, 1), (1600, 1), (2000, 0)], before  # (slow: flat)
    out = json.loads(run_cli("meta", "--retry-failed", "--timeout", "0.3", "--json", catalog=catalog).out)
    assert (out["ok"], out["failed"]) == (2, 1), out  # slow.jpg timed out
    after = rows(catalog, query)
    assert [(r["name"], r["status"], r["width"], r["model"], r["hashes"]) for r in after] == [
        ("p0.jpg", "ok", 1600, "cam0", 1), ("p1.jpg", "ok", 1600, "cam1", 1), ("slow.jpg", "partial", 2000, None, 0)]
    assert rows(catalog, "SELECT count(*) AS n FROM meta_errors WHERE stage = 'fingerprint'") == [{"n": 1}]  # kept
    assert run_cli("thumbs", catalog=catalog).rc == 0  # every thumbnail made
    res = run_cli("thumbs", "--timeout", "0.3", "--json", catalog=catalog)
    assert json.loads(res.out)["failed"] == 1, res.out
    assert rows(catalog, "SELECT count(*) AS n FROM meta_errors WHERE stage IN ('timeout', 'crash')") == [{"n": 0}]
    assert all(r["status"] == "ok" for r in rows(catalog, query))
    thumb = catalog.parent / "thumbs" / rows(catalog, "SELECT thumb FROM media ORDER BY blake3 LIMIT 1")[0]["thumb"]
    thumb.unlink()
    thumb.mkdir()
    out = json.loads(run_cli("thumbs", "--missing-only", "--json", catalog=catalog).out)
    assert (out["failed"], out["thumbs_refused"]) == (0, 1), out
    assert rows(catalog, "SELECT message FROM meta_errors WHERE stage = 'thumb'") == [
        {"message": f"thumbnail not written: {thumb} is a folder, not a file; move it away"}]


def test_thumbs_missing_only_leaves_a_cut_webp_and_broken_cover_art_alone(tmp_path: Path) -> None:
    """A QA finding: `thumbs --missing-only` passes by pictures whose pixels do not decode,
    but not a WebP cut short after its header (its note is the reader's, stage `image`)
    nor an MP3 whose cover art is no picture (stage `thumb`): both were tried on every
    run and counted `failed`. Plain `thumbs` still tries them."""
    from mutagen import id3

    lib = tmp_path / "lib"
    lib.mkdir()
    whole = io.BytesIO()
    _picture(600, 300).save(whole, "WEBP")
    (lib / "cut.webp").write_bytes(whole.getvalue()[:40])
    _encode_audio(lib / "cover.mp3", "libmp3lame", "mp3")
    tags = id3.ID3()
    tags.add(id3.APIC(encoding=3, mime="image/jpeg", type=3, desc="front", data=b"\xff\xd8\xff\xe0" + bytes(5000)))
    tags.save(str(lib / "cover.mp3"))
    catalog = _scanned(lib, tmp_path, "--no-fingerprints")
    assert {r["name"]: [s for s, _ in r["errors"]] for r in _media(catalog).values()} == {
        "cut.webp": ["image"], "cover.mp3": ["thumb"]}
    for _ in range(2):
        out = json.loads(run_cli("thumbs", "--missing-only", "--json", catalog=catalog).out)
        assert (out["files"], out["failed"]) == (0, 0), out
    out = json.loads(run_cli("thumbs", "--json", catalog=catalog).out)
    assert (out["files"], out["failed"]) == (2, 2), out
