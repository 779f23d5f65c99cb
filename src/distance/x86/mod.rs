//! x86_64 kernels: one file per instruction set, each exposing
//! `kernels() -> Option<Kernels>` that checks the CPU at run time.
//!
//! The `#[target_feature]` functions are private; the only way to reach them
//! is through a table that `kernels()` built after `is_x86_feature_detected!`
//! succeeded, which is what makes the safe wrappers sound.

pub(crate) mod avx2;
pub(crate) mod avx512;
pub(crate) mod int8;
