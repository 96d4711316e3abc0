//! Kind and MIME classification from the extension and, where bytes are at hand, the
//! file's magic numbers. Extension lookup is free; magic needs the first bytes, which the
//! hasher reads anyway, so a hashing scan sniffs every file and a `--no-hash` scan sniffs
//! only files whose extension says nothing.

/// The catalog's coarse media kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Image,
    Raw,
    Video,
    Audio,
    Sidecar,
    Other,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::Raw => "raw",
            Kind::Video => "video",
            Kind::Audio => "audio",
            Kind::Sidecar => "sidecar",
            Kind::Other => "other",
        }
    }
}

/// A kind with its MIME type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Class {
    pub kind: Kind,
    pub mime: &'static str,
}

const OCTET: Class = Class {
    kind: Kind::Other,
    mime: "application/octet-stream",
};

const fn c(kind: Kind, mime: &'static str) -> Class {
    Class { kind, mime }
}

/// Classify by a lowercase extension (without the dot). `None` when the extension is
/// unknown, so the caller can decide whether sniffing is worth an open.
pub fn from_extension(ext: &[u8]) -> Option<Class> {
    use Kind::*;
    let mut buf = [0u8; 8];
    if ext.is_empty() || ext.len() > buf.len() {
        return None;
    }
    for (d, s) in buf.iter_mut().zip(ext) {
        *d = s.to_ascii_lowercase();
    }
    let e = &buf[..ext.len()];
    Some(match e {
        b"jpg" | b"jpeg" | b"jpe" | b"jfif" => c(Image, "image/jpeg"),
        b"png" => c(Image, "image/png"),
        b"apng" => c(Image, "image/apng"),
        b"gif" => c(Image, "image/gif"),
        b"webp" => c(Image, "image/webp"),
        b"heic" => c(Image, "image/heic"),
        b"heics" => c(Image, "image/heic-sequence"),
        b"heif" | b"hif" => c(Image, "image/heif"),
        b"heifs" => c(Image, "image/heif-sequence"),
        b"avif" | b"avifs" => c(Image, "image/avif"),
        b"tif" | b"tiff" => c(Image, "image/tiff"),
        b"bmp" => c(Image, "image/bmp"),
        b"jxl" => c(Image, "image/jxl"),
        b"jp2" => c(Image, "image/jp2"),
        b"jpx" | b"jpf" => c(Image, "image/jpx"),
        b"j2k" | b"j2c" | b"jpc" => c(Image, "image/x-jp2-codestream"),
        b"svg" => c(Image, "image/svg+xml"),
        b"ico" => c(Image, "image/vnd.microsoft.icon"),
        b"psd" => c(Image, "image/vnd.adobe.photoshop"),
        b"tga" => c(Image, "image/x-tga"),
        b"pcx" => c(Image, "image/x-pcx"),
        b"ppm" => c(Image, "image/x-portable-pixmap"),
        b"pgm" => c(Image, "image/x-portable-graymap"),
        b"pbm" => c(Image, "image/x-portable-bitmap"),
        b"pnm" => c(Image, "image/x-portable-anymap"),
        b"qoi" => c(Image, "image/qoi"),
        b"dds" => c(Image, "image/vnd.ms-dds"),
        b"exr" => c(Image, "image/x-exr"),
        b"jxr" | b"wdp" | b"hdp" => c(Image, "image/jxr"),
        b"cr2" => c(Raw, "image/x-canon-cr2"),
        b"cr3" => c(Raw, "image/x-canon-cr3"),
        b"crw" => c(Raw, "image/x-canon-crw"),
        b"nef" | b"nrw" => c(Raw, "image/x-nikon-nef"),
        b"arw" | b"srf" | b"sr2" => c(Raw, "image/x-sony-arw"),
        b"dng" => c(Raw, "image/x-adobe-dng"),
        b"orf" => c(Raw, "image/x-olympus-orf"),
        b"rw2" => c(Raw, "image/x-panasonic-rw2"),
        b"raf" => c(Raw, "image/x-fuji-raf"),
        b"pef" => c(Raw, "image/x-pentax-pef"),
        b"srw" => c(Raw, "image/x-samsung-srw"),
        b"x3f" => c(Raw, "image/x-sigma-x3f"),
        b"3fr" => c(Raw, "image/x-hasselblad-3fr"),
        b"iiq" => c(Raw, "image/x-phaseone-iiq"),
        b"rwl" => c(Raw, "image/x-leica-rwl"),
        b"mrw" => c(Raw, "image/x-minolta-mrw"),
        b"erf" => c(Raw, "image/x-epson-erf"),
        b"kdc" => c(Raw, "image/x-kodak-kdc"),
        b"mos" => c(Raw, "image/x-leaf-mos"),
        b"mef" => c(Raw, "image/x-mamiya-mef"),
        b"fff" => c(Raw, "image/x-hasselblad-fff"),
        b"gpr" => c(Raw, "image/x-gopro-gpr"),
        // `.insv` (Insta360) and `.lrv` (a GoPro's low-resolution copy) are MP4 files.
        b"mp4" | b"m4v" | b"f4v" | b"insv" | b"lrv" => c(Video, "video/mp4"),
        b"mov" | b"qt" => c(Video, "video/quicktime"),
        b"mkv" | b"mk3d" => c(Video, "video/x-matroska"),
        b"webm" => c(Video, "video/webm"),
        b"avi" | b"divx" => c(Video, "video/x-msvideo"),
        b"wmv" | b"asf" => c(Video, "video/x-ms-wmv"),
        b"mpg" | b"mpeg" | b"mpe" | b"vob" | b"m2v" => c(Video, "video/mpeg"),
        b"ts" | b"m2ts" | b"mts" => c(Video, "video/mp2t"),
        b"3gp" => c(Video, "video/3gpp"),
        b"3g2" => c(Video, "video/3gpp2"),
        b"flv" => c(Video, "video/x-flv"),
        b"ogv" | b"ogm" => c(Video, "video/ogg"),
        b"dv" => c(Video, "video/x-dv"),
        b"rm" | b"rmvb" => c(Video, "application/vnd.rn-realmedia"),
        b"mxf" => c(Video, "application/mxf"),
        b"mp3" | b"mp2" | b"mp1" | b"mpa" | b"m2a" | b"mpga" => c(Audio, "audio/mpeg"),
        b"flac" => c(Audio, "audio/flac"),
        b"ogg" | b"oga" => c(Audio, "audio/ogg"),
        b"opus" => c(Audio, "audio/opus"),
        b"m4a" | b"m4b" | b"m4r" | b"alac" => c(Audio, "audio/mp4"),
        b"aac" => c(Audio, "audio/aac"),
        b"ac3" => c(Audio, "audio/ac3"),
        b"eac3" | b"ec3" => c(Audio, "audio/eac3"),
        b"dtshd" => c(Audio, "audio/vnd.dts"),
        b"thd" | b"mlp" => c(Audio, "audio/vnd.dolby.mlp"),
        b"amr" => c(Audio, "audio/amr"),
        b"awb" => c(Audio, "audio/amr-wb"),
        b"caf" => c(Audio, "audio/x-caf"),
        b"tta" => c(Audio, "audio/x-tta"),
        b"mpc" => c(Audio, "audio/x-musepack"),
        b"spx" => c(Audio, "audio/ogg"),
        b"au" => c(Audio, "audio/basic"),
        b"w64" => c(Audio, "audio/x-w64"),
        b"ra" => c(Audio, "audio/x-pn-realaudio"),
        b"wav" => c(Audio, "audio/wav"),
        b"aif" | b"aiff" | b"aifc" => c(Audio, "audio/aiff"),
        b"wma" => c(Audio, "audio/x-ms-wma"),
        b"ape" => c(Audio, "audio/x-ape"),
        b"wv" => c(Audio, "audio/x-wavpack"),
        b"mka" => c(Audio, "audio/x-matroska"),
        b"weba" => c(Audio, "audio/webm"),
        b"dsf" | b"dff" => c(Audio, "audio/x-dsd"),
        b"mid" | b"midi" => c(Audio, "audio/midi"),
        b"xmp" => c(Sidecar, "application/rdf+xml"),
        b"json" => c(Sidecar, "application/json"),
        b"srt" => c(Sidecar, "application/x-subrip"),
        b"vtt" => c(Sidecar, "text/vtt"),
        b"ass" | b"ssa" => c(Sidecar, "text/x-ssa"),
        b"sub" | b"idx" => c(Sidecar, "text/plain"),
        b"cue" => c(Sidecar, "application/x-cue"),
        b"lrc" => c(Sidecar, "text/plain"),
        b"nfo" => c(Sidecar, "text/x-nfo"),
        b"aae" => c(Sidecar, "application/xml"),
        b"thm" => c(Sidecar, "image/jpeg"),
        b"pp3" | b"dop" | b"xmpx" => c(Sidecar, "text/plain"),
        // Common files that are not media: named here so a `--no-hash` scan need not open
        // them to find that out (a hashing scan still reads their magic numbers).
        b"txt" | b"log" | b"ini" => c(Other, "text/plain"),
        b"md" => c(Other, "text/markdown"),
        b"csv" => c(Other, "text/csv"),
        b"htm" | b"html" => c(Other, "text/html"),
        b"pdf" => c(Other, "application/pdf"),
        b"rtf" => c(Other, "application/rtf"),
        b"doc" => c(Other, "application/msword"),
        b"docx" => c(
            Other,
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        b"xls" => c(Other, "application/vnd.ms-excel"),
        b"xlsx" => c(
            Other,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        b"ppt" => c(Other, "application/vnd.ms-powerpoint"),
        b"pptx" => c(
            Other,
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        ),
        b"odt" => c(Other, "application/vnd.oasis.opendocument.text"),
        b"ods" => c(Other, "application/vnd.oasis.opendocument.spreadsheet"),
        b"epub" => c(Other, "application/epub+zip"),
        b"zip" => c(Other, "application/zip"),
        b"7z" => c(Other, "application/x-7z-compressed"),
        b"rar" => c(Other, "application/vnd.rar"),
        b"tar" => c(Other, "application/x-tar"),
        b"gz" | b"tgz" => c(Other, "application/gzip"),
        b"iso" => c(Other, "application/x-iso9660-image"),
        b"torrent" => c(Other, "application/x-bittorrent"),
        _ => return None,
    })
}

/// Whether an ISO BMFF `ftyp` box at the start of `h` lists an audio-only brand among
/// its compatible brands (after the major brand and its version), and no video one.
/// An ISO media file's compatible brands (after the major brand and its version), as
/// many as its `ftyp` box lists within `h`.
fn mp4_brands(h: &[u8]) -> impl Iterator<Item = &[u8]> {
    let size = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
    h.get(16..size.min(h.len())).unwrap_or(&[]).chunks_exact(4)
}

/// Whether an ISO media file lists a video brand among its compatible ones.
fn mp4_video_brand(h: &[u8]) -> bool {
    mp4_brands(h).any(|b| {
        matches!(
            b,
            b"M4V " | b"M4VH" | b"M4VP" | b"avc1" | b"hvc1" | b"hev1" | b"av01" | b"qt  "
        )
    })
}

/// Whether an ISO media file lists an audio brand among its compatible ones.
fn mp4_audio_brand(h: &[u8]) -> bool {
    mp4_brands(h).any(|b| matches!(b, b"M4A " | b"M4B " | b"M4P "))
}

/// Whether `ext` is one of `names`, the names a container takes when it holds sound alone
/// (`.m4a` for ISO media, `.mka` for Matroska): another format's sound name (a video
/// named `.flac` or `.mp3`) is a wrong name, which says nothing of what the file holds.
fn named_as(ext: &[u8], names: &[&[u8]]) -> bool {
    names.iter().any(|n| ext.eq_ignore_ascii_case(n))
}

/// An EBML variable-length number at the start of `h`: its value (with the length marker
/// kept for an element ID, dropped for a size) and its length; `None` past the end. An
/// unknown size (all value bits set) reads as `u64::MAX`.
fn ebml_vint(h: &[u8], keep_marker: bool) -> Option<(u64, usize)> {
    let first = *h.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 || h.len() < len {
        return None;
    }
    let mut v = if keep_marker {
        first as u64
    } else {
        (first as u64) & (0xFF >> len)
    };
    for &b in &h[1..len] {
        v = (v << 8) | b as u64;
    }
    let all_ones = (1u64 << (7 * len)) - 1;
    Some((if !keep_marker && v == all_ones { u64::MAX } else { v }, len))
}

/// Whether a Matroska or WebM file lists a video track (`TrackType` 1, or a `V_` codec
/// ID), read from its first bytes `h`: `Some(false)` when its `Tracks` element is there
/// whole and lists none, `None` when the bytes end first (`mkvmerge` leaves room for a
/// large seek head before it; `ffmpeg` writes it within the first few hundred bytes).
fn matroska_lists_video(h: &[u8]) -> Option<bool> {
    const SEGMENT: u64 = 0x1853_8067;
    const TRACKS: u64 = 0x1654_AE6B;
    const TRACK_ENTRY: u64 = 0xAE;
    const TRACK_TYPE: u64 = 0x83;
    const CODEC_ID: u64 = 0x86;
    const CLUSTER: u64 = 0x1F43_B675;
    // One element: its ID, where its data starts and its size.
    let element = |at: usize| -> Option<(u64, usize, u64)> {
        let (id, a) = ebml_vint(h.get(at..)?, true)?;
        let (size, b) = ebml_vint(h.get(at + a..)?, false)?;
        Some((id, at + a + b, size))
    };
    let end_of = |data: usize, size: u64| usize::try_from(size).ok().and_then(|s| data.checked_add(s));
    // The EBML header, then the segment's children until the tracks.
    let (_, data, size) = element(0)?;
    let (id, mut at, _) = element(end_of(data, size)?)?;
    if id != SEGMENT {
        return None;
    }
    loop {
        let (id, data, size) = element(at)?;
        match id {
            TRACKS => break,
            CLUSTER => return None,
            _ => at = end_of(data, size)?,
        }
    }
    let (_, data, size) = element(at)?;
    let tracks_end = end_of(data, size)?;
    let mut at = data;
    while at < tracks_end {
        let (id, data, size) = element(at)?;
        let entry_end = end_of(data, size)?;
        if id == TRACK_ENTRY {
            let mut inner = data;
            while inner < entry_end {
                let (id, data, size) = element(inner)?;
                let field = h.get(data..end_of(data, size)?);
                match (id, field) {
                    (TRACK_TYPE, Some(v)) if v.last() == Some(&1) && v.iter().rev().skip(1).all(|&b| b == 0) => {
                        return Some(true)
                    }
                    (CODEC_ID, Some(v)) if v.starts_with(b"V_") => return Some(true),
                    _ => {}
                }
                inner = end_of(data, size)?;
            }
        }
        at = entry_end;
    }
    (tracks_end <= h.len()).then_some(false)
}

/// The starts of the packets on an Ogg file's beginning-of-stream pages (one per stream,
/// all before any other page), as far as `h` holds them.
fn ogg_first_packets(h: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while h.get(at..at + 4) == Some(b"OggS") && h.len() > at + 27 {
        if h[at + 5] & 0x02 == 0 {
            break; // not a first page: the streams' first pages are over
        }
        let segments = h[at + 26] as usize;
        let Some(table) = h.get(at + 27..at + 27 + segments) else {
            break;
        };
        let body = at + 27 + segments;
        let len: usize = table.iter().map(|&b| b as usize).sum();
        out.push(&h[body.min(h.len())..(body + len).min(h.len())]);
        at = body + len;
    }
    out
}

/// Reads bytes of a file at an offset into a buffer: how many it read (fewer at its end),
/// `None` when the read fails.
pub type ReadAt<'a> = &'a dyn Fn(u64, &mut [u8]) -> Option<usize>;

fn read_full(read: ReadAt<'_>, at: u64, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        match read(at + got as u64, &mut buf[got..]) {
            Some(n) if n > 0 => got += n,
            _ => break,
        }
    }
    got
}

