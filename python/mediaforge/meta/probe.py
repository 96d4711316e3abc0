"""Video and audio containers with PyAV, in process: the container, every stream, and a
frame for the thumbnail from one open file.

Probing stays cheap: a small probe size and analyse duration, and MP4/MOV answer from
their moov box without reading media data. A keyframe seek to about 10% of the duration
gives the thumbnail frame; a black or flat one (an intro, a fade-in) gives way to a
later picture.
"""

from __future__ import annotations

import contextlib
import math
import re
import struct
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from typing import Any

import av

from . import AUDIO_FINGERPRINT_SECONDS, LONGEST_S
from .id3 import id3_skip

# libav's enums (AVColorTransferCharacteristic, AVColorPrimaries), the values seen in the field.
_TRC = {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear", 13: "iec61966-2-1",
        14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 18: "arib-std-b67"}
_PRIMARIES = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film", 9: "bt2020",
              11: "smpte431", 12: "smpte432"}
_HDR_TRC = {16, 18}  # PQ and HLG
LOSSLESS_AUDIO = {"flac", "alac", "wavpack", "ape", "tta", "mlp", "truehd", "shorten", "tak"}
# PCM that is not the samples as they were: G.711 companding (telephone sound) and
# Acorn's 8-bit VIDC, lossy both.
LOSSY_PCM = {"pcm_mulaw", "pcm_alaw", "pcm_vidc"}
OPEN_OPTIONS = {"probesize": "2000000", "analyzeduration": "2000000"}


def _rate(r: Fraction | None) -> float | None:
    if not r:
        return None
    v = round(float(r), 3)  # (a rate that rounds to 0, one frame in 2^31 ticks, is none either)
    return v if 0 < v < 10_000 else None


def _creation_time(meta: dict[str, str], video: bool) -> datetime | None:
    """When the file was made, in UTC: for video, Matroska's `DATE_RECORDED` first (its
    container's creation time is when it was muxed: mkvmerge writes the day of a remux),
    then the container's creation time (libav gives it in UTC), then a `date` tag;
    converted to UTC where it gives its offset (Matroska's `DATE` 2019-05-04T10:00:00+02:00
    is 08:00), as written where it gives none."""
    # A `date` tag is when a video was recorded, but a song's release date: only the
    # container's own creation time counts for sound. Tag names in any case: Matroska's
    # are upper case (`DATE`).
    meta = {k.lower(): v for k, v in meta.items()}
    created = _written_time(meta.get("creation_time") or (meta.get("date") if video else None))
    written = _written_time(meta.get("date_recorded")) if video else None
    if written is not None and created is not None and not _TIMED.search(str(meta.get("date_recorded"))) \
            and written[0].date() == created[0].date():
        written = None  # a recording day alone, the day of the creation time, which says more
    written = written or created
    if written is None:
        return None
    offset = _utc_offset(written[1])
    try:
        return written[0] - offset if offset is not None else written[0]
    except OverflowError:
        return None


# A date, and maybe a time with a fraction of a second, and maybe its offset from UTC
# (`2019-05-04`, `2019-05-04T10:00:00.500+0200`, `2019-07-14T08:30:05.000000Z`); the
# date as ISO 8601 writes it, or as EXIF does (`2019:05:04 10:00:00`, which some phone
# apps put in QuickTime's creation date too).
_WALL_TIME = re.compile(r"^\s*(\d{4})([-:])(\d{2})\2(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d*))?)?"
                        r"\s*([zZ]|[+-]\d{2}(?::?\d{2})?(?!\d))?)?")


# A date with a time of day after it (`2019-05-04T10:00`, `2019:05:04 10:00`).
_TIMED = re.compile(r"\d[T ]\d")


def _written_time(s: str | None) -> tuple[datetime, str | None] | None:
    """A tag's date and time as written (a date alone is that day at midnight), and the
    offset written after it (`Z`, `+02:00`) or None; None for 1904-01-01 and 1970-01-01
    (and the day before each, as a zone west of UTC shows them), "not set" in MP4 and in
    many muxers, and for a year before 1850, before any camera. A film digitised with the
    day it was shot, 1969-07-20, keeps it."""
    m = _WALL_TIME.match(s or "")
    if not m:
        return None
    year, _sep, month, day, hour, minute, second, fraction, zone = m.groups()
    try:
        t = datetime(*(int(x or 0) for x in (year, month, day, hour, minute, second)),
                     int((fraction or "")[:6].ljust(6, "0")))
    except ValueError:
        return None
    if t.year < 1850:
        return None
    offset = _utc_offset(zone)
    if offset is not None:  # the instant itself: the epoch's day in UTC is unset, 1969-12-31T22:00+01:00 is not
        utc = t - offset
        return None if (utc.year, utc.month, utc.day) in _UNSET_DAYS else (t, zone)
    # No zone: the day as written, or the one before as a clock west of UTC shows it.
    before = (t + timedelta(hours=12)).date()  # (UTC-12, the westmost zone, shows the epoch at noon)
    return None if {(t.year, t.month, t.day), (before.year, before.month, before.day)} & _UNSET_DAYS else (t, zone)


# The days MP4's and many muxers' "not set" times fall on (the epochs of 1904 and 1970).
_UNSET_DAYS = frozenset({(1904, 1, 1), (1970, 1, 1)})


def _utc_offset(zone: str | None) -> timedelta | None:
    """`Z`, `+02:00` or `-0530` as an offset from UTC; None for none, or one no zone has
    (outside -12:00 to +14:00, the range EXIF and XMP offsets are kept in too)."""
    if not zone:
        return None
    if zone in "zZ":
        return timedelta(0)
    hours, minutes = int(zone[1:3]), int(zone.replace(":", "")[3:] or 0)
    offset = (-1 if zone[0] == "-" else 1) * timedelta(hours=hours, minutes=minutes)
    if minutes > 59 or not timedelta(hours=-12) <= offset <= timedelta(hours=14):
        return None
    return offset


def _wall_time(s: str | None) -> datetime | None:
    """A tag's date and time as written, its offset dropped."""
    written = _written_time(s)
    return written[0] if written else None


_NO_LAYOUT = re.compile(r"^\d+ channels?$")


def _local_capture_time(meta: dict[str, str]) -> datetime | None:
    """When a video was recorded, on the recorder's clock: QuickTime's
    `com.apple.quicktime.creationdate` (iPhones, many Android phones: `2019-05-04T10:00:00+0200`),
    else a `date` tag that gives its offset (Matroska's `DATE` 2019-05-04T10:00:00+02:00),
    the offset dropped, as a photo's EXIF time is kept (10:00). The container's creation
    time is UTC, and so is `created_at` made from such a tag (08:00). A `date` in UTC (`Z`:
    an iTunes release date) says nothing of a local clock. Matroska's `DATE_RECORDED`
    goes before `DATE`, as it does for `created_at`."""
    meta = {k.lower(): v for k, v in meta.items()}
    phone = _wall_time(meta.get("com.apple.quicktime.creationdate"))
    if phone is not None:
        return phone
    dated = _written_time(meta.get("date_recorded")) or _written_time(meta.get("date"))
    if dated is None or dated[1] is None or dated[1] in "zZ" or _utc_offset(dated[1]) is None:
        return None
    return dated[0]


# ISO 6709 as phones write a place into MP4/MOV (`+37.3349-122.0090+030.000/`): latitude,
# longitude, maybe altitude. Each in degrees, or degrees and minutes (DDMM.M, DDDMM.M), or
# degrees, minutes and seconds, as its count of whole digits says.
_ISO6709 = re.compile(r"^\s*([+-]\d+(?:\.\d*)?)([+-]\d+(?:\.\d*)?)([+-]\d+(?:\.\d*)?)?(?:CRS[^/]*)?/?\s*$")


def _iso6709_part(text: str, degree_digits: int) -> float | None:
    sign = -1.0 if text[0] == "-" else 1.0
    whole, _, fraction = text[1:].partition(".")
    # Whole digits past the degrees' (a longitude's may come without its leading 0, as
    # libav writes `-7400.3599`): 0, degrees; up to 2, and minutes; up to 4, and seconds.
    past = len(whole) - degree_digits
    if past <= 0 or past == 1 and whole[0] == "0":  # (`+037.5`: degrees with a leading 0)
        return sign * float(text[1:])
    extra = 2 if past <= 2 else 4 if past <= 4 else 0
    if not extra or len(whole) <= extra:
        return None
    degrees = int(whole[:-extra])
    minutes = float(whole[-extra:][:2] + ("" if extra == 4 else "." + fraction if fraction else ""))
    seconds = float(whole[-2:] + ("." + fraction if fraction else "")) if extra == 4 else 0.0
    if minutes >= 60 or seconds >= 60:
        return None
    return sign * (degrees + minutes / 60 + seconds / 3600)


