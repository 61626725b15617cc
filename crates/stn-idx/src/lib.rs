//! `stn-idx`: IDX files (the MNIST container format), raw or gzipped, with precise errors.
//!
//! Layout: two zero bytes, a type byte (0x08 = unsigned byte), the number of dimensions, one
//! big-endian u32 per dimension, then the values in row-major order.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

/// Largest decompressed file [`maybe_gunzip`] accepts: the largest valid file (the values'
/// limit and the longest header, 4 + 4 x 255 bytes, rounded up), a bound on what a hostile
/// gzip stream can make it allocate.
pub const MAX_DECOMPRESSED_BYTES: u64 = MAX_DATA_BYTES + 1024;

/// Largest number of value bytes a header may promise: 512 MiB. MNIST's training images are
/// 47 MB, EMNIST's largest set of digits 188 MB and the biggest set `stn data` makes (60x60
/// translated and cluttered digits) 216 MB; 512 MiB leaves more than twice that, and bounds
/// what a file (a gzip bomb above all) can make the reader allocate.
pub const MAX_DATA_BYTES: u64 = 512 << 20;

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
    /// The dimension sizes multiply past [`MAX_DATA_BYTES`].
    #[error("dimensions {dims:?} promise more than {MAX_DATA_BYTES} bytes of values")]
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
    #[error(
        "{} unexpected bytes after the data of dimensions {dims:?}",
        extra.map_or("some".to_string(), |n| n.to_string())
    )]
    Trailing {
        /// The dimension sizes.
        dims: Vec<usize>,
        /// Bytes beyond the data, when known (a stream is not read past the first of them).
        extra: Option<usize>,
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

/// The header of an IDX file: dimension sizes and the number of value bytes they promise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Dimension sizes, outermost first.
    pub dims: Vec<usize>,
    /// Header length in bytes.
    pub len: usize,
    /// Value bytes the dimensions promise.
    pub data_len: usize,
}

/// Parses the header at the start of `bytes` (which may hold just the header, or more), for an
/// IDX file of unsigned bytes with `expected_dims` dimensions. Never panics.
pub fn parse_header(bytes: &[u8], expected_dims: usize) -> Result<Header, IdxFormatError> {
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
    let len = 4 + 4 * ndims;
    if bytes.len() < len {
        return Err(IdxFormatError::ShortDims {
            dims: ndims,
            need: len,
            len: bytes.len(),
        });
    }
    let dims: Vec<usize> = bytes[4..len]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let data_len = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n as u64 <= MAX_DATA_BYTES)
        .ok_or_else(|| IdxFormatError::TooLarge { dims: dims.clone() })?;
    Ok(Header {
        dims,
        len,
        data_len,
    })
}

/// Parses the bytes of an (uncompressed) IDX file of unsigned bytes with `expected_dims`
/// dimensions. Never panics, whatever the input.
pub fn parse(bytes: &[u8], expected_dims: usize) -> Result<IdxArray, IdxFormatError> {
    let Header {
        dims,
        len,
        data_len,
    } = parse_header(bytes, expected_dims)?;
    let found = bytes.len() - len;
    if found < data_len {
        return Err(IdxFormatError::Truncated {
            dims,
            expected: data_len,
            found,
        });
    }
    if found > data_len {
        return Err(IdxFormatError::Trailing {
            dims,
            extra: Some(found - data_len),
        });
    }
    Ok(IdxArray {
        dims,
        data: bytes[len..].to_vec(),
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
///
/// The file is read as a stream: the header first, then exactly the values it promises and one
/// byte more (to detect trailing data), decompressing as it goes. Memory is bounded by the
/// declared size (itself at most [`MAX_DATA_BYTES`]), however far a gzip stream would expand,
/// and the values are never copied after reading.
pub fn read(path: &Path, expected_dims: usize) -> Result<IdxArray, IdxError> {
    let file = File::open(path).map_err(|source| io_error(path, source))?;
    read_file(file, path, expected_dims)
}

fn io_error(path: &Path, source: io::Error) -> IdxError {
    match source.kind() {
        io::ErrorKind::NotFound => IdxError::Missing {
            path: path.to_path_buf(),
        },
        _ => IdxError::Io {
            path: path.to_path_buf(),
            source,
        },
    }
}

/// Like [`read`], from a file the caller opened (after checking it is a regular file of a
/// sensible size); `path` is only used in error messages. Reads at most the promised values'
/// size (itself at most [`MAX_DATA_BYTES`]) and one byte from the decompressed stream, and
/// then, to count trailing bytes, at most [`MAX_DATA_BYTES`] more, which are not kept.
pub fn read_file(file: impl Read, path: &Path, expected_dims: usize) -> Result<IdxArray, IdxError> {
    let io_error = |source: io::Error| io_error(path, source);
    let mut file = BufReader::new(file);
    let gzipped = file
        .fill_buf()
        .map_err(io_error)?
        .starts_with(&[0x1f, 0x8b]);
    let result = if gzipped {
        let mut decoder = MultiGzDecoder::new(file);
        match read_from(&mut decoder, expected_dims) {
            // Bytes beyond the data may be garbage a corrupt stream decodes to: the stream's
            // checksum, at its end, tells. Count them without keeping them.
            Err(ReadError::Format(IdxFormatError::Trailing { dims, .. })) => {
                match io::copy(&mut (&mut decoder).take(MAX_DATA_BYTES), &mut io::sink()) {
                    Err(e) => Err(ReadError::Io(e)),
                    Ok(n) => Err(ReadError::Format(IdxFormatError::Trailing {
                        dims,
                        extra: (n < MAX_DATA_BYTES).then_some(n as usize + 1),
                    })),
                }
            }
            other => other,
        }
    } else {
        read_from(&mut file, expected_dims)
    };
    result.map_err(|e| match e {
        ReadError::Format(source) => IdxError::Format {
            path: path.to_path_buf(),
            source,
        },
        // The plain reader's errors are the file system's; the decoder's, the stream's.
        ReadError::Io(source) if gzipped => IdxError::Gzip {
            path: path.to_path_buf(),
            detail: source.to_string(),
        },
        ReadError::Io(source) => io_error(source),
    })
}

/// Why [`read_from`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The bytes are not a valid IDX file.
    #[error(transparent)]
    Format(#[from] IdxFormatError),
    /// The reader failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads an (uncompressed) IDX stream with `expected_dims` dimensions: the header, then the
/// values it promises, and one byte more to detect trailing data. Never panics.
pub fn read_from(reader: &mut impl Read, expected_dims: usize) -> Result<IdxArray, ReadError> {
    let mut head = Vec::with_capacity(4 + 4 * 255);
    reader.take(4).read_to_end(&mut head)?;
    if head.len() == 4 {
        let ndims = head[3] as u64;
        reader.take(4 * ndims).read_to_end(&mut head)?;
    }
    let Header { dims, data_len, .. } = parse_header(&head, expected_dims)?;
    let mut data = Vec::with_capacity(data_len);
    reader.take(data_len as u64 + 1).read_to_end(&mut data)?;
    if data.len() < data_len {
        return Err(IdxFormatError::Truncated {
            dims,
            expected: data_len,
            found: data.len(),
        }
        .into());
    }
    if data.len() > data_len {
        return Err(IdxFormatError::Trailing { dims, extra: None }.into());
    }
    Ok(IdxArray { dims, data })
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
