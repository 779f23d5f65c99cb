//! Integer SQ8 kernels: `Σ wᵢ·cᵢ` of an int8 query (`w`, |wᵢ| ≤ 127) and u8
//! codes (`c`), summed exactly in i32 (`dot_u8i8`, see
//! [`crate::distance::Kernels::dot_u8i8`]).
//!
//! * AVX-512 VNNI: `vpdpbusd` multiplies 64 u8 × s8 pairs and adds groups of
//!   four into 16 i32 lanes, one instruction per 64 dimensions (a 384-d code
//!   is 6), masked loads for the tail.
//! * AVX2: codes widened to u16 (`vpmovzxbw`) and weights to i16
//!   (`vpmovsxbw`), then `vpmaddwd` into i32: 16 dimensions per step. The
//!   shorter `vpmaddubsw` route is not used because its i16 pair sums
//!   saturate (255·127·2 > 32767) unless the weights are cut to ±64, which
//!   would cost the query a bit of precision on every table.
//!
//! Both are exact (no rounding, no saturation): `|Σ| ≤ 255·127·d < 2³¹` for
//! `d ≤ 65,535` (the largest dimension), so every table returns the same
//! value as the scalar reference.

use std::arch::x86_64::*;

/// The VNNI kernel, if this CPU has AVX-512 F, BW and VNNI.
pub(crate) fn vnni() -> Option<crate::distance::U8I8DotFn> {
    let ok = is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vnni");
    ok.then_some(dot_u8i8_vnni as crate::distance::U8I8DotFn)
}

/// The AVX2 kernel, if this CPU has AVX2.
pub(crate) fn avx2() -> Option<crate::distance::U8I8DotFn> {
    is_x86_feature_detected!("avx2").then_some(dot_u8i8_avx2 as crate::distance::U8I8DotFn)
}

// Safe wrappers: private, reachable only through `vnni()` / `avx2()`, which
// return them only after detecting the features.

fn dot_u8i8_vnni(w: &[i8], code: &[u8]) -> i32 {
    assert_eq!(w.len(), code.len(), "dot_u8i8: length mismatch");
    // SAFETY: only reachable via `vnni()`, which checked avx512f/bw/vnni.
    unsafe { vnni_imp(w, code) }
}

fn dot_u8i8_avx2(w: &[i8], code: &[u8]) -> i32 {
    assert_eq!(w.len(), code.len(), "dot_u8i8: length mismatch");
    // SAFETY: only reachable via `avx2()`, which checked avx2.
    unsafe { avx2_imp(w, code) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn vnni_imp(w: &[i8], code: &[u8]) -> i32 {
    let n = w.len().min(code.len());
    let (pw, pc) = (w.as_ptr(), code.as_ptr());
    let mut acc = [_mm512_setzero_si512(); 2];
    let mut i = 0;
    while i + 128 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            let o = i + 64 * k;
            // SAFETY: o + 64 <= i + 128 <= n: 64 bytes of each are in bounds.
            let (c, x) = unsafe {
                (
                    _mm512_loadu_si512(pc.add(o).cast()),
                    _mm512_loadu_si512(pw.add(o).cast()),
                )
            };
            *acc = _mm512_dpbusd_epi32(*acc, c, x);
        }
        i += 128;
    }
    while i < n {
        let rem = n - i;
        let m: __mmask64 = if rem >= 64 { !0 } else { (1u64 << rem) - 1 };
        // SAFETY: `m` enables only bytes i..min(i + 64, n), which are in
        // bounds; masked-off bytes are not accessed and read as zero.
        let (c, x) = unsafe {
            (
                _mm512_maskz_loadu_epi8(m, pc.add(i).cast()),
                _mm512_maskz_loadu_epi8(m, pw.add(i)),
            )
        };
        acc[0] = _mm512_dpbusd_epi32(acc[0], c, x);
        i += 64;
    }
    _mm512_reduce_add_epi32(_mm512_add_epi32(acc[0], acc[1]))
}

#[target_feature(enable = "avx2")]
fn avx2_imp(w: &[i8], code: &[u8]) -> i32 {
    let n = w.len().min(code.len());
    let (pw, pc) = (w.as_ptr(), code.as_ptr());
    let mut acc = [_mm256_setzero_si256(); 2];
    let mut i = 0;
    while i + 32 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            let o = i + 16 * k;
            // SAFETY: o + 16 <= i + 32 <= n: 16 bytes of each are in bounds.
            let (c, x) = unsafe {
                (
                    _mm_loadu_si128(pc.add(o).cast()),
                    _mm_loadu_si128(pw.add(o).cast()),
                )
            };
            let p = _mm256_madd_epi16(_mm256_cvtepu8_epi16(c), _mm256_cvtepi8_epi16(x));
            *acc = _mm256_add_epi32(*acc, p);
        }
        i += 32;
    }
    let v = _mm256_add_epi32(acc[0], acc[1]);
    let lo = _mm256_castsi256_si128(v);
    let hi = _mm256_extracti128_si256::<1>(v);
    let s = _mm_add_epi32(lo, hi);
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    let tail: i32 = w[i..n]
        .iter()
        .zip(&code[i..n])
        .map(|(&a, &c)| i32::from(a) * i32::from(c))
        .sum();
    _mm_cvtsi128_si32(s) + tail
}
