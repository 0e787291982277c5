//! Kubernetes manifests for any number of named services: what
//! `servicemock manifests service1 service2 service3` prints, ready for
//! `kubectl apply -f -`. It replaces the original README's `sed` on a
//! template; `kubernetes/mock-service.yaml` is its output for `service1`.
//!
//! The choices Istio needs are explained in the comments it prints.

use crate::config::check_name;
pub use crate::config::BadName;
use std::fmt::Write as _;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestOptions {
    /// Namespace of every object; `None` leaves it to kubectl's context.
    pub namespace: Option<String>,
    /// The `version` label and reported version, e.g. `v1`.
    pub version: String,
    pub image: String,
    pub replicas: u32,
    /// Serve `/control` (`--control`), so each replica can be made sick,
    /// unready or slow at run time.
    pub control: bool,
    /// Serve TLS on port 8443 from this Secret (`{name}` stands for the
    /// service's name), keeping 8080 in cleartext.
    pub tls_secret: Option<String>,
    /// Serve raw TCP lines on this port too (`--tcp-listen`; Service port
    /// named `tcp`, `appProtocol: tcp`).
    pub tcp_port: Option<u16>,
    /// Keep the last N requests at `GET /requests` (`--record`).
    pub record: Option<u32>,
    /// Export spans to this OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`),
    /// over this protocol when given (`OTEL_EXPORTER_OTLP_PROTOCOL`).
    pub otlp: Option<Otlp>,
}

/// Where each replica sends its spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Otlp {
    pub endpoint: String,
    /// `grpc` or `http/protobuf`; `None` leaves the SDK's default.
    pub protocol: Option<String>,
}

impl Otlp {
    fn env(&self) -> String {
        let mut env = format!(
            "
            # servicemock's own spans (a SERVER span per request, a CLIENT
            # span per hop) beside Envoy's, in the trace the request carries.
            - name: OTEL_EXPORTER_OTLP_ENDPOINT
              value: {}",
            serde_json::Value::from(self.endpoint.as_str())
        );
        if let Some(protocol) = &self.protocol {
            let _ = write!(
                env,
                "
            - name: OTEL_EXPORTER_OTLP_PROTOCOL
              value: {protocol}"
            );
        }
        env
    }
}

impl Default for ManifestOptions {
    fn default() -> Self {
        ManifestOptions {
            namespace: None,
            version: "v1".into(),
            image: "servicemock:latest".into(),
            replicas: 1,
            control: false,
            tls_secret: None,
            tcp_port: None,
            record: None,
            otlp: None,
        }
    }
}

/// Seconds `servicemock serve` drains in-flight requests after SIGTERM.
pub const SHUTDOWN_GRACE_SECS: u32 = 10;

/// One service to generate: its account, Service, and a Deployment per
/// version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    pub name: String,
    /// Its default cascade (`SERVICEMOCK_CALLS`), as an @-path.
    pub calls: Option<String>,
    /// A raw TCP lines port, beside [`ManifestOptions::tcp_port`].
    pub tcp_port: Option<u16>,
    /// Serve TLS from this Secret, beside [`ManifestOptions::tls_secret`].
    pub tls_secret: Option<String>,
    pub versions: Vec<VersionSpec>,
}

/// One version of a service: a Deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionSpec {
    pub name: String,
    pub replicas: u32,
    /// Behaviour flags (`delay` → `--delay 100ms`).
    pub behavior: Vec<(String, String)>,
}

impl ServiceSpec {
    /// A service of one version, as `options` say.
    pub fn named(name: &str, options: &ManifestOptions) -> ServiceSpec {
        ServiceSpec {
            name: name.to_owned(),
            calls: None,
            tcp_port: None,
            tls_secret: None,
            versions: vec![VersionSpec {
                name: options.version.clone(),
                replicas: options.replicas,
                behavior: Vec::new(),
            }],
        }
    }

    /// The services of a topology file.
    pub fn from_topology(topology: &crate::topology::Topology) -> Vec<ServiceSpec> {
        topology
            .services
            .iter()
            .map(|s| ServiceSpec {
                name: s.name.clone(),
                calls: s.calls.as_ref().map(|c| c.source().to_owned()),
                tcp_port: s.tcp_port,
                tls_secret: s.tls.then(|| format!("{}-tls", s.name)),
                versions: s
                    .versions
                    .iter()
                    .map(|v| VersionSpec {
                        name: v.name.clone(),
                        replicas: v.replicas,
                        behavior: v.behavior.clone(),
                    })
                    .collect(),
            })
            .collect()
    }
}

