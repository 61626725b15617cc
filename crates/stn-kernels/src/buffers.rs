//! New output buffers filled item by item by the parallel workers, without a serial zeroing
//! pass first: `vec![0.0; len]` memsets the whole buffer on the calling thread (megabytes for a
//! batch of 1000 images) while the other cores wait, and the kernels then write every element
//! anyway. Here kernels that store every value write straight into uninitialized memory, and
//! those that accumulate have each worker zero its own item right before, in cache.

use std::mem::MaybeUninit;

/// `s` as uninitialized memory, for the functions that fill buffers item by item.
pub(crate) fn uninit<T>(s: &mut [T]) -> &mut [MaybeUninit<T>] {
    // SAFETY: same layout; only initialized values are ever written through the result.
    unsafe { &mut *(s as *mut [T] as *mut [MaybeUninit<T>]) }
}

/// `s` as f32 slots, for the vector kernels; panics unless `T` is f32.
pub(crate) fn uninit_f32<T: 'static>(s: &mut [MaybeUninit<T>]) -> &mut [MaybeUninit<f32>] {
    assert!(
        crate::is_f32::<T>(),
        "uninit_f32: the element type is not f32"
    );
    // SAFETY: T is f32 (checked above).
    unsafe { &mut *(s as *mut [MaybeUninit<T>] as *mut [MaybeUninit<f32>]) }
}

/// Fills `s` with `zero` and returns it initialized.
pub(crate) fn zeroed<T: Copy>(s: &mut [MaybeUninit<T>], zero: T) -> &mut [T] {
    s.fill(MaybeUninit::new(zero));
    // SAFETY: every element was just initialized.
    unsafe { &mut *(s as *mut [MaybeUninit<T>] as *mut [T]) }
}

/// A new buffer of `len` elements for a kernel to fill: handed out as uninitialized memory
/// ([`NewBuffer::uninit`]), then [`NewBuffer::finish`]ed once every element is written (by
/// kernels that store every value, or that zero each item first through [`zeroed`]). A buffer
/// dropped unfinished (a panic in the kernel) frees its memory and reads none of it.
pub(crate) struct NewBuffer<T> {
    vec: Vec<T>,
    len: usize,
}

impl<T> NewBuffer<T> {
    pub(crate) fn new(len: usize) -> Self {
        NewBuffer {
            vec: Vec::with_capacity(len),
            len,
        }
    }

    pub(crate) fn uninit(&mut self) -> &mut [MaybeUninit<T>] {
        &mut self.vec.spare_capacity_mut()[..self.len]
    }

    /// The filled buffer.
    ///
    /// # Safety
    /// Every element of [`NewBuffer::uninit`] must have been initialized.
    pub(crate) unsafe fn finish(mut self) -> Vec<T> {
        // SAFETY: the caller's promise; the capacity is at least `len`.
        unsafe { self.vec.set_len(self.len) };
        self.vec
    }
}
