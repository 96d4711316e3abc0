//! Survive a mapped file shrinking under us.
//!
//! Reading a page of a memory-mapped file beyond the file's end (another program
//! truncated it after we mapped it), or a page the disk cannot read, raises SIGBUS, and
//! SIGBUS kills the process. A `Guarded` mapping registers its address range here; the
//! process-wide SIGBUS handler, finding the faulting address inside a registered range,
//! maps zero-filled anonymous pages over the rest of that range, marks it faulted and
//! returns, so the read goes on over zeros. The caller then throws the digest away.
//! A fault anywhere else goes to the handler that was installed before ours, or to the
//! default action, exactly as if we were not here.
//!
//! The handler only does async-signal-safe work: atomic loads and stores, `mmap`,
//! `sigaction` and `raise`.
//!
//! A mapping that cannot be guarded (every slot taken, or another SIGBUS handler was
//! installed after ours, which would see the fault first) is not made: `Guarded::new`
//! says so and the caller reads the file instead.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::OnceLock;

/// How many mappings can be guarded at once: as many as the scan's most threads.
const SLOTS: usize = 1024;

/// One registered range. `seq` is a sequence lock: odd while the range is being written,
/// so the handler reads `start` and `end` only as a pair one registration wrote.
struct Slot {
    seq: AtomicU64,
    start: AtomicUsize,
    end: AtomicUsize,
    faulted: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Slot = Slot {
    seq: AtomicU64::new(0),
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    faulted: AtomicBool::new(false),
};
static TABLE: [Slot; SLOTS] = [FREE; SLOTS];
static PAGE: AtomicUsize = AtomicUsize::new(4096);
/// Faults the guard turned into zero pages (for tests and diagnostics).
static FAULTS: AtomicU64 = AtomicU64::new(0);
/// The SIGBUS action that was in place before ours, set once before ours is installed.
static PREVIOUS: OnceLock<Previous> = OnceLock::new();
static INSTALLED: OnceLock<bool> = OnceLock::new();

struct Previous(libc::sigaction);
// SAFETY: plain data (a handler address, a mask and flags), written once, then only read.
unsafe impl Sync for Previous {}
unsafe impl Send for Previous {}

/// How many faults the guard has caught in this process.
pub fn faults() -> u64 {
    FAULTS.load(SeqCst)
}

/// A registered mapping; unregistered when dropped (drop it before unmapping).
pub struct Guarded {
    slot: usize,
}

impl Guarded {
    /// Guard `len` bytes at `ptr`; None when the mapping cannot be guarded (see the
    /// module doc): the caller must then not read through it.
    pub fn new(ptr: *const u8, len: usize) -> Option<Guarded> {
        if len == 0 || !install() || !still_ours() {
            return None;
        }
        let start = ptr as usize;
        for (i, s) in TABLE.iter().enumerate() {
            let seq = s.seq.load(SeqCst);
            if seq % 2 == 1 || s.start.load(SeqCst) != 0 {
                continue;
            }
            if s.seq.compare_exchange(seq, seq + 1, SeqCst, SeqCst).is_ok() {
                if s.start.load(SeqCst) != 0 {
                    // Taken between the check and the claim (its writer has finished).
                    s.seq.store(seq + 2, SeqCst);
                    continue;
                }
                s.faulted.store(false, SeqCst);
                s.end.store(start + len, SeqCst);
                s.start.store(start, SeqCst);
                s.seq.store(seq + 2, SeqCst);
                return Some(Guarded { slot: i });
            }
        }
        None
    }

