"""A corpus for the metadata tests, made with real encoders: PyAV for H.264/HEVC/AV1
video and AAC/Opus/FLAC/MP3/PCM audio in several containers, Pillow for JPEG (EXIF with
GPS and orientation), PNG, animated GIF and WebP, mutagen for tags and cover art; plus
corrupt, truncated, empty, mislabelled, oversized and very long files.

`EXPECTED` records what was written, so tests compare each field with its source.
"""

from __future__ import annotations

import io
import math
import struct
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

from PIL import Image, ImageDraw

COVER_SIZE = (300, 200)


def picture(w: int, h: int, seed: int) -> Image.Image:
    img = Image.new("RGB", (w, h), ((seed * 40) % 256, 90, 160))
    d = ImageDraw.Draw(img)
    for k in range(4):
        x, y = (seed * 17 + k * 23) % max(w - 20, 1), (seed * 11 + k * 13) % max(h - 20, 1)
        d.ellipse((x, y, x + 20 + k * 6, y + 20 + k * 6), fill=(250 - k * 60, 200, (seed * 90) % 256))
    return img


def _dms(v: float) -> tuple[float, float, float]:
    v = abs(v)
    d = int(v)
    m = int((v - d) * 60)
    return (float(d), float(m), round(((v - d) * 60 - m) * 60, 4))


def jpeg_with_exif(path: Path, *, size: tuple[int, int], orientation: int, gps: tuple[float, float, float]) -> None:
    ex = Image.Exif()
    ex[0x010F] = "Canon"
    ex[0x0110] = "Canon EOS R5"
    ex[0x0112] = orientation
    ex[0x0131] = "MediaForge tests"
    sub = ex.get_ifd(0x8769)
    sub[0x9003] = "2019:07:14 10:30:05"
    sub[0x9011] = "+02:00"
    sub[0x829A] = 1 / 250
    sub[0x829D] = 2.8
    sub[0x8827] = 400
    sub[0x920A] = 35.0
    sub[0xA434] = "RF24-105mm F4 L IS USM"
    g = ex.get_ifd(0x8825)
    g[1], g[2] = ("N" if gps[0] >= 0 else "S"), _dms(gps[0])
    g[3], g[4] = ("E" if gps[1] >= 0 else "W"), _dms(gps[1])
    g[5], g[6] = (0 if gps[2] >= 0 else 1), abs(gps[2])  # 1: below sea level
    picture(*size, 3).save(path, "JPEG", quality=90, exif=ex)


def _video(path: Path, codec: str, fmt: str | None, size: tuple[int, int], frames: int, rate: int = 24,
           options: dict[str, str] | None = None, metadata: dict[str, str] | None = None,
           rotation: int = 0, pix_fmt: str = "yuv420p", codec_settings: dict[str, Any] | None = None,
           frame_picture: Callable[[int], Image.Image] | None = None, sound: str | None = None,
           chapters: int = 0) -> None:
    """A video of `frames` frames; with `sound`, a 5.1 AAC track in French beside it, and
    with `chapters`, that many chapters of equal length."""
    import av

    with av.open(str(path), "w", format=fmt) as out:
        if metadata:
            out.metadata.update(metadata)
        if chapters:
            out.set_chapters([{"id": k + 1, "start": k * frames // chapters, "end": (k + 1) * frames // chapters,
                               "time_base": Fraction(1, rate), "metadata": {"title": f"Part {k + 1}"}}
                              for k in range(chapters)])
        st = out.add_stream(codec, rate=rate)
        st.width, st.height, st.pix_fmt = size[0], size[1], pix_fmt
        if rotation:
            st.set_display_rotation(rotation)  # a phone held upright
        st.options = options or {}
        for k, v in (codec_settings or {}).items():  # colour tags, sample aspect ratio
            setattr(st.codec_context, k, v)
        audio = _surround_stream(out, sound) if sound else None
        for i in range(frames):
            img = frame_picture(i) if frame_picture else picture(*size, i)
            frame = av.VideoFrame.from_image(img).reformat(format=pix_fmt)
            frame.pts = i
            for p in st.encode(frame):
                out.mux(p)
        for p in st.encode():
            out.mux(p)
        if audio is not None:
            _silence(out, audio, seconds=frames / rate)


