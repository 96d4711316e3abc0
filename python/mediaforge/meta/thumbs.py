"""Thumbnails: WebP, long side `size` px, stored content-addressed by BLAKE3.

Layout beside the catalog: `thumbs/<size>/<first two hex digits>/<blake3>.webp`, so a
copy or a moved file shares one thumbnail and a folder never holds more than 1/256 of
them. Only Pillow and `exif` (which needs only Pillow) are imported here: the benchmark
loads these two files from the source tree without the rest of the package.
"""

from __future__ import annotations

import functools
import io
import math
import os
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageMode, ImageOps, ImageStat

from .exif import orientation

WEBP_QUALITY = 80
# The grey standard deviation (0-255) under which a picture counts as one flat colour.
FLAT_STDDEV = 2.0
# Pillow's modes with an alpha channel that files open in (a palette's or a PNG's
# transparent colour is in `im.info["transparency"]` instead).
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA"})


def thumb_relpath(blake3: str, size: int) -> str:
    """Where the thumbnail of content `blake3` lives, relative to the thumbnail root."""
    return f"{size}/{blake3[:2]}/{blake3}.webp"


def reduce_image(im: Image.Image, size: int) -> Image.Image:
    """Decode `im` as cheaply as possible and return it upright, long side at most `size`.

    JPEGs are decoded at a reduced DCT scale (1/2 to 1/8) chosen so the result is still
    at least `size` px, which skips most of the decoding work; EXIF orientation is then
    applied to the small image rather than the big one.
    """
    if im.format == "JPEG":
        im.draft("RGB", (size, size))
    orientation = _orientation(im)
    im.load()
    native = max(im.size) <= size  # shown at its own size (a JPEG's draft keeps such a one whole)
    shown = None
    if im.mode.startswith("I;16"):
        im = im.convert("I")  # (once, for both below)
        shown = _deep_as_shown(im)
    im = eight_bit(im)
    if see_through(im) and im.mode != "RGBA":
        # (An RGB picture with a transparent colour too: shrunk first, its edges would
        # blend that colour into others, and the hash differ from the grey decode's.)
        im = im.convert("RGBA")
    elif im.mode in ("CMYK", "LAB") and (cms := _colour_transform(im)) is not None:
        # Print CMYK (a Photoshop file's own profile) and Lab: their inks' colours as
        # the profile says, shrunk first (fewer pixels to convert). Pillow's own CMYK
        # to RGB takes no profile: greens came out neon, shadows crushed.
        _shrink(im, size)
        im = cms(im)
    elif im.mode not in ("RGB", "RGBA"):
        im = im.convert("RGB")
    _shrink(im, size)
    if orientation and orientation != 1:
        im = _apply_orientation(im, orientation)
    if shown is not None:  # the thumbnail's pixels: see `_deep_as_shown`
        shown = shown.convert("RGBA" if im.mode == "RGBA" else "RGB")
        _shrink(shown, size)
        if orientation and orientation != 1:
            shown = _apply_orientation(shown, orientation)
        if im.mode == "RGBA":
            shown.putalpha(im.getchannel("A"))
        im.info[SHOWN] = shown
    if native:
        im.info[NATIVE] = True
    return im


# Where `reduce_image` leaves a deep grey picture's thumbnail (see `_deep_as_shown`).
SHOWN = "mediaforge-shown"
# Set by `reduce_image` on a thumbnail that is the picture at its own size (not reduced).
NATIVE = "mediaforge-native"


def _deep_as_shown(grey: Image.Image) -> Image.Image | None:
    """A 16-bit grey picture (`grey`, turned to mode "I") in 8 bits as viewers show it
    (each sample over 257, rounded: a dark 12-bit scan stays dark, a nearly flat one flat),
    for its thumbnail; its hashes take `eight_bit`'s stretched range, which keeps the detail
    a hash needs. (Float and 32-bit pictures have no such common reading: they are
    thumbnailed stretched too.)"""
    lo, hi = grey.getextrema()
    if lo < 0 or hi > 65535:
        return None
    return grey.point(lambda v: v / 257 + 0.5).convert("L")


