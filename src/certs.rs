//! Certificates for tests and clusters (`servicemock certs`): a CA, and for
//! each name a certificate usable as server and as client, with the names a
//! Kubernetes service is reached by and the SPIFFE id a mesh gives it.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A certificate and its key, PEM.
#[derive(Debug, Clone)]
pub struct Made {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Who the certificates are for.
#[derive(Debug, Clone)]
pub struct CertsOptions {
    pub namespace: String,
    pub trust_domain: String,
    /// How long they are valid, from now.
    pub days: u32,
}

impl Default for CertsOptions {
    fn default() -> Self {
        CertsOptions {
            namespace: "default".into(),
            trust_domain: "cluster.local".into(),
            days: 365,
        }
    }
}

/// Why certificates could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("cannot make a certificate: {0}")]
    Make(#[from] rcgen::Error),
    #[error("\"{0}\" cannot be in a certificate: {1}")]
    Name(String, rcgen::Error),
    #[error("cannot write {0}: {1}")]
    Write(String, std::io::Error),
}

/// The SPIFFE id Istio gives a workload of service account `name`.
pub fn spiffe_id(options: &CertsOptions, name: &str) -> String {
    format!(
        "spiffe://{}/ns/{}/sa/{name}",
        options.trust_domain, options.namespace
    )
}

/// A CA and a leaf per name: `ca.pem`, `ca-key.pem`, `NAME.pem`,
/// `NAME-key.pem` in `dir`. Returns the files written.
pub fn write(
    dir: &Path,
    names: &[String],
    options: &CertsOptions,
) -> Result<Vec<String>, CertsError> {
    std::fs::create_dir_all(dir).map_err(|e| CertsError::Write(dir.display().to_string(), e))?;
    let (ca, issuer) = ca(options)?;
    let mut written = Vec::new();
    let mut put = |file: String, text: &str| -> Result<(), CertsError> {
        let path = dir.join(&file);
        std::fs::write(&path, text)
            .map_err(|e| CertsError::Write(path.display().to_string(), e))?;
        written.push(file);
        Ok(())
    };
    put("ca.pem".into(), &ca.cert_pem)?;
    put("ca-key.pem".into(), &ca.key_pem)?;
    for name in names {
        let leaf = leaf(name, options, &issuer)?;
        put(format!("{name}.pem"), &leaf.cert_pem)?;
        put(format!("{name}-key.pem"), &leaf.key_pem)?;
    }
    Ok(written)
}

fn validity(params: &mut CertificateParams, days: u32) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(i64::from(days));
}

fn ca_params(options: &CertsOptions) -> Result<CertificateParams, CertsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    // A name of its own, so two CAs made apart are never taken for each
    // other by a verifier that looks issuers up by name.
    let id = uuid::Uuid::new_v4().simple().to_string();
    params.distinguished_name.push(
        DnType::CommonName,
        format!("servicemock test CA {}", &id[..8]),
    );
    params
        .distinguished_name
        .push(DnType::OrganizationName, options.trust_domain.clone());
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, options.days);
    Ok(params)
}

/// A CA: its certificate and key, and the issuer that signs with them.
fn ca(options: &CertsOptions) -> Result<(Made, Issuer<'static, KeyPair>), CertsError> {
    let key = KeyPair::generate()?;
    let params = ca_params(options)?;
    let cert = params.self_signed(&key)?;
    let made = Made {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    };
    Ok((made, Issuer::new(params, key)))
}

/// The names a service `name` is reached by in namespace `ns`.
fn dns_names(name: &str, ns: &str) -> Vec<String> {
    let mut names = vec![
        name.to_owned(),
        format!("{name}.{ns}"),
        format!("{name}.{ns}.svc"),
        format!("{name}.{ns}.svc.cluster.local"),
    ];
    if name != "localhost" {
        names.push("localhost".into());
    }
    names
}

fn leaf_params(name: &str, options: &CertsOptions) -> Result<CertificateParams, CertsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, options.trust_domain.clone());
    for dns in dns_names(name, &options.namespace) {
        let ia5 = dns
            .clone()
            .try_into()
            .map_err(|e| CertsError::Name(dns, e))?;
        params.subject_alt_names.push(SanType::DnsName(ia5));
    }
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let uri = spiffe_id(options, name);
    let ia5 = uri
        .clone()
        .try_into()
        .map_err(|e| CertsError::Name(uri, e))?;
    params.subject_alt_names.push(SanType::URI(ia5));
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    validity(&mut params, options.days);
    Ok(params)
}

fn leaf(
    name: &str,
    options: &CertsOptions,
    issuer: &Issuer<'_, KeyPair>,
) -> Result<Made, CertsError> {
    let key = KeyPair::generate()?;
    let cert = leaf_params(name, options)?.signed_by(&key, issuer)?;
    Ok(Made {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A CA and a certificate per name, in memory (the TLS mesh's).
pub fn made(names: &[String], options: &CertsOptions) -> Result<(Made, Vec<Made>), CertsError> {
    let (ca, issuer) = ca(options)?;
    let leaves = names
        .iter()
        .map(|name| leaf(name, options, &issuer))
        .collect::<Result<_, _>>()?;
    Ok((ca, leaves))
}

/// A self-signed certificate for `names` (the first is the common name),
/// for `--tls-self-signed`.
pub fn self_signed(names: &[String]) -> Result<Made, CertsError> {
    let options = CertsOptions::default();
    let first = names.first().map_or("localhost", String::as_str);
    let mut params = leaf_params(first, &options)?;
    for extra in names.iter().skip(1) {
        let ia5 = extra
            .clone()
            .try_into()
            .map_err(|e| CertsError::Name(extra.clone(), e))?;
        params.subject_alt_names.push(SanType::DnsName(ia5));
    }
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(Made {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}
