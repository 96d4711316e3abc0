//! The luma plane of a baseline JPEG at 1/8 scale, from the DC coefficients alone.
//!
//! At scale 1/8 a JPEG decoder turns every 8x8 block into one pixel, and that pixel is a
//! function of the block's DC coefficient only. The AC coefficients still have to be
//! walked, because Huffman codes have no boundaries, but they need not be stored,
//! dequantised or transformed. One look-up of the next 13 bits in a table built per
//! Huffman table gives how many bits the whole symbols there take (code and extra
//! bits), how far they move in the block and whether they end it, so a block of a
//! busy photo takes a handful of look-ups. The chroma blocks are walked the same way
//! and dropped. On 12 MP photos this is about twice libjpeg-turbo's speed at scale 1/8.
//!
//! The pixels are exactly those libjpeg(-turbo) gives for a grey output at scale 1/8
//! (`jpeg_idct_1x1`, range limit included), so a hash made from them equals the hash made
//! from Pillow's `draft("L", ...)` decode at that scale.
//!
//! The chroma blocks' DC coefficients come almost for free on the way (their codes are
//! read anyway): each colour picture's Cb and Cr planes are given too, one value a
//! block, repeated over the luma blocks each covers. Those are libjpeg's at 1/8 for a
//! picture without chroma subsampling or with 4:2:2 (libjpeg repeats its one value
//! across); with 4:2:0, libjpeg gives each chroma block 2x2 values at that scale, whose
//! mean this one value is within rounding (so a colour spot of a few blocks weighs a
//! little less here in `grey`'s count than in libjpeg's decode).
//!
//! Anything outside the common case (progressive or arithmetic coding, 12-bit samples,
//! CMYK or RGB-coded pictures, luma not at the highest sampling, a damaged or truncated
//! stream) is refused with a reason; the caller then decodes the usual way, so this
//! module changes speed, never results.

use std::cell::RefCell;
use std::rc::Rc;

/// A grey picture, one byte a pixel, rows top to bottom; for a colour picture, its Cb
/// and Cr planes too, at the same size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Luma {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
    /// Cb then Cr, `width * height` bytes each; None for a grey JPEG.
    pub chroma: Option<(Vec<u8>, Vec<u8>)>,
    /// Whole bytes of data left between the picture's last block and the marker that
    /// ends its scan: none from an encoder (its last byte is padded with ones, and fill
    /// bytes of 0xFF are no data); many when the codes fell out of step (libjpeg warns of
    /// "extraneous bytes", and decodes on).
    pub left_over: usize,
}

/// Why a JPEG is left to the full decoder.
pub type Refusal = &'static str;

/// Bits of the code looked up at once; longer codes take the slow path.
const LUT_BITS: u32 = 10;

/// Bits looked up at once to step over several AC symbols in one go.
const MULTI_BITS: u32 = 13;

/// One Huffman table: a fast table for short codes, canonical limits for the rest.
struct Huff {
    /// For each `MULTI_BITS`-bit prefix, the whole AC symbols (code plus extra bits) it
    /// holds, read in order up to and including an end of block: bits to drop in bits
    /// 0..=4, coefficients moved over in bits 5..=11 (the end of block not counted),
    /// `MULTI_EOB` when they end the block; 0 when not even one symbol fits.
    multi: Vec<u16>,
    /// AC tables only: for each `LUT_BITS`-bit prefix: bits to drop (code plus extra bits), in the low 5
    /// bits; coefficients to move on by, in bits 5..=10; `EOB` when the block ends here;
    /// 0 when the code is longer than `LUT_BITS`.
    skip: Vec<u16>,
    /// For each prefix: code length in the high byte and the symbol in the low byte; 0
    /// when the code is longer than `LUT_BITS`.
    fast: Vec<u16>,
    /// Largest code of each length (-1 when none), and the index of its first symbol.
    maxcode: [i32; 18],
    valoff: [i32; 17],
    symbols: Vec<u8>,
}

const EOB: u16 = 1 << 15;
const MULTI_EOB: u16 = 1 << 12;

