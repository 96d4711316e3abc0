//! `mediaforge._core`: the thin PyO3 layer over `mediaforge-core`.
//!
//! Inputs are copied into owned Rust values, the work runs with the GIL released, and
//! results come back as Arrow batches through the Arrow PyCapsule interface. Every call
//! goes through `detached`, which waits for the work while checking for Ctrl-C, and
//! every error through `to_py_err`, which maps the core's one error enum onto
//! `mediaforge.errors`.

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use arrow_array::ffi::{FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::ffi_stream::{ArrowArrayStreamReader, FFI_ArrowArrayStream};
use arrow_array::{Array, ArrayRef, RecordBatch, StructArray, UInt32Array, UInt8Array};
use arrow_schema::{DataType, Field, Schema};
use pyo3::exceptions::{PyStopIteration, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict};

use mediaforge_core::near::{self, Pair};
use mediaforge_core::phash::{self, Gray};
use mediaforge_core::prev::PrevState;
use mediaforge_core::scan::{self, Event, ScanHandle, ScanOptions};
use mediaforge_core::search;
use mediaforge_core::walk::WalkOptions;
use mediaforge_core::Error;

// Rust's allocations in this module (never Python's) go through mimalloc: the walk makes
// a few small ones per file, and glibc's malloc showed up at about a tenth of its time.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Map the core's error onto the Python hierarchy in `mediaforge.errors`.
fn to_py_err(py: Python<'_>, e: Error) -> PyErr {
    let class = match &e {
        Error::NotFound(_) => "PathNotFoundError",
        Error::PermissionDenied(_) => "PathPermissionError",
        Error::Io { .. } => "PathIOError",
        Error::InvalidInput(_) => "InvalidInputError",
        Error::Busy(_) => "IndexBusyError",
        Error::Cancelled => return pyo3::exceptions::PyKeyboardInterrupt::new_err("interrupted"),
        Error::Arrow(_) => "InternalError",
    };
    // The class says what kind of error it is: an invalid input's text is the reason alone.
    let msg = match e {
        Error::InvalidInput(m) => m,
        e => e.to_string(),
    };
    match py.import("mediaforge.errors").and_then(|m| m.getattr(class)) {
        Ok(cls) => match cls.call1((msg.clone(),)) {
            Ok(inst) => PyErr::from_value(inst),
            Err(err) => err,
        },
        Err(err) => err,
    }
}

/// Run `work` on its own thread with the GIL released; poll for Ctrl-C every 50 ms and
/// raise it flag-first, so the work stops at its next check.
fn detached<T: Send + 'static>(
    py: Python<'_>,
    cancel: Arc<AtomicBool>,
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> PyResult<T> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let t = std::thread::spawn(move || {
        let _ = tx.send(work());
    });
    loop {
        let got = py.allow_threads(|| rx.recv_timeout(Duration::from_millis(50)));
        match got {
            Ok(r) => {
                let _ = t.join();
                return r.map_err(|e| to_py_err(py, e));
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                let _ = t.join();
                return Err(to_py_err(
                    py,
                    Error::InvalidInput("internal error: worker ended without a result".into()),
                ));
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if let Err(sig) = py.check_signals() {
                    cancel.store(true, Relaxed);
                    py.allow_threads(|| {
                        let _ = rx.recv();
                    });
                    let _ = t.join();
                    return Err(sig);
                }
            }
        }
    }
}

/// An Arrow record batch, handed to Python through `__arrow_c_array__`
/// (`pyarrow.record_batch(obj)` takes it without a copy).
#[pyclass(frozen, module = "mediaforge._core")]
struct ArrowBatch {
    batch: RecordBatch,
}

#[pymethods]
impl ArrowBatch {
    #[getter]
    fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }

    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_schema__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<PyObject>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let schema =
            FFI_ArrowSchema::try_from(self.batch.schema().as_ref()).map_err(|e| to_py_err(py, Error::Arrow(e)))?;
        PyCapsule::new(py, schema, Some(CString::new("arrow_schema").unwrap()))
    }

    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_array__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<PyObject>,
    ) -> PyResult<(Bound<'py, PyCapsule>, Bound<'py, PyCapsule>)> {
        let _ = requested_schema;
        let data = StructArray::from(self.batch.clone()).into_data();
        let schema = FFI_ArrowSchema::try_from(data.data_type()).map_err(|e| to_py_err(py, Error::Arrow(e)))?;
        let array = FFI_ArrowArray::new(&data);
        let s = PyCapsule::new(py, schema, Some(CString::new("arrow_schema").unwrap()))?;
        let a = PyCapsule::new(py, array, Some(CString::new("arrow_array").unwrap()))?;
        Ok((s, a))
    }
}

