//! The writer allocates nothing per message once warmed up: its buffers are reused.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use berth_logfile::Stream;
use common::*;

/// Counts the allocations of the current thread.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(|n| n.get())
}

#[test]
fn writing_does_not_allocate_per_message() {
    for driver in ["json-file", "local"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config(driver, &[("max-size", "-1"), ("labels", "a")]);
        let attrs = [("a".to_string(), "b".to_string())].into();
        let mut w = berth_logfile::Writer::open(dir.path(), "c1", &config, attrs).expect("open");
        let lines: Vec<String> = (0..5000).map(numbered).collect();
        let long = vec![b'x'; 40_000];
        // Warm up: buffers reach their working size.
        w.write(Stream::Stdout, &long, at(0)).expect("write");
        w.write(Stream::Stdout, b"\n", at(0)).expect("write");
        w.write(Stream::Stderr, b"partial", at(0)).expect("write");
        w.write(Stream::Stderr, b" line\n", at(0)).expect("write");

        let before = allocations();
        for (i, line) in lines.iter().enumerate() {
            let (head, tail) = line.as_bytes().split_at(7);
            w.write(stream_of(i), head, at(i as u64)).expect("write");
            w.write(stream_of(i), tail, at(i as u64)).expect("write");
        }
        w.write(Stream::Stdout, &long[..30_000], at(1))
            .expect("write");
        w.write(Stream::Stdout, b"\n", at(1)).expect("write");
        let used = allocations() - before;
        assert_eq!(used, 0, "{driver}: {used} allocations for 5002 messages");
        drop(w);
        assert_eq!(
            read_all(dir.path(), &config, &Default::default()).len(),
            5000 + 3 + 1 + 2
        );
    }
}