impl Huff {
    fn new(counts: &[u8; 16], symbols: &[u8], is_dc: bool) -> Result<Huff, Refusal> {
        let mut maxcode = [-1i32; 18];
        let mut valoff = [0i32; 17];
        let mut fast = vec![0u16; 1 << LUT_BITS];
        // DC codes are decoded, never skipped: only AC tables have a skip table.
        let mut skip = if is_dc { Vec::new() } else { vec![0u16; 1 << LUT_BITS] };
        let mut code: u32 = 0;
        let mut k = 0usize;
        for len in 1..=16u32 {
            let n = counts[len as usize - 1] as usize;
            if n > 0 {
                valoff[len as usize] = k as i32 - code as i32;
                for _ in 0..n {
                    // As libjpeg: the all-ones code of a length may not be used (checked
                    // here too, before the code indexes the lookup tables).
                    if code + 1 >= (1 << len) {
                        return Err("a Huffman table is over-subscribed");
                    }
                    let sym = symbols[k];
                    if is_dc && sym > 15 {
                        return Err("a DC Huffman symbol is over 15");
                    }
                    if len <= LUT_BITS {
                        let shift = LUT_BITS - len;
                        let first = (code << shift) as usize;
                        let span = first..first + (1usize << shift);
                        fast[span.clone()].fill(((len as u16) << 8) | sym as u16);
                        if let Some(s) = skip.get_mut(span) {
                            s.fill(skip_entry(len, sym));
                        }
                    }
                    code += 1;
                    k += 1;
                }
                maxcode[len as usize] = code as i32 - 1;
            }
            // As libjpeg: the all-ones code of a length may not be used.
            if code >= (1 << len) {
                return Err("a Huffman table is over-subscribed");
            }
            code <<= 1;
        }
        maxcode[17] = i32::MAX;
        let multi = if is_dc {
            Vec::new()
        } else {
            multi_table(&maxcode, &valoff, symbols)
        };
        Ok(Huff {
            multi,
            skip,
            fast,
            maxcode,
            valoff,
            symbols: symbols.to_vec(),
        })
    }

    /// Decode one symbol the slow way (codes longer than `LUT_BITS`); `None` for a code
    /// no table holds.
    #[cold]
    #[inline(never)]
    fn slow(&self, acc: u64) -> Option<(u32, u8)> {
        for len in LUT_BITS + 1..=16 {
            let code = (acc >> (64 - len)) as i32;
            if code <= self.maxcode[len as usize] {
                let i = self.valoff[len as usize] + code;
                return self.symbols.get(i as usize).map(|&s| (len, s));
            }
        }
        None
    }

    /// Decode one symbol: (code length, symbol).
    #[inline(always)]
    fn decode(&self, bits: &Bits) -> Option<(u32, u8)> {
        let e = self.fast[bits.peek(LUT_BITS) as usize];
        if e != 0 {
            Some(((e >> 8) as u32, e as u8))
        } else {
            self.slow(bits.acc)
        }
    }
}

thread_local! {
    /// Tables built lately, by their DHT bytes: a camera writes the same ones into every
    /// picture, and the AC tables take a while to build.
    static TABLES: RefCell<Vec<(Vec<u8>, Rc<Huff>)>> = const { RefCell::new(Vec::new()) };
}

/// The table of one DHT entry (class and id byte, 16 counts, symbols), built or cached.
fn cached_table(entry: &[u8], is_dc: bool) -> Result<Rc<Huff>, Refusal> {
    // The key leaves the table id out (the same code under another id is the same table)
    // but keeps the class (a DC table is built without the AC tables).
    let same = |k: &[u8]| k[0] == is_dc as u8 && k[1..] == entry[1..];
    if let Some(t) = TABLES.with_borrow(|c| c.iter().find(|(k, _)| same(k)).map(|(_, t)| t.clone())) {
        return Ok(t);
    }
    let counts: [u8; 16] = entry[1..17].try_into().unwrap();
    let t = Rc::new(Huff::new(&counts, &entry[17..], is_dc)?);
    let mut key = entry.to_vec();
    key[0] = is_dc as u8;
    TABLES.with_borrow_mut(|c| {
        if c.len() >= 16 {
            c.remove(0);
        }
        c.push((key, t.clone()));
    });
    Ok(t)
}

