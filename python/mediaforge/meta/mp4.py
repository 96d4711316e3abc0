"""The display rotation (and mirroring) of each track of an MP4/MOV file, read from its track headers;
and whether the file is cut short inside one of its top-level boxes.

libav keeps a track's display matrix as side data that PyAV only shows on decoded frames,
so without this a video's rotation would be known only when a frame is decoded for its
thumbnail. Phones write the rotation there (a portrait clip is stored landscape with a
90-degree matrix); reading `moov/trak/tkhd` costs a few seeks and small reads of a box
libav has just read, so the page cache has it.
"""

from __future__ import annotations

import math
import struct
from typing import BinaryIO

# More boxes than this at one level is not a real file: stop reading there.
_MAX_BOXES = 10_000


def _boxes(f: BinaryIO, start: int, end: int):
    """(type, payload offset, payload end) of each box between two offsets."""
    pos, n = start, 0
    while pos + 8 <= end and n < _MAX_BOXES:
        n += 1
        f.seek(pos)
        head = f.read(16)
        if len(head) < 8:
            return
        size, kind = struct.unpack(">I4s", head[:8])
        body = pos + 8
        if size == 1:
            if len(head) < 16:
                return
            size = struct.unpack(">Q", head[8:16])[0]
            body = pos + 16
        elif size == 0:
            size = end - pos
        if size < body - pos or pos + size > end:
            return
        yield kind, body, pos + size
        pos += size


def _matrix(f: BinaryIO, body: int, end: int, offsets: tuple[int, int]) -> tuple[float, float, float, float] | None:
    """(a, b, c, d) of a header box's 3x3 matrix, 16.16 fixed point."""
    f.seek(body)
    version = f.read(1)
    if not version:
        return None
    at = body + offsets[version[0] == 1]
    if at + 36 > end:
        return None
    f.seek(at)
    m = struct.unpack(">9i", f.read(36))
    return m[0] / 65536, m[1] / 65536, m[3] / 65536, m[4] / 65536


def _track_id(f: BinaryIO, body: int) -> int | None:
    f.seek(body)
    head = f.read(24)
    if len(head) < 24:
        return None
    # version 0: flags(3) created(4) modified(4) id ; version 1: 8-byte times
    return struct.unpack(">I", head[12:16] if head[0] == 0 else head[20:24])[0]


# Offsets of the matrix from the start of the box payload, by version 0 / 1.
_TKHD_MATRIX = (40, 52)
_MVHD_MATRIX = (36, 48)


def _degrees(a: float, b: float, c: float, d: float) -> int:
    """libav's rule (av_display_rotation_get): counter-clockwise degrees of the matrix."""
    sx, sy = math.hypot(a, c), math.hypot(b, d)
    if not sx or not sy:
        return 0
    return round(-math.degrees(math.atan2(b / sy, a / sx))) % 360


def matrix_turn(a: float, b: float, c: float, d: float) -> tuple[int, bool]:
    """(counter-clockwise degrees, mirrored) of a display matrix's (a, b, c, d). A matrix
    that mirrors (a negative determinant: ffmpeg and players flip the picture) is read as
    the stored picture flipped left to right, then turned, as EXIF describes orientations
    2, 4, 5 and 7; libav's angle alone turns a mirrored picture upside down (a left-right
    flip, (-1, 0, 0, 1), reads as 180 degrees) or the wrong way round (a transpose)."""
    mirrored = a * d - b * c < 0
    # The matrix maps a row vector (x, y): flipping first is the matrix with its first
    # row negated.
    return (_degrees(-a, -b, c, d) if mirrored else _degrees(a, b, c, d)), mirrored


