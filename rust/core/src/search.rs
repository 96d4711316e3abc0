//! Full-text search over the catalog: a tantivy index of file names, folders, tags,
//! collections and metadata, queried with free words and `key:value` filters.
//!
//! The index lives in its own folder beside the catalog and is derived data: the catalog is
//! the truth, and `mediaforge search --reindex` rebuilds the index from it whenever it is
//! damaged or was written by another version.
//!
//! Query language: whitespace-separated words, double quotes group words with spaces
//! (`collection:"summer 2019"`). `kind:`, `ext:`, `year:` (`2019`, `2018..2020`, `2018..`,
//! `..2020`), `tag:` (a tag and everything below it) and `collection:` filter; several values
//! of one key are OR-ed, different keys AND-ed. Every free word must match somewhere, exactly,
//! as a prefix or within a typo or two; an exact file name ranks first. `OR` in capitals
//! between free words makes them alternatives (`paris OR london beach`: a beach in either).

use std::borrow::Cow;
use std::collections::HashSet;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int16Type, Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, Float32Array, Int32Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field as ArrowField, Schema as ArrowSchema};
use tantivy::collector::{FilterCollector, TopDocs};
use tantivy::directory::error::{LockError, OpenDirectoryError, OpenReadError, OpenWriteError};
use tantivy::directory::MmapDirectory;
use tantivy::indexer::IndexWriterOptions;
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, FuzzyTermQuery, Occur, Query, RangeQuery, TermQuery,
    TermSetQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, INDEXED, STORED, STRING,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, RawTokenizer, SimpleTokenizer, TextAnalyzer, Token, TokenFilter, TokenStream, Tokenizer,
};
use tantivy::{
    DocId, Index, IndexReader, IndexWriter, ReloadPolicy, Score, Searcher, SegmentReader, TantivyDocument,
    TantivyError, Term,
};
use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};

use crate::error::{Error, Result};
use crate::prev::bytes_at;

/// One catalog entry as the index sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Doc {
    pub media_id: String,
    /// The file name, extension included (`IMG_1234.JPG`).
    pub name: String,
    /// The file's path or its folder's; only the folder names are indexed.
    pub path: String,
    /// Slash-separated tag paths (`places/france/paris`).
    pub tags: Vec<String>,
    pub collections: Vec<String>,
    /// Title, artist, album, camera, lens, codec, year... as one string.
    pub meta: String,
    pub kind: String,
    pub ext: String,
    pub year: Option<i32>,
}

/// The analyzer of every text field and of the free words of a query.
const TOKENIZER: &str = "mf";
/// Tokens keep at most this many bytes, once folded: longer ones (hashes, ids,
/// run-together names) are indexed, and searched, by their first 40 bytes, so a pasted
/// one still finds its file while the index holds no unbounded terms. Cut after folding,
/// so a word typed without its accents is cut where the accented one is.
const MAX_TOKEN_LEN: usize = 40;
const WRITER_MEMORY: usize = 200 << 20;
const MAX_THREADS: usize = 4;
/// How long a write waits for the folder's writer lock that another process holds (a tag
/// committing, a scan bringing the index up to date) before it is a `Busy` error.
const LOCK_WAIT: Duration = Duration::from_secs(10);

// Per-field boosts of a free word: a hit in the name says most about the file, the folder
// names least (a whole shoot shares them).
const BOOST_NAME: f32 = 3.0;
const BOOST_TAGS: f32 = 2.5;
const BOOST_META: f32 = 1.5;
const BOOST_COLLECTIONS: f32 = 1.5;
const BOOST_PATH: f32 = 1.0;
const BOOST_PREFIX: f32 = 0.5;
const BOOST_TYPO: f32 = 0.3;
const BOOST_EXACT_NAME: f32 = 10.0;
/// Free words a query may hold (after folding, each counted once): each one is looked up
/// through typo-tolerant automata over five fields (about 2 MB for a long word), and every
/// one must match, so a pasted page of text finds nothing anyway.
const MAX_WORDS: usize = 64;
/// The fast field that orders documents of equal score: see `tiebreak`.
const TIEBREAK: &str = "tiebreak";
/// A search restricted to at most this many media_ids joins them to its query as a term
/// set; a longer list (a big collection's members) filters the matches by their
/// `tiebreak` hash instead. A term set reads each id's postings: 524,000 ids took 1.9 s,
/// where the filter's cost grows with the matches, not the list.
const RESTRICT_TERMS: usize = 4096;

#[cfg(test)]
thread_local! {
    /// Media ids whose hashes a long restriction's filter lets through as well: a test's
    /// stand-in for files not asked for whose `tiebreak` is that of one that was.
    static COLLIDING: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A document's place among those of equal score: from its media_id, so fixed for as long
/// as the file is, whatever order the documents were indexed in.
fn tiebreak(media_id: &str) -> u64 {
    let h = blake3::hash(media_id.as_bytes());
    u64::from_be_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
}

/// Threads for indexing and for searching the segments of one query.
fn threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_THREADS)
}

/// The analyzer of the indexed text: each word whole, and the parts of a word run
/// together (see `parts`), so `trip` finds `BeachTrip.jpg` and `01234` finds `DSC01234`.
fn mf_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(WithParts)
        .filter(EachToken(fold_token))
        .filter(AsciiFoldingFilter)
        .filter(EachToken(truncate_token))
        .build()
}

/// The analyzer of a query's free words: each word whole, never split (a word typed
/// run together finds the same run in a name; its parts would also find every file that
/// holds them apart).
fn query_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(EachToken(fold_token))
        .filter(AsciiFoldingFilter)
        .filter(EachToken(truncate_token))
        .build()
}

/// Words run together in a name split apart: at a change from a lower-case letter to an
/// upper-case one (`beachTrip`), before the last capital of a run followed by lower case
/// (`HTMLFile`: `HTML`, `File`), and between letters and digits (`DSC01234`,
/// `2019Paris`). Parts of one character are left out, and so is every part of a word cut
/// in more than `MAX_PARTS` (a word of letters and digits mixed at random: an id), or of
/// a run of 8 or more hex digits (a hash, a piece of a UUID): their parts would be noise
/// in the index. A part found twice is given once.
/// Empty when the word is one part.
fn parts(word: &str) -> Vec<(usize, usize)> {
    const MAX_PARTS: usize = 6;
    #[derive(PartialEq, Clone, Copy)]
    enum Class {
        Lower,
        Upper,
        Digit,
        Other,
    }
    let class = |c: char| {
        if c.is_numeric() {
            Class::Digit
        } else if c.is_uppercase() {
            Class::Upper
        } else if c.is_lowercase() {
            Class::Lower
        } else {
            Class::Other
        }
    };
    if word.len() >= 8 && word.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Vec::new();
    }
    // The cuts, with the word's start once there is one (most words have none: nothing
    // is allocated for them).
    let mut cuts = Vec::new();
    let mut chars = word.char_indices().peekable();
    let mut before: Option<Class> = None;
    while let Some((at, c)) = chars.next() {
        let b = class(c);
        if let Some(a) = before {
            let next = chars.peek().map(|&(_, c)| class(c));
            let cut = match (a, b) {
                (Class::Digit, x) | (x, Class::Digit) if x != Class::Digit => true,
                (Class::Lower, Class::Upper) => true,
                (Class::Upper, Class::Upper) => next == Some(Class::Lower),
                _ => false,
            };
            if cut {
                if cuts.is_empty() {
                    cuts.push(0);
                }
                cuts.push(at);
            }
        }
        before = Some(b);
    }
    if cuts.len() < 2 || cuts.len() > MAX_PARTS {
        return Vec::new();
    }
    cuts.push(word.len());
    // Each part once (`TripTripTrip` is no more about trips than `Trip`).
    let mut seen = HashSet::new();
    cuts.windows(2)
        .map(|w| (w[0], w[1]))
        .filter(|&(a, b)| word[a..b].chars().nth(1).is_some() && seen.insert(word[a..b].to_lowercase()))
        .collect()
}

/// A token filter that follows each token by its `parts`, at its position.
#[derive(Clone, Copy)]
struct WithParts;

impl TokenFilter for WithParts {
    type Tokenizer<T: Tokenizer> = WithPartsTokenizer<T>;

    fn transform<T: Tokenizer>(self, inner: T) -> WithPartsTokenizer<T> {
        WithPartsTokenizer { inner }
    }
}

#[derive(Clone)]
struct WithPartsTokenizer<T> {
    inner: T,
}

impl<T: Tokenizer> Tokenizer for WithPartsTokenizer<T> {
    type TokenStream<'a> = WithPartsStream<T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        WithPartsStream {
            tail: self.inner.token_stream(text),
            queued: Vec::new(),
            part: Token::default(),
        }
    }
}

struct WithPartsStream<S> {
    tail: S,
    /// Parts of the last whole token still to give, last first.
    queued: Vec<Token>,
    part: Token,
}

impl<S: TokenStream> TokenStream for WithPartsStream<S> {
    fn advance(&mut self) -> bool {
        if let Some(t) = self.queued.pop() {
            self.part = t;
            return true;
        }
        if !self.tail.advance() {
            return false;
        }
        let whole = self.tail.token();
        self.queued = parts(&whole.text)
            .into_iter()
            .rev()
            .map(|(a, b)| Token {
                offset_from: whole.offset_from + a,
                offset_to: whole.offset_from + b,
                position: whole.position,
                text: whole.text[a..b].to_string(),
                position_length: 1,
            })
            .collect();
        // The whole token first: `token` shows it until a part is taken.
        self.part.text.clear();
        self.part.position = usize::MAX;
        true
    }

    fn token(&self) -> &Token {
        if self.part.position == usize::MAX {
            self.tail.token()
        } else {
            &self.part
        }
    }

    fn token_mut(&mut self) -> &mut Token {
        if self.part.position == usize::MAX {
            self.tail.token_mut()
        } else {
            &mut self.part
        }
    }
}

