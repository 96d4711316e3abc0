//! The parallel directory walker.
//!
//! One rayon task per directory: open it once, read all entries with `getdents64`, then
//! `fstatat` each regular file relative to the directory's descriptor (no path resolution
//! per file, which is where `find` and full-path walkers spend their time). Subdirectories
//! become new tasks, so both cores stay busy on wide and deep trees alike.

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, OsStr};
use std::io::Read;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir, CWD};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::types::FileStat;

/// The name of the per-directory ignore file (gitignore syntax).
pub const IGNORE_FILE: &str = ".mediaforgeignore";

/// Bytes of directory entries one `getdents64` call may return.
const DIRENT_BUF: usize = 32 * 1024;

/// How to walk.
#[derive(Debug, Clone)]
pub struct WalkOptions {
    /// Gitignore-style patterns applied under every root, as if in a root ignore file.
    pub excludes: Vec<String>,
    /// Read `.mediaforgeignore` files found in the tree.
    pub use_ignore_files: bool,
    /// Include names starting with a dot.
    pub include_hidden: bool,
    /// Follow symbolic links (to files and folders), with loop detection.
    pub follow_symlinks: bool,
    /// Do not descend into folders on another device than their root.
    pub one_file_system: bool,
    /// Absolute paths (files or folders) left out wherever the walk meets them: the
    /// catalog's own files, which a scan of the folder holding them would otherwise list.
    pub skip: Vec<Vec<u8>>,
    /// (device, inode) of files and folders left out wherever the walk meets them, under
    /// any name: the catalog's own, reached through a hard link, a bind mount, or (with
    /// `follow_symlinks`) a symbolic link, which `skip`'s paths do not name.
    pub skip_ids: Vec<(u64, u64)>,
    /// List regular files by name only, their `stat` left `FileStat::UNKNOWN`: for a
    /// caller that opens every file anyway (a first scan that hashes), and takes the stat
    /// from the open file. A `statx` by name looks the name up once more than an `fstat`
    /// (a fifth of a first scan's kernel time). Not with `one_file_system`, which needs
    /// each file's device to list it.
    pub defer_file_stat: bool,
}

impl Default for WalkOptions {
    fn default() -> Self {
        WalkOptions {
            excludes: Vec::new(),
            use_ignore_files: true,
            include_hidden: true,
            follow_symlinks: false,
            one_file_system: false,
            skip: Vec::new(),
            skip_ids: Vec::new(),
            defer_file_stat: false,
        }
    }
}

/// One regular file found by the walk.
#[derive(Debug, Clone)]
pub struct WalkedFile {
    /// Full path, raw bytes as the OS gave them.
    pub path: Box<[u8]>,
    /// Where the file name starts in `path`.
    pub name_start: u32,
    pub stat: FileStat,
    /// When the file was made (its inode's birth time, ns since the epoch), or 0 where
    /// the file system keeps none: a file made after a catalog row was last seen is not
    /// the file that row describes, whatever inode number it got (see `scan`).
    pub born_ns: i64,
}

impl WalkedFile {
    pub fn name(&self) -> &[u8] {
        &self.path[self.name_start as usize..]
    }
}

/// The files of one directory, kept together so the hasher can open the directory once.
#[derive(Debug)]
pub struct DirFiles {
    pub dir: Box<[u8]>,
    pub files: Vec<WalkedFile>,
    /// The folder as the walk opened it, where files were listed by name only
    /// (`WalkOptions::defer_file_stat`): they are opened relative to it, never through a
    /// path the folder may no longer be at (a folder swapped for a link to elsewhere).
    pub fd: Option<rustix::fd::OwnedFd>,
}

/// A problem with one path; the walk goes on.
#[derive(Debug, Clone)]
pub struct PathError {
    pub path: Box<[u8]>,
    pub stage: &'static str,
    pub message: String,
    pub errno: Option<i32>,
}

impl PathError {
    pub fn from_errno(path: &[u8], stage: &'static str, e: Errno) -> Self {
        let io = std::io::Error::from(e);
        PathError {
            path: path.into(),
            stage,
            message: describe_io(&io),
            errno: Some(e.raw_os_error()),
        }
    }
}

/// A short, human message for an I/O error, without Rust's "(os error N)" suffix.
pub fn describe_io(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Live counters, read by the progress display while the walk runs.
#[derive(Debug, Default)]
pub struct WalkCounters {
    pub files: AtomicU64,
    pub bytes: AtomicU64,
    pub dirs: AtomicU64,
    pub errors: AtomicU64,
}

/// What the walk learned besides the files (which go to the sink as they are found).
#[derive(Debug, Default)]
pub struct WalkOutput {
    pub errors: Vec<PathError>,
    /// Folders that could not be read (or whose reading failed part-way): what the catalog
    /// knows below them must not be taken as gone.
    pub unreadable_dirs: Vec<Box<[u8]>>,
    /// Files and folders the options left out (`--exclude`, `.mediaforgeignore`, hidden
    /// names, symbolic links not followed, other file systems): not looked at, so what the
    /// catalog knows of them (and below them) is left as it was, never taken as gone.
    pub left_out: Vec<Box<[u8]>>,
    /// Symbolic links not followed (no `-L`), kept apart from `left_out`: a path the last
    /// scan found as a file and that is now a link was replaced by it (as `dedupe --action
    /// symlink` leaves its copies), which the catalog can tell from a file an `-L` scan
    /// reached through the link.
    pub links_left_out: Vec<Box<[u8]>>,
    /// Of `left_out`, those excluded by a pattern (`--exclude`, `.mediaforgeignore`) or
    /// on another file system (`-x`): places a file may have moved to within the tree.
    pub excluded: u64,
    /// Of `excluded`, those the walk's options left out (`--exclude`, `-x`), not an ignore
    /// file: a one-off, after which a file moved there is found again.
    pub excluded_by_options: u64,
    /// Files listed but gone when looked at (`vanished`): their device and inode as the
    /// listing gave them (the folder's device). Renamed as the walk ran, as often as not:
    /// the catalog's rows of those inodes describe files that exist somewhere.
    pub glimpsed: Vec<crate::types::FileId>,
}

/// A chain of ignore matchers from the root down to the current folder.
struct IgnoreNode {
    matcher: Gitignore,
    parent: Option<Arc<IgnoreNode>>,
    /// The command line's `--exclude` patterns: they come first, as git's do, so an
    /// ignore file's `!name` does not bring back what the command line leaves out.
    cli: bool,
}

impl IgnoreNode {
    /// Whether `path` is left out, and by what: `Some(true)` by the command line's
    /// patterns, `Some(false)` by an ignore file's.
    fn ignored_by(node: &Option<Arc<IgnoreNode>>, path: &Path, is_dir: bool) -> Option<bool> {
        let nodes = || std::iter::successors(node.as_deref(), |n| n.parent.as_deref());
        // The command line's patterns, then the ignore files, nearest first.
        for n in nodes().filter(|n| n.cli).chain(nodes().filter(|n| !n.cli)) {
            match n.matcher.matched(path, is_dir) {
                Match::Ignore(_) => return Some(n.cli),
                Match::Whitelist(_) => return None,
                Match::None => {}
            }
        }
        None
    }
}

/// The folders above the current one, for symlink loop detection.
struct Ancestor {
    dev: u64,
    ino: u64,
    parent: Option<Arc<Ancestor>>,
}

impl Ancestor {
    fn contains(node: &Option<Arc<Ancestor>>, dev: u64, ino: u64) -> bool {
        let mut cur = node.as_deref();
        while let Some(a) = cur {
            if a.dev == dev && a.ino == ino {
                return true;
            }
            cur = a.parent.as_deref();
        }
        false
    }
}

/// Receives each folder's files as soon as they are listed, on a worker thread.
pub type DirSink<'a> = dyn Fn(DirFiles) + Sync + 'a;

struct Ctx<'a> {
    sink_files: &'a DirSink<'a>,
    opts: &'a WalkOptions,
    cancel: &'a AtomicBool,
    counters: &'a WalkCounters,
    sink: Mutex<WalkOutput>,
    /// Roots that lie inside another root, by the folder holding them: the outer root's
    /// walk passes them by, for each is walked as a root of its own, with its own
    /// excludes, ignore files and file system.
    claimed: HashMap<Vec<u8>, Vec<Vec<u8>>>,
    /// With `-L`: how many routes have reached each folder (device, inode) so far.
    routes: Mutex<HashMap<(u64, u64), u32>>,
}

