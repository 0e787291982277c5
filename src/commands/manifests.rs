//! `servicemock manifests`: Kubernetes objects for named services or a
//! topology file, each `--calls NAME=PLAN` checked as `serve` reads it.

use std::process::ExitCode;

use anyhow::Context as _;
use servicemock::manifests::{self, ManifestOptions};
use servicemock::plan::Limits;

use crate::cli::ManifestsArgs;
use crate::emit;

/// Prints the manifests `args` ask for.
pub(crate) fn run(args: ManifestsArgs) -> anyhow::Result<ExitCode> {
    let ManifestsArgs {
        names,
        topology,
        calls,
        namespace,
        version,
        image,
        replicas,
        control,
        tls,
        tcp_port,
        record,
        otlp,
        otlp_protocol,
    } = args;
    let otlp = otlp
        .map(|endpoint| checked_otlp(endpoint, otlp_protocol))
        .transpose()?;
    let options = ManifestOptions {
        namespace,
        version,
        image,
        replicas,
        control,
        tls_secret: tls,
        tcp_port,
        record,
        otlp,
    };
    let services = match topology {
        Some(file) => {
            let topology = servicemock::topology::Topology::read(&file, &Limits::default())?;
            for cycle in &topology.cycles {
                eprintln!("note: the default calls form a cycle, {cycle}: each request's calls are bounded by --max-hops across the cascade");
            }
            manifests::ServiceSpec::from_topology(&topology)
        }
        None => with_calls(&names, &calls, &options)?,
    };
    emit(&manifests::render_services(&services, &options)?);
    Ok(ExitCode::SUCCESS)
}

/// `--otlp` and `--otlp-protocol`, refused now if a replica would refuse
/// them at start.
fn checked_otlp(endpoint: String, protocol: Option<String>) -> anyhow::Result<manifests::Otlp> {
    servicemock::spans::SpanSettings::from_lookup(Some(&endpoint), |name| {
        (name == "OTEL_EXPORTER_OTLP_PROTOCOL")
            .then(|| protocol.clone())
            .flatten()
    })
    .with_context(|| "--otlp/--otlp-protocol".to_owned())?;
    Ok(manifests::Otlp { endpoint, protocol })
}

/// The services `manifests` names, each `--calls NAME=PLAN` checked as
/// `serve` will read it and given to its service.
fn with_calls(
    names: &[String],
    calls: &[String],
    options: &ManifestOptions,
) -> anyhow::Result<Vec<manifests::ServiceSpec>> {
    let mut services: Vec<manifests::ServiceSpec> = names
        .iter()
        .map(|n| manifests::ServiceSpec::named(n, options))
        .collect();
    for given in calls {
        let Some((name, path)) = given.split_once('=') else {
            anyhow::bail!("--calls {given}: write NAME=PLAN, e.g. --calls 'service1=/@service2/'");
        };
        servicemock::plan::default::DefaultCalls::from_path(path, &Limits::default())
            .with_context(|| format!("--calls {given}"))?;
        let Some(service) = services.iter_mut().find(|s| s.name == name) else {
            anyhow::bail!("--calls {given}: {name} is not one of the services named");
        };
        service.calls = Some(path.to_owned());
    }
    Ok(services)
}
