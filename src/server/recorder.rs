//! What a service received: `GET /requests` (only with `--record N`)
//! answers the last N requests that ran a plan here (HTTP, gRPC calls and
//! streams), newest first — time, method, path, authority, protocol, the
//! headers as received, `x-forwarded-for`, the caller's principal, the
//! request id, the status answered, and whether the authority looks
//! mirrored (Envoy appends `-shadow` to the host of a mirrored request,
//! whose answer it discards: this is where the mirror's traffic shows).
//! `?after=SEQ` gives only the newer ones (what `servicemock requests
//! --follow` polls), `?view=tree` a text list.
//!
//! Bounded: at most [`MAX_RECORD`] entries, each with at most
//! [`MAX_HEADER_BYTES`] of headers (the rest counted, not kept).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use http::HeaderMap;
use serde::Serialize;

use crate::report::text::sanitize;

/// Most requests `--record` may keep.
pub const MAX_RECORD: usize = 10_000;

/// Most bytes of headers one entry keeps.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

/// One request as received, and what it was answered.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Entry {
    /// 1, 2, … in the order they arrived.
    pub seq: u64,
    pub received_date: String,
    pub method: String,
    pub path: String,
    pub authority: String,
    pub protocol: &'static str,
    pub headers: Vec<String>,
    /// Headers past [`MAX_HEADER_BYTES`], not kept.
    #[serde(skip_serializing_if = "is_zero")]
    pub headers_dropped: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarded_for: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The HTTP status, or the gRPC code, it was answered with.
    pub status: i32,
    /// The authority's host ends with `-shadow`: a mirrored copy.
    pub mirrored: bool,
    /// On a gRPC stream, how many messages it carried (kept when it ended).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<u64>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The last N requests.
#[derive(Debug)]
pub struct Recorder {
    capacity: usize,
    seq: AtomicU64,
    entries: Mutex<VecDeque<Entry>>,
}

impl Recorder {
    pub fn new(capacity: usize) -> Recorder {
        let capacity = capacity.min(MAX_RECORD);
        Recorder {
            capacity,
            seq: AtomicU64::new(0),
            entries: Mutex::new(VecDeque::with_capacity(capacity.min(256))),
        }
    }

    /// An entry for a request as it arrived; [`Recorder::keep`] it once
    /// answered.
    pub fn draft(
        &self,
        request: &http::Request<impl Sized>,
        protocol: &'static str,
        principal: Option<String>,
    ) -> Entry {
        let headers = request.headers();
        let (kept, headers_dropped) = header_lines(headers);
        let authority = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| text_of(headers, "host"))
            .unwrap_or_default();
        let host = authority
            .rsplit_once(':')
            .map_or(authority.as_str(), |(h, _)| h);
        Entry {
            seq: 0,
            received_date: crate::exec::rfc3339(std::time::SystemTime::now()),
            method: request.method().as_str().to_owned(),
            path: request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned(),
            mirrored: host.ends_with("-shadow"),
            authority,
            protocol,
            headers: kept,
            headers_dropped,
            forwarded_for: text_of(headers, "x-forwarded-for"),
            principal,
            request_id: text_of(headers, "x-request-id"),
            status: 0,
            messages: None,
        }
    }

    /// Keeps `entry`, answered with `status`; the oldest goes past N.
    pub fn keep(&self, mut entry: Entry, status: i32) {
        entry.status = status;
        entry.seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() == self.capacity {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// The entries newer than `after`, newest first.
    pub fn newest_first(&self, after: u64) -> Vec<Entry> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .iter()
            .rev()
            .take_while(|e| e.seq > after)
            .cloned()
            .collect()
    }
}

/// The headers as `name: value` lines, up to [`MAX_HEADER_BYTES`], and
/// how many did not fit.
fn header_lines(headers: &HeaderMap) -> (Vec<String>, usize) {
    let mut kept = Vec::with_capacity(headers.len());
    let (mut bytes, mut dropped) = (0, 0);
    for (name, value) in headers {
        let line = format!(
            "{name}: {}",
            sanitize(&String::from_utf8_lossy(value.as_bytes()))
        );
        if bytes + line.len() > MAX_HEADER_BYTES {
            dropped += 1;
            continue;
        }
        bytes += line.len();
        kept.push(line);
    }
    (kept, dropped)
}

fn text_of(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| sanitize(&String::from_utf8_lossy(v.as_bytes())).into_owned())
}

/// `GET /requests`: the entries newer than `?after=SEQ` (all without it),
/// newest first, as JSON or (`?view=tree`) a text list.
pub(super) fn answer(recorder: &Recorder, query: Option<&str>) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let (mut after, mut text) = (0, false);
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("after", n)) => match n.parse() {
                Ok(n) => after = n,
                Err(_) => {
                    let why = format!("after={n}: write the Seq of the last entry seen\n");
                    return (http::StatusCode::BAD_REQUEST, why).into_response();
                }
            },
            Some(("view", "tree")) => text = true,
            Some(("view", "json")) => text = false,
            _ => {
                let why = format!("unknown query \"{pair}\": /requests takes after=SEQ and view=json or view=tree\n");
                return (http::StatusCode::BAD_REQUEST, why).into_response();
            }
        }
    }
    let entries = recorder.newest_first(after);
    if text {
        return render_text(&entries).into_response();
    }
    let mut json = serde_json::to_vec_pretty(&entries).unwrap_or_default();
    json.push(b'\n');
    ([(http::header::CONTENT_TYPE, "application/json")], json).into_response()
}

/// The entries as a text list, one line each (`?view=tree`).
pub fn render_text(entries: &[Entry]) -> String {
    let mut out = String::new();
    for e in entries {
        let _ = write!(
            out,
            "{} {} {} {} {} {} -> {}",
            e.seq, e.received_date, e.protocol, e.method, e.authority, e.path, e.status
        );
        if let Some(who) = &e.principal {
            let _ = write!(out, "  from {who}");
        }
        if let Some(id) = &e.request_id {
            let _ = write!(out, "  id {id}");
        }
        if e.mirrored {
            out.push_str("  (mirrored)");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(host: &str, header: (&str, String)) -> http::Request<()> {
        http::Request::builder()
            .uri("/reviews/1?x=1")
            .header("host", host)
            .header(header.0, header.1)
            .body(())
            .unwrap()
    }

    #[test]
    fn keeps_the_last_n_newest_first_and_bounds_each() {
        let recorder = Recorder::new(3);
        for i in 0..5 {
            let draft = recorder.draft(
                &parts("reviews:8080", ("x-n", i.to_string())),
                "http/1.1",
                None,
            );
            recorder.keep(draft, 200);
        }
        let seqs: Vec<u64> = recorder.newest_first(0).iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [5, 4, 3]);
        assert_eq!(recorder.newest_first(4).len(), 1);
        let big = recorder.draft(
            &parts("reviews-shadow:8080", ("x-big", "b".repeat(9000))),
            "h2c",
            None,
        );
        assert!(big.mirrored);
        assert_eq!(big.headers_dropped, 1);
        assert_eq!(big.path, "/reviews/1?x=1");
        assert!(
            !recorder
                .draft(&parts("reviews", ("a", "b".into())), "h2c", None)
                .mirrored
        );
    }
}
