//! BLAKE3 of one file, stability-checked.
//!
//! Files under 64 MiB (photos, songs, most clips) are read, in chunks of at most 1 MiB
//! through a reused buffer: a file another program truncates while we read it only reads
//! short. Larger ones are memory-mapped and hashed with BLAKE3's rayon parallelism in
//! 64 MiB windows, checking for Ctrl-C and the file's size between windows; a mapping is
//! made only of a file whose size, mtime and inode are still the listing's, and it is
//! guarded (`mapguard`): a file cut short while mapped reads zeros instead of killing the
//! scan with SIGBUS, and is reported unstable (or unreadable, for a disk read error).
//! The file's size, mtime and ctime are read again after hashing: if any moved, the file
//! was being written while we read it and the digest is thrown away. The ctime catches a
//! writer that puts the mtime back (`touch -r`, `exiftool -P`): only the kernel sets it.
//! A write sets those times as it starts, though, not as it ends: a file changed within
//! `SETTLE_NS` is read only under a read lease, which shows that no program has it open
//! for writing and keeps any from opening it so until the read is done (see `Lease`).

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use rustix::fs::{Mode, OFlags, CWD};
use rustix::io::Errno;

use crate::types::{Digest, FileStat};

/// Files at least this long are memory-mapped. A mapped file truncated by another
/// program faults (SIGBUS, caught by `mapguard`) where a read returns short: below this
/// size, where rayon's parallelism within one file gains little, files are read.
pub const MMAP_MIN: u64 = 64 * 1024 * 1024;
/// The most read at once from a file that is not mapped (the reused buffer's size).
pub const READ_CHUNK: usize = 1024 * 1024;
/// Cancellation is checked between windows of this size.
const WINDOW: usize = 64 * 1024 * 1024;
/// Bytes kept from the file's start for magic-number sniffing.
pub const HEAD_LEN: usize = 512;

/// The result of hashing one file.
#[derive(Debug)]
pub enum Hashed {
    /// A digest of content that did not change while it was read.
    Stable { digest: Digest, head: Box<[u8]> },
    /// The size, mtime or ctime changed while the file was read: no digest.
    Unstable { now: FileStat },
    /// Changed so recently (`SETTLE_NS`) that a write may still be under way, and not
    /// shown otherwise: no digest.
    Busy(Busy),
}

/// A file that may be being written (see `Hashed::Busy`): its stat now, and why.
#[derive(Debug, Clone, Copy)]
pub struct Busy {
    pub now: FileStat,
    pub why: Unsettled,
}

impl Busy {
    fn of(file: &File, why: Unsettled) -> Result<Busy, HashError> {
        Ok(Busy {
            now: FileStat::from_stat(&rustix::fs::fstat(file.as_fd())?),
            why,
        })
    }
}

/// Why a file changed within `SETTLE_NS` was not shown free of writers (`Hashed::Busy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsettled {
    /// A program has it open for writing (the lease was refused with `EAGAIN`): not read.
    Writer,
    /// A program asked to open it for writing while it was read, and was let in: the
    /// read stopped there.
    Waited,
    /// Its file system's leases do not see every writer (FUSE, network file systems: see
    /// `leases_see_all_writers`): not read.
    Unwatched,
    /// No lease could be taken to tell (`EACCES`: another owner's file, without
    /// `CAP_LEASE`; `EINVAL`: leases off): not read.
    NoLease(Errno),
    /// Read whole, but its times fall in the tick of its file system's clock in which the
    /// read ended (see `racy`): a write just after it would leave them as they are, and
    /// the digest could go stale unseen. Kept for the next scan to read (a scan's alone).
    SameTick,
}

impl Unsettled {
    /// Why, in words.
    pub fn reason(self) -> String {
        let s = SETTLE_NS / 1_000_000_000;
        match self {
            Unsettled::Writer => {
                format!("the file is open for writing and changed within the last {s} s: a write may be under way")
            }
            Unsettled::Waited => "a program asked to open the file for writing while it was being read".into(),
            Unsettled::Unwatched => format!(
                "the file changed within the last {s} s, on a file system (FUSE or network) where this machine \
                 cannot see every writer: a write may be under way"
            ),
            Unsettled::NoLease(e) => format!(
                "the file changed within the last {s} s, and whether a write is still under way cannot be told \
                 here (no read lease: {})",
                std::io::Error::from(e)
            ),
            Unsettled::SameTick => "the file changed within its file system's time resolution (whole seconds \
                 or hundredths, as on FAT or exFAT) of when it was read: a write just after the read would leave its \
                 times unchanged, so the next scan reads it again"
                .into(),
        }
    }

    /// The OS error behind it, if one.
    pub fn errno(self) -> Option<i32> {
        match self {
            Unsettled::Writer => Some(Errno::AGAIN.raw_os_error()),
            Unsettled::NoLease(e) => Some(e.raw_os_error()),
            Unsettled::Waited | Unsettled::Unwatched | Unsettled::SameTick => None,
        }
    }
}

impl Hashed {
    /// What an empty file hashes to, without reading anything.
    pub fn empty() -> Self {
        Hashed::Stable {
            digest: empty_digest(),
            head: Box::new([]),
        }
    }
}

/// Why a file could not be hashed.
#[derive(Debug)]
pub enum HashError {
    Io(Errno),
    Cancelled,
}

impl From<Errno> for HashError {
    fn from(e: Errno) -> Self {
        HashError::Io(e)
    }
}

