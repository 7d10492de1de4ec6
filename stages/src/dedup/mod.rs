//! Deduplication of documents across the whole corpus and every worker, on
//! differential-dataflow: exact, or near duplicates by MinHash.
//!
//! Each document gets a 128-bit key of its whitespace-normalized text
//! ([`document_key`]), or in MinHash mode one key per LSH band of its
//! signature over character shingles ([`near_duplicate_keys`]); a document
//! is kept when all its keys are new, that is, in MinHash mode, when it
//! shares no band with any earlier document. A separate dataflow ([`Dedup`]) feeds `(key, index)`
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
//! once counted. Measured at peak, merges in progress included: 60 to 70
//! bytes per distinct key over about 5 MB of fixed cost (`cargo bench -p
//! nezha-stages --bench dedup`: 1M and 4M distinct documents); in MinHash
//! mode a document has one key per band (16 by default: about 1 KB per
//! document with a band not seen before). When the corpus is read several times (dynamic masking), each
//! worker also remembers the indices it kept, 8 bytes each.

mod dataflow;
mod filter;
mod key;
mod lead;

pub use dataflow::{Dedup, DedupKeys, DedupPlan, FilterSpec};
pub use filter::{Decision, DedupCounts, DedupFilter, Pending, Share};
pub use key::{document_key, near_duplicate_keys, MinHashParams};
pub use lead::Lead;
