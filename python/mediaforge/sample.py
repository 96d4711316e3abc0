"""A small, real sample library made with real encoders: photos with EXIF (Pillow), a
short H.264 MP4 (PyAV), and tagged MP3 and FLAC songs (PyAV + mutagen).

Used by the README's first command when no folder is given, and handy for trying
queries. Needs the `media` extra (av, pillow, mutagen).
"""

from __future__ import annotations

import contextlib
import errno
import io
import math
import os
import stat
from collections.abc import Callable
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


def _photo(seed: int, make: str, model: str, taken: str, gps: tuple[float, float] | None) -> bytes:
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
    return _saved(img, "JPEG", quality=88, exif=exif)


def _map() -> bytes:
    """A small map: sea, a coast, a river and a route (not one flat colour, which has no
    fingerprint and would be the sample's one error)."""
    Image = _need("PIL.Image")
    ImageDraw = _need("PIL.ImageDraw")
    img = Image.new("RGB", (200, 100), (30, 90, 160))
    d = ImageDraw.Draw(img)
    d.polygon([(0, 0), (140, 0), (120, 30), (150, 60), (110, 100), (0, 100)], fill=(90, 150, 70))
    d.line([(0, 70), (40, 55), (70, 62), (118, 45)], fill=(60, 120, 200), width=4)
    d.line([(20, 20), (60, 40), (90, 30), (100, 80)], fill=(200, 40, 40), width=2)
    return _saved(img, "PNG")


def _saved(img, fmt: str, **options: object) -> bytes:  # noqa: ANN001 - a PIL image
    """The picture encoded in memory: Pillow's JPEG encoder writes to a file's descriptor
    itself and takes a short write (a disk that fills) for a whole one, leaving a file
    cut short with no error."""
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def _video(seconds: float = 2.0) -> bytes:
    av = _need("av")
    buf = io.BytesIO()  # in memory, as `_saved` says
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(int(seconds * 24)):
            frame = av.VideoFrame.from_image(_picture(320, 240, 5, shift=i * 4))
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def _audio(codec: str, fmt: str, seconds: float = 2.0, freq: float = 440.0) -> io.BytesIO:
    """The sound encoded in memory (see `_saved`), to be tagged there."""
    av = _need("av")
    rate = 44100
    buf = io.BytesIO()  # in memory, as `_saved` says
    with av.open(buf, "w", format=fmt) as out:
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
    buf.seek(0)
    return buf


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


def _tag_mp3(sound: io.BytesIO, title: str, artist: str, album: str, track: int) -> bytes:
    id3 = _need("mutagen.id3")
    tags = id3.ID3()
    tags.add(id3.TIT2(encoding=3, text=title))
    tags.add(id3.TPE1(encoding=3, text=artist))
    tags.add(id3.TALB(encoding=3, text=album))
    tags.add(id3.TRCK(encoding=3, text=str(track)))
    tags.add(id3.TDRC(encoding=3, text="2019"))
    tags.save(sound)
    return sound.getvalue()


def _tag_flac(sound: io.BytesIO, title: str, artist: str, album: str, track: int) -> bytes:
    flac = _need("mutagen.flac")
    f = flac.FLAC(sound)
    f["title"], f["artist"], f["album"] = title, artist, album
    f["tracknumber"], f["date"] = str(track), "2019"
    sound.seek(0)
    f.save(sound)
    return sound.getvalue()


class SampleConflict(MediaForgeError):
    """Files of the sample's names that were there already and are not the sample's: each
    was left as it was."""

    def __init__(self, made: list[Path], others: list[Path]) -> None:
        super().__init__(f"{len(others)} of the sample's files already exist with other contents")
        self.made, self.others = made, others


