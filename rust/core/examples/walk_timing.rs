//! Times the walk alone, then the Arrow batch build, on a tree: `cargo run --release
//! --example walk_timing -- DIR [THREADS]`. A profiling aid for benches/.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use mediaforge_core::batch::{files_batch, Change, FileRow};
use mediaforge_core::walk::{walk, WalkCounters, WalkOptions};

fn main() {
    let mut args = std::env::args().skip(1);
    let root = args.next().expect("usage: walk_timing DIR [THREADS]");
    let threads: usize = args.next().map(|t| t.parse().expect("threads")).unwrap_or(0);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let cancel = AtomicBool::new(false);
    let counters = WalkCounters::default();
    let t = Instant::now();
    let dirs = std::sync::Mutex::new(Vec::new());
    pool.install(|| {
        walk(
            &[root.into_bytes()],
            &WalkOptions::default(),
            &cancel,
            &counters,
            &|d| dirs.lock().unwrap().push(d),
        )
    })
    .expect("walk");
    let dirs = dirs.into_inner().unwrap();
    let walked = t.elapsed();
    let t = Instant::now();
    let rows: Vec<FileRow> = dirs
        .into_iter()
        .flat_map(|d| d.files)
        .map(|f| {
            let class = mediaforge_core::kind::classify(mediaforge_core::kind::extension(f.name()), None);
            FileRow::of(f, class, None, None, Change::New)
        })
        .collect();
    let n = rows.len();
    let batches: usize = rows.chunks(245_760).map(|c| files_batch(c).unwrap().num_rows()).sum();
    println!(
        "files {n} walk {:.3}s rows+arrow {:.3}s ({batches} rows)",
        walked.as_secs_f64(),
        t.elapsed().as_secs_f64()
    );
}
