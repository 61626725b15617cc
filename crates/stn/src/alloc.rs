//! Process-wide allocator tuning.
//!
//! A training or sampling step allocates and frees the same few buffers of 0.1–2 MB every
//! time (activations, gradients, sampled images). glibc's malloc serves blocks that size with
//! fresh `mmap`s, or trims them off the heap when they are freed, so every step pays page
//! faults and kernel page zeroing again: `perf stat` counted 227,000 page faults in
//! `stn bench ops --batches 100`, and about 40% of its CPU time went to them. Keeping freed
//! memory in the process removes almost all of them (1,900 left) at the price of a somewhat
//! higher resident size (train: 100 -> 120 MB peak).

/// Makes glibc's malloc keep freed memory for reuse instead of returning it to the kernel
/// after every step. Call it once, first thing in `main`; the `stn` binary does. A no-op
/// where the C library is not glibc.
pub fn retain_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's thresholds; it is called before any threads start.
    unsafe {
        // Blocks up to 32 MiB (mallopt's maximum) come from the heap, not from mmap ...
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        // ... and the heap is not trimmed back to the kernel while it holds under 1 GiB free.
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
