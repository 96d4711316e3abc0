//! What the catalog already knows, indexed for the scan's decisions.
//!
//! The catalog hands over its rows as Arrow batches (`path_bytes`, `dev`, `inode`, `size`,
//! `mtime_ns`, `blake3`, `media_id`, `present`); this module copies the few columns the
//! scan needs into compact vectors and indexes them by path and by (dev, inode).

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::types::{Digest, FileId, FileLen, FileStat};

/// A media id is a UUID; kept as 128 bits and printed in the usual 8-4-4-4-12 form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MediaId(pub u128);

impl MediaId {
    pub fn parse(s: &str) -> Option<MediaId> {
        let mut v: u128 = 0;
        let mut digits = 0;
        for b in s.bytes() {
            if b == b'-' {
                continue;
            }
            v = (v << 4) | (b as char).to_digit(16)? as u128;
            digits += 1;
        }
        (digits == 32).then_some(MediaId(v))
    }

    pub fn to_uuid_string(self) -> String {
        self.uuid(&mut [0; 36]).to_string()
    }

    /// The 8-4-4-4-12 lowercase hex form, written into `buf` without allocating.
    pub fn uuid(self, buf: &mut [u8; 36]) -> &str {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut at = 0;
        for i in 0..32 {
            if matches!(i, 8 | 12 | 16 | 20) {
                buf[at] = b'-';
                at += 1;
            }
            buf[at] = HEX[((self.0 >> (124 - 4 * i)) & 15) as usize];
            at += 1;
        }
        std::str::from_utf8(buf).expect("hex digits are ASCII")
    }
}

/// The length of a digest's hex text.
const DIGEST_HEX: usize = 64;

/// Parse 64 lowercase or uppercase hex digits.
pub fn parse_digest(s: &[u8]) -> Option<Digest> {
    if s.len() != DIGEST_HEX {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(Digest(out))
}

/// The `ctime_ns` of a row whose catalog gave no change time: its link count and change
/// time are then not compared.
pub const UNKNOWN_CTIME: i64 = i64::MIN;

/// The catalog's rows, compact and indexed. It owns copies of what it needs, so each
/// Arrow batch it is built from is freed as soon as it is read (the columns of an imported
/// batch share one allocation: keeping one column would keep them all). Digests are kept
/// as their hex text and decoded only for the rows a scan writes: a rescan that finds
/// nothing changed decodes none of them.
pub struct PrevState {
    path_bytes: Vec<u8>,
    path_ends: Vec<usize>,
    pub stat: Vec<FileStat>,
    pub present: Vec<bool>,
    /// Whether the scan that last found the row followed symbolic links (the row may be
    /// a path through one). False where the catalog does not say.
    pub followed: Vec<bool>,
    pub seen: Vec<AtomicBool>,
    /// When a scan last found the row's file there (ns since the epoch), or 0 where the
    /// catalog does not say: a file born after it is another file.
    pub seen_ns: Vec<i64>,
    /// The birth time of the row's file (ns since the epoch), or 0 where the catalog does
    /// not keep one: a file born at another time is another file.
    born_ns: Vec<i64>,
    /// Per row: `DIGEST_HEX` bytes of its digest's hex text (`b'z'`s, which never decode,
    /// where the text is not 64 long), and whether it has one at all.
    digest_hex: Vec<u8>,
    has_digest: Vec<bool>,
    ids: Vec<MediaId>,
    /// Where each row's file name starts in its path.
    name_start: Vec<u32>,
    /// The rows of each folder (`folder_rows[folder_starts[g]..folder_starts[g + 1]]`), in
    /// catalog order, and the folders by the path up to and including the last '/'.
    folder_starts: Vec<u32>,
    folder_rows: Vec<u32>,
    folders: HashTable<u32>,
    /// The first row of each folder: the table compares folder paths through it.
    folder_first: Vec<u32>,
    hasher: DefaultHashBuilder,
    by_id: std::sync::OnceLock<IdIndex>,
}

/// Rows by identity (device, inode): the preferred row of each, and the others that share
/// it (hard links, or rows left from before), which are few.
struct IdIndex {
    first: HashMap<FileId, u32>,
    more: HashMap<FileId, Vec<u32>>,
}

/// One of the byte-string column types DuckDB may hand over.
pub(crate) fn bytes_at(col: &dyn Array, i: usize) -> Option<&[u8]> {
    if col.is_null(i) {
        return None;
    }
    Some(match col.data_type() {
        DataType::Binary => col.as_binary::<i32>().value(i),
        DataType::LargeBinary => col.as_binary::<i64>().value(i),
        DataType::BinaryView => col.as_binary_view().value(i),
        DataType::Utf8 => col.as_string::<i32>().value(i).as_bytes(),
        DataType::LargeUtf8 => col.as_string::<i64>().value(i).as_bytes(),
        DataType::Utf8View => col.as_string_view().value(i).as_bytes(),
        _ => return None,
    })
}

fn missing(name: &str) -> Error {
    Error::InvalidInput(format!("previous state lacks column {name:?}"))
}

/// A media id from a UUID column: 16 bytes (Arrow's `arrow.uuid`, as DuckDB hands over
/// UUIDs in lossless mode) or the usual text form.
fn media_id_at(col: &dyn Array, i: usize) -> Option<MediaId> {
    if col.is_null(i) {
        return None;
    }
    match col.data_type() {
        DataType::FixedSizeBinary(16) => {
            let b: [u8; 16] = col.as_fixed_size_binary().value(i).try_into().ok()?;
            Some(MediaId(u128::from_be_bytes(b)))
        }
        _ => std::str::from_utf8(bytes_at(col, i)?).ok().and_then(MediaId::parse),
    }
}

/// Every row of a media id column must hold one: 16-byte values are, text ones are parsed
/// once here (in parallel) so later lookups cannot fail.
fn check_ids(col: &dyn Array) -> Result<()> {
    let bad = || Error::InvalidInput("media_id is not a UUID".into());
    match col.data_type() {
        DataType::FixedSizeBinary(16) if col.null_count() == 0 => Ok(()),
        DataType::FixedSizeBinary(_) => Err(bad()),
        _ => {
            let ok = (0..col.len()).into_par_iter().all(|i| media_id_at(col, i).is_some());
            ok.then_some(()).ok_or_else(bad)
        }
    }
}

/// A flag column: Boolean, or one byte per row (Arrow's `arrow.bool8`, DuckDB's lossless
/// form of BOOLEAN). Nulls read as false.
fn flags<'a>(col: &'a dyn Array, name: &str) -> Result<impl Fn(usize) -> bool + 'a> {
    let bools = col.as_boolean_opt();
    let bytes = col.as_primitive_opt::<arrow_array::types::Int8Type>();
    if bools.is_none() && bytes.is_none() {
        return Err(Error::InvalidInput(format!(
            "previous state column {name:?} must be Boolean"
        )));
    }
    Ok(move |i: usize| {
        col.is_valid(i)
            && match (bools, bytes) {
                (Some(b), _) => b.value(i),
                (_, Some(b)) => b.value(i) != 0,
                _ => false,
            }
    })
}