def _shrink(im: Image.Image, size: int) -> None:
    """`im.thumbnail` to a long side of `size`, bicubic. A picture of extreme shape
    (1 x 60,000,000 pixels: 117 KB as a PNG) shrinks by a factor in the hundreds of
    thousands along one side, and Pillow's filter table for that one pass took 3 GB; past
    65,536 pixels a side, a box reduction by a whole factor comes first (ordinary pictures,
    reduced less, are made exactly as before: the table grows with the long side, which
    no JPEG, WebP or HEIC can take past 65,535)."""
    gap = 8.0 if max(im.size) > 1 << 16 else None
    im.thumbnail((size, size), Image.Resampling.BICUBIC, reducing_gap=gap)


# Pillow's modes of more than 8 bits a sample (16-bit grey PNG and TIFF, 32-bit integer,
# float): its conversions to 8 bits clip them, so a 16-bit scan came out white.
_DEEP_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})


def eight_bit(im: Image.Image) -> Image.Image:
    """`im` in 8-bit grey ("L") when its samples are deeper, their range (darkest to
    brightest) stretched over 0-255: the picture as it looks, whatever the depth (a flat
    one at its value's place in 16 bits, or in 0-1 for floats). Other pictures as they are."""
    if im.mode not in _DEEP_MODES:
        return im
    if im.mode != "F":
        im = im.convert("I")
    lo, hi = im.getextrema()
    if not (math.isfinite(lo) and math.isfinite(hi)):  # NaN or infinite floats
        return Image.new("L", im.size, 0)
    if hi <= lo:  # one flat value, with no range to stretch: its place in the mode's own range
        full = 1.0 if im.mode == "F" else 65535.0
        return Image.new("L", im.size, round(255 * min(max(lo / full, 0.0), 1.0)))
    scale = 255.0 / (hi - lo)
    return im.point(lambda v: v * scale - lo * scale).convert("L")


def reduce_grey(im: Image.Image, size: int = 256) -> Image.Image:
    """Like `reduce_image` but grey, for the perceptual hash when no thumbnail is made:
    JPEGs decode only their luma plane (no chroma upsampling, no colour conversion), and
    at 1/8 scale from their DC coefficients alone (`_jpeg_eighth`)."""
    return reduce_for_hash(im, size, colour=False)[0]


def reduce_for_hash(im: Image.Image, size: int = 256, colour: bool = True) -> tuple[Image.Image, Image.Image | None]:
    """`reduce_grey`'s picture, the same pixels, and with `colour` a small upright colour
    copy of the same decode to measure its colour on (None for a picture whose mode has
    none). A JPEG decodes in YCbCr, which leaves its luma as a grey decode gives it: its
    chroma comes at little cost (from the DC coefficients too on the fast path). Another
    format's decode is reduced by a whole factor before it is turned to RGB."""
    orientation = _orientation(im)
    eighth = None
    chroma = None
    if im.format == "JPEG":
        full = im.size
        # An RGB-coded JPEG (Adobe's transform 0) is no YCbCr to libjpeg: decoded in RGB,
        # its grey made as libjpeg makes it (the same weights and rounding).
        rgb_coded = im.info.get("adobe_transform", 1) == 0
        im.draft(("RGB" if rgb_coded else "YCbCr") if colour and im.mode == "RGB" else "L", (size, size))
        got = _jpeg_eighth(im, full)
        if got is not None:
            eighth, chroma = got
    if eighth is not None:
        im = eighth
    else:
        im.load()
        im = eight_bit(im)
        if im.mode in ("CMYK", "LAB") and (cms := _colour_transform(im)) is not None:
            # As `reduce_image` turns them (and Pillow has no Lab to RGB of its own).
            _shrink(im, size)
            im = cms(im)
        if see_through(im):
            # Scaled with its transparency (premultiplied, as the thumbnail's copy is), then
            # shown on its background: the pixels a viewer shows, not the colours hidden
            # under transparent ones.
            im = im.convert("RGBA")
            _shrink(im, size)
            im = opaque(im)
        if colour and ImageMode.getmode(im.mode).basemode != "L":  # not a grey mode
            chroma = _colour_copy(im, size)
    if im.mode != "L":
        im = im.convert("L")
    _shrink(im, size)
    if chroma is not None:
        if chroma.mode not in ("RGB", "YCbCr"):
            chroma = chroma.convert("RGB")
        _shrink(chroma, size)
    if orientation and orientation != 1:
        im = _apply_orientation(im, orientation)
        if chroma is not None:
            chroma = _apply_orientation(chroma, orientation)
    return im, chroma


