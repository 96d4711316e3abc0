"""Audio tags with mutagen, normalised across ID3 (MP3, WAV, AIFF), Vorbis comments
(FLAC, Ogg Vorbis/Opus), MP4 atoms (M4A), APEv2 and ASF attributes (WMA), plus the
embedded cover art."""

from __future__ import annotations

import contextlib
import math
import os
import re
import struct
from typing import Any

import mutagen

from .id3 import decode_text, syncsafe, text_frames

# Our column -> the key in each tag family. ID3 uses frame ids (TXXX:desc for user
# text), Vorbis comments are case-insensitive names, MP4 uses atom names.
_ID3 = {
    "title": "TIT2", "artist": "TPE1", "album": "TALB", "album_artist": "TPE2", "track": "TRCK",
    "disc": "TPOS", "date": "TDRC", "genre": "TCON", "composer": "TCOM",
    "mb_track_id": "TXXX:MusicBrainz Release Track Id", "mb_album_id": "TXXX:MusicBrainz Album Id",
    "mb_artist_id": "TXXX:MusicBrainz Artist Id", "mb_recording_id": "UFID:http://musicbrainz.org",
    "rg_track_gain": "TXXX:REPLAYGAIN_TRACK_GAIN", "rg_album_gain": "TXXX:REPLAYGAIN_ALBUM_GAIN",
    "rg_track_peak": "TXXX:REPLAYGAIN_TRACK_PEAK", "rg_album_peak": "TXXX:REPLAYGAIN_ALBUM_PEAK",
}
_VORBIS = {
    "title": "title", "artist": "artist", "album": "album", "album_artist": "albumartist", "track": "tracknumber",
    "track_total": "tracktotal", "disc": "discnumber", "disc_total": "disctotal", "date": "date", "genre": "genre",
    "composer": "composer", "mb_track_id": "musicbrainz_releasetrackid", "mb_album_id": "musicbrainz_albumid",
    "mb_artist_id": "musicbrainz_artistid", "mb_recording_id": "musicbrainz_trackid",
    "rg_track_gain": "replaygain_track_gain", "rg_album_gain": "replaygain_album_gain",
    "rg_track_peak": "replaygain_track_peak", "rg_album_peak": "replaygain_album_peak",
}
# APEv2 (WavPack, Monkey's Audio, Musepack): Vorbis-like names, but for these.
_APE = dict(_VORBIS, track="track", disc="disc", date="year", album_artist="album artist")
# ASF attributes (WMA): Windows Media Player's names, and MusicBrainz Picard's for the rest.
# Looked up without regard to case, as taggers disagree (foobar2000 writes REPLAYGAIN_...).
_ASF = dict(_VORBIS, title="Title", artist="Author", album="WM/AlbumTitle", album_artist="WM/AlbumArtist",
            track="WM/TrackNumber", disc="WM/PartOfSet", date="WM/Year", genre="WM/Genre", composer="WM/Composer",
            mb_track_id="MusicBrainz/Release Track Id", mb_album_id="MusicBrainz/Album Id",
            mb_artist_id="MusicBrainz/Artist Id", mb_recording_id="MusicBrainz/Track Id")
del _ASF["track_total"], _ASF["disc_total"]
# Vorbis comment names other taggers give the album artist (foobar2000: ALBUM ARTIST).
_VORBIS_ALBUM_ARTIST = ("album artist", "album_artist")
_MP4 = {
    "title": "\xa9nam", "artist": "\xa9ART", "album": "\xa9alb", "album_artist": "aART", "date": "\xa9day",
    "genre": "\xa9gen", "composer": "\xa9wrt",
    "mb_track_id": "----:com.apple.iTunes:MusicBrainz Release Track Id",
    "mb_album_id": "----:com.apple.iTunes:MusicBrainz Album Id",
    "mb_artist_id": "----:com.apple.iTunes:MusicBrainz Artist Id",
    "mb_recording_id": "----:com.apple.iTunes:MusicBrainz Track Id",
    "rg_track_gain": "----:com.apple.iTunes:replaygain_track_gain",
    "rg_album_gain": "----:com.apple.iTunes:replaygain_album_gain",
    "rg_track_peak": "----:com.apple.iTunes:replaygain_track_peak",
    "rg_album_peak": "----:com.apple.iTunes:replaygain_album_peak",
}
# An MP4 `trkn` or `disk` number of all ones: no number.
_MP4_NO_NUMBER = 0xFFFF
# "7" or "7/12"; a number longer than 6 digits is garbage, not a track number to cut short.
_NUM = re.compile(r"^\s*(\d{1,6})(?!\d)(?:\s*/\s*(\d{1,6})(?!\d))?")
# A number, with a decimal point or comma ("-6.5 dB", "+1,2 dB", ".5", "0,988"), then at
# most a unit: anything else ("1,2,3", "6 or 7") is no number.
_FLOAT = re.compile(r"\s*([+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?)\s*(?:[a-zA-Z]+\s*)?")
# ReplayGain gains and peaks: real ones are tens of dB at most; larger is a broken tag.
_GAIN_LIMIT = 1000.0
# A year: four digits standing alone ("2019", "2019-03-04", "c. 1999"), or the start of a
# six-digit YYYYMM or an eight-digit YYYYMMDD; other runs of digits ("99999") are no year.
_YEAR = re.compile(r"(?<!\d)(\d{4})(?:\d{2}|\d{4})?(?!\d)")


