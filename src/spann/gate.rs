//! The pause gate between update operations and checkpoints: operations
//! enter shared, a checkpoint's snapshot enters exclusive. Fair, so a
//! stream of updates cannot starve a checkpoint; but re-entrant per
//! thread, because rayon may run one operation's task on a thread that is
//! already inside another operation (its worker waiting on a join steals
//! work), and that inner operation must not wait behind a checkpoint that
//! waits for the outer one.

use std::cell::Cell;

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

thread_local! {
    /// Operations this thread is inside of.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// The gate.
#[derive(Default)]
pub(crate) struct Gate(RwLock<()>);

/// Held by an operation.
pub(crate) struct Entered<'a> {
    _guard: RwLockReadGuard<'a, ()>,
}

impl Gate {
    /// Enters as an operation (waits while a checkpoint pauses, unless this
    /// thread is already inside an operation).
    pub(crate) fn enter(&self) -> Entered<'_> {
        let nested = DEPTH.with(|d| {
            let n = d.get();
            d.set(n + 1);
            n > 0
        });
        let guard = if nested {
            self.0.read_recursive()
        } else {
            self.0.read()
        };
        Entered { _guard: guard }
    }

    /// Waits for the operations in flight and keeps new ones out.
    pub(crate) fn pause(&self) -> RwLockWriteGuard<'_, ()> {
        self.0.write()
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn nested_entry_passes_a_waiting_pause() {
        let gate = Arc::new(Gate::default());
        let paused = Arc::new(AtomicBool::new(false));
        let outer = gate.enter();
        let (g, p) = (gate.clone(), paused.clone());
        let t = std::thread::spawn(move || {
            let _w = g.pause();
            p.store(true, Ordering::SeqCst);
        });
        std::thread::sleep(Duration::from_millis(50));
        // The pause waits for `outer`; a nested entry must not wait for it.
        let inner = gate.enter();
        assert!(!paused.load(Ordering::SeqCst));
        drop(inner);
        drop(outer);
        t.join().unwrap();
        assert!(paused.load(Ordering::SeqCst));
    }
}
