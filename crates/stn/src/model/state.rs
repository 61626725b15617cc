//! State dicts: a network's parameters by name, in PyTorch's names and layouts, as f32.
//!
//! burn paths such as `transformer.fc_loc.fc2.weight` are renamed to PyTorch's `fc_loc.2.weight`, so
//! stn checkpoints, the tutorial's PyTorch state_dict and the JSON fixtures share one format.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};

/// One named parameter: shape and row-major f32 values.
#[derive(Clone, Debug, PartialEq)]
pub struct StateTensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f32>,
}

/// Parameters by (PyTorch) name, sorted.
pub type StateDict = BTreeMap<String, StateTensor>;

/// Why a state dict does not fit a network.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StateError {
    /// A parameter the network needs is absent.
    #[error("parameter {0} is missing: the file holds a different architecture")]
    Missing(String),
    /// Parameters the network does not have.
    #[error("unexpected parameters {0:?}: the file holds a different architecture")]
    Unexpected(Vec<String>),
    /// A parameter has the wrong shape.
    #[error(
        "parameter {name} has shape {found:?}, this network needs {expected:?}: the file holds a different architecture"
    )]
    Shape {
        /// Parameter name.
        name: String,
        /// Shape the network needs.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// A parameter holds NaN or infinity.
    #[error("parameter {0} holds NaN or infinite values")]
    NonFinite(String),
}

/// burn module paths -> PyTorch names, for the parts whose PyTorch names are Sequential indices.
const RENAMES: [(&str, &str); 4] = [
    ("localization.conv1.", "localization.0."),
    ("localization.conv2.", "localization.3."),
    ("fc_loc.fc1.", "fc_loc.0."),
    ("fc_loc.fc2.", "fc_loc.2."),
];

/// The prefix of the parameter names of transformer `t` (from 0) of a network with several
/// side by side: none for the first (its names are the tutorial's), `st2.` for the second.
pub fn transformer_prefix(t: usize) -> String {
    match t {
        0 => String::new(),
        t => format!("st{}.", t + 1),
    }
}

/// The PyTorch name of a burn parameter path.
pub fn torch_name(path: &str) -> String {
    // The second transformer of a 2xST network: its own names, prefixed.
    if let Some(rest) = path.strip_prefix("transformer2.") {
        return format!(
            "{}{}",
            transformer_prefix(1),
            torch_name(&format!("transformer.{rest}"))
        );
    }
    let path = path.strip_prefix("transformer.").unwrap_or(path);
    // stn's networks hold their localization network as an enum (`LocalizationNet`), whose
    // variant burn adds to the path; the variants' parameter names do not overlap.
    let unwrapped = ["Conv.", "Mlp."].iter().find_map(|v| {
        path.strip_prefix("localization.")
            .and_then(|rest| rest.strip_prefix(v))
            .map(|rest| format!("localization.{rest}"))
    });
    let path = unwrapped.as_deref().unwrap_or(path);
    for (from, to) in RENAMES {
        if let Some(rest) = path.strip_prefix(from) {
            return format!("{to}{rest}");
        }
    }
    path.to_string()
}

#[derive(Default)]
struct Collector {
    path: Vec<String>,
    out: StateDict,
}

impl ModuleVisitor for Collector {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        let shape = t.dims().to_vec();
        let data = t
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 parameter data");
        self.out.insert(
            torch_name(&self.path.join(".")),
            StateTensor { shape, data },
        );
    }
}

/// The parameters of `module` by PyTorch name.
pub fn state_dict<M: Module>(module: &M) -> StateDict {
    let mut c = Collector::default();
    module.visit(&mut c);
    c.out
}

struct Loader<'a> {
    path: Vec<String>,
    state: &'a StateDict,
    used: usize,
    error: Option<StateError>,
}

impl ModuleMapper for Loader<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.error.is_some() {
            return param;
        }
        let name = torch_name(&self.path.join("."));
        let Some(src) = self.state.get(&name) else {
            self.error = Some(StateError::Missing(name));
            return param;
        };
        let expected = param.dims().to_vec();
        if src.shape != expected {
            self.error = Some(StateError::Shape {
                name,
                expected,
                found: src.shape.clone(),
            });
            return param;
        }
        if src.data.iter().any(|v| !v.is_finite()) {
            self.error = Some(StateError::NonFinite(name));
            return param;
        }
        self.used += 1;
        param.map(|t| {
            let loaded = Tensor::from_data(
                TensorData::new(src.data.clone(), src.shape.clone()),
                (&t.device(), t.dtype()),
            );
            // A fresh tensor is a constant; keep the parameter trainable if it was.
            if t.is_require_grad() {
                loaded.require_grad()
            } else {
                loaded
            }
        })
    }
}