pub(crate) fn column<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a dyn Array> {
    b.column_by_name(name).map(|c| c.as_ref()).ok_or_else(|| missing(name))
}

pub(crate) fn u64_col<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a arrow_array::PrimitiveArray<UInt64Type>> {
    column(b, name)?
        .as_primitive_opt::<UInt64Type>()
        .ok_or_else(|| Error::InvalidInput(format!("previous state column {name:?} must be UInt64")))
}

impl PrevState {
    /// An empty state: a fresh catalog.
    pub fn empty() -> Self {
        Self::with_capacity(0).finish()
    }

    /// Build from the catalog's batches.
    pub fn from_batches(batches: &[RecordBatch]) -> Result<Self> {
        let mut s = Self::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
        for b in batches {
            s.add_batch(b)?;
        }
        Ok(s.finish())
    }

    /// An empty state with room for `rows` rows, to fill with `add_batch` and close with
    /// `finish`. A million-row catalog arrives in batches: vectors grown by doubling would
    /// copy their contents over and over, and on some machines keep the old copies
    /// resident for a while, doubling the state's memory.
    pub fn with_capacity(rows: usize) -> Self {
        PrevState {
            path_bytes: Vec::new(),
            path_ends: Vec::with_capacity(rows),
            stat: Vec::with_capacity(rows),
            present: Vec::with_capacity(rows),
            followed: Vec::with_capacity(rows),
            seen: Vec::with_capacity(rows),
            seen_ns: Vec::with_capacity(rows),
            born_ns: Vec::with_capacity(rows),
            digest_hex: Vec::with_capacity(rows * DIGEST_HEX),
            has_digest: Vec::with_capacity(rows),
            ids: Vec::with_capacity(rows),
            name_start: Vec::with_capacity(rows),
            folder_starts: Vec::new(),
            folder_rows: Vec::new(),
            folders: HashTable::new(),
            folder_first: Vec::new(),
            hasher: DefaultHashBuilder::default(),
            by_id: std::sync::OnceLock::new(),
        }
    }

