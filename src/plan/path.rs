//! The @-path grammar (README, "The path grammar"): parse a request path into a [`Plan`]
//! and render a plan back into the path a downstream service is called with.
//!
//! ```text
//! request-target = "/" [ command ] [ remainder ]
//! command        = "@" parallel                 ; first segment only
//! parallel       = sequence *( "|" sequence )   ; groups run concurrently
//! sequence       = target *( "," target )       ; one after another
//! target         = [ scheme ":" ] host [ ":" port ] *( "[" item "]" )
//! item           = name "=" value               ; a header (x-mock-*: a directive)
//!                / ":" option "=" value         ; a hop option (plan::options)
//! scheme         = "http" / "h2c" / "grpc" / "https" / "grpcs"
//! ```
//!
//! Each command is percent-decoded before it is parsed, so `%7C` works as `|`.
//! The remainder after a command is what the targets are called with; when it
//! starts with a command in turn, that command is what they call, and so on.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv6Addr;
use std::sync::Arc;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use super::{
    check_hop_header, check_remainder, Hop, HopOptions, Limits, Plan, PlanError, Protocol,
    Sequence, Target,
};

/// Characters of a header value that must be escaped in a rendered command:
/// they would end the path segment, start a query, or be read as an escape.
const VALUE_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'?')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// `text` up to the first of the ASCII bytes `ends` (all of it when none
/// is there): a byte search, since an ASCII byte never falls inside a
/// multi-byte character.
fn before_any<'t>(text: &'t str, ends: &[u8]) -> &'t str {
    let end = text
        .bytes()
        .position(|b| ends.contains(&b))
        .unwrap_or(text.len());
    &text[..end]
}

/// Parses a request path (query included) into the whole hop tree.
pub fn parse_path(path: &str, limits: &Limits) -> Result<Plan, PlanError> {
    if path.len() > limits.max_path_len {
        return Err(PlanError::PathTooLong {
            len: path.len(),
            limit: limits.max_path_len,
        });
    }
    if !path.starts_with('/') {
        // Without it, "@a/x" would be a remainder that reads as a command.
        return Err(PlanError::Field {
            field: "path".into(),
            problem: format!(
                "must start with '/', got \"{}\"",
                path.chars().take(40).collect::<String>()
            ),
        });
    }
    let mut commands = Vec::new();
    let mut rest = path;
    while let Some(after_slash) = rest.strip_prefix('/') {
        let end = before_any(after_slash, b"/?").len();
        let decoded = decode_segment(&after_slash[..end])?;
        if !decoded.starts_with('@') {
            break;
        }
        commands.push(decoded);
        rest = &after_slash[end..];
    }
    if commands.len() > limits.max_depth as usize {
        return Err(PlanError::TooDeep {
            depth: commands.len(),
            left: limits.max_depth,
            max: limits.max_depth,
            passed: 0,
        });
    }
    let uri = normalize_uri(rest);
    if let Err(problem) = check_remainder(&uri) {
        return Err(PlanError::Field {
            field: "path (after the @-commands)".into(),
            problem,
        });
    }
    let Some((first, deeper)) = commands.split_first() else {
        return Ok(Plan::leaf(uri));
    };
    // Built from the last command up; the first level is returned as it
    // is, each deeper one shared by the hops that call it.
    let mut next = Arc::new(Plan::leaf(uri.clone()));
    for (i, command) in deeper.iter().enumerate().rev() {
        let parallel = parse_level(command, i + 1, commands.len(), &next, limits)?;
        next = Arc::new(Plan::new(parallel, uri.clone()));
    }
    let parallel = parse_level(first, 0, commands.len(), &next, limits)?;
    Ok(Plan::new(parallel, uri))
}

