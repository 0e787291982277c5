//! A service's default cascade (`serve --calls PATH` or `--calls-file`): the
//! plan a request runs when its own target has no command, so any client
//! (a browser, an ingress, fortio) makes the whole cascade with `GET /`.
//!
//! The request's own path and query become the remainder the default's
//! leaves are called with (`GET /productpage` with `--calls /@reviews/`
//! calls reviews with `/productpage`), unless the default names one itself
//! (`--calls /@reviews/details`).

use std::sync::Arc;

use super::{json::plan_from_json, path::parse_path, Limits, Plan, PlanError};

/// The remainder a default that names none ends in.
const NO_REMAINDER: &str = "/";

/// A default cascade, checked once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultCalls {
    plan: Plan,
    /// As it was given, for logs and the manifests.
    source: String,
}

impl DefaultCalls {
    /// Reads an @-path such as `/@service2|service3/@service4/`. A path that
    /// calls nobody, or that is larger than `limits` allow, is refused with
    /// the position of the mistake.
    pub fn from_path(path: &str, limits: &Limits) -> Result<DefaultCalls, PlanError> {
        DefaultCalls::checked(parse_path(path, limits)?, path.to_owned(), limits)
    }

    /// Reads a `CallRequest` in JSON (`--calls-file FILE`), as a POST body
    /// carries one.
    pub fn from_json(json: &[u8], limits: &Limits) -> Result<DefaultCalls, PlanError> {
        let source = String::from_utf8_lossy(json).trim().to_owned();
        DefaultCalls::checked(plan_from_json(json, limits)?, source, limits)
    }

    fn checked(plan: Plan, source: String, limits: &Limits) -> Result<DefaultCalls, PlanError> {
        if plan.parallel.is_empty() {
            return Err(PlanError::Field {
                field: "default calls".into(),
                problem: format!(
                    "\"{source}\" calls nobody: write at least one @-command, e.g. /@service2/"
                ),
            });
        }
        plan.check_size(limits)?;
        plan.check_depth(limits, 0)?;
        Ok(DefaultCalls { plan, source })
    }

    /// The default as it was given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The default's plan, its remainder as written.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Whether the default names its own remainder (`/@reviews/details`);
    /// otherwise each request's own target is the remainder.
    pub fn names_remainder(&self) -> bool {
        self.plan.uri != NO_REMAINDER
    }

    /// The plan for a request whose own target is `remainder` (path and
    /// query), that target passed on unless the default names its own.
    pub fn plan_for(&self, remainder: &str) -> Plan {
        if self.names_remainder() || remainder == NO_REMAINDER {
            return self.plan.clone();
        }
        with_remainder(&self.plan, remainder)
    }
}

/// `plan` with every level that ends in no remainder ending in `remainder`.
fn with_remainder(plan: &Plan, remainder: &str) -> Plan {
    let mut copy = plan.clone();
    if copy.uri == NO_REMAINDER {
        copy.uri = remainder.to_owned();
    }
    // Hops of one @-command share their next level: rewrite it once.
    let mut done: Vec<(*const Plan, Arc<Plan>)> = Vec::new();
    for group in &mut copy.parallel {
        for hop in &mut group.hops {
            let key = Arc::as_ptr(&hop.next);
            let next = match done.iter().find(|(k, _)| *k == key) {
                Some((_, next)) => Arc::clone(next),
                None => {
                    let next = Arc::new(with_remainder(&hop.next, remainder));
                    done.push((key, Arc::clone(&next)));
                    next
                }
            };
            hop.next = next;
        }
    }
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::path::render_path;

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn the_request_target_becomes_the_remainder() {
        let calls = DefaultCalls::from_path("/@service2|service3/@service4/", &limits()).unwrap();
        assert!(!calls.names_remainder());
        let plan = calls.plan_for("/productpage?user=1");
        assert_eq!(
            render_path(&plan).unwrap(),
            "/@service2|service3/@service4/productpage?user=1"
        );
        let leaf = &plan.parallel[0].hops[0].next.parallel[0].hops[0].next;
        assert_eq!(leaf.uri, "/productpage?user=1");
        assert_eq!(
            render_path(&calls.plan_for("/")).unwrap(),
            "/@service2|service3/@service4/"
        );
    }

    #[test]
    fn a_default_that_names_its_remainder_keeps_it() {
        let calls = DefaultCalls::from_path("/@reviews/details", &limits()).unwrap();
        assert!(calls.names_remainder());
        assert_eq!(
            render_path(&calls.plan_for("/productpage")).unwrap(),
            "/@reviews/details"
        );
    }

    #[test]
    fn a_default_must_call_someone_and_parse() {
        let none = DefaultCalls::from_path("/end", &limits()).unwrap_err();
        assert!(none.to_string().contains("calls nobody"), "{none}");
        let bad = DefaultCalls::from_path("/@service2||service3/", &limits()).unwrap_err();
        assert!(bad.to_string().contains("position"), "{bad}");
        let json = DefaultCalls::from_json(br#"{"path": "/@a/@b/"}"#, &limits()).unwrap();
        assert_eq!(render_path(&json.plan_for("/x")).unwrap(), "/@a/@b/x");
        let wrong = DefaultCalls::from_json(br#"{"path": "/@a/", "pth": 1}"#, &limits());
        assert!(wrong.is_err());
    }
}