    /// Copy one batch of catalog rows in (`path_bytes`, `dev`, `inode`, `size`,
    /// `mtime_ns`, optionally `ctime_ns` and `nlink`, `blake3`, `media_id`, `present`,
    /// optionally `followed`, `seen_ns` and `btime_ns`).
    pub fn add_batch(&mut self, b: &RecordBatch) -> Result<()> {
        let rows = b.num_rows();
        if self.len() + rows > u32::MAX as usize {
            return Err(Error::InvalidInput("more than 4 billion catalog rows".into()));
        }
        let path = column(b, "path_bytes")?;
        let dev = u64_col(b, "dev")?;
        let ino = u64_col(b, "inode")?;
        let size = u64_col(b, "size")?;
        let mtime = column(b, "mtime_ns")?
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| Error::InvalidInput("previous state column \"mtime_ns\" must be Int64".into()))?;
        // Optional: without them, link counts and change times are not compared.
        let ctime = b
            .column_by_name("ctime_ns")
            .and_then(|c| c.as_primitive_opt::<Int64Type>());
        let nlink = b
            .column_by_name("nlink")
            .and_then(|c| c.as_primitive_opt::<UInt64Type>());
        let digest = b.column_by_name("blake3").ok_or_else(|| missing("blake3"))?;
        let mid = b.column_by_name("media_id").ok_or_else(|| missing("media_id"))?;
        check_ids(mid.as_ref())?;
        let present = flags(column(b, "present")?, "present")?;
        let followed = b
            .column_by_name("followed")
            .map(|c| flags(c.as_ref(), "followed"))
            .transpose()?;
        let seen_ns = b
            .column_by_name("seen_ns")
            .and_then(|c| c.as_primitive_opt::<Int64Type>());
        let born_ns = b
            .column_by_name("btime_ns")
            .and_then(|c| c.as_primitive_opt::<Int64Type>());
        if self.path_bytes.capacity() == 0 && rows > 0 {
            // Paths of the first batch tell how long the rest will be, give or take.
            let first: usize = (0..rows).map(|i| bytes_at(path, i).map_or(0, <[u8]>::len)).sum();
            let expected = self.path_ends.capacity().max(rows) * first.div_ceil(rows);
            self.path_bytes.reserve(expected + expected / 8);
        }
        self.path_ends.reserve(rows);
        self.name_start.reserve(rows);
        self.stat.reserve(rows);
        self.present.reserve(rows);
        self.followed.reserve(rows);
        self.seen.reserve(rows);
        self.seen_ns.reserve(rows);
        self.born_ns.reserve(rows);
        self.digest_hex.reserve(rows * DIGEST_HEX);
        self.has_digest.reserve(rows);
        self.ids.reserve(rows);
        for i in 0..rows {
            let p = bytes_at(path, i).ok_or_else(|| Error::InvalidInput("null path_bytes".into()))?;
            self.path_bytes.extend_from_slice(p);
            self.path_ends.push(self.path_bytes.len());
            self.name_start
                .push(p.iter().rposition(|&c| c == b'/').map_or(0, |k| k + 1) as u32);
            self.stat.push(FileStat {
                len: FileLen(size.value(i)),
                mtime_ns: mtime.value(i),
                ctime_ns: ctime.map_or(UNKNOWN_CTIME, |c| c.value(i)),
                id: FileId {
                    dev: dev.value(i),
                    ino: ino.value(i),
                },
                nlink: nlink.map_or(0, |c| c.value(i)),
            });
            self.present.push(present(i));
            self.followed.push(followed.as_ref().is_some_and(|f| f(i)));
            self.seen.push(AtomicBool::new(false));
            self.seen_ns
                .push(seen_ns.filter(|c| !c.is_null(i)).map_or(0, |c| c.value(i)));
            self.born_ns
                .push(born_ns.filter(|c| !c.is_null(i)).map_or(0, |c| c.value(i)));
            match bytes_at(digest.as_ref(), i) {
                Some(hex) if hex.len() == DIGEST_HEX => self.digest_hex.extend_from_slice(hex),
                _ => self.digest_hex.extend_from_slice(&[b'z'; DIGEST_HEX]),
            }
            self.has_digest.push(!digest.is_null(i));
            self.ids
                .push(media_id_at(mid.as_ref(), i).expect("media ids were checked above"));
        }
        Ok(())
    }

    /// Index the rows added: the state is then ready for a scan.
    pub fn finish(mut self) -> Self {
        self.index_folders();
        self
    }

    /// Group the rows by folder. Rows come mostly in walk order, a folder's files
    /// together, so most rows only compare their folder with the row before.
    fn index_folders(&mut self) {
        let n = self.len();
        let mut group = Vec::with_capacity(n);
        let mut first_row: Vec<u32> = Vec::new();
        let mut folders: HashTable<u32> = HashTable::new();
        for i in 0..n {
            let dir = self.folder_of(i);
            if i > 0 && self.folder_of(i - 1) == dir {
                group.push(group[i - 1]);
                continue;
            }
            let h = self.hasher.hash_one(dir);
            let g = match folders.find(h, |&g| self.folder_of(first_row[g as usize] as usize) == dir) {
                Some(&g) => g,
                None => {
                    let g = first_row.len() as u32;
                    first_row.push(i as u32);
                    folders.insert_unique(h, g, |&g| {
                        self.hasher.hash_one(self.folder_of(first_row[g as usize] as usize))
                    });
                    g
                }
            };
            group.push(g);
        }
        // Counting sort of the rows by folder, keeping catalog order within each.
        let mut starts = vec![0u32; first_row.len() + 1];
        for &g in &group {
            starts[g as usize + 1] += 1;
        }
        for g in 0..first_row.len() {
            starts[g + 1] += starts[g];
        }
        let mut next = starts.clone();
        let mut rows = vec![0u32; n];
        for (i, &g) in group.iter().enumerate() {
            rows[next[g as usize] as usize] = i as u32;
            next[g as usize] += 1;
        }
        self.folder_starts = starts;
        self.folder_rows = rows;
        self.folders = folders;
        self.folder_first = first_row;
    }

    /// Row `i`'s folder: its path up to and including the last '/'.
    fn folder_of(&self, i: usize) -> &[u8] {
        &self.path(i)[..self.name_start[i] as usize]
    }

    /// Row `i`'s file name.
    pub fn name(&self, i: usize) -> &[u8] {
        &self.path(i)[self.name_start[i] as usize..]
    }

    /// Row `i`'s folder: its path up to and including the last '/'.
    pub fn folder(&self, i: usize) -> &[u8] {
        &self.path(i)[..self.name_start[i] as usize]
    }

    /// The rows of a folder, given as its path up to and including the last '/'.
    pub fn folder_rows(&self, folder: &[u8]) -> &[u32] {
        let h = self.hasher.hash_one(folder);
        match self
            .folders
            .find(h, |&g| self.folder_of(self.folder_first[g as usize] as usize) == folder)
        {
            Some(&g) => {
                &self.folder_rows[self.folder_starts[g as usize] as usize..self.folder_starts[g as usize + 1] as usize]
            }
            None => &[],
        }
    }

    /// Whether row `i` has a digest (without decoding it).
    /// Whether a walked file born at `born_ns` is not the file row `i` describes, though
    /// it may have the row's inode number (freed by a delete, reused at once) and even its
    /// size and mtime (`cp -p`, `tar x`): where the row keeps its file's birth time, by
    /// any other; else by one more than a second of clock slack after the row was last
    /// seen (which a file made while the scan that last saw the row ran, or in the second
    /// after, passes). Unknown times say nothing.
    pub fn born_after_seen(&self, i: usize, born_ns: i64) -> bool {
        const SLACK_NS: i64 = 1_000_000_000;
        if born_ns <= 0 {
            return false;
        }
        if self.born_ns[i] > 0 {
            return born_ns != self.born_ns[i];
        }
        self.seen_ns[i] > 0 && born_ns > self.seen_ns[i].saturating_add(SLACK_NS)
    }

    /// Whether a walked file born at `born_ns` is known to be born when row `i`'s file
    /// was: both times known, and equal. Unknown on a file system that keeps none, and for
    /// a row from before the catalog kept them.
    pub fn same_birth(&self, i: usize, born_ns: i64) -> bool {
        born_ns > 0 && self.born_ns[i] == born_ns
    }

    pub fn has_digest(&self, i: usize) -> bool {
        self.has_digest[i]
    }

    /// The digest of row `i`, if it has a well-formed one.
    pub fn digest(&self, i: usize) -> Option<Digest> {
        if !self.has_digest[i] {
            return None;
        }
        parse_digest(&self.digest_hex[i * DIGEST_HEX..(i + 1) * DIGEST_HEX])
    }

    /// The media id of row `i`.
    pub fn media_id(&self, i: usize) -> MediaId {
        self.ids[i]
    }

    pub fn len(&self) -> usize {
        self.path_ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.path_ends.is_empty()
    }

    /// The raw path of row `i`.
    pub fn path(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.path_ends[i - 1] };
        &self.path_bytes[start..self.path_ends[i]]
    }

    /// The row holding this exact path: the present one where a missing row shares it
    /// (a file moved onto the name of one that is gone).
    pub fn find_path(&self, path: &[u8]) -> Option<u32> {
        let k = path.iter().rposition(|&c| c == b'/').map_or(0, |k| k + 1);
        let name = &path[k..];
        let mut rows = self
            .folder_rows(&path[..k])
            .iter()
            .copied()
            .filter(|&j| self.name(j as usize) == name);
        let first = rows.next()?;
        if self.present[first as usize] {
            return Some(first);
        }
        Some(rows.find(|&j| self.present[j as usize]).unwrap_or(first))
    }

    /// Whether another row has row `i`'s exact path (several files gone from one name).
    pub fn shares_path(&self, i: usize) -> bool {
        let name = self.name(i);
        self.folder_rows(self.folder(i))
            .iter()
            .any(|&j| j as usize != i && self.name(j as usize) == name)
    }

    /// A row with this identity, size and mtime: the same file, seen under another name
    /// (a move or a hard link), so its id and digest can be reused without reading.
    pub fn find_same_inode(&self, st: &FileStat) -> Option<u32> {
        let j = *self.id_index().first.get(&st.id)?;
        let p = &self.stat[j as usize];
        (p.len == st.len && p.mtime_ns == st.mtime_ns).then_some(j)
    }

    /// Whether a file found unchanged (same identity, size and mtime) has another link
    /// count or inode change time than row `i` records.
    pub fn attrs_moved(&self, i: usize, st: &FileStat) -> bool {
        let old = &self.stat[i];
        old.ctime_ns != UNKNOWN_CTIME && (old.ctime_ns != st.ctime_ns || old.nlink != st.nlink)
    }

    /// Whether only the inode change time moved (the link count did not): a `chmod`, or a
    /// writer that put the mtime back after writing (`exiftool -P`, `touch -r`). Only the
    /// content can tell which.
    pub fn only_ctime_moved(&self, i: usize, st: &FileStat) -> bool {
        let old = &self.stat[i];
        old.ctime_ns != UNKNOWN_CTIME && old.ctime_ns != st.ctime_ns && old.nlink == st.nlink
    }

    /// Every row with row `j`'s identity, size and mtime, `j` first (several hard links of
    /// one file, each with its own row).
    pub fn same_identity(&self, j: u32) -> Vec<u32> {
        let s = &self.stat[j as usize];
        let idx = self.id_index();
        let mut out = vec![j];
        let all = idx
            .first
            .get(&s.id)
            .into_iter()
            .chain(idx.more.get(&s.id).into_iter().flatten());
        for &k in all {
            let o = &self.stat[k as usize];
            if k != j && o.len == s.len && o.mtime_ns == s.mtime_ns {
                out.push(k);
            }
        }
        out
    }

    /// Every row with this device and inode, whatever its size and mtime.
    pub fn rows_with_id(&self, id: &FileId) -> Vec<u32> {
        let idx = self.id_index();
        idx.first
            .get(id)
            .into_iter()
            .chain(idx.more.get(id).into_iter().flatten())
            .copied()
            .collect()
    }

    fn id_index(&self) -> &IdIndex {
        self.by_id.get_or_init(|| {
            let mut first: HashMap<FileId, u32> = HashMap::with_capacity(self.len());
            let mut more: HashMap<FileId, Vec<u32>> = HashMap::new();
            for (i, s) in self.stat.iter().enumerate() {
                let i = i as u32;
                match first.get_mut(&s.id) {
                    None => {
                        first.insert(s.id, i);
                    }
                    Some(f) => {
                        // Prefer a present row when several share an identity.
                        let keep_new = self.present[i as usize] && !self.present[*f as usize];
                        let other = if keep_new { std::mem::replace(f, i) } else { i };
                        let list = more.entry(s.id).or_default();
                        list.push(other);
                    }
                }
            }
            IdIndex { first, more }
        })
    }

    pub fn mark_seen(&self, i: u32) {
        self.seen[i as usize].store(true, Relaxed);
    }

    pub fn unmark_seen(&self, i: u32) {
        self.seen[i as usize].store(false, Relaxed);
    }
}

