//! Distance metrics and the SIMD kernels behind every search.
//!
//! Kernels come in one file per instruction set (`scalar.rs`, `x86/avx2.rs`,
//! `x86/avx512.rs`, `aarch64/neon.rs`). The best available set is detected once
//! at start-up and cached as a table of function pointers ([`kernels`]); hot
//! loops hold the pointer they need and never re-check CPU features.
//!
//! Convention: a *distance* is "lower is closer". L2 is the squared Euclidean
//! distance; inner product and cosine use `1 - <a, b>` (cosine vectors are
//! normalised once at insert, queries once per search).

mod metric;
pub mod scalar;

pub use metric::{DistanceKernel, Metric, ParseMetricError};

use std::sync::OnceLock;

/// `fn(a, b) -> f32` over two f32 slices of equal length.
pub type F32Fn = fn(&[f32], &[f32]) -> f32;

/// The kernels of one instruction set.
#[derive(Clone, Copy)]
pub struct Kernels {
    /// Name of the instruction set ("avx512", "avx2", "neon", "scalar").
    pub name: &'static str,
    /// Squared L2 distance of two f32 vectors.
    pub l2_f32: F32Fn,
    /// Inner product of two f32 vectors.
    pub dot_f32: F32Fn,
}

static KERNELS: OnceLock<Kernels> = OnceLock::new();

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
    }
}

/// Every kernel table this CPU can run, best first (for tests and benches).
pub fn available_kernels() -> Vec<Kernels> {
    vec![scalar_kernels()]
}

fn detect() -> Kernels {
    let k = available_kernels()[0];
    tracing::debug!(kernels = k.name, "distance kernels selected");
    k
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
