"""Shared fixtures: a fresh catalog path, a media library made with real encoders
(Pillow, PyAV, mutagen) plus broken files and hostile names, and helpers to run the CLI
and to read the catalog back."""

from __future__ import annotations

import array
import ctypes
import io
import math
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import pytest

import forkserver

# --------------------------------------------------------------------------------------
# Real media, made once per session with real encoders and kept as bytes.
# --------------------------------------------------------------------------------------


def _picture(w: int, h: int, seed: int):  # noqa: ANN202
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (w, h), ((seed * 40) % 256, 90, 160))
    d = ImageDraw.Draw(img)
    for k in range(3):
        x, y = (seed * 17 + k * 23) % (w - 10), (seed * 11 + k * 13) % (h - 10)
        d.ellipse((x, y, x + 10 + k * 4, y + 10 + k * 4), fill=(250 - k * 60, 200, (seed * 90) % 256))
    return img


def make_jpeg(seed: int = 1, *, exif: bool = True, size: tuple[int, int] = (96, 64)) -> bytes:
    """A JPEG photo with EXIF (camera make, model and time taken), from Pillow."""
    from PIL import Image

    img = _picture(*size, seed)
    buf = io.BytesIO()
    if exif:
        ex = Image.Exif()
        ex[0x010F] = "Canon"
        ex[0x0110] = "Canon EOS 5D Mark IV"
        ex[0x0132] = "2019:07:14 10:00:00"
        ex.get_ifd(0x8769)[0x9003] = "2019:07:14 10:00:00"
        img.save(buf, "JPEG", quality=85, exif=ex)
    else:
        img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def make_png(seed: int = 2) -> bytes:
    buf = io.BytesIO()
    _picture(80, 40, seed).save(buf, "PNG")
    return buf.getvalue()


def _encode_video(path: Path, frames: int = 12, codec: str = "libx264", fmt: str | None = None,
                  size: tuple[int, int] = (64, 48)) -> None:
    """A moving picture encoded by `codec` (H.264 by default) into `fmt` (by the name)."""
    import av

    with av.open(str(path), "w", format=fmt) as out:
        st = out.add_stream(codec, rate=24)
        st.width, st.height, st.pix_fmt = *size, "yuv420p"
        if codec == "libx264":
            st.options = {"preset": "ultrafast"}
        for i in range(frames):
            frame = av.VideoFrame.from_image(_picture(*size, i))
            for p in st.encode(frame):
                out.mux(p)
        for p in st.encode():
            out.mux(p)


def _encode_audio(path: Path, codec: str, fmt: str, seconds: float = 0.5, freq: float = 440.0) -> None:
    import av

    rate = 44100
    with av.open(str(path), "w", format=fmt) as out:
        st = out.add_stream(codec, rate=rate)
        st.layout = "mono"
        sample_fmt = st.format.name
        pts, total, n = 0, int(seconds * rate), 1152
        while pts < total:
            vals = [math.sin(2 * math.pi * freq * (pts + i) / rate) * 0.3 for i in range(n)]
            if sample_fmt.startswith("s16"):
                buf = array.array("h", (int(v * 32767) for v in vals)).tobytes()
            elif sample_fmt.startswith("s32"):
                buf = array.array("i", (int(v * 2_000_000_000) for v in vals)).tobytes()
            else:
                buf = array.array("f", vals).tobytes()
            frame = av.AudioFrame(format=sample_fmt, layout="mono", samples=n)
            frame.planes[0].update(buf)
            frame.sample_rate, frame.pts, frame.time_base = rate, pts, Fraction(1, rate)
            for p in st.encode(frame):
                out.mux(p)
            pts += n
        for p in st.encode():
            out.mux(p)


def _tag_mp3(path: Path) -> None:
    from mutagen import id3

    tags = id3.ID3()
    tags.add(id3.TIT2(encoding=3, text="Sine Song"))
    tags.add(id3.TPE1(encoding=3, text="Sample Artist"))
    tags.add(id3.TALB(encoding=3, text="Sample Album"))
    tags.add(id3.TRCK(encoding=3, text="1"))
    tags.save(str(path))


def _tag_flac(path: Path) -> None:
    from mutagen.flac import FLAC

    f = FLAC(str(path))
    f["title"], f["artist"], f["album"], f["tracknumber"] = "Second Song", "Sample Artist", "Sample Album", "2"
    f.save()


