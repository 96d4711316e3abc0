//! The scan pipeline: walk, plan against the catalog's previous state, hash what needs
//! it, and stream Arrow batches out as they fill.
//!
//! Stages:
//! 1. walk: every regular file with one `statx` (see `walk`); each folder's files are
//!    planned as soon as they are listed, so rows that need no reading reach the catalog
//!    while the walk goes on. A first scan that hashes (no previous rows) reads every
//!    file anyway: its files are listed by name only, and each one's stat is taken from
//!    the file once it is opened to be read (`WalkOptions::defer_file_stat`);
//! 2. plan: each file is unchanged (same path, dev, inode, size, mtime: nothing to do),
//!    or needs a row (new, changed, revived, moved), and maybe a digest. Identity
//!    questions (a new path holding a known inode: a move or a hard link? a known path
//!    holding a new inode: was its file moved away?) wait until the walk has seen
//!    every path;
//! 3. hash: the planned files, grouped by folder so each folder is opened once, with the
//!    total known up front so progress has a real ETA;
//! 4. vanished: catalog rows under the roots that the walk did not see, except below
//!    folders that could not be read. Only reported when the whole scan completed.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use crossbeam_channel::{bounded, Receiver, Sender};
use rayon::prelude::*;
use rustix::fs::{Mode, OFlags, CWD};

use crate::batch::{errors_batch, ids_batch, Change, FileRow, FilesBuilder};
use crate::error::{Error, Result};
use crate::hash::{hash_file, open_listed, HashError, Hashed, Held, HEAD_LEN};
use crate::kind::{self, Class};
use crate::prev::{FolderMatcher, MediaId, PrevState};
use crate::types::{Digest, FileStat};
use crate::walk::{
    describe_io, trim_trailing_slashes, walk, DirFiles, PathError, WalkCounters, WalkOptions, WalkedFile,
};

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
            batch_rows: 245_760,
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
    /// Of the totals, what the hash phase after the walk has to do (files under
    /// `INLINE_MAX` are hashed during the walk): set when that phase starts.
    pub hash_phase_files: AtomicU64,
    pub hash_phase_bytes: AtomicU64,
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
    pub moved: u64,
    pub unchanged: u64,
    pub vanished: u64,
    pub hashed_files: u64,
    pub hashed_bytes: u64,
    pub unstable: u64,
    pub errors: u64,
    /// Files and folders excluded by a pattern or on another file system (see
    /// `WalkOutput::excluded`): a file gone from its place may have moved there.
    pub excluded: u64,
    /// Of `excluded`, those the options left out (`WalkOutput::excluded_by_options`).
    pub excluded_by_options: u64,
    /// Devices (`FileId::dev`) that rows this scan found gone were on, and of which it saw
    /// no present row: a disk gone whole, as one not mounted is.
    pub gone_devs: Vec<u64>,
}

/// What the scan sends out, in order: any number of `Files` and `Errors`, then at most
/// one `Vanished`, then `Done` (or `Failed`).
#[derive(Debug)]
pub enum Event {
    Files(RecordBatch),
    Errors(RecordBatch),
    Vanished(RecordBatch),
    /// Ids of present rows under the roots that the walk did not see but that are not
    /// gone: below a folder it could not read, or left out by the options. The catalog
    /// leaves these rows as they were (not stamped as seen).
    Kept(RecordBatch),
    /// Ids of present rows under the roots that the walk did not see, at or below a
    /// symbolic link it did not follow (and under nothing else left out): gone if the scan
    /// that last found them did not follow links either (the file was replaced by a
    /// link), else reached through that link by an `-L` scan and kept. The catalog knows
    /// which scan that was; the walk does not.
    Linked(RecordBatch),
    /// Ids of rows already missing at or below a symbolic link the walk did not follow:
    /// their files may be behind the link, so `--prune` leaves them (as it leaves the
    /// `Linked` ones this scan marks missing).
    LinkHeld(RecordBatch),
    /// Ids of rows whose file the scan glimpsed in motion, so `--prune` leaves them: rows
    /// not seen (or gone before, and not read back) whose inode, size and mtime the walk
    /// found under another name; rows with the device and inode of a file listed but gone
    /// when looked at, or with the inode, size and mtime of one gone when read.
    Glimpsed(RecordBatch),
    Done(ScanTotals),
    Failed(Error),
}

/// The catalog's previous state, which may arrive after the walk began: folders listed
/// before it wait here. So a caller can start the walk first and open the catalog, and
/// read its rows, while the disk is already being listed.
#[derive(Default)]
struct PrevSlot {
    state: OnceLock<PrevState>,
    waiting: Mutex<Waiting>,
    arrived: Condvar,
}

#[derive(Default)]
struct Waiting {
    folders: Vec<DirFiles>,
    /// Whether the state is being read (see `ScanHandle::previous_loading`).
    loading: bool,
    /// Walk threads holding back until the state arrives (see `PrevSlot::hold_back`).
    walkers_held: usize,
}

/// What `PrevSlot::offer` gives back: nothing yet, or folders to plan against the state.
enum Offer<'a> {
    Held,
    Ready(&'a PrevState, Vec<DirFiles>),
}

impl PrevSlot {
    fn set(&self, prev: PrevState) -> Result<()> {
        let _w = self.waiting.lock().unwrap();
        self.state
            .set(prev)
            .map_err(|_| Error::InvalidInput("the scan was given its previous state twice".into()))?;
        self.arrived.notify_all();
        Ok(())
    }

    /// A folder the walk listed: held until the state arrives, then handed back with any
    /// that waited before it.
    fn offer(&self, d: DirFiles) -> Offer<'_> {
        let mut w = self.waiting.lock().unwrap();
        match self.state.get() {
            None => {
                w.folders.push(d);
                Offer::Held
            }
            Some(p) => {
                let mut ds = std::mem::take(&mut w.folders);
                ds.push(d);
                Offer::Ready(p, ds)
            }
        }
    }

    /// Called by a walk thread whose folder was held: while the state loads, only
    /// `walkers` of the pool's `threads` go on listing, and the others wait here for it.
    /// The catalog's rows load on the same cores: a walk at full speed meanwhile only
    /// holds more of its folders in memory to plan later (on 2 cores, most of a million
    /// files, 180 MB of fresh pages), and takes the cores the load needs. Before the load
    /// begins (the caller still starting up, on one core), every thread walks.
    fn hold_back(&self, cancel: &AtomicBool, threads: usize, walkers: usize) {
        let mut w = self.waiting.lock().unwrap();
        if self.state.get().is_some() || !w.loading || threads.saturating_sub(w.walkers_held) <= walkers {
            return;
        }
        w.walkers_held += 1;
        while self.state.get().is_none() && !cancel.load(Relaxed) {
            w = self.arrived.wait_timeout(w, Duration::from_millis(50)).unwrap().0;
        }
        w.walkers_held -= 1;
    }

    /// Block until the state arrives (or the scan is cancelled); then the folders still held.
    fn wait(&self, cancel: &AtomicBool) -> Result<(&PrevState, Vec<DirFiles>)> {
        let mut w = self.waiting.lock().unwrap();
        loop {
            if let Some(p) = self.state.get() {
                return Ok((p, std::mem::take(&mut w.folders)));
            }
            if cancel.load(Relaxed) {
                return Err(Error::Cancelled);
            }
            w = self.arrived.wait_timeout(w, Duration::from_millis(50)).unwrap().0;
        }
    }
}

/// A running scan.
pub struct ScanHandle {
    rx: Option<Receiver<Event>>,
    cancel: Arc<AtomicBool>,
    pub progress: Arc<Progress>,
    prev: Arc<PrevSlot>,
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

    /// Give a scan started without its previous state (`start(.., None)`) that state;
    /// until then it walks and lists, but decides nothing. An error if it already has one.
    pub fn set_previous(&self, prev: PrevState) -> Result<()> {
        self.prev.set(prev)
    }

    /// Say that the previous state is being read now, on the cores the walk uses: until
    /// it is set, two walk threads wait (one on 2 cores).
    pub fn previous_loading(&self) {
        self.prev.waiting.lock().unwrap().loading = true;
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

/// The roots without trailing slashes, sorted, each once. A root inside another stays:
/// the walk gives it its own excludes, ignore files and file system, and the outer
/// root's walk passes it by, so no file is walked twice.
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
    rs
}

/// True if `path` is `root` or lies below it.
pub fn is_under(path: &[u8], root: &[u8]) -> bool {
    if root == b"/" {
        return path.starts_with(b"/");
    }
    path.starts_with(root) && (path.len() == root.len() || path[root.len()] == b'/')
}

/// Start a scan in the background. With `prev` None the walk starts at once and waits,
/// before deciding anything, for `ScanHandle::set_previous`.
pub fn start(mut opts: ScanOptions, prev: Option<PrevState>) -> Result<ScanHandle> {
    crate::walk::check_excludes(&opts.walk.excludes)?;
    opts.roots = normalize_roots(&opts.roots);
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    } else {
        opts.threads
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("mediaforge-scan-{i}"))
        .build()
        .map_err(|e| Error::InvalidInput(format!("cannot start {threads} threads: {e}")))?;
    let (tx, rx) = bounded::<Event>(4);
    let cancel = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(Progress::default());
    let slot = Arc::new(PrevSlot::default());
    if let Some(p) = prev {
        slot.set(p)?;
    }
    let (c2, p2, s2) = (cancel.clone(), progress.clone(), slot.clone());
    let thread = std::thread::Builder::new()
        .name("mediaforge-scan".into())
        .spawn(move || {
            let tx2 = tx.clone();
            let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                pool.install(|| run(&opts, &s2, &c2, &p2, &tx))
            }));
            let ev = match res {
                Ok(Ok(totals)) => Event::Done(totals),
                Ok(Err(e)) => Event::Failed(e),
                Err(_) => Event::Failed(Error::InvalidInput("internal error: a scan worker panicked".into())),
            };
            let _ = tx2.send(ev);
        })
        .map_err(|e| Error::InvalidInput(format!("cannot start the scan thread: {e}")))?;
    Ok(ScanHandle {
        rx: Some(rx),
        cancel,
        progress,
        prev: slot,
        thread: Some(thread),
    })
}

/// What to do with one walked file.
enum Plan {
    Skip,
    Row {
        prev: Option<MediaId>,
        change: Change,
        digest: Option<Digest>,
        hash: bool,
    },
    /// Decided once the whole walk is known: a new path with the identity of a known row
    /// (a move, or a hard link), or a known path now holding another inode (a file moved
    /// away and a new one saved under its name).
    Defer(Deferred),
    /// A file whose inode (with one link) the walk also found at another name: renamed as
    /// the scan ran, so one of the two sightings is stale. No row for it this time (its
    /// path's row, if any, stays as it was); the next scan finds where it is.
    Elsewhere,
}

#[derive(Clone, Copy)]
enum Deferred {
    SameInodeAs(u32),
    PathReused(u32),
}

fn plan_file(f: &WalkedFile, found: Option<u32>, prev: &PrevState, want_hash: bool) -> Plan {
    match found {
        Some(i) => {
            prev.mark_seen(i);
            let iu = i as usize;
            let old = &prev.stat[iu];
            // Another inode at a known path: a new file saved there, or a known file moved
            // onto the name, which only the whole walk can tell apart. At the path of a file
            // already recorded missing, any other known row with this file's identity means
            // a move onto that name, not the missing file coming back.
            let moved_onto_missing = || prev.find_same_inode(&f.stat).is_some_and(|j| j != i);
            if (prev.present[iu] && old.id != f.stat.id) || (!prev.present[iu] && moved_onto_missing()) {
                return Plan::Defer(Deferred::PathReused(i));
            }
            // A file made after the row was last seen is another file, though it may have
            // the row's inode number, size and mtime: read again, never the row's digest.
            let same = old.same_content_signature(&f.stat) && !prev.born_after_seen(iu, f.born_ns);
            if same && prev.present[iu] {
                if !want_hash || prev.has_digest(iu) {
                    if !prev.attrs_moved(iu, &f.stat) {
                        return Plan::Skip;
                    }
                    if prev.only_ctime_moved(iu, &f.stat) {
                        // Maybe rewritten with its mtime put back: hashed again, so the
                        // digest is never stale (a chmod costs one read). A scan that does
                        // not hash drops the digest, for the next one that does to redo.
                        return Plan::Row {
                            prev: Some(prev.media_id(iu)),
                            change: match prev.digest(iu) {
                                Some(was) if want_hash => Change::Recheck(was),
                                _ => Change::Hashed,
                            },
                            digest: None,
                            hash: want_hash,
                        };
                    }
                    return Plan::Row {
                        prev: Some(prev.media_id(iu)),
                        change: Change::Touched,
                        digest: None,
                        hash: false,
                    };
                }
                let id = Some(prev.media_id(iu));
                return Plan::Row {
                    prev: id,
                    change: Change::Hashed,
                    digest: None,
                    hash: true,
                };
            }
            if !prev.present[iu] && !same && !gone_file_back(prev, iu, f) {
                // Another file at a gone file's path: which, only the whole walk can tell
                // (the gone file may turn up under another name, and take its row back).
                return Plan::Defer(Deferred::PathReused(i));
            }
            // A gone file back whose inode change time moved is read again, as a present
            // one is: rewritten while away with its mtime put back, or another file on its
            // reused inode number with its size and mtime (a copy made within the second
            // `born_after_seen` allows).
            let unsure = !prev.present[iu] && !(same && !prev.attrs_moved(iu, &f.stat));
            let digest = if same && !unsure { prev.digest(iu) } else { None };
            if unsure && want_hash && f.stat.len.0 > 0 && prev.digest(iu).is_some() && prev.shares_path(iu) {
                // Several files gone from this name: its inode number alone does not say
                // which came back (numbers are reused), the bytes do. Not this row's: a
                // new file, which takes the row of another gone here if it holds its bytes
                // (the catalog's `_back_at_their_path`). Where the bytes cannot tell (a
                // scan without hashing, a row with no digest, an empty file), the inode
                // does, as before.
                return recover_or_new(prev, iu, f, want_hash);
            }
            let id = Some(prev.media_id(iu));
            let change = if !prev.present[iu] {
                Change::Revived
            } else {
                Change::Changed
            };
            Plan::Row {
                prev: id,
                change,
                digest,
                hash: want_hash && digest.is_none(),
            }
        }
        None => match prev.find_same_inode(&f.stat) {
            Some(j) => Plan::Defer(Deferred::SameInodeAs(j)),
            None => Plan::Row {
                prev: None,
                change: Change::New,
                digest: None,
                hash: want_hash,
            },
        },
    }
}