/// Finds the catalog rows of the files of one folder listing. The listing usually comes in
/// the order the catalog stored the folder's files (the order of the walk that found
/// them), so a cursor answers most lookups with one comparison; the rest go through a
/// small map of the folder's names, built on the first miss.
pub struct FolderMatcher<'a> {
    prev: &'a PrevState,
    folder: Option<Vec<u8>>,
    rows: &'a [u32],
    cursor: usize,
    /// Name -> position in `rows`.
    by_name: Option<HashMap<&'a [u8], usize>>,
}

impl<'a> FolderMatcher<'a> {
    pub fn new(prev: &'a PrevState) -> Self {
        FolderMatcher {
            prev,
            folder: None,
            rows: &[],
            cursor: 0,
            by_name: None,
        }
    }

    /// The row holding `path`, whose file name starts at `name_start`.
    pub fn find(&mut self, path: &[u8], name_start: usize) -> Option<u32> {
        let (folder, name) = path.split_at(name_start);
        if self.folder.as_deref() != Some(folder) {
            self.folder = Some(folder.to_vec());
            self.rows = self.prev.folder_rows(folder);
            self.cursor = 0;
            self.by_name = None;
        }
        let (prev, rows) = (self.prev, self.rows);
        if let Some(&j) = rows.get(self.cursor) {
            // A missing row may share its path with a present one: let the map choose.
            if prev.present[j as usize] && prev.name(j as usize) == name {
                self.cursor += 1;
                return Some(j);
            }
        }
        if rows.is_empty() {
            return None;
        }
        let map = self.by_name.get_or_insert_with(|| {
            let mut m: HashMap<&[u8], usize> = HashMap::with_capacity(rows.len());
            for (k, &j) in rows.iter().enumerate() {
                let slot = m.entry(prev.name(j as usize)).or_insert(k);
                if !prev.present[rows[*slot] as usize] {
                    *slot = k;
                }
            }
            m
        });
        let k = *map.get(name)?;
        // Go on from there: a listing that skipped or added names still matches the rest
        // in order.
        self.cursor = k + 1;
        Some(rows[k])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, BinaryArray, BooleanArray, Int64Array, StringArray, UInt64Array};
    use std::sync::Arc;

