"""What a worker does with one file: read its metadata and make its thumbnail, from one
open and one decode, and the near-duplicate fingerprints. Runs in the worker processes
of `pool.py`; every failure becomes an error entry in the result, never an exception out
of `extract_one`.

A task asks for any of three things: `meta` (the media row and its tables), `thumbs`,
and `fingerprints` (the decodes that exist only for near-duplicate search: a picture's
pHash without a thumbnail, video frames, the first two minutes of sound). A picture's
pHash comes with its thumbnail's decode whenever one is made, at no extra cost.
"""

from __future__ import annotations

import ast
import contextlib
import errno
import io
import os
import re
import stat
import struct
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import first_line, path_text
from ..fsops import file_in_the_way, leads_nowhere, link_to_nothing, time_ns
from . import LONGEST_S

if TYPE_CHECKING:
    from .ends import Mp3Stated

# How a meta_errors message that records no failure starts: a flat picture or video has
# no fingerprint to make, and says so (its status stays as it was).
NO_FINGERPRINT = "no fingerprint: "
# The start of the `decode` error of a video whose pictures end well before its stated
# length, which only the fingerprint's frames tell: a fingerprint catch-up records it too.
PICTURES_END = "the pictures end at "
# The start of the `decode` error of sound whose frames stop decoding before its end (a
# FLAC whose frames fail their CRC, bytes damaged in a copy), which only the fingerprint's
# decode tells: a fingerprint catch-up records it too.
SOUND_BREAKS = "the sound does not decode "
# The start of the `decode` error of a video whose data on the way to a fingerprint frame
# does not decode (a stretch overwritten), which only the fingerprint's decode tells.
PICTURES_DAMAGED = "the pictures do not decode on the way to "
# The `decode` notes a fingerprint's decode makes (see `found_by_fingerprint`).
FINGERPRINT_NOTES = (PICTURES_END, SOUND_BREAKS, PICTURES_DAMAGED)
# Sound codecs whose streams carry frames that fail to decode in whole files: an MP3's
# Xing or Info frame where MP3s were joined end to end, an ID3 tag between them, junk a
# tagger left; and an MP3 without a Xing frame has only a guess at its length to compare.
_LENIENT_SOUND = frozenset({"mp1", "mp2", "mp3", "mp3float", "mp3adu"})
# How every `decode` note of a file whose end is missing ends (a GIF without its trailer,
# sound or pictures that end early, a TIFF cut short): what is there decodes, so such a
# file can still be fingerprinted (see `pending_fingerprints`).
CUT_SHORT = "cut short?"

# Extraction statuses, as stored in media.status.
OK, PARTIAL, UNSUPPORTED, ERROR, TIMEOUT, CRASHED = "ok", "partial", "unsupported", "error", "timeout", "crashed"


@dataclass(frozen=True)
class Task:
    """One content to extract: its hash, a path that has it, and what to make."""

    blake3: str
    path: bytes
    kind: str
    meta: bool = True
    thumbs: bool = True
    fingerprints: bool = True
    thumb_size: int = 256
    thumbs_root: str = ""
    # The size, mtime and change time the catalog has for `path` (None: not known): a file
    # changed or replaced since the scan holds another content than `blake3`, and is left
    # alone. The change time catches a rewrite that put the mtime back (`exiftool -P`); a
    # `chmod` or a new hard link moves it too, and the next scan brings it in step.
    size: int | None = None
    mtime_ns: int | None = None
    ctime_ns: int | None = None
    # Bytes to leave free on the thumbnails' disk (0: no check): see `space.space_short`.
    min_free: int = 0


# What Pillow's WebP reader says, in other words, of data its decoder will not take.
WEBP_UNDECODED = "the WebP data does not decode: cut short or damaged"
# How a `thumb` note on cover art that does not decode begins (`thumbs --missing-only`
# does not try it again).
COVER_UNDECODED = "embedded cover art: "


def _webp_header_read(r: _Result) -> bool:
    """A WebP Pillow would not open (its decoder takes the whole file at once): the size
    its header states, kept, and the file `partial`, as a picture cut short after its
    header is. False where the header states none."""
    from .image import webp_header

    try:
        got = webp_header(r.task.path)
    except OSError:
        return False
    if got is None:
        return False
    w, h, animated = got
    r.media.update(format="webp", width=w, height=h)
    r.fail("image", WEBP_UNDECODED + ("" if not animated else " (animated)"), PARTIAL)
    return True


def message_of(e: BaseException) -> str:
    """An exception as one line of a `meta_errors` message."""
    if _chunk_bomb(e):
        return _CHUNK_BOMB.format(mb=_text_limit() >> 20)
    if isinstance(e, MemoryError):  # the worker's address-space cap, met by a hostile file
        return "out of memory decoding it (the worker's limit, MEDIAFORGE_WORKER_MEMORY)"
    if not str(e).strip():  # mutagen's bare `error()` read "error: error"
        origin = type(e).__module__.split(".")[0]
        named = type(e).__name__ if origin == "builtins" else f"{origin} {type(e).__name__}"
        return f"{named}, with no reason given"
    if m := _DECODER_OPEN.search(str(e)):  # libav's call, as PyAV words it
        if getattr(e, "errno", None) == errno.EINVAL:
            return (f"the {m.group(2)} decoder refuses the stream's parameters (invalid argument): its header is "
                    "damaged or hostile")
        why = f": {m.group(1).lower()}" if m.group(1) else ""
        return f"the {m.group(2)} decoder could not be opened{why}"
    if isinstance(e, OSError) and str(e) == "could not create decoder object":  # Pillow's WebP reader
        return WEBP_UNDECODED
    text = first_line(e)
    if type(e).__module__.startswith("av"):
        # PyAV's words lead with libav's error number (`[Errno 1094995529]`), which says
        # nothing the words after it do not.
        text = re.sub(r"^\[Errno -?\d+\] ", "", text)
    return plain_paths(f"{type(e).__name__}: {text}")[:500]


# PyAV's words when libav will not open a decoder on what the header claims (65535
# channels, a zero sample rate): `Invalid argument: 'avcodec_open2("pcm_s16le", {})' returned 22`.
_DECODER_OPEN = re.compile(r"(?:([A-Za-z][\w ]*?): )?'?avcodec_open2\(\"([\w-]+)\"")

# A path given to a library as bytes, as its message shows it: b'/photos/a.jpg' (always
# absolute here; other bytes a message shows, such as b'RIFF', stay as they are).
_BYTES_REPR = re.compile(r"(?<!\w)b'/(?:[^'\\]|\\.)*'" + r'|(?<!\w)b"/(?:[^"\\]|\\.)*"')


# A byte of a name that is not UTF-8 as Python's repr of a text shows it: '\udcff'.
# (`\\udcff`, an escaped backslash before it, is a backslash and the text `udcff`.)
_SURROGATE_REPR = re.compile(r"(?<!\\)((?:\\\\)*)\\udc([89a-fA-F][0-9a-fA-F])")