fn wrap(py: Python<'_>, batch: RecordBatch) -> PyResult<PyObject> {
    Ok(Py::new(py, ArrowBatch { batch })?.into_any())
}

/// Read every batch of an object with `__arrow_c_stream__` (a pyarrow Table, say).
fn read_stream(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Vec<RecordBatch>> {
    open_stream(py, obj)?
        .map(|b| b.map_err(|e| to_py_err(py, Error::Arrow(e))))
        .collect()
}

/// The batches of an object with `__arrow_c_stream__`, one at a time.
fn open_stream(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<ArrowArrayStreamReader> {
    let capsule = obj.call_method0("__arrow_c_stream__")?;
    let capsule = capsule.downcast::<PyCapsule>()?;
    let ptr = capsule.pointer() as *mut FFI_ArrowArrayStream;
    if ptr.is_null() {
        return Err(to_py_err(py, Error::InvalidInput("empty Arrow stream capsule".into())));
    }
    // SAFETY: the capsule holds an ArrowArrayStream by the PyCapsule interface's contract;
    // from_raw moves it out and leaves a released stream behind.
    unsafe { ArrowArrayStreamReader::from_raw(ptr) }.map_err(|e| to_py_err(py, Error::Arrow(e)))
}

/// The catalog's rows (an Arrow stream, or none for an empty catalog), indexed for the scan.
/// Each batch is copied in and freed as it arrives, so the stream never sits in memory whole.
fn previous_state(py: Python<'_>, previous: Option<&Bound<'_, PyAny>>, rows: usize) -> PyResult<PrevState> {
    let mut state = PrevState::with_capacity(rows);
    if let Some(obj) = previous {
        for batch in open_stream(py, obj)? {
            let batch = batch.map_err(|e| to_py_err(py, Error::Arrow(e)))?;
            py.allow_threads(|| state.add_batch(&batch))
                .map_err(|e| to_py_err(py, e))?;
        }
    }
    Ok(py.allow_threads(|| state.finish()))
}

/// A running scan; iterate it for `(kind, payload)` events.
///
/// Kinds: `"files"` and `"errors"` (Arrow batches), `"vanished"` (an Arrow batch of the
/// catalog's media ids not seen under the roots), then `"done"` (a dict of totals).
#[pyclass(module = "mediaforge._core")]
struct Scanner {
    handle: Option<ScanHandle>,
}

#[pymethods]
impl Scanner {
    #[new]
    #[pyo3(signature = (roots, previous=None, *, hash=true, threads=0, excludes=vec![], ignore_files=true,
                        include_hidden=true, follow_symlinks=false, one_file_system=false,
                        batch_rows=245_760, flush_seconds=2.0, previous_later=false, skip=vec![],
                        skip_ids=vec![]))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        roots: Vec<Vec<u8>>,
        previous: Option<Bound<'_, PyAny>>,
        hash: bool,
        threads: usize,
        excludes: Vec<String>,
        ignore_files: bool,
        include_hidden: bool,
        follow_symlinks: bool,
        one_file_system: bool,
        batch_rows: usize,
        flush_seconds: f64,
        previous_later: bool,
        skip: Vec<Vec<u8>>,
        skip_ids: Vec<(u64, u64)>,
    ) -> PyResult<Self> {
        let prev = match (previous, previous_later) {
            (Some(_), true) => {
                return Err(PyValueError::new_err(
                    "give `previous` now or later (`set_previous`), not both",
                ));
            }
            (None, true) => None,
            (previous, false) => Some(previous_state(py, previous.as_ref(), 0)?),
        };
        let opts = ScanOptions {
            roots,
            walk: WalkOptions {
                excludes,
                use_ignore_files: ignore_files,
                include_hidden,
                follow_symlinks,
                one_file_system,
                skip,
                skip_ids,
                defer_file_stat: false, // the scan decides
            },
            hash,
            threads,
            batch_rows,
            flush_after: Duration::from_secs_f64(flush_seconds.max(0.05)),
        };
        let handle = scan::start(opts, prev).map_err(|e| to_py_err(py, e))?;
        Ok(Scanner { handle: Some(handle) })
    }

    /// The catalog's rows to compare against, for a scanner made with
    /// `previous_later=True`: it walks from the start but decides nothing until this call.
    /// `expected_rows`: how many rows the stream holds, if known, so the state is
    /// allocated once rather than grown.
    #[pyo3(signature = (previous=None, expected_rows=0))]
    fn set_previous(&self, py: Python<'_>, previous: Option<Bound<'_, PyAny>>, expected_rows: usize) -> PyResult<()> {
        let Some(h) = self.handle.as_ref() else {
            return Err(PyValueError::new_err("the scan is closed"));
        };
        h.previous_loading();
        let prev = previous_state(py, previous.as_ref(), expected_rows)?;
        h.set_previous(prev).map_err(|e| to_py_err(py, e))
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<(String, PyObject)> {
        loop {
            if let Some(ev) = self.poll(py, 0.1)? {
                return Ok(ev);
            }
        }
    }

    /// The next event, or `None` if none came within `timeout` seconds (so the caller
    /// can redraw progress). Raises `StopIteration` once the scan is over.
    fn poll(&mut self, py: Python<'_>, timeout: f64) -> PyResult<Option<(String, PyObject)>> {
        let Some(h) = self.handle.as_ref() else {
            return Err(PyStopIteration::new_err(()));
        };
        let wait = Duration::from_secs_f64(timeout.clamp(0.0, 1.0));
        let got = py.allow_threads(|| h.next_timeout(wait));
        match got {
            Ok(Some(ev)) => Ok(Some(match ev {
                Event::Files(b) => ("files".into(), wrap(py, b)?),
                Event::Errors(b) => ("errors".into(), wrap(py, b)?),
                Event::Vanished(b) => ("vanished".into(), wrap(py, b)?),
                Event::Kept(b) => ("kept".into(), wrap(py, b)?),
                Event::Linked(b) => ("linked".into(), wrap(py, b)?),
                Event::LinkHeld(b) => ("link_held".into(), wrap(py, b)?),
                Event::Glimpsed(b) => ("glimpsed".into(), wrap(py, b)?),
                Event::Done(t) => {
                    let d = PyDict::new(py);
                    d.set_item("files_seen", t.files_seen)?;
                    d.set_item("bytes_seen", t.bytes_seen)?;
                    d.set_item("dirs", t.dirs)?;
                    d.set_item("new", t.new)?;
                    d.set_item("changed", t.changed)?;
                    d.set_item("hashed", t.hashed)?;
                    d.set_item("revived", t.revived)?;
                    d.set_item("moved", t.moved)?;
                    d.set_item("unchanged", t.unchanged)?;
                    d.set_item("vanished", t.vanished)?;
                    d.set_item("hashed_files", t.hashed_files)?;
                    d.set_item("hashed_bytes", t.hashed_bytes)?;
                    d.set_item("unstable", t.unstable)?;
                    d.set_item("errors", t.errors)?;
                    d.set_item("excluded", t.excluded)?;
                    d.set_item("excluded_by_options", t.excluded_by_options)?;
                    d.set_item("gone_devs", t.gone_devs)?;
                    ("done".into(), d.into_any().unbind())
                }
                Event::Failed(e) => {
                    self.close(py);
                    return Err(to_py_err(py, e));
                }
            })),
            Ok(None) => {
                if let Err(sig) = py.check_signals() {
                    self.close(py);
                    return Err(sig);
                }
                Ok(None)
            }
            Err(()) => {
                self.close(py);
                Err(PyStopIteration::new_err(()))
            }
        }
    }

    /// Live counters: phase, files and bytes walked, files and bytes hashed of the total.
    fn progress<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        if let Some(h) = &self.handle {
            let p = &h.progress;
            let phase = match p.phase.load(Relaxed) {
                scan::phase::WALK => "walk",
                scan::phase::PLAN => "plan",
                scan::phase::HASH => "hash",
                _ => "done",
            };
            d.set_item("phase", phase)?;
            d.set_item("files", p.walk.files.load(Relaxed))?;
            d.set_item("bytes", p.walk.bytes.load(Relaxed))?;
            d.set_item("dirs", p.walk.dirs.load(Relaxed))?;
            d.set_item("errors", p.walk.errors.load(Relaxed))?;
            d.set_item("hash_files_total", p.hash_files_total.load(Relaxed))?;
            d.set_item("hash_bytes_total", p.hash_bytes_total.load(Relaxed))?;
            d.set_item("hash_files_done", p.hash_files_done.load(Relaxed))?;
            d.set_item("hash_bytes_done", p.hash_bytes_done.load(Relaxed))?;
            d.set_item("hash_phase_files", p.hash_phase_files.load(Relaxed))?;
            d.set_item("hash_phase_bytes", p.hash_phase_bytes.load(Relaxed))?;
        }
        Ok(d)
    }

    /// Stop the scan (if running) and wait for its threads; safe to call twice.
    fn close(&mut self, py: Python<'_>) {
        if let Some(mut h) = self.handle.take() {
            h.cancel();
            py.allow_threads(move || h.close());
        }
    }
}