/// Whether `f`, at the path of row `i` (one a scan found gone), is that row's file come
/// back: its inode, and not made since the row was last seen.
fn gone_file_back(prev: &PrevState, i: usize, f: &WalkedFile) -> bool {
    prev.stat[i].id == f.stat.id && !prev.born_after_seen(i, f.born_ns)
}

/// `f` at the path of row `i`, a file a scan found gone, when `f` is another file: a copy
/// of the gone one put back, or a new file under its name (a camera's counter starting
/// over). Only the bytes tell (`Change::Recover`, settled once hashed); without them, a
/// new file, so the gone one's id and tags never pass to a stranger. Empty files all share
/// one digest: never the same file by content.
fn recover_or_new(prev: &PrevState, i: usize, f: &WalkedFile, want_hash: bool) -> Plan {
    match prev.digest(i) {
        Some(was) if want_hash && f.stat.len.0 > 0 => Plan::Row {
            prev: Some(prev.media_id(i)),
            change: Change::Recover(was),
            digest: None,
            hash: true,
        },
        _ => Plan::Row {
            prev: None,
            change: Change::New,
            digest: None,
            hash: want_hash,
        },
    }
}

/// Settle the deferred files once every path is known. A file carrying a known row's
/// identity (a new path, or a known path it was moved onto) takes over that row's id unless
/// the row's own path still holds the same file (a hard link). A reused path keeps its
/// row's id when nothing moved in and its old file went nowhere; its old row is left to
/// vanish when a moved file took the path over.
fn resolve_deferred(
    deferred: Vec<(WalkedFile, Deferred)>,
    prev: &PrevState,
    want_hash: bool,
    follow: bool,
    unlooked: &(dyn Fn(usize) -> bool + Sync),
    under_roots: &(dyn Fn(usize) -> bool + Sync),
) -> (Vec<(WalkedFile, Plan)>, Vec<u32>) {
    // The rows of each inode found under a new name (its row's or another): where the
    // file did not stay there, `found_at_own_path` looks for it at theirs, and a row
    // still unseen once the scan ends was glimpsed (see `Event::Glimpsed`).
    let mut sighted = Vec::new();
    let reused: hashbrown::HashSet<u32> = deferred
        .iter()
        .filter_map(|(_, d)| match d {
            Deferred::PathReused(i) => Some(*i),
            _ => None,
        })
        .collect();
    // Gone rows whose paths hold another file now: not theirs, so free to their own file
    // found under another name (a gone row whose path holds its file again is that file's).
    let strangers: hashbrown::HashSet<u32> = deferred
        .iter()
        .filter_map(|(f, d)| match d {
            Deferred::PathReused(i) if !prev.present[*i as usize] && !gone_file_back(prev, *i as usize, f) => Some(*i),
            _ => None,
        })
        .collect();
    // Rows taken by a move, each with where in `out` the file that took it is.
    let mut taken: hashbrown::HashMap<u32, usize> = hashbrown::HashMap::new();
    // Folders known to be (or not be) their own real path: snapshots of hard links have
    // many rows per folder to check.
    let real = std::cell::RefCell::new(hashbrown::HashMap::<Vec<u8>, bool>::new());
    let folder_times = std::cell::RefCell::new(hashbrown::HashMap::<Vec<u8>, Option<i64>>::new());
    let listings = Listings::default();
    // A moved file takes its row's digest, unless it was also written (see
    // `written_as_well`): then it is read again (a scan that does not hash drops the
    // digest, for the next one that does). A scan that hashes also reads it again where
    // no birth time tells it from another file that got the row's freed inode number,
    // size and mtime (a file system that keeps none; a row from before they were kept),
    // and its bytes tell (see `Change::MovedRecheck`); one that does not hash cannot tell,
    // and keeps the digest, as a rename's.
    let moved = |k: u32, f: &WalkedFile, digest: Option<Digest>| {
        let same_birth = prev.same_birth(k as usize, f.born_ns);
        match digest {
            Some(was) if written_as_well(prev, k as usize, f, &folder_times) => (
                if want_hash {
                    Change::MovedRecheck(was, k, same_birth)
                } else {
                    Change::Moved
                },
                None,
            ),
            Some(was) if want_hash && !same_birth => (Change::MovedRecheck(was, k, false), None),
            _ => (Change::Moved, digest),
        }
    };
    let mut displaced = Vec::new();
    let mut out: Vec<(WalkedFile, Plan)> = Vec::with_capacity(deferred.len());
    let mut later = Vec::new();
    // In path order, not in the order the walk threads happened to list folders: two new
    // names of one inode competing for one row get the same answer on every run. Names in
    // a folder where a present row of their inode was, and is no longer (its path did not
    // hold it), go first: a rename there takes that row, before another new name of the
    // inode elsewhere (a hard link made as well) would take it as a present row moved, and
    // leave the renamed file a gone name's row.
    let renamed_in_place = |f: &WalkedFile, d: &Deferred| {
        let same = match d {
            Deferred::SameInodeAs(j) => Some(*j),
            Deferred::PathReused(_) => prev.find_same_inode(&f.stat),
        };
        let folder = &f.path[..f.name_start as usize];
        same.is_some_and(|j| {
            prev.same_identity(j).into_iter().any(|k| {
                let ku = k as usize;
                prev.present[ku] && !prev.seen[ku].load(Relaxed) && prev.folder(ku) == folder
            })
        })
    };
    let mut keyed: Vec<(bool, (WalkedFile, Deferred))> = deferred
        .into_iter()
        .map(|x| (!renamed_in_place(&x.0, &x.1), x))
        .collect();
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1 .0.path.cmp(&b.1 .0.path)));
    let deferred = keyed.into_iter().map(|(_, x)| x);
    for (f, d) in deferred {
        let (same, reused_row) = match d {
            Deferred::SameInodeAs(j) => (Some(j), None),
            Deferred::PathReused(i) => (prev.find_same_inode(&f.stat), Some(i)),
        };
        if let Some(j) = same {
            sighted.extend(prev.same_identity(j));
        }
        // Whether a row's path holds this inode (under its exact name: see `Listings`),
        // looked at once per file: a file renamed to and fro as the scan runs must not be
        // there for one test and gone for the next.
        let holds = std::cell::RefCell::new(hashbrown::HashMap::<u32, bool>::new());
        let holds = |k: u32| {
            *holds.borrow_mut().entry(k).or_insert_with(|| {
                let ku = k as usize;
                still_holds(prev, ku, &real) && listings.names_exactly(prev.path(ku))
            })
        };
        // Of the rows with this identity (hard links have one each), one whose path no
        // longer holds it and no other file took. A present row first (the file that moved
        // is one the last scan saw, and its tags go with it; a missing row was gone
        // before), then the row of this very path (a name of the inode back where it was),
        // then the one with this file's name, so links moved together each keep their own
        // id. A missing row whose path holds its own file again belongs to that file, not
        // to another name of its inode (one holding another file is free to its own); a
        // present row the walk did not look at (left out, or behind a link it did not
        // follow, as found through it) has not moved as far as anyone knows. Nor has a row whose path (outside what this scan walked, as a
        // rule) still holds the inode: this file is another name of it (a hard link, or a
        // folder or file reached again through a link). Between rows alike, one under the
        // roots walked (a rename there, not the alias row of another root), then one a
        // scan without -L found (a real path, not an alias through a link), then one of
        // this file's folder (the names of one folder reached two ways each keep theirs).
        // A row last seen before this file was made describes another file, whose freed
        // inode number it got: never that row's id, tags or digest.
        let free = |k: &u32| {
            let ku = *k as usize;
            !prev.born_after_seen(ku, f.born_ns)
                && !(prev.seen[ku].load(Relaxed) && !reused.contains(k))
                && !taken.contains_key(k)
                && (prev.present[ku] || !reused.contains(k) || Some(*k) == reused_row || strangers.contains(k))
                && !(prev.present[ku] && !prev.seen[ku].load(Relaxed) && unlooked(ku))
                && (Some(*k) == reused_row || !holds(*k))
        };
        let folder = &f.path[..f.name_start as usize];
        let pick = same.and_then(|j| {
            prev.same_identity(j).into_iter().filter(|k| free(k)).min_by_key(|&k| {
                let ku = k as usize;
                (
                    !prev.present[ku],
                    Some(k) != reused_row,
                    !under_roots(ku),
                    prev.followed[ku],
                    prev.folder(ku) != folder,
                    prev.name(ku) != f.name(),
                )
            })
        });
        if let (None, Some(j), false, 1) = (pick, same, follow, f.stat.nlink) {
            // Where the walk also found this inode: a row's own path that still held it,
            // or the path of a file that took a row by a move in this loop.
            // Or a row's own path the walk passed (before the file came back to it) that
            // holds it now: this name saw it on its way (`found_at_own_path` settles the row).
            let elsewhere = |k: u32| -> Option<&[u8]> {
                let ku = k as usize;
                if prev.seen[ku].load(Relaxed) && !reused.contains(&k) && !taken.contains_key(&k) {
                    return (!prev.followed[ku]).then(|| prev.path(ku));
                }
                let unseen = !prev.seen[ku].load(Relaxed) && !taken.contains_key(&k) && !prev.followed[ku];
                if unseen && prev.path(ku) != &*f.path && holds(k) {
                    return Some(prev.path(ku));
                }
                taken.get(&k).map(|&at| &*out[at].0.path)
            };
            if prev
                .same_identity(j)
                .into_iter()
                .filter_map(elsewhere)
                .any(|other| !one_file_two_ways(other, &f))
            {
                out.push((f, Plan::Elsewhere));
                continue;
            }
        }
        let digest = pick.and_then(|k| prev.digest(k as usize)).or_else(|| {
            same.filter(|&j| !prev.born_after_seen(j as usize, f.born_ns))
                .and_then(|j| prev.digest(j as usize))
        });
        match (pick, reused_row) {
            // A row already gone when the last scan ran, of this inode, against the row of
            // this very path: settled once every file has its plan (see `later` below).
            // The path's row wins while it is present (the file saved over) or describes
            // this very file come back; a gone path row of another file yields to the
            // inode's own row (a hard link made again). If another file takes the path's
            // row, this one takes the row it picked (when still free).
            (Some(k), Some(i)) if k != i && !prev.present[k as usize] && !taken.contains_key(&i) => {
                later.push((f, i, Some((k, digest))))
            }
            (Some(k), _) => {
                taken.insert(k, out.len());
                prev.mark_seen(k);
                displaced.extend(reused_row);
                // Its own row, at its own path: the file came back, it did not move.
                let (change, digest) = if Some(k) == reused_row {
                    (Change::Revived, digest)
                } else {
                    moved(k, &f, digest)
                };
                out.push((
                    f,
                    Plan::Row {
                        prev: Some(prev.media_id(k as usize)),
                        change,
                        digest,
                        hash: want_hash && digest.is_none(),
                    },
                ));
            }
            (None, None) => out.push((
                f,
                Plan::Row {
                    prev: None,
                    change: Change::New,
                    digest,
                    hash: want_hash && digest.is_none(),
                },
            )),
            (None, Some(i)) => later.push((f, i, None)),
        }
    }
    for (f, i, fallback) in later {
        let iu = i as usize;
        // The path's own row, unless another file took it: while present (the file saved
        // over) or when this is its file come back. Else the row of this file's inode, when
        // one is free (a hard link made again); else, at a gone file's path, its bytes decide.
        let own_row = !taken.contains_key(&i) && (prev.present[iu] || gone_file_back(prev, iu, &f));
        let plan = if own_row {
            Plan::Row {
                prev: Some(prev.media_id(iu)),
                change: if prev.present[iu] {
                    Change::Changed
                } else {
                    Change::Revived
                },
                digest: None,
                hash: want_hash,
            }
        } else if let Some((k, digest)) = fallback.filter(|(k, _)| !taken.contains_key(k)) {
            taken.insert(k, out.len());
            prev.mark_seen(k);
            let (change, digest) = moved(k, &f, digest);
            Plan::Row {
                prev: Some(prev.media_id(k as usize)),
                change,
                digest,
                hash: want_hash && digest.is_none(),
            }
        } else if taken.contains_key(&i) {
            Plan::Row {
                prev: None,
                change: Change::New,
                digest: None,
                hash: want_hash,
            }
        } else {
            recover_or_new(prev, iu, &f, want_hash)
        };
        out.push((f, plan));
    }
    // A path another known file was moved onto: its old file, found nowhere else, is gone.
    for i in displaced {
        if !taken.contains_key(&i) {
            prev.unmark_seen(i);
        }
    }
    (out, sighted)
}