def plain_paths(text: str) -> str:
    """`text` with the paths a library wrote as Python bytes (`b'/a/b.jpg'`, from a file
    opened by its bytes) written as text, `'/a/b.jpg'`, as every message shows a path: a
    byte that is not UTF-8 as \\xNN, a newline as \\n (one line). So is such a byte in a
    path a library wrote as Python text ('\\udcff')."""
    def plain(m: re.Match[str]) -> str:
        try:
            value = ast.literal_eval(m.group(0))
        except (ValueError, SyntaxError):
            return m.group(0)
        return "'" + path_text(value) + "'"

    return _SURROGATE_REPR.sub(r"\1\\x\2", _BYTES_REPR.sub(plain, text))


# The shortest side, in pixels, of a picture the finer pHash (`image_hashes.phash256`) is
# made from.
FINE_MIN_SIDE = 32
# Pillow's modes of pictures without colour: black and white, grey (with alpha), and grey
# of 16 and 32 bits.
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
# How far from neutral (128) a pixel's Cb or Cr may lie in a picture without colour: a
# grey picture saved as a colour JPEG or WebP comes back a level or two off.
_GREY_CHROMA = 4
# The share of pixels that may lie further (a speck of dust, a coloured date stamp).
_GREY_OUTLIERS = 0.001


def colour_of(picture: Any) -> tuple[bool, bytes]:
    """Of the decoded `picture`: whether it has no colour to speak of, whatever its mode
    (every pixel grey, within what a lossy colour format's rounding leaves; a sepia print
    is colour), and its colour layout: the mean Cb and Cr of each cell of a 3x3 grid, 18
    bytes, row by row (`dupes.find.CHROMA_APART` compares them)."""
    from PIL import Image

    ycc = picture.convert("RGB").convert("YCbCr")
    _, cb, cr = ycc.split()
    cells = ycc.resize((3, 3), Image.Resampling.BOX).tobytes()  # Y, Cb, Cr of each cell
    chroma = b"".join(cells[i + 1:i + 3] for i in range(0, 27, 3))
    if picture.mode in GREY_MODES:
        return True, chroma
    low, high = 128 - _GREY_CHROMA, 128 + _GREY_CHROMA + 1
    off = sum(sum(h[:low]) + sum(h[high:]) for h in (cb.histogram(), cr.histogram()))
    return off <= _GREY_OUTLIERS * picture.width * picture.height, chroma


class _Result:
    def __init__(self, task: Task) -> None:
        self.task = task
        self.media: dict[str, Any] = {"kind": task.kind}
        self.streams: list[dict[str, Any]] = []
        self.audio: dict[str, Any] | None = None
        self.exif: dict[str, Any] | None = None
        self.sidecar: dict[str, Any] | None = None
        self.hashes: dict[str, int] | None = None
        self.video_hashes: list[dict[str, Any]] = []
        self.audio_hash: dict[str, Any] | None = None
        self.errors: list[tuple[str, str]] = []
        self.status = OK
        self.thumb: str | None = None
        self.thumb_wh: tuple[int, int, int] | None = None  # width, height, bytes
        self.raw_problem: str | None = None  # why rawpy did not read a RAW file
        self.low_space = False  # the thumbnail was not written: its disk is under min_free
        self.thumb_refused = False  # the thumbnail was not written: its folder refused it
        self.by_content = False  # libav had to read the file by its content, not its name
        self.thumb_tmp: Path | None = None  # written, not yet in its place (`settle_thumb`)

    def fail(self, stage: str, e: BaseException | str, status: str = PARTIAL) -> None:
        self.errors.append((stage, e if isinstance(e, str) else message_of(e)))
        rank = [OK, PARTIAL, UNSUPPORTED, ERROR]
        if rank.index(status) > rank.index(self.status):
            self.status = status

    def save_thumb(self, picture: Any) -> None:
        from .space import space_short
        from .thumbs import save_thumb, thumb_relpath

        short = space_short(self.task.thumbs_root, self.task.min_free)
        if short:
            self.low_space = True
            self.fail("thumb", f"thumbnail not written: {short}")
            return
        rel = thumb_relpath(self.task.blake3, self.task.thumb_size)
        # What killed workers left in the shard the run's parent swept before it began.
        try:
            w, h, n, self.thumb_tmp = save_thumb(picture, Path(self.task.thumbs_root), rel)
            self.thumb_wh = (w, h, n)
            self.thumb = rel
        except Exception as e:  # noqa: BLE001 - a full disk here is a thumbnail error
            if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
                # Held back for want of room, as under min_free (MEDIAFORGE_MIN_FREE=0
                # turns that check off): counted so, and said so after the run.
                self.low_space = True
                self.fail("thumb", f"thumbnail not written: its disk is full ({e.strerror})")
                return
            if isinstance(e, OSError) and e.errno in _REFUSED:
                # Its folder not writable (read-only, another user's, a file in its place):
                # said once after the run, as a full disk is.
                self.thumb_refused = True
                blocker = file_in_the_way(os.fsencode(e.filename)) if e.errno in _FILE_IN_WAY and e.filename else None
                dangling = link_to_nothing(os.fsencode(e.filename)) if e.errno in _FILE_IN_WAY and e.filename else None
                if dangling:
                    self.fail("thumb", f"thumbnail not written: {path_text(dangling)} is {leads_nowhere(dangling)}")
                    return
                if blocker:
                    self.fail("thumb", f"thumbnail not written: {path_text(blocker)} is a file, not a folder; "
                                       "move it away")
                    return
                where = f" ({path_text(os.fsencode(e.filename))})" if e.filename else ""
                self.fail("thumb", f"thumbnail not written: {e.strerror}{where}")
                return
            self.fail("thumb", e)

    def settle_thumb(self, keep: bool) -> None:
        """The thumbnail written under a temporary name into its place, or (`keep` false:
        the file changed while it was read) removed: the content's thumbnail, if it had
        one, stays as it was."""
        tmp, self.thumb_tmp = self.thumb_tmp, None
        if tmp is None:
            return
        final = os.path.join(self.task.thumbs_root, self.thumb or "")
        try:
            if keep:
                os.replace(tmp, final)
                return
        except OSError as e:
            self.thumb, self.thumb_wh = None, None
            if e.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST) and os.path.isdir(final):
                # A folder where the thumbnail file goes: refused, as a file where its
                # folder goes is, and said once after the run.
                self.thumb_refused = True
                self.fail("thumb", f"thumbnail not written: {path_text(os.fsencode(final))} is a folder, not a "
                                   "file; move it away")
            else:
                self.fail("thumb", e)
        with contextlib.suppress(OSError):
            os.unlink(tmp)

    def image_hashes(self, picture: Any, source_mode: str | None = None, colour: Any = None) -> None:
        """pHash, dHash and the finer pHash (in the Rust core) of the decoded, upright picture: the decode
        that made the thumbnail, not a second one; and whether it has no colour.
        `source_mode`: the file's own mode, where `picture` is a grey decode (a grey
        source is grey); `colour` then, where there is one, a small colour copy of the
        same decode to measure its colour on (without it, its colour is unknown)."""
        from PIL import ImageStat

        from .. import _core
        from .thumbs import FLAT_STDDEV, opaque

        picture = opaque(picture)  # (a thumbnail's copy keeps its transparency)
        grey = picture.convert("L")
        if ImageStat.Stat(grey).stddev[0] < FLAT_STDDEV:
            # One colour (a black frame grab, a blank scan, a 1x1 pixel): every such
            # picture hashes alike, so it would be "similar" to all the others. Recorded,
            # as for a video of flat frames, so that no catch-up tries again.
            self.errors.append(("fingerprint", NO_FINGERPRINT + "the picture is one flat colour"))
            return
        pixels = grey.tobytes()
        p, d = _core.image_hashes(pixels, grey.width, grey.height)
        # The finer hash wants 64x64 of the picture: from a thumbnail of a few dozen pixels
        # (`--thumb-size 16`) it is mostly the scaling's noise, and none is made (its pairs
        # are taken on the 64-bit pHash, as a picture hashed before schema 27's).
        fine = _core.fine_hash(pixels, grey.width, grey.height) if min(grey.size) >= FINE_MIN_SIDE else None
        chroma: bytes | None = None
        if source_mode is None or colour is not None:
            no_colour, chroma = colour_of(picture if colour is None else colour)
        else:
            no_colour = True if source_mode in GREY_MODES else None
        self.hashes = {"phash": p, "dhash": d, "grey": no_colour, "chroma": chroma, "phash256": fine}

    def as_dict(self) -> dict[str, Any]:
        media = dict(self.media)
        media.update(blake3=self.task.blake3, status=self.status, thumb=self.thumb,
                     thumb_width=self.thumb_wh[0] if self.thumb_wh else None,
                     thumb_height=self.thumb_wh[1] if self.thumb_wh else None,
                     thumb_bytes=self.thumb_wh[2] if self.thumb_wh else None,
                     extracted_at=datetime.now(timezone.utc).replace(tzinfo=None))
        return {"blake3": self.task.blake3, "media": media if self.task.meta else None,
                "streams": self.streams, "audio": self.audio, "exif": self.exif, "sidecar": self.sidecar,
                "hashes": self.hashes, "video_hashes": self.video_hashes,
                "audio_hash": self.audio_hash, "errors": self.errors, "thumb": self.thumb, "thumb_wh": self.thumb_wh,
                "low_space": self.low_space,
                "thumb_refused": self.thumb_refused,
                "rotation": self.media.get("rotation")}


