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
    } = args;
    let options = ManifestOptions {
        namespace,
        version,
        image,
        replicas,
        control,
        tls_secret: tls,
        tcp_port,
        record,
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
