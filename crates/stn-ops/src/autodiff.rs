//! Custom backward passes: each op registers one node whose backward is one fused kernel call,
//! instead of burn's generic chain of gathers and masks.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{AutodiffBackend, TensorMetadata};

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

#[derive(Debug)]
struct AffineSampleBackward;

impl<B: StnBackend> Backward<B, 2> for AffineSampleBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, SampleOptions);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_input, node_theta] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (input, theta, options) = ops.state;
        let (gi, gt) = B::stn_affine_sample_backward(
            input,
            theta,
            grad,
            options,
            node_input.is_some(),
            node_theta.is_some(),
        );
        if let Some(node) = node_input {
            grads.register::<B>(node.id, gi);
        }
        if let Some(node) = node_theta {
            grads.register::<B>(node.id, gt);
        }
    }
}

#[derive(Debug)]
struct Conv2dBackward;

impl<B: StnBackend> Backward<B, 3> for Conv2dBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, w, b) = ops.state;
        let (gx, gw, gb) = B::stn_conv2d_backward(x, w, b, grad, node_x.is_some());
        if let Some(node) = node_x {
            grads.register::<B>(node.id, gx);
        }
        if let Some(node) = node_w {
            grads.register::<B>(node.id, gw);
        }
        if let Some(node) = node_b {
            grads.register::<B>(node.id, gb);
        }
    }
}

#[derive(Debug)]
struct PoolReluBackward;

impl<B: StnBackend> Backward<B, 1> for PoolReluBackward {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = node_x {
            grads.register::<B>(node.id, B::stn_pool_relu_backward(ops.state, grad));
        }
    }
}

#[derive(Debug)]
struct ToBlockedBackward;

impl<B: StnBackend> Backward<B, 1> for ToBlockedBackward {
    /// Images of the NCHW input.
    type State = usize;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = node {
            grads.register::<B>(node.id, B::stn_from_blocked(grad, ops.state));
        }
    }
}

#[derive(Debug)]
struct FromBlockedBackward;

impl<B: StnBackend> Backward<B, 1> for FromBlockedBackward {
    /// Block size of the blocked input.
    type State = usize;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = node {
            grads.register::<B>(node.id, B::stn_to_blocked(grad, ops.state));
        }
    }
}

#[derive(Debug)]
struct ConvPoolReluBackward;

impl<B: StnBackend> Backward<B, 3> for ConvPoolReluBackward {
    /// x, weight, bias and the window codes.
    type State = (
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
    );

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, w, b, codes) = ops.state;
        let (gx, gw, gb) = B::stn_conv_pool_relu_backward(x, w, b, codes, grad, node_x.is_some());
        if let Some(node) = node_x {
            grads.register::<B>(node.id, gx);
        }
        if let Some(node) = node_w {
            grads.register::<B>(node.id, gw);
        }
        if let Some(node) = node_b {
            grads.register::<B>(node.id, gb);
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

    fn stn_affine_sample(
        input: FloatTensor<Self>,
        theta: FloatTensor<Self>,
        height: usize,
        width: usize,
        options: SampleOptions,
    ) -> FloatTensor<Self> {
        match AffineSampleBackward
            .prepare::<C>([input.node(), theta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (input, theta) = (input.into_primitive(), theta.into_primitive());
                let out =
                    B::stn_affine_sample(input.clone(), theta.clone(), height, width, options);
                prep.finish((input, theta, options), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::stn_affine_sample(
                input.into_primitive(),
                theta.into_primitive(),
                height,
                width,
                options,
            )),
        }
    }

    fn stn_affine_sample_backward(
        input: FloatTensor<Self>,
        theta: FloatTensor<Self>,
        grad_output: FloatTensor<Self>,
        options: SampleOptions,
        want_input: bool,
        want_theta: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (gi, gt) = B::stn_affine_sample_backward(
            input.into_primitive(),
            theta.into_primitive(),
            grad_output.into_primitive(),
            options,
            want_input,
            want_theta,
        );
        (Self::from_inner(gi), Self::from_inner(gt))
    }

    fn stn_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        match Conv2dBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, w, b) = (
                    x.into_primitive(),
                    weight.into_primitive(),
                    bias.into_primitive(),
                );
                let out = B::stn_conv2d(x.clone(), w.clone(), b.clone());
                prep.finish((x, w, b), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::stn_conv2d(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
            )),
        }
    }

    fn stn_conv2d_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        grad_output: FloatTensor<Self>,
        want_x: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (gx, gw, gb) = B::stn_conv2d_backward(
            x.into_primitive(),
            weight.into_primitive(),
            bias.into_primitive(),
            grad_output.into_primitive(),
            want_x,
        );
        (
            Self::from_inner(gx),
            Self::from_inner(gw),
            Self::from_inner(gb),
        )
    }

    fn stn_pool_relu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match PoolReluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let x = x.into_primitive();
                let out = B::stn_pool_relu(x.clone());
                prep.finish(x, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::stn_pool_relu(x.into_primitive())),
        }
    }

    fn stn_pool_relu_backward(
        x: FloatTensor<Self>,
        grad_output: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        Self::from_inner(B::stn_pool_relu_backward(
            x.into_primitive(),
            grad_output.into_primitive(),
        ))
    }

    fn stn_to_blocked(x: FloatTensor<Self>, block: usize) -> FloatTensor<Self> {
        let n = x.primitive().shape()[0];
        match ToBlockedBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(n, B::stn_to_blocked(x.into_primitive(), block)),
            OpsKind::UnTracked(prep) => prep.finish(B::stn_to_blocked(x.into_primitive(), block)),
        }
    }

    fn stn_from_blocked(x: FloatTensor<Self>, n: usize) -> FloatTensor<Self> {
        let block = x.primitive().shape()[4];
        match FromBlockedBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                prep.finish(block, B::stn_from_blocked(x.into_primitive(), n))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::stn_from_blocked(x.into_primitive(), n)),
        }
    }

    fn stn_conv_pool_relu(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        match ConvPoolReluBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, w, b) = (
                    x.into_primitive(),
                    weight.into_primitive(),
                    bias.into_primitive(),
                );
                let (y, codes) = B::stn_conv_pool_relu(x.clone(), w.clone(), b.clone());
                (
                    prep.finish((x, w, b, codes.clone()), y),
                    Self::from_inner(codes),
                )
            }
            OpsKind::UnTracked(prep) => {
                let (y, codes) = B::stn_conv_pool_relu(
                    x.into_primitive(),
                    weight.into_primitive(),
                    bias.into_primitive(),
                );
                (prep.finish(y), Self::from_inner(codes))
            }
        }
    }

    fn stn_conv_pool_relu_output(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let tracked = [&x, &weight, &bias].iter().any(|t| t.is_tracked());
        if tracked {
            return Self::stn_conv_pool_relu(x, weight, bias).0;
        }
        Self::from_inner(B::stn_conv_pool_relu_output(
            x.into_primitive(),
            weight.into_primitive(),
            bias.into_primitive(),
        ))
    }

    fn stn_conv_pool_relu_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        codes: FloatTensor<Self>,
        grad_output: FloatTensor<Self>,
        want_x: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (gx, gw, gb) = B::stn_conv_pool_relu_backward(
            x.into_primitive(),
            weight.into_primitive(),
            bias.into_primitive(),
            codes.into_primitive(),
            grad_output.into_primitive(),
            want_x,
        );
        (
            Self::from_inner(gx),
            Self::from_inner(gw),
            Self::from_inner(gb),
        )
    }
}
