//! Reads PyTorch state_dicts saved with `torch.save` (.pt / .pth) natively, no Python: the
//! tutorial's trained weights load straight into [`crate::model::Net`].
//!
//! The file must be a regular file within [`read_limited::MODEL`]. burn's reader parses it;
//! for the ZIP layout `torch.save` writes, every storage the pickle declares is then checked
//! against the bytes its entry holds, exactly (burn only checks that each tensor fits the
//! bytes it reads, so a storage holding more bytes than it declares, or fewer than it declares
//! but enough for its tensors, would pass).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use burn::store::pytorch_reader::PytorchReader;

use crate::model::state::{StateDict, StateTensor};
use crate::read_limited::{self, ReadError};

/// Why a PyTorch file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TorchImportError {
    /// The file does not exist.
    #[error("{}: file not found", .0.display())]
    Missing(PathBuf),
    /// Not a regular file, or over the [`read_limited::MODEL`] size limit.
    #[error(transparent)]
    File(ReadError),
    /// A storage whose entry holds more or fewer bytes than the pickle declares.
    #[error("{}: storage '{key}' declares {declared} bytes but {holds}; the file is corrupt or was not written by torch.save", path.display())]
    Storage {
        /// The path.
        path: PathBuf,
        /// The storage's key (its entry is `<archive>/data/<key>`).
        key: String,
        /// Bytes its element count and type declare.
        declared: u64,
        /// What the archive holds instead, in words ("holds 1004", "is missing").
        holds: String,
    },
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
    let file = read_limited::open(path, read_limited::MODEL).map_err(|e| match e {
        ReadError::Missing(path) => TorchImportError::Missing(path),
        other => TorchImportError::File(other),
    })?;
    let unreadable = |detail: String| TorchImportError::Unreadable {
        path: path.to_path_buf(),
        detail,
    };
    // burn's reader opens files by name. On Linux it is given the file checked and opened
    // above (through /proc), so a file swapped for a FIFO in between cannot make it block.
    let mut file = file.into_inner();
    let fd_path = opened_path(&file);
    let reader = PytorchReader::new(fd_path.as_deref().unwrap_or(path))
        .map_err(|e| unreadable(e.to_string()))?;
    check_zip_storages(&mut file, path)?;
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

/// `/proc/self/fd/N` for an open file, on Linux when /proc is there.
#[cfg(target_os = "linux")]
fn opened_path(file: &File) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    let p = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    p.exists().then_some(p)
}

#[cfg(not(target_os = "linux"))]
fn opened_path(_file: &File) -> Option<PathBuf> {
    None
}

/// Checks every storage the pickle of a ZIP checkpoint declares against the size of its entry
/// (`<archive>/data/<key>`): they must be equal. Other layouts (legacy, TAR) are left to
/// burn's reader, which checks their storages' sizes as it reads them.
fn check_zip_storages(file: &mut File, path: &Path) -> Result<(), TorchImportError> {
    let unreadable = |detail: String| TorchImportError::Unreadable {
        path: path.to_path_buf(),
        detail,
    };
    let mut magic = [0u8; 4];
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_exact(&mut magic))
        .map_err(|e| unreadable(e.to_string()))?;
    if &magic != b"PK\x03\x04" {
        return Ok(());
    }
    let entries = zip::entries(file).map_err(|e| unreadable(format!("ZIP directory: {e}")))?;
    // The archive's root folder is that of its shortest data.pkl, as burn's reader chooses.
    let pkl = entries
        .iter()
        .filter(|(name, _)| name.rsplit('/').next() == Some("data.pkl"))
        .min_by_key(|(name, _)| name.len())
        .ok_or_else(|| unreadable("the archive holds no data.pkl".into()))?;
    let root = pkl.0[..pkl.0.len() - "data.pkl".len()].to_string();
    let pickle = zip::read_stored(file, *pkl.1, pickle::MAX_PICKLE)
        .map_err(|e| unreadable(format!("{}: {e}", pkl.0)))?;
    let storages =
        pickle::declared_storages(&pickle).map_err(|e| unreadable(format!("{}: {e}", pkl.0)))?;
    for (key, declared) in storages {
        let holds = match entries.get(&format!("{root}data/{key}")) {
            Some(e) if e.size == declared => continue,
            Some(e) => format!("holds {}", e.size),
            None => "its entry is missing".to_string(),
        };
        return Err(TorchImportError::Storage {
            path: path.to_path_buf(),
            key,
            declared,
            holds,
        });
    }
    Ok(())
}

