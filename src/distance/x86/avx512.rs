//! AVX-512 kernels (F + BW + VL): 16 f32 lanes, four independent accumulators
//! (64 elements per main-loop iteration), then up to four 16-lane steps whose
//! last one uses masked loads, so there is no scalar tail at all.
//!
//! Masked-off lanes of `vmovups`/`vmovdqu{8,16}` with a zeroing mask are never
//! accessed (no fault past the end of a slice) and read as zero, and zero
//! lanes contribute nothing to any kernel. f16 is widened with `vcvtph2ps`
//! (AVX-512F); u8 with `vpmovzxbd` + `vcvtdq2ps`.

use std::arch::x86_64::*;

use half::f16;

use crate::distance::Kernels;

/// The AVX-512 table, if this CPU has AVX-512 F, BW and VL (BW + VL for the
/// masked 8- and 16-bit loads).
pub(crate) fn kernels() -> Option<Kernels> {
    let ok = is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl");
    ok.then_some(Kernels {
        name: "avx512",
        l2_f32,
        dot_f32,
        l2_f16,
        dot_f16,
        l2_sq8,
        dot_u8,
        // VNNI (`vpdpbusd`) where present, else the AVX2 integer kernel.
        dot_u8i8: super::int8::vnni()
            .or_else(super::int8::avx2)
            .unwrap_or(crate::distance::scalar::dot_u8i8),
    })
}

// Safe wrappers. They are private and only reachable through the table above,
// which exists only after the features were detected.

fn l2_f32(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "l2_f32: length mismatch");
    // SAFETY: only reachable via `kernels()`, which checked avx512f/bw/vl.
    unsafe { l2_f32_imp(a, b) }
}

fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot_f32: length mismatch");
    // SAFETY: only reachable via `kernels()`, which checked avx512f/bw/vl.
    unsafe { dot_f32_imp(a, b) }
}

fn l2_f16(q: &[f32], code: &[f16]) -> f32 {
    assert_eq!(q.len(), code.len(), "l2_f16: length mismatch");
    // SAFETY: only reachable via `kernels()`, which checked avx512f/bw/vl.
    unsafe { l2_f16_imp(q, code) }
}

fn dot_f16(q: &[f32], code: &[f16]) -> f32 {
    assert_eq!(q.len(), code.len(), "dot_f16: length mismatch");
    // SAFETY: only reachable via `kernels()`, which checked avx512f/bw/vl.
    unsafe { dot_f16_imp(q, code) }
}

fn l2_sq8(q: &[f32], scale: &[f32], code: &[u8]) -> f32 {
    let n = q.len();
    assert!(
        scale.len() == n && code.len() == n,
        "l2_sq8: length mismatch"
    );
    // SAFETY: only reachable via `kernels()`, which checked avx512f/bw/vl.
    unsafe { l2_sq8_imp(q, scale, code) }
}

fn dot_u8(w: &[f32], code: &[u8]) -> f32 {
    assert_eq!(w.len(), code.len(), "dot_u8: length mismatch");
    // SAFETY: only reachable via `kernels()`, which checked avx512f/bw/vl.
    unsafe { dot_u8_imp(w, code) }
}

/// Mask of the lanes `i..min(i + 16, n)` relative to `i` (requires `i < n`).
#[inline(always)]
fn lane_mask(i: usize, n: usize) -> __mmask16 {
    let rem = n - i;
    if rem >= 16 {
        0xFFFF
    } else {
        (1u16 << rem) - 1
    }
}

#[target_feature(enable = "avx512f")]
#[inline]
fn reduce4(acc: [__m512; 4]) -> f32 {
    _mm512_reduce_add_ps(_mm512_add_ps(
        _mm512_add_ps(acc[0], acc[1]),
        _mm512_add_ps(acc[2], acc[3]),
    ))
}

/// 16 f16 at `p` widened to f32.
///
/// # Safety
/// `p..p + 16` must be readable.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn load_f16(p: *const f16) -> __m512 {
    // SAFETY: the caller guarantees 16 f16 (32 bytes) are readable at `p`.
    _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(p.cast()) })
}

