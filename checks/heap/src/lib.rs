//! A global allocator that scans every block it frees for registered byte strings (secrets a
//! test knows), so a test can prove that an operation freed no unwiped copy of them.
//!
//! Tests register needles with [`watch`], run the operation between [`start`] and [`stop`],
//! and read the hits. It also counts the bytes live on the heap ([`live_bytes`]) and every byte
//! ever requested by a thread ([`allocated_bytes_here`]), as requested (the system allocator's own per-block
//! overhead is not counted). The allocator itself never allocates.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

const MAX_NEEDLES: usize = 64;
const NEEDLE_LEN: usize = 32;

/// Scans freed blocks while enabled.
pub struct Scanning;

static ENABLED: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicUsize = AtomicUsize::new(0);
static HITS: AtomicUsize = AtomicUsize::new(0);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static LOCK: AtomicBool = AtomicBool::new(false);
/// Needles and which were hit, behind `LOCK`.
struct Table {
    needles: [[u8; NEEDLE_LEN]; MAX_NEEDLES],
    hit: [bool; MAX_NEEDLES],
}

struct Guarded(std::cell::UnsafeCell<Table>);

// SAFETY: every access goes through `with`, which holds LOCK.
unsafe impl Sync for Guarded {}

static TABLE: Guarded = Guarded(std::cell::UnsafeCell::new(Table {
    needles: [[0; NEEDLE_LEN]; MAX_NEEDLES],
    hit: [false; MAX_NEEDLES],
}));

/// Runs `f` on the table under the lock. `f` must not allocate.
fn with<R>(f: impl FnOnce(&mut Table) -> R) -> R {
    lock();
    // SAFETY: LOCK gives exclusive access; no reference outlives this call.
    let r = f(unsafe { &mut *TABLE.0.get() });
    unlock();
    r
}

fn lock() {
    while LOCK
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        std::hint::spin_loop();
    }
}

fn unlock() {
    LOCK.store(false, Ordering::Release);
}

/// Registers a 32-byte secret to look for.
pub fn watch(needle: &[u8; NEEDLE_LEN]) {
    let n = COUNT.load(Ordering::Relaxed);
    assert!(n < MAX_NEEDLES, "too many needles");
    with(|t| t.needles[n] = *needle);
    COUNT.store(n + 1, Ordering::Relaxed);
}

/// Forgets every needle and hit.
pub fn reset() {
    COUNT.store(0, Ordering::Relaxed);
    HITS.store(0, Ordering::Relaxed);
    with(|t| t.hit = [false; MAX_NEEDLES]);
}

/// Starts scanning freed blocks.
pub fn start() {
    ENABLED.store(true, Ordering::SeqCst);
}

/// Stops scanning; returns how many freed blocks held a needle, and which needles.
pub fn stop() -> (usize, Vec<usize>) {
    ENABLED.store(false, Ordering::SeqCst);
    let hit = with(|t| t.hit);
    let which = (0..MAX_NEEDLES).filter(|i| hit[*i]).collect();
    (HITS.load(Ordering::Relaxed), which)
}

/// Bytes allocated and not yet freed, in the whole process.
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::SeqCst)
}

std::thread_local! {
    /// What [`allocated_bytes_here`] reports: const-initialised with no destructor, so
    /// touching it from the allocator never allocates.
    static HERE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Bytes requested by the calling thread since it started, freed or not. A measure of one
/// operation must not see the test harness's other threads (a busy machine wakes them
/// mid-operation), so this counts the calling thread alone. Each reallocation counts in full (the allocator
/// has no `realloc` of its own, so a grown block is a new allocation).
pub fn allocated_bytes_here() -> usize {
    HERE.with(std::cell::Cell::get)
}

unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
            // A thread being torn down has no slot any more: its allocations go uncounted.
            let _ = HERE.try_with(|here| here.set(here.get() + layout.size()));
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ENABLED.load(Ordering::Relaxed) && layout.size() >= NEEDLE_LEN {
            // SAFETY: the block is live until System.dealloc below, and `size` bytes long.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            let n = COUNT.load(Ordering::Relaxed);
            let found = with(|t| {
                let mut found = false;
                for i in 0..n {
                    if block.windows(NEEDLE_LEN).any(|w| w == t.needles[i]) {
                        t.hit[i] = true;
                        found = true;
                    }
                }
                found
            });
            if found {
                HITS.fetch_add(1, Ordering::Relaxed);
            }
        }
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }
}