/// The multi-symbol table of an AC code. A symbol counts as soon as its code is inside
/// the window: its extra bits are only skipped, so they may run past the window's end
/// (and then no further symbol can be read from it).
fn multi_table(maxcode: &[i32; 18], valoff: &[i32; 17], symbols: &[u8]) -> Vec<u16> {
    (0..1u32 << MULTI_BITS)
        .map(|p| {
            let (mut used, mut adv, mut eob) = (0u32, 0u32, false);
            'symbols: while used < MULTI_BITS {
                let rest = MULTI_BITS - used;
                let window = p & ((1 << rest) - 1);
                for len in 1..=rest {
                    let code = (window >> (rest - len)) as i32;
                    if code <= maxcode[len as usize] {
                        let Some(&sym) = symbols.get((valoff[len as usize] + code) as usize) else {
                            break 'symbols;
                        };
                        let (run, size) = ((sym >> 4) as u32, (sym & 15) as u32);
                        used += len + size;
                        if size == 0 && run != 15 {
                            eob = true;
                            break 'symbols;
                        }
                        adv += if size == 0 { 16 } else { run + 1 };
                        continue 'symbols;
                    }
                }
                break;
            }
            if used == 0 || adv > 64 {
                0
            } else {
                (used | adv << 5) as u16 | if eob { MULTI_EOB } else { 0 }
            }
        })
        .collect()
}

/// The skip entry of an AC code of `len` bits for symbol `sym`.
fn skip_entry(len: u32, sym: u8) -> u16 {
    let (run, size) = ((sym >> 4) as u32, (sym & 15) as u32);
    if size == 0 && run != 15 {
        // libjpeg ends the block on any zero-size symbol but ZRL.
        return EOB | len as u16;
    }
    let advance = if size == 0 { 16 } else { run + 1 };
    ((len + size) | (advance << 5)) as u16
}

/// An MSB-first bit reader over entropy-coded data, undoing 0xFF00 stuffing and stopping
/// at the first marker. Past the marker it reads zeros and `n` goes negative, which the
/// caller checks at the end of each restart interval.
///
/// It is `Copy`, and its out-of-line paths take and return it by value, so that once the
/// hot paths are inlined its fields live in registers rather than in memory.
#[derive(Clone, Copy)]
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u64,
    n: i32,
    at_marker: bool,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], pos: usize) -> Bits<'a> {
        Bits {
            data,
            pos,
            acc: 0,
            n: 0,
            at_marker: false,
        }
    }

    #[inline(always)]
    fn peek(&self, k: u32) -> u32 {
        (self.acc >> (64 - k)) as u32
    }

    #[inline(always)]
    fn drop_bits(&mut self, k: u32) {
        self.acc <<= k;
        self.n -= k as i32;
    }

    /// Make sure at least 32 bits are buffered (zeros past a marker).
    #[inline(always)]
    fn need(&mut self) {
        if self.n < 32 && !self.at_marker {
            self.refill();
        }
    }

    #[inline(always)]
    fn refill(&mut self) {
        // Fast path: eight bytes with no 0xFF among them go in whole.
        if self.pos + 8 <= self.data.len() {
            let w = u64::from_be_bytes(self.data[self.pos..self.pos + 8].try_into().unwrap());
            let x = !w;
            if x.wrapping_sub(0x0101_0101_0101_0101) & !x & 0x8080_8080_8080_8080 == 0 {
                // Whole bytes until 56 to 63 bits are held. The bits past them are the
                // next byte's own, added again later: OR-ing the same bits twice
                // changes nothing.
                let n = self.n as u32;
                self.acc |= w >> n;
                self.pos += ((63 - n) >> 3) as usize;
                self.n |= 56;
                return;
            }
        }
        *self = self.refill_bytes();
    }

    /// Byte by byte, near a 0xFF or the end of the data.
    #[inline(never)]
    fn refill_bytes(mut self) -> Self {
        while self.n <= 56 {
            let Some(&b) = self.data.get(self.pos) else {
                self.at_marker = true;
                break;
            };
            if b == 0xFF {
                if self.data.get(self.pos + 1) == Some(&0) {
                    self.pos += 2;
                } else {
                    self.at_marker = true;
                    break;
                }
            } else {
                self.pos += 1;
            }
            self.acc |= (b as u64) << (56 - self.n);
            self.n += 8;
        }
        self
    }

    /// At a restart marker: drop the padding bits and step over `RSTn` with the expected
    /// `n`. None when the stream is not exactly there.
    #[inline(never)]
    fn restart(mut self, expect: u8) -> Option<Self> {
        if self.n < 0 || self.n >= 8 {
            return None;
        }
        if !self.at_marker {
            // Read up to the marker: the bits left must all be padding, so none may come.
            self = self.refill_bytes();
            if !self.at_marker || self.n >= 8 {
                return None;
            }
        }
        let mut p = self.pos;
        while self.data.get(p) == Some(&0xFF) {
            p += 1;
        }
        if self.data.get(p) != Some(&(0xD0 + expect)) {
            return None;
        }
        Some(Bits::new(self.data, p + 1))
    }
}