/// A Service and a Deployment per name, as one multi-document YAML.
pub fn render(names: &[String], options: &ManifestOptions) -> Result<String, BadName> {
    let specs: Vec<ServiceSpec> = names
        .iter()
        .map(|n| ServiceSpec::named(n, options))
        .collect();
    render_services(&specs, options)
}

/// An account, a Service and a Deployment per version for each service.
pub fn render_services(
    services: &[ServiceSpec],
    options: &ManifestOptions,
) -> Result<String, BadName> {
    if let Some(ns) = &options.namespace {
        check_name(ns, 63)?;
    }
    let mut out = String::new();
    for service in services {
        for version in &service.versions {
            check_name(&version.name, 63)?;
            // The Deployment is called NAME-VERSION, so it must stay within 63.
            check_name(&service.name, 62 - version.name.len())?;
        }
        render_one(&mut out, service, options);
    }
    Ok(out)
}

fn render_one(out: &mut String, service: &ServiceSpec, o: &ManifestOptions) {
    let name = service.name.as_str();
    let namespace = o
        .namespace
        .as_ref()
        .map(|ns| format!("\n  namespace: {ns}"))
        .unwrap_or_default();
    let termination = SHUTDOWN_GRACE_SECS + 5;
    // Anyone who reaches the pod may then change it: for test clusters.
    let mut control = if o.control { ", \"--control\"" } else { "" }.to_owned();
    if let Some(n) = o.record {
        control.push_str(&format!(", \"--record\", \"{n}\""));
    }
    if o.control {
        out.push_str(
            "# --control: anyone who reaches a pod's port can change its behaviour,\n\
             # readiness and liveness through /control. For test clusters only.\n",
        );
    }
    let tls = service
        .tls_secret
        .as_ref()
        .or(o.tls_secret.as_ref())
        .map(|secret| Tls::new(name, secret));
    let tls = tls.as_ref();
    let (tls_arg, tls_service_port, tls_container_port, tls_env, tls_mount, tls_volume) = (
        tls.map_or("", |_| ", \"--tls-listen\", \"0.0.0.0:8443\""),
        tls.map_or(String::new(), Tls::service_port),
        tls.map_or("", |_| TLS_CONTAINER_PORT),
        tls.map_or("", |_| TLS_ENV),
        tls.map_or("", |_| TLS_MOUNT),
        tls.map_or(String::new(), Tls::volume),
    );
    let (tcp_arg, tcp_service_port, tcp_container_port) = match service.tcp_port.or(o.tcp_port) {
        None => (String::new(), String::new(), String::new()),
        Some(port) => (
            format!(", \"--tcp-listen\", \"0.0.0.0:{port}\""),
            format!(
                "
    # Raw TCP lines (echo, and @-paths as lines): a TCP port to Istio, so
    # TCP routes, splits (per connection) and TCP authorization apply.
    - name: tcp
      appProtocol: tcp
      port: {port}
      targetPort: {port}"
            ),
            format!(
                "
            - name: tcp
              containerPort: {port}"
            ),
        ),
    };
    let otlp_env = o.otlp.as_ref().map(Otlp::env).unwrap_or_default();
    let versions: Vec<&str> = service.versions.iter().map(|v| v.name.as_str()).collect();
    let each = if versions.len() == 1 {
        "a Deployment"
    } else {
        "a Deployment per version"
    };
    let _ = write!(
        out,
        r#"# servicemock "{name}" ({versions}): a ServiceAccount, a Service and {each}.
# An account of its own: its principal is then
# spiffe://cluster.local/ns/NAMESPACE/sa/{name}, so AuthorizationPolicies
# and the reports' Peer tell services apart (the default account is shared).
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {name}{namespace}
  labels:
    app: {name}
---
apiVersion: v1
kind: Service
metadata:
  name: {name}{namespace}
  labels:
    app: {name}
    service: {name}
spec:
  selector:
    app: {name}
  ports:
    # One port carries HTTP/1.1, h2c and gRPC. Naming it http2 (and
    # appProtocol http2) makes the Istio sidecar speak HTTP/2 to the pod, so
    # gRPC and h2c work and routes can match gRPC service/method paths;
    # HTTP/1.1 clients such as curl still work, the sidecar translates.
    - name: http2
      appProtocol: http2
      port: 8080
      targetPort: 8080{tls_service_port}{tcp_service_port}
"#,
        versions = versions.join(", "),
    );
    let calls = match &service.calls {
        None => String::new(),
        Some(path) => format!(
            "
            # The plan a request whose target has no command runs: GET /
            # (an ingress, a browser, fortio) makes the whole cascade.
            - name: SERVICEMOCK_CALLS
              value: {}",
            serde_json::Value::from(path.as_str())
        ),
    };
    for v in &service.versions {
        let version = v.name.as_str();
        let mut behavior = String::new();
        for (flag, value) in &v.behavior {
            let _ = write!(
                behavior,
                ", \"--{flag}\", {}",
                serde_json::Value::from(value.as_str())
            );
        }
        let _ = write!(
            out,
            r#"---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}-{version}{namespace}
  labels:
    app: {name}
    version: {version}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
      version: {version}
  template:
    metadata:
      labels:
        # app and version: what Istio subsets, Kiali and telemetry group by.
        app: {name}
        version: {version}
    spec:
      # servicemock drains for SERVICEMOCK_SHUTDOWN_GRACE after SIGTERM; the
      # pod gets a few seconds more before SIGKILL.
      terminationGracePeriodSeconds: {termination}
      serviceAccountName: {name}
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: servicemock
          image: {image}
          imagePullPolicy: IfNotPresent
          args: ["--listen", "0.0.0.0:8080"{tls_arg}{tcp_arg}{control}{behavior}]
          ports:
            - name: http2
              containerPort: 8080{tls_container_port}{tcp_container_port}
          env:{tls_env}
            - name: SERVICEMOCK_NAME
              value: {name}
            - name: SERVICEMOCK_VERSION
              value: {version}{calls}
            - name: SERVICEMOCK_SHUTDOWN_GRACE
              value: {grace}s
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            - name: POD_NAMESPACE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.namespace
            - name: POD_IP
              valueFrom:
                fieldRef:
                  fieldPath: status.podIP{otlp_env}
          # Liveness over HTTP, readiness over grpc.health.v1 (NOT_SERVING
          # as soon as draining starts, so the endpoint leaves the pool).
          livenessProbe:
            httpGet:
              path: /health
              port: 8080
            periodSeconds: 10
          readinessProbe:
            grpc:
              port: 8080
            periodSeconds: 2
          resources:
            requests:
              cpu: 50m
              memory: 16Mi
            limits:
              cpu: "1"
              memory: 128Mi
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            runAsNonRoot: true
            capabilities:
              drop: ["ALL"]{tls_mount}{tls_volume}
---
"#,
            replicas = v.replicas,
            image = o.image,
            grace = SHUTDOWN_GRACE_SECS,
        );
    }
}

