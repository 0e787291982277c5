//! Fitting a report into a budget of bytes, for where the budget is hard:
//! a failed gRPC call carries its `CallResponse` in the
//! `grpc-status-details-bin` trailer, and gRPC clients refuse metadata over
//! 8 KiB by default (grpcio, Envoy), while an HTTP/2 client refuses a large
//! header block for the whole connection.
//!
//! Trimming keeps what a person debugging the failure needs, in this order
//! of sacrifice: padding, then request info, then the reports of tries a
//! hop retried after (the last try's report stays), then the reports below hops
//! that succeeded, then those hops themselves, then long texts; the path
//! from the root to every failed hop stays. What was cut is said at the
//! root, e.g. `[trimmed to 8 KiB: request info dropped, 12 ok hops omitted]`.

use prost::Message;

use crate::pb;

/// Longest message or error kept once texts must be shortened.
const SHORT_TEXT: usize = 120;

/// One way of cutting a report down; returns how many things it cut.
type Step = fn(&mut pb::CallResponse) -> usize;

/// Returns `response` cut down to at most `budget` encoded bytes (or as
/// close as the failed paths allow), saying at its root what was cut.
pub fn fit(mut response: pb::CallResponse, budget: usize) -> pb::CallResponse {
    if response.encoded_len() <= budget {
        return response;
    }
    let mut said: Vec<String> = Vec::new();
    let steps: [(&str, Step); 6] = [
        ("padding dropped", drop_padding),
        ("request info dropped", drop_request_info),
        ("reports of {} retried tries omitted", drop_try_reports),
        ("reports below {} ok hops omitted", drop_ok_reports),
        ("{} ok hops omitted", drop_ok_hops),
        ("texts shortened", shorten_texts),
    ];
    for (what, step) in steps {
        let n = step(&mut response);
        if n > 0 {
            said.push(what.replace("{}", &n.to_string()));
        }
        if encoded_with_note(&response, &said, budget) <= budget {
            break;
        }
    }
    if encoded_with_note(&response, &said, budget) > budget {
        let n = drop_failed_subtrees(&mut response, budget);
        if n > 0 {
            said.push(format!("{n} failed hops' reports omitted (over budget)"));
        }
    }
    response.message = with_note(&response.message, &said, budget);
    response
}

fn note(said: &[String], budget: usize) -> String {
    format!(" [trimmed to fit {budget} bytes: {}]", said.join(", "))
}

fn with_note(message: &str, said: &[String], budget: usize) -> String {
    if said.is_empty() {
        message.to_owned()
    } else {
        format!("{message}{}", note(said, budget))
    }
}

fn encoded_with_note(response: &pb::CallResponse, said: &[String], budget: usize) -> usize {
    response.encoded_len() + note(said, budget).len() + 2
}

/// Calls `f` on every report of the tree, the root first.
fn each_report(response: &mut pb::CallResponse, f: &mut impl FnMut(&mut pb::CallResponse, bool)) {
    fn walk(r: &mut pb::CallResponse, root: bool, f: &mut impl FnMut(&mut pb::CallResponse, bool)) {
        f(r, root);
        for group in &mut r.parallel_forwards {
            for hop in &mut group.sequential_forwards {
                for one in &mut hop.tries {
                    if let Some(child) = &mut one.response {
                        walk(child, false, f);
                    }
                }
                if let Some(child) = &mut hop.response {
                    walk(child, false, f);
                }
            }
        }
    }
    walk(response, true, f);
}

/// Every hop of one report.
fn hops_mut(r: &mut pb::CallResponse) -> impl Iterator<Item = &mut pb::Forward> {
    r.parallel_forwards
        .iter_mut()
        .flat_map(|g| &mut g.sequential_forwards)
}

/// The reports of the tries a hop made before its last: the hop's own
/// report (the last try's) and every try's status and error stay.
fn drop_try_reports(response: &mut pb::CallResponse) -> usize {
    let mut n = 0;
    each_report(response, &mut |r, _| {
        for hop in hops_mut(r) {
            for one in &mut hop.tries {
                if one.response.take().is_some() {
                    n += 1;
                }
            }
        }
    });
    n
}