#[derive(Clone, Copy, Default)]
struct Component {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
}

fn be16(d: &[u8], at: usize) -> Result<usize, Refusal> {
    match d.get(at..at + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]]) as usize),
        None => Err("truncated header"),
    }
}

/// `luma_eighth` of the whole file open on `fd`, read with `pread` (the descriptor's
/// position is left alone, and the buffer is not zeroed first).
pub fn luma_eighth_fd(fd: std::os::fd::BorrowedFd<'_>) -> Result<Luma, Refusal> {
    let len = rustix::fs::fstat(fd).map_err(|_| "cannot stat the file")?.st_size as usize;
    let mut data: Vec<u8> = Vec::with_capacity(len);
    while data.len() < len {
        let at = data.len() as u64;
        match rustix::io::pread(fd, rustix::buffer::spare_capacity(&mut data), at) {
            Ok(0) => break,
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => return Err("cannot read the file"),
        }
    }
    luma_eighth(&data)
}

/// Why a JPEG's compressed picture data is damaged, where this walk can tell: a code no
/// Huffman table holds, a restart marker out of its order, data that runs out before the
/// picture's last block, or bytes of data left over after it (a run of bytes zeroed or
/// flipped in the middle throws the codes out of step; libjpeg decodes such a file
/// without an error, grey or smeared past that point, and Pillow says nothing). None for
/// a whole stream, and for one this walk does not take (progressive, arithmetic, ...).
pub fn damage(data: &[u8]) -> Option<&'static str> {
    match luma_eighth(data) {
        Ok(l) if l.left_over > LEFT_OVER_SLACK => Some("bytes of data left over after the picture's last block"),
        Err("damaged data (bad DC code)" | "damaged data (bad AC code)") => Some("a code no Huffman table holds"),
        Err("damaged data (restart marker)") => Some("a restart marker out of its order"),
        Err("truncated data") => Some("its codes run out before the picture's last block"),
        _ => None,
    }
}

/// Bytes left over after the last block (`Luma::left_over`) that a damaged stream is told
/// by: encoders leave none, and a run of zeros or 0xFF that some writers pad the data
/// with before the end marker is not counted.
const LEFT_OVER_SLACK: usize = 16;

