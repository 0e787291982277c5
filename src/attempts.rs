//! Which attempt of a request this is, so `@first=N` directives can fail
//! the first N attempts and let a retry through, deterministically.
//!
//! A proxy that retries says so: Envoy sets `x-envoy-attempt-count` (1 for
//! the first attempt), gRPC clients with a retry policy send
//! `grpc-previous-rpc-attempts` (0 for the first). Without either, an
//! attempt is the same request arriving again at the same service (Envoy
//! and HAProxy resend a request as it was): the same hop call of a
//! servicemock (its `x-servicemock-call` number), or else the same
//! `x-request-id` with the same request line, counted in a table that is
//! bounded in size and forgets after a while. A request with neither is a
//! first attempt.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::HeaderValue;
use nohash_hasher::IntMap;

use crate::exec::context::{header_number, Told};

/// How long a request id is remembered (a retry comes within seconds).
pub const REMEMBER: Duration = Duration::from_secs(60);
/// At most this many request ids are remembered at once.
pub const CAPACITY: usize = 65_536;

/// The attempt of one request, and how it was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// 1 for a first attempt.
    pub number: u32,
    pub source: AttemptSource,
}

impl Default for Attempt {
    fn default() -> Self {
        Attempt {
            number: 1,
            source: AttemptSource::First,
        }
    }
}

/// Where an attempt number came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptSource {
    /// No sign of an earlier attempt.
    First,
    /// `x-envoy-attempt-count`.
    Envoy,
    /// `grpc-previous-rpc-attempts`.
    Grpc,
    /// The same request id seen before at this service.
    RequestId,
}

/// Request ids seen lately, in two generations: an entry lives at most
/// [`REMEMBER`], and at most [`CAPACITY`] are kept.
#[derive(Debug)]
pub struct Attempts {
    table: Mutex<Generations>,
    /// Seeded per process, as std's `RandomState` is; foldhash's quality
    /// variant hashes a word at a time where SipHash works through rounds.
    hasher: foldhash::quality::RandomState,
}

/// The table's keys are already hashes (keyed by [`Attempts`]'s own
/// seed): it uses them as they are instead of hashing them again.
#[derive(Debug)]
struct Generations {
    current: IntMap<u64, u32>,
    previous: IntMap<u64, u32>,
    turned: Instant,
}

impl Default for Attempts {
    fn default() -> Self {
        Attempts {
            table: Mutex::new(Generations {
                current: IntMap::default(),
                previous: IntMap::default(),
                turned: Instant::now(),
            }),
            hasher: foldhash::quality::RandomState::default(),
        }
    }
}

impl Attempts {
    /// The attempt a request is, from what its headers `told`: from a
    /// retry header when there is one, else by counting the caller's
    /// `x-request-id` with `request_line`.
    pub fn observe(&self, told: &Told<'_>, request_line: &str) -> Attempt {
        let number = |value: Option<&HeaderValue>| value.and_then(header_number::<u32>);
        if let Some(n) = number(told.envoy_attempt).filter(|n| *n >= 1) {
            return Attempt {
                number: n,
                source: AttemptSource::Envoy,
            };
        }
        if let Some(n) = number(told.grpc_previous) {
            return Attempt {
                number: n.saturating_add(1),
                source: AttemptSource::Grpc,
            };
        }
        let mut hasher = self.hasher.build_hasher();
        if let Some(call) = told.call {
            call.as_bytes().hash(&mut hasher);
        } else if let Some(id) = told.request_id.filter(|v| !v.is_empty()) {
            id.as_bytes().hash(&mut hasher);
            request_line.hash(&mut hasher);
        } else {
            return Attempt::default();
        }
        let n = self.count(hasher.finish(), Instant::now());
        Attempt {
            number: n,
            source: if n > 1 {
                AttemptSource::RequestId
            } else {
                AttemptSource::First
            },
        }
    }

    /// Counts one more arrival of `key` at `now`.
    fn count(&self, key: u64, now: Instant) -> u32 {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let age = now.saturating_duration_since(table.turned);
        if age >= REMEMBER {
            table.current.clear();
            table.previous.clear();
            table.turned = now;
        } else if age >= REMEMBER / 2 || table.current.len() >= CAPACITY / 2 {
            table.previous = std::mem::take(&mut table.current);
            table.turned = now;
        }
        let seen = match table.current.get(&key) {
            Some(&n) => n,
            None => table.previous.get(&key).copied().unwrap_or(0),
        };
        let n = seen.saturating_add(1);
        table.current.insert(key, n);
        n
    }

    /// How many request ids are remembered now.
    #[cfg(test)]
    fn len(&self) -> usize {
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        table.current.len() + table.previous.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::context::{ENVOY_ATTEMPT_COUNT, GRPC_PREVIOUS_ATTEMPTS};
    use http::HeaderMap;

    /// `observe` as an edge calls it.
    fn observe(a: &Attempts, headers: &HeaderMap, line: &str) -> Attempt {
        a.observe(&Told::of(headers), line)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.insert(*n, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn retry_headers_say_the_attempt() {
        let a = Attempts::default();
        let envoy = observe(&a, &headers(&[(ENVOY_ATTEMPT_COUNT, "3")]), "GET /");
        assert_eq!((envoy.number, envoy.source), (3, AttemptSource::Envoy));
        let grpc = observe(&a, &headers(&[(GRPC_PREVIOUS_ATTEMPTS, "2")]), "CALL");
        assert_eq!((grpc.number, grpc.source), (3, AttemptSource::Grpc));
        assert_eq!(observe(&a, &HeaderMap::new(), "GET /"), Attempt::default());
        assert_eq!(a.len(), 0, "nothing to remember without a request id");
    }

    #[test]
    fn the_same_request_id_again_is_the_next_attempt() {
        let a = Attempts::default();
        let h = headers(&[("x-request-id", "r1")]);
        let seen: Vec<u32> = (0..3).map(|_| observe(&a, &h, "GET /x").number).collect();
        assert_eq!(seen, [1, 2, 3]);
        assert_eq!(
            observe(&a, &h, "GET /other").number,
            1,
            "another request line"
        );
        let other = headers(&[("x-request-id", "r2")]);
        assert_eq!(observe(&a, &other, "GET /x").number, 1);
        // Two hop calls of one plan: one request id, two call numbers.
        let call = |n: &str| headers(&[("x-request-id", "r3"), ("x-servicemock-call", n)]);
        assert_eq!(observe(&a, &call("1"), "GET /x").number, 1);
        assert_eq!(observe(&a, &call("2"), "GET /x").number, 1);
        assert_eq!(
            observe(&a, &call("2"), "GET /x").number,
            2,
            "a retry resends it"
        );
    }

    #[test]
    fn the_table_is_bounded_and_forgets() {
        let a = Attempts::default();
        let start = Instant::now();
        for key in 0..(CAPACITY as u64 * 3) {
            a.count(key, start);
        }
        assert!(a.len() <= CAPACITY, "{}", a.len());
        let later = start + REMEMBER / 4;
        assert_eq!(a.count(u64::MAX, later), 1);
        assert_eq!(a.count(u64::MAX, later + REMEMBER / 2), 2, "kept a while");
        let much_later = later + REMEMBER + REMEMBER / 2;
        assert_eq!(a.count(u64::MAX, much_later), 1, "forgotten after a while");
    }
}