/// Rows under the roots the walk did not see whose own path holds their file now (same
/// device, inode, size and mtime): renamed away and back, or moved into a folder the walk
/// had passed, as the scan ran. Seen where they are, as the walk would have seen them,
/// never left to go missing (and lose their tags to a `--prune`) for a race. `also`:
/// rows of any status whose inode the walk found under another name. Never a row of a
/// path the walk found and settled (`settled`, or another row of that path it saw): that
/// file has its row, and a gone file's row sharing its path stays as it was.
fn found_at_own_path(
    prev: &PrevState,
    want_hash: bool,
    mut also: Vec<u32>,
    looked_at: &(dyn Fn(usize) -> bool + Sync),
    settled: &HashSet<&[u8]>,
    cancel: &AtomicBool,
) -> Vec<(WalkedFile, Plan)> {
    let unseen = |k: usize| !prev.seen[k].load(Relaxed) && !prev.followed[k] && looked_at(k);
    let path_walked = |k: usize| {
        let name = prev.name(k);
        settled.contains(prev.path(k))
            || prev
                .folder_rows(prev.folder(k))
                .iter()
                .any(|&j| j as usize != k && prev.name(j as usize) == name && prev.seen[j as usize].load(Relaxed))
    };
    also.retain(|&k| unseen(k as usize));
    also.sort_unstable();
    also.dedup();
    let mut rows: Vec<u32> = (0..prev.len())
        .into_par_iter()
        .filter(|&i| prev.present[i] && unseen(i))
        .map(|i| i as u32)
        .collect();
    rows.append(&mut also);
    rows.sort_unstable();
    rows.dedup();
    let found: Vec<(u32, FileStat, i64)> = rows
        .into_par_iter()
        .filter_map(|k| {
            let ku = k as usize;
            if cancel.load(Relaxed) {
                return None;
            }
            let c = CString::new(prev.path(ku)).ok()?;
            let (mode, stat, born_ns) =
                crate::walk::stat_born(CWD, c.as_c_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW).ok()?;
            let old = &prev.stat[ku];
            let same = rustix::fs::FileType::from_raw_mode(mode) == rustix::fs::FileType::RegularFile
                && (stat.id, stat.len, stat.mtime_ns) == (old.id, old.len, old.mtime_ns);
            same.then_some((k, stat, born_ns))
        })
        .collect();
    // A path a scan without -L records runs through no link, and names the file exactly.
    let listings = Listings::default();
    let real = std::cell::RefCell::new(hashbrown::HashMap::<Vec<u8>, bool>::new());
    found
        .into_iter()
        .filter(|&(k, ..)| {
            // (Looked at only for the few rows whose file is at their path.)
            if path_walked(k as usize) {
                return false;
            }
            let folder = prev.folder(k as usize);
            *real
                .borrow_mut()
                .entry_ref(folder)
                .or_insert_with(|| real_folder(folder))
                && listings.names_exactly(prev.path(k as usize))
        })
        .filter_map(|(k, stat, born_ns)| {
            let ku = k as usize;
            let path = prev.path(ku);
            let f = WalkedFile {
                path: path.into(),
                name_start: (path.len() - prev.name(ku).len()) as u32,
                stat,
                born_ns,
            };
            match plan_file(&f, Some(k), prev, want_hash) {
                Plan::Defer(_) => {
                    prev.unmark_seen(k); // another row of its inode to settle: left as it was
                    None
                }
                plan => Some((f, plan)),
            }
        })
        .collect()
}

/// Whether a path names its file exactly, where a file system that folds case finds a
/// file under a name it does not hold (an `IMG.JPG` row's path finds the `img.jpg` it was
/// renamed to, and `DIR/a.jpg` the `dir/a.jpg` of a folder renamed so). A name with its
/// ASCII letters' case swapped that finds the same file tells such a file system; there
/// each part of the path is looked for in its folder's names, each folder listed once.
#[derive(Default)]
struct Listings(std::cell::RefCell<hashbrown::HashMap<Vec<u8>, Option<Names>>>);

type Names = hashbrown::HashSet<Vec<u8>>;

impl Listings {
    fn names_exactly(&self, path: &[u8]) -> bool {
        if !path.starts_with(b"/") {
            return true;
        }
        // The parts of the path, as (start, end) within it.
        let mut parts = Vec::new();
        let mut start = 1;
        while start < path.len() {
            let end = path[start..]
                .iter()
                .position(|&b| b == b'/')
                .map_or(path.len(), |i| start + i);
            if end > start {
                parts.push((start, end));
            }
            start = end + 1;
        }
        // The deepest part with a letter, its case swapped: the same file found so tells
        // a file system that folds case.
        let Some(&(a, b)) = parts
            .iter()
            .rev()
            .find(|&&(a, b)| path[a..b].iter().any(u8::is_ascii_alphabetic))
        else {
            return true;
        };
        let id = |p: &[u8]| {
            let c = CString::new(p).ok()?;
            rustix::fs::lstat(c.as_c_str())
                .ok()
                .map(|st| FileStat::from_stat(&st).id)
        };
        let mut other = path[..b].to_vec();
        other[a..]
            .iter_mut()
            .filter(|c| c.is_ascii_alphabetic())
            .for_each(|c| *c ^= 0x20);
        let here = id(&path[..b]);
        if here.is_none() || here != id(&other) {
            return true; // the swapped name is another file, or none: case counts here
        }
        parts.iter().all(|&(a, b)| self.holds(&path[..a], &path[a..b]))
    }

    fn holds(&self, folder: &[u8], name: &[u8]) -> bool {
        let mut all = self.0.borrow_mut();
        let names = all.entry_ref(folder).or_insert_with(|| {
            let c = CString::new(folder).ok()?;
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
            let fd = rustix::fs::openat(CWD, c.as_c_str(), flags, Mode::empty()).ok()?;
            let mut names = hashbrown::HashSet::new();
            let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 64 * 1024];
            let mut dir = rustix::fs::RawDir::new(&fd, &mut buf);
            while let Some(ent) = dir.next() {
                names.insert(ent.ok()?.file_name().to_bytes().to_vec());
            }
            Some(names)
        });
        // A folder that cannot be listed cannot tell: the path is taken as it is.
        names.as_ref().is_none_or(|n| n.contains(name))
    }
}

/// Whether row `i`'s path holds the row's file (device and inode) now. A link on the way
/// (the last component, or a folder above it) counts only for a row the scan that found
/// it may have reached through links (`-L`): a file or folder replaced by a link to where
/// it went has moved.
fn still_holds(prev: &PrevState, i: usize, real: &std::cell::RefCell<hashbrown::HashMap<Vec<u8>, bool>>) -> bool {
    let path = prev.path(i);
    let Ok(c) = CString::new(path) else {
        return false;
    };
    let id = |st: rustix::fs::Stat| FileStat::from_stat(&st).id;
    let holds = match rustix::fs::lstat(c.as_c_str()) {
        Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink => {
            prev.followed[i] && rustix::fs::stat(c.as_c_str()).is_ok_and(|st| id(st) == prev.stat[i].id)
        }
        Ok(st) => id(st) == prev.stat[i].id,
        Err(_) => false,
    };
    // Paths a scan without -L records run through no link (its roots are real paths).
    let folder = prev.folder(i);
    holds
        && (prev.followed[i]
            || *real
                .borrow_mut()
                .entry_ref(folder)
                .or_insert_with(|| real_folder(folder)))
}

/// Whether file `f` and the path `other`, which held `f`'s inode when the walk passed,
/// are one file reached two ways (a folder or a file mounted twice; a hard link a file
/// system shows with one link, as sshfs does): both hold it now, on two mounts, or with
/// the change time the walk saw (a rename sets it). Else, as a file with one link has one
/// name on a mount (and the paths of a scan without -L run through no link), the inode
/// moved from one to the other as the walk ran, perhaps to and fro between the looks.
fn one_file_two_ways(other: &[u8], f: &WalkedFile) -> bool {
    use rustix::fs::{AtFlags, StatxFlags};
    // (mount id where the kernel names it, change time) of the path, if it holds the inode.
    let look = |path: &[u8]| -> Option<(Option<u64>, i64)> {
        let c = CString::new(path).ok()?;
        let flags = StatxFlags::BASIC_STATS | StatxFlags::MNT_ID;
        match rustix::fs::statx(CWD, c.as_c_str(), AtFlags::SYMLINK_NOFOLLOW, flags) {
            Ok(st) => {
                let (stat, _) = FileStat::from_statx(&st);
                let mnt = (st.stx_mask & StatxFlags::MNT_ID.bits() != 0).then_some(st.stx_mnt_id);
                (stat.id == f.stat.id).then_some((mnt, stat.ctime_ns))
            }
            Err(rustix::io::Errno::NOSYS) => {
                let st = FileStat::from_stat(&rustix::fs::lstat(c.as_c_str()).ok()?);
                (st.id == f.stat.id).then_some((None, st.ctime_ns))
            }
            Err(_) => None,
        }
    };
    match (look(other), look(&f.path)) {
        (Some((Some(a), _)), Some((Some(b), _))) if a != b => true,
        (Some((_, t)), Some((_, u))) => t == f.stat.ctime_ns && u == f.stat.ctime_ns,
        _ => false,
    }
}

/// How much later than its folder's mtime a renamed file's change time may be: a rename
/// sets both, the folder's first on some file systems, and a coarse clock can tick between.
const RENAME_TICK_NS: i64 = 20_000_000;
const COARSE_TICK_NS: i64 = 2_000_000_000;

/// Whether file `f`, found moved with row `k`'s inode, size and mtime, was also written
/// since that row was read (with its mtime put back, as `exiftool -P` does). Its change
/// time moved, but so does a file's own rename or new hard link: what such a move leaves
/// is a folder (the one it was renamed or linked into) changed at or after that time. A
/// change time later than its folder's last change is a write (or a `chmod`), never the
/// move; a folder moved whole changes no file in it. Errs toward reading again.
fn written_as_well(
    prev: &PrevState,
    k: usize,
    f: &WalkedFile,
    folder_times: &std::cell::RefCell<hashbrown::HashMap<Vec<u8>, Option<i64>>>,
) -> bool {
    let was = prev.stat[k].ctime_ns;
    if was == crate::prev::UNKNOWN_CTIME || was == f.stat.ctime_ns {
        return false;
    }
    let folder = &f.path[..f.name_start as usize];
    let changed = *folder_times.borrow_mut().entry_ref(folder).or_insert_with(|| {
        let c = CString::new(if folder.is_empty() { &b"."[..] } else { folder }).ok()?;
        rustix::fs::stat(c.as_c_str())
            .ok()
            .map(|st| FileStat::from_stat(&st).mtime_ns)
    });
    // A folder time in whole seconds comes from a file system that keeps no finer ones
    // (FAT keeps 2 s): the rename's instant is known to that much.
    changed.is_none_or(|m| {
        let tick = if m % 1_000_000_000 == 0 {
            COARSE_TICK_NS
        } else {
            RENAME_TICK_NS
        };
        f.stat.ctime_ns > m.saturating_add(tick)
    })
}

/// Whether `folder` (ending in '/') is its own real path: no symbolic link on the way.
fn real_folder(folder: &[u8]) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let folder = trim_trailing_slashes(folder);
    std::fs::canonicalize(std::ffi::OsStr::from_bytes(folder)).is_ok_and(|real| real.as_os_str().as_bytes() == folder)
}

