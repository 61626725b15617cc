//! Reading input files safely: every file `stn` reads that a user names (pictures for
//! `predict`, models and checkpoints, IDX data) is opened here.
//!
//! - Only regular files (or links to them) are read. The path's metadata is checked before it
//!   is opened, so a FIFO, a device (`/dev/zero`, `/dev/stdin`) or a socket is refused at once
//!   instead of blocking or streaming forever; the opened file's metadata is checked again,
//!   so a file swapped in between is refused too. No command reads standard input.
//! - Each kind of file has a size limit ([`Limit`]), checked against the file's size before
//!   reading, and reads never take more than the limit and one byte (`Read::take`), so a file
//!   that grows while it is read costs no more than the limit either.
//!
//! Errors are one line naming the file: `/dev/zero: not a regular file (a character device)`,
//! `big.png: 1.0 GiB is over the 16 MiB limit for images`.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// A size limit for one kind of file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// The kind of file, plural, for messages ("images").
    pub what: &'static str,
    /// The largest size accepted, in bytes.
    pub bytes: u64,
}

/// Pictures given to `stn predict`: 16 MiB, above any photo of a digit (a 12-megapixel phone
/// JPEG is 3 to 8 MB) and small enough that reading one costs little.
pub const IMAGE: Limit = Limit {
    what: "images",
    bytes: 16 << 20,
};

/// Models: stn checkpoints and PyTorch `.pt` files, 1 GiB. The tutorial's network is 0.1 MB
/// (its checkpoint, with momentum, 0.3 MB) and the paper's largest (60x60 inputs, thin plate
/// splines) a few MB; 1 GiB leaves room for networks on far larger images while bounding
/// what a hostile file can make a command allocate.
pub const MODEL: Limit = Limit {
    what: "model files",
    bytes: 1 << 30,
};

/// IDX data files, raw or gzipped: their values are at most [`stn_idx::MAX_DATA_BYTES`]
/// (512 MiB) and their header at most 1,024 bytes (see there for why).
pub const IDX: Limit = Limit {
    what: "IDX files",
    bytes: stn_idx::MAX_DATA_BYTES + 1024,
};

/// Why an input file could not be read. Displayed as `PATH: REASON` (see
/// [`ReadError::reason`]).
#[derive(Debug)]
pub enum ReadError {
    /// The file does not exist.
    Missing(PathBuf),
    /// A folder, FIFO, device or socket.
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is instead: "a folder", "a FIFO", "a character device", ...
        what: &'static str,
    },
    /// Larger than the limit for its kind.
    TooLarge {
        /// The path.
        path: PathBuf,
        /// Its size, when known (a file that grew while read: `None`).
        size: Option<u64>,
        /// The limit it broke.
        limit: Limit,
    },
    /// The file system refused.
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path().display(), self.reason())
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl ReadError {
    /// What is wrong, without the path: "not a regular file (a FIFO)".
    pub fn reason(&self) -> String {
        match self {
            // The words of the system's error, as before files were read here.
            Self::Missing(_) => "cannot read: No such file or directory".into(),
            Self::NotRegular { what, .. } => format!("not a regular file ({what})"),
            Self::TooLarge { size, limit, .. } => format!(
                "{} is over the {} limit for {}",
                size.map_or("the file".to_string(), human),
                human(limit.bytes),
                limit.what
            ),
            Self::Io { source, .. } => format!("cannot read: {source}"),
        }
    }

    /// The path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Missing(path)
            | Self::NotRegular { path, .. }
            | Self::TooLarge { path, .. }
            | Self::Io { path, .. } => path,
        }
    }

    fn io(path: &Path, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::NotFound => Self::Missing(path.to_path_buf()),
            _ => Self::Io {
                path: path.to_path_buf(),
                source,
            },
        }
    }
}

/// "16 MiB", "1.0 GiB", "512 bytes": a size for people.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.1}");
    format!(
        "{} {}",
        text.strip_suffix(".0").unwrap_or(&text),
        UNITS[unit]
    )
}

fn file_kind(meta: &Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        return None;
    }
    if t.is_dir() {
        return Some("a folder");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return Some("a FIFO");
        }
        if t.is_char_device() {
            return Some("a character device");
        }
        if t.is_block_device() {
            return Some("a block device");
        }
        if t.is_socket() {
            return Some("a socket");
        }
    }
    Some("not a plain file")
}