/// Just enough of the ZIP format to list an archive's entries and read a stored one.
mod zip {
    use super::*;

    /// An entry of the central directory.
    #[derive(Debug, Clone, Copy)]
    pub(super) struct Entry {
        /// Uncompressed size.
        pub size: u64,
        /// Stored size.
        pub compressed: u64,
        /// 0 for stored.
        pub method: u16,
        /// Offset of the local header.
        pub offset: u64,
    }

    fn invalid(msg: impl Into<String>) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, msg.into())
    }

    fn u16_at(b: &[u8], i: usize) -> io::Result<u16> {
        b.get(i..i + 2)
            .map(|s| u16::from_le_bytes([s[0], s[1]]))
            .ok_or_else(|| invalid("truncated record"))
    }

    fn u32_at(b: &[u8], i: usize) -> io::Result<u32> {
        b.get(i..i + 4)
            .map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")))
            .ok_or_else(|| invalid("truncated record"))
    }

    fn u64_at(b: &[u8], i: usize) -> io::Result<u64> {
        b.get(i..i + 8)
            .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
            .ok_or_else(|| invalid("truncated record"))
    }

    fn read_at(file: &mut File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        file.seek(SeekFrom::Start(offset))?;
        file.take(len).read_to_end(&mut buf)?;
        if buf.len() as u64 != len {
            return Err(invalid("the archive ends early"));
        }
        Ok(buf)
    }

    /// Largest central directory read: 64 MiB, far above what a checkpoint's few hundred
    /// entries take.
    const MAX_DIRECTORY: u64 = 64 << 20;

    /// The entries by name, from the central directory (ZIP64 included).
    pub(super) fn entries(file: &mut File) -> io::Result<BTreeMap<String, Entry>> {
        let len = file.metadata()?.len();
        let tail_len = len.min(22 + 65_535);
        let tail = read_at(file, len - tail_len, tail_len)?;
        let eocd = (0..tail.len().saturating_sub(21))
            .rev()
            .find(|&i| tail[i..].starts_with(b"PK\x05\x06"))
            .ok_or_else(|| invalid("no end of central directory"))?;
        let mut count = u64::from(u16_at(&tail, eocd + 10)?);
        let mut dir_size = u64::from(u32_at(&tail, eocd + 12)?);
        let mut dir_offset = u64::from(u32_at(&tail, eocd + 16)?);
        if count == 0xFFFF || dir_size == 0xFFFF_FFFF || dir_offset == 0xFFFF_FFFF {
            let locator = eocd
                .checked_sub(20)
                .filter(|&i| tail[i..].starts_with(b"PK\x06\x07"))
                .ok_or_else(|| invalid("no ZIP64 end of central directory locator"))?;
            let at = u64_at(&tail, locator + 8)?;
            let rec = read_at(file, at, 56.min(len.saturating_sub(at)))?;
            if !rec.starts_with(b"PK\x06\x06") {
                return Err(invalid("bad ZIP64 end of central directory"));
            }
            count = u64_at(&rec, 32)?;
            dir_size = u64_at(&rec, 40)?;
            dir_offset = u64_at(&rec, 48)?;
        }
        if dir_size > MAX_DIRECTORY || dir_offset.saturating_add(dir_size) > len {
            return Err(invalid("central directory out of bounds"));
        }
        let dir = read_at(file, dir_offset, dir_size)?;
        let mut out = BTreeMap::new();
        let mut i = 0;
        for _ in 0..count {
            if !dir.get(i..).is_some_and(|d| d.starts_with(b"PK\x01\x02")) {
                return Err(invalid("bad central directory entry"));
            }
            let method = u16_at(&dir, i + 10)?;
            let mut compressed = u64::from(u32_at(&dir, i + 20)?);
            let mut size = u64::from(u32_at(&dir, i + 24)?);
            let name_len = usize::from(u16_at(&dir, i + 28)?);
            let extra_len = usize::from(u16_at(&dir, i + 30)?);
            let comment_len = usize::from(u16_at(&dir, i + 32)?);
            let mut offset = u64::from(u32_at(&dir, i + 42)?);
            let name_at = i + 46;
            let extra_at = name_at + name_len;
            let end = extra_at + extra_len + comment_len;
            let name = dir
                .get(name_at..extra_at)
                .ok_or_else(|| invalid("truncated central directory"))?;
            let name = String::from_utf8_lossy(name).into_owned();
            let extra = dir
                .get(extra_at..extra_at + extra_len)
                .ok_or_else(|| invalid("truncated central directory"))?;
            // ZIP64 sizes and offset, in this order, for the fields saturated above.
            let mut j = 0;
            while j + 4 <= extra.len() {
                let (id, n) = (u16_at(extra, j)?, usize::from(u16_at(extra, j + 2)?));
                if id == 1 {
                    let mut k = j + 4;
                    for field in [&mut size, &mut compressed, &mut offset] {
                        if *field == 0xFFFF_FFFF {
                            *field = u64_at(extra, k)?;
                            k += 8;
                        }
                    }
                }
                j += 4 + n;
            }
            let entry = Entry {
                size,
                compressed,
                method,
                offset,
            };
            if out.insert(name.clone(), entry).is_some() {
                return Err(invalid(format!("entry {name} appears twice")));
            }
            i = end;
        }
        Ok(out)
    }

    /// The bytes of a stored (uncompressed) entry of at most `max` bytes.
    pub(super) fn read_stored(file: &mut File, e: Entry, max: u64) -> io::Result<Vec<u8>> {
        if e.method != 0 || e.compressed != e.size {
            return Err(invalid(
                "compressed; torch.save stores its pickle uncompressed",
            ));
        }
        if e.size > max {
            return Err(invalid(format!("larger than {max} bytes")));
        }
        let header = read_at(file, e.offset, 30)?;
        if !header.starts_with(b"PK\x03\x04") {
            return Err(invalid("bad local header"));
        }
        let skip = 30 + u64::from(u16_at(&header, 26)?) + u64::from(u16_at(&header, 28)?);
        read_at(file, e.offset + skip, e.size)
    }
}