/// BLAKE3 of one file, hex: the same code path as the scan (mmap, rayon for big files).
#[pyfunction]
#[pyo3(signature = (path, threads=0))]
fn hash_file(py: Python<'_>, path: Vec<u8>, threads: usize) -> PyResult<String> {
    let cancel = Arc::new(AtomicBool::new(false));
    let c2 = cancel.clone();
    detached(py, cancel, move || {
        let mut b = rayon::ThreadPoolBuilder::new();
        if threads > 0 {
            b = b.num_threads(threads);
        }
        let pool = b.build().map_err(|e| Error::InvalidInput(e.to_string()))?;
        pool.install(|| mediaforge_core::hash::hash_path(&path, &c2))
            .map(|d| d.to_hex())
    })
}

/// BLAKE3 of bytes in memory, hex: what the scan records for a file of these bytes.
#[pyfunction]
fn hash_bytes(data: &[u8]) -> String {
    mediaforge_core::hash::hash_bytes(data).to_hex()
}

/// A search query's words as the index reads them: (as typed, value, filter key or None,
/// whether it excludes: `-word`).
#[pyfunction]
fn search_words(py: Python<'_>, query: &str) -> PyResult<Vec<(String, String, Option<String>, bool)>> {
    let words = search::query_words(query).map_err(|e| to_py_err(py, e))?;
    Ok(words.into_iter().map(|w| (w.raw, w.value, w.key, w.negated)).collect())
}

