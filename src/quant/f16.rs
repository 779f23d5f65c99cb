//! f16 (IEEE 754 binary16) storage: half the bytes of f32, ~3 significant
//! decimal digits (relative error ≤ 2⁻¹¹ in the normal range, up to 65504).
//!
//! Encoding saturates: values beyond ±65504 become ±65504 rather than ±∞, so
//! one outlier cannot turn every distance to the vector into ∞ or NaN. NaN
//! stays NaN (callers validate vectors before they reach storage).

use half::f16;
use half::slice::HalfFloatSliceExt;

/// Largest finite f16, as f32.
const F16_MAX: f32 = 65504.0;

/// Encodes `src` into `dst` (saturating to the finite f16 range).
///
/// # Panics
/// If the slices differ in length.
pub fn encode(src: &[f32], dst: &mut [f16]) {
    assert_eq!(src.len(), dst.len(), "f16::encode: length mismatch");
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = encode_one(s);
    }
}

/// Encodes one value (saturating to the finite f16 range).
#[inline]
pub fn encode_one(x: f32) -> f16 {
    f16::from_f32(x.clamp(-F16_MAX, F16_MAX))
}

/// Decodes `src` into `dst` (exact: every f16 is an f32).
///
/// # Panics
/// If the slices differ in length.
pub fn decode(src: &[f16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "f16::decode: length mismatch");
    src.convert_to_f32_slice(dst);
}

/// Encodes into a new vector.
pub fn encode_vec(src: &[f32]) -> Vec<f16> {
    let mut v = vec![f16::ZERO; src.len()];
    encode(src, &mut v);
    v
}

/// Decodes into a new vector.
pub fn decode_vec(src: &[f16]) -> Vec<f32> {
    let mut v = vec![0.0; src.len()];
    decode(src, &mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::available_kernels;
    use proptest::prelude::*;

    #[test]
    fn saturates_instead_of_infinity() {
        let e = encode_vec(&[1e6, -1e6, 65504.0, 0.0, -0.0]);
        assert_eq!(decode_vec(&e), vec![65504.0, -65504.0, 65504.0, 0.0, -0.0]);
        assert!(decode_vec(&encode_vec(&[f32::NAN]))[0].is_nan());
    }

    proptest! {
        /// Round trip: |x − decode(encode(x))| ≤ 2⁻¹¹·|x| in the normal range
        /// (round to nearest, 11-bit significand), ≤ 2⁻²⁵ absolute below it.
        #[test]
        fn round_trip_error_bounded(v in proptest::collection::vec(-65504.0f32..65504.0, 0..300)) {
            let back = decode_vec(&encode_vec(&v));
            for (i, (&x, &y)) in v.iter().zip(&back).enumerate() {
                let tol = (x.abs() * 2f32.powi(-11)).max(2f32.powi(-25));
                prop_assert!((x - y).abs() <= tol, "dim {}: {} -> {}", i, x, y);
            }
        }

        /// The f16 kernels on an encoded vector equal the f32 kernels on the
        /// decoded one (decoding is exact) within the summation bound of
        /// `distance::tests`: (⌈d/4⌉ + 12)·2⁻²⁴·Σ|terms| (here with 2⁻²³ for
        /// the two f32 results being compared).
        #[test]
        fn kernels_equal_f32_on_decoded(v in proptest::collection::vec(-4.0f32..4.0, 1..200), s in any::<u64>()) {
            let q: Vec<f32> = (0..v.len()).map(|i| ((i as u64 ^ s) % 17) as f32 / 8.0 - 1.0).collect();
            let code = encode_vec(&v);
            let dec = decode_vec(&code);
            let abs_dot: f32 = q.iter().zip(&dec).map(|(a, b)| (a * b).abs()).sum();
            let gamma = (v.len().div_ceil(4) as f32 + 12.0) * f32::EPSILON;
            for k in available_kernels() {
                let (got, want) = ((k.l2_f16)(&q, &code), (k.l2_f32)(&q, &dec));
                prop_assert!((got - want).abs() <= gamma * want + 1e-30, "l2 {} {} {}", k.name, got, want);
                let (got, want) = ((k.dot_f16)(&q, &code), (k.dot_f32)(&q, &dec));
                prop_assert!((got - want).abs() <= gamma * abs_dot + 1e-30, "dot {} {} {}", k.name, got, want);
            }
        }
    }
}
