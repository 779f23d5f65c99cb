//! The integer form of an SQ8 search query: the query is quantised once to
//! int8 weights, and each distance is one exact integer dot product with the
//! code ([`crate::distance::Kernels::dot_u8i8`], AVX-512 VNNI `vpdpbusd`
//! where available) plus a few f32 operations.
//!
//! With `x̂ᵢ = minᵢ + scaleᵢ·cᵢ` (the decoded code) and the per-dimension
//! centre `μᵢ = minᵢ + 128·scaleᵢ`, so that `x̂ᵢ − μᵢ = scaleᵢ·(cᵢ − 128)`:
//!
//! * inner product / cosine: `1 − <q, x̂> = (1 − Σqᵢ·μᵢ) − Σ wᵢ·(cᵢ − 128)`
//!   with `w = q·scale`;
//! * L2: `‖q − x̂‖² = ‖q − μ‖² + N(c) − 2·Σ wᵢ·(cᵢ − 128)` with
//!   `w = (q − μ)·scale` and the code's own `N(c) = Σ scaleᵢ²·(cᵢ − 128)²`
//!   ([`Sq8Quantizer::centered_sq_norm`], stored per node beside the code).
//!
//! `Σ wᵢ·(cᵢ − 128)` is computed as `α·(Σ w8ᵢ·cᵢ − 128·Σ w8ᵢ)` with
//! `w8 = round(w / α)`, `α = max|wᵢ| / 127`. Centring on code 128 keeps the
//! error of rounding `w` proportional to `|cᵢ − 128|` rather than `cᵢ`.
//! Dimensions whose weight is far above the rest (over 16× the mean `|w|`, at
//! most [`MAX_OUTLIERS`] of them; e.g. a constant dimension whose trained
//! scale defaulted to 1, or a query's spike) are kept out of the int8 weights
//! and added exactly in f32, so they do not coarsen `α` for all others.
//!
//! The result differs from the exact distance to `x̂` by the rounding of `w`
//! (at most `α/2·Σ|cᵢ − 128|`); searches re-rank with full vectors when the
//! order must be exact.

use super::Sq8Quantizer;
use crate::distance::{kernels, Kernels, Metric, U8I8DotFn};

/// Most dimensions handled exactly in f32 (see the module docs).
pub const MAX_OUTLIERS: usize = 16;
/// A weight above this multiple of the mean `|w|` is an outlier. For
/// Gaussian-like weights the mean is 0.8σ and the largest of 65,535 about
/// 4.5σ, so 16× (12.8σ) flags only weights no such distribution reaches.
/// One outlier of size `A` among `d` dimensions lifts the mean by `A/d`, so
/// it is found from `d > 16` on.
const OUTLIER_MEAN: f32 = 16.0;
/// Code value of the centre `μ`.
const CENTRE: f32 = 128.0;

impl Sq8Quantizer {
    /// `N(c) = Σ scaleᵢ²·(cᵢ − 128)²`: the part of an L2 distance that
    /// depends on the code alone, for [`Sq8IntQuery::distance`].
    ///
    /// # Panics
    /// If `code` does not have [`dim`](Self::dim) elements.
    pub fn centered_sq_norm(&self, code: &[u8]) -> f32 {
        self.check_len("code", code.len());
        let s: f64 = code
            .iter()
            .zip(&self.scale)
            .map(|(&c, &s)| (f64::from(s) * (f64::from(c) - f64::from(CENTRE))).powi(2))
            .sum();
        s as f32
    }
}

/// A query prepared for integer distances to SQ8 codes ("lower is closer",
/// as [`Metric`]). Reuse one per search thread with
/// [`set_query`](Self::set_query) to avoid allocating per query.
#[derive(Clone, Debug)]
pub struct Sq8IntQuery {
    metric: Metric,
    /// The int8 weights (0 at outlier dimensions).
    w8: Vec<i8>,
    /// Outlier dimensions and their f32 weights `wᵢ`.
    outliers: Vec<(u32, f32)>,
    /// f32 weights (scratch of `set_query`).
    w: Vec<f32>,
    /// Distance = `k0 + N(c) − k1·(Σ w8ᵢ·cᵢ + outliers)`, see the module docs.
    k0: f32,
    k1: f32,
    dot: U8I8DotFn,
}

impl Sq8IntQuery {
    /// Prepares `query` with the detected kernels. For [`Metric::Cosine`] the
    /// query is normalised here (a zero query is left as is).
    ///
    /// # Panics
    /// If `query` does not have the quantiser's dimension.
    pub fn new(quantizer: &Sq8Quantizer, metric: Metric, query: &[f32]) -> Self {
        Self::with_kernels(quantizer, metric, query, kernels())
    }

    /// As [`new`](Self::new), with an explicit kernel table (tests, benches).
    pub fn with_kernels(
        quantizer: &Sq8Quantizer,
        metric: Metric,
        query: &[f32],
        kernels: &Kernels,
    ) -> Self {
        let mut q = Self {
            metric,
            w8: Vec::with_capacity(quantizer.dim()),
            outliers: Vec::new(),
            w: Vec::with_capacity(quantizer.dim()),
            k0: 0.0,
            k1: 0.0,
            dot: kernels.dot_u8i8,
        };
        q.set_query(quantizer, query);
        q
    }

