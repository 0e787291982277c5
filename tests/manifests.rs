//! The Kubernetes side: every manifest in kubernetes/ and the generator's
//! output validate with kubernetes-validate (PyPI) against a current
//! Kubernetes, strictly; the Istio examples pass tests/python/check_istio.py.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_servicemock");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn validate(python: &Path, files: &[PathBuf]) {
    let validator = python.with_file_name("kubernetes-validate");
    let out = Command::new(validator)
        .arg("--strict")
        .args(files)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "kubernetes-validate failed:\n{text}");
    assert!(!text.contains("ERROR") && !text.contains("WARN"), "{text}");
    assert!(text.contains("passed for resource deployment/"), "{text}");
}

/// `kubectl kustomize DIR` (Kustomize built into kubectl renders offline).
/// kubectl is on the machines this project is built on; scripts/test says
/// so at start when it is missing, and these tests fail.
fn kustomize(dir: &Path) -> String {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl (with its built-in Kustomize) must be on PATH");
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The base and every overlay of kubernetes/, by directory name.
fn kustomizations() -> Vec<PathBuf> {
    let mut dirs = vec![root().join("kubernetes/base")];
    let mut overlays: Vec<PathBuf> = std::fs::read_dir(root().join("kubernetes/overlays"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    overlays.sort();
    dirs.extend(overlays);
    dirs
}

/// The documents of a rendered kustomization that Kubernetes itself knows
/// (not Istio's), written to a file for kubernetes-validate.
fn kubernetes_part(name: &str, rendered: &str) -> PathBuf {
    let docs: Vec<&str> = rendered
        .split("\n---\n")
        .filter(|doc| !doc.contains(".istio.io/v"))
        .collect();
    let file = std::env::temp_dir().join(format!(
        "servicemock-kustomized-{name}-{}.yaml",
        std::process::id()
    ));
    std::fs::write(&file, docs.join("\n---\n")).unwrap();
    file
}

#[ignore = "needs the Python virtualenv and kubectl: scripts/test makes it and runs ignored tests"]
#[test]
fn the_base_and_every_overlay_build_and_validate() {
    let python = venv_python();
    let dirs = kustomizations();
    assert!(dirs.len() >= 9, "{dirs:?}");
    let mut files = Vec::new();
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let rendered = kustomize(dir);
        assert_eq!(
            rendered.matches("kind: ServiceAccount\n").count(),
            3,
            "{name}"
        );
        files.push(kubernetes_part(&name, &rendered));
    }
    validate(&python, &files);
    for file in files {
        let _ = std::fs::remove_file(file);
    }
}

#[ignore = "needs the Python virtualenv: scripts/test makes it and runs ignored tests"]
#[test]
fn generated_manifests_validate() {
    let python = venv_python();
    let out = Command::new(BIN)
        .args([
            "manifests",
            "service1",
            "service2",
            "service3",
            "--namespace",
            "mock-1",
            "--service-version",
            "v2",
            "--replicas",
            "2",
            "--image",
            "registry.example/servicemock:1.0",
            "--tls",
            "{name}-tls",
            "--tcp-port",
            "9000",
            "--otlp",
            "http://otel-collector.observability:4317",
            "--otlp-protocol",
            "grpc",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.matches("kind: Service\n").count(), 3);
    assert!(text.contains("secretName: service3-tls"), "{text}");
    assert_eq!(text.matches("appProtocol: tcp\n").count(), 3);
    assert_eq!(
        text.matches("- name: OTEL_EXPORTER_OTLP_ENDPOINT\n              value: \"http://otel-collector.observability:4317\"\n            - name: OTEL_EXPORTER_OTLP_PROTOCOL\n              value: grpc\n").count(),
        3,
        "{text}"
    );
    let file =
        std::env::temp_dir().join(format!("servicemock-manifests-{}.yaml", std::process::id()));
    std::fs::write(&file, &text).unwrap();
    validate(&python, std::slice::from_ref(&file));

    // A topology: versions with replicas and behaviour, default calls, TLS
    // and a TCP port; and --calls beside names.
    let topology = std::env::temp_dir().join(format!(
        "servicemock-manifests-topology-{}.yaml",
        std::process::id()
    ));
    std::fs::write(
        &topology,
        "services:\n  - name: front\n    calls: /@back/\n    tls: true\n    ports: {tcp: 9000}\n  - name: back\n    versions:\n      - {name: v1, replicas: 2}\n      - {name: v2, replicas: 1, error-rate: 10, delay: 50ms}\n",
    )
    .unwrap();
    for args in [
        vec![
            "manifests".to_owned(),
            "--topology".to_owned(),
            topology.display().to_string(),
        ],
        vec![
            "manifests".to_owned(),
            "front".to_owned(),
            "back".to_owned(),
            "--calls".to_owned(),
            "front=/@back|other/".to_owned(),
        ],
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("- name: SERVICEMOCK_CALLS\n"), "{text}");
        std::fs::write(&file, &text).unwrap();
        validate(&python, std::slice::from_ref(&file));
    }
    let _ = std::fs::remove_file(&topology);
    let _ = std::fs::remove_file(&file);

    let bad = Command::new(BIN)
        .args(["manifests", "Service_1"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("\"Service_1\" is not a valid name"));
    // An endpoint a replica would refuse at start is refused here.
    let bad = Command::new(BIN)
        .args([
            "manifests",
            "a",
            "--otlp",
            "http://c:4318",
            "--otlp-protocol",
            "zipkin",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(
        said.contains("OTEL_EXPORTER_OTLP_PROTOCOL=\"zipkin\""),
        "{said}"
    );
}

#[ignore = "needs the Python virtualenv and kubectl: scripts/test makes it and runs ignored tests"]
#[test]
fn every_experiment_is_an_overlay_and_each_is_consistent() {
    let python = venv_python();
    let mut components: Vec<String> = std::fs::read_dir(root().join("kubernetes/istio"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    components.sort();
    assert!(components.len() >= 8, "{components:?}");
    let overlays = &kustomizations()[1..];
    for component in &components {
        assert!(
            overlays.iter().any(|o| o.ends_with(component)),
            "kubernetes/istio/{component} has no overlay in kubernetes/overlays/"
        );
    }
    for overlay in overlays {
        let name = overlay.file_name().unwrap().to_string_lossy().into_owned();
        let file = std::env::temp_dir().join(format!(
            "servicemock-overlay-{name}-{}.yaml",
            std::process::id()
        ));
        std::fs::write(&file, kustomize(overlay)).unwrap();
        let out = Command::new(&python)
            .arg(root().join("tests/python/check_istio.py"))
            .arg("")
            .arg(&file)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(", 0 problems"), "{name}: {text}");
        assert!(!text.starts_with("0 Istio resources"), "{name}: {text}");
        let _ = std::fs::remove_file(file);
    }
    // The outlier experiment runs two replicas of service2 v1 with /control.
    let outliers = kustomize(&root().join("kubernetes/overlays/outlier-detection"));
    assert!(outliers.contains("replicas: 2\n"), "{outliers}");
    assert!(outliers.contains("- --control\n"), "{outliers}");
}