/// The digest of empty content, without opening anything.
pub fn empty_digest() -> Digest {
    Digest(*blake3::hash(b"").as_bytes())
}

pub(crate) fn open_noatime(dir: Option<BorrowedFd<'_>>, name: &std::ffi::CStr) -> Result<File, Errno> {
    open_with(dir, name, OFlags::empty())
}

/// A file the walk listed in `dir`, opened to be read. Unless the scan follows links
/// (`follow`), a symbolic link put at its name since the listing is not followed
/// (`Errno::LOOP`): what it points to (a device, a file elsewhere) is not what was listed,
/// and opening some devices acts (a watchdog starts its countdown).
pub(crate) fn open_listed(dir: BorrowedFd<'_>, name: &std::ffi::CStr, follow: bool) -> Result<File, Errno> {
    open_with(Some(dir), name, if follow { OFlags::empty() } else { OFlags::NOFOLLOW })
}

fn open_with(dir: Option<BorrowedFd<'_>>, name: &std::ffi::CStr, extra: OFlags) -> Result<File, Errno> {
    // O_NONBLOCK: a file replaced by a FIFO since it was listed must not hang the open
    // (reads of regular files ignore the flag).
    // O_NOCTTY: nor may a terminal device put at the name become this process's terminal.
    let base = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY | extra;
    let open = |flags| match dir {
        Some(d) => rustix::fs::openat(d, name, flags, Mode::empty()),
        None => rustix::fs::openat(CWD, name, flags, Mode::empty()),
    };
    // O_NOATIME keeps an archivist's access times as they were; only the owner (or root)
    // may ask for it, so fall back quietly.
    let fd = match open(base | OFlags::NOATIME) {
        Err(Errno::PERM) => open(base)?,
        r => r?,
    };
    Ok(File::from(fd))
}

/// A file the walk listed by name only (`WalkOptions::defer_file_stat`), opened to be
/// read, with its mode, stat and birth time taken from the open file: one lookup of its
/// name, where a listing `statx` and then an open take two. A symbolic link put at the
/// name since the folder was read is not followed (`Errno::LOOP`), as the walk's own
/// `statx` would not follow it.
pub fn open_unlisted(
    dir: BorrowedFd<'_>,
    name: &std::ffi::CStr,
) -> Result<(File, rustix::fs::RawMode, FileStat, i64), Errno> {
    let file = open_listed(dir, name, false)?;
    let (mode, stat, born) = crate::walk::stat_born(file.as_fd(), c"", rustix::fs::AtFlags::EMPTY_PATH)?;
    Ok((file, mode, stat, born))
}

/// Whether a file's stat shows it written since `expected` was taken. Its ctime is
/// compared only when `expected` is a fresh stat (`UNKNOWN_CTIME` otherwise: a catalog
/// row's change time moves with every `chmod` or hard link, which changes no content).
fn moved(now: &FileStat, expected: &FileStat) -> bool {
    now.len != expected.len
        || now.mtime_ns != expected.mtime_ns
        || (expected.ctime_ns != UNKNOWN_CTIME && now.ctime_ns != expected.ctime_ns)
}

/// `FileStat::ctime_ns` of an expectation that was not stat'ed just before (see `moved`).
pub const UNKNOWN_CTIME: i64 = i64::MIN;

/// How long after its last change a file may still be in the middle of a write. A
/// `write` sets the file's mtime and ctime as it starts, not as it ends, so a file read
/// while one is under way in place (its size unchanged: a torrent's piece, a rewrite of
/// a preallocated file) shows the same size and times before and after the read, and the
/// bytes read are half old, half new. A file whose ctime or mtime is within this of now
/// (either way: a clock ahead of ours) is read only under a `Lease`; one changed longer
/// ago is taken as settled (a single `write` stalled for longer would go unseen). Ten
/// seconds spans the 2-second times of FAT, and a file system's clock a little ahead.
pub const SETTLE_NS: i64 = 10_000_000_000;

/// Now, by the clock the kernel stamps file times from (the coarse one: a stamp is never
/// later than it); `None` where it cannot be read.
fn coarse_now() -> Option<i64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid place for the time.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } != 0 {
        return None;
    }
    Some(crate::types::time_ns(ts.tv_sec, ts.tv_nsec))
}

/// Whether `st` shows a change within `SETTLE_NS` of now.
fn settling(st: &FileStat) -> bool {
    let Some(now) = coarse_now() else { return true };
    let near = |t: i64| t != UNKNOWN_CTIME && t > now - SETTLE_NS && t < now + SETTLE_NS;
    near(st.ctime_ns) || near(st.mtime_ns)
}

/// Whether a digest just read of a file that `st` (its stat, as the read found it
/// unchanged) describes may go stale unseen (see `same_tick`): not to be kept in a
/// catalog, which trusts unchanged times, but one compared at once may be used. Only a
/// file changed within `SETTLE_NS`: a time ahead of the clock (a camera's) does not keep
/// a file from ever being read.
pub fn racy(st: &FileStat) -> bool {
    settling(st) && same_tick(st, coarse_now())
}

