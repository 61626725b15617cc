//! Reads PyTorch state_dicts saved with `torch.save` (.pt / .pth) natively, no Python: the
//! tutorial's trained weights load straight into [`crate::model::Net`].

use std::path::{Path, PathBuf};

use burn::store::pytorch_reader::PytorchReader;

use crate::model::state::{StateDict, StateTensor};

/// Why a PyTorch file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TorchImportError {
    /// The file does not exist.
    #[error("{}: file not found", .0.display())]
    Missing(PathBuf),
    /// Not a readable torch.save file.
    #[error("{}: not a readable PyTorch file ({detail}); expected a state_dict saved with torch.save", path.display())]
    Unreadable {
        /// The path.
        path: PathBuf,
        /// What the reader said.
        detail: String,
    },
    /// A tensor with an element type we do not convert.
    #[error("{}: tensor {name} has element type {dtype}, expected floating point", path.display())]
    DType {
        /// The path.
        path: PathBuf,
        /// Tensor name.
        name: String,
        /// Its element type.
        dtype: String,
    },
}

/// Reads every floating-point tensor of a torch.save'd state_dict, converted to f32.
pub fn read_state_dict(path: &Path) -> Result<StateDict, TorchImportError> {
    use burn::store::pytorch_reader::DType;
    if !path.exists() {
        return Err(TorchImportError::Missing(path.to_path_buf()));
    }
    let unreadable = |detail: String| TorchImportError::Unreadable {
        path: path.to_path_buf(),
        detail,
    };
    let reader = PytorchReader::new(path).map_err(|e| unreadable(e.to_string()))?;
    let mut out = StateDict::new();
    for (name, tensor) in reader.into_tensors() {
        let bytes = tensor.read().map_err(|e| unreadable(e.to_string()))?;
        let data: Vec<f32> = match tensor.dtype() {
            DType::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            DType::F64 => bytes
                .chunks_exact(8)
                .map(|b| f64::from_ne_bytes(b.try_into().expect("8 bytes")) as f32)
                .collect(),
            DType::F16 => bytes
                .chunks_exact(2)
                .map(|b| burn::tensor::f16::from_ne_bytes([b[0], b[1]]).to_f32())
                .collect(),
            DType::BF16 => bytes
                .chunks_exact(2)
                .map(|b| burn::tensor::bf16::from_ne_bytes([b[0], b[1]]).to_f32())
                .collect(),
            // Integer buffers (e.g. BatchNorm's num_batches_tracked) are not parameters.
            _ if is_integer(tensor.dtype()) => continue,
            other => {
                return Err(TorchImportError::DType {
                    path: path.to_path_buf(),
                    name,
                    dtype: format!("{other:?}"),
                });
            }
        };
        out.insert(
            name,
            StateTensor {
                shape: tensor.shape().to_vec(),
                data,
            },
        );
    }
    if out.is_empty() {
        return Err(unreadable("it holds no floating-point tensors".into()));
    }
    Ok(out)
}

fn is_integer(d: burn::store::pytorch_reader::DType) -> bool {
    use burn::store::pytorch_reader::DType::*;
    matches!(d, I64 | I32 | I16 | I8 | U64 | U32 | U16 | U8)
}