/// The groups of hops of one decoded command, the `index`th (from 0) of
/// `of`, each hop calling `next`.
fn parse_level(
    command: &str,
    index: usize,
    of: usize,
    next: &Arc<Plan>,
    limits: &Limits,
) -> Result<Vec<Sequence>, PlanError> {
    let groups = parse_command(command, limits).map_err(|e| {
        // Which of the path's commands, when it has several.
        if of > 1 {
            PlanError::InCommand {
                index: index + 1,
                of,
                error: Box::new(e),
            }
        } else {
            e
        }
    })?;
    let mut parallel = Vec::with_capacity(groups.len());
    for targets in groups {
        let mut hops = Vec::with_capacity(targets.len());
        for (protocol, target, headers, options) in targets {
            let hop = Hop {
                target,
                protocol,
                headers,
                options,
                next: Arc::clone(next),
            };
            hop.check_options().map_err(|problem| PlanError::Field {
                field: format!("hop to {} in \"{command}\"", hop.target),
                problem,
            })?;
            hops.push(hop);
        }
        parallel.push(Sequence { hops });
    }
    Ok(parallel)
}

/// The remainder as a request target: always starting with `/`.
fn normalize_uri(rest: &str) -> String {
    if rest.starts_with('/') {
        rest.to_owned()
    } else {
        format!("/{rest}")
    }
}

fn decode_segment(segment: &str) -> Result<Cow<'_, str>, PlanError> {
    percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| PlanError::Syntax {
            problem: "command is not UTF-8 after percent-decoding".into(),
            position: 1,
            command: segment.to_owned(),
        })
}

type ParsedTarget = (Protocol, Target, BTreeMap<String, String>, HopOptions);

/// Parses one decoded command (starting with `@`) into groups of targets.
fn parse_command(command: &str, limits: &Limits) -> Result<Vec<Vec<ParsedTarget>>, PlanError> {
    let mut cursor = Cursor {
        text: command,
        pos: 1,
    };
    let mut groups = Vec::new();
    let mut group = Vec::new();
    let mut count = 0;
    loop {
        let start = cursor.pos;
        group.push(cursor.target(limits)?);
        count += 1;
        if count > limits.max_targets {
            return Err(cursor.error_at(
                start,
                format!(
                    "too many targets (more than {} in one command)",
                    limits.max_targets
                ),
            ));
        }
        match cursor.peek() {
            None => break,
            Some('|') => groups.push(std::mem::take(&mut group)),
            Some(',') => {}
            Some(other) => return Err(cursor.error(format!("unexpected '{other}'"))),
        }
        cursor.pos += 1;
    }
    groups.push(group);
    Ok(groups)
}

/// Parses a target written alone, as in a structured plan's `target` field:
/// `host`, `host:port` or `[v6]:port`, without scheme or headers.
pub fn parse_target_text(text: &str) -> Result<Target, String> {
    let mut cursor = Cursor { text, pos: 0 };
    let target = cursor.host_port().map_err(|e| e.to_string())?;
    match cursor.peek() {
        None => Ok(target),
        Some(c) => Err(format!("unexpected '{c}' in target \"{text}\"")),
    }
}