/// Kind and MIME of a file name and (optionally) its first bytes; with `path`, the file
/// there, whose tracks are read where its container's brands or name alone say sound.
#[pyfunction]
#[pyo3(signature = (name, head=None, path=None))]
fn classify(name: Vec<u8>, head: Option<Vec<u8>>, path: Option<Vec<u8>>) -> (String, String) {
    use mediaforge_core::kind;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::FileExt;

    let mut c = kind::classify(kind::extension(&name), head.as_deref());
    if kind::tracks_may_tell(c, head.as_deref().unwrap_or_default()) {
        if let Some(file) = path.and_then(|p| std::fs::File::open(std::ffi::OsStr::from_bytes(&p)).ok()) {
            let read = |at: u64, buf: &mut [u8]| file.read_at(buf, at).ok();
            if kind::tracks_list_video(c, &read) {
                c = kind::as_video(c);
            }
        }
    }
    (c.kind.as_str().to_string(), c.mime.to_string())
}

/// pHash and dHash (64 bits each) of a grey image of `width` x `height` bytes.
#[pyfunction]
fn image_hashes(gray: &[u8], width: usize, height: usize) -> PyResult<(u64, u64)> {
    let g = Gray::new(width, height, gray).map_err(|e| Python::with_gil(|py| to_py_err(py, e)))?;
    Ok((phash::phash(&g).0, phash::dhash(&g).0))
}

/// The finer 256-bit pHash (32 bytes) of a grey image of `width` x `height` bytes, which
/// checks the pairs the 64-bit pHash finds (see `similar_groups`).
#[pyfunction]
fn fine_hash(py: Python<'_>, gray: &[u8], width: usize, height: usize) -> PyResult<Vec<u8>> {
    let g = Gray::new(width, height, gray).map_err(|e| to_py_err(py, e))?;
    Ok(phash::fine_hash(&g).to_vec())
}

/// The luma plane at 1/8 scale of the JPEG open on file descriptor `fd` (read whole with
/// `pread`, so the caller's file position is untouched), as (pixels, width, height, Cb,
/// Cr): the chroma planes at the same size, or `None` for a grey JPEG. `None` in all
/// when the file is not a JPEG this fast path takes, so the caller decodes it as usual.
/// `fd` must be open for the whole call (the caller holds the file object).
#[pyfunction]
fn jpeg_luma_eighth(py: Python<'_>, fd: i32) -> Option<JpegEighth> {
    if fd < 0 {
        return None;
    }
    // Borrowed: the descriptor stays its owner's, open, at its position.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    // Hostile bytes: should the decoder still meet a case it does not check, the caller
    // decodes the file with libjpeg instead, as for any file this path refuses.
    let luma = py.allow_threads(|| {
        std::panic::catch_unwind(|| mediaforge_core::jpegdc::luma_eighth_fd(fd).ok())
            .ok()
            .flatten()
    })?;
    let bytes = |b: &[u8]| pyo3::types::PyBytes::new(py, b).unbind();
    let (cb, cr) = match &luma.chroma {
        Some((cb, cr)) => (Some(bytes(cb)), Some(bytes(cr))),
        None => (None, None),
    };
    Some((bytes(&luma.pixels), luma.width, luma.height, cb, cr))
}