def year_of(date: str | None) -> int | None:
    """The year a release-date tag names, None when it names none."""
    year = _YEAR.search(date or "")
    return int(year.group(1)) if year and int(year.group(1)) > 0 else None


def _first(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, list):
        v = v[0] if v else None
    if type(v).__name__ == "APEBinaryValue":  # a picture or a blob under a text's key: no text
        return None
    if hasattr(v, "text") and not isinstance(v, (str, bytes)):  # an ID3 text frame
        v = v.text[0] if v.text else None
        if type(v).__name__ == "ID3TimeStamp":
            # As written (ID3v2.4: 2019-05-04T10:00), not as mutagen prints it, with a space.
            v = str(v).replace(" ", "T", 1)
    elif hasattr(v, "data") and not isinstance(v, (str, bytes)):  # UFID, MP4 freeform
        v = v.data
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    if v is None:
        return None
    s = str(v).replace("\x00", "").strip()
    return s[:512] or None


def _pair(v: str | None) -> tuple[int | None, int | None]:
    """`7/12` as (7, 12); a 0 (an empty field some taggers write) is no number, as MP4's
    `trkn` 0 is."""
    m = _NUM.match(v or "")
    if not m:
        return None, None
    return int(m.group(1)) or None, int(m.group(2) or 0) or None


def _float(v: str | None) -> float | None:
    m = _FLOAT.fullmatch(v or "")
    f = float(m.group(1).replace(",", ".")) if m else None
    return f if f is not None and math.isfinite(f) and abs(f) <= _GAIN_LIMIT else None


def _raw(tags: Any, family: dict[str, str], key: str) -> Any:
    name = family.get(key)
    if name is None:
        return None
    try:
        if hasattr(tags, "getall"):  # ID3
            found = tags.getall(name)
            if not found and name.startswith("TXXX:"):
                # Taggers disagree on case (REPLAYGAIN_TRACK_GAIN, replaygain_track_gain).
                want = name[5:].casefold()
                found = [f for f in tags.getall("TXXX") if str(f.desc).casefold() == want]
            return found or None
        found = tags.get(name)
        if found is None and (name.startswith("----:") or family is _ASF):
            want = name.casefold()
            found = next((v for k, v in tags.items() if k.casefold() == want), None)
        return found
    except (KeyError, ValueError):
        return None


def _gain_from_rva2(tags: Any, row: dict[str, Any]) -> None:
    """ID3v2.4 RVA2 frames ("track", "album"): the master volume's gain and peak."""
    for frame in tags.getall("RVA2"):
        which = str(frame.desc).casefold()
        if which not in ("track", "album") or frame.channel != 1:
            continue
        if row[f"rg_{which}_gain"] is None:
            row[f"rg_{which}_gain"] = round(float(frame.gain), 2)
        if row[f"rg_{which}_peak"] is None and frame.peak:
            row[f"rg_{which}_peak"] = round(float(frame.peak), 6)