/// Read the first bytes of a file whose extension says nothing (only in `--no-hash` scans).
fn sniff(path: &[u8]) -> Option<Vec<u8>> {
    let c = CString::new(path).ok()?;
    let fd = rustix::fs::openat(
        CWD,
        c.as_c_str(),
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .ok()?;
    let mut buf = vec![0u8; HEAD_LEN];
    let n = rustix::io::read(&fd, &mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// A file its first bytes file as sound for its container's brands or name alone (see
/// `kind::tracks_may_tell`), with its tracks read: a video where they list one. A file that
/// cannot be opened again keeps what its first bytes said.
fn tracks_read(class: Class, head: &[u8], dirfd: BorrowedFd<'_>, name: &[u8], follow: bool) -> Class {
    if !kind::tracks_may_tell(class, head) {
        return class;
    }
    let Ok(c) = CString::new(name) else {
        return class;
    };
    let nofollow = if follow { OFlags::empty() } else { OFlags::NOFOLLOW };
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | nofollow;
    let Ok(fd) = rustix::fs::openat(dirfd, c.as_c_str(), flags, Mode::empty()) else {
        return class;
    };
    let read = |at: u64, buf: &mut [u8]| rustix::io::pread(&fd, buf, at).ok();
    if kind::tracks_list_video(class, &read) {
        kind::as_video(class)
    } else {
        class
    }
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
    files: FilesBuilder,
    errors: Vec<PathError>,
    batch_rows: usize,
}

impl<'a> Batcher<'a> {
    fn new(tx: &'a Sender<Event>, batch_rows: usize) -> Self {
        // Small at first (a scan may find ten files), then sized by the batches before.
        let rows = batch_rows.min(16_384);
        Batcher {
            tx,
            files: FilesBuilder::with_capacity(rows, rows * 64),
            errors: Vec::new(),
            batch_rows,
        }
    }

    /// Append rows; each batch they fill goes out at once, exactly `batch_rows` long:
    /// DuckDB writes whole row groups straight to the file, and only a partial tail
    /// through its write-ahead log. True if a batch went out.
    fn add_rows(&mut self, rows: Vec<FileRow>) -> Result<bool> {
        let mut sent = false;
        for r in &rows {
            self.files.append(r);
            if self.files.len() >= self.batch_rows {
                self.send_files()?;
                sent = true;
            }
        }
        Ok(sent)
    }

    fn send_files(&mut self) -> Result<()> {
        let (rows, bytes) = (self.files.len(), self.files.path_bytes());
        let batch = self.files.finish()?;
        // The next builder gets room for a whole batch of paths like these, so its buffers
        // are not regrown (and copied) while it fills.
        let per_row = bytes / rows.max(1) + 8;
        self.files = FilesBuilder::with_capacity(self.batch_rows, self.batch_rows * per_row);
        self.tx.send(Event::Files(batch)).map_err(|_| Error::Cancelled)
    }

    fn errors_full(&self) -> bool {
        self.errors.len() >= self.batch_rows
    }

    fn pending(&self) -> bool {
        !self.files.is_empty() || !self.errors.is_empty()
    }

    /// Send everything held, partial batches included.
    fn flush(&mut self) -> Result<()> {
        if !self.errors.is_empty() {
            let b = errors_batch(&self.errors)?;
            self.errors.clear();
            self.tx.send(Event::Errors(b)).map_err(|_| Error::Cancelled)?;
        }
        if !self.files.is_empty() {
            self.send_files()?;
        }
        Ok(())
    }
}

/// Rows and errors on their way to the batcher, a folder's worth at a time.
enum Msg {
    Rows(Vec<FileRow>),
    Errors(Vec<PathError>),
}

/// Gathers messages into batches; sends each batch as it fills, and what is held on a
/// timer so a long hash run commits its progress.
fn collect(mrx: Receiver<Msg>, mut b: Batcher<'_>, flush_after: Duration, cancel: &AtomicBool) -> Result<()> {
    let mut last = Instant::now();
    let res = (|| {
        loop {
            match mrx.recv_timeout(flush_after) {
                Ok(Msg::Rows(r)) => {
                    if b.add_rows(r)? {
                        last = Instant::now();
                    }
                }
                Ok(Msg::Errors(e)) => b.errors.extend(e),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            }
            if b.errors_full() || (last.elapsed() >= flush_after && b.pending()) {
                b.flush()?;
                last = Instant::now();
            }
        }
        b.flush()
    })();
    if res.is_err() {
        // Python stopped listening: stop the workers too.
        cancel.store(true, Relaxed);
    }
    res
}

/// A unit of hashing work: some files of one folder.
struct HashJob {
    dir: Arc<[u8]>,
    files: Vec<(WalkedFile, Option<MediaId>, Change)>,
    /// The folder as the walk opened it (see `DirFiles::fd`); else it is opened by path.
    fd: Option<rustix::fd::OwnedFd>,
}

/// A hash job of the phase after the walk holds at most this many files, or about this
/// many bytes, so that jobs spread over the threads.
const JOB_FILES: usize = 256;
const JOB_BYTES: u64 = 256 << 20;

/// `files` of the folder `dir`, to hash in the phase after the walk, as jobs of at most
/// `JOB_FILES` files or about `JOB_BYTES` bytes.
fn into_jobs(dir: &Arc<[u8]>, files: Vec<(WalkedFile, Option<MediaId>, Change)>) -> Vec<HashJob> {
    let mut jobs = Vec::new();
    let (mut job, mut bytes) = (Vec::new(), 0u64);
    for f in files {
        bytes += f.0.stat.len.0;
        job.push(f);
        if job.len() >= JOB_FILES || bytes >= JOB_BYTES {
            jobs.push(std::mem::take(&mut job));
            bytes = 0;
        }
    }
    if !job.is_empty() {
        jobs.push(job);
    }
    jobs.into_iter()
        .map(|files| HashJob {
            dir: dir.clone(),
            files,
            fd: None,
        })
        .collect()
}

#[derive(Default)]
struct Counts {
    new: AtomicU64,
    changed: AtomicU64,
    hashed: AtomicU64,
    revived: AtomicU64,
    moved: AtomicU64,
    unchanged: AtomicU64,
    /// Files gone (deleted, or replaced by a folder or FIFO) between their listing and
    /// their read, or in a folder that could no longer be opened: no row, so counted in
    /// none of the above, nor as hashed.
    gone_before_read: AtomicU64,
}

impl Counts {
    fn counter(&self, c: Change) -> Option<&AtomicU64> {
        Some(match c {
            Change::New => &self.new,
            Change::Changed => &self.changed,
            Change::Hashed => &self.hashed,
            // Counted once hashed (see `settle`).
            Change::Recheck(_) | Change::Recover(_) | Change::MovedRecheck(..) => return None,
            Change::Revived => &self.revived,
            Change::Moved => &self.moved,
            Change::Touched => &self.unchanged,
        })
    }

    /// A planned file that vanished before it was read: taken back out of its count.
    fn gone(&self, c: Change) {
        if let Some(n) = self.counter(c) {
            n.fetch_sub(1, Relaxed);
        }
        self.gone_before_read.fetch_add(1, Relaxed);
    }

    fn add(&self, c: Change) {
        match c {
            Change::New => &self.new,
            Change::Changed => &self.changed,
            Change::Hashed => &self.hashed,
            // Counted once hashed (see `settle`).
            Change::Recheck(_) | Change::Recover(_) | Change::MovedRecheck(..) => return,
            Change::Revived => &self.revived,
            Change::Moved => &self.moved,
            Change::Touched => &self.unchanged,
        }
        .fetch_add(1, Relaxed);
    }
}

/// Plan one folder's files as soon as the walker lists them: rows that need no reading go
/// straight to the batcher (so the catalog writes overlap the walk), the rest become jobs.
fn plan_dir(
    d: DirFiles,
    prev: &PrevState,
    want_hash: bool,
    out: &Outlets<'_>,
    deferred: &Mutex<Vec<(WalkedFile, Deferred)>>,
    just_listed: bool,
) {
    let mut matcher = FolderMatcher::new(prev);
    let DirFiles { dir, files, fd } = d;
    let planned = files.into_iter().map(|f| {
        if f.stat.is_unknown() {
            // Listed by name only, in a first scan that hashes (see `run`): a new file.
            assert!(
                want_hash && prev.len() == 0,
                "a file listed by name only in a scan with rows to compare"
            );
            let p = Plan::Row {
                prev: None,
                change: Change::New,
                digest: None,
                hash: true,
            };
            return (f, p);
        }
        let found = matcher.find(&f.path, f.name_start as usize);
        let p = plan_file(&f, found, prev, want_hash);
        (f, p)
    });
    dispatch(&dir, fd, planned, out, Some(deferred), just_listed);
}

/// Files below this size that need hashing are hashed by the walker thread that just listed
/// and stat'ed their folder, while the kernel's entries for those names are still in the
/// CPU's caches: opening a file by name is a second lookup of that name, and done at once
/// it costs little. Hashed after the whole walk instead, each lookup misses the caches
/// (about 0.9 CPU-s more per million small files). Larger files, where that is noise
/// beside their bytes, wait for the hash phase, whose byte total gives the progress bar
/// its ETA; so do the files of folders listed while the catalog's previous state was
/// still loading (they are no longer in the caches, and one thread would hash them all).
const INLINE_MAX: u64 = 1 << 20;

/// Where planned files go (rows to the collector, jobs to the hash phase), what hashing
/// them needs, and the counts they add to.
struct Outlets<'a> {
    counts: &'a Counts,
    mtx: &'a Sender<Msg>,
    jobs: &'a Mutex<Vec<HashJob>>,
    cancel: &'a AtomicBool,
    progress: &'a Progress,
    unstable: &'a AtomicU64,
    hash_errors: &'a AtomicU64,
    /// Whether the walk follows symbolic links (`-L`): else a file is never read through
    /// a link put at its name since it was listed.
    follow: bool,
    /// Rows a moved file took, given up once its bytes showed it is another file.
    released: &'a Mutex<Vec<u32>>,
    /// The stats the walk took of files gone from their names by the time they were
    /// read: see `WalkOutput::glimpsed`.
    glimpsed: &'a Mutex<Vec<FileStat>>,
}

impl Outlets<'_> {
    fn glimpse(&self, f: &WalkedFile) {
        if !f.stat.is_unknown() {
            self.glimpsed.lock().unwrap_or_else(|e| e.into_inner()).push(f.stat);
        }
    }
}

/// Send planned files on: rows that need no reading to the batcher, small files to hash
/// straight to hashing when `inline` (see `INLINE_MAX`), the rest to hash jobs.
fn dispatch(
    dir: &[u8],
    fd: Option<rustix::fd::OwnedFd>,
    planned: impl Iterator<Item = (WalkedFile, Plan)>,
    out: &Outlets<'_>,
    deferred: Option<&Mutex<Vec<(WalkedFile, Deferred)>>>,
    inline: bool,
) {
    let dir: Arc<[u8]> = dir.into();
    let mut rows = Vec::new();
    let mut later = Vec::new();
    let mut defer = Vec::new();
    let mut now = Vec::new();
    for (f, plan) in planned {
        match plan {
            Plan::Defer(d) => defer.push((f, d)),
            Plan::Skip => {
                out.counts.unchanged.fetch_add(1, Relaxed);
            }
            Plan::Elsewhere => {
                // Seen by the walk (files_seen), never planned a row or a read.
                out.hash_errors.fetch_add(1, Relaxed);
                let _ = out.mtx.send(Msg::Errors(vec![PathError {
                    path: f.path.clone(),
                    stage: "vanished",
                    message: "renamed as the scan ran (its file was also found at another name); \
                              the next scan records where it is"
                        .into(),
                    errno: None,
                }]));
            }
            Plan::Row {
                prev: id,
                change,
                digest,
                hash,
            } => {
                out.counts.add(change);
                // A file not yet stat-ed is hashed now whatever `inline` says: its stat,
                // taken as it is opened, tells whether it waits for the hash phase after all.
                if hash && (f.stat.is_unknown() || inline && f.stat.len.0 < INLINE_MAX) {
                    now.push((f, id, change));
                } else if hash {
                    later.push((f, id, change));
                } else {
                    let class = classify_unread(&f);
                    rows.push(FileRow::of(f, class, digest, id, change));
                }
            }
        }
    }
    if !defer.is_empty() {
        if let Some(d) = deferred {
            d.lock().unwrap().extend(defer);
        }
    }
    if !later.is_empty() {
        let jobs = into_jobs(&dir, later);
        out.jobs.lock().unwrap().extend(jobs);
    }
    if !rows.is_empty() {
        let _ = out.mtx.send(Msg::Rows(rows));
    }
    if !now.is_empty() {
        // Of files not yet stat-ed, once they are (`list_unlisted`).
        let bytes: u64 = now
            .iter()
            .filter(|(f, _, _)| !f.stat.is_unknown())
            .map(|(f, _, _)| f.stat.len.0)
            .sum();
        out.progress.hash_files_total.fetch_add(now.len() as u64, Relaxed);
        out.progress.hash_bytes_total.fetch_add(bytes, Relaxed);
        hash_job(HashJob { dir, files: now, fd }, out);
    }
}

fn run(
    opts: &ScanOptions,
    slot: &PrevSlot,
    cancel: &AtomicBool,
    progress: &Progress,
    tx: &Sender<Event>,
) -> Result<ScanTotals> {
    let counts = Counts::default();
    // The roots as a set: whether a row lies under one is a few lookups of its folders,
    // not a comparison with each root (`scan ~/Media/*` may name thousands).
    let root_set: HashSet<&[u8]> = opts.roots.iter().map(|r| trim_trailing_slashes(r)).collect();
    let jobs: Mutex<Vec<HashJob>> = Mutex::new(Vec::new());
    let deferred: Mutex<Vec<(WalkedFile, Deferred)>> = Mutex::new(Vec::new());
    let unstable = AtomicU64::new(0);
    let hash_errors = AtomicU64::new(0);
    let batcher = Batcher::new(tx, opts.batch_rows.max(1));
    let (mtx, mrx) = bounded::<Msg>(1024);
    let released = Mutex::new(Vec::new());
    let glimpsed_ids = Mutex::new(Vec::new());
    let sighted: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    progress.phase.store(phase::WALK, Relaxed);

    let (walk_res, collect_res) = std::thread::scope(|s| {
        let collector = s.spawn(|| collect(mrx, batcher, opts.flush_after, cancel));
        let walk_res = (|| -> Result<crate::walk::WalkOutput> {
            let out = Outlets {
                counts: &counts,
                mtx: &mtx,
                jobs: &jobs,
                cancel,
                progress,
                unstable: &unstable,
                hash_errors: &hash_errors,
                follow: opts.walk.follow_symlinks,
                released: &released,
                glimpsed: &glimpsed_ids,
            };
            let plan = |d: DirFiles, prev: &PrevState, just_listed: bool| {
                plan_dir(d, prev, opts.hash, &out, &deferred, just_listed)
            };
            // Walk threads that go on while the previous state loads: all but two (the
            // load keeps about two cores busy, the thread copying the rows in and DuckDB
            // reading them), at least one. On many cores, waiting walkers would only
            // leave cores idle while the load, not the walk, sets the pace.
            let threads = rayon::current_num_threads();
            let walkers = threads.saturating_sub(2).max(1);
            let sink = |d: DirFiles| match slot.offer(d) {
                Offer::Ready(prev, ds) => {
                    // The folder just listed comes last, after any held while the state loaded.
                    let last = ds.len().saturating_sub(1);
                    for (i, d) in ds.into_iter().enumerate() {
                        plan(d, prev, i == last);
                    }
                }
                Offer::Held => slot.hold_back(cancel, threads, walkers),
            };
            // With no previous rows to compare with, every file is new and read whole: none
            // needs its stat before it is opened (see `WalkOptions::defer_file_stat`).
            let walk_opts = WalkOptions {
                defer_file_stat: opts.hash && slot.state.get().is_some_and(|p| p.len() == 0),
                ..opts.walk.clone()
            };
            let walked = walk(&opts.roots, &walk_opts, cancel, &progress.walk, &sink)?;
            let (prev, held) = slot.wait(cancel)?;
            held.into_par_iter().for_each(|d| plan(d, prev, false));
            let settled = {
                // Rows the walk did not look at are not known to have moved: their files
                // may still be there. Behind a link it did not follow, only rows a scan
                // found through links: a file where the link is now was replaced by it.
                let (held, links) = unlooked(&walked);
                let unlooked = |k: usize| {
                    held_within_root(prev.path(k), &held, &root_set)
                        || (prev.followed[k] && held_within_root(prev.path(k), &links, &root_set))
                };
                let under_roots = |k: usize| at_or_below_any(prev.path(k), &root_set);
                let deferred = std::mem::take(&mut *deferred.lock().unwrap());
                let (mut settled, seen_elsewhere) = resolve_deferred(
                    deferred,
                    prev,
                    opts.hash,
                    opts.walk.follow_symlinks,
                    &unlooked,
                    &under_roots,
                );
                // Not the paths the walk passes by on purpose: the catalog's own files, and
                // the temporaries MediaForge renames into place.
                let skipped: HashSet<&[u8]> = opts.walk.skip.iter().map(|p| trim_trailing_slashes(p)).collect();
                let looked_at = |k: usize| {
                    under_roots(k)
                        && !unlooked(k)
                        && !at_or_below_any(prev.path(k), &skipped)
                        && !crate::walk::is_own_temporary(prev.name(k))
                };
                let paths: HashSet<&[u8]> = settled.iter().map(|(f, _)| &*f.path).collect();
                let back = found_at_own_path(prev, opts.hash, seen_elsewhere.clone(), &looked_at, &paths, cancel);
                // Files seen, as the walk would have counted them.
                progress.walk.files.fetch_add(back.len() as u64, Relaxed);
                progress
                    .walk
                    .bytes
                    .fetch_add(back.iter().map(|(f, _)| f.stat.len.0).sum(), Relaxed);
                settled.extend(back);
                *sighted.lock().unwrap() = seen_elsewhere;
                settled
            };
            for (f, plan) in settled {
                let dir = f.path[..(f.name_start as usize).saturating_sub(1).max(1)].to_vec();
                dispatch(&dir, None, std::iter::once((f, plan)), &out, None, false);
            }
            if !walked.errors.is_empty() {
                let _ = mtx.send(Msg::Errors(walked.errors.clone()));
            }
            let jobs = std::mem::take(&mut *jobs.lock().unwrap());
            let (files, bytes) = jobs
                .iter()
                .flat_map(|j| j.files.iter())
                .fold((0, 0), |(n, b), (f, _, _)| (n + 1, b + f.stat.len.0));
            progress.hash_phase_files.store(files, Relaxed);
            progress.hash_phase_bytes.store(bytes, Relaxed);
            progress.hash_files_total.fetch_add(files, Relaxed);
            progress.hash_bytes_total.fetch_add(bytes, Relaxed);
            progress.phase.store(phase::HASH, Relaxed);
            // Jobs are consumed: each file's path moves into its row rather than being copied.
            jobs.into_par_iter().for_each(|job| {
                if !cancel.load(Relaxed) {
                    hash_job(job, &out);
                }
            });
            Ok(walked)
        })();
        drop(mtx);
        let collect_res = collector
            .join()
            .unwrap_or_else(|_| Err(Error::InvalidInput("internal error: collector panicked".into())));
        (walk_res, collect_res)
    });
    let walked = walk_res?;
    collect_res?;
    if cancel.load(Relaxed) {
        return Err(Error::Cancelled);
    }
    let prev = slot.state.get().ok_or(Error::Cancelled)?;
    for row in released.into_inner().unwrap_or_else(|e| e.into_inner()) {
        prev.seen[row as usize].store(false, Relaxed); // its file is elsewhere, or gone
    }

    // Vanished rows: present ones under the roots the walk did not see, never at or below
    // a path it could not read or was told to leave out, never after a cut-short walk.
    let (not_looked_at, links) = unlooked(&walked);
    let unseen: Vec<(MediaId, Unseen)> = (0..prev.len())
        .into_par_iter()
        .filter(|&i| prev.present[i] && !prev.seen[i].load(Relaxed))
        .filter(|&i| at_or_below_any(prev.path(i), &root_set))
        .map(|i| {
            let p = prev.path(i);
            let why = if held_within_root(p, &not_looked_at, &root_set) {
                Unseen::Kept
            } else if held_within_root(p, &links, &root_set) {
                Unseen::Linked
            } else {
                Unseen::Vanished
            };
            (prev.media_id(i), why)
        })
        .collect();
    let of = |what: Unseen| -> Vec<MediaId> { unseen.iter().filter(|(_, w)| *w == what).map(|(id, _)| *id).collect() };
    let (vanished, kept, linked) = (of(Unseen::Vanished), of(Unseen::Kept), of(Unseen::Linked));
    // Devices a vanished row was on of which the walk saw no present row at all: a disk
    // gone whole (not mounted), not one renumbered (a USB disk or NFS share mounted again
    // gets another device number: its files are seen, under the new one).
    let gone_devs: Vec<u64> = if unseen.iter().any(|(_, w)| *w == Unseen::Vanished) {
        let present = (0..prev.len()).filter(|&i| prev.present[i]);
        let mut seen_on: HashSet<u64> = HashSet::new();
        let mut lost_on: HashSet<u64> = HashSet::new();
        for i in present {
            if prev.seen[i].load(Relaxed) {
                seen_on.insert(prev.stat[i].id.dev);
            } else if at_or_below_any(prev.path(i), &root_set) {
                lost_on.insert(prev.stat[i].id.dev);
            }
        }
        let mut gone: Vec<u64> = lost_on.difference(&seen_on).copied().collect();
        gone.sort_unstable();
        gone
    } else {
        Vec::new()
    };
    if !vanished.is_empty() {
        tx.send(Event::Vanished(ids_batch(&vanished)?))
            .map_err(|_| Error::Cancelled)?;
    }
    if !kept.is_empty() {
        tx.send(Event::Kept(ids_batch(&kept)?)).map_err(|_| Error::Cancelled)?;
    }
    if !linked.is_empty() {
        tx.send(Event::Linked(ids_batch(&linked)?))
            .map_err(|_| Error::Cancelled)?;
    }
    // Rows whose inode, with their size and mtime, the walk found under another name,
    // not seen where they are (renamed again as the scan ran), or gone before this scan
    // and perhaps not back after all (a file found at its own path, then gone before it
    // was read): the file is somewhere.
    // So are those of a file listed but gone when looked at (`WalkOutput::glimpsed`).
    let mut glimpsed = sighted.into_inner().unwrap_or_else(|e| e.into_inner());
    for id in &walked.glimpsed {
        glimpsed.extend(prev.rows_with_id(id));
    }
    // And the rows with the inode, size and mtime of a file gone when it was read.
    for st in glimpsed_ids.into_inner().unwrap_or_else(|e| e.into_inner()) {
        let same = |&k: &u32| prev.stat[k as usize].len == st.len && prev.stat[k as usize].mtime_ns == st.mtime_ns;
        glimpsed.extend(prev.rows_with_id(&st.id).into_iter().filter(same));
    }
    glimpsed.retain(|&k| !prev.present[k as usize] || !prev.seen[k as usize].load(Relaxed));
    glimpsed.sort_unstable();
    glimpsed.dedup();
    if !glimpsed.is_empty() {
        let ids: Vec<MediaId> = glimpsed.iter().map(|&k| prev.media_id(k as usize)).collect();
        tx.send(Event::Glimpsed(ids_batch(&ids)?))
            .map_err(|_| Error::Cancelled)?;
    }
    if !links.is_empty() {
        let held: Vec<MediaId> = (0..prev.len())
            .into_par_iter()
            .filter(|&i| !prev.present[i] && held_within_root(prev.path(i), &links, &root_set))
            .map(|i| prev.media_id(i))
            .collect();
        if !held.is_empty() {
            tx.send(Event::LinkHeld(ids_batch(&held)?))
                .map_err(|_| Error::Cancelled)?;
        }
    }
    progress.phase.store(phase::DONE, Relaxed);
    Ok(ScanTotals {
        files_seen: progress.walk.files.load(Relaxed),
        bytes_seen: progress.walk.bytes.load(Relaxed),
        dirs: progress.walk.dirs.load(Relaxed),
        new: counts.new.load(Relaxed),
        changed: counts.changed.load(Relaxed),
        hashed: counts.hashed.load(Relaxed),
        revived: counts.revived.load(Relaxed),
        moved: counts.moved.load(Relaxed),
        unchanged: counts.unchanged.load(Relaxed),
        vanished: vanished.len() as u64,
        hashed_files: progress
            .hash_files_done
            .load(Relaxed)
            .saturating_sub(counts.gone_before_read.load(Relaxed)),
        hashed_bytes: progress.hash_bytes_done.load(Relaxed),
        unstable: unstable.load(Relaxed),
        errors: walked.errors.len() as u64 + hash_errors.load(Relaxed),
        excluded: walked.excluded,
        excluded_by_options: walked.excluded_by_options,
        gone_devs,
    })
}

/// Why a present row under the roots was not seen.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unseen {
    Vanished,
    Kept,
    Linked,
}

