//! The `Metric` enum and the per-metric distance function an index holds.

use std::fmt;
use std::str::FromStr;

use half::f16;

use super::kernels;

/// How two vectors are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Squared Euclidean distance.
    L2,
    /// Inner product; distance is `1 - <a, b>`.
    #[serde(rename = "ip")]
    InnerProduct,
    /// Cosine; vectors are normalised, then compared as inner product.
    Cosine,
}

impl Metric {
    /// Whether vectors (and queries) are normalised before use.
    pub fn normalizes(self) -> bool {
        matches!(self, Metric::Cosine)
    }

    /// The distance function for this metric on the detected kernels.
    pub fn kernel(self) -> DistanceKernel {
        let k = kernels();
        Kernel::new(self, k.l2_f32, k.dot_f32)
    }

    /// The distance from an f32 query to f16 codes for this metric.
    pub fn f16_kernel(self) -> F16Kernel {
        let k = kernels();
        Kernel::new(self, k.l2_f16, k.dot_f16)
    }

    /// Short name as used on the command line and in files.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::L2 => "l2",
            Metric::InnerProduct => "ip",
            Metric::Cosine => "cosine",
        }
    }

    /// Stable code used in on-disk headers.
    pub fn code(self) -> u8 {
        match self {
            Metric::L2 => 0,
            Metric::InnerProduct => 1,
            Metric::Cosine => 2,
        }
    }

    /// Inverse of [`Metric::code`].
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Metric::L2),
            1 => Some(Metric::InnerProduct),
            2 => Some(Metric::Cosine),
            _ => None,
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown metric name.
#[derive(Debug, thiserror::Error)]
#[error("unknown metric {0:?}: expected l2, ip or cosine")]
pub struct ParseMetricError(pub String);

impl FromStr for Metric {
    type Err = ParseMetricError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "l2" | "euclidean" => Ok(Metric::L2),
            "ip" | "dot" | "inner_product" | "innerproduct" => Ok(Metric::InnerProduct),
            "cosine" | "angular" => Ok(Metric::Cosine),
            _ => Err(ParseMetricError(s.to_string())),
        }
    }
}

/// A metric's distance bound to a kernel pointer over stored elements `T`,
/// resolved once per index: squared L2, or `1 − <a, b>` for inner product
/// and cosine (the one place that rule is written).
pub struct Kernel<T: 'static> {
    f: fn(&[f32], &[T]) -> f32,
    one_minus: bool,
}

/// [`Kernel`] over f32 vectors.
pub type DistanceKernel = Kernel<f32>;
/// [`Kernel`] from an f32 query to f16 codes.
pub type F16Kernel = Kernel<f16>;

impl<T> Clone for Kernel<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Kernel<T> {}

impl<T> Kernel<T> {
    fn new(metric: Metric, l2: fn(&[f32], &[T]) -> f32, dot: fn(&[f32], &[T]) -> f32) -> Self {
        match metric {
            Metric::L2 => Kernel {
                f: l2,
                one_minus: false,
            },
            Metric::InnerProduct | Metric::Cosine => Kernel {
                f: dot,
                one_minus: true,
            },
        }
    }

    /// Distance between `a` and `b` (lower is closer).
    #[inline(always)]
    pub fn distance(&self, a: &[f32], b: &[T]) -> f32 {
        let r = (self.f)(a, b);
        if self.one_minus {
            1.0 - r
        } else {
            r
        }
    }
}
