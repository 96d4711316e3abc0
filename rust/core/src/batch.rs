//! Arrow batches the scan hands out: file rows, error rows, vanished ids.

use std::sync::Arc;

use arrow_array::builder::{ArrayBuilder, BinaryBuilder, Int32Builder, Int64Builder, StringBuilder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::error::Result;
use crate::kind::Class;
use crate::prev::MediaId;
use crate::types::{Digest, FileStat};
use crate::walk::{PathError, WalkedFile};

/// Why a file row is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A path the catalog did not know.
    New,
    /// A known path whose size, mtime or identity changed.
    Changed,
    /// A known, unchanged path that had no digest yet.
    Hashed,
    /// A known path whose size and mtime stand but whose change time moved with no new
    /// link (a chmod, or a rewrite that put the mtime back): hashed again and compared
    /// with the digest it had. Settled after hashing: `Changed` if the bytes differ,
    /// else `Hashed`; never written as such.
    Recheck(Digest),
    /// A known path that was missing and is back.
    Revived,
    /// A file at the path of a row a scan found gone that is not that file (another
    /// inode, or one made since): hashed, then `Revived` if it holds the row's bytes (a
    /// restore from a copy), else `New` with an id of its own (another file saved under
    /// the name, as a camera's counter starting over does). Never written as such.
    Recover(Digest),
    /// A known file (same device, inode, size, mtime) under a new path: it keeps its id.
    Moved,
    /// A known file under a new path whose change time says it was also written (see
    /// `written_as_well` in scan.rs), or whose birth time cannot tell it from another file
    /// made on the row's freed inode number: hashed again and compared with the digest it
    /// had (`Digest`), the row's (`u32`). Settled after hashing: `Moved` if the bytes are
    /// the same; if they differ, `Changed` (its id kept) where its birth time is the row's
    /// (`true`: the same file, edited and moved), else `New` (another file, with an id of
    /// its own; the row is then not seen, and goes missing). Never written as such.
    MovedRecheck(Digest, u32, bool),
    /// A known, unchanged file whose link count or inode change time moved (a hard link
    /// added or removed, a chmod): only those two columns are refreshed.
    Touched,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Changed => "changed",
            Change::Hashed | Change::Recheck(_) => "hashed",
            Change::Revived | Change::Recover(_) => "revived",
            Change::Moved | Change::MovedRecheck(..) => "moved",
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
    /// The file's birth time (ns since the epoch), 0 where the file system keeps none.
    pub born_ns: i64,
}

impl FileRow {
    /// The row of a walked file; its path moves in, not copied.
    pub fn of(f: WalkedFile, class: Class, digest: Option<Digest>, prev: Option<MediaId>, change: Change) -> Self {
        assert!(!f.stat.is_unknown(), "a file's row made before its stat was taken");
        FileRow {
            path: f.path,
            name_start: f.name_start,
            stat: f.stat,
            class,
            digest,
            prev,
            change,
            born_ns: f.born_ns,
        }
    }
}