/// Decode the luma plane of a baseline JPEG at 1/8 scale, or say why not.
pub fn luma_eighth(data: &[u8]) -> Result<Luma, Refusal> {
    if data.len() < 4 || data[0] != 0xFF || data[1] != 0xD8 {
        return Err("not a JPEG");
    }
    let mut quant: [Option<u16>; 4] = [None; 4];
    let mut dc_tables: [Option<Rc<Huff>>; 4] = [None, None, None, None];
    let mut ac_tables: [Option<Rc<Huff>>; 4] = [None, None, None, None];
    let mut frame: Option<(usize, usize, Vec<Component>)> = None;
    let mut restart = 0usize;
    let (mut jfif, mut adobe_transform) = (false, None::<u8>);
    let mut pos = 2;
    loop {
        if data.get(pos) != Some(&0xFF) {
            return Err("no marker where one should be");
        }
        while data.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        let Some(&m) = data.get(pos) else {
            return Err("truncated header");
        };
        pos += 1;
        if m == 0x01 || (0xD0..=0xD7).contains(&m) {
            continue;
        }
        if m == 0xD8 || m == 0xD9 {
            return Err("no image data");
        }
        let len = be16(data, pos)?;
        if len < 2 || pos + len > data.len() {
            return Err("truncated header");
        }
        let seg = &data[pos + 2..pos + len];
        pos += len;
        match m {
            0xC0 | 0xC1 => {
                if seg.len() < 6 || seg[0] != 8 {
                    return Err("not 8-bit samples");
                }
                let (h, w, nc) = (be16(seg, 1)?, be16(seg, 3)?, seg[5] as usize);
                if w == 0 || h == 0 || !(nc == 1 || nc == 3) || seg.len() < 6 + 3 * nc {
                    return Err("unsupported frame (size, or not grey or three components)");
                }
                let comps: Vec<Component> = (0..nc)
                    .map(|i| {
                        let c = &seg[6 + 3 * i..9 + 3 * i];
                        Component {
                            id: c[0],
                            h: (c[1] >> 4) as usize,
                            v: (c[1] & 15) as usize,
                            tq: c[2] as usize,
                        }
                    })
                    .collect();
                if comps.iter().any(|c| !(1..=4).contains(&c.h) || !(1..=4).contains(&c.v)) {
                    return Err("bad sampling factors");
                }
                // libjpeg-turbo renames a repeated component id rather than refusing it,
                // which a scan's components are then matched against: left to it.
                if (1..nc).any(|i| comps[..i].iter().any(|c| c.id == comps[i].id)) {
                    return Err("repeated component id");
                }
                frame = Some((w, h, comps));
            }
            0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                return Err("not baseline Huffman coding (progressive, lossless or arithmetic)");
            }
            0xC4 => {
                let mut s = seg;
                while !s.is_empty() {
                    if s.len() < 17 {
                        return Err("bad Huffman table");
                    }
                    let (class, id) = (s[0] >> 4, (s[0] & 15) as usize);
                    let total: usize = s[1..17].iter().map(|&c| c as usize).sum();
                    if class > 1 || id > 3 || s.len() < 17 + total || total > 256 {
                        return Err("bad Huffman table");
                    }
                    let t = cached_table(&s[..17 + total], class == 0)?;
                    if class == 0 {
                        dc_tables[id] = Some(t);
                    } else {
                        ac_tables[id] = Some(t);
                    }
                    s = &s[17 + total..];
                }
            }
            0xDB => {
                let mut s = seg;
                while !s.is_empty() {
                    let (pq, id) = (s[0] >> 4, (s[0] & 15) as usize);
                    let size = if pq == 0 { 65 } else { 129 };
                    if pq > 1 || id > 3 || s.len() < size {
                        return Err("bad quantisation table");
                    }
                    // The DC step comes first in zigzag order.
                    quant[id] = Some(if pq == 0 {
                        s[1] as u16
                    } else {
                        u16::from_be_bytes([s[1], s[2]])
                    });
                    s = &s[size..];
                }
            }
            0xDD => restart = be16(seg, 0)?,
            0xE0 if seg.starts_with(b"JFIF\0") => jfif = true,
            0xEE if seg.len() >= 12 && seg.starts_with(b"Adobe") => adobe_transform = Some(seg[11]),
            0xDA => {
                let Some((w, h, comps)) = &frame else {
                    return Err("scan before frame");
                };
                if comps.len() == 3 {
                    // libjpeg's guess of the colour space: RGB-coded pictures are not luma.
                    let rgb = if jfif {
                        false
                    } else if let Some(t) = adobe_transform {
                        t == 0
                    } else {
                        comps[0].id == b'R' && comps[1].id == b'G' && comps[2].id == b'B'
                    };
                    if rgb {
                        return Err("RGB-coded JPEG");
                    }
                }
                let ns = *seg.first().ok_or("bad scan header")? as usize;
                if ns == 0 || ns > comps.len() || seg.len() < 1 + 2 * ns + 3 {
                    return Err("bad scan header");
                }
                let mut in_scan: Vec<(usize, usize, usize)> = Vec::with_capacity(ns);
                for i in 0..ns {
                    let (cid, tables) = (seg[1 + 2 * i], seg[2 + 2 * i]);
                    let ci = comps
                        .iter()
                        .position(|c| c.id == cid)
                        .ok_or("scan of an unknown component")?;
                    if in_scan.iter().any(|&(seen, _, _)| seen == ci) {
                        return Err("a component twice in one scan");
                    }
                    // Table numbers as written: libjpeg refuses one of 4 and over (as it
                    // refuses a quantisation table that is missing), never wraps it.
                    let (td, ta) = ((tables >> 4) as usize, (tables & 15) as usize);
                    if td > 3 || ta > 3 {
                        return Err("Huffman table number out of range");
                    }
                    if quant.get(comps[ci].tq).copied().flatten().is_none() {
                        return Err("no quantisation table for a component of the scan");
                    }
                    in_scan.push((ci, td, ta));
                }
                let (ss, se, a) = (seg[1 + 2 * ns], seg[2 + 2 * ns], seg[3 + 2 * ns]);
                if ss != 0 || se != 63 || a != 0 {
                    return Err("not a sequential scan");
                }
                if ns != comps.len() {
                    // Components in scans of their own: libjpeg reads every scan (and
                    // refuses a bad header in any of them), where this would stop at the
                    // luma's. Rare outside progressive files: left to libjpeg.
                    return Err("components in separate scans");
                }
                let hmax = comps.iter().map(|c| c.h).max().unwrap();
                let vmax = comps.iter().map(|c| c.v).max().unwrap();
                if comps[0].h != hmax || comps[0].v != vmax {
                    return Err("luma is not at the highest sampling");
                }
                let mut tables = Vec::with_capacity(ns);
                for &(ci, td, ta) in &in_scan {
                    let dc: &Huff = dc_tables[td].as_deref().ok_or("missing Huffman table")?;
                    let ac: &Huff = ac_tables[ta].as_deref().ok_or("missing Huffman table")?;
                    let (hb, vb) = if ns == 1 { (1, 1) } else { (comps[ci].h, comps[ci].v) };
                    let q = quant[comps[ci].tq].ok_or("no quantisation table")?; // checked above
                    tables.push((ci, hb, vb, dc, ac, q));
                }
                let geo = Geometry {
                    width: *w,
                    height: *h,
                    hmax,
                    vmax,
                    single: ns == 1,
                };
                return decode_scan(data, pos, &geo, &tables, restart);
            }
            _ => {}
        }
    }
}

