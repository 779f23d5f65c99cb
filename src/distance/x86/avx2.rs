//! AVX2 + FMA + F16C kernels: 8 f32 lanes, four independent accumulators
//! (32 elements per main-loop iteration), then an 8-lane loop and a tail.
//!
//! The f32 tail uses `vmaskmovps` (masked-off lanes are never read and read as
//! zero); f16 and u8 tails, which have no masked load in AVX2, are copied into
//! a zeroed stack buffer. Zero lanes contribute nothing to any kernel.

use std::arch::x86_64::*;

use half::f16;

use crate::distance::Kernels;

/// The AVX2 table, if this CPU has AVX2, FMA and F16C.
pub(crate) fn kernels() -> Option<Kernels> {
    let ok = is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c");
    ok.then_some(Kernels {
        name: "avx2",
        l2_f32,
        dot_f32,
        l2_f16,
        dot_f16,
        l2_sq8,
        dot_u8,
        dot_u8i8: super::int8::avx2().unwrap_or(crate::distance::scalar::dot_u8i8),
    })
}

// Safe wrappers. They are private and only reachable through the table above,
// which exists only after the features were detected.

fn l2_f32(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "l2_f32: length mismatch");
    // SAFETY: only reachable via `kernels()`, which checked avx2/fma/f16c.
    unsafe { l2_f32_imp(a, b) }
}

fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot_f32: length mismatch");
    // SAFETY: only reachable via `kernels()`, which checked avx2/fma/f16c.
    unsafe { dot_f32_imp(a, b) }
}

fn l2_f16(q: &[f32], code: &[f16]) -> f32 {
    assert_eq!(q.len(), code.len(), "l2_f16: length mismatch");
    // SAFETY: only reachable via `kernels()`, which checked avx2/fma/f16c.
    unsafe { l2_f16_imp(q, code) }
}

fn dot_f16(q: &[f32], code: &[f16]) -> f32 {
    assert_eq!(q.len(), code.len(), "dot_f16: length mismatch");
    // SAFETY: only reachable via `kernels()`, which checked avx2/fma/f16c.
    unsafe { dot_f16_imp(q, code) }
}

fn l2_sq8(q: &[f32], scale: &[f32], code: &[u8]) -> f32 {
    let n = q.len();
    assert!(
        scale.len() == n && code.len() == n,
        "l2_sq8: length mismatch"
    );
    // SAFETY: only reachable via `kernels()`, which checked avx2/fma/f16c.
    unsafe { l2_sq8_imp(q, scale, code) }
}

fn dot_u8(w: &[f32], code: &[u8]) -> f32 {
    assert_eq!(w.len(), code.len(), "dot_u8: length mismatch");
    // SAFETY: only reachable via `kernels()`, which checked avx2/fma/f16c.
    unsafe { dot_u8_imp(w, code) }
}

/// `MASK[8 - k..16 - k]` has its first `k` lanes set (all bits) and the rest 0.
static TAIL_MASK: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

/// Mask selecting the first `k` (0..=8) of 8 lanes, for `_mm256_maskload_ps`.
#[target_feature(enable = "avx2")]
#[inline]
fn tail_mask(k: usize) -> __m256i {
    debug_assert!(k <= 8);
    let m = &TAIL_MASK[8 - k..16 - k];
    // SAFETY: `m` is a slice of exactly 8 i32 (the range above is in bounds of
    // the 16-element array for k <= 8, and indexing panics otherwise).
    unsafe { _mm256_loadu_si256(m.as_ptr().cast()) }
}

/// Loads `s[i..]` (fewer than 8 elements) as 8 lanes, the missing ones 0.
#[target_feature(enable = "avx2")]
#[inline]
fn load_tail_f32(s: &[f32], i: usize) -> __m256 {
    let rest = &s[i..];
    debug_assert!(rest.len() < 8);
    // SAFETY: the mask enables exactly `rest.len()` lanes, all inside `rest`;
    // masked-off lanes are not accessed by vmaskmovps.
    unsafe { _mm256_maskload_ps(rest.as_ptr(), tail_mask(rest.len())) }
}