/// A file hashed again because its change time moved: changed if its bytes did (counted
/// here, not when planned); unchanged if they did not, or if no digest came (unstable or
/// unreadable, which its error row says). A file at the path of a gone row (`Recover`):
/// that row come back if it holds the same bytes, else a new file, without the row's id.
/// A moved file found to be another (see `Change::MovedRecheck`) lets its row go: `released`.
fn settle(
    change: Change,
    digest: Option<Digest>,
    id: Option<MediaId>,
    counts: &Counts,
    released: &Mutex<Vec<u32>>,
) -> (Change, Option<MediaId>) {
    let settled = match change {
        Change::Recheck(was) if digest.is_some_and(|d| d != was) => (Change::Changed, id),
        Change::Recheck(_) => (Change::Hashed, id),
        Change::Recover(was) if digest == Some(was) => (Change::Revived, id),
        Change::Recover(_) => (Change::New, None),
        Change::MovedRecheck(was, _, true) if digest.is_some_and(|d| d != was) => (Change::Changed, id),
        Change::MovedRecheck(was, row, false) if digest.is_some_and(|d| d != was) => {
            released.lock().unwrap_or_else(|e| e.into_inner()).push(row);
            (Change::New, None)
        }
        Change::MovedRecheck(..) => (Change::Moved, id),
        _ => return (change, id),
    };
    counts.add(settled.0);
    settled
}

