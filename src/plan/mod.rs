//! The hop tree: what a request asks this service to call, in which order,
//! with which headers, and what each called service calls in turn.
//!
//! A [`Plan`] is the intermediate form between the two ways of asking (an
//! @-path over HTTP, a `CallRequest` over gRPC) and the executor. [`path`]
//! parses and renders paths ([`recent`] keeps the plans of paths asked a
//! moment ago), [`proto`] converts to and from the messages. The
//! same plan can be written either way (and [`json`] reads the `CallRequest`
//! as JSON for HTTP), so a tree that mixes protocols keeps
//! its shape whichever edge it enters by.

pub mod default;
pub mod json;
mod measures;
pub mod options;
pub mod path;
pub mod proto;
pub mod recent;

pub use options::HopOptions;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// The port a target gets when it names none, as in the original server.
pub const DEFAULT_PORT: u16 = 8080;

/// The port a `tcp:` target gets when it names none (Istio's tcp-echo).
pub const DEFAULT_TCP_PORT: u16 = 9000;

pub use crate::guard::MAX_DEPTH_CEILING;

/// A hop tree: groups that run concurrently.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Groups run concurrently; the hops of one group run one after another.
    pub parallel: Vec<Sequence>,
    /// The remainder (path and query) the leaves of the tree are called with.
    pub uri: String,
    /// Its size and depth once measured (not copied with it, never compared).
    measures: measures::Measures,
}

/// Hops that run one after another.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sequence {
    pub hops: Vec<Hop>,
}

/// One call to another service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub target: Target,
    pub protocol: Protocol,
    /// Headers (gRPC metadata) sent with this call; names are lower case.
    /// `x-mock-*` names are behaviour directives for the called service.
    pub headers: BTreeMap<String, String>,
    /// How this service makes the call (`[:name=value]`): method, body,
    /// its own timeout and retries, ...
    pub options: HopOptions,
    /// What the called service calls in turn. Shared between the hops of one
    /// @-path command, so a wide path stays small in memory. A leaf keeps
    /// its own `uri`; the messages write it when it differs from its
    /// level's, so a leaf's own remainder survives a relay.
    pub next: Arc<Plan>,
}

impl Hop {
    /// Refuses options that do not fit this hop: the hop's protocol, or
    /// what its sub-plan needs (the one rule for paths and messages).
    pub fn check_options(&self) -> Result<(), String> {
        let options = &self.options;
        options.check_for(self.protocol)?;
        if options.path.is_some() && !self.next.parallel.is_empty() {
            return Err("option ':path' sends that path as written, so the hop cannot also carry the calls after it (write them into the path, or drop ':path')".into());
        }
        if self.protocol == Protocol::Tcp && path::render_path(&self.next).is_err() {
            return Err("a tcp hop carries the calls after it as one path line, and its sub-plan goes on to different subtrees, which no path can say (use http: or grpc: for this hop)".into());
        }
        if (options.method.is_some() || options.body.is_some())
            && path::render_path(&self.next).is_err()
        {
            return Err("its sub-plan goes on to different subtrees, which only a JSON plan POST can carry: it cannot also have ':method' or ':body'".into());
        }
        Ok(())
    }
}

/// How a hop reaches its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// HTTP/1.1; the sub-plan travels as an @-path.
    #[default]
    Http,
    /// HTTP/2 with prior knowledge, no TLS; the sub-plan travels as an @-path.
    H2c,
    /// The gRPC `Call`; the sub-plan travels as a `Plan` message.
    Grpc,
    /// HTTPS: HTTP/1.1 or HTTP/2 over TLS, as ALPN decides; the sub-plan
    /// travels as for `http`.
    Https,
    /// gRPC over TLS.
    Grpcs,
    /// Raw TCP lines: a new connection per call (`[:reuse=true]` pools
    /// them), the sub-plan as a path line, the report as a line back.
    Tcp,
}

