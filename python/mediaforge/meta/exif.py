"""EXIF read tag by tag, within bounds: the few tags the catalog keeps, from the main, Exif
and GPS directories of a block (a JPEG's APP1, a PNG's eXIf, a WebP's or HEIF's EXIF item,
a TIFF or TIFF-based RAW file itself).

Pillow's own reader copies every entry's value before anything is asked of it, so a block
of 16,000 entries that all point at one 1 MiB run of bytes made a 1.2 MB photo take 16 GB;
and it gives up a directory at the first entry whose value lies past the end, so one
broken tag of an edited photo's MakerNote lost its date, lens and orientation. Here each
wanted entry is read on its own (what a broken one says is dropped, the rest kept) and no
value over `MAX_VALUE` bytes is read at all. `guard_pillow` makes Pillow's reader refuse a
directory whose values claim more bytes than its stream holds, for the reads Pillow makes
itself as it opens a file (a JPEG's resolution, a TIFF's first directory).

Needs only the standard library and Pillow: `thumbs.py` uses it, and the thumbnail bench
loads that module from the source tree without the rest of the package."""

from __future__ import annotations

import contextlib
import os
import re
import struct
from collections.abc import Callable, Iterator
from typing import IO, Any, NamedTuple

from PIL import Image
from PIL.TiffImagePlugin import IFDRational

EXIF_IFD = 0x8769
GPS_IFD = 0x8825
ORIENTATION = 0x0112

# The tags `image.exif_row` reads, by directory.
MAIN_TAGS = frozenset({0x010F, 0x0110, 0x0131, 0x0132, ORIENTATION, EXIF_IFD, GPS_IFD})
SUB_TAGS = frozenset({0x829A, 0x829D, 0x8827, 0x8832, 0x8833, 0x9003, 0x9004, 0x9010, 0x9011, 0x9012, 0x9290,
                      0x9291, 0x9292, 0x920A, 0xA405, 0xA434})
GPS_TAGS = frozenset(range(0, 7))

# Bytes of one field type, by TIFF type number (BigTIFF's 8-byte ones included).
_UNIT = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
_INTS = {1: "B", 3: "H", 4: "L", 6: "b", 8: "h", 9: "l", 13: "L", 16: "Q", 17: "q", 18: "Q"}
MAX_ENTRIES = 4096  # a directory's entries looked at: cameras write a few dozen, RAWs a few hundred
MAX_VALUE = 64 << 10  # bytes of one value read: the catalog keeps 256 characters of a text
MAX_COUNT = 16  # numbers in one numeric value read (GPS has 3 or 4; anything more is not one we keep)


class Tags(NamedTuple):
    """The wanted tags of a block's three directories, as Pillow would give their values:
    ASCII as Latin-1 text, UNDEFINED as bytes, a rational as an IFDRational, one number
    as itself and several as a tuple."""

    main: dict[int, Any]
    sub: dict[int, Any]
    gps: dict[int, Any]


Reader = Callable[[int, int], bytes]  # (offset from the TIFF header, bytes) -> what is there


def _value(typ: int, count: int, raw: bytes, end: str) -> Any:
    if typ == 2:
        return raw.split(b"\x00", 1)[0].decode("latin-1")
    if typ == 7:
        return raw
    if typ in (5, 10):
        pairs = struct.unpack(f"{end}{2 * count}{'L' if typ == 5 else 'l'}", raw)
        values: tuple[Any, ...] = tuple(IFDRational(pairs[k], pairs[k + 1]) for k in range(0, len(pairs), 2))
    elif typ in (11, 12):
        values = struct.unpack(f"{end}{count}{'f' if typ == 11 else 'd'}", raw)
    else:
        values = struct.unpack(f"{end}{count}{_INTS[typ]}", raw)
    return values[0] if len(values) == 1 else values


class _Layout(NamedTuple):
    """How a TIFF structure lays its directories out: byte order, and for BigTIFF the
    8-byte counts, offsets and inline values of its 20-byte entries."""

    end: str
    big: bool

    @property
    def count(self) -> str:  # a directory's entry count, an entry's value count, an offset
        return "Q" if self.big else "H"

    @property
    def entry(self) -> int:
        return 20 if self.big else 12

    @property
    def inline(self) -> int:
        return 8 if self.big else 4


