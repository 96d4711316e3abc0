//! Arrow batches the scan hands out: file rows, error rows, vanished ids.

use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, Int32Builder, Int64Builder, StringBuilder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::error::Result;
use crate::kind::Class;
use crate::prev::MediaId;
use crate::types::{Digest, FileStat};
use crate::walk::PathError;

/// Why a file row is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A path the catalog did not know.
    New,
    /// A known path whose size, mtime or identity changed.
    Changed,
    /// A known, unchanged path that had no digest yet.
    Hashed,
    /// A known path that was missing and is back.
    Revived,
    /// A known file (same device, inode, size, mtime) under a new path: it keeps its id.
    Moved,
    /// A known, unchanged file whose link count or inode change time moved (a hard link
    /// added or removed, a chmod): only those two columns are refreshed.
    Touched,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Changed => "changed",
            Change::Hashed => "hashed",
            Change::Revived => "revived",
            Change::Moved => "moved",
            Change::Touched => "touched",
        }
    }
}

/// One file row on its way to the catalog.
#[derive(Debug)]
pub struct FileRow {
    pub path: Box<[u8]>,
    pub name_start: u32,
    pub stat: FileStat,
    pub class: Class,
    pub digest: Option<Digest>,
    pub prev: Option<MediaId>,
    pub change: Change,
}

/// The schema of file batches.
pub fn files_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("path", DataType::Utf8, false),
        // The raw bytes only where they are not valid UTF-8 (else `path` is exact): the
        // catalog's `path_bytes` is computed from the two.
        Field::new("path_raw", DataType::Binary, true),
        Field::new("dir", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("ext", DataType::Utf8, false),
        Field::new("size", DataType::UInt64, false),
        Field::new("mtime_ns", DataType::Int64, false),
        Field::new("ctime_ns", DataType::Int64, false),
        Field::new("dev", DataType::UInt64, false),
        Field::new("inode", DataType::UInt64, false),
        Field::new("nlink", DataType::UInt64, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("mime", DataType::Utf8, false),
        Field::new("blake3", DataType::Utf8, true),
        Field::new("prev_media_id", DataType::Utf8, true),
        Field::new("change", DataType::Utf8, false),
    ]))
}

/// The schema of error batches.
pub fn errors_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("path", DataType::Utf8, false),
        Field::new("path_bytes", DataType::Binary, false),
        Field::new("stage", DataType::Utf8, false),
        Field::new("message", DataType::Utf8, false),
        Field::new("errno", DataType::Int32, true),
    ]))
}

/// The display form of a raw path: UTF-8, with U+FFFD standing for undecodable bytes.
/// The raw bytes travel beside it, so nothing is lost.
fn lossy(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// `path` as the catalog stores it: the display string, plus the raw bytes only when the
/// display string is not exact (undecodable bytes).
fn append_path(path: &mut StringBuilder, raw: &mut BinaryBuilder, p: &[u8]) {
    match std::str::from_utf8(p) {
        Ok(s) => {
            path.append_value(s);
            raw.append_null();
        }
        Err(_) => {
            path.append_value(String::from_utf8_lossy(p));
            raw.append_value(p);
        }
    }
}

/// Build a file batch.
pub fn files_batch(rows: &[FileRow]) -> Result<RecordBatch> {
    let n = rows.len();
    let bytes: usize = rows.iter().map(|r| r.path.len()).sum();
    let mut path = StringBuilder::with_capacity(n, bytes);
    let mut path_raw = BinaryBuilder::with_capacity(n, 0);
    let mut dir = StringBuilder::with_capacity(n, bytes);
    let mut name = StringBuilder::with_capacity(n, bytes / 2);
    let mut ext = StringBuilder::with_capacity(n, n * 4);
    let mut size = UInt64Builder::with_capacity(n);
    let mut mtime = Int64Builder::with_capacity(n);
    let mut ctime = Int64Builder::with_capacity(n);
    let mut dev = UInt64Builder::with_capacity(n);
    let mut ino = UInt64Builder::with_capacity(n);
    let mut nlink = UInt64Builder::with_capacity(n);
    let mut kind = StringBuilder::with_capacity(n, n * 6);
    let mut mime = StringBuilder::with_capacity(n, n * 12);
    let mut digest = StringBuilder::with_capacity(n, n * 64);
    let mut prev = StringBuilder::with_capacity(n, n * 36);
    let mut change = StringBuilder::with_capacity(n, n * 7);
    for r in rows {
        append_path(&mut path, &mut path_raw, &r.path);
        let ns = r.name_start as usize;
        let d = if ns == 0 {
            &b""[..]
        } else if ns == 1 {
            &r.path[..1]
        } else {
            &r.path[..ns - 1]
        };
        dir.append_value(lossy(d));
        let nm = &r.path[ns..];
        name.append_value(lossy(nm));
        ext.append_value(lossy(crate::kind::extension(nm)).to_lowercase());
        size.append_value(r.stat.len.0);
        mtime.append_value(r.stat.mtime_ns);
        ctime.append_value(r.stat.ctime_ns);
        dev.append_value(r.stat.id.dev);
        ino.append_value(r.stat.id.ino);
        nlink.append_value(r.stat.nlink);
        kind.append_value(r.class.kind.as_str());
        mime.append_value(r.class.mime);
        match r.digest {
            Some(d) => digest.append_value(d.to_hex()),
            None => digest.append_null(),
        }
        match r.prev {
            Some(m) => prev.append_value(m.to_uuid_string()),
            None => prev.append_null(),
        }
        change.append_value(r.change.as_str());
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(path.finish()),
        Arc::new(path_raw.finish()),
        Arc::new(dir.finish()),
        Arc::new(name.finish()),
        Arc::new(ext.finish()),
        Arc::new(size.finish()),
        Arc::new(mtime.finish()),
        Arc::new(ctime.finish()),
        Arc::new(dev.finish()),
        Arc::new(ino.finish()),
        Arc::new(nlink.finish()),
        Arc::new(kind.finish()),
        Arc::new(mime.finish()),
        Arc::new(digest.finish()),
        Arc::new(prev.finish()),
        Arc::new(change.finish()),
    ];
    Ok(RecordBatch::try_new(files_schema(), cols)?)
}

/// Build an error batch.
pub fn errors_batch(rows: &[PathError]) -> Result<RecordBatch> {
    let mut path = StringBuilder::new();
    let mut path_bytes = BinaryBuilder::new();
    let mut stage = StringBuilder::new();
    let mut message = StringBuilder::new();
    let mut errno = Int32Builder::new();
    for e in rows {
        path.append_value(lossy(&e.path));
        path_bytes.append_value(&e.path);
        stage.append_value(e.stage);
        message.append_value(&e.message);
        errno.append_option(e.errno);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(path.finish()),
        Arc::new(path_bytes.finish()),
        Arc::new(stage.finish()),
        Arc::new(message.finish()),
        Arc::new(errno.finish()),
    ];
    Ok(RecordBatch::try_new(errors_schema(), cols)?)
}

/// A batch of media ids (the catalog rows that vanished from disk).
pub fn ids_batch(ids: &[MediaId]) -> Result<RecordBatch> {
    let mut b = StringBuilder::with_capacity(ids.len(), ids.len() * 36);
    for m in ids {
        b.append_value(m.to_uuid_string());
    }
    let schema = Arc::new(Schema::new(vec![Field::new("media_id", DataType::Utf8, false)]));
    Ok(RecordBatch::try_new(schema, vec![Arc::new(b.finish()) as ArrayRef])?)
}
