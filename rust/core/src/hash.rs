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

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
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
    let file = open_with(Some(dir), name, OFlags::NOFOLLOW)?;
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
    let mut hasher = blake3::Hasher::new();
    let unstable = |file: &File| -> Result<Hashed, HashError> {
        Ok(Hashed::Unstable {
            now: FileStat::from_stat(&rustix::fs::fstat(file.as_fd())?),
        })
    };
    let head = if len < MMAP_MIN {
        match read_whole(file, len, &mut hasher, buf, cancel, progress)? {
            Some(head) => head,
            None => return unstable(file),
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
                match read_whole(file, len, &mut hasher, buf, cancel, progress)? {
                    Some(head) => head,
                    None => return unstable(file),
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

/// Read and hash `len` bytes of `file` in chunks through `buf`; the first bytes (for the
/// kind sniffer) are returned; `None` if the file read short (cut short as it was read,
/// or one whose size says more than can be read, as on some FUSE mounts): the caller
/// calls it unstable, whatever its `fstat` says, rather than keep a digest of part of it.
fn read_whole(
    file: &File,
    len: u64,
    hasher: &mut blake3::Hasher,
    buf: &mut Vec<u8>,
    cancel: &AtomicBool,
    progress: &AtomicU64,
) -> Result<Option<Box<[u8]>>, HashError> {
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
    Ok((!short).then_some(head))
}

/// A small file read whole for `lanes::hash_inputs`, or one that changed as it was read.
#[derive(Debug)]
pub enum Held {
    /// Its bytes are `arena[start..start + len]`, unchanged while they were read.
    Read { start: usize, len: usize },
    /// As `Hashed::Unstable`; the arena is as it was.
    Unstable { now: FileStat },
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
        Err(HashError::Cancelled) => Err(crate::error::Error::Cancelled),
        Err(HashError::Io(e)) => Err(crate::error::Error::from_io(p, e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
            let listed =
                FileStat::from_stat(&rustix::fs::statat(CWD, c.as_c_str(), rustix::fs::AtFlags::empty()).unwrap());
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
}