/// For each JPEG file at `paths` (exact bytes), why its compressed data is damaged
/// (`jpegdc::damage`), or None: whole, not a JPEG this check reads, or not readable. The
/// files are read in parallel on the core's pool; Ctrl-C stops the call.
#[pyfunction]
fn jpeg_damage(py: Python<'_>, paths: Vec<Vec<u8>>) -> PyResult<Vec<Option<String>>> {
    use rayon::prelude::*;
    use std::os::unix::ffi::OsStrExt;

    let cancel = Arc::new(AtomicBool::new(false));
    let stop = cancel.clone();
    detached(py, cancel, move || {
        Ok(paths
            .par_iter()
            .map(|p| {
                if stop.load(Relaxed) {
                    return None;
                }
                let data = read_regular(std::ffi::OsStr::from_bytes(p), JPEG_DAMAGE_MAX)?;
                std::panic::catch_unwind(|| mediaforge_core::jpegdc::damage(&data))
                    .ok()
                    .flatten()
                    .map(str::to_string)
            })
            .collect())
    })
}

/// The largest file `jpeg_damage` reads (a JPEG's picture data is seldom past 100 MB).
const JPEG_DAMAGE_MAX: u64 = 1 << 30;

/// A regular file's bytes, read whole, where it is one (not through a symbolic link at
/// its last name, nor a FIFO, which would wait for a writer) of at most `max` bytes.
fn read_regular(path: &std::ffi::OsStr, max: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;

    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_flags())
        .open(path)
        .ok()?;
    let meta = f.metadata().ok()?;
    if !meta.file_type().is_file() || meta.len() > max {
        return None;
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    f.read_to_end(&mut data).ok()?;
    Some(data)
}

/// `O_NOFOLLOW | O_NONBLOCK | O_NOCTTY` for `read_regular`.
fn libc_flags() -> i32 {
    libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY
}

/// `jpeg_luma_eighth`'s answer: luma, width, height, Cb, Cr.
type JpegEighth = (
    Py<pyo3::types::PyBytes>,
    usize,
    usize,
    Option<Py<pyo3::types::PyBytes>>,
    Option<Py<pyo3::types::PyBytes>>,
);

/// Little-endian u64 values from a bytes-like buffer.
fn u64s(raw: &[u8]) -> Result<Vec<u64>, Error> {
    if !raw.len().is_multiple_of(8) {
        return Err(Error::InvalidInput(format!(
            "{} bytes is not a whole number of 64-bit hashes",
            raw.len()
        )));
    }
    Ok(raw
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect())
}

fn pairs_batch(pairs: &[Pair]) -> Result<RecordBatch, Error> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::UInt32, false),
        Field::new("b", DataType::UInt32, false),
        Field::new("distance", DataType::UInt8, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(UInt32Array::from_iter_values(pairs.iter().map(|p| p.a))),
        Arc::new(UInt32Array::from_iter_values(pairs.iter().map(|p| p.b))),
        Arc::new(UInt8Array::from_iter_values(pairs.iter().map(|p| p.distance as u8))),
    ];
    RecordBatch::try_new(schema, cols).map_err(Error::Arrow)
}

/// Every pair of hashes (little-endian u64s in `hashes`) within `radius` bits, as an
/// Arrow batch (a, b, distance) with a < b. `brute=True` compares every pair (the reference).
#[pyfunction]
#[pyo3(signature = (hashes, radius, brute=false))]
fn near_pairs(py: Python<'_>, hashes: &[u8], radius: u32, brute: bool) -> PyResult<PyObject> {
    let values = u64s(hashes).map_err(|e| to_py_err(py, e))?;
    let cancel = Arc::new(AtomicBool::new(false));
    let c2 = cancel.clone();
    let batch = detached(py, cancel, move || {
        let pairs = if brute {
            near::brute_pairs(&values, radius)
        } else {
            near::near_pairs(&values, radius, &c2)?
        };
        pairs_batch(&pairs)
    })?;
    wrap(py, batch)
}

