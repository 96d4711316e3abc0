//! Perceptual hashes of images: pHash (the low frequencies of a DCT) and dHash (the sign of
//! horizontal gradients), 64 bits each, and a finer 256-bit pHash that checks the pairs the
//! 64-bit one finds, computed from grey pixels.
//!
//! The caller decodes as cheaply as it can (a JPEG at a reduced DCT scale, EXIF orientation
//! applied) and hands over grey pixels of any size; both hashes start with an area-average
//! resize, so the result hardly depends on the size the caller picked.

use crate::{Error, Result};

/// A 64-bit perceptual hash; similar pictures have hashes a small Hamming distance apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PerceptualHash(pub u64);

impl PerceptualHash {
    /// Number of differing bits.
    pub fn distance(self, other: PerceptualHash) -> u32 {
        hamming(self.0, other.0)
    }
}

/// Number of differing bits between two 64-bit hashes.
#[inline]
pub fn hamming(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

/// A grey image: `w * h` bytes, row by row.
pub struct Gray<'a> {
    pub w: usize,
    pub h: usize,
    pub px: &'a [u8],
}

impl<'a> Gray<'a> {
    pub fn new(w: usize, h: usize, px: &'a [u8]) -> Result<Self> {
        if w == 0 || h == 0 || px.len() != w * h {
            return Err(Error::InvalidInput(format!(
                "grey image of {w}x{h} needs {} bytes, got {}",
                w * h,
                px.len()
            )));
        }
        Ok(Gray { w, h, px })
    }
}

/// For each output cell, the source indices it covers and their normalised weights.
fn area_weights(src: usize, dst: usize) -> Vec<Vec<(usize, f32)>> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|o| {
            let (start, end) = (o as f64 * scale, (o + 1) as f64 * scale);
            let mut cell = Vec::new();
            let mut i = start.floor() as usize;
            while (i as f64) < end && i < src {
                let covered = end.min(i as f64 + 1.0) - start.max(i as f64);
                if covered > 0.0 {
                    cell.push((i, covered as f32));
                }
                i += 1;
            }
            let sum: f32 = cell.iter().map(|c| c.1).sum();
            for c in &mut cell {
                c.1 /= sum;
            }
            cell
        })
        .collect()
}

/// Area-average resize to `ow x oh`, as floats (row by row).
pub fn resize_area(g: &Gray<'_>, ow: usize, oh: usize) -> Vec<f32> {
    let (wx, wy) = (area_weights(g.w, ow), area_weights(g.h, oh));
    let mut rows = vec![0f32; g.h * ow];
    for y in 0..g.h {
        let src = &g.px[y * g.w..(y + 1) * g.w];
        for (x, cell) in wx.iter().enumerate() {
            rows[y * ow + x] = cell.iter().map(|&(i, k)| src[i] as f32 * k).sum();
        }
    }
    let mut out = vec![0f32; ow * oh];
    for (y, cell) in wy.iter().enumerate() {
        for x in 0..ow {
            out[y * ow + x] = cell.iter().map(|&(i, k)| rows[i * ow + x] * k).sum();
        }
    }
    out
}

const DCT_N: usize = 32;
const KEEP: usize = 8;

/// pHash: a 32x32 area-average, its 2-D DCT-II, and the 8x8 lowest frequencies compared
/// with their median (bit set = above the median; first coefficient is the top bit).
pub fn phash(g: &Gray<'_>) -> PerceptualHash {
    let coef = low_frequencies(g, DCT_N, KEEP);
    PerceptualHash(bits(above_median(&coef)))
}

/// Size of the finer hash in bytes (256 bits).
pub const FINE_BYTES: usize = 32;

/// The finer pHash that checks a pair the 64-bit one found: a 64x64 area-average, its
/// 2-D DCT-II, and the 16x16 lowest frequencies against their median, 256 bits, first
/// coefficient the top bit of the first byte. Pages of one layout (a scanned book,
/// screenshots of one app) differ in frequencies the 64-bit pHash leaves out: such pairs
/// lie about 8 bits apart there and 70 of 256 here, where a recompressed, resized or
/// brightened copy stays within about 30.
pub fn fine_hash(g: &Gray<'_>) -> [u8; FINE_BYTES] {
    let coef = low_frequencies(g, 2 * DCT_N, 2 * KEEP);
    let mut out = [0u8; FINE_BYTES];
    for (i, b) in above_median(&coef).enumerate() {
        out[i / 8] |= (b as u8) << (7 - i % 8);
    }
    out
}

/// Number of differing bits between two finer hashes.
pub fn fine_distance(a: &[u8], b: &[u8]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// The `keep` x `keep` lowest frequencies of the 2-D DCT-II of an `n` x `n` area-average
/// of `g`, row by row.
fn low_frequencies(g: &Gray<'_>, n: usize, keep: usize) -> Vec<f32> {
    let small = resize_area(g, n, n);
    let cos: Vec<f32> = (0..keep)
        .flat_map(|u| {
            (0..n).map(move |x| (std::f32::consts::PI * (2 * x + 1) as f32 * u as f32 / (2 * n) as f32).cos())
        })
        .collect();
    // Rows first (only the lowest frequencies are needed), then columns.
    let mut tmp = vec![0f32; n * keep];
    for y in 0..n {
        for u in 0..keep {
            tmp[y * keep + u] = (0..n).map(|x| small[y * n + x] * cos[u * n + x]).sum();
        }
    }
    let mut coef = vec![0f32; keep * keep];
    for v in 0..keep {
        for u in 0..keep {
            coef[v * keep + u] = (0..n).map(|y| tmp[y * keep + u] * cos[v * n + y]).sum();
        }
    }
    coef
}

/// Whether each coefficient lies above the median of them all (an even count).
fn above_median(coef: &[f32]) -> impl Iterator<Item = bool> + '_ {
    let mut sorted = coef.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let half = sorted.len() / 2;
    let median = (sorted[half - 1] + sorted[half]) / 2.0;
    coef.iter().map(move |&c| c > median)
}

