//! The arguments of the client commands, `call` and `load`, and the
//! flags they share (protocol, headers, TLS).

use super::*;

/// `servicemock call`'s arguments.
#[derive(Args)]
pub(crate) struct CallArgs {
    #[command(flatten)]
    pub(crate) via: ClientFlags,
    /// The service to call: host:port, host (port 8080) or http://host:port.
    pub(crate) addr: String,
    /// The @-path to send, e.g. '/@service2/@grpc:service3/end' (the
    /// leading '/' may be left out; not with --plan).
    #[arg(required_unless_present = "plan", value_name = "PATH")]
    pub(crate) path: Option<String>,
    /// A JSON CallRequest file (as grpcurl -d takes it, e.g. from
    /// `servicemock plan`) instead of a path.
    #[arg(long, conflicts_with = "path")]
    pub(crate) plan: Option<std::path::PathBuf>,
    /// Give up after this long.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
    /// Print the indented text tree instead of the JSON report.
    #[arg(long, conflicts_with = "flat")]
    pub(crate) tree: bool,
    /// Print one JSON object per hop with its position (for jq and scripts).
    #[arg(long)]
    pub(crate) flat: bool,
    /// A header on the call, 'name: value' (directives too:
    /// 'x-mock-status: 503'); repeatable.
    #[arg(short = 'H', long = "header")]
    pub(crate) headers: Vec<String>,
    /// Run the call N times on one gRPC stream (CallStream), printing
    /// each report as it comes, one per line (1 to 10000).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(servicemock::behavior::stream::MAX_STREAM_MESSAGES)))]
    pub(crate) stream: Option<u32>,
    /// With --stream: the pause between runs.
    #[arg(long, requires = "stream", value_parser = parse_duration)]
    pub(crate) interval: Option<Duration>,
    /// With --stream: end the stream at the first run that fails.
    #[arg(long, requires = "stream")]
    pub(crate) stop_on_failure: bool,
}

#[derive(Args)]
pub(crate) struct LoadArgs {
    /// The service to call: host:port, host (port 8080) or http://host:port.
    pub(crate) target: String,
    /// The @-path the target runs, e.g. '/@service2/end' (not with
    /// --plan); over tcp, a line that is no path is echoed.
    #[arg(required_unless_present = "plan", value_name = "PATH")]
    pub(crate) path: Option<String>,
    /// A JSON CallRequest (as grpcurl -d takes it) instead of a path.
    #[arg(long, conflicts_with = "path")]
    pub(crate) plan: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub(crate) via: ClientFlags,
    /// Workers (closed loop), or most calls in flight (with --qps).
    #[arg(short = 'c', long, default_value_t = 8)]
    pub(crate) connections: usize,
    /// Calls to make (default 200 when -d is not given either).
    #[arg(short = 'n', long)]
    pub(crate) requests: Option<u64>,
    /// How long to run.
    #[arg(short = 'd', long, value_parser = parse_duration)]
    pub(crate) duration: Option<Duration>,
    /// Open loop: calls per second, on a fixed schedule, timed from when
    /// each was due.
    #[arg(long)]
    pub(crate) qps: Option<f64>,
    /// Longest one call may take.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
    /// A header on every call, 'name: value' (directives too: 'x-mock-status: 503@10%').
    #[arg(short = 'H', long = "header")]
    pub(crate) headers: Vec<String>,
    /// Expected shares, tested: '[PLACE.]FIELD=VALUE:PERCENT,…', e.g.
    /// 'service2.version=v1:90,v2:10' or 'status=200:90,503:10' (repeatable).
    #[arg(long)]
    pub(crate) expect: Vec<String>,
    /// Confidence of the --expect tests, in percent.
    #[arg(long, default_value_t = 99.0)]
    pub(crate) confidence: f64,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    pub(crate) json: bool,
    /// With --protocol tcp: keep connections for the next call (by default
    /// each call opens one, as an Envoy TCP split is decided per connection).
    #[arg(long)]
    pub(crate) reuse: bool,
    /// Make each call one gRPC Converse stream of N messages: every message
    /// is tallied as a call, and the table says how many distinct pods
    /// answered each stream (a proxy balancing per stream pins it to one).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(servicemock::behavior::stream::MAX_STREAM_MESSAGES)))]
    pub(crate) stream: Option<u32>,
}

