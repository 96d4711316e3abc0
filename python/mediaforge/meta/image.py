"""Still images with Pillow: size, mode, format, frame count and EXIF, from one open.

Pillow reads only the header on `Image.open`; pixels are decoded later, and only when a
thumbnail is wanted (see `thumbs.py`), so the same open image feeds both.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import struct
from datetime import datetime
from typing import Any

from PIL import Image, ImageFile

from .exif import ORIENTATION, Tags, guard_pillow, orientation, parse, tags_of
from .sidecar import utc_offset

guard_pillow()  # before any file is opened here

# Pillow refuses images over twice this many pixels (a decompression bomb) and warns
# above it; the warning is an error under our test settings, so the guard is explicit.
MAX_PIXELS = 120_000_000
# Pillow keeps each row of a picture apart, at some 8 bytes more each (1 x 60,000,000
# pixels, 117 KB as a PNG, took 530 MB grey and 1.2 GB in colour): no picture anyone
# takes or scans has a million rows.
MAX_ROWS = 1 << 20
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
# A truncated JPEG still yields its header fields; decoding it then fails loudly.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class TooLarge(Exception):
    """The image claims more pixels than MAX_PIXELS: never decoded."""


PLUGINS: set[str] = set()


def register_plugins() -> set[str]:
    """Teach Pillow HEIC/HEIF through pillow-heif when it is installed; returns the
    optional formats now readable."""
    try:
        from pillow_heif import register_heif_opener

        register_heif_opener()
        PLUGINS.add("heif")
    except Exception:  # noqa: BLE001 - optional; a broken install means "unsupported"
        pass
    try:
        from PIL import features

        if features.check("avif"):
            PLUGINS.add("avif")
    except Exception:  # noqa: BLE001
        pass
    return PLUGINS


# Formats that need an optional plugin: extension -> (plugin, what to tell the user).
OPTIONAL_FORMATS = {
    ".heic": ("heif", "HEIC/HEIF needs pillow-heif (pip install pillow-heif)"),
    ".heif": ("heif", "HEIC/HEIF needs pillow-heif (pip install pillow-heif)"),
    ".hif": ("heif", "HEIC/HEIF needs pillow-heif (pip install pillow-heif)"),
    ".avif": ("avif", "AVIF needs a Pillow built with libavif 1.0 or newer; this one (pillow-simd) is not"),
}


def unsupported_reason(name: bytes) -> str | None:
    """Why an image with this name cannot be read here, when it is a missing plugin."""
    dot = name.rfind(b".")
    ext = name[dot:].decode("ascii", "replace").lower() if dot >= 0 else ""
    need = OPTIONAL_FORMATS.get(ext)
    return need[1] if need and need[0] not in PLUGINS else None


def open_image(path: str | bytes, large: bool = False) -> Image.Image:
    """Open an image (header only). Raises TooLarge before any pixel is decoded, unless
    `large`: then the caller asks `too_large` and decodes only what it allows."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # the guard is ours, below: Pillow's refuses the header too
    try:
        im = Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    if im.format == "JPEG" and isinstance(path, (str, bytes)) and jpeg_frame(path) in _ARITHMETIC_SOF:
        # libjpeg's arithmetic decoder cannot stop where its input runs out and go on when
        # more comes, as Pillow feeds it (64 KiB at a time): "broken data stream". Such a
        # file (rare: `jpegtran -arithmetic`, some scanners) is handed over in one read, up
        # to 256 MiB (past that, a forged one: it fails as before).
        im.decodermaxblock = max(im.decodermaxblock, min(os.path.getsize(path) + 1, 256 << 20))
    if im.format == "TIFF":
        # Not memory-mapped: Pillow turns a TIFF upright as it loads it (EXIF orientation),
        # and an uncompressed one mapped from its file comes out scrambled, 5 to 8 unturned.
        im.filename = ""
    problem = None if large else too_large(im)
    if problem:
        im.close()
        raise TooLarge(problem)
    return im


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _jpeg_blocks(im: Image.Image) -> int:
    """The 8x8 blocks of a JPEG's components, as its header gives them (their sampling
    factors: the chroma of a 4:2:0 picture has a quarter of the luma's)."""
    w, h = im.size
    layers = getattr(im, "layer", None) or [("", 1, 1, 0)] * len(im.getbands())
    hmax, vmax = max(x[1] for x in layers) or 1, max(x[2] for x in layers) or 1
    return sum(_ceil(_ceil(w * hs, hmax), 8) * _ceil(_ceil(h * vs, vmax), 8) for _id, hs, vs, _q in layers)


