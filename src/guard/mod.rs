//! The guards before every decode of a message that nests one level per
//! hop — a plan or a report, as protobuf ([`proto`]) or JSON ([`json`]) —
//! and the ceilings they hold every input to, whatever a request says.
//! A leaf: the planner, the report and the wire codec all lean on it.

pub mod json;
pub mod proto;
pub mod scan;

/// The highest `--max-depth` accepted: every form of a plan (path, JSON,
/// proto) and every received report is decoded up to this many levels at
/// most, whatever a request says.
pub const MAX_DEPTH_CEILING: u32 = 128;

/// `--max-hops` when none is given: the most calls one cascade may make.
pub const DEFAULT_MAX_HOPS: usize = 1024;