def iso6709(text: str | None) -> tuple[float, float, float | None] | None:
    """(latitude, longitude, altitude or None) from an ISO 6709 string; None for one that
    is not, or a place off the globe."""
    m = _ISO6709.match(text or "")
    if not m:
        return None
    lat, lon = _iso6709_part(m.group(1), 2), _iso6709_part(m.group(2), 3)
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180) or lat == lon == 0:
        return None  # (0, 0: what some phones write with no fix)
    alt = float(m.group(3)) if m.group(3) else None
    return lat, lon, alt if alt is None or -12_000 <= alt <= 1e6 else None


def container_camera(meta: dict[str, str]) -> dict[str, Any] | None:
    """What a video's container says of the camera that shot it, as an `exif` row: the
    make, model and software phones write into MP4/MOV (QuickTime's `com.apple.quicktime.*`
    keys; Android's `com.android.manufacturer` and `.model`; `©mak`, `©mod`), and its place (QuickTime's
    ISO 6709 location; `©xyz`, which Android writes, libav's `location`), and its capture
    time with the offset it gives. None when it says none of these."""
    meta = {k.lower(): v for k, v in meta.items()}

    def text(*keys: str) -> str | None:
        for key in keys:
            v = str(meta.get(key) or "").strip().replace("\0", "")
            if v:
                return v[:256]
        return None

    place = iso6709(text("com.apple.quicktime.location.iso6709", "location", "location-eng"))
    row: dict[str, Any] = {
        "make": text("com.apple.quicktime.make", "com.android.manufacturer", "make"),
        "model": text("com.apple.quicktime.model", "com.android.model", "model"),
        "software": text("com.apple.quicktime.software"),
        "gps_lat": place[0] if place else None,
        "gps_lon": place[1] if place else None,
        "gps_alt": place[2] if place else None,
    }
    if not any(v is not None for v in row.values()):
        return None
    written = _written_time(meta.get("com.apple.quicktime.creationdate"))
    offset = _utc_offset(written[1]) if written and written[1] and written[1] not in "zZ" else None
    row["taken_at"] = written[0] if written else None
    if offset is not None:
        row["taken_offset"] = _offset_text(offset)
    return row


def _offset_text(offset: timedelta) -> str:
    """An offset from UTC as `exif.taken_offset` holds it: `+02:00`, `-05:30`."""
    minutes = int(offset.total_seconds()) // 60
    return f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


_ZONES: Any = None  # timezonefinder's finder, made once a process, or False where it is missing


def place_zone(lat: float, lon: float) -> Any:
    """The time zone (a `zoneinfo.ZoneInfo`) in force at a place on land or at sea, by
    timezonefinder's map of the world's zones; None where that package or the zone's
    rules are missing."""
    global _ZONES
    if _ZONES is None:
        try:
            from timezonefinder import TimezoneFinder

            _ZONES = TimezoneFinder()
        except Exception:  # noqa: BLE001 - missing, or its data unreadable: no zone to give
            _ZONES = False
    if _ZONES is False:
        return None
    from zoneinfo import ZoneInfo

    try:
        name = _ZONES.timezone_at(lng=lon, lat=lat)
        return ZoneInfo(name) if name else None
    except Exception:  # noqa: BLE001 - a place off the map, a zone the tz database lacks
        return None


def android_local_time(meta: dict[str, str], created: datetime | None,
                       camera: dict[str, Any] | None) -> tuple[datetime, str] | None:
    """An Android phone's recording, shot where it says: its capture time on the clock of
    that place, with the offset. Android's camera recorder writes no capture time of its
    own, only the container's creation time, in UTC as MP4 defines it (a photo's EXIF time
    is the phone's clock): a clip shot at 23:30 on New Year's Eve in New York would be
    dated 04:30 on New Year's Day, beside the photos of that evening. Its place's time zone
    (`place_zone`) gives the clock. A recording is told by the capture rate the recorder
    writes (`com.android.capture.fps`): a clip an app wrote on the phone (an edit, an
    export) has Android's keys too, but its creation time is when it was written, which
    says less than a sidecar's date (a review finding). None for other videos, without a
    place, or where the zone is unknown."""
    keys = {k.lower() for k in meta}
    if created is None or camera is None or "creation_time" not in keys or "com.android.capture.fps" not in keys:
        return None
    lat, lon = camera.get("gps_lat"), camera.get("gps_lon")
    zone = place_zone(lat, lon) if lat is not None and lon is not None else None
    if zone is None:
        return None
    try:
        there = created.replace(tzinfo=timezone.utc).astimezone(zone)
    except (OverflowError, ValueError):
        return None
    return there.replace(tzinfo=None), _offset_text(there.utcoffset() or timedelta(0))


def _bit_depth(cc: Any) -> int | None:
    fmt = getattr(cc, "format", None)
    comps = getattr(fmt, "components", None) if fmt is not None else None
    return int(comps[0].bits) if comps else None


def _duration(container: Any, stream: Any = None) -> float | None:
    tagged = _tagged_duration(stream) if stream is not None else None
    if stream is not None and stream.duration and stream.time_base:
        d = float(stream.duration * stream.time_base)
    elif tagged is not None:  # Matroska keeps each track's length in a DURATION tag
        d = tagged
    elif container.duration:
        d = container.duration / av.time_base
    else:
        return None
    # Under half a millisecond (a header that claims 65,535 channels leaves a few samples
    # each) is no length to tell: NULL, not 0.0.
    return round(d, 3) if d >= 0.0005 else None


def _tagged_duration(stream: Any) -> float | None:
    """A stream's `DURATION` tag (`00:00:02.016000000`, as mkvmerge and FFmpeg write it
    into Matroska), in seconds; None without one."""
    meta = getattr(stream, "metadata", None) or {}
    return _clock(next((v for k, v in meta.items() if k.upper() == "DURATION"), None))


def _clock(text: str | None) -> float | None:
    """`00:00:02.016000000` in seconds; None for anything else."""
    m = re.fullmatch(r"\s*(\d+):([0-5]\d):([0-5]\d(?:\.\d+)?)\s*", text or "")
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3)) if m else None


def _counted_rate(container: Any, stream: Any) -> float | None:
    """The average frame rate a Matroska track's statistics tags give: mkvmerge's
    `NUMBER_OF_FRAMES` over its `DURATION` (tags of one language suffix, as libav names
    them: `NUMBER_OF_FRAMES-eng`). libav's own rate for Matroska is the track's default
    frame duration or that of the frames read while probing: a clip of 10 then 50 frames
    a second reads as 10. None without them; when their length is not the file's (within
    1 s or 2%: statistics a cut copied from a longer source); when no writing app signs
    them (`_STATISTICS_WRITING_APP`, as mkvmerge does); and in a file libav muxed (its
    `ENCODER`, the muxing app, is `Lavf...`): FFmpeg writes no such counts but copies a
    source's tags, so after a re-encode at another rate they count other frames."""
    muxer = next((v for k, v in (getattr(container, "metadata", None) or {}).items() if k.upper() == "ENCODER"), "")
    if muxer.startswith("Lavf"):
        return None
    meta = {k.upper(): v for k, v in (getattr(stream, "metadata", None) or {}).items()}
    for key, value in meta.items():
        suffix = key[len("NUMBER_OF_FRAMES"):]
        if not key.startswith("NUMBER_OF_FRAMES") or suffix and not suffix.startswith("-"):
            continue
        if not meta.get("_STATISTICS_WRITING_APP" + suffix):
            continue
        frames, length = value.strip(), _clock(meta.get("DURATION" + suffix))
        if not frames.isdigit() or len(frames) > 12 or not length:
            continue
        whole = container.duration / av.time_base if container.duration else None
        if whole and abs(whole - length) > max(1.0, whole * 0.02):
            continue
        return _rate(Fraction(int(frames)) / Fraction(length))
    return None


def _codec_name(s: Any) -> str | None:
    """The codec's canonical name (mp3, not the decoder's mp3float). A stream with no codec
    context (an MP4 chapter track, `bin_data`) still has the codec id's name."""
    cc = s.codec_context
    codec = getattr(cc, "codec", None)
    name = getattr(codec, "canonical_name", None) or getattr(cc, "name", None)
    if name is None:
        with contextlib.suppress(AttributeError, ValueError):
            name = s.name or None
    return name