/// The schema of file batches.
pub fn files_schema() -> SchemaRef {
    // No `path`: the catalog computes it from `dir` and `name`.
    Arc::new(Schema::new(vec![
        // The raw bytes only where they are not valid UTF-8 (else `dir` and `name` are
        // exact): the catalog's `path_bytes` is computed from the three.
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
        // NULL where the file system keeps no birth times.
        Field::new("btime_ns", DataType::Int64, true),
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

/// Lowercase an extension into `buf` when it is short ASCII (nearly always), else
/// allocate.
fn lower_ext<'a>(ext: &'a str, buf: &'a mut [u8; 16]) -> std::borrow::Cow<'a, str> {
    if !ext.bytes().any(|b| b.is_ascii_uppercase()) {
        return ext.into();
    }
    if ext.is_ascii() && ext.len() <= buf.len() {
        let out = &mut buf[..ext.len()];
        for (d, s) in out.iter_mut().zip(ext.bytes()) {
            *d = s.to_ascii_lowercase();
        }
        return std::str::from_utf8(out).expect("ASCII").into();
    }
    ext.to_lowercase().into()
}

/// Builds file batches row by row, so rows go straight into Arrow buffers as they arrive.
pub struct FilesBuilder {
    path_raw: BinaryBuilder,
    dir: StringBuilder,
    name: StringBuilder,
    ext: StringBuilder,
    size: UInt64Builder,
    mtime: Int64Builder,
    ctime: Int64Builder,
    dev: UInt64Builder,
    ino: UInt64Builder,
    nlink: UInt64Builder,
    kind: StringBuilder,
    mime: StringBuilder,
    digest: StringBuilder,
    prev: StringBuilder,
    change: StringBuilder,
    btime: Int64Builder,
    ext_buf: [u8; 16],
    hex_buf: [u8; 64],
    uuid_buf: [u8; 36],
}

impl FilesBuilder {
    /// Room for `rows` rows whose paths take about `path_bytes` bytes in all.
    pub fn with_capacity(rows: usize, path_bytes: usize) -> Self {
        let n = rows;
        FilesBuilder {
            path_raw: BinaryBuilder::with_capacity(n, 0),
            dir: StringBuilder::with_capacity(n, path_bytes),
            name: StringBuilder::with_capacity(n, path_bytes / 2),
            ext: StringBuilder::with_capacity(n, n * 4),
            size: UInt64Builder::with_capacity(n),
            mtime: Int64Builder::with_capacity(n),
            ctime: Int64Builder::with_capacity(n),
            dev: UInt64Builder::with_capacity(n),
            ino: UInt64Builder::with_capacity(n),
            nlink: UInt64Builder::with_capacity(n),
            kind: StringBuilder::with_capacity(n, n * 6),
            mime: StringBuilder::with_capacity(n, n * 12),
            // Room for every row's digest and previous id: grown by doubling instead, each
            // column was copied about as often, into fresh pages. Room never used is never
            // touched, so it takes no memory.
            digest: StringBuilder::with_capacity(n, n * 64),
            prev: StringBuilder::with_capacity(n, n * 36),
            change: StringBuilder::with_capacity(n, n * 7),
            btime: Int64Builder::with_capacity(n),
            ext_buf: [0; 16],
            hex_buf: [0; 64],
            uuid_buf: [0; 36],
        }
    }

    /// Rows appended since the last `finish`.
    pub fn len(&self) -> usize {
        self.size.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of path text appended since the last `finish`.
    pub fn path_bytes(&self) -> usize {
        self.dir.values_slice().len() + self.name.values_slice().len()
    }

    pub fn append(&mut self, r: &FileRow) {
        let ns = r.name_start as usize;
        let dir_end = match ns {
            0 => 0,
            1 => 1,
            _ => ns - 1,
        };
        // One UTF-8 check per path; its folder and name are slices of it ('/' is a char
        // boundary). Undecodable bytes never span a '/', so decoding the parts apart gives
        // the same text as decoding the whole.
        match std::str::from_utf8(&r.path) {
            Ok(p) => {
                self.path_raw.append_null();
                self.dir.append_value(&p[..dir_end]);
                let nm = &p[ns..];
                self.name.append_value(nm);
                // `extension` splits at an ASCII dot: a char boundary too.
                let e = &nm[nm.len() - crate::kind::extension(nm.as_bytes()).len()..];
                self.ext.append_value(lower_ext(e, &mut self.ext_buf));
            }
            Err(_) => {
                self.path_raw.append_value(&r.path);
                self.dir.append_value(lossy(&r.path[..dir_end]));
                let nm = &r.path[ns..];
                self.name.append_value(lossy(nm));
                self.ext.append_value(lossy(crate::kind::extension(nm)).to_lowercase());
            }
        }
        self.size.append_value(r.stat.len.0);
        self.mtime.append_value(r.stat.mtime_ns);
        self.ctime.append_value(r.stat.ctime_ns);
        self.dev.append_value(r.stat.id.dev);
        self.ino.append_value(r.stat.id.ino);
        self.nlink.append_value(r.stat.nlink);
        self.kind.append_value(r.class.kind.as_str());
        self.mime.append_value(r.class.mime);
        match r.digest {
            Some(d) => self.digest.append_value(d.hex(&mut self.hex_buf)),
            None => self.digest.append_null(),
        }
        match r.prev {
            Some(m) => self.prev.append_value(m.uuid(&mut self.uuid_buf)),
            None => self.prev.append_null(),
        }
        self.change.append_value(r.change.as_str());
        self.btime.append_option((r.born_ns > 0).then_some(r.born_ns));
    }

    /// The rows appended so far as a batch; the builder starts over, empty.
    pub fn finish(&mut self) -> Result<RecordBatch> {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.path_raw.finish()),
            Arc::new(self.dir.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.ext.finish()),
            Arc::new(self.size.finish()),
            Arc::new(self.mtime.finish()),
            Arc::new(self.ctime.finish()),
            Arc::new(self.dev.finish()),
            Arc::new(self.ino.finish()),
            Arc::new(self.nlink.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.mime.finish()),
            Arc::new(self.digest.finish()),
            Arc::new(self.prev.finish()),
            Arc::new(self.change.finish()),
            Arc::new(self.btime.finish()),
        ];
        Ok(RecordBatch::try_new(files_schema(), cols)?)
    }
}

/// Build a file batch.
pub fn files_batch(rows: &[FileRow]) -> Result<RecordBatch> {
    let mut b = FilesBuilder::with_capacity(rows.len(), rows.iter().map(|r| r.path.len()).sum());
    for r in rows {
        b.append(r);
    }
    b.finish()
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
    let mut buf = [0; 36];
    for m in ids {
        b.append_value(m.uuid(&mut buf));
    }
    let schema = Arc::new(Schema::new(vec![Field::new("media_id", DataType::Utf8, false)]));
    Ok(RecordBatch::try_new(schema, vec![Arc::new(b.finish()) as ArrayRef])?)
}