const TLS_CONTAINER_PORT: &str = "
            - name: https
              containerPort: 8443";

const TLS_ENV: &str = "
            # From the Secret (type kubernetes.io/tls); re-read when the
            # kubelet swaps its files, so a rotated certificate is served
            # to new connections without a restart.
            - name: SERVICEMOCK_TLS_CERT
              value: /etc/servicemock/tls/tls.crt
            - name: SERVICEMOCK_TLS_KEY
              value: /etc/servicemock/tls/tls.key";

const TLS_MOUNT: &str = "
          volumeMounts:
            - name: tls
              mountPath: /etc/servicemock/tls
              readOnly: true";

/// The TLS parts of one service's manifests.
struct Tls {
    secret: String,
}

impl Tls {
    fn new(name: &str, secret: &str) -> Tls {
        Tls {
            secret: secret.replace("{name}", name),
        }
    }

    fn service_port(&self) -> String {
        format!(
            "
    # TLS that servicemock itself terminates: appProtocol tls makes the
    # sidecar pass it through untouched (an http2 port would be parsed as
    # HTTP and break the handshake). 8080 stays cleartext: probes, the
    # image's HEALTHCHECK and the sidecar's HTTP routing use it.
    # The Secret: kubectl create secret tls {secret} --cert NAME.pem --key NAME-key.pem
    # (servicemock certs --out certs NAME... writes them).
    - name: https
      appProtocol: tls
      port: 8443
      targetPort: 8443",
            secret = self.secret
        )
    }

