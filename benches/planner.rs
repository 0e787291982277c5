//! The planner alone: parse and render of typical and worst-case @-paths.
//!   cargo bench --bench planner

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use servicemock::plan::path::{parse_path, render_path};
use servicemock::plan::Limits;

fn paths() -> Vec<(&'static str, String)> {
    let limits = Limits::default();
    let wide = format!(
        "/@{}/end",
        (0..64)
            .map(|i| format!("svc{i}:8080[x-h{i}=v{i}]"))
            .collect::<Vec<_>>()
            .join("|")
    );
    let mut deep = String::new();
    while deep.len() + 12 < limits.max_path_len {
        deep.push_str("/@service1");
    }
    deep.push_str("/end");
    vec![
        ("no command", "/service/calls/@service3/".to_string()),
        ("one hop", "/@service1/the-end".to_string()),
        ("readme tree", "/@service1|service2/@service3|service4/uri/".to_string()),
        ("mixed with headers", "/@service2[end-user=jason]|grpc:service3[x-mock-delay=50ms..200ms]/@h2c:service1,service4:9090/end?x=1".to_string()),
        ("encoded", "/%40service1%7Cservice2%5Bend-user%3Djason%5D/%40service3/end".to_string()),
        ("worst: 64 targets with headers", wide),
        ("worst: 8 KiB chain", deep),
    ]
}

fn planner(c: &mut Criterion) {
    let limits = Limits::default();
    for (name, path) in paths() {
        let plan = parse_path(&path, &limits).expect("benchmark paths parse");
        c.bench_function(&format!("parse/{name}"), |b| {
            b.iter(|| parse_path(black_box(&path), &limits))
        });
        c.bench_function(&format!("render/{name}"), |b| {
            b.iter(|| render_path(black_box(&plan)))
        });
    }
}

criterion_group!(benches, planner);
criterion_main!(benches);