def _gain_from_r128(tags: Any, row: dict[str, Any]) -> None:
    """Opus (RFC 7845) has no REPLAYGAIN_* tags but R128_TRACK_GAIN / R128_ALBUM_GAIN: a
    Q7.8 number of dB towards -23 LUFS, where ReplayGain aims 5 dB louder."""
    for which in ("track", "album"):
        value = _first(tags.get(f"r128_{which}_gain"))
        # A Q7.8 number is a 16-bit one: more is a broken tag.
        if row[f"rg_{which}_gain"] is None and value and re.fullmatch(r"[+-]?\d{1,5}", value) \
                and -32768 <= int(value) <= 32767:
            row[f"rg_{which}_gain"] = round(int(value) / 256 + 5.0, 2)


def _ape_tags(path: str | bytes) -> Any:
    """An MP3's APEv2 tag at its end, or None: where mp3gain writes its results, and
    foobar2000 its tags when told to, without touching (or adding) an ID3 tag."""
    from mutagen.apev2 import APEv2, APENoHeaderError

    try:
        return APEv2(path)
    except (APENoHeaderError, OSError, mutagen.MutagenError):
        return None


def _readers(container: str | None) -> list[Any] | None:
    """mutagen's readers for the container libav found in the file (None: not known, then
    mutagen guesses). mutagen alone goes by the name first: an MP3 named `.flac` (a "fake
    FLAC") was read as FLAC and failed, its tags lost."""
    if container == "mp3":
        from mutagen.mp3 import MP3

        return [MP3]
    if container == "flac":
        from mutagen.flac import FLAC

        return [FLAC]
    if container in ("m4a", "mp4", "mov", "3gp", "3g2"):
        from mutagen.mp4 import MP4

        return [MP4]
    if container == "ogg":
        from mutagen.oggflac import OggFLAC
        from mutagen.oggopus import OggOpus
        from mutagen.oggspeex import OggSpeex
        from mutagen.oggtheora import OggTheora
        from mutagen.oggvorbis import OggVorbis

        return [OggVorbis, OggOpus, OggFLAC, OggSpeex, OggTheora]
    if container == "wav":
        from mutagen.wave import WAVE

        return [WAVE]
    if container == "aiff":
        from mutagen.aiff import AIFF

        return [AIFF]
    if container == "wv":
        from mutagen.wavpack import WavPack

        return [WavPack]
    if container == "ape":
        from mutagen.monkeysaudio import MonkeysAudio

        return [MonkeysAudio]
    if container == "asf":
        from mutagen.asf import ASF

        return [ASF]
    if container in _UNTAGGED:
        return []  # mutagen reads no tags from these: none, whatever the file is named
    return None


# Containers libav reads whose tags mutagen does not: sound in them has no `tags_audio`
# row of tags (a WebM download renamed .mp3 is not an MP3 without its header).
_UNTAGGED = frozenset({"matroska", "webm", "avi", "mpegts", "mpeg", "flv", "caf", "au", "w64", "rm", "amr"})


class _TagOnly:
    """An ID3 tag with no sound after it that mutagen's MP3 reader would sync to (an
    empty or damaged stream; what a tagger leaves of a file whose sound is lost): its
    tags, and nothing of a stream."""

    def __init__(self, tags: Any) -> None:
        self.tags = tags
        self.info = None


class _FlacBlocks:
    """A FLAC file mutagen refuses whole for one damaged block (a stream header stating a
    sample rate of 0, a picture block claiming more bytes than the file holds): its
    Vorbis comments and pictures, read from the blocks that are whole, and nothing of its
    stream; `refused`, why mutagen would not read it; `no_rate`, whether its stream
    header states no sample rate (or is not there), so its packets' times are no clock."""

    # Blocks read at most, and bytes of them: a file of garbage after the signature is
    # given up on, not walked through.
    MOST_BLOCKS, MOST_BYTES = 1024, 64 << 20

    def __init__(self, path: str | bytes, refused: str) -> None:
        from mutagen.flac import Picture, VCFLACDict

        self.tags: Any = None
        self.pictures: list[Any] = []
        self.info = None
        self.refused = refused
        self.no_rate = True
        with open(path, "rb") as f:
            head = f.read(10)
            at = 0
            if head[:3] == b"ID3" and len(head) == 10:  # an ID3v2 tag some rippers put first, and its footer
                at = 10 + syncsafe(head[6:10]) + (10 if head[5] & 0x10 else 0)
            f.seek(at)
            if f.read(4) != b"fLaC":
                raise ValueError("no FLAC signature")
            read = 0
            for _ in range(self.MOST_BLOCKS):
                block = f.read(4)
                if len(block) < 4:
                    break
                last, kind, size = block[0] & 0x80, block[0] & 0x7F, int.from_bytes(block[1:4], "big")
                read += size
                if read > self.MOST_BYTES:
                    break
                if kind == 0 and size >= 18:  # STREAMINFO: the sample rate, 20 bits at byte 10
                    info = f.read(size)
                    self.no_rate = len(info) < 13 or int.from_bytes(info[10:13], "big") >> 4 == 0
                elif kind in (4, 6):
                    data = f.read(size)
                    if len(data) < size:
                        break
                    with contextlib.suppress(mutagen.MutagenError, ValueError, struct.error, IndexError):
                        if kind == 4 and self.tags is None:
                            self.tags = VCFLACDict(data)
                        elif kind == 6:
                            self.pictures.append(Picture(data))
                else:
                    f.seek(size, os.SEEK_CUR)
                if last:
                    break