    fn state(paths: &[&[u8]]) -> PrevState {
        state_with(paths, &vec![true; paths.len()])
    }

    fn state_with(paths: &[&[u8]], present: &[bool]) -> PrevState {
        let n = paths.len();
        let ids: Vec<String> = (0..n).map(|i| MediaId(i as u128 + 1).to_uuid_string()).collect();
        let u = |f: fn(usize) -> u64| Arc::new(UInt64Array::from_iter_values((0..n).map(f))) as ArrayRef;
        let batch = RecordBatch::try_from_iter(vec![
            (
                "path_bytes",
                Arc::new(BinaryArray::from_iter_values(paths.iter().copied())) as ArrayRef,
            ),
            ("dev", u(|_| 1)),
            ("inode", u(|i| i as u64 + 10)),
            ("size", u(|i| i as u64)),
            (
                "mtime_ns",
                Arc::new(Int64Array::from_iter_values(0..n as i64)) as ArrayRef,
            ),
            ("blake3", Arc::new(StringArray::from(vec![None::<&str>; n])) as ArrayRef),
            (
                "media_id",
                Arc::new(StringArray::from_iter_values(ids.iter())) as ArrayRef,
            ),
            ("present", Arc::new(BooleanArray::from(present.to_vec())) as ArrayRef),
        ])
        .unwrap();
        PrevState::from_batches(&[batch]).unwrap()
    }