/// dHash: a 9x8 area-average; a bit per pair of horizontal neighbours, set when the right
/// one is brighter.
pub fn dhash(g: &Gray<'_>) -> PerceptualHash {
    let small = resize_area(g, 9, 8);
    PerceptualHash(bits(
        (0..8)
            .flat_map(|y| (0..8).map(move |x| (y, x)))
            .map(|(y, x)| small[y * 9 + x + 1] > small[y * 9 + x]),
    ))
}

fn bits(it: impl Iterator<Item = bool>) -> u64 {
    it.fold(0u64, |acc, b| (acc << 1) | b as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth, non-separable picture with a bright disc: 2-D structure at low frequencies.
    fn picture(w: usize, h: usize, seed: u64) -> Vec<u8> {
        let mut px = vec![0u8; w * h];
        let (a, b) = (2.0 + (seed % 5) as f64, 1.0 + (seed % 3) as f64);
        let (cx, cy) = (0.3 + 0.1 * (seed % 4) as f64, 0.6 - 0.1 * (seed % 3) as f64);
        for y in 0..h {
            for x in 0..w {
                let (fx, fy) = (x as f64 / w as f64, y as f64 / h as f64);
                let mut v = 120.0 + 50.0 * (fx * a + fy * b + seed as f64).sin() + 40.0 * (fx * fy * 6.0).cos();
                if (fx - cx).powi(2) + (fy - cy).powi(2) < 0.02 {
                    v += 70.0;
                }
                px[y * w + x] = v.clamp(0.0, 255.0) as u8;
            }
        }
        px
    }

    #[test]
    fn hamming_is_symmetric_and_zero_on_equal() {
        for (a, b) in [(0u64, 0u64), (u64::MAX, 0), (0xdead_beef, 0x1234_5678), (1 << 63, 1)] {
            assert_eq!(hamming(a, b), hamming(b, a));
            assert_eq!(hamming(a, a), 0);
        }
        assert_eq!(hamming(u64::MAX, 0), 64);
    }

    #[test]
    fn resize_keeps_a_flat_image_flat_and_averages() {
        let px = vec![100u8; 50 * 30];
        let g = Gray::new(50, 30, &px).unwrap();
        assert!(resize_area(&g, 32, 32).iter().all(|&v| (v - 100.0).abs() < 1e-3));
        let two = [0u8, 255];
        let g = Gray::new(2, 1, &two).unwrap();
        assert!((resize_area(&g, 1, 1)[0] - 127.5).abs() < 1e-3);
    }

    #[test]
    fn identical_images_hash_equal_and_resizing_barely_moves_them() {
        let big = picture(400, 300, 3);
        let g = Gray::new(400, 300, &big).unwrap();
        assert_eq!(phash(&g), phash(&Gray::new(400, 300, &big).unwrap()));
        // The same picture rendered at half the size.
        let half = picture(200, 150, 3);
        let h = Gray::new(200, 150, &half).unwrap();
        assert!(phash(&g).distance(phash(&h)) <= 4, "{}", phash(&g).distance(phash(&h)));
        assert!(dhash(&g).distance(dhash(&h)) <= 4);
        // A different picture, and the negative of this one, are far away.
        let other = picture(400, 300, 6);
        let o = Gray::new(400, 300, &other).unwrap();
        assert!(phash(&g).distance(phash(&o)) > 12, "{}", phash(&g).distance(phash(&o)));
        let negative: Vec<u8> = big.iter().map(|&v| 255 - v).collect();
        let n = Gray::new(400, 300, &negative).unwrap();
        assert!(phash(&g).distance(phash(&n)) > 40);
        assert!(dhash(&g).distance(dhash(&n)) > 40);
    }

    #[test]
    fn the_fine_hash_keeps_a_resized_copy_near_and_tells_pictures_apart() {
        let big = picture(400, 300, 3);
        let g = Gray::new(400, 300, &big).unwrap();
        let fine = fine_hash(&g);
        assert_eq!(fine, fine_hash(&Gray::new(400, 300, &big).unwrap()));
        assert_eq!(fine.iter().map(|b| b.count_ones()).sum::<u32>(), 128); // half above the median
        let half = picture(200, 150, 3);
        let near = fine_distance(&fine, &fine_hash(&Gray::new(200, 150, &half).unwrap()));
        assert!(near <= 24, "{near}");
        let other = picture(400, 300, 6);
        let far = fine_distance(&fine, &fine_hash(&Gray::new(400, 300, &other).unwrap()));
        assert!(far > 64, "{far}");
        // The 64-bit pHash is the same computation at 32x32 and 8x8.
        let coef = low_frequencies(&g, DCT_N, KEEP);
        assert_eq!(phash(&g).0, bits(above_median(&coef)));
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert!(Gray::new(10, 10, &[0u8; 99]).is_err());
        assert!(Gray::new(0, 10, &[]).is_err());
    }
}