/// With `-L`, a folder is walked once per route of links that reaches it (as `find -L`
/// does), up to this many: links that fork and join again level after level (a link
/// farm: two links in each folder to the next) reach the deepest folders by 2^depth
/// routes, which would never end. Past it, the folder is an error row, held as one that
/// cannot be read.
pub const MAX_ROUTES: u32 = 256;

/// The roots that lie inside another root, as (folder holding one, its names there).
fn nested_roots(roots: &[Vec<u8>]) -> HashMap<Vec<u8>, Vec<Vec<u8>>> {
    let all: HashSet<&[u8]> = roots.iter().map(|r| trim_trailing_slashes(r)).collect();
    let mut out: HashMap<Vec<u8>, Vec<Vec<u8>>> = HashMap::new();
    for &r in all.iter().filter(|r| **r != b"/") {
        let mut above = r;
        let nested = loop {
            match above.iter().rposition(|&b| b == b'/') {
                Some(cut) => {
                    above = if cut == 0 { &b"/"[..] } else { &above[..cut] };
                    if all.contains(above) {
                        break true;
                    }
                    if cut == 0 {
                        break false;
                    }
                }
                None => break false,
            }
        };
        if nested {
            let cut = r
                .iter()
                .rposition(|&b| b == b'/')
                .expect("a nested root has a folder above");
            let parent = if cut == 0 { &b"/"[..] } else { &r[..cut] };
            out.entry(parent.to_vec()).or_default().push(r[cut + 1..].to_vec());
        }
    }
    out
}

impl Ctx<'_> {
    fn error(&self, err: PathError) {
        self.counters.errors.fetch_add(1, Relaxed);
        self.sink.lock().unwrap().errors.push(err);
    }

    /// A file that could not be stat-ed: gone (ENOENT) is an ordinary error; anything else
    /// (EACCES in a folder we may list but not enter) means we do not know, so the
    /// catalog's row for it must not be taken as deleted. `listed`: its folder, and the
    /// inode number the listing gave (see `WalkOutput::glimpsed`).
    fn stat_failed(&self, path: &[u8], e: Errno, listed: (BorrowedFd<'_>, u64)) {
        if e == Errno::NOENT {
            let (dir, ino) = listed;
            let id = rustix::fs::fstat(dir).map(|st| crate::types::FileId {
                dev: st.st_dev as u64,
                ino,
            });
            let mut out = self.sink.lock().unwrap();
            out.errors.push(PathError::from_errno(path, "vanished", e));
            out.glimpsed.extend(id.ok());
            self.counters.errors.fetch_add(1, Relaxed);
        } else {
            self.unreadable(path, PathError::from_errno(path, "stat", e));
        }
    }

    fn unreadable(&self, dir: &[u8], err: PathError) {
        let mut out = self.sink.lock().unwrap();
        out.unreadable_dirs.push(dir.into());
        out.errors.push(err);
        self.counters.errors.fetch_add(1, Relaxed);
    }
}

/// Per-folder state handed to its task.
struct DirTask {
    path: Vec<u8>,
    ignores: Option<Arc<IgnoreNode>>,
    ancestors: Option<Arc<Ancestor>>,
    root_dev: u64,
    via_symlink: bool,
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    p.extend_from_slice(dir);
    if !dir.ends_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// A temporary file MediaForge writes beside its target and renames into place
/// (`.mediaforge-<16 hex digits>.tmp`): one left by a crash is not a media file to catalog.
pub(crate) fn is_own_temporary(name: &[u8]) -> bool {
    name.len() == 32
        && name.starts_with(b".mediaforge-")
        && name.ends_with(b".tmp")
        && name[12..28]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

fn os(path: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(path))
}

/// The largest `.mediaforgeignore` read: far above any real one (a line is a pattern),
/// small enough that a hostile one cannot fill memory.
pub const IGNORE_FILE_MAX: u64 = 1 << 20;

/// The bytes of the `.mediaforgeignore` in the folder `dir`: a regular file (through a
/// symlink too) of at most `IGNORE_FILE_MAX` bytes. A FIFO there would block the walk
/// and `/dev/zero` would fill memory, so anything else is refused with a message; but a
/// folder of that name (or a link to one) is no rules file anyone wrote: it holds no
/// rules, and is walked as the folder it is.
fn read_ignore_file(dir: BorrowedFd<'_>) -> std::result::Result<Vec<u8>, (String, Option<i32>)> {
    let io = |e: Errno| (describe_io(&e.into()), Some(e.raw_os_error()));
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
    let fd = match rustix::fs::openat(dir, IGNORE_FILE, flags, Mode::empty()) {
        Ok(fd) => fd,
        // A folder this user may not open is a folder all the same.
        Err(e) => match rustix::fs::statat(dir, IGNORE_FILE, AtFlags::empty()) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => return Ok(Vec::new()),
            _ => return Err(io(e)),
        },
    };
    let st = rustix::fs::fstat(&fd).map_err(io)?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => {}
        FileType::Directory => return Ok(Vec::new()),
        _ => return Err(("not a regular file (a FIFO, socket or device)".into(), None)),
    }
    if st.st_size as u64 > IGNORE_FILE_MAX {
        return Err((
            format!("{} bytes, over the {} bytes read", st.st_size, IGNORE_FILE_MAX),
            None,
        ));
    }
    let mut text = Vec::with_capacity(st.st_size as usize);
    std::fs::File::from(fd)
        .take(IGNORE_FILE_MAX + 1)
        .read_to_end(&mut text)
        .map_err(|e| (e.to_string(), e.raw_os_error()))?;
    if text.len() as u64 > IGNORE_FILE_MAX {
        return Err((format!("over the {IGNORE_FILE_MAX} bytes read"), None));
    }
    Ok(text)
}

/// The lines of an ignore file, numbered from 0: without a byte-order mark before the
/// first (Windows editors save one) or a `\r` at the end (their line ends); a line that is
/// not UTF-8 is an `Err`.
fn ignore_file_lines(text: &[u8]) -> impl Iterator<Item = (usize, std::result::Result<&str, std::str::Utf8Error>)> {
    let text = text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text);
    text.split(|&c| c == b'\n').enumerate().map(|(n, line)| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        (n, std::str::from_utf8(line))
    })
}

/// The most lines of an ignore file that are no pattern its error row names.
const MAX_PROBLEMS_NAMED: usize = 20;

/// The error row of an ignore file whose rules are unknown (it cannot be read, or its
/// patterns cannot be put together), whose folder is then left as it was.
fn held_back(file: Vec<u8>, why: &str, errno: Option<i32>) -> PathError {
    PathError {
        path: file.into(),
        stage: "ignore-file",
        message: format!("{why}; its folder is left as it was"),
        errno,
    }
}

