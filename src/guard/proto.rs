//! The guard in front of every protobuf decode of servicemock's own
//! messages: a plan or a report nests one message level per hop, so how
//! deep a message may go is a product limit (`--max-depth`), not prost's
//! fixed 100 levels (which cut plans at about 33 hops and let nothing be
//! raised).
//!
//! prost is built without its recursion limit; instead, before anything is
//! decoded, [`check_nesting`] walks the wire format iteratively (no
//! recursion, so no input can overflow the stack) knowing which fields of
//! which message are messages, and refuses anything nested deeper than
//! [`MAX_NESTING`]. Unknown fields and groups are walked too: prost skips
//! groups recursively. The messages say which walk they take by
//! implementing [`Guarded`] (in `pb` and `report::proto`).

use std::sync::atomic::{AtomicUsize, Ordering};

use prost::Message;

use super::{DEFAULT_MAX_HOPS, MAX_DEPTH_CEILING};

/// Message levels one hop adds: Plan → Sequence → Hop → Plan, and
/// CallResponse → ParallelForward → Forward → CallResponse.
pub const LEVELS_PER_HOP: usize = 3;

/// The deepest nesting decoded at all: enough for a plan or a report of
/// [`MAX_DEPTH_CEILING`] hops with room for the envelope (status, any, map
/// entries). The configured `--max-depth` is checked after decoding, with a
/// message that names it.
pub const MAX_NESTING: usize = (MAX_DEPTH_CEILING as usize + 2) * LEVELS_PER_HOP + 4;

/// The message types of `servicemock.v1` (and `google.rpc.Status`) whose
/// fields the walk must know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    CallStreamRequest,
    CallRequest,
    Plan,
    Sequence,
    Hop,
    CallResponse,
    ParallelForward,
    Forward,
    RpcStatus,
    /// A message with no message fields of interest (map entries,
    /// `Behavior`, `Any`): only its groups can nest.
    Flat,
}

impl Kind {
    /// The kind of message field `field` of this kind holds, if it is one.
    fn child(self, field: u32) -> Option<Kind> {
        use Kind::*;
        match (self, field) {
            (CallStreamRequest, 1) => Some(CallRequest),
            (CallRequest, 1) => Some(Plan),
            (Plan, 1) => Some(Sequence),
            (Sequence, 1) => Some(Hop),
            (Hop, 3 | 4) => Some(Flat),
            (Hop, 5) => Some(Plan),
            (CallResponse, 12) => Some(ParallelForward),
            (ParallelForward, 1) => Some(Forward),
            (Forward, 8) => Some(CallResponse),
            (RpcStatus, 3) => Some(Flat),
            _ => None,
        }
    }
}

/// Why bytes were refused before decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message nested deeper than {limit} levels (a plan or report of more than {hops} hops in depth)")]
    TooDeep { limit: usize, hops: u32 },
    #[error("plan too large: it would make more than {limit} calls in all (limit --max-hops), refused while reading it")]
    TooManyHops { limit: usize },
    #[error("not a valid protobuf message: {0}")]
    Malformed(&'static str),
}

/// The most hops a decoded plan may hold: the largest `--max-hops` of the
/// services in this process (each then checks its own after decoding).
static HOP_LIMIT: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_HOPS);

/// Makes room for a service whose `--max-hops` is `limit`.
pub fn allow_hops(limit: usize) {
    HOP_LIMIT.fetch_max(limit, Ordering::Relaxed);
}

struct Frame {
    kind: Kind,
    /// Offset where this message ends (for length-delimited ones).
    end: usize,
    /// The field number of the group this frame is, if it is a group.
    group: Option<u32>,
}

/// Walks `bytes` as a message of `kind` and refuses nesting deeper than
/// `limit`, more hops than `--max-hops` allows (before a single one is
/// allocated), or bytes that are not protobuf at all. Linear in the input,
/// constant stack.
pub fn check_nesting(bytes: &[u8], kind: Kind, limit: usize) -> Result<(), WireError> {
    let hop_limit = HOP_LIMIT.load(Ordering::Relaxed);
    let mut hops = 0usize;
    let mut stack = vec![Frame {
        kind,
        end: bytes.len(),
        group: None,
    }];
    let mut pos = 0usize;
    loop {
        let Some(top) = stack.last() else {
            return Ok(());
        };
        if pos == top.end && top.group.is_none() {
            stack.pop();
            if stack.is_empty() {
                return Ok(());
            }
            continue;
        }
        if pos >= top.end && top.group.is_some() {
            return Err(WireError::Malformed("a group without its end"));
        }
        if pos > top.end {
            return Err(WireError::Malformed("a field runs past its message"));
        }
        let key = varint(bytes, &mut pos)?;
        let field = u32::try_from(key >> 3).map_err(|_| WireError::Malformed("field number"))?;
        if field == 0 {
            return Err(WireError::Malformed("field number 0"));
        }
        let kind = top.kind;
        match key & 7 {
            0 => {
                varint(bytes, &mut pos)?;
            }
            1 => pos = advance(bytes, pos, 8)?,
            5 => pos = advance(bytes, pos, 4)?,
            2 => {
                let len = usize::try_from(varint(bytes, &mut pos)?)
                    .map_err(|_| WireError::Malformed("length"))?;
                let end = advance(bytes, pos, len)?;
                if end > top.end {
                    return Err(WireError::Malformed("a field runs past its message"));
                }
                match kind.child(field) {
                    Some(child) => {
                        if child == Kind::Hop {
                            hops += 1;
                            if hops > hop_limit {
                                return Err(WireError::TooManyHops { limit: hop_limit });
                            }
                        }
                        push(&mut stack, child, end, None, limit)?;
                    }
                    None => pos = end,
                }
            }
            3 => {
                let end = top.end;
                push(&mut stack, Kind::Flat, end, Some(field), limit)?;
            }
            4 => match stack.pop() {
                Some(Frame {
                    group: Some(open), ..
                }) if open == field => {}
                _ => return Err(WireError::Malformed("unexpected end of group")),
            },
            _ => return Err(WireError::Malformed("unknown wire type")),
        }
    }
}