XMP = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmp:Rating="4" xmlns:xmp="http://ns.adobe.com/xap/1.0/"/></rdf:RDF></x:xmpmeta>\n'
    b'<?xpacket end="w"?>\n'
)
SRT = b"1\n00:00:00,000 --> 00:00:01,000\nHello\n\n2\n00:00:01,000 --> 00:00:02,000\nWorld\n"
JSON_SIDECAR = b'{"title": "IMG_0001.jpg", "photoTakenTime": {"timestamp": "1563098400"}}\n'


@dataclass(frozen=True)
class MediaBlobs:
    """Encoded media, as bytes, keyed by short names."""

    jpeg: bytes
    jpeg2: bytes
    png: bytes
    mp4: bytes
    m4a: bytes
    mp3: bytes
    flac: bytes


@pytest.fixture(scope="session")
def media_blobs(tmp_path_factory: pytest.TempPathFactory) -> MediaBlobs:
    work = tmp_path_factory.mktemp("encoders")
    _encode_video(work / "v.mp4")
    _encode_audio(work / "a.m4a", "aac", "ipod")
    _encode_audio(work / "a.mp3", "libmp3lame", "mp3")
    _tag_mp3(work / "a.mp3")
    _encode_audio(work / "a.flac", "flac", "flac", freq=660.0)
    _tag_flac(work / "a.flac")
    return MediaBlobs(
        jpeg=make_jpeg(1),
        jpeg2=make_jpeg(7),
        png=make_png(),
        mp4=(work / "v.mp4").read_bytes(),
        m4a=(work / "a.m4a").read_bytes(),
        mp3=(work / "a.mp3").read_bytes(),
        flac=(work / "a.flac").read_bytes(),
    )


# --------------------------------------------------------------------------------------
# A library folder per test: real media, broken files and hostile names.
# --------------------------------------------------------------------------------------