/// Near-duplicate groups: the pairs within `radius`, then groups in which every member is
/// within `radius` of its group's leader (no chaining). Returns an Arrow batch of members
/// (index, group, leader index, distance to the leader) and the number of pairs found.
/// `fine`: each hash's finer 256-bit pHash (32 bytes each, in the same order), all zeros
/// where `known` (a byte per hash) is 0; a pair of two known ones more than
/// `fine_radius` bits apart there is no pair.
#[pyfunction]
#[pyo3(signature = (hashes, radius, fine=None, known=None, fine_radius=256))]
fn similar_groups(
    py: Python<'_>,
    hashes: &[u8],
    radius: u32,
    fine: Option<&[u8]>,
    known: Option<&[u8]>,
    fine_radius: u32,
) -> PyResult<(PyObject, usize)> {
    let values = u64s(hashes).map_err(|e| to_py_err(py, e))?;
    let fine = match (fine, known) {
        (Some(f), Some(k)) if f.len() == values.len() * phash::FINE_BYTES && k.len() == values.len() => {
            Some((f.to_vec(), k.to_vec()))
        }
        (None, None) => None,
        _ => {
            return Err(to_py_err(
                py,
                Error::InvalidInput(format!("fine hashes do not match {} hashes", values.len())),
            ))
        }
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let c2 = cancel.clone();
    let (batch, npairs) = detached(py, cancel, move || {
        let mut pairs = near::near_pairs(&values, radius, &c2)?;
        if let Some((fine, known)) = &fine {
            let at = |i: u32| &fine[i as usize * phash::FINE_BYTES..(i as usize + 1) * phash::FINE_BYTES];
            pairs.retain(|p| {
                known[p.a as usize] == 0
                    || known[p.b as usize] == 0
                    || phash::fine_distance(at(p.a), at(p.b)) <= fine_radius
            });
        }
        let (gid, leaders) = near::group(values.len(), &pairs);
        let members: Vec<u32> = (0..values.len() as u32)
            .filter(|&i| gid[i as usize] != u32::MAX)
            .collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("index", DataType::UInt32, false),
            Field::new("group", DataType::UInt32, false),
            Field::new("leader", DataType::UInt32, false),
            Field::new("distance", DataType::UInt8, false),
        ]));
        let lead = |i: u32| leaders[gid[i as usize] as usize];
        let cols: Vec<ArrayRef> = vec![
            Arc::new(UInt32Array::from_iter_values(members.iter().copied())),
            Arc::new(UInt32Array::from_iter_values(members.iter().map(|&i| gid[i as usize]))),
            Arc::new(UInt32Array::from_iter_values(members.iter().map(|&i| lead(i)))),
            Arc::new(UInt8Array::from_iter_values(members.iter().map(|&i| {
                phash::hamming(values[i as usize], values[lead(i) as usize]) as u8
            }))),
        ];
        Ok((RecordBatch::try_new(schema, cols).map_err(Error::Arrow)?, pairs.len()))
    })?;
    Ok((wrap(py, batch)?, npairs))
}

