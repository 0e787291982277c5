//! Who called, and how the call arrived: the TLS session a request came
//! on ([`Tls`]), and the caller's identity ([`Peer`]) from the verified
//! client certificate or, behind a sidecar that terminated mTLS, from
//! Envoy's `x-forwarded-client-cert` header ([`xfcc`]). Both edges read
//! them with [`of_request`]; the report shows them on every level.

pub mod cert;
pub mod xfcc;

use serde::{Deserialize, Serialize};

/// What a TLS handshake showed, kept for every request of the connection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TlsSession {
    pub tls: Tls,
    /// The verified client certificate's identity (mTLS), when one was sent.
    pub client: Option<Peer>,
}

/// How a request's connection was secured (the report's `Tls`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Tls {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: String,
    /// The cipher suite, e.g. `TLS13_AES_128_GCM_SHA256`.
    pub cipher: String,
    /// The protocol ALPN chose: `h2` or `http/1.1` (empty: none offered).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub alpn: String,
    /// The server name the client asked for (empty: none sent).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sni: String,
}

/// Where a caller's identity was read.
pub const FROM_TLS: &str = "tls";
/// Read from `x-forwarded-client-cert`.
pub const FROM_XFCC: &str = "xfcc";

/// Who called (the report's `Peer`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Peer {
    /// `tls` (the verified client certificate) or `xfcc` (the header a
    /// sidecar wrote).
    pub source: String,
    /// The direct caller's SPIFFE id (its URI SAN), e.g.
    /// `spiffe://cluster.local/ns/mock-1/sa/service1`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub principal: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subject: String,
    #[serde(rename = "URI", skip_serializing_if = "Vec::is_empty")]
    pub uri: Vec<String>,
    #[serde(rename = "DNS", skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// The certificate's serial number, hex (tls).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub serial: String,
    /// When the certificate expires, RFC 3339 (tls).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub not_after: String,
    /// Every element of `x-forwarded-client-cert` in order; the direct
    /// caller is the last.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub elements: Vec<XfccElement>,
    /// Elements left out (the earliest) past [`xfcc::MAX_ELEMENTS`].
    #[serde(skip_serializing_if = "is_zero")]
    pub omitted: u32,
    /// The header as received, when it could not be read.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub unparsed: String,
    /// Why it could not be read.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One element of `x-forwarded-client-cert`, as Envoy writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct XfccElement {
    /// The proxy that received the certificate (its own URI SAN).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub by: String,
    /// SHA-256 of the client certificate, hex.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hash: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subject: String,
    #[serde(rename = "URI", skip_serializing_if = "Vec::is_empty")]
    pub uri: Vec<String>,
    #[serde(rename = "DNS", skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
}

/// The name of Envoy's header.
pub const XFCC_HEADER: &str = "x-forwarded-client-cert";
/// [`XFCC_HEADER`] as a header name.
pub const XFCC: http::HeaderName = http::HeaderName::from_static(XFCC_HEADER);

/// How a request arrived and who sent it: the connection's TLS session (if
/// any) and the caller, from the verified client certificate first, else
/// from the request's `x-forwarded-client-cert` (`forwarded`: the edge's
/// `exec::context::Told` finds it in its one pass over the headers, an
/// edge without one by `exec::context::first_value`, which compares the
/// names carried rather than hashing its 23 bytes: nearly every request
/// has none).
pub fn of_request(
    session: Option<&TlsSession>,
    forwarded: Option<&http::HeaderValue>,
) -> (Option<Tls>, Option<Peer>) {
    let tls = session.map(|s| s.tls.clone());
    let forwarded = forwarded.map(|value| xfcc::peer(value.as_bytes()));
    let peer = match (session.and_then(|s| s.client.clone()), forwarded) {
        (Some(mut client), Some(forwarded)) => {
            // The certificate is the direct caller; the header says what
            // proxies on the way saw, kept beside it.
            client.elements = forwarded.elements;
            client.omitted = forwarded.omitted;
            Some(client)
        }
        (client, forwarded) => client.or(forwarded),
    };
    (tls, peer)
}

/// The caller's principal alone, as [`of_request`] finds it: what a reset
/// aimed at a caller (`@from=`) and `/requests` go by.
pub fn principal(
    session: Option<&TlsSession>,
    forwarded: Option<&http::HeaderValue>,
) -> Option<String> {
    of_request(session, forwarded).1.map(|peer| peer.principal)
}

impl Peer {
    /// The service account of a SPIFFE principal (`.../sa/NAME`), for
    /// `@from=NAME`.
    pub fn service_account(&self) -> Option<&str> {
        self.principal.rsplit_once("/sa/").map(|(_, sa)| sa)
    }
}