impl Protocol {
    /// The scheme word used in paths and reports: `http`, `h2c` or `grpc`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::H2c => "h2c",
            Protocol::Grpc => "grpc",
            Protocol::Https => "https",
            Protocol::Grpcs => "grpcs",
            Protocol::Tcp => "tcp",
        }
    }

    /// Every protocol, in the order messages list them.
    pub const ALL: [Protocol; 6] = [
        Protocol::Http,
        Protocol::H2c,
        Protocol::Grpc,
        Protocol::Https,
        Protocol::Grpcs,
        Protocol::Tcp,
    ];

    /// The port a target of this protocol gets when it names none.
    pub fn default_port(self) -> u16 {
        match self {
            Protocol::Tcp => DEFAULT_TCP_PORT,
            _ => DEFAULT_PORT,
        }
    }

    /// Whether the hop's sub-plan travels as a gRPC message.
    pub fn is_grpc(self) -> bool {
        matches!(self, Protocol::Grpc | Protocol::Grpcs)
    }

    /// The protocol a scheme word names, if any; case does not matter, as
    /// in URLs.
    pub fn from_scheme(word: &str) -> Option<Protocol> {
        Protocol::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(word))
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A host and an optional port (the port defaults to [`DEFAULT_PORT`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// A DNS name, an IPv4 address, or an IPv6 address without brackets.
    pub host: String,
    pub port: Option<u16>,
}

impl Target {
    pub fn new(host: impl Into<String>, port: Option<u16>) -> Target {
        Target {
            host: host.into(),
            port,
        }
    }

    /// The port to connect to.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_PORT)
    }

    /// `host:port` with the port always present, as a URL authority.
    pub fn authority(&self) -> String {
        let mut port = itoa::Buffer::new();
        let port = port.format(self.port_or_default());
        let bracketed = self.host.contains(':');
        let mut authority = String::with_capacity(self.host.len() + port.len() + 3);
        if bracketed {
            authority.push('[');
        }
        authority.push_str(&self.host);
        authority.push_str(if bracketed { "]:" } else { ":" });
        authority.push_str(port);
        authority
    }
}

impl fmt::Display for Target {
    /// As written in a path: the port only when one was given.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f)
    }
}

impl Target {
    /// Writes the target as written in a path (what [`fmt::Display`]
    /// shows); into a `String` it goes without the formatter's machinery,
    /// as paths are rendered for every hop.
    pub fn write_to(&self, out: &mut impl fmt::Write) -> fmt::Result {
        if self.host.contains(':') {
            out.write_char('[')?;
            out.write_str(&self.host)?;
            out.write_char(']')?;
        } else {
            out.write_str(&self.host)?;
        }
        if let Some(port) = self.port {
            out.write_char(':')?;
            out.write_str(itoa::Buffer::new().format(port))?;
        }
        Ok(())
    }
}

/// Headers a hop may not carry: they change how a message is framed or how
/// the connection is kept (a bodiless GET with a `content-length` makes the
/// callee close a pooled connection under unrelated requests), or they
/// are servicemock's own and set by it.
pub const FORBIDDEN_HOP_HEADERS: [&str; 8] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "proxy-connection",
    "host",
];

/// Why a header cannot go on a hop, if it cannot: the one rule for paths,
/// JSON plans and proto plans. `name` is lower case.
pub fn check_hop_header(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!("invalid header name '{name}'"));
    }
    if name == "host" {
        return Err(
            "header 'host' cannot be set on a hop: the target is the authority it is called with"
                .into(),
        );
    }
    if FORBIDDEN_HOP_HEADERS.contains(&name) {
        return Err(format!(
            "header '{name}' cannot be set on a hop: it changes how the message is framed or the connection is kept"
        ));
    }
    if name.starts_with("x-servicemock-") {
        return Err(format!("header '{name}' is set by servicemock itself"));
    }
    if http::HeaderValue::from_str(value).is_err() {
        return Err(format!(
            "the value of header '{name}' must be visible ASCII, spaces and tabs (percent-encode anything else)"
        ));
    }
    if name.starts_with("x-mock-") {
        crate::behavior::check_directive(name, value)?;
    }
    Ok(())
}

/// Why a remainder cannot be a request target, if it cannot: the one rule
/// for the path form and the structured `uri`.
pub fn check_remainder(uri: &str) -> Result<(), String> {
    if !uri.starts_with('/') {
        Err(format!("must start with '/', got \"{uri}\""))
    } else if uri.chars().any(|c| c.is_control() || c == ' ' || c == '#') {
        Err("contains a space, '#' or a control character (percent-encode it)".into())
    } else {
        Ok(())
    }
}

