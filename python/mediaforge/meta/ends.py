"""Whether a WAV or Ogg file was cut short, told from its own framing; and the length an
ASF (WMA) file's header states.

libav measures both by the sound the bytes hold, so a download or copy that stopped
halfway reads as a shorter, whole file. A WAV file's `data` chunk states how many bytes
of sound follow: fewer in the file is a cut. An Ogg stream's last page carries an
end-of-stream flag, and every page a CRC: a file that ends inside a page, or after a
whole page without that flag, stopped before its end.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

# The largest Ogg page: a 27-byte header, 255 lacing values, 255 segments of 255 bytes.
_OGG_MAX_PAGE = 27 + 255 + 255 * 255
# A WAV file missing less than this is taken as whole (a writer's rounding, a pad byte).
WAV_SLACK_SECONDS = 0.1
# ASF objects by GUID, as stored (the first three fields little-endian): the header object
# and its file properties object, which states the play length.
_ASF_HEADER = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
_ASF_FILE_PROPERTIES = bytes.fromhex("a1dcab8c47a9cf118ee400c00c205365")
# The header objects read at most: real headers are kilobytes, a cover art picture or two
# among them.
_ASF_HEADER_MAX = 16 << 20


def _ogg_crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return table


_CRC = _ogg_crc_table()


def ogg_crc(data: bytes | memoryview) -> int:
    """Ogg's CRC-32 (polynomial 0x04C11DB7, not reflected, no initial or final XOR)."""
    crc, table = 0, _CRC
    for b in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[(crc >> 24) ^ b]
    return crc


def _page_end(w: bytes, at: int) -> int | None:
    """Where the Ogg page starting at `at` in `w` ends, if it is whole in `w` and its CRC
    holds; else None."""
    if w[at + 4:at + 5] != b"\x00" or at + 27 > len(w):
        return None
    segments = w[at + 26]
    if at + 27 + segments > len(w):
        return None
    end = at + 27 + segments + sum(w[at + 27:at + 27 + segments])
    if end > len(w):
        return None
    page = bytearray(w[at:end])
    page[22:26] = b"\x00\x00\x00\x00"
    return end if ogg_crc(page) == int.from_bytes(w[at + 22:at + 26], "little") else None


@dataclass(frozen=True)
class OggEnd:
    # The file stops before its end: inside a page, or after a page that is not the last.
    cut: bool
    # The granule position of its last whole page (samples, for sound streams), or None.
    granule: int | None


def ogg_end(path: str | bytes) -> OggEnd | None:
    """How an Ogg file ends; None when no whole page is found near its end (not Ogg)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        start = max(0, size - 2 * _OGG_MAX_PAGE)
        f.seek(start)
        w = f.read()
    at = len(w)
    while (at := w.rfind(b"OggS", 0, at)) >= 0:
        end = _page_end(w, at)
        if end is None:
            continue
        granule = int.from_bytes(w[at + 6:at + 14], "little", signed=True)
        whole = end == len(w) or w[end:end + 4] != b"OggS"  # bytes after it that are no page: a tag some
        # tools append, not sound
        return OggEnd(cut=not (whole and w[at + 5] & 0x04), granule=granule if granule >= 0 else None)
    return None


@dataclass(frozen=True)
class WavEnd:
    claimed: float  # seconds of sound the data chunk states
    present: float  # seconds of it the file holds


def riff_chunks(f: BinaryIO, size: int) -> Iterator[tuple[bytes, int, int]]:
    """The chunks of a RIFF WAVE file open as `f` (`size` bytes): (id, where its body
    starts, its length as its header says). Nothing when it is not one."""
    f.seek(0)
    head = f.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return
    at = 12
    while at + 8 <= size:
        f.seek(at)
        chunk = f.read(8)
        if len(chunk) < 8:
            return
        n = int.from_bytes(chunk[4:], "little")
        yield chunk[:4], at + 8, n
        at += 8 + n + (n & 1)


def wav_end(path: str | bytes) -> WavEnd | None:
    """The sound a RIFF WAVE file's `data` chunk claims and the sound the file holds, when
    it holds less than claimed by more than `WAV_SLACK_SECONDS`; None for a whole file, a
    size left open by a writer that streamed (0 or 0xFFFFFFFF, RF64), or no such chunk."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        byte_rate = 0
        for kind, at, n in riff_chunks(f, size):
            if kind == b"fmt ":
                f.seek(at)
                fmt = f.read(min(n, 16))
                byte_rate = int.from_bytes(fmt[8:12], "little") if len(fmt) >= 12 else 0
            elif kind == b"data":
                if not byte_rate or n in (0, 0xFFFFFFFF):
                    return None
                claimed, present = n / byte_rate, min(n, size - at) / byte_rate
                return WavEnd(claimed, present) if claimed - present > WAV_SLACK_SECONDS else None
    return None