fn check(path: &Path, meta: &Metadata, limit: Limit) -> Result<(), ReadError> {
    if let Some(what) = file_kind(meta) {
        return Err(ReadError::NotRegular {
            path: path.to_path_buf(),
            what,
        });
    }
    if meta.len() > limit.bytes {
        return Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            size: Some(meta.len()),
            limit,
        });
    }
    Ok(())
}

/// Checks that `path` is a regular file within `limit` without opening it (for readers that
/// open files by path themselves).
pub fn check_path(path: &Path, limit: Limit) -> Result<Metadata, ReadError> {
    let meta = std::fs::metadata(path).map_err(|e| ReadError::io(path, e))?;
    check(path, &meta, limit)?;
    Ok(meta)
}

/// An open regular file within its limit.
#[derive(Debug)]
pub struct LimitedFile {
    file: File,
    len: u64,
}

impl LimitedFile {
    /// The file's size when it was opened.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file was empty when opened.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The file, to read at most the limit and one byte from (see [`open`]).
    pub fn into_inner(self) -> File {
        self.file
    }
}

/// Opens `path` for reading if it is a regular file within `limit`: the metadata is checked
/// before opening (a FIFO or device is never opened) and again on the opened file.
///
/// The caller must bound what it reads ([`read`] does: `limit + 1` bytes at most).
pub fn open(path: &Path, limit: Limit) -> Result<LimitedFile, ReadError> {
    check_path(path, limit)?;
    let file = File::open(path).map_err(|e| ReadError::io(path, e))?;
    let meta = file.metadata().map_err(|e| ReadError::io(path, e))?;
    check(path, &meta, limit)?;
    Ok(LimitedFile {
        file,
        len: meta.len(),
    })
}

/// Reads all of `path` if it is a regular file of at most `limit` bytes (see [`open`]),
/// never holding more than the limit and one byte, even if the file grows meanwhile.
pub fn read(path: &Path, limit: Limit) -> Result<Vec<u8>, ReadError> {
    let file = open(path, limit)?;
    let mut bytes = Vec::with_capacity(file.len() as usize);
    file.into_inner()
        .take(limit.bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError::io(path, e))?;
    if bytes.len() as u64 > limit.bytes {
        return Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            size: None,
            limit,
        });
    }
    Ok(bytes)
}

/// Reads at most the first `n` bytes of `path`, if it is a regular file within `limit`.
pub fn read_head(path: &Path, limit: Limit, n: u64) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    open(path, limit)?
        .into_inner()
        .take(n)
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError::io(path, e))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: Limit = Limit {
        what: "tests",
        bytes: 10,
    };

    #[test]
    fn sizes_read_well() {
        assert_eq!(human(512), "512 bytes");
        assert_eq!(human(16 << 20), "16 MiB");
        assert_eq!(human(1 << 30), "1 GiB");
        assert_eq!(human(1_073_741_824 + (1 << 29)), "1.5 GiB");
    }

    #[test]
    fn limits_folders_and_missing_files() {
        let dir = std::env::temp_dir().join(format!("stn-read-limited-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let small = dir.join("small");
        std::fs::write(&small, b"0123456789").unwrap();
        assert_eq!(read(&small, TINY).unwrap(), b"0123456789");
        let big = dir.join("big");
        std::fs::write(&big, b"0123456789A").unwrap();
        let err = read(&big, TINY).unwrap_err().to_string();
        assert!(
            err.ends_with("big: 11 bytes is over the 10 bytes limit for tests"),
            "{err}"
        );
        let err = read(&dir, TINY).unwrap_err().to_string();
        assert!(err.ends_with(": not a regular file (a folder)"), "{err}");
        let err = read(&dir.join("none"), TINY).unwrap_err();
        assert!(matches!(err, ReadError::Missing(_)), "{err}");
        assert_eq!(read_head(&big, TINY, 4).ok(), None);
        assert_eq!(read_head(&small, TINY, 4).unwrap(), b"0123");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn devices_are_refused() {
        let err = read(Path::new("/dev/zero"), IMAGE).unwrap_err().to_string();
        assert_eq!(err, "/dev/zero: not a regular file (a character device)");
    }
}
