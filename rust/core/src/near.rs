//! All pairs of 64-bit hashes within a Hamming radius, without comparing every pair, and
//! groups formed from them.
//!
//! Multi-index hashing: the 64 bits are cut into `m` blocks. If two hashes differ in at
//! most `r` bits, then by pigeonhole some block differs in at most `r / m` bits. Each block
//! gets a table from block value to the hashes holding it (a direct-indexed CSR array);
//! a query visits, in each block, every value within `r / m` bits of its own, and checks
//! the full distance only for the hashes found there. `m` is chosen per call to minimise
//! the expected work for the number of hashes and the radius. A pair is reported once:
//! from the lower index, and from the first block in which it qualifies.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use rayon::prelude::*;

use crate::phash::hamming;
use crate::{Error, Result};

/// Two hashes (by index) and their distance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pair {
    pub a: u32,
    pub b: u32,
    pub distance: u32,
}

/// The bit ranges of `m` blocks covering 64 bits, as (shift, width).
fn blocks(m: usize) -> Vec<(u32, u32)> {
    let mut out = Vec::with_capacity(m);
    let mut shift = 0u32;
    for k in 0..m {
        let width = (64 / m + usize::from(k < 64 % m)) as u32;
        out.push((shift, width));
        shift += width;
    }
    out
}

#[inline]
fn block_of(h: u64, (shift, width): (u32, u32)) -> u32 {
    ((h >> shift) & ((1u64 << width) - 1)) as u32
}

fn binomial_sum(n: u32, k: u32) -> f64 {
    let mut total = 0.0;
    let mut c = 1.0;
    for i in 0..=k.min(n) {
        if i > 0 {
            c = c * (n - i + 1) as f64 / i as f64;
        }
        total += c;
    }
    total
}

/// How many bits each block may differ in and still be probed. With `m` blocks and
/// `r + 1 >= m`, thresholds summing to `r + 1 - m` suffice (a pair within `r` must have a
/// block within its threshold, or the distance would be at least `r + 1`: the generalised
/// pigeonhole principle); otherwise every block gets `r / m`.
fn thresholds(m: usize, radius: u32) -> Vec<u32> {
    let m32 = m as u32;
    if radius + 1 >= m32 {
        let total = radius + 1 - m32;
        (0..m32).map(|k| total / m32 + u32::from(k < total % m32)).collect()
    } else {
        vec![radius / m32; m]
    }
}

const MAX_BLOCK_BITS: u32 = 24;
// Relative costs: a probe of one bucket by another is a random read (once per block
// value, not per hash); a candidate is a XOR and popcount over contiguous memory.
const PROBE_COST: f64 = 15.0;
const CANDIDATE_COST: f64 = 0.3;

/// The number of blocks with the least expected work, or None when comparing every
/// pair is cheaper.
pub fn plan(n: usize, radius: u32) -> Option<usize> {
    let brute = n as f64 * n as f64 / 2.0 * CANDIDATE_COST;
    let mut best: Option<(f64, usize)> = None;
    for m in 3..=16usize {
        let b = blocks(m);
        if b.iter().any(|x| x.1 > MAX_BLOCK_BITS) {
            continue;
        }
        let t = thresholds(m, radius);
        let cost: f64 = b
            .iter()
            .zip(&t)
            .map(|(&(_, w), &tk)| {
                let (probes, values) = (binomial_sum(w, tk), (1u64 << w) as f64);
                values * probes * PROBE_COST + n as f64 * probes * (n as f64 / values) * CANDIDATE_COST + values
            })
            .sum();
        if best.is_none_or(|(c, _)| cost < c) {
            best = Some((cost, m));
        }
    }
    best.filter(|&(cost, _)| cost < brute).map(|(_, m)| m)
}

/// One block's table: for each block value, the hashes holding it (ids, and the hash
/// values themselves, stored in bucket order so a probe scans contiguous memory).
struct BlockIndex {
    offsets: Vec<u32>,
    ids: Vec<u32>,
    vals: Vec<u64>,
}

impl BlockIndex {
    fn build(hashes: &[u64], block: (u32, u32)) -> BlockIndex {
        let size = 1usize << block.1;
        let mut offsets = vec![0u32; size + 1];
        for &h in hashes {
            offsets[block_of(h, block) as usize + 1] += 1;
        }
        for i in 0..size {
            offsets[i + 1] += offsets[i];
        }
        let mut fill = offsets.clone();
        let mut ids = vec![0u32; hashes.len()];
        let mut vals = vec![0u64; hashes.len()];
        for (i, &h) in hashes.iter().enumerate() {
            let slot = &mut fill[block_of(h, block) as usize];
            ids[*slot as usize] = i as u32;
            vals[*slot as usize] = h;
            *slot += 1;
        }
        BlockIndex { offsets, ids, vals }
    }