def see_through(im: Image.Image) -> bool:
    """Whether the picture `im` may have transparent pixels: its mode has alpha, or it
    names a transparent colour (a GIF's or a palette PNG's index, a PNG's tRNS colour)."""
    return im.mode in _ALPHA_MODES or "transparency" in im.info


def opaque(im: Image.Image) -> Image.Image:
    """The picture `im` as a viewer shows it, for its hashes and colour: what is transparent
    over white, as editors flatten a logo for JPEG (or over black where on white it would
    be one flat colour: a white logo on nothing, which a dark viewer shows); a picture
    with no transparent pixel as it is. In grey ("L") where `im` is grey, else RGB.

    Without it, a transparent picture hashed over black when its thumbnail was made
    (Pillow scales transparency premultiplied, which zeroes what is hidden) and over the
    colours hidden under its transparent pixels when it was not: the same logo hashed two
    ways, and neither matched its copy flattened on white."""
    if not see_through(im):
        return im
    base = "L" if ImageMode.getmode(im.mode).basemode == "L" else "RGB"
    rgba = im.convert("RGBA")
    if rgba.getextrema()[3][0] == 255:  # every pixel opaque: the colours as they are
        return rgba.convert(base)
    shown = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert(base)
    if ImageStat.Stat(shown.convert("L")).stddev[0] < FLAT_STDDEV:
        shown = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba).convert(base)
    return shown


def _colour_copy(im: Image.Image, size: int) -> Image.Image | None:
    """A copy of the decoded picture `im` in RGB (or YCbCr, as decoded), its short side
    cut to about twice `size` by a whole factor (a box average: cheap, and every pixel
    counts); None for a mode Pillow cannot turn to RGB."""
    factor = max(1, min(im.size) // (2 * size))
    try:
        if im.mode not in ("RGB", "RGBA", "CMYK", "YCbCr"):
            # (A palette picture in RGB first, as the thumbnail's decode has it: a
            # reduction of its indexes would drop a line of one pixel.)
            im = im.convert("RGB")
        if factor > 1:
            im = im.reduce(factor)
        return im.copy() if im.mode == "YCbCr" else im.convert("RGB")
    except (ValueError, OSError):
        return None


def _jpeg_eighth(im: Image.Image, full: tuple[int, int]) -> tuple[Image.Image, Image.Image | None] | None:
    """When Pillow's draft chose scale 1/8 in grey or YCbCr, the same luma from the Rust
    core's DC-only decode, which walks the entropy-coded data without dequantising or
    transforming a single AC coefficient (about twice as fast as libjpeg), and for YCbCr
    the picture in colour (its chroma from the DC coefficients too). None when the draft
    chose another scale or the core leaves the file to libjpeg (progressive, CMYK,
    damaged, ...): the caller then decodes as usual, with the same luma."""
    if im.mode not in ("L", "YCbCr") or im.size != ((full[0] + 7) // 8, (full[1] + 7) // 8):
        return None
    try:
        from mediaforge import _core  # not at the top: the thumbnail bench loads this file alone

        fd = im.fp.fileno()  # type: ignore[union-attr]
    except (ImportError, AttributeError, OSError, ValueError):
        return None
    got = _core.jpeg_luma_eighth(fd)
    if got is None or got[1:3] != im.size or (im.mode == "YCbCr" and got[3] is None):
        return None
    luma = Image.frombytes("L", im.size, got[0])
    if im.mode == "L" or got[3] is None:
        return luma, None
    return luma, Image.merge("YCbCr", (luma, Image.frombytes("L", im.size, got[3]), Image.frombytes("L", im.size, got[4])))


def turned_on_load(im: Image.Image) -> bool:
    """Whether Pillow itself turns this picture upright as it decodes it (its TIFF reader
    does, from Pillow 8: it reports the upright size and drops the orientation tag once
    loaded). Turning it again would turn it twice."""
    code = getattr(getattr(type(im), "load_end", None), "__code__", None)
    return code is not None and "exif_transpose" in code.co_names


def _orientation(im: Image.Image) -> int | None:
    """The EXIF orientation still to apply after decoding `im` (None: none)."""
    if turned_on_load(im):
        return None
    if im.format == "PNG":
        # Pillow's PNG reader decodes the pixels to look for an eXIf chunk after them: a
        # decode error there is the picture's, never one to pass over with the orientation
        # (its half-filled picture then "loaded" without complaint).
        im.load()
    return orientation(im)


_TRANSPOSE = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT,),
    3: (Image.Transpose.ROTATE_180,),
    4: (Image.Transpose.FLIP_TOP_BOTTOM,),
    5: (Image.Transpose.TRANSPOSE,),
    6: (Image.Transpose.ROTATE_270,),
    7: (Image.Transpose.TRANSVERSE,),
    8: (Image.Transpose.ROTATE_90,),
}