def extract_one(task: Task) -> dict[str, Any]:
    """Metadata and thumbnail for one file; errors are recorded in the result."""
    r = _Result(task)
    path = task.path
    try:
        st = os.stat(path)
        if _not_as_scanned(task, st):
            # Not the content the catalog hashed: its metadata would be filed under another
            # content's hash (and a FIFO put there would block until the timeout).
            return {"blake3": task.blake3, "stale": True}
        if stat.S_ISREG(st.st_mode) and st.st_size == 0:
            r.fail("open", "empty file (0 bytes)", ERROR)
            return r.as_dict()
    except (FileNotFoundError, NotADirectoryError):
        # Deleted, renamed or moved since the scan (or a link now pointing nowhere): the
        # content is fine, another copy or the next scan's path will be read. An error
        # here would be filed against the content, and kept, for good.
        return {"blake3": task.blake3, "stale": True}
    except OSError as e:
        r.fail("open", f"cannot read: {e.strerror}", ERROR)
        return r.as_dict()
    # A file with the wrong extension gets a second chance with the other reader.
    if task.kind == "raw" and _raw(r):
        pass
    elif task.kind in ("image", "raw"):
        if not _image(r) and _av(r, fallback=True) and task.meta:
            _heif_exif(r)
        if task.kind == "image" and task.meta and r.status in (OK, PARTIAL):
            from .image import tiff_cut_short

            # Pillow reads a TIFF directory cut short as far as it goes, libav reads what
            # Pillow cannot, and pixel data that lies before the cut decodes whole: only
            # the file's structure tells (None for a file that is no TIFF).
            short = tiff_cut_short(task.path)
            if short:
                # (The reason Pillow would not open it: no more a note of its own.)
                r.errors = [(stage, m) for stage, m in r.errors if not m.startswith(PILLOW_REFUSED)]
                r.fail("decode", short)
    elif task.kind in ("video", "audio"):
        _av(r) or _image(r, fallback=True)
        sound = task.kind == "audio" or r.media.get("audio_codec") and not r.media.get("video_codec")
        if sound and (task.meta or task.thumbs):
            _tags(r)
    elif task.kind == "sidecar":
        _sidecar(r)
    if not task.meta and not task.thumbs:
        # A fingerprint-only task: whatever stopped it is a fingerprint error, recorded once
        # so that later catch-ups do not pick the content again.
        # All but the finding that a video's pictures end early, which makes it `partial`
        # as a full extraction would (`write_fingerprints`).
        r.errors = [(stage if stage == "decode" and message.startswith(FINGERPRINT_NOTES) else "fingerprint", message)
                    for stage, message in r.errors]
        if not r.errors and r.hashes is None and not r.video_hashes and r.audio_hash is None:
            r.fail("fingerprint", "no picture or sound to fingerprint", ERROR)
    if task.mtime_ns is not None and _changed_since(path, st):
        # Written to while it was read (a copy over it, an editor saving): what was read
        # may be either content, or half of each, and is filed under neither; its
        # thumbnail, made of those bytes, never takes the content's place. The next scan
        # hashes the new content.
        r.settle_thumb(False)
        return {"blake3": task.blake3, "stale": True}
    r.settle_thumb(True)
    return r.as_dict()


def _not_as_scanned(task: Task, st: os.stat_result) -> bool:
    """Whether `st`, of `task.path`, is not the file the scan saw (a regular file of the
    recorded size, mtime and change time); False when the task records none."""
    return task.mtime_ns is not None and (
        not stat.S_ISREG(st.st_mode) or (st.st_size, time_ns(st.st_mtime_ns)) != (task.size, task.mtime_ns)
        or task.ctime_ns is not None and time_ns(st.st_ctime_ns) != task.ctime_ns)


# Seconds `moved_on` waits for a file's stat.
STAT_WAIT = 2.0


def moved_on(task: Task) -> bool:
    """Whether `task.path` no longer holds the file the scan saw: gone, or replaced by
    another file, a FIFO or a link to a device. The pool asks this of a file its worker
    timed out or died on: readers open the path again, and one that meets a FIFO put there
    meanwhile blocks until the timeout. Such a file is `stale`, never a failure filed
    against the content."""
    if task.mtime_ns is None:
        return False
    found: list[os.stat_result | OSError] = []

    def look() -> None:
        try:
            found.append(os.stat(task.path))
        except OSError as e:
            found.append(e)

    # Apart, and not waited on for long: the file may be on a network mount that stopped
    # answering (why its worker timed out), where a stat blocks this process for good.
    looker = threading.Thread(target=look, daemon=True)
    looker.start()
    looker.join(STAT_WAIT)
    if not found:
        return False
    st = found[0]
    if isinstance(st, OSError):
        return isinstance(st, (FileNotFoundError, NotADirectoryError))
    return _not_as_scanned(task, st)