# ISO base media files say what they are in their `ftyp` box's major brand: the format
# of the content, whatever a copy of it is named.
_BRANDS = {"qt": "mov", "m4a": "m4a", "m4b": "m4a", "m4p": "m4a", "m4v": "mp4", "3g2a": "3g2", "3g2b": "3g2",
           "mjp2": "mj2", "avif": "avif", "avis": "avif", "heic": "heic", "heix": "heic", "mif1": "heif",
           "msf1": "heif"}


def _head(path: str | bytes, size: int = 64) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError:
        return b""


def _brand_format(head: bytes) -> str | None:
    """The format an ISO media file's `ftyp` box names as its major brand; `mov` for a
    QuickTime file without one. Read from the box itself: libav's `major_brand` may be a
    copied `keys` entry (`-movflags use_metadata_tags`) naming the source's brand."""
    if head[4:8] != b"ftyp":
        return "mov" if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot") else None
    brand = head[8:12].decode("latin-1").strip().lower()
    if brand in _BRANDS:
        return _BRANDS[brand]
    if brand.startswith(("3gp", "3ge", "3gg", "3gs")):
        return "3gp"
    if brand.startswith(("iso", "mp4", "avc", "dash", "f4v", "mmp4")):
        return "mp4"
    return None


def _doc_type(head: bytes) -> str | None:
    """The DocType of a Matroska file's EBML header (`matroska`, `webm`), or None."""
    if not head.startswith(b"\x1a\x45\xdf\xa3"):
        return None
    at = head.find(b"\x42\x82")
    if at < 0 or at + 3 > len(head) or not head[at + 2] & 0x80:  # a one-byte size, as every muxer writes
        return None
    size = head[at + 2] & 0x7F
    return head[at + 3:at + 3 + size].rstrip(b"\x00").decode("ascii", "replace").lower() or None


def _format_name(c: Any, path: str | bytes, name: str) -> str | None:
    """libavformat names a family ('mov,mp4,m4a,3gp,3g2,mj2', 'matroska,webm'): the member
    the file's own header names (an ISO file's brand, a Matroska file's DocType), else the
    one its extension names, else the first."""
    if not c.format:
        return None
    names = c.format.name.split(",")
    if names[0] == "mov":
        branded = _brand_format(_head(path))
        if branded == "mp4" and c.streams.audio and not any(not _is_cover(v) for v in c.streams.video):
            return "m4a"  # sound alone in an MP4 file: what every player calls m4a (not one with no streams)
        if branded:
            return branded
    if names[0] == "matroska":
        doc = _doc_type(_head(path))
        if doc in names:
            return doc
    ext = name.rsplit(".", 1)[-1].lower() if "." in name[-6:] else ""
    if ext in names:
        return ext
    # HEIF-family stills (AVIF, HEIC) are read by the MOV demuxer.
    return ext if names[0] == "mov" and ext in ("avif", "heic", "heif") else names[0]


# Pixel formats that may carry transparency (a palette's may): such a frame is turned to
# RGBA, not RGB, so a transparent PNG or AVIF that only libav decodes keeps it.
_ALPHA_FORMATS = re.compile(r"(rgba|bgra|argb|abgr|ya8|ya16|yuva|gbrap|pal8)")


# libav's colour space number for none given (AVCOL_SPC_UNSPECIFIED).
_SPC_UNSPECIFIED = 2


# Pixel formats of RGB, grey or a palette: no colour space of YUV to read them by.
_NOT_YUV = re.compile(r"(rgb|bgr|argb|abgr|0rgb|0bgr|gbr|gray|ya8|ya16|pal8|monow|monob|x2rgb|x2bgr)")


def _colour_space(frame: Any) -> dict[str, Any]:
    """`reformat`'s options for a frame of HD video (1280 wide or over 576 lines) whose YUV
    gives no colour space: BT.709, as players and browsers read it (libswscale's default,
    BT.601, made its reds and magentas darker). Nothing for others: libswscale reads a
    frame's own colour space."""
    if frame.colorspace == _SPC_UNSPECIFIED and (frame.width >= 1280 or frame.height > 576) \
            and not _NOT_YUV.match(frame.format.name):
        return {"src_colorspace": "ITU709"}
    return {}


def _picture_of(frame: Any, w: int, h: int) -> Any:
    """A decoded frame as a Pillow picture `w` x `h`: RGBA where it has transparency
    (some pixel not opaque), else RGB.

    Untagged HD video is read as BT.709 (`_colour_space`). An interlaced frame is turned
    to RGB whole and then scaled by Pillow: libswscale scales such a frame one field at a
    time, which kept moving edges combed, line by line, in the thumbnail."""
    from PIL import Image

    options = _colour_space(frame)
    interlaced = bool(getattr(frame, "interlaced_frame", False))
    size = {} if interlaced else {"width": w, "height": h}
    if not _ALPHA_FORMATS.match(frame.format.name):
        img = frame.to_image(**size, **options)
    else:
        img = Image.fromarray(frame.reformat(**size, format="rgba", **options).to_ndarray(), "RGBA")
        img = img if img.getextrema()[3][0] < 255 else img.convert("RGB")
    return img.resize((w, h), Image.Resampling.BICUBIC, reducing_gap=2.0) if img.size != (w, h) else img


def _sample_aspect(s: Any) -> Fraction:
    """The pixel shape: the container's sample aspect ratio, else the codec's, else square."""
    for sar in (getattr(s, "sample_aspect_ratio", None), getattr(s.codec_context, "sample_aspect_ratio", None)):
        if sar and sar > 0:
            return Fraction(sar)
    return Fraction(1)


# The shapes pictures are made to (and each turned upright): a shape within 0.5% of one,
# not in small numbers of its own (853:480, mkvmerge's 16:9 for a 720x480 DVD rip; 427:240,
# 854x480 video), is stored as it (16:9), so `display_aspect = '16:9'` finds them all.
COMMON_ASPECTS = ((1, 1), (5, 4), (4, 3), (3, 2), (8, 5), (16, 9), (37, 20), (2, 1), (64, 27), (7, 3), (12, 5))
_ASPECT_NEAR = 0.005


def _display_aspect(w: int | None, h: int | None, sar: Fraction) -> str | None:
    """Width:height of the picture as shown (16:9), square pixels or not."""
    if not w or not h:
        return None
    dar = Fraction(w, h) * sar
    if max(dar.numerator, dar.denominator) > 100:
        for a, b in COMMON_ASPECTS + tuple((b, a) for a, b in COMMON_ASPECTS):
            if abs(float(dar) / (a / b) - 1) < _ASPECT_NEAR:
                dar = Fraction(a, b)
                break
    return f"{dar.numerator}:{dar.denominator}" if dar.numerator < 10_000 and dar.denominator < 10_000 else None


def _indexed_bitrate(s: Any) -> int | None:
    """A stream without a codec context in an MP4 or MOV file (a chapter or timecode
    track): its bit rate from its samples' sizes in the file's sample table over its
    length, as ffprobe gives it. None for any other stream (another container's index,
    Matroska's cues, lists a few samples, not all), and where the length is not known."""
    if s.codec_context is not None or not (s.duration and s.time_base):
        return None
    if not s.container.format.name.startswith("mov,"):
        return None
    try:
        entries = s.index_entries
        if not entries or len(entries) > 100_000:
            return None
        seconds = float(s.duration * s.time_base)
        return round(sum(e.size for e in entries) * 8 / seconds) if seconds > 0 else None
    except (AttributeError, TypeError, ValueError, OverflowError):
        return None


def _stream_row(container: Any, s: Any, orientations: dict[int, tuple[int, bool]]) -> dict[str, Any]:
    # A stream whose codec libav does not know has no codec context (None): the row keeps
    # what the container says and leaves the codec's fields empty.
    cc = s.codec_context
    meta = dict(s.metadata or {})
    row: dict[str, Any] = {
        "stream_index": s.index,
        "type": s.type,
        "codec": _codec_name(s),
        "profile": s.profile,
        "bitrate": int(cc.bit_rate) if getattr(cc, "bit_rate", 0) else _indexed_bitrate(s),
        "duration": _duration(container, s),
        "language": meta.get("language") if meta.get("language") not in (None, "und") else None,
    }
    if s.type == "video":
        w, h = getattr(cc, "width", None) or None, getattr(cc, "height", None) or None
        trc, prim = getattr(cc, "color_trc", None), getattr(cc, "color_primaries", None)
        fmt = getattr(cc, "format", None)
        # The track header's matrix, else a `rotate` tag: right angles only, as the
        # thumbnail turns (`_upright`); None when neither says. A decoded frame's display
        # matrix, where one is decoded, has the last word (`_frame_at`).
        turn = _upright(*orientations[s.id])[0] if s.id in orientations else _rotate_tag(meta)
        row.update(
            width=w, height=h,
            display_aspect=_display_aspect(w, h, _sample_aspect(s)),
            rotation=None if turn is None else _right_angle(turn),
            fps=_counted_rate(container, s) or _rate(s.average_rate) or _rate(s.guessed_rate),
            pix_fmt=fmt.name if fmt is not None else None,
            bit_depth=_bit_depth(cc),
            color_transfer=_TRC.get(trc), color_primaries=_PRIMARIES.get(prim),
            hdr=trc in _HDR_TRC if cc is not None else None,
            is_cover=_is_cover(s),
        )
    elif s.type == "audio":
        layout = getattr(cc, "layout", None)
        row.update(
            channels=_channel_count(cc, layout),
            # A stream that names no layout has libav's placeholder ("1 channels"): none.
            channel_layout=layout.name if layout is not None and not _NO_LAYOUT.match(layout.name) else None,
            sample_rate=getattr(cc, "sample_rate", None) or None,
            bit_depth=pcm_bits(row["codec"]) or header_bits(row["codec"], getattr(cc, "extradata", None)),
        )
    return row


