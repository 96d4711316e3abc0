//! Exact duplicates among files that have no digest yet, reading as little as possible
//! (the funnel fclones made popular): files are grouped by size; hard links to one inode
//! count once; then each surviving group is split by a BLAKE3 of the first 4 KiB, then of
//! the last 4 KiB, and only files still sharing a group are hashed in full. A file that
//! ends up alone at any stage is unique and is never read further.
//!
//! Files that already have a digest (from an earlier scan) may take part: they are read
//! for the prefix and suffix like any other but never hashed again, so a new file can be
//! matched against the catalog's known contents.

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use rayon::prelude::*;
use rustix::io::Errno;

use crate::hash::{self, HashError, Hashed};
use crate::types::{Digest, FileId, FileLen, FileStat};
use crate::{Error, Result};

/// Bytes hashed at each end of a file before the full read.
pub const PROBE: u64 = 4096;

/// One file to consider, as the catalog last saw it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub path: Vec<u8>,
    pub len: u64,
    pub mtime_ns: i64,
    pub id: FileId,
    /// The digest already known for this file, if any.
    pub known: Option<Digest>,
}

/// Candidates from Arrow batches with columns `path_bytes`, `size`, `mtime_ns`, `dev`,
/// `inode` and `blake3` (hex, may be null), as the catalog's `files` table holds them.
pub fn candidates(batches: &[arrow_array::RecordBatch]) -> Result<Vec<Candidate>> {
    use crate::prev::{bytes_at, column, parse_digest, u64_col};
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    let mut out = Vec::new();
    for b in batches {
        let path = column(b, "path_bytes")?;
        let (size, dev, ino) = (u64_col(b, "size")?, u64_col(b, "dev")?, u64_col(b, "inode")?);
        let mtime = column(b, "mtime_ns")?
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| Error::InvalidInput("column \"mtime_ns\" must be Int64".into()))?;
        let digest = column(b, "blake3")?;
        for i in 0..b.num_rows() {
            out.push(Candidate {
                path: bytes_at(path, i)
                    .ok_or_else(|| Error::InvalidInput("null path_bytes".into()))?
                    .to_vec(),
                len: size.value(i),
                mtime_ns: mtime.value(i),
                id: FileId {
                    dev: dev.value(i),
                    ino: ino.value(i),
                },
                known: bytes_at(digest, i).and_then(parse_digest),
            });
        }
    }
    Ok(out)
}

/// What the funnel concluded for one candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Shares its size, both ends and its full digest with another file (or is a known
    /// digest kept as is): the digest.
    Digest(Digest),
    /// Proven unlike every other candidate without a full read.
    Unique,
    /// Changed since the catalog saw it (size or mtime differ): rescan first.
    Changed,
    /// Could not be read: the reason.
    Failed(String),
}

/// Stage counters, for the report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Funnel {
    pub by_size: usize,
    pub by_prefix: usize,
    pub by_suffix: usize,
    pub hashed_in_full: usize,
    pub bytes_read: u64,
}

fn probe(c: &Candidate, from_end: bool, read: &AtomicU64) -> Result<Digest, Verdict> {
    let name = CString::new(c.path.clone()).map_err(|_| Verdict::Failed("path holds a NUL byte".into()))?;
    let file = hash::open_noatime(None, name.as_c_str()).map_err(io_verdict)?;
    let st = FileStat::from_stat(&rustix::fs::fstat(&file).map_err(io_verdict)?);
    if st.len != FileLen(c.len) || st.mtime_ns != c.mtime_ns {
        return Err(Verdict::Changed);
    }
    let n = PROBE.min(c.len);
    let at = if from_end { c.len - n } else { 0 };
    let mut buf = vec![0u8; n as usize];
    let mut got = 0usize;
    while got < buf.len() {
        match rustix::io::pread(&file, &mut buf[got..], at + got as u64) {
            Ok(0) => return Err(Verdict::Changed),
            Ok(k) => got += k,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(io_verdict(e)),
        }
    }
    read.fetch_add(n, Relaxed);
    if n == c.len && hash::racy(&st) {
        // Read whole, so its digest may be kept: not one read in the tick of a coarse file
        // system's clock in which it last changed (see `hash::racy`).
        return Err(Verdict::Changed);
    }
    Ok(Digest(*blake3::hash(&buf).as_bytes()))
}

fn io_verdict(e: Errno) -> Verdict {
    Verdict::Failed(std::io::Error::from(e).to_string())
}