/// A token cut to at most `MAX_TOKEN_LEN` bytes, at a character boundary.
fn truncate_token(text: &mut String) {
    if text.len() > MAX_TOKEN_LEN {
        let mut end = MAX_TOKEN_LEN;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// A word as the text fields hold it: `fold_case`, then without the accents of Latin,
/// Greek and Cyrillic letters (`οδός` is `οδοσ`, `é` is `e`; the marks of other scripts,
/// as Japanese voicing marks, stay). `AsciiFoldingFilter` then folds what has no
/// decomposition (`ø`, `ß`, `æ`).
fn fold_token(text: &mut String) {
    if text.is_ascii() {
        text.make_ascii_lowercase(); // (most words: in place, with no new string)
        return;
    }
    let folded = fold_case(text);
    if folded.is_ascii() {
        *text = folded;
        return;
    }
    *text = folded
        .nfd()
        .filter(|c| !('\u{300}'..='\u{36f}').contains(c))
        .nfc()
        .collect();
}

/// Letter case as the search compares it, in words and in filters alike: each letter in
/// lower case on its own, so that a final sigma is a sigma (`ΣΑΣ`, `σας` and `σασ` are one
/// word), and the dot that Turkish `İ` keeps in lower case dropped (`İzmir` is `izmir`).
fn fold_case(s: &str) -> String {
    if s.is_ascii() {
        // The same, with no pass char by char (700,000 documents indexed in 18 CPU-s, not 22).
        return s.to_ascii_lowercase();
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars().flat_map(char::to_lowercase) {
        match c {
            '\u{307}' if out.ends_with('i') => {}
            'ς' => out.push('σ'),
            c => out.push(c),
        }
    }
    out
}

/// A token filter that rewrites the text of each token with `.0`.
#[derive(Clone, Copy)]
struct EachToken(fn(&mut String));

impl TokenFilter for EachToken {
    type Tokenizer<T: Tokenizer> = EachTokenTokenizer<T>;

    fn transform<T: Tokenizer>(self, inner: T) -> EachTokenTokenizer<T> {
        EachTokenTokenizer { edit: self.0, inner }
    }
}

#[derive(Clone)]
struct EachTokenTokenizer<T> {
    edit: fn(&mut String),
    inner: T,
}

impl<T: Tokenizer> Tokenizer for EachTokenTokenizer<T> {
    type TokenStream<'a> = EachTokenStream<T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        EachTokenStream {
            edit: self.edit,
            tail: self.inner.token_stream(text),
        }
    }
}

struct EachTokenStream<S> {
    edit: fn(&mut String),
    tail: S,
}

impl<S: TokenStream> TokenStream for EachTokenStream<S> {
    fn advance(&mut self) -> bool {
        if !self.tail.advance() {
            return false;
        }
        (self.edit)(&mut self.tail.token_mut().text);
        true
    }

    fn token(&self) -> &Token {
        self.tail.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.tail.token_mut()
    }
}

#[derive(Clone, Copy)]
struct Fields {
    media_id: Field,
    name: Field,
    path: Field,
    tags: Field,
    tag_paths: Field,
    collections: Field,
    collection_keys: Field,
    meta: Field,
    kind: Field,
    ext: Field,
    year: Field,
    name_key: Field,
    tiebreak: Field,
}

impl Fields {
    /// The text fields a free word is looked up in, with their boosts.
    fn text(&self) -> [(Field, f32); 5] {
        [
            (self.name, BOOST_NAME),
            (self.tags, BOOST_TAGS),
            (self.meta, BOOST_META),
            (self.collections, BOOST_COLLECTIONS),
            (self.path, BOOST_PATH),
        ]
    }
}

fn schema() -> (Schema, Fields) {
    // Positions are left out: the query language has no phrases, and they would double
    // the postings.
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let mut b = Schema::builder();
    let fields = Fields {
        media_id: b.add_text_field("media_id", STRING | STORED),
        name: b.add_text_field("name", text.clone()),
        path: b.add_text_field("path", text.clone()),
        tags: b.add_text_field("tags", text.clone()),
        tag_paths: b.add_text_field("tag_paths", STRING),
        collections: b.add_text_field("collections", text.clone()),
        collection_keys: b.add_text_field("collection_keys", STRING),
        meta: b.add_text_field("meta", text),
        kind: b.add_text_field("kind", STRING),
        ext: b.add_text_field("ext", STRING),
        year: b.add_i64_field("year", INDEXED | FAST),
        name_key: b.add_text_field("name_key", STRING),
        tiebreak: b.add_u64_field(TIEBREAK, FAST),
    };
    (b.build(), fields)
}

/// The I/O error behind a tantivy error, where one is, as its kind and a readable text
/// (tantivy's own text of some shows a debug dump of nested structs).
fn io_cause(e: &TantivyError) -> Option<(std::io::ErrorKind, String)> {
    let io: &std::io::Error = match e {
        TantivyError::IoError(io) => io,
        TantivyError::OpenReadError(OpenReadError::IoError { io_error, .. })
        | TantivyError::OpenWriteError(OpenWriteError::IoError { io_error, .. })
        | TantivyError::OpenDirectoryError(OpenDirectoryError::IoError { io_error, .. }) => io_error,
        // Taking the lock file failed for a reason of the file system (read-only, full).
        TantivyError::LockFailure(LockError::IoError(io), _) => io,
        // Some write paths pass an OS error on only as text ("... (os error 28)").
        TantivyError::InternalError(text) => {
            let code = text
                .split("os error ")
                .nth(1)?
                .split(|c: char| !c.is_ascii_digit())
                .next()?;
            let os = std::io::Error::from_raw_os_error(code.parse().ok()?);
            return Some((os.kind(), os.to_string()));
        }
        _ => return None,
    };
    if io.raw_os_error().is_none() && !matches!(io.kind(), std::io::ErrorKind::StorageFull) {
        // Not the system's error but tantivy's own, of bytes that do not read as what they
        // should be (`Unsupported dictionary type`): told apart as `InvalidData`.
        let text = Some(io.to_string())
            .filter(|t| !t.contains('{'))
            .unwrap_or_else(|| io.kind().to_string());
        return Some((std::io::ErrorKind::InvalidData, text));
    }
    let text = match (io.raw_os_error(), io.kind()) {
        (Some(code), _) => std::io::Error::from_raw_os_error(code).to_string(),
        (None, std::io::ErrorKind::StorageFull) => "No space left on device".to_string(),
        // Its own text, unless that is a dump of nested structs: then what kind it is.
        (None, kind) => Some(io.to_string())
            .filter(|t| !t.contains('{'))
            .unwrap_or_else(|| kind.to_string()),
    };
    Some((io.kind(), text))
}

fn busy(dir: &Path) -> Error {
    Error::Busy(format!(
        "search index {} is being written by another process (a scan or tag running now)",
        dir.display()
    ))
}

fn damaged(dir: &Path) -> Error {
    Error::InvalidInput(format!(
        "search index {} is damaged or from another version; run `mediaforge search --reindex`",
        dir.display()
    ))
}

/// Panics met inside `guarded` work, which are the index's damage, not the program's: the
/// panic hook stays quiet for them (tantivy's own threads run part of a search).
static GUARDED: AtomicUsize = AtomicUsize::new(0);
static QUIET_HOOK: std::sync::Once = std::sync::Once::new();

/// Runs work on the index in `dir`: a panic inside it (tantivy meeting files damaged in a
/// way its checks miss, and asserting) is the error of a damaged index, which the caller
/// rebuilds, not a crash with a backtrace.
pub fn guarded<T>(dir: &Path, work: impl FnOnce() -> Result<T>) -> Result<T> {
    QUIET_HOOK.call_once(|| {
        let before = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.load(Ordering::SeqCst) == 0 {
                before(info);
            }
        }));
    });
    GUARDED.fetch_add(1, Ordering::SeqCst);
    let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
    GUARDED.fetch_sub(1, Ordering::SeqCst);
    got.unwrap_or_else(|_| Err(damaged(dir)))
}

/// Map a tantivy error met while reading or writing an index that opened fine.
fn index_err(dir: &Path, e: TantivyError) -> Error {
    if let Some((kind, text)) = io_cause(&e) {
        // Bytes that do not read as what they should be (`Unsupported dictionary type`), or a
        // file of it gone: its files are damaged, not the disk.
        use std::io::ErrorKind::{InvalidData, NotFound, UnexpectedEof};
        if matches!(kind, InvalidData | UnexpectedEof | NotFound) {
            return damaged(dir);
        }
        return Error::from_io(dir, std::io::Error::new(kind, text));
    }
    match e {
        TantivyError::LockFailure(..) => busy(dir),
        TantivyError::DataCorruption(_) | TantivyError::IncompatibleIndex(_) => damaged(dir),
        // The writer's threads died on an I/O error they do not pass on: a full disk, most
        // likely. An I/O error of the folder, not bad input.
        // (Its own text, "An index writer was killed.. A worker thread encountered an
        // error (io::Error most likely) or panicked.", says nothing more to a user.)
        TantivyError::ErrorInThread(_) => Error::from_io(
            dir,
            std::io::Error::other("the index writer stopped on an error writing its files; is the disk full?"),
        ),
        // Anything else (`Deserialize error`, a schema that does not hold): its files are not
        // what this version writes, and a rebuild is the fix, as for a failed open.
        _ => damaged(dir),
    }
}

/// A full-text index in a folder of its own. Searches read a snapshot taken after the last
/// commit of this handle; writes take the folder's writer lock only while they run.
pub struct SearchIndex {
    dir: PathBuf,
    index: Index,
    reader: IndexReader,
    searcher: Searcher,
    fields: Fields,
    analyzer: TextAnalyzer,
    /// The writer of an update staged part by part (`stage`), not committed yet.
    staged: Option<IndexWriter>,
    /// Set by the caller to stop a wait for the writer lock (Ctrl-C).
    cancel: Arc<AtomicBool>,
}