impl LoadArgs {
    /// The run these arguments ask for, or what is wrong with them.
    pub(crate) fn options(&self) -> anyhow::Result<servicemock::load::LoadOptions> {
        use servicemock::plan::path;
        let limits = Limits::default();
        let authority = servicemock::client::authority(&self.target)?;
        let target = path::parse_target_text(&authority)
            .map_err(|e| anyhow::anyhow!("target {:?}: {e}", self.target))?;
        let plan = match (&self.plan, &self.path) {
            (Some(file), _) => read_plan_file(file)?,
            // Over tcp, a line that is no path is echoed: who answered is
            // read from the echo's prefix.
            (None, Some(p)) if self.via.protocol() == Protocol::Tcp && !p.starts_with('/') => {
                servicemock::plan::Plan::leaf("/")
            }
            (None, Some(p)) => {
                let p = servicemock::client::request_path(p)?;
                path::parse_path(&p, &limits)?
            }
            (None, None) => anyhow::bail!("give a path or --plan FILE"),
        };
        let headers = parse_headers(&self.headers)?;
        anyhow::ensure!(
            (50.0..100.0).contains(&self.confidence),
            "--confidence {}: a percentage from 50 to below 100",
            self.confidence
        );
        anyhow::ensure!(
            (1..=servicemock::load::MAX_CONNECTIONS).contains(&self.connections),
            "-c {}: from 1 to {}",
            self.connections,
            servicemock::load::MAX_CONNECTIONS
        );
        if let Some(qps) = self.qps {
            anyhow::ensure!(qps > 0.0 && qps.is_finite(), "--qps {qps}: a positive rate");
        }
        let expectations = self
            .expect
            .iter()
            .map(|e| servicemock::load::expect::Expectation::parse(e).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let echo = self
            .path
            .as_ref()
            .filter(|p| self.via.protocol() == Protocol::Tcp && !p.starts_with('/'))
            .cloned();
        anyhow::ensure!(
            !self.reuse || self.via.protocol() == Protocol::Tcp,
            "--reuse keeps tcp connections: it needs --protocol tcp"
        );
        anyhow::ensure!(
            self.stream.is_none()
                || matches!(self.via.protocol(), Protocol::Grpc | Protocol::Grpcs),
            "--stream makes gRPC Converse streams: it needs --protocol grpc or grpcs"
        );
        Ok(servicemock::load::LoadOptions {
            target,
            echo,
            reuse: self.reuse,
            stream: self.stream,
            protocol: self.via.protocol(),
            tls: self.via.tls()?,
            plan,
            headers,
            connections: self.connections,
            requests: self.requests,
            duration: self.duration,
            qps: self.qps,
            timeout: self.timeout,
            expectations,
            confidence: self.confidence / 100.0,
        })
    }
}

/// How a client command (`call`, `load`, `health`) reaches the target.
#[derive(Args)]
pub(crate) struct ClientFlags {
    /// How to call the target: a hop scheme (http, h2c, grpc, https, grpcs, tcp).
    #[arg(long, value_parser = parse_protocol, default_value = "http")]
    pub(crate) protocol: Protocol,
    /// Same as --protocol grpc.
    #[arg(long, hide = true, conflicts_with_all = ["h2c", "protocol"])]
    pub(crate) grpc: bool,
    /// Same as --protocol h2c.
    #[arg(long, hide = true, conflicts_with = "protocol")]
    pub(crate) h2c: bool,
    /// CA certificates (PEM) to trust for https/grpcs, beside the public roots.
    #[arg(long)]
    pub(crate) cacert: Option<std::path::PathBuf>,
    /// A client certificate (PEM) to present, with --key (mTLS).
    #[arg(long, requires = "key")]
    pub(crate) cert: Option<std::path::PathBuf>,
    /// The key of --cert (PEM).
    #[arg(long, requires = "cert")]
    pub(crate) key: Option<std::path::PathBuf>,
    /// Accept any server certificate (as curl -k).
    #[arg(long, short = 'k')]
    pub(crate) insecure: bool,
}

fn parse_protocol(word: &str) -> Result<Protocol, String> {
    Protocol::from_scheme(word).ok_or_else(|| {
        let known: Vec<&str> = Protocol::ALL.iter().map(|p| p.as_str()).collect();
        format!("unknown protocol {word:?} (one of {})", known.join(", "))
    })
}

impl ClientFlags {
    pub(crate) fn protocol(&self) -> Protocol {
        match (self.grpc, self.h2c) {
            (true, _) => Protocol::Grpc,
            (_, true) => Protocol::H2c,
            _ => self.protocol,
        }
    }

    /// What https/grpcs calls trust and present.
    pub(crate) fn tls(&self) -> anyhow::Result<servicemock::exec::tls::HopTls> {
        hop_tls(&self.cacert, &self.cert, &self.key, self.insecure)
    }
}