/// Keep only the groups holding at least two distinct files (dev, inode).
fn split<K: std::hash::Hash + Eq>(
    groups: Vec<Vec<usize>>,
    files: &[Candidate],
    key: impl Fn(usize) -> Option<K> + Sync,
) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    for g in groups {
        let mut by: HashMap<K, Vec<usize>> = HashMap::new();
        for i in g {
            if let Some(k) = key(i) {
                by.entry(k).or_default().push(i);
            }
        }
        for (_, v) in by {
            let mut ids: Vec<FileId> = v.iter().map(|&i| files[i].id).collect();
            ids.sort_unstable_by_key(|f| (f.dev, f.ino));
            ids.dedup();
            if ids.len() > 1 {
                out.push(v);
            }
        }
    }
    out
}

/// The first path of each (dev, inode) among `idx`, and the other paths of each inode
/// with the path they take their result from.
fn one_per_inode(idx: impl Iterator<Item = usize>, files: &[Candidate]) -> (Vec<usize>, Vec<(usize, usize)>) {
    let mut first: HashMap<FileId, usize> = HashMap::new();
    let (mut todo, mut twins) = (Vec::new(), Vec::new());
    for i in idx {
        match first.get(&files[i].id) {
            Some(&r) => twins.push((i, r)),
            None => {
                first.insert(files[i].id, i);
                todo.push(i);
            }
        }
    }
    (todo, twins)
}

fn share<T: Clone>(got: &mut Vec<(usize, T)>, twins: &[(usize, usize)]) {
    let by: HashMap<usize, T> = got.iter().cloned().collect();
    got.extend(twins.iter().map(|&(i, r)| (i, by[&r].clone())));
}