/// Whether an ignore file's line is a comment (`#` first; `\\#` is a pattern) or blank,
/// which holds no pattern to check.
fn is_comment(line: &str) -> bool {
    line.starts_with('#') || line.trim().is_empty()
}

/// Where the bracket expression opened by the `[` at `open` closes, read as git's matcher
/// reads it: one `!` or `^` may negate it, its first member may be `]` (`[]a]`, `[!]a]`),
/// a `\\` takes the character after it (`[\\]]`), and `[:alpha:]` is one member. None
/// when no `]` closes it: git then takes the whole pattern for one that matches nothing.
fn class_end(c: &[char], open: usize) -> Option<usize> {
    let mut j = open + 1;
    if matches!(c.get(j), Some('!' | '^')) {
        j += 1;
    }
    let mut first = true;
    loop {
        match c.get(j)? {
            ']' if !first => return Some(j),
            '\\' => j += 2,
            '[' if c.get(j + 1) == Some(&':') => {
                // `[:name:]` to its `]`; a `[:` with no `:]` after it is a `[` as any member.
                let close = j + 2 + c.get(j + 2..)?.iter().position(|&d| d == ']')?;
                j = if close > j + 2 && c[close - 1] == ':' {
                    close + 1
                } else {
                    j + 1
                };
            }
            _ => j += 1,
        }
        first = false;
    }
}

/// Why a pattern cannot be given to the matcher as git reads it: a `[` that no `]` closes
/// (see `class_end`), which git's matcher takes for a pattern matching nothing (the glob
/// library would match the character itself).
fn unclosed_class(line: &str) -> Option<String> {
    let c: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '\\' => i += 2,
            '[' => {
                match class_end(&c, i) {
                    Some(end) => i = end + 1,
                    None => return Some(
                        "a `[` with no `]` after it matches nothing, as in git (write `\\[` for the character itself)"
                            .into(),
                    ),
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// A gitignore line as the matcher must be given it: git takes `{` and `}` literally (a
/// folder `Album {2019}/`), where the glob library reads them as alternatives (`{a,b}`);
/// each one not already escaped gets a backslash. A bracket expression (`class_end`) is
/// left as it stands: a brace there is already a character.
fn literal_braces(line: &str) -> std::borrow::Cow<'_, str> {
    if !line.contains(['{', '}']) {
        return line.into();
    }
    let c: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len() + 4);
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '\\' => {
                out.extend(&c[i..(i + 2).min(c.len())]);
                i += 2;
                continue;
            }
            '{' | '}' => {
                out.push('\\');
                out.push(c[i]);
            }
            '[' => {
                if let Some(end) = class_end(&c, i) {
                    out.extend(&c[i..=end]);
                    i = end + 1;
                    continue;
                }
                // Unclosed (refused before it gets here): what follows is read as any text is.
                out.push('[');
            }
            d => out.push(d),
        }
        i += 1;
    }
    out.into()
}

/// Refuse malformed exclude patterns up front, before a scan starts (and is recorded).
pub fn check_excludes(patterns: &[String]) -> Result<()> {
    build_excludes(b"/", patterns, None).map(|_| ())
}

/// The `.mediaforgeignore` files of the folders above `root`, nearest first: a scan of a
/// subfolder leaves out what a scan of the folder above it would (gitignore's rule, where
/// a file's patterns hold for everything below it), so which folder was named does not
/// change what is catalogued. A folder above that cannot be read has none as far as the
/// walk can tell; an ignore file that cannot be read is an `ignore-file` error row.
///
/// Err when one of them cannot be read, or its patterns cannot be put together: what it
/// leaves out is unknown, so the root is left as it was (an error row says why), as a
/// folder below it with such a file is. The error is the row that says so.
fn ancestor_ignores(root: &[u8]) -> std::result::Result<Option<Arc<IgnoreNode>>, PathError> {
    if !root.starts_with(b"/") {
        return Ok(None);
    }
    let mut node: Option<Arc<IgnoreNode>> = None;
    // Each folder from `/` down to the root's parent: the root's path up to each of its `/`.
    for (at, _) in root.iter().enumerate().filter(|&(_, &c)| c == b'/') {
        let dir = &root[..at.max(1)];
        let Ok(fd) = rustix::fs::openat(
            CWD,
            os(dir),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            continue;
        };
        // Not followed: a link there that leads nowhere is an ignore file that cannot be
        // read, as in the walk, not none.
        if matches!(
            rustix::fs::statat(&fd, IGNORE_FILE, AtFlags::SYMLINK_NOFOLLOW),
            Err(Errno::NOENT)
        ) {
            continue;
        }
        let file = join(dir, IGNORE_FILE.as_bytes());
        let mut b = GitignoreBuilder::new(os(dir));
        match read_ignore_file(fd.as_fd()) {
            Ok(text) => {
                // Problems with its lines are reported by the scan that walks that folder.
                for (_, line) in ignore_file_lines(&text) {
                    if let Ok(line) = line {
                        if is_comment(line) || unclosed_class(line).is_none() {
                            let _ = b.add_line(Some(os(&file).to_path_buf()), &literal_braces(line));
                        }
                    }
                }
            }
            Err((message, errno)) => return Err(held_back(file, &message, errno)),
        }
        match b.build() {
            Ok(matcher) => {
                node = Some(Arc::new(IgnoreNode {
                    matcher,
                    parent: node,
                    cli: false,
                }))
            }
            Err(e) => return Err(held_back(file, &e.to_string(), None)),
        }
    }
    Ok(node)
}

/// The roots of `roots` that `root` lies below (not itself), outermost first.
fn outer_roots<'a>(roots: &'a [Vec<u8>], root: &[u8]) -> Vec<&'a [u8]> {
    let mut out: Vec<&[u8]> = roots
        .iter()
        .map(|r| trim_trailing_slashes(r))
        .filter(|r| *r != root && (*r == b"/" || (root.starts_with(r) && root.get(r.len()) == Some(&b'/'))))
        .collect();
    out.sort_by_key(|r| r.len());
    out.dedup();
    out
}

fn build_excludes(root: &[u8], patterns: &[String], above: Option<Arc<IgnoreNode>>) -> Result<Option<Arc<IgnoreNode>>> {
    if patterns.is_empty() {
        return Ok(above);
    }
    let mut b = GitignoreBuilder::new(os(root));
    for p in patterns {
        if let Some(why) = unclosed_class(p) {
            return Err(Error::InvalidInput(format!("bad exclude pattern {p:?}: {why}")));
        }
        b.add_line(None, &literal_braces(p))
            .map_err(|e| Error::InvalidInput(format!("bad exclude pattern {p:?}: {e}")))?;
    }
    let matcher = b
        .build()
        .map_err(|e| Error::InvalidInput(format!("bad exclude patterns: {e}")))?;
    Ok(Some(Arc::new(IgnoreNode {
        matcher,
        parent: above,
        cli: true,
    })))
}

