//! TLS on hops (`https:` and `grpcs:`): one connector that opens the TCP
//! connection through the hop clients' own lookup and then makes the TLS
//! handshake with rustls (ring), for hyper's pooled HTTP client and for
//! tonic's channels alike. The server name sent (SNI) and checked is the
//! host the caller wrote (in the one-process mesh, the name, not the
//! loopback address it resolves to).
//!
//! Trust: webpki's public roots (the scratch image has no system store)
//! plus `--hop-ca`; a client certificate with `--hop-cert`/`--hop-key`
//! (mTLS origination). A failed handshake is a [`HandshakeError`] whose
//! text says why in words a person acts on.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::lookup::Lookup;

/// Where hops' TLS trust and client identity come from.
#[derive(Debug, Clone, Default)]
pub struct HopTlsOptions {
    /// CA certificates trusted beside the public roots (`--hop-ca`).
    pub ca: Option<PathBuf>,
    /// A CA certificate in memory (PEM), trusted too (the TLS mesh's).
    pub ca_pem: Option<String>,
    /// A client certificate and key for mTLS origination (`--hop-cert`, `--hop-key`).
    pub identity: Option<(PathBuf, PathBuf)>,
    /// Accept any server certificate (`--insecure` of the clients): the
    /// handshake's signatures are still checked, the certificate is not.
    pub insecure: bool,
}

/// The client configurations hops use: ALPN `h2, http/1.1` for `https:`,
/// `h2` for `grpcs:`.
#[derive(Debug, Clone)]
pub struct HopTls {
    pub(super) https: Arc<ClientConfig>,
    pub(super) grpcs: Arc<ClientConfig>,
    /// The same, accepting any server certificate (`[:insecure=true]`).
    https_insecure: Arc<ClientConfig>,
    grpcs_insecure: Arc<ClientConfig>,
    /// Whether a client certificate is configured (for the error text).
    has_identity: bool,
}

/// Why the hop TLS configuration cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HopTlsError(String);

impl HopTls {
    /// Builds the configurations, reading the files once.
    pub fn new(options: &HopTlsOptions) -> Result<HopTls, HopTlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(ca) = &options.ca {
            let read = |e: rustls::pki_types::pem::Error| {
                HopTlsError(format!("--hop-ca {}: {e}", ca.display()))
            };
            for cert in CertificateDer::pem_file_iter(ca).map_err(read)? {
                roots.add(cert.map_err(read)?).map_err(|e| {
                    HopTlsError(format!(
                        "--hop-ca {}: not a CA certificate: {e}",
                        ca.display()
                    ))
                })?;
            }
        }
        if let Some(pem) = &options.ca_pem {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| HopTlsError(format!("a CA made at start: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| HopTlsError(format!("a CA made at start: {e}")))?;
            }
        }
        let roots = Arc::new(roots);
        let make = |alpn: &[&[u8]], insecure: bool| -> Result<Arc<ClientConfig>, HopTlsError> {
            let builder = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| HopTlsError(format!("TLS versions: {e}")))?
                .with_root_certificates(roots.clone());
            let mut config = match &options.identity {
                None => builder.with_no_client_auth(),
                Some((cert, key)) => {
                    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                        .and_then(|certs| certs.collect())
                        .map_err(|e| HopTlsError(format!("--hop-cert {}: {e}", cert.display())))?;
                    let key = PrivateKeyDer::from_pem_file(key)
                        .map_err(|e| HopTlsError(format!("--hop-key {}: {e}", key.display())))?;
                    builder
                        .with_client_auth_cert(chain, key)
                        .map_err(|e| HopTlsError(format!("--hop-cert and --hop-key: {e}")))?
                }
            };
            config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            if insecure {
                config
                    .dangerous()
                    .set_certificate_verifier(Arc::new(AnyCertificate(provider.clone())));
            }
            Ok(Arc::new(config))
        };
        Ok(HopTls {
            https: make(&[b"h2", b"http/1.1"], options.insecure)?,
            grpcs: make(&[b"h2"], options.insecure)?,
            https_insecure: make(&[b"h2", b"http/1.1"], true)?,
            grpcs_insecure: make(&[b"h2"], true)?,
            has_identity: options.identity.is_some(),
        })
    }

    /// Public roots only, no client certificate.
    pub fn public() -> HopTls {
        HopTls::new(&HopTlsOptions::default()).unwrap_or_else(|e| unreachable!("public roots: {e}"))
    }
}

