//! Distance kernels: every kernel table this CPU can run × element type × d.
//!
//! Ids are `<kernel>/<table>/<d>`, e.g. `l2_f32/avx512/768`. One query against
//! one stored vector, both L1-resident and 64-byte aligned, so the figures are
//! the kernels' peak.
//! Throughput counts every byte a call reads (query side and stored side):
//! l2_f32/dot_f32 8·d, l2_f16/dot_f16 6·d, l2_sq8 9·d (q', scale, code),
//! dot_u8 5·d (w, code).
//!
//! Run: `cargo bench --bench distance -- --measurement-time 1`
//! (filter with e.g. `-- l2_f32/avx512`).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use half::f16;
use quiver::distance::{available_kernels, Kernels};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const DIMS: &[usize] = &[96, 128, 384, 768, 1536];

/// One 64-byte cache line; vectors are stored in these so every kernel sees
/// cache-line-aligned inputs (as an index that lays vectors out at
/// 64-byte-multiple strides does). Unaligned 512-bit loads that straddle two
/// lines cost two L1 accesses and made results swing by up to 2× from one
/// allocation to the next.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Line([u8; 64]);

fn aligned<T: bytemuck::Pod>(v: &[T]) -> Vec<Line> {
    let bytes = std::mem::size_of_val(v);
    let mut lines = vec![Line([0; 64]); bytes.div_ceil(64)];
    bytemuck::cast_slice_mut::<Line, u8>(&mut lines)[..bytes]
        .copy_from_slice(bytemuck::cast_slice(v));
    lines
}

fn view<T: bytemuck::Pod>(lines: &[Line], d: usize) -> &[T] {
    &bytemuck::cast_slice(lines)[..d]
}

struct Data {
    d: usize,
    q: Vec<Line>,
    v: Vec<Line>,
    h: Vec<Line>,
    scale: Vec<Line>,
    code: Vec<Line>,
}

impl Data {
    fn new(d: usize) -> Self {
        let mut rng = SmallRng::seed_from_u64(0x5eed ^ d as u64);
        let mut f = |lo: f32, hi: f32| (0..d).map(|_| rng.gen_range(lo..hi)).collect::<Vec<f32>>();
        let q = f(-1.0, 1.0);
        let v = f(-1.0, 1.0);
        let scale = f(0.001, 0.01);
        let h: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
        let code: Vec<u8> = (0..d).map(|i| (i * 37 % 256) as u8).collect();
        Self {
            d,
            q: aligned(&q),
            v: aligned(&v),
            h: aligned(&h),
            scale: aligned(&scale),
            code: aligned(&code),
        }
    }
    fn q(&self) -> &[f32] {
        view(&self.q, self.d)
    }
    fn v(&self) -> &[f32] {
        view(&self.v, self.d)
    }
    fn h(&self) -> &[f16] {
        view(&self.h, self.d)
    }
    fn scale(&self) -> &[f32] {
        view(&self.scale, self.d)
    }
    fn code(&self) -> &[u8] {
        view(&self.code, self.d)
    }
}

/// One group `name` over every d and table; `f` is monomorphised, so the only
/// indirect call per iteration is the kernel's own, as in real searches.
fn group(c: &mut Criterion, name: &str, bytes_per_dim: usize, f: impl Fn(&Kernels, &Data) -> f32) {
    let tables = available_kernels();
    let mut group = c.benchmark_group(name);
    for &d in DIMS {
        let x = Data::new(d);
        group.throughput(Throughput::Bytes((bytes_per_dim * d) as u64));
        for k in &tables {
            group.bench_with_input(BenchmarkId::new(k.name, d), &x, |b, x| b.iter(|| f(k, x)));
        }
    }
    group.finish();
}

fn bench(c: &mut Criterion) {
    group(c, "l2_f32", 8, |k, x| {
        (k.l2_f32)(black_box(x.q()), black_box(x.v()))
    });
    group(c, "dot_f32", 8, |k, x| {
        (k.dot_f32)(black_box(x.q()), black_box(x.v()))
    });
    group(c, "l2_f16", 6, |k, x| {
        (k.l2_f16)(black_box(x.q()), black_box(x.h()))
    });
    group(c, "dot_f16", 6, |k, x| {
        (k.dot_f16)(black_box(x.q()), black_box(x.h()))
    });
    group(c, "l2_sq8", 9, |k, x| {
        (k.l2_sq8)(black_box(x.q()), black_box(x.scale()), black_box(x.code()))
    });
    group(c, "dot_u8", 5, |k, x| {
        (k.dot_u8)(black_box(x.q()), black_box(x.code()))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .sample_size(50);
    targets = bench
}
criterion_main!(benches);
