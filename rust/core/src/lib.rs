//! MediaForge's core: pure Rust, no Python. The `mediaforge-py` crate binds it.

pub mod afp;
pub mod batch;
pub mod error;
pub mod funnel;
pub mod hash;
pub mod jpegdc;
pub mod kind;
pub mod lanes;
pub mod mapguard;
pub mod near;
pub mod phash;
pub mod prev;
pub mod scan;
pub mod search;
pub mod types;
pub mod walk;

pub use error::{Error, Result};
