"""A small, real sample library made with real encoders: photos with EXIF (Pillow), a
short H.264 MP4 (PyAV), and tagged MP3 and FLAC songs (PyAV + mutagen).

Used by the README's first command when no folder is given, and handy for trying
queries. Needs the `media` extra (av, pillow, mutagen).
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

from .errors import MediaForgeError


def _need(module: str):  # noqa: ANN202
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MediaForgeError(
            f"the sample library needs {module!r}: pip install 'mediaforge[media]'"
        ) from None


def _picture(w: int, h: int, seed: int, shift: int = 0):  # noqa: ANN202
    """A photo-like RGB image: smooth gradients and a few shapes."""
    Image = _need("PIL.Image")
    ImageDraw = _need("PIL.ImageDraw")
    grad = Image.linear_gradient("L").resize((w, h))
    r = grad.rotate(seed * 37 % 360, expand=False).resize((w, h))
    g = grad.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    b = Image.radial_gradient("L").resize((w, h))
    img = Image.merge("RGB", (r, g, b))
    d = ImageDraw.Draw(img)
    for k in range(3):
        x = (seed * 53 + k * 97 + shift) % max(w - 60, 1)
        y = (seed * 29 + k * 61) % max(h - 60, 1)
        d.ellipse((x, y, x + 40 + k * 10, y + 40 + k * 10), fill=((seed * 70 + k * 50) % 256, 180, 60))
    return img


def _photo(path: Path, seed: int, make: str, model: str, taken: str, gps: tuple[float, float] | None) -> None:
    Image = _need("PIL.Image")
    img = _picture(640, 480, seed)
    exif = Image.Exif()
    exif[0x010F] = make  # Make
    exif[0x0110] = model  # Model
    exif[0x0112] = 1  # Orientation
    exif[0x0132] = taken  # DateTime
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = taken  # DateTimeOriginal
    if gps:
        def dms(v: float) -> tuple[float, float, float]:
            v = abs(v)
            d = int(v)
            m = int((v - d) * 60)
            return (float(d), float(m), round(((v - d) * 60 - m) * 60, 4))
        g = exif.get_ifd(0x8825)
        g[1] = "N" if gps[0] >= 0 else "S"
        g[2] = dms(gps[0])
        g[3] = "E" if gps[1] >= 0 else "W"
        g[4] = dms(gps[1])
    img.save(path, "JPEG", quality=88, exif=exif)


def _video(path: Path, seconds: float = 2.0) -> None:
    av = _need("av")
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(int(seconds * 24)):
            frame = av.VideoFrame.from_image(_picture(320, 240, 5, shift=i * 4))
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _audio(path: Path, codec: str, fmt: str, seconds: float = 2.0, freq: float = 440.0) -> None:
    av = _need("av")
    rate = 44100
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        frame_len = 1152
        total = int(seconds * rate)
        pts = 0
        sample_fmt = stream.format.name
        while pts < total:
            n = min(frame_len, total - pts)
            vals = [math.sin(2 * math.pi * freq * (pts + i) / rate) * 0.3 for i in range(n)]
            frame = _audio_frame(av, vals, sample_fmt, rate)
            frame.pts = pts
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                out.mux(packet)
            pts += n
        for packet in stream.encode():
            out.mux(packet)


def _audio_frame(av, vals: list[float], sample_fmt: str, rate: int):  # noqa: ANN001, ANN202
    import array

    if sample_fmt.startswith("s16"):
        buf = array.array("h", (int(v * 32767) for v in vals)).tobytes()
        fmt = "s16p" if sample_fmt.endswith("p") else "s16"
    elif sample_fmt.startswith("s32"):
        buf = array.array("i", (int(v * 2147483647) for v in vals)).tobytes()
        fmt = "s32p" if sample_fmt.endswith("p") else "s32"
    else:
        buf = array.array("f", vals).tobytes()
        fmt = "fltp" if sample_fmt.endswith("p") else "flt"
    frame = av.AudioFrame(format=fmt, layout="mono", samples=len(vals))
    frame.planes[0].update(buf)
    frame.sample_rate = rate
    return frame


def _tag_mp3(path: Path, title: str, artist: str, album: str, track: int) -> None:
    id3 = _need("mutagen.id3")
    tags = id3.ID3()
    tags.add(id3.TIT2(encoding=3, text=title))
    tags.add(id3.TPE1(encoding=3, text=artist))
    tags.add(id3.TALB(encoding=3, text=album))
    tags.add(id3.TRCK(encoding=3, text=str(track)))
    tags.add(id3.TDRC(encoding=3, text="2019"))
    tags.save(str(path))


def _tag_flac(path: Path, title: str, artist: str, album: str, track: int) -> None:
    flac = _need("mutagen.flac")
    f = flac.FLAC(str(path))
    f["title"], f["artist"], f["album"] = title, artist, album
    f["tracknumber"], f["date"] = str(track), "2019"
    f.save()


def make_sample_library(dest: Path) -> list[Path]:
    """Create the sample library under `dest` and return the files made."""
    dest = Path(dest)
    photos, video, music = dest / "Photos" / "2019 Paris", dest / "Video", dest / "Music" / "Sample Artist"
    for d in (photos, video, music):
        d.mkdir(parents=True, exist_ok=True)
    made = []
    shots = [
        ("IMG_0001.jpg", 0, "Canon", "Canon EOS 5D Mark IV", "2019:07:14 10:00:00", (48.8584, 2.2945)),
        ("IMG_0002.jpg", 1, "Canon", "Canon EOS 5D Mark IV", "2019:07:14 10:05:00", (48.8606, 2.3376)),
        ("IMG_0003.jpg", 2, "Apple", "iPhone 11", "2019:07:15 18:30:00", None),
    ]
    for name, seed, make, model, taken, gps in shots:
        p = photos / name
        if not p.exists():
            _photo(p, seed, make, model, taken, gps)
        made.append(p)
    png = photos / "map.png"
    if not png.exists():
        Image = _need("PIL.Image")
        Image.new("RGB", (200, 100), (30, 90, 160)).save(png)
    made.append(png)
    mp4 = video / "clip.mp4"
    if not mp4.exists():
        _video(mp4)
    made.append(mp4)
    mp3 = music / "01 Sine Song.mp3"
    if not mp3.exists():
        _audio(mp3, "libmp3lame", "mp3", freq=440.0)
        _tag_mp3(mp3, "Sine Song", "Sample Artist", "Sample Album", 1)
    made.append(mp3)
    fl = music / "02 Second Song.flac"
    if not fl.exists():
        _audio(fl, "flac", "flac", freq=660.0)
        _tag_flac(fl, "Second Song", "Sample Artist", "Sample Album", 2)
    made.append(fl)
    return made
