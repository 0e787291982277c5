//! TLS on a listener: the certificates to serve (several, chosen by SNI),
//! client certificates (mTLS, optional or required), ALPN `h2` and
//! `http/1.1`, and the files re-read when their contents change.
//!
//! cert-manager and Istio rotate certificates, and a Kubernetes Secret
//! volume swaps a `..data` symlink, which a watch on the file itself never
//! sees: the files are read again on a timer and compared by content. A
//! change builds a new configuration for new connections; open ones keep
//! theirs. A file that cannot be read keeps the configuration in force.
//!
//! rustls with the ring provider, always named (`builder_with_provider`),
//! so two providers in one binary can never make start-up panic.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::caller::{self, Tls, TlsSession};
use crate::metrics::Metrics;

/// The first byte of a TLS record carrying a handshake (a ClientHello).
pub(super) const CLIENT_HELLO: u8 = 0x16;

/// Whether a client must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// Verified when sent; a connection without one is served too.
    #[default]
    Optional,
    /// A connection without a trusted certificate fails its handshake.
    Required,
}

/// Where the certificates come from.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Certificate chain and key files, PEM; the first is served when no
    /// other's names match the SNI.
    pub pairs: Vec<(PathBuf, PathBuf)>,
    /// A certificate made at start for these names (`--tls-self-signed`).
    pub self_signed: Vec<String>,
    /// Certificates made in memory (the TLS mesh's, signed by its CA).
    pub made: Vec<crate::certs::Made>,
    /// CA certificates that client certificates are verified against.
    pub client_ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
    /// How often the files are read again.
    pub reload_every: Duration,
}

/// A listener's TLS configuration, current as the files are.
pub struct TlsServer {
    options: TlsOptions,
    provider: Arc<CryptoProvider>,
    /// Certificates made once at start (they do not rotate).
    made: Vec<Arc<CertifiedKey>>,
    current: RwLock<Loaded>,
}

struct Loaded {
    config: Arc<ServerConfig>,
    /// The bytes of every file, as last read.
    contents: Vec<Vec<u8>>,
}

impl fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServer")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Why a TLS configuration cannot be built: says which file and what.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

impl TlsServer {
    /// Loads the files (or makes the self-signed certificate) and, when
    /// there are files, re-reads them every `reload_every` for as long as
    /// the server lives. Call within the runtime.
    pub fn start(options: TlsOptions) -> Result<Arc<TlsServer>, TlsError> {
        if options.pairs.is_empty() && options.self_signed.is_empty() && options.made.is_empty() {
            return Err(TlsError(
                "TLS needs a certificate: give --tls-cert and --tls-key, or --tls-self-signed"
                    .into(),
            ));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut made = Vec::new();
        if !options.self_signed.is_empty() {
            let pem = crate::certs::self_signed(&options.self_signed)
                .map_err(|e| TlsError(format!("--tls-self-signed: {e}")))?;
            made.push(Arc::new(from_pem(&pem, &provider)?));
        }
        for pem in &options.made {
            made.push(Arc::new(from_pem(pem, &provider)?));
        }
        let contents = read_all(&options)?;
        let config = build(&options, &contents, &made, &provider)?;
        let server = Arc::new(TlsServer {
            options,
            provider,
            made,
            current: RwLock::new(Loaded { config, contents }),
        });
        if !server.files().is_empty() {
            tokio::spawn(reload(Arc::downgrade(&server)));
        }
        Ok(server)
    }

    fn files(&self) -> Vec<&PathBuf> {
        files(&self.options)
    }

    fn config(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(loaded) => loaded.config.clone(),
            Err(poisoned) => poisoned.into_inner().config.clone(),
        }
    }

