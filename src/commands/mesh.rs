//! `servicemock mesh`: many services in one process, from names
//! (`NAME` or `NAME=PLAN`, a default cascade) or a topology file, and the
//! lines that tell a newcomer what to try.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::MeshArgs;
use servicemock::mesh::{Member, Mesh, MeshOptions};
use servicemock::server::shutdown;
use servicemock::topology::Topology;

/// The members the arguments describe.
fn members(args: &MeshArgs, options: &MeshOptions) -> anyhow::Result<Vec<Member>> {
    let limits = &options.settings.limits;
    if let Some(file) = &args.topology {
        let topology = Topology::read(file, limits)?;
        for cycle in &topology.cycles {
            eprintln!(
                "note: the default calls form a cycle, {cycle}: each request's calls are bounded by --max-hops {} across the cascade, and --max-depth {} ends a plain loop",
                limits.max_hops, limits.max_depth
            );
        }
        return from_topology(&topology, options);
    }
    args.names
        .iter()
        .map(|arg| {
            Member::from_arg(arg, limits).with_context(|| format!("the default calls in {arg}"))
        })
        .collect()
}

/// One member per version of each service of `topology`.
fn from_topology(topology: &Topology, options: &MeshOptions) -> anyhow::Result<Vec<Member>> {
    let mut members = Vec::new();
    for service in &topology.services {
        for version in &service.versions {
            let flags: Vec<(&str, &str)> = version
                .behavior
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let defaults = if flags.is_empty() {
                None
            } else {
                Some(
                    servicemock::behavior::flags::directives(&flags, options.settings.max_delay)
                        .map_err(anyhow::Error::msg)
                        .with_context(|| format!("{} {}", service.name, version.name))?,
                )
            };
            members.push(Member {
                name: service.name.clone(),
                version: Some(version.name.clone()),
                replicas: version.replicas as usize,
                calls: service.calls.clone(),
                defaults,
                tls: service.tls,
            });
        }
    }
    Ok(members)
}

pub(crate) async fn run(args: MeshArgs) -> anyhow::Result<ExitCode> {
    let options = MeshOptions {
        bind: args.bind,
        base_port: args.base_port,
        version: args.version.clone(),
        settings: args.tuning.settings(),
        propagate: args.tuning.propagate(),
        grace: args.tuning.shutdown_grace,
        defaults: args.tuning.behavior.directives(args.tuning.max_delay)?,
        tls: args.tls,
        spans: args.tuning.tracing.settings()?,
        trace_url: args.tuning.tracing.trace_url.clone(),
    };
    let members = members(&args, &options)?;
    let mesh = Mesh::start_members(&members, options).await?;
    println!(
        "servicemock mesh: {} servers in this process (HTTP/1.1, h2c and gRPC on each port)\n",
        mesh.members.len()
    );
    println!(
        "  {:<20} {:<8} {:<22} {:<22} DEFAULT CALLS",
        "NAME", "VERSION", "ADDRESS", "TCP LINES"
    );
    for (((name, addr), (_, tcp)), version) in
        mesh.members.iter().zip(&mesh.tcp).zip(&mesh.versions)
    {
        let calls = members
            .iter()
            .find(|m| &m.name == name)
            .and_then(|m| m.calls.as_ref())
            .map_or("", |c| c.source());
        let line = format!(
            "  {name:<20} {version:<8} {:<22} {:<22} {calls}",
            addr.to_string(),
            tcp.to_string()
        );
        println!("{}", line.trim_end());
    }
    let (first, entry) = &mesh.members[0];
    let mut rest: Vec<&str> = Vec::new();
    for (name, _) in &mesh.members[1..] {
        if name != first && !rest.contains(&name.as_str()) {
            rest.push(name);
        }
    }
    let example = match rest.as_slice() {
        [] => format!("/@{first}/end"),
        [one] => format!("/@{one}/@{first}/end"),
        [a, b, ..] => format!("/@{a}|{b}/@{first}/end"),
    };
    println!("\n@name and @name:8080 reach these servers (a name's replicas in turn), tcp:name and name:9000 their TCP ports; other names resolve as usual. Try:\n");
    if members[0].calls.is_some() {
        println!("  curl 'http://{entry}/?view=tree'    ({first}'s default calls)");
    }
    println!("  curl 'http://{entry}{example}'");
    println!("  curl --http2-prior-knowledge 'http://{entry}{example}'");
    println!(
        "  grpcurl -plaintext -d '{{\"path\":\"{example}\"}}' {entry} servicemock.v1.MockService/Call"
    );
    let (_, first_tcp) = &mesh.tcp[0];
    println!(
        "  echo hello | nc -N {} {}\n",
        first_tcp.ip(),
        first_tcp.port()
    );
    if let Some(ca) = mesh.ca_pem() {
        let path =
            std::env::temp_dir().join(format!("servicemock-mesh-{}-ca.pem", std::process::id()));
        std::fs::write(&path, ca).with_context(|| format!("cannot write {}", path.display()))?;
        let tls_example = match rest.as_slice() {
            [] => format!("/@https:{first}/end"),
            [one, ..] => format!("/@https:{one}/@grpcs:{first}/end"),
        };
        let port = entry.port();
        println!(
            "TLS beside plaintext on every port (certificates from a CA made now, {}):\n",
            path.display()
        );
        println!(
            "  curl --cacert {} --resolve {first}:{port}:127.0.0.1 'https://{first}:{port}{tls_example}?view=tree'\n",
            path.display()
        );
    }
    println!("Ctrl-C stops the mesh.");
    mesh.run_until(async {
        shutdown::signal().await;
    })
    .await?;
    println!("mesh stopped");
    Ok(ExitCode::SUCCESS)
}
