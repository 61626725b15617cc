//! Stochastic gradient descent with PyTorch's semantics (`torch.optim.SGD`: optional momentum
//! and weight decay, no dampening), with its state kept by parameter name so it can be
//! checkpointed and resumed exactly.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::model::state::{StateDict, StateTensor, torch_name};

/// SGD hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor (0: plain SGD, the tutorial's).
    pub momentum: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Learning-rate multiplier of the localization network (the parameters named
    /// `localization.*` and `fc_loc.*`, with `st2.` before them for a second transformer); 1
    /// trains it like the rest, as the tutorial does. A smaller rate keeps the transformer from
    /// collapsing early in harder problems.
    #[serde(default = "one")]
    pub loc_lr_scale: f64,
}

fn one() -> f64 {
    1.0
}

impl SgdConfig {
    /// Plain SGD at `lr` (no momentum, no weight decay, one rate for every parameter).
    pub fn plain(lr: f64) -> Self {
        Self {
            lr,
            momentum: 0.0,
            weight_decay: 0.0,
            loc_lr_scale: 1.0,
        }
    }

    /// The learning rate of the parameter named `name` (the second transformer's of a 2xST
    /// network, `st2.localization.*` and `st2.fc_loc.*`, are localization parameters too).
    pub fn lr_for(&self, name: &str) -> f64 {
        let name = name.strip_prefix("st2.").unwrap_or(name);
        if name.starts_with("localization.") || name.starts_with("fc_loc.") {
            self.lr * self.loc_lr_scale
        } else {
            self.lr
        }
    }
}

/// SGD with its momentum buffers.
#[derive(Debug, Default, Clone)]
pub struct Sgd {
    /// Momentum buffers by parameter name, flattened (empty without momentum).
    buffers: BTreeMap<String, Tensor<1>>,
}

impl Sgd {
    /// A fresh optimizer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one step to every parameter of `module` that has a gradient in `grads`
    /// (flattened, by parameter name: see [`crate::model::state::named_gradients`]).
    pub fn step<M: Module>(
        &mut self,
        config: &SgdConfig,
        module: M,
        grads: &BTreeMap<String, Tensor<1>>,
    ) -> M {
        let mut mapper = Stepper {
            config,
            grads,
            path: Vec::new(),
            buffers: &mut self.buffers,
        };
        module.map(&mut mapper)
    }

    /// The momentum buffers by parameter name, flattened, in the parameters' dtype.
    pub fn buffers(&self) -> &BTreeMap<String, Tensor<1>> {
        &self.buffers
    }

    /// The momentum buffers, for checkpoints.
    pub fn state(&self) -> StateDict {
        self.buffers
            .iter()
            .map(|(k, b)| {
                let data = b
                    .to_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .expect("f32 buffer");
                (
                    k.clone(),
                    StateTensor {
                        shape: vec![data.len()],
                        data,
                    },
                )
            })
            .collect()
    }

    /// Restores buffers saved by [`Sgd::state`] onto `device`.
    pub fn from_state(state: &StateDict, device: &Device) -> Self {
        let buffers = state
            .iter()
            .map(|(name, t)| {
                let n = t.data.len();
                (
                    name.clone(),
                    Tensor::from_data(TensorData::new(t.data.clone(), [n]), device),
                )
            })
            .collect();
        Self { buffers }
    }
}

struct Stepper<'a> {
    config: &'a SgdConfig,
    grads: &'a BTreeMap<String, Tensor<1>>,
    path: Vec<String>,
    buffers: &'a mut BTreeMap<String, Tensor<1>>,
}

impl Stepper<'_> {
    /// The new value of a parameter, all tensors flattened.
    fn update(&mut self, name: String, value: Tensor<1>, grad: Tensor<1>) -> Tensor<1> {
        let c = self.config;
        let mut g = grad;
        if c.weight_decay != 0.0 {
            g = g + value.clone() * c.weight_decay;
        }
        let lr = c.lr_for(&name);
        if c.momentum != 0.0 {
            let buf = match self.buffers.remove(&name) {
                Some(b) => b * c.momentum + g,
                None => g,
            };
            self.buffers.insert(name, buf.clone());
            g = buf;
        }
        value - g * lr
    }
}

impl ModuleMapper for Stepper<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let name = torch_name(&self.path.join("."));
        param.map(|t| {
            let Some(grad) = self.grads.get(&name).cloned() else {
                return t;
            };
            let require_grad = t.is_require_grad();
            let dims = t.dims();
            let n: usize = dims.iter().product();
            let value = t.inner();
            let updated = self.update(name, value.reshape([n]), grad).reshape(dims);
            let updated = Tensor::from_inner(updated);
            if require_grad {
                updated.require_grad()
            } else {
                updated
            }
        })
    }
}