/// Walk the roots in parallel on the current rayon pool.
///
/// A root may be a folder or a single file. Roots must exist: a missing root is an error
/// of the whole call, since silently finding nothing there would make every file the
/// catalog knows below it look deleted.
pub fn walk(
    roots: &[Vec<u8>],
    opts: &WalkOptions,
    cancel: &AtomicBool,
    counters: &WalkCounters,
    sink_files: &DirSink<'_>,
) -> Result<WalkOutput> {
    let ctx = Ctx {
        sink_files,
        opts,
        cancel,
        counters,
        sink: Mutex::new(WalkOutput::default()),
        claimed: nested_roots(roots),
        routes: Mutex::new(HashMap::new()),
    };
    let mut tasks = Vec::new();
    let mut held_above: HashSet<Box<[u8]>> = HashSet::new();
    for root in roots {
        let root = trim_trailing_slashes(root);
        let flags = if opts.follow_symlinks {
            AtFlags::empty()
        } else {
            AtFlags::SYMLINK_NOFOLLOW
        };
        // The root itself is always followed if it is a link: the user named it.
        let st = rustix::fs::statat(CWD, os(root), AtFlags::empty())
            .or_else(|_| rustix::fs::statat(CWD, os(root), flags))
            .map_err(|e| Error::from_io(os(root), e.into()))?;
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft == FileType::Directory {
            let above = if opts.use_ignore_files {
                match ancestor_ignores(root) {
                    Ok(above) => above,
                    // Left as it was: the rules above it unknown. One row per such file,
                    // however many roots lie below it.
                    Err(err) => {
                        if held_above.insert(err.path.clone()) {
                            ctx.unreadable(root, err);
                        } else {
                            ctx.sink.lock().unwrap().unreadable_dirs.push(root.into());
                        }
                        continue;
                    }
                }
            } else {
                None
            };
            // The command line's patterns hold from each root above this one too, outermost
            // first: with roots `l` and `l/sub`, `-e sub/x/` leaves out `l/sub/x` as it would
            // were `l/sub` not named (this root itself is walked: it was named).
            let mut chain = above;
            for outer in outer_roots(roots, root) {
                chain = build_excludes(outer, &opts.excludes, chain)?;
            }
            tasks.push(DirTask {
                ignores: build_excludes(root, &opts.excludes, chain)?,
                path: root.to_vec(),
                ancestors: None,
                root_dev: st.st_dev as u64,
                via_symlink: true,
            });
        } else if ft == FileType::RegularFile {
            let name_start = root.iter().rposition(|&b| b == b'/').map(|i| i + 1).unwrap_or(0);
            let dir: &[u8] = if name_start == 0 {
                b"."
            } else {
                &root[..name_start.max(1) - 1]
            };
            // Its birth time too, as a folder's files get theirs: a file made since the
            // catalog's row of its inode was last seen (the inode reused) is read again.
            let (stat, born_ns) = match rustix::fs::statx(
                CWD,
                os(root),
                AtFlags::empty(),
                rustix::fs::StatxFlags::BASIC_STATS | rustix::fs::StatxFlags::BTIME,
            ) {
                Ok(sx) if FileType::from_raw_mode(sx.stx_mode.into()) == FileType::RegularFile => {
                    FileStat::from_statx(&sx)
                }
                _ => (FileStat::from_stat(&st), 0),
            };
            counters.files.fetch_add(1, Relaxed);
            counters.bytes.fetch_add(stat.len.0, Relaxed);
            (ctx.sink_files)(DirFiles {
                dir: if dir.is_empty() {
                    b"/".to_vec().into()
                } else {
                    dir.into()
                },
                files: vec![WalkedFile {
                    path: root.into(),
                    name_start: name_start as u32,
                    stat,
                    born_ns,
                }],
                fd: None,
            });
        } else {
            return Err(Error::InvalidInput(format!(
                "{} is neither a folder nor a regular file",
                os(root).display()
            )));
        }
    }
    rayon::scope(|s| {
        for t in tasks {
            let ctx = &ctx;
            s.spawn(move |s| visit_dir(s, ctx, t));
        }
    });
    if cancel.load(Relaxed) {
        return Err(Error::Cancelled);
    }
    Ok(ctx.sink.into_inner().unwrap())
}

pub(crate) fn trim_trailing_slashes(p: &[u8]) -> &[u8] {
    let mut end = p.len();
    while end > 1 && p[end - 1] == b'/' {
        end -= 1;
    }
    &p[..end]
}

