//! Time the near-duplicate search on random hashes with planted near pairs:
//! `cargo run --release --example near_timing -p mediaforge-core -- [n] [radius]`.
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use mediaforge_core::near::{plan, search};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let radius: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(8);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut hashes: Vec<u64> = (0..n).map(|_| next()).collect();
    for k in 0..n / 100 {
        let mut mask = 0u64;
        while mask.count_ones() < 1 + (k as u32 % radius.max(1)) {
            mask |= 1 << (next() % 64);
        }
        hashes[n - 1 - k] = hashes[k] ^ mask;
    }
    let cancel = AtomicBool::new(false);
    println!("n={n} radius={radius} planned m={:?}", plan(n, radius));
    for m in 3..=6 {
        let t = Instant::now();
        let pairs = search(&hashes, radius, m, &cancel).unwrap();
        println!("m={m}: {} pairs in {:.2} s", pairs.len(), t.elapsed().as_secs_f64());
    }
}
