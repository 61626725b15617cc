//! Decoding untrusted image bytes (a file, an HTTP body) into pixels, with limits checked from
//! the header before any pixel memory is allocated: a 50-byte PNG can claim to be 100000 x
//! 100000 pixels (a decompression bomb), a 163 KB one 4096 x 4096 pixels of 16-bit RGBA (128
//! MiB decoded).
//!
//! Every error is one readable line, never a decoder's debug text: the messages reach HTTP
//! clients (`stn serve`) and terminals (`stn predict`).

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

/// The largest width or height accepted.
pub const MAX_SIDE: u32 = 4096;
/// The largest decoded pixel buffer accepted, in bytes (64 MiB: a 4096 x 4096 image of 8-bit
/// RGBA, or 16-bit grey with alpha). Checked from the header before decoding.
pub const MAX_DECODED_BYTES: u64 = 64 * 1024 * 1024;
/// Most bytes a decoder may allocate in all: the pixel buffer plus room for the decoder's own
/// buffers (enforced by `image`'s [`Limits`] during decoding).
const MAX_ALLOC: u64 = MAX_DECODED_BYTES + 16 * 1024 * 1024;
/// Side of the working copy that preprocessing shrinks larger pictures to (see
/// `preprocess::working_copy`), for [`Header::memory_estimate`].
const WORK_SIDE: u64 = 1024;

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
    #[error("not a valid {format} image ({detail})")]
    Corrupt {
        /// "PNG" or "JPEG".
        format: &'static str,
        /// What is wrong, in a few words ("corrupt or truncated data").
        detail: &'static str,
    },
}

impl DecodeError {
    /// Whether the failure is the image's size (worth a distinct HTTP status, 413).
    pub fn is_too_large(&self) -> bool {
        matches!(self, Self::TooLarge { .. } | Self::Limits(_))
    }
}

/// What an image's header says, read without decoding any pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// PNG or JPEG.
    pub format: ImageFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes of the decoded pixel buffer (at most [`MAX_DECODED_BYTES`]).
    pub decoded_bytes: u64,
}

impl Header {
    /// A generous bound on the memory that decoding and preprocessing this image take at
    /// their peak, in bytes: twice the pixel buffer (the decoder's own planes and rows, e.g.
    /// JPEG's colour components) plus the preprocessing's working copies (RGBA8 and two `f32`
    /// maps of at most 1024 x 1024 pixels).
    pub fn memory_estimate(&self) -> u64 {
        let scale = (WORK_SIDE as f64 / self.width.max(self.height).max(1) as f64).min(1.0);
        let work =
            (self.width as f64 * scale).ceil() as u64 * (self.height as f64 * scale).ceil() as u64;
        2 * self.decoded_bytes + 12 * work + 64 * 1024
    }
}

/// The format's name in messages.
pub fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Png => "PNG",
        ImageFormat::Jpeg => "JPEG",
        _ => "unsupported",
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
                .map_or_else(|| "these".to_string(), |e| e.to_uppercase()),
        )),
        Err(_) => Err(DecodeError::NotAnImage),
    }
}

/// The one-line error for a failure of the `image` crate on `format` data: no decoder
/// internals (chunk types, debug structures) in it.
fn decoder_error(format: ImageFormat, e: image::ImageError) -> DecodeError {
    let format = format_name(format);
    match e {
        image::ImageError::Limits(_) => DecodeError::Limits(format!(
            "decoding this {format} image needs more than {} MiB",
            MAX_ALLOC >> 20
        )),
        image::ImageError::Unsupported(_) => DecodeError::Corrupt {
            format,
            detail: "an encoding feature this server does not read",
        },
        _ => DecodeError::Corrupt {
            format,
            detail: "corrupt or truncated data",
        },
    }
}

/// Reads the header of PNG or JPEG `bytes` and checks the image's size against [`MAX_SIDE`]
/// and [`MAX_DECODED_BYTES`], without decoding pixels.
pub fn probe(bytes: &[u8]) -> Result<Header, DecodeError> {
    let format = sniff(bytes)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(Limits::no_limits());
    let decoder = reader
        .into_decoder()
        .map_err(|e| decoder_error(format, e))?;
    let (width, height) = decoder.dimensions();
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(DecodeError::TooLarge { width, height });
    }
    let decoded_bytes = decoder.total_bytes();
    if decoded_bytes > MAX_DECODED_BYTES {
        let color = decoder.color_type();
        return Err(DecodeError::Limits(format!(
            "{width}x{height} pixels of {} bits each need {} MiB (at most {} MiB)",
            color.bits_per_pixel(),
            decoded_bytes.div_ceil(1 << 20),
            MAX_DECODED_BYTES >> 20
        )));
    }
    Ok(Header {
        format,
        width,
        height,
        decoded_bytes,
    })
}

/// Decodes PNG or JPEG `bytes`, refusing images larger than [`MAX_SIDE`] on a side or
/// [`MAX_DECODED_BYTES`] decoded before decoding them (see [`probe`]); the decoder itself runs
/// under `image`'s [`Limits`].
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, DecodeError> {
    let header = probe(bytes)?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), header.format);
    reader.limits(limits);
    reader.decode().map_err(|e| decoder_error(header.format, e))
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

    #[test]
    fn sixteen_bit_rgba_4096_is_refused_before_decoding() {
        let img = image::ImageBuffer::<image::Rgba<u16>, _>::new(4096, 4096);
        let mut out = Vec::new();
        DynamicImage::ImageRgba16(img)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        let err = decode(&out).unwrap_err();
        assert!(err.is_too_large(), "{err}");
        assert!(err.to_string().contains("128 MiB"), "{err}");
        // 8-bit grey of the same size is fine.
        let h = probe(&png(4096, 4096)).unwrap();
        assert_eq!(h.decoded_bytes, 4096 * 4096);
        assert!(h.memory_estimate() < 64 << 20);
    }

    #[test]
    fn corrupt_data_gives_one_plain_line() {
        // A PNG signature followed by junk: no chunk types or debug text in the message.
        let mut p = b"\x89PNG\r\n\x1a\n".to_vec();
        p.extend_from_slice(b"\x00\x00\x00\x0dL\x02\x85_junkjunkjunkjunkjunk");
        let err = decode(&p).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not a valid PNG image (corrupt or truncated data)"
        );
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut h = crc32fast::Hasher::new();
        h.update(data);
        h.finalize()
    }
}