fn visit_dir<'s>(scope: &rayon::Scope<'s>, ctx: &'s Ctx<'s>, task: DirTask) {
    if ctx.cancel.load(Relaxed) {
        return;
    }
    let opts = ctx.opts;
    let mut oflags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    if !task.via_symlink {
        oflags |= OFlags::NOFOLLOW;
    }
    let fd = match rustix::fs::openat(CWD, os(&task.path), oflags, Mode::empty()) {
        Ok(fd) => fd,
        Err(e) => {
            let stage = if e == Errno::NOENT { "vanished" } else { "walk" };
            ctx.unreadable(&task.path, PathError::from_errno(&task.path, stage, e));
            return;
        }
    };
    ctx.counters.dirs.fetch_add(1, Relaxed);

    // Identity of this folder: needed for loop detection, --one-file-system, and to know
    // a folder of the catalog's own mounted here (a bind mount of its thumbnails: the
    // entry's inode number is that of the folder mounted over).
    let mut ancestors = task.ancestors.clone();
    if opts.follow_symlinks || opts.one_file_system || !opts.skip_ids.is_empty() {
        match rustix::fs::fstat(&fd) {
            Ok(st) => {
                let (dev, ino) = (st.st_dev as u64, st.st_ino as u64);
                if opts.skip_ids.contains(&(dev, ino)) {
                    return;
                }
                if opts.one_file_system && dev != task.root_dev {
                    let mut out = ctx.sink.lock().unwrap();
                    out.left_out.push(task.path.into());
                    out.excluded += 1;
                    out.excluded_by_options += 1;
                    return;
                }
                if opts.follow_symlinks {
                    if Ancestor::contains(&ancestors, dev, ino) {
                        ctx.error(PathError {
                            path: task.path.clone().into(),
                            stage: "walk",
                            message: "symbolic link loop: folder already visited above".into(),
                            errno: Some(Errno::LOOP.raw_os_error()),
                        });
                        return;
                    }
                    let routes = {
                        let mut seen = ctx.routes.lock().unwrap();
                        let n = seen.entry((dev, ino)).or_insert(0);
                        *n += 1;
                        *n
                    };
                    if routes > MAX_ROUTES {
                        ctx.unreadable(
                            &task.path,
                            PathError {
                                path: task.path.clone().into(),
                                stage: "walk",
                                message: format!(
                                    "folder reached through symbolic links by more than {MAX_ROUTES} routes: \
                                     left out here (links that fork and join again?)"
                                ),
                                errno: Some(Errno::LOOP.raw_os_error()),
                            },
                        );
                        return;
                    }
                    ancestors = Some(Arc::new(Ancestor {
                        dev,
                        ino,
                        parent: ancestors,
                    }));
                }
            }
            Err(e) => {
                ctx.unreadable(&task.path, PathError::from_errno(&task.path, "walk", e));
                return;
            }
        }
    }

    // Read every name first: a .mediaforgeignore must be known before any sibling is judged.
    // Names go into one buffer (NUL-terminated, as `fstatat` wants them): no allocation
    // per entry.
    let mut names: Vec<u8> = Vec::new();
    let mut entries: Vec<(u32, FileType, u64)> = Vec::new();
    let mut has_ignore_file = false;
    {
        let mut buf = [MaybeUninit::<u8>::uninit(); DIRENT_BUF];
        let mut dir = RawDir::new(&fd, &mut buf);
        while let Some(item) = dir.next() {
            match item {
                Ok(ent) => {
                    let name = ent.file_name().to_bytes_with_nul();
                    if name == b".\0" || name == b"..\0" {
                        continue;
                    }
                    if &name[..name.len() - 1] == IGNORE_FILE.as_bytes() {
                        has_ignore_file = true;
                    }
                    entries.push((names.len() as u32, ent.file_type(), ent.ino()));
                    names.extend_from_slice(name);
                }
                Err(e) => {
                    ctx.unreadable(&task.path, PathError::from_errno(&task.path, "walk", e));
                    break;
                }
            }
        }
    }

    let mut ignores = task.ignores.clone();
    if has_ignore_file && opts.use_ignore_files {
        let file = join(&task.path, IGNORE_FILE.as_bytes());
        let mut b = GitignoreBuilder::new(os(&task.path));
        // Each line that is no pattern, by its number: all of them in one row.
        let mut problems: Vec<String> = Vec::new();
        match read_ignore_file(fd.as_fd()) {
            Ok(text) => {
                for (n, line) in ignore_file_lines(&text) {
                    match line {
                        Ok(line) => {
                            let added = match unclosed_class(line).filter(|_| !is_comment(line)) {
                                Some(why) => Err(why),
                                None => b
                                    .add_line(Some(os(&file).to_path_buf()), &literal_braces(line))
                                    .map(|_| ())
                                    .map_err(|e| e.to_string()),
                            };
                            if let Err(e) = added {
                                problems.push(format!("line {}: {e} (the line is left out)", n + 1));
                            }
                        }
                        // Patterns are text: such a line could match no name. Said, not
                        // silently dropped.
                        Err(_) => problems.push(format!(
                            "line {} holds bytes that are not UTF-8 and matches nothing: write each such byte as `?`",
                            n + 1
                        )),
                    }
                }
            }
            Err((message, errno)) => {
                // Its rules unknown, the folder is not walked: what it leaves out (a
                // private folder) would be catalogued, and read. Left as it was, as a
                // folder that cannot be read is.
                ctx.unreadable(&task.path, held_back(file, &message, errno));
                return;
            }
        }
        if !problems.is_empty() {
            // The first lines by number; a file of thousands of such lines is one short row.
            let more = problems.len().saturating_sub(MAX_PROBLEMS_NAMED);
            problems.truncate(MAX_PROBLEMS_NAMED);
            if more > 0 {
                problems.push(format!("and {more} more such lines"));
            }
            ctx.error(PathError {
                path: file.clone().into(),
                stage: "ignore-file",
                message: problems.join("; "),
                errno: None,
            });
        }
        match b.build() {
            Ok(m) => {
                ignores = Some(Arc::new(IgnoreNode {
                    matcher: m,
                    parent: ignores,
                    cli: false,
                }))
            }
            Err(e) => {
                ctx.unreadable(&task.path, held_back(file, &e.to_string(), None));
                return;
            }
        }
    }

    // The names of this folder to leave out (only in the folder holding the catalog).
    let skip_here: Vec<&[u8]> = opts
        .skip
        .iter()
        .filter_map(|p| {
            let cut = p.iter().rposition(|&b| b == b'/')?;
            let parent = if cut == 0 { &b"/"[..] } else { &p[..cut] };
            (parent == trim_trailing_slashes(&task.path)).then(|| &p[cut + 1..])
        })
        .collect();
    let claimed_here: &[Vec<u8>] = ctx
        .claimed
        .get(trim_trailing_slashes(&task.path))
        .map_or(&[], Vec::as_slice);
    let mut files = Vec::new();
    let mut left_out: Vec<Box<[u8]>> = Vec::new();
    let mut links_left_out: Vec<Box<[u8]>> = Vec::new();
    let mut excluded = 0u64;
    let mut by_options = 0u64;
    let mut bytes = 0u64;
    for (start, mut ft, ino) in entries {
        if ctx.cancel.load(Relaxed) {
            return;
        }
        let cname = CStr::from_bytes_until_nul(&names[start as usize..]).expect("a NUL ends every name");
        let name = cname.to_bytes();
        if skip_here.contains(&name) || claimed_here.iter().any(|c| c.as_slice() == name) {
            continue;
        }
        if !opts.include_hidden && name.first() == Some(&b'.') {
            left_out.push(join(&task.path, name).into());
            continue;
        }
        let mut pre_stat = None;
        if ft == FileType::Unknown {
            // Some file systems do not fill d_type: one lstat tells.
            match rustix::fs::statat(&fd, cname, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => {
                    ft = FileType::from_raw_mode(st.st_mode);
                    pre_stat = Some(st);
                }
                Err(e) => {
                    ctx.stat_failed(&join(&task.path, &name), e, (fd.as_fd(), ino));
                    continue;
                }
            }
        }
        let mut via_symlink = false;
        if ft == FileType::Symlink {
            if !opts.follow_symlinks {
                // Excluded by a pattern (as a file or as a folder: which, only the link's
                // target could say) counts as excluded, whatever it points at.
                let path = join(&task.path, name);
                let by = if ignores.is_some() {
                    IgnoreNode::ignored_by(&ignores, os(&path), false)
                        .or_else(|| IgnoreNode::ignored_by(&ignores, os(&path), true))
                } else {
                    None
                };
                if let Some(cli) = by {
                    left_out.push(path.into());
                    excluded += 1;
                    by_options += u64::from(cli);
                } else {
                    links_left_out.push(path.into());
                }
                continue;
            }
            match rustix::fs::statat(&fd, cname, AtFlags::empty()) {
                Ok(st) => {
                    ft = FileType::from_raw_mode(st.st_mode);
                    pre_stat = Some(st);
                    via_symlink = true;
                }
                Err(e) => {
                    let msg = if e == Errno::NOENT {
                        "broken symbolic link".to_string()
                    } else {
                        describe_io(&e.into())
                    };
                    // Not looked behind, like a folder that cannot be read: a link whose
                    // target is on a disk not mounted now, or that we may not enter, says
                    // nothing of the files the catalog knows there (never taken as gone).
                    let path = join(&task.path, &name);
                    ctx.unreadable(
                        &path,
                        PathError {
                            path: path.clone().into(),
                            stage: "walk",
                            message: msg,
                            errno: Some(e.raw_os_error()),
                        },
                    );
                    continue;
                }
            }
        }
        if !opts.skip_ids.is_empty() {
            // The entry's inode number (its target's, for a link followed) first: a stat
            // only for the rare name that shares one with the catalog's own files.
            let seen_ino = pre_stat.as_ref().map_or(ino, |st| st.st_ino as u64);
            if opts.skip_ids.iter().any(|&(_, i)| i == seen_ino) {
                let st = match pre_stat {
                    Some(st) => Some(st),
                    None => rustix::fs::statat(&fd, cname, AtFlags::SYMLINK_NOFOLLOW).ok(),
                };
                if st.is_some_and(|st| opts.skip_ids.contains(&(st.st_dev as u64, st.st_ino as u64))) {
                    continue;
                }
            }
        }
        match ft {
            FileType::Directory => {
                let child = join(&task.path, &name);
                if let Some(cli) = IgnoreNode::ignored_by(&ignores, os(&child), true) {
                    left_out.push(child.into());
                    excluded += 1;
                    by_options += u64::from(cli);
                    continue;
                }
                let t = DirTask {
                    path: child,
                    ignores: ignores.clone(),
                    ancestors: ancestors.clone(),
                    root_dev: task.root_dev,
                    via_symlink,
                };
                scope.spawn(move |s| visit_dir(s, ctx, t));
            }
            FileType::RegularFile => {
                if is_own_temporary(name) {
                    continue; // a file only: a folder of that name is the user's
                }
                let child = join(&task.path, &name);
                if let Some(cli) = IgnoreNode::ignored_by(&ignores, os(&child), false) {
                    left_out.push(child.into());
                    excluded += 1;
                    by_options += u64::from(cli);
                    continue;
                }
                if pre_stat.is_none() && opts.defer_file_stat && !opts.one_file_system {
                    let name_start = (child.len() - name.len()) as u32;
                    files.push(WalkedFile {
                        path: child.into(),
                        name_start,
                        stat: FileStat::UNKNOWN,
                        born_ns: 0,
                    });
                    continue;
                }
                let (stat, born_ns) = match pre_stat.map_or_else(
                    || stat_born(fd.as_fd(), cname, AtFlags::SYMLINK_NOFOLLOW),
                    |st| Ok((st.st_mode, FileStat::from_stat(&st), 0)),
                ) {
                    Ok((mode, stat, born)) if FileType::from_raw_mode(mode) == FileType::RegularFile => (stat, born),
                    Ok(_) => continue, // replaced by something else since readdir
                    Err(e) => {
                        ctx.stat_failed(&child, e, (fd.as_fd(), ino));
                        continue;
                    }
                };
                if opts.one_file_system && stat.id.dev != task.root_dev {
                    left_out.push(child.into());
                    excluded += 1;
                    by_options += 1;
                    continue;
                }
                bytes += stat.len.0;
                let name_start = (child.len() - name.len()) as u32;
                files.push(WalkedFile {
                    path: child.into(),
                    name_start,
                    stat,
                    born_ns,
                });
            }
            _ => {} // sockets, pipes, devices: not media
        }
    }
    if !left_out.is_empty() || !links_left_out.is_empty() {
        let mut out = ctx.sink.lock().unwrap();
        out.left_out.append(&mut left_out);
        out.links_left_out.append(&mut links_left_out);
        out.excluded += excluded;
        out.excluded_by_options += by_options;
    }
    if !files.is_empty() {
        ctx.counters.files.fetch_add(files.len() as u64, Relaxed);
        ctx.counters.bytes.fetch_add(bytes, Relaxed);
        let deferred = files.iter().any(|f| f.stat.is_unknown());
        (ctx.sink_files)(DirFiles {
            dir: task.path.into(),
            files,
            fd: deferred.then_some(fd),
        });
    }
}