/// Where the entropy-coded data that starts at `pos` ends: the next marker that is not a
/// restart marker.
fn skip_entropy(data: &[u8], mut pos: usize) -> usize {
    while pos + 1 < data.len() {
        if data[pos] == 0xFF && !matches!(data[pos + 1], 0x00 | 0xD0..=0xD7 | 0xFF) {
            return pos;
        }
        pos += 1;
    }
    data.len()
}

struct Geometry {
    width: usize,
    height: usize,
    hmax: usize,
    vmax: usize,
    /// A scan of one component: its blocks one by one, not in MCUs.
    single: bool,
}

/// (component index, blocks across and down in an MCU, DC table, AC table, DC
/// quantisation step) per scan component.
type ScanTable<'t> = (usize, usize, usize, &'t Huff, &'t Huff, u16);

fn decode_scan(data: &[u8], pos: usize, geo: &Geometry, tables: &[ScanTable], restart: usize) -> Result<Luma, Refusal> {
    // Luma is at full sampling, so its blocks match the 1/8 picture one to one.
    let (bw, bh) = (geo.width.div_ceil(8), geo.height.div_ceil(8));
    let (mcus_x, mcus_y) = if geo.single {
        (bw, bh)
    } else {
        (geo.width.div_ceil(8 * geo.hmax), geo.height.div_ceil(8 * geo.vmax))
    };
    let mut pixels = vec![0u8; bw * bh];
    // Each chroma component's blocks, as its MCUs lay them out (cut to the picture below).
    let colour = tables.len() == 3;
    let (cw, ch) = if colour {
        (mcus_x * geo.hmax, mcus_y * geo.vmax)
    } else {
        (0, 0)
    };
    let mut planes = [vec![0u8; cw * ch], vec![0u8; cw * ch]];
    let mut bits = Bits::new(data, pos);
    let mut pred = [0i32; 4];
    let total = mcus_x * mcus_y;
    let mut next_rst = 0u8;
    for m in 0..total {
        if restart > 0 && m > 0 && m % restart == 0 {
            bits = bits.restart(next_rst).ok_or("damaged data (restart marker)")?;
            next_rst = (next_rst + 1) & 7;
            pred = [0; 4];
        }
        let (mx, my) = (m % mcus_x, m / mcus_x);
        for (slot, &(ci, hb, vb, dc, ac, q)) in tables.iter().enumerate() {
            for by in 0..vb {
                for bx in 0..hb {
                    bits.need();
                    let (len, s) = dc.decode(&bits).ok_or("damaged data (bad DC code)")?;
                    bits.drop_bits(len);
                    let s = s as u32;
                    let diff = if s == 0 {
                        0
                    } else {
                        let r = bits.peek(s) as i32;
                        bits.drop_bits(s);
                        if r < 1 << (s - 1) {
                            r - (1 << s) + 1
                        } else {
                            r
                        }
                    };
                    pred[slot] = pred[slot].wrapping_add(diff);
                    let (x, y) = (mx * hb + bx, my * vb + by);
                    if ci == 0 {
                        if x < bw && y < bh {
                            pixels[y * bw + x] = idct_1x1(pred[slot] as i16, q);
                        }
                    } else if colour && x < cw && y < ch {
                        planes[ci - 1][y * cw + x] = idct_1x1(pred[slot] as i16, q);
                    }
                    skip_ac(&mut bits, ac)?;
                }
            }
        }
    }
    // libjpeg reads on to the marker that ends the scan; a file cut before it is
    // truncated to libjpeg (and Pillow), so it is to this decoder too.
    let end = skip_entropy(data, bits.pos);
    if bits.n < 0 || end >= data.len() {
        return Err("truncated data");
    }
    // The whole bytes held but not used, and those not yet read (a stuffed 0xFF 0x00 is
    // one byte of data; fill bytes of 0xFF before the marker are none).
    // (A run of zeros or fill bytes just before the marker: padding some writers add.)
    let tail = &data[bits.pos..end];
    let tail = &tail[..tail.len() - tail.iter().rev().take_while(|&&b| b == 0 || b == 0xFF).count()];
    let unread = (0..tail.len())
        .filter(|&i| match tail[i] {
            0xFF => tail.get(i + 1) == Some(&0),
            0 => i == 0 || tail[i - 1] != 0xFF,
            _ => true,
        })
        .count();
    let left_over = (bits.n as usize) / 8 + unread;
    let chroma = colour.then(|| {
        // Each luma block takes the value of the chroma block over it: a component
        // sampled h of hmax across has one block for every hmax / h luma blocks.
        let spread = |ci: usize, plane: &[u8]| -> Vec<u8> {
            let (h, v) = tables.iter().find(|t| t.0 == ci).map_or((1, 1), |t| (t.1, t.2));
            let mut out = Vec::with_capacity(bw * bh);
            for y in 0..bh {
                let row = &plane[(y * v / geo.vmax) * cw..];
                out.extend((0..bw).map(|x| row[x * h / geo.hmax]));
            }
            out
        };
        (spread(1, &planes[0]), spread(2, &planes[1]))
    });
    Ok(Luma {
        width: bw,
        height: bh,
        pixels,
        chroma,
        left_over,
    })
}