impl SearchIndex {
    /// Open the index in `dir`, creating it (and the folder) when missing. A damaged index
    /// or one with another schema is an `Error::InvalidInput` that says to reindex.
    pub fn open_or_create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::from_io(dir, e))?;
        let (schema, fields) = schema();
        let directory = MmapDirectory::open(dir).map_err(|e| match e {
            OpenDirectoryError::IoError { io_error, .. } => {
                Error::from_io(dir, std::io::Error::new(io_error.kind(), io_error.to_string()))
            }
            e => Error::InvalidInput(format!("search index {}: {e}", dir.display())),
        })?;
        let exists = Index::exists(&directory).map_err(|e| index_err(dir, e.into()))?;
        // Anything that goes wrong opening an existing index, short of a permission or a
        // read-only file system, means its files are not what this version writes: the fix
        // is the same either way.
        let opened = |e: TantivyError| match io_cause(&e).map(|(kind, _)| kind) {
            Some(
                std::io::ErrorKind::PermissionDenied
                | std::io::ErrorKind::ReadOnlyFilesystem
                | std::io::ErrorKind::StorageFull,
            ) => index_err(dir, e),
            _ => damaged(dir),
        };
        let mut index = if exists {
            let index = Index::open(directory).map_err(opened)?;
            if index.schema() != schema {
                return Err(damaged(dir));
            }
            index
        } else {
            Index::create(directory, schema, Default::default()).map_err(|e| index_err(dir, e))?
        };
        index.tokenizers().register(TOKENIZER, mf_analyzer());
        // A query runs over the segments in parallel: a word in every path (the user's
        // name, "Pictures") matches all docs, and two cores halve that worst case.
        let threads = threads();
        if threads > 1 {
            index.set_multithread_executor(threads).map_err(|e| index_err(dir, e))?;
        }
        let reader: IndexReader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(opened)?;
        let searcher = reader.searcher();
        Ok(SearchIndex {
            dir: dir.to_path_buf(),
            index,
            reader,
            searcher,
            fields,
            analyzer: query_analyzer(),
            staged: None,
            cancel: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The folder the index lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Documents in the index, as of this handle's last commit.
    pub fn num_docs(&self) -> u64 {
        self.searcher.num_docs()
    }

    fn err(&self, e: TantivyError) -> Error {
        index_err(&self.dir, e)
    }

    /// The flag that stops a wait for the writer lock (`writer`): the caller sets it on
    /// Ctrl-C, and it is cleared as each write starts.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// A writer, once the folder's writer lock is free: another process's write (a tag's
    /// commit) is waited for, up to `LOCK_WAIT`; past that it is a `Busy` error. A wait
    /// cancelled (`cancel_flag`: Ctrl-C) ends at once as `Cancelled`.
    fn writer(&self) -> Result<IndexWriter> {
        let threads = threads();
        let options = IndexWriterOptions::builder()
            .num_worker_threads(threads)
            .num_merge_threads(threads)
            .memory_budget_per_thread(WRITER_MEMORY / threads)
            .build();
        let started = Instant::now();
        loop {
            match self.index.writer_with_options(options.clone()) {
                Err(TantivyError::LockFailure(LockError::LockBusy, _))
                    if started.elapsed() < LOCK_WAIT && !self.cancel.load(Ordering::Relaxed) =>
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(TantivyError::LockFailure(LockError::LockBusy, _)) if self.cancel.load(Ordering::Relaxed) => {
                    return Err(Error::Cancelled)
                }
                got => return got.map_err(|e| self.err(e)),
            }
        }
    }

    /// Commit, let the merges it started finish (fewer segments, faster searches), and move
    /// this handle's searcher to the new state.
    fn commit(&mut self, mut writer: IndexWriter) -> Result<()> {
        writer.commit().map_err(|e| self.err(e))?;
        writer.wait_merging_threads().map_err(|e| self.err(e))?;
        self.reader.reload().map_err(|e| self.err(e))?;
        self.searcher = self.reader.searcher();
        Ok(())
    }

    /// Delete every doc whose media_id is in `deletes` or in `docs`, then add `docs`, in one
    /// commit: a reader sees all of it or none. When `docs` holds a media_id twice, the last
    /// one wins. Returns the number of docs added.
    pub fn upsert(&mut self, docs: &[Doc], deletes: &[String]) -> Result<usize> {
        if docs.is_empty() && deletes.is_empty() {
            return Ok(0);
        }
        let added = self.stage(docs, deletes)?;
        self.commit_staged()?;
        Ok(added)
    }

    /// One part of an update that `commit_staged` commits whole (so a million documents
    /// need not be held at once): as `upsert`, with the parts staged before this one
    /// counting as earlier (a media_id staged again replaces its earlier document).
    pub fn stage(&mut self, docs: &[Doc], deletes: &[String]) -> Result<usize> {
        let staged = self.stage_part(docs, deletes);
        if staged.is_err() {
            self.discard_staged(); // a part half staged is never committed
        }
        staged
    }

    fn stage_part(&mut self, docs: &[Doc], deletes: &[String]) -> Result<usize> {
        if self.staged.is_none() {
            self.staged = Some(self.writer()?);
        }
        let writer = self.staged.as_ref().expect("a writer was just staged");
        let mut seen = HashSet::with_capacity(docs.len());
        let mut kept: Vec<&Doc> = docs.iter().rev().filter(|d| seen.insert(d.media_id.as_str())).collect();
        kept.reverse();
        // One delete of the whole set of ids, made before the adds (so it takes none of
        // them, but does take the documents of earlier parts): tantivy replays each delete
        // operation against every segment, and one per id made a million-document update
        // slow and gigabytes big. The set is matched against each segment's terms at once.
        let mut ids = seen;
        ids.extend(deletes.iter().map(String::as_str));
        if !ids.is_empty() {
            let terms = ids
                .into_iter()
                .map(|id| Term::from_field_text(self.fields.media_id, id));
            writer
                .delete_query(Box::new(TermSetQuery::new(terms)))
                .map_err(|e| self.err(e))?;
        }
        for d in &kept {
            writer.add_document(self.to_tantivy(d)).map_err(|e| self.err(e))?;
        }
        Ok(kept.len())
    }

    /// Commit what `stage` staged (nothing staged: nothing to do).
    pub fn commit_staged(&mut self) -> Result<()> {
        match self.staged.take() {
            Some(writer) => self.commit(writer),
            None => Ok(()),
        }
    }

    /// Drop what `stage` staged: the index stays as it was committed.
    pub fn discard_staged(&mut self) {
        self.staged = None;
    }

    /// Remove every document, in one commit.
    pub fn clear(&mut self) -> Result<()> {
        let writer = self.writer()?;
        writer.delete_all_documents().map_err(|e| self.err(e))?;
        self.commit(writer)
    }

    fn to_tantivy(&self, d: &Doc) -> TantivyDocument {
        let f = &self.fields;
        let mut t = TantivyDocument::new();
        t.add_text(f.media_id, &d.media_id);
        let name = nfc(&d.name);
        t.add_text(f.name, &name);
        t.add_text(f.path, folders(&nfc(&d.path), &name));
        let mut prefixes = HashSet::new();
        for tag in &d.tags {
            let tag = nfc(tag);
            t.add_text(f.tags, &tag);
            prefixes.extend(tag_prefixes(&tag));
        }
        for p in prefixes {
            t.add_text(f.tag_paths, p);
        }
        for c in &d.collections {
            let c = nfc(c);
            t.add_text(f.collections, &c);
            t.add_text(f.collection_keys, fold_case(c.trim()));
        }
        t.add_text(f.meta, nfc(&d.meta));
        let kind = fold_case(d.kind.trim());
        if !kind.is_empty() {
            t.add_text(f.kind, kind);
        }
        let ext = ext_key(&nfc(&d.ext));
        if !ext.is_empty() {
            t.add_text(f.ext, ext);
        }
        if let Some(y) = d.year {
            t.add_i64(f.year, y.into());
        }
        t.add_u64(f.tiebreak, tiebreak(&d.media_id));
        let name = fold_case(name.trim());
        if !name.is_empty() {
            if let Some((stem, _)) = name.rsplit_once('.').filter(|(s, _)| !s.is_empty()) {
                t.add_text(f.name_key, stem);
            }
            t.add_text(f.name_key, name);
        }
        t
    }

    /// Ranked media_ids with their scores, best first. `restrict` keeps only these media_ids.
    /// The best `limit` documents: (media_id, score, year), best first. The year comes
    /// from the index's fast column, so callers need not look it up in the catalog.
    pub fn search(&self, query: &str, limit: usize, restrict: Option<&[String]>) -> Result<Vec<Hit>> {
        let parsed = parse(&nfc(query))?;
        let tokens = self.tokens(&parsed.words);
        // Each alternative's tokens together, as one word's: `new_york OR paris`.
        let either: Vec<Vec<Vec<String>>> = parsed
            .either
            .iter()
            .map(|group| {
                group
                    .iter()
                    .map(|w| self.tokens(std::slice::from_ref(w)))
                    .filter(|t| !t.is_empty())
                    .collect::<Vec<_>>()
            })
            .filter(|g| !g.is_empty())
            .collect();
        // Each excluded word's tokens together: `-IMG_1234` leaves out the files holding
        // both `img` and `1234`, not every file holding either.
        let excluded: Vec<Vec<String>> = parsed
            .not
            .words
            .iter()
            .map(|w| self.tokens(std::slice::from_ref(w)))
            .filter(|t| !t.is_empty())
            .collect();
        // Each different word is looked up once for each place it stands in the query.
        let mut different: HashSet<&str> = tokens.iter().map(String::as_str).collect();
        different.extend(either.iter().flatten().flatten().map(String::as_str));
        different.extend(excluded.iter().flatten().map(String::as_str));
        let words = different.len();
        if words > MAX_WORDS {
            return Err(Error::InvalidInput(format!(
                "the search has {words} different words; it takes at most {MAX_WORDS} (a pasted page of text \
                 would find nothing, slowly)"
            )));
        }
        // A long list of ids filters the matches by their `tiebreak` hash instead of
        // joining the query as a term set (see `RESTRICT_TERMS`).
        let long = restrict.filter(|ids| ids.len() > RESTRICT_TERMS);
        let Some(q) = self.build(
            &parsed,
            &tokens,
            &either,
            &excluded,
            if long.is_some() { None } else { restrict },
        ) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let Some(ids) = long else {
            return self.ranked(&q, limit, None);
        };
        #[allow(unused_mut)]
        let mut keys: HashSet<u64> = ids.iter().map(|id| tiebreak(id)).collect();
        #[cfg(test)]
        COLLIDING.with(|c| keys.extend(c.borrow().iter().map(|id| tiebreak(id))));
        let hits = self.ranked(&q, limit, Some(Arc::new(keys)))?;
        let exact: HashSet<&str> = ids.iter().map(String::as_str).collect();
        if hits.iter().all(|h| exact.contains(h.media_id.as_str())) {
            // The best of a set that holds every id asked for, all of them asked for: the
            // best of those ids.
            return Ok(hits);
        }
        // A file not asked for shares a hash with one that was (about one chance in
        // 2^64 / ids): the slow, exact way.
        let q = self
            .build(&parsed, &tokens, &either, &excluded, restrict)
            .expect("the same query, restricted");
        self.ranked(&q, limit, None)
    }

    /// The best `limit` documents `q` matches (of those whose `tiebreak` is in `keys`,
    /// when given), as hits.
    fn ranked(&self, q: &dyn Query, limit: usize, keys: Option<Arc<HashSet<u64>>>) -> Result<Vec<Hit>> {
        // Equal scores in the order of `tiebreak`, the same from one search (and one
        // rebuilt index) to the next: a cut at `limit` keeps the same files.
        let ranked = TopDocs::with_limit(limit).tweak_score(|segment: &SegmentReader| {
            let order = segment
                .fast_fields()
                .u64(TIEBREAK)
                .ok()
                .map(|c| c.first_or_default_col(0));
            move |doc: DocId, score: Score| (score, order.as_ref().map_or(0, |c| c.get_val(doc)))
        });
        let top = match keys {
            None => self.searcher.search(q, &ranked),
            Some(keys) => {
                let only = FilterCollector::new(TIEBREAK.to_string(), move |v: u64| keys.contains(&v), ranked);
                self.searcher.search(q, &only)
            }
        }
        .map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(top.len());
        for ((score, _), addr) in top {
            let doc: TantivyDocument = self.searcher.doc(addr).map_err(|e| self.err(e))?;
            let id = doc
                .get_first(self.fields.media_id)
                .and_then(|v| v.as_str())
                .ok_or_else(|| damaged(&self.dir))?;
            let years = self
                .searcher
                .segment_reader(addr.segment_ord)
                .fast_fields()
                .i64("year")
                .map_err(|e| self.err(e))?;
            let year = years.first(addr.doc_id).and_then(|y| i32::try_from(y).ok());
            out.push(Hit {
                media_id: id.to_string(),
                score,
                year,
            });
        }
        Ok(out)
    }

    /// The free words' tokens as the text fields hold them.
    fn tokens(&self, words: &[String]) -> Vec<String> {
        let mut analyzer = self.analyzer.clone();
        let mut out: Vec<String> = Vec::new();
        for w in words {
            let mut stream = analyzer.token_stream(w);
            while let Some(tok) = stream.next() {
                if !out.contains(&tok.text) {
                    out.push(tok.text.clone());
                }
            }
        }
        out
    }

    /// One free token: BM25 over the text fields, then a prefix match and a typo-tolerant
    /// match that score flat and low, so exact words outrank guesses.
    fn token_query(&self, token: &str) -> Box<dyn Query> {
        let mut should: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let chars = token.chars().count();
        // A number is not misspelt: 2019 within one edit of 2018 would match every year.
        let typo = match chars {
            _ if token.bytes().any(|b| b.is_ascii_digit()) => 0,
            0..=3 => 0,
            4..=7 => 1,
            _ => 2,
        };
        for (field, boost) in self.fields.text() {
            let term = Term::from_field_text(field, token);
            should.push((
                Occur::Should,
                Box::new(BoostQuery::new(
                    Box::new(TermQuery::new(term.clone(), IndexRecordOption::WithFreqs)),
                    boost,
                )),
            ));
            if chars >= 2 {
                should.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(
                        Box::new(FuzzyTermQuery::new_prefix(term.clone(), 0, true)),
                        BOOST_PREFIX,
                    )),
                ));
            }
            if typo > 0 {
                should.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(
                        Box::new(FuzzyTermQuery::new(term, typo, true)),
                        BOOST_TYPO,
                    )),
                ));
            }
        }
        Box::new(BooleanQuery::new(should))
    }

    fn build(
        &self,
        p: &Parsed,
        tokens: &[String],
        either: &[Vec<Vec<String>>],
        excluded: &[Vec<String>],
        restrict: Option<&[String]>,
    ) -> Option<Box<dyn Query>> {
        let f = &self.fields;
        let free = !(tokens.is_empty() && either.is_empty());
        let only_excluding = !free && !p.has_filters();
        if only_excluding && excluded.is_empty() && !p.not.has_filters() {
            // Only punctuation: nothing can match.
            return None;
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for t in tokens {
            clauses.push((Occur::Must, self.token_query(t)));
        }
        for group in either {
            let alternatives = group
                .iter()
                .map(|alt| {
                    let q: Box<dyn Query> = match alt.as_slice() {
                        [t] => self.token_query(t),
                        all => Box::new(BooleanQuery::new(
                            all.iter().map(|t| (Occur::Must, self.token_query(t))).collect(),
                        )),
                    };
                    (Occur::Should, q)
                })
                .collect();
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(alternatives))));
        }
        // The whole query a file's exact name: the words, or with one `OR` group alone,
        // any of its alternatives.
        let names = match (tokens.is_empty(), &p.either[..]) {
            (false, []) => vec![p.words.join(" ")],
            (true, [group]) => group.clone(),
            _ => Vec::new(),
        };
        for name in names {
            let exact = TermQuery::new(
                Term::from_field_text(f.name_key, &fold_case(&name)),
                IndexRecordOption::Basic,
            );
            clauses.push((
                Occur::Should,
                Box::new(BoostQuery::new(Box::new(exact), BOOST_EXACT_NAME)),
            ));
        }
        let terms = |field: Field, values: &[String]| -> Vec<Box<dyn Query>> {
            values
                .iter()
                .map(|v| {
                    Box::new(TermQuery::new(
                        Term::from_field_text(field, v),
                        IndexRecordOption::Basic,
                    )) as _
                })
                .collect()
        };
        let years = |ranges: &[(Option<i32>, Option<i32>)]| -> Vec<Box<dyn Query>> {
            ranges
                .iter()
                .map(|&(lo, hi)| {
                    let bound = |y: Option<i32>| {
                        y.map_or(Bound::Unbounded, |y| {
                            Bound::Included(Term::from_field_i64(f.year, y.into()))
                        })
                    };
                    Box::new(RangeQuery::new(bound(lo), bound(hi))) as Box<dyn Query>
                })
                .collect()
        };
        // A file that holds any word or filter value excluded is left out: each word as a
        // whole word (no prefix, no typo) in any text field.
        let mut out: Vec<Box<dyn Query>> = Vec::new();
        let anywhere = |t: &String| -> Box<dyn Query> {
            Box::new(BooleanQuery::new(
                f.text()
                    .into_iter()
                    .map(|(field, _)| {
                        (
                            Occur::Should,
                            Box::new(TermQuery::new(
                                Term::from_field_text(field, t),
                                IndexRecordOption::Basic,
                            )) as Box<dyn Query>,
                        )
                    })
                    .collect(),
            ))
        };
        for word in excluded {
            out.push(match word.as_slice() {
                [t] => anywhere(t),
                all => Box::new(BooleanQuery::new(
                    all.iter().map(|t| (Occur::Must, anywhere(t))).collect(),
                )),
            });
        }
        out.extend(terms(f.kind, &p.not.kinds));
        out.extend(terms(f.ext, &p.not.exts));
        out.extend(years(&p.not.years));
        out.extend(terms(f.tag_paths, &p.not.tags));
        for q in out {
            clauses.push((Occur::MustNot, q));
        }
        if only_excluding {
            // Every file but those excluded.
            clauses.push((Occur::Must, Box::new(AllQuery)));
        }
        let filters = [
            terms(f.kind, &p.kinds),
            terms(f.ext, &p.exts),
            years(&p.years),
            terms(f.tag_paths, &p.tags),
            terms(f.collection_keys, &p.collections),
        ];
        for mut any in filters.into_iter().filter(|g| !g.is_empty()) {
            let q = if any.len() == 1 {
                any.pop().unwrap()
            } else {
                Box::new(BooleanQuery::new(any.into_iter().map(|q| (Occur::Should, q)).collect()))
            };
            // Filters decide what matches, never the order.
            clauses.push((Occur::Must, Box::new(ConstScoreQuery::new(q, 0.0))));
        }
        if let Some(ids) = restrict {
            let set = TermSetQuery::new(ids.iter().map(|id| Term::from_field_text(f.media_id, id)));
            clauses.push((Occur::Must, Box::new(ConstScoreQuery::new(Box::new(set), 0.0))));
        }
        let q = Box::new(BooleanQuery::new(clauses));
        Some(if !free {
            Box::new(ConstScoreQuery::new(q, 1.0))
        } else {
            q
        })
    }
}

