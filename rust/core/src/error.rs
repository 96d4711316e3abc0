//! The one error type of the core. The binding maps each variant onto a Python class.

use std::path::PathBuf;

/// Everything that can stop a core operation as a whole. Per-file problems are never
/// errors of this kind: they become rows of an errors batch and the work goes on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A path the caller named does not exist.
    #[error("no such file or directory: {}", .0.display())]
    NotFound(PathBuf),
    /// A path the caller named exists but cannot be read.
    #[error("permission denied: {}", .0.display())]
    PermissionDenied(PathBuf),
    /// Any other I/O failure on a path the caller named.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The caller's input is malformed (a bad exclude pattern, a previous-state batch
    /// with the wrong columns).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Something another process holds (a search index it is writing) stayed held past
    /// the wait; running again once that process ends is the fix.
    #[error("{0}")]
    Busy(String),
    /// The work was cancelled (Ctrl-C) before it finished.
    #[error("interrupted")]
    Cancelled,
    /// Arrow refused a batch we built; a bug, reported rather than panicking.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

impl Error {
    /// Classify an I/O error on a path the caller named.
    pub fn from_io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        match source.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound(path),
            std::io::ErrorKind::PermissionDenied => Error::PermissionDenied(path),
            _ => Error::Io { path, source },
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
