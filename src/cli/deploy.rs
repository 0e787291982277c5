//! The arguments of `mesh` (many services in one process) and
//! `manifests` (Kubernetes YAML for named services).

use super::*;

/// `servicemock manifests`: what to generate.
#[derive(Args)]
pub(crate) struct ManifestsArgs {
    /// Names of the services.
    #[arg(required_unless_present = "topology", conflicts_with = "topology")]
    pub(crate) names: Vec<String>,
    /// The services of a topology file (YAML), each version its own
    /// Deployment with its replicas and behaviour flags.
    #[arg(long, value_name = "FILE")]
    pub(crate) topology: Option<std::path::PathBuf>,
    /// A service's default cascade, NAME=PLAN (repeatable), e.g.
    /// --calls 'productpage=/@details|reviews/': set as SERVICEMOCK_CALLS.
    #[arg(long, value_name = "NAME=PLAN", conflicts_with = "topology")]
    pub(crate) calls: Vec<String>,
    /// Namespace of every object (default: kubectl's current one).
    #[arg(long)]
    pub(crate) namespace: Option<String>,
    /// The version label and reported version (--version prints the
    /// program's).
    #[arg(id = "service_version", long = "service-version", default_value = "v1")]
    pub(crate) version: String,
    /// Container image.
    #[arg(long, default_value = "servicemock:latest")]
    pub(crate) image: String,
    /// Replicas per Deployment.
    #[arg(long, default_value_t = 1)]
    pub(crate) replicas: u32,
    /// Start each replica with --control (GET/PUT /control changes its
    /// behaviour, readiness and liveness at run time; for test clusters).
    #[arg(long)]
    pub(crate) control: bool,
    /// Serve TLS on port 8443 (Service port https, appProtocol tls) from
    /// this Secret of type kubernetes.io/tls; '{name}' stands for each
    /// service's name, e.g. --tls '{name}-tls'. 8080 stays cleartext.
    #[arg(long, value_name = "SECRET")]
    pub(crate) tls: Option<String>,
    /// Serve raw TCP lines on this port too (Service port tcp,
    /// appProtocol tcp), e.g. --tcp-port 9000 for Istio's TCP tasks.
    #[arg(long, value_name = "PORT")]
    pub(crate) tcp_port: Option<u16>,
    /// Start each replica with --record N (GET /requests answers the
    /// last N requests it received: the mirroring task's view).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=servicemock::server::recorder::MAX_RECORD as i64))]
    pub(crate) record: Option<u32>,
    /// Export each replica's spans to this OTLP endpoint (sets
    /// OTEL_EXPORTER_OTLP_ENDPOINT), e.g.
    /// http://opentelemetry-collector.observability:4318.
    #[arg(long, value_name = "ENDPOINT")]
    pub(crate) otlp: Option<String>,
    /// The OTLP protocol of --otlp: grpc (port 4317) or http/protobuf (4318,
    /// the default).
    #[arg(long, value_name = "PROTOCOL", requires = "otlp")]
    pub(crate) otlp_protocol: Option<String>,
}

#[derive(Args)]
pub(crate) struct MeshArgs {
    /// Names of the services, e.g. service1 service2 service3; NAME=PLAN
    /// gives one its default cascade (as serve --calls):
    /// `mesh service1=/@service2/ service2=/@service3/ service3`.
    #[arg(required_unless_present = "topology", conflicts_with = "topology")]
    pub(crate) names: Vec<String>,
    /// Run the services of this topology file (YAML: services, versions
    /// with replicas and behaviour, default calls, TCP ports, TLS), each
    /// replica its own port, replicas of a name called in turn.
    #[arg(long, value_name = "FILE")]
    pub(crate) topology: Option<std::path::PathBuf>,
    /// Port of the first name; the others get the following ports.
    #[arg(long, env = "SERVICEMOCK_BASE_PORT", default_value_t = 8080)]
    pub(crate) base_port: u16,
    /// Address every member listens on.
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) bind: IpAddr,
    /// The version every member reports (--version prints the program's).
    #[arg(
        id = "service_version",
        long = "service-version",
        env = "SERVICEMOCK_VERSION",
        default_value = "v1"
    )]
    pub(crate) version: String,
    /// Serve TLS beside plaintext on every port: a CA is made at start, each
    /// member gets a certificate for its name, and https:/grpcs: hops
    /// between members trust it (curl -k, or --cacert with the CA printed).
    #[arg(long)]
    pub(crate) tls: bool,
    #[command(flatten)]
    pub(crate) tuning: Tuning,
}