/// Walk the AC codes of one block without keeping them.
#[inline(always)]
fn skip_ac(bits: &mut Bits, ac: &Huff) -> Result<(), Refusal> {
    let multi: &[u16; 1 << MULTI_BITS] = ac.multi.as_slice().try_into().unwrap();
    let mut k = 1u32;
    while k < 64 {
        bits.need();
        let m = multi[bits.peek(MULTI_BITS) as usize];
        let adv = ((m >> 5) & 127) as u32;
        if m != 0 && k + adv + ((m & MULTI_EOB) != 0) as u32 <= 64 {
            bits.drop_bits((m & 31) as u32);
            if m & MULTI_EOB != 0 {
                break;
            }
            k += adv;
            continue;
        }
        let (used, eob, adv) = skip_one(bits.acc, ac)?;
        bits.drop_bits(used);
        k += adv;
        if eob {
            break;
        }
    }
    Ok(())
}

/// One AC symbol, read from the top of `acc`: (bits to drop, end of block, coefficients
/// to move on by).
#[inline(never)]
fn skip_one(acc: u64, ac: &Huff) -> Result<(u32, bool, u32), Refusal> {
    let e = ac.skip[(acc >> (64 - LUT_BITS)) as usize];
    if e != 0 {
        return Ok(((e & 31) as u32, e & EOB != 0, ((e >> 5) & 63) as u32));
    }
    let (len, sym) = ac.slow(acc).ok_or("damaged data (bad AC code)")?;
    let (run, size) = ((sym >> 4) as u32, (sym & 15) as u32);
    Ok((len + size, size == 0 && run != 15, if size == 0 { 16 } else { run + 1 }))
}

