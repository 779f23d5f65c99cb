//! A deterministic write workload, shared by the crash test (which replays
//! it in a child process, `quiver crash-writer`) and its checker.

use std::collections::BTreeMap;

use super::{Payload, Point, PointId, Value};

/// Ids the workload writes to (so upserts replace and deletes hit).
pub const ID_SPACE: u64 = 600;

/// One operation of the workload.
pub enum WorkOp {
    Upsert(Vec<Point>),
    Delete(Vec<PointId>),
}

fn value(op: u64, j: u64, d: usize) -> f32 {
    let x = (op.wrapping_mul(0x9E37_79B9)
        ^ j.wrapping_mul(0x85EB_CA6B)
        ^ (d as u64).wrapping_mul(0xC2B2_AE35))
        % 2001;
    x as f32 / 1000.0 - 1.0 + 0.001
}

/// Operation number `i` for vectors of dimension `dim`.
pub fn op(i: u64, dim: usize) -> WorkOp {
    if i % 5 == 4 {
        WorkOp::Delete((0..3).map(|j| (i * 7 + j * 101) % ID_SPACE).collect())
    } else {
        WorkOp::Upsert(
            (0..20u64)
                .map(|j| {
                    let mut payload = Payload::new();
                    payload.insert("op".into(), Value::Int(i as i64));
                    Point {
                        id: (i * 20 + j * 3) % ID_SPACE,
                        vector: (0..dim).map(|d| value(i, j, d)).collect(),
                        payload: Some(payload),
                    }
                })
                .collect(),
        )
    }
}

/// The expected state (id → op number that last wrote it) after ops `0..n`.
pub fn model(n: u64, dim: usize) -> BTreeMap<PointId, u64> {
    let mut m = BTreeMap::new();
    for i in 0..n {
        match op(i, dim) {
            WorkOp::Upsert(points) => {
                for p in points {
                    m.insert(p.id, i);
                }
            }
            WorkOp::Delete(ids) => {
                for id in ids {
                    m.remove(&id);
                }
            }
        }
    }
    m
}