/// A verifier that takes any certificate (`--insecure`), checking only
/// that the handshake is signed by the key it presents.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Opens TCP through [`Lookup`], then TLS for `server_name`.
#[derive(Clone, Debug)]
pub(super) struct TlsConnector {
    tcp: HttpConnector<Lookup>,
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    has_identity: bool,
}

impl TlsConnector {
    /// A connector for `grpc` (ALPN h2 only) or HTTPS to server name
    /// `host`, accepting any certificate when `insecure`.
    pub(super) fn new(
        tcp: HttpConnector<Lookup>,
        tls: &HopTls,
        grpc: bool,
        host: &str,
        insecure: bool,
    ) -> Result<TlsConnector, String> {
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|e| format!("\"{host}\" cannot be a TLS server name: {e}"))?;
        Ok(TlsConnector {
            tcp,
            config: match (grpc, insecure) {
                (true, false) => tls.grpcs.clone(),
                (true, true) => tls.grpcs_insecure.clone(),
                (false, false) => tls.https.clone(),
                (false, true) => tls.https_insecure.clone(),
            },
            server_name,
            has_identity: tls.has_identity,
        })
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<Uri> for TlsConnector {
    type Response = TokioIo<TlsIo>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.tcp.call(uri);
        // Without a client certificate, a server that asks for one (STRICT
        // mTLS) alerts only after our side of a TLS 1.3 handshake is done:
        // note, per connection, whether it asked, to say so if it then ends.
        let asked = (!self.has_identity).then(|| Arc::new(Asked::default()));
        let config = match &asked {
            None => self.config.clone(),
            Some(asked) => {
                let mut config = (*self.config).clone();
                config.client_auth_cert_resolver = asked.clone();
                Arc::new(config)
            }
        };
        let connector = tokio_rustls::TlsConnector::from(config);
        let name = self.server_name.clone();
        let has_identity = self.has_identity;
        Box::pin(async move {
            let tcp = connecting.await?.into_inner();
            match connector.connect(name.clone(), tcp).await {
                Ok(stream) => {
                    let asked =
                        asked.is_some_and(|a| a.0.load(std::sync::atomic::Ordering::Relaxed));
                    let mut io = TlsIo {
                        stream,
                        cert_asked_for: asked,
                        read_any: false,
                        first: Vec::new(),
                    };
                    if asked && io.stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                        io.await_first_bytes().await?;
                    }
                    Ok(TokioIo::new(io))
                }
                Err(e) => Err(Box::new(HandshakeError::of(&e, &name, has_identity)) as BoxError),
            }
        })
    }
}

/// A hop's TLS handshake that failed, in words a person acts on.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HandshakeError(String);

impl HandshakeError {
    fn of(error: &std::io::Error, name: &ServerName<'_>, has_identity: bool) -> HandshakeError {
        use rustls::{AlertDescription as A, CertificateError as C, Error as E};
        let host = match name {
            ServerName::DnsName(d) => d.as_ref().to_owned(),
            ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
            _ => "?".to_owned(),
        };
        let Some(tls) = error.get_ref().and_then(|e| e.downcast_ref::<E>()) else {
            return HandshakeError(format!("the TLS handshake with {host} broke off: {error}"));
        };
        let words = match tls {
            E::InvalidCertificate(C::UnknownIssuer) => {
                format!("certificate for \"{host}\" is not trusted: unknown issuer (add its CA with --hop-ca)")
            }
            E::InvalidCertificate(C::NotValidForName) => format!("certificate is not for \"{host}\""),
            E::InvalidCertificate(C::NotValidForNameContext { presented, .. }) => {
                format!("certificate is for {}, not \"{host}\"", presented.join(", "))
            }
            E::InvalidCertificate(C::Expired) => format!("certificate for \"{host}\" has expired"),
            E::InvalidCertificate(C::ExpiredContext { not_after, .. }) => format!(
                "certificate for \"{host}\" expired on {}",
                crate::caller::cert::rfc3339(i64::try_from(not_after.as_secs()).unwrap_or(i64::MAX))
                    .split('T')
                    .next()
                    .unwrap_or_default()
            ),
            E::InvalidCertificate(C::BadSignature) => format!(
                "certificate for \"{host}\" is not trusted: it names a trusted CA but that CA did not sign it"
            ),
            E::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
                format!("certificate for \"{host}\" is not valid yet")
            }
            E::InvalidCertificate(other) => format!("certificate for \"{host}\" is not accepted: {other:?}"),
            E::AlertReceived(A::CertificateRequired | A::HandshakeFailure | A::BadCertificate) if !has_identity => {
                "server asked for a client certificate and none is configured (--hop-cert)".to_owned()
            }
            E::AlertReceived(A::CertificateRequired) => "server asked for a client certificate".to_owned(),
            E::AlertReceived(A::UnknownCA | A::BadCertificate) => {
                format!("{host} does not trust our client certificate (--hop-cert)")
            }
            E::AlertReceived(A::NoApplicationProtocol) | E::NoApplicationProtocol => {
                "no protocol in common (we offered h2, http/1.1)".to_owned()
            }
            E::InvalidMessage(_) => format!("{host} does not speak TLS here (its answer is no TLS record)"),
            other => format!("TLS with {host}: {other}"),
        };
        HandshakeError(words)
    }
}