/// Run the funnel over `files`; one verdict per file, in order.
pub fn run(files: &[Candidate], cancel: &AtomicBool) -> Result<(Vec<Verdict>, Funnel)> {
    let mut verdict = vec![Verdict::Unique; files.len()];
    let mut stats = Funnel::default();
    let read = AtomicU64::new(0);
    let mut by_size: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, f) in files.iter().enumerate() {
        by_size.entry(f.len).or_default().push(i);
    }
    let groups = split(by_size.into_values().collect(), files, |_| Some(()));
    stats.by_size = groups.iter().map(Vec::len).sum();

    // One read per (dev, inode): hard links share whatever their first path learns.
    let probe_all =
        |groups: &[Vec<usize>], from_end: bool, verdict: &mut [Verdict]| -> Result<HashMap<usize, Digest>> {
            let (todo, twins) = one_per_inode(groups.iter().flatten().copied().filter(|&i| files[i].len > 0), files);
            let mut got: Vec<(usize, Result<Digest, Verdict>)> = todo
                .par_iter()
                .map(|&i| {
                    if cancel.load(Relaxed) {
                        return (i, Err(Verdict::Failed("interrupted".into())));
                    }
                    (i, probe(&files[i], from_end, &read))
                })
                .collect();
            if cancel.load(Relaxed) {
                return Err(Error::Cancelled);
            }
            share(&mut got, &twins);
            let mut ok = HashMap::new();
            for (i, r) in got {
                match r {
                    Ok(d) => {
                        ok.insert(i, d);
                    }
                    Err(v) => verdict[i] = v,
                }
            }
            Ok(ok)
        };
    let empty = hash::empty_digest();
    let prefix = probe_all(&groups, false, &mut verdict)?;
    let groups = split(groups, files, |i| {
        if files[i].len == 0 {
            Some(empty)
        } else {
            prefix.get(&i).copied()
        }
    });
    stats.by_prefix = groups.iter().map(Vec::len).sum();
    // Files no longer than the probe were read whole: the prefix digest is the full one.
    let (small, big): (Vec<Vec<usize>>, Vec<Vec<usize>>) = groups.into_iter().partition(|g| files[g[0]].len <= PROBE);
    for g in &small {
        for &i in g {
            verdict[i] = Verdict::Digest(if files[i].len == 0 { empty } else { prefix[&i] });
        }
    }
    let suffix = probe_all(&big, true, &mut verdict)?;
    let groups = split(big, files, |i| suffix.get(&i).copied());
    stats.by_suffix = groups.iter().map(Vec::len).sum::<usize>() + small.iter().map(Vec::len).sum::<usize>();

    let (todo, twins) = one_per_inode(groups.into_iter().flatten(), files);
    let mut full: Vec<(usize, Verdict)> = todo
        .par_iter()
        .map_init(Vec::new, |buf, &i| {
            let f = &files[i];
            if let Some(d) = f.known {
                return (i, Verdict::Digest(d));
            }
            let Ok(name) = CString::new(f.path.clone()) else {
                return (i, Verdict::Failed("path holds a NUL byte".into()));
            };
            let expected = FileStat {
                len: FileLen(f.len),
                mtime_ns: f.mtime_ns,
                ctime_ns: hash::UNKNOWN_CTIME, // from the catalog: a chmod since is no change
                id: f.id,
                nlink: 1,
            };
            let v = match hash::hash_file_at(None, name.as_c_str(), &expected, buf, cancel, &read) {
                Ok(Hashed::Stable { digest, .. }) if !hash::racy(&expected) => Verdict::Digest(digest),
                Ok(Hashed::Stable { .. } | Hashed::Unstable { .. } | Hashed::Busy(_)) => Verdict::Changed,
                Err(HashError::Cancelled) => Verdict::Failed("interrupted".into()),
                Err(HashError::Io(e)) => io_verdict(e),
            };
            (i, v)
        })
        .collect();
    if cancel.load(Relaxed) {
        return Err(Error::Cancelled);
    }
    stats.hashed_in_full = full.iter().filter(|(i, _)| files[*i].known.is_none()).count();
    share(&mut full, &twins);
    for (i, v) in full {
        verdict[i] = v;
    }
    stats.bytes_read = read.load(Relaxed);
    Ok((verdict, stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    fn cand(p: &std::path::Path, known: Option<Digest>) -> Candidate {
        let st = rustix::fs::stat(p).unwrap();
        let s = FileStat::from_stat(&st);
        Candidate {
            path: p.as_os_str().as_bytes().to_vec(),
            len: s.len.0,
            mtime_ns: s.mtime_ns,
            id: s.id,
            known,
        }
    }

    #[test]
    fn finds_exactly_the_copies_and_reads_little() {
        let d = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut same_ends = big.clone();
        same_ends[100_000] ^= 1; // same size, prefix and suffix; differs inside
        let mut other_size = big.clone();
        other_size.push(1);
        let files = [
            ("a", big.clone()),
            ("b", big.clone()),
            ("c", same_ends),
            ("d", other_size),
            ("e", b"small".to_vec()),
            ("f", b"small".to_vec()),
            ("g", b"smalL".to_vec()),
            ("z1", vec![]),
            ("z2", vec![]),
        ];
        for (n, data) in &files {
            std::fs::write(d.path().join(n), data).unwrap();
        }
        std::fs::hard_link(d.path().join("a"), d.path().join("a-link")).unwrap();
        let mut cands: Vec<Candidate> = files.iter().map(|(n, _)| cand(&d.path().join(n), None)).collect();
        cands.push(cand(&d.path().join("a-link"), None));
        let (v, stats) = run(&cands, &AtomicBool::new(false)).unwrap();
        let want = Digest(*blake3::hash(&big).as_bytes());
        assert_eq!(v[0], Verdict::Digest(want));
        assert_eq!(v[1], Verdict::Digest(want));
        assert_eq!(v[9], Verdict::Digest(want), "hard link shares the group");
        assert!(
            matches!(v[2], Verdict::Digest(x) if x != want),
            "same ends, other middle: hashed, differs"
        );
        assert_eq!(v[3], Verdict::Unique, "a lone size is never read");
        assert_eq!(v[4], Verdict::Digest(Digest(*blake3::hash(b"small").as_bytes())));
        assert_eq!(v[4], v[5]);
        assert_eq!(v[6], Verdict::Unique);
        assert_eq!(v[7], Verdict::Digest(hash::empty_digest()));
        assert_eq!(stats.hashed_in_full, 3); // a, b and c; the hard link shares a's read
        assert!(stats.bytes_read < 5 * 200_000);
    }

    #[test]
    fn known_digests_are_not_read_again_and_changes_are_caught() {
        let d = tempfile::tempdir().unwrap();
        let data = vec![9u8; 50_000];
        std::fs::write(d.path().join("old"), &data).unwrap();
        std::fs::write(d.path().join("new"), &data).unwrap();
        std::fs::write(d.path().join("moved"), &data).unwrap();
        let known = Digest(*blake3::hash(&data).as_bytes());
        let mut c = vec![
            cand(&d.path().join("old"), Some(known)),
            cand(&d.path().join("new"), None),
            cand(&d.path().join("moved"), None),
        ];
        c[2].mtime_ns -= 1; // the catalog saw another version
        let (v, stats) = run(&c, &AtomicBool::new(false)).unwrap();
        assert_eq!(v[0], Verdict::Digest(known));
        assert_eq!(v[1], Verdict::Digest(known));
        assert_eq!(v[2], Verdict::Changed);
        assert_eq!(stats.hashed_in_full, 1);
    }
}