/// Checks that `state` holds exactly the parameters `expected` names, with those shapes.
pub fn check_shapes(
    expected: &BTreeMap<String, Vec<usize>>,
    state: &StateDict,
) -> Result<(), StateError> {
    for (name, shape) in expected {
        let Some(t) = state.get(name) else {
            return Err(StateError::Missing(name.clone()));
        };
        if &t.shape != shape {
            return Err(StateError::Shape {
                name: name.clone(),
                expected: shape.clone(),
                found: t.shape.clone(),
            });
        }
    }
    let extra: Vec<String> = state
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .cloned()
        .collect();
    if extra.is_empty() {
        Ok(())
    } else {
        Err(StateError::Unexpected(extra))
    }
}

/// Loads `state` into `module`: every parameter must be present with its exact shape, and no
/// other parameter may be there.
pub fn load_state_dict<M: Module>(module: M, state: &StateDict) -> Result<M, StateError> {
    let mut loader = Loader {
        path: Vec::new(),
        state,
        used: 0,
        error: None,
    };
    let module = module.map(&mut loader);
    if let Some(e) = loader.error {
        return Err(e);
    }
    if loader.used != state.len() {
        let known = state_dict_names(&module);
        let extra: Vec<String> = state
            .keys()
            .filter(|k| !known.contains(*k))
            .cloned()
            .collect();
        return Err(StateError::Unexpected(extra));
    }
    Ok(module)
}

fn state_dict_names<M: Module>(module: &M) -> Vec<String> {
    state_dict(module).into_keys().collect()
}

/// Walks a module's parameters and hands each one's gradient in `grads` to `f`, flattened,
/// with its PyTorch name and shape.
struct GradVisitor<'a, F> {
    path: Vec<String>,
    grads: &'a burn::tensor::Gradients,
    f: F,
}

impl<F: FnMut(String, Tensor<1>, &[usize])> ModuleVisitor for GradVisitor<'_, F> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = param.val().grad(self.grads) {
            let shape = g.dims();
            let n = shape.iter().product::<usize>();
            (self.f)(torch_name(&self.path.join(".")), g.reshape([n]), &shape);
        }
    }
}

fn visit_gradients<M: Module>(
    module: &M,
    grads: &burn::tensor::Gradients,
    f: impl FnMut(String, Tensor<1>, &[usize]),
) {
    module.visit(&mut GradVisitor {
        path: Vec::new(),
        grads,
        f,
    });
}

/// The gradient of every parameter of `module` in `grads`, by PyTorch name.
pub fn gradients<M: Module>(module: &M, grads: &burn::tensor::Gradients) -> StateDict {
    let mut out = StateDict::new();
    visit_gradients(module, grads, |name, g, shape| {
        let data = g
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 gradient data");
        out.insert(
            name,
            StateTensor {
                shape: shape.to_vec(),
                data,
            },
        );
    });
    out
}

/// The gradient of every parameter of `module` in `grads`, flattened, by PyTorch name, left on
/// the device (what [`crate::optim::Sgd::step`] takes).
pub fn named_gradients<M: Module>(
    module: &M,
    grads: &burn::tensor::Gradients,
) -> BTreeMap<String, Tensor<1>> {
    let mut out = BTreeMap::new();
    visit_gradients(module, grads, |name, g, _| {
        out.insert(name, g);
    });
    out
}

struct FreshLeaves;

impl ModuleMapper for FreshLeaves {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| {
            if t.is_require_grad() {
                Tensor::from_inner(t.inner()).require_grad()
            } else {
                t
            }
        })
    }
}

/// The same module with new autodiff leaves for its trainable parameters (sharing their
/// data): its forward passes build a graph of their own, so two copies can run forward and
/// backward at the same time on different threads.
pub fn fresh_leaves<M: Module>(module: M) -> M {
    module.map(&mut FreshLeaves)
}