# libav's own bound on a decoder's channels (FF_SANE_NB_CHANNELS). Real recordings stay far
# below it (7th-order Ambisonics is 64 channels); a header's 65535 is damage or hostility.
MOST_CHANNELS = 512


def _channel_count(cc: Any, layout: Any) -> int | None:
    """The channels a stream's header states; None for none (0) and for a count past
    `MOST_CHANNELS` (FFmpeg before 8.1.3 read a WAV's 65535 as 0, later ones keep it)."""
    n = getattr(cc, "channels", None) or (len(layout.channels) if layout is not None else None)
    return n if n and n <= MOST_CHANNELS else None


def header_bits(codec: str | None, extradata: bytes | None) -> int | None:
    """The bits per sample a FLAC or ALAC stream's own header (libav's extradata) states:
    FLAC's STREAMINFO (bare, or after `fLaC` and a block header), ALAC's magic cookie.
    libav keeps them in a field PyAV does not show, and the tag reader knows no Matroska."""
    data = extradata or b""
    if codec == "flac":
        if data[:4] == b"fLaC":
            data = data[8:]
        # Two block sizes (2 bytes each), two frame sizes (3 each), then 20 bits of sample
        # rate, 3 of channels less one, 5 of bits per sample less one.
        return ((data[12] & 1) << 4 | data[13] >> 4) + 1 if len(data) >= 34 else None
    if codec == "alac" and len(data) >= 24 and data[4:8] == b"alac":
        # The cookie's size and `alac` tag, a version, then the frame length (4 bytes), the
        # compatible version (1) and the bit depth (1).
        return data[17] or None
    return None


def pcm_bits(codec: str | None) -> int | None:
    """The bits per sample a PCM codec's name states (`pcm_s24le`: 24, `pcm_f32be`: 32);
    None for other codecs (the caller asks the tag reader for lossless ones; lossy sound
    has no bit depth of its own) and for companded PCM, 8 bits standing for 13 or 14."""
    m = re.fullmatch(r"pcm_[suf](8|16|24|32|64)(?:le|be|_planar|le_planar|be_planar)?", codec or "")
    return int(m.group(1)) if m and codec not in LOSSY_PCM else None


def _is_cover(s: Any) -> bool:
    """An MP3/M4A/FLAC cover picture shows up as a one-frame video stream."""
    try:
        return bool(s.disposition & av.stream.Disposition.attached_pic)
    except (AttributeError, TypeError):
        return False


def attached_cover(path: str | bytes) -> bytes | None:
    """The bytes of the first picture attached to the file as its cover, as libav finds
    it: for a container whose tags mutagen does not read (a Matroska sound file's
    attachment). None when there is none."""
    name = path if isinstance(path, str) else path.decode("utf-8", "surrogateescape")
    with _container(path, name, False) as c:
        cover = next((s for s in c.streams.video if _is_cover(s)), None)
        if cover is None:
            return None
        for packet in c.demux(cover):
            if packet.size:
                return bytes(packet)
    return None


# The last file looked at, and where its sound starts: a file's container is opened a few
# times (probe, thumbnail, fingerprint, length), its tag looked at once.
_LAST_SKIP: list[tuple[str | bytes, int]] = []


class _From:
    """The file `f` from byte `start` on, as a file of its own (for libav: read, seek, tell)."""

    def __init__(self, f: Any, start: int) -> None:
        self.f, self.start = f, start
        f.seek(start)

    def read(self, n: int = -1) -> bytes:
        return self.f.read(n)

    def seek(self, offset: int, whence: int = 0) -> int:
        at = self.f.seek(self.start + offset if whence == 0 else offset, whence)
        if at < self.start:
            at = self.f.seek(self.start)
        return at - self.start

    def tell(self) -> int:
        return self.f.tell() - self.start

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True


@contextlib.contextmanager
def _container(path: str | bytes, name: str, by_content: bool) -> Iterator[Any]:
    """The open container. libav lets a file's name pick its reader first (an MP3 named
    `.jpg` goes to the image reader); `by_content` opens a file object, which has no name.
    A file whose ID3v2 tag holds thousands of frames is read from after it (`id3_skip`)."""
    known = _LAST_SKIP[0][1] if _LAST_SKIP and _LAST_SKIP[0][0] == path else None
    if known != 0:  # (a file already looked at without such a tag is opened once, by libav)
        try:
            f = open(path, "rb")  # noqa: SIM115 - kept open for libav below, closed here
        except OSError:
            pass  # (libav says why, as for any other file)
        else:
            with f:
                skip = known if known is not None else id3_skip(f)
                _LAST_SKIP[:] = [(path, skip)]
                if skip:
                    with av.open(_From(f, skip), options=OPEN_OPTIONS, metadata_errors="replace") as c:
                        yield c
                    return
    if not by_content:
        with av.open(name, options=OPEN_OPTIONS, metadata_errors="replace") as c:
            yield c
        return
    # (Opened as given: a text name would let libav choose its reader by the name again.
    # `readers.plain_paths` writes a name given as bytes as text in the error messages.)
    with open(path, "rb") as f, av.open(f, options=OPEN_OPTIONS, metadata_errors="replace") as c:
        yield c


def probe(path: str | bytes, want_frame: bool, thumb_size: int,
          by_content: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]], Any]:
    """Open a container and return (media columns, stream rows, thumbnail picture or None)."""
    name = path if isinstance(path, str) else path.decode("utf-8", "surrogateescape")
    with _container(path, name, by_content) as c:
        orientations = _track_orientations(path) if c.format and c.format.name.startswith("mov,") else {}
        streams = [_stream_row(c, s, orientations) for s in c.streams
                   if s.type in ("video", "audio", "subtitle", "data")]
        video = [r for r in streams if r["type"] == "video" and not r.get("is_cover")]
        audio = [r for r in streams if r["type"] == "audio"]
        v, a = (video[0] if video else None), (audio[0] if audio else None)
        try:
            chapters = len(c.chapters())
        except Exception:  # noqa: BLE001 - older builds have no chapter API
            chapters = None
        media: dict[str, Any] = {
            "format": _format_name(c, path, name),
            "duration": _duration(c),
            "bitrate": int(c.bit_rate) if c.bit_rate else None,
            "created_at": _creation_time(dict(c.metadata or {}), video=bool(video)),
            "taken_at": _local_capture_time(dict(c.metadata or {})) if video else None,
            "camera": container_camera(dict(c.metadata or {})) if video else None,
            "stream_count": len(streams),
            "chapters": chapters,
            "video_codec": v["codec"] if v else None,
            "width": v["width"] if v else None,
            "height": v["height"] if v else None,
            "fps": v["fps"] if v else None,
            "rotation": v["rotation"] if v else None,
            "hdr": v["hdr"] if v else None,
            # Of the picture where there is one, else of the sound (see `pcm_bits`).
            "bit_depth": v["bit_depth"] if v else a["bit_depth"] if a else None,
            "audio_codec": a["codec"] if a else None,
            "channels": a["channels"] if a else None,
            "sample_rate": a["sample_rate"] if a else None,
        }
        if video and media["taken_at"] is None:
            placed = android_local_time(dict(c.metadata or {}), media["created_at"], media["camera"])
            if placed is not None:
                media["taken_at"] = media["camera"]["taken_at"] = placed[0]
                media["camera"]["taken_offset"] = placed[1]
        picture = None
        if want_frame and video and video[0]["codec"] is not None:
            try:
                picture = _frame_at(c, c.streams[video[0]["stream_index"]], media["duration"], media, thumb_size,
                                    orientations)
            except (av.error.FFmpegError, OSError, EOFError):
                # The header read, the pictures not (a file cut after its header: libav's
                # seeks fail with EPERM or EIO). What the header says stands; the caller
                # records that no frame could be decoded.
                picture = None
            video[0]["rotation"] = media["rotation"]
    return media, streams, picture


