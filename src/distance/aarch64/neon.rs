//! NEON kernels: 4 f32 lanes, four independent accumulators (16 elements per
//! main-loop iteration), then a scalar tail.
//!
//! f16 is widened through a small stack buffer with `half`'s slice conversion
//! (which uses the FP16 conversion instructions where available) because the
//! NEON `float16x4_t` intrinsics are not stable Rust.
//!
//! This file is only compiled on aarch64 and is not exercised by the x86 CI;
//! keep it simple.

use std::arch::aarch64::*;

use half::f16;
use half::slice::HalfFloatSliceExt;

use crate::distance::Kernels;

/// The NEON table, if this CPU has NEON (always true on aarch64 Linux/macOS,
/// checked anyway).
pub(crate) fn kernels() -> Option<Kernels> {
    std::arch::is_aarch64_feature_detected!("neon").then_some(Kernels {
        name: "neon",
        l2_f32,
        dot_f32,
        l2_f16,
        dot_f16,
        l2_sq8,
        dot_u8,
        // No NEON integer kernel yet: the scalar one (auto-vectorised).
        dot_u8i8: crate::distance::scalar::dot_u8i8,
    })
}

// Safe wrappers. They are private and only reachable through the table above,
// which exists only after the feature was detected.

fn l2_f32(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "l2_f32: length mismatch");
    // SAFETY: only reachable via `kernels()`, which checked neon.
    unsafe { l2_f32_imp(a, b) }
}

fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot_f32: length mismatch");
    // SAFETY: only reachable via `kernels()`, which checked neon.
    unsafe { dot_f32_imp(a, b) }
}

/// f16 elements converted per block, into a stack buffer.
const F16_BLOCK: usize = 64;

fn l2_f16(q: &[f32], code: &[f16]) -> f32 {
    assert_eq!(q.len(), code.len(), "l2_f16: length mismatch");
    let mut buf = [0.0f32; F16_BLOCK];
    let mut sum = 0.0f32;
    for (qc, cc) in q.chunks(F16_BLOCK).zip(code.chunks(F16_BLOCK)) {
        let b = &mut buf[..cc.len()];
        cc.convert_to_f32_slice(b);
        // SAFETY: only reachable via `kernels()`, which checked neon.
        sum += unsafe { l2_f32_imp(qc, b) };
    }
    sum
}

fn dot_f16(q: &[f32], code: &[f16]) -> f32 {
    assert_eq!(q.len(), code.len(), "dot_f16: length mismatch");
    let mut buf = [0.0f32; F16_BLOCK];
    let mut sum = 0.0f32;
    for (qc, cc) in q.chunks(F16_BLOCK).zip(code.chunks(F16_BLOCK)) {
        let b = &mut buf[..cc.len()];
        cc.convert_to_f32_slice(b);
        // SAFETY: only reachable via `kernels()`, which checked neon.
        sum += unsafe { dot_f32_imp(qc, b) };
    }
    sum
}

fn l2_sq8(q: &[f32], scale: &[f32], code: &[u8]) -> f32 {
    let n = q.len();
    assert!(
        scale.len() == n && code.len() == n,
        "l2_sq8: length mismatch"
    );
    // SAFETY: only reachable via `kernels()`, which checked neon.
    unsafe { l2_sq8_imp(q, scale, code) }
}

fn dot_u8(w: &[f32], code: &[u8]) -> f32 {
    assert_eq!(w.len(), code.len(), "dot_u8: length mismatch");
    // SAFETY: only reachable via `kernels()`, which checked neon.
    unsafe { dot_u8_imp(w, code) }
}

/// Widens 16 bytes into four f32x4 (lanes 0-3, 4-7, 8-11, 12-15).
#[target_feature(enable = "neon")]
#[inline]
fn widen_u8(v: uint8x16_t) -> [float32x4_t; 4] {
    let lo = vmovl_u8(vget_low_u8(v));
    let hi = vmovl_high_u8(v);
    [
        vcvtq_f32_u32(vmovl_u16(vget_low_u16(lo))),
        vcvtq_f32_u32(vmovl_high_u16(lo)),
        vcvtq_f32_u32(vmovl_u16(vget_low_u16(hi))),
        vcvtq_f32_u32(vmovl_high_u16(hi)),
    ]
}

#[target_feature(enable = "neon")]
#[inline]
fn reduce4(acc: [float32x4_t; 4]) -> f32 {
    vaddvq_f32(vaddq_f32(
        vaddq_f32(acc[0], acc[1]),
        vaddq_f32(acc[2], acc[3]),
    ))
}