/// Whether a class says sound for a container's brands or name alone (an ISO file branded
/// or named as sound, `.m4a`; Matroska or WebM named `.mka`, `.weba`), which its tracks,
/// read from the file (`tracks_list_video`), may overturn: only where its first bytes
/// `head` are that container's (not other bytes under such a name).
pub fn tracks_may_tell(class: Class, head: &[u8]) -> bool {
    match class.mime {
        "audio/mp4" => head.get(4..8) == Some(b"ftyp"),
        "audio/x-matroska" | "audio/webm" => head.starts_with(b"\x1A\x45\xDF\xA3"),
        _ => false,
    }
}

/// The video class of a container `tracks_may_tell` of.
pub fn as_video(class: Class) -> Class {
    match class.mime {
        "audio/mp4" => c(Kind::Video, "video/mp4"),
        "audio/webm" => c(Kind::Video, "video/webm"),
        "audio/x-matroska" => c(Kind::Video, "video/x-matroska"),
        _ => class,
    }
}

/// How far into a Matroska file its tracks are looked for (`mkvmerge` reserves a few
/// kilobytes for its seek head before them).
const MATROSKA_TRACKS_WITHIN: usize = 64 << 10;

/// Whether the file (read through `read`) of a container `tracks_may_tell` of lists a
/// video track: an ISO file a track whose handler is `vide` (cover art is no track), a
/// Matroska file a `TrackType` 1 or `V_` codec within its first 64 KiB.
pub fn tracks_list_video(class: Class, read: ReadAt<'_>) -> bool {
    if class.mime == "audio/mp4" {
        return iso_lists_video(read) == Some(true);
    }
    let mut buf = vec![0u8; MATROSKA_TRACKS_WITHIN];
    let n = read_full(read, 0, &mut buf);
    matroska_lists_video(&buf[..n]) == Some(true)
}