def _layout(head: bytes) -> _Layout | None:
    """The layout a TIFF header (its first 16 bytes) names; None for none."""
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return _Layout("<" if head[:2] == b"II" else ">", False)
    if head[:4] in (b"II+\x00", b"MM\x00+") and len(head) >= 16:
        return _Layout("<" if head[:2] == b"II" else ">", True)
    return None


def _first_directory(head: bytes, layout: _Layout) -> int:
    return struct.unpack(layout.end + ("Q" if layout.big else "L"), head[8:16] if layout.big else head[4:8])[0]


def _entries(read: Reader, at: int, layout: _Layout, most: int) -> Iterator[tuple[int, int, int, bytes]]:
    """(tag, type, count, value field) of the first `most` entries of the directory at `at`."""
    head = read(at, 8 if layout.big else 2)
    if len(head) < (8 if layout.big else 2):
        return
    (n,) = struct.unpack(layout.end + layout.count, head)
    size = layout.entry
    table = read(at + len(head), size * min(n, most))
    shape = layout.end + ("HHQ" if layout.big else "HHL")
    for k in range(0, len(table) - size + 1, size):
        tag, typ, count = struct.unpack(shape, table[k:k + (12 if layout.big else 8)])
        yield tag, typ, count, table[k + size - layout.inline:k + size]


def _directory(read: Reader, at: Any, layout: _Layout, wanted: frozenset[int]) -> dict[int, Any]:
    """The `wanted` tags of the directory at `at` (nothing for an offset that is no number
    or points nowhere). An entry of an unknown type, a value past the end or too big to
    be one we keep is left out; the others are read all the same."""
    if not isinstance(at, int) or at < 8:
        return {}
    out: dict[int, Any] = {}
    for tag, typ, count, field in _entries(read, at, layout, MAX_ENTRIES):
        if tag not in wanted or typ not in _UNIT or tag in out or count == 0:
            continue
        size = count * _UNIT[typ]
        if size > MAX_VALUE or typ not in (2, 7) and count > MAX_COUNT:
            continue
        if size <= layout.inline:
            raw = field[:size]
        else:
            raw = read(struct.unpack(layout.end + ("Q" if layout.big else "L"), field)[0], size)
        if len(raw) != size:
            continue  # its value lies past the end: this entry says nothing, the rest may
        with contextlib.suppress(struct.error, ValueError, ZeroDivisionError):
            out[tag] = _value(typ, count, raw, layout.end)
    return out


def _tags(read: Reader) -> Tags | None:
    head = read(0, 16)
    layout = _layout(head)
    if layout is None:
        return None
    main = _directory(read, _first_directory(head, layout), layout, MAIN_TAGS)
    return Tags(main, _directory(read, main.get(EXIF_IFD), layout, SUB_TAGS),
                _directory(read, main.get(GPS_IFD), layout, GPS_TAGS))


def parse(block: bytes) -> Tags | None:
    """The wanted tags of an EXIF block (with or without its `Exif\\0\\0` prefix); None
    when it is no TIFF structure."""
    while block.startswith(b"Exif\x00\x00"):
        block = block[6:]
    view = memoryview(block)
    return _tags(lambda at, n: bytes(view[at:at + n]))


def _from_file(fp: IO[bytes]) -> Tags | None:
    """The wanted tags of a TIFF-structured file (TIFF, DNG, NEF, ARW, CR2), its position
    left where it was."""
    here = fp.tell()

    def read(at: int, n: int) -> bytes:
        fp.seek(at)
        return fp.read(n)

    try:
        return _tags(read)
    finally:
        fp.seek(here)


def _block(im: Image.Image) -> bytes | None:
    raw = im.info.get("exif")
    if isinstance(raw, bytes):
        return raw
    text = im.info.get("Raw profile type exif")  # ImageMagick's hex dump in a PNG text chunk
    if isinstance(text, str):
        with contextlib.suppress(ValueError):
            return bytes.fromhex("".join(text.split("\n")[3:]))
    return None


def tags_of(im: Image.Image) -> Tags | None:
    """The wanted EXIF tags of an opened image; None when it has none. A PNG's eXIf chunk
    may follow its pixels: they are decoded to reach it (as Pillow does), and a decode
    error there is raised."""
    raw = _block(im)
    if raw is None and im.format == "PNG" and getattr(im, "tile", None):
        im.load()
        raw = _block(im)
    if raw is not None:
        return parse(raw)
    fp = getattr(im, "fp", None)
    if hasattr(im, "tag_v2") and fp is not None:
        try:
            return _from_file(fp)
        except (OSError, ValueError):
            return None
    return None