/// The folder part of `path`: the last component goes when it is the file's own name.
fn folders<'a>(path: &'a str, name: &str) -> &'a str {
    let p = path.trim_end_matches(['/', '\\']);
    match p.strip_suffix(name) {
        Some(rest) if !name.is_empty() && (rest.is_empty() || rest.ends_with(['/', '\\'])) => rest,
        _ => p,
    }
}

/// `Places/France/Paris` gives `places`, `places/france`, `places/france/paris`.
/// A tag as indexed, whole (the last of `tag_prefixes`, made without the others: a query's
/// `tag:` value may be of any length).
/// A tag's level as `tag:` compares it: folded as the words are, case and accents
/// (`tag:cafe` finds `Café`, `tag:ostersund` finds `Östersund`).
fn fold_key(part: &str) -> String {
    thread_local! {
        static KEY: std::cell::RefCell<TextAnalyzer> = std::cell::RefCell::new(
            TextAnalyzer::builder(RawTokenizer::default())
                .filter(EachToken(fold_token))
                .filter(AsciiFoldingFilter)
                .build(),
        );
    }
    let folded = KEY.with(|k| {
        let mut k = k.borrow_mut();
        let mut stream = k.token_stream(part);
        stream.next().map(|t| t.text.clone()).unwrap_or_default()
    });
    // A level is never folded into two (`AC⁄DC`, whose fraction slash ASCII folding makes
    // a `/`) nor into none (a level of combining marks alone): such a one keeps its case
    // folding alone.
    if folded.is_empty() || folded.contains('/') {
        fold_case(part)
    } else {
        folded
    }
}

fn tag_key(tag: &str) -> String {
    let parts: Vec<String> = tag
        .split('/')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(fold_key)
        .collect();
    parts.join("/")
}

fn tag_prefixes(tag: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut acc = String::new();
    for part in tag.split('/').map(str::trim).filter(|p| !p.is_empty()) {
        if !acc.is_empty() {
            acc.push('/');
        }
        acc.push_str(&fold_key(part));
        out.push(acc.clone());
    }
    out
}

fn ext_key(ext: &str) -> String {
    fold_case(ext.trim().trim_start_matches('.'))
}

/// A query split into its free words and its filters (values normalised as indexed), and
/// those the query excludes (`-word`, `-kind:video`).
#[derive(Debug, Default, PartialEq)]
struct Parsed {
    words: Vec<String>,
    /// Words joined by `OR`: each group is one word that must match, any of its own.
    either: Vec<Vec<String>>,
    kinds: Vec<String>,
    exts: Vec<String>,
    /// Inclusive bounds; `None` is open.
    years: Vec<(Option<i32>, Option<i32>)>,
    tags: Vec<String>,
    collections: Vec<String>,
    not: Box<Excluded>,
}

/// What a query's `-` words exclude: a file holding any of them is left out.
#[derive(Debug, Default, PartialEq)]
struct Excluded {
    words: Vec<String>,
    kinds: Vec<String>,
    exts: Vec<String>,
    years: Vec<(Option<i32>, Option<i32>)>,
    tags: Vec<String>,
}

impl Excluded {
    /// Whether any filter value is excluded (`-kind:video`), words aside.
    fn has_filters(&self) -> bool {
        !(self.kinds.is_empty() && self.exts.is_empty() && self.years.is_empty() && self.tags.is_empty())
    }
}

impl Parsed {
    fn has_filters(&self) -> bool {
        !(self.kinds.is_empty()
            && self.exts.is_empty()
            && self.years.is_empty()
            && self.tags.is_empty()
            && self.collections.is_empty())
    }
}

/// One word of a search query, as typed and as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryWord {
    /// The word as typed, quotes and escapes kept (`collection:"Say \"hi\""`): joined
    /// with spaces, such words are a query that reads the same.
    pub raw: String,
    /// The filter's key, lowercased, when the word is `key:value`: a colon outside quotes
    /// follows a key of ASCII letters alone.
    pub key: Option<String>,
    /// The filter's value, or the plain word, quotes out, escapes resolved, trimmed.
    pub value: String,
    /// The word excludes what it names: typed with a `-` before it, outside quotes
    /// (`-draft`, `-kind:video`; `"-draft"` is the word itself).
    pub negated: bool,
}

