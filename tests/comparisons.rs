//! The test helpers' own tests: the comparisons every parity test relies on must see NaN and
//! infinity, and the fixtures' encoding of non-finite values must read back.

mod common;

use common::{Fx, max_abs_diff};

#[test]
fn comparisons_see_nan_and_infinity() {
    let nan = f64::NAN;
    let inf = f64::INFINITY;
    assert_eq!(
        max_abs_diff(&[1.0, nan, inf, -inf], &[1.5, nan, inf, -inf]),
        Ok(0.5)
    );
    assert!(max_abs_diff(&[nan], &[0.0]).is_err());
    assert!(max_abs_diff(&[0.0], &[nan]).is_err());
    assert!(max_abs_diff(&[inf], &[-inf]).is_err());
    assert!(max_abs_diff(&[inf], &[1e308]).is_err());
    assert!(max_abs_diff(&[nan], &[inf]).is_err());
    assert!(max_abs_diff(&[1.0], &[1.0, 2.0]).is_err());
}

#[test]
fn fixture_numbers_read_non_finite_strings() {
    let fx: Fx =
        serde_json::from_str(r#"{"shape":[4],"data":[1.5,"NaN","Infinity","-Infinity"]}"#).unwrap();
    assert_eq!(fx.data[0], 1.5);
    assert!(fx.data[1].is_nan());
    assert_eq!(&fx.data[2..], &[f64::INFINITY, f64::NEG_INFINITY]);
    assert!(serde_json::from_str::<Fx>(r#"{"shape":[1],"data":["nope"]}"#).is_err());
}