fn drop_padding(response: &mut pb::CallResponse) -> usize {
    let mut n = 0;
    each_report(response, &mut |r, _| {
        if !r.padding.is_empty() {
            r.padding.clear();
            n += 1;
        }
    });
    n
}

fn drop_request_info(response: &mut pb::CallResponse) -> usize {
    let mut n = 0;
    each_report(response, &mut |r, _| {
        if !r.request_info.is_empty() {
            r.request_info.clear();
            n += 1;
        }
    });
    n
}

/// Whether any hop in this report or below failed.
fn has_failure(r: &pb::CallResponse) -> bool {
    r.parallel_forwards.iter().any(|g| {
        g.sequential_forwards.iter().any(|h| {
            !h.error.is_empty() || h.response.as_ref().is_some_and(has_failure) || h.result != "ok"
        })
    })
}

/// Hops in a report and below.
fn count_hops(r: &pb::CallResponse) -> usize {
    r.parallel_forwards
        .iter()
        .flat_map(|g| &g.sequential_forwards)
        .map(|h| {
            let tries: usize = h
                .tries
                .iter()
                .filter_map(|t| t.response.as_ref())
                .map(count_hops)
                .sum();
            1 + tries + h.response.as_ref().map_or(0, count_hops)
        })
        .sum()
}

fn is_ok_hop(h: &pb::Forward) -> bool {
    h.error.is_empty() && h.result == "ok" && !h.response.as_ref().is_some_and(has_failure)
}

fn drop_ok_reports(response: &mut pb::CallResponse) -> usize {
    let mut n = 0;
    each_report(response, &mut |r, _| {
        for hop in hops_mut(r) {
            if is_ok_hop(hop) {
                if let Some(child) = hop.response.take() {
                    n += 1 + count_hops(&child);
                }
            }
        }
    });
    n
}

fn drop_ok_hops(response: &mut pb::CallResponse) -> usize {
    let mut n = 0;
    each_report(response, &mut |r, _| {
        for group in &mut r.parallel_forwards {
            let before = group.sequential_forwards.len();
            group.sequential_forwards.retain(|h| !is_ok_hop(h));
            n += before - group.sequential_forwards.len();
        }
        r.parallel_forwards
            .retain(|g| !g.sequential_forwards.is_empty());
    });
    n
}

fn shorten_texts(response: &mut pb::CallResponse) -> usize {
    let mut n = 0;
    each_report(response, &mut |r, root| {
        let before = r.encoded_len();
        r.message = clip(&r.message, SHORT_TEXT);
        if !root {
            r.received_date.clear();
            r.host.clear();
            r.namespace.clear();
            r.pod_ip.clear();
            r.request_id.clear();
        }
        if !root {
            r.message = clip(&r.message, SHORT_TEXT / 3);
        }
        for hop in hops_mut(r) {
            // Above a nested report the error only relays it: its first
            // clause ("answered UNAVAILABLE") says enough.
            hop.error = if hop.response.is_some() {
                let first = hop.error.split(": ").next().unwrap_or_default();
                clip(first, SHORT_TEXT / 3)
            } else {
                clip(&hop.error, SHORT_TEXT)
            };
        }
        if r.encoded_len() < before {
            n += 1;
        }
    });
    n
}

/// Last resort: the reports below failed hops, the last ones first, until
/// the rest fits. The failed hop lines themselves stay.
fn drop_failed_subtrees(response: &mut pb::CallResponse, budget: usize) -> usize {
    let mut n = 0;
    while response.encoded_len() + 200 > budget {
        // Find the deepest report and cut it from its parent hop.
        if !cut_deepest(response) {
            break;
        }
        n += 1;
    }
    n
}

/// Removes the report of the last hop whose report has no reports below it.
fn cut_deepest(r: &mut pb::CallResponse) -> bool {
    for group in r.parallel_forwards.iter_mut().rev() {
        for hop in group.sequential_forwards.iter_mut().rev() {
            if let Some(child) = &mut hop.response {
                if cut_deepest(child) {
                    return true;
                }
                hop.response = None;
                return true;
            }
        }
    }
    false
}

