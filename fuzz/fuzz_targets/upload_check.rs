// The checks of the upload fuzz target (`upload.rs`), shared with the stable smoke test
// `tests/serve_upload_fuzz.rs` of the main crate, which `include!`s this file. Both bring
// modules `decode` and `preprocess` (src/predict/) into scope first.

/// Runs one upload's bytes through the server's path, decode then preprocess: nothing may
/// panic, errors are one plain line, and what succeeds respects the limits.
pub fn check_upload(data: &[u8]) {
    let probed = decode::probe(data);
    match decode::decode(data) {
        Ok(img) => {
            let header = probed.expect("decode succeeded where probe failed");
            assert_eq!((img.width(), img.height()), (header.width, header.height));
            assert!(img.width() <= decode::MAX_SIDE && img.height() <= decode::MAX_SIDE);
            assert!(img.as_bytes().len() as u64 <= decode::MAX_DECODED_BYTES);
            match preprocess::preprocess(&img) {
                Ok(digit) => assert!(
                    digit.pixels.iter().all(|p| (0.0..=1.0).contains(p)),
                    "pixels out of 0..1"
                ),
                Err(e) => plain(&e.to_string()),
            }
        }
        Err(e) => {
            let msg = e.to_string();
            plain(&msg);
            if let Err(p) = probed {
                assert_eq!(p.to_string(), msg, "probe and decode disagree");
            }
        }
    }
}

/// An error message as clients see it: one line, no decoder internals.
fn plain(msg: &str) {
    assert!(!msg.is_empty() && !msg.contains('\n'), "{msg:?}");
    for debug in ["ChunkType", "Format error", "{ ", "critical:"] {
        assert!(!msg.contains(debug), "debug text in {msg:?}");
    }
}