fn hash_job(job: HashJob, out: &Outlets<'_>) {
    thread_local! {
        /// The hashing buffers of a thread: its read buffer and its small files' arena.
        static ROOM: std::cell::RefCell<(Vec<u8>, Vec<u8>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
    }
    let mut room = ROOM.with(|r| r.take());
    hash_job_in(job, out, (&mut room.0, &mut room.1));
    ROOM.with(|r| *r.borrow_mut() = room);
}

fn hash_job_in(job: HashJob, out: &Outlets<'_>, room: (&mut Vec<u8>, &mut Vec<u8>)) {
    let Outlets {
        cancel,
        progress,
        hash_errors: errors,
        mtx: tx,
        ..
    } = *out;
    let mut rows = Vec::with_capacity(job.files.len());
    let mut errs = Vec::new();
    let fail = |errs: &mut Vec<PathError>, path: &[u8], stage: &'static str, message: String, errno: Option<i32>| {
        push_error(errors, errs, path, stage, message, errno)
    };
    let dirfd = job.fd.map(Ok).unwrap_or_else(|| {
        CString::new(&*job.dir)
            .map_err(|_| rustix::io::Errno::INVAL)
            .and_then(|c| {
                rustix::fs::openat(
                    CWD,
                    c.as_c_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
            })
    });
    let dirfd = match dirfd {
        Ok(fd) => fd,
        Err(e) => {
            // The folder gone (or replaced by a file) since it was listed: its files
            // vanished; otherwise they could not be read.
            let gone = e == rustix::io::Errno::NOENT || e == rustix::io::Errno::NOTDIR;
            for (f, _, change) in &job.files {
                // No row for any of them (a file of a folder that cannot be opened keeps
                // its catalog row as it was).
                if gone {
                    out.glimpse(f);
                }
                out.counts.gone(*change);
                progress.hash_files_done.fetch_add(1, Relaxed);
                fail(
                    &mut errs,
                    &f.path,
                    if gone { "vanished" } else { "hash" },
                    describe_io(&e.into()),
                    Some(e.raw_os_error()),
                );
            }
            let _ = tx.send(Msg::Errors(errs));
            return;
        }
    };
    // Small files are read into the arena and hashed together, a block of a different
    // file in each SIMD lane (`lanes`), a batch at a time; larger ones are hashed as read,
    // through `buf`. Both are the thread's, kept from job to job with their capacity.
    let (buf, arena) = room;
    arena.clear();
    let mut inputs: Vec<(usize, usize)> = Vec::new();
    let mut read: Vec<(WalkedFile, Option<MediaId>, Change, Got)> = Vec::new();
    // Files found too large to hash now once stat-ed here (see `list_unlisted`).
    let mut later = Vec::new();
    let mut name_buf: Vec<u8> = Vec::new();
    let mut files = job.files.into_iter();
    loop {
        let f = files.next();
        if f.is_none() || arena.len() >= ARENA_FULL || read.len() >= BATCH_FILES {
            let digests = crate::lanes::hash_inputs(arena, &inputs);
            for (f, id, change, got) in read.drain(..) {
                let hashed = match &got {
                    Got::Done(Ok(Hashed::Stable { digest, head })) => Outcome::Stable(*digest, head),
                    Got::Done(Ok(Hashed::Unstable { now })) => Outcome::Unstable(*now),
                    Got::Done(Ok(Hashed::Busy(busy))) => Outcome::Busy(*busy),
                    Got::Done(Err(HashError::Io(e))) => Outcome::Failed(HashError::Io(*e)),
                    Got::Done(Err(HashError::Cancelled)) => Outcome::Failed(HashError::Cancelled),
                    Got::Held(i) => {
                        let (start, len) = inputs[*i];
                        Outcome::Stable(digests[*i], &arena[start..start + len.min(HEAD_LEN)])
                    }
                };
                if settle_hashed(f, id, change, hashed, dirfd.as_fd(), out, &mut rows, &mut errs).is_break() {
                    return;
                }
            }
            arena.clear();
            inputs.clear();
        }
        let Some((mut f, id, change)) = f else { break };
        if cancel.load(Relaxed) {
            return;
        }
        // The name, NUL-ended, in a buffer reused from file to file.
        name_buf.clear();
        name_buf.extend_from_slice(f.name());
        name_buf.push(0);
        let Ok(name) = std::ffi::CStr::from_bytes_with_nul(&name_buf) else {
            continue;
        };
        let mut opened = None;
        if f.stat.is_unknown() {
            match list_unlisted(&mut f, change, dirfd.as_fd(), name, out, &mut errs) {
                Unlisted::Open(file) => opened = Some(file),
                Unlisted::ByName => {}
                Unlisted::Later => {
                    later.push((f, id, change));
                    continue;
                }
                Unlisted::Gone => continue,
            }
        }
        // `file`: the file already open, else it is opened here.
        let mut attempt = |expected: &FileStat, buf: &mut Vec<u8>, file: Option<std::fs::File>| {
            let len = expected.len.0;
            if len == 0 {
                return Got::Done(Ok(Hashed::empty()));
            }
            let file = match file.map_or_else(|| open_listed(dirfd.as_fd(), name, out.follow), Ok) {
                Ok(file) => file,
                Err(e) => return Got::Done(Err(e.into())),
            };
            // A digest read within a coarse file system's time resolution of the file's
            // last change is not kept: a write just after the read would go unseen.
            let same_tick = || {
                Hashed::Busy(crate::hash::Busy {
                    now: *expected,
                    why: crate::hash::Unsettled::SameTick,
                })
            };
            if len as usize > crate::lanes::LANES_MAX {
                return Got::Done(
                    match hash_file(&file, expected, buf, cancel, &progress.hash_bytes_done) {
                        Ok(Hashed::Stable { .. }) if crate::hash::racy(expected) => Ok(same_tick()),
                        other => other,
                    },
                );
            }
            match crate::hash::read_small(&file, expected, arena, &progress.hash_bytes_done) {
                Ok(Held::Read { start, .. }) if crate::hash::racy(expected) => {
                    arena.truncate(start);
                    Got::Done(Ok(same_tick()))
                }
                Ok(Held::Read { start, len }) => {
                    inputs.push((start, len));
                    Got::Held(inputs.len() - 1)
                }
                Ok(Held::Unstable { now }) => Got::Done(Ok(Hashed::Unstable { now })),
                Ok(Held::Busy(busy)) => Got::Done(Ok(Hashed::Busy(busy))),
                Err(e) => Got::Done(Err(e)),
            }
        };
        let mut got = attempt(&f.stat, buf, opened);
        if let Got::Done(Ok(Hashed::Unstable { now })) = &got {
            if now.id != f.stat.id
                && (now.len, now.mtime_ns, now.ctime_ns) == (f.stat.len, f.stat.mtime_ns, f.stat.ctime_ns)
            {
                // The same file under another inode number: file systems that number
                // inodes as they load them (FAT, FUSE without fixed numbers) renumber one
                // dropped from memory since the walk. Read under its number now.
                f.stat.id = now.id;
                got = attempt(&f.stat, buf, None);
            }
        }
        read.push((f, id, change, got));
    }
    if !later.is_empty() {
        // Before the hash phase takes the jobs: files are stat-ed here only as their folder
        // is listed (`dispatch` hashes them at once).
        assert_ne!(
            progress.phase.load(Relaxed),
            phase::HASH,
            "files left for a hash phase already under way"
        );
        let jobs = into_jobs(&job.dir, later);
        out.jobs.lock().unwrap().extend(jobs);
    }
    if !errs.is_empty() {
        let _ = tx.send(Msg::Errors(errs));
    }
    let _ = tx.send(Msg::Rows(rows));
}

/// What `list_unlisted` found of a file the walk listed by name only.
enum Unlisted {
    /// Opened, its stat filled in from the open file: read it from there.
    Open(std::fs::File),
    /// Not opened (one we may not read), its stat read by name: it goes the way of a
    /// listed file, which meets the same error.
    ByName,
    /// Its stat filled in, and too large to hash as its folder is listed: for the hash
    /// phase (see `INLINE_MAX`), as a listed file of its size is.
    Later,
    /// Gone, or no longer a regular file, since its folder was read: no row, as the walk
    /// lists none; gone is an error row, as the walk's is.
    Gone,
}

/// Stat `f`, a file the walk listed by name only (`WalkOptions::defer_file_stat`), as the
/// walk stats the others: from the file opened to read it, else by name. Progress counts
/// its bytes now.
fn list_unlisted(
    f: &mut WalkedFile,
    change: Change,
    dir: BorrowedFd<'_>,
    name: &std::ffi::CStr,
    out: &Outlets<'_>,
    errs: &mut Vec<PathError>,
) -> Unlisted {
    let progress = out.progress;
    let (file, listed) = match crate::hash::open_unlisted(dir, name) {
        Ok((file, mode, stat, born)) => (Some(file), Ok((mode, stat, born))),
        Err(_) => (
            None,
            crate::walk::stat_born(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW),
        ),
    };
    let not_listed = || {
        out.counts.gone(change);
        progress.hash_files_done.fetch_add(1, Relaxed);
        progress.walk.files.fetch_sub(1, Relaxed);
    };
    match listed {
        Ok((mode, stat, born)) if rustix::fs::FileType::from_raw_mode(mode) == rustix::fs::FileType::RegularFile => {
            f.stat = stat;
            f.born_ns = born;
            progress.walk.bytes.fetch_add(stat.len.0, Relaxed);
            if stat.len.0 >= INLINE_MAX {
                progress.hash_files_total.fetch_sub(1, Relaxed); // counted again as the phase starts
                return Unlisted::Later;
            }
            progress.hash_bytes_total.fetch_add(stat.len.0, Relaxed);
            file.map_or(Unlisted::ByName, Unlisted::Open)
        }
        Ok(_) => {
            not_listed(); // a folder, a FIFO, a link put there: the walk passes such by
            Unlisted::Gone
        }
        Err(e) => {
            not_listed();
            let stage = if e == rustix::io::Errno::NOENT {
                "vanished"
            } else {
                "stat"
            };
            push_error(
                out.hash_errors,
                errs,
                &f.path,
                stage,
                describe_io(&e.into()),
                Some(e.raw_os_error()),
            );
            Unlisted::Gone
        }
    }
}

/// Record a file's error for the catalog (in `errs`) and count it (in `errors`).
fn push_error(
    errors: &AtomicU64,
    errs: &mut Vec<PathError>,
    path: &[u8],
    stage: &'static str,
    message: String,
    errno: Option<i32>,
) {
    errors.fetch_add(1, Relaxed);
    errs.push(PathError {
        path: path.into(),
        stage,
        message,
        errno,
    });
}

/// A file's outcome in `hash_job` before its row is made: hashed (or failed) as it was
/// read, or held in the arena as the `inputs` entry given, for the batch's digests.
enum Got {
    Done(Result<Hashed, HashError>),
    Held(usize),
}

/// What hashing a file came to, for `settle_hashed`: its digest and first bytes (for the
/// kind sniffer), a change seen as it was read, or an error.
enum Outcome<'a> {
    Stable(Digest, &'a [u8]),
    Unstable(FileStat),
    /// No digest: it may be being written (`Hashed::Busy`).
    Busy(crate::hash::Busy),
    Failed(HashError),
}

/// Bytes of small files read before their batch is hashed.
const ARENA_FULL: usize = 256 << 10;
/// Files read before their batch is hashed, whatever their size.
const BATCH_FILES: usize = 128;

/// Turn one file's hashing outcome into its row (in `rows`) or its error (in `errs`),
/// as the walk's plan for it (`change`) and the outcome say. `Break` when cancelled.
#[allow(clippy::too_many_arguments)]
fn settle_hashed(
    f: WalkedFile,
    id: Option<MediaId>,
    change: Change,
    hashed: Outcome<'_>,
    dirfd: BorrowedFd<'_>,
    out: &Outlets<'_>,
    rows: &mut Vec<FileRow>,
    errs: &mut Vec<PathError>,
) -> std::ops::ControlFlow<()> {
    use std::ops::ControlFlow::{Break, Continue};
    let Outlets {
        progress,
        unstable,
        hash_errors: errors,
        ..
    } = *out;
    let fail = |errs: &mut Vec<PathError>, path: &[u8], stage: &'static str, message: String, errno: Option<i32>| {
        push_error(errors, errs, path, stage, message, errno)
    };
    let ext = kind::extension(f.name());
    if !matches!(hashed, Outcome::Stable(..) | Outcome::Failed(HashError::Cancelled)) {
        // Replaced since it was listed by a folder, a FIFO or a device (reading it
        // failed or gave another size): the file listed is gone, as if deleted.
        let what = CString::new(f.name())
            .ok()
            .and_then(|name| replaced_by(dirfd, &name, out.follow));
        if let Some(what) = what {
            out.glimpse(&f);
            fail(
                errs,
                &f.path,
                "vanished",
                format!("replaced by {what} since it was listed"),
                None,
            );
            out.counts.gone(change);
            progress.hash_files_done.fetch_add(1, Relaxed);
            return Continue(());
        }
    }
    // Changing as it was read, and no longer at its name (renamed or deleted meanwhile,
    // which also moves the change time): not a file in the middle of being written at
    // this path but one gone from it, as the next case.
    // (Through a link at the name where the scan follows links, as it was read.)
    let at_name = |flags| {
        CString::new(f.name())
            .ok()
            .and_then(|name| rustix::fs::statat(dirfd, name.as_c_str(), flags).ok())
            .map(|st| FileStat::from_stat(&st).id)
    };
    let flags = if out.follow {
        rustix::fs::AtFlags::empty()
    } else {
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW
    };
    let left = |now: &FileStat| now.id != f.stat.id || at_name(flags) != Some(f.stat.id);
    if matches!(&hashed, Outcome::Unstable(now) | Outcome::Busy(crate::hash::Busy { now, .. }) if left(now)) {
        // Another inode at the name than the walk listed (files swapped or renamed over
        // as the scan ran), or none: what the walk saw there is gone. Its row, if any, stays as
        // it was, never tied to an inode that passed through the name; the next scan
        // sees where each file is.
        out.glimpse(&f);
        // Another inode there now, read or at the name: replaced; none: renamed or deleted.
        let read_another = match &hashed {
            Outcome::Unstable(now) | Outcome::Busy(crate::hash::Busy { now, .. }) => now.id != f.stat.id,
            _ => false,
        };
        let swapped = read_another || at_name(flags).is_some();
        fail(
            errs,
            &f.path,
            "vanished",
            if swapped {
                "replaced by another file since it was listed"
            } else {
                "renamed or deleted as it was read"
            }
            .into(),
            None,
        );
        out.counts.gone(change);
        progress.hash_files_done.fetch_add(1, Relaxed);
        return Continue(());
    }
    let (digest, class) = match hashed {
        Outcome::Stable(digest, head) => (
            Some(digest),
            tracks_read(kind::classify(ext, Some(head)), head, dirfd, f.name(), out.follow),
        ),
        Outcome::Unstable(_) => {
            unstable.fetch_add(1, Relaxed);
            fail(
                errs,
                &f.path,
                "unstable",
                "file changed while it was being hashed; stored without a digest".into(),
                None,
            );
            (None, kind::classify(ext, None))
        }
        Outcome::Busy(crate::hash::Busy { why, .. }) => {
            unstable.fetch_add(1, Relaxed);
            fail(
                errs,
                &f.path,
                "unstable",
                format!("{}; stored without a digest (the next scan reads it)", why.reason()),
                why.errno(),
            );
            (None, kind::classify(ext, None))
        }
        Outcome::Failed(HashError::Cancelled) => return Break(()),
        Outcome::Failed(HashError::Io(e)) => {
            let gone = e == rustix::io::Errno::NOENT;
            fail(
                errs,
                &f.path,
                if gone { "vanished" } else { "hash" },
                describe_io(&e.into()),
                Some(e.raw_os_error()),
            );
            if gone {
                out.glimpse(&f);
                out.counts.gone(change);
                progress.hash_files_done.fetch_add(1, Relaxed);
                return Continue(());
            }
            // Present but unreadable: keep its row, without a digest.
            (None, kind::classify(ext, None))
        }
    };
    if digest.is_none() && matches!(change, Change::Recover(_)) {
        // Not read whole (changing as it was read, as a copy being made is, or not
        // readable): whether it is the gone file is left to a scan that reads it, and
        // until then it has no row; its error row says why.
        out.counts.gone(change);
        progress.hash_files_done.fetch_add(1, Relaxed);
        return Continue(());
    }
    let (change, id) = settle(change, digest, id, out.counts, out.released);
    rows.push(FileRow::of(f, class, digest, id, change));
    progress.hash_files_done.fetch_add(1, Relaxed);
    Continue(())
}