/// What a request may ask for, so that no path or message can melt a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest accepted path, in bytes.
    pub max_path_len: usize,
    /// Most targets in one @-command (or one plan level).
    pub max_targets: usize,
    /// Most hops in a whole tree, counting every call every service will make.
    pub max_hops: usize,
    /// Most services one request may pass through (`--max-depth`): a plan
    /// may nest no deeper than this minus the depth it arrived at, and a
    /// service reached past it refuses with 508. At most [`MAX_DEPTH_CEILING`].
    pub max_depth: u32,
    /// Largest request body read (and discarded, or taken as a plan; past
    /// it the request is answered 413), and the largest a hop may send
    /// (`[:body=SIZE]`).
    pub max_body: usize,
}

impl Limits {
    /// `--max-hops` when none is given.
    pub const DEFAULT_MAX_HOPS: usize = crate::guard::DEFAULT_MAX_HOPS;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_path_len: 8 * 1024,
            max_targets: 64,
            max_hops: Limits::DEFAULT_MAX_HOPS,
            max_depth: 32,
            max_body: 1024 * 1024,
        }
    }
}

/// Why a path or a plan was refused. The message names the problem and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A syntax error in an @-command; `position` counts characters of the
    /// percent-decoded command from 1.
    #[error("{problem} at position {position} in \"{command}\"")]
    Syntax {
        problem: String,
        position: usize,
        command: String,
    },
    /// A syntax error in one of a path's several @-commands, saying which.
    #[error("{error} (@-command {index} of {of} in the path)")]
    InCommand {
        index: usize,
        of: usize,
        error: Box<PlanError>,
    },
    /// The path is longer than [`Limits::max_path_len`].
    #[error("path too long: {len} bytes, the limit is {limit}")]
    PathTooLong { len: usize, limit: usize },
    /// The tree nests deeper than the services it may still pass through.
    #[error("plan too deep: it nests {depth} levels of calls, but only {left} more are allowed here (--max-depth {max}, this request has passed through {passed} services)")]
    TooDeep {
        depth: usize,
        left: u32,
        max: u32,
        passed: u32,
    },
    /// The tree would make more calls than [`Limits::max_hops`].
    #[error("plan too large: it would make more than {limit} calls in all (limit --max-hops)")]
    TooManyHops { limit: usize },
    /// A structured plan is malformed; `field` is a path such as
    /// `plan.parallel[0].hops[1].target`.
    #[error("{field}: {problem}")]
    Field { field: String, problem: String },
}

impl Plan {
    /// A plan that calls nobody and answers with `uri` at the leaves.
    pub fn leaf(uri: impl Into<String>) -> Plan {
        Plan::new(Vec::new(), uri.into())
    }

    /// A plan of the groups `parallel`, its leaves called with `uri`.
    pub fn new(parallel: Vec<Sequence>, uri: String) -> Plan {
        Plan {
            parallel,
            uri,
            measures: Default::default(),
        }
    }

    /// All hops of this level, group by group.
    pub fn hops(&self) -> impl Iterator<Item = &Hop> {
        self.parallel.iter().flat_map(|s| s.hops.iter())
    }

    /// How many calls the whole tree makes, retries included, or `None`
    /// once it exceeds `limit`.
    /// Stops counting at the limit, so a path that would fan out
    /// exponentially costs no more than `limit` steps to refuse.
    /// Counted once (under the first limit asked) and kept in the plan.
    pub fn count_hops(&self, limit: usize) -> Option<usize> {
        self.measures.calls(limit, |limit| {
            let mut total = 0usize;
            count_into(self, limit, &mut total).then_some(total)
        })
    }

    /// How many levels of calls the tree nests: 0 for a leaf, 1 for a plan
    /// whose hops call nobody, and so on. Walks every hop once without
    /// recursion: check the size ([`Plan::check_size`]) first. Measured
    /// once and kept in the plan.
    pub fn depth(&self) -> usize {
        self.measures.depth(|| self.measure_depth())
    }