/// Exact duplicates among files without a digest yet, reading as little as possible
/// (size, then 4 KiB at each end, then the whole file). `files` is an Arrow stream with
/// path_bytes, size, mtime_ns, dev, inode and blake3 (hex or null). Returns an Arrow batch
/// (index, blake3, verdict, error) with verdict one of "digest", "unique", "changed",
/// "failed", and a dict of stage counts.
#[pyfunction]
#[pyo3(signature = (files, threads=0))]
fn exact_funnel<'py>(
    py: Python<'py>,
    files: &Bound<'py, PyAny>,
    threads: usize,
) -> PyResult<(PyObject, Bound<'py, PyDict>)> {
    use arrow_array::StringArray;
    use mediaforge_core::funnel::{self, Verdict};
    let batches = read_stream(py, files)?;
    let cands = funnel::candidates(&batches).map_err(|e| to_py_err(py, e))?;
    let cancel = Arc::new(AtomicBool::new(false));
    let c2 = cancel.clone();
    let (batch, stats) = detached(py, cancel, move || {
        let mut b = rayon::ThreadPoolBuilder::new();
        if threads > 0 {
            b = b.num_threads(threads);
        }
        let pool = b.build().map_err(|e| Error::InvalidInput(e.to_string()))?;
        let (verdicts, stats) = pool.install(|| funnel::run(&cands, &c2))?;
        let schema = Arc::new(Schema::new(vec![
            Field::new("index", DataType::UInt32, false),
            Field::new("blake3", DataType::Utf8, true),
            Field::new("verdict", DataType::Utf8, false),
            Field::new("error", DataType::Utf8, true),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(UInt32Array::from_iter_values(0..verdicts.len() as u32)),
            Arc::new(StringArray::from_iter(verdicts.iter().map(|v| match v {
                Verdict::Digest(d) => Some(d.to_hex()),
                _ => None,
            }))),
            Arc::new(StringArray::from_iter_values(verdicts.iter().map(|v| match v {
                Verdict::Digest(_) => "digest",
                Verdict::Unique => "unique",
                Verdict::Changed => "changed",
                Verdict::Failed(_) => "failed",
            }))),
            Arc::new(StringArray::from_iter(verdicts.iter().map(|v| match v {
                Verdict::Failed(m) => Some(m.clone()),
                _ => None,
            }))),
        ];
        Ok((RecordBatch::try_new(schema, cols).map_err(Error::Arrow)?, stats))
    })?;
    let d = PyDict::new(py);
    d.set_item("same_size", stats.by_size)?;
    d.set_item("same_prefix", stats.by_prefix)?;
    d.set_item("same_suffix", stats.by_suffix)?;
    d.set_item("hashed_in_full", stats.hashed_in_full)?;
    d.set_item("bytes_read", stats.bytes_read)?;
    Ok((wrap(py, batch)?, d))
}

/// The audio fingerprint of mono float32 PCM at 11,025 Hz (little-endian bytes), as
/// little-endian 32-bit words: empty when the audio is too short or mostly silent.
#[pyfunction]
fn audio_fingerprint(py: Python<'_>, pcm: &[u8]) -> PyResult<Vec<u8>> {
    if !pcm.len().is_multiple_of(4) {
        return Err(to_py_err(
            py,
            Error::InvalidInput("PCM must be whole float32 samples".into()),
        ));
    }
    let samples: Vec<f32> = pcm
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let words = py.allow_threads(|| mediaforge_core::afp::fingerprint(&samples));
    Ok(words.iter().flat_map(|w| w.to_le_bytes()).collect())
}

/// Whether two track lengths (seconds) pass the duration guard of `audio_matches`.
#[pyfunction]
fn durations_agree(a: f64, b: f64) -> bool {
    mediaforge_core::afp::durations_agree(a, b)
}

/// Pairs of tracks that sound the same: durations within the guard and at most `max_ber`
/// of fingerprint bits differing at the best alignment. `fingerprints` are little-endian
/// 32-bit words (as `audio_fingerprint` returns). An Arrow batch (a, b, ber), a < b.
#[pyfunction]
fn audio_matches(py: Python<'_>, fingerprints: Vec<Vec<u8>>, durations: Vec<f64>, max_ber: f32) -> PyResult<PyObject> {
    use arrow_array::Float32Array;
    let fps: Vec<Vec<u32>> = fingerprints
        .iter()
        .map(|f| {
            f.chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        })
        .collect();
    let cancel = Arc::new(AtomicBool::new(false));
    let c2 = cancel.clone();
    let batch = detached(py, cancel, move || {
        let found = mediaforge_core::afp::matches(&fps, &durations, max_ber, &c2)?;
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::UInt32, false),
            Field::new("b", DataType::UInt32, false),
            Field::new("ber", DataType::Float32, false),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(UInt32Array::from_iter_values(found.iter().map(|m| m.a))),
            Arc::new(UInt32Array::from_iter_values(found.iter().map(|m| m.b))),
            Arc::new(Float32Array::from_iter_values(found.iter().map(|m| m.ber))),
        ];
        RecordBatch::try_new(schema, cols).map_err(Error::Arrow)
    })?;
    wrap(py, batch)
}

/// A full-text search index in a folder (created when missing). Searches from several
/// threads run side by side; a write waits for them and they for it.
#[pyclass(frozen, module = "mediaforge._core")]
struct SearchIndex {
    inner: Arc<RwLock<search::SearchIndex>>,
}

// A panic inside the index has already surfaced as an error of its own call; the index's
// files only ever change by whole commits, so the handle stays usable after one.
fn read_lock(inner: &RwLock<search::SearchIndex>) -> RwLockReadGuard<'_, search::SearchIndex> {
    inner.read().unwrap_or_else(|e| e.into_inner())
}

fn write_lock(inner: &RwLock<search::SearchIndex>) -> RwLockWriteGuard<'_, search::SearchIndex> {
    inner.write().unwrap_or_else(|e| e.into_inner())
}