/// Whether a write made at `now` (just after a read) could leave the file's times as `st`
/// shows them, on a file system that keeps coarse times: a time in whole seconds is taken
/// to be cut to two (FAT's mtime; ext4 with small inodes, HFS+ and many network file
/// systems keep one), one in whole hundredths to those (exFAT). As git does for an index
/// written in the same second as a file it lists: such a digest is read again, not
/// trusted. Times in nanoseconds are not: the kernel (from 6.13) stamps a change made
/// after a stat of its file finer than the coarse clock, so a write after the read shows;
/// an older one could miss a write within the same clock tick, a few milliseconds.
fn same_tick(st: &FileStat, now: Option<i64>) -> bool {
    // The file system's resolution, by the change time, which only the kernel sets (an
    // mtime in whole seconds may be a copy's, `cp -p` from a FAT card): by the mtime
    // where the change time is not known.
    let basis = if st.ctime_ns != UNKNOWN_CTIME {
        st.ctime_ns
    } else {
        st.mtime_ns
    };
    let tick = if basis % 1_000_000_000 == 0 {
        2_000_000_000
    } else if basis % 10_000_000 == 0 {
        10_000_000
    } else {
        return false;
    };
    let racy = |t: i64| t != UNKNOWN_CTIME && now.is_none_or(|now| now < t - t.rem_euclid(tick) + tick);
    racy(st.mtime_ns) || racy(st.ctime_ns)
}

/// A read lease on an open file (`fcntl(F_SETLEASE, F_RDLCK)`). The kernel grants it only
/// while no program has the file open for writing, and while it is held a program that
/// opens the file for writing waits (a non-blocking open fails) and the lease is marked
/// broken. Released when dropped. Leases need the file's owner or `CAP_LEASE`, and a file
/// system that grants them (not NFS or SMB, as a rule).
pub struct Lease<'a>(BorrowedFd<'a>);

impl<'a> Lease<'a> {
    /// Take a read lease on `file`, opened read-only: `EAGAIN` while a program has it open
    /// for writing; `EACCES` for a file of another owner without `CAP_LEASE`; `EINVAL`
    /// where the file system grants none.
    pub fn take(file: &'a File) -> Result<Self, Errno> {
        lease_signal_handled();
        let fd = file.as_fd();
        // SAFETY: fcntl on a descriptor `file` holds open for the lease's lifetime.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETLEASE, libc::F_RDLCK) } == -1 {
            return Err(Errno::from_raw_os_error(
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            ));
        }
        Ok(Lease(fd))
    }

    /// Whether a program has asked to open the file for writing since the lease was
    /// taken: it waits until the lease goes, so a long read should stop and let it.
    pub fn broken(&self) -> bool {
        // SAFETY: as in `take`.
        unsafe { libc::fcntl(self.0.as_raw_fd(), libc::F_GETLEASE) != libc::F_RDLCK }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        // SAFETY: as in `take`.
        unsafe { libc::fcntl(self.0.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
    }
}

/// The kernel tells a lease's holder that a writer waits with SIGIO, whose default action
/// ends the process. Where SIGIO has that default, a handler that does nothing takes its
/// place (with `SA_RESTART`: a system call it lands in goes on); a handler the program
/// installed, or SIGIO ignored, is left as it is. Checked before each lease, since the
/// program may have set SIGIO back meanwhile. A handler, unlike an ignored signal, is not
/// passed on to the programs this process starts.
fn lease_signal_handled() {
    extern "C" fn nothing(_: libc::c_int) {}
    // SAFETY: sigaction with valid pointers; the handler is async-signal-safe (it does
    // nothing).
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGIO, std::ptr::null(), &mut old) != 0 || old.sa_sigaction != libc::SIG_DFL {
            return;
        }
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = nothing as *const () as usize;
        act.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(libc::SIGIO, &act, std::ptr::null_mut());
    }
}

/// Whether the leases of a file system of type `f_type` (`statfs`) see every program that
/// may write its files. Not FUSE's: the kernel grants a lease on its own, blind to writes
/// made to what lies beneath (bindfs, mergerfs: the folders it shows can be written
/// directly) or from elsewhere (sshfs, rclone); nor those of file systems shared over a
/// network or between machines, written by other hosts.
pub fn leases_see_all_writers(f_type: i64) -> bool {
    const SHARED: [i64; 14] = [
        0x6573_5546, // FUSE (and virtiofs)
        0x6969,      // NFS
        0xFF53_4D42, // CIFS
        0xFE53_4D42, // SMB2
        0x517B,      // SMB
        0x0102_1997, // 9P
        0x00C3_6400, // Ceph
        0x5346_414F, // AFS
        0x6B41_4653, // kAFS
        0x0116_1970, // GFS2
        0x7461_636F, // OCFS2
        0x0BD0_0BD0, // Lustre
        0x2021_1120, // OrangeFS
        0x4750_4653, // GPFS
    ];
    !SHARED.contains(&f_type)
}

/// For `file`, about to be read and listed as `expected`: `Ok(None)` when it changed long
/// enough ago (`SETTLE_NS`); `Ok(Some(lease))`, to hold while it is read, when it changed
/// since but no program has it open for writing; else `Busy`, not to be read.
fn settle<'a>(file: &'a File, expected: &FileStat) -> Result<Result<Option<Lease<'a>>, Busy>, HashError> {
    if !settling(expected) {
        return Ok(Ok(None));
    }
    let why = match rustix::fs::fstatfs(file) {
        Ok(fs) if !leases_see_all_writers(fs.f_type as i64) => Unsettled::Unwatched,
        _ => match Lease::take(file) {
            Ok(lease) => return Ok(Ok(Some(lease))),
            Err(Errno::AGAIN) => Unsettled::Writer,
            Err(e) => Unsettled::NoLease(e),
        },
    };
    Ok(Err(Busy::of(file, why)?))
}