    /// Reads the files again; a change in any builds a new configuration.
    /// Returns whether it changed.
    fn refresh(&self) -> Result<bool, TlsError> {
        let contents = read_all(&self.options)?;
        let unchanged = match self.current.read() {
            Ok(loaded) => loaded.contents == contents,
            Err(_) => false,
        };
        if unchanged {
            return Ok(false);
        }
        let config = build(&self.options, &contents, &self.made, &self.provider)?;
        if let Ok(mut loaded) = self.current.write() {
            *loaded = Loaded { config, contents };
        }
        Ok(true)
    }

    /// The TLS handshake on an accepted connection, and what it showed.
    pub(super) async fn accept(
        &self,
        tcp: TcpStream,
    ) -> std::io::Result<(TlsStream<TcpStream>, Arc<TlsSession>)> {
        let stream = tokio_rustls::TlsAcceptor::from(self.config())
            .accept(tcp)
            .await?;
        let session = session_of(stream.get_ref().1);
        Ok((stream, Arc::new(session)))
    }

    /// Logs and counts a handshake that failed, with the reason.
    pub(super) fn handshake_failed(&self, error: &std::io::Error, metrics: &Metrics) {
        let (reason, why) = classify(error);
        tracing::info!(reason, "TLS handshake failed: {why}");
        metrics.tls_handshake_failed(reason);
    }

    /// Logs and counts a handshake that did not finish in time.
    pub(super) fn handshake_timed_out(&self, metrics: &Metrics) {
        tracing::info!(
            reason = "timeout",
            "TLS handshake not finished within --header-read-timeout"
        );
        metrics.tls_handshake_failed("timeout");
    }
}

/// Every file the options name, in a fixed order.
fn files(options: &TlsOptions) -> Vec<&PathBuf> {
    let mut files: Vec<&PathBuf> = options.pairs.iter().flat_map(|(c, k)| [c, k]).collect();
    files.extend(options.client_ca.as_ref());
    files
}

fn read_all(options: &TlsOptions) -> Result<Vec<Vec<u8>>, TlsError> {
    files(options)
        .into_iter()
        .map(|path| {
            std::fs::read(path)
                .map_err(|e| TlsError(format!("cannot read {}: {e}", path.display())))
        })
        .collect()
}

/// Reads the files again every `reload_every` while the server lives.
async fn reload(server: Weak<TlsServer>) {
    let every = match server.upgrade() {
        Some(s) => s.options.reload_every.max(Duration::from_millis(10)),
        None => return,
    };
    loop {
        tokio::time::sleep(every).await;
        let Some(server) = server.upgrade() else {
            return;
        };
        match server.refresh() {
            Ok(true) => {
                tracing::info!("TLS files changed: new connections get the new certificates")
            }
            Ok(false) => {}
            Err(e) => tracing::warn!("TLS files not reloaded, the ones in force stay: {e}"),
        }
    }
}