def _apply_orientation(im: Image.Image, orientation: int) -> Image.Image:
    for op in _TRANSPOSE.get(orientation, ()):
        im = im.transpose(op)
    return im


def fit(im: Image.Image, size: int) -> Image.Image:
    """An already decoded picture (a video frame, cover art) scaled to the long side `size`."""
    if im.mode not in ("RGB", "RGBA"):
        im = im.convert("RGB")
    im.thumbnail((size, size), Image.Resampling.BICUBIC)
    return im


def cover_image(data: bytes, size: int) -> Image.Image:
    """Embedded cover art (JPEG or PNG bytes) as a thumbnail-sized picture."""
    from .image import open_image

    return reduce_image(open_image(io.BytesIO(data)), size)  # type: ignore[arg-type]


def tmp_name(target: os.PathLike[str] | str, pid: int) -> str:
    """The temporary name process `pid` writes the thumbnail `target` under."""
    folder, name = os.path.split(os.fspath(target))
    return os.path.join(folder, f".{name}.{pid}.tmp")



# A profile of this size or more is no display's or camera's (those are a few KB, ProPhoto's
# and print profiles a few hundred): not parsed.
_ICC_MAX = 4 << 20


def _colour_transform(im: Image.Image) -> Callable[[Image.Image], Image.Image] | None:
    """What turns `im` (CMYK or RGB with its ICC profile, or Lab) into sRGB, RGB or RGBA as
    it is (its alpha kept); None for an RGB picture in sRGB already or with no profile, a
    profile LittleCMS cannot read, or a Pillow built without LittleCMS."""
    icc = im.info.get("icc_profile")
    base = "RGB" if im.mode == "RGBA" else im.mode
    if im.mode == "LAB":
        icc = b""  # (Pillow's Lab is CIELAB D50, which needs no profile)
    elif not isinstance(icc, bytes) or not 132 <= len(icc) < _ICC_MAX or base not in ("RGB", "CMYK"):
        return None
    transform = _to_srgb(icc, base)
    if transform is None:
        return None
    if im.mode != "RGBA":
        return transform
    return lambda rgba: Image.merge("RGBA", (*transform(rgba.convert("RGB")).split(), rgba.getchannel("A")))


@functools.lru_cache(maxsize=16)
def _to_srgb(icc: bytes, mode: str) -> Callable[[Image.Image], Image.Image] | None:
    """A LittleCMS transform from the profile `icc` (b"" for Lab) of pictures in `mode` to
    sRGB, with the profile's own rendering intent; None where none is needed or none can be
    made (see `_colour_transform`). The photos of one camera share one profile: each is
    parsed once per process."""
    try:
        from PIL import ImageCms
    except ImportError:  # Pillow built without LittleCMS: Pillow's own conversions
        return None
    try:
        source = ImageCms.createProfile("LAB") if mode == "LAB" else ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if mode == "RGB" and ImageCms.getProfileDescription(source).strip().startswith("sRGB"):
            return None  # sRGB's own (a camera's, libjpeg's, GIMP's built-in): as it is
        intent = ImageCms.getDefaultIntent(source) if mode != "LAB" else ImageCms.Intent.PERCEPTUAL
        transform = ImageCms.buildTransform(source, ImageCms.createProfile("sRGB"), mode, "RGB",
                                            renderingIntent=intent)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError, ImportError):
        return None
    return lambda im: ImageCms.applyTransform(im, transform)