def _changed_since(path: str | bytes, before: os.stat_result) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return True
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) != \
        (before.st_ino, before.st_size, before.st_mtime_ns, before.st_ctime_ns)


def _image(r: _Result, fallback: bool = False) -> bool:
    """Pillow (plus pillow-heif and rawpy when present). True when the file was read."""
    from PIL import Image, UnidentifiedImageError

    from .exif import hostile_tiff
    from .image import (BrokenPicture, apng_frames, embedded_xmp_date, gif_blocks, image_info, jpeg_cut_short,
                        jpeg_lossless, open_image, read_exif, too_large, unsupported_reason, webp_delays)
    from .thumbs import reduce_for_hash, reduce_grey, reduce_image

    t = r.task
    try:
        im = open_image(t.path, large=True)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        hostile = hostile_tiff(t.path) if not _chunk_bomb(e) else None
        if _chunk_bomb(e) or hostile:
            # A decompression bomb (gigabytes from a file of a few megabytes): refused here
            # rather than handed to libav, which inflates a PNG's whole chunk, or copies
            # each of a TIFF directory's overlapping values.
            r.fail("decode", hostile or e, ERROR)
            return True
        if fallback:
            return False
        reason = unsupported_reason(os.path.basename(t.path))
        if reason:
            r.fail("image", f"unsupported: {reason}", UNSUPPORTED)
        elif t.kind == "raw":
            r.errors.clear()  # what rawpy said is the reason; Pillow was only the fallback
            r.fail("raw", f"unsupported RAW format ({r.raw_problem or 'no reader'})", UNSUPPORTED)
        elif message_of(e) == WEBP_UNDECODED and _webp_header_read(r):
            return True  # cut short after its header: that much is read
        else:
            r.fail("image", e, ERROR)
        return False
    with im:
        if fallback:
            r.errors.clear()
            r.status = OK
        huge = too_large(im, t.thumb_size)
        if huge:
            _header_only(r, im, huge)
            return True  # read enough to know not to decode it
        short = jpeg_cut_short(im, os.path.getsize(t.path)) if im.format == "JPEG" else None  # one stat
        if short:
            _header_only(r, im, short, refused=False)
            return True
        if t.kind == "raw":
            # rawpy could not read it, Pillow could: what Pillow sees in a TIFF-based RAW is
            # the small preview image, not the sensor's picture.
            r.fail("raw", f"only the embedded preview was read ({r.raw_problem or 'no reader'})")
        if t.meta:
            r.media.update(image_info(im))
            delays: list[float] = []  # an animation's frames' (its `duration` is their sum)
            end = None
            if im.format == "GIF":
                end, images, delays = gif_blocks(t.path)
            if end == "cut":
                # Pillow counts the frames it can read, or stops on the cut with an error
                # (then counts one): a GIF cut short loses the rest without a word, and
                # only its missing trailer tells. Its whole images are what was read.
                r.media["frames"] = max(images, 1)
                del delays[r.media["frames"]:]
                r.fail("decode", f"the GIF ends before its trailer ({images} whole frames read): cut short?")
            elif end == "broken":
                # A byte that starts no block: browsers stop there; Pillow reads on past it
                # where it can, and its count stands.
                r.fail("decode", f"the GIF's blocks are broken after {images} whole frames: damaged?")
                if r.media["frames"] != images:
                    delays.clear()  # those of its frames past the break are unknown: no length
            elif im.format == "PNG" and r.media["frames"] > 1:
                held = apng_frames(t.path, delays)
                if held is None or held < r.media["frames"]:
                    r.fail("decode", f"the animated PNG claims {r.media['frames']} frames and holds "
                                     f"{'none that can be counted' if held is None else held}")
                    r.media["frames"] = held
            elif im.format == "WEBP" and r.media["frames"] > 1:
                delays = webp_delays(t.path)
            if (r.media["frames"] or 0) > 1 and sum(delays) > 0:
                r.media["duration"] = round(sum(delays), 3)
            try:
                r.exif = read_exif(im)
            except BrokenPicture as e:
                # Its header fields are known, its pixels are not: no thumbnail, no pHash.
                r.fail("decode", e.__cause__ if isinstance(e.__cause__, Exception) else str(e), PARTIAL)
                return True
            if r.exif and r.exif.get("taken_at"):
                r.media["taken_at"] = r.exif["taken_at"]
            else:  # no EXIF date: the picture's own XMP packet's, as an export that dropped EXIF keeps it
                r.media["taken_at"] = embedded_xmp_date(im)
        # A JPEG whose pixels libjpeg does not decode may be a lossless one, which libav
        # decodes (the caller's fallback): looked at only then, off the common path. Its
        # header's fields and EXIF are kept; what libav makes of it replaces this.
        def lossless() -> bool:
            if im.format != "JPEG" or fallback or not jpeg_lossless(t.path):
                return False
            r.fail("decode", "a lossless JPEG, which Pillow cannot decode", PARTIAL if t.meta else ERROR)
            return True

        if t.thumbs:
            try:
                small = reduce_image(im, t.thumb_size)
                r.image_hashes(small)
                r.save_thumb(small)
            except Image.DecompressionBombError as e:
                r.fail("thumb", e)
            except (OSError, ValueError, SyntaxError, MemoryError) as e:
                if lossless():
                    return False
                # A truncated or corrupt image: its header fields are known, its pixels are not.
                r.fail("decode", e, ERROR if not t.meta else PARTIAL)
        elif t.fingerprints:
            # No thumbnail wanted: the hash alone, from a grey decode (JPEG: its luma, with
            # its chroma's DC alone beside it), and the colour measured on a small copy.
            stage = "decode" if t.meta else "fingerprint"
            try:
                mode = im.mode  # (before a draft changes it)
                try:
                    grey, colour = reduce_for_hash(im, t.thumb_size)
                except (OSError, ValueError, SyntaxError):
                    if im.format != "JPEG":
                        raise
                    # A JPEG libjpeg decodes in grey and not in YCbCr (RGB-coded without
                    # saying so, a sampling it cannot upsample): grey alone, its colour
                    # unknown, as before colour was measured here.
                    again = open_image(t.path, large=True)
                    try:
                        grey, colour = reduce_grey(again, t.thumb_size), None
                    finally:
                        again.close()
                r.image_hashes(grey, source_mode=mode, colour=colour)
            except Image.DecompressionBombError as e:
                r.fail(stage, e)
            except (OSError, ValueError, SyntaxError, MemoryError) as e:
                if lossless():
                    return False
                r.fail(stage, e, PARTIAL)
    return True


# Pillow's refusal of a PNG chunk that inflates past its limit, as `meta_errors` says it.
_CHUNK_BOMB = "refused: a compressed chunk (ICC profile or text) inflates past {mb} MB: a decompression bomb?"


def _chunk_bomb(e: BaseException) -> bool:
    return isinstance(e, ValueError) and str(e).startswith("Decompressed data too large")




