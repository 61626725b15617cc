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

#[cfg(test)]
mod tests {
    use std::mem::MaybeUninit;

    use super::{NewBuffer, uninit, uninit_f32, zeroed};

    /// The helpers as the kernels use them, small enough for Miri to check every access.
    #[test]
    fn new_buffers_fill_and_finish() {
        let mut b = NewBuffer::<f32>::new(10);
        for (i, v) in b.uninit().iter_mut().enumerate() {
            v.write(i as f32);
        }
        // SAFETY: all 10 elements were written above.
        let v = unsafe { b.finish() };
        assert_eq!(v, (0..10).map(|i| i as f32).collect::<Vec<_>>());

        // Item by item, each item zeroed by its own worker before accumulating.
        let mut b = NewBuffer::<f64>::new(12);
        for item in b.uninit().chunks_mut(4) {
            let item = zeroed(item, 0.0);
            item[1] += 2.5;
        }
        // SAFETY: every item was zeroed.
        let v = unsafe { b.finish() };
        assert_eq!(v, [0.0, 2.5, 0.0, 0.0].repeat(3));

        // Dropped unfinished (a kernel that panicked): frees the memory, reads none of it.
        let mut b = NewBuffer::<String>::new(3);
        b.uninit()[0].write("written".into());
        drop(b);

        // Empty buffers.
        let mut b = NewBuffer::<f32>::new(0);
        assert!(b.uninit().is_empty());
        // SAFETY: no elements.
        assert!(unsafe { b.finish() }.is_empty());
    }

    #[test]
    fn uninit_views_keep_the_values_written_through_them() {
        let mut v = vec![1.0f32; 6];
        let slots: &mut [MaybeUninit<f32>] = uninit(&mut v);
        slots[2].write(7.0);
        let f32s = uninit_f32(slots);
        f32s[3].write(8.0);
        assert_eq!(v, [1.0, 1.0, 7.0, 8.0, 1.0, 1.0]);
    }

    #[test]
    #[should_panic(expected = "not f32")]
    fn uninit_f32_refuses_other_types() {
        let mut v = vec![0.0f64; 2];
        uninit_f32(uninit(&mut v));
    }
}