/// The boxes of type `want` among the ISO boxes from `start` to `end`: where each one's
/// body starts and where it ends; only the first with `first`. At most 4,096 boxes are
/// looked at (a fragmented file has thousands at its top); a size that cannot be (under
/// its header's) ends the list.
fn iso_boxes(read: ReadAt<'_>, start: u64, end: u64, want: &[u8; 4], first: bool) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = start;
    for _ in 0..4096 {
        let mut h = [0u8; 16];
        if at.checked_add(8).is_none_or(|e| e > end) || read_full(read, at, &mut h) < 8 {
            break;
        }
        let (size, header) = match u32::from_be_bytes([h[0], h[1], h[2], h[3]]) {
            1 => (
                u64::from_be_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]),
                16,
            ),
            0 => (end - at, 8), // to the end of what holds it
            n => (n as u64, 8),
        };
        if size < header {
            break;
        }
        if &h[4..8] == want {
            out.push((at + header, at.saturating_add(size).min(end)));
            if first {
                break;
            }
        }
        match at.checked_add(size) {
            Some(next) => at = next,
            None => break,
        }
    }
    out
}

/// Whether an ISO media file's `moov` box lists a video track; `None` without one.
fn iso_lists_video(read: ReadAt<'_>) -> Option<bool> {
    let (start, end) = *iso_boxes(read, 0, u64::MAX, b"moov", true).first()?;
    let video = iso_boxes(read, start, end, b"trak", false)
        .into_iter()
        .any(|(start, end)| {
            iso_boxes(read, start, end, b"mdia", true)
                .first()
                .is_some_and(|&(start, end)| {
                    iso_boxes(read, start, end, b"hdlr", true)
                        .first()
                        .is_some_and(|&(body, _)| {
                            // Version and flags, a field of zeros, then the handler's type.
                            let mut h = [0u8; 12];
                            read_full(read, body, &mut h) == 12 && &h[8..12] == b"vide"
                        })
                })
        });
    Some(video)
}

fn is_raw_tiff_ext(ext: &[u8]) -> bool {
    matches!(from_extension(ext), Some(Class { kind: Kind::Raw, .. })) || named_as(ext, &[b"dcr"])
}

/// Formats whose names other files share (a Device Tree source `.dts`, an ENVI header
/// `.hdr`, printer font metrics `.pfm`, a Shockwave movie `.dcr`): not known by the name
/// alone (`from_extension` says nothing, so a `--no-hash` scan reads their first bytes
/// too), only with their own signature.
fn signed_by_name(h: &[u8], ext: &[u8]) -> Option<Class> {
    use Kind::*;
    let at = |sig: &[u8]| h.starts_with(sig);
    // DTS: the core's sync word, big- or little-endian, 16- or 14-bit words.
    let dts = [
        &b"\x7F\xFE\x80\x01"[..],
        b"\xFE\x7F\x01\x80",
        b"\x1F\xFF\xE8\x00",
        b"\xFF\x1F\x00\xE8",
    ];
    if named_as(ext, &[b"dts"]) && dts.iter().any(|s| at(s)) {
        return Some(c(Audio, "audio/vnd.dts"));
    }
    if named_as(ext, &[b"hdr"]) && (at(b"#?RADIANCE") || at(b"#?RGBE")) {
        return Some(c(Image, "image/vnd.radiance"));
    }
    if named_as(ext, &[b"pfm"]) && (at(b"PF\n") || at(b"Pf\n") || at(b"PF\r") || at(b"Pf\r")) {
        return Some(c(Image, "image/x-portable-floatmap"));
    }
    None
}

