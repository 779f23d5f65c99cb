//! Filtered search: the filter language ([`Filter`], parsed from JSON or
//! built from gRPC messages), its semantics on one point ([`eval`]), payload
//! indexes over a slot space ([`PayloadIndex`]), the selection of matching
//! slots ([`SlotSpace::select`]) and the per-tier plan a search follows
//! ([`plan`]).

mod cache;
mod error;
pub mod eval;
mod expr;
mod index;
pub mod json;
pub mod plan;
mod select;

pub use cache::SelectionCache;
pub use error::FilterError;
pub use expr::{Filter, MatchValue, Range};
pub use index::{FieldIndex, FieldType, PayloadIndex};
pub use select::{DenseSet, Selection, SlotSpace};
