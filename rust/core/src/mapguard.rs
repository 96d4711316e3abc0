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
//! The handler only does async-signal-safe work: atomic loads and stores, and `mmap`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::OnceLock;

/// How many mappings can be guarded at once: one per hashing thread is plenty.
const SLOTS: usize = 256;

struct Slot {
    start: AtomicUsize,
    end: AtomicUsize,
    faulted: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Slot = Slot {
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    faulted: AtomicBool::new(false),
};
static TABLE: [Slot; SLOTS] = [FREE; SLOTS];
static PAGE: AtomicUsize = AtomicUsize::new(4096);
/// The SIGBUS action that was in place before ours, set once before ours is installed.
static PREVIOUS: OnceLock<Previous> = OnceLock::new();
static INSTALLED: OnceLock<bool> = OnceLock::new();

struct Previous(libc::sigaction);
// SAFETY: plain data (a handler address, a mask and flags), written once, then only read.
unsafe impl Sync for Previous {}
unsafe impl Send for Previous {}

/// A registered mapping; unregistered when dropped (drop it before unmapping).
pub struct Guarded {
    slot: Option<usize>,
}

impl Guarded {
    /// Guard `len` bytes at `ptr`. If the handler could not be installed or every slot
    /// is taken, the mapping is simply not guarded (as before this module existed).
    pub fn new(ptr: *const u8, len: usize) -> Guarded {
        if len == 0 || !install() {
            return Guarded { slot: None };
        }
        let start = ptr as usize;
        for (i, s) in TABLE.iter().enumerate() {
            // `end` is published before `start`: the handler only reads a slot whose start
            // is set, so it never sees a half-written range.
            if s.start.load(SeqCst) == 0 && s.end.compare_exchange(0, start + len, SeqCst, SeqCst).is_ok() {
                s.faulted.store(false, SeqCst);
                s.start.store(start, SeqCst);
                return Guarded { slot: Some(i) };
            }
        }
        Guarded { slot: None }
    }

    /// Whether a read of the mapping faulted (the bytes read from there on were zeros).
    pub fn faulted(&self) -> bool {
        self.slot.is_some_and(|i| TABLE[i].faulted.load(SeqCst))
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            TABLE[i].start.store(0, SeqCst);
            TABLE[i].end.store(0, SeqCst);
        }
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
            let start = s.start.load(SeqCst);
            let end = s.end.load(SeqCst);
            if start != 0 && addr >= start && addr < end {
                let page = PAGE.load(SeqCst);
                let from = addr & !(page - 1);
                // SAFETY: the range lies inside a live read-only mapping this module was
                // told about; zero pages replace file pages that no longer exist.
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
                    return;
                }
            }
        }
    }
    pass_on(sig, info, ctx);
}

/// Hand a SIGBUS that is not ours to whoever had it before (Python's faulthandler, Rust's
/// stack-overflow handler), or restore the default action so the fault, raised again on
/// return, ends the process as it always would have.
fn pass_on(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let Some(Previous(old)) = PREVIOUS.get() else {
        return reset(sig);
    };
    let h = old.sa_sigaction;
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        return reset(sig);
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

fn reset(sig: libc::c_int) {
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(sig, &act, std::ptr::null_mut());
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
        let guard = Guarded::new(map.as_ptr(), map.len());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(page as u64)
            .unwrap();
        let sum: u64 = map.iter().map(|&b| b as u64).sum();
        assert!(guard.faulted());
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
            let guard = Guarded::new(map.as_ptr(), map.len());
            assert!(guard.slot.is_some());
            assert_eq!(map.iter().map(|&b| b as usize).sum::<usize>(), 10_000);
            assert!(!guard.faulted());
        }
    }
}
