//! The layout rules of DESIGN.md, checked on the source itself: the
//! top-level modules of `src/` form a one-way graph (no module reaches,
//! through others, back to itself), the executor's core names no wire
//! crate (its clients live under `exec/transport/`), and no file under
//! `src/` grows past what a reader holds at once.
//!
//! The graph is read from the `crate::` paths each file names outside its
//! `#[cfg(test)]` part (tests may reach anywhere); `use crate::{a, b::c}`
//! groups count for each name. The generated code of `pb` names its codec
//! in `build.rs` (`codec_path`), and is counted from there.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest a source file may be (issue 22: "about 600 lines").
const MAX_LINES: usize = 620;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None` for the crate
/// roots, which list every module).
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    (!matches!(name, "lib" | "main" | "cli")).then(|| name.to_owned())
}

/// The part of a file outside its tests, without comments.
fn code_outside_tests(text: &str) -> String {
    let before_tests = text.split("#[cfg(test)]").next().unwrap_or_default();
    before_tests
        .lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules named by `crate::` paths in `code`.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The first name of each part at the group's own level.
            let (mut depth, mut part_start) = (0usize, true);
            for (at, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => part_start = true,
                    c if part_start && (c.is_ascii_alphabetic() || c == '_') => {
                        part_start = false;
                        let name: String = group[at..]
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        if name != "self" {
                            names.insert(name);
                        }
                    }
                    _ => {}
                }
            }
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            names.insert(name);
        }
    }
    names
}

fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(module) = top_module(&src, file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        let edges = graph.entry(module.clone()).or_default();
        for named in named_modules(&code_outside_tests(&text)) {
            if named != module {
                edges.insert(named);
            }
        }
    }
    // The generated messages and services of `pb` use the codec named in
    // build.rs.
    let build = std::fs::read_to_string(root.join("build.rs")).unwrap();
    let pb = graph.entry("pb".to_owned()).or_default();
    pb.extend(named_modules(&code_outside_tests(&build)));
    pb.remove("pb");
    graph
}

/// A cycle through `start`, if there is one: depth first, iteratively.
fn cycle_through(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_owned(), vec![start.to_owned()])];
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        for next in graph.get(&at).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(start.to_owned());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn the_top_level_modules_form_a_one_way_graph() {
    let graph = module_graph();
    assert!(
        graph.len() > 15,
        "the walk found the modules: {:?}",
        graph.keys()
    );
    assert!(
        graph["server"].contains("exec") && graph["exec"].contains("plan"),
        "the walk reads crate:: paths: {graph:?}"
    );
    let cycles: Vec<String> = graph
        .keys()
        .filter_map(|module| cycle_through(&graph, module))
        .map(|cycle| cycle.join(" -> "))
        .collect();
    assert!(
        cycles.is_empty(),
        "module cycles (a shared piece belongs in a leaf module both use):\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_walk_finds_a_cycle_when_there_is_one() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        graph.entry(from.into()).or_default().insert(to.into());
    }
    assert_eq!(
        cycle_through(&graph, "a").unwrap(),
        ["a", "b", "c", "a"].map(String::from)
    );
    assert_eq!(cycle_through(&graph, "d"), None);
    assert_eq!(
        named_modules(
            "use crate::{plan::Plan, report::{self, Report}};\nlet x = crate::exec::run();"
        ),
        ["exec", "plan", "report"].map(String::from).into()
    );
}

#[test]
fn no_source_file_is_longer_than_a_reader_holds() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let lines = std::fs::read_to_string(file).unwrap().lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", file.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines: split them by concern (tests in a file of their own first):\n{}",
        long.join("\n")
    );
}

#[test]
fn the_executor_core_names_no_wire_crate() {
    let exec = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/exec");
    let mut named = Vec::new();
    let mut checked = 0;
    for entry in std::fs::read_dir(&exec).unwrap() {
        let file = entry.unwrap().path();
        if file.is_dir() || file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        checked += 1;
        let code = code_outside_tests(&std::fs::read_to_string(&file).unwrap());
        for wire in ["hyper", "tonic", "rustls", "h2::"] {
            if code.contains(wire) {
                named.push(format!("{} names {wire}", file.display()));
            }
        }
    }
    assert!(checked >= 8, "{checked} files of the core read");
    assert!(
        named.is_empty(),
        "the clients belong under exec/transport/:\n{}",
        named.join("\n")
    );
}