/// Split on whitespace outside double quotes; quotes go, and `\"` and `\\` are a quote
/// and a backslash that belong to the word (`collection:"Say \"hi\""`). A word whose
/// first colon outside quotes follows a key of letters is a `key:value` filter. A word
/// that starts with `-` outside quotes, with more after it, excludes what the rest names.
/// A quote left open is an error: what it was to hold is unclear.
pub fn query_words(query: &str) -> Result<Vec<QueryWord>> {
    fn finish(raw: &str, word: &str, colon: Option<usize>) -> QueryWord {
        // `-` then more, outside quotes: the rest, excluded (a lone `-` is the word `-`).
        let negated = raw.starts_with('-') && word.len() > 1;
        let (word, colon) = if negated {
            (&word[1..], colon.map(|i| i - 1))
        } else {
            (word, colon)
        };
        let filter = colon
            .map(|i| (&word[..i], &word[i + 1..]))
            .filter(|(k, _)| !k.is_empty() && k.chars().all(char::is_alphabetic));
        let (key, value) = match filter {
            Some((k, v)) => (Some(k.to_lowercase()), v),
            None => (None, word),
        };
        QueryWord {
            raw: raw.to_string(),
            key,
            value: value.trim().to_string(),
            negated,
        }
    }
    let mut out = Vec::new();
    let mut word = String::new();
    let mut colon = None;
    let mut quoted = false;
    let mut start: Option<usize> = None;
    let mut chars = query.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            c if c.is_whitespace() && !quoted => {
                if let Some(s) = start.take() {
                    out.push(finish(&query[s..at], &word, colon.take()));
                    word.clear();
                }
                continue;
            }
            '\\' if matches!(chars.peek(), Some((_, '"' | '\\'))) => {
                word.extend(chars.next().map(|(_, c)| c));
            }
            '"' => quoted = !quoted,
            c => {
                if c == ':' && !quoted && colon.is_none() {
                    colon = Some(word.len());
                }
                word.push(c);
            }
        }
        start.get_or_insert(at);
    }
    if quoted {
        return Err(Error::InvalidInput(
            "a quote in the search is not closed: close it, or write \\\" for a quote in a word".into(),
        ));
    }
    if let Some(s) = start {
        out.push(finish(&query[s..], &word, colon));
    }
    for (i, w) in out.iter().enumerate() {
        if !w.is_or() {
            continue;
        }
        let sides = [i.checked_sub(1).map(|j| &out[j]), out.get(i + 1)];
        let bad = |why: &str| {
            Err(Error::InvalidInput(format!(
                "OR {why}: write `paris OR london` (a quoted \"OR\" is the word itself)"
            )))
        };
        for side in sides {
            match side {
                None => return bad("needs a word on each side"),
                Some(s) if s.is_or() => return bad("twice in a row"),
                Some(s) if s.negated => {
                    return bad("joins words to find, not a `-` word, which leaves its files out wherever it stands")
                }
                Some(s) if s.key.is_some() => {
                    return bad(
                        "joins words, not filters: several values of one filter are already alternatives \
                         (`kind:image kind:video`)",
                    )
                }
                Some(_) => {}
            }
        }
    }
    Ok(out)
}

impl QueryWord {
    /// The word `OR` typed in capitals, outside quotes: the words on its sides are
    /// alternatives.
    pub fn is_or(&self) -> bool {
        self.raw == "OR"
    }
}

/// Text in Unicode's composed form (NFC), as documents are indexed and queries read: a
/// name a Mac wrote decomposed (`cafe\u{301}`, Hangul as jamo) and one typed composed are
/// the same words.
fn nfc(s: &str) -> Cow<'_, str> {
    match is_nfc_quick(s.chars()) {
        IsNormalized::Yes => Cow::Borrowed(s),
        _ => Cow::Owned(s.nfc().collect()),
    }
}

fn parse_year(v: &str) -> Result<(Option<i32>, Option<i32>)> {
    let bad = || {
        Error::InvalidInput(format!(
            "bad year {v:?}: use year:2019 or year:2018..2020 (years 1 to 9999)"
        ))
    };
    let one = |s: &str| -> Result<Option<i32>> {
        if s.is_empty() {
            return Ok(None);
        }
        // A year of the calendar a date is written in: year:0 or year:-5 is a typo, which
        // would quietly find nothing.
        match s.parse::<i32>() {
            Ok(y) if (1..=9999).contains(&y) => Ok(Some(y)),
            _ => Err(bad()),
        }
    };
    let (lo, hi) = match v.split_once("..") {
        Some((a, b)) => (one(a)?, one(b)?),
        None => {
            let y = one(v)?;
            (y, y)
        }
    };
    match (lo, hi) {
        (None, None) => Err(bad()),
        (Some(a), Some(b)) if a > b => Err(bad()),
        _ => Ok((lo, hi)),
    }
}

fn parse(query: &str) -> Result<Parsed> {
    let words = query_words(query)?;
    if words.iter().all(|w| w.key.is_none() && w.value.is_empty()) {
        return Err(Error::InvalidInput("empty search query".into()));
    }
    let mut p = Parsed::default();
    // Free words, each a group of the alternatives `OR` joins (the lexer has checked that
    // an `OR` stands between two free words).
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut join = false;
    for w in words {
        if w.is_or() {
            join = true;
            continue;
        }
        let QueryWord {
            key, value, negated, ..
        } = w;
        let Some(key) = key else {
            match groups.last_mut() {
                _ if negated => p.not.words.extend((!value.is_empty()).then_some(value)),
                Some(last) if join => last.push(value),
                _ => groups.push(vec![value]),
            }
            join = false;
            continue;
        };
        let value = value.as_str();
        if !matches!(key.as_str(), "kind" | "ext" | "year" | "tag" | "collection") {
            return Err(Error::InvalidInput(format!(
                "unknown filter {key}: use kind, ext, year, tag or collection (a word with a colon in it goes in \
                 quotes: \"{key}:...\")"
            )));
        }
        if value.is_empty() {
            return Err(Error::InvalidInput(format!("filter {key}: needs a value")));
        }
        if negated {
            match key.as_str() {
                "kind" => p.not.kinds.push(fold_case(value)),
                "ext" => p.not.exts.push(ext_key(value)),
                "year" => p.not.years.push(parse_year(value)?),
                "tag" => p.not.tags.push(tag_key(value)),
                _ => {
                    return Err(Error::InvalidInput(
                        "-collection: is not taken: a search excludes words, kinds, extensions, years and tags \
                         (`mediaforge collection show` lists a collection's files)"
                            .into(),
                    ))
                }
            }
            continue;
        }
        match key.as_str() {
            "kind" => p.kinds.push(fold_case(value)),
            "ext" => p.exts.push(ext_key(value)),
            "year" => p.years.push(parse_year(value)?),
            "tag" => p.tags.push(tag_key(value)),
            _ => p.collections.push(fold_case(value)),
        }
    }
    for mut group in groups {
        group.retain(|w| !w.is_empty());
        match group.len() {
            0 => {}
            1 => p.words.extend(group),
            _ => p.either.push(group),
        }
    }
    Ok(p)
}

/// One of the string column types pyarrow or DuckDB may hand over, or an all-null column.
fn text_column<'a>(b: &'a RecordBatch, name: &str, required: bool) -> Result<Option<&'a dyn Array>> {
    let Some(col) = b.column_by_name(name) else {
        return if required {
            Err(Error::InvalidInput(format!("search docs lack column {name:?}")))
        } else {
            Ok(None)
        };
    };
    match col.data_type() {
        DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::Null => Ok(Some(col.as_ref())),
        t => Err(Error::InvalidInput(format!(
            "search docs column {name:?} must be utf8, not {t}"
        ))),
    }
}

/// The media ids of an Arrow table's `media_id` column (a search's restriction), nulls
/// left out.
pub fn ids_from_batches(batches: &[RecordBatch]) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    for b in batches {
        let col = text_column(b, "media_id", true)?;
        out.extend(
            (0..b.num_rows())
                .filter_map(|i| col.and_then(|c| bytes_at(c, i)))
                .map(|v| String::from_utf8_lossy(v).into_owned()),
        );
    }
    Ok(out)
}