def _open(path: str | bytes, container: str | None) -> Any:
    readers = _readers(container)
    if readers is None:
        try:
            return mutagen.File(path)
        except mutagen.MutagenError:
            # No stream mutagen knows, but an ID3 tag at the start: the tag is still read.
            from mutagen.id3 import ID3, ID3NoHeaderError

            try:
                return _TagOnly(ID3(path))
            except (ID3NoHeaderError, mutagen.MutagenError, OSError):
                pass
            raise
    if not readers:
        return None
    if len(readers) == 1:
        # The reader itself, not mutagen's guess among one: the guess scores by the name
        # and by a tag at the start, and an MP3 with neither would be no file at all.
        try:
            return readers[0](path)
        except mutagen.MutagenError as e:
            if container == "wav" and _riff_size_left_open(path):
                # A WAV a writer streamed, its RIFF size left 0 for want of seeking back
                # (mutagen refuses it): its RIFF INFO is read on its own, its sound by libav.
                return None
            if container != "flac":
                raise
            try:  # its comments and pictures, where they are whole (libav read the stream)
                blocks = _FlacBlocks(path, str(e))
            except (OSError, ValueError):
                raise e from None
            if blocks.tags is None and not blocks.pictures:
                raise
            return blocks
    return mutagen.File(path, options=readers)