def _track_orientations(path: str | bytes) -> dict[int, tuple[int, bool]]:
    """(Rotation, mirrored) by track id from an MP4/MOV's track headers; empty when they
    cannot be read (the decoded frame then tells, when a thumbnail is made)."""
    from .mp4 import track_orientations

    try:
        return track_orientations(path)
    except (OSError, ValueError, struct.error):
        return {}


def _rotate_tag(meta: Any) -> int | None:
    """A stream's `rotate` tag (Matroska's is `ROTATE`) as a counter-clockwise turn, as
    libav's display matrix counts; None when it has none. FFmpeg's legacy tag counts
    clockwise (an iPhone's portrait clip: `rotate` 90, display matrix -90)."""
    rot = next((str(v).strip() for k, v in dict(meta or {}).items() if k.lower() == "rotate"), None)
    return -int(rot) if rot and re.fullmatch(r"-?[0-9]{1,9}", rot) else None


def _upright(turn: int, mirrored: bool) -> tuple[int, bool]:
    """A display matrix's (turn, mirrored) as the thumbnail applies it: a turn by no right
    angle is no matrix at all (`_right_angle`), its flip included."""
    rot = _right_angle(turn)
    return (rot, mirrored) if rot == turn % 360 else (0, False)


def _shown_turn(frame: Any, stream: Any, orientations: dict[int, tuple[int, bool]]) -> tuple[int, bool]:
    """(Counter-clockwise right angle, mirrored) by which players show a video stream's
    frames: an MP4/MOV track header's matrix (`orientations`, what libav hands its frames
    as their display matrix), else the frame's display matrix (its turn), else the
    stream's `rotate` tag. Never through the frame's `side_data`, which ties the frame and
    its container into a reference cycle: the frame, and the decoder buffers it holds,
    stayed until the garbage collector's next full pass (a worker under its memory limit
    failed to scale the next frame: "Resource temporarily unavailable")."""
    if stream.id in orientations:
        return _upright(*orientations[stream.id])
    angle = getattr(frame, "rotation", 0)
    if angle:
        return _right_angle(angle), False
    tag = _rotate_tag(stream.metadata)
    return (_right_angle(tag), False) if tag is not None else (0, False)


def _right_angle(angle: Any) -> int:
    """A display matrix's turn (libav's, in degrees) as 0, 90, 180 or 270. Any other
    angle is no camera's: a hostile or broken matrix (one of zeros reads as NaN, which
    libav hands on as -2^31) would tilt the picture, black corners and all, and grow it
    past its own size. It is taken as none. Whole turns more are none (a `rotate` tag
    of 450 is 90, as FFmpeg reads it)."""
    try:
        turn = float(angle or 0)
    except (TypeError, ValueError):
        return 0
    if not math.isfinite(turn) or abs(turn) > 36_000 or abs(turn - round(turn / 90) * 90) > 0.5:
        return 0
    return round(turn / 90) * 90 % 360


def _frame_at(c: Any, stream: Any, duration: float | None, media: dict[str, Any], size: int,
              orientations: dict[int, tuple[int, bool]]) -> Any:
    """A picture about 10% into the video, via a keyframe seek, as players show it (turned
    and flipped as `_shown_turn` says); None if nothing decodes."""
    stream.thread_type = "AUTO"
    seeked = bool(duration and duration > 1 and stream.time_base)
    if seeked:
        target = int(duration * 0.1 / stream.time_base) + (stream.start_time or 0)
        try:
            c.seek(target, stream=stream, backward=True, any_frame=False)
        except av.error.FFmpegError:
            c.seek(0)
            seeked = False
    frames = iter(c.decode(stream))
    frame = next(frames, None)  # the keyframe the seek found
    if frame is not None and seeked and frame.time is not None:
        # MPEG-TS's seek lands on the keyframe after the time asked for (a whole group of
        # pictures late): seek that much earlier, and decode on to the time.
        want = _start(stream) + duration * 0.1  # type: ignore[operator]
        late = frame.time - want
        if late > max(0.5, duration * 0.02):  # type: ignore[operator]
            try:
                c.seek(int(max(_start(stream), want - late - 1.0) / stream.time_base), stream=stream, backward=True,
                       any_frame=False)
                frames = iter(c.decode(stream))
                nearer = _next_at(frames, want, [FP_MAX_DECODE])
            except av.error.FFmpegError:
                nearer = None
            if nearer is not None and nearer.time is not None and abs(nearer.time - want) < late:
                frame = nearer
    if frame is None and seeked:  # nothing decodes after it (see `_frames_from_start`)
        frames = _frames_from_start(c, stream)
        frame = _next_at(frames, _start(stream) + duration * 0.1, [FP_MAX_DECODE])
        seeked = False  # such a file's seeks decode nothing: none further in is tried
    if frame is None:
        return None
    if _dull(frame):  # a black intro, a fade-in, a title on black: a later picture shows more
        frame = _livelier(c, stream, frames, duration if seeked else None) or frame
    rot, mirrored = _shown_turn(frame, stream, orientations)
    media["rotation"] = rot  # as players show it, and the thumbnail and fingerprint turn it
    # Non-square pixels (anamorphic DVD and HDV video) are stretched to their shown shape.
    w, h = _scaled(max(1, round(frame.width * _sample_aspect(stream))), frame.height, size)
    img = (_sdr_picture(frame, w, h) if getattr(frame, "color_trc", None) in (_TRC_PQ, _TRC_HLG)
           else _picture_of(frame, w, h))
    if mirrored:  # flipped left to right, then turned (see `mp4.matrix_turn`)
        from PIL import Image

        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    # The display matrix turns the picture counter-clockwise by `rot` degrees.
    return img.rotate(rot, expand=True) if rot else img


# HDR transfers (libav's numbering): PQ (HDR10, Dolby Vision's base layer) and HLG (phones).
_TRC_PQ, _TRC_HLG = 16, 18
# Diffuse ("reference") white of HDR video, in cd/m2 (ITU-R BT.2408): what SDR shows as white.
_HDR_WHITE_NITS = 203.0
# BT.2020 primaries (libav's number), and their conversion to BT.709 (sRGB's), on linear light.
_PRIMARIES_BT2020 = 9
_BT2020_TO_709 = ((1.6605, -0.5876, -0.0728), (-0.1246, 1.1329, -0.0083), (-0.0182, -0.1006, 1.1187))
# Linear SDR values above this are rolled off smoothly towards 1 rather than clipped.
_KNEE = 0.8


def _sdr_picture(frame: Any, w: int, h: int) -> Any:
    """An HDR frame (PQ or HLG, BT.2020) as an sRGB picture, as an SDR screen would show
    it: its signal decoded to light, diffuse white at SDR white, highlights rolled off,
    colours brought into BT.709. Its 8-bit values read as sRGB looked grey and washed out."""
    import numpy as np
    from PIL import Image

    # Full-range 10-bit video has no `yuvj` format to say so: its range is passed on.
    full = "JPEG" if getattr(frame, "color_range", 0) == 2 else None
    e = frame.reformat(width=w, height=h, format="rgb48le", src_color_range=full).to_ndarray().astype(np.float32)
    e /= 65535.0
    if frame.color_trc == _TRC_PQ:  # SMPTE ST 2084: signal to cd/m2
        m1, m2, c1, c2, c3 = 0.1593017578125, 78.84375, 0.8359375, 18.8515625, 18.6875
        p = np.power(e, 1 / m2)
        light = np.power(np.maximum(p - c1, 0) / (c2 - c3 * p), 1 / m1) * (10000.0 / _HDR_WHITE_NITS)
    else:  # HLG (ARIB STD-B67): signal to scene light, its reference white (75%) at 1, then
        # the system gamma of a 1,000 cd/m2 display (1.2), per channel as zscale applies it
        a, b, c = 0.17883277, 0.28466892, 0.55991073
        scene = np.where(e <= 0.5, e * e / 3, (np.exp((e - c) / a) + b) / 12)
        light = np.power(scene / ((np.exp((0.75 - c) / a) + b) / 12), 1.2)
    if getattr(frame, "color_primaries", None) == _PRIMARIES_BT2020:  # (HLG is also broadcast in BT.709)
        light = light @ np.asarray(_BT2020_TO_709, np.float32).T
    light = np.maximum(np.nan_to_num(light), 0)
    over = light > _KNEE
    light[over] = _KNEE + (1 - _KNEE) * (1 - np.exp(-(light[over] - _KNEE) / (1 - _KNEE)))
    srgb = np.where(light <= 0.0031308, light * 12.92, 1.055 * np.power(light, 1 / 2.4) - 0.055)
    return Image.fromarray(np.clip(np.rint(srgb * 255), 0, 255).astype(np.uint8), "RGB")