/// Records whether a server asked for a client certificate (and sends
/// none: there is none to send).
#[derive(Debug, Default)]
struct Asked(std::sync::atomic::AtomicBool);

impl rustls::client::ResolvesClientCert for Asked {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        None
    }

    fn has_certs(&self) -> bool {
        false
    }
}

/// What a connection whose server asked for a client certificate we do
/// not have fails with, when it fails before the server said anything.
const NO_CLIENT_CERT: &str =
    "server asked for a client certificate and none is configured (--hop-cert)";

/// A client TLS stream as hyper and tonic take it.
pub(super) struct TlsIo {
    stream: TlsStream<TcpStream>,
    /// The server asked for a client certificate and none was sent.
    cert_asked_for: bool,
    /// Whether the server has sent anything since the handshake.
    read_any: bool,
    /// Bytes read before hyper took the connection, handed to it first.
    first: Vec<u8>,
}

/// How long an HTTP/2 server may take to speak first (its SETTINGS) after
/// a handshake in which it asked for a client certificate we lack.
const FIRST_BYTES_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

impl TlsIo {
    /// HTTP/2 servers speak first. When the server asked for a client
    /// certificate and got none, its first record is either its SETTINGS
    /// (it accepts us: the bytes are kept for hyper) or its refusal, which
    /// hyper's HTTP/2 client would report only as a canceled request.
    async fn await_first_bytes(&mut self) -> Result<(), BoxError> {
        use tokio::io::AsyncReadExt as _;
        let mut buf = vec![0u8; 1024];
        match tokio::time::timeout(FIRST_BYTES_WITHIN, self.stream.read(&mut buf)).await {
            Ok(Ok(n @ 1..)) => {
                buf.truncate(n);
                self.first = buf;
                self.read_any = true;
                Ok(())
            }
            Ok(Ok(0) | Err(_)) => Err(Box::new(HandshakeError(NO_CLIENT_CERT.to_owned()))),
            Err(_) => Ok(()),
        }
    }

    /// An I/O error, named for what it is when the server refused us for
    /// want of a client certificate (it closes before sending anything).
    fn explain(&self, error: std::io::Error) -> std::io::Error {
        if self.cert_asked_for && !self.read_any {
            std::io::Error::other(HandshakeError(NO_CLIENT_CERT.to_owned()))
        } else {
            error
        }
    }

    fn explain_poll<T>(&self, poll: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        match poll {
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.explain(e))),
            other => other,
        }
    }
}

impl Connection for TlsIo {
    fn connected(&self) -> Connected {
        let (tcp, session) = self.stream.get_ref();
        let connected = tcp.connected();
        if session.alpn_protocol() == Some(b"h2") {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl AsyncRead for TlsIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.first.is_empty() {
            let n = this.first.len().min(buf.remaining());
            buf.put_slice(&this.first[..n]);
            this.first.drain(..n);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let room = buf.remaining() > 0;
        let poll = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.read_any = true;
        } else if room
            && matches!(poll, Poll::Ready(Ok(())))
            && this.cert_asked_for
            && !this.read_any
        {
            // Closed before a byte: the refusal of a certificate we lack.
            return Poll::Ready(Err(this.explain(std::io::ErrorKind::UnexpectedEof.into())));
        }
        this.explain_poll(poll)
    }
}

impl AsyncWrite for TlsIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write(cx, data);
        this.explain_poll(poll)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_flush(cx);
        this.explain_poll(poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.explain_poll(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
