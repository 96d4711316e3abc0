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
        let h = format!("{:032x}", self.0);
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

/// Parse 64 lowercase or uppercase hex digits.
pub fn parse_digest(s: &[u8]) -> Option<Digest> {
    if s.len() != 64 {
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

/// The catalog's rows, compact and indexed.
pub struct PrevState {
    path_bytes: Vec<u8>,
    path_ends: Vec<usize>,
    pub stat: Vec<FileStat>,
    pub digest: Vec<Option<Digest>>,
    pub media_id: Vec<MediaId>,
    pub present: Vec<bool>,
    pub seen: Vec<AtomicBool>,
    hasher: DefaultHashBuilder,
    by_path: HashTable<u32>,
    by_id: std::sync::OnceLock<HashMap<FileId, u32>>,
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

pub(crate) fn column<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a dyn Array> {
    b.column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| Error::InvalidInput(format!("previous state lacks column {name:?}")))
}

pub(crate) fn u64_col<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a arrow_array::PrimitiveArray<UInt64Type>> {
    column(b, name)?
        .as_primitive_opt::<UInt64Type>()
        .ok_or_else(|| Error::InvalidInput(format!("previous state column {name:?} must be UInt64")))
}

impl PrevState {
    /// An empty state: a fresh catalog.
    pub fn empty() -> Self {
        Self::from_batches(&[]).expect("empty state")
    }

    /// Build from the catalog's batches.
    pub fn from_batches(batches: &[RecordBatch]) -> Result<Self> {
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let mut s = PrevState {
            path_bytes: Vec::new(),
            path_ends: Vec::with_capacity(rows),
            stat: Vec::with_capacity(rows),
            digest: Vec::with_capacity(rows),
            media_id: Vec::with_capacity(rows),
            present: Vec::with_capacity(rows),
            seen: Vec::with_capacity(rows),
            hasher: DefaultHashBuilder::default(),
            by_path: HashTable::with_capacity(rows),
            by_id: std::sync::OnceLock::new(),
        };
        for b in batches {
            let path = column(b, "path_bytes")?;
            let dev = u64_col(b, "dev")?;
            let ino = u64_col(b, "inode")?;
            let size = u64_col(b, "size")?;
            let mtime = column(b, "mtime_ns")?
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| Error::InvalidInput("previous state column \"mtime_ns\" must be Int64".into()))?;
            let digest = column(b, "blake3")?;
            let mid = column(b, "media_id")?;
            let present = column(b, "present")?
                .as_boolean_opt()
                .ok_or_else(|| Error::InvalidInput("previous state column \"present\" must be Boolean".into()))?;
            for i in 0..b.num_rows() {
                let p = bytes_at(path, i).ok_or_else(|| Error::InvalidInput("null path_bytes".into()))?;
                s.path_bytes.extend_from_slice(p);
                s.path_ends.push(s.path_bytes.len());
            }
            // Parsing digests and ids is most of the cost: spread it over the cores.
            let parsed: Vec<(Option<Digest>, Option<MediaId>)> = (0..b.num_rows())
                .into_par_iter()
                .map(|i| {
                    let d = bytes_at(digest, i).and_then(parse_digest);
                    let m = bytes_at(mid, i)
                        .and_then(|m| std::str::from_utf8(m).ok())
                        .and_then(MediaId::parse);
                    (d, m)
                })
                .collect();
            for (i, (d, m)) in parsed.into_iter().enumerate() {
                s.stat.push(FileStat {
                    len: FileLen(size.value(i)),
                    mtime_ns: mtime.value(i),
                    ctime_ns: 0,
                    id: FileId {
                        dev: dev.value(i),
                        ino: ino.value(i),
                    },
                    nlink: 0,
                });
                s.digest.push(d);
                s.media_id
                    .push(m.ok_or_else(|| Error::InvalidInput("media_id is not a UUID".into()))?);
                s.present.push(present.value(i));
                s.seen.push(AtomicBool::new(false));
            }
        }
        let hashes: Vec<u64> = (0..s.path_ends.len())
            .into_par_iter()
            .map(|i| s.hasher.hash_one(s.path(i)))
            .collect();
        for (i, &h) in hashes.iter().enumerate() {
            s.by_path.insert_unique(h, i as u32, |&j| hashes[j as usize]);
        }
        Ok(s)
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

    /// The row holding this exact path.
    pub fn find_path(&self, path: &[u8]) -> Option<u32> {
        let h = self.hasher.hash_one(path);
        self.by_path.find(h, |&j| self.path(j as usize) == path).copied()
    }

    /// A row with this identity, size and mtime: the same file, seen under another name
    /// (a move or a hard link), so its id and digest can be reused without reading.
    pub fn find_same_inode(&self, st: &FileStat) -> Option<u32> {
        let idx = self.by_id.get_or_init(|| {
            let mut m = HashMap::with_capacity(self.len());
            for (i, s) in self.stat.iter().enumerate() {
                // Prefer a present row when several share an identity.
                if self.present[i] || !m.contains_key(&s.id) {
                    m.insert(s.id, i as u32);
                }
            }
            m
        });
        let j = *idx.get(&st.id)?;
        let p = &self.stat[j as usize];
        (p.len == st.len && p.mtime_ns == st.mtime_ns).then_some(j)
    }

    pub fn mark_seen(&self, i: u32) {
        self.seen[i as usize].store(true, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