def track_orientations(path: str | bytes) -> dict[int, tuple[int, bool]]:
    """Track id -> (display rotation in degrees counter-clockwise, mirrored) as
    `matrix_turn` reads them, for every track whose header has a matrix; empty for a
    file that is not ISO BMFF or is cut short."""
    out: dict[int, tuple[int, bool]] = {}
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        for kind, body, end in _boxes(f, 0, size):
            if kind != b"moov":
                continue
            movie = (1.0, 0.0, 0.0, 1.0)
            for sub, sbody, send in _boxes(f, body, end):
                if sub == b"mvhd":
                    movie = _matrix(f, sbody, send, _MVHD_MATRIX) or movie
                elif sub == b"trak":
                    for leaf, lbody, lend in _boxes(f, sbody, send):
                        if leaf != b"tkhd":
                            continue
                        tid, m = _track_id(f, lbody), _matrix(f, lbody, lend, _TKHD_MATRIX)
                        if tid is None or m is None:
                            break
                        # libav applies the track's matrix, then the movie's.
                        a, b, c, d = m
                        ma, mb, mc, md = movie
                        out[tid] = matrix_turn(a * ma + b * mc, a * mb + b * md, c * ma + d * mc, c * mb + d * md)
                        break
            break
    return out


def _time_scale(f: BinaryIO, body: int, end: int) -> int | None:
    """The time scale of an `mvhd` or `mdhd` box: after the version and flags, and the
    creation and modification times (4 bytes each in version 0, 8 in version 1)."""
    f.seek(body)
    version = f.read(1)
    if not version:
        return None
    at = body + (20 if version[0] == 1 else 12)
    if at + 4 > end:
        return None
    f.seek(at)
    return struct.unpack(">I", f.read(4))[0]


def zero_time_scale(path: str | bytes) -> bool:
    """Whether the movie header or a track's media header gives a time scale of 0. libav
    then counts in whole seconds: every length, frame rate and bit rate it gives is wrong
    (a 2 s clip read as 2000 s at 0.002 frames a second)."""
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        for kind, body, end in _boxes(f, 0, size):
            if kind != b"moov":
                continue
            for sub, sbody, send in _boxes(f, body, end):
                if sub == b"mvhd" and _time_scale(f, sbody, send) == 0:
                    return True
                if sub != b"trak":
                    continue
                for leaf, lbody, lend in _boxes(f, sbody, send):
                    if leaf != b"mdia":
                        continue
                    for box, bbody, bend in _boxes(f, lbody, lend):
                        if box == b"mdhd" and _time_scale(f, bbody, bend) == 0:
                            return True
            break
    return False


# Boxes found at the top level of ISO media files: past the last of them, bytes that
# read as another "box" are some program's trailer, not a box cut short.
_TOP_BOXES = frozenset((b"ftyp", b"moov", b"mdat", b"moof", b"mfra", b"free", b"skip", b"wide", b"uuid", b"meta",
                        b"pdin", b"styp", b"sidx", b"ssix", b"emsg", b"prft", b"udta", b"pnot", b"junk"))

# The box an ISO media file (MP4, MOV, 3GP, HEIF) may begin with.
_FIRST_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


def cut_short(path: str | bytes) -> str | None:
    """Why an MP4/MOV file is cut short, or None: a top-level box (the media data, most
    often) whose header says it runs past the end of the file. A file written with its
    index first ("faststart", as most phones and web exports are) keeps opening whole
    when the end of its media data is lost, and libav gives the length the index claims."""
    with open(path, "rb") as f:
        if f.read(8)[4:] not in _FIRST_BOXES:  # not ISO media (Matroska, MPEG-TS, MP3 ...)
            return None
        size = f.seek(0, 2)
        pos, n = 0, 0
        while pos + 8 <= size and n < _MAX_BOXES:
            n += 1
            f.seek(pos)
            head = f.read(16)
            box, kind = struct.unpack(">I4s", head[:8])
            if box == 1 and len(head) == 16:
                box = struct.unpack(">Q", head[8:16])[0]
            elif box == 0:  # runs to the end of the file, whatever its length
                return None
            if box < 8:  # not a box: not ours to judge
                return None
            if kind not in _TOP_BOXES:  # trailing bytes of another program (a phone's own trailer)
                return None
            if pos + box > size:
                name = kind.decode("latin-1") if kind.isascii() and kind.decode("latin-1").isprintable() \
                    else kind.hex()
                return f"its '{name}' box runs to byte {pos + box:,}, past the file's end at {size:,}: cut short?"
            pos += box
    return None