def write_bytes_path(path: bytes, data: bytes) -> None:
    """Create a file at a raw-bytes path (names need not be valid UTF-8)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    finally:
        os.close(fd)


@dataclass
class MediaTree:
    """A library on disk. `files` maps a label to the file's absolute raw path."""

    root: Path
    files: dict[str, bytes] = field(default_factory=dict)
    content: dict[bytes, bytes] = field(default_factory=dict)

    @property
    def root_b(self) -> bytes:
        return os.fsencode(self.root)

    def add(self, label: str, rel: bytes, data: bytes) -> bytes:
        path = os.path.join(self.root_b, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_bytes_path(path, data)
        self.files[label] = path
        self.content[path] = data
        return path


def build_media_tree(root: Path, blobs: MediaBlobs) -> MediaTree:
    root.mkdir(parents=True, exist_ok=True)
    t = MediaTree(root.resolve())
    t.add("jpeg", b"Photos/2019 Paris/IMG_0001.jpg", blobs.jpeg)
    t.add("jpeg_upper", b"Photos/2019 Paris/IMG_0002.JPG", blobs.jpeg2)
    t.add("png", b"Photos/map.png", blobs.png)
    t.add("xmp", b"Photos/2019 Paris/IMG_0001.xmp", XMP)
    t.add("json", b"Photos/2019 Paris/IMG_0001.jpg.json", JSON_SIDECAR)
    t.add("mp4", b"Video/clip.mp4", blobs.mp4)
    t.add("srt", b"Video/clip.srt", SRT)
    t.add("m4a", b"Music/Artist/03 Third.m4a", blobs.m4a)
    t.add("mp3", b"Music/Artist/01 Sine Song.mp3", blobs.mp3)
    t.add("flac", b"Music/Artist/02 Second Song.flac", blobs.flac)
    # Broken and awkward files.
    t.add("empty", b"Broken/empty.jpg", b"")
    t.add("truncated", b"Broken/truncated.jpg", blobs.jpeg[: len(blobs.jpeg) // 3])
    t.add("corrupt", b"Broken/corrupt.mp4", bytes((i * 7 + 3) % 256 for i in range(3000)))
    t.add("jpeg_as_png", b"Broken/really a jpeg.png", blobs.jpeg)
    t.add("hidden", b".hidden/.secret.jpg", blobs.jpeg2)
    # Hostile names.
    t.add("non_utf8", b"Odd/caf\xe9 \xff\xfe.jpg", blobs.jpeg)
    t.add("newline", b"Odd/line\nbreak.png", blobs.png)
    t.add("spaces", b"Odd/  spaced   out  .mp3", blobs.mp3)
    t.add("emoji", "Odd/🎉 party 📷.jpg".encode(), blobs.jpeg2)
    long_name = b"L" * 251 + b".jpg"
    assert len(long_name) == 255
    t.add("long_name", b"Odd/" + long_name, blobs.jpeg)
    t.add("deep", deep_relative_path(t.root_b, 4000), blobs.png)
    return t


def deep_relative_path(root: bytes, total: int) -> bytes:
    """A relative path of nested 200-byte folders such that root/path is `total` bytes
    long (PATH_MAX is 4096 with its NUL, so the full path still opens by name)."""
    name = b"deep-image.png"
    parts: list[bytes] = []
    length = len(root) + 1 + len(name)
    while length + 201 <= total:
        parts.append(bytes([ord("a") + len(parts) % 26]) * 200)
        length += 201
    pad = total - length
    if pad > 1:
        parts.append(b"p" * (pad - 1))
    elif pad == 1:
        name = b"x" + name
    rel = b"/".join([*parts, name])
    assert len(root) + 1 + len(rel) == total
    return rel


@pytest.fixture
def media_tree(tmp_path: Path, media_blobs: MediaBlobs) -> MediaTree:
    return build_media_tree(tmp_path / "library", media_blobs)


@pytest.fixture
def catalog_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "catalog.duckdb"


# --------------------------------------------------------------------------------------
# Reading the catalog back.
# --------------------------------------------------------------------------------------


def rows(catalog: Path, sql: str, params: list | None = None) -> list[dict]:
    """Rows of a query, as dicts, from a read-only connection (closed afterwards)."""
    from mediaforge import open_catalog

    with open_catalog(catalog, read_only=True) as cat:
        cur = cat.con.execute(sql, params or [])
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]


def files_by_path(catalog: Path) -> dict[bytes, dict]:
    return {bytes(r["path_bytes"]): r for r in rows(catalog, "SELECT * FROM files")}


def reference_walk(root: bytes) -> dict[bytes, int]:
    """Every regular file below `root` (hidden included, links not followed) and its size."""
    out = {}
    for d, _dirs, names in os.walk(root, followlinks=False):
        for n in names:
            p = os.path.join(d, n)
            st = os.lstat(p)
            if os.path.isfile(p) and not os.path.islink(p):
                out[p] = st.st_size
    return out


def do_scan(catalog: Path, *roots: os.PathLike | bytes | str, **options):  # noqa: ANN201
    """One library scan into `catalog`, returning its ScanSummary."""
    from mediaforge import ScanConfig, open_catalog, scan

    options.setdefault("threads", 2)
    with open_catalog(catalog) as cat:
        return scan(cat, ScanConfig(roots=tuple(roots), **options))


# --------------------------------------------------------------------------------------
# Running the CLI.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CliResult:
    rc: int
    out: str
    err: str

    def __iter__(self) -> Iterator:
        return iter((self.rc, self.out, self.err))


def cli_env(catalog: Path | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAFORGE_")}
    env["PYTHONUNBUFFERED"] = "1"
    if catalog is not None:
        env["MEDIAFORGE_CATALOG"] = str(catalog)
    env.update(extra)
    return env


def cli_cmd(*args: str | os.PathLike | bytes) -> list:
    return [sys.executable, "-m", "mediaforge", *args]


def run_cli(*args: str | os.PathLike | bytes, catalog: Path | None = None, timeout: float = 120,
            **popen: object) -> CliResult:
    """Run `mediaforge ARGS...` in a subprocess; return (rc, stdout, stderr)."""
    env = popen.pop("env", None) or cli_env(catalog)
    if set(popen) <= {"cwd"}:  # through the fork server (see forkserver.py) where it can
        rc, out, err = forkserver.run(cli_cmd(*args), env, timeout, popen.get("cwd"), cli_env())  # type: ignore[arg-type]
    else:
        p = subprocess.run(cli_cmd(*args), capture_output=True, timeout=timeout, env=env,
                           **popen)  # type: ignore[call-overload]
        rc, out, err = p.returncode, p.stdout, p.stderr
    return CliResult(rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


def assert_one_line_error(err: str, *fragments: str) -> None:
    """The CLI's error contract: one line on stderr, `mediaforge: error: ...`, no traceback."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one stderr line, got:\n{err}"
    assert lines[0].startswith("mediaforge: error: "), err
    assert "Traceback" not in err
    for f in fragments:
        assert f.lower() in lines[0].lower(), f"{f!r} not in {lines[0]!r}"


# --------------------------------------------------------------------------------------
# Running something without the right to read everything.
# --------------------------------------------------------------------------------------

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


def _drop_dac_capabilities() -> None:  # runs in the child, between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _unprivileged_user() -> tuple[int, int] | None:
    import pwd

    for name in ("nobody", "daemon"):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        if pw.pw_uid != 0:
            return pw.pw_uid, pw.pw_gid
    return None


@dataclass(frozen=True)
class Unprivileged:
    """How to start a process that file permissions apply to.

    As root, the preferred way is an unprivileged user (`os.setuid`). Where that user
    cannot even run this interpreter (it lives under /root), the child stays uid 0 but
    loses CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH before exec, which makes permission
    bits bind exactly as they do for an ordinary owner.
    """

    popen: dict
    uid: int | None  # the uid files must be readable by, None: unchanged

    def share(self, *paths: Path) -> None:
        """Make folders usable by the child (owner and traversal)."""
        if self.uid is None:
            return
        for p in paths:
            p.mkdir(parents=True, exist_ok=True)
            for parent in [p, *p.parents]:
                mode = stat.S_IMODE(os.stat(parent).st_mode)
                if not mode & 0o001:
                    os.chmod(parent, mode | 0o011)
            for d, dirs, names in os.walk(os.fsencode(p)):
                for n in [*dirs, *names]:
                    os.chown(os.path.join(d, n), self.uid, -1, follow_symlinks=False)
            os.chown(p, self.uid, -1)



def loop_disk(tmp_path: Path, name: str, size: int, mkfs: list[str], needs: str) -> Iterator[Path]:
    """A file system that `mkfs` (its command; the image's path goes last) makes on a
    `size`-byte image, loop-mounted at `tmp_path / name` and unmounted after: for a
    fixture to yield from. Skips without root or the tool (`needs` says what installs
    it), or where loop devices cannot be mounted."""
    import shutil

    if shutil.which(mkfs[0]) is None or os.geteuid() != 0:
        pytest.skip(f"needs root and {mkfs[0]} ({needs})")
    img, mnt = tmp_path / f"{name}.img", tmp_path / name
    with open(img, "wb") as f:
        f.truncate(size)
    mnt.mkdir()
    subprocess.run([*mkfs, str(img)], check=True)
    r = subprocess.run(["mount", "-o", "loop", str(img), str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a loop device here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)

@pytest.fixture
def unprivileged() -> Unprivileged:
    if os.geteuid() != 0:
        return Unprivileged({}, None)
    user = _unprivileged_user()
    if user is None:
        pytest.skip("no unprivileged user on this machine")
    uid, gid = user

    def as_user() -> None:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    try:
        probe = subprocess.run([sys.executable, "-c", "import mediaforge"], preexec_fn=as_user,
                               capture_output=True, timeout=60)
        usable = probe.returncode == 0
    except (OSError, subprocess.SubprocessError):  # the interpreter lives where they cannot go
        usable = False
    if usable:
        return Unprivileged({"preexec_fn": as_user}, uid)
    return Unprivileged({"preexec_fn": _drop_dac_capabilities}, None)


def on_a_terminal(*args: str | os.PathLike, catalog: Path, ctrl_c_at: bytes | None = None,
                  columns: int = 120) -> tuple[int, str]:
    """Run `mediaforge ARGS...` with stdin, stdout and stderr on a pseudo-terminal, as a
    person typing it: the progress bars draw. With `ctrl_c_at`, SIGINT goes to its process
    group (as Ctrl-C sends it) the moment that text is drawn. (rc, everything it wrote)."""
    import signal

    master, slave = os.openpty()
    env = cli_env(catalog, TERM="xterm-256color", COLUMNS=str(columns), LINES="40")
    p = subprocess.Popen(cli_cmd(*args), stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True,
                         start_new_session=True)
    os.close(slave)
    out = bytearray()
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
        if ctrl_c_at is not None and ctrl_c_at in out:
            os.killpg(p.pid, signal.SIGINT)
            ctrl_c_at = None
    os.close(master)
    return p.wait(timeout=300), out.decode("utf-8", "replace")