# A thumbnail frame darker or flatter than this (8-bit grey mean, standard deviation) is
# passed over for a later one: frames decoded on from it, at most THUMB_MAX_DECODE (about 5 s
# at 25 fps; fewer of larger pictures, see `_livelier`), then keyframes at these fractions of
# the duration. None livelier: it stays.
THUMB_DULL_MEAN = 16.0  # and flat as the fingerprint's frames are (FP_FLAT_STDDEV)
THUMB_MAX_DECODE = 120
THUMB_LATER = (0.25, 0.5, 0.75)


# Decoding on from the first frame that is not dull, while the picture still brightens (a
# fade-in, a phone's exposure settling): a frame brighter by THUMB_RISE (grey mean) than the
# one kept replaces it; THUMB_SETTLED frames in a row with no such rise end the fade.
THUMB_RISE = 2.0
THUMB_SETTLED = 6


def _grey(frame: Any) -> tuple[float, float]:
    """A frame's grey mean and standard deviation, at 64 px."""
    from PIL import ImageStat

    h = max(1, round(64 * frame.height / max(frame.width, 1)))
    st = ImageStat.Stat(frame.reformat(width=64, height=h, format="gray").to_image())
    return st.mean[0], st.stddev[0]


def _dull(frame: Any, grey: tuple[float, float] | None = None) -> bool:
    """Whether a frame is near black or one flat colour (its grey at 64 px)."""
    mean, stddev = grey or _grey(frame)
    return mean < THUMB_DULL_MEAN or stddev < FP_FLAT_STDDEV


def _livelier(c: Any, stream: Any, frames: Iterator[Any], duration: float | None) -> Any:
    """A frame that is not dull: decoding on from the dull one (on past the first that is
    not, while the picture brightens: the first out of a fade from black is hardly less
    dark), then from keyframes further in (`duration`: None when keyframe seeks do not
    work); None if none (or a later part does not decode: the dull frame stays). Decoding
    on costs as much as THUMB_MAX_DECODE frames of 1080p at the most (a quarter as many of
    4K)."""
    budget = float(THUMB_MAX_DECODE)
    kept, level, flat = None, 0.0, 0
    try:
        for frame in frames:
            grey = _grey(frame)
            if kept is None:
                if not _dull(frame, grey):
                    kept, level = frame, grey[0]
            elif grey[0] >= level + THUMB_RISE and not _dull(frame, grey):
                kept, level, flat = frame, grey[0], 0
            else:
                flat += 1
                if flat >= THUMB_SETTLED:
                    return kept
            budget -= max(1.0, frame.width * frame.height / (1920 * 1080))
            if budget <= 0:
                break
    except av.error.FFmpegError:
        return kept
    if kept is not None:
        return kept
    for f in THUMB_LATER if duration else ():
        try:
            c.seek(int(duration * f / stream.time_base) + (stream.start_time or 0), stream=stream, backward=True,
                   any_frame=False)
            frame = next(iter(c.decode(stream)), None)
        except av.error.FFmpegError:
            return None
        if frame is not None and not _dull(frame):
            return frame
    return None


# Video fingerprints: a frame at each of these fractions of the duration, never in the
# first seconds (intros and title cards shared by unrelated clips), skipping frames that
# are black or flat. Indexed by fraction, so two videos compare position by position.
FP_FRACTIONS = tuple(k / 10 for k in range(1, 10))
FP_SKIP_START = 3.0
FP_FLAT_STDDEV = 6.0
# The size (landscape; turned for a portrait frame) a fingerprint frame's colours are
# measured at: a 3x3 layout wants a few dozen pixels a side. The scaling costs about half
# a millisecond a frame at 1080p (a few at 4K HDR), small beside the frame's decode.
FP_COLOUR_SIZE = (48, 27)
FP_MAX_DECODE = 240  # frames decoded after a keyframe seek to reach the wanted time
# Frames decoded in all from the start of a file whose keyframe seeks decode nothing (an
# MPEG-TS clip with one keyframe): about 80 s of 25 fps video; positions past it are left out.
FP_LINEAR_MAX = 2000