/// 16 u8 at `p` widened to f32.
///
/// # Safety
/// `p..p + 16` must be readable.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn load_u8(p: *const u8) -> __m512 {
    // SAFETY: the caller guarantees 16 bytes are readable at `p`.
    _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(unsafe { _mm_loadu_si128(p.cast()) }))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn l2_f32_imp(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 64 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            let o = i + 16 * k;
            // SAFETY: o + 16 <= i + 64 <= n, so both 16-lane loads are in bounds.
            let d =
                unsafe { _mm512_sub_ps(_mm512_loadu_ps(pa.add(o)), _mm512_loadu_ps(pb.add(o))) };
            *acc = _mm512_fmadd_ps(d, d, *acc);
        }
        i += 64;
    }
    while i < n {
        let m = lane_mask(i, n);
        // SAFETY: `m` enables only lanes i..n, which are in bounds; masked-off
        // lanes are not accessed.
        let d = unsafe {
            _mm512_sub_ps(
                _mm512_maskz_loadu_ps(m, pa.add(i)),
                _mm512_maskz_loadu_ps(m, pb.add(i)),
            )
        };
        acc[0] = _mm512_fmadd_ps(d, d, acc[0]);
        i += 16;
    }
    reduce4(acc)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn dot_f32_imp(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 64 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            let o = i + 16 * k;
            // SAFETY: o + 16 <= i + 64 <= n, so both 16-lane loads are in bounds.
            let (x, y) = unsafe { (_mm512_loadu_ps(pa.add(o)), _mm512_loadu_ps(pb.add(o))) };
            *acc = _mm512_fmadd_ps(x, y, *acc);
        }
        i += 64;
    }
    while i < n {
        let m = lane_mask(i, n);
        // SAFETY: `m` enables only lanes i..n, which are in bounds; masked-off
        // lanes are not accessed.
        let (x, y) = unsafe {
            (
                _mm512_maskz_loadu_ps(m, pa.add(i)),
                _mm512_maskz_loadu_ps(m, pb.add(i)),
            )
        };
        acc[0] = _mm512_fmadd_ps(x, y, acc[0]);
        i += 16;
    }
    reduce4(acc)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn l2_f16_imp(q: &[f32], code: &[f16]) -> f32 {
    let n = q.len().min(code.len());
    let (pq, pc) = (q.as_ptr(), code.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 64 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            let o = i + 16 * k;
            // SAFETY: o + 16 <= n: 16 f32 and 16 f16 are in bounds.
            let d = unsafe { _mm512_sub_ps(_mm512_loadu_ps(pq.add(o)), load_f16(pc.add(o))) };
            *acc = _mm512_fmadd_ps(d, d, *acc);
        }
        i += 64;
    }
    while i < n {
        let m = lane_mask(i, n);
        // SAFETY: `m` enables only lanes i..n, which are in bounds; masked-off
        // lanes are not accessed.
        let (x, c) = unsafe {
            (
                _mm512_maskz_loadu_ps(m, pq.add(i)),
                _mm256_maskz_loadu_epi16(m, pc.add(i).cast()),
            )
        };
        let d = _mm512_sub_ps(x, _mm512_cvtph_ps(c));
        acc[0] = _mm512_fmadd_ps(d, d, acc[0]);
        i += 16;
    }
    reduce4(acc)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn dot_f16_imp(q: &[f32], code: &[f16]) -> f32 {
    let n = q.len().min(code.len());
    let (pq, pc) = (q.as_ptr(), code.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 64 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            let o = i + 16 * k;
            // SAFETY: o + 16 <= n: 16 f32 and 16 f16 are in bounds.
            let (x, c) = unsafe { (_mm512_loadu_ps(pq.add(o)), load_f16(pc.add(o))) };
            *acc = _mm512_fmadd_ps(x, c, *acc);
        }
        i += 64;
    }
    while i < n {
        let m = lane_mask(i, n);
        // SAFETY: `m` enables only lanes i..n, which are in bounds; masked-off
        // lanes are not accessed.
        let (x, c) = unsafe {
            (
                _mm512_maskz_loadu_ps(m, pq.add(i)),
                _mm256_maskz_loadu_epi16(m, pc.add(i).cast()),
            )
        };
        acc[0] = _mm512_fmadd_ps(x, _mm512_cvtph_ps(c), acc[0]);
        i += 16;
    }
    reduce4(acc)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn l2_sq8_imp(q: &[f32], scale: &[f32], code: &[u8]) -> f32 {
    let n = q.len().min(scale.len()).min(code.len());
    let (pq, ps, pc) = (q.as_ptr(), scale.as_ptr(), code.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 64 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            let o = i + 16 * k;
            // SAFETY: o + 16 <= n: 16 f32 from q and scale, 16 bytes from code.
            let (x, s, c) = unsafe {
                (
                    _mm512_loadu_ps(pq.add(o)),
                    _mm512_loadu_ps(ps.add(o)),
                    load_u8(pc.add(o)),
                )
            };
            let d = _mm512_fnmadd_ps(s, c, x);
            *acc = _mm512_fmadd_ps(d, d, *acc);
        }
        i += 64;
    }
    while i < n {
        let m = lane_mask(i, n);
        // SAFETY: `m` enables only lanes i..n, which are in bounds; masked-off
        // lanes are not accessed.
        let (x, s, c) = unsafe {
            (
                _mm512_maskz_loadu_ps(m, pq.add(i)),
                _mm512_maskz_loadu_ps(m, ps.add(i)),
                _mm_maskz_loadu_epi8(m, pc.add(i).cast()),
            )
        };
        let c = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(c));
        let d = _mm512_fnmadd_ps(s, c, x);
        acc[0] = _mm512_fmadd_ps(d, d, acc[0]);
        i += 16;
    }
    reduce4(acc)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn dot_u8_imp(w: &[f32], code: &[u8]) -> f32 {
    let n = w.len().min(code.len());
    let (pw, pc) = (w.as_ptr(), code.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 64 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            let o = i + 16 * k;
            // SAFETY: o + 16 <= n: 16 f32 from w, 16 bytes from code.
            let (x, c) = unsafe { (_mm512_loadu_ps(pw.add(o)), load_u8(pc.add(o))) };
            *acc = _mm512_fmadd_ps(x, c, *acc);
        }
        i += 64;
    }
    while i < n {
        let m = lane_mask(i, n);
        // SAFETY: `m` enables only lanes i..n, which are in bounds; masked-off
        // lanes are not accessed.
        let (x, c) = unsafe {
            (
                _mm512_maskz_loadu_ps(m, pw.add(i)),
                _mm_maskz_loadu_epi8(m, pc.add(i).cast()),
            )
        };
        acc[0] = _mm512_fmadd_ps(x, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(c)), acc[0]);
        i += 16;
    }
    reduce4(acc)
}