fn text_at(col: Option<&dyn Array>, i: usize) -> String {
    col.and_then(|c| bytes_at(c, i))
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

/// The lines of a "\n"-joined list, blanks dropped.
fn lines_at(col: Option<&dyn Array>, i: usize) -> Vec<String> {
    let Some(b) = col.and_then(|c| bytes_at(c, i)) else {
        return Vec::new();
    };
    String::from_utf8_lossy(b)
        .split('\n')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn year_at(col: Option<&ArrayRef>, i: usize) -> Option<i32> {
    let c = col?;
    if c.is_null(i) {
        return None;
    }
    match c.data_type() {
        DataType::Int16 => Some(c.as_primitive::<Int16Type>().value(i).into()),
        DataType::Int32 => Some(c.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => i32::try_from(c.as_primitive::<Int64Type>().value(i)).ok(),
        _ => None,
    }
}

/// Docs from Arrow batches with utf8 columns media_id, name, path, tags and collections
/// ("\n"-joined, may be null), meta (may be null), kind, ext, and an integer column year
/// (may be null). Only media_id is required to be non-null; missing optional columns are empty.
pub fn docs_from_batches(batches: &[RecordBatch]) -> Result<Vec<Doc>> {
    let mut out = Vec::with_capacity(batches.iter().map(|b| b.num_rows()).sum());
    for b in batches {
        let id = text_column(b, "media_id", true)?;
        let name = text_column(b, "name", true)?;
        let path = text_column(b, "path", false)?;
        let tags = text_column(b, "tags", false)?;
        let collections = text_column(b, "collections", false)?;
        let meta = text_column(b, "meta", false)?;
        let kind = text_column(b, "kind", false)?;
        let ext = text_column(b, "ext", false)?;
        let year = b.column_by_name("year");
        if let Some(t) = year.map(|c| c.data_type()) {
            if !matches!(t, DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::Null) {
                return Err(Error::InvalidInput(format!(
                    "search docs column \"year\" must be int32 or int64, not {t}"
                )));
            }
        }
        for i in 0..b.num_rows() {
            let media_id = id
                .and_then(|c| bytes_at(c, i))
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .ok_or_else(|| Error::InvalidInput("search docs: null media_id".into()))?;
            out.push(Doc {
                media_id,
                name: text_at(name, i),
                path: text_at(path, i),
                tags: lines_at(tags, i),
                collections: lines_at(collections, i),
                meta: text_at(meta, i),
                kind: text_at(kind, i),
                ext: text_at(ext, i),
                year: year_at(year, i),
            });
        }
    }
    Ok(out)
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub media_id: String,
    pub score: f32,
    pub year: Option<i32>,
}

/// Search hits as an Arrow batch: media_id (utf8), score (float32), year (int32, null
/// when unknown), best first.
pub fn hits_batch(hits: &[Hit]) -> Result<RecordBatch> {
    let schema = Arc::new(ArrowSchema::new(vec![
        ArrowField::new("media_id", DataType::Utf8, false),
        ArrowField::new("score", DataType::Float32, false),
        ArrowField::new("year", DataType::Int32, true),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(hits.iter().map(|h| h.media_id.as_str()))),
        Arc::new(Float32Array::from_iter_values(hits.iter().map(|h| h.score))),
        Arc::new(Int32Array::from_iter(hits.iter().map(|h| h.year))),
    ];
    Ok(RecordBatch::try_new(schema, cols)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str, name: &str) -> Doc {
        Doc {
            media_id: id.into(),
            name: name.into(),
            path: format!("/home/me/library/{name}"),
            kind: "image".into(),
            ext: name.rsplit_once('.').map_or("", |(_, e)| e).into(),
            ..Doc::default()
        }
    }

    fn ids(index: &SearchIndex, q: &str) -> Vec<String> {
        index
            .search(q, 50, None)
            .unwrap()
            .into_iter()
            .map(|h| h.media_id)
            .collect()
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    /// A fresh index in a temporary folder holding `docs`.
    fn indexed(docs: &[Doc]) -> (tempfile::TempDir, SearchIndex) {
        let dir = tempfile::tempdir().unwrap();
        let mut index = SearchIndex::open_or_create(&dir.path().join("search")).unwrap();
        assert_eq!(index.upsert(docs, &[]).unwrap(), docs.len());
        (dir, index)
    }

    fn library() -> (tempfile::TempDir, SearchIndex) {
        let docs = vec![
            Doc {
                tags: vec!["Places/France/Paris".into(), "people/anna".into()],
                year: Some(2019),
                meta: "Canon EOS 5D Mark IV".into(),
                collections: vec!["Summer Trip".into()],
                ..doc("trip", "IMG_1234.JPG")
            },
            Doc {
                tags: vec!["places/france/lyon".into()],
                year: Some(2018),
                meta: "Apple iPhone 12".into(),
                ..doc("lyon", "IMG_2000.HEIC")
            },
            Doc {
                tags: vec!["places/spain".into(), "holiday".into()],
                year: Some(2020),
                kind: "video".into(),
                meta: "Sony a7 III".into(),
                ..doc("beach", "beach day.mp4")
            },
            Doc {
                meta: "Café de Flore".into(),
                year: None,
                kind: "audio".into(),
                collections: vec!["Favourites".into()],
                ..doc("cafe", "song.flac")
            },
        ];
        indexed(&docs)
    }

    #[test]
    fn exact_file_name_ranks_first() {
        let docs = vec![
            doc("notes", "paris trip notes.txt"),
            Doc {
                tags: vec!["places/paris".into()],
                ..doc("tagged", "IMG_0001.JPG")
            },
            // Says "paris" in more places than the file named so.
            Doc {
                tags: vec!["places/paris".into()],
                meta: "Paris".into(),
                collections: vec!["Paris".into()],
                ..doc("everywhere", "paris-2.jpg")
            },
            doc("exact", "paris.jpg"),
        ];
        let (_dir, index) = indexed(&docs);
        let got = ids(&index, "paris");
        assert_eq!(got[0], "exact");
        assert_eq!(sorted(got), ["everywhere", "exact", "notes", "tagged"]);
        assert_eq!(ids(&index, "Paris.JPG")[0], "exact");
        assert_eq!(ids(&index, "paris trip notes")[0], "notes");
    }

    #[test]
    fn long_words_are_found_by_their_first_40_bytes() {
        let hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let long = "supercalifragilisticexpialidociousextraordinarily";
        let docs = vec![
            doc("hash", &format!("{hash}.jpg")),
            doc("long", &format!("holiday_{long}_été.jpg")),
            doc("other", "holiday.jpg"),
        ];
        let (_dir, index) = indexed(&docs);
        assert_eq!(ids(&index, hash), ["hash"]);
        assert_eq!(ids(&index, &hash[..20]), ["hash"]); // a prefix, as typed so far
        assert_eq!(ids(&index, long), ["long"]);
        assert_eq!(sorted(ids(&index, "holiday")), ["long", "other"]);
        // Multi-byte characters are never cut in half.
        let mut analyzer = mf_analyzer();
        let odd = format!("ab{}", "日".repeat(20)); // byte 40 falls inside a 日
        let mut stream = analyzer.token_stream(&odd);
        assert_eq!(stream.next().unwrap().text, format!("ab{}", "日".repeat(12)));
    }

    #[test]
    fn long_accented_words_are_cut_once_folded() {
        // A QA finding: cut to 40 bytes before their accents were folded, 30 é were 20 e
        // in the index, and 30 e typed found nothing; a long German word typed without
        // its umlauts neither.
        let docs = vec![
            doc("e", &format!("{}.jpg", "é".repeat(30))),
            doc("de", "Müllerstraßenverkehrsüberwachungsbehörde.jpg"),
        ];
        let (_dir, index) = indexed(&docs);
        assert_eq!(ids(&index, &"e".repeat(30)), ["e"]);
        assert_eq!(ids(&index, &"é".repeat(30)), ["e"]);
        assert_eq!(ids(&index, "mullerstrassenverkehrsuberwachungsbehorde"), ["de"]);
        assert_eq!(ids(&index, "Müllerstraßenverkehrsüberwachungsbehörde"), ["de"]);
    }

    #[test]
    fn prefix_typo_and_accents_match() {
        let (_dir, index) = library();
        assert_eq!(ids(&index, "ipho"), ["lyon"]);
        // One letter is a whole word, never a prefix (it would expand to a good part of
        // the index's words): `i` does not find iPhone.
        assert_eq!(ids(&index, "ip"), ["lyon"]);
        assert_eq!(ids(&index, "i"), Vec::<String>::new());
        assert_eq!(ids(&index, "holday"), ["beach"]);
        assert_eq!(ids(&index, "cafe"), ["cafe"]);
        assert_eq!(ids(&index, "CAFÉ flore"), ["cafe"]);
        // A number is never a typo of another: 2019 does not find 2018 or 2020.
        assert_eq!(ids(&index, "2019"), Vec::<String>::new());
        // Every free word must match.
        assert_eq!(ids(&index, "canon france"), ["trip"]);
        assert_eq!(ids(&index, "canon spain"), Vec::<String>::new());
    }

    #[test]
    fn greek_final_sigma_turkish_dotted_i_and_accents_fold_in_words_and_filters() {
        let docs = vec![
            Doc {
                tags: vec!["place/İzmir".into()],
                collections: vec!["ΒΑΣ".into()],
                ..doc("iki", "İKİ.txt")
            },
            Doc {
                tags: vec!["Σας".into()],
                ..doc("sas", "ΣΑΣ.txt")
            },
            doc("odos", "ΟΔΌΣ.txt"),
        ];
        let (_dir, index) = indexed(&docs);
        for q in ["iki", "İKİ", "Iki"] {
            assert_eq!(ids(&index, q), ["iki"], "{q}");
        }
        for q in ["σας", "σασ", "ΣΑΣ"] {
            assert_eq!(ids(&index, q), ["sas"], "{q}");
        }
        for q in ["οδος", "οδός", "ΟΔΟΣ"] {
            assert_eq!(ids(&index, q), ["odos"], "{q}");
        }
        for q in [
            "tag:place/izmir",
            "tag:PLACE/İZMİR",
            "tag:place/İzmir",
            "collection:βασ",
            "collection:Βας",
        ] {
            assert_eq!(ids(&index, q), ["iki"], "{q}");
        }
        for q in ["tag:σασ", "tag:ΣΑΣ", "tag:σας"] {
            assert_eq!(ids(&index, q), ["sas"], "{q}");
        }
        // The exact name ranks first whichever way its case is typed.
        assert_eq!(index.search("σας.txt", 10, None).unwrap()[0].media_id, "sas");
    }

    #[test]
    fn quotes_and_backslashes_in_filter_values() {
        let docs = vec![
            Doc {
                tags: vec!["quote\"d".into(), "back\\slash".into()],
                collections: vec!["Say \"hi\"".into()],
                ..doc("q", "a.txt")
            },
            doc("other", "b.txt"),
        ];
        let (_dir, index) = indexed(&docs);
        for q in [
            "tag:quote\\\"d",
            "tag:\"quote\\\"d\"",
            "tag:back\\\\slash",
            "tag:back\\slash",
            "collection:\"say \\\"hi\\\"\"",
        ] {
            assert_eq!(ids(&index, q), ["q"], "{q}");
        }
    }

    #[test]
    fn query_words_keep_what_was_typed_and_read_keys_and_values() {
        let q = "  paris\tcollection:\"Say \\\"hi\\\"\"  KIND:image \"a b\" http://x tag:back\\\\slash 2:30 :x \"\" ";
        let got = query_words(q).unwrap();
        let seen: Vec<(&str, Option<&str>, &str)> = got
            .iter()
            .map(|w| (w.raw.as_str(), w.key.as_deref(), w.value.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("paris", None, "paris"),
                ("collection:\"Say \\\"hi\\\"\"", Some("collection"), "Say \"hi\""),
                ("KIND:image", Some("kind"), "image"),
                ("\"a b\"", None, "a b"),
                ("http://x", Some("http"), "//x"),
                ("tag:back\\\\slash", Some("tag"), "back\\slash"),
                ("2:30", None, "2:30"),
                (":x", None, ":x"),
                ("\"\"", None, ""),
            ]
        );
        // The words as typed, joined, read the same.
        let again = got.iter().map(|w| w.raw.as_str()).collect::<Vec<_>>().join(" ");
        assert_eq!(query_words(&again).unwrap(), got);
        assert!(query_words("tag:\"open").is_err());
        assert!(query_words("   ").unwrap().is_empty());
        // A key of letters beyond ASCII is a filter's too (one no search knows, to refuse).
        let accented = query_words("Café:x").unwrap();
        assert_eq!(
            (accented[0].key.as_deref(), accented[0].value.as_str()),
            (Some("café"), "x")
        );
        assert!(parse("café:x").is_err() && parse("\"café:x\"").is_ok());
        // A `-` before a word or filter, outside quotes, excludes it; in quotes, or alone,
        // it is part of the word.
        let excluding = query_words("-draft -KIND:video \"-x\" - a-b -tag:\"a b\"").unwrap();
        let seen: Vec<(Option<&str>, &str, bool)> = excluding
            .iter()
            .map(|w| (w.key.as_deref(), w.value.as_str(), w.negated))
            .collect();
        assert_eq!(
            seen,
            [
                (None, "draft", true),
                (Some("kind"), "video", true),
                (None, "-x", false),
                (None, "-", false),
                (None, "a-b", false),
                (Some("tag"), "a b", true),
            ]
        );
        let p = parse("paris -draft -kind:video -year:2019..").unwrap();
        assert_eq!(
            (p.words, p.not.words, p.not.kinds, p.not.years),
            (
                vec!["paris".to_string()],
                vec!["draft".to_string()],
                vec!["video".to_string()],
                vec![(Some(2019), None)]
            )
        );
        assert!(parse("-collection:x").is_err());
    }

    #[test]
    fn or_joins_free_words_into_alternatives() {
        let docs = [
            doc("pb", "paris beach.jpg"),
            doc("lb", "london beach.jpg"),
            doc("rb", "madrid beach.jpg"),
            doc("pm", "paris museum.jpg"),
            doc("ny", "new_york beach.jpg"),
            doc("or", "OR.jpg"),
        ];
        let (_dir, index) = indexed(&docs);
        assert_eq!(sorted(ids(&index, "paris OR london beach")), ["lb", "pb"]);
        assert_eq!(
            sorted(ids(&index, "beach paris OR london OR madrid")),
            ["lb", "pb", "rb"]
        );
        // An alternative of several parts needs them all; prefixes and typos hold as for any word.
        assert_eq!(sorted(ids(&index, "new_york OR madr")), ["ny", "rb"]);
        assert_eq!(sorted(ids(&index, "londno OR museum")), ["lb", "pm"]);
        // Beside exclusions and filters.
        assert_eq!(sorted(ids(&index, "paris OR london -museum ext:jpg")), ["lb", "pb"]);
        // An exact name among the alternatives ranks first, over a file that holds the
        // word in more places.
        let (_d2, names) = indexed(&[
            Doc {
                tags: vec!["places/paris".into()],
                meta: "Paris".into(),
                collections: vec!["Paris".into()],
                ..doc("everywhere", "paris-2.jpg")
            },
            doc("exact", "paris.jpg"),
            doc("m", "museum.jpg"),
        ]);
        assert_eq!(ids(&names, "paris")[0], "exact");
        let got = ids(&names, "museum OR paris");
        assert_eq!(
            (sorted(got[..2].to_vec()), got[2].as_str()),
            (vec!["exact".to_string(), "m".into()], "everywhere")
        );
        // Lower case, or quoted, it is the word itself.
        assert_eq!(ids(&index, "\"OR\""), ["or"]);
        assert!(ids(&index, "paris or london").is_empty());
        let p = parse("a OR b c d OR e OR f").unwrap();
        assert_eq!(p.words, ["c"]);
        assert_eq!(p.either, [vec!["a", "b"], vec!["d", "e", "f"]]);
        for bad in [
            "OR paris",
            "paris OR",
            "a OR OR b",
            "a OR -b",
            "-a OR b",
            "a OR kind:video",
            "tag:x OR a",
            "OR",
        ] {
            let e = query_words(bad).unwrap_err().to_string();
            assert!(e.contains("OR"), "{bad}: {e}");
        }
    }

    #[test]
    fn an_excluded_word_leaves_out_the_files_holding_all_its_parts() {
        let docs = [
            doc("a", "IMG_1234.jpg"),
            doc("b", "IMG_5678.jpg"),
            doc("c", "new_delhi.jpg"),
            doc("d", "york_minster.jpg"),
            doc("e", "new york.jpg"),
        ];
        let (_dir, index) = indexed(&docs);
        let mut got = ids(&index, "jpg -IMG_1234 -new_york");
        got.sort();
        assert_eq!(got, ["b", "c", "d"]);
        assert_eq!(ids(&index, "-york").len(), 3);
        assert_eq!(ids(&index, "-kind:image").len(), 0);
        // An excluded word with no letter or digit excludes nothing, and is no search.
        assert!(ids(&index, "-!").is_empty());
    }

    #[test]
    fn equal_scores_come_in_one_order_whatever_order_they_were_indexed_in() {
        let docs: Vec<Doc> = (0..40).map(|i| doc(&format!("id{i}"), "same name.jpg")).collect();
        let (_d1, forward) = indexed(&docs);
        let reversed: Vec<Doc> = docs.iter().rev().cloned().collect();
        let (_d2, backward) = indexed(&reversed);
        let top = |index: &SearchIndex| -> Vec<String> {
            index
                .search("same", 7, None)
                .unwrap()
                .into_iter()
                .map(|h| h.media_id)
                .collect()
        };
        assert_eq!(top(&forward).len(), 7);
        assert_eq!(top(&forward), top(&backward));
    }

    #[test]
    fn composed_and_decomposed_text_match_either_way() {
        // Hangul as a Mac writes it (jamo) and as typed (syllables); an accent both ways.
        let docs = vec![
            doc("nfd", "\u{1112}\u{1161}\u{11ab}\u{1100}\u{1173}\u{11af}.jpg"),
            doc("nfc", "\u{d55c}\u{ae00} two.jpg"),
            Doc {
                tags: vec!["caf\u{e9}".into()],
                collections: vec!["Cafe\u{301} nights".into()],
                ..doc("tagged", "IMG_0001.JPG")
            },
        ];
        let (_dir, index) = indexed(&docs);
        assert_eq!(sorted(ids(&index, "\u{d55c}\u{ae00}")), ["nfc", "nfd"]);
        assert_eq!(
            sorted(ids(&index, "\u{1112}\u{1161}\u{11ab}\u{1100}\u{1173}\u{11af}")),
            ["nfc", "nfd"]
        );
        // The exact name ranks first whichever form either side is in.
        let exact = index.search("\u{d55c}\u{ae00}.jpg", 5, None).unwrap();
        assert_eq!(exact[0].media_id, "nfd");
        assert_eq!(ids(&index, "tag:cafe\u{301}"), ["tagged"]);
        assert_eq!(ids(&index, "collection:\"caf\u{e9} nights\""), ["tagged"]);
    }

    #[test]
    fn words_run_together_split_into_parts() {
        let cut = |w: &str| -> Vec<String> { parts(w).into_iter().map(|(a, b)| w[a..b].to_string()).collect() };
        assert_eq!(cut("BeachTrip"), ["Beach", "Trip"]);
        assert_eq!(cut("DSC01234"), ["DSC", "01234"]);
        assert_eq!(cut("HTMLFile"), ["HTML", "File"]);
        assert_eq!(cut("iPhone"), ["Phone"]); // a part of one letter is left out
        assert_eq!(cut("2019Paris"), ["2019", "Paris"]);
        assert_eq!(cut("東京2020"), ["東京", "2020"]);
        assert_eq!(cut("ÉtéÀParis"), ["Été", "Paris"]);
        assert!(cut("holiday").is_empty() && cut("HOLIDAY").is_empty() && cut("Paris").is_empty());
        assert!(cut("9f86d081884c7d659a2feaa0c55ad015").is_empty()); // a hash
        assert!(cut("a1b2c3d4e5").is_empty()); // an id: cut in ten
        assert!(cut("550e8400").is_empty()); // a UUID's first group
        assert_eq!(cut("TripTripTrip"), ["Trip"]);
        let docs = vec![
            doc("camel", "BeachTripWithMom.jpg"),
            doc("dsc", "DSC01234.JPG"),
            doc("apart", "beach_trip.jpg"),
            doc("hash", "9f86d081884c7d659a2feaa0c55ad015.jpg"),
        ];
        let (_dir, index) = indexed(&docs);
        assert_eq!(sorted(ids(&index, "trip")), ["apart", "camel"]);
        assert_eq!(ids(&index, "mom"), ["camel"]);
        assert_eq!(ids(&index, "01234"), ["dsc"]);
        assert_eq!(ids(&index, "dsc01234"), ["dsc"]);
        // A word typed run together is one word: it finds the run, not the parts apart.
        assert_eq!(ids(&index, "BeachTripWithMom"), ["camel"]);
        assert_eq!(ids(&index, "beachtrip"), ["camel"]);
        assert_eq!(ids(&index, "9f86d081884c7d659a2feaa0c55ad015"), ["hash"]);
        assert_eq!(ids(&index, "86"), Vec::<String>::new());
    }

    #[test]
    fn tag_filters_fold_accents_as_words_do() {
        let docs = vec![
            Doc {
                tags: vec!["Places/Café/Östersund".into(), "Straße".into()],
                ..doc("tagged", "IMG_0001.JPG")
            },
            doc("other", "IMG_0002.JPG"),
        ];
        let (_dir, index) = indexed(&docs);
        for q in [
            "tag:places/cafe",
            "tag:PLACES/CAFÉ/ostersund",
            "tag:strasse",
            "tag:Straße",
        ] {
            assert_eq!(ids(&index, q), ["tagged"], "{q}");
        }
        assert_eq!(ids(&index, "tag:places/caf"), Vec::<String>::new());
        // A slash that only looks like one never makes a level of a tag: AC⁄DC is one.
        let docs = vec![
            Doc {
                tags: vec!["AC\u{2044}DC".into()],
                ..doc("flat", "a.jpg")
            },
            Doc {
                tags: vec!["AC/DC".into()],
                ..doc("tree", "b.jpg")
            },
        ];
        let (_dir2, index) = indexed(&docs);
        assert_eq!(ids(&index, "tag:ac/dc"), ["tree"]);
        assert_eq!(ids(&index, "tag:ac\u{2044}dc"), ["flat"]);
        assert_eq!(fold_key("\u{301}"), "\u{301}");
    }

    #[test]
    fn words_in_folders_tags_and_collections_match() {
        let (_dir, index) = library();
        assert_eq!(ids(&index, "library").len(), 4);
        assert_eq!(ids(&index, "anna"), ["trip"]);
        assert_eq!(ids(&index, "favourites"), ["cafe"]);
    }

    #[test]
    fn filters_narrow_and_combine() {
        let (_dir, index) = library();
        assert_eq!(ids(&index, "kind:video"), ["beach"]);
        assert_eq!(sorted(ids(&index, "kind:video kind:AUDIO")), ["beach", "cafe"]);
        assert_eq!(ids(&index, "ext:heic"), ["lyon"]);
        assert_eq!(ids(&index, "ext:.JPG"), ["trip"]);
        assert_eq!(ids(&index, "year:2019"), ["trip"]);
        let hit = &index.search("year:2019", 5, None).unwrap()[0];
        assert_eq!(hit.year, Some(2019));
        assert_eq!(sorted(ids(&index, "year:2018..2019")), ["lyon", "trip"]);
        assert_eq!(sorted(ids(&index, "year:2019..")), ["beach", "trip"]);
        assert_eq!(sorted(ids(&index, "tag:places/france")), ["lyon", "trip"]);
        assert_eq!(sorted(ids(&index, "tag:Places")), ["beach", "lyon", "trip"]);
        assert_eq!(ids(&index, "tag:places/fr"), Vec::<String>::new());
        assert_eq!(ids(&index, "collection:\"summer trip\""), ["trip"]);
        assert_eq!(ids(&index, "tag:places year:2020"), ["beach"]);
        assert_eq!(ids(&index, "kind:image canon"), ["trip"]);
        assert_eq!(ids(&index, "kind:video canon"), Vec::<String>::new());
    }

    #[test]
    fn bad_queries_are_invalid_input() {
        let (_dir, index) = library();
        let msg = |q: &str| match index.search(q, 10, None) {
            Err(Error::InvalidInput(m)) => m,
            other => panic!("{q:?} gave {other:?}"),
        };
        assert_eq!(
            msg("foo:bar"),
            "unknown filter foo: use kind, ext, year, tag or collection (a word with a colon in it goes in quotes: \
             \"foo:...\")"
        );
        assert!(msg("tag:\"open").contains("not closed"));
        let many: Vec<String> = (0..=MAX_WORDS).map(|i| format!("word{i}")).collect();
        assert!(msg(&many.join(" ")).contains("at most 64"));
        // The same word over and over is one word.
        assert!(index.search(&["holiday"; 100].join(" "), 10, None).is_ok());
        assert!(msg("year:twenty").contains("bad year"));
        assert!(msg("year:2020..2018").contains("bad year"));
        for typo in ["year:0", "year:-5", "year:10000", "year:0..2019", "year:..0"] {
            assert!(msg(typo).contains("bad year"), "{typo}");
        }
        assert!(msg("year:..").contains("bad year"));
        assert!(msg("kind:").contains("needs a value"));
        assert_eq!(msg("   "), "empty search query");
        // A colon after a number or inside quotes is not a filter.
        assert!(index.search("12:30", 10, None).unwrap().is_empty());
        assert!(index.search("\"foo:bar\"", 10, None).unwrap().is_empty());
    }

    #[test]
    fn staged_parts_commit_whole_and_later_parts_win() {
        let (_dir, mut index) = library();
        let before = index.num_docs();
        assert_eq!(index.stage(&[doc("x", "first.jpg")], &["cafe".into()]).unwrap(), 1);
        assert_eq!(
            index
                .stage(&[doc("y", "other.jpg"), doc("x", "second.jpg")], &[])
                .unwrap(),
            2
        );
        // Nothing shows before the commit.
        assert_eq!(index.num_docs(), before);
        assert_eq!(ids(&index, "second"), Vec::<String>::new());
        index.commit_staged().unwrap();
        assert_eq!(index.num_docs(), before - 1 + 2);
        assert_eq!(ids(&index, "second"), ["x"]);
        assert_eq!(ids(&index, "first"), Vec::<String>::new());
        // A discarded update leaves the index as committed.
        index.stage(&[doc("z", "dropped.jpg")], &["x".into()]).unwrap();
        index.discard_staged();
        index.commit_staged().unwrap();
        assert_eq!(ids(&index, "dropped"), Vec::<String>::new());
        assert_eq!(ids(&index, "second"), ["x"]);
    }

    #[test]
    fn upsert_replaces_and_deletes() {
        let (_dir, mut index) = library();
        let renamed = Doc {
            meta: "Nikon Z6".into(),
            ..doc("lyon", "IMG_2000.HEIC")
        };
        assert_eq!(index.upsert(&[renamed], &["cafe".into()]).unwrap(), 1);
        assert_eq!(index.num_docs(), 3);
        assert_eq!(ids(&index, "iphone"), Vec::<String>::new());
        assert_eq!(ids(&index, "nikon"), ["lyon"]);
        assert_eq!(ids(&index, "flore"), Vec::<String>::new());
        // The last of two docs with one media_id wins.
        let twice = [doc("x", "first.jpg"), doc("x", "second.jpg")];
        assert_eq!(index.upsert(&twice, &[]).unwrap(), 1);
        assert_eq!(ids(&index, "second"), ["x"]);
        assert_eq!(ids(&index, "first"), Vec::<String>::new());
        index.clear().unwrap();
        assert_eq!(index.num_docs(), 0);
        assert_eq!(ids(&index, "library"), Vec::<String>::new());
    }

    #[test]
    fn restrict_keeps_only_those_ids() {
        let (_dir, index) = library();
        let only = ["lyon".to_string(), "cafe".to_string()];
        let got: Vec<String> = index
            .search("library", 10, Some(&only))
            .unwrap()
            .into_iter()
            .map(|h| h.media_id)
            .collect();
        assert_eq!(sorted(got), ["cafe", "lyon"]);
        assert!(index.search("library", 10, Some(&[])).unwrap().is_empty());
        assert_eq!(index.search("library", 2, None).unwrap().len(), 2);
    }

    #[test]
    fn a_long_restriction_keeps_only_those_ids_and_their_order() {
        // More docs than a term set takes: the hash filter's way, checked against the
        // term set's on the same ids.
        let docs: Vec<Doc> = (0..RESTRICT_TERMS * 2)
            .map(|i| Doc {
                meta: if i % 3 == 0 {
                    "paris canon".into()
                } else {
                    "paris".into()
                },
                ..doc(&format!("id{i:05}"), &format!("IMG_{i:05}.JPG"))
            })
            .collect();
        let (_dir, index) = indexed(&docs);
        let only: Vec<String> = (0..docs.len())
            .filter(|i| i % 5 != 0)
            .map(|i| format!("id{i:05}"))
            .collect();
        assert!(only.len() > RESTRICT_TERMS);
        let long = index.search("paris", 40, Some(&only)).unwrap();
        let q = index
            .build(
                &parse("paris").unwrap(),
                &index.tokens(&["paris".into()]),
                &[],
                &[],
                Some(&only),
            )
            .unwrap();
        let terms = index.ranked(q.as_ref(), 40, None).unwrap();
        let key = |h: &Vec<Hit>| h.iter().map(|h| (h.media_id.clone(), h.score)).collect::<Vec<_>>();
        assert_eq!(long.len(), 40);
        assert_eq!(key(&long), key(&terms));
        assert!(long.iter().all(|h| only.contains(&h.media_id)));
        let all = index.search("kind:image", 10_000, Some(&only)).unwrap();
        assert_eq!(
            sorted(all.into_iter().map(|h| h.media_id).collect()),
            sorted(only.clone())
        );

        // A file not asked for passing the filter (its hash the same as one asked for) is
        // never a hit: the search is made again the exact way.
        COLLIDING.with(|c| *c.borrow_mut() = (0..docs.len()).step_by(5).map(|i| format!("id{i:05}")).collect());
        let got = index.search("paris canon", 10_000, Some(&only));
        COLLIDING.with(|c| c.borrow_mut().clear());
        let got = sorted(got.unwrap().into_iter().map(|h| h.media_id).collect());
        let want: Vec<String> = only
            .iter()
            .filter(|id| id[2..].parse::<usize>().unwrap() % 3 == 0)
            .cloned()
            .collect();
        assert_eq!(got, sorted(want));
    }

    #[test]
    fn reopened_index_keeps_its_docs() {
        let (dir, index) = library();
        drop(index);
        let index = SearchIndex::open_or_create(&dir.path().join("search")).unwrap();
        assert_eq!(index.num_docs(), 4);
        assert_eq!(ids(&index, "holiday"), ["beach"]);
    }

    #[test]
    fn damaged_index_says_to_reindex() {
        let (dir, index) = library();
        drop(index);
        let at = dir.path().join("search");
        std::fs::write(at.join("meta.json"), b"{ not json").unwrap();
        match SearchIndex::open_or_create(&at) {
            Err(Error::InvalidInput(m)) => assert_eq!(
                m,
                format!(
                    "search index {} is damaged or from another version; run `mediaforge search --reindex`",
                    at.display()
                )
            ),
            Err(e) => panic!("wrong error {e:?}"),
            Ok(_) => panic!("opened a damaged index"),
        }
    }

    #[test]
    fn index_of_another_schema_says_to_reindex() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = Schema::builder();
        b.add_text_field("title", STRING);
        Index::create_in_dir(dir.path(), b.build()).unwrap();
        match SearchIndex::open_or_create(dir.path()) {
            Err(Error::InvalidInput(m)) => assert!(m.contains("damaged or from another version"), "{m}"),
            Err(e) => panic!("wrong error {e:?}"),
            Ok(_) => panic!("opened an index of another schema"),
        }
    }

    #[test]
    fn parse_splits_words_and_filters() {
        let p = parse("Paris  kind:Video year:2018..2020 tag:/Places/France/ \"new york\" ext:MP4").unwrap();
        assert_eq!(p.words, ["Paris", "new york"]);
        assert_eq!(p.kinds, ["video"]);
        assert_eq!(p.years, [(Some(2018), Some(2020))]);
        assert_eq!(p.tags, ["places/france"]);
        assert_eq!(p.exts, ["mp4"]);
    }

    #[test]
    fn tag_prefixes_and_folders() {
        assert_eq!(tag_prefixes("A/B/C"), ["a", "a/b", "a/b/c"]);
        assert_eq!(tag_key(" A / /B/C/"), "a/b/c");
        assert_eq!(tag_key(" A / /B/C/"), tag_prefixes(" A / /B/C/").pop().unwrap());
        assert_eq!(tag_key("//"), "");
        // A query's value of any depth, in time and memory its length takes.
        assert_eq!(tag_key(&"a/".repeat(200_000)).len(), 399_999);
        assert_eq!(folders("/x/y/IMG.JPG", "IMG.JPG"), "/x/y/");
        assert_eq!(folders("/x/y", "IMG.JPG"), "/x/y");
        assert_eq!(folders("/x/AIMG.JPG", "IMG.JPG"), "/x/AIMG.JPG");
    }

    #[test]
    fn docs_from_arrow_columns() {
        use arrow_array::Int64Array;
        let schema = Arc::new(ArrowSchema::new(vec![
            ArrowField::new("media_id", DataType::Utf8, false),
            ArrowField::new("name", DataType::Utf8, false),
            ArrowField::new("tags", DataType::Utf8, true),
            ArrowField::new("year", DataType::Int64, true),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(StringArray::from(vec!["x.jpg", "y.jpg"])),
                Arc::new(StringArray::from(vec![Some("t/u\n\nv"), None])),
                Arc::new(Int64Array::from(vec![Some(2019), None])),
            ],
        )
        .unwrap();
        let docs = docs_from_batches(&[b]).unwrap();
        assert_eq!(docs[0].tags, ["t/u", "v"]);
        assert_eq!(docs[0].year, Some(2019));
        assert!(docs[1].tags.is_empty());
        assert_eq!(docs[1].year, None);
        let hits = hits_batch(&[
            Hit {
                media_id: "a".into(),
                score: 1.5,
                year: Some(2019),
            },
            Hit {
                media_id: "b".into(),
                score: 0.5,
                year: None,
            },
        ])
        .unwrap();
        assert_eq!(hits.num_rows(), 2);
        let years = hits.column_by_name("year").unwrap().as_primitive::<Int32Type>();
        assert_eq!((years.value(0), years.is_null(1)), (2019, true));
    }
}
