"""The ID3v2 tag at the start of an MP3, read by its frame headers.

Two readers need this beside mutagen and libav. A hostile tag of tens of thousands of
frames takes libav minutes (`id3_skip` says where the sound starts after it). And mutagen
drops a text frame whole when its text does not decode as its encoding byte says: Windows
bytes (cp1252) in a frame marked UTF-8, UTF-16 without its byte-order mark, an encoding
byte that names none. Taggers of the 2000s wrote such frames by the million, and a title
read as the bytes most likely are beats no title (`text_frames`).
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from typing import BinaryIO

# More ID3v2 frames than a tag holds in use (a few dozen, a few hundred with lyrics or
# chapters): libav adds each to its tag dictionary by a look through those before it, so
# a hostile tag of 50,000 frames takes it half a minute. Past this many the sound is read
# from after the tag (mutagen reads the tags, in a fraction of a second).
MOST_ID3_FRAMES = 2000
# A text frame's bytes read at most: titles and names are short; lyrics are no text frame.
_MOST_TEXT = 64 << 10
# A whole tag read at most to undo its unsynchronisation (ID3v2.3 sets it for the tag):
# read for every such MP3, so a tag with a big cover is passed by.
_MOST_UNSYNCED_TAG = 1 << 20
# ID3v2.3 frames ID3v2.4 has under another name, as mutagen renames them as it reads.
_RENAMED = {"TYER": "TDRC", "TORY": "TDOR"}
# Frame headers walked at most looking for dropped text frames (a tenth of a second).
_MOST_WALKED = 100_000
# An ID3 chunk of a WAV or AIFF file read at most.
_MOST_CHUNK = 16 << 20
# ID3v2.3 frames mutagen folds into others (the day and time into TDRC) or drops.
_FOLDED = frozenset({"TDAT", "TIME", "TRDA", "TSIZ"})


def syncsafe(b: bytes) -> int:
    """An ID3v2 size: 7 bits a byte."""
    n = 0
    for x in b:
        n = (n << 7) | (x & 0x7F)
    return n


def _tag(f: BinaryIO) -> tuple[int, int, int, int] | None:
    """(version, flags, end, first frame's offset) of the ID3v2 tag at the start of `f`,
    `end` being where the sound starts (after a footer, if any); None if there is none."""
    f.seek(0)
    head = f.read(10)
    if len(head) < 10 or head[:3] != b"ID3" or head[3] not in (2, 3, 4) or any(b & 0x80 for b in head[6:10]):
        return None
    version, flags = head[3], head[5]
    end = 10 + syncsafe(head[6:10]) + (10 if version == 4 and flags & 0x10 else 0)
    pos = 10
    if flags & 0x40 and version in (3, 4):  # an extended header first
        ext = f.read(4)
        if len(ext) < 4:
            return None
        pos += syncsafe(ext) if version == 4 else 4 + int.from_bytes(ext, "big")
    return version, flags, end, pos


def _frames(f: BinaryIO, version: int, end: int, pos: int) -> Iterator[tuple[bytes, int, int, int]]:
    """(id, format flags, body's offset, body's size) of each frame from `pos`, by its
    header alone (the body is seeked past), up to the tag's padding or end, or a frame
    that runs past the end."""
    size_at, head_len = (3, 6) if version == 2 else (4, 10)
    while True:
        f.seek(pos)
        frame = f.read(head_len)
        if len(frame) < head_len or frame[0] == 0:
            return
        raw = frame[size_at:size_at + (3 if version == 2 else 4)]
        size = syncsafe(raw) if version == 4 else int.from_bytes(raw, "big")
        body, pos = pos + head_len, pos + head_len + size
        if pos > end:
            return
        yield frame[:size_at], (frame[9] if version != 2 else 0), body, size


def id3_skip(f: BinaryIO) -> int:
    """Where the sound starts in the open file `f` when an ID3v2 tag at its start holds
    more than `MOST_ID3_FRAMES` frames; 0 otherwise (no tag, or a usual one). The frames
    are counted by their headers alone."""
    tag = _tag(f)
    if tag is None or tag[2] < 11 * MOST_ID3_FRAMES:  # too small to hold that many
        return 0
    version, _, end, pos = tag
    count = sum(1 for _ in itertools.islice(_frames(f, version, end, pos), MOST_ID3_FRAMES + 1))
    return end if count > MOST_ID3_FRAMES else 0


def decode_text(raw: bytes, encoding: int) -> list[str]:
    """A text frame's values (NUL-separated) as its encoding byte says, or else as such
    bytes most likely are: UTF-16 without a byte-order mark in Windows' order, bytes that
    are no UTF-8 in Windows' code page; under an encoding byte that names none, UTF-16
    where a byte-order mark starts the text, else UTF-8 or that code page."""
    bom = raw[:2] in (b"\xff\xfe", b"\xfe\xff")
    if encoding in (1, 2) or (encoding > 3 and bom):
        raw = raw[:len(raw) & ~1]
        # Without a mark, the order its zero bytes tell (Latin text: every other byte),
        # else Windows' (little-endian).
        big = encoding == 2 or raw[0::2].count(0) > raw[1::2].count(0)
        text = raw.decode("utf-16" if bom else "utf-16-be" if big else "utf-16-le", "replace")
    elif encoding == 0:
        text = raw.decode("latin-1")
    else:  # UTF-8, or an encoding byte that names none
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("cp1252", "replace")
    # (UTF-16 values each begin with their own mark; a text ended by a NUL leaves an
    # empty value after it.)
    values = [value.lstrip("\ufeff") for value in text.split("\x00")]
    while len(values) > 1 and not values[-1]:
        values.pop()
    return values


def _chunk(f: BinaryIO) -> BinaryIO | None:
    """The ID3 chunk of a WAV (RIFF, `id3 ` or `ID3 `) or AIFF (IFF, `ID3 `) file open as
    `f`, as a file of its own; None when it has none (or it is too big to read)."""
    f.seek(0)
    head = f.read(12)
    little = head[:4] == b"RIFF" and head[8:12] == b"WAVE"
    if not little and not (head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC")):
        return None
    at = 12
    for _ in range(10_000):
        f.seek(at)
        chunk = f.read(8)
        if len(chunk) < 8:
            return None
        n = int.from_bytes(chunk[4:], "little" if little else "big")
        if chunk[:4] in (b"id3 ", b"ID3 "):
            return io.BytesIO(f.read(n)) if n <= _MOST_CHUNK else None
        at += 8 + n + (n & 1)
    return None


def text_frames(path: str | bytes, have: dict[str, int],
                also: frozenset[str] = frozenset()) -> list[tuple[str, list[str]]]:
    """The text frames (`T...`, ID3v2.3 ones by their ID3v2.4 names) of the ID3v2.3 or
    2.4 tag at the start of the file at `path` (or in a WAV or AIFF file's ID3 chunk)
    that a reader missed: of each frame id, all frames once the tag holds more than
    `have` says the reader found; and those of the ids `also`, whatever it found. A
    `TXXX` frame's values start with its description. Unreadable, compressed and
    encrypted frames are passed by."""
    out: list[tuple[str, list[str]]] = []
    try:
        with open(path, "rb") as file:
            f = _chunk(file) or file
            tag = _tag(f)
            if tag is None or tag[0] == 2:
                return out
            version, flags, end, pos = tag
            src: BinaryIO = f
            if version == 3 and flags & 0x80:  # the whole tag unsynchronised
                if end > _MOST_UNSYNCED_TAG:
                    return out
                f.seek(0)
                src = io.BytesIO(f.read(end).replace(b"\xff\x00", b"\xff"))
            heads = [(_RENAMED.get(fid.decode("latin-1"), fid.decode("latin-1")), fl, at, size)
                     for fid, fl, at, size in itertools.islice(_frames(src, version, end, pos), _MOST_WALKED)
                     if fid[:1] == b"T" and fid.isalnum() and fid.isupper() and fid.decode("latin-1") not in _FOLDED]
            counts: dict[str, int] = {}
            for fid, *_ in heads:
                counts[fid] = counts.get(fid, 0) + 1
            for fid, fl, at, size in heads:
                if counts[fid] <= have.get(fid, 0) and fid not in also:
                    continue
                # Compressed or encrypted: (ID3v2.4) 0x08, 0x04; (ID3v2.3) 0x80, 0x40.
                if fl & (0x0C if version == 4 else 0xC0):
                    continue
                src.seek(at)
                body = src.read(min(size, _MOST_TEXT))
                if version == 4:
                    body = body[(1 if fl & 0x40 else 0) + (4 if fl & 0x01 else 0):]  # group byte, length
                    if fl & 0x02 or flags & 0x80:  # the frame unsynchronised, or the whole tag
                        body = body.replace(b"\xff\x00", b"\xff")
                elif fl & 0x20:  # a group byte
                    body = body[1:]
                if body:
                    out.append((fid, decode_text(body[1:], body[0])))
    except OSError:
        pass
    return out