/// Classify by magic bytes (the first few hundred bytes of the file). `None` when the
/// bytes match no format we know.
pub fn from_magic(head: &[u8], ext: &[u8]) -> Option<Class> {
    use Kind::*;
    let h = head;
    let at = |off: usize, sig: &[u8]| h.len() >= off + sig.len() && &h[off..off + sig.len()] == sig;
    if let Some(class) = signed_by_name(h, ext) {
        return Some(class);
    }
    if at(0, b"\xFF\xD8\xFF") {
        return Some(c(Image, "image/jpeg"));
    }
    if at(0, b"\x89PNG\r\n\x1a\n") {
        return Some(c(Image, "image/png"));
    }
    if at(0, b"GIF87a") || at(0, b"GIF89a") {
        return Some(c(Image, "image/gif"));
    }
    if at(0, b"RIFF") {
        if at(8, b"WEBP") {
            return Some(c(Image, "image/webp"));
        }
        if at(8, b"WAVE") {
            return Some(c(Audio, "audio/wav"));
        }
        if at(8, b"AVI ") {
            return Some(c(Video, "video/x-msvideo"));
        }
    }
    if at(4, b"ftyp") && h.len() >= 12 {
        let brand = &h[8..12];
        return Some(match brand {
            b"heic" | b"heix" | b"hevc" | b"heim" | b"heis" => c(Image, "image/heic"),
            b"mif1" | b"msf1" => c(Image, "image/heif"),
            b"avif" | b"avis" => c(Image, "image/avif"),
            b"crx " => c(Raw, "image/x-canon-cr3"),
            b"qt  " => c(Video, "video/quicktime"),
            b"M4A " | b"M4B " | b"M4P " => c(Audio, "audio/mp4"),
            b"M4V " | b"M4VH" | b"M4VP" => c(Video, "video/mp4"),
            b"3gp4" | b"3gp5" | b"3gp6" | b"3ge6" | b"3gs7" => c(Video, "video/3gpp"),
            b"3g2a" => c(Video, "video/3gpp2"),
            // A generic brand (`isom`, `mp42`...): a video when the file lists a video
            // brand among its compatible ones; else sound alone when it lists an audio
            // one, or is named as ISO sound (`.m4a`, as ffmpeg's plain mp4 muxer writes
            // one); else a video, as most are.
            _ if mp4_video_brand(h) => c(Video, "video/mp4"),
            _ if mp4_audio_brand(h) || named_as(ext, &[b"m4a", b"m4b", b"m4p", b"m4r", b"alac"]) => {
                c(Audio, "audio/mp4")
            }
            _ => c(Video, "video/mp4"),
        });
    }
    if at(0, b"\x1A\x45\xDF\xA3") {
        let webm = h.windows(4).take(64).any(|w| w == b"webm");
        // Matroska and WebM hold sound alone as well as video: named as sound (`.mka`,
        // `.weba`), a file is sound unless its tracks, where its first bytes hold them,
        // list a video one.
        let sound = named_as(ext, &[b"mka", b"weba"]) && matroska_lists_video(h) != Some(true);
        return Some(match (webm, sound) {
            (true, false) => c(Video, "video/webm"),
            (true, true) => c(Audio, "audio/webm"),
            (false, false) => c(Video, "video/x-matroska"),
            (false, true) => c(Audio, "audio/x-matroska"),
        });
    }
    if at(0, b"fLaC") {
        return Some(c(Audio, "audio/flac"));
    }
    if at(0, b"OggS") {
        // Each stream's first page comes before any other page: the file is a video when
        // one of them starts a video stream, whatever comes first (a Skeleton track, the
        // sound).
        let firsts = ogg_first_packets(h);
        // (`\x01video`: the DirectShow-style header of an OGM file's video stream.)
        let video: [&[u8]; 5] = [b"\x80theora", b"\x80daala", b"BBCD\0", b"OVP80", b"\x01video"];
        if at(28, b"\x80theora") || firsts.iter().any(|p| video.iter().any(|v| p.starts_with(v))) {
            return Some(c(Video, "video/ogg"));
        }
        if at(28, b"OpusHead") || firsts.iter().any(|p| p.starts_with(b"OpusHead")) {
            return Some(c(Audio, "audio/opus"));
        }
        return Some(c(Audio, "audio/ogg"));
    }
    if at(0, b"ID3") {
        return Some(c(Audio, "audio/mpeg"));
    }
    if at(0, b"FORM") && (at(8, b"AIFF") || at(8, b"AIFC")) {
        return Some(c(Audio, "audio/aiff"));
    }
    if at(0, b"II*\0") || at(0, b"MM\0*") {
        // Most RAW formats are TIFF containers: trust a RAW extension over plain TIFF.
        if is_raw_tiff_ext(ext) {
            return from_extension(ext).or(Some(c(Raw, "image/x-kodak-dcr")));
        }
        return Some(c(Image, "image/tiff"));
    }
    if at(0, b"FUJIFILMCCD-RAW") {
        return Some(c(Raw, "image/x-fuji-raf"));
    }
    if at(0, b"IIU\0") {
        return Some(c(Raw, "image/x-panasonic-rw2"));
    }
    if at(0, b"\xFF\x0A") || at(0, b"\0\0\0\x0CJXL \r\n\x87\n") {
        return Some(c(Image, "image/jxl"));
    }
    // JPEG 2000: the JP2 signature box (`jpx ` files carry it too), or a bare codestream.
    if at(0, b"\0\0\0\x0CjP  \r\n\x87\n") {
        let jpx = at(20, b"jpx ");
        return Some(c(Image, if jpx { "image/jpx" } else { "image/jp2" }));
    }
    if at(0, b"\xFF\x4F\xFF\x51") {
        return Some(c(Image, "image/x-jp2-codestream"));
    }
    if at(0, b"BM") && h.len() >= 14 && ext.eq_ignore_ascii_case(b"bmp") {
        return Some(c(Image, "image/bmp"));
    }
    if at(0, b"\x30\x26\xB2\x75\x8E\x66\xCF\x11") {
        // ASF holds sound alone (WMA) as well as video (WMV), as Matroska does: its name
        // for sound decides.
        return Some(if named_as(ext, &[b"wma"]) {
            c(Audio, "audio/x-ms-wma")
        } else {
            c(Video, "video/x-ms-wmv")
        });
    }
    if at(0, b"FLV\x01") {
        return Some(c(Video, "video/x-flv"));
    }
    if at(0, b"\0\0\x01\xBA") {
        return Some(c(Video, "video/mpeg"));
    }
    if h.len() > 376 && h[0] == 0x47 && h[188] == 0x47 && h[376] == 0x47 {
        return Some(c(Video, "video/mp2t"));
    }
    let utf16 = utf16_ascii(h);
    if let Some(text) = &utf16 {
        // UTF-16 text (`FF FE` is also an MPEG frame sync): an XMP packet, or nothing known.
        let text = trim_bom(text);
        if text.starts_with(b"<?xpacket") || text.starts_with(b"<x:xmpmeta") {
            return Some(c(Sidecar, "application/rdf+xml"));
        }
        return None;
    }
    // A frame sync and a plausible header happen in one random file of several thousand
    // (compressed or encrypted blobs): an MPEG audio or ADTS stream is told by its second
    // frame header, where the first frame's length puts it, within the head. One whose
    // second header lies past the head (a long frame, a file shorter than a frame) is
    // left to its extension.
    if let Some(len) = mpeg_frame_len(h) {
        if len + 4 <= h.len() && mpeg_frame_len(&h[len..]).is_some() && (h[len + 1] & 0xFE) == (h[1] & 0xFE) {
            return Some(c(Audio, "audio/mpeg"));
        }
    }
    if let Some(len) = adts_frame_len(h) {
        if len + 7 <= h.len() && adts_frame_len(&h[len..]).is_some() && (h[len + 1] & 0xF6) == (h[1] & 0xF6) {
            return Some(c(Audio, "audio/aac"));
        }
    }
    let text = trim_bom(h);
    if text.starts_with(b"<?xpacket") || text.starts_with(b"<x:xmpmeta") {
        return Some(c(Sidecar, "application/rdf+xml"));
    }
    None
}