/// A server configuration from the files' contents (as `files` orders them).
fn build(
    options: &TlsOptions,
    contents: &[Vec<u8>],
    made: &[Arc<CertifiedKey>],
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut certificates = Vec::new();
    for (i, (cert_path, key_path)) in options.pairs.iter().enumerate() {
        let chain = certificates_in(&contents[2 * i], cert_path)?;
        let key = PrivateKeyDer::from_pem_slice(&contents[2 * i + 1])
            .map_err(|e| TlsError(format!("no private key in {}: {e}", key_path.display())))?;
        let signing = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError(format!("cannot use the key in {}: {e}", key_path.display())))?;
        let names = names_of(&chain[0]);
        let key = CertifiedKey::new(chain, signing);
        key.keys_match().map_err(|e| {
            TlsError(format!(
                "{} is not the key of {}: {e}",
                key_path.display(),
                cert_path.display()
            ))
        })?;
        certificates.push((names, Arc::new(key)));
    }
    for made in made {
        certificates.push((names_of(&made.cert[0]), made.clone()));
    }
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS versions: {e}")))?;
    let builder = match &options.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca_path) => {
            let at = contents.len() - 1;
            let mut roots = RootCertStore::empty();
            for ca in certificates_in(&contents[at], ca_path)? {
                roots.add(ca).map_err(|e| {
                    TlsError(format!("{}: not a CA certificate: {e}", ca_path.display()))
                })?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let verifier = match options.client_auth {
                ClientAuth::Optional => verifier.allow_unauthenticated(),
                ClientAuth::Required => verifier,
            };
            let verifier = verifier.build().map_err(|e| {
                TlsError(format!(
                    "client certificate verifier from {}: {e}",
                    ca_path.display()
                ))
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(BySni(certificates)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn certificates_in(
    pem: &[u8],
    path: &std::path::Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError(format!("{}: not PEM certificates: {e}", path.display())))?;
    if chain.is_empty() {
        return Err(TlsError(format!(
            "{}: no certificate in it",
            path.display()
        )));
    }
    Ok(chain)
}

/// The DNS names a certificate is for (its SANs).
fn names_of(cert: &CertificateDer<'_>) -> Vec<String> {
    caller::cert::peer(cert).map(|p| p.dns).unwrap_or_default()
}

/// A certificate made in memory, ready to serve.
fn from_pem(
    made: &crate::certs::Made,
    provider: &Arc<CryptoProvider>,
) -> Result<CertifiedKey, TlsError> {
    let key = PrivateKeyDer::from_pem_slice(made.key_pem.as_bytes())
        .map_err(|e| TlsError(format!("a key made at start: {e}")))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError(format!("a key made at start: {e}")))?;
    let chain = certificates_in(
        made.cert_pem.as_bytes(),
        std::path::Path::new("(made at start)"),
    )?;
    Ok(CertifiedKey::new(chain, signing))
}

/// Picks the certificate whose names match the SNI (exactly, or by a
/// `*.` wildcard one label deep), else the first.
#[derive(Debug)]
struct BySni(Vec<(Vec<String>, Arc<CertifiedKey>)>);

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = hello.server_name().and_then(|sni| {
            self.0
                .iter()
                .find(|(names, _)| names.iter().any(|n| n.eq_ignore_ascii_case(sni)))
                .or_else(|| {
                    let (_, parent) = sni.split_once('.')?;
                    self.0.iter().find(|(names, _)| {
                        names.iter().any(|n| {
                            n.strip_prefix("*.")
                                .is_some_and(|w| w.eq_ignore_ascii_case(parent))
                        })
                    })
                })
        });
        chosen.or(self.0.first()).map(|(_, key)| key.clone())
    }
}

/// What a finished handshake showed.
fn session_of(connection: &rustls::ServerConnection) -> TlsSession {
    let version = match connection.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    };
    let cipher = connection
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_default();
    let alpn = connection
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    let sni = connection.server_name().unwrap_or_default().to_owned();
    let client = connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| caller::cert::peer(leaf));
    TlsSession {
        tls: Tls {
            version,
            cipher,
            alpn,
            sni,
        },
        client,
    }
}

/// A failed handshake's reason (a metrics label) and its words.
fn classify(error: &std::io::Error) -> (&'static str, String) {
    use rustls::Error as E;
    let Some(tls) = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        return ("closed", format!("the client went away: {error}"));
    };
    let reason = match tls {
        E::NoCertificatesPresented => "no_client_certificate",
        E::InvalidCertificate(_) => "bad_client_certificate",
        E::AlertReceived(_) => "client_alert",
        E::InvalidMessage(_)
        | E::InappropriateMessage { .. }
        | E::InappropriateHandshakeMessage { .. } => "bad_hello",
        E::PeerIncompatible(_) | E::NoApplicationProtocol => "incompatible",
        _ => "other",
    };
    let why = match tls {
        E::NoCertificatesPresented => {
            "the client sent no certificate and one is required (--tls-client-auth required)"
                .to_owned()
        }
        E::InvalidCertificate(e) => {
            format!("the client's certificate is not trusted (--tls-client-ca): {e:?}")
        }
        other => other.to_string(),
    };
    (reason, why)
}
