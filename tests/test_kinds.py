"""Kind and MIME of real media as the catalog records them: by magic bytes when the file
was read (a JPEG named .png is a JPEG), else by extension; sidecars are sidecars."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from conftest import (JSON_SIDECAR, SRT, XMP, MediaBlobs, MediaTree, do_scan, files_by_path, rows, run_cli,
                      write_bytes_path)
from mediaforge import _core

EXPECTED = {
    "jpeg": ("image", "image/jpeg", "jpg"),
    "jpeg_upper": ("image", "image/jpeg", "jpg"),
    "png": ("image", "image/png", "png"),
    "mp4": ("video", "video/mp4", "mp4"),
    "m4a": ("audio", "audio/mp4", "m4a"),
    "mp3": ("audio", "audio/mpeg", "mp3"),
    "flac": ("audio", "audio/flac", "flac"),
    "xmp": ("sidecar", "application/rdf+xml", "xmp"),
    "json": ("sidecar", "application/json", "json"),
    "srt": ("sidecar", "application/x-subrip", "srt"),
    "truncated": ("image", "image/jpeg", "jpg"),
    "empty": ("image", "image/jpeg", "jpg"),
    "jpeg_as_png": ("image", "image/jpeg", "png"),
    "non_utf8": ("image", "image/jpeg", "jpg"),
    "newline": ("image", "image/png", "png"),
    "emoji": ("image", "image/jpeg", "jpg"),
    "long_name": ("image", "image/jpeg", "jpg"),
    "deep": ("image", "image/png", "png"),
    "spaces": ("audio", "audio/mpeg", "mp3"),
}


@pytest.fixture
def scanned(media_tree: MediaTree, catalog_path: Path) -> dict[bytes, dict]:
    do_scan(catalog_path, media_tree.root)
    return files_by_path(catalog_path)


@pytest.mark.parametrize("label", sorted(EXPECTED))
def test_kind_mime_and_ext_of_real_media(media_tree: MediaTree, scanned: dict[bytes, dict], label: str) -> None:
    r = scanned[media_tree.files[label]]
    assert (r["kind"], r["mime"], r["ext"]) == EXPECTED[label]


def test_name_dir_and_display_path_of_hostile_names(media_tree: MediaTree, scanned: dict[bytes, dict]) -> None:
    for label in ("non_utf8", "newline", "spaces", "emoji", "long_name", "deep"):
        raw = media_tree.files[label]
        r = scanned[raw]
        assert bytes(r["path_bytes"]) == raw
        assert r["path"] == raw.decode("utf-8", "replace")
        assert r["name"] == os.path.basename(raw).decode("utf-8", "replace")
        assert r["dir"] == os.path.dirname(raw).decode("utf-8", "replace")
    assert scanned[media_tree.files["non_utf8"]]["name"] == "caf\ufffd \ufffd\ufffd.jpg"
    assert scanned[media_tree.files["newline"]]["name"] == "line\nbreak.png"
    assert len(media_tree.files["deep"]) == 4000


def test_corrupt_file_keeps_its_extension_kind(media_tree: MediaTree, scanned: dict[bytes, dict]) -> None:
    """Bytes that match no format: the extension decides, the file is still cataloged."""
    r = scanned[media_tree.files["corrupt"]]
    assert (r["kind"], r["mime"], r["size"]) == ("video", "video/mp4", 3000)
    assert r["blake3"] is not None


def test_wrong_extension_is_fixed_once_the_file_is_read(media_tree: MediaTree, catalog_path: Path) -> None:
    """A --no-hash scan does not open a file whose extension it knows; the next hashing
    scan reads it and corrects the MIME type from the magic bytes."""
    p = media_tree.files["jpeg_as_png"]
    do_scan(catalog_path, media_tree.root, hash=False)
    assert files_by_path(catalog_path)[p]["mime"] == "image/png"
    do_scan(catalog_path, media_tree.root)
    assert files_by_path(catalog_path)[p]["mime"] == "image/jpeg"


def test_files_without_a_known_extension_are_sniffed(tmp_path: Path, catalog_path: Path,
                                                     media_blobs: MediaBlobs) -> None:
    lib = os.fsencode(tmp_path / "lib")
    os.makedirs(lib)
    cases = {
        b"IMG_0001": (media_blobs.jpeg, "image", "image/jpeg"),
        b"DSC.data": (media_blobs.png, "image", "image/png"),
        b"track": (media_blobs.flac, "audio", "audio/flac"),
        b"song.bak": (media_blobs.mp3, "audio", "audio/mpeg"),
        b"voice.mp4": (media_blobs.m4a, "audio", "audio/mp4"),  # an M4A in an .mp4 name
        b"movie.dat": (media_blobs.mp4, "video", "video/mp4"),
        b"notes.txt": (b"just some text\n", "other", "text/plain"),
        b"scan.pdf": (b"%PDF-1.7\n", "other", "application/pdf"),
        b"photo.txt": (media_blobs.jpeg, "image", "image/jpeg"),  # a JPEG in a document's name
        b".bashrc": (b"export A=1\n", "other", "application/octet-stream"),
        b"meta.xml.xmp": (XMP, "sidecar", "application/rdf+xml"),
    }
    by_extension = {b"voice.mp4": ("video", "video/mp4"), b"photo.txt": ("other", "text/plain")}
    for name, (data, _, _) in cases.items():
        write_bytes_path(os.path.join(lib, name), data)
    for hashed in (False, True):
        cat = catalog_path.with_name(f"cat-{hashed}.duckdb")
        do_scan(cat, lib, hash=hashed)
        got = files_by_path(cat)
        for name, (_, kind, mime) in cases.items():
            r = got[os.path.join(lib, name)]
            if not hashed and name in by_extension:
                # A known extension: a --no-hash scan does not open the file.
                assert (r["kind"], r["mime"]) == by_extension[name], name
                continue
            assert (r["kind"], r["mime"]) == (kind, mime), (name, hashed)


@pytest.mark.parametrize(
    ("name", "head", "expected"),
    [
        (b"a.png", "jpeg", ("image", "image/jpeg")),
        (b"a.JPG", None, ("image", "image/jpeg")),
        (b"clip.MOV", None, ("video", "video/quicktime")),
        (b"x.mp4", "m4a", ("audio", "audio/mp4")),
        (b"x", "flac", ("audio", "audio/flac")),
        (b"x", "mp4", ("video", "video/mp4")),
        (b"x.srt", "srt", ("sidecar", "application/x-subrip")),
        (b"x.json", "json", ("sidecar", "application/json")),
        (b"x.xmp", "xmp", ("sidecar", "application/rdf+xml")),
        (b"IMG_1234.CR2", None, ("raw", "image/x-canon-cr2")),
        (b"x.jpg", "", ("image", "image/jpeg")),
        (b"\xff\xfe.bin", None, ("other", "application/octet-stream")),
        (b".jpg", None, ("other", "application/octet-stream")),
    ],
)
def test_classify_binding(media_blobs: MediaBlobs, name: bytes, head: str | None,
                          expected: tuple[str, str]) -> None:
    heads = {"jpeg": media_blobs.jpeg, "m4a": media_blobs.m4a, "flac": media_blobs.flac,
             "mp4": media_blobs.mp4, "srt": SRT, "json": JSON_SIDECAR, "xmp": XMP, "": b""}
    data = None if head is None else heads[head][:512]
    assert _core.classify(name, data) == expected


def _wma(path: Path) -> None:
    """Sound alone in ASF, as Windows Media Player rips it (WMA v2)."""
    from fractions import Fraction

    import av
    import numpy as np

    with av.open(str(path), "w", format="asf") as out:
        st = out.add_stream("wmav2", rate=44100)
        st.layout, st.bit_rate = "mono", 64000
        st.codec_context.open()
        n = st.codec_context.frame_size
        for i in range(10):
            tone = (np.sin(np.arange(i * n, (i + 1) * n) / 10) * 0.3).astype("float32")[None, :]
            frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 44100, i * n, Fraction(1, 44100)
            for p in st.encode(frame):
                out.mux(p)
        for p in st.encode(None):
            out.mux(p)


def test_sound_alone_in_matroska_asf_and_jpeg_2000_are_what_they_are(tmp_path: Path, catalog_path: Path) -> None:
    """An `.mka` (Matroska holding sound alone) and a `.wma` (ASF holding sound alone)
    were videos, out of every `kind = 'audio'` query and of `dupes --kind audio`; JPEG
    2000 pictures were `other`, never read."""
    from conftest import _encode_audio, _encode_video, _picture

    lib = tmp_path / "lib"
    lib.mkdir()
    _encode_audio(lib / "live.mka", "flac", "matroska")
    _wma(lib / "rip.wma")
    _encode_video(lib / "clip.mkv")
    _picture(64, 48, 1).save(lib / "scan.jp2")
    _picture(64, 48, 2).save(lib / "plate.bin", format="JPEG2000")  # the JP2 box, named as nothing
    do_scan(catalog_path, lib)
    got = {os.path.basename(p): (r["kind"], r["mime"]) for p, r in files_by_path(catalog_path).items()}
    assert got == {b"live.mka": ("audio", "audio/x-matroska"), b"clip.mkv": ("video", "video/x-matroska"), b"scan.jp2": ("image", "image/jp2"),
                   b"plate.bin": ("image", "image/jp2"), b"rip.wma": ("audio", "audio/x-ms-wma")}


def test_schema_17_files_sound_alone_that_earlier_scans_called_video_as_audio(tmp_path: Path, catalog_path: Path) -> None:
    """Files are judged again only when they change: a WMA (or `.mka`, `.weba`) an earlier
    version filed as a video stays one unless the catalog's upgrade says `audio`, in
    `files` and `media`; the search index then compares every document again."""
    import duckdb

    from conftest import _encode_video
    from mediaforge.catalog.schema import SCHEMA_VERSION, SEARCH_SYNCED

    lib = tmp_path / "lib"
    lib.mkdir()
    _wma(lib / "rip.wma")
    _encode_video(lib / "clip.mkv")  # a video, which stays one
    assert run_cli("scan", lib, "--no-thumbs", "--no-fingerprints", catalog=catalog_path).rc == 0
    with duckdb.connect(str(catalog_path)) as con:  # as schema 16 left it
        con.execute("UPDATE files SET kind = 'video', mime = 'video/x-ms-wmv' WHERE ext = 'wma'")
        con.execute("UPDATE media SET kind = 'video' WHERE blake3 IN (SELECT blake3 FROM files WHERE ext = 'wma')")
        con.execute("UPDATE meta SET value = '16' WHERE key = 'schema_version'")
        con.execute("INSERT OR REPLACE INTO meta VALUES (?, '1')", [SEARCH_SYNCED])
    assert run_cli("stats", catalog=catalog_path).rc == 0  # any command upgrades it
    assert rows(catalog_path, "SELECT ext, kind, mime FROM files WHERE ext = 'wma'") == [
        {"ext": "wma", "kind": "audio", "mime": "audio/x-ms-wma"}]
    assert rows(catalog_path, "SELECT kind, mime FROM files WHERE ext = 'mkv'") == [
        {"kind": "video", "mime": "video/x-matroska"}]
    meta = {r["key"]: r["value"] for r in rows(catalog_path, "SELECT key, value FROM meta")}
    assert meta["schema_version"] == str(SCHEMA_VERSION) and SEARCH_SYNCED not in meta
    # Schema 19 drops the media rows of ASF contents for the next scan to extract again.
    media_kind = "SELECT m.kind FROM files f JOIN media m USING (blake3) WHERE f.ext = 'wma'"
    assert rows(catalog_path, media_kind) == []
    assert run_cli("scan", lib, "--no-thumbs", "--no-fingerprints", catalog=catalog_path).rc == 0
    assert rows(catalog_path, media_kind) == [{"kind": "audio"}]


def test_a_video_named_as_another_formats_sound_is_a_video_and_schema_24_refiles_it(
        tmp_path: Path, catalog_path: Path) -> None:
    """A QA finding: an MP4 named `.flac` and a Matroska file named `.mp3` were filed as
    `audio` (any sound name made a container sound), and so got no thumbnail and no
    fingerprint. Only a container's own names for sound count. A catalog an earlier
    version filed them in says `video` after its upgrade, and they are extracted again."""
    import duckdb

    from conftest import _encode_audio, _encode_video
    from mediaforge.catalog.schema import SCHEMA_VERSION

    lib = tmp_path / "lib"
    lib.mkdir()
    _encode_video(tmp_path / "clip.mp4", frames=48)
    _encode_video(tmp_path / "clip.mkv", frames=48)
    os.rename(tmp_path / "clip.mp4", lib / "video.flac")
    os.rename(tmp_path / "clip.mkv", lib / "video.mp3")
    _encode_audio(lib / "live.mka", "flac", "matroska")  # sound alone, by its own name: sound
    assert run_cli("scan", lib, catalog=catalog_path).rc == 0
    want = [_filed("live.mka", "audio", "audio/x-matroska"), _filed("video.flac", "video", "video/mp4"),
            _filed("video.mp3", "video", "video/x-matroska")]
    assert _kinds_and_extraction(catalog_path) == want
    with duckdb.connect(str(catalog_path)) as con:  # as schema 23 left them
        con.execute("UPDATE files SET kind = 'audio', mime = 'audio/mp4' WHERE ext = 'flac'")
        con.execute("UPDATE files SET kind = 'audio', mime = 'audio/x-matroska' WHERE ext = 'mp3'")
        con.execute("UPDATE media SET kind = 'audio', thumb = NULL WHERE video_codec IS NOT NULL")
        con.execute("DELETE FROM video_hashes")
        con.execute("UPDATE meta SET value = '23' WHERE key = 'schema_version'")
    assert run_cli("scan", lib, catalog=catalog_path).rc == 0
    assert _kinds_and_extraction(catalog_path) == want
    assert rows(catalog_path, "SELECT value FROM meta WHERE key = 'schema_version'")[0]["value"] == str(SCHEMA_VERSION)


def _kinds_and_extraction(catalog: Path, where: str = "true") -> list[dict]:
    """Each catalogued file's kind and MIME type, its content's kind, and whether it has a
    thumbnail and a video fingerprint."""
    return rows(catalog, f"""SELECT f.name, f.kind, f.mime, m.kind AS media_kind, m.thumb IS NOT NULL AS thumb,
                                    EXISTS (SELECT 1 FROM video_hashes h WHERE h.blake3 = f.blake3) AS fingerprint
                             FROM files f JOIN media m USING (blake3) WHERE {where} ORDER BY 1""")


def _filed(name: str, kind: str, mime: str) -> dict:
    """A row of `_kinds_and_extraction`: a video has its thumbnail and fingerprint, sound neither."""
    video = kind == "video"
    return {"name": name, "kind": kind, "mime": mime, "media_kind": kind, "thumb": video, "fingerprint": video}


def test_a_matroska_video_named_as_sound_is_a_video_and_schema_25_refiles_it(
        tmp_path: Path, catalog_path: Path) -> None:
    """`.mka` made a Matroska file sound whatever it held: a video saved under that name
    got no thumbnail and no fingerprint. Its tracks (in its first bytes, as `ffmpeg`
    writes them) tell now; sound alone stays sound. A catalog an earlier version filed it
    in says `video` after its upgrade, and it is extracted again; a still that only libav
    read loses the `_pipe` of its reader's name."""
    import duckdb

    from conftest import _encode_audio, _encode_video
    from mediaforge.catalog.schema import SCHEMA_VERSION

    lib = tmp_path / "lib"
    lib.mkdir()
    _encode_video(tmp_path / "clip.mkv", frames=48)
    os.rename(tmp_path / "clip.mkv", lib / "video.mka")
    _encode_audio(lib / "live.mka", "flac", "matroska")
    Image.new("RGB", (32, 24), (200, 40, 40)).save(lib / "still.jpg")
    _encode_audio(lib / "talk.ogg", "flac", "ogg")
    # Sound alone in an MP4, named as sound and as video: `audio` and `video` rows of one
    # content, which the upgrade leaves as they are, `media` row included.
    _encode_audio(lib / "song.m4a", "aac", "mp4")
    shutil.copy(lib / "song.m4a", lib / "song.mp4")
    assert run_cli("scan", lib, catalog=catalog_path).rc == 0
    song = "SELECT m.kind, m.extracted_at FROM media m JOIN files f USING (blake3) WHERE f.name = 'song.m4a'"
    song_before = rows(catalog_path, song)
    assert len(song_before) == 1
    want = [_filed("live.mka", "audio", "audio/x-matroska"), _filed("video.mka", "video", "video/x-matroska")]
    assert _kinds_and_extraction(catalog_path, "f.ext = 'mka'") == want
    with duckdb.connect(str(catalog_path)) as con:  # as schema 24 left them
        con.execute("UPDATE files SET kind = 'audio', mime = 'audio/x-matroska' WHERE name = 'video.mka'")
        con.execute("UPDATE media SET kind = 'audio', thumb = NULL WHERE video_codec IS NOT NULL")
        con.execute("DELETE FROM video_hashes")
        con.execute("UPDATE media SET format = 'png_pipe' WHERE format = 'matroska' AND video_codec IS NULL")
        con.execute("UPDATE media SET format = 'image2', video_codec = 'mjpeg' WHERE kind = 'image'")
        # An Ogg file whose Theora stream came after its sound, as an earlier scan filed it.
        con.execute("UPDATE media SET video_codec = 'theora' WHERE format = 'ogg'")
        con.execute("UPDATE meta SET value = '24' WHERE key = 'schema_version'")
    assert run_cli("stats", catalog=catalog_path).rc == 0  # any command upgrades it
    assert rows(catalog_path, song) == song_before
    assert rows(catalog_path, "SELECT format FROM media WHERE audio_codec = 'flac' AND video_codec IS NULL") == [
        {"format": "png"}]
    assert rows(catalog_path, "SELECT format FROM media WHERE kind = 'image'") == [{"format": "jpeg"}]
    assert rows(catalog_path, "SELECT name, kind, mime FROM files ORDER BY 1") == [
        {"name": "live.mka", "kind": "audio", "mime": "audio/x-matroska"},
        {"name": "song.m4a", "kind": "audio", "mime": "audio/mp4"},
        {"name": "song.mp4", "kind": "video", "mime": "video/mp4"},
        {"name": "still.jpg", "kind": "image", "mime": "image/jpeg"},
        {"name": "talk.ogg", "kind": "video", "mime": "video/ogg"},
        {"name": "video.mka", "kind": "video", "mime": "video/x-matroska"}]
    assert run_cli("scan", lib, catalog=catalog_path).rc == 0
    assert _kinds_and_extraction(catalog_path, "f.ext = 'mka'") == want
    assert rows(catalog_path, "SELECT value FROM meta WHERE key = 'schema_version'")[0]["value"] == str(SCHEMA_VERSION)


