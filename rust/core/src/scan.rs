//! The scan pipeline: walk, plan against the catalog's previous state, hash what needs
//! it, and stream Arrow batches out as they fill.
//!
//! Stages:
//! 1. walk: every regular file with one `fstatat` (see `walk`);
//! 2. plan: each file is unchanged (same path, dev, inode, size, mtime: nothing to do),
//!    or needs a row (new, changed, revived), and maybe a digest; a new path with the
//!    identity, size and mtime of a hashed catalog row reuses that digest unread;
//! 3. hash: the planned files, grouped by folder so each folder is opened once;
//! 4. vanished: catalog rows under the roots that the walk did not see, except below
//!    folders that could not be read. Only reported when the whole scan completed.

use std::ffi::CString;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use crossbeam_channel::{bounded, Receiver, Sender};
use rayon::prelude::*;
use rustix::fs::{Mode, OFlags, CWD};

use crate::batch::{errors_batch, files_batch, ids_batch, Change, FileRow};
use crate::error::{Error, Result};
use crate::hash::{hash_file_at, HashError, Hashed, HEAD_LEN};
use crate::kind::{self, Class};
use crate::prev::{MediaId, PrevState};
use crate::types::Digest;
use crate::walk::{describe_io, walk, DirFiles, PathError, WalkCounters, WalkOptions, WalkedFile};

/// How to scan.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub roots: Vec<Vec<u8>>,
    pub walk: WalkOptions,
    /// Compute BLAKE3 digests of new and changed files.
    pub hash: bool,
    /// Worker threads (0: all cores).
    pub threads: usize,
    /// Rows per file batch.
    pub batch_rows: usize,
    /// A partly filled batch is sent after this long, so a long hash run saves progress.
    pub flush_after: Duration,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            roots: Vec::new(),
            walk: WalkOptions::default(),
            hash: true,
            threads: 0,
            batch_rows: 100_000,
            flush_after: Duration::from_secs(2),
        }
    }
}

/// Phases, as the progress display sees them.
pub mod phase {
    pub const WALK: u8 = 0;
    pub const PLAN: u8 = 1;
    pub const HASH: u8 = 2;
    pub const DONE: u8 = 3;
}

/// Live counters for the progress display.
#[derive(Debug, Default)]
pub struct Progress {
    pub phase: AtomicU8,
    pub walk: WalkCounters,
    pub hash_files_total: AtomicU64,
    pub hash_bytes_total: AtomicU64,
    pub hash_files_done: AtomicU64,
    pub hash_bytes_done: AtomicU64,
}

/// Final counts of one scan, as the core sees them (moves are settled by the catalog).
#[derive(Debug, Default, Clone)]
pub struct ScanTotals {
    pub files_seen: u64,
    pub bytes_seen: u64,
    pub dirs: u64,
    pub new: u64,
    pub changed: u64,
    pub hashed: u64,
    pub revived: u64,
    pub unchanged: u64,
    pub vanished: u64,
    pub hashed_files: u64,
    pub hashed_bytes: u64,
    pub unstable: u64,
    pub errors: u64,
}

/// What the scan sends out, in order: any number of `Files` and `Errors`, then at most
/// one `Vanished`, then `Done` (or `Failed`).
#[derive(Debug)]
pub enum Event {
    Files(RecordBatch),
    Errors(RecordBatch),
    Vanished(RecordBatch),
    Done(ScanTotals),
    Failed(Error),
}

/// A running scan.
pub struct ScanHandle {
    rx: Option<Receiver<Event>>,
    cancel: Arc<AtomicBool>,
    pub progress: Arc<Progress>,
    thread: Option<JoinHandle<()>>,
}

impl ScanHandle {
    /// Wait up to `timeout` for the next event. `Ok(None)` on time-out; `Err(())` once the
    /// scan is over and everything was received.
    pub fn next_timeout(&self, timeout: Duration) -> Result<Option<Event>, ()> {
        let rx = self.rx.as_ref().ok_or(())?;
        match rx.recv_timeout(timeout) {
            Ok(ev) => Ok(Some(ev)),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => Ok(None),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => Err(()),
        }
    }