    /// Two rows, /a/x.jpg and /a/y.jpg, with these last-seen and birth times.
    fn two_rows_with_times(seen: [Option<i64>; 2], born: [Option<i64>; 2]) -> PrevState {
        let batch = RecordBatch::try_from_iter([
            (
                "path_bytes",
                Arc::new(BinaryArray::from_iter_values([b"/a/x.jpg".as_slice(), b"/a/y.jpg"])) as ArrayRef,
            ),
            ("dev", Arc::new(UInt64Array::from_iter_values([1, 1])) as ArrayRef),
            ("inode", Arc::new(UInt64Array::from_iter_values([7, 8])) as ArrayRef),
            ("size", Arc::new(UInt64Array::from_iter_values([1, 1])) as ArrayRef),
            ("mtime_ns", Arc::new(Int64Array::from_iter_values([0, 0])) as ArrayRef),
            ("blake3", Arc::new(StringArray::from(vec![None::<&str>; 2])) as ArrayRef),
            (
                "media_id",
                Arc::new(StringArray::from_iter_values([
                    MediaId(1).to_uuid_string(),
                    MediaId(2).to_uuid_string(),
                ])) as ArrayRef,
            ),
            ("present", Arc::new(BooleanArray::from(vec![true, true])) as ArrayRef),
            ("seen_ns", Arc::new(Int64Array::from(seen.to_vec())) as ArrayRef),
            ("btime_ns", Arc::new(Int64Array::from(born.to_vec())) as ArrayRef),
        ])
        .unwrap();
        PrevState::from_batches(&[batch]).unwrap()
    }

