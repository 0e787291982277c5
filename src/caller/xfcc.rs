//! Envoy's `x-forwarded-client-cert` header, read as Envoy writes it:
//! elements separated by `,`, key=value pairs by `;`, values optionally
//! quoted (`Subject`, `Cert` and `Chain` are, and may hold `,` `;` and
//! escaped quotes). In an `APPEND_FORWARD` chain each proxy appends the
//! certificate it received, so the direct caller is the **last** element;
//! `By` names the proxy that received it, not the caller.
//!
//! A header that cannot be read is kept as received and marked, never a
//! reason to refuse the request.

use super::{Peer, XfccElement, FROM_XFCC};

/// Most elements kept (the latest ones: the direct caller is last).
pub const MAX_ELEMENTS: usize = 32;

/// Most bytes of an unreadable header kept in the report.
const MAX_UNPARSED: usize = 512;

/// The caller as `x-forwarded-client-cert` tells it.
pub fn peer(header: &[u8]) -> Peer {
    match std::str::from_utf8(header)
        .map_err(|e| format!("not UTF-8 text: {e}"))
        .and_then(parse)
    {
        Ok((elements, omitted)) => {
            let principal = elements
                .last()
                .and_then(|last| {
                    last.uri
                        .iter()
                        .find(|u| u.starts_with("spiffe://"))
                        .or(last.uri.first())
                })
                .cloned()
                .unwrap_or_default();
            let (subject, uri, dns) = match elements.last() {
                Some(last) => (last.subject.clone(), last.uri.clone(), last.dns.clone()),
                None => Default::default(),
            };
            Peer {
                source: FROM_XFCC.into(),
                principal,
                subject,
                uri,
                dns,
                elements,
                omitted: u32::try_from(omitted).unwrap_or(u32::MAX),
                ..Peer::default()
            }
        }
        Err(error) => {
            let text = String::from_utf8_lossy(header);
            let mut unparsed: String = text.chars().take(MAX_UNPARSED).collect();
            if unparsed.len() < text.len() {
                unparsed.push('…');
            }
            Peer {
                source: FROM_XFCC.into(),
                unparsed,
                error,
                ..Peer::default()
            }
        }
    }
}

/// The elements of a header, the last [`MAX_ELEMENTS`] kept, and how many
/// earlier ones were left out; or what is wrong and where.
pub fn parse(header: &str) -> Result<(Vec<XfccElement>, usize), String> {
    let mut elements = std::collections::VecDeque::new();
    let mut omitted = 0usize;
    let mut element = XfccElement::default();
    let mut pairs_in_element = 0usize;
    let (mut key, mut value) = (String::new(), String::new());
    let (mut in_value, mut quoted, mut was_quoted, mut escaped) = (false, false, false, false);
    let mut chars = header.char_indices().peekable();
    loop {
        let next = chars.next();
        let (at, c) = match next {
            Some(pair) => pair,
            None => (header.len(), ','),
        };
        if quoted {
            match (escaped, c) {
                (true, c) => {
                    value.push(c);
                    escaped = false;
                }
                (false, '\\') => escaped = true,
                (false, '"') => quoted = false,
                (false, c) => value.push(c),
            }
            if next.is_none() {
                return Err(format!("a quoted value opened is not closed by byte {at}"));
            }
            continue;
        }
        match c {
            '"' if in_value && value.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            '=' if !in_value => in_value = true,
            ';' | ',' => {
                let ended_element = c == ',';
                let blank = key.trim().is_empty() && !in_value;
                if blank && !(ended_element && next.is_none() && pairs_in_element > 0) {
                    return Err(format!("an empty pair at byte {at}"));
                }
                if !blank {
                    if !in_value {
                        return Err(format!(
                            "\"{}\" at byte {at} has no '=': write KEY=VALUE",
                            key.trim()
                        ));
                    }
                    set(
                        &mut element,
                        key.trim(),
                        std::mem::take(&mut value),
                        was_quoted,
                    );
                    pairs_in_element += 1;
                }
                key.clear();
                value.clear();
                (in_value, was_quoted) = (false, false);
                if ended_element {
                    elements.push_back(std::mem::take(&mut element));
                    pairs_in_element = 0;
                    if elements.len() > MAX_ELEMENTS {
                        elements.pop_front();
                        omitted += 1;
                    }
                }
                if next.is_none() {
                    break;
                }
            }
            c if was_quoted => {
                return Err(format!("'{c}' at byte {at} follows a closing quote"));
            }
            c if in_value => value.push(c),
            c => key.push(c),
        }
    }
    Ok((elements.into(), omitted))
}

/// Sets one pair on an element (keys as Envoy writes them, any case);
/// keys this version does not know (`Cert`, `Chain`, newer ones) are let be.
fn set(element: &mut XfccElement, key: &str, value: String, quoted: bool) {
    let value = if quoted {
        value
    } else {
        value.trim().to_owned()
    };
    match key.to_ascii_lowercase().as_str() {
        "by" => element.by = value,
        "hash" => element.hash = value,
        "subject" => element.subject = value,
        "uri" => element.uri.push(value),
        "dns" => element.dns.push(value),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_direct_caller_is_the_last_element() {
        let header = "By=spiffe://cluster.local/ns/a/sa/gateway;Hash=aa;URI=spiffe://cluster.local/ns/a/sa/client,\
                      By=spiffe://cluster.local/ns/a/sa/service2;Hash=bb;Subject=\"CN=service1,O=mesh; \\\"x\\\"\";URI=spiffe://cluster.local/ns/a/sa/service1;DNS=service1;DNS=service1.a";
        let peer = peer(header.as_bytes());
        assert_eq!(peer.error, "");
        assert_eq!(peer.elements.len(), 2);
        assert_eq!(peer.principal, "spiffe://cluster.local/ns/a/sa/service1");
        assert_eq!(peer.service_account(), Some("service1"));
        let last = &peer.elements[1];
        assert_eq!(last.by, "spiffe://cluster.local/ns/a/sa/service2");
        assert_eq!(last.subject, "CN=service1,O=mesh; \"x\"");
        assert_eq!(last.dns, ["service1", "service1.a"]);
        assert_eq!(peer.elements[0].hash, "aa");
    }

    #[test]
    fn malformed_headers_are_kept_and_marked() {
        for bad in [
            "By",
            "By=a;;Hash=b",
            "Subject=\"open",
            "By=a,,By=b",
            "Subject=\"a\"b",
        ] {
            let peer = peer(bad.as_bytes());
            assert!(!peer.error.is_empty(), "{bad} was read");
            assert_eq!(peer.unparsed, bad);
            assert!(peer.elements.is_empty());
        }
        let peer = peer(b"\xff\xfe");
        assert!(peer.error.contains("UTF-8"));
    }

    #[test]
    fn a_thousand_elements_keep_the_last_ones() {
        let header: Vec<String> = (0..1000)
            .map(|i| format!("By=p{i};URI=spiffe://td/ns/n/sa/s{i}"))
            .collect();
        let peer = peer(header.join(",").as_bytes());
        assert_eq!(peer.elements.len(), MAX_ELEMENTS);
        assert_eq!(peer.omitted as usize, 1000 - MAX_ELEMENTS);
        assert_eq!(peer.principal, "spiffe://td/ns/n/sa/s999");
    }

    #[test]
    fn a_trailing_separator_and_unknown_keys_are_tolerated() {
        let (elements, _) = parse("By=a;Cert=\"-----BEGIN,;\";URI=u;").unwrap();
        assert_eq!(elements.len(), 1);
        assert_eq!(elements[0].uri, ["u"]);
    }
}