/// A file's mode, stat and birth time (0 where unknown), with one `statx` (one
/// `fstatat` on a kernel without it): of `name` in the folder `fd`, or of the open file
/// `fd` itself with an empty name and `AtFlags::EMPTY_PATH`.
pub(crate) fn stat_born(
    fd: BorrowedFd<'_>,
    name: &CStr,
    flags: AtFlags,
) -> std::result::Result<(rustix::fs::RawMode, FileStat, i64), Errno> {
    use rustix::fs::StatxFlags;
    match rustix::fs::statx(fd, name, flags, StatxFlags::BASIC_STATS | StatxFlags::BTIME) {
        Ok(st) => {
            let (stat, born) = FileStat::from_statx(&st);
            Ok((st.stx_mode.into(), stat, born))
        }
        Err(Errno::NOSYS) => rustix::fs::statat(fd, name, flags).map(|st| (st.st_mode, FileStat::from_stat(&st), 0)),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    struct Run {
        dirs: Vec<DirFiles>,
        out: WalkOutput,
    }

    fn run(root: &Path, opts: &WalkOptions) -> Run {
        let cancel = AtomicBool::new(false);
        let counters = WalkCounters::default();
        let dirs = Mutex::new(Vec::new());
        let out = walk(
            &[root.as_os_str().as_bytes().to_vec()],
            opts,
            &cancel,
            &counters,
            &|d| dirs.lock().unwrap().push(d),
        )
        .unwrap();
        Run {
            dirs: dirs.into_inner().unwrap(),
            out,
        }
    }

    fn names(out: &Run, root: &Path) -> Vec<String> {
        let mut v: Vec<String> = out
            .dirs
            .iter()
            .flat_map(|d| d.files.iter())
            .map(|f| {
                let p = Path::new(OsStr::from_bytes(&f.path));
                p.strip_prefix(root).unwrap().to_string_lossy().into_owned()
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn own_temporaries_are_told_apart() {
        assert!(is_own_temporary(b".mediaforge-0123456789abcdef.tmp"));
        for other in [
            &b".mediaforge-0123456789abcdeg.tmp"[..],
            b".mediaforge-0123456789ABCDEF.tmp",
            b".mediaforge-0123456789abcdef.tmp2",
            b"mediaforge-0123456789abcdef.tmp",
            b".mediaforge-tmp",
        ] {
            assert!(!is_own_temporary(other));
        }
    }

    #[test]
    fn an_ignore_file_with_a_bom_or_bytes_that_are_not_utf8() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::write(r.join("a.tmp"), b"1").unwrap();
        fs::write(r.join("b.jpg"), b"2").unwrap();
        fs::write(r.join(OsStr::from_bytes(b"caf\xe9.png")), b"3").unwrap();
        // Notepad's BOM before the first pattern; a Latin-1 line; then a pattern after it.
        fs::write(
            r.join(".mediaforgeignore"),
            b"\xef\xbb\xbf*.tmp\r\ncaf\xe9.png\r\nb.*\r\n",
        )
        .unwrap();
        let out = run(r, &WalkOptions::default());
        assert_eq!(names(&out, r), vec![".mediaforgeignore", "caf\u{fffd}.png"]);
        let err: Vec<&PathError> = out.out.errors.iter().filter(|e| e.stage == "ignore-file").collect();
        assert_eq!(err.len(), 1);
        assert!(
            err[0].message.contains("line 2") && err[0].message.contains("not UTF-8"),
            "{}",
            err[0].message
        );
    }

    #[test]
    fn the_walks_statx_gives_what_stat_does_and_a_birth_time() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::write(r.join("x.jpg"), b"12345").unwrap();
        let out = run(r, &WalkOptions::default());
        let f = &out.dirs[0].files[0];
        let st = rustix::fs::stat(r.join("x.jpg")).unwrap();
        assert_eq!(f.stat, FileStat::from_stat(&st));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        // Where the file system keeps birth times (ext4, btrfs, xfs, tmpfs): just now.
        assert!(
            f.born_ns == 0 || (now - 60_000_000_000..=now).contains(&f.born_ns),
            "{}",
            f.born_ns
        );
    }

    #[test]
    fn files_are_listed_by_name_only_when_asked_but_not_behind_links_or_on_one_file_system() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir(r.join("d")).unwrap();
        fs::write(r.join("d/x.jpg"), b"12345").unwrap();
        symlink(r.join("d/x.jpg"), r.join("link.jpg")).unwrap();
        let stats = |opts: &WalkOptions| -> Vec<(String, bool)> {
            let out = run(r, opts);
            let mut got: Vec<(String, bool)> = out
                .dirs
                .iter()
                .flat_map(|d| d.files.iter())
                .map(|f| (String::from_utf8_lossy(f.name()).into_owned(), f.stat.is_unknown()))
                .collect();
            got.sort();
            got
        };
        let deferred = WalkOptions {
            defer_file_stat: true,
            follow_symlinks: true,
            ..Default::default()
        };
        // The link's target is stat-ed to follow it: that stat is kept.
        assert_eq!(
            stats(&deferred),
            vec![("link.jpg".into(), false), ("x.jpg".into(), true)]
        );
        let one_fs = WalkOptions {
            one_file_system: true,
            ..deferred.clone()
        };
        assert_eq!(
            stats(&one_fs),
            vec![("link.jpg".into(), false), ("x.jpg".into(), false)]
        );
    }

    #[test]
    fn finds_files_hidden_included_and_honours_ignore_file() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("a/b")).unwrap();
        fs::create_dir_all(r.join("skipme")).unwrap();
        fs::write(r.join("a/one.jpg"), b"1").unwrap();
        fs::write(r.join("a/b/.hidden.png"), b"22").unwrap();
        fs::write(r.join("a/b/tmp.part"), b"x").unwrap();
        fs::write(r.join("skipme/x.mp4"), b"x").unwrap();
        fs::write(r.join(".mediaforgeignore"), b"skipme/\n*.part\n").unwrap();
        let out = run(r, &WalkOptions::default());
        assert_eq!(
            names(&out, r),
            vec![".mediaforgeignore", "a/b/.hidden.png", "a/one.jpg"]
        );
        let total: u64 = out.dirs.iter().flat_map(|d| d.files.iter()).map(|f| f.stat.len.0).sum();
        assert_eq!(total, 1 + 2 + 15);
    }

    #[test]
    fn ignore_files_above_the_root_hold_below_it() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("sub/deep")).unwrap();
        fs::write(r.join(".mediaforgeignore"), b"*.tmp\n/sub/deep/only-here.jpg\nsub/\n").unwrap();
        fs::write(r.join("sub/a.jpg"), b"1").unwrap();
        fs::write(r.join("sub/x.tmp"), b"2").unwrap();
        fs::write(r.join("sub/deep/only-here.jpg"), b"3").unwrap();
        fs::write(r.join("sub/deep/b.jpg"), b"4").unwrap();
        let sub = r.join("sub");
        // Scanning the subfolder itself: named, so `sub/` (a pattern for the folder) does
        // not leave it out; its files follow the patterns above it, anchored ones too.
        assert_eq!(
            names(&run(&sub, &WalkOptions::default()), &sub),
            vec!["a.jpg", "deep/b.jpg"]
        );
        let all = WalkOptions {
            use_ignore_files: false,
            ..WalkOptions::default()
        };
        assert_eq!(
            names(&run(&sub, &all), &sub),
            vec!["a.jpg", "deep/b.jpg", "deep/only-here.jpg", "x.tmp"]
        );
        // The folder's own ignore file still wins over the one above it.
        fs::write(sub.join(".mediaforgeignore"), b"!x.tmp\n").unwrap();
        assert!(names(&run(&sub, &WalkOptions::default()), &sub).contains(&"x.tmp".to_string()));
    }

    #[test]
    fn excludes_and_symlink_loops() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("d/e")).unwrap();
        fs::write(r.join("d/e/f.mp3"), b"abc").unwrap();
        fs::write(r.join("d/cache.db"), b"abc").unwrap();
        symlink(r.join("d"), r.join("d/e/loop")).unwrap();
        let opts = WalkOptions {
            excludes: vec!["*.db".into()],
            ..Default::default()
        };
        assert_eq!(names(&run(r, &opts), r), vec!["d/e/f.mp3"]);
        let follow = WalkOptions {
            follow_symlinks: true,
            ..Default::default()
        };
        let out = run(r, &follow);
        assert!(names(&out, r).contains(&"d/e/f.mp3".to_string()));
        assert!(
            out.out.errors.iter().any(|e| e.message.contains("loop")),
            "{:?}",
            out.out.errors
        );
    }

    #[test]
    fn links_that_fork_and_join_again_are_followed_a_bounded_number_of_times() {
        // l0 .. l12, each with a file and two links to the next: the last is reached by
        // 4,096 routes (a QA finding: at depth 25 the walk never ended). Each folder is
        // walked by at most MAX_ROUTES of them; past that, an error row that holds it.
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let depth = 12;
        for k in 0..=depth {
            fs::create_dir_all(r.join(format!("l{k}"))).unwrap();
            fs::write(r.join(format!("l{k}/f.jpg")), b"x").unwrap();
            if k < depth {
                for link in ["a", "b"] {
                    symlink(format!("../l{}", k + 1), r.join(format!("l{k}/{link}"))).unwrap();
                }
            }
        }
        let follow = WalkOptions {
            follow_symlinks: true,
            ..Default::default()
        };
        let out = run(r, &follow);
        // Folder l<k> holds one file and is reached by 2^(k+1) - 1 routes (from the root,
        // and through each folder before it): all of them up to l7, then MAX_ROUTES each,
        // 1,782 files of 16,369.
        let routes = |k: u32| (1usize << (k + 1)) - 1;
        let want: usize = (0..=depth).map(|k| routes(k).min(MAX_ROUTES as usize)).sum();
        assert_eq!((names(&out, r).len(), want), (1782, 1782));
        assert!(
            out.out.errors.iter().any(|e| e.message.contains("routes")),
            "{:?}",
            &out.out.errors[..3.min(out.out.errors.len())]
        );
    }

    #[test]
    fn exclusions_by_the_options_are_counted_apart_from_the_ignore_files() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("cache")).unwrap();
        fs::write(r.join("cache/c.jpg"), b"c").unwrap();
        fs::write(r.join("a.tmp"), b"a").unwrap();
        fs::write(r.join("b.png"), b"b").unwrap();
        fs::write(r.join(".mediaforgeignore"), b"cache/\n*.tmp\n").unwrap();
        let opts = WalkOptions {
            excludes: vec!["*.png".into()],
            ..Default::default()
        };
        let got = run(r, &opts);
        assert_eq!((got.out.excluded, got.out.excluded_by_options), (3, 1));
        let got = run(r, &WalkOptions::default());
        assert_eq!((got.out.excluded, got.out.excluded_by_options), (2, 0));
    }

    #[test]
    fn files_left_out_by_device_and_inode_are_left_out_under_every_name() {
        use std::os::unix::fs::MetadataExt;
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("d")).unwrap();
        fs::write(r.join("cat.duckdb"), b"catalog").unwrap();
        fs::write(r.join("d/a.jpg"), b"a").unwrap();
        fs::hard_link(r.join("cat.duckdb"), r.join("d/hard.duckdb")).unwrap();
        std::os::unix::fs::symlink("../cat.duckdb", r.join("d/soft.duckdb")).unwrap();
        let m = fs::metadata(r.join("cat.duckdb")).unwrap();
        for follow_symlinks in [false, true] {
            for defer_file_stat in [false, true] {
                let opts = WalkOptions {
                    skip_ids: vec![(m.dev(), m.ino())],
                    follow_symlinks,
                    defer_file_stat,
                    ..Default::default()
                };
                assert_eq!(
                    names(&run(r, &opts), r),
                    vec!["d/a.jpg"],
                    "{follow_symlinks} {defer_file_stat}"
                );
            }
        }
        // Another device's file of that inode number is no catalog.
        let other = WalkOptions {
            skip_ids: vec![(m.dev() + 1, m.ino())],
            ..Default::default()
        };
        assert_eq!(
            names(&run(r, &other), r),
            vec!["cat.duckdb", "d/a.jpg", "d/hard.duckdb"]
        );
    }

    #[test]
    fn a_root_inside_another_is_walked_once_with_its_own_excludes() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("a/b")).unwrap();
        fs::write(r.join("a/x.jpg"), b"1").unwrap();
        fs::write(r.join("a/b/y.jpg"), b"2").unwrap();
        fs::write(r.join("a/z.png"), b"3").unwrap();
        let bytes = |p: &Path| p.as_os_str().as_bytes().to_vec();
        let roots = [bytes(&r.join("a")), bytes(&r.join("a/b")), bytes(&r.join("a/z.png"))];
        let opts = WalkOptions {
            // Relative to each root: `b/` leaves out a/b below root a, never the root a/b.
            excludes: vec!["b/".into(), "*.png".into()],
            ..Default::default()
        };
        let (cancel, counters, dirs) = (AtomicBool::new(false), WalkCounters::default(), Mutex::new(Vec::new()));
        let out = walk(&roots, &opts, &cancel, &counters, &|d| dirs.lock().unwrap().push(d)).unwrap();
        let got = Run {
            dirs: dirs.into_inner().unwrap(),
            out,
        };
        // Each once; the file root is kept whatever the patterns say, as a folder root is.
        assert_eq!(names(&got, r), vec!["a/b/y.jpg", "a/x.jpg", "a/z.png"]);
        assert!(got.out.left_out.is_empty(), "{:?}", got.out.left_out);
        let nested = nested_roots(&[b"/".to_vec(), b"/m".to_vec(), b"/m/n/".to_vec(), b"/o".to_vec()]);
        let mut top = nested[&b"/"[..]].clone();
        top.sort();
        assert_eq!(top, vec![b"m".to_vec(), b"o".to_vec()]);
        assert_eq!(nested[&b"/m"[..]], vec![b"n".to_vec()]);
        assert_eq!(nested.len(), 2);
    }

    #[test]
    fn the_patterns_of_a_root_above_hold_in_a_root_inside_it() {
        // A QA finding: naming `l/sub` beside `l` brought back what `-e sub/x/` left out.
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("l/sub/x")).unwrap();
        fs::write(r.join("l/sub/x/d.jpg"), b"1").unwrap();
        fs::write(r.join("l/sub/e.jpg"), b"2").unwrap();
        let bytes = |p: &Path| p.as_os_str().as_bytes().to_vec();
        let opts = WalkOptions {
            excludes: vec!["sub/x/".into()],
            ..Default::default()
        };
        for roots in [
            vec![bytes(&r.join("l"))],
            vec![bytes(&r.join("l")), bytes(&r.join("l/sub/"))],
        ] {
            let (cancel, counters, dirs) = (AtomicBool::new(false), WalkCounters::default(), Mutex::new(Vec::new()));
            let out = walk(&roots, &opts, &cancel, &counters, &|d| dirs.lock().unwrap().push(d)).unwrap();
            let got = Run {
                dirs: dirs.into_inner().unwrap(),
                out,
            };
            assert_eq!(names(&got, r), vec!["l/sub/e.jpg"], "{roots:?}");
        }
        assert_eq!(
            outer_roots(&[b"/".to_vec(), b"/m/".to_vec(), b"/mm".to_vec()], b"/m/n"),
            vec![&b"/"[..], &b"/m"[..]]
        );
    }

    #[test]
    fn braces_in_patterns_are_literal_as_in_git() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for d in ["Album {2019}", "Album 2019", "x"] {
            fs::create_dir_all(r.join(d)).unwrap();
        }
        fs::write(r.join("Album {2019}/a.jpg"), b"1").unwrap();
        fs::write(r.join("Album 2019/b.jpg"), b"2").unwrap();
        fs::write(r.join("x/{a,b}.jpg"), b"3").unwrap();
        fs::write(r.join("x/a.jpg"), b"4").unwrap();
        fs::write(r.join(".mediaforgeignore"), b"Album {2019}/\n").unwrap();
        let opts = WalkOptions {
            excludes: vec!["{a,b}.jpg".into()],
            ..Default::default()
        };
        assert_eq!(
            names(&run(r, &opts), r),
            vec![".mediaforgeignore", "Album 2019/b.jpg", "x/a.jpg"]
        );
        assert_eq!(literal_braces(r"a\{b{c}"), r"a\{b\{c\}");
        // Inside a bracket expression a brace is already a character: left as it is.
        assert_eq!(literal_braces("[{]*{"), r"[{]*\{");
        assert_eq!(literal_braces("[]{]x}"), r"[]{]x\}");
        assert_eq!(literal_braces("[a-{]x"), "[a-{]x");
        assert_eq!(literal_braces("[{x"), r"[\{x");
        // The command line's patterns come first, as git's do: `!x/a.jpg` in an ignore
        // file does not bring back what `-e` leaves out.
        fs::write(r.join("x/.mediaforgeignore"), b"!a.jpg\n").unwrap();
        let opts = WalkOptions {
            excludes: vec!["a.jpg".into()],
            ..Default::default()
        };
        assert!(!names(&run(r, &opts), r).contains(&"x/a.jpg".to_string()));
        assert!(check_excludes(&["{a,b".into()]).is_ok());
    }

    #[test]
    fn every_bad_line_of_an_ignore_file_is_named_in_its_row() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::write(r.join("a.jpg"), b"1").unwrap();
        fs::write(r.join(".mediaforgeignore"), b"*.tmp\ncaf\xe9/\n[z-a].jpg\n\xff\n").unwrap();
        let out = run(r, &WalkOptions::default());
        let msgs: Vec<&str> = out.out.errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        // Each by its number: the two lines of bytes that are not UTF-8, and the range `[z-a]`.
        for part in [
            "line 2 holds bytes",
            "; line 3: error parsing glob '[z-a].jpg'",
            "; line 4 holds bytes",
        ] {
            assert!(msgs[0].contains(part), "{msgs:?}");
        }
        // Thousands of such lines: the first twenty named, the rest counted.
        fs::write(r.join(".mediaforgeignore"), b"\xff\n".repeat(5000)).unwrap();
        let out = run(r, &WalkOptions::default());
        let msg = &out.out.errors[0].message;
        assert!(msg.contains("line 20 holds") && !msg.contains("line 21 holds"), "{msg}");
        assert!(msg.ends_with("; and 4980 more such lines"), "{msg}");
    }

    #[test]
    fn an_unclosed_bracket_matches_nothing_as_in_git() {
        // git's matcher takes `[` with no `]` for a pattern that matches nothing; the glob
        // library matched the character. On the command line it is refused, in an ignore
        // file its line is named in the row and left out.
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for n in ["[", "a[b", "ab", "[x].jpg", "x.jpg", "]"] {
            fs::write(r.join(n), b"1").unwrap();
        }
        for bad in ["[", "a[b", "x[!", "[]", "[^]", r"[\]", "[[:alpha:]", "[a]b[c"] {
            let e = check_excludes(&[bad.into()]).unwrap_err().to_string();
            assert!(e.contains("a `[` with no `]` after it matches nothing"), "{bad}: {e}");
        }
        for good in [
            r"\[",
            r"a\[b",
            "[[]",
            "[]]",
            "[!]]x",
            "]",
            "[x].jpg",
            "[!^]x",
            r"[\]]",
            "[[:alpha:]]",
            "[[:x]",
        ] {
            assert!(check_excludes(&[good.into()]).is_ok(), "{good}");
        }
        fs::write(
            r.join(".mediaforgeignore"),
            b"# old drafts [see the wiki\n[\na[b\n\\[x].jpg\n\n",
        )
        .unwrap();
        let out = run(r, &WalkOptions::default());
        let msgs: Vec<&str> = out.out.errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        assert!(
            msgs[0].starts_with("line 2: a `[` with no `]` after it matches nothing")
                && msgs[0].contains("; line 3: a `[`")
                && !msgs[0].contains("line 1"),
            "{msgs:?}"
        );
        // Only the escaped `\[x].jpg` leaves out a file: the one of that very name.
        assert_eq!(
            names(&out, r),
            vec![".mediaforgeignore", "[", "]", "a[b", "ab", "x.jpg"]
        );
    }

    #[test]
    fn missing_root_is_an_error() {
        let cancel = AtomicBool::new(false);
        let c = WalkCounters::default();
        let err = walk(
            &[b"/no/such/place".to_vec()],
            &WalkOptions::default(),
            &cancel,
            &c,
            &|_| {},
        )
        .unwrap_err();
        assert!(matches!(err, Error::NotFound(_)));
    }
}