    /// Whether a read of the mapping faulted (the bytes read from there on were zeros).
    pub fn faulted(&self) -> bool {
        TABLE[self.slot].faulted.load(SeqCst)
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let s = &TABLE[self.slot];
        s.seq.fetch_add(1, SeqCst);
        s.start.store(0, SeqCst);
        s.end.store(0, SeqCst);
        s.seq.fetch_add(1, SeqCst);
    }
}

fn install() -> bool {
    *INSTALLED.get_or_init(|| unsafe {
        let page = libc::sysconf(libc::_SC_PAGESIZE);
        if page > 0 {
            PAGE.store(page as usize, SeqCst);
        }
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old) != 0 {
            return false;
        }
        let _ = PREVIOUS.set(Previous(old));
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = on_sigbus as *const () as usize;
        // SA_ONSTACK: run on the alternate stack where the thread has one.
        act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(libc::SIGBUS, &act, std::ptr::null_mut()) == 0
    })
}

/// Whether our handler is still the one SIGBUS runs: a handler installed after ours (a
/// late `faulthandler.enable()`) would take the fault first and end the process.
fn still_ours() -> bool {
    unsafe {
        let mut now: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut now) == 0
            && now.sa_sigaction == on_sigbus as *const () as usize
    }
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // Only a fault the kernel raised has a meaningful address (si_code > 0); a SIGBUS
    // sent with kill() or raise() is passed on.
    let addr = unsafe {
        if !info.is_null() && (*info).si_code > 0 {
            Some((*info).si_addr() as usize)
        } else {
            None
        }
    };
    if let Some(addr) = addr {
        for s in TABLE.iter() {
            let seq = s.seq.load(SeqCst);
            if seq % 2 == 1 {
                continue; // being written: not the range of a mapping being read
            }
            let (start, end) = (s.start.load(SeqCst), s.end.load(SeqCst));
            if s.seq.load(SeqCst) != seq || start == 0 || addr < start || addr >= end {
                continue;
            }
            let page = PAGE.load(SeqCst);
            let from = addr & !(page - 1);
            // SAFETY: [from, end) lies inside a live read-only mapping whose owner waits
            // for this read to finish; zero pages replace file pages that no longer exist.
            let p = unsafe {
                libc::mmap(
                    from as *mut libc::c_void,
                    end - from,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                s.faulted.store(true, SeqCst);
                FAULTS.fetch_add(1, SeqCst);
                return;
            }
        }
    }
    pass_on(sig, info, ctx, addr.is_some());
}

/// Hand a SIGBUS that is not ours to whoever had it before (Python's faulthandler, Rust's
/// stack-overflow handler), or take the default action: for a fault, by restoring it and
/// returning (the read faults again and ends the process, as it always would have); for
/// a signal sent by another process, by raising it again once the default is back.
fn pass_on(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void, fault: bool) {
    let default = || unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(sig, &act, std::ptr::null_mut());
        if !fault {
            libc::raise(sig);
        }
    };
    let Some(Previous(old)) = PREVIOUS.get() else {
        return default();
    };
    let h = old.sa_sigaction;
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        return default();
    }
    unsafe {
        if old.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = std::mem::transmute(h);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(h);
            f(sig);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_mapped_file_cut_short_reads_zeros_and_says_so() {
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(&vec![9u8; 4 * page]).unwrap();
        let f = std::fs::File::open(&p).unwrap();
        let map = unsafe { memmap2::Mmap::map(&f).unwrap() };
        let guard = Guarded::new(map.as_ptr(), map.len()).unwrap();
        let before = faults();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(page as u64)
            .unwrap();
        let sum: u64 = map.iter().map(|&b| b as u64).sum();
        assert!(guard.faulted() && faults() > before);
        assert_eq!(
            sum,
            9 * page as u64,
            "the page still in the file reads back, the rest as zeros"
        );
        drop(guard);
        drop(map);
    }

    #[test]
    fn an_unharmed_mapping_is_not_faulted_and_slots_are_reused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![1u8; 10_000]).unwrap();
        let f = std::fs::File::open(&p).unwrap();
        for _ in 0..2 * SLOTS {
            let map = unsafe { memmap2::Mmap::map(&f).unwrap() };
            let guard = Guarded::new(map.as_ptr(), map.len()).expect("a free slot");
            assert_eq!(map.iter().map(|&b| b as usize).sum::<usize>(), 10_000);
            assert!(!guard.faulted());
        }
    }
}