fn push(
    stack: &mut Vec<Frame>,
    kind: Kind,
    end: usize,
    group: Option<u32>,
    limit: usize,
) -> Result<(), WireError> {
    if stack.len() >= limit {
        return Err(WireError::TooDeep {
            limit,
            hops: MAX_DEPTH_CEILING,
        });
    }
    stack.push(Frame { kind, end, group });
    Ok(())
}

fn advance(bytes: &[u8], pos: usize, len: usize) -> Result<usize, WireError> {
    pos.checked_add(len)
        .filter(|end| *end <= bytes.len())
        .ok_or(WireError::Malformed("truncated"))
}

fn varint(bytes: &[u8], pos: &mut usize) -> Result<u64, WireError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes
            .get(*pos)
            .ok_or(WireError::Malformed("truncated varint"))?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(WireError::Malformed("varint longer than 10 bytes"))
}

/// A message whose decoding is guarded: its kind names its fields.
pub trait Guarded: Message + Default {
    const KIND: Kind;
    /// Whether a call carries one of these only (a unary request); a second
    /// is refused, not silently dropped.
    const ONE_PER_CALL: bool = true;
}

/// Decodes `bytes` as `M` after the nesting check.
pub fn decode_guarded<M: Guarded>(bytes: &[u8]) -> Result<M, WireError> {
    check_nesting(bytes, M::KIND, MAX_NESTING)?;
    M::decode(bytes).map_err(|_| WireError::Malformed("fields of the wrong type"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;

    fn nested_plan(levels: usize) -> pb::CallRequest {
        let mut plan = pb::Plan::default();
        for _ in 0..levels {
            plan = pb::Plan {
                parallel: vec![pb::Sequence {
                    hops: vec![pb::Hop {
                        target: "a".into(),
                        headers: [("k".to_string(), "v".to_string())].into(),
                        behavior: Some(pb::Behavior {
                            delay: "1ms".into(),
                            ..Default::default()
                        }),
                        next: Some(plan),
                        ..Default::default()
                    }],
                }],
                uri: "/x".into(),
            };
        }
        pb::CallRequest {
            request: Some(pb::call_request::Request::Plan(plan)),
        }
    }

    #[test]
    fn deep_plans_within_the_ceiling_decode() {
        let request = nested_plan(MAX_DEPTH_CEILING as usize);
        let bytes = request.encode_to_vec();
        assert_eq!(decode_guarded::<pb::CallRequest>(&bytes), Ok(request));
    }

    #[test]
    fn deeper_plans_are_refused_without_recursion() {
        let bytes = nested_plan(MAX_DEPTH_CEILING as usize + 3).encode_to_vec();
        assert!(matches!(
            decode_guarded::<pb::CallRequest>(&bytes),
            Err(WireError::TooDeep { .. })
        ));
    }

    #[test]
    fn nested_groups_in_unknown_fields_are_refused() {
        // Field 9, start group, a million times: prost would recurse.
        let bytes = vec![(9 << 3) | 3; 1_000_000];
        assert!(matches!(
            check_nesting(&bytes, Kind::CallRequest, MAX_NESTING),
            Err(WireError::TooDeep { .. })
        ));
        let mut balanced = vec![(9 << 3) | 3; 3];
        balanced.extend([(9 << 3) | 4; 3]);
        assert_eq!(check_nesting(&balanced, Kind::CallRequest, 10), Ok(()));
    }

    #[test]
    fn hops_are_counted_before_any_is_allocated() {
        let hops: Vec<pb::Hop> = (0..2000)
            .map(|_| pb::Hop {
                target: "a".into(),
                ..Default::default()
            })
            .collect();
        let wide = pb::CallRequest {
            request: Some(pb::call_request::Request::Plan(pb::Plan {
                parallel: vec![pb::Sequence { hops }],
                uri: "/".into(),
            })),
        };
        assert!(matches!(
            decode_guarded::<pb::CallRequest>(&wide.encode_to_vec()),
            Err(WireError::TooManyHops { .. })
        ));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for bytes in [&[0xff_u8; 11][..], &[0x0a, 0x05, 0x01], &[0x07], &[0x00]] {
            assert!(matches!(
                decode_guarded::<pb::CallRequest>(bytes),
                Err(WireError::Malformed(_))
            ));
        }
    }
}
