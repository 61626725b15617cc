//! Decoding untrusted image bytes (a file, an HTTP body) into pixels, with limits checked from
//! the header before any pixel memory is allocated: a 50-byte PNG can claim to be 100000 x
//! 100000 pixels (a decompression bomb).

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

/// The largest width or height accepted.
pub const MAX_SIDE: u32 = 4096;
/// Most bytes a decoder may allocate (a 4096 x 4096 RGBA image with 16-bit channels, plus
/// room for the decoder's own buffers).
const MAX_ALLOC: u64 = 192 * 1024 * 1024;

/// Why bytes could not be decoded into an image.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// No bytes at all.
    #[error("empty file: no image data")]
    Empty,
    /// The bytes are no image format we know.
    #[error("not an image: the data is neither PNG nor JPEG")]
    NotAnImage,
    /// An image format that this build does not read.
    #[error("{0} images are not supported: use PNG or JPEG")]
    Unsupported(String),
    /// Larger than [`MAX_SIDE`] on a side.
    #[error("image too large: {width}x{height} pixels (at most {MAX_SIDE}x{MAX_SIDE})")]
    TooLarge {
        /// Width claimed by the header.
        width: u32,
        /// Height claimed by the header.
        height: u32,
    },
    /// Decoding would need more memory than allowed.
    #[error("image too large to decode: {0}")]
    Limits(String),
    /// Truncated or corrupt data.
    #[error("corrupt {format} image: {detail}")]
    Corrupt {
        /// "PNG" or "JPEG".
        format: &'static str,
        /// The decoder's message.
        detail: String,
    },
}

impl DecodeError {
    /// Whether the failure is the image's size (worth a distinct HTTP status, 413).
    pub fn is_too_large(&self) -> bool {
        matches!(self, Self::TooLarge { .. } | Self::Limits(_))
    }
}

/// The format of `bytes` from their first bytes (PNG, JPEG), whatever a file name or a
/// Content-Type claims.
pub fn sniff(bytes: &[u8]) -> Result<ImageFormat, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Png | ImageFormat::Jpeg)) => Ok(f),
        Ok(other) => Err(DecodeError::Unsupported(
            other
                .extensions_str()
                .first()
                .map_or_else(|| format!("{other:?}"), |e| e.to_uppercase()),
        )),
        Err(_) => Err(DecodeError::NotAnImage),
    }
}

/// Decodes PNG or JPEG `bytes`, refusing images larger than [`MAX_SIDE`] on a side before
/// decoding them.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, DecodeError> {
    let format = sniff(bytes)?;
    let name = match format {
        ImageFormat::Png => "PNG",
        _ => "JPEG",
    };
    let reader = |limits: Limits| {
        let mut r = ImageReader::with_format(Cursor::new(bytes), format);
        r.limits(limits);
        r
    };
    let corrupt = |e: image::ImageError| match e {
        image::ImageError::Limits(l) => DecodeError::Limits(l.to_string()),
        other => DecodeError::Corrupt {
            format: name,
            detail: other.to_string(),
        },
    };
    // The header alone first: a clear message for oversized images, no pixel memory spent.
    let (width, height) = reader(Limits::no_limits())
        .into_dimensions()
        .map_err(corrupt)?;
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(DecodeError::TooLarge { width, height });
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader(limits).decode().map_err(corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = image::GrayImage::new(width, height);
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn good_png_decodes() {
        let img = decode(&png(30, 20)).unwrap();
        assert_eq!((img.width(), img.height()), (30, 20));
    }

    #[test]
    fn junk_empty_and_truncated_data_are_errors() {
        assert!(matches!(decode(b""), Err(DecodeError::Empty)));
        assert!(matches!(
            decode(b"hello, this is text"),
            Err(DecodeError::NotAnImage)
        ));
        assert!(matches!(
            decode(b"GIF89a\x01\x00\x01\x00"),
            Err(DecodeError::Unsupported(_))
        ));
        let mut p = png(64, 64);
        p.truncate(p.len() / 2);
        assert!(matches!(decode(&p), Err(DecodeError::Corrupt { .. })));
        assert!(matches!(
            decode(&[0xff, 0xd8, 0xff, 0xe0, 0, 0]),
            Err(DecodeError::Corrupt { .. })
        ));
    }

    #[test]
    fn oversized_headers_are_refused_before_decoding() {
        // A PNG of a few dozen bytes whose header claims 100000 x 100000 pixels (its IHDR
        // patched, the chunk's CRC recomputed so that only the size is wrong).
        let mut p = png(1, 1);
        p[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        p[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let crc = crc32(&p[12..29]);
        p[29..33].copy_from_slice(&crc.to_be_bytes());
        let err = decode(&p).unwrap_err();
        assert!(err.is_too_large(), "{err}");
        assert!(err.to_string().contains("100000x100000"), "{err}");
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut h = crc32fast::Hasher::new();
        h.update(data);
        h.finalize()
    }
}