/// Just enough of a pickle machine to find the storages `torch.save` declares: its
/// persistent ids `('storage', <type>, key, location, element count, ...)`.
mod pickle {
    use super::*;

    /// Largest pickle read (burn's reader has the same limit).
    pub(super) const MAX_PICKLE: u64 = 100 << 20;

    #[derive(Clone, Debug)]
    enum V {
        Mark,
        Str(String),
        Int(i64),
        Global(String),
        // Shared: a pickle that fetches a tuple from its memo again and again costs no copies.
        Tuple(std::rc::Rc<[V]>),
        Other,
    }

    fn invalid(msg: impl Into<String>) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, msg.into())
    }

    /// Bytes per element of a storage type; `None` for a type torch.save does not write.
    fn element_size(type_name: &str) -> Option<u64> {
        Some(match type_name {
            "DoubleStorage" | "LongStorage" => 8,
            "FloatStorage" | "IntStorage" => 4,
            "HalfStorage" | "BFloat16Storage" | "ShortStorage" => 2,
            "CharStorage" | "ByteStorage" | "BoolStorage" | "UntypedStorage" => 1,
            _ => return None,
        })
    }

    struct Cursor<'a> {
        b: &'a [u8],
        i: usize,
    }

    impl<'a> Cursor<'a> {
        fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
            let s = self
                .i
                .checked_add(n)
                .and_then(|e| self.b.get(self.i..e))
                .ok_or_else(|| invalid("the pickle ends early"))?;
            self.i += n;
            Ok(s)
        }
        fn u8(&mut self) -> io::Result<u8> {
            Ok(self.take(1)?[0])
        }
        fn len(&mut self, width: usize) -> io::Result<usize> {
            let mut b = [0u8; 8];
            b[..width].copy_from_slice(self.take(width)?);
            usize::try_from(u64::from_le_bytes(b)).map_err(|_| invalid("length overflows"))
        }
        fn line(&mut self) -> io::Result<&'a [u8]> {
            let rest = &self.b[self.i..];
            let n = rest
                .iter()
                .position(|&c| c == b'\n')
                .ok_or_else(|| invalid("the pickle ends early"))?;
            self.i += n + 1;
            Ok(&rest[..n])
        }
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    fn int(b: &[u8]) -> V {
        let b: Vec<u8> = b.strip_suffix(b"L").unwrap_or(b).to_vec();
        text(&b).trim().parse().map_or(V::Other, V::Int)
    }

    /// Little-endian two's complement, as LONG1 and LONG4 write it.
    fn long(b: &[u8]) -> V {
        if b.is_empty() {
            return V::Int(0);
        }
        if b.len() > 8 {
            return V::Other;
        }
        let fill = if b[b.len() - 1] & 0x80 != 0 { 0xFF } else { 0 };
        let mut w = [fill; 8];
        w[..b.len()].copy_from_slice(b);
        V::Int(i64::from_le_bytes(w))
    }

    /// Every storage's key and declared size in bytes. The same key declared twice must
    /// declare the same size.
    pub(super) fn declared_storages(bytes: &[u8]) -> io::Result<BTreeMap<String, u64>> {
        let mut c = Cursor { b: bytes, i: 0 };
        let mut stack: Vec<V> = Vec::new();
        let mut memo: std::collections::HashMap<usize, V> = Default::default();
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        fn pop(stack: &mut Vec<V>) -> io::Result<V> {
            stack.pop().ok_or_else(|| invalid("stack underflow"))
        }
        fn pop_mark(stack: &mut Vec<V>) -> io::Result<Vec<V>> {
            let m = stack
                .iter()
                .rposition(|v| matches!(v, V::Mark))
                .ok_or_else(|| invalid("no mark"))?;
            let items = stack.split_off(m + 1);
            stack.pop();
            Ok(items)
        }
        fn top(stack: &[V]) -> io::Result<V> {
            stack.last().cloned().ok_or_else(|| invalid("empty stack"))
        }
        loop {
            let op = c.u8()?;
            match op {
                0x80 => {
                    c.u8()?;
                }
                0x95 => {
                    c.take(8)?;
                }
                b'.' => break,
                b'(' => stack.push(V::Mark),
                b'0' => {
                    pop(&mut stack)?;
                }
                b'1' => {
                    pop_mark(&mut stack)?;
                }
                b'2' => stack.push(top(&stack)?),
                b'F' => {
                    c.line()?;
                    stack.push(V::Other);
                }
                b'G' => {
                    c.take(8)?;
                    stack.push(V::Other);
                }
                b'I' | b'L' => {
                    let l = c.line()?;
                    stack.push(int(l));
                }
                b'J' => {
                    let b = c.take(4)?;
                    stack.push(V::Int(i64::from(i32::from_le_bytes(
                        b.try_into().expect("4 bytes"),
                    ))));
                }
                b'K' => stack.push(V::Int(i64::from(c.u8()?))),
                b'M' => stack.push(V::Int(c.len(2)? as i64)),
                0x8a => {
                    let n = c.len(1)?;
                    stack.push(long(c.take(n)?));
                }
                0x8b => {
                    let n = c.len(4)?;
                    stack.push(long(c.take(n)?));
                }
                b'S' | b'V' => {
                    let l = c.line()?;
                    let t = text(l);
                    stack.push(V::Str(t.trim_matches(|ch| ch == '\'' || ch == '"').into()));
                }
                b'T' | b'X' => {
                    let n = c.len(4)?;
                    stack.push(V::Str(text(c.take(n)?)));
                }
                b'U' | 0x8c => {
                    let n = c.len(1)?;
                    stack.push(V::Str(text(c.take(n)?)));
                }
                0x8d => {
                    let n = c.len(8)?;
                    stack.push(V::Str(text(c.take(n)?)));
                }
                b'B' => {
                    let n = c.len(4)?;
                    c.take(n)?;
                    stack.push(V::Other);
                }
                b'C' => {
                    let n = c.len(1)?;
                    c.take(n)?;
                    stack.push(V::Other);
                }
                0x8e | 0x96 => {
                    let n = c.len(8)?;
                    c.take(n)?;
                    stack.push(V::Other);
                }
                b'N' | 0x88 | 0x89 | b']' | b'}' | 0x8f | 0x97 => stack.push(V::Other),
                0x98 => {}
                b')' => stack.push(V::Tuple(Vec::new().into())),
                b't' => {
                    let items = pop_mark(&mut stack)?;
                    stack.push(V::Tuple(items.into()));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let at = stack
                        .len()
                        .checked_sub(n)
                        .ok_or_else(|| invalid("stack underflow"))?;
                    let items = stack.split_off(at);
                    stack.push(V::Tuple(items.into()));
                }
                b'l' | b'd' | 0x91 | b'o' => {
                    pop_mark(&mut stack)?;
                    stack.push(V::Other);
                }
                b'e' | b'u' | 0x90 => {
                    pop_mark(&mut stack)?;
                }
                b'a' | b'b' => {
                    pop(&mut stack)?;
                }
                b's' => {
                    pop(&mut stack)?;
                    pop(&mut stack)?;
                }
                b'c' => {
                    let module = text(c.line()?);
                    let name = text(c.line()?);
                    stack.push(V::Global(format!("{module}.{name}")));
                }
                b'i' => {
                    c.line()?;
                    c.line()?;
                    pop_mark(&mut stack)?;
                    stack.push(V::Other);
                }
                0x93 => {
                    let name = pop(&mut stack)?;
                    let module = pop(&mut stack)?;
                    stack.push(match (module, name) {
                        (V::Str(m), V::Str(n)) => V::Global(format!("{m}.{n}")),
                        _ => V::Other,
                    });
                }
                b'R' | 0x81 => {
                    pop(&mut stack)?;
                    pop(&mut stack)?;
                    stack.push(V::Other);
                }
                0x92 => {
                    for _ in 0..3 {
                        pop(&mut stack)?;
                    }
                    stack.push(V::Other);
                }
                b'P' => {
                    c.line()?;
                    stack.push(V::Other);
                }
                b'Q' => {
                    if let V::Tuple(pid) = pop(&mut stack)? {
                        declare(&pid, &mut out)?;
                    }
                    stack.push(V::Other);
                }
                b'p' => {
                    let i = text(c.line()?)
                        .trim()
                        .parse()
                        .map_err(|_| invalid("bad PUT"))?;
                    memo.insert(i, top(&stack)?);
                }
                b'q' => {
                    let i = c.len(1)?;
                    memo.insert(i, top(&stack)?);
                }
                b'r' => {
                    let i = c.len(4)?;
                    memo.insert(i, top(&stack)?);
                }
                0x94 => {
                    memo.insert(memo.len(), top(&stack)?);
                }
                b'g' | b'h' | b'j' => {
                    let i = match op {
                        b'g' => text(c.line()?)
                            .trim()
                            .parse()
                            .map_err(|_| invalid("bad GET"))?,
                        b'h' => c.len(1)?,
                        _ => c.len(4)?,
                    };
                    stack.push(
                        memo.get(&i)
                            .cloned()
                            .ok_or_else(|| invalid("bad memo key"))?,
                    );
                }
                0x82..=0x84 => {
                    c.take([1, 2, 4][usize::from(op - 0x82)])?;
                    stack.push(V::Other);
                }
                other => return Err(invalid(format!("unknown pickle opcode 0x{other:02x}"))),
            }
        }
        Ok(out)
    }

    /// Records a `('storage', type, key, location, count, ...)` persistent id.
    fn declare(pid: &[V], out: &mut BTreeMap<String, u64>) -> io::Result<()> {
        let [V::Str(tag), storage_type, key, _, count, ..] = pid else {
            return Ok(());
        };
        if tag != "storage" {
            return Ok(());
        }
        let type_name = match storage_type {
            V::Global(g) | V::Str(g) => g.rsplit('.').next().unwrap_or(g),
            _ => return Err(invalid("storage type is not a class")),
        };
        let size = element_size(type_name)
            .ok_or_else(|| invalid(format!("unsupported storage type {type_name}")))?;
        let key = match key {
            V::Str(k) => k.clone(),
            V::Int(k) => k.to_string(),
            _ => return Err(invalid("storage key is not a string")),
        };
        let bytes = match count {
            V::Int(n) if *n >= 0 => (*n as u64)
                .checked_mul(size)
                .ok_or_else(|| invalid(format!("storage '{key}' size overflows")))?,
            _ => return Err(invalid(format!("storage '{key}' has no element count"))),
        };
        match out.insert(key.clone(), bytes) {
            Some(before) if before != bytes => Err(invalid(format!(
                "storage '{key}' is declared with {before} and {bytes} bytes"
            ))),
            _ => Ok(()),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn finds_storages_through_the_memo() {
            // ('storage', torch.FloatStorage, '0', 'cpu', 250), then the same strings by memo.
            let mut p = b"\x80\x02}q\x00(X\x01\x00\x00\x00a".to_vec();
            p.extend(b"((X\x07\x00\x00\x00storageq\x01ctorch\nFloatStorage\nq\x02");
            p.extend(b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuq\x03K\xfatQ");
            p.extend(b"X\x01\x00\x00\x00b((h\x01h\x02X\x01\x00\x00\x001h\x03M\x00\x01tQtu.");
            let s = declared_storages(&p).unwrap();
            assert_eq!(s.get("0"), Some(&1000));
            assert_eq!(s.get("1"), Some(&1024));
        }
    }
}
