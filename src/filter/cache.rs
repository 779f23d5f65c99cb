//! A small cache of recent selections of one slot space, so a filter that
//! repeats (a tenant, a category) is evaluated once per change of the
//! space's payloads rather than once per query. Entries carry the space's
//! version when they were made and are used only while it is unchanged;
//! filters with `has_id` are not cached (their slots depend on where the
//! ids live, outside the space).

use std::sync::Arc;

use parking_lot::Mutex;

use super::expr::Filter;
use super::select::Selection;

/// Entries kept per slot space.
const ENTRIES: usize = 8;

/// Recent selections by filter, for one version of a slot space.
#[derive(Default)]
pub struct SelectionCache {
    entries: Mutex<Vec<(String, u64, Arc<Selection>)>>,
}

impl SelectionCache {
    /// The selection of `f` at `version`, from the cache or by `select`.
    pub fn get(
        &self,
        f: &Filter,
        version: u64,
        select: impl FnOnce() -> Selection,
    ) -> Arc<Selection> {
        if !f.ids().is_empty() {
            return Arc::new(select());
        }
        let key = format!("{f:?}");
        {
            let mut e = self.entries.lock();
            if let Some(i) = e.iter().position(|(k, v, _)| *v == version && *k == key) {
                let hit = e.remove(i);
                let sel = hit.2.clone();
                e.push(hit);
                return sel;
            }
        }
        let sel = Arc::new(select());
        let mut e = self.entries.lock();
        e.retain(|(_, v, _)| *v == version);
        if e.len() >= ENTRIES {
            e.remove(0);
        }
        e.push((key, version, sel.clone()));
        sel
    }
}
