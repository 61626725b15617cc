//! The sizes of a grid-sample call, below both samplers ([`crate::sample_scalar`],
//! [`crate::sample_simd`]) and the batch driver ([`crate::grid_sample`], which re-exports it).

/// Sizes of one grid-sample call: input [n, c, h_in, w_in], grid [n, h_out, w_out, 2].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleShape {
    /// Batch size.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Input height.
    pub h_in: usize,
    /// Input width.
    pub w_in: usize,
    /// Output height.
    pub h_out: usize,
    /// Output width.
    pub w_out: usize,
}

impl SampleShape {
    /// Values of one input item (c x h_in x w_in).
    pub(crate) fn input_len(&self) -> usize {
        self.c * self.h_in * self.w_in
    }
    /// Values of one output item (c x h_out x w_out).
    pub(crate) fn output_len(&self) -> usize {
        self.c * self.h_out * self.w_out
    }
    /// Pixels of one output plane (h_out x w_out).
    pub(crate) fn plane_out(&self) -> usize {
        self.h_out * self.w_out
    }
}