    /// Ask the scan to stop; workers notice within a file or a 64 MiB window.
    pub fn cancel(&self) {
        self.cancel.store(true, Relaxed);
    }

    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// Cancel, drop the channel and wait for the worker thread.
    pub fn close(&mut self) {
        self.cancel();
        self.rx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ScanHandle {
    fn drop(&mut self) {
        self.close();
    }
}

/// Drop roots that lie inside another root, so no file is walked twice.
pub fn normalize_roots(roots: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut rs: Vec<Vec<u8>> = roots
        .iter()
        .map(|r| {
            let mut r = r.clone();
            while r.len() > 1 && r.ends_with(b"/") {
                r.pop();
            }
            r
        })
        .collect();
    rs.sort();
    rs.dedup();
    let mut out: Vec<Vec<u8>> = Vec::new();
    for r in rs {
        if !out.iter().any(|o| is_under(&r, o)) {
            out.push(r);
        }
    }
    out
}

/// True if `path` is `root` or lies below it.
pub fn is_under(path: &[u8], root: &[u8]) -> bool {
    if root == b"/" {
        return path.starts_with(b"/");
    }
    path.starts_with(root) && (path.len() == root.len() || path[root.len()] == b'/')
}

/// Start a scan in the background.
pub fn start(mut opts: ScanOptions, prev: PrevState) -> Result<ScanHandle> {
    opts.roots = normalize_roots(&opts.roots);
    let threads = if opts.threads == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { opts.threads };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("mediaforge-scan-{i}"))
        .build()
        .map_err(|e| Error::InvalidInput(format!("cannot start {threads} threads: {e}")))?;
    let (tx, rx) = bounded::<Event>(4);
    let cancel = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(Progress::default());
    let (c2, p2) = (cancel.clone(), progress.clone());
    let thread = std::thread::Builder::new()
        .name("mediaforge-scan".into())
        .spawn(move || {
            let tx2 = tx.clone();
            let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                pool.install(|| run(&opts, &prev, &c2, &p2, &tx))
            }));
            let ev = match res {
                Ok(Ok(totals)) => Event::Done(totals),
                Ok(Err(e)) => Event::Failed(e),
                Err(_) => Event::Failed(Error::InvalidInput("internal error: a scan worker panicked".into())),
            };
            let _ = tx2.send(ev);
        })
        .map_err(|e| Error::InvalidInput(format!("cannot start the scan thread: {e}")))?;
    Ok(ScanHandle { rx: Some(rx), cancel, progress, thread: Some(thread) })
}

/// What to do with one walked file.
enum Plan {
    Skip,
    Row { prev: Option<MediaId>, change: Change, digest: Option<Digest>, hash: bool },
}

fn plan_file(f: &WalkedFile, prev: &PrevState, want_hash: bool) -> Plan {
    match prev.find_path(&f.path) {
        Some(i) => {
            prev.mark_seen(i);
            let iu = i as usize;
            let old = &prev.stat[iu];
            let id = Some(prev.media_id[iu]);
            let same = old.same_content_signature(&f.stat);
            let digest = if same { prev.digest[iu] } else { None };
            if same && prev.present[iu] {
                if !want_hash || digest.is_some() {
                    return Plan::Skip;
                }
                return Plan::Row { prev: id, change: Change::Hashed, digest: None, hash: true };
            }
            let change = if same { Change::Revived } else { Change::Changed };
            Plan::Row { prev: id, change, digest, hash: want_hash && digest.is_none() }
        }
        None => {
            let digest = prev.find_same_inode(&f.stat).and_then(|j| prev.digest[j as usize]);
            Plan::Row { prev: None, change: Change::New, digest, hash: want_hash && digest.is_none() }
        }
    }
}

