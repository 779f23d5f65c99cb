//! Distance metrics and the SIMD kernels behind every search.
//!
//! Kernels come in one file per instruction set (`scalar.rs`, `x86/avx2.rs`,
//! `x86/avx512.rs`, `aarch64/neon.rs`). The best available set is detected once
//! at start-up and cached as a table of function pointers ([`kernels`]); hot
//! loops hold the pointer they need and never re-check CPU features.
//!
//! Each table covers three element types of the *stored* vector: f32, f16
//! ([`Kernels::l2_f16`]) against an f32 query, and SQ8 codes against an f32
//! query ([`Kernels::l2_sq8`], [`Kernels::dot_u8`]) or an int8 one
//! ([`Kernels::dot_u8i8`], exact integer sums; `x86/int8.rs`), used through
//! [`crate::quant::Sq8Query`].
//!
//! The environment variable `QUIVER_KERNELS=scalar|avx2|avx512|neon` (read once,
//! at detection) forces a table, for benchmarks and tests; an unknown or
//! unavailable name falls back to the best table with a warning.
//!
//! Convention: a *distance* is "lower is closer". L2 is the squared Euclidean
//! distance; inner product and cosine use `1 - <a, b>` (cosine vectors are
//! normalised once at insert, queries once per search).
//!
//! All kernels panic if their slices differ in length; any length (including
//! 0) is accepted.

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod metric;
pub mod scalar;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use metric::{DistanceKernel, F16Kernel, Kernel, Metric, ParseMetricError};

use half::f16;
use std::sync::OnceLock;

/// `fn(a, b) -> f32` over two f32 slices of equal length.
pub type F32Fn = fn(&[f32], &[f32]) -> f32;
/// `fn(query, code) -> f32`: f32 query against an f16 stored vector.
pub type F16Fn = fn(&[f32], &[f16]) -> f32;
/// `fn(q_minus_min, scale, code) -> f32`: `Σ (q'ᵢ − scaleᵢ·codeᵢ)²`.
pub type Sq8L2Fn = fn(&[f32], &[f32], &[u8]) -> f32;
/// `fn(weights, code) -> f32`: `Σ wᵢ·codeᵢ`.
pub type U8DotFn = fn(&[f32], &[u8]) -> f32;
/// `fn(weights, code) -> i32`: `Σ wᵢ·codeᵢ`, exact, int8 weights.
pub type U8I8DotFn = fn(&[i8], &[u8]) -> i32;

/// The kernels of one instruction set.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    /// Name of the instruction set ("avx512", "avx2", "neon", "scalar").
    pub name: &'static str,
    /// Squared L2 distance of two f32 vectors.
    pub l2_f32: F32Fn,
    /// Inner product of two f32 vectors.
    pub dot_f32: F32Fn,
    /// Squared L2 distance of an f32 query and an f16 vector.
    pub l2_f16: F16Fn,
    /// Inner product of an f32 query and an f16 vector.
    pub dot_f16: F16Fn,
    /// Squared L2 distance of a query (minus the SQ8 per-dimension minimum)
    /// and an SQ8 code: `Σ (q'ᵢ − scaleᵢ·codeᵢ)²`.
    pub l2_sq8: Sq8L2Fn,
    /// Weighted sum of an SQ8 code, `Σ wᵢ·codeᵢ` (the code-dependent part of
    /// an inner product with `w = query · scale`).
    pub dot_u8: U8DotFn,
    /// `Σ wᵢ·codeᵢ` of int8 weights and an SQ8 code, exact in i32 (the
    /// search kernel of [`crate::quant::Sq8Query`]: the query is quantised
    /// to int8 once; AVX-512 VNNI `vpdpbusd` where the CPU has it).
    pub dot_u8i8: U8I8DotFn,
}

static KERNELS: OnceLock<Kernels> = OnceLock::new();

/// Environment variable that forces a kernel table by name.
pub const KERNELS_ENV: &str = "QUIVER_KERNELS";

/// The kernel table for this CPU, detected on first use.
pub fn kernels() -> &'static Kernels {
    KERNELS.get_or_init(detect)
}

/// The portable reference kernels (always available).
pub fn scalar_kernels() -> Kernels {
    Kernels {
        name: "scalar",
        l2_f32: scalar::l2_f32,
        dot_f32: scalar::dot_f32,
        l2_f16: scalar::l2_f16,
        dot_f16: scalar::dot_f16,
        l2_sq8: scalar::l2_sq8,
        dot_u8: scalar::dot_u8,
        dot_u8i8: scalar::dot_u8i8,
    }
}

/// Every kernel table this CPU can run, best first (for tests and benches).
/// The last entry is always [`scalar_kernels`].
pub fn available_kernels() -> Vec<Kernels> {
    let mut v = Vec::with_capacity(3);
    #[cfg(target_arch = "x86_64")]
    {
        v.extend(x86::avx512::kernels());
        v.extend(x86::avx2::kernels());
    }
    #[cfg(target_arch = "aarch64")]
    {
        v.extend(aarch64::neon::kernels());
    }
    v.push(scalar_kernels());
    v
}

fn detect() -> Kernels {
    let requested = std::env::var(KERNELS_ENV).ok();
    let k = select(&available_kernels(), requested.as_deref());
    tracing::debug!(kernels = k.name, "distance kernels selected");
    k
}

/// Picks the table named by `requested` (case-insensitive; empty or "auto"
/// means best), or the best one (`available[0]`) when that name is unknown or
/// this CPU cannot run it.
fn select(available: &[Kernels], requested: Option<&str>) -> Kernels {
    let best = available[0];
    let Some(name) = requested.map(str::trim).filter(|n| !n.is_empty()) else {
        return best;
    };
    if name.eq_ignore_ascii_case("auto") {
        return best;
    }
    match available.iter().find(|k| k.name.eq_ignore_ascii_case(name)) {
        Some(k) => *k,
        None => {
            tracing::warn!(
                requested = name,
                using = best.name,
                "{KERNELS_ENV}: kernel table not available on this CPU (expected one of {:?})",
                available.iter().map(|k| k.name).collect::<Vec<_>>()
            );
            best
        }
    }
}

/// Squared L2 distance with the detected kernel.
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    (kernels().l2_f32)(a, b)
}

/// Inner product with the detected kernel.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    (kernels().dot_f32)(a, b)
}

/// Scales `v` to unit length in place. Returns `false` (and leaves `v`
/// unchanged) when its norm is zero or not finite.
pub fn normalize(v: &mut [f32]) -> bool {
    let norm = dot(v, v).sqrt();
    if !norm.is_finite() || norm == 0.0 {
        return false;
    }
    let inv = 1.0 / norm;
    v.iter_mut().for_each(|x| *x *= inv);
    true
}

/// Hints the CPU to bring the start of `data` into cache. Never faults.
#[inline(always)]
pub fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: prefetch is a hint; it never dereferences the pointer in a way
        // that can fault, and SSE is part of the x86_64 baseline.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(data.as_ptr() as *const i8);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = data;
    }
}

/// Hints the CPU to bring up to `max_lines` cache lines of `data` into cache.
#[inline(always)]
pub fn prefetch_lines<T>(data: &[T], max_lines: usize) {
    let bytes = std::mem::size_of_val(data);
    let lines = bytes.div_ceil(64).min(max_lines);
    let base = data.as_ptr() as *const u8;
    for i in 0..lines {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: prefetch is a hint that never faults; `wrapping_add` keeps the
        // address computation free of UB even past the end of `data`.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(i * 64) as *const i8);
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (base, i);
    }
}