def _surround_stream(out: Any, codec: str) -> Any:
    st = out.add_stream(codec, rate=48000)
    st.layout = "5.1"
    st.metadata["language"] = "fra"
    return st


def _silence(out: Any, st: Any, seconds: float, layout: str = "5.1") -> None:
    import av

    n = st.codec_context.frame_size or 1024
    for k in range(int(seconds * 48000) // n + 1):
        frame = av.AudioFrame(format=st.format.name, layout=layout, samples=n)
        for plane in frame.planes:
            plane.update(b"\0" * plane.buffer_size)
        frame.sample_rate, frame.pts, frame.time_base = 48000, k * n, Fraction(1, 48000)
        for p in st.encode(frame):
            out.mux(p)
    for p in st.encode():
        out.mux(p)


def _audio(path: Path, codec: str, fmt: str, seconds: float, rate: int = 44100, layout: str = "stereo",
           sample_fmt: str | None = None, bit_rate: int | None = None) -> None:
    import array

    import av

    with av.open(str(path), "w", format=fmt) as out:
        st = out.add_stream(codec, rate=rate)
        st.layout = layout
        if sample_fmt:
            st.codec_context.format = sample_fmt
        if bit_rate:  # for encoders that want one (WMA), which then tell their frame size once open
            st.bit_rate = bit_rate
            st.codec_context.open()
        sample_fmt = st.format.name
        channels = len(st.layout.channels)
        n = st.codec_context.frame_size or 1024
        pts, total = 0, int(seconds * rate)
        while pts < total:
            vals = [math.sin(2 * math.pi * 440 * (pts + i) / rate) * 0.3 for i in range(n)]
            if sample_fmt.startswith("s16"):
                one = array.array("h", (int(v * 32767) for v in vals))
            elif sample_fmt.startswith("s32"):
                one = array.array("i", (int(v * 2_000_000_000) for v in vals))
            else:
                one = array.array("f", vals)
            frame = av.AudioFrame(format=sample_fmt, layout=layout, samples=n)
            if sample_fmt.endswith("p"):
                for c in range(channels):
                    frame.planes[c].update(one.tobytes())
            else:
                inter = array.array(one.typecode, [x for x in one for _ in range(channels)])
                frame.planes[0].update(inter.tobytes())
            frame.sample_rate, frame.pts, frame.time_base = rate, pts, Fraction(1, rate)
            for p in st.encode(frame):
                out.mux(p)
            pts += n
        for p in st.encode():
            out.mux(p)


def cover_jpeg() -> bytes:
    buf = io.BytesIO()
    picture(*COVER_SIZE, 9).save(buf, "JPEG", quality=85)
    return buf.getvalue()


MB_ALBUM = "5b11f4ce-a62d-471e-81fc-a69a8278c7da"
MB_TRACK = "1c5f4c6e-6b1a-4c5e-9a0c-3f2d5b9e8a71"


def _tag_mp3(path: Path) -> None:
    from mutagen import id3

    t = id3.ID3()
    t.add(id3.TIT2(encoding=3, text="Mp3 Title"))
    t.add(id3.TPE1(encoding=3, text="Mp3 Artist"))
    t.add(id3.TALB(encoding=3, text="Mp3 Album"))
    t.add(id3.TPE2(encoding=3, text="Album Artist"))
    t.add(id3.TRCK(encoding=3, text="3/12"))
    t.add(id3.TPOS(encoding=3, text="1/2"))
    t.add(id3.TDRC(encoding=3, text="2017-05-01"))
    t.add(id3.TCON(encoding=3, text="Jazz"))
    t.add(id3.TCOM(encoding=3, text="A Composer"))
    t.add(id3.TXXX(encoding=3, desc="MusicBrainz Album Id", text=MB_ALBUM))
    t.add(id3.TXXX(encoding=3, desc="REPLAYGAIN_TRACK_GAIN", text="-6.50 dB"))
    t.add(id3.TXXX(encoding=3, desc="replaygain_track_peak", text="0.988"))  # lower case, as foobar2000 writes
    t.add(id3.RVA2(desc="album", channel=1, gain=-3.0, peak=0.5))  # ID3v2.4's own volume frame
    t.add(id3.APIC(encoding=3, mime="image/jpeg", type=3, desc="Cover", data=cover_jpeg()))
    t.save(str(path))


def _tag_flac(path: Path) -> None:
    from mutagen.flac import FLAC, Picture

    f = FLAC(str(path))
    f["title"], f["artist"], f["album"], f["albumartist"] = "Flac Title", "Flac Artist", "Flac Album", "Various"
    f["tracknumber"], f["tracktotal"], f["discnumber"], f["date"] = "7", "9", "2", "1999"
    f["genre"], f["musicbrainz_trackid"], f["replaygain_album_gain"] = "Classical", MB_TRACK, "+1.25 dB"
    pic = Picture()
    pic.type, pic.mime, pic.data = 3, "image/jpeg", cover_jpeg()
    f.add_picture(pic)
    f.save()


def _tag_m4a(path: Path) -> None:
    from mutagen.mp4 import MP4, MP4FreeForm

    f = MP4(str(path))
    # iTunes writes the release date as a full timestamp: a song's date, not when it was recorded.
    f["\xa9nam"], f["\xa9ART"], f["\xa9alb"] = "M4a Title", "M4a Artist", "M4a Album"
    f["\xa9day"] = "2010-02-03T00:00:00Z"
    f["trkn"], f["disk"], f["\xa9gen"] = [(4, 10)], [(1, 1)], "Pop"
    f["----:com.apple.iTunes:REPLAYGAIN_TRACK_GAIN"] = [MP4FreeForm(b"-2.10 dB")]
    f["----:com.apple.iTunes:MusicBrainz Album Id"] = [MP4FreeForm(MB_ALBUM.encode())]
    f.save()


def _tag_opus(path: Path) -> None:
    from mutagen.oggopus import OggOpus

    f = OggOpus(str(path))
    f["title"], f["artist"], f["album"], f["tracknumber"], f["date"] = "Opus Title", "Opus Artist", "Opus Album", "5", "2020"
    f["R128_TRACK_GAIN"], f["R128_ALBUM_GAIN"] = "-512", "256"  # Q7.8 dB towards -23 LUFS (RFC 7845)
    f["discnumber"], f["TOTALTRACKS"], f["TOTALDISCS"] = "1", "11", "2"  # totals as foobar2000 names them
    f.save()


def _tag_mp3gain(path: Path) -> None:
    """What mp3gain leaves: ID3 for the title, an APEv2 tag at the end for the gain."""
    from mutagen import id3
    from mutagen.apev2 import APEv2

    t = id3.ID3()
    t.add(id3.TIT2(encoding=3, text="Gained"))
    t.save(str(path))
    ape = APEv2()
    ape["REPLAYGAIN_TRACK_GAIN"], ape["REPLAYGAIN_TRACK_PEAK"] = "+1.40 dB", "0.812"
    ape.save(str(path))


# TIFF field types, for the DNG writer below.
_BYTE, _ASCII, _SHORT, _LONG, _RATIONAL, _SRATIONAL = 1, 2, 3, 4, 5, 10


def _ifd(entries: list[tuple[int, int, Any]], at: int) -> bytes:
    """A little-endian TIFF IFD placed at offset `at`, its long values right after it."""
    entries = sorted(entries)
    head = 2 + 12 * len(entries) + 4
    body, extra = struct.pack("<H", len(entries)), b""
    for tag, typ, vals in entries:
        if typ == _ASCII:
            data, count = vals.encode() + b"\0", len(vals) + 1
        elif typ in (_RATIONAL, _SRATIONAL):
            data = struct.pack("<" + ("II" if typ == _RATIONAL else "ii") * len(vals), *(x for v in vals for x in v))
            count = len(vals)
        else:
            data, count = struct.pack("<" + {_BYTE: "B", _SHORT: "H", _LONG: "I"}[typ] * len(vals), *vals), len(vals)
        if len(data) <= 4:
            body += struct.pack("<HHI", tag, typ, count) + data.ljust(4, b"\0")
        else:
            body += struct.pack("<HHII", tag, typ, count, at + head + len(extra))
            extra += data + b"\0" * (len(data) % 2)
    return body + struct.pack("<I", 0) + extra


def dng(path: Path, raw_size: tuple[int, int], preview_size: tuple[int, int]) -> None:
    """A DNG as cameras and Adobe's converter lay it out: IFD 0 holds a small RGB preview,
    the camera's tags and EXIF; a sub-IFD holds the sensor's 16-bit RGGB Bayer mosaic."""
    (W, H), (w, h) = raw_size, preview_size
    mosaic = b"".join(struct.pack("<H", 4000 + (x * 97 + y * 13) % 3000 + 8000 * ((x // 16 + y // 16) % 2))
                      for y in range(H) for x in range(W))
    preview = bytes(v for y in range(h) for x in range(w) for v in ((x * 5) % 256, (y * 7) % 256, 128))
    prev_at = 8
    raw_at = prev_at + len(preview)
    ifd0_at = raw_at + len(mosaic) + (raw_at + len(mosaic)) % 2

    def ifd0(sub_at: int, exif_at: int) -> list[tuple[int, int, Any]]:
        return [
            (254, _LONG, [1]), (256, _LONG, [w]), (257, _LONG, [h]), (258, _SHORT, [8, 8, 8]), (259, _SHORT, [1]),
            (262, _SHORT, [2]), (271, _ASCII, "Nikon"), (272, _ASCII, "Z 6"), (273, _LONG, [prev_at]),
            (274, _SHORT, [1]), (277, _SHORT, [3]), (278, _LONG, [h]), (279, _LONG, [len(preview)]),
            (284, _SHORT, [1]), (330, _LONG, [sub_at]), (34665, _LONG, [exif_at]),
            (50706, _BYTE, [1, 4, 0, 0]), (50707, _BYTE, [1, 1, 0, 0]), (50708, _ASCII, "Nikon Z 6"),
            (50721, _SRATIONAL, [(1, 1), (0, 1), (0, 1), (0, 1), (1, 1), (0, 1), (0, 1), (0, 1), (1, 1)]),
            (50728, _RATIONAL, [(1, 2), (1, 1), (1, 2)]), (50778, _SHORT, [21]),
        ]

    sub_at = ifd0_at + len(_ifd(ifd0(0, 0), ifd0_at))
    sub = _ifd([
        (254, _LONG, [0]), (256, _LONG, [W]), (257, _LONG, [H]), (258, _SHORT, [16]), (259, _SHORT, [1]),
        (262, _SHORT, [32803]), (273, _LONG, [raw_at]), (277, _SHORT, [1]), (278, _LONG, [H]),
        (279, _LONG, [len(mosaic)]), (284, _SHORT, [1]), (33421, _SHORT, [2, 2]), (33422, _BYTE, [0, 1, 1, 2]),
        (50714, _LONG, [0]), (50717, _LONG, [65535]),
    ], sub_at)
    exif_at = sub_at + len(sub)
    exif = _ifd([(36867, _ASCII, "2021:05:06 07:08:09"), (33434, _RATIONAL, [(1, 125)]), (34855, _SHORT, [800])],
                exif_at)
    out = b"II*\0" + struct.pack("<I", ifd0_at) + preview + mosaic
    out = out.ljust(ifd0_at, b"\0") + _ifd(ifd0(sub_at, exif_at), ifd0_at)
    assert len(out) == sub_at
    path.write_bytes(out + sub + exif)


# A clip whose picture is one flat colour per second, a keyframe each second: the
# thumbnail (a keyframe seek to 10% of 10 s) must show second 1's colour.
SECOND_COLOURS = [(40 + 20 * k, 200 - 15 * k, (90 * k) % 256) for k in range(10)]


def slow_jpeg(path: Path, repeats: int, side: int = 2000) -> None:
    """A valid grey progressive JPEG whose first AC scan is repeated `repeats` times:
    libjpeg decodes every repeat (about 0.25 ms each at 2000x2000 here), so the file is
    small but its decode takes as long as wanted: a worker busy on one real file."""
    b = io.BytesIO()
    Image.new("L", (side, side), 128).save(b, "JPEG", progressive=True)
    d = b.getvalue()
    pos, scans = 2, []
    while d[pos + 1] != 0xD9:
        end = pos + 2 + struct.unpack(">H", d[pos + 2:pos + 4])[0]
        if d[pos + 1] == 0xDA:  # a scan: its header, then entropy data up to the next marker
            while not (d[end] == 0xFF and d[end + 1] not in (0, *range(0xD0, 0xD8))):
                end += 1
            scans.append(d[pos:end])
        pos = end
    # An AC scan (spectral start >= 1) that is a first pass (successive approximation high = 0).
    ac = next(x for x in scans if x[4 + 2 * x[4] + 1] >= 1 and x[4 + 2 * x[4] + 3] >> 4 == 0)
    path.write_bytes(d[:-2] + ac * repeats + b"\xff\xd9")


def silent_wav(path: Path, hours: float, rate: int = 8000) -> None:
    """A valid 16-bit mono WAV of `hours` of silence, written sparse (no disk used)."""
    data = int(hours * 3600 * rate) * 2
    header = b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE" + b"fmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", data)
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(len(header) + data)


XMP_SIDECAR = b"""<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/"
  xmlns:lr="http://ns.adobe.com/lightroom/1.0/" xmlns:exif="http://ns.adobe.com/exif/1.0/"
  xmp:Rating="4" exif:DateTimeOriginal="2019-07-14T10:30:05+02:00">
 <dc:subject><rdf:Bag><rdf:li>paris</rdf:li><rdf:li>family</rdf:li></rdf:Bag></dc:subject>
 <lr:hierarchicalSubject><rdf:Bag><rdf:li>places|france|paris</rdf:li></rdf:Bag></lr:hierarchicalSubject>
 <dc:title><rdf:Alt><rdf:li xml:lang="x-default">Eiffel tower</rdf:li></rdf:Alt></dc:title>
</rdf:Description></rdf:RDF></x:xmpmeta>
<?xpacket end="w"?>
"""
TAKEOUT = (b'{"title": "beach.jpg", "description": "", "photoTakenTime": {"timestamp": "1563098400"},'
           b' "geoData": {"latitude": 43.2965, "longitude": 5.3698, "altitude": 12.0}, "favorited": true}')

GPS = (48.8583701, 2.2944813, 35.0)


def build(root: Path) -> dict[str, Path]:
    """Write the corpus under `root`; returns label -> path."""
    root.mkdir(parents=True, exist_ok=True)
    p = {k: root / v for k, v in {
        "jpeg": "photos/IMG_0001.JPG", "jpeg_rot": "photos/IMG_0002.jpg", "png": "photos/map.png",
        "gif": "photos/anim.gif", "webp": "photos/pic.webp", "xmp": "photos/IMG_0001.JPG.xmp",
        "takeout_img": "photos/beach.jpg", "takeout": "photos/beach.jpg.json",
        "h264": "video/h264.mp4", "portrait": "video/portrait.mp4", "hevc": "video/hevc.mkv", "av1": "video/av1.webm",
        "jpeg_west": "photos/IMG_0003.jpg", "hdr": "video/hdr10.mp4", "anamorphic": "video/dvd.mkv",
        "colours": "video/colours.mp4", "mp3gain": "music/mp3gain.mp3", "dng": "photos/DSC_0001.dng",
        "tiff_raw": "broken/DSC_0002.NEF", "talk": "video/talk.mp4", "alac": "music/lossless.m4a",
        "mp3": "music/song.mp3", "flac": "music/song.flac", "m4a": "music/song.m4a", "opus": "music/song.opus",
        "wav_long": "music/ten hours of silence.wav",
        "truncated_mp4": "broken/truncated.mp4", "corrupt_jpeg": "broken/corrupt.jpg", "empty": "broken/empty.mp3",
        "wrong_ext": "broken/photo.mp4", "bomb": "broken/bomb.png", "bad_heic": "broken/bad.heic", "fake_raw": "broken/IMG_9999.CR2",
        "unknown_codec": "broken/unknown codec.mkv", "unknown_codec_jpg": "broken/IMG_5000.JPG", "heic": "photos/phone.heic", "avif": "photos/still.avif",
        "odd": "odd/caf\udce9 \n line.png",
    }.items()}
    for f in p.values():
        f.parent.mkdir(parents=True, exist_ok=True)
    jpeg_with_exif(p["jpeg"], size=(640, 480), orientation=1, gps=GPS)
    jpeg_with_exif(p["jpeg_rot"], size=(640, 480), orientation=6, gps=(-33.8568, 151.2153, 5.0))
    jpeg_with_exif(p["jpeg_west"], size=(320, 240), orientation=1, gps=(40.6892, -74.0445, -12.5))
    picture(120, 80, 4).save(p["png"], "PNG")
    frames = [picture(60, 40, i) for i in range(3)]
    frames[0].save(p["gif"], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    picture(100, 50, 6).save(p["webp"], "WEBP", quality=80)
    p["xmp"].write_bytes(XMP_SIDECAR)
    picture(200, 100, 8).save(p["takeout_img"], "JPEG")
    p["takeout"].write_bytes(TAKEOUT)
    _video(p["h264"], "libx264", None, (320, 240), 48, options={"preset": "ultrafast"},
           metadata={"creation_time": "2019-07-14T08:30:05.000000Z"})
    # An AVIF still from PyAV's AV1 encoder (Pillow here may have no AVIF plugin: then
    # MediaForge reads it with PyAV).
    _video(p["avif"], "libsvtav1", "avif", (128, 96), 1, rate=1, options={"preset": "12"})
    _video(p["portrait"], "libx264", None, (320, 180), 24, options={"preset": "ultrafast"}, rotation=90)
    _video(p["hevc"], "libx265", "matroska", (256, 144), 24, options={"preset": "ultrafast", "x265-params": "log-level=0"})
    _video(p["av1"], "libsvtav1", "webm", (192, 128), 12, options={"preset": "12"})
    _video(p["talk"], "libx264", "mp4", (160, 120), 24, options={"preset": "ultrafast"}, sound="aac", chapters=2)
    # HDR10: 10-bit HEVC tagged PQ over BT.2020.
    _video(p["hdr"], "libx265", "mp4", (256, 144), 12, pix_fmt="yuv420p10le",
           codec_settings={"color_trc": 16, "color_primaries": 9, "colorspace": 9},
           options={"preset": "ultrafast",
                    "x265-params": "log-level=0:colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc"})
    # Anamorphic widescreen: 360x240 stored, pixels 32:27 wide, shown 16:9.
    _video(p["anamorphic"], "libx264", "matroska", (360, 240), 12, options={"preset": "ultrafast"},
           codec_settings={"sample_aspect_ratio": Fraction(32, 27)})
    _video(p["colours"], "libx264", "mp4", (96, 64), 40, rate=4, options={"preset": "ultrafast", "g": "4"},
           frame_picture=lambda i: Image.new("RGB", (96, 64), SECOND_COLOURS[i // 4]))
    _audio(p["mp3"], "libmp3lame", "mp3", 1.0)
    _tag_mp3(p["mp3"])
    _audio(p["alac"], "alac", "ipod", 0.5)
    _audio(p["mp3gain"], "libmp3lame", "mp3", 0.5)
    _tag_mp3gain(p["mp3gain"])
    _audio(p["flac"], "flac", "flac", 1.0)
    _tag_flac(p["flac"])
    _audio(p["m4a"], "aac", "ipod", 1.0)
    _tag_m4a(p["m4a"])
    _audio(p["opus"], "libopus", "ogg", 1.0, rate=48000)
    _tag_opus(p["opus"])
    silent_wav(p["wav_long"], 10)
    data = p["h264"].read_bytes()
    p["truncated_mp4"].write_bytes(data[: len(data) // 2])  # the moov box is at the end: cut off
    p["corrupt_jpeg"].write_bytes(b"\xff\xd8\xff\xe0" + bytes((i * 31 + 7) % 256 for i in range(5000)))
    p["empty"].write_bytes(b"")
    p["wrong_ext"].write_bytes(p["jpeg"].read_bytes())
    Image.new("1", (12000, 12000)).save(p["bomb"], "PNG")
    p["bad_heic"].write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64)
    picture(90, 70, 12).save(p["odd"], "PNG")
    # A RAW name over bytes no RAW decoder accepts (TIFF magic, then garbage).
    dng(p["dng"], (256, 192), (160, 120))
    # A TIFF under a RAW name: LibRaw refuses it, Pillow reads it (as it would a RAW's preview).
    picture(160, 120, 13).save(p["tiff_raw"], "TIFF")
    p["fake_raw"].write_bytes(b"II*\x00\x08\x00\x00\x00" + bytes((i * 13 + 5) % 256 for i in range(4000)))
    # A Matroska video whose codec id libav does not know: its stream has no codec context.
    # Once as .mkv, once under a photo's name (read by PyAV after Pillow gives up).
    _video(p["unknown_codec"], "mpeg4", "matroska", (64, 48), 5)
    data = p["unknown_codec"].read_bytes()
    assert data.count(b"V_MPEG4/ISO/ASP") == 1
    p["unknown_codec"].write_bytes(data.replace(b"V_MPEG4/ISO/ASP", b"V_ZZZZZ/ZZZ/ZZZ"))
    p["unknown_codec_jpg"].write_bytes(p["unknown_codec"].read_bytes() + b"\x00" * 16)  # other content
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        p.pop("heic")
    else:
        register_heif_opener()
        ex = Image.Exif()
        ex[0x010F], ex[0x0110] = "Apple", "iPhone 15 Pro"
        picture(128, 96, 5).save(p["heic"], "HEIF", exif=ex.tobytes(), quality=60)
    return p



# --------------------------------------------------------------------------------------
# ICC colour profiles, written by hand (the machine has no profile files): real ones that
# LittleCMS reads and converts with, not headers alone.
# --------------------------------------------------------------------------------------

D50 = (0.9642, 1.0, 0.8249)
# RGB colourants (XYZ, adapted to D50) as the profiles of these spaces give them.
ADOBE_RGB = ((0.6097, 0.3111, 0.0195), (0.2053, 0.6257, 0.0609), (0.1492, 0.0632, 0.7446))
DISPLAY_P3 = ((0.5151, 0.2412, -0.0011), (0.2920, 0.6922, 0.0419), (0.1571, 0.0666, 0.7841))
SRGB = ((0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141))


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz_tag(xyz: tuple[float, float, float]) -> bytes:
    return b"XYZ " + bytes(4) + b"".join(_s15(v) for v in xyz)


def _desc_tag(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\0"
    # textDescriptionType: ASCII, then empty Unicode and ScriptCode parts (67 bytes).
    return b"desc" + bytes(4) + struct.pack(">I", len(ascii_)) + ascii_ + bytes(4 + 4 + 2 + 1 + 67)


def _profile(cls: bytes, space: bytes, pcs: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    """An ICC version 2.1 profile of `tags` (signature, data)."""
    at = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        data += bytes(-len(data) % 4)
        table += sig + struct.pack(">II", at + len(body), len(data))
        body += data
    size = at + len(body)
    header = (struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + cls + space + pcs
              + struct.pack(">6H", 2026, 1, 1, 0, 0, 0) + b"acsp" + bytes(4 + 4 + 4 + 4 + 8 + 4)
              + b"".join(_s15(v) for v in D50) + bytes(4 + 16 + 28))
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


def rgb_icc(description: str, colourants: tuple[tuple[float, float, float], ...] = ADOBE_RGB,
            gamma: float = 2.2) -> bytes:
    """A display profile of RGB `colourants` (the XYZ of red, green and blue) and one gamma."""
    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256))
    tags = [(b"desc", _desc_tag(description)), (b"wtpt", _xyz_tag(D50))]
    tags += [(sig, _xyz_tag(c)) for sig, c in zip((b"rXYZ", b"gXYZ", b"bXYZ"), colourants)]
    tags += [(sig, curve) for sig in (b"rTRC", b"gTRC", b"bTRC")]
    return _profile(b"mntr", b"RGB ", b"XYZ ", tags)


def cmyk_icc(description: str) -> bytes:
    """A print profile whose inks are unlike Pillow's plain CMYK to RGB (255 - C - K ...):
    weaker cyan, a warm magenta, a brown black (its A2B0 a 2-point CLUT to Lab)."""
    clut = b""
    for c in (0, 1):  # the first input varies slowest
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    lightness = max(8.0, 92 - 25 * c - 40 * m - 8 * y - 60 * k)
                    a = max(-127.0, min(127.0, -20 * c + 70 * m + 5 * y + 12 * k))
                    b = max(-127.0, min(127.0, -30 * c + 20 * m + 75 * y + 18 * k))
                    clut += bytes((round(lightness * 255 / 100), round(a + 128), round(b + 128)))
    ramp = bytes(range(256))
    lut = (b"mft1" + bytes(4) + bytes((4, 3, 2, 0)) + b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
           + ramp * 4 + clut + ramp * 3)
    return _profile(b"prtr", b"CMYK", b"Lab ", [(b"desc", _desc_tag(description)), (b"wtpt", _xyz_tag(D50)),
                                                (b"A2B0", lut)])