/// Hash the file `name` (relative to `dir`, or a path when `dir` is `None`), expected to
/// match `expected` as seen by the walk.
pub fn hash_file_at(
    dir: Option<BorrowedFd<'_>>,
    name: &std::ffi::CStr,
    expected: &FileStat,
    buf: &mut Vec<u8>,
    cancel: &AtomicBool,
    progress: &AtomicU64,
) -> Result<Hashed, HashError> {
    if expected.len.0 == 0 {
        return Ok(Hashed::empty()); // nothing to open
    }
    hash_file(&open_noatime(dir, name)?, expected, buf, cancel, progress)
}

/// Hash `file`, opened as `hash_file_at` opens it, and expected to match `expected`, as
/// `hash_file_at` does.
pub fn hash_file(
    file: &File,
    expected: &FileStat,
    buf: &mut Vec<u8>,
    cancel: &AtomicBool,
    progress: &AtomicU64,
) -> Result<Hashed, HashError> {
    let len = expected.len.0;
    if len == 0 {
        return Ok(Hashed::empty());
    }
    let lease = match settle(file, expected)? {
        Ok(lease) => lease,
        Err(busy) => return Ok(Hashed::Busy(busy)),
    };
    let lease = lease.as_ref();
    let mut hasher = blake3::Hasher::new();
    let unstable = |file: &File| -> Result<Hashed, HashError> {
        Ok(Hashed::Unstable {
            now: FileStat::from_stat(&rustix::fs::fstat(file.as_fd())?),
        })
    };
    let waited = |file: &File| -> Result<Hashed, HashError> { Ok(Hashed::Busy(Busy::of(file, Unsettled::Waited)?)) };
    let head = if len < MMAP_MIN {
        match read_whole(file, len, &mut hasher, buf, cancel, progress, lease)? {
            Whole::Read(head) => head,
            Whole::Short => return unstable(file),
            Whole::Waited => return waited(file),
        }
    } else {
        // Mapped only while it is still the file the listing saw: one that shrank since
        // would fault at once.
        let now = FileStat::from_stat(&rustix::fs::fstat(file.as_fd())?);
        if moved(&now, expected) || now.id != expected.id {
            return Ok(Hashed::Unstable { now });
        }
        // SAFETY: the mapping is read-only and private to this call, and it is read only
        // while guarded: the guard turns a fault (the file cut short by another program,
        // a bad sector) into zero pages and a flag, checked below before any digest is kept.
        let map = unsafe { memmap2::MmapOptions::new().len(len as usize).map(file) }
            .map_err(|e| HashError::Io(Errno::from_io_error(&e).unwrap_or(Errno::IO)))?;
        match crate::mapguard::Guarded::new(map.as_ptr(), map.len()) {
            None => {
                drop(map);
                match read_whole(file, len, &mut hasher, buf, cancel, progress, lease)? {
                    Whole::Read(head) => head,
                    Whole::Short => return unstable(file),
                    Whole::Waited => return waited(file),
                }
            }
            Some(guard) => {
                let _ = map.advise(memmap2::Advice::Sequential);
                let head: Box<[u8]> = map[..HEAD_LEN.min(map.len())].into();
                let mut off = 0usize;
                while off < map.len() {
                    if cancel.load(Relaxed) {
                        return Err(HashError::Cancelled);
                    }
                    if off > 0 {
                        let now = FileStat::from_stat(&rustix::fs::fstat(file.as_fd())?);
                        if moved(&now, expected) {
                            return Ok(Hashed::Unstable { now });
                        }
                        if lease.is_some_and(Lease::broken) {
                            // A writer waits on the lease: let it in, and keep no digest.
                            return Ok(Hashed::Busy(Busy {
                                now,
                                why: Unsettled::Waited,
                            }));
                        }
                    }
                    let end = (off + WINDOW).min(map.len());
                    hasher.update_rayon(&map[off..end]); // a mapped file is big enough for threads
                    if guard.faulted() {
                        break;
                    }
                    progress.fetch_add((end - off) as u64, Relaxed);
                    // What is hashed leaves this process's memory (the page cache keeps
                    // it): a file of terabytes would otherwise count whole in the scan's
                    // resident size, and make it the first the kernel kills when short.
                    // SAFETY: a read-only mapping of a file; a page dropped here would
                    // fault back in from the file if read again, and none is.
                    let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, off, end - off) };
                    off = end;
                }
                if guard.faulted() {
                    // Part of what was hashed is zeros. Cut short by a writer: unstable;
                    // still its listed size: the disk could not read a page.
                    let now = FileStat::from_stat(&rustix::fs::fstat(file.as_fd())?);
                    return if moved(&now, expected) {
                        Ok(Hashed::Unstable { now })
                    } else {
                        Err(HashError::Io(Errno::IO))
                    };
                }
                head
            }
        }
    };
    // The file read must be the one listed: a file renamed over the name between the
    // listing and the open (same size and mtime, a change time in the same tick) is
    // another inode, and its bytes are not the listed file's.
    let now = FileStat::from_stat(&rustix::fs::fstat(file.as_fd())?);
    if moved(&now, expected) || now.id != expected.id {
        return Ok(Hashed::Unstable { now });
    }
    Ok(Hashed::Stable {
        digest: Digest(*hasher.finalize().as_bytes()),
        head,
    })
}