/// The paths a walk did not look below: those it could not read or was told to leave out,
/// and the symbolic links it did not follow.
fn unlooked(walked: &crate::walk::WalkOutput) -> (HashSet<&[u8]>, HashSet<&[u8]>) {
    let held = walked.unreadable_dirs.iter().chain(walked.left_out.iter());
    (
        held.map(|p| trim_trailing_slashes(p)).collect(),
        walked.links_left_out.iter().map(|p| trim_trailing_slashes(p)).collect(),
    )
}

/// Whether `path`, or a folder above it up to the innermost root holding it, is in `set`
/// (paths the walk did not look into or behind). A root inside another is walked as a
/// root of its own: what the outer root's walk left out above it (an excluded or
/// unreadable folder, another file system) says nothing of the files below it.
fn held_within_root(path: &[u8], set: &HashSet<&[u8]>, roots: &HashSet<&[u8]>) -> bool {
    if set.is_empty() {
        return false;
    }
    let path = trim_trailing_slashes(path);
    let mut end = path.len();
    loop {
        let at = &path[..end];
        if set.contains(at) {
            return true;
        }
        if roots.contains(at) {
            return false;
        }
        match at.iter().rposition(|&b| b == b'/') {
            Some(0) if end > 1 => end = 1, // then `/` itself
            Some(i) if i > 0 => end = i,
            _ => return false,
        }
    }
}

/// Whether `path`, or a folder above it, is in `set` (paths without a trailing slash).
fn at_or_below_any(path: &[u8], set: &HashSet<&[u8]>) -> bool {
    if set.is_empty() {
        return false;
    }
    let path = trim_trailing_slashes(path);
    set.contains(path)
        || path
            .iter()
            .enumerate()
            .filter(|&(i, &b)| b == b'/' && i > 0)
            .any(|(i, _)| set.contains(&path[..i]))
        || (path.starts_with(b"/") && set.contains(&b"/"[..]))
}