def _text_limit() -> int:
    from PIL import PngImagePlugin

    return int(PngImagePlugin.MAX_TEXT_CHUNK)


def _header_only(r: _Result, im: Any, why: str, refused: bool = True) -> None:
    """A picture too large to decode, or (not `refused`) one that cannot hold what its
    header claims: what its header says (size, mode, EXIF), `partial` with the reason, no
    thumbnail or fingerprint. Only readers that do not decode: a PNG's EXIF after its
    pixel data is found by decoding them, so it is left out."""
    from PIL import Image

    from .image import BrokenPicture, image_info, read_exif

    t = r.task
    # At stage `decode`, as a picture whose pixels fail to decode: no later run tries to
    # fingerprint it again.
    r.fail("decode", f"refused: {why}; its header is read, its pixels are not" if refused else
           f"{why}; its header is read, its pixels are not", PARTIAL)
    if not t.meta:
        return
    try:
        r.media.update(image_info(im))
        if im.format != "PNG" or "exif" in im.info:
            r.exif = read_exif(im)
    except (Image.DecompressionBombError, BrokenPicture, OSError, ValueError, SyntaxError) as e:
        r.fail("image", e, PARTIAL)
    if r.exif and r.exif.get("taken_at"):
        r.media["taken_at"] = r.exif["taken_at"]


def _heif_exif(r: _Result) -> None:
    """The EXIF of a HEIF-family still that only libav decodes here (AVIF: pillow-simd has
    no AVIF reader), through libheif, which reads it without decoding the picture."""
    if r.exif or r.media.get("format") not in ("avif", "heic", "heif"):
        return
    from .image import exif_of_heif

    r.exif = exif_of_heif(r.task.path)
    if r.exif and r.exif.get("taken_at"):
        r.media["taken_at"] = r.exif["taken_at"]


def _raw(r: _Result) -> bool:
    """A RAW through rawpy (LibRaw): the sensor's size, the embedded preview for the
    thumbnail and pHash, and the EXIF through Pillow where the RAW is TIFF-based. False
    when rawpy is missing or does not take the file (then Pillow tries, see `_image`)."""
    try:
        import rawpy
    except ImportError:
        r.raw_problem = "install rawpy to read RAW files"
        return False
    t = r.task
    try:
        raw = rawpy.imread(os.fsdecode(t.path))
    except Exception as e:  # noqa: BLE001 - LibRawFileUnsupportedError, LibRawIOError ...
        r.raw_problem = f"rawpy: {message_of(e)}"
        return False
    with raw:
        sizes = raw.sizes
        r.media.update(format="raw", width=int(sizes.width), height=int(sizes.height), mode=None,
                       frames=1, bit_depth=None)
        if t.meta:
            _raw_exif(r)
        if t.thumbs or t.fingerprints:
            try:
                picture = _raw_preview(raw, t.thumb_size, int(sizes.flip))
            except Exception as e:  # noqa: BLE001 - no preview, or one that does not decode
                r.fail("thumb" if t.thumbs else "fingerprint", e)
            else:
                if t.fingerprints:
                    r.image_hashes(picture)
                if t.thumbs:
                    r.save_thumb(picture)
    return True


# LibRaw's `flip`: how to turn the stored picture upright.
_FLIP_ROTATE = {3: 180, 5: 90, 6: 270}


def _raw_preview(raw: Any, size: int, flip: int) -> Any:
    """The camera's own preview (JPEG or bitmap), upright and at most `size` pixels."""
    import rawpy
    from PIL import Image

    from .exif import orientation
    from .image import open_image
    from .thumbs import SHOWN, reduce_image

    thumb = raw.extract_thumb()
    if thumb.format == rawpy.ThumbFormat.JPEG:
        im = open_image(io.BytesIO(bytes(thumb.data)))  # type: ignore[arg-type]
        has_orientation = orientation(im) not in (None, 1)
    else:
        im = Image.fromarray(thumb.data)
        has_orientation = False
    small = reduce_image(im, size)
    if flip in _FLIP_ROTATE and not has_orientation:
        shown = small.info.get(SHOWN)  # (a 16-bit preview's thumbnail: turned with it)
        small = small.rotate(_FLIP_ROTATE[flip], expand=True)
        if shown is not None:
            small.info[SHOWN] = shown.rotate(_FLIP_ROTATE[flip], expand=True)
    return small


def _raw_exif(r: _Result) -> None:
    """Camera, lens, exposure and date from a TIFF-based RAW (DNG, NEF, ARW, CR2 ...)."""
    from .image import open_image, read_exif

    try:
        with open_image(r.task.path) as im:
            r.exif = read_exif(im)
    except Exception:  # noqa: BLE001 - not TIFF-based (CR3, RAF ...): no EXIF from Pillow
        return
    if r.exif and r.exif.get("taken_at"):
        r.media["taken_at"] = r.exif["taken_at"]


# Still formats Pillow reads, by libav's name for their image reader less `_pipe`: one it
# would not open is damaged (see `_av`), as its note says.
PILLOW_REFUSED = "Pillow will not open this "
_PILLOW_READS = frozenset({"png", "apng", "jpeg", "webp", "gif", "bmp", "tiff"})


