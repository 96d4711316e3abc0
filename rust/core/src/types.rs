//! Small newtypes passed between stages, so a size is never mistaken for an inode.

use std::fmt;

/// A file's length in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FileLen(pub u64);

/// A file's identity on this machine: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// A BLAKE3-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// Lowercase hex, the catalog's text form.
    pub fn to_hex(&self) -> String {
        self.hex(&mut [0; 64]).to_string()
    }

    /// Lowercase hex written into `buf`, without allocating.
    pub fn hex<'a>(&self, buf: &'a mut [u8; 64]) -> &'a str {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, b) in self.0.iter().enumerate() {
            buf[2 * i] = HEX[(b >> 4) as usize];
            buf[2 * i + 1] = HEX[(b & 15) as usize];
        }
        std::str::from_utf8(buf).expect("hex digits are ASCII")
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

/// A file time in ns since the epoch, held to what an i64 holds (years 1677 to 2262): a
/// time outside (a camera clock gone wrong; ext4 keeps dates to 2446) is stored as the
/// nearest end, never wrapped round to a date on the other side. Python's
/// `fsops.time_ns` holds `os.stat` times to the same range.
pub fn time_ns(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

/// What the walker learned of one regular file from a single `statx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    pub len: FileLen,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub id: FileId,
    pub nlink: u64,
}

impl FileStat {
    /// The stat of a file the walk listed by name only (`WalkOptions::defer_file_stat`):
    /// it is taken from the file once it is opened to be read.
    pub const UNKNOWN: FileStat = FileStat {
        len: FileLen(u64::MAX),
        mtime_ns: i64::MIN,
        ctime_ns: i64::MIN,
        id: FileId { dev: 0, ino: 0 },
        nlink: 0,
    };

    pub fn is_unknown(&self) -> bool {
        *self == Self::UNKNOWN
    }

    /// Build from a raw `stat` result.
    pub fn from_stat(st: &rustix::fs::Stat) -> Self {
        FileStat {
            len: FileLen(st.st_size as u64),
            mtime_ns: time_ns(st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime_ns: time_ns(st.st_ctime as i64, st.st_ctime_nsec as i64),
            id: FileId {
                dev: st.st_dev as u64,
                ino: st.st_ino as u64,
            },
            nlink: st.st_nlink as u64,
        }
    }

    /// Build from a `statx` result (the basic stats asked for), with the file's birth
    /// time in ns since the epoch, or 0 where the file system keeps none.
    pub fn from_statx(st: &rustix::fs::Statx) -> (Self, i64) {
        let ns = |t: &rustix::fs::StatxTimestamp| time_ns(t.tv_sec, t.tv_nsec as i64);
        let born = if st.stx_mask & rustix::fs::StatxFlags::BTIME.bits() != 0 {
            ns(&st.stx_btime)
        } else {
            0
        };
        let stat = FileStat {
            len: FileLen(st.stx_size),
            mtime_ns: ns(&st.stx_mtime),
            ctime_ns: ns(&st.stx_ctime),
            id: FileId {
                dev: rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor) as u64,
                ino: st.stx_ino,
            },
            nlink: st.stx_nlink as u64,
        };
        (stat, born)
    }

    /// True when content may differ: the catalog's "changed" test (size and mtime), plus
    /// the identity, so a replaced file is caught even with the same size and mtime.
    pub fn same_content_signature(&self, other: &FileStat) -> bool {
        self.len == other.len && self.mtime_ns == other.mtime_ns && self.id == other.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_times_past_2262_are_held_not_wrapped() {
        assert_eq!(time_ns(1_600_000_000, 5), 1_600_000_000_000_000_005);
        assert_eq!(time_ns(10_413_792_000, 0), i64::MAX); // 2300-01-01
        assert_eq!(time_ns(-10_413_792_000, 0), i64::MIN);
        assert_eq!(time_ns(-1, 500), -999_999_500);
    }

    #[test]
    fn hex_is_lowercase_and_64_chars() {
        let d = Digest([0xAB; 32]);
        assert_eq!(d.to_hex(), "ab".repeat(32));
        let z = Digest([0; 32]);
        assert_eq!(z.to_hex().len(), 64);
    }
}