    #[inline]
    fn range(&self, key: u32) -> std::ops::Range<usize> {
        self.offsets[key as usize] as usize..self.offsets[key as usize + 1] as usize
    }
}

/// Call `f` with every value within `max_flips` bits of `key` (over `width` bits).
fn variants(key: u32, width: u32, max_flips: u32, from: u32, f: &mut impl FnMut(u32)) {
    f(key);
    if max_flips == 0 {
        return;
    }
    for bit in from..width {
        variants(key ^ (1 << bit), width, max_flips - 1, bit + 1, f);
    }
}

/// Every pair within `radius` by comparing all pairs: the reference the index must match.
pub fn brute_pairs(hashes: &[u64], radius: u32) -> Vec<Pair> {
    let mut out: Vec<Pair> = (0..hashes.len())
        .into_par_iter()
        .flat_map_iter(|i| {
            ((i + 1)..hashes.len()).filter_map(move |j| {
                let d = hamming(hashes[i], hashes[j]);
                (d <= radius).then_some(Pair {
                    a: i as u32,
                    b: j as u32,
                    distance: d,
                })
            })
        })
        .collect();
    out.sort_unstable();
    out
}

/// Every pair of hashes within `radius` bits, sorted by (a, b). Checks `cancel` between
/// chunks of queries.
pub fn near_pairs(hashes: &[u64], radius: u32, cancel: &AtomicBool) -> Result<Vec<Pair>> {
    if hashes.len() > u32::MAX as usize {
        return Err(Error::InvalidInput("more than 4 billion hashes".into()));
    }
    if radius > 32 {
        return Err(Error::InvalidInput(format!(
            "radius {radius} is over 32 bits: nothing would be similar"
        )));
    }
    match plan(hashes.len(), radius) {
        Some(m) => search(hashes, radius, m, cancel),
        None => Ok(brute_pairs(hashes, radius)),
    }
}

/// The index search with `m` blocks (`near_pairs` picks `m`; public for benchmarks).
pub fn search(hashes: &[u64], radius: u32, m: usize, cancel: &AtomicBool) -> Result<Vec<Pair>> {
    let bl = blocks(m);
    let t = thresholds(m, radius);
    let index: Vec<BlockIndex> = bl.par_iter().map(|&b| BlockIndex::build(hashes, b)).collect();
    // Bucket against bucket: every hash sharing a block value probes the same buckets, so
    // each bucket is visited while it is still in the cache, once per value rather than
    // once per hash.
    let chunk = 1024u32;
    let mut parts: Vec<Result<Vec<Pair>>> = Vec::new();
    for (k, (&b, idx)) in bl.iter().zip(&index).enumerate() {
        let values = 1u32 << b.1;
        let part: Vec<Result<Vec<Pair>>> = (0..values.div_ceil(chunk))
            .into_par_iter()
            .map(|c| {
                if cancel.load(Relaxed) {
                    return Err(Error::Cancelled);
                }
                let mut out = Vec::new();
                for v in c * chunk..((c + 1) * chunk).min(values) {
                    let rv = idx.range(v);
                    if rv.is_empty() {
                        continue;
                    }
                    variants(v, b.1, t[k], 0, &mut |u| {
                        let ru = idx.range(u);
                        for (&h, &i) in idx.vals[rv.clone()].iter().zip(&idx.ids[rv.clone()]) {
                            // Ids in a bucket ascend: only those above `i` (each pair once).
                            let from = ru.start + idx.ids[ru.clone()].partition_point(|&j| j <= i);
                            for (&other, &j) in idx.vals[from..ru.end].iter().zip(&idx.ids[from..ru.end]) {
                                let d = hamming(h, other);
                                if d > radius {
                                    continue;
                                }
                                // Report from the first block where the pair qualifies only.
                                let first = bl.iter().zip(&t).position(|(&bb, &tk)| {
                                    hamming(block_of(h, bb) as u64, block_of(other, bb) as u64) <= tk
                                });
                                if first == Some(k) {
                                    out.push(Pair {
                                        a: i,
                                        b: j,
                                        distance: d,
                                    });
                                }
                            }
                        }
                    });
                }
                Ok(out)
            })
            .collect();
        parts.extend(part);
    }
    let mut pairs = Vec::new();
    for p in parts {
        pairs.extend(p?);
    }
    pairs.sort_unstable();
    Ok(pairs)
}