/// Read the first bytes of a file whose extension says nothing (only in `--no-hash` scans).
fn sniff(path: &[u8]) -> Option<Vec<u8>> {
    let c = CString::new(path).ok()?;
    let fd = rustix::fs::openat(CWD, c.as_c_str(), OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK, Mode::empty()).ok()?;
    let mut buf = vec![0u8; HEAD_LEN];
    let n = rustix::io::read(&fd, &mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

fn classify_unread(f: &WalkedFile) -> Class {
    let ext = kind::extension(f.name());
    match kind::from_extension(ext) {
        Some(c) => c,
        None => kind::classify(ext, sniff(&f.path).as_deref()),
    }
}

struct Batcher<'a> {
    tx: &'a Sender<Event>,
    rows: Vec<FileRow>,
    errors: Vec<PathError>,
    batch_rows: usize,
    flush_after: Duration,
    last: Instant,
}

impl Batcher<'_> {
    fn push(&mut self, row: FileRow) -> Result<()> {
        self.rows.push(row);
        self.maybe_flush()
    }

    fn error(&mut self, e: PathError) -> Result<()> {
        self.errors.push(e);
        self.maybe_flush()
    }

    fn maybe_flush(&mut self) -> Result<()> {
        if self.rows.len() >= self.batch_rows || self.errors.len() >= self.batch_rows || self.last.elapsed() >= self.flush_after {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.last = Instant::now();
        if !self.errors.is_empty() {
            let b = errors_batch(&self.errors)?;
            self.errors.clear();
            self.tx.send(Event::Errors(b)).map_err(|_| Error::Cancelled)?;
        }
        if !self.rows.is_empty() {
            let b = files_batch(&self.rows)?;
            self.rows.clear();
            self.tx.send(Event::Files(b)).map_err(|_| Error::Cancelled)?;
        }
        Ok(())
    }
}

/// A unit of hashing work: some files of one folder.
struct HashJob<'a> {
    dir: &'a [u8],
    files: Vec<(&'a WalkedFile, Option<MediaId>, Change)>,
}

enum Msg {
    Row(FileRow),
    Error(PathError),
}

fn run(opts: &ScanOptions, prev: &PrevState, cancel: &AtomicBool, progress: &Progress, tx: &Sender<Event>) -> Result<ScanTotals> {
    let mut totals = ScanTotals::default();
    progress.phase.store(phase::WALK, Relaxed);
    let walked = walk(&opts.roots, &opts.walk, cancel, &progress.walk)?;
    totals.files_seen = walked.file_count() as u64;
    totals.bytes_seen = crate::walk::total_len(&walked).0;
    totals.dirs = progress.walk.dirs.load(Relaxed);

    progress.phase.store(phase::PLAN, Relaxed);
    let plans: Vec<Vec<Plan>> = walked
        .dirs
        .par_iter()
        .map(|d| d.files.iter().map(|f| plan_file(f, prev, opts.hash)).collect())
        .collect();
    if cancel.load(Relaxed) {
        return Err(Error::Cancelled);
    }

    let mut batcher = Batcher {
        tx,
        rows: Vec::new(),
        errors: walked.errors.clone(),
        batch_rows: opts.batch_rows.max(1),
        flush_after: opts.flush_after,
        last: Instant::now(),
    };
    totals.errors += walked.errors.len() as u64;

    // Rows that need no reading go out first; the rest become hash jobs.
    let mut jobs: Vec<HashJob> = Vec::new();
    let mut hash_bytes = 0u64;
    let mut hash_files = 0u64;
    let mut direct: Vec<(&WalkedFile, Option<MediaId>, Change, Option<Digest>)> = Vec::new();
    for (d, ps) in walked.dirs.iter().zip(&plans) {
        let mut job = HashJob { dir: &d.dir, files: Vec::new() };
        let mut job_bytes = 0u64;
        for (f, p) in d.files.iter().zip(ps) {
            match p {
                Plan::Skip => totals.unchanged += 1,
                Plan::Row { prev: id, change, digest, hash } => {
                    count_change(&mut totals, *change);
                    if *hash {
                        job.files.push((f, *id, *change));
                        job_bytes += f.stat.len.0;
                        hash_bytes += f.stat.len.0;
                        hash_files += 1;
                        // Keep jobs small enough to spread over the threads.
                        if job.files.len() >= 256 || job_bytes >= 256 << 20 {
                            jobs.push(std::mem::replace(&mut job, HashJob { dir: &d.dir, files: Vec::new() }));
                            job_bytes = 0;
                        }
                    } else {
                        direct.push((f, *id, *change, *digest));
                    }
                }
            }
        }
        if !job.files.is_empty() {
            jobs.push(job);
        }
    }
    drop(plans);

    let direct_rows: Vec<FileRow> = direct
        .par_iter()
        .map(|(f, id, change, digest)| FileRow {
            path: f.path.clone(),
            name_start: f.name_start,
            stat: f.stat,
            class: classify_unread(f),
            digest: *digest,
            prev: *id,
            change: *change,
        })
        .collect();
    drop(direct);
    for row in direct_rows {
        batcher.push(row)?;
    }

    progress.hash_files_total.store(hash_files, Relaxed);
    progress.hash_bytes_total.store(hash_bytes, Relaxed);
    progress.phase.store(phase::HASH, Relaxed);
    if !jobs.is_empty() {
        let (mtx, mrx) = bounded::<Msg>(16_384);
        let unstable = AtomicU64::new(0);
        let mut collect_err: Result<()> = Ok(());
        std::thread::scope(|s| {
            let collector = s.spawn(|| -> Result<u64> {
                let mut errors = 0u64;
                for m in mrx.iter() {
                    match m {
                        Msg::Row(r) => batcher.push(r)?,
                        Msg::Error(e) => {
                            errors += 1;
                            batcher.error(e)?
                        }
                    }
                }
                Ok(errors)
            });
            jobs.par_iter().for_each_with(mtx, |mtx, job| {
                if cancel.load(Relaxed) {
                    return;
                }
                hash_job(job, cancel, progress, &unstable, mtx);
            });
            match collector.join() {
                Ok(Ok(n)) => totals.errors += n,
                Ok(Err(e)) => collect_err = Err(e),
                Err(_) => collect_err = Err(Error::InvalidInput("internal error: collector panicked".into())),
            }
        });
        collect_err?;
        totals.unstable = unstable.load(Relaxed);
    }
    if cancel.load(Relaxed) {
        return Err(Error::Cancelled);
    }
    totals.hashed_files = progress.hash_files_done.load(Relaxed);
    totals.hashed_bytes = progress.hash_bytes_done.load(Relaxed);
    batcher.flush()?;

    // Vanished rows: never below a folder we could not read, never after a cut-short walk.
    let mut unreadable = walked.unreadable_dirs.clone();
    unreadable.sort();
    let vanished: Vec<MediaId> = (0..prev.len())
        .into_par_iter()
        .filter(|&i| prev.present[i] && !prev.seen[i].load(Relaxed))
        .filter(|&i| {
            let p = prev.path(i);
            opts.roots.iter().any(|r| is_under(p, r)) && !unreadable.iter().any(|u| is_under(p, u))
        })
        .map(|i| prev.media_id[i])
        .collect();
    totals.vanished = vanished.len() as u64;
    if !vanished.is_empty() {
        tx.send(Event::Vanished(ids_batch(&vanished)?)).map_err(|_| Error::Cancelled)?;
    }
    progress.phase.store(phase::DONE, Relaxed);
    Ok(totals)
}

fn count_change(t: &mut ScanTotals, c: Change) {
    match c {
        Change::New => t.new += 1,
        Change::Changed => t.changed += 1,
        Change::Hashed => t.hashed += 1,
        Change::Revived => t.revived += 1,
    }
}

fn hash_job(job: &HashJob, cancel: &AtomicBool, progress: &Progress, unstable: &AtomicU64, tx: &Sender<Msg>) {
    let send_err = |tx: &Sender<Msg>, path: &[u8], stage: &'static str, msg: String, errno: Option<i32>| {
        let _ = tx.send(Msg::Error(PathError { path: path.into(), stage, message: msg, errno }));
    };
    let dirc = match CString::new(job.dir) {
        Ok(c) => c,
        Err(_) => return,
    };
    let dirfd = match rustix::fs::openat(CWD, dirc.as_c_str(), OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()) {
        Ok(fd) => fd,
        Err(e) => {
            for (f, _, _) in &job.files {
                send_err(tx, &f.path, "hash", describe_io(&e.into()), Some(e.raw_os_error()));
            }
            return;
        }
    };
    let mut buf = Vec::with_capacity(crate::hash::MMAP_MIN as usize);
    for (f, id, change) in &job.files {
        if cancel.load(Relaxed) {
            return;
        }
        let name = match CString::new(f.name()) {
            Ok(c) => c,
            Err(_) => continue,
        };
        let ext = kind::extension(f.name());
        let row = |digest: Option<Digest>, class: Class| FileRow {
            path: f.path.clone(),
            name_start: f.name_start,
            stat: f.stat,
            class,
            digest,
            prev: *id,
            change: *change,
        };
        match hash_file_at(Some(dirfd.as_fd()), name.as_c_str(), &f.stat, &mut buf, cancel, &progress.hash_bytes_done) {
            Ok(Hashed::Stable { digest, head }) => {
                let _ = tx.send(Msg::Row(row(Some(digest), kind::classify(ext, Some(&head)))));
            }
            Ok(Hashed::Unstable { .. }) => {
                unstable.fetch_add(1, Relaxed);
                send_err(tx, &f.path, "unstable", "file changed while it was being hashed; stored without a digest".into(), None);
                let _ = tx.send(Msg::Row(row(None, kind::classify(ext, None))));
            }
            Err(HashError::Cancelled) => return,
            Err(HashError::Io(e)) => {
                let stage = if e == rustix::io::Errno::NOENT { "vanished" } else { "hash" };
                send_err(tx, &f.path, stage, describe_io(&e.into()), Some(e.raw_os_error()));
                if e != rustix::io::Errno::NOENT {
                    // Unreadable but present: keep its row (without a digest).
                    let _ = tx.send(Msg::Row(row(None, kind::classify(ext, None))));
                }
            }
        }
        progress.hash_files_done.fetch_add(1, Relaxed);
    }
}

#[allow(dead_code)]
fn _dirs_type_check(_: &DirFiles) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_inside_roots_are_dropped() {
        let r = normalize_roots(&[b"/a/b/".to_vec(), b"/a".to_vec(), b"/ab".to_vec(), b"/a".to_vec()]);
        assert_eq!(r, vec![b"/a".to_vec(), b"/ab".to_vec()]);
        assert!(is_under(b"/a/b", b"/a"));
        assert!(!is_under(b"/ab", b"/a"));
        assert!(is_under(b"/x", b"/"));
    }
}