def asf_length(path: str | bytes) -> float | None:
    """The seconds an ASF (WMA, WMV) file's header says it plays: the file properties
    object's play duration less its preroll. libav takes a cut file's length from what it
    holds, so only this tells that it was cut. None where the header does not say (a
    broadcast, a live stream's, or no such object)."""
    with open(path, "rb") as f:
        head = f.read(30)
        if len(head) < 30 or head[:16] != _ASF_HEADER:
            return None
        end = min(int.from_bytes(head[16:24], "little"), _ASF_HEADER_MAX)
        at = 30
        while at + 24 <= end:
            f.seek(at)
            obj = f.read(24)
            size = int.from_bytes(obj[16:24], "little")
            if len(obj) < 24 or size < 24:
                return None
            if obj[:16] == _ASF_FILE_PROPERTIES:
                # After the object's GUID and size: a file id (16 bytes), the file size,
                # creation date and packet count (8 each), then the play duration (100 ns
                # units), send duration, preroll (ms) and flags.
                body = f.read(68)
                if len(body) < 68:
                    return None
                play, preroll = int.from_bytes(body[40:48], "little"), int.from_bytes(body[56:64], "little")
                if body[64] & 1 or not play:  # the broadcast flag: the durations mean nothing
                    return None
                return max(0.0, play / 1e7 - preroll / 1e3)
            at += size
    return None


# MPEG audio: samples a frame holds by (version, layer), and sample rates by version, as
# the header's bits give them (version 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5; layer 3: I,
# 2: II, 1: III).
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
# A file whose MPEG data is within this of its length frame's byte count is whole: the
# frame counts itself or not, as its encoder chose, and some pad the last frame.
_MP3_BYTES_SLACK = 4096


