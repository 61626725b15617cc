//! Fuzz target for the upload path of `stn serve` and `stn predict`: the bytes of an HTTP body
//! or a file through `decode` (PNG/JPEG sniffing, header checks, decoding under limits) and
//! `preprocess` (the MNIST-style preparation). Nothing may panic, errors must be one plain line,
//! and decoded images must respect `MAX_SIDE` and `MAX_DECODED_BYTES`.
//!
//! The two source files are compiled here directly (`#[path]`), not through the `stn-cli`
//! crate, which would build burn with sanitizer instrumentation; `stn-shim` stands in for the
//! two constants preprocess.rs imports from `stn`.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../src/predict/decode.rs"]
#[allow(dead_code)]
mod decode;
#[path = "../../src/predict/preprocess.rs"]
#[allow(dead_code)]
mod preprocess;

include!("upload_check.rs");

fuzz_target!(|data: &[u8]| {
    check_upload(data);
});
