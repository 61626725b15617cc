//! `stn-idx`: IDX files (the MNIST container format), raw or gzipped, with precise errors.
//!
//! Layout: two zero bytes, a type byte (0x08 = unsigned byte), the number of dimensions, one
//! big-endian u32 per dimension, then the values in row-major order.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

/// Largest decompressed file we accept: far above MNIST-like sets, and a bound on what a
/// hostile gzip stream can make us allocate.
pub const MAX_DECOMPRESSED_BYTES: u64 = 4 << 30;

/// What is wrong with the bytes of an IDX file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdxFormatError {
    /// Shorter than the fixed header.
    #[error("truncated header: {len} bytes, an IDX file starts with at least 4")]
    ShortHeader {
        /// Bytes available.
        len: usize,
    },
    /// The first bytes are not an unsigned-byte IDX magic number.
    #[error(
        "wrong magic number {found:02x?}: an IDX file of unsigned bytes starts with 00 00 08 <dims>; is this an MNIST-format file?"
    )]
    Magic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// The number of dimensions is not what the reader expects.
    #[error("has {found} dimensions, expected {expected}")]
    Dimensions {
        /// Dimensions found.
        found: usize,
        /// Dimensions expected.
        expected: usize,
    },
    /// The dimension sizes end before their count says.
    #[error("truncated header: {dims} dimension sizes need {need} bytes, file has {len}")]
    ShortDims {
        /// Number of dimensions.
        dims: usize,
        /// Header bytes needed.
        need: usize,
        /// Bytes available.
        len: usize,
    },
    /// The dimension sizes multiply past what memory can hold.
    #[error("dimensions {dims:?} are too large")]
    TooLarge {
        /// The dimension sizes.
        dims: Vec<usize>,
    },
    /// Fewer values than the dimensions promise.
    #[error("truncated: dimensions {dims:?} need {expected} data bytes, found {found}")]
    Truncated {
        /// The dimension sizes.
        dims: Vec<usize>,
        /// Bytes the dimensions promise.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// More bytes than the dimensions promise.
    #[error("{extra} unexpected bytes after the data of dimensions {dims:?}")]
    Trailing {
        /// The dimension sizes.
        dims: Vec<usize>,
        /// Bytes beyond the data.
        extra: usize,
    },
}

/// Why an IDX file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IdxError {
    /// The file does not exist.
    #[error("{}: file not found", path.display())]
    Missing {
        /// The path.
        path: PathBuf,
    },
    /// The file exists but cannot be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The gzip stream is broken.
    #[error("{}: corrupt or truncated gzip data ({detail}); download the file again", path.display())]
    Gzip {
        /// The path.
        path: PathBuf,
        /// What the decoder said.
        detail: String,
    },
    /// The bytes are not a valid IDX file.
    #[error("{}: {source}", path.display())]
    Format {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        source: IdxFormatError,
    },
}

/// An IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimension sizes, outermost first.
    pub dims: Vec<usize>,
    /// Values in row-major order.
    pub data: Vec<u8>,
}

/// Parses the bytes of an (uncompressed) IDX file of unsigned bytes with `expected_dims`
/// dimensions. Never panics, whatever the input.
pub fn parse(bytes: &[u8], expected_dims: usize) -> Result<IdxArray, IdxFormatError> {
    if bytes.len() < 4 {
        return Err(IdxFormatError::ShortHeader { len: bytes.len() });
    }
    let magic = [bytes[0], bytes[1], bytes[2], bytes[3]];
    if magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 {
        return Err(IdxFormatError::Magic { found: magic });
    }
    let ndims = magic[3] as usize;
    if ndims != expected_dims {
        return Err(IdxFormatError::Dimensions {
            found: ndims,
            expected: expected_dims,
        });
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(IdxFormatError::ShortDims {
            dims: ndims,
            need: header,
            len: bytes.len(),
        });
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| IdxFormatError::TooLarge { dims: dims.clone() })?;
    let found = bytes.len() - header;
    if found < expected {
        return Err(IdxFormatError::Truncated {
            dims,
            expected,
            found,
        });
    }
    if found > expected {
        return Err(IdxFormatError::Trailing {
            dims,
            extra: found - expected,
        });
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Decompresses `bytes` if they are gzip (by their magic number), else returns them as they are.
pub fn maybe_gunzip(bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    if bytes.len() < 2 || bytes[0] != 0x1f || bytes[1] != 0x8b {
        return Ok(bytes);
    }
    let mut out = Vec::new();
    let decoder = MultiGzDecoder::new(&bytes[..]);
    decoder
        .take(MAX_DECOMPRESSED_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() as u64 > MAX_DECOMPRESSED_BYTES {
        return Err(format!(
            "decompresses to more than {MAX_DECOMPRESSED_BYTES} bytes"
        ));
    }
    Ok(out)
}

/// Reads an IDX file of unsigned bytes, gzipped or not, with `expected_dims` dimensions.
pub fn read(path: &Path, expected_dims: usize) -> Result<IdxArray, IdxError> {
    let mut file = File::open(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => IdxError::Missing {
            path: path.to_path_buf(),
        },
        _ => IdxError::Io {
            path: path.to_path_buf(),
            source,
        },
    })?;
    let mut raw = Vec::new();
    file.read_to_end(&mut raw).map_err(|source| IdxError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bytes = maybe_gunzip(raw).map_err(|detail| IdxError::Gzip {
        path: path.to_path_buf(),
        detail,
    })?;
    parse(&bytes, expected_dims).map_err(|source| IdxError::Format {
        path: path.to_path_buf(),
        source,
    })
}

/// Encodes an IDX file of unsigned bytes (uncompressed).
pub fn encode(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 * dims.len() + data.len());
    out.extend_from_slice(&[0, 0, 0x08, dims.len() as u8]);
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}