def _same_file(path: Path, tmp: bytes) -> bool:
    """Whether `path` is a regular file (not a link) holding `tmp`'s bytes."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size != os.stat(tmp).st_size:
            return False
        with open(path, "rb") as a, open(tmp, "rb") as b:
            return a.read() == b.read()
    except OSError:
        return False


def _make(path: Path, encode: Callable[[], bytes]) -> bool:
    """Make one sample file: encoded in memory, written whole to a temporary beside it (by
    Python, which fails on a short write), then linked to its name, which never replaces
    what is there (a file, a folder, a link, even one leading nowhere, is never written
    through). True when the file is the sample's (made now, or made by an earlier run:
    the same bytes), False when something else has its name."""
    from .fsops import new_tmp, rename_new
    from .stop import Stop

    target = os.fsencode(path)
    data = encode()
    made: list[bytes] = []
    try:
        # Made and remembered with Ctrl-C held back: one between the two left the
        # temporary behind (swept only once stale, ten minutes on).
        with Stop() as stop:
            made.append(new_tmp(target, lambda t: os.close(os.open(t, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))))
        if stop.requested:
            raise KeyboardInterrupt
        tmp = made[0]
        try:
            with open(tmp, "wb") as f:
                f.write(data)
        except OSError as e:
            e.filename = str(path)  # the file being made, not its hidden temporary
            raise
        try:
            os.link(tmp, target)
        except FileExistsError:
            return _same_file(path, tmp)
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.ENOSYS, errno.EMLINK, errno.EXDEV):
                raise
            try:
                rename_new(tmp, target)  # a file system with no hard links (FAT, exFAT)
            except FileExistsError:
                return _same_file(path, tmp)
        return True
    finally:
        for tmp in made:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def make_sample_library(dest: Path) -> list[Path]:
    """Create the sample library under `dest` and return its files. Each is written whole
    before it takes its name: a run stopped midway (Ctrl-C, a full disk) leaves no file cut
    short, and a second run makes the rest. A file of the sample's name that is there
    already is kept when it holds the sample's bytes; otherwise it is left as it is and
    `SampleConflict` says so, once every other file is made."""
    Image = _need("PIL.Image")
    dest = Path(dest)
    photos, video, music = dest / "Photos" / "2019 Paris", dest / "Video", dest / "Music" / "Sample Artist"
    for d in (photos, video, music, dest / "Backup"):
        d.mkdir(parents=True, exist_ok=True)
    shots = [
        ("IMG_0001.jpg", 0, "Canon", "Canon EOS 5D Mark IV", "2019:07:14 10:00:00", (48.8584, 2.2945)),
        ("IMG_0002.jpg", 1, "Canon", "Canon EOS 5D Mark IV", "2019:07:14 10:05:00", (48.8606, 2.3376)),
        ("IMG_0003.jpg", 2, "Apple", "iPhone 11", "2019:07:15 18:30:00", None),
    ]
    files: list[tuple[Path, Callable[[], bytes]]] = [
        (photos / name, lambda a=(seed, make, model, taken, gps): _photo(*a))
        for name, seed, make, model, taken, gps in shots]
    files += [
        # A copy made smaller, as a phone's share sheet does: `dupes --similar` finds it.
        (photos / "IMG_0001 (small).jpg", lambda: _saved(
            Image.open(io.BytesIO(_photo(*shots[0][1:]))).resize((320, 240), Image.Resampling.LANCZOS),
            "JPEG", quality=80)),
        (photos / "map.png", _map),
        # The same bytes twice: `dupes` and `dedupe` have a copy to show.
        (dest / "Backup" / "IMG_0002.jpg", lambda: _photo(*shots[1][1:])),
        (video / "clip.mp4", _video),
        (music / "01 Sine Song.mp3", lambda: _tag_mp3(_audio("libmp3lame", "mp3", freq=440.0), "Sine Song",
                                                      "Sample Artist", "Sample Album", 1)),
        (music / "02 Second Song.flac", lambda: _tag_flac(_audio("flac", "flac", freq=660.0), "Second Song",
                                                          "Sample Artist", "Sample Album", 2)),
    ]
    made, others = [], []
    for path, write in files:
        (made if _make(path, write) else others).append(path)
    if others:
        raise SampleConflict(made, others)
    return made
