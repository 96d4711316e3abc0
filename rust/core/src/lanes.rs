//! BLAKE3 of many small inputs at once, a block of a different input in each SIMD lane.
//!
//! BLAKE3 is fast on a long input because it compresses 16 of its 1 KiB chunks side by
//! side (AVX-512). A file of a few KiB has too few chunks to fill the lanes, and its last
//! chunk and its parent nodes go one at a time: hashed one by one, such files come at
//! well under half the speed of one long stream. Here every chunk of a batch of inputs is
//! a job, and so is every parent node of a tree level; each lane takes the next job as
//! soon as its own ends, so the lanes stay full whatever the lengths. Jobs run level by
//! level (all chunks, then the first parents, and so on up), because a parent needs the
//! chaining values below it.
//!
//! The digests equal `blake3::hash`'s: the tests compare them over every length class.
//! Each lane's 64-byte block is loaded whole and the 16 blocks are transposed in
//! registers into the message words. Only AVX-512 is used. Elsewhere each input is hashed
//! by `blake3::hash`, whose own SIMD then works within the input: an 8-lane AVX2 version
//! of this (with gathers) measured 1.0 to 1.2 times the speed of `blake3::hash` on 5 KiB
//! inputs with blake3's AVX2 code, too little to keep.

// Elsewhere only the one-by-one path is used.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_macros))]

use crate::types::Digest;

const IV: [u32; 8] = [
    0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
];
const CHUNK_START: u32 = 1;
const CHUNK_END: u32 = 2;
const PARENT: u32 = 4;
const ROOT: u32 = 8;
const CHUNK_LEN: usize = 1024;
const BLOCK_LEN: usize = 64;

/// Inputs up to this long are worth a lane: a longer one has enough chunks of its own
/// to fill the lanes in `blake3::hash`.
pub const LANES_MAX: usize = 64 * 1024;