# The value whole (Pillow takes its first digit: "60" would turn a picture as 6 does).
_XMP_ORIENTATION = re.compile(rb'tiff:Orientation(?:="|>)\s*([0-9]{1,9})\s*(?:"|<)')


def orientation(im: Image.Image, tags: Tags | None = None) -> int | None:
    """The EXIF orientation of an opened image (1 to 8), else the one its XMP packet gives
    (`tiff:Orientation`, where Pillow looks for it); None when neither says (or says a
    value out of that range)."""
    if tags is None:
        with contextlib.suppress(OSError, ValueError, SyntaxError):
            tags = tags_of(im)
    o = tags.main.get(ORIENTATION) if tags is not None else None
    if isinstance(o, int):
        return o if 1 <= o <= 8 else None
    xmp = im.info.get("XML:com.adobe.xmp") or im.info.get("xmp")
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8", "replace")
    m = _XMP_ORIENTATION.search(xmp) if isinstance(xmp, bytes) else None
    return int(m.group(1)) if m and 1 <= int(m.group(1)) <= 8 else None


def claimed_bytes(fp: IO[bytes], at: int, bigtiff: bool, end: str) -> int:
    """Bytes the values of the directory at `at` would have a reader copy: each entry's
    (once per entry that points at them), as far as the stream goes, for a value whose
    claim runs past its end is not copied at all. The stream's position is left where
    it was."""
    here = fp.tell()
    try:
        length = fp.seek(0, os.SEEK_END)

        def read(offset: int, n: int) -> bytes:
            fp.seek(offset)
            return fp.read(n)

        layout = _Layout(end, bigtiff)
        total = 0
        for _tag, typ, count, field in _entries(read, at, layout, 1 << 16):
            size = count * _UNIT.get(typ, 0)
            if size > layout.inline:
                offset = struct.unpack(end + ("Q" if bigtiff else "L"), field)[0]
                total += size if offset + size <= length else 0
        return total
    finally:
        fp.seek(here)


def hostile_tiff(path: str | bytes) -> str | None:
    """Why a TIFF-structured file (TIFF, DNG, NEF ...) is never to be read: its first
    directory's values would have a reader copy more bytes than the file holds (entries
    pointing at the same bytes over and over, which Pillow's guard refuses and libav
    would copy once each: gigabytes from a file of a megabyte). None for any other file."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            layout = _layout(head)
            if layout is None:
                return None
            claimed = claimed_bytes(f, _first_directory(head, layout), layout.big, layout.end)
            length = os.fstat(f.fileno()).st_size
    except (OSError, struct.error):
        return None
    if claimed <= length + (64 << 10):
        return None
    return (f"its first TIFF directory claims {claimed:,} bytes of values in a file of {length:,} bytes "
            "(entries pointing at the same bytes over and over): not read")


def _stream_length(fp: IO[bytes]) -> int:
    here = fp.tell()
    try:
        return fp.seek(0, os.SEEK_END)
    finally:
        fp.seek(here)


def guard_pillow() -> None:
    """Make Pillow's directory reader refuse (SyntaxError, which its JPEG and TIFF readers
    take for an unreadable EXIF block or no TIFF) a directory whose values claim more bytes
    than its whole stream holds: each entry is copied as it is read, so overlapping claims
    multiply a small file into gigabytes. Values that do not overlap never claim more
    than the stream. Installed once per process."""
    from PIL import TiffImagePlugin

    cls = TiffImagePlugin.ImageFileDirectory_v2
    if getattr(cls.load, "_mediaforge_guarded", False):
        return
    unguarded = cls.load

    def load(self: Any, fp: IO[bytes]) -> None:
        with contextlib.suppress(OSError, ValueError, struct.error):
            claimed = claimed_bytes(fp, fp.tell(), self._bigtiff, self._endian)
            length = _stream_length(fp)
            if claimed > length + (64 << 10):
                raise SyntaxError(f"its TIFF directory claims {claimed:,} bytes of values in {length:,} bytes")
        unguarded(self, fp)

    load._mediaforge_guarded = True  # type: ignore[attr-defined]
    cls.load = load  # type: ignore[method-assign]