/// The length in bytes of the MPEG audio frame (MPEG-1, 2 or 2.5, layer I, II or III)
/// whose header starts `h`: sync, a version, a layer (ADTS AAC has layer bits 00), a bit
/// rate and a sample rate, none reserved. None for anything else, and for a free-format
/// frame (bit rate index 0), whose length no header states.
fn mpeg_frame_len(h: &[u8]) -> Option<usize> {
    const V1: [[u32; 14]; 3] = [
        [32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448], // layer I
        [32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],    // layer II
        [32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],     // layer III
    ];
    const V2: [[u32; 14]; 2] = [
        [32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256], // layer I
        [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],      // layers II, III
    ];
    if h.len() < 4 || h[0] != 0xFF || (h[1] & 0xE0) != 0xE0 {
        return None;
    }
    let version = (h[1] >> 3) & 3; // 0: MPEG-2.5, 1: reserved, 2: MPEG-2, 3: MPEG-1
    let layer = (h[1] >> 1) & 3; // 1: III, 2: II, 3: I, 0: reserved
    let rate_index = (h[2] >> 4) as usize;
    let sample_index = ((h[2] >> 2) & 3) as usize;
    if version == 1 || layer == 0 || rate_index == 0 || rate_index == 15 || sample_index == 3 {
        return None;
    }
    let kbps = match (version, layer) {
        (3, l) => V1[(3 - l) as usize][rate_index - 1],
        (_, 3) => V2[0][rate_index - 1],
        _ => V2[1][rate_index - 1],
    };
    let base = [44_100u32, 48_000, 32_000][sample_index];
    let rate = match version {
        3 => base,
        2 => base / 2,
        _ => base / 4,
    };
    let padding = ((h[2] >> 1) & 1) as u32;
    let len = match (version, layer) {
        (_, 3) => (12 * kbps * 1000 / rate + padding) * 4,
        (3, _) | (_, 2) => 144 * kbps * 1000 / rate + padding,
        _ => 72 * kbps * 1000 / rate + padding, // MPEG-2 and 2.5 layer III
    };
    Some(len as usize)
}

/// The length in bytes (header included) of the ADTS AAC frame whose header starts `h`:
/// sync, layer 00, a sample rate index that is not reserved and a length that holds at
/// least the header. None for anything else.
fn adts_frame_len(h: &[u8]) -> Option<usize> {
    if h.len() < 7 || h[0] != 0xFF || (h[1] & 0xF6) != 0xF0 || (h[2] >> 2) & 0xF >= 13 {
        return None;
    }
    let len = (((h[3] & 0x03) as usize) << 11) | ((h[4] as usize) << 3) | ((h[5] >> 5) as usize);
    (len >= 7).then_some(len)
}

/// The ASCII characters of a head that starts with a UTF-16 byte order mark and whose
/// first characters are ASCII: the text, one byte per character; None otherwise.
fn utf16_ascii(h: &[u8]) -> Option<Vec<u8>> {
    let le = h.starts_with(b"\xFF\xFE");
    if !le && !h.starts_with(b"\xFE\xFF") {
        return None;
    }
    let units: Vec<[u8; 2]> = h[2..].chunks_exact(2).map(|p| [p[0], p[1]]).collect();
    let ascii = |u: &[u8; 2]| {
        if le {
            (u[1] == 0).then_some(u[0])
        } else {
            (u[0] == 0).then_some(u[1])
        }
    };
    let text: Vec<u8> = units.iter().map_while(ascii).collect();
    (text.len() >= units.len().min(4) && !text.is_empty() && text.iter().all(|b| b.is_ascii())).then_some(text)
}

fn trim_bom(h: &[u8]) -> &[u8] {
    let h = h.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(h);
    let start = h.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(h.len());
    &h[start..]
}

/// Final classification: magic wins when it knows the format (a JPEG named `.png` is a
/// JPEG); a sidecar extension wins over text-like content; else the extension; else other.
pub fn classify(ext: &[u8], head: Option<&[u8]>) -> Class {
    let by_ext = from_extension(ext);
    if let Some(h) = head {
        if h.is_empty() {
            return by_ext.unwrap_or(OCTET);
        }
        if let Some(m) = from_magic(h, ext) {
            return m;
        }
    }
    by_ext.unwrap_or(OCTET)
}