/// At most `max` bytes of `text`, cut on a character boundary, with `…`.
pub fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(ok: bool, child: Option<pb::CallResponse>) -> pb::Forward {
        pb::Forward {
            url: "grpc://svc:8080".into(),
            result: if ok { "ok" } else { "status" }.into(),
            error: if ok {
                String::new()
            } else {
                "answered UNAVAILABLE".into()
            },
            response: child,
            ..Default::default()
        }
    }

    fn report(name: &str, hops: Vec<pb::Forward>) -> pb::CallResponse {
        pb::CallResponse {
            service: name.into(),
            message: format!("{name} did things"),
            request_info: vec!["x".repeat(200); 10],
            padding: "p".repeat(1000),
            parallel_forwards: hops
                .into_iter()
                .map(|h| pb::ParallelForward {
                    sequential_forwards: vec![h],
                })
                .collect(),
            ..Default::default()
        }
    }

    /// A chain `depth` deep whose bottom fails, with `ok` siblings per level.
    fn failing_chain(depth: usize, ok: usize) -> pb::CallResponse {
        let mut bottom = report("bottom", vec![]);
        bottom.message = "bottom failed on purpose".into();
        let mut current = bottom;
        for level in (0..depth).rev() {
            let mut hops = vec![hop(false, Some(current))];
            for _ in 0..ok {
                hops.push(hop(true, Some(report("leaf", vec![]))));
            }
            current = report(&format!("s{level}"), hops);
        }
        current
    }

    fn failed_path_len(r: &pb::CallResponse) -> usize {
        r.parallel_forwards
            .iter()
            .flat_map(|g| &g.sequential_forwards)
            .filter(|h| !h.error.is_empty())
            .filter_map(|h| h.response.as_ref())
            .map(|c| 1 + failed_path_len(c))
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn small_reports_are_untouched() {
        let r = report("a", vec![hop(true, None)]);
        assert_eq!(fit(r.clone(), 1 << 20), r);
    }

    #[test]
    fn the_failed_path_survives_and_the_cut_is_said() {
        let r = failing_chain(33, 3);
        assert!(r.encoded_len() > 100_000);
        let fitted = fit(r, 6 * 1024);
        assert!(fitted.encoded_len() <= 6 * 1024, "{}", fitted.encoded_len());
        assert_eq!(
            failed_path_len(&fitted),
            33,
            "every level down to the failure"
        );
        assert!(
            fitted.message.contains("ok hops omitted"),
            "{}",
            fitted.message
        );
        assert!(fitted.message.contains("trimmed to fit 6144 bytes"));
    }

    #[test]
    fn reports_of_retried_tries_go_before_the_hops_own() {
        // Reports with nothing else to drop: only their tries' can go.
        let bare = || pb::CallResponse {
            service: "b".into(),
            message: "m".repeat(600),
            ..Default::default()
        };
        let mut retried = hop(true, Some(bare()));
        retried.tries = (1..=3)
            .map(|n| pb::Try {
                r#try: n,
                result: "status".into(),
                error: "answered 503".into(),
                response: Some(bare()),
                ..Default::default()
            })
            .collect();
        let mut r = report("a", vec![retried]);
        r.padding.clear();
        r.request_info.clear();
        let budget = r.encoded_len() - 1500;
        let fitted = fit(r, budget);
        assert!(fitted.encoded_len() <= budget, "{}", fitted.encoded_len());
        assert!(
            fitted
                .message
                .contains("reports of 3 retried tries omitted"),
            "{}",
            fitted.message
        );
        let hop = &fitted.parallel_forwards[0].sequential_forwards[0];
        assert_eq!(hop.tries.len(), 3, "every try's line stays");
        assert!(hop.tries.iter().all(|t| t.error == "answered 503"));
        assert!(hop.response.is_some(), "the last try's report stays");
    }

    #[test]
    fn an_impossible_budget_still_ends_small() {
        let fitted = fit(failing_chain(100, 0), 1024);
        assert!(
            fitted.encoded_len() <= 1024 + 200,
            "{}",
            fitted.encoded_len()
        );
        assert!(fitted.message.contains("failed hops' reports omitted"));
    }
}