    #[test]
    fn a_file_born_after_its_row_was_seen_is_another_file() {
        let without = state(&[b"/a/x.jpg"]);
        assert!(!without.born_after_seen(0, i64::MAX)); // the catalog did not say
        let seen = 5_000_000_000_i64;
        // Rows that keep no birth time (written before birth times were kept).
        let s = two_rows_with_times([Some(seen), None], [None, None]);
        assert!(!s.born_after_seen(0, seen - 10)); // made before it was seen: maybe this file
        assert!(!s.born_after_seen(0, seen + 500_000_000)); // within the clock's slack
        assert!(s.born_after_seen(0, seen + 2_000_000_000)); // made since: another file
        assert!(!s.born_after_seen(0, 0)); // a file system without birth times
        assert!(!s.born_after_seen(1, seen + 2_000_000_000)); // a row without a time
    }

    #[test]
    fn a_file_born_at_another_time_than_its_rows_file_is_another_file() {
        // Row 0 keeps its file's birth time; row 1 does not, and falls back on when it was
        // last seen.
        let seen = 5_000_000_000_i64;
        let born = 4_000_000_000_i64;
        let s = two_rows_with_times([Some(seen), Some(seen)], [Some(born), None]);
        assert!(!s.born_after_seen(0, born)); // its own file
                                              // Made on the freed inode number in the very second the row was last seen (during
                                              // or just after that scan): the slack would have passed it.
        assert!(s.born_after_seen(0, seen + 500_000_000));
        assert!(s.born_after_seen(0, born - 1_000)); // any other birth: another file
        assert!(!s.born_after_seen(0, 0)); // the walk got no birth time: nothing to tell
        assert!(!s.born_after_seen(1, seen + 500_000_000)); // within the slack
        assert!(s.born_after_seen(1, seen + 2_000_000_000));
    }

    #[test]
    fn folders_find_every_path_in_any_listing_order() {
        // A folder's rows split apart (files added by a later scan), the root folder,
        // names that are prefixes of each other and bytes that are not UTF-8.
        let paths: Vec<&[u8]> = vec![
            b"/lib/a/1.jpg",
            b"/lib/a/2.jpg",
            b"/lib/b/1.jpg",
            b"/top.jpg",
            b"/lib/a/10.jpg",
            b"/lib/caf\xe9/x",
            b"/lib/a/1.jpg.xmp",
            b"/lib/b/sub/1.jpg",
        ];
        let s = state(&paths);
        for (i, p) in paths.iter().enumerate() {
            assert_eq!(s.find_path(p), Some(i as u32), "{:?}", p);
            assert_eq!(s.media_id(i), MediaId(i as u128 + 1));
        }
        assert_eq!(s.find_path(b"/lib/a/3.jpg"), None);
        assert_eq!(s.find_path(b"/lib/c/1.jpg"), None);
        assert_eq!(s.find_path(b"/lib/a"), None);
        // One listing of /lib/a in reverse order with a new name in the middle.
        let mut m = FolderMatcher::new(&s);
        let listing: [&[u8]; 5] = [
            b"/lib/a/1.jpg.xmp",
            b"/lib/a/10.jpg",
            b"/lib/a/new.jpg",
            b"/lib/a/2.jpg",
            b"/lib/a/1.jpg",
        ];
        let found: Vec<Option<u32>> = listing.iter().map(|p| m.find(p, 7)).collect();
        assert_eq!(found, vec![Some(6), Some(4), None, Some(1), Some(0)]);
        // The matcher follows a change of folder.
        assert_eq!(m.find(b"/lib/b/1.jpg", 7), Some(2));
        assert_eq!(m.find(b"/top.jpg", 1), Some(3));
    }

