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

#[ignore = "needs the Python virtualenv: scripts/test makes it and runs ignored tests"]
#[test]
fn committed_manifests_validate() {
    let python = venv_python();
    let files: Vec<PathBuf> = std::fs::read_dir(root().join("kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    assert!(!files.is_empty());
    validate(&python, &files);
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
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.matches("kind: Service\n").count(), 3);
    assert!(text.contains("secretName: service3-tls"), "{text}");
    assert_eq!(text.matches("appProtocol: tcp\n").count(), 3);
    let file =
        std::env::temp_dir().join(format!("servicemock-manifests-{}.yaml", std::process::id()));
    std::fs::write(&file, &text).unwrap();
    validate(&python, std::slice::from_ref(&file));
    let _ = std::fs::remove_file(file);

    let bad = Command::new(BIN)
        .args(["manifests", "Service_1"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("\"Service_1\" is not a valid name"));
}

#[ignore = "needs the Python virtualenv: scripts/test makes it and runs ignored tests"]
#[test]
fn istio_examples_are_consistent() {
    let python = venv_python();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("kubernetes/istio"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    let out = Command::new(python)
        .arg(root().join("tests/python/check_istio.py"))
        .arg("service1,service2,service3")
        .args(&files)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(", 0 problems"), "{text}");
}