def in_srgb(im: Image.Image) -> tuple[Image.Image, bytes | None]:
    """A thumbnail `im` ready to save: an RGB(A) one whose profile is not sRGB (Adobe RGB,
    Display P3, ProPhoto) converted to sRGB, with no profile to carry (a ProPhoto profile
    was 19 KB of a 21 KB thumbnail, and lossy WebP's errors grew when shown through it);
    where Pillow has no LittleCMS, as it is with its profile (`wide_profile`), for viewers
    to convert."""
    if im.mode in ("RGB", "RGBA") and (cms := _colour_transform(im)) is not None:
        return cms(im), None
    return im, wide_profile(im)


def wide_profile(im: Image.Image) -> bytes | None:
    """The picture's ICC colour profile when a viewer needs it to show the thumbnail's
    colours: an RGB profile (Adobe RGB, Display P3, ProPhoto) on an RGB picture. None for
    sRGB (what viewers assume without one: not worth 3 KB a thumbnail), for none, and
    for a profile of the source's colour space that the thumbnail no longer has (CMYK, grey)."""
    icc = im.info.get("icc_profile")
    if im.mode not in ("RGB", "RGBA") or not isinstance(icc, bytes) or len(icc) < 132 or icc[16:20] != b"RGB ":
        return None
    # The profile's description: ASCII in version 2 ('desc'), UTF-16 in version 4 ('mluc').
    return None if b"sRGB" in icc or "sRGB".encode("utf-16-be") in icc else icc


# Thumbnails thinner than this (pixels) are stored as lossless WebP.
THUMB_THIN = 16
# A picture of at most this many pixels, thumbnailed at its own size (an icon, pixel art,
# a sprite), is stored as lossless WebP too: each of its pixels counts, and it stays small.
THUMB_EXACT_PIXELS = 128 * 128


def save_thumb(im: Image.Image, root: Path, relpath: str) -> tuple[int, int, int, Path]:
    """Write under a temporary name beside its place, for the caller to rename into place
    (`os.replace`) once it knows the file it came from did not change while it was read,
    or to remove: a crash never leaves half a file under the final name, and a content's
    thumbnail is never replaced by one of other bytes. A wide-gamut picture's thumbnail
    is converted to sRGB (`in_srgb`), so viewers show its colours, not the dull ones its
    values mean in sRGB.
    Returns the thumbnail's width, height, length in bytes and temporary path."""
    native = bool(im.info.get(NATIVE))
    im, icc = in_srgb(im.info.get(SHOWN, im))
    target = root / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tmp_name(target, os.getpid()))
    # Lossy WebP keeps colour at half the resolution: a picture a few pixels thin (the
    # thumbnail of a 30000x200 panorama, 256x2) would come out in the average of its
    # halves' colours, and a small icon shown at its own size with its colours bled
    # into each other. Such small ones are stored losslessly.
    exact = min(im.size) < THUMB_THIN or native and im.size[0] * im.size[1] <= THUMB_EXACT_PIXELS
    options = {"lossless": True} if exact else {"quality": WEBP_QUALITY, "method": 4}
    try:
        try:
            im.save(tmp, "WEBP", **options, icc_profile=icc)
        except FileNotFoundError:
            # Its shard, empty, removed by another worker whose thumbnail failed (below).
            target.parent.mkdir(parents=True, exist_ok=True)
            im.save(tmp, "WEBP", **options, icc_profile=icc)
        length = os.stat(tmp).st_size
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        # A thumbnail not written (a full disk) leaves no empty shard, nor size folder,
        # behind: removed while empty (another worker that finds its shard gone makes it again).
        for folder in (target.parent, target.parent.parent):
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    return im.size[0], im.size[1], length, tmp


def plain_pillow_thumb(path: str, size: int, out: str) -> None:
    """The baseline the benchmark compares against: what a plain Pillow script does
    (full decode, then orientation, then resize; no draft)."""
    with Image.open(path) as im:
        im.load()
        im = ImageOps.exif_transpose(im)
        im = im.convert("RGB")
        im.thumbnail((size, size), Image.Resampling.BICUBIC, reducing_gap=None)
        im.save(out, "WEBP", quality=WEBP_QUALITY, method=4)