/// The lowercase-insensitive extension of a file name: bytes after the last dot, unless
/// the dot starts the name (`.bashrc` has none).
pub fn extension(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|&b| b == b'.') {
        Some(0) | None => b"",
        Some(i) => &name[i + 1..],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `text` as UTF-16LE with its byte order mark.
    fn utf16le(text: &str) -> Vec<u8> {
        let mut out = b"\xFF\xFE".to_vec();
        out.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        out
    }

    #[test]
    fn utf16_text_is_not_an_mpeg_frame() {
        let srt = utf16le("1\n00:00:01,000 --> 00:00:02,000\n");
        assert_eq!(classify(b"srt", Some(&srt)).kind, Kind::Sidecar);
        assert_eq!(classify(b"txt", Some(&srt)).mime, "text/plain");
        let xmp = utf16le("<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">");
        assert_eq!(classify(b"", Some(&xmp)).kind, Kind::Sidecar);
        // Real MPEG-1 layer III frames still are, whatever the name: 128 kb/s at 44.1 kHz
        // makes 417-byte frames, and the second header is where the first one says.
        let mut two = vec![0u8; 417 + 4];
        two[..4].copy_from_slice(b"\xFF\xFB\x90\x64");
        two[417..].copy_from_slice(b"\xFF\xFB\x92\x64");
        assert_eq!(classify(b"bin", Some(&two)).mime, "audio/mpeg");
    }

    #[test]
    fn a_lone_frame_sync_in_random_bytes_is_no_audio() {
        // A header QA found at the start of a random file: MPEG-2.5 layer I, valid on its
        // own; nothing follows where its frame ends.
        let mut blob: Vec<u8> = (0..512u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        blob[..4].copy_from_slice(b"\xFF\xE7\x20\xEF");
        assert_eq!(classify(b"dat", Some(&blob)).kind, Kind::Other);
        assert_eq!(classify(b"mp3", Some(&blob)).mime, "audio/mpeg"); // the name still says so
        assert_eq!(classify(b"mp2", Some(&blob)).mime, "audio/mpeg");
        // ADTS: a 7-byte header stating a 100-byte frame, then the next header.
        let mut adts = vec![0u8; 120];
        let hdr = |len: usize| {
            [
                0xFF,
                0xF1,
                0x50,
                0x80 | ((len >> 11) & 3) as u8,
                (len >> 3) as u8,
                ((len & 7) << 5) as u8 | 0x1F,
                0xFC,
            ]
        };
        adts[..7].copy_from_slice(&hdr(100));
        adts[100..107].copy_from_slice(&hdr(20));
        assert_eq!(classify(b"bin", Some(&adts)).mime, "audio/aac");
        adts[100] = 0;
        assert_eq!(classify(b"bin", Some(&adts)).kind, Kind::Other);
        // Each MPEG header's own length: MPEG-1 layer II 192 kb/s 48 kHz, MPEG-2 layer III
        // 64 kb/s 22.05 kHz with padding, MPEG-2.5 layer III 8 kb/s 8 kHz.
        assert_eq!(mpeg_frame_len(b"\xFF\xFD\xA4\x00"), Some(576));
        assert_eq!(mpeg_frame_len(b"\xFF\xF3\x82\x00"), Some(209));
        assert_eq!(mpeg_frame_len(b"\xFF\xE3\x18\x00"), Some(72));
        assert_eq!(mpeg_frame_len(b"\xFF\xFB\x00\x00"), None); // free format
    }

    #[test]
    fn extension_table() {
        let cases: &[(&[u8], &str, &str)] = &[
            (b"JPG", "image", "image/jpeg"),
            (b"cr2", "raw", "image/x-canon-cr2"),
            (b"MP4", "video", "video/mp4"),
            (b"flac", "audio", "audio/flac"),
            (b"xmp", "sidecar", "application/rdf+xml"),
            (b"srt", "sidecar", "application/x-subrip"),
        ];
        for (ext, kind, mime) in cases {
            let cl = classify(ext, None);
            assert_eq!(cl.kind.as_str(), *kind, "{:?}", ext);
            assert_eq!(cl.mime, *mime);
        }
        assert_eq!(classify(b"exe", None).kind, Kind::Other);
        assert_eq!(classify(b"PDF", None).mime, "application/pdf");
        assert_eq!(classify(b"txt", None), c(Kind::Other, "text/plain"));
        // A picture saved under a document's name is still found by its magic numbers.
        assert_eq!(classify(b"txt", Some(b"\xFF\xD8\xFF\xE0")).mime, "image/jpeg");
        assert_eq!(classify(b"", None).mime, "application/octet-stream");
    }

    #[test]
    fn magic_beats_a_wrong_extension() {
        let jpeg = b"\xFF\xD8\xFF\xE0\x00\x10JFIF";
        assert_eq!(classify(b"png", Some(jpeg)).mime, "image/jpeg");
        let mp4 = b"\0\0\0\x18ftypisom\0\0\0\0";
        assert_eq!(classify(b"", Some(mp4)).kind, Kind::Video);
        let m4a = b"\0\0\0\x18ftypM4A \0\0\0\0";
        assert_eq!(classify(b"mp4", Some(m4a)).mime, "audio/mp4");
        let heic = b"\0\0\0\x18ftypheic\0\0\0\0";
        assert_eq!(classify(b"", Some(heic)).mime, "image/heic");
        // Sound alone under a generic brand: named so, or an audio brand listed as compatible.
        assert_eq!(classify(b"M4A", Some(mp4)).mime, "audio/mp4");
        let listed = b"\0\0\0\x1cftypmp42\0\0\0\0isomM4A ";
        assert_eq!(classify(b"mp4", Some(listed)).kind, Kind::Audio);
        let cut = b"\0\0\0\x40ftypmp42\0\0\0\0isom";
        assert_eq!(classify(b"mp4", Some(cut)).kind, Kind::Video);
        // iTunes videos list the audio brand beside their own: still videos.
        let m4v = b"\0\0\0\x20ftypM4V \0\0\0\0M4V M4A mp42isom";
        assert_eq!(classify(b"m4v", Some(m4v)).kind, Kind::Video);
        let both = b"\0\0\0\x20ftypmp42\0\0\0\0isomM4A avc1mp42";
        assert_eq!(classify(b"mp4", Some(both)).kind, Kind::Video);
    }

    #[test]
    fn jpeg_2000_by_name_and_by_content() {
        let jp2 = b"\0\0\0\x0CjP  \r\n\x87\n\0\0\0\x14ftypjp2 \0\0\0\0jp2 ";
        assert_eq!(classify(b"bin", Some(jp2)).mime, "image/jp2");
        let jpx = b"\0\0\0\x0CjP  \r\n\x87\n\0\0\0\x1cftypjpx \0\0\0\0jpx jp2 ";
        assert_eq!(classify(b"jpf", Some(jpx)).mime, "image/jpx");
        assert_eq!(
            classify(b"", Some(b"\xFF\x4F\xFF\x51\0\x2f")).mime,
            "image/x-jp2-codestream"
        );
        assert_eq!(classify(b"J2K", None).kind, Kind::Image);
    }

    #[test]
    fn matroska_and_webm_named_as_sound_are_sound() {
        let mkv = b"\x1A\x45\xDF\xA3\x9f\x42\x86\x81\x01\x42\x82\x88matroska";
        let webm = b"\x1A\x45\xDF\xA3\x9f\x42\x86\x81\x01\x42\x82\x84webm";
        assert_eq!(classify(b"mka", Some(mkv)).mime, "audio/x-matroska");
        assert_eq!(classify(b"MKA", Some(mkv)).kind, Kind::Audio);
        assert_eq!(classify(b"weba", Some(webm)).mime, "audio/webm");
        assert_eq!(classify(b"mkv", Some(mkv)).mime, "video/x-matroska");
        assert_eq!(classify(b"webm", Some(webm)).mime, "video/webm");
        assert_eq!(classify(b"", Some(mkv)).kind, Kind::Video);
        // A Matroska file named as a photo is still no photo.
        assert_eq!(classify(b"jpg", Some(mkv)).kind, Kind::Video);
    }

    #[test]
    fn matroska_named_as_sound_with_a_video_track_is_a_video() {
        // A Matroska file as `ffmpeg` writes one: the EBML header, a segment of unknown
        // size, a seek head, then the tracks.
        let file = |entries: &[&[u8]]| -> Vec<u8> {
            let mut v = b"\x1A\x45\xDF\xA3\x8f\x42\x86\x81\x01\x42\x82\x88matroska".to_vec();
            v.extend_from_slice(b"\x18\x53\x80\x67\x01\xff\xff\xff\xff\xff\xff\xff");
            v.extend_from_slice(b"\x11\x4D\x9B\x74\x84\xEC\x82\x00\x00"); // a seek head holding a void
            let body: Vec<u8> = entries
                .iter()
                .flat_map(|e| [&[0xAE, 0x80 | e.len() as u8][..], e].concat())
                .collect();
            v.extend_from_slice(b"\x16\x54\xAE\x6B");
            v.push(0x80 | body.len() as u8);
            v.extend_from_slice(&body);
            v
        };
        let sound: &[u8] = b"\xD7\x81\x01\x83\x81\x02\x86\x86A_FLAC";
        let video: &[u8] = b"\xD7\x81\x02\x83\x81\x01\x86\x8fV_MPEG4/ISO/ASP";
        let untyped_video: &[u8] = b"\xD7\x81\x02\x86\x85V_VP9";
        assert_eq!(classify(b"mka", Some(&file(&[sound]))).mime, "audio/x-matroska");
        assert_eq!(classify(b"mka", Some(&file(&[sound, video]))).mime, "video/x-matroska");
        assert_eq!(classify(b"mka", Some(&file(&[untyped_video]))).kind, Kind::Video);
        // Tracks that run past the bytes read: the name decides.
        let mut cut = file(&[sound, video]);
        cut.truncate(cut.len() - 21);
        assert_eq!(classify(b"mka", Some(&cut)).kind, Kind::Audio);
        assert_eq!(matroska_lists_video(&cut), None);
        assert_eq!(matroska_lists_video(&file(&[sound])), Some(false));
        assert_eq!(matroska_lists_video(b"\x1A\x45\xDF\xA3\xff"), None);
    }

    #[test]
    fn an_iso_file_branded_as_sound_whose_tracks_list_a_video_is_a_video() {
        fn b(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
            [&((body.len() + 8) as u32).to_be_bytes()[..], kind, body].concat()
        }
        let hdlr = |handler: &[u8; 4]| b(b"hdlr", &[&[0u8; 8][..], handler, &[0u8; 13]].concat());
        let trak = |handler: &[u8; 4]| b(b"trak", &b(b"mdia", &[b(b"mdhd", &[0; 24]), hdlr(handler)].concat()));
        let file = |handlers: &[&[u8; 4]], moov_first: bool| -> Vec<u8> {
            let ftyp = b(b"ftyp", b"M4A \0\0\0\0M4A isom");
            let moov = b(
                b"moov",
                &[
                    b(b"mvhd", &[0; 100]),
                    handlers.iter().map(|h| trak(h)).collect::<Vec<_>>().concat(),
                ]
                .concat(),
            );
            let mdat = b(b"mdat", &[7; 3000]);
            if moov_first {
                [ftyp, moov, mdat].concat()
            } else {
                [ftyp, mdat, moov].concat()
            }
        };
        let lists = |bytes: &[u8]| {
            let read = |at: u64, buf: &mut [u8]| {
                let at = (at as usize).min(bytes.len());
                let n = buf.len().min(bytes.len() - at);
                buf[..n].copy_from_slice(&bytes[at..at + n]);
                Some(n)
            };
            let class = classify(b"m4a", Some(&bytes[..HEAD.min(bytes.len())]));
            tracks_may_tell(class, bytes) && tracks_list_video(class, &read)
        };
        const HEAD: usize = 512;
        let song = file(&[b"soun"], false);
        assert_eq!(classify(b"m4a", Some(&song[..HEAD])).mime, "audio/mp4");
        assert!(!lists(&song));
        assert!(lists(&file(&[b"soun", b"vide"], false)));
        assert!(lists(&file(&[b"vide", b"text"], true)));
        assert!(!lists(&file(&[b"soun", b"text"], true)));
        // Cut short before its `moov`, or a box whose size cannot be: no video said.
        let cut = file(&[b"vide"], false);
        assert!(!lists(&cut[..cut.len() - 40]));
        let mut bad = file(&[b"vide"], true);
        bad[24..28].copy_from_slice(&3u32.to_be_bytes()); // the moov box's size
        assert!(!lists(&bad));
        assert_eq!(as_video(classify(b"m4a", Some(&song[..HEAD]))).mime, "video/mp4");
    }

    #[test]
    fn a_video_named_as_another_formats_sound_is_a_video() {
        // A QA finding: any sound name made a container sound, so `v.flac` holding an
        // H.264 MP4 got no thumbnail and no fingerprint.
        let mp4 = b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2avc1mp41";
        let mkv = b"\x1A\x45\xDF\xA3\x9f\x42\x86\x81\x01\x42\x82\x88matroska";
        let webm = b"\x1A\x45\xDF\xA3\x9f\x42\x86\x81\x01\x42\x82\x84webm";
        let asf = b"\x30\x26\xB2\x75\x8E\x66\xCF\x11\xA6\xD9\x00\xAA\x00\x62\xCE\x6C";
        for ext in [
            &b"flac"[..],
            b"mp3",
            b"wav",
            b"ogg",
            b"opus",
            b"aac",
            b"wma",
            b"mka",
            b"weba",
        ] {
            assert_eq!(classify(ext, Some(mp4)).mime, "video/mp4");
        }
        // With a video brand listed, even its own sound name does not make it sound.
        assert_eq!(classify(b"m4a", Some(mp4)).mime, "video/mp4");
        for ext in [&b"flac"[..], b"mp3", b"m4a", b"wma"] {
            assert_eq!(classify(ext, Some(mkv)).mime, "video/x-matroska");
            assert_eq!(classify(ext, Some(webm)).mime, "video/webm");
        }
        for ext in [&b"mp3"[..], b"m4a", b"mka"] {
            assert_eq!(classify(ext, Some(asf)).mime, "video/x-ms-wmv");
        }
        // Sound alone under a generic brand, named as ISO sound, is still sound.
        let plain = b"\0\0\0\x1cftypisom\0\0\x02\0isomiso2mp41";
        assert_eq!(classify(b"M4A", Some(plain)).mime, "audio/mp4");
        assert_eq!(classify(b"m4b", Some(plain)).mime, "audio/mp4");
        assert_eq!(classify(b"flac", Some(plain)).mime, "video/mp4");
    }

    #[test]
    fn asf_named_as_sound_is_sound() {
        let asf = b"\x30\x26\xB2\x75\x8E\x66\xCF\x11\xA6\xD9\x00\xAA\x00\x62\xCE\x6C";
        assert_eq!(classify(b"wma", Some(asf)).mime, "audio/x-ms-wma");
        assert_eq!(classify(b"WMA", Some(asf)).kind, Kind::Audio);
        assert_eq!(classify(b"wmv", Some(asf)).mime, "video/x-ms-wmv");
        assert_eq!(classify(b"asf", Some(asf)).kind, Kind::Video);
        assert_eq!(classify(b"", Some(asf)).kind, Kind::Video);
    }

    #[test]
    fn tiff_raw_keeps_raw_extension() {
        let tiff = b"II*\0\x08\0\0\0";
        assert_eq!(classify(b"nef", Some(tiff)).kind, Kind::Raw);
        assert_eq!(classify(b"tif", Some(tiff)).mime, "image/tiff");
        // The TIFF-based RAWs of Epson, Kodak, Leaf, Mamiya, Hasselblad and GoPro too.
        for ext in [&b"erf"[..], b"kdc", b"DCR", b"mos", b"mef", b"fff", b"gpr"] {
            assert_eq!(classify(ext, Some(tiff)).kind, Kind::Raw);
        }
        assert_eq!(classify(b"dcr", Some(tiff)).mime, "image/x-kodak-dcr");
    }

    #[test]
    fn names_other_files_share_want_their_signature() {
        // A review finding: a Device Tree source (`board.dts`), an ENVI header (`.hdr`),
        // printer font metrics (`.pfm`) and a Shockwave movie (`.dcr`) were filed as sound,
        // pictures and a RAW by their names, and failed extraction at every scan.
        let text = b"/dts-v1/;\n/ {\n\tmodel = \"board\";\n};\n";
        for ext in [&b"dts"[..], b"hdr", b"pfm", b"dcr"] {
            assert_eq!(classify(ext, Some(text)), OCTET);
            assert_eq!(from_extension(ext), None); // so a `--no-hash` scan reads its first bytes
        }
        assert_eq!(classify(b"dcr", Some(b"XFIR\x00\x10\x00\x00MV93")), OCTET);
        let dts = b"\x7F\xFE\x80\x01\xFC\x3C\xD2\x07";
        assert_eq!(classify(b"dts", Some(dts)), c(Kind::Audio, "audio/vnd.dts"));
        assert_eq!(classify(b"DTS", Some(b"\xFE\x7F\x01\x80\x00\x00")).kind, Kind::Audio);
        assert_eq!(
            classify(b"hdr", Some(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n")).mime,
            "image/vnd.radiance"
        );
        assert_eq!(
            classify(b"pfm", Some(b"PF\n64 48\n-1.0\n")).mime,
            "image/x-portable-floatmap"
        );
        // An OGM file's video stream (DirectShow-style header) makes it a video.
        let mut ogm = b"OggS\x00\x02".to_vec();
        ogm.resize(28, 0);
        ogm[26] = 1;
        ogm[27] = 9;
        ogm.extend_from_slice(b"\x01video\x00");
        assert_eq!(classify(b"ogm", Some(&ogm)).mime, "video/ogg");
    }

    #[test]
    fn formats_with_no_magic_go_by_their_names() {
        // A QA finding: raw AC-3, E-AC-3 and DTS (a film's soundtrack pulled out of it),
        // a Minolta RAW, a PPM or an OpenEXR picture were `other` and never read. None of
        // these starts with a signature the sniffing knows, so the name decides.
        let ac3 = b"\x0B\x77\x2B\x3C\x14\x40\xE1\x01";
        for (ext, kind, mime) in [
            (&b"ac3"[..], Kind::Audio, "audio/ac3"),
            (b"EAC3", Kind::Audio, "audio/eac3"),
            (b"ec3", Kind::Audio, "audio/eac3"),
            (b"dtshd", Kind::Audio, "audio/vnd.dts"),
            (b"thd", Kind::Audio, "audio/vnd.dolby.mlp"),
            (b"amr", Kind::Audio, "audio/amr"),
            (b"caf", Kind::Audio, "audio/x-caf"),
            (b"mrw", Kind::Raw, "image/x-minolta-mrw"),
            (b"ppm", Kind::Image, "image/x-portable-pixmap"),
            (b"exr", Kind::Image, "image/x-exr"),
            (b"tga", Kind::Image, "image/x-tga"),
            (b"dv", Kind::Video, "video/x-dv"),
            (b"m2v", Kind::Video, "video/mpeg"),
            (b"rmvb", Kind::Video, "application/vnd.rn-realmedia"),
        ] {
            assert_eq!(classify(ext, None), c(kind, mime));
            assert_eq!(classify(ext, Some(ac3)), c(kind, mime));
        }
        // Named as MP4's others, ISO media goes by its brands as any MP4 does.
        let plain = b"\0\0\0\x1cftypisom\0\0\x02\0isomiso2mp41";
        assert_eq!(classify(b"lrv", Some(plain)).mime, "video/mp4");
        assert_eq!(classify(b"insv", None).mime, "video/mp4");
        assert_eq!(classify(b"m4r", Some(plain)).mime, "audio/mp4");
        assert_eq!(classify(b"m4r", None).mime, "audio/mp4");
    }

    #[test]
    fn ogg_variants_and_text() {
        let mut opus = b"OggS".to_vec();
        opus.resize(28, 0);
        opus.extend_from_slice(b"OpusHead");
        assert_eq!(classify(b"ogg", Some(&opus)).mime, "audio/opus");
        // Theora after another stream's first page (a Skeleton track's, the sound's).
        let page = |packet: &[u8]| -> Vec<u8> {
            let mut p = b"OggS\0\x02".to_vec();
            p.resize(26, 0);
            p.push(1);
            p.push(packet.len() as u8);
            p.extend_from_slice(packet);
            p
        };
        let opus_head: &[u8] = b"OpusHead\x01\x02\x38\x01\x80\xbb\0\0\0\0\0";
        let theora: &[u8] = b"\x80theora\x03\x02\x01\0\x0a\0\x08";
        let skeleton: &[u8] = b"fishead\0\x03\0\0\0";
        for first in [opus_head, skeleton] {
            let file = [page(first), page(theora)].concat();
            assert_eq!(classify(b"ogv", Some(&file)).mime, "video/ogg");
            assert_eq!(classify(b"ogg", Some(&file)).kind, Kind::Video);
        }
        assert_eq!(
            classify(b"ogg", Some(&[page(skeleton), page(opus_head)].concat())).mime,
            "audio/opus"
        );
        // A later page that is no stream's first says nothing of the kind.
        let mut later = page(theora);
        later[5] = 0;
        assert_eq!(
            classify(b"ogg", Some(&[page(opus_head), later].concat())).mime,
            "audio/opus"
        );
        assert_eq!(classify(b"xmp", Some(b"  <x:xmpmeta xmlns:x=")).kind, Kind::Sidecar);
        assert_eq!(classify(b"json", Some(b"{\"title\": 1}")).kind, Kind::Sidecar);
    }

    #[test]
    fn extension_rules() {
        assert_eq!(extension(b"a.b.JPG"), b"JPG");
        assert_eq!(extension(b".bashrc"), b"");
        assert_eq!(extension(b"noext"), b"");
        assert_eq!(extension(b"trailing."), b"");
    }
}
