"""How a video is turned, mirrored, timed and dated, as players and ffprobe read the same
files: a mirrored display matrix, a `rotate` tag, Matroska's frame statistics, a date
with a UTC offset; and an M4A's placeholder track numbers. Files are made with PyAV and
mutagen at test time; an MP4's track header matrix is patched in its bytes."""

from __future__ import annotations

import os
import re
import struct
from fractions import Fraction
from pathlib import Path

import pytest
from PIL import Image

import media_corpus
from conftest import rows, run_cli

# A picture whose four quarters tell every turn and flip apart.
_COLOURS = {"red": (230, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 230), "white": (240, 240, 240)}
_SIZE = (96, 64)


def _quarters(w: int = _SIZE[0], h: int = _SIZE[1]) -> Image.Image:
    img = Image.new("RGB", (w, h))
    for name, box in zip(_COLOURS, ((0, 0, w // 2, h // 2), (w // 2, 0, w, h // 2), (0, h // 2, w // 2, h),
                                    (w // 2, h // 2, w, h))):
        img.paste(_COLOURS[name], box)
    return img


def _corners(img: Image.Image) -> tuple[str, ...]:
    """The colour nearest each quarter's centre: top left, top right, bottom left, bottom right."""
    w, h = img.size
    rgb = img.convert("RGB")
    out = []
    for x, y in ((w // 4, h // 4), (3 * w // 4, h // 4), (w // 4, 3 * h // 4), (3 * w // 4, 3 * h // 4)):
        px = rgb.getpixel((x, y))
        out.append(min(_COLOURS, key=lambda n: sum((a - b) ** 2 for a, b in zip(px, _COLOURS[n]))))
    return tuple(out)


def _video(path: Path, fmt: str | None, **kw) -> None:
    media_corpus._video(path, "libx264", fmt, _SIZE, 6, options={"preset": "ultrafast"},
                        frame_picture=lambda _i: _quarters(), **kw)


# (a, b, c, d) of a track header matrix; what players show (the stored picture under
# Pillow's transpose); the catalog's rotation (counter-clockwise, after a left-right flip).
_MIRRORED = {
    "hflip": ((-1, 0, 0, 1), Image.Transpose.FLIP_LEFT_RIGHT, 0),
    "transpose": ((0, 1, 1, 0), Image.Transpose.TRANSPOSE, 90),
    "vflip": ((1, 0, 0, -1), Image.Transpose.FLIP_TOP_BOTTOM, 180),
    "transverse": ((0, -1, -1, 0), Image.Transpose.TRANSVERSE, 270),
}


def _with_matrix(src: Path, dst: Path, matrix: tuple[int, int, int, int]) -> None:
    """`src` with its first track header's matrix replaced (16.16 fixed point)."""
    data = bytearray(src.read_bytes())
    tkhd = data.index(b"tkhd")
    assert data[tkhd + 4] == 0  # version 0: the matrix is 40 bytes into the payload
    a, b, c, d = (v * 65536 for v in matrix)
    struct.pack_into(">9i", data, tkhd + 4 + 40, a, b, 0, c, d, 0, 0, 0, 0x40000000)
    dst.write_bytes(bytes(data))


def _mkv_with_tags(path: Path, stream_tags: dict[str, str], pts_ms: list[int], rate: int = 10,
                   file_tags: dict[str, str] | None = None, muxer: bytes | None = None,
                   turn: int | None = None) -> None:
    """A Matroska video with frames at `pts_ms` and these tags on its track, as mkvmerge
    and old FFmpeg builds write them; `muxer`: its muxing and writing apps say so, as
    mkvmerge's (libav writes its own name there, `Lavf...`); `turn`: a display matrix
    turning it so far counter-clockwise (libav writes it as the track's projection)."""
    import av

    _write_mkv(path, stream_tags, pts_ms, rate, file_tags, turn)
    if muxer is not None:
        data = path.read_bytes()
        head = data[:4096]
        for lavf in set(re.findall(rb"Lavf[0-9.]+", head)):
            head = head.replace(lavf, muxer[:len(lavf)].ljust(len(lavf), b" "))
        path.write_bytes(head + data[4096:])
        with av.open(str(path)) as c:
            assert not c.metadata.get("ENCODER", "").startswith("Lavf"), c.metadata


def _write_mkv(path: Path, stream_tags: dict[str, str], pts_ms: list[int], rate: int,
               file_tags: dict[str, str] | None, turn: int | None = None) -> None:
    import av

    with av.open(str(path), "w", format="matroska") as out:
        out.metadata.update(file_tags or {})
        st = out.add_stream("libx264", rate=rate)
        st.width, st.height, st.pix_fmt = _SIZE[0], _SIZE[1], "yuv420p"
        st.options = {"preset": "ultrafast"}
        st.codec_context.time_base = st.time_base = Fraction(1, 1000)
        st.metadata.update(stream_tags)
        if turn is not None:
            st.set_display_rotation(turn)
        for t in pts_ms:
            frame = av.VideoFrame.from_image(_quarters()).reformat(format="yuv420p")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            for p in st.encode(frame):
                out.mux(p)
        for p in st.encode():
            out.mux(p)


# 10 frames a second for a second, then 50 a second for a second: 60 frames in 2 s.
_VFR = [i * 100 for i in range(10)] + [1000 + i * 20 for i in range(50)]


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(library, catalog): every file below, scanned once with thumbnails."""
    root = tmp_path_factory.mktemp("orientation")
    lib = root / "lib"
    lib.mkdir()
    _video(root / "plain.mp4", None)
    for name, (matrix, _, _) in _MIRRORED.items():
        _with_matrix(root / "plain.mp4", lib / f"{name}.mp4", matrix)
    # Only FFmpeg's legacy tag says how to turn it (no display matrix): clockwise degrees.
    _mkv_with_tags(lib / "rotate-tag.mkv", {"rotate": "90"}, [i * 100 for i in range(6)])
    # A whole turn more: FFmpeg reads it as 90 too.
    _mkv_with_tags(lib / "rotate-450.mkv", {"rotate": "450"}, [i * 100 for i in range(7)])
    # A stale tag saying 0 beside a display matrix that turns the frames.
    _mkv_with_tags(lib / "stale-tag.mkv", {"rotate": "0"}, [i * 100 for i in range(8)], turn=90)
    # mkvmerge's statistics; ones copied from a longer source (a cut with -c copy); and
    # ones FFmpeg copied into a re-encode (another frame count, the same length).
    stats = {"_STATISTICS_WRITING_APP-eng": "mkvmerge v80.0 ('Roundabout') 64-bit"}
    mkv = b"libebml v1.4.4 + libmatroska v1.7.1"
    _mkv_with_tags(lib / "vfr.mkv", {"NUMBER_OF_FRAMES-eng": "60", "DURATION-eng": "00:00:02.000000000", **stats},
                   _VFR, muxer=mkv)
    _mkv_with_tags(lib / "stale.mkv", {"NUMBER_OF_FRAMES-eng": "600", "DURATION-eng": "00:00:20.000000000", **stats},
                   _VFR, muxer=mkv)
    _mkv_with_tags(lib / "unsigned.mkv", {"NUMBER_OF_FRAMES-eng": "60", "DURATION-eng": "00:00:02.000000000"},
                   _VFR, muxer=mkv)
    _mkv_with_tags(lib / "reencoded.mkv", {"NUMBER_OF_FRAMES-eng": "120", "DURATION-eng": "00:00:02.000000000",
                                           **stats}, _VFR)
    _mkv_with_tags(lib / "vfr-bare.mkv", {}, _VFR)
    _mkv_with_tags(lib / "dated.mkv", {}, [0, 100], file_tags={"DATE": "2019-05-04T10:00:00+02:00"})
    _mkv_with_tags(lib / "dated-z.mkv", {}, [0, 200], file_tags={"DATE": "2019-05-04T10:00:00Z"})
    _mkv_with_tags(lib / "dated-local.mkv", {}, [0, 300], file_tags={"DATE": "2019-05-04 10:00:00"})
    catalog = root / "c.duckdb"
    res = run_cli("scan", lib, "--no-fingerprints", catalog=catalog)
    assert res.rc == 0 and "Traceback" not in res.err, res.err
    return lib, catalog


def _media(catalog: Path, path: Path) -> dict:
    found = rows(catalog, "SELECT m.*, (SELECT list(s.rotation) FROM streams s WHERE s.blake3 = m.blake3 "
                 "AND s.type = 'video') AS stream_rotations, (SELECT list(s.fps) FROM streams s "
                 "WHERE s.blake3 = m.blake3 AND s.type = 'video') AS stream_fps "
                 "FROM files f JOIN media m USING (blake3) WHERE f.path_bytes = ?", [os.fsencode(path)])
    assert len(found) == 1, (path, found)
    return found[0]


def _thumb(catalog: Path, m: dict) -> Image.Image:
    with Image.open(catalog.parent / "thumbs" / m["thumb"]) as im:
        return im.convert("RGB")


@pytest.mark.parametrize("name", list(_MIRRORED))
def test_a_mirrored_track_matrix_makes_the_thumbnail_players_show(scanned, name: str) -> None:
    """A left-right flip, (-1, 0, 0, 1), was read as a turn of 180 degrees (libav's angle
    alone): its thumbnail came out upside down, and a transpose's turned 90 degrees the
    wrong way, unmirrored. The thumbnail is now the picture as ffmpeg and players show it;
    the rotation is the turn after a left-right flip, as EXIF's mirrored orientations."""
    lib, catalog = scanned
    _, shown, rotation = _MIRRORED[name]
    m = _media(catalog, lib / f"{name}.mp4")
    assert (m["status"], m["rotation"], m["stream_rotations"]) == ("ok", rotation, [rotation])
    thumb = _thumb(catalog, m)
    expected = _quarters().transpose(shown)
    assert (thumb.width > thumb.height) == (expected.width > expected.height), (thumb.size, expected.size)
    assert _corners(thumb) == _corners(expected)


def test_a_rotate_tag_counts_clockwise_in_any_case(scanned) -> None:
    """FFmpeg's legacy `rotate` tag (Matroska's `ROTATE`, as libav reads it back) was
    missed in upper case, and taken as counter-clockwise where found: an iPhone's
    portrait clip, `rotate` 90, has a display matrix of -90, which the column stores as
    270. The thumbnail turns as the column says."""
    lib, catalog = scanned
    for name in ("rotate-tag.mkv", "rotate-450.mkv"):
        m = _media(catalog, lib / name)
        assert (m["rotation"], m["stream_rotations"]) == (270, [270]), name
        thumb = _thumb(catalog, m)
        assert thumb.height > thumb.width
        assert _corners(thumb) == _corners(_quarters().transpose(Image.Transpose.ROTATE_270))


def test_the_rotation_is_the_turn_players_show_over_a_stale_rotate_tag(scanned) -> None:
    """A Matroska file whose `rotate` tag says 0 and whose display matrix turns its
    frames: players, the thumbnail and the fingerprint turn it, and the column said 0
    (the tag came first)."""
    lib, catalog = scanned
    m = _media(catalog, lib / "stale-tag.mkv")
    assert (m["rotation"], m["stream_rotations"]) == (90, [90])
    thumb = _thumb(catalog, m)
    assert thumb.height > thumb.width
    assert _corners(thumb) == _corners(_quarters().transpose(Image.Transpose.ROTATE_90))


def test_a_matroska_frame_rate_is_its_average_by_its_statistics_tags(scanned) -> None:
    """A clip of 10 frames a second, then 50, was stored at 10 (libav's rate for Matroska
    is its opening one); mkvmerge's NUMBER_OF_FRAMES over DURATION gives the average.
    Statistics that belie the file's length (copied from a longer source), that no app
    signs, or in a file libav muxed (copied by FFmpeg into a re-encode) are not used."""
    lib, catalog = scanned
    m = _media(catalog, lib / "vfr.mkv")
    assert (m["fps"], m["stream_fps"]) == (30.0, [30.0])
    for name in ("stale.mkv", "vfr-bare.mkv", "unsigned.mkv", "reencoded.mkv"):
        m = _media(catalog, lib / name)
        assert (m["fps"], m["stream_fps"]) == (10.0, [10.0]), name


def test_a_matroska_date_with_an_offset_is_utc_created_and_local_taken(scanned) -> None:
    """`DATE` 2019-05-04T10:00:00+02:00 kept 10:00 with its offset dropped in both
    columns. `created_at` is UTC (08:00); `taken_at` the wall-clock time (10:00), which
    `library` dates the file by. A time without an offset is kept as written."""
    lib, catalog = scanned
    got = {r["name"]: (str(r["created_at"]), str(r["taken_at"]), str(r["library_taken"])) for r in rows(
        catalog, "SELECT f.name, m.created_at, m.taken_at, l.taken_at AS library_taken FROM files f "
                 "JOIN media m USING (blake3) JOIN library l USING (media_id) WHERE f.name LIKE 'dated%'")}
    assert got == {
        "dated.mkv": ("2019-05-04 08:00:00", "2019-05-04 10:00:00", "2019-05-04 10:00:00"),
        "dated-z.mkv": ("2019-05-04 10:00:00", "2019-05-04 10:00:00", "2019-05-04 10:00:00"),
        "dated-local.mkv": ("2019-05-04 10:00:00", "2019-05-04 10:00:00", "2019-05-04 10:00:00"),
    }


def test_an_m4a_track_or_disc_number_of_65535_is_none(tmp_path: Path) -> None:
    """MP4's `trkn` and `disk` atoms hold 16-bit numbers; some taggers fill the ones they
    do not know with all ones, 65535, which was stored as track 65535 of 65535."""
    from mutagen.mp4 import MP4

    lib = tmp_path / "lib"
    lib.mkdir()
    for name, trkn, disk in (("placeholder.m4a", (65535, 65535), (65535, 65535)), ("part.m4a", (3, 65535), (1, 0))):
        media_corpus._audio(lib / name, "aac", "mp4", 0.4)
        f = MP4(str(lib / name))
        f["trkn"], f["disk"] = [trkn], [disk]
        f.save()
    catalog = tmp_path / "c.duckdb"
    assert run_cli("scan", lib, "--no-fingerprints", "--no-thumbs", catalog=catalog).rc == 0
    got = {r["name"]: (r["track"], r["track_total"], r["disc"], r["disc_total"]) for r in rows(
        catalog, "SELECT f.name, t.* FROM files f JOIN tags_audio t USING (blake3)")}
    assert got == {"placeholder.m4a": (None, None, None, None), "part.m4a": (3, None, 1, None)}