/// # Safety
/// The CPU must support NEON. (An `unsafe fn` rather than a safe
/// `#[target_feature]` one: NEON is on by default on aarch64 targets, where the
/// wrappers' `unsafe` blocks would otherwise be reported as unused.)
#[target_feature(enable = "neon")]
unsafe fn l2_f32_imp(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut i = 0;
    while i + 16 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            let o = i + 4 * k;
            // SAFETY: o + 4 <= i + 16 <= n, so both 4-lane loads are in bounds.
            let d = unsafe { vsubq_f32(vld1q_f32(pa.add(o)), vld1q_f32(pb.add(o))) };
            *acc = vfmaq_f32(*acc, d, d);
        }
        i += 16;
    }
    let mut s = reduce4(acc);
    for (x, y) in a[i..n].iter().zip(&b[i..n]) {
        let d = x - y;
        s += d * d;
    }
    s
}

/// # Safety
/// The CPU must support NEON. (An `unsafe fn` rather than a safe
/// `#[target_feature]` one: NEON is on by default on aarch64 targets, where the
/// wrappers' `unsafe` blocks would otherwise be reported as unused.)
#[target_feature(enable = "neon")]
unsafe fn dot_f32_imp(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut i = 0;
    while i + 16 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            let o = i + 4 * k;
            // SAFETY: o + 4 <= i + 16 <= n, so both 4-lane loads are in bounds.
            let (x, y) = unsafe { (vld1q_f32(pa.add(o)), vld1q_f32(pb.add(o))) };
            *acc = vfmaq_f32(*acc, x, y);
        }
        i += 16;
    }
    let mut s = reduce4(acc);
    for (x, y) in a[i..n].iter().zip(&b[i..n]) {
        s += x * y;
    }
    s
}

/// # Safety
/// The CPU must support NEON. (An `unsafe fn` rather than a safe
/// `#[target_feature]` one: NEON is on by default on aarch64 targets, where the
/// wrappers' `unsafe` blocks would otherwise be reported as unused.)
#[target_feature(enable = "neon")]
unsafe fn l2_sq8_imp(q: &[f32], scale: &[f32], code: &[u8]) -> f32 {
    let n = q.len().min(scale.len()).min(code.len());
    let (pq, ps, pc) = (q.as_ptr(), scale.as_ptr(), code.as_ptr());
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n: 16 bytes of code are in bounds.
        let c = widen_u8(unsafe { vld1q_u8(pc.add(i)) });
        for (k, acc) in acc.iter_mut().enumerate() {
            let o = i + 4 * k;
            // SAFETY: o + 4 <= i + 16 <= n: 4 f32 of q and scale are in bounds.
            let (x, s) = unsafe { (vld1q_f32(pq.add(o)), vld1q_f32(ps.add(o))) };
            // x - s * c
            let d = vfmsq_f32(x, s, c[k]);
            *acc = vfmaq_f32(*acc, d, d);
        }
        i += 16;
    }
    let mut s = reduce4(acc);
    for ((x, sc), &c) in q[i..n].iter().zip(&scale[i..n]).zip(&code[i..n]) {
        let d = x - sc * f32::from(c);
        s += d * d;
    }
    s
}

/// # Safety
/// The CPU must support NEON. (An `unsafe fn` rather than a safe
/// `#[target_feature]` one: NEON is on by default on aarch64 targets, where the
/// wrappers' `unsafe` blocks would otherwise be reported as unused.)
#[target_feature(enable = "neon")]
unsafe fn dot_u8_imp(w: &[f32], code: &[u8]) -> f32 {
    let n = w.len().min(code.len());
    let (pw, pc) = (w.as_ptr(), code.as_ptr());
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n: 16 bytes of code are in bounds.
        let c = widen_u8(unsafe { vld1q_u8(pc.add(i)) });
        for (k, acc) in acc.iter_mut().enumerate() {
            // SAFETY: i + 4k + 4 <= i + 16 <= n: 4 f32 of w are in bounds.
            let x = unsafe { vld1q_f32(pw.add(i + 4 * k)) };
            *acc = vfmaq_f32(*acc, x, c[k]);
        }
        i += 16;
    }
    let mut s = reduce4(acc);
    for (x, &c) in w[i..n].iter().zip(&code[i..n]) {
        s += x * f32::from(c);
    }
    s
}