def video_fingerprint(path: str | bytes, duration: float | None,
                      by_content: bool = False) -> tuple[list[dict[str, Any]], float | None, int, float | None]:
    """(k, position, pHash, grey, chroma) of frames at fixed fractions of the duration, via
    keyframe seeks; the pHash is computed in the Rust core from a small grey frame. Second:
    where the pictures end when that is well before the duration the header claims (a file
    cut short), else None; positions past it are left out rather than all given its last
    frame. Third: how many frames were decoded and looked at (0: none could be). Fourth:
    the first time sought whose way there held data that would not decode (damage in the
    middle: that position is left out), else None. Where the header
    gives no length to believe (`duration` None, 0, infinite, past a year), the video
    stream's is taken, else the one its packets' timestamps span; with none of them,
    UnknownLength says so."""
    import numpy as np
    from PIL import Image

    from .. import _core
    from .readers import colour_of

    name = path if isinstance(path, str) else path.decode("utf-8", "surrogateescape")
    out: list[dict[str, Any]] = []
    ended: float | None = None
    damaged: float | None = None
    decoded = 0
    slack = 0.5  # a frame is found at or after its target, unless the pictures stop first
    with _container(path, name, by_content) as c:
        vs = next((s for s in c.streams.video if not _is_cover(s)), None)
        if vs is None or not vs.time_base:
            return [], None, 0, None
        vs.thread_type = "AUTO"
        orientations = _track_orientations(path) if c.format and c.format.name.startswith("mov,") else {}
        measured = not _believable(duration)
        if measured:
            # No length in the header (a browser's MediaRecorder WebM), or none to believe:
            # the pictures' own, else measured from their timestamps.
            own = float(vs.duration * vs.time_base) if vs.duration and vs.duration > 0 else None
            duration = own if _believable(own) else _pictures_length(c, vs)
            if not _believable(duration):
                raise UnknownLength("its length is not known: no duration in its header, nor timestamps to tell it by")
        elif vs.duration and vs.time_base:  # the pictures' own length (sound may run on after them)
            duration = min(duration, float(vs.duration * vs.time_base)) or duration
        # The first seconds left out grow with the length, from none at 6 s to all three at
        # 9 s: a clip of 6.0 s and its copy of 6.02 s (a sound track a frame longer) take
        # their frames at the same times, as near-duplicates must (see schema 15).
        start = min(FP_SKIP_START, max(0.0, duration - 2 * FP_SKIP_START))
        t0 = _start(vs)
        linear: Iterator[Any] | None = None  # decoding on from the start, once a seek decoded nothing
        held = None  # its last frame
        budget = [FP_LINEAR_MAX]
        for k, f in enumerate(FP_FRACTIONS):
            t = max(start, f * duration)
            frame = _frame_after(c, vs, t) if linear is None else None
            if frame is OUT_OF_REACH:  # too far past its keyframe: left out, the next one may be near one
                continue
            if frame is DAMAGED:  # left out too; the extraction says where (a `decode` note)
                damaged = t if damaged is None else damaged
                continue
            if frame is None and linear is None and not decoded:
                # Not one seek has decoded anything: decode on from the start instead. (Once
                # one has, a seek that finds nothing is past where the pictures end.)
                linear = _frames_from_start(c, vs)
            if linear is not None:
                # Two fractions may want the same time (both within the first seconds): a
                # frame already decoded that reaches it serves again.
                if held is None or (held.time is not None and held.time < t0 + t - 0.02):
                    held = _next_at(linear, t0 + t, budget, settle=False)
                frame = held
            if frame is None:
                continue
            decoded += 1
            if frame.time is not None and frame.time + _shown_for(frame, vs) < t0 + t - slack:
                # The pictures stop before t: the last one, shown for as long as it lasts
                # (a slideshow's or a time-lapse's for seconds), does not reach it.
                ended = float(frame.time - t0)
                break
            # The frame as players show it, turned as the thumbnail is: a phone's portrait
            # clip, stored on its side, and a re-encode that turned its pixels upright (as
            # FFmpeg does) hashed about 30 bits apart (schema 26). 64 pixels wide once turned.
            rot, mirrored = _shown_turn(frame, vs, orientations)
            across = rot in (90, 270)
            w, h = (64, max(8, round(64 * frame.height / max(frame.width, 1)))) if not across else \
                (max(8, round(64 * frame.width / max(frame.height, 1))), 64)
            # An HDR frame as an SDR screen shows it, as its thumbnail: its signal read as
            # SDR lay further from an SDR copy's frame (see schema 15).
            hdr = getattr(frame, "color_trc", None) in (_TRC_PQ, _TRC_HLG)

            def shown(a: Any) -> Any:
                if mirrored:  # flipped left to right, then turned (see `mp4.matrix_turn`)
                    a = np.fliplr(a)
                if rot:  # `rot` counts counter-clockwise, as `np.rot90` turns
                    a = np.rot90(a, rot // 90)
                return np.ascontiguousarray(a)

            grey = shown(np.asarray(_sdr_picture(frame, w, h).convert("L")) if hdr
                         else frame.reformat(width=w, height=h, format="gray").to_ndarray())
            h, w = grey.shape
            if float(np.std(grey)) < FP_FLAT_STDDEV:
                continue  # black or flat: says nothing about the content
            phash, _ = _core.image_hashes(grey.tobytes(), w, h)
            # Its colours, as for pictures (`colour_of`): pHash sees brightness alone, and two
            # clips of one layout in other colours (one app's screen recordings, one title
            # style) lay a few bits apart (since schema 28).
            cw, ch = FP_COLOUR_SIZE if frame.width >= frame.height else FP_COLOUR_SIZE[::-1]
            colour = shown(np.asarray(_sdr_picture(frame, cw, ch)) if hdr
                           else frame.reformat(width=cw, height=ch, format="rgb24",
                                               **_colour_space(frame)).to_ndarray())
            no_colour, chroma = colour_of(Image.fromarray(colour))
            out.append({"k": k, "position": round(float(frame.time - t0 if frame.time is not None else t), 3),
                        "phash": phash, "grey": no_colour, "chroma": chroma})
    # Pictures that end before a length the header did not give say nothing of a cut.
    return out, None if measured else ended, decoded, damaged


def _shown_for(frame: Any, vs: Any) -> float:
    """Seconds a decoded frame stays on screen: its own duration where the file gives one,
    else the stream's average frame interval, else 0."""
    tb = frame.time_base or vs.time_base
    d = getattr(frame, "duration", None)
    if d and d > 0 and tb:
        return float(d * tb)
    rate = vs.average_rate or vs.guessed_rate
    return float(1 / rate) if rate and rate > 0 else 0.0


AFP_RATE = 11025  # what the Rust fingerprint expects


# Frames that fail to decode after which a fingerprint's decode gives up: bytes past the
# sound (a LYRICS tag, padding) fail a few times before the file ends.
_MOST_BAD_FRAMES = 64


def audio_fingerprint(path: str | bytes, by_content: bool = False) -> dict[str, Any]:
    """The audio fingerprint (Rust core) of the first two minutes, decoded with PyAV and
    resampled to mono float at 11,025 Hz: fingerprint bytes, frames, seconds covered; and
    `bad_at`, the seconds decoded before the first frame that would not (a damaged
    stretch), None when every one did or none decoded after them (a file cut short, bytes
    past the sound), with `bad_frames`, how many did not; and `lost`, the seconds the
    decoded frames' timestamps span beyond the sound they hold (frames lost in between
    without an error: a damaged FLAC's, Ogg pages that fail their CRC). A frame that does
    not decode is passed by, and the decode goes on."""
    from .. import _core

    name = path if isinstance(path, str) else path.decode("utf-8", "surrogateescape")
    chunks: list[bytes] = []
    need = AUDIO_FINGERPRINT_SECONDS * AFP_RATE * 4
    got = 0
    bad_at: float | None = None
    bad = 0
    after_bad = False  # (frames decoded after the first that would not: not the sound's end)
    # The time the decoded frames span, by their own timestamps, and the sound they hold:
    # fewer seconds of sound than of span are frames lost in between without an error.
    first: float | None = None
    last = held = 0.0
    with _container(path, name, by_content) as c:
        if not c.streams.audio:
            raise ValueError("no audio stream")
        stream = c.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=AFP_RATE)
        frames = c.decode(stream)
        while got < need:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except av.error.FFmpegError:
                # With nothing decoded before, the error stands; else the decode goes on
                # from the next packet (the fingerprint of what did decode stands).
                if not got:
                    raise
                bad += 1
                bad_at = got / 4 / AFP_RATE if bad_at is None else bad_at
                if bad >= _MOST_BAD_FRAMES:
                    break
                frames = c.decode(stream)
                continue
            after_bad = after_bad or bad_at is not None
            if frame.pts is not None and frame.sample_rate and frame.time_base:
                at = float(frame.pts * frame.time_base)
                first = at if first is None else first
                last = max(last, at + frame.samples / frame.sample_rate)
                held += frame.samples / frame.sample_rate
            for out in resampler.resample(frame):
                b = bytes(out.planes[0])[: out.samples * 4]
                chunks.append(b)
                got += len(b)
        if got < need:
            for out in resampler.resample(None):
                chunks.append(bytes(out.planes[0])[: out.samples * 4])
    pcm = b"".join(chunks)[:need]
    fp = _core.audio_fingerprint(pcm)
    return {"fingerprint": fp, "frames": len(fp) // 4, "seconds": round(len(pcm) / 4 / AFP_RATE, 3),
            "bad_at": bad_at if after_bad else None, "bad_frames": bad,
            "lost": max(0.0, (last - first) - held) if first is not None else 0.0}


# Containers whose header states the length (sample counts, an index), so a sound ending
# well before it was cut short. Raw streams (MP3 without a Xing, Info or VBRI frame,
# ADTS AAC, AC-3) only estimate it from the bitrate; libav takes Ogg's from the last page
# there is and WAV's from the file's size, which a cut moves too.
LENGTH_IN_HEADER = frozenset({"flac", "aiff", "matroska", "webm", "mp4", "m4a", "m4b", "mov", "3gp", "caf", "asf",
                              "wv", "ape", "dsf"})
_MP3_LENGTH_FRAME = re.compile(rb"Xing|Info|VBRI")