def _av(r: _Result, fallback: bool = False) -> bool:
    import av

    from .probe import (CannotDecode, UnknownLength, audio_fingerprint, demuxed_length, length_in_header, probe,
                        sound_end, video_fingerprint)
    from .thumbs import fit

    t = r.task
    # A still that only libav reads (AVIF without Pillow's plugin) is fingerprinted from
    # the same decoded frame as its thumbnail.
    still = t.kind in ("image", "raw")
    # A still Pillow could not read must show a picture to count as read (below).
    want_picture = t.kind != "audio" and (t.thumbs or still and (t.fingerprints or fallback))
    by_content = False
    try:
        media, streams, picture = probe(t.path, want_picture, t.thumb_size)
        if media["format"] == "image2" and t.kind in ("audio", "video"):
            # The name chose libav's image reader for what the scan found to be sound or
            # video (an MP3 named .jpg): read it again by its content.
            by_content = r.by_content = True
            media, streams, picture = probe(t.path, want_picture, t.thumb_size, by_content=True)
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError, IndexError, ZeroDivisionError) as e:
        if not fallback:
            import errno

            if isinstance(e, av.error.FFmpegError) and e.errno in (errno.EIO, errno.EPERM):
                # libav's demuxers say EIO or EPERM for data they cannot parse: not the disk.
                r.fail("probe", f"libav cannot read it ({e.strerror}): corrupt, or cut short?", ERROR)
            else:
                r.fail("probe", e, ERROR)
        return False
    timeless = _no_time_scale(t.path, media)
    if timeless:
        # Counted in whole seconds by libav: lengths, rates and bit rates all wrong.
        media.update(duration=None, fps=None, bitrate=None)
        for s in streams:
            s.update(duration=None, bitrate=None, **({"fps": None} if "fps" in s else {}))
        r.fail("probe", "its header gives a time scale of 0: its length, frame rate and bit rate are not known")
    image_reader = media["format"] == "image2" or str(media["format"]).endswith("_pipe")
    if fallback and still and (not (media.get("width") and media.get("height")) or image_reader and picture is None):
        # libav's image reader "opens" any file named like a picture, even one whose header
        # is garbage; without a picture size it read nothing, and what Pillow said stands.
        # Nor did it with a size and no picture: a JPEG cut short in its header (the size
        # comes early) is no picture, whatever libav's image reader says of it. (A
        # container, AVIF's, that reads and is cut short is read as far as it goes.)
        return False
    if fallback:
        refused = next((message for stage, message in r.errors if stage == "image"), None)
        r.errors.clear()
        r.status = OK
        pipe = str(media["format"]).removesuffix("_pipe")
        if still and image_reader and pipe in _PILLOW_READS and refused is not None:
            # Pillow knows the format and would not open it (a PNG chunk that fails its
            # CRC): damaged, though libav, which checks less, decodes its pixels.
            r.fail("image", f"{PILLOW_REFUSED}{pipe.upper()} ({refused}): damaged? libav decoded it", PARTIAL)
    if still and image_reader:
        # The format's own name (`jpeg`, as Pillow's), not that of libav's reader for it
        # (`jpeg_pipe`), nor of its reader by name (`image2`): that is its codec's.
        codec = media.get("video_codec")
        media["format"] = (str(media["format"]).removesuffix("_pipe") if media["format"] != "image2"
                           else {"mjpeg": "jpeg"}.get(codec, codec) or "image2")
    local = media.pop("taken_at", None)
    camera = media.pop("camera", None)
    if camera is not None and not still and media.get("video_codec") and t.kind != "audio":
        r.exif = camera  # a phone's make, model and place, as a photo's EXIF gives them
    r.media.update(media)
    r.streams = streams
    if (local or media["created_at"]) is not None and media.get("video_codec") and t.kind != "audio":
        # When a video was shot, on the phone's clock where it says (as a photo's EXIF
        # time is), else the container's time; a song's is only when it was encoded.
        r.media["taken_at"] = local or media["created_at"]
    if not media.get("video_codec") and not media.get("audio_codec"):
        unknown = any(s["type"] in ("video", "audio") for s in streams)
        r.fail("probe", "no audio or video stream libav can decode" if unknown else "no audio or video stream", ERROR)
    elif not media.get("video_codec") and not media.get("channels") and not media.get("sample_rate"):
        # libav picks a demuxer by the name (`garbage.flac`) and finds a "stream" without
        # a single channel: nothing in the file is sound.
        r.fail("probe", f"not {media['audio_codec']} sound: its stream has no channels or sample rate", ERROR)
    if picture is not None:
        try:
            small = fit(picture, t.thumb_size)
            if still and (t.thumbs or t.fingerprints):
                r.image_hashes(small)
        except Exception as e:  # noqa: BLE001
            r.fail("thumb" if t.thumbs else "fingerprint", e)
        else:
            if t.thumbs:
                r.save_thumb(small)
    elif t.thumbs and media.get("video_codec") and t.kind != "audio":
        r.fail("thumb", "no frame could be decoded")
    # Frames at fixed fractions of the duration: the video's near-duplicate fingerprint.
    if t.fingerprints and t.kind == "video" and media.get("video_codec"):
        try:
            r.video_hashes, ended, looked_at, damaged = video_fingerprint(t.path, media.get("duration"), by_content)
        except UnknownLength as e:
            # Nothing to fingerprint by, as for a flat video (below): the extraction is fine.
            r.errors.append(("fingerprint", NO_FINGERPRINT + str(e)))
        except (av.error.FFmpegError, OSError, ValueError) as e:
            r.fail("fingerprint", e)
        else:
            if ended is not None:
                r.fail("decode", f"{PICTURES_END}{ended:.1f} s of the {media['duration']:.1f} s the file "
                                 "claims: cut short?")
            if damaged is not None:
                # A damaged copy groups with its whole original now; this note makes it
                # `partial`, so `dedupe --keep best` keeps the whole one.
                r.fail("decode", f"{PICTURES_DAMAGED}{damaged:.1f} s")
            if not r.video_hashes:
                # Recorded (the extraction itself is fine) so that no catch-up tries again.
                why = ("the pictures end before the first time sampled" if ended is not None
                       else "every sampled frame is black or flat" if looked_at else "no frame could be decoded")
                r.errors.append(("fingerprint", NO_FINGERPRINT + why))
    # Sound alone (music, recordings): an audio fingerprint for near-duplicate search.
    broken: tuple[float | None, int, float] = (None, 0, 0.0)
    if t.fingerprints and media.get("audio_codec") and not media.get("video_codec"):
        try:
            r.audio_hash = audio_fingerprint(t.path, by_content)
        except (av.error.FFmpegError, OSError, ValueError) as e:
            r.fail("fingerprint", e)
        else:
            broken = (r.audio_hash.pop("bad_at"), r.audio_hash.pop("bad_frames"), r.audio_hash.pop("lost"))
    # Sound whose header states its length and that ends well before it was cut short (a
    # download or copy that stopped): it must not pass for the whole song, in a near-
    # duplicate group or a dedupe. Its duration is how far it plays.
    claimed = media.get("duration")
    if claimed and media.get("format") == "asf":
        claimed = max(claimed, _asf_length(t.path) or 0.0)  # libav's is what a cut file holds
    stated = _mp3_stated(t.path) if t.meta and media.get("format") == "mp3" and not media.get("video_codec") \
        else None
    if stated is not None and stated.more_after:
        # More bytes than its Xing, Info or VBRI frame states: MP3s joined end to end, each
        # with its own such frame, which play on past the first part's length (libav's is
        # then a guess from the first frame's bitrate): their packets tell how far.
        _measured_length(r, t.path, by_content, claimed)
    elif t.meta and claimed and media.get("audio_codec") and not media.get("video_codec") \
            and length_in_header(media.get("format"), t.path):
        if stated is not None and stated.seconds and stated.seconds > claimed + max(0.5, claimed / 200):
            claimed = stated.seconds  # libav's is a guess from the bitrate, not the header's, for a cut file
        try:
            ended = sound_end(t.path, claimed, by_content)
        except CannotDecode as e:
            r.fail("decode", str(e))
            ended = None
        except (av.error.FFmpegError, OSError, ValueError):
            ended = None
        if ended is not None and media.get("format") == "mp3":
            # Seeks in an MP3 go by its Xing frame's table, which in MP3s joined end to end
            # (each kept its own) maps the first part alone: the packets tell how far it
            # plays (read, not decoded, and only for a file the seeks found short).
            with contextlib.suppress(av.error.FFmpegError, OSError, ValueError):
                measured = demuxed_length(t.path, by_content)
                if measured is not None and measured > ended + max(0.5, claimed / 200):
                    ended = measured if measured < claimed - max(0.5, claimed / 200) else None
        if ended is not None:
            r.media["duration"] = round(ended, 3)
            r.fail("decode", f"the sound ends at {ended:.1f} s of the {claimed:.1f} s the file claims: cut short?")
    elif t.meta and media.get("audio_codec") and not media.get("video_codec") and media.get("format") in ("wav", "ogg"):
        _framing_end(r, media)
    elif t.meta and claimed and media.get("format") in _BARE_STREAMS and not media.get("video_codec"):
        # No length in its header: libav's is a guess from the first frame's bitrate, and
        # so is its bitrate (the first frame's). A 180 s song in ADTS AAC read as 192 s:
        # past the 2% the near-duplicate search allows, it grouped with no other copy.
        _measured_length(r, t.path, by_content, claimed)
    if t.meta and not any(stage == "decode" and "cut short" in message for stage, message in r.errors):
        # An MP4/MOV with its index first opens whole when the end of its media data is
        # lost: its boxes tell, whether or not its fingerprint's frames reached the cut.
        from .mp4 import cut_short

        try:
            short = cut_short(t.path)
        except (OSError, struct.error):
            short = None
        if short:
            r.fail("decode", short)
    _sound_breaks(r, media, *broken)
    if t.meta and not still and not timeless:  # (a time scale of 0 gives packets no times either)
        _length_from_packets(r, by_content)
    _settle_lengths(r)
    return True