def _riff_size_left_open(path: str | bytes) -> bool:
    """Whether a RIFF WAVE file's header gives its size as 0 or 0xFFFFFFFF, as writers
    that stream (a pipe, a recorder cut off) leave it."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return head[:4] == b"RIFF" and head[8:12] == b"WAVE" and head[4:8] in (b"\0\0\0\0", b"\xff\xff\xff\xff")


def read_tags(path: str | bytes, container: str | None = None) -> tuple[dict[str, Any] | None, bytes | None]:
    """The `tags_audio` row and the cover art bytes (or None for each). `container`: the
    format libav found in the file (`mp3`, `flac`, `ogg`, `m4a` ...), which picks the tag
    reader whatever the file is named."""
    return read_audio(path, container)[:2]


def read_audio(path: str | bytes,
               container: str | None = None) -> tuple[dict[str, Any] | None, bytes | None, int | None, Any]:
    """`read_tags`' row and cover, the bits per sample the stream's header states (FLAC,
    ALAC, WavPack, Monkey's Audio, AIFF, WAV: 16, 24; None where it states none), and,
    where mutagen refused a FLAC file whose tags were then read block by block, those
    blocks (`_FlacBlocks`: why it was refused, whether the header states a rate); else
    None."""
    f = _open(path, container)
    flac = f if isinstance(f, _FlacBlocks) else None
    bits = _stated_bits(f)
    written: list[str] | None = None  # an ID3 tag's TDRC text as written, once read
    if f is not None and (type(f.tags).__name__ == "ID3" and (container == "mp3" or type(f).__name__ == "MP3")
                          or type(f.tags).__name__ in ("_WaveID3", "_IFFID3")):
        written = _mend_id3(path, f.tags)
    row = _tag_row(f.tags) if f is not None and f.tags is not None else None
    if row is not None and _family(f.tags) is _ID3:
        if written is None:  # (an ID3 tag no mending read: one of a file with no sound)
            # (With nothing `have`, every text frame comes back: the title's is not a date.)
            written = [v[0] for fid, v in text_frames(path, {}, frozenset({"TDRC"})) if v and fid == "TDRC"]
        row["date"] = _id3_date_as_written(written[0] if written else None, row["date"])
    mp3 = container == "mp3" or (container is None and type(f).__name__ == "MP3")  # (libav could not tell)
    if mp3 and (ape := _ape_tags(path)) is not None:
        if row is not None and getattr(f.tags, "version", (2,)) < (2,):
            # ID3v1 beside APEv2, foobar2000's layout: its fields hold 30 characters, cut
            # from APEv2's whole values, which come first.
            row = _with_ape(_tag_row(ape), row)
        else:
            row = _with_ape(row, _tag_row(ape))
    info = _wav_info(path) if container == "wav" else {}
    if row is None:
        if not info:
            return None, _cover(f) if f is not None else None, bits, flac
        row = dict.fromkeys(_ROW_KEYS)
    _fill_from_info(row, info)  # a WAV file's ID3 chunk first, its RIFF INFO for the rest
    for key in ("rg_track_peak", "rg_album_peak"):
        if row[key] is not None and row[key] < 0:  # a peak is an amplitude: never below 0
            row[key] = None
    row["year"] = year_of(row["date"])
    cover = _cover(f)
    row["has_cover"] = cover is not None
    return row, cover, bits, flac


def _mend_id3(path: str | bytes, tags: Any) -> list[str]:
    """Puts back into mutagen's ID3 `tags` (of the tag at the start of an MP3, or a WAV
    or AIFF file's ID3 chunk) the text frames it dropped because their text did not
    decode as their encoding byte says. Returns the TDRC frames' first values as written
    (read in the same pass; see `_id3_date_as_written`)."""
    from mutagen.id3 import Frames

    have: dict[str, int] = {}
    for frame in tags.values():
        have[frame.FrameID] = have.get(frame.FrameID, 0) + 1
    dates: list[str] = []
    for fid, values in text_frames(path, have, also=frozenset({"TDRC"})):
        if fid == "TDRC" and values:
            dates.append(values[0])
        key = f"TXXX:{values[0]}" if fid == "TXXX" else fid
        if fid not in Frames or key in tags or (fid == "TXXX" and len(values) < 2):
            continue
        with contextlib.suppress(ValueError, TypeError):  # (a date that is none, say)
            text = values[1:] if fid == "TXXX" else values
            tags.add(Frames[fid](encoding=3, text=text, **({"desc": values[0]} if fid == "TXXX" else {})))
    return dates


def _id3_date_as_written(written: str | None, read: str | None) -> str | None:
    """An ID3 date as its frame holds it: mutagen reads TDRC (and TYER) as a timestamp and
    writes back what it made of it (`05/01/2024` as `0005-01-2024`, `99` as `0099`). Its
    text is kept where it is the frame's, or the frame's year with the day and time an
    ID3v2.3 tag gives in TDAT and TIME (`2024` with `0105` is `2024-05-01`)."""
    written = written.strip()[:512] if written else None  # (as `_first` cuts every text)
    return read if not written or read is not None and (read == written or read.startswith(written + "-")) \
        else written


def _stated_bits(f: Any) -> int | None:
    """The bits per sample mutagen read from a stream's header, where it is a plausible
    count (1 for DSD, up to 64 for float); None when there is none. An MP4's sample entry
    always says 16, for AAC too: the caller takes it for lossless codecs only."""
    bits = getattr(getattr(f, "info", None), "bits_per_sample", None)
    return bits if isinstance(bits, int) and 1 <= bits <= 64 else None


_GAINS = ("rg_track_gain", "rg_album_gain", "rg_track_peak", "rg_album_peak")


def _with_ape(row: dict[str, Any] | None, other: dict[str, Any]) -> dict[str, Any]:
    """An MP3's row from one tag (None: none) with what its other tag holds and the first
    leaves empty: mp3gain's ReplayGain, or the tags foobar2000 wrote in APEv2. The gains
    come as a set, from one tag or the other, never a track gain from one beside an album
    gain from the other (a peak alone is no gain); so do a number and its total."""
    if row is None:
        return other
    gains = any(row[key] is not None for key in ("rg_track_gain", "rg_album_gain"))
    numbered = {key: row[key] is not None for key in ("track", "disc")}
    for key, value in other.items():
        if key in _GAINS:
            if not gains:
                row[key] = value if value is not None else row[key]
        elif key in _PAIRED:
            if not numbered[_PAIRED[key]] and row[key] is None:
                row[key] = value
        elif row[key] is None:
            row[key] = value
    return row


def _mp4_undecoded(tags: Any, row: dict[str, Any]) -> None:
    """Text atoms mutagen set aside because their bytes are no UTF-8 (a tagger that wrote
    Windows' code page, `Caf\xe9`), read as an ID3 frame of such bytes is: each `data`
    atom of an implicit or UTF-8 type, as UTF-8 where it is, else that code page."""
    failed = getattr(tags, "_failed_atoms", None)  # mutagen keeps them to write them back
    if not isinstance(failed, dict):
        return
    for key in _TEXT_KEYS:
        if row.get(key) is not None or _MP4.get(key) not in failed:
            continue
        for data in failed[_MP4[key]]:
            values: list[str] = []
            at = 0
            while at + 16 <= len(data):
                length, name, kind = struct.unpack(">I4sI", data[at:at + 12])
                if length < 16 or name != b"data":
                    break
                if kind & 0xFFFFFF in (0, 1):  # implicit, UTF-8
                    values += decode_text(data[at + 16:at + length], 3)
                at += length
            row[key] = _first(values)
            if row[key] is not None:
                break


# A number and its total come from one tag (ID3 `TRCK=4`, APEv2 `5/12` is not 4/12).
_PAIRED = {"track": "track", "track_total": "track", "disc": "disc", "disc_total": "disc"}


def _tag_row(tags: Any) -> dict[str, Any]:
    """The `tags_audio` columns one tag holds (not `year`, `has_cover`, `lossless`)."""
    family = _family(tags)
    row: dict[str, Any] = {}
    for key in _TEXT_KEYS:
        row[key] = _first(_raw(tags, family, key))
    if family is _APE and row["date"] is None:  # APEv2's `Year`, else the `Date` some taggers write
        row["date"] = _first(_raw(tags, _VORBIS, "date"))
    if family is _VORBIS and row["album_artist"] is None:
        row["album_artist"] = next(filter(None, (_first(_raw(tags, {"album_artist": name}, "album_artist"))
                                                 for name in _VORBIS_ALBUM_ARTIST)), None)
    if family is _MP4:
        _mp4_undecoded(tags, row)
        trkn, disk = tags.get("trkn"), tags.get("disk")
        row["track"], row["track_total"] = (trkn[0] if trkn else (None, None))
        row["disc"], row["disc_total"] = (disk[0] if disk else (None, None))
        for key in ("track", "track_total", "disc", "disc_total"):
            # The atoms hold 16-bit numbers: 0 is an empty field, and 65535, all ones, the
            # placeholder some taggers write (as EXIF's ISO 65535 is); no album has as many.
            row[key] = row[key] if row[key] not in (0, _MP4_NO_NUMBER) else None
    else:
        row["track"], row["track_total"] = _pair(_first(_raw(tags, family, "track")))
        row["disc"], row["disc_total"] = _pair(_first(_raw(tags, family, "disc")))
        if family is _ASF and row["track"] is None:
            # Players before Windows Media Player 7 wrote only WM/Track, counted from 0.
            m = _NUM.match(_first(_raw(tags, {"track": "WM/Track"}, "track")) or "")
            row["track"] = int(m.group(1)) + 1 if m else None
        if family is _VORBIS:
            # TRACKTOTAL and DISCTOTAL, or foobar2000's TOTALTRACKS and TOTALDISCS.
            for key, other in (("track_total", "totaltracks"), ("disc_total", "totaldiscs")):
                row[key] = (row[key] or _pair(_first(_raw(tags, family, key)))[0]
                            or _pair(_first(_raw(tags, {key: other}, key)))[0])
    for key in ("rg_track_gain", "rg_album_gain", "rg_track_peak", "rg_album_peak"):
        row[key] = _float(_first(_raw(tags, family, key)))
    if family is _ID3:
        _gain_from_rva2(tags, row)
    elif family is _VORBIS:
        _gain_from_r128(tags, row)
    return row


# The row's columns read as text, then all of them (`year`, `has_cover` come last).
_TEXT_KEYS = ("title", "artist", "album", "album_artist", "date", "genre", "composer", "mb_track_id", "mb_album_id",
              "mb_artist_id", "mb_recording_id")
_ROW_KEYS = (*_TEXT_KEYS, "track", "track_total", "disc", "disc_total", "rg_track_gain", "rg_album_gain",
             "rg_track_peak", "rg_album_peak")
# RIFF INFO, a WAV file's LIST chunk: what Windows, field recorders and many rippers write.
_INFO = {b"INAM": "title", b"IART": "artist", b"IPRD": "album", b"ICRD": "date", b"IGNR": "genre",
         b"ITRK": "track", b"IPRT": "track"}


def _fill_from_info(row: dict[str, Any], info: dict[str, str]) -> None:
    for key, value in info.items():
        if key == "track":
            if row["track"] is None:
                row["track"], row["track_total"] = _pair(value)
        elif row.get(key) is None:
            row[key] = value


def _wav_info(path: str | bytes) -> dict[str, str]:
    """Our columns from a WAV file's RIFF INFO list (first value of each)."""
    from .ends import riff_chunks

    out: dict[str, str] = {}
    try:
        with open(path, "rb") as f:
            for kind, at, n in riff_chunks(f, os.fstat(f.fileno()).st_size):
                if kind != b"LIST" or n < 4:
                    continue
                f.seek(at)
                body = f.read(min(n, 1 << 20))
                if body[:4] != b"INFO":
                    continue
                i = 4
                while i + 8 <= len(body):
                    sub, size = body[i:i + 4], int.from_bytes(body[i + 4:i + 8], "little")
                    raw = body[i + 8:i + 8 + size].split(b"\x00", 1)[0]
                    i += 8 + size + (size & 1)
                    key = _INFO.get(sub)
                    if key and key not in out:
                        try:
                            text = raw.decode("utf-8")
                        except UnicodeDecodeError:
                            text = raw.decode("cp1252", "replace")  # what Windows wrote
                        if text.strip():
                            out[key] = text.strip()[:512]
    except OSError:
        pass
    return out


def _family(tags: Any) -> dict[str, str]:
    kind = type(tags).__name__
    if kind in ("ID3", "_WaveID3", "_IFFID3", "EasyID3"):
        return _ID3
    if kind in ("MP4Tags",):
        return _MP4
    if kind in ("APEv2",):
        return _APE
    if kind in ("ASFTags",):
        return _ASF
    return _VORBIS


def _cover(f: Any) -> bytes | None:
    """Front cover (or any picture) from APIC frames, FLAC pictures, MP4 covr, or Ogg's
    METADATA_BLOCK_PICTURE, else its older `COVERART` comment."""
    if f is None:
        return None
    pics = getattr(f, "pictures", None)
    if pics:
        return _front(pics)
    tags = getattr(f, "tags", None)
    if tags is None:
        return None
    if hasattr(tags, "getall"):
        return _front(tags.getall("APIC"))
    covr = tags.get("covr") if hasattr(tags, "get") else None
    if covr:
        return bytes(covr[0])
    blocks = tags.get("metadata_block_picture") if hasattr(tags, "get") else None
    if blocks:
        import base64

        from mutagen.flac import Picture

        pictures = []
        for block in blocks:
            try:
                pictures.append(Picture(base64.b64decode(block)))
            except Exception:  # noqa: BLE001 - a malformed block is no picture
                continue
        if pictures:
            return _front(pictures)
    legacy = tags.get("coverart") if hasattr(tags, "get") else None
    if legacy:  # the Vorbis comment older taggers wrote: base64 image bytes (`COVERARTMIME` beside)
        import base64
        import binascii

        for text in legacy:
            try:
                data = base64.b64decode("".join(str(text).split()), validate=True)
            except (binascii.Error, ValueError):
                continue
            if data.startswith(_PICTURE_STARTS):  # a picture, not a word that happens to be base64
                return data
    return None


# How the pictures covers are stored as start: JPEG, PNG, GIF, BMP, WebP (in RIFF).
_PICTURE_STARTS = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"RIFF")


def _front(pictures: list[Any]) -> bytes | None:
    """The front cover (picture type 3) of ID3 or FLAC pictures, else the first one: a
    back cover or a booklet page stored first is not the album's face. A picture whose
    MIME type is `-->` holds a link to one (ID3's and FLAC's way), not a picture: none."""
    pictures = [p for p in pictures if str(getattr(p, "mime", "")).strip() != "-->"]
    front = [p for p in pictures if getattr(p, "type", None) == 3]
    return bytes((front or pictures)[0].data) if pictures else None