/// A position in a decoded command (a byte offset; the grammar's
/// structural characters are all ASCII).
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn error(&self, problem: String) -> PlanError {
        self.error_at(self.pos, problem)
    }

    fn error_at(&self, byte: usize, problem: String) -> PlanError {
        PlanError::Syntax {
            problem,
            position: self.text[..byte].chars().count() + 1,
            command: self.text.to_owned(),
        }
    }

    /// `[scheme ":"] host [":" port] *("[" name "=" value "]")`
    fn target(&mut self, limits: &Limits) -> Result<ParsedTarget, PlanError> {
        let start = self.pos;
        let rest = &self.text[start..];
        if rest.is_empty() || rest.starts_with(['|', ',']) {
            return Err(self.error("empty target".into()));
        }
        let mut protocol = Protocol::Http;
        if let Some((word, after)) = rest.split_once(':') {
            let next = before_any(after, b"[|,");
            let port_like = !next.is_empty() && next.bytes().all(|b| b.is_ascii_digit());
            // `ftp:127.0.0.1:80` is an unknown scheme before an address, not
            // host `ftp` with the bad port `127.0.0.1:80`.
            let starts_like_a_port = after.starts_with(|c: char| c.is_ascii_digit())
                && !next.bytes().any(|b| b == b'.' || b == b':');
            let a_word = !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric());
            let scheme = Protocol::from_scheme(word);
            if scheme.is_none() && a_word && !starts_like_a_port {
                let known: Vec<&str> = Protocol::ALL.iter().map(|p| p.as_str()).collect();
                return Err(self.error(format!(
                    "unknown scheme '{word}' (known: {}; after a host, ':' takes a port number)",
                    known.join(", ")
                )));
            }
            if let Some(p) = scheme {
                if !port_like {
                    protocol = p;
                    self.pos += word.len() + 1;
                    if self.peek().is_none_or(|c| matches!(c, '|' | ',')) {
                        return Err(self.error(format!("empty host after '{word}:'")));
                    }
                }
            }
        }
        let target = self.host_port()?;
        let mut headers = BTreeMap::new();
        let mut options = HopOptions::default();
        let mut given = Vec::new();
        while self.peek() == Some('[') {
            let open = self.pos;
            if self.text[open + 1..].starts_with(':') {
                let (name, value) = self.item()?;
                if given.contains(&name) {
                    return Err(self.error_at(open, format!("option ':{name}' given twice")));
                }
                options
                    .set(name, value, limits)
                    .map_err(|problem| self.error_at(open, problem))?;
                given.push(name);
                continue;
            }
            let (name, value) = self.header()?;
            if headers.insert(name.clone(), value).is_some() {
                return Err(self.error_at(open, format!("header '{name}' given twice")));
            }
        }
        options
            .check_for(protocol)
            .map_err(|problem| self.error_at(start, problem))?;
        Ok((protocol, target, headers, options))
    }

    /// `"[" ":" option "=" value "]"`: the option's name and value as
    /// written (the command was percent-decoded already).
    fn item(&mut self) -> Result<(&'a str, &'a str), PlanError> {
        let open = self.pos;
        let text = self.text;
        let inner = &text[open + 2..];
        let Some(close) = inner.find(']') else {
            return Err(self.error("unclosed '['".into()));
        };
        let body = &inner[..close];
        let Some((name, value)) = body.split_once('=') else {
            return Err(self.error(format!(
                "option '[:{body}]' has no '=' (write [:name=value])"
            )));
        };
        self.pos = open + 2 + close + 1;
        Ok((name, value))
    }

    /// `host [":" port]`, where host may be a bracketed IPv6 address.
    fn host_port(&mut self) -> Result<Target, PlanError> {
        let start = self.pos;
        let rest = &self.text[start..];
        let host;
        if let Some(inner) = rest.strip_prefix('[') {
            let Some(close) = inner.find(']') else {
                return Err(self.error("unclosed '['".into()));
            };
            let literal = &inner[..close];
            if literal.contains('=') || literal.parse::<Ipv6Addr>().is_err() {
                return Err(
                    self.error("empty target (a host must come before '[name=value]')".into())
                );
            }
            host = literal.to_owned();
            self.pos += close + 2;
        } else {
            let name = before_any(rest, b":[|,");
            let end = name.len();
            if name.is_empty() {
                return Err(self.error("empty host".into()));
            }
            let host_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
            if let Some(i) = name.bytes().position(|b| !host_byte(b)) {
                // A byte that is no host byte starts a character (the
                // others are ASCII).
                let c = name[i..].chars().next().unwrap_or_default();
                return Err(self.error_at(start + i, format!("invalid character '{c}' in host")));
            }
            if name.bytes().all(|b| b.is_ascii_digit()) {
                // `h2c:1` would read as host h2c, port 1; and "1" is no name.
                return Err(self.error(format!(
                    "host '{name}' is only digits (write a name or an IP address; a port goes after the host)"
                )));
            }
            host = name.to_owned();
            self.pos += end;
        }
        let mut port = None;
        if self.peek() == Some(':') {
            self.pos += 1;
            let digits_start = self.pos;
            let digits = before_any(&self.text[digits_start..], b"[|,");
            let end = digits.len();
            match digits.parse::<u16>() {
                Ok(p) if p > 0 && digits.bytes().all(|b| b.is_ascii_digit()) => port = Some(p),
                _ => {
                    return Err(self.error_at(
                        digits_start,
                        format!("bad port '{digits}' (expected 1 to 65535)"),
                    ))
                }
            }
            self.pos += end;
        }
        Ok(Target { host, port })
    }

    /// `"[" name "=" value "]"`
    fn header(&mut self) -> Result<(String, String), PlanError> {
        let open = self.pos;
        let inner = &self.text[open + 1..];
        let Some(close) = inner.find(']') else {
            return Err(self.error("unclosed '['".into()));
        };
        let body = &inner[..close];
        let Some((name, value)) = body.split_once('=') else {
            return Err(self.error(format!("header '[{body}]' has no '=' (write [name=value])")));
        };
        if name.is_empty() {
            return Err(self.error("empty header name".into()));
        }
        if let Some(c) = name
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(self.error(format!("invalid character '{c}' in header name '{name}'")));
        }
        if let Some(c) = value.chars().find(|c| c.is_control()) {
            return Err(self.error(format!(
                "invalid character {c:?} in the value of header '{name}'"
            )));
        }
        let name = name.to_ascii_lowercase();
        if let Err(problem) = check_hop_header(&name, value) {
            return Err(self.error(problem));
        }
        self.pos = open + 1 + close + 1;
        Ok((name, value.to_owned()))
    }
}