# Formats of sound with no header to state a length (an MP3 without a Xing or VBRI frame,
# ADTS AAC, raw AC-3 and DTS): libav guesses it from the first frames' bitrate.
_BARE_STREAMS = frozenset({"mp3", "aac", "ac3", "eac3", "dts"})


def _length_from_packets(r: _Result, by_content: bool) -> None:
    """The length of a file whose header gives none, neither its own nor any stream's (a
    browser's MediaRecorder WebM, a FLAC streamed with a sample count of 0): what its
    packets span, and the bit rate that makes. Every packet is read, none decoded."""
    import av

    from .probe import packet_spans

    if r.media.get("duration") is not None or any(0 < (s.get("duration") or 0) <= LONGEST_S for s in r.streams):
        return
    if not r.media.get("video_codec") and not r.media.get("audio_codec"):
        return
    try:
        spans = packet_spans(r.task.path, by_content)
    except (av.error.FFmpegError, OSError, ValueError):
        return
    for s in r.streams:
        if s.get("duration") is None and s.get("stream_index") in spans:
            s["duration"] = round(spans[s["stream_index"]], 3)
    longest = max(spans.values(), default=0.0)
    if 0 < longest <= LONGEST_S:
        r.media["duration"] = round(longest, 3)
        if r.media.get("bitrate") is None:
            with contextlib.suppress(OSError):
                r.media["bitrate"] = round(os.stat(r.task.path).st_size * 8 / longest)


# Seconds of timestamps frames may span beyond the sound they hold in a whole file: codecs'
# priming and padding, and timestamps rounded to a container's time base.
_LOST_SLACK = 0.05


def _sound_breaks(r: _Result, media: dict[str, Any], bad_at: float | None, bad: int, lost: float) -> None:
    """The note on sound damaged in its middle: frames that did not decode (`bad` of
    them, the first after `bad_at` seconds) with sound decoded after them, or frames lost
    in between without an error (`lost` seconds of timestamps with no sound): the file
    is not whole, whatever its header says, and must not pass for the whole song in a
    dedupe. A file cut short, or with bytes after its sound, fails at its end alone."""
    if (media.get("audio_codec") or "") in _LENIENT_SOUND or any(stage == "decode" for stage, _ in r.errors):
        return
    length = media.get("duration")
    of = f" of the {length:.1f} s it lasts" if length else ""
    if bad_at is not None:
        r.fail("decode", f"{SOUND_BREAKS}at {bad_at:.1f} s{of} ({bad:,} frame{'' if bad == 1 else 's'} lost): "
                         "damaged?")
    elif lost > _LOST_SLACK:
        r.fail("decode", f"{SOUND_BREAKS}whole: {lost:.2f} s{of} lost: damaged?")


def _decoded_length(r: _Result, path: bytes) -> None:
    """The length of sound whose header is damaged, as many seconds as it decodes to (its
    packets' times may run at a rate of their own), in place of what they spanned."""
    import av

    from .probe import decoded_length

    with contextlib.suppress(av.error.FFmpegError, OSError, ValueError):
        seconds = decoded_length(path, by_content=r.by_content)
        if seconds is not None:
            _sound_lasts(r, path, seconds)


def _sound_lasts(r: _Result, path: bytes, seconds: float) -> None:
    """Sound alone lasts `seconds`: its length, and the bitrate that makes, in its row and
    its sound stream's."""
    r.media["duration"] = round(seconds, 3)
    with contextlib.suppress(OSError):
        r.media["bitrate"] = round(os.stat(path).st_size * 8 / seconds)
    for s in r.streams:
        if s.get("type") == "audio":
            s["duration"], s["bitrate"] = r.media["duration"], r.media.get("bitrate")


def _measured_length(r: _Result, path: bytes, by_content: bool, claimed: float | None) -> None:
    """An MP3's length and bitrate as its packets tell (read, not decoded), in place of
    libav's guess from its first frame's bitrate, where the two differ."""
    import av

    from .probe import SPAN_BUDGET_S, demuxed_length

    with contextlib.suppress(av.error.FFmpegError, OSError, ValueError):
        measured = demuxed_length(path, by_content, SPAN_BUDGET_S)  # (else libav's guess stands)
        if measured and (not claimed or abs(measured - claimed) > max(0.5, claimed / 200)):
            _sound_lasts(r, path, measured)


def _mp3_stated(path: bytes) -> Mp3Stated | None:
    """What an MP3's length frame states (`ends.mp3_stated`), None where unread."""
    from .ends import mp3_stated

    try:
        return mp3_stated(path)
    except (OSError, ValueError, IndexError):  # (a file cut as it is read)
        return None


def _asf_length(path: bytes) -> float | None:
    """The length an ASF file's header states (`ends.asf_length`), None where unread."""
    from .ends import asf_length

    try:
        return asf_length(path)
    except OSError:
        return None


_ISO_MEDIA = frozenset(("mov", "mp4", "m4a", "m4v", "3gp", "3g2", "mj2", "ismv"))


def _no_time_scale(path: bytes, media: dict[str, Any]) -> bool:
    """Whether an MP4/MOV (an ISO media file: format mov, mp4, 3gp, ...) gives a time
    scale of 0 (see `mp4.zero_time_scale`)."""
    from .mp4 import zero_time_scale

    if media.get("format") not in _ISO_MEDIA or not media.get("duration"):
        return False
    try:
        return zero_time_scale(path)
    except (OSError, struct.error):
        return False


# What a thumbnail folder answers when it may not be written (read-only, another user's,
# a file where a folder goes).
_REFUSED = frozenset((errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST, errno.EISDIR))
# Of those, what a file where a folder of the thumbnails' should be gives.
_FILE_IN_WAY = frozenset((errno.ENOTDIR, errno.EEXIST))


FASTEST_VIDEO_BPS = 100_000_000_000
FASTEST_SOUND_BPS = 2_000_000_000