    fn measure_depth(&self) -> usize {
        // Each level keeps only the plans that call someone, so a plan of
        // one level is measured without a heap.
        fn callers<'p>(plans: impl Iterator<Item = &'p Plan>) -> Vec<&'p Plan> {
            plans
                .flat_map(|p| p.hops().map(|h| &*h.next))
                .filter(|p| !p.parallel.is_empty())
                .collect()
        }
        if self.parallel.is_empty() {
            return 0;
        }
        let (mut deepest, mut level) = (1, callers(std::iter::once(self)));
        while !level.is_empty() {
            deepest += 1;
            level = callers(level.into_iter());
        }
        deepest
    }

    /// The padding (bytes) its hops ask for in all: `x-mock-size` on every
    /// call the tree makes, each hop once per try. Measured once and kept
    /// in the plan.
    pub fn padding(&self) -> usize {
        self.measures.padding(|| padding_asked(self))
    }

    /// Refuses a tree that nests deeper than `limits.max_depth` allows for
    /// a request that has passed through `passed` services already.
    pub fn check_depth(&self, limits: &Limits, passed: u32) -> Result<(), PlanError> {
        let left = limits.max_depth.saturating_sub(passed);
        let depth = self.depth();
        if depth > left as usize {
            return Err(PlanError::TooDeep {
                depth,
                left,
                max: limits.max_depth,
                passed,
            });
        }
        Ok(())
    }

    /// Refuses a tree larger than `limits.max_hops`.
    pub fn check_size(&self, limits: &Limits) -> Result<(), PlanError> {
        match self.count_hops(limits.max_hops) {
            Some(_) => Ok(()),
            None => Err(PlanError::TooManyHops {
                limit: limits.max_hops,
            }),
        }
    }
}

/// Adds the calls `plan` makes to `total`: each hop once per try, and
/// what its callee calls on every try. False once `total` passes `limit`.
fn count_into(plan: &Plan, limit: usize, total: &mut usize) -> bool {
    for hop in plan.hops() {
        let before = *total;
        *total += 1;
        if *total > limit || !count_into(&hop.next, limit, total) {
            return false;
        }
        let one_try = *total - before;
        let tries = hop.options.tries() as usize;
        match one_try.checked_mul(tries - 1) {
            Some(more) if *total + more <= limit => *total += more,
            _ => return false,
        }
    }
    true
}

/// The padding `plan`'s hops ask for (`x-mock-size` on every call the tree
/// makes, each hop once per try).
fn padding_asked(plan: &Plan) -> usize {
    let mut padding = 0usize;
    // Plans still to walk, with how many times each is run (a hop that
    // retries runs its callee's plan once per try); leaves call nobody
    // and are not kept, so a plan of one level walks without a heap.
    let (mut first, mut more) = (Some((plan, 1usize)), Vec::new());
    while let Some((level, runs)) = first.take().or_else(|| more.pop()) {
        for hop in level.hops() {
            let calls = runs.saturating_mul(hop.options.tries() as usize);
            if let Some(size) = hop.headers.get(crate::behavior::SIZE) {
                let size = crate::behavior::parse_size(size.trim()).unwrap_or(0);
                padding = padding.saturating_add(size.saturating_mul(calls));
            }
            if !hop.next.parallel.is_empty() {
                more.push((&*hop.next, calls));
            }
        }
    }
    padding
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_stops_at_the_limit() {
        let limits = Limits::default();
        let wide = "@a|a|a|a|a|a|a|a/".repeat(8);
        let plan = path::parse_path(&format!("/{wide}end"), &limits).unwrap();
        assert_eq!(plan.count_hops(100), None);
        assert!(plan.check_size(&limits).is_err());
        let small = path::parse_path("/@a|b/@c,d/end", &limits).unwrap();
        assert_eq!(small.count_hops(100), Some(2 + 2 * 2));
    }

    #[test]
    fn target_authority_brackets_ipv6() {
        assert_eq!(Target::new("::1", Some(9)).authority(), "[::1]:9");
        assert_eq!(Target::new("a", None).authority(), "a:8080");
        assert_eq!(Target::new("a", None).to_string(), "a");
    }
}