/// Groups of near-duplicates from the pairs: within each connected component, the member
/// with the most neighbours leads a group of its neighbours, then the next unassigned one,
/// and so on. Every member is within `radius` of its group's leader, so a chain of small
/// steps (A~B~C~D...) never joins two unrelated pictures. Returns a group number per hash
/// (`u32::MAX` for a hash in no group) and the leader of each group.
pub fn group(n: usize, pairs: &[Pair]) -> (Vec<u32>, Vec<u32>) {
    let mut degree = vec![0u32; n];
    for p in pairs {
        degree[p.a as usize] += 1;
        degree[p.b as usize] += 1;
    }
    let mut offsets = vec![0usize; n + 1];
    for i in 0..n {
        offsets[i + 1] = offsets[i] + degree[i] as usize;
    }
    let mut fill = offsets.clone();
    let mut adj = vec![0u32; offsets[n]];
    for p in pairs {
        adj[fill[p.a as usize]] = p.b;
        fill[p.a as usize] += 1;
        adj[fill[p.b as usize]] = p.a;
        fill[p.b as usize] += 1;
    }
    let mut order: Vec<u32> = (0..n as u32).filter(|&i| degree[i as usize] > 0).collect();
    order.sort_unstable_by(|&x, &y| degree[y as usize].cmp(&degree[x as usize]).then(x.cmp(&y)));
    let mut gid = vec![u32::MAX; n];
    let mut leaders = Vec::new();
    for &lead in &order {
        if gid[lead as usize] != u32::MAX {
            continue;
        }
        let g = leaders.len() as u32;
        let members: Vec<u32> = adj[offsets[lead as usize]..offsets[lead as usize + 1]]
            .iter()
            .copied()
            .filter(|&j| gid[j as usize] == u32::MAX)
            .collect();
        if members.is_empty() {
            continue; // all its neighbours joined other groups: it stays alone
        }
        gid[lead as usize] = g;
        for j in members {
            gid[j as usize] = g;
        }
        leaders.push(lead);
    }
    (gid, leaders)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    /// `h` with exactly `bits` distinct bits flipped.
    fn flip(h: u64, bits: u32, seed: &mut u64) -> u64 {
        let mut mask = 0u64;
        while mask.count_ones() < bits {
            mask |= 1 << (rng(seed) % 64);
        }
        h ^ mask
    }

    #[test]
    fn blocks_cover_64_bits() {
        for m in 1..=16 {
            let b = blocks(m);
            assert_eq!(b.iter().map(|x| x.1).sum::<u32>(), 64);
            assert_eq!(b.len(), m);
        }
    }

    #[test]
    fn index_finds_exactly_the_brute_force_pairs() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for (n, radius) in [(50usize, 8u32), (3000, 8), (3000, 4), (5000, 10), (2500, 0), (4000, 12)] {
            let mut hashes: Vec<u64> = (0..n).map(|_| rng(&mut seed)).collect();
            // Plant near pairs at every distance up to radius + 2.
            for k in 0..n / 10 {
                let d = (k as u32) % (radius + 3);
                let base = hashes[k];
                hashes[n - 1 - k] = flip(base, d, &mut seed);
            }
            let cancel = AtomicBool::new(false);
            let reference = brute_pairs(&hashes, radius);
            assert_eq!(
                near_pairs(&hashes, radius, &cancel).unwrap(),
                reference,
                "n={n} radius={radius}"
            );
            // Every block count the planner may pick (block widths up to 22 bits here).
            for m in 3..=9 {
                assert_eq!(
                    search(&hashes, radius, m, &cancel).unwrap(),
                    reference,
                    "n={n} radius={radius} m={m}"
                );
            }
        }
    }

    #[test]
    fn groups_do_not_chain() {
        // 0-1-2-3 each 6 bits apart in a line: 0 and 3 are 18 apart.
        let mut h = vec![0u64; 4];
        h[1] = 0b111111;
        h[2] = 0b111111_111111;
        h[3] = 0b111111_111111_111111;
        let pairs = brute_pairs(&h, 8);
        let (gid, leaders) = group(4, &pairs);
        for (i, &g) in gid.iter().enumerate() {
            if g != u32::MAX {
                assert!(hamming(h[i], h[leaders[g as usize] as usize]) <= 8);
            }
        }
        assert_ne!(gid[0], gid[3]);
    }

    #[test]
    fn cancel_stops_the_search() {
        let mut seed = 7u64;
        let hashes: Vec<u64> = (0..200_000).map(|_| rng(&mut seed)).collect();
        let cancel = AtomicBool::new(true);
        assert!(matches!(search(&hashes, 8, 3, &cancel), Err(Error::Cancelled)));
    }
}