def _settle_lengths(r: _Result) -> None:
    """Stream lengths the file's own length belies are not stored: a header's claim (an
    MP3's frame count, FLAC's sample count, an Ogg page's granule, a Matroska track's tag)
    well past what the file holds once that was measured or corrected, or past a year;
    nor bit rates past any recording's."""
    whole = r.media.get("duration")
    if whole is not None and not 0 <= whole <= LONGEST_S:
        r.media["duration"] = None
        r.fail("probe", f"the file's header claims {whole:.0f} s: not plausible, not stored")
        whole = None
    elif whole is None:
        # No length of its own that libav gives (a Matroska `Duration` of 1e300, or none,
        # as a browser's recording has): its longest stream's, where one is plausible.
        lengths = [s["duration"] for s in r.streams if 0 < (s.get("duration") or 0) <= LONGEST_S]
        if lengths:
            r.media["duration"] = whole = max(lengths)
    for s in r.streams:
        length = s.get("duration")
        if length is None:
            continue
        if length > LONGEST_S:
            s["duration"] = None
            r.fail("probe", f"stream {s['stream_index']}'s header claims {length:.0f} s: not plausible, not stored")
        elif whole is not None and length > whole * 1.5 + 5:
            s["duration"] = None  # the file's length (and what corrected it) says why
    # Bit rates past any recording's (uncompressed 8K video, 64 channels of 192 kHz sound):
    # a header's count (65535 channels) multiplied out.
    most = FASTEST_VIDEO_BPS if r.media.get("video_codec") else FASTEST_SOUND_BPS
    if (r.media.get("bitrate") or 0) > most:
        r.media["bitrate"] = None
    for s in r.streams:
        if (s.get("bitrate") or 0) > (FASTEST_VIDEO_BPS if s.get("type") == "video" else FASTEST_SOUND_BPS):
            s["bitrate"] = None


def _framing_end(r: _Result, media: dict[str, Any]) -> None:
    """A WAV or Ogg file cut short (see `ends`): libav measures them by the sound they
    hold, so only their framing tells."""
    from .ends import ogg_end, wav_end

    try:
        if media["format"] == "wav":
            wav = wav_end(r.task.path)
            if wav is not None:
                r.media["duration"] = round(wav.present, 3)
                r.fail("decode", f"the sound ends at {wav.present:.1f} s of the {wav.claimed:.1f} s the file "
                                 "claims: cut short?")
            return
        ogg = ogg_end(r.task.path)
    except OSError as e:
        r.fail("decode", e)
        return
    if ogg is not None and ogg.cut:
        rate = 48000 if media.get("audio_codec") == "opus" else media.get("sample_rate")
        if r.media.get("duration") is None and ogg.granule is not None and rate:
            r.media["duration"] = round(ogg.granule / rate, 3)  # libav could not tell (FLAC in Ogg)
        r.fail("decode", "the file stops before its last Ogg page (no end of stream): cut short?")


def _tags(r: _Result) -> None:
    from .audio import read_audio
    from .probe import LOSSLESS_AUDIO, LOSSY_PCM

    t = r.task
    try:
        row, cover, bits, flac = read_audio(t.path, r.media.get("format"))
    except Exception as e:  # noqa: BLE001 - mutagen raises MutagenError and plain errors alike
        if r.status != ERROR:  # (a file libav could not read either: its one row says so)
            r.fail("tags", e)
        return
    if flac is not None:  # a FLAC mutagen refused, its tags read block by block
        r.fail("tags", f"{flac.refused}: the tags were read from the blocks that are whole")
        if flac.no_rate and t.meta and r.status != ERROR:
            _decoded_length(r, t.path)
    if cover is None and any(s.get("is_cover") for s in r.streams):
        # A cover libav sees that the tag reader does not (a Matroska attachment).
        from .probe import attached_cover

        with contextlib.suppress(Exception):
            cover = attached_cover(t.path)
        if cover is not None and row is not None:
            row = dict(row, has_cover=True)
    if r.status == ERROR and (row is not None or cover is not None):
        # libav could not read the sound, but its tags (or cover) were read and are kept:
        # read in part, not "nothing could be read" (and `thumbs` may redo its cover).
        r.status = PARTIAL
    codec = r.media.get("audio_codec") or ""
    lossless = codec in LOSSLESS_AUDIO or codec.startswith("pcm_") and codec not in LOSSY_PCM
    if bits is not None and codec in LOSSLESS_AUDIO:
        # libav keeps a lossless stream's bits (FLAC's 24) only in a field PyAV does not
        # show, and decodes them to a wider format (s32): the header's count, from mutagen.
        sound = next((s for s in r.streams if s.get("type") == "audio"), None)
        if sound is not None and sound.get("bit_depth") is None:
            sound["bit_depth"] = bits
        if not r.media.get("video_codec") and r.media.get("bit_depth") is None:
            r.media["bit_depth"] = bits
    r.audio = dict(row or {}, lossless=lossless) if row is not None else {"lossless": lossless, "has_cover": cover is not None}
    if cover is not None and t.thumbs:
        from .thumbs import cover_image

        try:
            picture = cover_image(cover, t.thumb_size)
        except Exception as e:  # noqa: BLE001 - broken cover art is a thumbnail error
            # Pillow names the in-memory file (`<_io.BytesIO object at 0x...>`): say what it was.
            why = "not a picture Pillow can read" if "cannot identify image file" in str(e) else message_of(e)
            r.fail("thumb", f"{COVER_UNDECODED}{why}")
        else:
            r.save_thumb(picture)


def _sidecar(r: _Result) -> None:
    from .sidecar import NotAPhotoSidecar, SidecarError, parse_sidecar

    name = os.fsdecode(os.path.basename(r.task.path))
    try:
        r.sidecar = parse_sidecar(r.task.path, name)
    except NotAPhotoSidecar as e:
        r.fail("sidecar", e, UNSUPPORTED)
        return
    except (SidecarError, OSError) as e:
        r.fail("sidecar", e, ERROR)
        return
    if r.sidecar is None:
        ext = os.path.splitext(name)[1] or name
        r.fail("sidecar", f"MediaForge reads no metadata from {ext} sidecars, only from XMP and Google Takeout "
                          "JSON ones (nothing to install: the file is catalogued as it is)", UNSUPPORTED)
        return
    r.media["format"] = r.sidecar["format"]
    r.media["taken_at"] = r.sidecar["taken_at"]


def failed(task: Task, status: str, stage: str, message: str) -> dict[str, Any]:
    """The result recorded for a file its worker could not finish."""
    media = {"blake3": task.blake3, "kind": task.kind, "status": status,
             "extracted_at": datetime.now(timezone.utc).replace(tzinfo=None)}
    return {"blake3": task.blake3, "media": media if task.meta else None, "streams": [], "audio": None,
            "exif": None, "sidecar": None, "hashes": None, "video_hashes": [], "audio_hash": None,
            "errors": [(stage, message)],
            "thumb": None,
            "thumb_wh": None,
            "rotation": None}