/// What now stands at `name` in `dir` when it is no longer a regular file: a folder, a
/// FIFO, a device, a socket, or (unless the scan follows links, `follow`) a symbolic
/// link. None for a regular file, and when nothing is there (a vanished file is told by
/// its own error).
fn replaced_by(dir: BorrowedFd<'_>, name: &std::ffi::CStr, follow: bool) -> Option<&'static str> {
    use rustix::fs::{AtFlags, FileType};
    let flags = if follow {
        AtFlags::empty()
    } else {
        AtFlags::SYMLINK_NOFOLLOW
    };
    let st = rustix::fs::statat(dir, name, flags).ok()?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => None,
        FileType::Symlink => Some("a symbolic link"),
        FileType::Directory => Some("a folder"),
        FileType::Fifo => Some("a FIFO"),
        FileType::CharacterDevice | FileType::BlockDevice => Some("a device"),
        FileType::Socket => Some("a socket"),
        _ => Some("something that is not a file"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_an_outer_walk_left_out_holds_nothing_under_a_root_of_its_own() {
        let held: HashSet<&[u8]> = [&b"/a/x"[..], &b"/m"[..]].into_iter().collect();
        let roots: HashSet<&[u8]> = [&b"/a"[..], &b"/a/x/y"[..], &b"/"[..]].into_iter().collect();
        assert!(held_within_root(b"/a/x/t.jpg", &held, &roots));
        assert!(held_within_root(b"/a/x", &held, &roots));
        assert!(!held_within_root(b"/a/x/y/t.jpg", &held, &roots));
        assert!(!held_within_root(b"/a/x/y", &held, &roots));
        assert!(held_within_root(b"/m/n/o", &held, &roots));
        assert!(!held_within_root(b"/b/c", &held, &roots));
        let everything: HashSet<&[u8]> = [&b"/"[..]].into_iter().collect();
        assert!(held_within_root(b"/q", &everything, &HashSet::new()));
        assert!(!held_within_root(b"/a/q", &everything, &roots));
    }

    #[test]
    fn roots_are_trimmed_and_given_once() {
        let r = normalize_roots(&[b"/a/b/".to_vec(), b"/a".to_vec(), b"/ab".to_vec(), b"/a".to_vec()]);
        assert_eq!(r, vec![b"/a".to_vec(), b"/a/b".to_vec(), b"/ab".to_vec()]);
        assert!(is_under(b"/a/b", b"/a"));
        assert!(!is_under(b"/ab", b"/a"));
        assert!(is_under(b"/x", b"/"));
    }

    fn drain(h: &ScanHandle) -> (u64, ScanTotals) {
        let mut rows = 0;
        loop {
            match h.next_timeout(Duration::from_secs(10)) {
                Ok(Some(Event::Files(b))) => rows += b.num_rows() as u64,
                Ok(Some(Event::Done(t))) => return (rows, t),
                Ok(Some(Event::Failed(e))) => panic!("scan failed: {e}"),
                Ok(Some(_)) => {}
                Ok(None) => panic!("no event within 10 s"),
                Err(()) => panic!("the scan ended without its totals"),
            }
        }
    }

    fn tree(files: usize) -> (tempfile::TempDir, ScanOptions) {
        let d = tempfile::tempdir().unwrap();
        for i in 0..files {
            let sub = d.path().join(format!("d{}", i % 7));
            std::fs::create_dir_all(&sub).unwrap();
            std::fs::write(sub.join(format!("f{i}.jpg")), format!("file {i}")).unwrap();
        }
        let opts = ScanOptions {
            roots: vec![d.path().as_os_str().as_encoded_bytes().to_vec()],
            threads: 2,
            ..Default::default()
        };
        (d, opts)
    }

    #[test]
    fn a_walk_started_first_waits_for_the_previous_state() {
        let (_d, opts) = tree(300);
        let h = start(opts, None).unwrap();
        // Long enough for the walk to finish listing before the state arrives.
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            h.next_timeout(Duration::from_millis(50)).unwrap().is_none(),
            "nothing is decided yet"
        );
        h.set_previous(PrevState::empty()).unwrap();
        assert!(h.set_previous(PrevState::empty()).is_err(), "a second state is refused");
        let (rows, t) = drain(&h);
        assert_eq!((rows, t.files_seen, t.new, t.hashed_files), (300, 300, 300, 300));
        // Folders held while the state loaded are out of the caches: the hash phase hashes
        // them, spread over the threads, with an ETA.
        assert_eq!(h.progress.hash_phase_files.load(Relaxed), 300);
    }

    #[test]
    fn while_the_state_loads_two_walk_threads_wait_and_a_close_frees_them() {
        let (_d, mut opts) = tree(300);
        opts.threads = 4;
        // How many walk threads wait, once `want` do or after 5 s (a busy machine: CI
        // failed a fixed 200 ms wait for the second scan's threads to get there).
        let held_once = |h: &ScanHandle, want: usize| {
            let until = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                let held = h.prev.waiting.lock().unwrap().walkers_held;
                if held == want || std::time::Instant::now() > until {
                    return held;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        let h = start(opts.clone(), None).unwrap();
        h.previous_loading();
        assert_eq!(held_once(&h, 2), 2, "2 of 4 threads wait");
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(h.prev.waiting.lock().unwrap().walkers_held, 2, "and only 2");
        // On 2 threads, one goes on.
        let h2 = start(
            ScanOptions {
                threads: 2,
                ..opts.clone()
            },
            None,
        )
        .unwrap();
        h2.previous_loading();
        assert_eq!(held_once(&h2, 1), 1, "1 of 2 threads waits");
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(h2.prev.waiting.lock().unwrap().walkers_held, 1, "and only 1");
        h2.set_previous(PrevState::empty()).unwrap();
        assert_eq!(drain(&h2).0, 300);
        h.set_previous(PrevState::empty()).unwrap();
        let (rows, t) = drain(&h);
        assert_eq!((rows, t.files_seen, t.new), (300, 300, 300));
        let held = h.prev.waiting.lock().unwrap().walkers_held;
        assert_eq!(held, 0);

        // Before the state begins to load, none waits.
        let h = start(opts.clone(), None).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let held = h.prev.waiting.lock().unwrap().walkers_held;
        assert_eq!(held, 0);
        h.set_previous(PrevState::empty()).unwrap();
        assert_eq!(drain(&h).0, 300);

        // Closed before any state came (the catalog could not be read): the threads
        // waiting for it stop too.
        let mut h = start(opts, None).unwrap();
        h.previous_loading();
        std::thread::sleep(Duration::from_millis(200));
        let t0 = std::time::Instant::now();
        h.close();
        assert!(t0.elapsed() < Duration::from_secs(1), "closed in {:?}", t0.elapsed());
    }

    #[test]
    fn files_on_both_sides_of_the_inline_limit_are_hashed_and_counted_once() {
        let (d, opts) = tree(50);
        let big = vec![7u8; INLINE_MAX as usize + 1];
        std::fs::write(d.path().join("d0").join("big.mov"), &big).unwrap();
        std::fs::write(d.path().join("d1").join("edge.mov"), &big[..INLINE_MAX as usize - 1]).unwrap();
        // With no previous rows, files are listed by name only and stat-ed as opened.
        let h = start(opts, Some(PrevState::empty())).unwrap();
        let (rows, t) = drain(&h);
        let small: u64 = (0..50).map(|i| format!("file {i}").len() as u64).sum();
        let bytes = small + 2 * INLINE_MAX;
        assert_eq!((rows, t.hashed_files, t.hashed_bytes), (52, 52, bytes));
        let p = &h.progress;
        assert_eq!(
            p.hash_files_total.load(Relaxed),
            52,
            "each file counted once in the totals"
        );
        assert_eq!(p.hash_bytes_total.load(Relaxed), bytes);
        assert_eq!(p.hash_bytes_done.load(Relaxed), bytes);
        // Only the file from INLINE_MAX on was left to the hash phase.
        assert_eq!(p.hash_phase_files.load(Relaxed), 1);
        assert_eq!(p.hash_phase_bytes.load(Relaxed), INLINE_MAX + 1);
    }

    /// Files listed, then replaced by a folder, a FIFO, a symbolic link (to a file: it is
    /// not read through) or nothing before they are hashed: each is an error at stage
    /// `vanished` and gives no row, and none blocks the worker.
    #[test]
    fn files_replaced_after_listing_vanished() {
        let d = tempfile::tempdir().unwrap();
        let listed: Vec<WalkedFile> = ["dir.jpg", "fifo.jpg", "gone.jpg", "kept.jpg", "link.jpg"]
            .iter()
            .map(|n| {
                let p = d.path().join(n);
                std::fs::write(&p, b"some bytes to hash").unwrap();
                listed_as(d.path(), n, FileStat::from_stat(&rustix::fs::stat(&p).unwrap()))
            })
            .collect();
        for n in ["dir.jpg", "fifo.jpg", "gone.jpg", "link.jpg"] {
            std::fs::remove_file(d.path().join(n)).unwrap();
        }
        folder_and_fifo(d.path());
        std::os::unix::fs::symlink("kept.jpg", d.path().join("link.jpg")).unwrap();
        let ids: Vec<FileStat> = listed.iter().map(|f| f.stat).collect();
        let r = run_job(d.path(), listed);
        // Where each inode is, the catalog's rows of it must not be pruned for it.
        let mut glimpsed = r.glimpsed.clone();
        glimpsed.sort_by_key(|st| st.id.ino);
        let mut want: Vec<_> = [0, 1, 2, 4].map(|i| ids[i]).to_vec();
        want.sort_by_key(|st| st.id.ino);
        assert_eq!(glimpsed, want);
        // The four gone before their read are no new files: one row, one new.
        assert_eq!(r.counts.new.load(Relaxed), 1);
        assert_eq!(r.counts.gone_before_read.load(Relaxed), 4);
        assert_eq!(r.progress.hash_bytes_done.load(Relaxed), 18, "kept.jpg alone read");
        let rows: Vec<Vec<u8>> = r.rows.iter().map(|r| r.path.to_vec()).collect();
        let kept = d.path().join("kept.jpg").as_os_str().as_encoded_bytes().to_vec();
        assert_eq!(rows, vec![kept]);
        let got = r.errors();
        assert_eq!(got[0].0, "dir.jpg");
        assert_eq!(
            (got[0].1, got[0].2.as_str()),
            ("vanished", "replaced by a folder since it was listed")
        );
        assert_eq!((got[1].0.as_str(), got[1].1), ("fifo.jpg", "vanished"));
        assert_eq!(got[1].2, "replaced by a FIFO since it was listed");
        assert_eq!((got[2].0.as_str(), got[2].1), ("gone.jpg", "vanished"));
        assert_eq!((got[3].0.as_str(), got[3].1), ("link.jpg", "vanished"));
        assert_eq!(got[3].2, "replaced by a symbolic link since it was listed");
        assert_eq!(got.len(), 4);
        assert_eq!(r.progress.hash_files_done.load(Relaxed), 5);
    }

    /// The file `name` of the folder `dir` as the walk lists it, with `stat`.
    fn listed_as(dir: &std::path::Path, name: &str, stat: FileStat) -> WalkedFile {
        let path: Box<[u8]> = dir.join(name).as_os_str().as_encoded_bytes().into();
        let name_start = (path.len() - name.len()) as u32;
        WalkedFile {
            path,
            name_start,
            stat,
            born_ns: 0,
        }
    }

    /// Catalog rows for `files` (path, present) as their stats are now, each with a digest.
    fn rows_of(files: &[(&std::path::Path, bool)]) -> PrevState {
        use arrow_array::{ArrayRef, BinaryArray, BooleanArray, Int64Array, StringArray, UInt64Array};
        let stats: Vec<FileStat> = files
            .iter()
            .map(|(p, _)| FileStat::from_stat(&rustix::fs::stat(*p).unwrap()))
            .collect();
        let n = files.len();
        let u = |f: &dyn Fn(&FileStat) -> u64| Arc::new(UInt64Array::from_iter_values(stats.iter().map(f))) as ArrayRef;
        let batch = RecordBatch::try_from_iter(vec![
            (
                "path_bytes",
                Arc::new(BinaryArray::from_iter_values(
                    files.iter().map(|(p, _)| p.as_os_str().as_encoded_bytes()),
                )) as ArrayRef,
            ),
            ("dev", u(&|s| s.id.dev)),
            ("inode", u(&|s| s.id.ino)),
            ("size", u(&|s| s.len.0)),
            (
                "mtime_ns",
                Arc::new(Int64Array::from_iter_values(stats.iter().map(|s| s.mtime_ns))) as ArrayRef,
            ),
            (
                "blake3",
                Arc::new(StringArray::from(vec![Some("ab".repeat(32)); n])) as ArrayRef,
            ),
            (
                "media_id",
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| MediaId(i as u128 + 1).to_uuid_string()),
                )) as ArrayRef,
            ),
            (
                "present",
                Arc::new(BooleanArray::from(files.iter().map(|(_, p)| *p).collect::<Vec<_>>())) as ArrayRef,
            ),
        ])
        .unwrap();
        PrevState::from_batches(&[batch]).unwrap()
    }

    /// A QA finding: a file renamed to and fro as the scan ran can be in no folder as the
    /// walk lists it, and was marked missing (a `--prune` then dropped its tags). A row
    /// the walk did not see whose path holds its file once the walk is done is seen there.
    #[test]
    fn rows_the_walk_missed_are_seen_where_their_files_are_now() {
        let d = tempfile::tempdir().unwrap();
        let path = |n: &str| d.path().join(n);
        for n in [
            "back.jpg",
            "here.jpg",
            "gone.jpg",
            "swapped.jpg",
            "other.jpg",
            "left-out.jpg",
            "shared.jpg",
            "settled.jpg",
        ] {
            std::fs::write(path(n), n.as_bytes()).unwrap();
        }
        let prev = rows_of(&[
            (&path("here.jpg"), true),
            (&path("back.jpg"), false),
            (&path("gone.jpg"), true),
            (&path("swapped.jpg"), true),
            (&path("left-out.jpg"), true),
            (&path("other.jpg"), true),
            (&path("shared.jpg"), false),
            (&path("shared.jpg"), true),
            (&path("settled.jpg"), false),
        ]);
        std::fs::remove_file(path("gone.jpg")).unwrap();
        std::fs::remove_file(path("swapped.jpg")).unwrap();
        std::fs::write(path("swapped.jpg"), b"swapped.jpg").unwrap(); // another inode now
        prev.mark_seen(5); // other.jpg: the walk saw it
        prev.mark_seen(7); // the present row of shared.jpg: the walk saw its path
                           // A missing row is looked at where the walk found its inode under another name,
                           // unless the walk found its path and gave it a row (another row of that path, or
                           // a file the deferred step settled there, as settled.jpg is).
        let settled = path("settled.jpg");
        let settled: HashSet<&[u8]> = [settled.as_os_str().as_encoded_bytes()].into_iter().collect();
        let cancel = AtomicBool::new(false);
        let got = found_at_own_path(&prev, true, vec![1, 1, 6, 8], &|k| k != 4, &settled, &cancel);
        let mut got: Vec<(String, String)> = got
            .into_iter()
            .map(|(f, plan)| {
                let what = match plan {
                    Plan::Skip => "unchanged".to_string(),
                    Plan::Row { change, digest, .. } => format!("{change:?} {}", digest.is_some()),
                    _ => "other".to_string(),
                };
                (String::from_utf8_lossy(f.name()).into_owned(), what)
            })
            .collect();
        got.sort();
        let want = [("back.jpg", "Revived true"), ("here.jpg", "unchanged")];
        assert_eq!(got, want.map(|(a, b)| (a.to_string(), b.to_string())));
        assert!(prev.seen[0].load(Relaxed) && prev.seen[1].load(Relaxed));
        // A file system that does not fold case names each file exactly; a folder's names
        // are its own, byte for byte.
        let l = Listings::default();
        let folder = d.path().as_os_str().as_encoded_bytes();
        assert!(l.names_exactly(path("here.jpg").as_os_str().as_encoded_bytes()));
        assert!(l.holds(folder, b"here.jpg") && !l.holds(folder, b"HERE.JPG"));
        assert!(!prev.seen[2].load(Relaxed) && !prev.seen[3].load(Relaxed) && !prev.seen[4].load(Relaxed));
        assert!(!prev.seen[6].load(Relaxed) && !prev.seen[8].load(Relaxed));
    }

    /// A folder `dir.jpg` and a FIFO `fifo.jpg` in `dir`: names no regular file holds.
    fn folder_and_fifo(dir: &std::path::Path) {
        std::fs::create_dir(dir.join("dir.jpg")).unwrap();
        rustix::fs::mknodat(
            CWD,
            dir.join("fifo.jpg").as_path(),
            rustix::fs::FileType::Fifo,
            Mode::RUSR | Mode::WUSR,
            0,
        )
        .unwrap();
    }

    /// What `run_job` gives back.
    struct JobRun {
        rows: Vec<FileRow>,
        errs: Vec<PathError>,
        counts: Counts,
        progress: Progress,
        jobs: Vec<HashJob>,
        glimpsed: Vec<FileStat>,
    }

    impl JobRun {
        /// Each error as (file name, stage, message), sorted.
        fn errors(&self) -> Vec<(String, &str, String)> {
            let mut got: Vec<(String, &str, String)> = self
                .errs
                .iter()
                .map(|e| {
                    let name = String::from_utf8_lossy(&e.path).rsplit('/').next().unwrap().to_string();
                    (name, e.stage, e.message.clone())
                })
                .collect();
            got.sort();
            got
        }
    }

    /// `files` of the folder `dir`, planned new and hashed as `dispatch` hashes them as
    /// their folder is listed (counted by the walk, and as files to hash).
    fn run_job(dir: &std::path::Path, files: Vec<WalkedFile>) -> JobRun {
        run_job_in(dir, None, files)
    }

    /// `run_job`, with the folder's descriptor as the walk hands it over (`DirFiles::fd`).
    fn run_job_in(dir: &std::path::Path, fd: Option<rustix::fd::OwnedFd>, files: Vec<WalkedFile>) -> JobRun {
        let (counts, progress) = (Counts::default(), Progress::default());
        let (unstable, errors, cancel) = (AtomicU64::new(0), AtomicU64::new(0), AtomicBool::new(false));
        let (tx, rx) = crossbeam_channel::unbounded();
        let (jobs, released) = (Mutex::new(Vec::new()), Mutex::new(Vec::new()));
        let glimpsed = Mutex::new(Vec::new());
        let out = Outlets {
            counts: &counts,
            mtx: &tx,
            jobs: &jobs,
            cancel: &cancel,
            progress: &progress,
            unstable: &unstable,
            hash_errors: &errors,
            follow: false,
            released: &released,
            glimpsed: &glimpsed,
        };
        let dir: Arc<[u8]> = dir.as_os_str().as_encoded_bytes().into();
        let files: Vec<_> = files.into_iter().map(|f| (f, None, Change::New)).collect();
        for _ in &files {
            counts.add(Change::New); // as planned
        }
        progress.walk.files.store(files.len() as u64, Relaxed);
        progress.hash_files_total.store(files.len() as u64, Relaxed);
        hash_job(HashJob { dir, files, fd }, &out);
        drop(tx);
        let (mut rows, mut errs) = (Vec::new(), Vec::new());
        for m in rx {
            match m {
                Msg::Rows(r) => rows.extend(r),
                Msg::Errors(e) => errs.extend(e),
            }
        }
        JobRun {
            rows,
            errs,
            counts,
            progress,
            jobs: jobs.into_inner().unwrap(),
            glimpsed: glimpsed.into_inner().unwrap(),
        }
    }

    /// Large files found as a first scan's folder is listed wait for the hash phase in jobs
    /// of at most `JOB_BYTES` (or `JOB_FILES`), spread over the threads as a listed
    /// folder's are, never all in one.
    #[test]
    fn large_files_stat_ed_as_opened_wait_in_jobs_of_the_usual_size() {
        let d = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..300).map(|i| format!("raw{i:03}.nef")).collect();
        for n in &names {
            // Sparse: 2 MiB long, and nothing is written.
            std::fs::File::create(d.path().join(n))
                .unwrap()
                .set_len(2 << 20)
                .unwrap();
        }
        let listed = names
            .iter()
            .map(|n| listed_as(d.path(), n, FileStat::UNKNOWN))
            .collect();
        let r = run_job(d.path(), listed);
        let sizes: Vec<usize> = r.jobs.iter().map(|j| j.files.len()).collect();
        assert_eq!(sizes, vec![128, 128, 44]);
        assert!(r.rows.is_empty() && r.errs.is_empty());
    }

    /// Files listed by name only are opened relative to the folder the walk read, never
    /// through its path: a folder swapped since for a link to another one holding the same
    /// names gives none of that other folder's files.
    #[test]
    fn files_listed_by_name_only_are_read_from_the_folder_listed() {
        let d = tempfile::tempdir().unwrap();
        let (lib, away, other) = (d.path().join("lib"), d.path().join("away"), d.path().join("other"));
        for (dir, text) in [(&lib, "listed"), (&other, "elsewhere")] {
            std::fs::create_dir(dir).unwrap();
            std::fs::write(dir.join("a.jpg"), text).unwrap();
        }
        let fd = rustix::fs::open(&lib, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        std::fs::rename(&lib, &away).unwrap();
        std::os::unix::fs::symlink(&other, &lib).unwrap();
        let r = run_job_in(&lib, Some(fd), vec![listed_as(&lib, "a.jpg", FileStat::UNKNOWN)]);
        let digests: Vec<Option<Digest>> = r.rows.iter().map(|r| r.digest).collect();
        assert_eq!(digests, vec![Some(Digest(*blake3::hash(b"listed").as_bytes()))]);
    }

    /// A first scan's files, listed by name only (`WalkOptions::defer_file_stat`), each
    /// stat-ed as it is opened: the stat a listing gives, birth time included; a large one
    /// left to the hash phase, stat-ed; what is no longer a regular file passed by as the
    /// walk passes it by, and a file gone, an error row as the walk makes.
    #[test]
    fn files_listed_by_name_only_are_stat_ed_as_they_are_opened() {
        let d = tempfile::tempdir().unwrap();
        let names = [
            "kept.jpg",
            "empty.jpg",
            "big.mov",
            "dir.jpg",
            "fifo.jpg",
            "link.jpg",
            "gone.jpg",
        ];
        std::fs::write(d.path().join("kept.jpg"), b"some bytes to hash").unwrap();
        std::fs::write(d.path().join("empty.jpg"), b"").unwrap();
        std::fs::write(d.path().join("big.mov"), vec![3u8; INLINE_MAX as usize]).unwrap();
        folder_and_fifo(d.path());
        std::os::unix::fs::symlink(d.path().join("kept.jpg"), d.path().join("link.jpg")).unwrap();
        let listed: Vec<WalkedFile> = names
            .iter()
            .map(|n| listed_as(d.path(), n, FileStat::UNKNOWN))
            .collect();
        // What the walk's own listing gives for each.
        let by_name = |n: &str| {
            let c = CString::new(d.path().join(n).as_os_str().as_encoded_bytes()).unwrap();
            let (_, stat, born) =
                crate::walk::stat_born(CWD, c.as_c_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW).unwrap();
            (stat, born)
        };
        let r = run_job(d.path(), listed);
        let mut rows: Vec<(String, FileStat, i64, Option<Digest>)> = r
            .rows
            .iter()
            .map(|r| {
                let name = String::from_utf8_lossy(&r.path[r.name_start as usize..]).to_string();
                (name, r.stat, r.born_ns, r.digest)
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let row = |n: &str, content: &[u8]| {
            let (stat, born) = by_name(n);
            (
                n.to_string(),
                stat,
                born,
                Some(Digest(*blake3::hash(content).as_bytes())),
            )
        };
        assert_eq!(
            rows,
            vec![row("empty.jpg", b""), row("kept.jpg", b"some bytes to hash")]
        );
        assert_eq!(r.jobs.len(), 1);
        let later: Vec<(&[u8], FileStat)> = r.jobs[0].files.iter().map(|(f, _, _)| (f.name(), f.stat)).collect();
        assert_eq!(later, vec![(&b"big.mov"[..], by_name("big.mov").0)]);
        let got = r.errors();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!((got[0].0.as_str(), got[0].1), ("gone.jpg", "vanished"));
        // Four passed by: no longer counted as walked, nor as new.
        assert_eq!(r.counts.new.load(Relaxed), 3);
        assert_eq!(r.counts.gone_before_read.load(Relaxed), 4);
        let p = &r.progress;
        assert_eq!(p.walk.files.load(Relaxed), 3);
        assert_eq!(p.walk.bytes.load(Relaxed), 18 + INLINE_MAX);
        // The large file is counted again when the hash phase starts.
        assert_eq!(
            (p.hash_files_total.load(Relaxed), p.hash_bytes_total.load(Relaxed)),
            (6, 18)
        );
        assert_eq!(
            (p.hash_files_done.load(Relaxed), p.hash_bytes_done.load(Relaxed)),
            (6, 18)
        );
    }

    #[test]
    fn a_scan_waiting_for_its_state_can_be_cancelled() {
        let (_d, opts) = tree(10);
        let mut h = start(opts, None).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        h.close();
        assert!(t.elapsed() < Duration::from_secs(1));
    }
}