/// Loads `s[i..]` (fewer than 8 f16) converted to 8 f32 lanes, the missing ones 0.
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn load_tail_f16(s: &[f16], i: usize) -> __m256 {
    let mut buf = [f16::ZERO; 8];
    let rest = &s[i..];
    buf[..rest.len()].copy_from_slice(rest);
    // SAFETY: `buf` is 8 f16 = 16 bytes, exactly one unaligned 128-bit load.
    _mm256_cvtph_ps(unsafe { _mm_loadu_si128(buf.as_ptr().cast()) })
}

/// Loads `s[i..]` (fewer than 8 u8) converted to 8 f32 lanes, the missing ones 0.
#[target_feature(enable = "avx2")]
#[inline]
fn load_tail_u8(s: &[u8], i: usize) -> __m256 {
    let mut buf = [0u8; 8];
    let rest = &s[i..];
    buf[..rest.len()].copy_from_slice(rest);
    // SAFETY: `buf` is 8 bytes, exactly one unaligned 64-bit load.
    let v = unsafe { _mm_loadl_epi64(buf.as_ptr().cast()) };
    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v))
}

/// Horizontal sum of 8 lanes.
#[target_feature(enable = "avx2")]
#[inline]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

#[target_feature(enable = "avx2,fma")]
#[inline]
fn reduce4(acc: [__m256; 4]) -> f32 {
    hsum(_mm256_add_ps(
        _mm256_add_ps(acc[0], acc[1]),
        _mm256_add_ps(acc[2], acc[3]),
    ))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn l2_f32_imp(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            let o = i + 8 * k;
            // SAFETY: o + 8 <= i + 32 <= n, so both 8-lane loads are in bounds.
            let d =
                unsafe { _mm256_sub_ps(_mm256_loadu_ps(pa.add(o)), _mm256_loadu_ps(pb.add(o))) };
            *acc = _mm256_fmadd_ps(d, d, *acc);
        }
        i += 32;
    }
    while i + 8 <= n {
        // SAFETY: i + 8 <= n.
        let d = unsafe { _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i))) };
        acc[0] = _mm256_fmadd_ps(d, d, acc[0]);
        i += 8;
    }
    if i < n {
        let d = _mm256_sub_ps(load_tail_f32(a, i), load_tail_f32(b, i));
        acc[1] = _mm256_fmadd_ps(d, d, acc[1]);
    }
    reduce4(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_f32_imp(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            let o = i + 8 * k;
            // SAFETY: o + 8 <= i + 32 <= n, so both 8-lane loads are in bounds.
            let (x, y) = unsafe { (_mm256_loadu_ps(pa.add(o)), _mm256_loadu_ps(pb.add(o))) };
            *acc = _mm256_fmadd_ps(x, y, *acc);
        }
        i += 32;
    }
    while i + 8 <= n {
        // SAFETY: i + 8 <= n.
        let (x, y) = unsafe { (_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i))) };
        acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
        i += 8;
    }
    if i < n {
        acc[1] = _mm256_fmadd_ps(load_tail_f32(a, i), load_tail_f32(b, i), acc[1]);
    }
    reduce4(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn l2_f16_imp(q: &[f32], code: &[f16]) -> f32 {
    let n = q.len().min(code.len());
    let (pq, pc) = (q.as_ptr(), code.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            let o = i + 8 * k;
            // SAFETY: o + 8 <= n: 8 f32 and 8 f16 (16 bytes) are in bounds.
            let (x, c) = unsafe {
                (
                    _mm256_loadu_ps(pq.add(o)),
                    _mm_loadu_si128(pc.add(o).cast()),
                )
            };
            let d = _mm256_sub_ps(x, _mm256_cvtph_ps(c));
            *acc = _mm256_fmadd_ps(d, d, *acc);
        }
        i += 32;
    }
    while i + 8 <= n {
        // SAFETY: i + 8 <= n: 8 f32 and 8 f16 (16 bytes) are in bounds.
        let (x, c) = unsafe {
            (
                _mm256_loadu_ps(pq.add(i)),
                _mm_loadu_si128(pc.add(i).cast()),
            )
        };
        let d = _mm256_sub_ps(x, _mm256_cvtph_ps(c));
        acc[0] = _mm256_fmadd_ps(d, d, acc[0]);
        i += 8;
    }
    if i < n {
        let d = _mm256_sub_ps(load_tail_f32(q, i), load_tail_f16(code, i));
        acc[1] = _mm256_fmadd_ps(d, d, acc[1]);
    }
    reduce4(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_f16_imp(q: &[f32], code: &[f16]) -> f32 {
    let n = q.len().min(code.len());
    let (pq, pc) = (q.as_ptr(), code.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            let o = i + 8 * k;
            // SAFETY: o + 8 <= n: 8 f32 and 8 f16 (16 bytes) are in bounds.
            let (x, c) = unsafe {
                (
                    _mm256_loadu_ps(pq.add(o)),
                    _mm_loadu_si128(pc.add(o).cast()),
                )
            };
            *acc = _mm256_fmadd_ps(x, _mm256_cvtph_ps(c), *acc);
        }
        i += 32;
    }
    while i + 8 <= n {
        // SAFETY: i + 8 <= n: 8 f32 and 8 f16 (16 bytes) are in bounds.
        let (x, c) = unsafe {
            (
                _mm256_loadu_ps(pq.add(i)),
                _mm_loadu_si128(pc.add(i).cast()),
            )
        };
        acc[0] = _mm256_fmadd_ps(x, _mm256_cvtph_ps(c), acc[0]);
        i += 8;
    }
    if i < n {
        acc[1] = _mm256_fmadd_ps(load_tail_f32(q, i), load_tail_f16(code, i), acc[1]);
    }
    reduce4(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn l2_sq8_imp(q: &[f32], scale: &[f32], code: &[u8]) -> f32 {
    let n = q.len().min(scale.len()).min(code.len());
    let (pq, ps, pc) = (q.as_ptr(), scale.as_ptr(), code.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            let o = i + 8 * k;
            // SAFETY: o + 8 <= n: 8 f32 from q and scale, 8 bytes from code.
            let (x, s, c) = unsafe {
                (
                    _mm256_loadu_ps(pq.add(o)),
                    _mm256_loadu_ps(ps.add(o)),
                    _mm_loadl_epi64(pc.add(o).cast()),
                )
            };
            let c = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c));
            let d = _mm256_fnmadd_ps(s, c, x);
            *acc = _mm256_fmadd_ps(d, d, *acc);
        }
        i += 32;
    }
    while i + 8 <= n {
        // SAFETY: i + 8 <= n: 8 f32 from q and scale, 8 bytes from code.
        let (x, s, c) = unsafe {
            (
                _mm256_loadu_ps(pq.add(i)),
                _mm256_loadu_ps(ps.add(i)),
                _mm_loadl_epi64(pc.add(i).cast()),
            )
        };
        let c = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c));
        let d = _mm256_fnmadd_ps(s, c, x);
        acc[0] = _mm256_fmadd_ps(d, d, acc[0]);
        i += 8;
    }
    if i < n {
        let d = _mm256_fnmadd_ps(
            load_tail_f32(scale, i),
            load_tail_u8(code, i),
            load_tail_f32(q, i),
        );
        acc[1] = _mm256_fmadd_ps(d, d, acc[1]);
    }
    reduce4(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_u8_imp(w: &[f32], code: &[u8]) -> f32 {
    let n = w.len().min(code.len());
    let (pw, pc) = (w.as_ptr(), code.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            let o = i + 8 * k;
            // SAFETY: o + 8 <= n: 8 f32 from w, 8 bytes from code.
            let (x, c) = unsafe {
                (
                    _mm256_loadu_ps(pw.add(o)),
                    _mm_loadl_epi64(pc.add(o).cast()),
                )
            };
            *acc = _mm256_fmadd_ps(x, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c)), *acc);
        }
        i += 32;
    }
    while i + 8 <= n {
        // SAFETY: i + 8 <= n: 8 f32 from w, 8 bytes from code.
        let (x, c) = unsafe {
            (
                _mm256_loadu_ps(pw.add(i)),
                _mm_loadl_epi64(pc.add(i).cast()),
            )
        };
        acc[0] = _mm256_fmadd_ps(x, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c)), acc[0]);
        i += 8;
    }
    if i < n {
        acc[1] = _mm256_fmadd_ps(load_tail_f32(w, i), load_tail_u8(code, i), acc[1]);
    }
    reduce4(acc)
}
