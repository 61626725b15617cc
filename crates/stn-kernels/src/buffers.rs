//! New output buffers filled item by item by the parallel workers, without a serial zeroing
//! pass first: `vec![0.0; len]` memsets the whole buffer on the calling thread (megabytes for a
//! batch of 1000 images) while the other cores wait, and the kernels then write every element
//! anyway. Here each worker zeroes its own item right before writing it, in cache.

use std::mem::MaybeUninit;

/// `s` as uninitialized memory, for the functions that fill buffers item by item.
pub(crate) fn uninit<T>(s: &mut [T]) -> &mut [MaybeUninit<T>] {
    // SAFETY: same layout; only initialized values are ever written through the result.
    unsafe { &mut *(s as *mut [T] as *mut [MaybeUninit<T>]) }
}

/// Fills `s` with `zero` and returns it initialized.
pub(crate) fn zeroed<T: Copy>(s: &mut [MaybeUninit<T>], zero: T) -> &mut [T] {
    s.fill(MaybeUninit::new(zero));
    // SAFETY: every element was just initialized.
    unsafe { &mut *(s as *mut [MaybeUninit<T>] as *mut [T]) }
}

/// A new buffer of `len` elements, which `fill` must initialize, all of them (through
/// [`zeroed`], item by item).
pub(crate) fn alloc<T>(len: usize, fill: impl FnOnce(&mut [MaybeUninit<T>])) -> Vec<T> {
    let mut v = Vec::with_capacity(len);
    fill(&mut v.spare_capacity_mut()[..len]);
    // SAFETY: `fill` initialized all `len` elements (a panic in it leaves the length at 0).
    unsafe { v.set_len(len) };
    v
}