    /// The metric this query was prepared for.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Whether [`distance`](Self::distance) needs the code's
    /// [`Sq8Quantizer::centered_sq_norm`] (L2), or ignores it.
    pub fn needs_norm(&self) -> bool {
        self.metric == Metric::L2
    }

    /// Re-prepares this value for another query, reusing its buffers.
    ///
    /// # Panics
    /// If `query` does not have the quantiser's dimension.
    pub fn set_query(&mut self, quantizer: &Sq8Quantizer, query: &[f32]) {
        quantizer.check_len("query", query.len());
        self.w.clear();
        // Query-only part of the distance, in f64.
        let mut k0: f64;
        match self.metric {
            Metric::L2 => {
                let mut qq = 0.0f64;
                for ((&x, &m), &s) in query.iter().zip(&quantizer.min).zip(&quantizer.scale) {
                    let d = x - (m + CENTRE * s);
                    qq += f64::from(d) * f64::from(d);
                    self.w.push(d * s);
                }
                k0 = qq;
            }
            Metric::InnerProduct | Metric::Cosine => {
                let inv_norm = super::query_scale(self.metric, query);
                let mut qmu = 0.0f64;
                for ((&x, &m), &s) in query.iter().zip(&quantizer.min).zip(&quantizer.scale) {
                    let x = x * inv_norm;
                    qmu += f64::from(x) * f64::from(m + CENTRE * s);
                    self.w.push(x * s);
                }
                k0 = 1.0 - qmu;
            }
        }
        // L2 has −2·Σwᵢ(cᵢ − 128), the inner product −Σwᵢ(cᵢ − 128).
        let sign = if self.metric == Metric::L2 { 2.0 } else { 1.0 };
        self.split_outliers();
        let amax = self.w.iter().fold(0.0f32, |a, &x| a.max(x.abs()));
        let alpha = if amax.is_finite() && amax > 0.0 {
            amax / 127.0
        } else {
            1.0
        };
        self.w8.clear();
        let mut sum8 = 0i64;
        let inv = 1.0 / alpha;
        for &x in &self.w {
            // Round half away from zero by truncation (`round` is a libm call
            // without SSE4.1). |x·inv| ≤ 127 by the choice of α (plus a
            // rounding ulp); `as` saturates and maps NaN to 0.
            let y = x * inv;
            let q = (y + 0.5f32.copysign(y)).clamp(-127.0, 127.0) as i8;
            sum8 += i64::from(q);
            self.w8.push(q);
        }
        let mut sum_out = 0.0f64;
        for &(_, x) in &self.outliers {
            sum_out += f64::from(x);
        }
        // −sign·[α(D − 128·Σw8) + Σ_out wⱼ(cⱼ − 128)]
        //   = sign·128·(α·Σw8 + Σ_out wⱼ) − sign·(α·D + Σ_out wⱼcⱼ).
        k0 += sign * f64::from(CENTRE) * (f64::from(alpha) * sum8 as f64 + sum_out);
        self.k0 = k0 as f32;
        self.k1 = (sign * f64::from(alpha)) as f32;
        // Outlier weights divided by α so one multiply by k1 covers both.
        for o in &mut self.outliers {
            o.1 /= alpha;
        }
    }

    /// Moves dimensions with outsized weights from `w` to `outliers` (their
    /// `w` set to 0), unless there are more than [`MAX_OUTLIERS`]. Outsized
    /// is above [`OUTLIER_MEAN`] × the mean of `|w|` (a scale that a few
    /// outliers raise far less than the RMS would).
    fn split_outliers(&mut self) {
        self.outliers.clear();
        let n = self.w.len().max(1) as f32;
        let limit = OUTLIER_MEAN * self.w.iter().map(|x| x.abs()).sum::<f32>() / n;
        if !(limit.is_finite() && limit > 0.0) {
            return;
        }
        let count = self.w.iter().filter(|x| x.abs() > limit).count();
        if count == 0 || count > MAX_OUTLIERS {
            return;
        }
        for (i, x) in self.w.iter_mut().enumerate() {
            if x.abs() > limit {
                // i < dim ≤ MAX_DIM fits u32.
                self.outliers.push((i as u32, *x));
                *x = 0.0;
            }
        }
    }

    /// Distance from the query to `code`, whose
    /// [`centered_sq_norm`](Sq8Quantizer::centered_sq_norm) is `norm` (only
    /// read for L2; pass 0 otherwise).
    ///
    /// # Panics
    /// If `code` does not have the quantiser's dimension.
    #[inline]
    pub fn distance(&self, code: &[u8], norm: f32) -> f32 {
        let mut dot = (self.dot)(&self.w8, code) as f32;
        for &(i, x) in &self.outliers {
            // `i` < dim = code.len() (asserted by the kernel above).
            dot += x * f32::from(code[i as usize]);
        }
        let norm = if self.metric == Metric::L2 { norm } else { 0.0 };
        self.k0 + norm - self.k1 * dot
    }
}

#[cfg(test)]
mod tests;