/// Renders a plan as the path its root service would receive: `/@...` per
/// level, then the remainder. Fails when the hops of one level go on to
/// different sub-plans, which no single path can say.
pub fn render_path(plan: &Plan) -> Result<String, PlanError> {
    let mut out = String::with_capacity(64);
    render_into(plan, &mut out)?;
    Ok(out)
}

/// [`render_path`] appending to a buffer.
pub fn render_into(plan: &Plan, out: &mut String) -> Result<(), PlanError> {
    let remainder = leaf_uri(plan);
    let mut level = plan;
    loop {
        let mut hops = level.hops();
        let Some(first) = hops.next() else {
            out.push_str(if level.uri.is_empty() {
                "/"
            } else {
                &level.uri
            });
            return Ok(());
        };
        // A path has one remainder for every level; a level that says
        // another one (a structured plan can) needs the JSON form.
        if level.uri != remainder {
            return Err(PlanError::Field {
                field: "uri".into(),
                problem: format!(
                    "\"{}\" differs from the remainder below it, which an @-path cannot express (HTTP hops then carry a JSON plan)",
                    level.uri
                ),
            });
        }
        if let Some(other) =
            hops.find(|h| !Arc::ptr_eq(&h.next, &first.next) && h.next != first.next)
        {
            return Err(PlanError::Field {
                field: format!("hop to {}", other.target),
                problem: format!(
                    "its next plan differs from that of the hop to {}, which an @-path cannot express (HTTP hops then carry a JSON plan)",
                    first.target
                ),
            });
        }
        out.push_str("/@");
        for (g, group) in level.parallel.iter().enumerate() {
            if g > 0 {
                out.push('|');
            }
            for (h, hop) in group.hops.iter().enumerate() {
                if h > 0 {
                    out.push(',');
                }
                render_target(hop, out);
            }
        }
        level = &first.next;
    }
}

/// The remainder at the bottom of the first chain of hops.
fn leaf_uri(plan: &Plan) -> &str {
    let mut level = plan;
    while let Some(hop) = level.hops().next() {
        level = &hop.next;
    }
    &level.uri
}

fn render_target(hop: &Hop, out: &mut String) {
    if hop.protocol != Protocol::Http {
        out.push_str(hop.protocol.as_str());
        out.push(':');
    }
    let _ = hop.target.write_to(out);
    for (name, value) in &hop.headers {
        let _ = write!(
            out,
            "[{name}={}]",
            utf8_percent_encode(value, VALUE_ESCAPES)
        );
    }
    for (name, value) in hop.options.pairs() {
        let _ = write!(
            out,
            "[:{name}={}]",
            utf8_percent_encode(&value, VALUE_ESCAPES)
        );
    }
}

#[cfg(test)]
mod tests;