def test_schema_25_renames_a_libav_readers_format_and_has_the_search_index_compare_again(
        tmp_path: Path, catalog_path: Path) -> None:
    """Documents in the search index hold the format: one renamed by the upgrade alone
    (`png_pipe` to `png`) has every document compared again at the next update."""
    import duckdb

    from mediaforge.catalog.schema import SEARCH_SYNCED

    lib = tmp_path / "lib"
    lib.mkdir()
    Image.new("RGB", (32, 24), (20, 140, 40)).save(lib / "leaf.png")
    assert run_cli("scan", lib, catalog=catalog_path).rc == 0
    with duckdb.connect(str(catalog_path)) as con:  # as schema 24 left a damaged PNG that libav read
        con.execute("UPDATE media SET format = 'png_pipe'")
        con.execute("UPDATE meta SET value = '24' WHERE key = 'schema_version'")
        con.execute("INSERT OR REPLACE INTO meta VALUES (?, '1')", [SEARCH_SYNCED])
    assert run_cli("stats", catalog=catalog_path).rc == 0
    assert rows(catalog_path, "SELECT format FROM media") == [{"format": "png"}]
    assert rows(catalog_path, "SELECT value FROM meta WHERE key = ?", [SEARCH_SYNCED]) == []


def _mpeg4_clip(path: Path, fmt: str, vorbis_first: bool = False) -> None:
    """An MPEG-4 Part 2 clip: ffmpeg's MP4 muxer lists no video brand for it (as for HEVC
    or VP9), only `isom iso2 mp41`. With `vorbis_first`, a Vorbis track before it, whose
    codec headers (about 3.5 KB) put the video's track entry past the first 512 bytes."""
    import av
    import numpy as np

    from conftest import _picture

    with av.open(str(path), "w", format=fmt) as out:
        sound = None
        if vorbis_first:
            sound = out.add_stream("vorbis", rate=44100)
            sound.codec_context.options = {"strict": "experimental"}  # libav's own Vorbis encoder
        st = out.add_stream("mpeg4", rate=24)
        st.width, st.height, st.pix_fmt = 64, 48, "yuv420p"
        for i in range(48):
            frame = av.VideoFrame.from_image(_picture(64, 48, i))
            for p in st.encode(frame):
                out.mux(p)
        for p in st.encode():
            out.mux(p)
        if sound is not None:
            silence = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            silence.sample_rate = 44100
            for p in [*sound.encode(silence), *sound.encode()]:
                out.mux(p)