def jpeg_cut_short(im: Image.Image, length: int) -> str | None:
    """Why a baseline JPEG of `length` bytes cannot hold the picture its header claims:
    each 8x8 block takes at least 2 bits (the shortest Huffman codes for its DC and its
    end of block), so fewer bytes than a quarter of its blocks is a file cut short or a
    forged header. libjpeg decodes such a file without an error, the rest grey; Pillow
    says nothing. None when it may be whole (a progressive JPEG codes runs of empty blocks
    in a few bits, and an arithmetic-coded one a run of like blocks in a fraction of a bit
    each: not judged)."""
    if im.format != "JPEG" or im.info.get("progressive") or im.info.get("progression"):
        return None
    blocks = _jpeg_blocks(im)
    if length * 4 >= blocks or (im.filename and jpeg_frame(im.filename) in _ARITHMETIC_SOF):
        return None
    w, h = im.size
    return f"its {length:,} bytes are too few for {w}x{h} pixels: cut short, or a forged header"


# Start-of-frame markers of the lossless JPEG processes (SOF3, SOF7, SOF11, SOF15), of the
# arithmetic-coded ones (SOF9-SOF11, SOF13-SOF15), and every start-of-frame marker
# (0xC0-0xCF but DHT, JPG and DAC).
_LOSSLESS_SOF = {0xC3, 0xC7, 0xCB, 0xCF}
_ARITHMETIC_SOF = {0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def jpeg_frame(path: str | bytes) -> int | None:
    """A JPEG file's start-of-frame marker (0xC0 baseline ... 0xCF), read from its markers
    up to the frame header: a few small reads, past segments it skips. None where none
    is found."""
    with open(path, "rb") as f:
        f.seek(2)
        for _ in range(1000):  # far more segments than precede any frame header
            head = f.read(2)
            if len(head) < 2 or head[0] != 0xFF:
                return None
            marker = head[1]
            if marker == 0xFF:  # a fill byte: the marker follows
                f.seek(-1, os.SEEK_CUR)
            elif marker in _SOF:
                return marker
            elif marker != 0x01 and not 0xD0 <= marker <= 0xD8:  # those have no length
                size = f.read(2)
                if len(size) < 2:
                    return None
                f.seek(struct.unpack(">H", size)[0] - 2, os.SEEK_CUR)
    return None


def jpeg_lossless(path: str | bytes) -> bool:
    """Whether a JPEG file's frame is coded losslessly (as some scanners, medical and
    archival tools write): libjpeg, as Pillow builds it, decodes none of those."""
    return jpeg_frame(path) in _LOSSLESS_SOF


def too_large(im: Image.Image, size: int | None = None) -> str | None:
    """Why the picture's pixels must not be decoded: more than MAX_PIXELS of them (a
    decompression bomb, or a giant panorama), None when not. With `size` (the long side
    of the thumbnail or fingerprint to make from it), a baseline JPEG is judged by the
    pixels of its reduced-scale decode (`draft`, which is all `reduce_image` and
    `reduce_grey` decode): a 150-megapixel panorama is read as any photo. Not a
    progressive JPEG: libjpeg holds all its coefficients whatever the scale. Judged by the
    size as stored: rows decode before any turn the EXIF orientation names."""
    w, h = stored_size(im)
    progressive = im.format == "JPEG" and bool(im.info.get("progressive") or im.info.get("progression"))
    if progressive and 2 * 64 * _jpeg_blocks(im) > 3 * MAX_PIXELS:
        # libjpeg holds every coefficient (2 bytes) of a progressive JPEG while it decodes,
        # whatever the scale: a CMYK one of 120 megapixels takes about 1 GB, not 360 MB.
        n = len(getattr(im, "layer", None) or im.getbands())
        return (f"{w}x{h} pixels in {n} component{'s' if n != 1 else ''} need more memory to decode progressively "
                f"than a {MAX_PIXELS:,}-pixel picture (decompression bomb)")
    if h > MAX_ROWS:
        return f"{w}x{h} pixels is over the {MAX_ROWS:,}-row guard (a forged picture?)"
    if w * h <= MAX_PIXELS:
        return None
    if size and im.format == "JPEG" and not progressive:
        # The scale Pillow's `draft` picks for (size, size): the largest of 1/8, 1/4,
        # 1/2 that leaves both sides at least `size`.
        fits = min(w // size, h // size)
        scale = next(a for a in (8, 4, 2, 1) if fits >= a or a == 1)
        if _ceil(w, scale) * _ceil(h, scale) <= MAX_PIXELS:
            return None
    return f"{w}x{h} pixels is over the {MAX_PIXELS:,}-pixel guard (decompression bomb)"


def apng_frames(path: str | bytes, delays: list[float] | None = None) -> int | None:
    """The frames an animated PNG holds: one per frame control chunk (`fcTL`), plus its
    default image when that is no frame of the animation (its `IDAT` before any `fcTL`).
    Pillow takes the count its `acTL` chunk claims. None when the chunks cannot be read.
    `delays`, where given, gets each frame's delay in seconds."""
    import struct

    controls, default_apart = 0, False
    try:
        with open(path, "rb") as f:
            if f.read(8) != b"\x89PNG\r\n\x1a\n":
                return None
            while True:
                head = f.read(8)
                if len(head) < 8:
                    break
                length, kind = struct.unpack(">I4s", head)
                if kind == b"fcTL":
                    controls += 1
                    if delays is not None and length >= 26:
                        # sequence, size, offset (20 bytes), then the delay's numerator and
                        # denominator (0 is hundredths, as the specification says)
                        num, den = struct.unpack(">HH", f.read(24)[20:24].rjust(4, b"\0"))
                        delays.append(num / (den or 100))
                        f.seek(length - 24 + 4, os.SEEK_CUR)
                        continue
                elif kind == b"IDAT" and controls == 0:
                    default_apart = True
                elif kind == b"IEND":
                    break
                f.seek(length + 4, os.SEEK_CUR)  # the data and its CRC
    except OSError:
        return None
    return controls + default_apart if controls else None


def gif_blocks(path: str | bytes) -> tuple[str | None, int, list[float]]:
    """How a GIF's blocks end: None when they run whole up to its trailer (0x3B), "cut"
    when the file ends first (cut short), "broken" at a byte that starts no block; with
    how many of its images are whole before that, and the delay (seconds) of each graphic
    control extension met. Its blocks: the screen descriptor and colour table, then
    extensions and images, each a chain of sub-blocks ended by a zero. Bytes after the
    trailer (padding some tools add) do not matter, nor stray zero bytes between blocks
    (an encoder's extra chain end, which decoders skip). "cut", with what was counted,
    when it cannot be read."""
    import mmap

    images, delays, end = 0, [], "cut"
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            n = len(m)
            if n < 13:
                return end, 0, delays
            i = 13 + (3 << ((m[10] & 7) + 1) if m[10] & 0x80 else 0)  # header, screen, global colours
            while i < n:
                block = m[i]
                if block == 0x3B:
                    return None, images, delays
                if block == 0:
                    i += 1
                    continue
                if block == 0x21:  # extension: label, then sub-blocks
                    if i + 6 <= n and m[i + 1] == 0xF9 and m[i + 2] == 4:
                        delays.append((m[i + 4] | m[i + 5] << 8) / 100)  # (hundredths)
                    i += 2
                elif block == 0x2C:  # image: descriptor, local colours, LZW code size, sub-blocks
                    if i + 10 > n:
                        break
                    flags = m[i + 9]
                    i += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1
                else:
                    end = "broken"  # not a block: the data is broken here
                    break
                while i < n and m[i]:
                    i += m[i] + 1
                if i >= n:
                    break  # its chain cut short
                i += 1  # the zero that ends the chain
                images += block == 0x2C
    except (OSError, ValueError):
        pass
    return end, images, delays


# TIFF field types: the size of one value, by type number (BYTE, ASCII, SHORT, LONG,
# RATIONAL, SBYTE, UNDEFINED, SSHORT, SLONG, SRATIONAL, FLOAT, DOUBLE, IFD, LONG8, SLONG8, IFD8).
_TIFF_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
# Tags whose values are the offsets of the pixel data, with the tag of those pieces' sizes:
# strips, tiles, and a JPEG thumbnail's.
_TIFF_PIECES = {273: 279, 324: 325, 513: 514}
_TIFF_INTS = {3: "H", 4: "L", 13: "L", 16: "Q"}
_TIFF_READ_BUDGET = 64 << 20  # bytes of structure read at most; past that, nothing is said


def tiff_cut_short(path: str | bytes) -> str | None:
    """Why a TIFF's bytes end before what its structure claims, or None: each directory
    (its entries and the values they point to) and each strip or tile of pixel data must
    lie inside the file. Pillow reads a directory cut short as far as it goes, without an
    error, and a picture whose last piece lies before the cut decodes whole: a copy that
    lost its last bytes reads as a whole picture. None too when it is no TIFF."""
    import struct

    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size

            budget = [_TIFF_READ_BUDGET]

            def read(at: int, n: int) -> bytes:
                budget[0] -= n
                if budget[0] < 0:  # a hostile file's directories all pointing at one big table
                    raise ValueError("too much to read")
                f.seek(at)
                return f.read(n)

            head = read(0, 16)
            order = {b"II": "<", b"MM": ">"}.get(head[:2])
            if order is None or len(head) < 8:
                return None
            magic = struct.unpack(order + "H", head[2:4])[0]
            if magic == 42:
                big, where = False, struct.unpack(order + "L", head[4:8])[0]
            elif magic == 43 and len(head) == 16:
                big, where = True, struct.unpack(order + "Q", head[8:16])[0]
            else:
                return None
            count_f, entry, word = ("Q", 20, "Q") if big else ("H", 12, "L")
            seen: set[int] = set()
            ends: list[tuple[int, str]] = []
            while where and where not in seen and len(seen) < 10_000:
                seen.add(where)
                raw = read(where, 8 if big else 2)
                if len(raw) < (8 if big else 2):
                    ends.append((where + len(raw) + 1, "directory"))
                    break
                n = struct.unpack(order + count_f, raw)[0]
                body = read(where + len(raw), n * entry + (8 if big else 4))
                ends.append((where + len(raw) + n * entry + (8 if big else 4), "directory"))
                values: dict[int, tuple[int, int, bytes]] = {}
                for k in range(min(n, len(body) // entry)):
                    tag, typ = struct.unpack(order + "HH", body[k * entry:k * entry + 4])
                    count = struct.unpack(order + word, body[k * entry + 4:k * entry + (12 if big else 8)])[0]
                    inline = body[k * entry + (12 if big else 8):(k + 1) * entry]
                    length = count * _TIFF_SIZES.get(typ, 0)
                    if length > len(inline):
                        at = struct.unpack(order + word, inline)[0]
                        ends.append((at + length, "directory"))
                        values[tag] = (typ, count, b"" if tag not in _TIFF_PIECES and tag not in
                                       _TIFF_PIECES.values() else read(at, max(0, min(length, size - at))))
                    else:
                        values[tag] = (typ, count, inline[:length])
                for offsets, sizes in _TIFF_PIECES.items():
                    if offsets in values and sizes in values:
                        (t1, n1, d1), (t2, n2, d2) = values[offsets], values[sizes]
                        if t1 in _TIFF_INTS and t2 in _TIFF_INTS and n1 == n2 and n1 * _TIFF_SIZES[t1] == len(d1) \
                                and n2 * _TIFF_SIZES[t2] == len(d2):
                            starts = struct.unpack(f"{order}{n1}{_TIFF_INTS[t1]}", d1)
                            lengths = struct.unpack(f"{order}{n2}{_TIFF_INTS[t2]}", d2)
                            ends += [(a + b, "pixel data") for a, b in zip(starts, lengths) if b]
                tail = body[n * entry:n * entry + (8 if big else 4)]
                where = struct.unpack(order + word, tail)[0] if len(tail) == (8 if big else 4) else 0
    except (OSError, ValueError, struct.error):
        return None
    end, what = max(ends, default=(0, ""))
    if end <= size:
        return None
    return f"the TIFF's {what} ends {end - size:,} byte{'s' if end - size > 1 else ''} past the end of the file: cut short?"


def webp_delays(path: str | bytes) -> list[float]:
    """The delay (seconds) of each frame of an animated WebP: its `ANMF` chunks' durations
    (milliseconds, 24 bits). Empty when there are none, or the chunks cannot be read."""
    import struct

    out: list[float] = []
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
                return []
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    break
                kind, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if kind == b"ANMF" and size >= 16:
                    frame = f.read(16)
                    if len(frame) < 16:
                        break
                    out.append(int.from_bytes(frame[12:15], "little") / 1000)
                    f.seek(size - 16 + (size & 1), os.SEEK_CUR)
                else:
                    f.seek(size + (size & 1), os.SEEK_CUR)
    except OSError:
        return []
    return out


def webp_header(path: str | bytes) -> tuple[int, int, bool] | None:
    """A WebP file's size as its header states it, and whether it is animated: the first
    chunk, a lossy frame's (`VP8 `), a lossless one's (`VP8L`) or the extended header's
    canvas (`VP8X`). None for a file that states none."""
    with open(path, "rb") as f:
        head = f.read(30)
    if len(head) < 30 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        return None
    kind, data = head[12:16], head[20:30]
    if kind == b"VP8 " and data[3:6] == b"\x9d\x01\x2a":
        w, h = int.from_bytes(data[6:8], "little") & 0x3FFF, int.from_bytes(data[8:10], "little") & 0x3FFF
        animated = False
    elif kind == b"VP8L" and data[0] == 0x2F:
        bits = int.from_bytes(data[1:5], "little")
        w, h, animated = (bits & 0x3FFF) + 1, (bits >> 14 & 0x3FFF) + 1, False
    elif kind == b"VP8X":
        w, h = int.from_bytes(data[4:7], "little") + 1, int.from_bytes(data[7:10], "little") + 1
        animated = bool(data[0] & 0x02)
    else:
        return None
    return (w, h, animated) if w and h else None


def image_info(im: Image.Image) -> dict[str, Any]:
    """The `media` columns an image fills. A page count that cannot be read (a TIFF cut
    short, or its next page's pointer past the end) counts the first page: the picture
    is still read, and the file found cut short by its ends (a GIF's whole images are
    counted by `gif_blocks`)."""
    try:
        frames = getattr(im, "n_frames", 1) or 1
    except (TypeError, ValueError, OSError, EOFError, struct.error, SyntaxError, IndexError):
        # Pillow went through the pages to count them and stopped on a later one (its
        # directory refused by the guard, `exif.guard_pillow`, among others): back to
        # the first, whose size the guard checked (a later one may be forged far larger).
        frames = 1
        im.seek(0)
    width, height = stored_size(im)
    return {
        "format": (im.format or "").lower() or None,
        "width": width,
        "height": height,
        "mode": im.mode,
        "frames": int(frames),
        "bit_depth": _stored_bits(im) or _bit_depth(im.mode),
    }


def stored_size(im: Image.Image) -> tuple[int, int]:
    """`im`'s width and height as its pixels are stored, and decoded, before any turn (ask
    before it loads): Pillow's TIFF reader and pillow-heif report the upright size of a
    picture their orientation turns sideways."""
    from .thumbs import turned_on_load

    width, height = im.size
    if turned_on_load(im) and _turns_sideways(im) or _heif_quarter_turned(im):
        return height, width
    return width, height


def _heif_orientation(im: Image.Image) -> int | None:
    """The EXIF orientation of a HEIF picture as stored. pillow-heif turns the picture
    upright as libheif decodes it (its `irot` and `imir`, which match the EXIF orientation)
    and sets that orientation to 1 in the EXIF it hands over; it keeps the stored value."""
    o = im.info.get("original_orientation") if isinstance(getattr(im, "info", None), dict) else None
    return o if isinstance(o, int) and 1 <= o <= 8 else None


def _heif_quarter_turned(im: Image.Image) -> bool:
    """Whether libheif turned a HEIF picture a quarter turn as it decoded it: its `irot`
    property says 90 or 270 degrees. (pillow-heif's own writer can leave an EXIF
    orientation of 6 with no `irot`: then nothing was turned.)"""
    if _heif_orientation(im) is None:
        return False
    name = getattr(im, "filename", None)
    try:
        with open(name, "rb") as f:  # type: ignore[arg-type]
            head = f.read(1 << 18)  # the `meta` box, with its properties, comes first
    except (OSError, TypeError, ValueError):
        return _heif_orientation(im) in (5, 6, 7, 8)  # as the writer should have made it
    at = head.find(b"irot")
    return at >= 4 and at + 4 < len(head) and head[at + 4] & 3 in (1, 3)


def _turns_sideways(im: Image.Image) -> bool:
    """Whether `im`'s EXIF orientation swaps width and height (5 to 8)."""
    return orientation(im) in (5, 6, 7, 8)


def _stored_bits(im: Image.Image) -> int | None:
    """Bits per sample as the file stores them, where Pillow's mode says otherwise: 16-bit
    RGB and RGBA PNGs and TIFFs load as 8-bit RGB, 2- and 4-bit PNGs as 8-bit L or P.
    None when the file does not say (then the mode tells)."""
    try:
        if im.format == "TIFF":
            bits = getattr(im, "tag_v2", {}).get(258)  # BitsPerSample: one per sample
            bits = max(bits) if isinstance(bits, tuple) and bits else bits
            return int(bits) if isinstance(bits, int) and 0 < bits <= 64 else None
        if im.format == "PNG" and im.tile:
            raw = im.tile[0][3]  # the raw mode of the IHDR's depth: `RGB;16B`, `L;4`, `P;2`
            m = re.search(r";(\d+)", raw if isinstance(raw, str) else "")
            return int(m.group(1)) if m else None
    except (AttributeError, IndexError, TypeError, ValueError):
        return None
    return None


def _bit_depth(mode: str) -> int | None:
    if mode in ("1",):
        return 1
    if mode.startswith("I;16") or mode == "I":
        return 16 if mode.startswith("I;16") else 32
    if mode == "F":
        return 32
    return 8 if mode in ("L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "La", "RGBa") else None


# A 32-bit word of all ones: what a camera writes for a value it does not have (a GPS
# without a fix, a lens that reports nothing), never a measurement.
_ALL_ONES = 0xFFFFFFFF


def _num(v: Any) -> float | None:
    """An EXIF rational or number as a finite float; None for a rational with an all-ones
    word (4294967295/4294967295 is no 1.0). Of several values (a tag written with a count
    of 2 or more, rationals or integers) the first, as exiftool reads it."""
    if isinstance(v, tuple):
        if not v:
            return None
        v = v[0]
    if not isinstance(v, int) and _ALL_ONES in (getattr(v, "numerator", None), getattr(v, "denominator", None)):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return f if math.isfinite(f) else None


def _text(v: Any, limit: int = 256) -> str | None:
    """An EXIF text value. Pillow reads ASCII-typed values as Latin-1, but cameras, phones
    and exiftool write UTF-8 there ("Café", "写真"): bytes that are UTF-8 are read as such,
    others stay Latin-1."""
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    if not isinstance(v, str):
        return None
    v = v.split("\x00", 1)[0]  # C strings: what follows a NUL is padding or junk
    with contextlib.suppress(UnicodeError):
        v = v.encode("latin-1").decode("utf-8")
    v = v.strip()
    return v[:limit] or None


def exif_datetime(v: Any, subsec: Any = None) -> datetime | None:
    """'YYYY:MM:DD HH:MM:SS' (EXIF's form, also seen with '-' or 'T') as a naive local time;
    `subsec`, the matching SubSecTime tag's digits ("07" is 0.07 s), to the microsecond
    (a burst's frames share the second)."""
    s = _text(v, 64)
    if not s:
        return None
    m = re.match(r"^(\d{4})[:\-](\d{2})[:\-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})", s)
    if not m:
        return None
    try:
        when = datetime(*(int(x) for x in m.groups()))
    except ValueError:
        return None  # 0000:00:00 00:00:00 and other placeholders
    digits = re.match(r"\s*(\d+)\s*$", _text(subsec, 16) or "")
    return when.replace(microsecond=int(digits.group(1)[:6].ljust(6, "0"))) if digits else when


def _gps_coord(value: Any, ref: Any, refs: str) -> float | None:
    """Degrees from EXIF's (degrees, minutes, seconds), (degrees, minutes) or a lone
    number, signed by the reference (S and W, in either case, are negative) whatever form
    the value takes. None for a broken field: minutes or seconds over 60 or below 0
    (exactly 60, as exiftool writes some values, `151/1 11/1 60/1`, carries into the unit
    above), negative degrees, a reference that is not one of `refs` ("NS" or "EW"; none
    at all reads as N or E)."""
    side = (_text(ref) or "").strip().upper()
    if side and side not in tuple(refs):
        return None
    if isinstance(value, tuple) and len(value) >= 2:
        parts = [_num(x) for x in value[:3]]  # a fourth number (some writers') is no part of it
        if any(p is None for p in parts):
            return None
        d, m, sec = (*parts, 0.0) if len(parts) == 2 else parts
        if d < 0 or not 0 <= m <= 60 or not 0 <= sec <= 60:  # type: ignore[operator]
            return None
        deg = d + m / 60 + sec / 3600  # type: ignore[operator]
    else:
        deg = _num(value)  # type: ignore[assignment]
        if deg is None or deg < 0:  # the reference gives the side: a negative number is broken too
            return None
    if side in ("S", "W"):
        deg = -abs(deg) or 0.0  # (0 south is 0, not -0.0)
    return round(deg, 7)


class BrokenPicture(Exception):
    """The picture's data does not decode (found while looking for its EXIF)."""


def read_exif(im: Image.Image) -> dict[str, Any] | None:
    """The `exif` row of an image, or None when it has no EXIF. Raises BrokenPicture when
    the search decoded the picture and that failed: Pillow decodes a PNG to find an eXIf
    chunk after its pixels, and a later load hands back what it got, half black."""
    had_tiles = bool(getattr(im, "tile", None))
    try:
        tags = tags_of(im)
    except Exception as e:  # noqa: BLE001 - a broken EXIF block is not a broken image
        if had_tiles and not getattr(im, "tile", None):
            raise BrokenPicture(f"{type(e).__name__}: {e}") from e
        return None
    # A HEIF's orientation as stored, valid or not (a broken one is no orientation, never
    # the 1 pillow-heif puts in its place); else, where the EXIF gives none, the one the
    # XMP packet gives (`tiff:Orientation`), as Pillow and the thumbnail read it.
    stored = im.info.get("original_orientation") if isinstance(getattr(im, "info", None), dict) else None
    if not isinstance(stored, int) and (tags is None or ORIENTATION not in tags.main):
        stored = orientation(im, tags or Tags({}, {}, {}))
    return exif_row(tags or Tags({}, {}, {}), stored if isinstance(stored, int) else None)


def embedded_xmp_date(im: Image.Image) -> datetime | None:
    """The capture time a picture's own XMP packet gives (`exif:DateTimeOriginal`,
    `photoshop:DateCreated`, `xmp:CreateDate`, read as a sidecar's are), for a picture
    whose EXIF gives none; None without a packet, or one that is not well-formed."""
    from .sidecar import SidecarError, parse_xmp

    xmp = im.info.get("XML:com.adobe.xmp") or im.info.get("xmp") if isinstance(getattr(im, "info", None), dict) \
        else None
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8", "replace")
    if not isinstance(xmp, bytes) or b"Date" not in xmp:
        return None
    try:
        return parse_xmp(xmp.strip(b"\0 \t\r\n"))["taken_at"]
    except (SidecarError, ValueError):
        return None


def exif_of_heif(path: str | bytes) -> dict[str, Any] | None:
    """The `exif` row of a HEIF-family still (AVIF) that Pillow cannot decode here: libheif
    reads the container's EXIF item without decoding the picture. None when there is none."""
    try:
        from pillow_heif import open_heif

        with open(path, "rb") as f:  # a file, not the path: pillow-heif takes bytes for data
            raw = open_heif(f).info.get("exif")
        tags = parse(raw) if raw else None
        return exif_row(tags, None) if tags is not None else None
    except Exception:  # noqa: BLE001 - no pillow-heif, no EXIF item, a broken one: no row
        return None


def _iso(sub: dict[int, Any]) -> int | None:
    """ISO speed: ISOSpeedRatings, else (where that holds 65535, a SHORT's all-ones
    placeholder that cameras past ISO 65535 write, or nothing) the LONG that EXIF 2.3
    gives for it: ISOSpeed, else RecommendedExposureIndex."""
    for tag in (0x8827, 0x8833, 0x8832):
        v = sub.get(tag)
        if isinstance(v, tuple):
            v = v[0] if v else None
        if isinstance(v, int) and 0 < v <= 10_000_000 and not (tag == 0x8827 and v == 65535):
            return v
    return None


def exif_row(tags: Tags, orientation_as_stored: int | None = None) -> dict[str, Any] | None:
    """The `exif` row of an EXIF block's tags (None when they say nothing). `orientation_as_stored`:
    the file's orientation where the reader has reset the block's (HEIF)."""
    ex, sub, gps = tags
    # The capture time: DateTimeOriginal, else DateTimeDigitized (`CreateDate`: a scan's
    # or a stripped copy's), else DateTime. Each has its own offset: OffsetTimeOriginal,
    # OffsetTimeDigitized; DateTime's (OffsetTime) stands in only for the time it belongs
    # to, or one equal to it.
    original = exif_datetime(sub.get(0x9003), sub.get(0x9291))  # with SubSecTimeOriginal
    digitized = exif_datetime(sub.get(0x9004), sub.get(0x9292))  # with SubSecTimeDigitized
    modified = exif_datetime(ex.get(0x0132), sub.get(0x9290))  # with SubSecTime
    taken = original or digitized or modified
    offset = (_text(sub.get(0x9011)) if original is not None
              else _text(sub.get(0x9012)) if digitized is not None else None)
    if offset is None and modified is not None and taken is not None and (
            taken.replace(microsecond=0) == modified.replace(microsecond=0)):
        offset = _text(sub.get(0x9010))
    lat = _gps_coord(gps.get(2), gps.get(1), "NS")
    lon = _gps_coord(gps.get(4), gps.get(3), "EW")
    if lat is not None and not -90 <= lat <= 90 or lon is not None and not -180 <= lon <= 180:
        lat = lon = None
    # Below sea level: a reference of 1 (a BYTE, as written; some write it as the text "1"),
    # or a negative SRATIONAL (the Dead Sea's shore is -430 m, a mine's floor -4,000 m).
    alt = _num(gps.get(6))
    if alt is not None and alt > 0 and gps.get(5) in (1, b"\x01", "1"):
        alt = -alt
    alt = _plausible(alt, -12_000, 1e6)
    orientation = orientation_as_stored if orientation_as_stored is not None else ex.get(0x0112)
    row = {
        "make": _text(ex.get(0x010F)),
        "model": _text(ex.get(0x0110)),
        "lens": _text(sub.get(0xA434)),
        "software": _text(ex.get(0x0131)),
        "taken_at": taken,
        "taken_offset": utc_offset(offset),
        "exposure_time": _plausible(_num(sub.get(0x829A)), 1e-7, 1e8),  # solargraphs run for months
        "f_number": _plausible(_num(sub.get(0x829D)), 0.5, 1_024),
        "iso": _iso(sub),
        "focal_length": _plausible(_num(sub.get(0x920A)), 0.1, 100_000),
        "focal_length_35mm": int(sub[0xA405]) if isinstance(sub.get(0xA405), int) and 0 < sub[0xA405] <= 100_000
        and sub[0xA405] != 65535 else None,  # the SHORT's all-ones placeholder, as for ISO
        "orientation": int(orientation) if isinstance(orientation, int) and 1 <= orientation <= 8 else None,
        "gps_lat": lat if lon is not None else None,
        "gps_lon": lon if lat is not None else None,
        "gps_alt": alt if alt != 0 else 0.0,  # (0 below sea level is 0, not -0.0)
    }
    # A TIFF's directory holds only its layout (size, compression, strips) when nothing
    # wrote EXIF into it: no row, as for a PNG without EXIF.
    return row if any(v is not None for v in row.values()) else None


def _plausible(v: float | None, low: float, high: float) -> float | None:
    """`v` when a camera could have written it (`low` to `high`), else None: an all-ones
    word (4294967295), a negative or zero aperture or exposure is a broken or placeholder
    field, not a fact to sort by."""
    return v if v is not None and low <= v <= high else None
