//! Fuzz target for the IDX reader (the `stn-idx` crate): `parse` and `maybe_gunzip` must never
//! panic, whatever the input, and what `parse` accepts must be self-consistent and round-trip
//! through `encode`.

#![no_main]

use libfuzzer_sys::fuzz_target;

use stn_idx as idx;

/// Parses `bytes` as an IDX file with `ndims` dimensions and, when that succeeds, checks the
/// invariants of the result.
fn check(bytes: &[u8], ndims: usize) {
    let Ok(array) = idx::parse(bytes, ndims) else {
        return;
    };
    assert_eq!(array.dims.len(), ndims, "dimension count");
    let product: usize = array.dims.iter().product();
    assert_eq!(array.data.len(), product, "data length vs dims {:?}", array.dims);
    let encoded = idx::encode(&array.dims, &array.data);
    assert_eq!(encoded, bytes, "encode(parse(x)) != x");
    let again = idx::parse(&encoded, ndims).expect("re-parse of encoded array");
    assert_eq!(again, array, "round trip");
}

fuzz_target!(|data: &[u8]| {
    check(data, 1);
    check(data, 3);
    if let Ok(unzipped) = idx::maybe_gunzip(data.to_vec()) {
        check(&unzipped, 1);
        check(&unzipped, 3);
    }
});
