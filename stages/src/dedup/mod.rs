//! Exact deduplication of documents across the whole corpus and every
//! worker, on differential-dataflow.
//!
//! Each document gets a 128-bit key of its whitespace-normalized text
//! ([`document_key`]). A separate dataflow ([`Dedup`]) feeds `(key, index)`
//! into differential's `distinct`, timestamped by the document's index, so
//! each key comes out once, at the index of its first occurrence; that
//! decision goes to the pipeline worker that owns the document, whose
//! [`DedupFilter`] passes the first occurrence on and drops the rest. The
//! result does not depend on the number of workers or on timing.
//!
//! Memory is bounded by the number of distinct documents, not by the
//! corpus: `distinct`'s two arrangements hold one compacted record per
//! distinct key (key, time and count), and a worker's pending decisions at
//! most one index per kept document (see [`Lead`]); duplicates cost nothing
//! once counted. Measured at peak, merges in progress included: 62 to 70
//! bytes per distinct document over about 5 MB of fixed cost
//! (`cargo bench -p nezha-stages --bench dedup`: 1M and 4M distinct
//! documents). When the corpus is read several times (dynamic masking), each
//! worker also remembers the indices it kept, 8 bytes each.

mod dataflow;
mod filter;
mod key;
mod lead;

pub use dataflow::{Dedup, DedupPlan, FilterSpec};
pub use filter::{Decision, DedupCounts, DedupFilter, Pending, Share};
pub use key::document_key;
pub use lead::Lead;