/// libjpeg's 1x1 inverse DCT: the dequantised DC, descaled by 3 with rounding, then its
/// range limit (which wraps far out-of-range values the same way libjpeg's table does).
#[inline(always)]
fn idct_1x1(coef: i16, q: u16) -> u8 {
    let v = (coef as i32) * (q as i32);
    let x = (v + 4) >> 3;
    let m = x & 1023;
    match m {
        0..=127 => (m + 128) as u8,
        128..=511 => 255,
        512..=895 => 0,
        _ => (m - 896) as u8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn refuses_what_it_is_not() {
        assert_eq!(luma_eighth(b"").unwrap_err(), "not a JPEG");
        assert_eq!(luma_eighth(b"\x89PNG\r\n\x1a\n....").unwrap_err(), "not a JPEG");
        assert!(luma_eighth(b"\xFF\xD8\xFF\xD9").is_err());
        assert!(luma_eighth(b"\xFF\xD8\xFF\xE0\x00").is_err());
    }

    #[test]
    fn over_subscribed_tables_are_refused_before_they_index_the_lookup() {
        // Seven codes of length 2 (only three fit): the fifth's lookup span once ran past
        // the table's end, a panic, on a JPEG whose DHT counts were tampered with.
        for is_dc in [true, false] {
            let mut counts = [0u8; 16];
            counts[1] = 7;
            assert_eq!(
                Huff::new(&counts, &[0; 7], is_dc).err(),
                Some("a Huffman table is over-subscribed")
            );
        }
        // The same counts, one code short of over-subscription, build.
        let mut counts = [0u8; 16];
        counts[1] = 3;
        assert!(Huff::new(&counts, &[0; 3], false).is_ok());
    }

    #[test]
    fn range_limit_matches_libjpeg_table() {
        // In range: DC/8 + 128, rounded half up.
        assert_eq!(idct_1x1(0, 1), 128);
        assert_eq!(idct_1x1(-1024, 1), 0);
        assert_eq!(idct_1x1(1016, 1), 255);
        assert_eq!(idct_1x1(4, 1), 129);
        // Out of range: saturates near the range, wraps far from it, as the table does.
        assert_eq!(idct_1x1(200, 16), 255);
        assert_eq!(idct_1x1(-200, 16), 0);
        assert_eq!(idct_1x1(i16::MAX, 255), idct_wrap((i16::MAX as i32 * 255 + 4) >> 3));
    }

    fn idct_wrap(x: i32) -> u8 {
        let m = x & 1023;
        if m < 128 {
            (m + 128) as u8
        } else if m < 512 {
            255
        } else if m < 896 {
            0
        } else {
            (m - 896) as u8
        }
    }

    #[test]
    fn bits_unstuff_and_stop_at_markers() {
        let data = [0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD9];
        let mut b = Bits::new(&data, 0);
        b.need();
        assert_eq!(b.peek(24), 0x12FF34);
        assert!(b.at_marker);
        assert_eq!(b.n, 24);
    }
}
