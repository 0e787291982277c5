//! What a verified client certificate says of its holder: subject, SANs
//! (the SPIFFE id among the URIs), serial and expiry.

use x509_parser::extensions::GeneralName;

use super::{Peer, FROM_TLS};

/// The identity in a DER certificate; `None` when it cannot be parsed
/// (rustls verified it, so that would be a parser's limit, not an attack).
pub fn peer(der: &[u8]) -> Option<Peer> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut peer = Peer {
        source: FROM_TLS.into(),
        subject: cert.subject().to_string(),
        serial: cert.raw_serial_as_string(),
        not_after: rfc3339(cert.validity().not_after.timestamp()),
        ..Peer::default()
    };
    if let Ok(Some(names)) = cert.subject_alternative_name() {
        for name in &names.value.general_names {
            match name {
                GeneralName::URI(uri) => peer.uri.push((*uri).to_owned()),
                GeneralName::DNSName(dns) => peer.dns.push((*dns).to_owned()),
                _ => {}
            }
        }
    }
    peer.principal = peer
        .uri
        .iter()
        .find(|u| u.starts_with("spiffe://"))
        .or(peer.uri.first())
        .cloned()
        .unwrap_or_default();
    Some(peer)
}

/// Seconds since the epoch as RFC 3339 (UTC).
pub fn rfc3339(seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