/// What `read_whole` read.
enum Whole {
    /// All of it; the first bytes, for the kind sniffer.
    Read(Box<[u8]>),
    /// Less than its size (cut short as it was read, or a size that says more than can be
    /// read, as on some FUSE mounts): unstable, whatever `fstat` says, rather than a digest
    /// of part of it.
    Short,
    /// A writer came to wait on the lease before the last chunk: stopped, to let it in.
    Waited,
}

/// Read and hash `len` bytes of `file` in chunks through `buf`.
fn read_whole(
    file: &File,
    len: u64,
    hasher: &mut blake3::Hasher,
    buf: &mut Vec<u8>,
    cancel: &AtomicBool,
    progress: &AtomicU64,
    lease: Option<&Lease<'_>>,
) -> Result<Whole, HashError> {
    let mut head: Box<[u8]> = Box::new([]);
    let mut short = false;
    // The buffer only grows, and only its new part is zeroed: a scan's small files each
    // had their length of it cleared before being read over (5 GB of writes for a
    // million files).
    let need = (len.min(READ_CHUNK as u64)) as usize;
    if buf.len() < need {
        buf.resize(need, 0);
    }
    let mut total = 0u64;
    while total < len {
        if total > 0 && cancel.load(Relaxed) {
            return Err(HashError::Cancelled);
        }
        if total > 0 && lease.is_some_and(Lease::broken) {
            return Ok(Whole::Waited);
        }
        let want = ((len - total) as usize).min(need);
        let mut got = 0usize;
        while got < want {
            match rustix::io::read(file, &mut buf[got..want]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        if total == 0 {
            head = buf[..got.min(HEAD_LEN)].into();
        }
        hasher.update(&buf[..got]);
        progress.fetch_add(got as u64, Relaxed);
        total += got as u64;
        if got < want {
            short = true;
            break;
        }
    }
    Ok(if short { Whole::Short } else { Whole::Read(head) })
}

/// A small file read whole for `lanes::hash_inputs`, or one that changed as it was read.
#[derive(Debug)]
pub enum Held {
    /// Its bytes are `arena[start..start + len]`, unchanged while they were read.
    Read { start: usize, len: usize },
    /// As `Hashed::Unstable`; the arena is as it was.
    Unstable { now: FileStat },
    /// As `Hashed::Busy`: not read.
    Busy(Busy),
}

/// Read `file` (opened as `hash_file_at` opens a file), listed as `expected` and at most
/// `lanes::LANES_MAX` bytes long, whole onto the end of `arena`, to be hashed later with
/// others. It is checked as `hash_file_at` checks a file it hashes: one whose size, times
/// or inode moved since it was listed is `Held::Unstable`. On anything but `Held::Read`
/// the arena is left as it was.
pub fn read_small(
    file: &File,
    expected: &FileStat,
    arena: &mut Vec<u8>,
    progress: &AtomicU64,
) -> Result<Held, HashError> {
    let len = expected.len.0 as usize;
    debug_assert!(len <= crate::lanes::LANES_MAX);
    // Held while the file is read (a few microseconds: a writer that comes meanwhile
    // waits that long, the lease is not watched).
    let _lease = match settle(file, expected)? {
        Ok(lease) => lease,
        Err(busy) => return Ok(Held::Busy(busy)),
    };
    let start = arena.len();
    arena.reserve(len);
    let mut got = 0usize;
    while got < len {
        // Into the arena's spare room, so that nothing is zeroed only to be read over.
        match rustix::io::read(file, &mut arena.spare_capacity_mut()[..len - got]) {
            Ok(([], _)) => break,
            Ok((init, _)) => {
                let n = init.len();
                got += n;
                // SAFETY: the read initialised these `n` bytes past the old length, all
                // within the capacity reserved above.
                unsafe { arena.set_len(start + got) };
            }
            Err(Errno::INTR) => continue,
            Err(e) => {
                arena.truncate(start);
                return Err(e.into());
            }
        }
    }
    progress.fetch_add(got as u64, Relaxed);
    let now = FileStat::from_stat(&rustix::fs::fstat(file.as_fd()).inspect_err(|_| arena.truncate(start))?);
    if got < len || moved(&now, expected) || now.id != expected.id {
        arena.truncate(start);
        return Ok(Held::Unstable { now });
    }
    Ok(Held::Read { start, len })
}

/// BLAKE3 of bytes in memory (a sidecar MediaForge writes): the digest a scan of a file
/// holding them records.
pub fn hash_bytes(data: &[u8]) -> Digest {
    Digest(*blake3::hash(data).as_bytes())
}

/// Hash one file by path on the current rayon pool: the single-file entry point.
pub fn hash_path(path: &[u8], cancel: &AtomicBool) -> crate::error::Result<Digest> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::path::Path::new(std::ffi::OsStr::from_bytes(path));
    let c =
        std::ffi::CString::new(path).map_err(|_| crate::error::Error::InvalidInput("path holds a NUL byte".into()))?;
    let st = rustix::fs::statat(CWD, c.as_c_str(), rustix::fs::AtFlags::empty())
        .map_err(|e| crate::error::Error::from_io(p, e.into()))?;
    let expected = FileStat::from_stat(&st);
    let progress = AtomicU64::new(0);
    let mut buf = Vec::new();
    match hash_file_at(None, c.as_c_str(), &expected, &mut buf, cancel, &progress) {
        Ok(Hashed::Stable { digest, .. }) => Ok(digest),
        Ok(Hashed::Unstable { .. }) => Err(crate::error::Error::Io {
            path: p.into(),
            source: std::io::Error::other("file changed while it was being hashed"),
        }),
        Ok(Hashed::Busy(Busy { why, .. })) => Err(crate::error::Error::Io {
            path: p.into(),
            source: std::io::Error::other(why.reason()),
        }),
        Err(HashError::Cancelled) => Err(crate::error::Error::Cancelled),
        Err(HashError::Io(e)) => Err(crate::error::Error::from_io(p, e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_in_the_tick_of_the_last_change_is_not_trusted() {
        let s = 1_700_000_001_000_000_000i64; // an odd whole second
        let at = |mtime_ns: i64, ctime_ns: i64| FileStat {
            mtime_ns,
            ctime_ns,
            ..FileStat::UNKNOWN
        };
        // Whole seconds: cut to two, so until the next even second is past.
        assert!(same_tick(&at(s, s), Some(s + 999_000_000)));
        assert!(!same_tick(&at(s, s), Some(s + 1_000_000_000)));
        let even = s - 1_000_000_000;
        assert!(same_tick(&at(even, even), Some(even + 1_999_000_000)));
        assert!(!same_tick(&at(even, even), Some(even + 2_000_000_000)));
        // The change time alone in the tick (an mtime put back: `touch -r`, `exiftool -P`).
        assert!(same_tick(&at(s - 86_400_000_000_000, s), Some(s + 500_000_000)));
        // exFAT's hundredths.
        assert!(same_tick(&at(s + 30_000_000, s + 30_000_000), Some(s + 39_000_000)));
        assert!(!same_tick(&at(s + 30_000_000, s + 30_000_000), Some(s + 40_000_000)));
        // An mtime in whole seconds on a file system that keeps nanoseconds (a copy's, made
        // with `cp -p` from a FAT card): its change time tells.
        assert!(!same_tick(&at(s, s + 123_456_789), Some(s + 500_000_000)));
        // Nanoseconds: trusted (see `same_tick`).
        let t = s + 123_456_789;
        assert!(!same_tick(&at(t, t), Some(t)));
        assert!(!same_tick(&at(t, UNKNOWN_CTIME), Some(t + 1)));
        // No clock: coarse times are not trusted.
        assert!(same_tick(&at(s, s), None));
        assert!(!same_tick(&at(t, t), None));
    }
    use std::io::Write;

    fn digest_of(bytes: &[u8]) -> Digest {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
        use std::os::unix::ffi::OsStrExt;
        hash_path(p.as_os_str().as_bytes(), &AtomicBool::new(false)).unwrap()
    }

    #[test]
    fn matches_reference_across_size_classes() {
        for len in [
            0usize,
            1,
            1000,
            MMAP_MIN as usize - 1,
            MMAP_MIN as usize,
            300_000,
            4 * 1024 * 1024 + 12345,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            assert_eq!(digest_of(&data).0, *blake3::hash(&data).as_bytes(), "len {len}");
        }
    }

    #[test]
    fn another_inode_renamed_over_the_name_since_the_listing_is_unstable() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        for len in [1000usize, MMAP_MIN as usize + 1] {
            let p = dir.path().join(format!("f{len}"));
            std::fs::write(&p, vec![1u8; len]).unwrap();
            let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
            let listed =
                FileStat::from_stat(&rustix::fs::statat(CWD, c.as_c_str(), rustix::fs::AtFlags::empty()).unwrap());
            // Another file, made to look the same but for its inode, renamed over the name.
            let other = dir.path().join("other");
            std::fs::write(&other, vec![2u8; len]).unwrap();
            std::fs::rename(&other, &p).unwrap();
            let mut expected = listed;
            let now =
                FileStat::from_stat(&rustix::fs::statat(CWD, c.as_c_str(), rustix::fs::AtFlags::empty()).unwrap());
            expected.mtime_ns = now.mtime_ns;
            expected.ctime_ns = now.ctime_ns;
            let got = hash_file_at(
                None,
                c.as_c_str(),
                &expected,
                &mut Vec::new(),
                &AtomicBool::new(false),
                &AtomicU64::new(0),
            );
            assert!(matches!(got, Ok(Hashed::Unstable { .. })), "len {len}");
        }
    }

    #[test]
    fn a_change_that_puts_the_mtime_back_is_unstable_by_its_ctime() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        for len in [1000usize, MMAP_MIN as usize + 1] {
            let p = dir.path().join(format!("f{len}"));
            std::fs::write(&p, vec![7u8; len]).unwrap();
            let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
            let before =
                FileStat::from_stat(&rustix::fs::statat(CWD, c.as_c_str(), rustix::fs::AtFlags::empty()).unwrap());
            std::thread::sleep(std::time::Duration::from_millis(20));
            // Same size, same mtime (put back, as `touch -r` does): only the ctime moved.
            std::fs::write(&p, vec![8u8; len]).unwrap();
            let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(before.mtime_ns as u64);
            std::fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(mtime)
                .unwrap();
            let (cancel, progress, mut buf) = (AtomicBool::new(false), AtomicU64::new(0), Vec::new());
            let got = hash_file_at(None, c.as_c_str(), &before, &mut buf, &cancel, &progress).unwrap();
            assert!(matches!(got, Hashed::Unstable { .. }), "len {len}");
            // An expectation from a catalog row carries no ctime: the content decides.
            let row = FileStat {
                ctime_ns: UNKNOWN_CTIME,
                ..before
            };
            let got = hash_file_at(None, c.as_c_str(), &row, &mut buf, &cancel, &progress).unwrap();
            assert!(matches!(got, Hashed::Stable { .. }), "len {len}");
        }
    }

    /// A file another program cut short after it was listed (an app saving in place):
    /// unstable, read or mapped, never a fault (SIGBUS) in the scan. A file read in several
    /// chunks hashes as a whole.
    #[test]
    fn a_file_shorter_than_listed_is_unstable_and_chunks_hash_whole() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        for len in [3 * READ_CHUNK + 123, MMAP_MIN as usize + 1] {
            let p = dir.path().join(format!("f{len}"));
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            std::fs::write(&p, &data).unwrap();
            let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
            let listed =
                FileStat::from_stat(&rustix::fs::statat(CWD, c.as_c_str(), rustix::fs::AtFlags::empty()).unwrap());
            let (cancel, progress, mut buf) = (AtomicBool::new(false), AtomicU64::new(0), Vec::new());
            match hash_file_at(None, c.as_c_str(), &listed, &mut buf, &cancel, &progress).unwrap() {
                Hashed::Stable { digest, head } => {
                    assert_eq!(digest.0, *blake3::hash(&data).as_bytes(), "len {len}");
                    assert_eq!(&head[..], &data[..HEAD_LEN]);
                }
                other => panic!("len {len}: {other:?}"),
            }
            std::fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_len(len as u64 / 2)
                .unwrap();
            let got = hash_file_at(None, c.as_c_str(), &listed, &mut buf, &cancel, &progress).unwrap();
            assert!(matches!(got, Hashed::Unstable { .. }), "len {len}");
        }
    }

    /// A mapped file cut short by another program while its windows are being hashed:
    /// the read faults (SIGBUS); the guard makes that an unstable result, never a crash and
    /// never a digest of anything but the whole, unchanged file. The cut is made as soon
    /// as the first window is done, so the second window's read meets it.
    #[test]
    fn a_mapped_file_cut_short_mid_hash_is_unstable_not_a_crash() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        let len = 3 * WINDOW + 4096;
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8 | 1).collect(); // no zero byte
        let whole = *blake3::hash(&data).as_bytes();
        let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
        let faults_before = crate::mapguard::faults();
        for attempt in 0..5 {
            std::fs::write(&p, &data).unwrap();
            // Listed as changed an hour ago (its catalog row's mtime, no ctime): no lease is
            // taken, so the cut does not wait for the hash to let it in (as it would for a
            // file just written, see `a_writer_opening_a_leased_file_breaks_the_lease...`).
            changed_an_hour_ago(&p);
            let mut listed =
                FileStat::from_stat(&rustix::fs::statat(CWD, c.as_c_str(), rustix::fs::AtFlags::empty()).unwrap());
            listed.ctime_ns = UNKNOWN_CTIME;
            let (cancel, progress, mut buf) = (AtomicBool::new(false), AtomicU64::new(0), Vec::new());
            let got = std::thread::scope(|scope| {
                scope.spawn(|| {
                    while progress.load(Relaxed) == 0 {
                        std::hint::spin_loop();
                    }
                    std::fs::File::options()
                        .write(true)
                        .open(&p)
                        .unwrap()
                        .set_len(4096)
                        .unwrap();
                });
                hash_file_at(None, c.as_c_str(), &listed, &mut buf, &cancel, &progress)
            });
            match got {
                Ok(Hashed::Stable { digest, .. }) => assert_eq!(digest.0, whole, "attempt {attempt}"),
                Ok(Hashed::Unstable { .. }) => {}
                Ok(busy @ Hashed::Busy(_)) => panic!("attempt {attempt}: {busy:?}"),
                Err(e) => panic!("attempt {attempt}: {e:?}"),
            }
            if crate::mapguard::faults() > faults_before {
                return;
            }
        }
        panic!("no cut landed inside a window in five attempts");
    }

    #[test]
    fn cancelled_big_file_stops() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        std::fs::write(&p, vec![7u8; WINDOW + 10]).unwrap();
        use std::os::unix::ffi::OsStrExt;
        let r = hash_path(p.as_os_str().as_bytes(), &AtomicBool::new(true));
        assert!(matches!(r, Err(crate::error::Error::Cancelled)));
    }

    /// Set `p`'s mtime an hour back (its ctime is now, as ever after a change).
    fn changed_an_hour_ago(p: &std::path::Path) {
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
    }

    /// Open `p` to be read as a scan opens it, and its stat as the walk would list it.
    fn opened(p: &std::path::Path) -> (File, FileStat) {
        let file = File::open(p).unwrap();
        let st = FileStat::from_stat(&rustix::fs::fstat(file.as_fd()).unwrap());
        (file, st)
    }

    #[test]
    fn a_file_just_changed_and_open_for_writing_is_busy_and_not_read() {
        // A write under way in place: the size and times it set as it began are those
        // before and after any read, so only the open writer tells.
        let dir = tempfile::tempdir().unwrap();
        let progress = AtomicU64::new(0);
        for len in [40_000usize, 3 << 20] {
            let p = dir.path().join(format!("f{len}"));
            std::fs::write(&p, vec![b'A'; len]).unwrap();
            let mut writer = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
            writer.write_all(&vec![b'B'; len / 2]).unwrap();
            let (file, st) = opened(&p);
            let before = progress.load(Relaxed);
            let got = hash_file(&file, &st, &mut Vec::new(), &AtomicBool::new(false), &progress).unwrap();
            assert!(
                matches!(
                    got,
                    Hashed::Busy(Busy {
                        why: Unsettled::Writer,
                        ..
                    })
                ),
                "len {len}: {got:?}"
            );
            if len <= crate::lanes::LANES_MAX {
                let mut arena = Vec::new();
                let held = read_small(&file, &st, &mut arena, &progress).unwrap();
                assert!(
                    matches!(
                        held,
                        Held::Busy(Busy {
                            why: Unsettled::Writer,
                            ..
                        })
                    ),
                    "len {len}: {held:?}"
                );
                assert!(arena.is_empty());
            }
            assert_eq!(progress.load(Relaxed), before, "nothing read");
            // The writer done and gone: read, under a lease, to the bytes it left.
            writer.write_all(&vec![b'B'; len - len / 2]).unwrap();
            drop(writer);
            let (file, st) = opened(&p);
            assert!(settling(&st), "just written");
            match hash_file(&file, &st, &mut Vec::new(), &AtomicBool::new(false), &progress).unwrap() {
                Hashed::Stable { digest, .. } => assert_eq!(digest.0, *blake3::hash(&vec![b'B'; len]).as_bytes()),
                other => panic!("len {len}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_writer_that_asks_in_while_a_file_is_read_is_let_in_and_the_read_given_up() {
        // 48 MiB, read in chunks of 1 MiB (not mapped): as soon as the read has begun,
        // another open asks to write (non-blocking: it is refused, the lease marked broken).
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        let len = 48usize << 20;
        use std::os::unix::fs::OpenOptionsExt;
        for attempt in 0..5 {
            std::fs::write(&p, vec![b'A'; len]).unwrap();
            let (file, st) = opened(&p);
            let (cancel, progress) = (AtomicBool::new(false), AtomicU64::new(0));
            let got = std::thread::scope(|scope| {
                scope.spawn(|| {
                    while progress.load(Relaxed) == 0 {
                        std::hint::spin_loop();
                    }
                    let asked = std::fs::OpenOptions::new()
                        .write(true)
                        .custom_flags(libc::O_NONBLOCK)
                        .open(&p);
                    assert_eq!(asked.unwrap_err().raw_os_error(), Some(libc::EWOULDBLOCK));
                });
                hash_file(&file, &st, &mut Vec::new(), &cancel, &progress).unwrap()
            });
            match got {
                Hashed::Busy(Busy {
                    why: Unsettled::Waited, ..
                }) => {
                    assert!(progress.load(Relaxed) < len as u64, "stopped before the end");
                    assert_eq!(Unsettled::Waited.errno(), None);
                    return;
                }
                Hashed::Stable { .. } => {} // read whole before the open came: again
                other => panic!("attempt {attempt}: {other:?}"),
            }
        }
        panic!("no writer asked in while the file was read, in five attempts");
    }

    #[test]
    fn leases_are_trusted_only_where_they_see_every_writer() {
        let dir = tempfile::tempdir().unwrap();
        let here = rustix::fs::statfs(dir.path()).unwrap();
        assert!(
            leases_see_all_writers(here.f_type as i64),
            "a local file system: {:#x}",
            here.f_type
        );
        for shared in [0x6573_5546i64, 0x6969, 0xFE53_4D42] {
            assert!(!leases_see_all_writers(shared), "{shared:#x}");
        }
        assert_eq!(Unsettled::Writer.errno(), Some(libc::EAGAIN));
        assert!(Unsettled::Unwatched.reason().contains("FUSE or network"));
    }

    #[test]
    fn a_file_changed_long_ago_is_read_without_a_lease() {
        // Its times (as a catalog row gives them: mtime alone) are an hour old: no lease is
        // asked for, so a writer that holds it open (and writes nothing) is not in the way.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("old");
        std::fs::write(&p, b"settled").unwrap();
        changed_an_hour_ago(&p);
        let _writer = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        let (file, mut st) = opened(&p);
        st.ctime_ns = UNKNOWN_CTIME;
        assert!(!settling(&st));
        match hash_file(&file, &st, &mut Vec::new(), &AtomicBool::new(false), &AtomicU64::new(0)).unwrap() {
            Hashed::Stable { digest, .. } => assert_eq!(digest.0, *blake3::hash(b"settled").as_bytes()),
            other => panic!("{other:?}"),
        }
        // Nor a time far ahead of the clock (a camera's wrong date kept by the copy).
        st.mtime_ns += 2 * 3600 * 1_000_000_000;
        assert!(!settling(&st));
    }

    #[test]
    fn a_writer_opening_a_leased_file_breaks_the_lease_and_the_process_lives_on() {
        // The kernel signals the break with SIGIO, whose default action would end this
        // test's process; the lease's holder sees the break and can let the writer in.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("leased");
        std::fs::write(&p, b"x").unwrap();
        let file = File::open(&p).unwrap();
        let lease = Lease::take(&file).unwrap();
        assert!(!lease.broken());
        use std::os::unix::fs::OpenOptionsExt;
        let waited = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&p);
        assert_eq!(waited.unwrap_err().raw_os_error(), Some(libc::EWOULDBLOCK));
        std::thread::sleep(std::time::Duration::from_millis(50)); // the signal lands meanwhile
        assert!(lease.broken());
        drop(lease);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .write_all(b"y")
            .unwrap();
        // And no lease is granted while a writer holds the file open.
        let writer = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        assert_eq!(Lease::take(&file).err(), Some(Errno::AGAIN));
        drop(writer);
        assert!(Lease::take(&file).is_ok());
    }
}