def test_a_video_in_a_container_branded_or_named_as_sound_is_told_by_its_tracks(
        tmp_path: Path, catalog_path: Path) -> None:
    """A review finding: an MP4 named `.m4a` that lists no video brand (MPEG-4 Part 2, HEVC
    or VP9 from ffmpeg), and a Matroska file named `.mka` whose tracks come after its first
    512 bytes (a long title before them, or `mkvmerge`'s room for its seek head), were
    filed as sound, with no thumbnail and no fingerprint, though they hold a video. Their
    tracks are read; sound alone stays sound, and so does a file renamed to a sound name."""
    from conftest import _encode_audio

    lib = tmp_path / "lib"
    lib.mkdir()
    _mpeg4_clip(tmp_path / "clip.mp4", "mp4")
    os.rename(tmp_path / "clip.mp4", lib / "clip.m4a")
    _mpeg4_clip(tmp_path / "film.mkv", "matroska", vorbis_first=True)
    assert (tmp_path / "film.mkv").read_bytes().find(b"V_MPEG4") > 512  # the video's track entry
    os.rename(tmp_path / "film.mkv", lib / "film.mka")
    _encode_audio(lib / "song.m4a", "aac", "mp4")
    _encode_audio(lib / "live.mka", "flac", "matroska")
    _mpeg4_clip(lib / "renamed.mp4", "mp4")
    assert run_cli("scan", lib, catalog=catalog_path).rc == 0
    assert _kinds_and_extraction(catalog_path) == [
        _filed("clip.m4a", "video", "video/mp4"), _filed("film.mka", "video", "video/x-matroska"),
        _filed("live.mka", "audio", "audio/x-matroska"), _filed("renamed.mp4", "video", "video/mp4"),
        _filed("song.m4a", "audio", "audio/mp4")]
    # Renamed to a sound name, a file is judged again from its bytes: its tracks too.
    os.rename(lib / "renamed.mp4", lib / "renamed.m4a")
    os.rename(lib / "song.m4a", lib / "song.mp4")
    assert run_cli("scan", lib, catalog=catalog_path).rc == 0
    assert rows(catalog_path, "SELECT name, kind, mime FROM files WHERE name LIKE '%renamed%' OR name LIKE 'song%' "
                              "ORDER BY 1") == [
        {"name": "renamed.m4a", "kind": "video", "mime": "video/mp4"},
        {"name": "song.mp4", "kind": "video", "mime": "video/mp4"}]  # sound alone named .mp4: as documented