/// The message word order of each of the seven rounds.
const SCHED: [[usize; 16]; 7] = {
    const PERM: [usize; 16] = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
    let mut s = [[0usize; 16]; 7];
    let mut cur = [0usize, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
    let mut r = 0;
    while r < 7 {
        s[r] = cur;
        let mut next = [0usize; 16];
        let mut i = 0;
        while i < 16 {
            next[i] = cur[PERM[i]];
            i += 1;
        }
        cur = next;
        r += 1;
    }
    s
};

/// The inputs of one compression in each of `L` lanes, word-major (`cv[w][lane]`);
/// `cv` holds the new chaining values after it. `offs` are byte offsets of each lane's
/// 64-byte block from the buffer's start.
struct Lanes<const L: usize> {
    offs: [u32; L],
    cv: [[u32; L]; 8],
    ctr_lo: [u32; L],
    ctr_hi: [u32; L],
    blen: [u32; L],
    flags: [u32; L],
}

/// One round of G over the state `$v` with message `$m` in the order of round `$r`.
macro_rules! round {
    ($v:ident, $m:ident, $r:literal) => {
        g!($v, 0, 4, 8, 12, $m[SCHED[$r][0]], $m[SCHED[$r][1]]);
        g!($v, 1, 5, 9, 13, $m[SCHED[$r][2]], $m[SCHED[$r][3]]);
        g!($v, 2, 6, 10, 14, $m[SCHED[$r][4]], $m[SCHED[$r][5]]);
        g!($v, 3, 7, 11, 15, $m[SCHED[$r][6]], $m[SCHED[$r][7]]);
        g!($v, 0, 5, 10, 15, $m[SCHED[$r][8]], $m[SCHED[$r][9]]);
        g!($v, 1, 6, 11, 12, $m[SCHED[$r][10]], $m[SCHED[$r][11]]);
        g!($v, 2, 7, 8, 13, $m[SCHED[$r][12]], $m[SCHED[$r][13]]);
        g!($v, 3, 4, 9, 14, $m[SCHED[$r][14]], $m[SCHED[$r][15]]);
    };
}

macro_rules! g {
    ($v:ident, $a:literal, $b:literal, $c:literal, $d:literal, $x:expr, $y:expr) => {
        $v[$a] = add(add($v[$a], $v[$b]), $x);
        $v[$d] = rot16(xor($v[$d], $v[$a]));
        $v[$c] = add($v[$c], $v[$d]);
        $v[$b] = rot12(xor($v[$b], $v[$c]));
        $v[$a] = add(add($v[$a], $v[$b]), $y);
        $v[$d] = rot8(xor($v[$d], $v[$a]));
        $v[$c] = add($v[$c], $v[$d]);
        $v[$b] = rot7(xor($v[$b], $v[$c]));
    };
}

/// The compression of the message words `$m` (word-major, a lane each), written over
/// the vector helpers (`load`, `store`, `splat`, `add`, `xor`, `rot*`) of the module it is
/// expanded in.
macro_rules! compress_lanes {
    ($s:ident, $m:ident) => {{
        let m = $m;
        let mut v = [splat(0); 16];
        let mut w = 0;
        while w < 8 {
            v[w] = load(&$s.cv[w]);
            w += 1;
        }
        v[8] = splat(IV[0]);
        v[9] = splat(IV[1]);
        v[10] = splat(IV[2]);
        v[11] = splat(IV[3]);
        v[12] = load(&$s.ctr_lo);
        v[13] = load(&$s.ctr_hi);
        v[14] = load(&$s.blen);
        v[15] = load(&$s.flags);
        round!(v, m, 0);
        round!(v, m, 1);
        round!(v, m, 2);
        round!(v, m, 3);
        round!(v, m, 4);
        round!(v, m, 5);
        round!(v, m, 6);
        let mut w = 0;
        while w < 8 {
            store(&mut $s.cv[w], xor(v[w], v[w + 8]));
            w += 1;
        }
    }};
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Lanes, CHUNK_END, CHUNK_START, IV, SCHED};
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn load(p: &[u32; 16]) -> __m512i {
        // SAFETY: 64 readable bytes; the load has no alignment requirement.
        unsafe { _mm512_loadu_si512(p.as_ptr().cast()) }
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn store(p: &mut [u32; 16], x: __m512i) {
        // SAFETY: 64 writable bytes; the store has no alignment requirement.
        unsafe { _mm512_storeu_si512(p.as_mut_ptr().cast(), x) }
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn splat(x: u32) -> __m512i {
        _mm512_set1_epi32(x as i32)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn add(a: __m512i, b: __m512i) -> __m512i {
        _mm512_add_epi32(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn xor(a: __m512i, b: __m512i) -> __m512i {
        _mm512_xor_si512(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn rot16(x: __m512i) -> __m512i {
        _mm512_ror_epi32::<16>(x)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn rot12(x: __m512i) -> __m512i {
        _mm512_ror_epi32::<12>(x)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn rot8(x: __m512i) -> __m512i {
        _mm512_ror_epi32::<8>(x)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn rot7(x: __m512i) -> __m512i {
        _mm512_ror_epi32::<7>(x)
    }

    /// # Safety
    /// AVX-512F is available, and each lane's offset names 64 readable bytes from `base`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn compress(base: *const u8, s: &mut Lanes<16>) {
        // SAFETY: the caller's: 64 readable bytes at each lane's offset.
        let m = transpose(&unsafe { blocks(base, &s.offs, 0) });
        compress_lanes!(s, m)
    }

    /// The 64-byte block `step` bytes past each lane's offset from `base`, a row each.
    ///
    /// # Safety
    /// 64 readable bytes at `base + offs[l] + step` for every lane `l`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn blocks(base: *const u8, offs: &[u32; 16], step: usize) -> [__m512i; 16] {
        let mut rows = [_mm512_setzero_si512(); 16];
        let mut l = 0;
        while l < 16 {
            // SAFETY: the caller's.
            rows[l] = unsafe { _mm512_loadu_si512(base.add(offs[l] as usize + step).cast()) };
            l += 1;
        }
        rows
    }

    /// The 16 words of each of 16 rows (a lane's block each) turned word-major: `out[w]`
    /// holds word `w` of every row, row `l` in element `l`. In-register shuffles: a gather
    /// per word would do the same, but gathers are slow on CPUs with the microcode fix for
    /// Gather Data Sampling (Intel's AVX-512 parts from Skylake to Ice Lake).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn transpose(rows: &[__m512i; 16]) -> [__m512i; 16] {
        // Within each 128-bit quarter: words 4q + k of rows 4g..4g + 3, for each k.
        let mut u = [[_mm512_setzero_si512(); 4]; 4];
        let mut g = 0;
        while g < 4 {
            let (a, b, c, d) = (rows[4 * g], rows[4 * g + 1], rows[4 * g + 2], rows[4 * g + 3]);
            let (ab_lo, ab_hi) = (_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
            let (cd_lo, cd_hi) = (_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
            u[g] = [
                _mm512_unpacklo_epi64(ab_lo, cd_lo),
                _mm512_unpackhi_epi64(ab_lo, cd_lo),
                _mm512_unpacklo_epi64(ab_hi, cd_hi),
                _mm512_unpackhi_epi64(ab_hi, cd_hi),
            ];
            g += 1;
        }
        // Then the quarters: quarter q of the four groups' vectors makes word 4q + k.
        let mut out = [_mm512_setzero_si512(); 16];
        let mut k = 0;
        while k < 4 {
            let (a, b, c, d) = (u[0][k], u[1][k], u[2][k], u[3][k]);
            let ab_lo = _mm512_shuffle_i32x4::<0x44>(a, b);
            let ab_hi = _mm512_shuffle_i32x4::<0xEE>(a, b);
            let cd_lo = _mm512_shuffle_i32x4::<0x44>(c, d);
            let cd_hi = _mm512_shuffle_i32x4::<0xEE>(c, d);
            out[k] = _mm512_shuffle_i32x4::<0x88>(ab_lo, cd_lo);
            out[4 + k] = _mm512_shuffle_i32x4::<0xDD>(ab_lo, cd_lo);
            out[8 + k] = _mm512_shuffle_i32x4::<0x88>(ab_hi, cd_hi);
            out[12 + k] = _mm512_shuffle_i32x4::<0xDD>(ab_hi, cd_hi);
            k += 1;
        }
        out
    }

    /// A whole 1 KiB chunk in every lane, from its offset: sixteen compressions.
    ///
    /// # Safety
    /// As `compress`, for 1024 readable bytes at each lane's offset.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn chunks(base: *const u8, s: &mut Lanes<16>) {
        s.blen = [64; 16];
        let mut b = 0;
        while b < 16 {
            s.flags = [if b == 0 {
                CHUNK_START
            } else if b == 15 {
                CHUNK_END
            } else {
                0
            }; 16];
            // SAFETY: the caller's: 1024 readable bytes at each lane's offset.
            let m = transpose(&unsafe { blocks(base, &s.offs, 64 * b) });
            compress_lanes!(s, m);
            b += 1;
        }
    }
}

/// One compression job: a chunk of an input, or a parent node (two chaining values).
#[derive(Clone, Copy)]
struct Job {
    /// Byte offset of its bytes in the buffer.
    src: usize,
    /// Its length: 1 to 1024 for a chunk, 64 for a parent.
    len: usize,
    /// The chunk's index in its input (0 for a parent).
    counter: u64,
    /// `PARENT` or 0, and `ROOT` for the compression whose output is the digest.
    flags: u32,
    /// Where its chaining value goes in the output.
    dst: usize,
}

impl Job {
    fn blocks(&self) -> usize {
        self.len.div_ceil(BLOCK_LEN).max(1)
    }
}

/// Run `jobs` over `buf` with `L` lanes of `compress`, writing each job's chaining value
/// (or, for a `ROOT` job, the digest's words) to `out[job.dst]`. A lane's partial block
/// is copied, zero-padded, into scratch room at the buffer's end, as BLAKE3 pads it.
fn run<const L: usize>(
    buf: &mut Vec<u8>,
    jobs: &[Job],
    out: &mut [[u32; 8]],
    compress: unsafe fn(*const u8, &mut Lanes<L>),
) {
    const IDLE: usize = usize::MAX;
    let scratch = buf.len();
    buf.resize(scratch + L * BLOCK_LEN, 0);
    assert!(
        buf.len() < i32::MAX as usize,
        "lanes: buffer past the reach of 32-bit offsets"
    );
    let mut s = Lanes::<L> {
        offs: [scratch as u32; L],
        cv: [[0; L]; 8],
        ctr_lo: [0; L],
        ctr_hi: [0; L],
        blen: [0; L],
        flags: [0; L],
    };
    // Each lane's job (`IDLE` once none is left) and its blocks still to compress.
    let mut job_of = [IDLE; L];
    let mut left = [0usize; L];
    // Offset, length and flags of block `b` of `job` in lane `l`: the first and the last
    // block of a job (a middle one is the block before it plus 64 bytes, flags clear).
    let place = |s: &mut Lanes<L>, buf: &mut Vec<u8>, l: usize, job: &Job, b: usize| {
        let last = b + 1 == job.blocks();
        let from = job.src + b * BLOCK_LEN;
        let n = (job.len - b * BLOCK_LEN).min(BLOCK_LEN);
        if n < BLOCK_LEN {
            let pad = scratch + l * BLOCK_LEN;
            buf.copy_within(from..from + n, pad);
            buf[pad + n..pad + BLOCK_LEN].fill(0);
            s.offs[l] = pad as u32;
        } else {
            s.offs[l] = from as u32;
        }
        s.blen[l] = n as u32;
        let mut f = job.flags & PARENT;
        if f == 0 {
            f |= if b == 0 { CHUNK_START } else { 0 } | if last { CHUNK_END } else { 0 };
        }
        if last {
            f |= job.flags & ROOT;
        }
        s.flags[l] = f;
    };
    let mut next = 0usize;
    let mut busy = 0usize;
    let mut start = |s: &mut Lanes<L>, buf: &mut Vec<u8>, l: usize, job_of: &mut [usize; L], left: &mut [usize; L]| {
        if next == jobs.len() {
            job_of[l] = IDLE;
            s.offs[l] = scratch as u32;
            return false;
        }
        let job = &jobs[next];
        for (w, iv) in IV.iter().enumerate() {
            s.cv[w][l] = *iv;
        }
        s.ctr_lo[l] = job.counter as u32;
        s.ctr_hi[l] = (job.counter >> 32) as u32;
        job_of[l] = next;
        left[l] = job.blocks();
        place(s, buf, l, job, 0);
        next += 1;
        true
    };
    for l in 0..L {
        busy += start(&mut s, buf, l, &mut job_of, &mut left) as usize;
    }
    while busy > 0 {
        // SAFETY: every offset names a whole 64-byte block inside `buf` (a job's block,
        // or scratch), and `compress` was chosen for a CPU that has its instructions.
        unsafe { compress(buf.as_ptr(), &mut s) };
        for l in 0..L {
            let j = job_of[l];
            if j == IDLE {
                continue;
            }
            left[l] -= 1;
            if left[l] > 1 {
                s.offs[l] += BLOCK_LEN as u32;
                s.flags[l] = 0;
            } else if left[l] == 1 {
                let job = &jobs[j];
                place(&mut s, buf, l, job, job.blocks() - 1);
            } else {
                let dst = &mut out[jobs[j].dst];
                for (w, d) in dst.iter_mut().enumerate() {
                    *d = s.cv[w][l];
                }
                if !start(&mut s, buf, l, &mut job_of, &mut left) {
                    busy -= 1;
                }
            }
        }
    }
    buf.truncate(scratch);
}

/// Run the jobs of whole chunks that are not an input's last (`jobs`, all 1 KiB, none a
/// root) `L` at a time with `chunks`, the lanes in step: no lane ends a job before another.
fn run_full<const L: usize>(
    buf: &[u8],
    jobs: &[Job],
    out: &mut [[u32; 8]],
    chunks: unsafe fn(*const u8, &mut Lanes<L>),
) {
    assert!(
        buf.len() < i32::MAX as usize,
        "lanes: buffer past the reach of 32-bit offsets"
    );
    let mut s = Lanes::<L> {
        offs: [0; L],
        cv: [[0; L]; 8],
        ctr_lo: [0; L],
        ctr_hi: [0; L],
        blen: [0; L],
        flags: [0; L],
    };
    for group in jobs.chunks(L) {
        for l in 0..L {
            // A last group short of lanes repeats its last job in the rest.
            let job = &group[l.min(group.len() - 1)];
            debug_assert!(job.len == CHUNK_LEN && job.flags == 0 && job.src + CHUNK_LEN <= buf.len());
            s.offs[l] = job.src as u32;
            s.ctr_lo[l] = job.counter as u32;
            s.ctr_hi[l] = (job.counter >> 32) as u32;
            for (w, iv) in IV.iter().enumerate() {
                s.cv[w][l] = *iv;
            }
        }
        // SAFETY: each lane's offset starts 1 KiB inside `buf`, and `chunks` was chosen
        // for a CPU that has its instructions.
        unsafe { chunks(buf.as_ptr(), &mut s) };
        for (l, job) in group.iter().enumerate() {
            for (w, d) in out[job.dst].iter_mut().enumerate() {
                *d = s.cv[w][l];
            }
        }
    }
}

/// The lane kernels: one compression in every lane (`run`), and whole chunks with the
/// lanes in step (`run_full`).
#[derive(Clone, Copy)]
struct Kernels {
    compress: unsafe fn(*const u8, &mut Lanes<16>),
    chunks: unsafe fn(*const u8, &mut Lanes<16>),
}

/// The kernels this CPU runs, if any.
fn kernels() -> Option<Kernels> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            return Some(Kernels {
                compress: avx512::compress,
                chunks: avx512::chunks,
            });
        }
    }
    None
}

/// The BLAKE3 digests of `buf[start..start + len]` for each `(start, len)` of `inputs`,
/// in order. `buf` may be grown and is given back with its length as it was (its
/// capacity may have grown). Inputs of any length are hashed right, but the buffer must
/// stay under 2 GiB (the lanes address it with 32-bit offsets), and inputs over
/// `LANES_MAX` gain nothing here over `blake3::hash`.
///
/// # Panics
/// If an input reaches past the end of `buf`, or `buf` is 2 GiB or more.
pub fn hash_inputs(buf: &mut Vec<u8>, inputs: &[(usize, usize)]) -> Vec<Digest> {
    hash_with(kernels(), buf, inputs)
}

fn hash_with(k: Option<Kernels>, buf: &mut Vec<u8>, inputs: &[(usize, usize)]) -> Vec<Digest> {
    let one_by_one = |buf: &[u8]| {
        inputs
            .iter()
            .map(|&(s, n)| Digest(*blake3::hash(&buf[s..s + n]).as_bytes()))
            .collect()
    };
    // Checked here, once: the kernels read where the offsets say without bounds checks.
    assert!(
        inputs
            .iter()
            .all(|&(s, n)| s.checked_add(n).is_some_and(|e| e <= buf.len())),
        "lanes: an input reaches past the buffer"
    );
    let k = match k {
        Some(k) if inputs.len() >= 2 => k,
        _ => return one_by_one(buf),
    };
    let end = buf.len();
    // The chunks of every input, and where each input's chaining values start: the
    // whole chunks before each input's last, which run in step, and the last chunks.
    let mut full = Vec::new();
    let mut jobs = Vec::new();
    let mut level: Vec<(usize, usize)> = Vec::with_capacity(inputs.len()); // (first cv, count)
    let mut n_cvs = 0;
    for &(s, n) in inputs {
        let chunks = n.div_ceil(CHUNK_LEN).max(1);
        level.push((n_cvs, chunks));
        for c in 0..chunks {
            let job = Job {
                src: s + c * CHUNK_LEN,
                len: (n - c * CHUNK_LEN).min(CHUNK_LEN),
                counter: c as u64,
                flags: if chunks == 1 { ROOT } else { 0 },
                dst: n_cvs,
            };
            n_cvs += 1;
            if c + 1 < chunks {
                full.push(job);
            } else {
                jobs.push(job);
            }
        }
    }
    // Room for every level's parent blocks and the lanes' scratch, taken once: growing
    // the buffer later would copy every input.
    buf.reserve(n_cvs * BLOCK_LEN + 16 * BLOCK_LEN);
    let mut cvs = vec![[0u32; 8]; n_cvs];
    let go = |buf: &mut Vec<u8>, jobs: &[Job], out: &mut [[u32; 8]]| run::<16>(buf, jobs, out, k.compress);
    run_full::<16>(buf, &full, &mut cvs, k.chunks);
    go(buf, &jobs, &mut cvs);
    // Up the tree a level at a time: adjacent pairs become parents, an odd last node
    // rises as it is (BLAKE3's tree is left-full, which this pairing builds).
    let mut next_cvs = Vec::new();
    while level.iter().any(|&(_, count)| count > 1) {
        jobs.clear();
        next_cvs.clear();
        buf.truncate(end);
        for node in level.iter_mut() {
            let (first, count) = *node;
            let new_first = next_cvs.len();
            let mut i = 0;
            while i < count {
                if i + 1 < count {
                    let src = buf.len();
                    let mut block = [0u8; BLOCK_LEN];
                    for (b, w) in block
                        .chunks_exact_mut(4)
                        .zip(cvs[first + i].iter().chain(&cvs[first + i + 1]))
                    {
                        b.copy_from_slice(&w.to_le_bytes());
                    }
                    buf.extend_from_slice(&block);
                    jobs.push(Job {
                        src,
                        len: BLOCK_LEN,
                        counter: 0,
                        flags: PARENT | if count == 2 { ROOT } else { 0 },
                        dst: next_cvs.len(),
                    });
                    next_cvs.push([0u32; 8]);
                } else {
                    next_cvs.push(cvs[first + i]);
                }
                i += 2;
            }
            *node = (new_first, next_cvs.len() - new_first);
        }
        go(buf, &jobs, &mut next_cvs);
        std::mem::swap(&mut cvs, &mut next_cvs);
    }
    buf.truncate(end);
    level
        .iter()
        .zip(inputs)
        .map(|(&(first, _), &(_, n))| {
            if n == 0 {
                return Digest(*blake3::hash(b"").as_bytes());
            }
            let mut d = [0u8; 32];
            for (w, word) in cvs[first].iter().enumerate() {
                d[4 * w..4 * w + 4].copy_from_slice(&word.to_le_bytes());
            }
            Digest(d)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Lengths around every boundary: blocks, chunks, powers of two of chunks.
    fn lengths() -> Vec<usize> {
        let mut v = vec![0, 1, 2, 63, 64, 65, 127, 128, 129, 1000];
        for c in [1usize, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65] {
            for d in [-65i64, -64, -1, 0, 1, 63, 64, 65] {
                let n = (c * CHUNK_LEN) as i64 + d;
                if n >= 0 {
                    v.push(n as usize);
                }
            }
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    fn check(k: Option<Kernels>, lens: &[usize]) {
        let mut buf = Vec::new();
        let mut inputs = Vec::new();
        for (i, &n) in lens.iter().enumerate() {
            inputs.push((buf.len(), n));
            buf.extend(data(n, i as u64 + 7));
        }
        let before = buf.clone();
        let got = hash_with(k, &mut buf, &inputs);
        assert_eq!(buf, before, "the buffer comes back as it was");
        for (&(s, n), d) in inputs.iter().zip(&got) {
            assert_eq!(
                *d,
                Digest(*blake3::hash(&buf[s..s + n]).as_bytes()),
                "lanes: {}, length {n}",
                k.is_some()
            );
        }
    }

    /// Both ways: one input at a time, and the lanes where this CPU has them.
    fn ways() -> Vec<Option<Kernels>> {
        let mut ks = vec![None];
        ks.extend(kernels().map(Some));
        ks
    }

    #[test]
    fn every_length_class_hashes_as_blake3_does() {
        for k in ways() {
            // All at once (lanes mixing lengths), one at a time, and in reverse order.
            let lens = lengths();
            check(k, &lens);
            let rev: Vec<usize> = lens.iter().rev().copied().collect();
            check(k, &rev);
            for n in [0usize, 1, 64, 1024, 1025, 5000] {
                check(k, &[n, n]);
            }
        }
    }

    #[test]
    fn inputs_with_gaps_between_them_and_long_ones_hash_as_blake3_does() {
        // Unaligned starts (bytes of no input between inputs), every chunk count up to a
        // tree of depth 9, and inputs far past `LANES_MAX` mixed with small ones.
        for k in ways() {
            let mut buf = data(7, 1);
            let mut inputs = Vec::new();
            let mut lens: Vec<usize> = (0..300).map(|c| c * CHUNK_LEN + [0, 1, 1023][c % 3]).collect();
            lens.extend([3 * 1024 * 1024 + 5, 2, 1 << 20, 65]);
            for (i, &n) in lens.iter().enumerate() {
                buf.extend(data(i % 5 + 1, i as u64 + 100));
                inputs.push((buf.len(), n));
                buf.extend(data(n, i as u64 + 9));
            }
            let got = hash_with(k, &mut buf, &inputs);
            for (&(s, n), d) in inputs.iter().zip(&got) {
                assert_eq!(
                    *d,
                    Digest(*blake3::hash(&buf[s..s + n]).as_bytes()),
                    "lanes: {}, length {n}",
                    k.is_some()
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "past the buffer")]
    fn an_input_past_the_buffer_is_refused() {
        let mut buf = vec![0u8; 4096];
        hash_inputs(&mut buf, &[(0, 1024), (2048, 4096)]);
    }

    #[test]
    fn many_random_lengths_in_one_batch_hash_as_blake3_does() {
        for k in ways() {
            let mut x = 99u64;
            let lens: Vec<usize> = (0..700)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % (20 * 1024)) as usize
                })
                .collect();
            check(k, &lens);
        }
    }
}
