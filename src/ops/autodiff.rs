//! Custom backward passes: each op registers one node whose backward is one fused kernel call,
//! instead of burn's generic chain of gathers and masks.

use burn::backend::AutodiffBackend;
use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;

use super::{SampleOptions, StnBackend};

#[derive(Debug)]
struct GridSampleBackward;

impl<B: StnBackend> Backward<B, 2> for GridSampleBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, SampleOptions);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_input, node_grid] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (input, grid, options) = ops.state;
        let (grad_input, grad_grid) = B::stn_grid_sample_backward(
            input,
            grid,
            grad,
            options,
            node_input.is_some(),
            node_grid.is_some(),
        );
        if let Some(node) = node_input {
            grads.register::<B>(node.id, grad_input);
        }
        if let Some(node) = node_grid {
            grads.register::<B>(node.id, grad_grid);
        }
    }
}

#[derive(Debug)]
struct AffineGridBackward;

impl<B: StnBackend> Backward<B, 1> for AffineGridBackward {
    type State = bool;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_theta] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = node_theta {
            grads.register::<B>(node.id, B::stn_affine_grid_backward(grad, ops.state));
        }
    }
}

impl<B: StnBackend, C: CheckpointStrategy> StnBackend for Autodiff<B, C> {
    fn stn_grid_sample(
        input: FloatTensor<Autodiff<B, C>>,
        grid: FloatTensor<Autodiff<B, C>>,
        options: SampleOptions,
    ) -> FloatTensor<Autodiff<B, C>> {
        match GridSampleBackward
            .prepare::<C>([input.node(), grid.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (input, grid) = (input.into_primitive(), grid.into_primitive());
                let out = B::stn_grid_sample(input.clone(), grid.clone(), options);
                prep.finish((input, grid, options), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::stn_grid_sample(
                input.into_primitive(),
                grid.into_primitive(),
                options,
            )),
        }
    }

    fn stn_grid_sample_backward(
        input: FloatTensor<Autodiff<B, C>>,
        grid: FloatTensor<Autodiff<B, C>>,
        grad_output: FloatTensor<Autodiff<B, C>>,
        options: SampleOptions,
        want_input: bool,
        want_grid: bool,
    ) -> (FloatTensor<Autodiff<B, C>>, FloatTensor<Autodiff<B, C>>) {
        // Second-order gradients are not supported: the results are constants.
        let (gi, gg) = B::stn_grid_sample_backward(
            input.into_primitive(),
            grid.into_primitive(),
            grad_output.into_primitive(),
            options,
            want_input,
            want_grid,
        );
        (Self::from_inner(gi), Self::from_inner(gg))
    }

    fn stn_affine_grid(
        theta: FloatTensor<Autodiff<B, C>>,
        height: usize,
        width: usize,
        align_corners: bool,
    ) -> FloatTensor<Autodiff<B, C>> {
        match AffineGridBackward
            .prepare::<C>([theta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(
                align_corners,
                B::stn_affine_grid(theta.into_primitive(), height, width, align_corners),
            ),
            OpsKind::UnTracked(prep) => prep.finish(B::stn_affine_grid(
                theta.into_primitive(),
                height,
                width,
                align_corners,
            )),
        }
    }

    fn stn_affine_grid_backward(
        grad_grid: FloatTensor<Autodiff<B, C>>,
        align_corners: bool,
    ) -> FloatTensor<Autodiff<B, C>> {
        Self::from_inner(B::stn_affine_grid_backward(
            grad_grid.into_primitive(),
            align_corners,
        ))
    }
}