    #[test]
    fn a_path_with_a_missing_and_a_present_row_finds_the_present_one() {
        // A file moved onto the name of one that is gone: the gone one's row stays there,
        // missing, before or after the present row in catalog order.
        let paths: Vec<&[u8]> = vec![b"/l/a.jpg", b"/l/b.jpg", b"/l/a.jpg", b"/l/c.jpg", b"/l/c.jpg"];
        let s = state_with(&paths, &[false, true, true, true, false]);
        assert_eq!(s.find_path(b"/l/a.jpg"), Some(2));
        assert_eq!(s.find_path(b"/l/c.jpg"), Some(3));
        for listing in [
            vec![&b"/l/a.jpg"[..], b"/l/b.jpg", b"/l/c.jpg"],
            vec![&b"/l/c.jpg"[..], b"/l/b.jpg", b"/l/a.jpg"],
        ] {
            let mut m = FolderMatcher::new(&s);
            let found: Vec<Option<u32>> = listing.iter().map(|p| m.find(p, 3)).collect();
            let want: Vec<Option<u32>> = listing.iter().map(|p| s.find_path(p)).collect();
            assert_eq!(found, want, "{listing:?}");
        }
        // Only missing rows: one of them, so a new file there revives it.
        let s = state_with(&[b"/l/a.jpg", b"/l/a.jpg"], &[false, false]);
        assert!(FolderMatcher::new(&s).find(b"/l/a.jpg", 3).is_some());
    }

    #[test]
    fn uuid_round_trip() {
        let s = "0191e7a2-4c1b-7d3e-9f00-123456789abc";
        assert_eq!(MediaId::parse(s).unwrap().to_uuid_string(), s);
        assert!(MediaId::parse("nope").is_none());
    }

    #[test]
    fn digest_parse() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_digest(hex.as_bytes()).unwrap().to_hex(), hex);
        assert!(parse_digest(b"zz").is_none());
    }

    #[test]
    fn rows_digests_and_ids_come_whole_from_several_batches() {
        // The state copies what it needs: the batches are gone once it is built.
        let good = "0f".repeat(32);
        let batch = |first: u64, digests: Vec<Option<&str>>| {
            let n = digests.len();
            let paths: Vec<Vec<u8>> = (0..n)
                .map(|i| format!("/l/{}.jpg", first + i as u64).into_bytes())
                .collect();
            let ids: Vec<String> = (0..n)
                .map(|i| format!("00000000-0000-0000-0000-{:012x}", first + i as u64))
                .collect();
            let u = |f: &dyn Fn(u64) -> u64| Arc::new(UInt64Array::from_iter_values((0..n as u64).map(f))) as ArrayRef;
            RecordBatch::try_from_iter(vec![
                (
                    "path_bytes",
                    Arc::new(BinaryArray::from_iter_values(paths.iter())) as ArrayRef,
                ),
                ("dev", u(&|_| 1)),
                ("inode", u(&|i| first + i)),
                ("size", u(&|i| i)),
                (
                    "mtime_ns",
                    Arc::new(Int64Array::from_iter_values(0..n as i64)) as ArrayRef,
                ),
                ("blake3", Arc::new(StringArray::from(digests)) as ArrayRef),
                (
                    "media_id",
                    Arc::new(StringArray::from_iter_values(ids.iter())) as ArrayRef,
                ),
                ("present", Arc::new(BooleanArray::from(vec![true; n])) as ArrayRef),
            ])
            .unwrap()
        };
        let s = {
            let batches = [
                batch(0, vec![Some(good.as_str()), None]),
                batch(2, vec![Some("abc"), Some(good.as_str()), None]),
            ];
            PrevState::from_batches(&batches).unwrap()
        };
        assert_eq!(s.len(), 5);
        let has: Vec<bool> = (0..5).map(|i| s.has_digest(i)).collect();
        assert_eq!(has, [true, false, true, true, false]);
        let hex: Vec<Option<String>> = (0..5).map(|i| s.digest(i).map(|d| d.to_hex())).collect();
        assert_eq!(hex, [Some(good.clone()), None, None, Some(good.clone()), None]);
        for i in 0..5 {
            assert_eq!(s.media_id(i), MediaId(i as u128));
            assert_eq!(s.path(i), format!("/l/{i}.jpg").as_bytes());
            assert_eq!(s.find_path(format!("/l/{i}.jpg").as_bytes()), Some(i as u32));
            assert_eq!(s.stat[i].id.ino, i as u64);
        }
    }
}
