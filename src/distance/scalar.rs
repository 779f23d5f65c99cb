//! Portable scalar kernels: the reference every SIMD kernel is tested against.
//!
//! Each kernel keeps four independent accumulators so the compiler can
//! vectorise without reassociating a single sum (and so the longest chain of
//! dependent f32 additions is `len / 4 + 4`, which the error bounds in the
//! tests rely on; f16 kernels sum blocks of 64, which only shortens it).

use half::f16;
use half::slice::HalfFloatSliceExt;

/// Sums four lanes of `f(i)` over `0..n` with four accumulators, then the tail.
#[inline(always)]
fn sum4(n: usize, f: impl Fn(usize) -> f32) -> f32 {
    let mut acc = [0.0f32; 4];
    let chunks = n / 4;
    for i in 0..chunks {
        for (j, a) in acc.iter_mut().enumerate() {
            *a += f(i * 4 + j);
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for i in chunks * 4..n {
        s += f(i);
    }
    s
}

/// Squared L2 distance.
pub fn l2_f32(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "l2_f32: length mismatch");
    sum4(a.len(), |i| {
        let d = a[i] - b[i];
        d * d
    })
}

/// Inner product.
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot_f32: length mismatch");
    sum4(a.len(), |i| a[i] * b[i])
}

/// f16 elements widened per block (a stack buffer of f32).
const F16_BLOCK: usize = 64;

/// `f(q_block, widened_code_block)` summed over blocks of [`F16_BLOCK`].
/// Widening a block with `half`'s slice conversion is ~50× faster than
/// `f16::to_f32` per element.
#[inline(always)]
fn f16_blocks(q: &[f32], code: &[f16], f: fn(&[f32], &[f32]) -> f32) -> f32 {
    let mut buf = [0.0f32; F16_BLOCK];
    let mut s = 0.0;
    for (qc, cc) in q.chunks(F16_BLOCK).zip(code.chunks(F16_BLOCK)) {
        let b = &mut buf[..cc.len()];
        cc.convert_to_f32_slice(b);
        s += f(qc, b);
    }
    s
}

/// Squared L2 distance of an f32 query and an f16 vector.
pub fn l2_f16(q: &[f32], code: &[f16]) -> f32 {
    assert_eq!(q.len(), code.len(), "l2_f16: length mismatch");
    f16_blocks(q, code, l2_f32)
}

/// Inner product of an f32 query and an f16 vector.
pub fn dot_f16(q: &[f32], code: &[f16]) -> f32 {
    assert_eq!(q.len(), code.len(), "dot_f16: length mismatch");
    f16_blocks(q, code, dot_f32)
}

/// `Σ (q'ᵢ − scaleᵢ·codeᵢ)²`: squared L2 distance between a query and an SQ8
/// code, with `q' = query − min` precomputed per query.
pub fn l2_sq8(q_minus_min: &[f32], scale: &[f32], code: &[u8]) -> f32 {
    let n = q_minus_min.len();
    assert!(
        scale.len() == n && code.len() == n,
        "l2_sq8: length mismatch"
    );
    sum4(n, |i| {
        let d = q_minus_min[i] - scale[i] * f32::from(code[i]);
        d * d
    })
}

/// `Σ wᵢ·codeᵢ`: the code-dependent part of an inner product with an SQ8
/// code, with `w = query · scale` precomputed per query.
pub fn dot_u8(w: &[f32], code: &[u8]) -> f32 {
    assert_eq!(w.len(), code.len(), "dot_u8: length mismatch");
    sum4(w.len(), |i| w[i] * f32::from(code[i]))
}

/// `Σ wᵢ·codeᵢ` of int8 weights and u8 codes, exact in i32 (`|Σ| ≤
/// 255·127·len`, below 2³¹ for every supported dimension): the integer SQ8
/// kernel behind [`crate::quant::Sq8Query`]'s search distances.
pub fn dot_u8i8(w: &[i8], code: &[u8]) -> i32 {
    assert_eq!(w.len(), code.len(), "dot_u8i8: length mismatch");
    w.iter()
        .zip(code)
        .map(|(&a, &c)| i32::from(a) * i32::from(c))
        .sum()
}