def _still_by_libav(path: Path, codec: str, pix_fmt: str) -> None:
    """A picture written by one of libav's image encoders (OpenEXR, Radiance HDR)."""
    import av
    import numpy as np

    ramp = (np.indices((48, 64)).sum(0) * 3 % 256).astype(np.uint8)
    picture = av.VideoFrame.from_ndarray(np.stack([ramp, 255 - ramp, ramp // 2], -1), format="rgb24")
    with av.open(str(path), "w", format="image2") as out:
        st = out.add_stream(codec, rate=1)
        st.width, st.height, st.pix_fmt = 64, 48, pix_fmt
        for p in [*st.encode(picture.reformat(format=pix_fmt)), *st.encode()]:
            out.mux(p)


def test_formats_known_by_name_alone_are_read_and_schema_28_refiles_them(tmp_path: Path, catalog_path: Path) -> None:
    """A QA finding: formats that start with no signature the scan sniffs went by their
    names alone, and names it did not know made them `other`, never read: raw AC-3 (a
    film's soundtrack pulled out of it), CAF, TTA, PPM, Targa, QOI, OpenEXR, Radiance HDR,
    an MPEG-2 elementary stream. They are read now, with a scan that hashes or not; and a
    TIFF-based RAW of a make the scan did not know (Epson's `.erf`) was a TIFF picture. A
    catalog an earlier version filed them in takes their kinds on its upgrade (the RAW's
    extraction as a TIFF goes), and the next scan extracts them."""
    import duckdb
    import numpy as np

    from conftest import _encode_video
    from mediaforge.catalog.schema import SCHEMA_VERSION, SEARCH_SYNCED
    from mediaforge.synth import write_audio

    lib = tmp_path / "lib"
    lib.mkdir()
    for name, codec, fmt, pitch in (("score.ac3", "ac3", "ac3", 220.0), ("memo.caf", "pcm_s16le", "caf", 660.0),
                                    ("rip.tta", "tta", "tta", 330.0)):
        tone = np.sin(np.arange(4 * 44100) * (2 * np.pi * pitch / 44100)) * np.linspace(0.1, 0.5, 4 * 44100)
        write_audio(lib / name, tone.astype(np.float32), 44100, codec, fmt)
    ramp = Image.linear_gradient("L").resize((96, 64)).convert("RGB")
    for ext in ("ppm", "tga", "qoi"):
        ramp.rotate({"ppm": 0, "tga": 90, "qoi": 180}[ext], expand=True).save(lib / f"scan.{ext}")
    _still_by_libav(lib / "render.exr", "exr", "gbrpf32le")
    _still_by_libav(lib / "sky.hdr", "hdr", "gbrpf32le")
    _encode_video(lib / "dvd.m2v", 40, "mpeg2video", "mpeg2video", (160, 120))  # as DVD authoring keeps one
    ramp.save(lib / "old.erf", format="TIFF")  # a TIFF, as Epson's RAWs are
    # Names text files share: a Device Tree source, an ENVI header (a review finding).
    (lib / "board.dts").write_text('/dts-v1/;\n/ {\n\tmodel = "board";\n};\n')
    (lib / "cube.hdr").write_text("ENVI\nsamples = 64\nlines = 48\nbands = 3\n")
    extracted = """SELECT f.name, f.kind, f.mime, m.kind AS media_kind, m.status,
                          EXISTS (SELECT 1 FROM image_hashes h WHERE h.blake3 = f.blake3) AS picture_hash,
                          EXISTS (SELECT 1 FROM audio_hashes h WHERE h.blake3 = f.blake3) AS sound_hash,
                          EXISTS (SELECT 1 FROM video_hashes h WHERE h.blake3 = f.blake3) AS video_hash
                   FROM files f LEFT JOIN media m USING (blake3) ORDER BY 1"""
    filed = {"dvd.m2v": ("video", "video/mpeg"), "memo.caf": ("audio", "audio/x-caf"),
             "old.erf": ("raw", "image/x-epson-erf"), "render.exr": ("image", "image/x-exr"),
             "rip.tta": ("audio", "audio/x-tta"), "scan.ppm": ("image", "image/x-portable-pixmap"),
             "scan.qoi": ("image", "image/qoi"), "scan.tga": ("image", "image/x-tga"),
             "score.ac3": ("audio", "audio/ac3"), "sky.hdr": ("image", "image/vnd.radiance"),
             "board.dts": ("other", "application/octet-stream"), "cube.hdr": ("other", "application/octet-stream")}
    # (The RAW reader takes no plain TIFF: only its preview is read.)
    want = [{"name": n, "kind": k, "mime": m, "media_kind": None if k == "other" else k,
             "status": None if k == "other" else "partial" if k == "raw" else "ok",
             "picture_hash": k in ("image", "raw"), "sound_hash": k == "audio", "video_hash": k == "video"}
            for n, (k, m) in sorted(filed.items())]
    bare = tmp_path / "bare.duckdb"
    assert run_cli("scan", "--no-hash", lib, catalog=bare).rc == 0
    assert rows(bare, "SELECT name, kind, mime FROM files ORDER BY 1") == [
        {"name": n, "kind": k, "mime": m} for n, (k, m) in sorted(filed.items())]
    res = run_cli("scan", lib, catalog=catalog_path)
    assert res.rc == 0, res.err
    assert rows(catalog_path, extracted) == want
    assert rows(catalog_path, "SELECT count(*) AS n FROM meta_errors WHERE message NOT LIKE 'only the embedded%'") == [
        {"n": 0}]

    with duckdb.connect(str(catalog_path)) as con:  # as schema 27 filed them
        con.execute("UPDATE files SET kind = 'image', mime = 'image/tiff' WHERE ext = 'erf'")
        con.execute("UPDATE media SET kind = 'image', status = 'ok' WHERE blake3 IN (SELECT blake3 FROM files "
                    "WHERE ext = 'erf')")
        # (A Radiance `.hdr` was never `other` once read: its signature is new, not its
        # name, which text files share, so the upgrade leaves `.hdr` and `.dts` rows alone.)
        named = "ext NOT IN ('erf', 'hdr', 'dts')"
        for table in ("media", "image_hashes", "audio_hashes", "video_hashes"):
            con.execute(f"DELETE FROM {table} WHERE blake3 IN (SELECT blake3 FROM files WHERE {named})")
        con.execute(f"UPDATE files SET kind = 'other', mime = 'application/octet-stream' WHERE {named}")
        con.execute("UPDATE meta SET value = '27' WHERE key = 'schema_version'")
        con.execute("INSERT OR REPLACE INTO meta VALUES (?, '1')", [SEARCH_SYNCED])
    assert run_cli("stats", catalog=catalog_path).rc == 0  # any command upgrades it
    assert rows(catalog_path, "SELECT name, kind, mime FROM files ORDER BY 1") == [
        {"name": n, "kind": k, "mime": m} for n, (k, m) in sorted(filed.items())]
    assert rows(catalog_path, "SELECT f.name FROM media JOIN files f USING (blake3)") == [{"name": "sky.hdr"}]
    meta = {r["key"]: r["value"] for r in rows(catalog_path, "SELECT key, value FROM meta")}
    assert meta["schema_version"] == str(SCHEMA_VERSION) and SEARCH_SYNCED not in meta
    assert run_cli("scan", lib, catalog=catalog_path).rc == 0
    assert rows(catalog_path, extracted) == want