def length_in_header(fmt: str | None, path: str | bytes) -> bool:
    """Whether the file's header states its length (see LENGTH_IN_HEADER); an MP3 does in
    the Xing, Info or VBRI frame encoders put first: in the first frame after any ID3v2
    tags and the padding some taggers leave."""
    if fmt in LENGTH_IN_HEADER:
        return True
    if fmt != "mp3":
        return False
    try:
        with open(path, "rb") as f:
            at = 0
            while True:
                f.seek(at)
                head = f.read(10)
                if head[:3] != b"ID3" or len(head) < 10:
                    break  # an ID3v2 tag: its size, 4 bytes of 7 bits, and a footer when flagged
                at += 10 + ((head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7
                            | (head[9] & 0x7F)) + (10 if head[5] & 0x10 else 0)
            f.seek(at)
            data = f.read(65536)
    except OSError:
        return False
    sync = re.search(rb"\xff[\xe0-\xff]", data)
    return bool(sync and _MP3_LENGTH_FRAME.search(data, sync.start(), sync.start() + 200))


class CannotDecode(Exception):
    """The file's sound has a decoder libav cannot open."""


def demuxed_length(path: str | bytes, by_content: bool = False, budget_s: float | None = None) -> float | None:
    """Seconds the one sound stream's packets span, read without decoding: the length of
    an MP3 whose header states none (no Xing, Info or VBRI frame), where libav's own is
    the file's size over its first frame's bitrate, wrong for a variable bitrate. None
    when it cannot be told (several sound streams, packets without times), or reading
    them takes over `budget_s` seconds (a film's DTS track of gigabytes on a slow disk)."""
    import time

    deadline = None if budget_s is None else time.monotonic() + budget_s
    name = path if isinstance(path, str) else path.decode("utf-8", "surrogateescape")
    with _container(path, name, by_content) as c:
        if len(c.streams.audio) != 1:
            return None
        stream = c.streams.audio[0]
        start = end = None
        for n, packet in enumerate(c.demux(stream)):
            if deadline is not None and n % 4096 == 0 and time.monotonic() > deadline:
                return None
            if packet.pts is None or not packet.duration:
                continue
            start = packet.pts if start is None else min(start, packet.pts)
            end = packet.pts + packet.duration if end is None else max(end, packet.pts + packet.duration)
        if start is None or end is None or not stream.time_base:
            return None
        return float((end - start) * stream.time_base)


# Seconds `packet_spans` reads for: a file of hours on a slow disk is left without a
# length rather than run into the per-file timeout (30 s by default) and lose the rest.
SPAN_BUDGET_S = 10.0


def decoded_length(path: str | bytes, by_content: bool = False, budget_s: float = SPAN_BUDGET_S) -> float | None:
    """Seconds of sound the one sound stream decodes to, counted in samples: the length of
    a file whose header and timestamps cannot be trusted (a FLAC whose header states no
    sample rate: libav's timestamps then run at a rate of its own). None when it cannot
    be told (several sound streams, nothing decodes) or decoding takes over `budget_s`."""
    import time

    deadline = time.monotonic() + budget_s
    name = path if isinstance(path, str) else path.decode("utf-8", "surrogateescape")
    seconds = 0.0
    with _container(path, name, by_content) as c:
        if len(c.streams.audio) != 1:
            return None
        try:
            for frame in c.decode(c.streams.audio[0]):
                if time.monotonic() > deadline:  # (each frame: one may hold 65,535 samples of 8 channels)
                    return None
                if frame.sample_rate:
                    seconds += frame.samples / frame.sample_rate
        except av.error.FFmpegError:
            pass  # damage further on: what decoded before it
    return seconds or None


def packet_spans(path: str | bytes, by_content: bool = False, budget_s: float = SPAN_BUDGET_S) -> dict[int, float]:
    """Seconds each audio and video stream's packets span (cover pictures aside), by
    stream index: every packet read, none decoded. A packet without a duration (a
    Matroska SimpleBlock) lasts a frame at the stream's average rate. Streams whose
    packets carry no times are left out; damage further on leaves the spans read so far;
    none at all when reading them takes over `budget_s` seconds."""
    import time

    deadline = time.monotonic() + budget_s
    name = path if isinstance(path, str) else path.decode("utf-8", "surrogateescape")
    spans: dict[int, list[int]] = {}
    with _container(path, name, by_content) as c:
        streams = [s for s in c.streams if s.type in ("audio", "video") and s.time_base and not _is_cover(s)]
        if not streams:
            return {}
        frame = {s.index: int(1 / (s.average_rate * s.time_base)) if s.type == "video" and s.average_rate else 0
                 for s in streams}
        bases = {s.index: s.time_base for s in streams}
        try:
            for n, packet in enumerate(c.demux(streams)):
                if n % 4096 == 0 and time.monotonic() > deadline:
                    return {}
                if packet.pts is None:
                    continue
                end = packet.pts + (packet.duration or frame[packet.stream_index])
                span = spans.setdefault(packet.stream_index, [packet.pts, end])
                span[0], span[1] = min(span[0], packet.pts), max(span[1], end)
        except av.error.FFmpegError:
            pass
    return {k: float((hi - lo) * bases[k]) for k, (lo, hi) in spans.items() if hi > lo}


def sound_end(path: str | bytes, claimed: float, by_content: bool = False) -> float | None:
    """Where the sound of a file whose header claims `claimed` seconds ends, when that is
    well before (a download or copy that stopped); None when it plays to about its end,
    or nothing can be told (several sound streams: which one ends where). A seek to
    shortly before the end and a decode to the end; when nothing decodes there, seeks
    halving the span between the start and that point, then a decode from the last one
    that found sound to where it ends. Times count from the stream's start."""
    name = path if isinstance(path, str) else path.decode("utf-8", "surrogateescape")
    with _container(path, name, by_content) as c:
        if len(c.streams.audio) != 1:
            return None
        stream = c.streams.audio[0]
        start = float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0

        def reached(t: float, whole: bool) -> float | None:
            """The end of the sound decoded from a seek to `t` (to the file's end when
            `whole`, else one frame's), None when nothing decodes there."""
            try:
                c.seek(int((start + t) / stream.time_base), stream=stream, backward=True, any_frame=False)
            except (av.error.FFmpegError, OverflowError):
                return None
            end = None
            for _ in range(_MOST_BAD_FRAMES):
                try:
                    for frame in c.decode(stream):
                        if frame.pts is not None and frame.sample_rate:
                            end = float(frame.pts * frame.time_base) - start + frame.samples / frame.sample_rate
                            if not whole:
                                return end
                    return end
                except av.error.FFmpegError as e:
                    if not getattr(stream.codec_context, "is_open", True):
                        # The decoder would not open (HE-AAC v2 from FFmpeg's own encoder: "SBR+PS
                        # not implemented"): nothing of the sound can be told, least of all that it
                        # was cut short.
                        raise CannotDecode(f"libav cannot decode this {stream.codec_context.name} sound "
                                           f"({e.strerror or e})") from None
                    if not whole:
                        return end
                    # The bytes end mid-frame (a cut: nothing decodes after), or a damaged
                    # stretch (the sound goes on after it, and is no cut): decoded on.
            return end

        slack = max(1.5, claimed / 200)
        end = reached(max(0.0, claimed - 10), True)
        if end is None:
            lo, hi = 0.0, max(0.0, claimed - 10)
            while hi - lo > slack:
                mid = (lo + hi) / 2
                got = reached(mid, False)
                if got is None:
                    hi = mid
                else:
                    lo = max(mid, got)
            end = reached(lo, True)
            if end is None:
                # Nothing decodes after any seek: sound up to `lo`, at most. Within the
                # slack of the claim (a file of one frame, 0.1 s of FLAC), that says nothing.
                end = lo
        return end if end < claimed - slack else None


def _start(stream: Any) -> float:
    """Where the stream's timestamps start, in seconds (MPEG-TS: 1.4 s, say)."""
    return float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0


def _frame_after(c: Any, stream: Any, t: float) -> Any:
    """The first decoded frame at or after `t` seconds from the stream's start (keyframe
    seek, then decode on); None when nothing decodes after the seek; OUT_OF_REACH when `t`
    is more than FP_MAX_DECODE frames past the keyframe (a long group of pictures: that
    says nothing of where the pictures end, nor of whether seeks work)."""
    try:
        c.seek(int(t / stream.time_base) + (stream.start_time or 0), stream=stream, backward=True, any_frame=False)
    except av.error.FFmpegError:
        return None
    try:
        return _next_at(c.decode(stream), _start(stream) + t, [FP_MAX_DECODE], settle=OUT_OF_REACH)
    except av.error.InvalidDataError:
        # Damaged data on the way to `t` (a stretch of the file overwritten): this position
        # is left out, and the others still make the fingerprint. (It raised, and the whole
        # fingerprint was lost: a damaged copy never grouped with its whole original.)
        return DAMAGED


class UnknownLength(ValueError):
    """A video with no length to take its fingerprint's frames at (`video_fingerprint`)."""


def _believable(length: float | None) -> bool:
    return bool(length) and math.isfinite(length) and 0 < length <= LONGEST_S  # type: ignore[arg-type]


def _pictures_length(c: Any, stream: Any) -> float | None:
    """How long the video stream runs, from its packets' timestamps: every packet is read,
    none decoded. None when they give none."""
    end = None
    try:
        for packet in c.demux(stream):
            if packet.pts is not None:
                e = packet.pts + (packet.duration or 0)
                end = e if end is None else max(end, e)
    except av.error.FFmpegError:  # damaged further on: the timestamps read so far stand
        pass
    try:
        c.seek(0)
    except av.error.FFmpegError:
        return None
    if end is None:
        return None
    return float((end - (stream.start_time or 0)) * stream.time_base)


def _frames_from_start(c: Any, stream: Any) -> Iterator[Any]:
    """Frames decoded from the file's start. For files where a keyframe seek lands past
    the only keyframe and nothing decodes after it: an MPEG-TS clip from a camcorder or
    a recorder is one long group of pictures, and its demuxer seeks by byte position."""
    try:
        c.seek(0)
    except av.error.FFmpegError:
        return iter(())
    return iter(c.decode(stream))


# What `_frame_after` gives for a time too far past the keyframe to decode to.
OUT_OF_REACH = object()
# What `_frame_after` gives where the data on the way to the wanted time does not decode.
DAMAGED = object()


def _next_at(frames: Iterator[Any], at: float, budget: list[int], settle: Any = True) -> Any:
    """The next frame of `frames` at or after `at` seconds (timestamps as the stream has
    them), decoding at most `budget[0]` frames (spent in place). When the frames end
    first: the last one decoded (the pictures stop early), or None if none decoded. When
    the budget ends first: with `settle` True, the frame reached; else `settle` itself
    (False: None), for the wanted time is out of reach, which says nothing of where the
    pictures end."""
    last = None
    while budget[0] > 0:
        frame = next(frames, None)
        if frame is None:
            return last
        last = frame
        budget[0] -= 1
        if frame.time is None or frame.time >= at - 0.02:
            return frame
    return last if settle is True else (None if settle is False else settle)


def _scaled(w: int, h: int, size: int) -> tuple[int, int]:
    """The frame scaled in libswscale, straight to the thumbnail's size."""
    if max(w, h) <= size:
        return w, h
    k = size / max(w, h)
    return max(1, round(w * k)), max(1, round(h * k))