/// Work that writes the index, off the GIL on a thread of its own (Ctrl-C waits for it): a
/// panic inside it is a damaged index's error (`search::guarded`), for the caller to rebuild.
fn index_write<T: Send + 'static>(
    py: Python<'_>,
    inner: &Arc<RwLock<search::SearchIndex>>,
    work: impl FnOnce(&mut search::SearchIndex) -> Result<T, Error> + Send + 'static,
) -> PyResult<T> {
    let inner = inner.clone();
    let (dir, cancel) = {
        let index = read_lock(&inner);
        (index.dir().to_path_buf(), index.cancel_flag())
    };
    cancel.store(false, Relaxed);
    detached(py, cancel, move || {
        search::guarded(&dir, || work(&mut write_lock(&inner)))
    })
}

#[pymethods]
impl SearchIndex {
    #[new]
    fn new(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Self> {
        let index = py
            .allow_threads(|| search::guarded(&path, || search::SearchIndex::open_or_create(&path)))
            .map_err(|e| to_py_err(py, e))?;
        Ok(SearchIndex {
            inner: Arc::new(RwLock::new(index)),
        })
    }

    /// Stage the replacement of the docs of `docs` (an Arrow stream: utf8 media_id, name,
    /// path, tags and collections joined by "\n", meta, kind, ext; int32 year) and the
    /// removal of `deletes`: one part of an update that `commit_staged` commits whole, so a
    /// reader sees all of it or none. Returns the number of docs staged.
    #[pyo3(signature = (docs, deletes=vec![]))]
    fn stage(&self, py: Python<'_>, docs: &Bound<'_, PyAny>, deletes: Vec<String>) -> PyResult<usize> {
        let batches = read_stream(py, docs)?;
        index_write(py, &self.inner, move |index| {
            let docs = search::docs_from_batches(&batches)?;
            drop(batches);
            index.stage(&docs, &deletes)
        })
    }

    /// Commit what `stage` staged.
    fn commit_staged(&self, py: Python<'_>) -> PyResult<()> {
        index_write(py, &self.inner, |index| index.commit_staged())
    }

    /// Drop what `stage` staged.
    fn discard_staged(&self) {
        write_lock(&self.inner).discard_staged()
    }

    /// Remove every document.
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        index_write(py, &self.inner, |index| index.clear())
    }

    /// Ranked hits, best first, as an Arrow batch (media_id, score). `restrict` keeps only
    /// these media ids: a list of them, or an Arrow table (anything with
    /// `__arrow_c_stream__`) whose `media_id` column holds them.
    #[pyo3(signature = (query, limit=20, restrict=None))]
    fn search(
        &self,
        py: Python<'_>,
        query: &str,
        limit: usize,
        restrict: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyObject> {
        let restrict: Option<Vec<String>> = match restrict {
            None => None,
            Some(obj) if obj.hasattr("__arrow_c_stream__")? => {
                let batches = read_stream(py, obj)?;
                Some(
                    py.allow_threads(|| search::ids_from_batches(&batches))
                        .map_err(|e| to_py_err(py, e))?,
                )
            }
            Some(obj) => Some(obj.extract()?),
        };
        let batch = py
            .allow_threads(|| {
                let index = read_lock(&self.inner);
                let hits = search::guarded(index.dir(), || index.search(query, limit, restrict.as_deref()))?;
                search::hits_batch(&hits)
            })
            .map_err(|e| to_py_err(py, e))?;
        wrap(py, batch)
    }

    fn num_docs(&self) -> u64 {
        read_lock(&self.inner).num_docs()
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<Scanner>()?;
    m.add_class::<ArrowBatch>()?;
    m.add_class::<SearchIndex>()?;
    m.add_function(wrap_pyfunction!(hash_file, m)?)?;
    m.add_function(wrap_pyfunction!(hash_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(search_words, m)?)?;
    m.add_function(wrap_pyfunction!(classify, m)?)?;
    m.add_function(wrap_pyfunction!(image_hashes, m)?)?;
    m.add_function(wrap_pyfunction!(fine_hash, m)?)?;
    m.add_function(wrap_pyfunction!(jpeg_luma_eighth, m)?)?;
    m.add_function(wrap_pyfunction!(jpeg_damage, m)?)?;
    m.add_function(wrap_pyfunction!(near_pairs, m)?)?;
    m.add_function(wrap_pyfunction!(similar_groups, m)?)?;
    m.add_function(wrap_pyfunction!(exact_funnel, m)?)?;
    m.add_function(wrap_pyfunction!(audio_fingerprint, m)?)?;
    m.add_function(wrap_pyfunction!(audio_matches, m)?)?;
    m.add_function(wrap_pyfunction!(durations_agree, m)?)?;
    Ok(())
}