    fn volume(&self) -> String {
        format!(
            "
      volumes:
        - name: tls
          secret:
            secretName: {}",
            self.secret
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kustomize_base_is_the_output_for_the_topology() {
        let topology = crate::topology::Topology::parse(
            "kubernetes/topology.yaml",
            include_str!("../kubernetes/topology.yaml"),
            &crate::plan::Limits::default(),
        )
        .unwrap();
        let generated = render_services(
            &ServiceSpec::from_topology(&topology),
            &ManifestOptions::default(),
        )
        .unwrap();
        assert_eq!(
            include_str!("../kubernetes/base/services.yaml"),
            generated,
            "regenerate: servicemock manifests --topology kubernetes/topology.yaml > kubernetes/base/services.yaml"
        );
    }

    #[test]
    fn versions_are_deployments_with_their_flags_and_calls() {
        let topology = crate::topology::Topology::parse(
            "t.yaml",
            "services:\n  - name: a\n    calls: /@b|c/\n    versions:\n      - {name: v1, replicas: 1}\n      - {name: v2, replicas: 3, delay: 100ms}\n  - name: b\n  - name: c\n",
            &crate::plan::Limits::default(),
        )
        .unwrap();
        let text = render_services(
            &ServiceSpec::from_topology(&topology),
            &ManifestOptions::default(),
        )
        .unwrap();
        assert_eq!(text.matches("kind: Service\n").count(), 3);
        assert_eq!(text.matches("kind: Deployment\n").count(), 4);
        assert!(text.contains("name: a-v2\n"), "{text}");
        assert!(text.contains("  replicas: 3\n"), "{text}");
        assert!(text.contains(r#""--delay", "100ms"]"#), "{text}");
        assert_eq!(text.matches("value: \"/@b|c/\"\n").count(), 2, "{text}");
    }

    #[test]
    fn each_service_has_an_account_of_its_own() {
        let text = render(&["a".into(), "b".into()], &ManifestOptions::default()).unwrap();
        assert_eq!(text.matches("kind: ServiceAccount\n").count(), 2);
        assert!(text.contains("      serviceAccountName: a\n"), "{text}");
        assert!(text.contains("      serviceAccountName: b\n"), "{text}");
    }

    #[test]
    fn a_tcp_port_is_declared_as_tcp() {
        let options = ManifestOptions {
            tcp_port: Some(9000),
            ..ManifestOptions::default()
        };
        let text = render(&["tcp-echo".into()], &options).unwrap();
        assert!(
            text.contains(
                "- name: tcp\n      appProtocol: tcp\n      port: 9000\n      targetPort: 9000"
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"args: ["--listen", "0.0.0.0:8080", "--tcp-listen", "0.0.0.0:9000"]"#),
            "{text}"
        );
        assert!(
            text.contains("- name: tcp\n              containerPort: 9000"),
            "{text}"
        );
    }

    #[test]
    fn tls_serves_a_secret_on_8443_beside_cleartext_8080() {
        let o = ManifestOptions {
            tls_secret: Some("{name}-tls".into()),
            ..ManifestOptions::default()
        };
        let text = render(&["service1".into(), "service2".into()], &o).unwrap();
        assert!(text.contains("secretName: service1-tls\n"), "{text}");
        assert!(text.contains("secretName: service2-tls\n"), "{text}");
        assert_eq!(text.matches("appProtocol: tls\n").count(), 2);
        assert_eq!(text.matches("appProtocol: http2\n").count(), 2);
        assert!(
            text.contains(r#"args: ["--listen", "0.0.0.0:8080", "--tls-listen", "0.0.0.0:8443"]"#)
        );
        assert!(text.contains("mountPath: /etc/servicemock/tls\n"));
        assert!(!render(&["service1".into()], &ManifestOptions::default())
            .unwrap()
            .contains("8443"));
    }

    #[test]
    fn names_are_checked() {
        let o = ManifestOptions::default();
        assert!(render(&["Service1".into()], &o).is_err());
        assert!(render(&["a_b".into()], &o).is_err());
        assert!(render(&["-a".into()], &o).is_err());
        let long = "a".repeat(61);
        assert!(render(&[long], &o).is_err(), "NAME-VERSION would pass 63");
        let many = render(
            &["a".into(), "b".into()],
            &ManifestOptions {
                namespace: Some("mock-1".into()),
                replicas: 3,
                ..o
            },
        )
        .unwrap();
        assert_eq!(many.matches("kind: Deployment").count(), 2);
        assert!(many.contains("  namespace: mock-1\n"));
        assert!(many.contains("  replicas: 3\n"));
    }
}