@dataclass(frozen=True)
class Mp3Stated:
    """What an MP3's Xing, Info or VBRI frame states: its frames' length in seconds, and
    their bytes (None when the frame does not say), beside the bytes of MPEG data the file
    holds from that frame on, tags at its end left out."""

    seconds: float | None
    stated_bytes: int | None
    present: int

    @property
    def cut(self) -> bool:
        """Fewer bytes than stated: a download or copy that stopped."""
        return self.stated_bytes is not None and self.present < self.stated_bytes - self.slack

    @property
    def more_after(self) -> bool:
        """More bytes than stated: MP3s joined end to end, each with its own length frame
        (which states its first part alone), or frames an editor appended."""
        return self.stated_bytes is not None and self.present > self.stated_bytes + self.slack

    @property
    def slack(self) -> int:
        return max(_MP3_BYTES_SLACK, (self.stated_bytes or 0) // 200)


def _id3v2_end(f: BinaryIO) -> int:
    """Where the ID3v2 tags at the start of the MP3 open as `f` end (0 when none; at most
    64 of them are skipped: a file of empty tag headers end to end is no MP3)."""
    at = 0
    for _ in range(64):
        f.seek(at)
        head = f.read(10)
        if len(head) < 10 or head[:3] != b"ID3":
            return at
        # Its size, 4 bytes of 7 bits, and a footer when flagged.
        at += 10 + ((head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7
                    | (head[9] & 0x7F)) + (10 if head[5] & 0x10 else 0)
    return at


_FRAME_SYNC = re.compile(rb"\xff[\xe0-\xff]")


def _tags_at_end(f: BinaryIO, size: int) -> int:
    """Where the tags at the end of an MP3 open as `f` begin: an ID3v1 tag, an APEv2 tag
    and a Lyrics3 v2 block before it, in whichever order taggers left them."""
    end = size
    for _ in range(4):
        if end >= 128:
            f.seek(end - 128)
            if f.read(3) == b"TAG":
                end -= 128
                continue
        if end >= 32:
            f.seek(end - 32)
            footer = f.read(32)
            if footer[:8] == b"APETAGEX":
                n = int.from_bytes(footer[12:16], "little") + (32 if footer[23] & 0x80 else 0)
                if 32 <= n <= end:
                    end -= n
                    continue
        if end >= 15:
            f.seek(end - 15)
            tail = f.read(15)
            if tail[6:] == b"LYRICS200" and tail[:6].isdigit() and int(tail[:6]) + 15 <= end:
                end -= int(tail[:6]) + 15
                continue
        break
    return end


def mp3_stated(path: str | bytes) -> Mp3Stated | None:
    """The length an MP3's Xing, Info or VBRI frame states (the first frame after any
    ID3v2 tags and padding), beside what the file holds; None where there is no such
    frame. libav turns to the file's size over its first frame's bitrate when the two
    disagree, which is no length at all for MP3s joined end to end."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        start = _id3v2_end(f)
        f.seek(start)
        data = f.read(65536)
        sync = _FRAME_SYNC.search(data)
        if sync is None or len(data) < sync.start() + 4:
            return None
        at = sync.start()
        b1, b2, b3 = data[at + 1], data[at + 2], data[at + 3]
        version, layer, rate_index = (b1 >> 3) & 3, (b1 >> 1) & 3, (b2 >> 2) & 3
        if version == 1 or layer == 0 or rate_index == 3:
            return None
        rate = _MPEG_RATES[version][rate_index]
        samples = 384 if layer == 3 else 1152 if layer == 2 or version == 3 else 576
        mono = b3 >> 6 == 3
        side = (17 if mono else 32) if version == 3 else (9 if mono else 17)
        frames = stated_bytes = None
        trimmed = 0  # samples the encoder put before and after the sound (LAME's tag says)
        xing = data[at + 4 + side:at + 4 + side + 160]
        vbri = data[at + 36:at + 36 + 18]
        if xing[:4] in (b"Xing", b"Info") and len(xing) >= 8:
            flags = int.from_bytes(xing[4:8], "big")
            pos = 8
            if flags & 1 and len(xing) >= pos + 4:
                frames = int.from_bytes(xing[pos:pos + 4], "big")
            at_bytes = pos + 4 * (flags & 1)
            if flags & 2 and len(xing) >= at_bytes + 4:
                stated_bytes = int.from_bytes(xing[at_bytes:at_bytes + 4], "big") or None
            # After the frame and byte counts, the seek table and quality, when flagged:
            # then LAME's tag (its encoder's name, LAME or libav's), whose bytes 21 to 23
            # hold the encoder delay and the padding, 12 bits each.
            pos += 4 * (flags & 1) + 4 * (flags >> 1 & 1) + 100 * (flags >> 2 & 1) + 4 * (flags >> 3 & 1)
            lame = xing[pos:pos + 24]
            if len(lame) == 24 and lame[:4].isalpha():
                trimmed = (lame[21] << 4 | lame[22] >> 4) + ((lame[22] & 0x0F) << 8 | lame[23])
        elif vbri[:4] == b"VBRI" and len(vbri) >= 18:
            stated_bytes = int.from_bytes(vbri[10:14], "big") or None
            frames = int.from_bytes(vbri[14:18], "big")
        else:
            return None
        present = max(0, _tags_at_end(f, size) - start - at)
    return Mp3Stated(max(0, frames * samples - trimmed) / rate if frames else None, stated_bytes, present)
